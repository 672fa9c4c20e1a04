"""Per-cone algebra of the signed vertex-cone decomposition: orthant probabilities and Tallis terms.

A cone of the decomposition (:mod:`fastpath._cones`), in whitened coordinates, is an
orthant {x : a_q . x <= h_q} of N(0, I) with unit rows a_q; its correlation matrix is
R = A A^T. Its Tallis moments (Tallis 1961; docs/DESIGN.md §2.4) in standardised form are

    f_q  = phi(h_q) Phi_{S-1}(conditional on x.a_q = h_q),
    f_qs = phi_2(h_q, h_s; R_qs) Phi_{S-2}(conditional on both),
    int x N = -A^T f,   int x x^T N = P I + A^T M A,
    M_qs = f_qs (q != s),  M_qq = -(h_q f_q + sum_s R_qs f_qs).

Conditioning is done geometrically (Gram-Schmidt on the whitened rows), which keeps
1 - rho^2 accurate for nearly parallel rows (sharp wedges), where 1 - rho*rho would not.
The orthant probabilities themselves are computed by the kernels of :mod:`fastpath.orthant`
from correlations, so a cone whose whitened rows meet at a small angle theta has a relative
error of about eps / theta^2 (1e-8 at theta = 1e-4).

Everything here works on "structure of arrays": h is a list of k arrays, A a list of k
rows, each row a list of n arrays (components), all of one batch shape. With k, n <= 4 this
keeps every numpy operation a long contiguous elementwise pass. :func:`_condition_on` and
:func:`_orthant_terms` are the stacked forms, for tests.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr

from ._bvn import _log_bvn
from ._tvn import _log_mvn_cdf_std

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

Arr = NDArray[np.float64]


def _dot(a: list[Arr], b: list[Arr]) -> Arr:
    out = a[0] * b[0]
    for x, y in zip(a[1:], b[1:]):
        out = out + x * y
    return out


def _log_orthant_soa(h: list[Arr], A: list[list[Arr]]) -> Arr:
    """log P(X <= h), X ~ N(0, A A^T) with unit rows A, k = len(h) = 1..4."""
    k = len(h)
    if k == 1:
        return log_ndtr(h[0])
    if k == 2:
        return _log_bvn(h[0], h[1], _dot(A[0], A[1]))
    shape = h[0].shape
    H = np.stack(h, axis=-1)
    R = np.empty(shape + (k, k))
    for i in range(k):
        R[..., i, i] = 1.0
        for j in range(i + 1, k):
            R[..., i, j] = R[..., j, i] = _dot(A[i], A[j])
    return _log_mvn_cdf_std(H, R)


def _condition_soa(h: list[Arr], A: list[list[Arr]], q: int
                   ) -> tuple[list[Arr], list[list[Arr]], list[Arr]]:
    """Condition the standardised orthant (h, unit rows A) on x.a_q = h_q.

    Returns the standardised bounds and unit rows of the other k-1 constraints and their
    conditional standard deviations sqrt(1 - rho_jq^2), computed as residual norms (Gram-
    Schmidt), which stay accurate when rows are nearly parallel (sharp wedges).
    """
    aq, hq = A[q], h[q]
    hn, An, sdn = [], [], []
    for j in range(len(h)):
        if j == q:
            continue
        rho = _dot(A[j], aq)
        r = [x - rho * y for x, y in zip(A[j], aq)]
        sd = np.sqrt(_dot(r, r))
        inv = 1.0 / sd
        hn.append((h[j] - rho * hq) * inv)
        An.append([x * inv for x in r])
        sdn.append(sd)
    return hn, An, sdn


def _exp_rel(x: Arr) -> Arr:
    """exp(x) for x <= 0 (a term relative to the largest), flushing e^{<-700} to 0: subnormal
    results take a slow path on x86 and are irrelevant next to the largest term."""
    # (exp of -inf or of arguments in (-745, -708) leaves numpy's vector loop: clip first)
    return np.where(x < -700.0, 0.0, np.exp(np.maximum(x, -700.0)))


def _log_phi(x: Arr) -> Arr:
    return -0.5 * x * x - _LOG_SQRT_2PI



def _orthant_terms_soa(h: list[Arr], A: list[list[Arr]], moments: bool
                       ) -> tuple[Arr, list[Arr], dict[tuple[int, int], Arr]]:
    """log P, log f_q (list) and log f_qt for q < t (dict) of standardised orthants."""
    logP = _log_orthant_soa(h, A)
    logf: list[Arr] = []
    logf2: dict[tuple[int, int], Arr] = {}
    if not moments:
        return logP, logf, logf2
    k = len(h)
    for q in range(k):
        lphq = _log_phi(h[q])
        if k == 1:
            logf.append(lphq)
            continue
        h1, A1, sd1 = _condition_soa(h, A, q)
        logf.append(lphq + _log_orthant_soa(h1, A1))
        others = [j for j in range(k) if j != q]
        for j, t in enumerate(others):
            if t < q:
                continue
            val = lphq + _log_phi(h1[j]) - np.log(sd1[j])
            if k > 2:
                h2, A2, _ = _condition_soa(h1, A1, j)
                val = val + _log_orthant_soa(h2, A2)
            logf2[(q, t)] = val
    return logP, logf, logf2


def _to_soa(h: Arr, A: Arr) -> tuple[list[Arr], list[list[Arr]]]:
    k, n = A.shape[-2:]
    return ([np.ascontiguousarray(h[..., q]) for q in range(k)],
            [[np.ascontiguousarray(A[..., q, i]) for i in range(n)] for q in range(k)])


def _condition_on(h: Arr, A: Arr, q: int) -> tuple[Arr, Arr, Arr]:
    """Stacked form of :func:`_condition_soa`: h (..., k), A (..., k, n)."""
    hn, An, sd = _condition_soa(*_to_soa(h, A), q)
    return (np.stack(hn, -1), np.stack([np.stack(r, -1) for r in An], -2), np.stack(sd, -1))


def _orthant_terms(h: Arr, A: Arr, moments: bool) -> tuple[Arr, Arr | None, Arr | None]:
    """Stacked form of :func:`_orthant_terms_soa`: log P (...), log f (..., k), log f2
    (..., k, k; -inf on the diagonal)."""
    logP, lf, lf2 = _orthant_terms_soa(*_to_soa(h, A), moments)
    if not moments:
        return logP, None, None
    k = h.shape[-1]
    logf2 = np.full(h.shape + (k,), -np.inf)
    for (q, t), v in lf2.items():
        logf2[..., q, t] = logf2[..., t, q] = v
    return logP, np.stack(lf, -1), logf2
