"""Orthant probabilities: precision, arguments, Phi_1, Phi_2 and the precision-raising driver.

Shared by the kernels of :mod:`verified_dgn.orthant_trivariate` and
:mod:`verified_dgn.orthant_quadrivariate` and by :mod:`verified_dgn.orthant`, the public
functions (docs/DESIGN.md §2.4):

* working precision: the digits requested plus ``_GUARD`` guard digits, rounded up to a
  multiple of 8 (so that cached quadrature nodes are reused), plus :func:`_scale_digits`,
  the digits of the largest exponent a kernel evaluates (far tails, near-singular
  correlations);
* conversion of ints, floats, Fractions, mpf and decimal strings to mpf, and the checks of
  the public arguments (the covariance by the shared rule, :mod:`verified_dgn.covariance`);
* small dense algebra in mpf (Cholesky, solves, Gaussian conditioning, standardisation);
* the kernels of dimension 1 and 2, on standardised bounds ``h`` and correlation ``rho``:
  ``Phi_1 = Phi(h)`` (``mpmath.ncdf``, relative in the far tail); for ``rho >= 0``
  ``Phi_2 = Phi(h1) Phi(h2) + (1/2pi) int_0^{asin rho} exp(-(h1^2 + h2^2 - 2 h1 h2 sin t)
  / (2 cos^2 t)) dt`` (both terms positive; the interval cut into ladders of pieces
  about each maximiser, as the integrand concentrates within ``1/(h1 h2)`` of one); for
  ``rho < 0`` the same formula when it loses at most two digits, otherwise (and at once
  when both bounds are negative and ``-rho h1 h2 > 1``) the conditioning integral
  ``int_{-inf}^{h1} phi(x) Phi((h2 - rho x)/sqrt(1 - rho^2)) dx``;
* :func:`_phi_acc`, the driver: where a formula subtracts (a Plackett path with a negative
  correlation increment), the digits lost are measured (sum of the absolute values of the
  terms over the result) and the evaluation is repeated at a precision raised by that many
  digits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.exceptions import QuadratureError

from .covariance import check_covariance_rule
from .mp_quadrature import _gauss_phi_product, _ladder, _quad

mp = mpmath.mp

#: extra decimal digits of working precision above the digits a quadrature must deliver
_GUARD = 8
#: the largest dimension handled
_KMAX = 4
#: give up raising the precision beyond this many digits
_MAX_DIGITS = 20000


def _wdps(digits: int) -> int:
    """Working precision for a result of ``digits`` digits: guard digits, rounded up to a
    multiple of 8 so that cached quadrature nodes are shared between nearby requests."""
    return -(-(digits + _GUARD) // 8) * 8



# --------------------------------------------------------------------------- conversions
def to_mpf(x: Any) -> mpmath.mpf:
    """Convert an int, float, Fraction, numpy scalar, mpf or decimal string to mpf.

    The conversion is exact for ints and floats and correctly rounded at the current
    working precision for Fractions (so it must be called inside the precision context
    the value is used in).
    """
    if isinstance(x, mpmath.mpf):
        return +x  # rounds to the current precision
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / x.denominator
    if isinstance(x, (bool, np.bool_)):
        raise TypeError("booleans are not accepted as numbers")
    if isinstance(x, (int, np.integer)):
        return mpmath.mpf(int(x))
    if isinstance(x, (float, np.floating)):
        return mpmath.mpf(float(x))
    if isinstance(x, str):
        return mpmath.mpf(x)
    raise TypeError(f"cannot convert {type(x).__name__} to an mpmath number")


def _is_nan(x: Any) -> bool:
    if isinstance(x, mpmath.mpf):
        return bool(mpmath.isnan(x))
    if isinstance(x, (float, np.floating)):
        return math.isnan(x)
    return False


def _is_inf(x: Any) -> bool:
    if isinstance(x, mpmath.mpf):
        return bool(mpmath.isinf(x))
    if isinstance(x, (float, np.floating)):
        return math.isinf(x)
    return False


def _as_object_array(a: Any, name: str, ndim: int, finite: bool = False) -> NDArray[Any]:
    """Object array of the entries of ``a`` (numbers or decimal strings), NaN refused;
    ``finite``: infinities refused too."""
    if isinstance(a, mpmath.matrix):
        a = [[a[i, j] for j in range(a.cols)] for i in range(a.rows)]
    src = a if isinstance(a, np.ndarray) else np.asarray(a, dtype=object)
    if src.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {src.shape}")
    arr = np.empty(src.shape, dtype=object)
    for idx in np.ndindex(src.shape):
        v = src[idx]
        if isinstance(v, np.generic):
            v = v.item()
        if not isinstance(v, (int, float, Fraction, mpmath.mpf, str)) or isinstance(v, bool):
            raise TypeError(f"{name} entries must be real numbers, got {type(v).__name__}")
        if finite and (_is_nan(v) or _is_inf(v)):
            raise ValueError(f"{name} contains NaN or infinite entries")
        if _is_nan(v):
            raise ValueError(f"{name} contains NaN values")
        arr[idx] = v
    return arr


def _check_orthant_args(b: ArrayLike, cov: ArrayLike, dps: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Validate ``(b, cov, dps)``; returns object arrays of the original entries.

    ``cov`` is checked here for its shape and finiteness, and by the shared covariance rule
    in :func:`_convert_cov`.
    """
    if not isinstance(dps, (int, np.integer)) or isinstance(dps, bool) or dps < 1:
        raise ValueError(f"dps must be a positive integer, got {dps!r}")
    if dps > _MAX_DIGITS:
        raise ValueError(f"dps = {dps} exceeds the limit of {_MAX_DIGITS} digits")
    bb = _as_object_array(b, "b", 1)
    k = bb.shape[0]
    if k > _KMAX:
        raise ValueError(f"orthants of dimension up to {_KMAX} are supported, got len(b) = {k}")
    KK = _as_object_array(cov, "cov", 2, finite=True)
    if KK.shape != (k, k):
        raise ValueError(f"cov must have shape ({k}, {k}) to match len(b) = {k}, got {KK.shape}")
    return bb, KK


