"""The exact marginal p(x) and posterior p(z | x) of a DGN in high precision (Theorem 1, Prop. 2).

For the model z ~ N(0, Sigma_z), x = g(z) + eps, eps ~ N(0, Sigma_x) (Sigma_x diagonal),
with g(z) = A_w z + b_w on every region w of the exact partition (DESIGN.md 2.3)::

    Sigma_w    = (Sigma_z^-1 + A_w^T Sigma_x^-1 A_w)^-1 = Lambda_w^-1
    mu_w(x)    = Sigma_w A_w^T Sigma_x^-1 (x - b_w)
    kappa_w(x) = N(x; b_w, Sigma_x + A_w Sigma_z A_w^T)
    p(x)       = sum_w kappa_w(x) Phi_w(mu_w(x), Sigma_w)
    p(z|x)     = p(x)^-1 sum_w 1[z in w] kappa_w(x) N(z; mu_w(x), Sigma_w)

What is exact and what is rounded:

* ``A_w, b_w`` (from :func:`verified_dgn.partition`), the parameters and ``x`` are rationals
  (every float64 is one). ``Lambda_w``, ``Sigma_w``, ``det Lambda_w``, ``mu_w(x)`` and the
  quadratic form ``Q_w(x) = (x - b_w)^T (Sigma_x + A_w Sigma_z A_w^T)^-1 (x - b_w)`` are
  computed exactly in ``Fraction`` arithmetic, without a D x D matrix: by Woodbury
  ``Q_w = r^T Sigma_x^-1 r - mu_w^T Lambda_w mu_w`` (``r = x - b_w``) and by the determinant
  lemma ``det(Sigma_x + A_w Sigma_z A_w^T) = det Sigma_x det Sigma_z det Lambda_w``, so
  ``log kappa_w = -(D log 2 pi + log det Sigma_x + log det Sigma_z + log det Lambda_w + Q_w)/2``
  is rounded once, in mpmath, at the working precision.
* ``Phi_w`` and the moments ``int_w (1, z, z z^T) N(z; mu_w, Sigma_w) dz`` come from
  :func:`verified_dgn.integrals.log_gaussian_mass` / :func:`verified_dgn.gaussian_moments`
  with the exact ``C_w, d_w, mu_w, Sigma_w``, at ``dps + 3`` digits (more for the
  posterior covariance, see below).
* Everything is combined in log space: ``log p = logsumexp_w(log kappa_w + log Phi_w)``,
  ``e0_w = exp(log kappa_w + log Phi_w - log p)`` and ``(e1_w, E2_w) = exp(log kappa_w -
  log p) (m1_w, M2_w)``; mpmath has no underflow, but values like ``exp(-1e8)`` still occur.

Pruning (``prune=True``, the default). Let p be the point of region w nearest to mu_w in
the metric Sigma_w^-1 (an exact QP over the facets' active sets) and r its Mahalanobis
distance. The hyperplane through p with normal Sigma_w^-1 (p - mu_w) separates the region
from mu_w, so with u ~ N(0, 1) along it, ``Phi_w <= Phi(-r)`` and
``int_w z_i^2 N <= T_i = int_{u >= r} (mu_i + beta_i u)^2 phi(u) du + (Sigma_ii - beta_i^2)
Phi(-r)`` (``beta = (p - mu_w) / r``, closed form). Hence ``kappa_w Phi(-r)``,
``kappa_w sqrt(Phi(-r) T_i)`` and ``kappa_w sqrt(T_i T_j)`` bound region w's contribution to
p(x), ``e1`` and ``E2`` (Cauchy-Schwarz); each bound carries a factor 2 against rounding.
Regions are integrated in decreasing order of the bound and the loop stops once the bounds
of all remaining regions add up to less than ``10**-(dps + 10)`` of what has been
accumulated (for the posterior: in the scales of the digit claims below). Pruned regions
get ``e0 = e1 = E2 = 0``; :attr:`ExactPosterior.e0_bound` holds their bound. The claims
below include the pruned mass. ``prune=False`` integrates every region.

Digits claimed (``verify=True`` recomputes at ``dps + 15`` and raises
:class:`~verified_dgn.integrals.PrecisionError` on a disagreement beyond them):

* ``log p(x)``: absolute ``10**-dps`` (so ``p(x)`` to ``10**-dps`` relative);
* ``e0[n, w]``: absolute ``10**-dps`` (relative for regions not pruned);
* ``mean[n, i]`` and ``e1[n, w, i]``: absolute ``10**-dps * sqrt(E[z_i^2 | x])``;
* ``cov[n, i, j]``: absolute ``10**-dps * sqrt(cov_ii cov_jj)``; the working precision of the
  moments is raised by the digits that ``E[z z^T | x] - mean mean^T`` cancels (predicted from
  the dominant region, measured afterwards, and the point recomputed if the prediction was
  short), so small-noise posteriors far from the origin keep their digits.
* ``E2[n, w, i, j]``: absolute ``10**-dps * sqrt(cov_ii cov_jj)`` as well.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.model import DGN
from dgn_core.regions import Partition

from .integrals import PrecisionError, gaussian_moments, log_gaussian_mass

__all__ = ["ExactPosterior", "PrecisionError", "log_marginal", "posterior", "posterior_discrepancy"]

#: guard digits of the pruning threshold and of the rounded (non-integral) part
_GUARD = 10
#: guard digits of the Gaussian integrals (their own claims are rigorous to their dps)
_INT_GUARD = 3
#: the digits a verify=True recomputation adds
_VERIFY_EXTRA = 15
#: largest dps accepted (the integrals' own limit is far higher, but cost grows fast)
_MAX_DPS = 1000
#: latent dimensions the exact Gaussian integrals handle
_SMAX = 4

Obj = NDArray[Any]


# =========================================================================== validation
def _check_net(net: Any) -> DGN:
    if not isinstance(net, DGN):
        raise TypeError(f"net must be a verified_dgn.DGN, got {type(net).__name__}")
    if net.latent_dim > _SMAX:
        raise ValueError(f"the exact path handles latent dimension S <= {_SMAX}, "
                         f"got S = {net.latent_dim}")
    return net


def _check_dps(dps: Any) -> int:
    if isinstance(dps, bool) or not isinstance(dps, (int, np.integer)) or dps < 1:
        raise ValueError(f"dps must be a positive integer, got {dps!r}")
    if dps > _MAX_DPS:
        raise ValueError(f"dps = {dps} exceeds the limit of {_MAX_DPS} digits")
    return int(dps)


def _to_fraction(v: Any, name: str) -> Fraction:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, bool):
        raise TypeError(f"{name} must hold numbers, got a boolean")
    if isinstance(v, Fraction):
        return v
    if isinstance(v, int):
        return Fraction(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{name} contains NaN or infinite values")
        return Fraction(v)
    if isinstance(v, mpmath.mpf):
        if not mpmath.isfinite(v):
            raise ValueError(f"{name} contains NaN or infinite values")
        sign, man, exp, _ = v._mpf_  # (man_exp drops the sign)
        q = Fraction(int(man)) * Fraction(2) ** int(exp)
        return -q if sign else q
    raise TypeError(f"{name} must hold ints, floats, Fractions or mpf, got {type(v).__name__}")


def _check_points(X: ArrayLike, dim: int, name: str) -> list[list[Fraction]]:
    """Rows of X as exact Fractions; X of shape (N, dim) or (dim,)."""
    if isinstance(X, np.ndarray) and X.dtype == object:
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a real array: {exc}") from None
        if arr.dtype.kind not in "iuf" and arr.dtype != object:
            raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    if arr.ndim == 1:
        if dim == 1 and arr.shape[0] != 1:
            arr = arr[:, None]
        else:
            arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got shape {np.shape(X)}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 points)")
    return [[_to_fraction(v, name) for v in row] for row in arr.tolist()]


def _check_partition(net: DGN, partition: Any) -> Partition:
    if partition is None:
        from .exact_partition import partition as exact_partition

        return exact_partition(net)
    if not isinstance(partition, Partition):
        raise TypeError(f"partition must be a verified_dgn Partition, got {type(partition).__name__}")
    if not partition.exact:
        raise ValueError("partition must be the exact partition (verified_dgn.partition(net)); "
                         "got a float64 one")
    if partition.net is not net and partition.net != net:
        raise ValueError("partition belongs to a different net")
    return partition


# =========================================================================== exact algebra
FMat = list[list[Fraction]]


def _inverse_det(M: FMat) -> tuple[FMat, Fraction]:
    """Exact inverse and determinant of a nonsingular square Fraction matrix (Gauss-Jordan)."""
    n = len(M)
    A = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(M)]
    det = Fraction(1)
    for c in range(n):
        p = next((r for r in range(c, n) if A[r][c] != 0), None)
        if p is None:
            raise ZeroDivisionError("singular matrix")
        if p != c:
            A[c], A[p] = A[p], A[c]
            det = -det
        piv = A[c][c]
        det *= piv
        A[c] = [v / piv for v in A[c]]
        for r in range(n):
            if r != c and A[r][c] != 0:
                f = A[r][c]
                A[r] = [a - f * b for a, b in zip(A[r], A[c])]
    return [row[n:] for row in A], det


def _matvec(M: FMat, v: Sequence[Fraction]) -> list[Fraction]:
    return [sum((a * b for a, b in zip(row, v)), Fraction(0)) for row in M]


def _dot(a: Sequence[Fraction], b: Sequence[Fraction]) -> Fraction:
    return sum((x * y for x, y in zip(a, b)), Fraction(0))


@dataclass(frozen=True)
class _ExactModel:
    """The net's noise and prior as exact rationals."""

    S: int
    D: int
    sx_inv: tuple[Fraction, ...]  # (D,) 1 / Sigma_x diagonal
    det_sx: Fraction
    sz: FMat                      # (S, S) Sigma_z (exactly symmetrised)
    sz_inv: FMat
    det_sz: Fraction


