"""One-dimensional integrals in mpmath to a *relative* accuracy (docs/DESIGN.md §2.4).

The orthant probabilities and moments of :mod:`verified_dgn.orthant` reduce to
one-dimensional integrals whose values reach 1e-300 and far below, so every integral here
is resolved relative to itself. mpmath's own ``quad`` stops on an absolute error, which
accepts garbage for tiny integrals; hence these rules:

* :func:`_quad`: an integrand of one sign, computed piecewise (cut at the mode and at fast
  transitions) by Gauss-Legendre rules of 12..96 points, with tanh-sinh and bisection as
  fall-backs, under a stopping test relative to the integral itself.
* :func:`_slc_integral`: ``int_{-inf}^{hi} exp(g)`` for a strongly log-concave integrand.
  The conditioning integrands of the orthant kernels are ``exp`` of a function that is
  concave (Prekopa) minus ``x^2/2``, i.e. strongly log-concave with modulus 1. That gives
  rigorous truncation of the infinite interval: left of a point ``a`` where the
  log-integrand ``g`` still increases (secant slope ``s >= 0``),
  ``int_{-inf}^a f <= f(a) min(sqrt(pi/2), 1/s)``.
* :func:`_gauss_phi_product`: ``int_{-inf}^{hi} phi(x) prod_l Phi(alpha_l + beta_l x) dx``,
  the reference integral of the star-shaped correlations (one such integrand).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np
from numpy.typing import NDArray
from scipy import special

from dgn_core.exceptions import QuadratureError

mp = mpmath.mp


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

    The tolerance is ``10**-(digits + 2) * max(|value|, scale)`` (``scale``: the part of the
    total integral already known, so that pieces far in a tail are not resolved to digits
    nobody needs). Converged when two successive levels differ by less than that, or when
    the error predicted for the finer level is below it: Gauss-Legendre converges at least
    geometrically for the analytic integrands here, so doubling the points about squares
    the *self-relative* error ``e = |difference| / |value|``, and the finer level's error is
    predicted as ``e**2 |value|``. The prediction is trusted only from the third level on,
    when the previous pair's self-relative difference ``e'`` confirms the rate
    (``e <= e'**1.5``), and only for ``e <= 1e-4``.

    The prediction must be self-relative: a difference measured relative to a ``scale``
    much larger than the piece, squared, under-predicts the error by the factor
    ``|value| / scale`` (a far-tail piece of 1e-20 of the total, resolved to 1e-4 of
    itself, was once accepted at 33 requested digits).
    """
    C, D = (c - a) / 2, (c + a) / 2
    prev: list[mpmath.mpf] = []
    self_diffs: list[mpmath.mpf] = []
    tight = mpmath.mpf(10) ** (-(digits + 2))
    for deg in _GL_DEGREES:
        nodes = _gauss_legendre_nodes(deg)
        val = C * mpmath.fsum(w * f(D + C * x) for x, w in nodes)
        if prev:
            ref = max(abs(val), scale)
            d = abs(val - prev[-1])
            if d == 0 or (ref != 0 and d <= tight * ref):
                return val, True
            if val != 0:
                e = d / abs(val)
                if (self_diffs and e <= mpmath.mpf("1e-4") and e <= self_diffs[-1] ** 1.5
                        and e * e * abs(val) <= tight * ref):
                    return val, True
                self_diffs.append(e)
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


def _ladder(x0: Any, ell: Any, length: Any) -> list[mpmath.mpf]:
    """Cut points ``x0 + m ell`` for ``m = 2, 5, 11, 24, 50, 100, 200, ...`` with
    ``m |ell| < length`` (``ell`` signed: the direction).

    A log-concave integrand decays at least geometrically away from its mode; with ``|ell|``
    at most its decay length at ``x0``, each piece between two cuts spans a bounded number
    of decay lengths at its near end, so that a Gauss-Legendre rule sees the piece's mass.
    A single piece spanning thousands of decay lengths puts every node where the integrand
    has vanished; two levels then agree on ~0 and the piece's mass, small beside the total
    but far above the tolerance, was lost (33 requested digits, 11 delivered).
    """
    x0 = mpmath.mpf(x0)
    ell = mpmath.mpf(ell)
    length = mpmath.mpf(length)
    out = []
    for m in (2, 5, 11, 24):
        if m * abs(ell) < length:
            out.append(x0 + m * ell)
    m = 50
    while m * abs(ell) < length:
        out.append(x0 + m * ell)
        m *= 2
    return out


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
    cuts |= set(_ladder(xm, -ell, L))
    cuts |= {x for x in _ladder(xm, ell, L) if x < c}
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
        total += _quad(f, [a_new, *reversed(_ladder(a, -1 / (1 + max(s, 0)), step)), a],
                       digits + 1, scale=total)
        step *= 2
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
        total += _quad(f, [c, *[x for x in _ladder(c, 1 / (1 + max(s, 0)), step) if x < c_new],
                           c_new], digits + 1, scale=total)
        step *= 2
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

