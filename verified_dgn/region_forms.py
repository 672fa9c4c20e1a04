"""Region forms: what the exact marginal and posterior need of each region, exactly.

For every region w of the exact partition (docs/DESIGN.md §2.3), the parts of Theorem 1 that
do not depend on x, in ``Fraction`` arithmetic: ``Lambda_w = Sigma_z^-1 + A_w^T Sigma_x^-1
A_w``, ``Sigma_w = Lambda_w^-1``, ``det Lambda_w``, the facets and ``Sigma_w c_j``; per point
x, ``mu_w(x)`` and the quadratic form ``Q_w(x)`` (Woodbury, no D x D matrix), and
``log kappa_w(x)`` rounded once in mpmath (:mod:`verified_dgn.distributions`, module notes).
Also the argument checks of the public functions of :mod:`verified_dgn.distributions` and
:mod:`verified_dgn.em`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data import MAX_DATA_ABS
from dgn_core.exceptions import DataError
from dgn_core.model import DGN
from dgn_core.regions import Partition
from dgn_core.validation import check_net, real_array

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
    """The shared net check, and the latent dimensions the exact integrals handle."""
    net = check_net(net)
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
            raise DataError(f"{name} contains NaN or infinite values")
        return Fraction(v)
    if isinstance(v, mpmath.mpf):
        if not mpmath.isfinite(v):
            raise DataError(f"{name} contains NaN or infinite values")
        sign, man, exp, _ = v._mpf_  # (man_exp drops the sign)
        q = Fraction(int(man)) * Fraction(2) ** int(exp)
        return -q if sign else q
    raise TypeError(f"{name} must hold ints, floats, Fractions or mpf, got {type(v).__name__}")


def _check_points(X: ArrayLike, dim: int, name: str) -> list[list[Fraction]]:
    """Rows of X as exact Fractions; X of shape (N, dim) or (dim,).

    :class:`~dgn_core.exceptions.DataError` (a ValueError) for a wrong shape, no rows, NaN
    or infinite entries, as ``dgn_core.data.check_data``; TypeError for entries that are
    not numbers.
    """
    if isinstance(X, np.ndarray) and X.dtype == object:
        arr = X
    else:
        try:
            arr = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a real array: {exc}") from None
        # complex, boolean and string entries: the fast path's error (dgn_core.data.check_data)
        real_array(arr, name, DataError, copy=False)
    if arr.ndim == 1:
        if dim == 1 and arr.shape[0] != 1:
            arr = arr[:, None]
        else:
            arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise DataError(f"{name} must have shape (N, {dim}), got shape {np.shape(X)}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty (0 points)")
    rows = [[_to_fraction(v, name) for v in row] for row in arr.tolist()]
    # the same limit as the fast path: pruning and the region forms square the data in float64
    big = max(abs(v) for row in rows for v in row)
    if big > MAX_DATA_ABS:
        raise DataError(f"{name} has values of magnitude up to {float(big):.3g}: too large for "
                        f"the float64 parts of the computation (the limit is {MAX_DATA_ABS:.0e}, "
                        "as in fastpath); rescale the data, e.g. divide by its standard deviation")
    return rows


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


def _log_kappas(model: _ExactModel, forms: list[_RegionForm], qs: Sequence[Fraction]
                ) -> list[mpmath.mpf]:
    """log kappa_w(x) of every region at the current precision, from the Q_w(x) of x."""
    c0 = _log_const(model)
    return [_log_kappa(model, f, q, c0) for f, q in zip(forms, qs)]



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