@dataclass(frozen=True)
class _RegionForm:
    """Everything about region w that does not depend on x, exact."""

    b: tuple[Fraction, ...]       # (D,)
    AtSi: FMat                    # (S, D) A_w^T Sigma_x^-1
    Lam: FMat                     # (S, S) Lambda_w = Sigma_w^-1
    Sigma: FMat                   # (S, S)
    det_lam: Fraction
    C: Obj                        # (m, S) Fraction, facets
    d: Obj                        # (m,)
    Crows: tuple[tuple[Fraction, ...], ...]
    dvals: tuple[Fraction, ...]
    cSc: tuple[Fraction, ...]     # (m,) c_j^T Sigma_w c_j
    Sc: tuple[tuple[Fraction, ...], ...]  # (m, S) Sigma_w c_j


def _exact_model(net: DGN) -> _ExactModel:
    S, D = net.latent_dim, net.data_dim
    nv = [Fraction(float(v)) for v in net.noise_var_vector]
    det_sx = Fraction(1)
    for v in nv:
        det_sx *= v
    pc = net.prior_cov
    sz = [[(Fraction(float(pc[i, j])) + Fraction(float(pc[j, i]))) / 2 for j in range(S)]
          for i in range(S)]
    sz_inv, det_sz = _inverse_det(sz)
    return _ExactModel(S, D, tuple(1 / v for v in nv), det_sx, sz, sz_inv, det_sz)