def _convert_cov(KK: NDArray[Any]) -> list[list[mpmath.mpf]]:
    """mpf covariance at the current precision, symmetrised, after the shared covariance rule
    (:mod:`verified_dgn.covariance`: float input by ``check_covariance``, other input exactly,
    on the mpf values of its entries)."""
    k = KK.shape[0]
    K = [[to_mpf(KK[i, j]) for j in range(k)] for i in range(k)]
    check_covariance_rule(KK, "cov", values=K)
    for i in range(k):
        for j in range(i):
            a, c = K[i][j], K[j][i]
            K[i][j] = K[j][i] = (a + c) / 2
    _cholesky(K)  # a guard: the rule above has established positive definiteness
    return K


# --------------------------------------------------------------------------- small dense algebra
def _cholesky(K: list[list[mpmath.mpf]]) -> list[list[mpmath.mpf]]:
    k = len(K)
    L = [[mpmath.mpf(0)] * k for _ in range(k)]
    for j in range(k):
        s = K[j][j] - sum(L[j][p] ** 2 for p in range(j))
        if not s > 0:
            raise ValueError(
                "cov is singular or numerically singular: pivot "
                f"{j} of its Cholesky factorisation is {mpmath.nstr(s, 5)} at {mp.dps} digits")
        L[j][j] = mpmath.sqrt(s)
        for i in range(j + 1, k):
            L[i][j] = (K[i][j] - sum(L[i][p] * L[j][p] for p in range(j))) / L[j][j]
    return L


def _solve(A: list[list[Any]], B: list[list[Any]]) -> list[list[Any]]:
    """``A^{-1} B`` by Gaussian elimination with partial pivoting (A small, nonsingular)."""
    n = len(A)
    m = len(B[0]) if B else 0
    M = [list(A[i]) + list(B[i]) for i in range(n)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(M[r][c]))
        if M[p][c] == 0:
            raise ZeroDivisionError("singular matrix")
        M[c], M[p] = M[p], M[c]
        piv = M[c][c]
        for r in range(n):
            if r != c and M[r][c] != 0:
                f = M[r][c] / piv
                M[r] = [x - f * y for x, y in zip(M[r], M[c])]
    return [[M[i][n + j] / M[i][i] for j in range(m)] for i in range(n)]


def _sub(K: list[list[Any]], rows: Sequence[int], cols: Sequence[int]) -> list[list[Any]]:
    return [[K[i][j] for j in cols] for i in rows]


def _conditional(b: Sequence[Any], K: list[list[Any]], fix: Sequence[int]
                 ) -> tuple[list[Any], list[list[Any]], list[int]]:
    """Bounds and covariance of the other coordinates given ``y_fix = b_fix``.

    Returns ``(b_rest - E[y_rest | y_fix = b_fix], Cov[y_rest | y_fix], rest)``.
    """
    k = len(b)
    rest = [i for i in range(k) if i not in fix]
    if not rest:
        return [], [], []
    Kff = _sub(K, fix, fix)
    Kfr = _sub(K, fix, rest)
    X = _solve(Kff, Kfr)  # Kff^{-1} Kfr, shape (f, r)
    bf = [b[i] for i in fix]
    mean = [sum(X[p][c] * bf[p] for p in range(len(fix))) for c in range(len(rest))]
    cov = [[K[rest[r]][rest[c]] - sum(Kfr[p][r] * X[p][c] for p in range(len(fix)))
            for c in range(len(rest))] for r in range(len(rest))]
    return [b[rest[c]] - mean[c] for c in range(len(rest))], cov, rest


