"""Gaussian orthant probabilities and truncated moments in high precision (mpmath).

For ``Y ~ N(0, K)`` in ``R^k`` (``k = 0..4``) and an upper bound ``b``:

    orthant_probability(b, K) = P(Y <= b)
    orthant_moments(b, K)     = int_{y <= b} (1, y, y y^T) N(y; 0, K) dy

Both are the building blocks of the exact Gaussian integrals on polyhedra (docs/DESIGN.md §2.4,
Lemma 4): every term of the inclusion-exclusion is such an orthant.

Accuracy is *relative*: the values are used in log space by the marginal p(x) and reach
1e-300 and far below. The implementation, by mathematical object:

* :mod:`verified_dgn.mp_quadrature`: one-dimensional integrals of one-signed integrands to
  a relative accuracy, with rigorous truncation of infinite intervals for the strongly
  log-concave conditioning integrands;
* :mod:`verified_dgn.orthant_base`: working precision, argument checks, ``Phi_1``,
  ``Phi_2`` and the driver that raises the precision by the digits a formula cancels;
* :mod:`verified_dgn.orthant_trivariate`: ``Phi_3`` (Plackett paths from the identity and
  from a star reference);
* :mod:`verified_dgn.orthant_quadrivariate`: ``Phi_4`` (Plackett path from a star
  reference);
* this module: the public functions and the truncated moments.

Infinite bounds are dropped (``+inf``) or give 0 (``-inf``) before a kernel is called.

Truncated moments (Tallis 1961; Manjunath & Wilhelm 2009), for finite bounds:
``F_q = N(b_q; 0, K_qq) Phi_{k-1}(conditional on y_q = b_q)``,
``F_qs = N_2((b_q, b_s); 0, K_{qs}) Phi_{k-2}(conditional on y_q = b_q, y_s = b_s)``,
``int y N = -K F``, ``int y_i y_j N = K_ij P - sum_q K_iq K_jq b_q F_q / K_qq
+ sum_q K_iq sum_{s != q} (K_js - K_qs K_jq / K_qq) F_qs``. Coordinates with an infinite
bound are then restored through the Gaussian regression on the constrained ones.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.exceptions import QuadratureError

from .orthant_base import _GUARD as _GUARD
from .orthant_base import _KMAX as _KMAX
from .orthant_base import (
    _MAX_DIGITS,
    _check_orthant_args,
    _conditional,
    _convert_cov,
    _lost_digits,
    _phi_cov,
    _scale_digits,
    _solve,
    _sub,
    _wdps,
    to_mpf,
)
from .orthant_base import _phi as _phi
from .orthant_base import _phi1 as _phi1
from .orthant_base import _phi2 as _phi2
from .orthant_base import _phi_acc as _phi_acc
from .orthant_quadrivariate import _phi4 as _phi4
from .orthant_quadrivariate import _phi4_conditioning as _phi4_conditioning
from .orthant_trivariate import _phi3 as _phi3

__all__ = ["orthant_probability", "orthant_moments", "log_orthant_probability", "to_mpf"]

# The kernels and constants imported "as" themselves are re-exported: the tests and other
# modules use them by this module's path.


# --------------------------------------------------------------------------- public API
def _input_digits(bb: NDArray[Any], KK: NDArray[Any]) -> int:
    """:func:`_scale_digits` of the checked inputs (0 where they are not yet usable: the
    covariance rule then reports the problem)."""
    try:
        return _scale_digits(list(bb), [list(r) for r in KK])
    except (ValueError, ZeroDivisionError, TypeError):
        return 0


def orthant_probability(b: ArrayLike, cov: ArrayLike, *, dps: int = 30) -> mpmath.mpf:
    """Gaussian orthant probability ``P(Y <= b)`` for ``Y ~ N(0, cov)`` in high precision.

    Parameters
    ----------
    b : array_like, shape (k,)
        Upper bounds, ``k = 0..4``; entries may be ``+-inf`` (float or mpf). Ints, floats
        (exact), Fractions, mpf or decimal strings.
    cov : array_like, shape (k, k)
        Symmetric positive definite covariance (same number types), checked by the shared
        covariance rule (:mod:`verified_dgn.covariance`) and symmetrised.
    dps : int
        Decimal digits of relative accuracy requested.

    Returns
    -------
    mpmath.mpf
        ``P(Y <= b)`` with relative error at most ``10**-dps``, also in the far tail (values
        like 1e-10000 are fine) and for correlations near +-1 (checked against ``dps + 20``
        by ``tests/test_exact_digits_sweep.py``). ``k = 0`` gives 1.

    Raises
    ------
    TypeError
        Entries that are not numbers.
    ValueError
        Wrong shapes, NaN, infinite covariance entries, ``k > 4``, a bad ``dps``; a ``cov``
        that is not symmetric or not positive definite (the messages of
        :func:`dgn_core.validation.check_covariance`).
    """
    bb, KK = _check_orthant_args(b, cov, dps)
    k = bb.shape[0]
    # inputs rounded with the digits the far tail needs (the error of a bound h enters
    # the result multiplied by about h^2)
    with mpmath.workdps(_wdps(dps + _input_digits(bb, KK))):
        K = _convert_cov(KK)
        if k == 0:
            return mpmath.mpf(1)
        bm = [to_mpf(x) for x in bb]
        val = _phi_cov(bm, K, dps + 2)
    return val


def log_orthant_probability(b: ArrayLike, cov: ArrayLike, *, dps: int = 30) -> mpmath.mpf:
    """``log P(Y <= b)`` (``-inf`` when the probability is 0) to ``10**-dps`` absolute (the
    relative accuracy of :func:`orthant_probability`; the log is rounded with the digits of
    its integer part added, as it reaches -1e13 in far tails)."""
    p = orthant_probability(b, cov, dps=dps)
    if not p > 0:
        return mpmath.mpf("-inf")
    with mpmath.workdps(_wdps(dps) + len(str(abs(int(mpmath.mag(p)))))):
        return mpmath.log(p)



# --------------------------------------------------------------------------- truncated moments
def _tallis(b: list[mpmath.mpf], K: list[list[mpmath.mpf]], digits: int
            ) -> tuple[mpmath.mpf, list[mpmath.mpf], list[list[mpmath.mpf]], float]:
    """Tallis moments for finite bounds; also returns the digits lost to cancellation."""
    k = len(b)
    P = _phi_cov(b, K, digits)
    F = []
    for q in range(k):
        dens = mpmath.npdf(b[q], 0, mpmath.sqrt(K[q][q]))
        if dens == 0:
            F.append(mpmath.mpf(0))
            continue
        bc, Kc, _ = _conditional(b, K, [q])
        F.append(dens * _phi_cov(bc, Kc, digits))
    Fqs = [[mpmath.mpf(0)] * k for _ in range(k)]
    for q in range(k):
        for s in range(q + 1, k):
            det = K[q][q] * K[s][s] - K[q][s] ** 2
            quad = (K[s][s] * b[q] ** 2 - 2 * K[q][s] * b[q] * b[s] + K[q][q] * b[s] ** 2) / det
            dens = mpmath.exp(-quad / 2) / (2 * mpmath.pi * mpmath.sqrt(det))
            if dens != 0:
                bc, Kc, _ = _conditional(b, K, [q, s])
                dens *= _phi_cov(bc, Kc, digits)
            Fqs[q][s] = Fqs[s][q] = dens
    m1 = [-sum(K[i][q] * F[q] for q in range(k)) for i in range(k)]
    m1_mag = [sum(abs(K[i][q]) * F[q] for q in range(k)) for i in range(k)]
    M2 = [[mpmath.mpf(0)] * k for _ in range(k)]
    M2_mag = [[mpmath.mpf(0)] * k for _ in range(k)]
    for i in range(k):
        for j in range(i, k):
            t = K[i][j] * P
            tm = abs(t)
            for q in range(k):
                a = K[i][q] * K[j][q] * b[q] * F[q] / K[q][q]
                t -= a
                tm += abs(a)
                for s in range(k):
                    if s == q:
                        continue
                    a = K[i][q] * (K[j][s] - K[q][s] * K[j][q] / K[q][q]) * Fqs[q][s]
                    t += a
                    tm += abs(a)
            M2[i][j] = M2[j][i] = t
            M2_mag[i][j] = M2_mag[j][i] = tm
    lost = 0.0
    for i in range(k):
        if not M2[i][i] > 0:
            return P, m1, M2, math.inf
    for i in range(k):
        lost = max(lost, _lost_digits(mpmath.sqrt(P * M2[i][i]), m1_mag[i]))
        for j in range(k):
            lost = max(lost, _lost_digits(mpmath.sqrt(M2[i][i] * M2[j][j]), M2_mag[i][j]))
    return P, m1, M2, lost


def _orthant_moments_mp(b: list[mpmath.mpf], K: list[list[mpmath.mpf]], digits: int
                        ) -> tuple[mpmath.mpf, list[mpmath.mpf], list[list[mpmath.mpf]], float]:
    """Moments with infinite bounds handled (``+inf``: regression on the bounded ones)."""
    k = len(b)
    zero = mpmath.mpf(0)
    if any(x == -mpmath.inf for x in b):
        return zero, [zero] * k, [[zero] * k for _ in range(k)], 0.0
    fin = [i for i in range(k) if b[i] != mpmath.inf]
    free = [i for i in range(k) if b[i] == mpmath.inf]
    if not fin:
        return mpmath.mpf(1), [zero] * k, [list(row) for row in K], 0.0
    Kff = _sub(K, fin, fin)
    P, m1f, M2f, lost = _tallis([b[i] for i in fin], Kff, digits)
    if not free:
        return P, m1f, M2f, lost
    # y_free | y_fin ~ N(A y_fin, Kc), A = K_uf Kff^{-1}
    A_T = _solve(Kff, _sub(K, fin, free))  # (f, u) = Kff^{-1} K_fu
    A = [[A_T[p][c] for p in range(len(fin))] for c in range(len(free))]
    Kc = [[K[free[r]][free[c]] - sum(K[free[r]][fin[p]] * A_T[p][c] for p in range(len(fin)))
           for c in range(len(free))] for r in range(len(free))]
    m1 = [zero] * k
    M2 = [[zero] * k for _ in range(k)]
    for a, i in enumerate(fin):
        m1[i] = m1f[a]
        for c, j in enumerate(fin):
            M2[i][j] = M2f[a][c]
    nf = len(fin)
    AM = [[sum(A[r][p] * M2f[p][c] for p in range(nf)) for c in range(nf)] for r in range(len(free))]
    for r, i in enumerate(free):
        m1[i] = sum(A[r][p] * m1f[p] for p in range(nf))
        for c, j in enumerate(fin):
            M2[i][j] = M2[j][i] = AM[r][c]
        for c, j in enumerate(free):
            M2[i][j] = Kc[r][c] * P + sum(AM[r][p] * A[c][p] for p in range(nf))
    return P, m1, M2, lost


def _orthant_moments_acc(b: list[mpmath.mpf], K: list[list[mpmath.mpf]], digits: int
                         ) -> tuple[mpmath.mpf, list[mpmath.mpf], list[list[mpmath.mpf]]]:
    """Orthant moments of given mpf inputs to ``digits`` digits in their natural scales.

    Raises the working precision by the digits the Tallis formulas lose to cancellation
    (measured as the sum of the absolute values of the terms over the natural scale
    ``sqrt(P M2_ii)`` resp. ``sqrt(M2_ii M2_jj)``) and recomputes.
    """
    q = digits + 2
    extra = _scale_digits(b, K)
    while True:
        with mpmath.workdps(_wdps(q + extra)):
            P, m1, M2, lost = _orthant_moments_mp(b, K, q)
        if lost <= q - digits:
            return P, m1, M2
        if not math.isfinite(lost) or lost >= q - 2:
            lost = max(lost if math.isfinite(lost) else 0.0, 2.0 * q)
        q = digits + 2 + int(math.ceil(lost)) + 2
        if q > _MAX_DIGITS:
            raise QuadratureError(f"cancellation needs more than {_MAX_DIGITS} digits")


def orthant_moments(b: ArrayLike, cov: ArrayLike, *, dps: int = 30
                    ) -> tuple[mpmath.mpf, NDArray[Any], NDArray[Any]]:
    """Truncated Gaussian moments of the orthant ``{y <= b}`` (Tallis 1961).

    Parameters
    ----------
    b : array_like, shape (k,)
        Upper bounds, ``k = 0..4``, entries may be ``+-inf``.
    cov : array_like, shape (k, k)
        Symmetric positive definite covariance of ``Y ~ N(0, cov)`` (checked as in
        :func:`orthant_probability`).
    dps : int
        Decimal digits requested.

    Returns
    -------
    P : mpmath.mpf
        ``int_{y <= b} N(y; 0, cov) dy`` (relative accuracy ``10**-dps``).
    m1 : ndarray of mpf, shape (k,)
        ``int_{y <= b} y N dy``; every entry accurate to ``10**-dps * sqrt(P * M2_ii)``
        (a component can be 0 by symmetry, so the accuracy is relative to that scale).
    M2 : ndarray of mpf, shape (k, k)
        ``int_{y <= b} y y^T N dy``; entry ``(i, j)`` accurate to
        ``10**-dps * sqrt(M2_ii * M2_jj)``.
    """
    bb, KK = _check_orthant_args(b, cov, dps)
    k = bb.shape[0]
    with mpmath.workdps(_wdps(dps + _input_digits(bb, KK))):
        K = _convert_cov(KK)
        bm = [to_mpf(x) for x in bb]
    P, m1, M2 = _orthant_moments_acc(bm, K, dps)
    m1a = np.empty(k, dtype=object)
    M2a = np.empty((k, k), dtype=object)
    for i in range(k):
        m1a[i] = m1[i]
        for j in range(k):
            M2a[i, j] = M2[i][j]
    return P, m1a, M2a