def _region_form(model: _ExactModel, region: Any) -> _RegionForm:
    S, D = model.S, model.D
    A = [[Fraction(region.A[k, i]) for i in range(S)] for k in range(D)]
    b = tuple(Fraction(region.b[k]) for k in range(D))
    AtSi = [[A[k][i] * model.sx_inv[k] for k in range(D)] for i in range(S)]
    Lam = [[model.sz_inv[i][j] + sum((AtSi[i][k] * A[k][j] for k in range(D)), Fraction(0))
            for j in range(S)] for i in range(S)]
    Sigma, det_lam = _inverse_det(Lam)
    Crows = tuple(tuple(Fraction(v) for v in row) for row in np.asarray(region.C).tolist())
    dvals = tuple(Fraction(v) for v in np.asarray(region.d).tolist())
    Sc = tuple(tuple(_matvec(Sigma, c)) for c in Crows)
    cSc = tuple(_dot(c, s) for c, s in zip(Crows, Sc))
    return _RegionForm(b, AtSi, Lam, Sigma, det_lam, region.C, region.d, Crows, dvals, cSc, Sc)


#: per-partition exact forms (they depend only on the net and the regions)
_FORMS_CACHE: weakref.WeakKeyDictionary[Partition, tuple[DGN, _ExactModel, list[_RegionForm]]] = (
    weakref.WeakKeyDictionary())


def _forms(net: DGN, partition: Partition) -> tuple[_ExactModel, list[_RegionForm]]:
    cache = _FORMS_CACHE.get(partition)
    if cache is not None and cache[0] == net:
        return cache[1], cache[2]
    model = _exact_model(net)
    forms = [_region_form(model, r) for r in partition]
    _FORMS_CACHE[partition] = (net, model, forms)
    return model, forms


def _mu_and_q(model: _ExactModel, f: _RegionForm, x: Sequence[Fraction]
              ) -> tuple[list[Fraction], Fraction]:
    """Exact mu_w(x) (S,) and Q_w(x) (Woodbury form, no D x D matrix)."""
    r = [xk - bk for xk, bk in zip(x, f.b)]
    u = _matvec(f.AtSi, r)
    mu = _matvec(f.Sigma, u)
    q = sum((rk * rk * s for rk, s in zip(r, model.sx_inv)), Fraction(0)) - _dot(u, mu)
    return mu, q


# =========================================================================== mpmath part
def _mpf(q: Fraction) -> mpmath.mpf:
    return mpmath.mpf(q.numerator) / q.denominator


def _log_mpf(q: Fraction) -> mpmath.mpf:
    # log of a positive rational from its integer numerator and denominator (each rounded
    # once), so a ratio of huge integers loses nothing to an intermediate division
    return mpmath.log(q.numerator) - mpmath.log(q.denominator)


def _point_state(model: _ExactModel, forms: list[_RegionForm], x: Sequence[Fraction]
                 ) -> tuple[list[list[Fraction]], list[Fraction]]:
    mus, qs = [], []
    for f in forms:
        mu, q = _mu_and_q(model, f, x)
        mus.append(mu)
        qs.append(q)
    return mus, qs


def _working_dps(dps: int, qs: Sequence[Fraction], model: _ExactModel) -> int:
    """Digits for the rounded part: dps + guard + the digits of the largest magnitude that
    is rounded (Q_w, log det terms), so that its absolute rounding stays below 10^-(dps+guard)."""
    mag = max([1.0, 2.0 * model.D] + [abs(_flog(model.det_sx)), abs(_flog(model.det_sz))]
              + [abs(_float(q)) for q in qs])
    return dps + _GUARD + 5 + math.ceil(math.log10(mag))


def _flog(q: Fraction) -> float:
    """log of a positive rational in floats, also beyond the float exponent range."""
    return math.log(q.numerator) - math.log(q.denominator)


def _float(q: Fraction) -> float:
    try:
        return float(q)
    except OverflowError:
        return math.inf if q > 0 else -math.inf


def _log_kappa(model: _ExactModel, f: _RegionForm, q: Fraction, c0: mpmath.mpf) -> mpmath.mpf:
    return c0 - (_log_mpf(f.det_lam) + _mpf(q)) / 2


def _log_const(model: _ExactModel) -> mpmath.mpf:
    return -(model.D * mpmath.log(2 * mpmath.pi) + _log_mpf(model.det_sx)
             + _log_mpf(model.det_sz)) / 2


