"""The compiled k = 2 orthant kernel: log P(X <= h, Y <= k), correlation rho, per element.

The same rules as the numpy kernel of :mod:`fastpath._bvn` (whose notes give the
derivations), element by element instead of array by array:

* q = |h^2 - k^2|/8 >= 0.3: Plackett's integral in u with 24 (q >= 0.6) or 32
  Gauss-Legendre nodes on the window where the weight exceeds e^-37.5;
* 1e-7 <= q < 0.3: the rules of ``_bvn._Q_TIERS`` (48 nodes in u, 32/40/48 in
  v = asinh(u / 2 sqrt q));
* q < 1e-7: the conditioning integral with its log-concave window
  (:mod:`fastpath._bvn_cond`).

q < 0.3 elements are first offered to Owen's T form (:func:`_owen`, with the numpy
kernel's acceptance filters: |h|, |k| < 3.3, a h outside [3.3, 3.5], at most a factor 16
of cancellation), compiled Owen's T of :mod:`fastpath._jit_owens`; what it declines goes
to the tier rules. tests/test_jit_bvn.py checks the two kernels against each other route
by route and the compiled one against mpmath in the far tail.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._bvn import _Q_24, _Q_FAST, _Q_TIERS, _RHO_NEGLIGIBLE, _T_WINDOW
from ._bvn_cond import _GEOM, _OWEN_HMAX, _OWEN_RATIO, _T_COND
from ._jit import jit, jit_inline, parallel_for
from ._jit_owens import owens_t
from ._jit_special import exp_vec, gl_rule, log_ndtr, log_ndtr_diff, logaddexp, ndtr, sum4
from ._orthant_rules import _LOG_PI, _LOG_SQRT_2PI, _SQRT8, _Z_FLAT

_X24, _W24 = gl_rule(24)
_X32, _W32 = gl_rule(32)
_X40, _W40 = gl_rule(40)
_X48, _W48 = gl_rule(48)
# the tiers of _Q_TIERS as flat tables: (q bound, in v?) and the rule of each
_TIER_Q = np.array([t[0] for t in _Q_TIERS])
_TIER_SINH = np.array([t[2] for t in _Q_TIERS])
#: False as an array entry, not a literal: a literal flag argument would compile _plackett
#: a second time, specialised on it
_NO_SINH = np.zeros(1, dtype=np.bool_)
_TIER_N = np.array([t[1] for t in _Q_TIERS])
assert set(_TIER_N.tolist()) <= {32, 40, 48}
_GEOM_T = np.ascontiguousarray(_GEOM)
#: elements per block of the threaded loop (one scratch buffer per block)
_BLOCK = 256


@jit
def _piece_u(a: float, b: float, sx: float, q4: float, x: NDArray[np.float64],
             w: NDArray[np.float64], buf: NDArray[np.float64]) -> float:
    """int_a^b e^{-(u^2 - a^2)} g(u) du (see _bvn._bvn_pieces), one piece; ``buf`` is
    scratch of at least ``x.size`` (the node loop is a map that LLVM vectorises)."""
    L = min(b, math.sqrt(a * a + _T_WINDOW)) - a
    c4 = 4.0 * sx * sx
    n = x.size
    for i in range(n):
        t = L * x[i]
        u = a + t
        r = math.sqrt(u * u + q4)
        p = r + u
        buf[i] = w[i] * exp_vec(-(2.0 * a + t) * t) * p / (r * (p * p + c4))
    return sum4(buf, n) * (2.0 * sx * L)


@jit_inline
def _sinh_series(z: float) -> float:
    """sinh z for |z| <= 0.5 to ~1 ulp: the odd Taylor series to z^15 (truncation < 3e-17
    relative), straight-line arithmetic for the node loops."""
    z2 = z * z
    p = 1.0 / 1307674368000.0
    p = p * z2 + 1.0 / 6227020800.0
    p = p * z2 + 1.0 / 39916800.0
    p = p * z2 + 1.0 / 362880.0
    p = p * z2 + 1.0 / 5040.0
    p = p * z2 + 1.0 / 120.0
    p = p * z2 + 1.0 / 6.0
    return z + z * z2 * p


@jit
def _piece_v(a: float, b: float, sx: float, q4: float, x: NDArray[np.float64],
             w: NDArray[np.float64], buf: NDArray[np.float64]) -> float:
    """:func:`_piece_u` in the variable v of u = 2 sqrt(q) sinh v (_bvn._bvn_pieces_sinh).

    Per node one exponential for the hyperbolic parts, s = e^{v/2}: e^v = s^2,
    e^{(v + va)/2} = s e^{va/2}, e^{(v - va)/2} = s e^{-va/2}, and one reciprocal 1/s for
    their inverses (the node loops are bound by exp and division)."""
    c = math.sqrt(q4)
    bw = min(b, math.sqrt(a * a + _T_WINDOW))
    va = math.asinh(a / c)
    lv = math.asinh(bw / c) - va
    c4 = 4.0 * sx * sx
    e_hi = math.exp(0.5 * va)
    e_lo = 1.0 / e_hi
    n = x.size
    for i in range(n):
        y = lv * x[i]
        v = va + y
        s = exp_vec(0.5 * v)
        si = 1.0 / s
        p = s * s
        pinv = si * si
        ec = s * e_hi
        # sinh(y/2): its series where |y/2| <= 0.5 (the exp form cancels), else exact
        em = s * e_lo
        sh = _sinh_series(0.5 * y) if abs(y) <= 1.0 else 0.5 * (em - si * e_hi)
        # u - a = 2 c cosh((v + va)/2) sinh((v - va)/2): no cancellation near the start
        d = c * (ec + si * e_lo) * sh
        upa = 0.5 * c * (p - pinv) + a
        pc = p * c  # r + u
        buf[i] = w[i] * exp_vec(-d * upa) * pc / (pc * pc + c4)
    return sum4(buf, n) * (2.0 * sx * lv)


@jit
def _plackett(h: float, k: float, rho: float, x: NDArray[np.float64], w: NDArray[np.float64],
              sinh: bool, buf: NDArray[np.float64]) -> float:
    """Plackett's rule (finite h, k; 0 < |rho| < 1), as _bvn._log_bvn_plackett."""
    pos = rho > 0.0
    tau = math.sqrt((1.0 - rho) / (1.0 + rho))
    sa = abs(h - k) / _SQRT8
    sc = abs(h + k) / _SQRT8
    q4 = 4.0 * sa * sc
    ua = sc * tau - sa / tau
    ub = sc - sa if pos else math.inf
    total = 0.0
    start = 0.0
    # right piece u in [max(ua, 0), ub]; left (reflected) u' in [max(-ub, 0), -ua]; when
    # both exist both start at 0
    if ub > 0.0:
        a = max(ua, 0.0)
        total += _piece_v(a, ub, sc, q4, x, w, buf) if sinh else _piece_u(a, ub, sc, q4, x, w, buf)
        start = a
    if ua < 0.0:
        a = max(-ub, 0.0)
        total += _piece_v(a, -ua, sa, q4, x, w, buf) if sinh else _piece_u(a, -ua, sa, q4, x, w, buf)
        start = max(start, a)
    log_j = -math.inf
    if total > 0.0:
        log_j = math.log(total) - start * start - 0.5 * max(h * h, k * k) - _LOG_PI
    if pos:
        base = log_ndtr(h) + log_ndtr(k)
    elif h + k > 0.0:
        base = log_ndtr_diff(-max(h, k), min(h, k))
    else:
        base = -math.inf
    return logaddexp(base, log_j)