def _standardise(b: Sequence[Any], K: list[list[Any]]) -> tuple[list[Any], list[list[Any]]]:
    sd = [mpmath.sqrt(K[i][i]) for i in range(len(b))]
    h = [b[i] / sd[i] for i in range(len(b))]
    R = [[mpmath.mpf(1) if i == j else K[i][j] / (sd[i] * sd[j]) for j in range(len(b))]
         for i in range(len(b))]
    return h, R



# --------------------------------------------------------------------------- Phi_k kernels
# All kernels take standardised finite bounds h (list of mpf) and a correlation matrix R
# (list of lists of mpf) and return (value, magnitude): value = the probability computed at
# the current precision to `digits` relative digits *of each of its terms*, magnitude = the
# sum of the absolute values of the terms (value / magnitude measures cancellation).

def _phi1(h: mpmath.mpf) -> mpmath.mpf:
    return mpmath.ncdf(h)


def _bvn_asin_integral(h: mpmath.mpf, k: mpmath.mpf, t0: mpmath.mpf, t1: mpmath.mpf,
                       digits: int, extra: Callable[[mpmath.mpf], mpmath.mpf] | None = None
                       ) -> mpmath.mpf:
    """``(1/2pi) int_{t0}^{t1} exp(-(h^2+k^2-2hk sin t)/(2 cos^2 t)) extra(sin t) dt``, t0 < t1."""
    hh = h * h + k * k
    hk2 = 2 * h * k

    def g(t: mpmath.mpf) -> mpmath.mpf:
        s = mpmath.sin(t)
        c2 = 1 - s * s
        if c2 <= 0:
            return mpmath.mpf(0)
        v = mpmath.exp(-(hh - hk2 * s) / (2 * c2))
        if extra is not None and v != 0:
            v *= extra(s)
        return v

    def rate(t: mpmath.mpf) -> mpmath.mpf:
        # 1 / decay length at t of exp(E), E = -(hh - hk2 u)/(2 D), u = sin t, D = 1 - u^2:
        # |E_t| + sqrt|E_tt| + 1, with dE/du = n/D^2, n = hk (1 + u^2) - u hh,
        # d2E/du2 = (n' D + 4 u n)/D^3, n' = 2 hk u - hh
        u = mpmath.sin(t)
        D = (1 - u) * (1 + u)
        n = h * k * (1 + u * u) - u * hh
        e1 = n / D ** 2
        e2 = ((hk2 * u - hh) * D + 4 * u * n) / D ** 3
        return abs(e1 * mpmath.cos(t)) + mpmath.sqrt(abs(e2 * D - e1 * u)) + 1

    marks = [(t0, 1), (t1, -1)]
    if h * k > 0:
        # interior maximiser of the exponent at sin t = min(h/k, k/h)
        r = min(h / k, k / h)
        ts = mpmath.asin(r)
        if t0 < ts < t1:
            marks += [(ts, 1), (ts, -1)]
    # far in the tails (|h|, |k| large) the integrand is concentrated within 1/(h k) of
    # a maximiser: ladders of cuts at growing distances from each candidate (the ends
    # and ts) keep every piece within a bounded number of decay lengths
    cuts = {t0, t1}
    for p, sgn in marks:
        cuts.add(p)
        ell = 1 / rate(p)
        cuts.update(x for x in _ladder(p, sgn * ell, t1 - t0) if t0 < x < t1)
    return _quad(g, sorted(cuts), digits) / (2 * mpmath.pi)


def _phi2(h: mpmath.mpf, k: mpmath.mpf, rho: mpmath.mpf, digits: int
          ) -> tuple[mpmath.mpf, mpmath.mpf]:
    if rho == 0:
        v = mpmath.ncdf(h) * mpmath.ncdf(k)
        return v, v
    base = mpmath.ncdf(h) * mpmath.ncdf(k)
    if rho > 0:
        v = base + _bvn_asin_integral(h, k, mpmath.mpf(0), mpmath.asin(rho), digits)
        return v, v
    # rho < 0: P <= Phi(h)Phi(k); the asin formula subtracts, about rho h k nats when
    # both bounds are negative (P ~ Phi(h)Phi(k) exp(rho h k) for small rho): there the
    # conditioning integral is used at once. Otherwise the asin formula is tried and kept
    # when it loses at most two digits.
    if not (h < 0 and k < 0 and -rho * h * k > 1):
        I = _bvn_asin_integral(h, k, mpmath.asin(rho), mpmath.mpf(0), digits)
        v = base - I
        if v > 0 and (base + I) <= 100 * v:
            return v, base + I
    # conditioning integral: positive integrand, no cancellation
    if k < h:
        h, k = k, h
    s = mpmath.sqrt((1 - rho) * (1 + rho))
    v = _gauss_phi_product(h, [k / s], [-rho / s], digits)
    return v, v