def _nearest_point(f: _RegionForm, mu: Sequence[Fraction]) -> tuple[list[Fraction], Fraction] | None:
    """The point p of the region nearest to mu in the metric Lambda_w and r^2 =
    (p - mu)^T Lambda_w (p - mu), exactly; None when mu lies in the region.

    The convex QP min (z - mu)^T Lambda (z - mu) s.t. C z <= d is solved by enumerating
    active sets J of at most S linearly independent facets: z_J = mu - Sigma C_J^T lam with
    lam = (C_J Sigma C_J^T)^-1 (C_J mu - d_J). The optimum satisfies KKT with lam >= 0 on an
    independent active set (Caratheodory), so it is the feasible candidate with lam >= 0 of
    least r^2 = lam^T (C_J Sigma C_J^T) lam.
    """
    rows = f.Crows
    if all(_dot(c, mu) <= d for c, d in zip(rows, f.dvals)):
        return None
    S = len(mu)
    res = [_dot(c, mu) - d for c, d in zip(rows, f.dvals)]  # > 0: violated
    best: tuple[Fraction, list[Fraction]] | None = None
    for k in range(1, min(S, len(rows)) + 1):
        for J in itertools.combinations(range(len(rows)), k):
            K = [[_dot(rows[a], f.Sc[b]) for b in J] for a in J]
            try:
                Ki, _ = _inverse_det(K)
            except ZeroDivisionError:
                continue
            lam = _matvec(Ki, [res[a] for a in J])
            if any(v < 0 for v in lam):
                continue
            z = [mu[i] - sum((lam[q] * f.Sc[J[q]][i] for q in range(k)), Fraction(0))
                 for i in range(S)]
            if not all(_dot(c, z) <= d for c, d in zip(rows, f.dvals)):
                continue
            r2 = _dot(lam, _matvec(K, lam))
            if best is None or r2 < best[0]:
                best = (r2, z)
    if best is None:  # pragma: no cover - a non-empty region always has a nearest point
        raise RuntimeError("internal error: no nearest point of a non-empty region")
    return best[1], best[0]


def _log_bounds(f: _RegionForm, mu: Sequence[Fraction], log_kappa: mpmath.mpf, moments: bool
                ) -> tuple[mpmath.mpf, list[mpmath.mpf]]:
    """Upper bounds (log) of kappa Phi_w and of kappa int_w z_i^2 N (module notes).

    The region lies in the half-space H through its Lambda-nearest point p to mu with normal
    Lambda (p - mu) (a separating hyperplane; the best half-space bound), at Mahalanobis
    distance r from mu: Phi_w <= Phi(-r), int_w z_i^2 N <= int_H z_i^2 N (closed form).
    """
    S = len(mu)
    near = _nearest_point(f, mu)
    mum = [_mpf(m) for m in mu]
    if near is None:
        lphi = mpmath.mpf(0)
    else:
        p, r2 = near
        t = -mpmath.sqrt(_mpf(r2))
        lphi = mpmath.log(mpmath.ncdf(t))
    # a factor 2 on every bound: rigorous despite the rounding of Phi, phi and log kappa
    lphi += mpmath.log(2)
    if not moments:
        return log_kappa + lphi, []
    if near is None:
        T = [mum[i] ** 2 + _mpf(f.Sigma[i][i]) for i in range(S)]
    else:
        # along u = (p - mu)^T Lambda (z - mu) / r ~ N(0, 1), H = {u >= r};
        # z_i = mu_i + beta_i u + (independent), beta = (p - mu) / r
        r = -t
        beta = [_mpf(p[i] - mu[i]) / r for i in range(S)]
        Phi, phi = mpmath.ncdf(t), mpmath.npdf(t)
        # int_{u >= r} (mu_i + beta_i u)^2 phi(u) du + (Sigma_ii - beta_i^2) Phi(-r)
        terms = [((mum[i] ** 2 + _mpf(f.Sigma[i][i])) * Phi, 2 * mum[i] * beta[i] * phi,
                  beta[i] ** 2 * r * phi) for i in range(S)]
        T = [a + b + c for a, b, c in terms]
        # a positive integral: rounding can only matter below eps times its terms
        T = [max(T[i], mpmath.mpf(0)) + mpmath.eps * 16 * sum(abs(v) for v in terms[i])
             for i in range(S)]
    lT = [log_kappa + mpmath.log(2 * Ti) for Ti in T]  # factor 2: safety against rounding
    return log_kappa + lphi, lT


def _logsumexp(vals: Sequence[mpmath.mpf]) -> mpmath.mpf:
    vals = [v for v in vals if v != mpmath.ninf]
    if not vals:
        return mpmath.ninf
    m = max(vals)
    return m + mpmath.log(mpmath.fsum(mpmath.exp(v - m) for v in vals))


def _mat_obj(M: Sequence[Sequence[Any]]) -> Obj:
    out = np.empty((len(M), len(M[0]) if M else 0), dtype=object)
    for i, row in enumerate(M):
        for j, v in enumerate(row):
            out[i, j] = v
    return out


def _vec_obj(v: Sequence[Any]) -> Obj:
    out = np.empty(len(v), dtype=object)
    for i, a in enumerate(v):
        out[i] = a
    return out


# =========================================================================== log p(x)
def _log_marginal_point(model: _ExactModel, forms: list[_RegionForm], x: Sequence[Fraction],
                        dps: int, prune: bool) -> tuple[mpmath.mpf, list[bool]]:
    mus, qs = _point_state(model, forms, x)
    R = len(forms)
    wp = _working_dps(dps, qs, model)
    with mpmath.workdps(wp):
        c0 = _log_const(model)
        lk = [_log_kappa(model, f, q, c0) for f, q in zip(forms, qs)]
        lb = [_log_bounds(f, mu, k, False)[0] for f, mu, k in zip(forms, mus, lk)]
        order = sorted(range(R), key=lambda w: lb[w], reverse=True)
        # suffix log-sums of the bounds in this order
        suffix = [mpmath.ninf] * (R + 1)
        for k in range(R - 1, -1, -1):
            suffix[k] = _logsumexp([suffix[k + 1], lb[order[k]]])
        tol = -(dps + _GUARD) * mpmath.log(10)
        terms: list[mpmath.mpf] = []
        done = [False] * R
        acc = mpmath.ninf
        for k, w in enumerate(order):
            if prune and acc != mpmath.ninf and suffix[k] - acc <= tol:
                break
            f = forms[w]
            lm = log_gaussian_mass(f.C, f.d, _vec_obj(mus[w]), _mat_obj(f.Sigma),
                                   dps=dps + _INT_GUARD)
            terms.append(lk[w] + lm)
            acc = _logsumexp(terms)
            done[w] = True
        return acc, [not t for t in done]