@jit
def _owen_t_accurate(h: float, a: float) -> bool:
    """As _bvn_cond._owens_t_accurate: the argument band [3.3, 3.5] is declined."""
    arg = abs(h) * max(1.0, abs(a))
    return not (arg >= 3.3 and arg <= 3.5)


@jit
def _owen(h: float, k: float, rho: float) -> float:
    """log P by Owen's T form where it is accurate (as _bvn_cond._log_bvn_owen), else nan
    (finite h, k; 0 < |rho| < 1)."""
    s = math.sqrt((1.0 - rho) * (1.0 + rho))
    if not (abs(h) < _OWEN_HMAX and abs(k) < _OWEN_HMAX and h != 0.0 and k != 0.0
            and s > 1e-8):
        return math.nan
    sg = 1.0 if rho > 0.0 else -1.0
    om = 1.0 - abs(rho)
    # k - rho h as (k - sgn(rho) h) + sgn(rho) (1 - |rho|) h: no cancellation
    ah = ((k - sg * h) + sg * om * h) / (h * s)
    ak = ((h - sg * k) + sg * om * k) / (k * s)
    if not (_owen_t_accurate(h, ah) and _owen_t_accurate(k, ak)):
        return math.nan
    opp = h * k < 0.0
    th = -0.5 * ndtr(-h) if (opp and h > 0.0) else 0.5 * ndtr(h)
    tk = -0.5 * ndtr(-k) if (opp and k > 0.0) else 0.5 * ndtr(k)
    # upper bounds on P: min(Phi(h), Phi(k)) for rho > 0; for rho < 0, Phi(h) Phi(k)
    # (Slepian) and Phi(h) Phi((k - rho h)/s), since P = int_{x <= h} phi(x)
    # Phi((k - rho x)/s) dx with the second factor increasing in x (and the same with h, k
    # swapped). The terms' magnitude is >= |th| + |tk|: where a bound already fails the
    # cancellation test (with a margin far above the rounding of P), decline before the two
    # T evaluations (the same decision, at the cost of two normal cdfs instead of two T)
    ph = 1.0 + 2.0 * th if (opp and h > 0.0) else 2.0 * th
    pk = 1.0 + 2.0 * tk if (opp and k > 0.0) else 2.0 * tk
    if rho < 0.0:
        bound = min(ph * pk, ph * ndtr(ah * h), pk * ndtr(ak * k))
    else:
        bound = min(ph, pk)
    if bound * _OWEN_RATIO < 0.99 * (abs(th) + abs(tk)):
        return math.nan
    th_ = owens_t(h, ah)
    tk_ = owens_t(k, ak)
    p = th + tk - th_ - tk_
    mag = abs(th) + abs(tk) + abs(th_) + abs(tk_)
    if p * _OWEN_RATIO > mag:
        return math.log(p)
    return math.nan