def _phi(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
         ) -> tuple[mpmath.mpf, mpmath.mpf]:
    """(value, magnitude) of P(Y <= h), Y ~ N(0, R) standardised; infinities handled here."""
    if any(x == -mpmath.inf for x in h):
        return mpmath.mpf(0), mpmath.mpf(0)
    keep = [i for i, x in enumerate(h) if x != mpmath.inf]
    h = [h[i] for i in keep]
    R = _sub(R, keep, keep)
    k = len(h)
    if k == 0:
        return mpmath.mpf(1), mpmath.mpf(1)
    if k == 1:
        v = _phi1(h[0])
        return v, v
    if k == 2:
        return _phi2(h[0], h[1], R[0][1], digits)
    # the kernels of dimension 3 and 4 evaluate lower-dimensional orthants through this
    # driver, so their modules import this one and are imported here, when first needed
    if k == 3:
        from .orthant_trivariate import _phi3

        return _phi3(h, R, digits)
    if k == 4:
        from .orthant_quadrivariate import _phi4

        return _phi4(h, R, digits)
    raise ValueError(f"dimension {k} > {_KMAX}")


def _lost_digits(value: mpmath.mpf, magnitude: mpmath.mpf) -> float:
    if magnitude == 0:
        return 0.0
    if value <= 0:
        return math.inf
    return max(0.0, float(mpmath.log10(magnitude / value)))


def _scale_digits(b: Sequence[Any], K: list[list[Any]]) -> int:
    """Extra working digits for the exponents of a far-tail or near-singular orthant.

    The kernels evaluate ``exp(E)`` with exponents ``E`` (and subtract bounds) of size up to
    about ``max_i b_i^2 / K_ii`` over the smallest conditional variance ``1 / (R^-1)_ii`` of
    the correlation matrix: at ``p`` working digits they carry an absolute error of
    ``|E| 10**-p``, a relative error of the result. So ``log10(1 + |E|)`` digits are added
    (a bound of 1e6 standard deviations costs 13 digits; without them an integrand
    of ``exp(-4.6e13)`` was noise in its 43rd digit and the quadrature could not converge).
    Estimated at 15 digits: only its logarithm matters.
    """
    finite = [i for i, x in enumerate(b) if not _is_inf(x)]
    if not finite:
        return 0
    with mpmath.workdps(15):
        bb = [to_mpf(b[i]) for i in finite]
        KK = [[to_mpf(K[i][j]) for j in finite] for i in finite]
        m = max(x * x / KK[i][i] for i, x in enumerate(bb))
        lam = mpmath.mpf(1)
        if len(finite) > 1:
            sd = [mpmath.sqrt(KK[i][i]) for i in range(len(finite))]
            R = [[KK[i][j] / (sd[i] * sd[j]) for j in range(len(finite))]
                 for i in range(len(finite))]
            eye = [[mpmath.mpf(int(i == j)) for j in range(len(finite))] for i in range(len(finite))]
            try:
                inv = _solve(R, eye)
                lam = min(1 / inv[i][i] for i in range(len(finite)) if inv[i][i] > 0)
            except (ZeroDivisionError, ValueError):
                lam = mpmath.mpf(10) ** -15
            lam = max(lam, mpmath.mpf(10) ** -15)  # finer is beyond the 15-digit estimate
        return int(mpmath.ceil(mpmath.log10(1 + m / lam)))


def _phi_acc(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int) -> mpmath.mpf:
    """P(Y <= h) to ``digits`` relative digits, raising the precision past cancellation.

    ``h`` and ``R`` are used as given (their rounding is part of the caller's error budget);
    the working precision includes the digits of :func:`_scale_digits`.
    """
    q = digits
    extra = _scale_digits(h, R)
    while True:
        with mpmath.workdps(_wdps(q + extra)):
            v, mag = _phi(h, R, q)
        lost = _lost_digits(v, mag)
        if lost <= q - digits + 2:
            return v
        if not math.isfinite(lost) or lost >= q - 2:
            # the result may be pure noise: at least double the digits
            lost = max(lost if math.isfinite(lost) else 0.0, 2.0 * q)
        q = digits + int(math.ceil(lost)) + 3
        if q > _MAX_DIGITS:
            raise QuadratureError(f"cancellation needs more than {_MAX_DIGITS} digits")


def _phi_cov(b: Sequence[mpmath.mpf], K: list[list[mpmath.mpf]], digits: int) -> mpmath.mpf:
    if not b:
        return mpmath.mpf(1)
    with mpmath.workdps(mp.dps + _scale_digits(b, K)):
        h, R = _standardise(b, K)
    return _phi_acc(h, R, digits)