def log_marginal(net: DGN, X: ArrayLike, *, dps: int = 30, partition: Partition | None = None,
                 prune: bool = True, verify: bool = False) -> Obj:
    """Exact log p(x) of every row of X (Theorem 1), in mpmath.

    Parameters
    ----------
    net : DGN
        Latent dimension S <= 4.
    X : array_like, shape (N, D) or (D,)
        Data points: floats (converted exactly), ints, Fractions or mpf.
    dps : int, default 30
        Decimal digits claimed: ``log p(x)`` to ``10**-dps`` absolute, i.e. ``p(x)`` to
        ``10**-dps`` relative.
    partition : Partition, optional
        ``verified_dgn.partition(net)`` (computed when not given; pass it to reuse it).
    prune : bool, default True
        Skip regions whose rigorous upper bound on ``kappa_w Phi_w`` is, summed, below
        ``10**-(dps + 10)`` of p(x) (module notes). ``False`` integrates every region.
    verify : bool, default False
        Recompute at ``dps + 15`` digits; raise :class:`PrecisionError` if the two differ by
        more than ``10**-dps``; the ``dps + 15`` values are returned.

    Returns
    -------
    log_px : ndarray of mpmath.mpf, shape (N,)
        Object array.

    Raises
    ------
    TypeError, ValueError
        Not a DGN, S > 4, X of the wrong shape or with NaN / infinite entries, a bad
        ``dps``, a float64 or foreign partition.
    PrecisionError
        With ``verify=True``, when the recomputation disagrees.

    Notes
    -----
    Cost: about 0.2-0.4 s per (point, integrated region) for S = 2 (the polygon integrals
    of :func:`verified_dgn.gaussian_moments`), milliseconds for S = 1. Pruning removes the
    regions many posterior standard deviations away: most of them at small noise, few when
    the posterior is as broad as the prior.
    """
    net = _check_net(net)
    dps = _check_dps(dps)
    pts = _check_points(X, net.data_dim, "X")
    partition = _check_partition(net, partition)
    model, forms = _forms(net, partition)
    out = _vec_obj([_log_marginal_point(model, forms, x, dps, bool(prune))[0] for x in pts])
    if not verify:
        return out
    hi = _vec_obj([_log_marginal_point(model, forms, x, dps + _VERIFY_EXTRA, bool(prune))[0]
                   for x in pts])
    with mpmath.workdps(dps + _VERIFY_EXTRA + 10):
        worst = max(abs(a - b) for a, b in zip(out, hi))
    if not worst <= mpmath.mpf(10) ** (-dps):
        raise PrecisionError(f"log_marginal at dps={dps} differs from dps={dps + _VERIFY_EXTRA} "
                             f"by {mpmath.nstr(worst, 3)} (claim: 1e-{dps} absolute)")
    return hi