@jit
def _cond_l(x: float, k: float, g: float, s: float, sg: float, om: float
            ) -> tuple[float, float, float]:
    """L, L', L'' of the conditioning integrand's log at x (_bvn_cond._log_bvn_cond)."""
    z = ((k - sg * x) + sg * om * x) / s
    lz = log_ndtr(z)
    if z < -20.0:
        # M(z) = -z - 1/z + 2/z^3 - 10/z^5: the exp form loses ~z^2 eps
        zi = 1.0 / z
        zi2 = zi * zi
        zm = -zi * (1.0 - 2.0 * zi2 + 10.0 * zi2 * zi2)
        m = -z + zm
    else:
        m = math.exp(max(-0.5 * z * z - _LOG_SQRT_2PI - lz, -700.0))
        zm = z + m
    return -0.5 * x * x + lz, -x - g * m, -1.0 - g * g * m * zm


@jit
def _cond(h: float, k: float, rho: float) -> float:
    """k = 2 by the conditioning integral (finite h, k; 0 < |rho| < 1)."""
    h, k = min(h, k), max(h, k)
    s = math.sqrt((1.0 - rho) * (1.0 + rho))
    xz = (k - s * _Z_FLAT) / rho
    pos = rho > 0.0
    if pos:
        cf = log_ndtr(min(h, xz))
        lo, hi = xz, h
    else:
        cf = log_ndtr_diff(xz, h) if xz < h else -math.inf
        lo, hi = -math.inf, min(h, xz)
    if not lo < hi:
        return cf
    sg = 1.0 if rho > 0.0 else -1.0
    om = 1.0 - abs(rho)
    g = rho / s
    # ---- the mode (safeguarded Newton on the decreasing L'), as _logconcave_window
    _, d_hi, _ = _cond_l(hi, k, g, s, sg, om)
    mode = hi
    inner = d_hi < 0.0
    if inner and math.isfinite(lo):
        _, d_lo, _ = _cond_l(lo, k, g, s, sg, om)
        if d_lo <= 0.0:
            mode = lo
            inner = False
    if inner:
        ar = max(lo, hi + min(d_hi, 0.0))
        br = hi
        x = br
        _, d, d2 = _cond_l(x, k, g, s, sg, om)
        for _ in range(24):
            if d > 0.0:
                ar = x
            else:
                br = x
            xn = x - d / d2
            if not (xn > ar and xn < br):
                xn = 0.5 * (ar + br)
            conv = abs(xn - x) <= 1e-9 * (1.0 + abs(x)) + 1e-12 * (br - ar)
            x = xn
            if conv:
                break
            _, d, d2 = _cond_l(x, k, g, s, sg, om)
        mode = x
    l_m, d_m, _ = _cond_l(mode, k, g, s, sg, om)
    # ---- the window {L >= L(mode) - _T_COND}
    rmax = math.sqrt(2.0 * _T_COND)
    c = l_m - _T_COND
    xl = lo
    xr = hi
    ng = _GEOM_T.size
    for side_i in range(2):
        side = -1.0 if side_i == 0 else 1.0
        lim = lo if side_i == 0 else hi
        if not ((mode > lo) if side_i == 0 else (mode < hi)):
            continue
        slope = side * d_m
        dmax = min(rmax, _T_COND / -slope) if slope < 0.0 else rmax
        dmax = min(dmax, abs(lim - mode))
        jlo = -1
        jhi = ng
        while jhi - jlo > 1:
            mid = (jlo + jhi) // 2
            xm = mode + side * dmax * _GEOM_T[min(mid, ng - 1)]
            if _cond_l(xm, k, g, s, sg, om)[0] < c:
                jlo = mid
            else:
                jhi = mid
        x = mode + side * dmax * _GEOM_T[max(jlo, 0)]
        if jlo >= 0:
            for _ in range(4):
                lx, dx, _ = _cond_l(x, k, g, s, sg, om)
                xn = x - (lx - c) / dx
                if math.isfinite(xn) and lx < c:
                    x = max(x, min(xn, mode)) if side_i == 0 else min(x, max(xn, mode))
        if side_i == 0:
            xl = x
        else:
            xr = x
    # ---- 40-point Gauss-Legendre, nodes as exact offsets from the right end
    width = xr - xl
    za = ((k - sg * xr) + sg * om * xr) / s
    tot = 0.0
    for i in range(_X40.size):
        y = width * (1.0 - _X40[i])
        lf = xr * y - 0.5 * y * y + log_ndtr(za + g * y) + (-0.5 * xr * xr - l_m)
        tot += _W40[i] * math.exp(lf)
    part = l_m + math.log(tot * width) - _LOG_SQRT_2PI
    return logaddexp(cf, part)


