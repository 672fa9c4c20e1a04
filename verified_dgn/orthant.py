"""Gaussian orthant probabilities and truncated moments in high precision (mpmath).

For ``Y ~ N(0, K)`` in ``R^k`` (``k = 0..4``) and an upper bound ``b``:

    orthant_probability(b, K) = P(Y <= b)
    orthant_moments(b, K)     = int_{y <= b} (1, y, y y^T) N(y; 0, K) dy

Both are the building blocks of the exact Gaussian integrals on polyhedra (docs/DESIGN.md §2.4,
Lemma 4): every term of the inclusion-exclusion is such an orthant.

Accuracy is *relative*: the values are used in log space by the marginal p(x) and reach
1e-300 and far below. Every one-dimensional integral below has an integrand of one sign and
is computed piecewise (cut at the mode and at fast transitions) by Gauss-Legendre rules of
12..96 points, with tanh-sinh and bisection as fall-backs, under a stopping test relative to
the integral itself (mpmath's own ``quad`` stops on an absolute error, which accepts garbage
for tiny integrals). Where a formula subtracts (a Plackett path with a negative
correlation increment), the digits lost are measured (sum of the absolute values of the
terms over the result) and the evaluation is repeated at a precision raised by that many
digits. Working precision: the digits requested plus 8 guard digits, rounded up to a
multiple of 8 (so that cached quadrature nodes are reused).

Formulas (``Phi`` the standard normal cdf, ``h`` the standardised bounds, ``R`` the
correlation matrix; infinite bounds are dropped (``+inf``) or give 0 (``-inf``) first):

* ``k = 1``: ``Phi(h)`` (``mpmath.ncdf``, relative in the far tail).
* ``k = 2``, ``rho >= 0``: ``Phi(h1) Phi(h2) + (1/2pi) int_0^{asin rho}
  exp(-(h1^2 + h2^2 - 2 h1 h2 sin t) / (2 cos^2 t)) dt`` (both terms positive).
  ``rho < 0``: the same formula when it loses at most two digits, otherwise the
  conditioning integral ``int_{-inf}^{h1} phi(x) Phi((h2 - rho x)/sqrt(1 - rho^2)) dx``.
* ``k = 3``: Plackett-type 1-D integrals. When no term can subtract much (all correlations
  ``>= 0``, or a central orthant, checked a posteriori) the path from the identity:
  ``Phi_3 = prod Phi(h_i) + sum_{i<j} (1/2pi) int_0^{asin r_ij} exp(-(h_i^2 + h_j^2 -
  2 h_i h_j sin t)/(2 cos^2 t)) Phi(u_k(t)) dt`` (one ``Phi`` per node). Otherwise the path
  from a star reference: with ``i`` the variable of largest partial correlation
  ``rho_{jk.i}``, ``R0`` equals ``R`` except ``r0_jk = r_ij r_ik`` (``Y_j, Y_k`` independent
  given ``Y_i``), so ``Phi_3(h; R0) = int_{-inf}^{h_i} phi(x) Phi(u_j(x)) Phi(u_k(x)) dx``,
  and along the segment from ``R0`` to ``R`` Plackett's identity ``dPhi_3/dr_jk =
  phi_2(h_j, h_k; r_jk) Phi(conditional bound of Y_i)`` gives (with ``r_jk = sin t``)
  ``Phi_3(h; R) = Phi_3(h; R0) + (1/2pi) int_{asin r0_jk}^{asin r_jk}
  exp(-(h_j^2 + h_k^2 - 2 h_j h_k sin t)/(2 cos^2 t)) Phi(u_i(t)) dt``.
* ``k = 4``: the Plackett path from the star reference of the variable ``i`` whose
  partial correlations are largest: ``Phi_4(h; R0) = int phi(x) prod_j Phi(u_j(x)) dx``
  plus, for each of the three other pairs, ``(r_jk - r0_jk) int_0^1 phi_2(h_j, h_k;
  r_jk(t)) Phi_2(conditional) dt`` (nested: about a second). An independent slow version
  (conditioning on one variable, nested ``Phi_3``) is kept as ``_phi4_conditioning`` for
  the tests.

The conditioning integrands are ``exp`` of a function that is concave (Prekopa) minus
``x^2/2``, i.e. strongly log-concave with modulus 1. That gives rigorous truncation of the
infinite interval: left of a point ``a`` where the log-integrand ``g`` still increases
(secant slope ``s >= 0``), ``int_{-inf}^a f <= f(a) min(sqrt(pi/2), 1/s)``.

Truncated moments (Tallis 1961; Manjunath & Wilhelm 2009), for finite bounds:
``F_q = N(b_q; 0, K_qq) Phi_{k-1}(conditional on y_q = b_q)``,
``F_qs = N_2((b_q, b_s); 0, K_{qs}) Phi_{k-2}(conditional on y_q = b_q, y_s = b_s)``,
``int y N = -K F``, ``int y_i y_j N = K_ij P - sum_q K_iq K_jq b_q F_q / K_qq
+ sum_q K_iq sum_{s != q} (K_js - K_qs K_jq / K_qq) F_qs``. Coordinates with an infinite
bound are then restored through the Gaussian regression on the constrained ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from dgn_core.exceptions import QuadratureError

__all__ = ["orthant_probability", "orthant_moments", "log_orthant_probability", "to_mpf"]

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


def _as_object_array(a: Any, name: str, ndim: int) -> NDArray[Any]:
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
        if _is_nan(v):
            raise ValueError(f"{name} contains NaN values")
        arr[idx] = v
    return arr


def _check_orthant_args(b: ArrayLike, cov: ArrayLike, dps: int) -> tuple[NDArray[Any], NDArray[Any]]:
    """Validate ``(b, cov, dps)``; returns object arrays of the original entries."""
    if not isinstance(dps, (int, np.integer)) or isinstance(dps, bool) or dps < 1:
        raise ValueError(f"dps must be a positive integer, got {dps!r}")
    if dps > _MAX_DIGITS:
        raise ValueError(f"dps = {dps} exceeds the limit of {_MAX_DIGITS} digits")
    bb = _as_object_array(b, "b", 1)
    k = bb.shape[0]
    if k > _KMAX:
        raise ValueError(f"orthants of dimension up to {_KMAX} are supported, got len(b) = {k}")
    KK = _as_object_array(cov, "cov", 2)
    if KK.shape != (k, k):
        raise ValueError(f"cov must have shape ({k}, {k}) to match len(b) = {k}, got {KK.shape}")
    for idx in np.ndindex(KK.shape):
        if _is_inf(KK[idx]):
            raise ValueError("cov contains infinite values")
    return bb, KK


def _convert_cov(KK: NDArray[Any]) -> list[list[mpmath.mpf]]:
    """mpf covariance at the current precision; checks symmetry and positive definiteness."""
    k = KK.shape[0]
    K = [[to_mpf(KK[i, j]) for j in range(k)] for i in range(k)]
    tol = mpmath.mpf(10) ** (-min(mp.dps, 30) + 3)
    for i in range(k):
        for j in range(i):
            a, c = K[i][j], K[j][i]
            if abs(a - c) > tol * (abs(a) + abs(c)):
                raise ValueError(f"cov is not symmetric: cov[{i},{j}] = {a} != cov[{j},{i}] = {c}")
            K[i][j] = K[j][i] = (a + c) / 2
    _cholesky(K)  # raises on a non positive-definite matrix
    return K


# --------------------------------------------------------------------------- small dense algebra
def _cholesky(K: list[list[mpmath.mpf]]) -> list[list[mpmath.mpf]]:
    k = len(K)
    L = [[mpmath.mpf(0)] * k for _ in range(k)]
    for j in range(k):
        s = K[j][j] - sum(L[j][p] ** 2 for p in range(j))
        if not s > 0:
            raise ValueError(
                "cov is not positive definite (singular or indefinite): pivot "
                f"{j} of its Cholesky factorisation is {mpmath.nstr(s, 5)}")
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


# --------------------------------------------------------------------------- quadrature
def _tanh_sinh_nodes(degree: int) -> list[tuple[mpmath.mpf, mpmath.mpf]]:
    """Standard tanh-sinh nodes of ``degree`` on [-1, 1] at the current precision (cached)."""
    return mp._tanh_sinh.get_nodes(-1, 1, degree, mp.prec)


def _gauss_legendre_nodes(degree: int) -> list[tuple[mpmath.mpf, mpmath.mpf]]:
    """Standard Gauss-Legendre nodes (``3 * 2**(degree-1)`` points) at the current precision."""
    return mp._gauss_legendre.get_nodes(-1, 1, degree, mp.prec)


#: Gauss-Legendre levels tried before falling back to tanh-sinh (12, 24, 48, 96 points)
_GL_DEGREES = (3, 4, 5, 6)


def _gl_interval(f: Callable[[mpmath.mpf], mpmath.mpf], a: mpmath.mpf, c: mpmath.mpf,
                 digits: int, scale: mpmath.mpf) -> tuple[mpmath.mpf, bool]:
    """Gauss-Legendre with doubling point counts on [a, c]; (value, converged).

    The error is measured relative to ``max(|value|, scale)`` (``scale``: the part of the
    total integral already known, so that pieces far in a tail are not resolved to digits
    nobody needs). Converged when two successive levels agree to ``10**-(digits + 2)``, or
    when they agree to ``10**-((digits + 4)/2)`` (and, from the third level on, the
    previous pair agreed less well by a power 1.5): Gauss-Legendre converges at least
    geometrically for the analytic integrands here, so doubling the points squares the
    error, and the error of the finer level is about the square of the difference.
    """
    C, D = (c - a) / 2, (c + a) / 2
    prev: list[mpmath.mpf] = []
    diffs: list[mpmath.mpf] = []
    tight = mpmath.mpf(10) ** (-(digits + 2))
    loose = mpmath.mpf(10) ** (-(digits + 4) / 2.0)
    for deg in _GL_DEGREES:
        nodes = _gauss_legendre_nodes(deg)
        val = C * mpmath.fsum(w * f(D + C * x) for x, w in nodes)
        if prev:
            ref = max(abs(val), scale)
            d = abs(val - prev[-1])
            if ref == 0:
                if d == 0:
                    return val, True
            else:
                rel = d / ref
                if rel <= tight:
                    return val, True
                if rel <= loose and (not diffs or rel <= diffs[-1] ** 1.5):
                    return val, True
                diffs.append(rel)
        prev.append(val)
    return prev[-1], False


def _ts_interval(f: Callable[[mpmath.mpf], mpmath.mpf], a: mpmath.mpf, c: mpmath.mpf,
                 digits: int, max_degree: int, scale: mpmath.mpf) -> tuple[mpmath.mpf, bool]:
    """Tanh-sinh on [a, c] (robust to end-point singularities); (value, converged)."""
    C, D = (c - a) / 2, (c + a) / 2
    rule = mp._tanh_sinh
    g = lambda u: C * f(D + C * u)  # noqa: E731
    eps = mpmath.mpf(10) ** (-digits)
    results: list[mpmath.mpf] = []
    for degree in range(1, max_degree + 1):
        r = rule.sum_next(g, _tanh_sinh_nodes(degree), degree, mp.prec, results)
        results.append(r)
        if degree >= 3 and _extrapolated_error(results) <= eps * max(abs(r), scale):
            return r, True
    return results[-1], False


def _quad(f: Callable[[mpmath.mpf], mpmath.mpf], points: Sequence[Any], digits: int,
          _depth: int = 0, prefer_ts: bool = False, scale: Any = 0) -> mpmath.mpf:
    """``int f`` over the consecutive intervals of ``points`` to ``digits`` relative digits.

    ``f`` must not change sign, so that errors relative to the part of the integral already
    computed are errors relative to the total. Pieces are done in decreasing order of a
    rough size estimate (``max |f|`` at their ends and middle times their length), each to
    ``10**-digits`` of the larger of its own value and the sum so far. Each piece:
    Gauss-Legendre with 12..96 points (fast for the smooth integrands here); if that does
    not converge, tanh-sinh (robust to end-point singularities, e.g. nearly singular
    correlations); if that does not converge either, the piece is bisected (up to 6
    times), else :class:`QuadratureError`. ``prefer_ts``: skip Gauss-Legendre.
    """
    pts = [mpmath.mpf(p) for p in points]
    pieces = [(a, c) for a, c in zip(pts[:-1], pts[1:]) if c > a]
    if len(pieces) > 1:
        est = [max(abs(f(a)), abs(f(c)), abs(f((a + c) / 2))) * (c - a) for a, c in pieces]
        pieces = [p for _, p in sorted(zip(est, pieces), key=lambda t: -t[0])]
    total = mpmath.mpf(0)
    known = abs(mpmath.mpf(scale))
    max_degree = 6 + max(0, int(math.log2(max(digits, 1) / 20.0)) + 1)
    for a, c in pieces:
        v, ok = (mpmath.mpf(0), False) if prefer_ts else _gl_interval(f, a, c, digits, known)
        if not ok:
            v, ok = _ts_interval(f, a, c, digits, max_degree, known)
        if not ok:
            if _depth >= 6:
                raise QuadratureError(
                    f"quadrature did not reach {digits} relative digits on "
                    f"[{mpmath.nstr(a, 10)}, {mpmath.nstr(c, 10)}]")
            v = _quad(f, [a, (a + c) / 2, c], digits, _depth + 1, False, known)
        total += v
        known += abs(v)
    return total


def _extrapolated_error(res: list[mpmath.mpf]) -> mpmath.mpf:
    """Error estimate of the last of successive tanh-sinh levels (Bailey's rule)."""
    if len(res) < 2:
        return mpmath.inf
    d1 = abs(res[-1] - res[-2])
    if d1 == 0:
        return mpmath.mpf(0)
    if len(res) == 2:
        return d1
    d2 = abs(res[-1] - res[-3])
    if d2 == 0:
        return d1
    scale = max(abs(res[-1]), mpmath.mpf(10) ** (-mp.dps * 3))
    D1 = mpmath.log10(d1 / scale)
    D2 = mpmath.log10(d2 / scale)
    if D2 >= 0 or D1 >= 0:
        return d1
    D4 = max(D1 ** 2 / D2, 2 * D1, mpmath.mpf(-mp.dps))
    # never claim more than the plain difference allows by a wide margin
    return min(d1, scale * mpmath.mpf(10) ** D4)


# --------------------------------------------------------------------------- log-concave integrals
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _inv_mills(u: NDArray[np.float64] | float) -> Any:
    """phi(u)/Phi(u) in floats without overflow."""
    u = np.asarray(u, dtype=np.float64)
    return np.exp(-0.5 * u * u - _LOG_SQRT_2PI - special.log_ndtr(u))


def _mode_gauss_phi(alphas: Sequence[float], betas: Sequence[float], hi: float) -> float:
    """Argmax over x <= hi of ``-x^2/2 + sum log Phi(alpha + beta x)`` (floats, bisection).

    The function is strongly concave, so its derivative is decreasing; bisection on the
    derivative.
    """
    al = np.asarray(alphas, dtype=np.float64)
    be = np.asarray(betas, dtype=np.float64)

    def d(x: float) -> float:
        return float(-x + np.sum(be * _inv_mills(al + be * x)))

    if math.isfinite(hi) and d(hi) >= 0:
        return hi
    # bracket: d(lo) > 0 > d(up)
    up = hi if math.isfinite(hi) else 1.0
    if not math.isfinite(hi):
        while d(up) > 0:
            up = 2 * up + 1
    lo = min(up, 0.0) - 1.0
    while d(lo) <= 0:
        lo = 2 * lo - 1
        if lo < -1e150:
            return lo
    for _ in range(200):
        mid = 0.5 * (lo + up)
        if d(mid) > 0:
            lo = mid
        else:
            up = mid
        if up - lo <= 1e-12 * (1 + abs(mid)):
            break
    return 0.5 * (lo + up)


def _slc_integral(logf: Callable[[mpmath.mpf], mpmath.mpf], hi: mpmath.mpf, x_mode: float,
                  digits: int, kinks: Sequence[float] = (),
                  f_scaled: Callable[[mpmath.mpf, mpmath.mpf], mpmath.mpf] | None = None
                  ) -> mpmath.mpf:
    """``int_{-inf}^{hi} exp(logf(x)) dx`` for a strongly log-concave (modulus 1) integrand.

    ``x_mode`` is (an estimate of) the maximiser of ``logf`` on ``(-inf, hi]``. The interval
    is cut at ``x_mode -+ L``; the discarded tails are bounded rigorously (see the module
    docstring) and the cut is moved outwards until both bounds are below
    ``10**-digits`` times the integral. ``kinks``: points where the integrand changes fast
    (added as interval end points). ``f_scaled(x, g0)``, if given, computes
    ``exp(logf(x) - g0)`` faster than through the logarithm.
    """
    hi = mpmath.mpf(hi)
    xm = mpmath.mpf(x_mode)
    if xm > hi:
        xm = hi
    delta_nats = digits * math.log(10.0) + 10.0
    L = math.sqrt(2.0 * delta_nats) + 1.0
    g0 = logf(xm)
    if g0 == -mpmath.inf:
        raise QuadratureError("log-concave integrand vanishes at its estimated mode")
    if f_scaled is None:
        def f(x: mpmath.mpf) -> mpmath.mpf:
            return mpmath.exp(logf(x) - g0)
    else:
        def f(x: mpmath.mpf) -> mpmath.mpf:
            return f_scaled(x, g0)

    prefer_ts = False
    s_est = 0.0
    if xm == hi:
        # mode at the end point: the integrand decays like exp(-s y - y^2/2) into the
        # interval; cut where that is below the tolerance
        d = mpmath.mpf("1e-3")
        s_est = max(0.0, float((g0 - logf(hi - d)) / d))
        L = -s_est + math.sqrt(s_est * s_est + 2.0 * delta_nats) + 1.0
    a = xm - L
    c = min(hi, xm + L)
    # split at growing distances from the mode, in units of the decay length there, so
    # that every piece is smooth on its own scale (pieces far in the tail are cheap:
    # they are resolved relative to the total)
    ell = 1.0 / (1.0 + s_est)
    cuts = {a, xm, c}
    for m in (2.0, 5.0, 11.0, 24.0):
        if m * ell < L:
            cuts.add(xm - m * ell)
            if xm + m * ell < c:
                cuts.add(xm + m * ell)
    cuts |= {mpmath.mpf(k) for k in kinks if a < k < c}
    pts = sorted(cuts)
    total = _quad(f, pts, digits + 1, prefer_ts=prefer_ts)
    if total <= 0:
        raise QuadratureError("log-concave integral vanished")
    log_tol = mpmath.log(total) - (digits + 1) * mpmath.log(10)
    # left tail
    step = mpmath.mpf(L)
    for _ in range(60):
        delta = min(mpmath.mpf("0.01"), (xm - a) / 4) if xm > a else mpmath.mpf("0.01")
        ga, gb = logf(a) - g0, logf(a + delta) - g0
        s = (gb - ga) / delta
        if s >= 0:
            bound = ga + mpmath.log(min(mpmath.sqrt(mpmath.pi / 2), 1 / s if s > 0 else mpmath.inf))
            if bound <= log_tol:
                break
        a_new = a - step
        step *= 2
        total += _quad(f, [a_new, a], digits + 1, scale=total)
        log_tol = mpmath.log(total) - (digits + 1) * mpmath.log(10)
        a = a_new
    else:
        raise QuadratureError("could not bound the left tail of a log-concave integral")
    # right tail
    step = mpmath.mpf(L)
    for _ in range(60):
        if c >= hi:
            break
        delta = min(mpmath.mpf("0.01"), (c - xm) / 4) if c > xm else mpmath.mpf("0.01")
        gc, gb = logf(c) - g0, logf(c - delta) - g0
        s = (gb - gc) / delta  # minus the slope at c; >= 0 right of the mode
        if s >= 0:
            bound = gc + mpmath.log(min(mpmath.sqrt(mpmath.pi / 2), 1 / s if s > 0 else mpmath.inf))
            if bound <= log_tol:
                break
        c_new = min(hi, c + step)
        step *= 2
        total += _quad(f, [c, c_new], digits + 1, scale=total)
        log_tol = mpmath.log(total) - (digits + 1) * mpmath.log(10)
        c = c_new
    else:
        raise QuadratureError("could not bound the right tail of a log-concave integral")
    return total * mpmath.exp(g0)


def _to_float(x: mpmath.mpf) -> float:
    """mpf -> float, clamped into the float range (for mode searches only)."""
    if x > mpmath.mpf("1e150"):
        return 1e150
    if x < mpmath.mpf("-1e150"):
        return -1e150
    return float(x)


def _gauss_phi_product(hi: mpmath.mpf, alphas: Sequence[mpmath.mpf], betas: Sequence[mpmath.mpf],
                       digits: int) -> mpmath.mpf:
    """``int_{-inf}^{hi} phi(x) prod_l Phi(alpha_l + beta_l x) dx`` to ``digits`` relative digits."""
    af = [_to_float(a) for a in alphas]
    bf = [_to_float(b) for b in betas]
    xm = _mode_gauss_phi(af, bf, _to_float(hi))
    half_log_2pi = mpmath.log(2 * mpmath.pi) / 2

    def logf(x: mpmath.mpf) -> mpmath.mpf:
        s = -x * x / 2 - half_log_2pi
        for a, b in zip(alphas, betas):
            p = mpmath.ncdf(a + b * x)
            if p == 0:
                return -mpmath.inf
            s += mpmath.log(p)
        return s

    def f_scaled(x: mpmath.mpf, g0: mpmath.mpf) -> mpmath.mpf:
        v = mpmath.exp(-x * x / 2 - half_log_2pi - g0)
        for a, b in zip(alphas, betas):
            v *= mpmath.ncdf(a + b * x)
        return v

    # sharp steps of the Phi factors (|beta| large: near-singular correlations)
    kinks = [-a / b for a, b in zip(af, bf) if abs(b) > 4.0]
    return _slc_integral(logf, hi, xm, digits, kinks, f_scaled)


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

    pts = [t0, t1]
    if h * k > 0:
        # interior maximiser of the exponent at sin t = min(h/k, k/h)
        r = min(h / k, k / h)
        ts = mpmath.asin(r)
        if t0 < ts < t1:
            pts = [t0, ts, t1]
    return _quad(g, pts, digits) / (2 * mpmath.pi)


def _phi2(h: mpmath.mpf, k: mpmath.mpf, rho: mpmath.mpf, digits: int
          ) -> tuple[mpmath.mpf, mpmath.mpf]:
    if rho == 0:
        v = mpmath.ncdf(h) * mpmath.ncdf(k)
        return v, v
    base = mpmath.ncdf(h) * mpmath.ncdf(k)
    if rho > 0:
        v = base + _bvn_asin_integral(h, k, mpmath.mpf(0), mpmath.asin(rho), digits)
        return v, v
    # rho < 0: P <= Phi(h)Phi(k); the asin formula subtracts. Cheap estimate of the
    # cancellation first: if both tails are deep the conditioning integral is used.
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


def _phi3_identity_path(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
                        ) -> tuple[mpmath.mpf, mpmath.mpf]:
    """Phi_3 by the Plackett path from the identity, ``R(t) = I + t (R - I)``.

    ``Phi_3(h; R) = prod Phi(h_i) + sum_{i<j} int_0^{asin r_ij} (1/2pi)
    exp(-(h_i^2 + h_j^2 - 2 h_i h_j sin u)/(2 cos^2 u)) Phi(u_k) du`` (``r_ij(t) = sin u``,
    ``t = sin u / r_ij``, ``u_k`` the standardised bound of ``Y_k`` given ``Y_i = h_i``,
    ``Y_j = h_j`` under ``R(t)``). One ``Phi`` per node (the star path needs about three),
    but the terms of negative correlations subtract: the magnitude returned measures that.
    """
    value = mpmath.ncdf(h[0]) * mpmath.ncdf(h[1]) * mpmath.ncdf(h[2])
    mag = value
    for i, j in ((0, 1), (0, 2), (1, 2)):
        k = 3 - i - j
        rij, rik, rjk = R[i][j], R[i][k], R[j][k]
        if rij == 0:
            continue  # r_ij(t) = 0 along the whole path: no contribution
        hi_, hj, hk = h[i], h[j], h[k]

        def phi_cond(s: mpmath.mpf, rij: mpmath.mpf = rij, rik: mpmath.mpf = rik,
                     rjk: mpmath.mpf = rjk, hi_: mpmath.mpf = hi_, hj: mpmath.mpf = hj,
                     hk: mpmath.mpf = hk) -> mpmath.mpf:
            t = s / rij
            a, b = t * rik, t * rjk  # corr(Y_k, Y_i), corr(Y_k, Y_j) at t
            c2 = (1 - s) * (1 + s)
            m = ((a - s * b) * hi_ + (b - s * a) * hj) / c2
            var = (c2 - a * a - b * b + 2 * s * a * b) / c2
            if var <= 0:
                return mpmath.mpf(1) if hk >= m else mpmath.mpf(0)
            return mpmath.ncdf((hk - m) / mpmath.sqrt(var))

        u1 = mpmath.asin(rij)
        if u1 > 0:
            I = _bvn_asin_integral(hi_, hj, mpmath.mpf(0), u1, digits, phi_cond)
            value += I
        else:
            I = _bvn_asin_integral(hi_, hj, u1, mpmath.mpf(0), digits, phi_cond)
            value -= I
        mag += I
    return value, mag


def _phi3(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
          ) -> tuple[mpmath.mpf, mpmath.mpf]:
    # The identity path is about three times cheaper; use it when it cannot lose more
    # than about two digits: all correlations >= 0 (every term positive), or a central
    # orthant whose result is checked a posteriori.
    if all(R[a][b] >= 0 for a, b in ((0, 1), (0, 2), (1, 2))):
        return _phi3_identity_path(h, R, digits)
    if min(h) > -1.5:
        v, mag = _phi3_identity_path(h, R, digits)
        if v > 0 and mag <= 100 * v:
            return v, mag
    return _phi3_star(h, R, digits)


def _phi3_star(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
               ) -> tuple[mpmath.mpf, mpmath.mpf]:
    """Phi_3 by the Plackett path from the star reference (see the module docstring)."""
    # choose the conditioning variable i with the largest partial correlation rho_{jk.i}
    best = None
    for i in range(3):
        j, k = [t for t in range(3) if t != i]
        pc = (R[j][k] - R[i][j] * R[i][k]) / mpmath.sqrt((1 - R[i][j] ** 2) * (1 - R[i][k] ** 2))
        if best is None or pc > best[0]:
            best = (pc, i, j, k)
    assert best is not None
    _, i, j, k = best
    rij, rik, rjk = R[i][j], R[i][k], R[j][k]
    sj = mpmath.sqrt((1 - rij) * (1 + rij))
    sk = mpmath.sqrt((1 - rik) * (1 + rik))
    P0 = _gauss_phi_product(h[i], [h[j] / sj, h[k] / sk], [-rij / sj, -rik / sk], digits)
    r0 = rij * rik
    if rjk == r0:
        return P0, P0
    hi_, hj, hk = h[i], h[j], h[k]

    def phi_cond(s: mpmath.mpf) -> mpmath.mpf:
        # Phi of the standardised bound of Y_i given Y_j = h_j, Y_k = h_k, corr(Y_j,Y_k) = s
        c2 = (1 - s) * (1 + s)
        m = ((rij - s * rik) * hj + (rik - s * rij) * hk) / c2
        var = (c2 - rij * rij - rik * rik + 2 * s * rij * rik) / c2
        if var <= 0:
            return mpmath.mpf(1) if hi_ >= m else mpmath.mpf(0)
        return mpmath.ncdf((hi_ - m) / mpmath.sqrt(var))

    t0, t1 = mpmath.asin(r0), mpmath.asin(rjk)
    if t0 < t1:
        I = _bvn_asin_integral(hj, hk, t0, t1, digits, phi_cond)
        return P0 + I, P0 + I
    I = _bvn_asin_integral(hj, hk, t1, t0, digits, phi_cond)
    return P0 - I, P0 + I


def _phi4_conditioning(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
          ) -> tuple[mpmath.mpf, mpmath.mpf]:
    i = min(range(4), key=lambda t: h[t])
    rest = [t for t in range(4) if t != i]
    r = [R[i][t] for t in rest]
    C = [[R[a][b] - R[i][a] * R[i][b] for b in rest] for a in rest]
    sd = [mpmath.sqrt(C[p][p]) for p in range(3)]
    Rc = [[mpmath.mpf(1) if p == q else C[p][q] / (sd[p] * sd[q]) for q in range(3)]
          for p in range(3)]
    hr = [h[t] for t in rest]
    half_log_2pi = mpmath.log(2 * mpmath.pi) / 2

    def logf(x: mpmath.mpf) -> mpmath.mpf:
        hc = [(hr[p] - r[p] * x) / sd[p] for p in range(3)]
        v = _phi_acc(hc, Rc, digits)
        if v <= 0:
            return -mpmath.inf
        return -x * x / 2 - half_log_2pi + mpmath.log(v)

    # mode of the surrogate phi(x) prod Phi(marginal bounds) (exact mode not needed:
    # the tail bounds are checked on the true integrand)
    af = [_to_float(hr[p] / sd[p]) for p in range(3)]
    bf = [_to_float(-r[p] / sd[p]) for p in range(3)]
    xm = _mode_gauss_phi(af, bf, _to_float(h[i]))
    kinks = [-a / b for a, b in zip(af, bf) if abs(b) > 4.0]
    v = _slc_integral(logf, h[i], xm, digits, kinks)
    return v, v


def _phi4(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
          ) -> tuple[mpmath.mpf, mpmath.mpf]:
    """Phi_4 by a Plackett path from a star-shaped reference correlation.

    With ``i`` the variable whose partial correlations ``rho_{jk.i}`` have the largest
    minimum, ``R0`` keeps ``r_ij`` and sets ``r0_jk = r_ij r_ik`` for the other pairs (the
    others independent given ``Y_i``), so ``Phi_4(h; R0) = int_{-inf}^{h_i} phi(x)
    prod_j Phi((h_j - r_ij x)/s_j) dx``. Along ``R(t) = R0 + t (R - R0)`` (positive
    definite: a convex combination), Plackett's identity gives
    ``Phi_4(h; R) = Phi_4(h; R0) + sum_{j<k != i} (r_jk - r0_jk) int_0^1
    phi_2(h_j, h_k; r_jk(t)) Phi_2(h_{i,l} | y_j = h_j, y_k = h_k; R(t)) dt``,
    one one-signed integral per pair.
    """
    best = None
    for i in range(4):
        rest = [t for t in range(4) if t != i]
        worst = None
        for a in range(3):
            for b in range(a + 1, 3):
                j, k = rest[a], rest[b]
                pc = (R[j][k] - R[i][j] * R[i][k]) / mpmath.sqrt((1 - R[i][j] ** 2) * (1 - R[i][k] ** 2))
                worst = pc if worst is None or pc < worst else worst
        if best is None or worst > best[0]:
            best = (worst, i, rest)
    assert best is not None
    _, i, rest = best
    sd = [mpmath.sqrt((1 - R[i][t]) * (1 + R[i][t])) for t in rest]
    P0 = _gauss_phi_product(h[i], [h[t] / s for t, s in zip(rest, sd)],
                            [-R[i][t] / s for t, s in zip(rest, sd)], digits)
    R0 = [list(row) for row in R]
    for a in range(3):
        for b in range(3):
            if a != b:
                R0[rest[a]][rest[b]] = R[i][rest[a]] * R[i][rest[b]]
    value, mag = P0, P0
    for a in range(3):
        for b in range(a + 1, 3):
            j, k = rest[a], rest[b]
            delta = R[j][k] - R0[j][k]
            if delta == 0:
                continue
            others = [t for t in range(4) if t not in (j, k)]
            hj, hk = h[j], h[k]

            def g(t: mpmath.mpf, j: int = j, k: int = k, delta: mpmath.mpf = delta,
                  others: list[int] = others, hj: mpmath.mpf = hj, hk: mpmath.mpf = hk
                  ) -> mpmath.mpf:
                Rt = [[R0[p][q] + t * (R[p][q] - R0[p][q]) for q in range(4)] for p in range(4)]
                r = Rt[j][k]
                c2 = (1 - r) * (1 + r)
                dens = mpmath.exp(-(hj * hj + hk * hk - 2 * r * hj * hk) / (2 * c2)) / (
                    2 * mpmath.pi * mpmath.sqrt(c2))
                if dens == 0:
                    return dens
                bc, Kc, _ = _conditional(list(h), Rt, [j, k])
                return dens * _phi_cov(bc, Kc, digits)

            pts = [0, 1]
            I = _quad(g, pts, digits)  # dr_jk/dt = delta
            value += delta * I
            mag += abs(delta) * I
    return value, mag


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
    if k == 3:
        return _phi3(h, R, digits)
    if k == 4:
        return _phi4(h, R, digits)
    raise ValueError(f"dimension {k} > {_KMAX}")


def _lost_digits(value: mpmath.mpf, magnitude: mpmath.mpf) -> float:
    if magnitude == 0:
        return 0.0
    if value <= 0:
        return math.inf
    return max(0.0, float(mpmath.log10(magnitude / value)))


def _phi_acc(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int) -> mpmath.mpf:
    """P(Y <= h) to ``digits`` relative digits, raising the precision past cancellation.

    ``h`` and ``R`` are used as given (their rounding is part of the caller's error budget).
    """
    q = digits
    while True:
        with mpmath.workdps(_wdps(q)):
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
    h, R = _standardise(b, K)
    return _phi_acc(h, R, digits)


# --------------------------------------------------------------------------- public API
def orthant_probability(b: ArrayLike, cov: ArrayLike, *, dps: int = 30) -> mpmath.mpf:
    """Gaussian orthant probability ``P(Y <= b)`` for ``Y ~ N(0, cov)`` in high precision.

    Parameters
    ----------
    b : array_like, shape (k,)
        Upper bounds, ``k = 0..4``; entries may be ``+-inf`` (float or mpf). Ints, floats
        (exact), Fractions, mpf or decimal strings.
    cov : array_like, shape (k, k)
        Symmetric positive definite covariance (same number types).
    dps : int
        Decimal digits of relative accuracy requested.

    Returns
    -------
    mpmath.mpf
        ``P(Y <= b)`` to about ``dps`` significant digits (relative accuracy, also in the
        far tail: values like 1e-10000 are fine). ``k = 0`` gives 1.

    Raises
    ------
    ValueError
        Wrong shapes, NaN, infinite covariance entries, non-symmetric or not positive
        definite ``cov``, ``k > 4``.
    """
    bb, KK = _check_orthant_args(b, cov, dps)
    k = bb.shape[0]
    with mpmath.workdps(_wdps(dps)):
        K = _convert_cov(KK)
        if k == 0:
            return mpmath.mpf(1)
        bm = [to_mpf(x) for x in bb]
        val = _phi_cov(bm, K, dps + 2)
    return val


def log_orthant_probability(b: ArrayLike, cov: ArrayLike, *, dps: int = 30) -> mpmath.mpf:
    """``log P(Y <= b)`` (``-inf`` when the probability is 0); see :func:`orthant_probability`."""
    p = orthant_probability(b, cov, dps=dps)
    with mpmath.workdps(_wdps(dps)):
        return mpmath.log(p) if p > 0 else mpmath.mpf("-inf")


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
    while True:
        with mpmath.workdps(_wdps(q)):
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
        Symmetric positive definite covariance of ``Y ~ N(0, cov)``.
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
    with mpmath.workdps(_wdps(dps)):
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