# =========================================================================== posterior
@dataclass(frozen=True, eq=False)
class ExactPosterior:
    """The exact posterior p(z | x) of every data point: a mixture of truncated Gaussians.

    All arrays are numpy object arrays of ``mpmath.mpf`` (``pruned`` is boolean). Region
    order is the order of ``partition``.

    Attributes
    ----------
    log_px : ndarray, shape (N,)
        log p(x), to ``10**-dps`` absolute.
    log_e0 : ndarray, shape (N, R)
        log P(z in w | x) (``-inf`` for pruned regions).
    e0 : ndarray, shape (N, R)
        P(z in w | x); rows sum to 1 (to ``10**-dps``).
    e1 : ndarray, shape (N, R, S)
        E[z 1_w(z) | x].
    E2 : ndarray, shape (N, R, S, S)
        E[z z^T 1_w(z) | x].
    mean : ndarray, shape (N, S)
        E[z | x].
    cov : ndarray, shape (N, S, S)
        Cov[z | x].
    gauss_mean : ndarray, shape (N, R, S)
        mu_w(x), the mean of the (untruncated) Gaussian factor of region w.
    gauss_cov : ndarray, shape (R, S, S)
        Sigma_w.
    log_kappa : ndarray, shape (N, R)
        log kappa_w(x) = log N(x; b_w, Sigma_x + A_w Sigma_z A_w^T).
    pruned : ndarray of bool, shape (N, R)
        Regions not integrated (their e0, e1, E2 are 0).
    e0_bound : ndarray, shape (N, R)
        e0 for integrated regions; a rigorous upper bound of e0 for pruned ones.
    partition : Partition
    dps : int
        Digits claimed (module notes).
    """

    log_px: Obj
    log_e0: Obj
    e0: Obj
    e1: Obj
    E2: Obj
    mean: Obj
    cov: Obj
    gauss_mean: Obj
    gauss_cov: Obj
    log_kappa: Obj
    pruned: NDArray[np.bool_]
    e0_bound: Obj
    partition: Partition
    dps: int
    _forms: list[_RegionForm] = field(repr=False, default_factory=list)
    _mu_exact: list[list[list[Fraction]]] = field(repr=False, default_factory=list)

    @property
    def n_points(self) -> int:
        return int(self.log_px.shape[0])

    @property
    def n_regions(self) -> int:
        return int(self.e0.shape[1])

    @property
    def region_mean(self) -> Obj:
        """E[z | x, z in w] = e1 / e0, shape (N, R, S) (0 where e0 = 0)."""
        N, R, S = self.e1.shape
        out = np.empty((N, R, S), dtype=object)
        for n in range(N):
            for w in range(R):
                e0 = self.e0[n, w]
                for i in range(S):
                    out[n, w, i] = self.e1[n, w, i] / e0 if e0 > 0 else mpmath.mpf(0)
        return out

    def log_density(self, Z: ArrayLike, n: int = 0, dps: int | None = None) -> Obj:
        """log p(z | x_n) by Prop. 2: ``log kappa_w + log N(z; mu_w, Sigma_w) - log p(x)``
        for the region w containing z.

        Parameters
        ----------
        Z : array_like, shape (M, S) or (S,)
            Latent points (floats, converted exactly, or Fractions).
        n : int
            Which data point.
        dps : int, optional
            Working digits (default: this posterior's ``dps``).

        Returns
        -------
        ndarray of mpf, shape (M,)
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < self.n_points:
            raise ValueError(f"n must be an index in [0, {self.n_points}), got {n!r}")
        S = self.partition.net.latent_dim
        pts = _check_points(Z, S, "Z")
        digits = _check_dps(dps) if dps is not None else self.dps
        out = []
        with mpmath.workdps(digits + _GUARD + 5):
            l2pi = mpmath.log(2 * mpmath.pi)
            for z in pts:
                w = _locate_exact(self.partition, z)
                f = self._forms[w]
                # log N(z; mu_w, Sigma_w): z - mu_w exactly (no cancellation when the
                # posterior is narrow), the quadratic form at the working precision
                dz = [_mpf(a - m) for a, m in zip(z, self._mu_exact[n][w])]
                quad = mpmath.fsum(dz[i] * _mpf(f.Lam[i][j]) * dz[j]
                                   for i in range(S) for j in range(S))
                lnorm = -(S * l2pi - _log_mpf(f.det_lam)) / 2
                out.append(self.log_kappa[n, w] + lnorm - quad / 2 - self.log_px[n])
        return _vec_obj(out)

    def __repr__(self) -> str:
        return (f"ExactPosterior({self.n_points} points, {self.n_regions} regions, latent "
                f"dimension {self.mean.shape[1]}, {int(self.pruned.sum())} pruned pairs, "
                f"dps={self.dps})")


def _locate_exact(partition: Partition, z: Sequence[Fraction]) -> int:
    """Index of a closed region containing z, decided exactly."""
    zf = np.array([float(v) for v in z])
    try:
        cand = int(partition.locate(zf[None, :])[0])
    except RuntimeError:
        cand = -1
    zo = _vec_obj(list(z))
    if cand >= 0 and partition[cand].contains(zo):
        return cand
    for i, r in enumerate(partition):
        if r.contains(zo):
            return i
    raise RuntimeError(f"point {zf} lies in no region of the partition")  # pragma: no cover


@dataclass
class _PointPosterior:
    log_px: mpmath.mpf
    log_e0: list[mpmath.mpf]
    e0: list[mpmath.mpf]
    e1: list[list[mpmath.mpf]]
    E2: list[list[list[mpmath.mpf]]]
    mean: list[mpmath.mpf]
    cov: list[list[mpmath.mpf]]
    mu: list[list[Fraction]]
    log_kappa: list[mpmath.mpf]
    pruned: list[bool]
    e0_bound: list[mpmath.mpf]


def _cancel_digits(E2: Sequence[Sequence[mpmath.mpf]], cov: Sequence[Sequence[mpmath.mpf]]) -> float:
    """Digits lost forming cov = E2 - mean mean^T: max_i log10(E2_ii / cov_ii)."""
    lost = 0.0
    for i in range(len(E2)):
        if cov[i][i] <= 0:
            return math.inf
        lost = max(lost, float(mpmath.log10(E2[i][i] / cov[i][i])))
    return lost


def _posterior_point(model: _ExactModel, forms: list[_RegionForm], x: Sequence[Fraction],
                     dps: int, prune: bool, loss: float | None = None) -> _PointPosterior:
    S, R = model.S, len(forms)
    mus, qs = _point_state(model, forms, x)
    wp0 = _working_dps(dps, qs, model)
    with mpmath.workdps(wp0):
        c0 = _log_const(model)
        lk = [_log_kappa(model, f, q, c0) for f, q in zip(forms, qs)]
        lb0 = [_log_bounds(f, mu, k, False)[0] for f, mu, k in zip(forms, mus, lk)]
        order = sorted(range(R), key=lambda w: lb0[w], reverse=True)
        if loss is None:
            # digits cov = E2 - mean mean^T will cancel, predicted from the dominant region
            f, mu = forms[order[0]], mus[order[0]]
            loss = max([0.0] + [math.log10(1.0 + float(mu[i]) ** 2 / float(f.Sigma[i][i]))
                                for i in range(S)])
    q_int = dps + _INT_GUARD + math.ceil(loss)  # digits of the moment integrals
    q = dps + _GUARD + math.ceil(loss)  # digits of the pruning threshold
    wp = max(wp0, q + 10)
    with mpmath.workdps(wp):
        c0 = _log_const(model)
        lk = [_log_kappa(model, f, qq, c0) for f, qq in zip(forms, qs)]
        bounds = [_log_bounds(f, mu, k, True) for f, mu, k in zip(forms, mus, lk)]
        lb0 = [b[0] for b in bounds]
        lT = [b[1] for b in bounds]
        # suffix sums (log) of the bounds in integration order: e0-type, e1_i and E2_ii
        suf0 = [mpmath.ninf] * (R + 1)
        suf1 = [[mpmath.ninf] * S for _ in range(R + 1)]
        suf2 = [[mpmath.ninf] * S for _ in range(R + 1)]
        for k in range(R - 1, -1, -1):
            w = order[k]
            suf0[k] = _logsumexp([suf0[k + 1], lb0[w]])
            for i in range(S):
                suf1[k][i] = _logsumexp([suf1[k + 1][i], (lb0[w] + lT[w][i]) / 2])
                suf2[k][i] = _logsumexp([suf2[k + 1][i], lT[w][i]])
        ltol = -q * mpmath.log(10)
        lterm0: dict[int, mpmath.mpf] = {}
        raw: dict[int, tuple[mpmath.mpf, list[mpmath.mpf], list[list[mpmath.mpf]]]] = {}
        s0 = mpmath.mpf(0)
        s2 = [mpmath.mpf(0)] * S
        for k, w in enumerate(order):
            if prune and s0 > 0 and _negligible(suf0[k], suf1[k], suf2[k], s0, s2, ltol):
                break
            f = forms[w]
            m0, m1, M2 = gaussian_moments(f.C, f.d, _vec_obj(mus[w]), _mat_obj(f.Sigma), dps=q_int)
            if m0 <= 0:
                lterm0[w] = mpmath.ninf
                raw[w] = (mpmath.mpf(0), [mpmath.mpf(0)] * S, [[mpmath.mpf(0)] * S for _ in range(S)])
                continue
            kap = mpmath.exp(lk[w])
            lterm0[w] = lk[w] + mpmath.log(m0)
            raw[w] = (m0, list(m1), [list(r) for r in M2])
            s0 += kap * m0
            for i in range(S):
                s2[i] += kap * M2[i][i]
        log_px = _logsumexp(list(lterm0.values()))
        zero = mpmath.mpf(0)
        e0: list[mpmath.mpf] = []
        le0: list[mpmath.mpf] = []
        e1: list[list[mpmath.mpf]] = []
        E2: list[list[list[mpmath.mpf]]] = []
        e0b: list[mpmath.mpf] = []
        pruned: list[bool] = []
        for w in range(R):
            if w in raw:
                _, r1, r2 = raw[w]
                fac = mpmath.exp(lk[w] - log_px)
                le = lterm0[w] - log_px
                e0.append(mpmath.exp(le) if le != mpmath.ninf else zero)
                le0.append(le)
                e1.append([fac * v for v in r1])
                E2.append([[fac * v for v in row] for row in r2])
                e0b.append(e0[-1])
                pruned.append(False)
            else:
                e0.append(zero)
                le0.append(mpmath.ninf)
                e1.append([zero] * S)
                E2.append([[zero] * S for _ in range(S)])
                e0b.append(mpmath.exp(lb0[w] - log_px))
                pruned.append(True)
        mean = [mpmath.fsum(e1[w][i] for w in range(R)) for i in range(S)]
        Et = [[mpmath.fsum(E2[w][i][j] for w in range(R)) for j in range(S)] for i in range(S)]
        cov = [[Et[i][j] - mean[i] * mean[j] for j in range(S)] for i in range(S)]
        for i in range(S):
            for j in range(i):
                cov[i][j] = cov[j][i] = (cov[i][j] + cov[j][i]) / 2
        lost = _cancel_digits(Et, cov)
    if lost > loss + _INT_GUARD - 1:
        if not math.isfinite(lost) or lost > _MAX_DPS:
            raise PrecisionError("the posterior covariance cancels to zero at "
                                 f"{q} digits; it is below the working precision")
        return _posterior_point(model, forms, x, dps, prune, loss=lost + 2)
    return _PointPosterior(log_px, le0, e0, e1, E2, mean, cov, mus, lk, pruned, e0b)


def _negligible(l0: mpmath.mpf, l1: list[mpmath.mpf], l2: list[mpmath.mpf], s0: mpmath.mpf,
                s2: list[mpmath.mpf], ltol: mpmath.mpf) -> bool:
    """Whether the remaining regions' bounds are below 10^-q in the claim scales.

    ``s0 <= p`` and ``s2_ii / (s0 + rem0) <= E[z_i^2 | x]`` from what has been integrated;
    the remaining e1_i is below ``exp(l1_i) / s0`` and E2_ii below ``exp(l2_i) / s0``.
    """
    ls0 = mpmath.log(s0)
    if l0 - ls0 > ltol:
        return False
    lp_hi = _logsumexp([ls0, l0])
    for i in range(len(l1)):
        if s2[i] <= 0:
            return False
        le2 = mpmath.log(s2[i]) - lp_hi  # log lower bound of E[z_i^2 | x]
        if l1[i] - ls0 > ltol + le2 / 2 or l2[i] - ls0 > ltol + le2:
            return False
    return True


def _stack_posterior(res: list[_PointPosterior], partition: Partition, forms: list[_RegionForm],
                     dps: int) -> ExactPosterior:
    N, R = len(res), len(partition)
    S = partition.net.latent_dim

    def arr(shape: tuple[int, ...], get: Any) -> Obj:
        out = np.empty(shape, dtype=object)
        for idx in np.ndindex(shape):
            out[idx] = get(*idx)
        return out

    with mpmath.workdps(dps + _GUARD + 20):
        gauss_cov = arr((R, S, S), lambda w, i, j: _mpf(forms[w].Sigma[i][j]))
        gauss_mean = arr((N, R, S), lambda n, w, i: _mpf(res[n].mu[w][i]))
    return ExactPosterior(
        log_px=_vec_obj([r.log_px for r in res]),
        log_e0=arr((N, R), lambda n, w: res[n].log_e0[w]),
        e0=arr((N, R), lambda n, w: res[n].e0[w]),
        e1=arr((N, R, S), lambda n, w, i: res[n].e1[w][i]),
        E2=arr((N, R, S, S), lambda n, w, i, j: res[n].E2[w][i][j]),
        mean=arr((N, S), lambda n, i: res[n].mean[i]),
        cov=arr((N, S, S), lambda n, i, j: res[n].cov[i][j]),
        gauss_mean=gauss_mean,
        gauss_cov=gauss_cov,
        log_kappa=arr((N, R), lambda n, w: res[n].log_kappa[w]),
        pruned=np.array([r.pruned for r in res], dtype=bool).reshape(N, R),
        e0_bound=arr((N, R), lambda n, w: res[n].e0_bound[w]),
        partition=partition,
        dps=dps,
        _forms=forms,
        _mu_exact=[r.mu for r in res],
    )


def posterior_discrepancy(a: ExactPosterior, b: ExactPosterior) -> float:
    """Largest difference of two posteriors of the same points, in the scales of the claim.

    ``max(|d log_px|, |d e0|, |d mean_i| / sqrt(E2_ii), |d e1_wi| / sqrt(E2_ii),
    |d cov_ij| / sqrt(cov_ii cov_jj), |d E2_wij| / sqrt(cov_ii cov_jj))`` with scales from
    ``b`` (``E2_ii = E[z_i^2 | x]``).
    """
    N, R, S = b.e1.shape
    with mpmath.workdps(max(a.dps, b.dps) + 30):
        r = mpmath.mpf(0)
        for n in range(N):
            r = max(r, abs(a.log_px[n] - b.log_px[n]))
            e2 = [b.cov[n, i, i] + b.mean[n, i] ** 2 for i in range(S)]
            for w in range(R):
                r = max(r, abs(a.e0[n, w] - b.e0[n, w]))
                for i in range(S):
                    r = max(r, abs(a.e1[n, w, i] - b.e1[n, w, i]) / mpmath.sqrt(e2[i]))
                    for j in range(S):
                        sc = mpmath.sqrt(b.cov[n, i, i] * b.cov[n, j, j])
                        r = max(r, abs(a.E2[n, w, i, j] - b.E2[n, w, i, j]) / sc)
            for i in range(S):
                r = max(r, abs(a.mean[n, i] - b.mean[n, i]) / mpmath.sqrt(e2[i]))
                for j in range(S):
                    sc = mpmath.sqrt(b.cov[n, i, i] * b.cov[n, j, j])
                    r = max(r, abs(a.cov[n, i, j] - b.cov[n, i, j]) / sc)
        return float(r)


def posterior(net: DGN, X: ArrayLike, *, dps: int = 30, partition: Partition | None = None,
              prune: bool = True, verify: bool = False) -> ExactPosterior:
    """The exact posterior of every row of X: log p(x), region weights and moments, in mpmath.

    Parameters
    ----------
    net : DGN
        Latent dimension S <= 4.
    X : array_like, shape (N, D) or (D,)
        Data points: floats (converted exactly), ints, Fractions or mpf.
    dps : int, default 30
        Digits claimed (module notes): log p(x) and e0 to ``10**-dps`` absolute, the mean in
        the scale ``sqrt(E[z_i^2 | x])``, the covariance in the scale ``sqrt(cov_ii cov_jj)``.
    partition : Partition, optional
        ``verified_dgn.partition(net)`` (computed when not given).
    prune : bool, default True
        Skip regions whose rigorous bounds are negligible at ``dps + 10`` digits (module
        notes); ``False`` integrates every region.
    verify : bool, default False
        Recompute at ``dps + 15`` digits and raise :class:`PrecisionError` when the two
        differ beyond the claim; the ``dps + 15`` result is returned.

    Returns
    -------
    ExactPosterior
        log_px (N,), log_e0, e0 (N, R), e1 (N, R, S), E2 (N, R, S, S), mean (N, S),
        cov (N, S, S), gauss_mean (N, R, S), gauss_cov (R, S, S), log_kappa (N, R),
        pruned, e0_bound (N, R), partition, dps.

    Raises
    ------
    TypeError, ValueError
        As :func:`log_marginal`.
    PrecisionError
        With ``verify=True``, when the recomputation disagrees.
    """
    net = _check_net(net)
    dps = _check_dps(dps)
    pts = _check_points(X, net.data_dim, "X")
    partition = _check_partition(net, partition)
    model, forms = _forms(net, partition)
    res = [_posterior_point(model, forms, x, dps, bool(prune)) for x in pts]
    out = _stack_posterior(res, partition, forms, dps)
    if not verify:
        return out
    hi_res = [_posterior_point(model, forms, x, dps + _VERIFY_EXTRA, bool(prune)) for x in pts]
    hi = _stack_posterior(hi_res, partition, forms, dps + _VERIFY_EXTRA)
    disc = posterior_discrepancy(out, hi)
    if not disc <= 10.0 ** (-dps):
        raise PrecisionError(f"posterior at dps={dps} differs from dps={dps + _VERIFY_EXTRA} by "
                             f"{disc:.3g} (claim: 1e-{dps} in the scales of the module notes)")
    return hi