#: scratch needed by :func:`log_bvn_buf` (the largest rule)
BUF_SIZE = 48


@jit
def log_bvn(h: float, k: float, rho: float) -> float:
    """log P(X <= h, Y <= k) for a standard bivariate normal with correlation ``rho``
    (relative accuracy of P about 1e-13, as :func:`fastpath._bvn._log_bvn`)."""
    return log_bvn_buf(h, k, rho, np.empty(BUF_SIZE))


@jit
def log_bvn_buf(h: float, k: float, rho: float, buf: NDArray[np.float64]) -> float:
    """:func:`log_bvn` with caller-provided scratch ``buf`` of size >= ``BUF_SIZE``."""
    if math.isnan(h) or math.isnan(k) or math.isnan(rho):
        return math.nan
    if h == -math.inf or k == -math.inf:
        return -math.inf
    if h == math.inf:
        return log_ndtr(k)
    if k == math.inf:
        return log_ndtr(h)
    if rho >= 1.0:
        return log_ndtr(min(h, k))
    if rho <= -1.0:
        return log_ndtr_diff(-k, h)  # P(-k <= X <= h)
    if rho == 0.0 or abs(rho) * (1.0 + abs(h)) * (1.0 + abs(k)) < _RHO_NEGLIGIBLE:
        return log_ndtr(h) + log_ndtr(k)  # rho = 0 to within 1e-17 in P (_bvn notes)
    q = abs(h - k) * abs(h + k) / 8.0
    if q >= _Q_24:
        return _plackett(h, k, rho, _X24, _W24, _NO_SINH[0], buf)
    if q >= _Q_FAST:
        return _plackett(h, k, rho, _X32, _W32, _NO_SINH[0], buf)
    lp = _owen(h, k, rho)
    if not math.isnan(lp):
        return lp
    for t in range(_TIER_Q.size):
        if q >= _TIER_Q[t]:
            n = _TIER_N[t]
            if n == 32:
                return _plackett(h, k, rho, _X32, _W32, _TIER_SINH[t], buf)
            if n == 40:
                return _plackett(h, k, rho, _X40, _W40, _TIER_SINH[t], buf)
            return _plackett(h, k, rho, _X48, _W48, _TIER_SINH[t], buf)
    return _cond(h, k, rho)


@jit
def _log_bvn_blocks(lo: int, hi: int, h: NDArray[np.float64], k: NDArray[np.float64],
                    rho: NDArray[np.float64], out: NDArray[np.float64]) -> None:
    """out[i] for the elements of blocks lo..hi-1 (of _BLOCK elements)."""
    n = h.size
    for blk in range(lo, hi):
        buf = np.empty(BUF_SIZE)
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            out[i] = log_bvn_buf(h[i], k[i], rho[i], buf)


def log_bvn_vec(h: NDArray[np.float64], k: NDArray[np.float64], rho: NDArray[np.float64]
                ) -> NDArray[np.float64]:
    """:func:`log_bvn` over 1-D arrays of one size, blocks of elements split over the
    kernel threads."""
    n = h.size
    out = np.empty(n)
    parallel_for(lambda lo, hi: _log_bvn_blocks(lo, hi, h, k, rho, out),
                 (n + _BLOCK - 1) // _BLOCK)
    return out


def _warmup() -> None:
    h = np.array([0.5, -3.0, 2.0, 1.0, -40.0])
    k = np.array([0.4, 2.0, 2.0 + 1e-9, np.inf, -39.0])
    r = np.array([0.3, -0.7, 0.9, 0.2, 0.99])
    log_bvn_vec(h, k, r)
