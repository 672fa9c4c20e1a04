"""Compiled trivariate normal orthant probability (k = 3) with fixed node counts: EXPERIMENTAL.

Not wired into the library: it does not reach the 1e-13 target of the numpy kernel
(:func:`fastpath._tvn._log_tvn`) on every input, and no cheap a posteriori check was found
that separates the elements where it does (benchmarks/tvn_jit.py prints the measured
numbers). What it is:

The decomposition of :func:`fastpath._tvn._log_tvn_plackett` (its notes give the
derivation): with i the conditioning variable and c the partial correlation of the other
two given Y_i, P is a base probability (at c = 0, or c = -1 when c < 0) plus Plackett's
integral in r_jk, both with positive terms. Each 1-D integral of a log-integrand L is done
per element with a fixed rule instead of adaptive windows:

1. the mode of L by hill climbing (doubling steps) and a few parabolic steps;
2. the level set {L >= L_max - LEVEL} on each side of the mode by secant steps (inside,
   the secant through the two innermost points overshoots the level of a concave L;
   once a point outside is known, regula falsi);
3. ``N_SIDE`` Gauss-Legendre nodes on each side of the mode (a one-sided level-set window
   of a Gaussian or an exponential needs 20 nodes for 1e-14 where a two-sided one needs 40);
4. a check: the ``N_CHECK``-node rule on the same windows must agree to ``CHECK_TOL``.

Where the integrand is single-scale this is accurate to rounding. It is not where the
Plackett integrand has a boundary layer (c < 0: Phi(u_i) at the base c = -1 behaves like
Phi(-K / sqrt(1 + c)); 69% of the S = 3 E-step's elements have c < 0), where R is nearly
singular (c near 1 at r_jk), or where |h_j| is close to |h_k| (the knee of the u
substitution): there the 16- and 20-node rules can agree while both are off, so the check
is a guard against gross failures, not a proof.

Elements declined (a correlation within 1e-9 of +-1, a window not found, the check failed)
are NaN from :func:`log_tvn_raw`; :func:`log_tvn_vec` fills them from the numpy kernel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange
from numpy.typing import NDArray

from ._jit import jit, pjit
from ._jit_special import gl_rule, log_ndtr, log_ndtr_diff, logaddexp
from ._orthant_rules import _LOG_PI, _LOG_SQRT_2PI, _SQRT8, _Z_FLAT

#: nodes per side of the mode
N_SIDE = 20
#: nodes of the check rule
N_CHECK = 16
#: log of the relative truncation of a window (e^-37.5 = 5e-17)
LEVEL = 37.5
#: largest accepted relative difference of the N_CHECK- and N_SIDE-node rules (any window)
CHECK_TOL = 1e-12
#: correlations smaller in magnitude are taken as 0 (as _tvn._R_TINY)
_R_TINY = 1e-40

_BASE, _ANTI, _PLACK = 0, 1, 2


_X, _W = gl_rule(N_SIDE)
_XC, _WC = gl_rule(N_CHECK)


@jit
def _rel(kind: int, p: NDArray[np.float64], B: float, y: float) -> float:
    """L(B - y) - off(B): the log-integrand at x = B - y, exact in y (see _off)."""
    if kind == _PLACK:
        u = B - y
        hi_, hj, hk, rij, rik, sjk, r0, sa, sc, q4, degen = (
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10])
        if degen != 0.0:
            t = math.tan(u)
            lg = 0.0
        else:
            rq = math.sqrt(u * u + q4)
            if u >= 0.0:
                t = (u + rq) / (2.0 * sc)
            else:
                t = 2.0 * sa / (rq - u)
            # -u^2 = -B^2 + (2B - y) y, the first part in _off: exact in y where u is large
            lg = (2.0 * B - y) * y - math.log(rq * (t + 1.0 / t))
        tt = t * t
        one_p = 1.0 + tt
        r = (1.0 - tt) / one_p
        omr2 = 4.0 * tt / (one_p * one_p)
        cc = (r - r0) / sjk
        det = sjk * sjk * (1.0 - cc) * (1.0 + cc)
        num = hi_ * omr2 - (rij - r * rik) * hj - (rik - r * rij) * hk
        ui = num / math.sqrt(max(det, 0.0) * omr2)
        if math.isnan(ui) or math.isnan(lg):
            return -math.inf
        return lg + log_ndtr(ui)
    hj, hk, rij, rik, sj, sk = p[0], p[1], p[2], p[3], p[4], p[5]
    bj = (hj - rij * B) / sj + (rij / sj) * y
    bk = (hk - rik * B) / sk + (rik / sk) * y
    if kind == _BASE:
        lf = log_ndtr(bj) + log_ndtr(bk)
    else:
        lf = log_ndtr_diff(-bk, bj)
    return (B * y - 0.5 * y * y) + lf


@jit
def _off(kind: int, p: NDArray[np.float64], B: float) -> float:
    if kind == _PLACK:
        return p[11] if p[10] != 0.0 else p[11] - B * B
    return -0.5 * B * B - _LOG_SQRT_2PI


@jit
def _L(kind: int, p: NDArray[np.float64], x: float) -> float:
    v = _rel(kind, p, x, 0.0) + _off(kind, p, x)
    return -math.inf if math.isnan(v) else v


@jit
def _side(kind: int, p: NDArray[np.float64], xm: float, fm: float, lim: float, sgn: float,
          step: float, c: float) -> tuple[float, int]:
    """End of the level set {L >= c} from the mode xm towards lim (sgn = +-1), with
    c - 6 <= L(end) <= c (or end = lim); (end or NaN, evals). Inside, the secant through
    the two innermost points is extrapolated (for a concave L it overshoots the level);
    once an outer point is known, regula falsi (for a concave L it undershoots)."""
    if xm == lim:
        return xm, 0
    ev = 0
    x_in, f_in = xm, fm
    x_out = math.nan
    f_out = math.nan
    x = xm + sgn * step
    for _ in range(20):
        if sgn * (x - lim) >= 0.0:
            x = lim
        f = _L(kind, p, x)
        ev += 1
        if f >= c:
            if x == lim:
                return lim, ev
            d = abs(x - x_in)
            sl = (f - f_in) / d if d > 0.0 else 0.0
            if sl < 0.0:
                xn = x + sgn * ((c - f) / sl * 1.02 + 1e-9 * abs(x - xm))
            else:
                xn = x + sgn * 2.0 * max(abs(x - xm), step)
            x_in, f_in = x, f
            if not math.isnan(x_out) and sgn * (xn - x_out) >= 0.0:
                xn = x_in + (x_out - x_in) * (f_in - c + 3.0) / (f_in - f_out) \
                    if f_out > -math.inf else 0.5 * (x_in + x_out)
            x = xn
        elif f >= c - 6.0:
            return x, ev
        else:
            x_out, f_out = x, f
            if f_out == -math.inf:
                x = 0.5 * (x_in + x_out)
            else:
                x = x_in + (x_out - x_in) * (f_in - c + 3.0) / (f_in - f_out)
    return math.nan, ev


@jit
def _gl(kind: int, p: NDArray[np.float64], A: float, B: float, buf: NDArray[np.float64]
        ) -> tuple[float, float]:
    """log int_A^B e^L with N_SIDE Gauss-Legendre nodes, and the relative difference of
    the N_CHECK-node rule from it (the error estimate)."""
    W = B - A
    n = _X.size
    off = _off(kind, p, B)
    lm = -math.inf
    for i in range(n):
        v = _rel(kind, p, B, W * (1.0 - _X[i]))
        if math.isnan(v):
            v = -math.inf
        buf[i] = v
        lm = max(lm, v)
    nc = _XC.size
    for i in range(nc):
        v = _rel(kind, p, B, W * (1.0 - _XC[i]))
        if math.isnan(v):
            v = -math.inf
        buf[n + i] = v
        lm = max(lm, v)
    if lm == -math.inf:
        return -math.inf, 0.0
    s = 0.0
    for i in range(n):
        s += _W[i] * math.exp(buf[i] - lm)
    sc = 0.0
    for i in range(nc):
        sc += _WC[i] * math.exp(buf[n + i] - lm)
    return lm + off + math.log(s * W), abs(sc - s) / s


@jit
def _integrate(kind: int, p: NDArray[np.float64], lo: float, hi: float, guess: float,
               scale: float, buf: NDArray[np.float64]) -> tuple[float, float, int]:
    """log int_lo^hi e^L for a unimodal L: (value, error estimate, evaluations)."""
    ev = 0
    x0 = min(max(guess, lo), hi)
    f0 = _L(kind, p, x0)
    ev += 1
    if f0 == -math.inf:
        return math.nan, math.inf, ev
    # hill climbing with doubling steps: bracket xl < xm < xr (or xm at a domain end)
    xm, fm = x0, f0
    xr = min(xm + scale, hi)
    fr = _L(kind, p, xr) if xr > xm else -math.inf
    ev += 1
    d = scale
    if fr > fm:
        xl, fl = xm, fm
        xm, fm = xr, fr
        while True:
            d *= 2.0
            xr = min(xm + d, hi)
            if xr <= xm:
                xr, fr = xm, -math.inf
                break
            fr = _L(kind, p, xr)
            ev += 1
            if fr <= fm:
                break
            xl, fl = xm, fm
            xm, fm = xr, fr
    else:
        xl = max(xm - scale, lo)
        fl = _L(kind, p, xl) if xl < xm else -math.inf
        ev += 1
        if fl > fm:
            xr, fr = xm, fm
            xm, fm = xl, fl
            while True:
                d *= 2.0
                xl = max(xm - d, lo)
                if xl >= xm:
                    xl, fl = xm, -math.inf
                    break
                fl = _L(kind, p, xl)
                ev += 1
                if fl <= fm:
                    break
                xr, fr = xm, fm
                xm, fm = xl, fl
    # parabolic steps inside the bracket
    curv = 1.0 / (scale * scale)
    for _ in range(6):
        if not (xl < xm < xr) or fl == -math.inf or fr == -math.inf:
            break
        d1 = (fm - fl) / (xm - xl)
        d2 = (fr - fm) / (xr - xm)
        g = (d1 - d2) / (0.5 * (xr - xl))
        if not g > 0.0:
            break
        curv = g
        xv = 0.5 * (xl + xm) + d1 / g
        pred = fm + 0.5 * g * (xv - 0.5 * (xl + xm) - 0.5 * (xm - xl)) ** 2
        if pred - fm < 0.05:
            break
        if not (xl < xv < xr) or xv == xm:
            break
        fv = _L(kind, p, xv)
        ev += 1
        if fv > fm:
            if xv > xm:
                xl, fl = xm, fm
            else:
                xr, fr = xm, fm
            xm, fm = xv, fv
        elif xv > xm:
            xr, fr = xv, fv
        else:
            xl, fl = xv, fv
    c = fm - LEVEL
    step = math.sqrt(2.0 * LEVEL / curv)
    if xm == lo and xr > xm and fr > -math.inf and fr < fm:
        step = min(step, LEVEL * (xr - xm) / (fm - fr))
    if xm == hi and xl < xm and fl > -math.inf and fl < fm:
        step = min(step, LEVEL * (xm - xl) / (fm - fl))
    a, e1 = _side(kind, p, xm, fm, lo, -1.0, step, c)
    b, e2 = _side(kind, p, xm, fm, hi, 1.0, step, c)
    ev += e1 + e2
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan, math.inf, ev
    res = -math.inf
    err = 0.0
    if xm > a:
        v, t = _gl(kind, p, a, xm, buf)
        res = logaddexp(res, v)
        err = max(err, t)
        ev += _X.size + _XC.size
    if b > xm:
        v, t = _gl(kind, p, xm, b, buf)
        res = logaddexp(res, v)
        err = max(err, t)
        ev += _X.size + _XC.size
    return res, err, ev


@jit
def log_tvn_raw(h0: float, h1: float, h2: float, r01: float, r02: float, r12: float,
                buf: NDArray[np.float64], p: NDArray[np.float64]) -> tuple[float, int, float]:
    """log P(Y <= h) (finite h, |r| < 1 - 1e-9); (value or NaN = needs the fallback, evals).

    ``buf`` scratch of N_SIDE, ``p`` of 12.
    """
    if abs(r01) < _R_TINY:
        r01 = 0.0
    if abs(r02) < _R_TINY:
        r02 = 0.0
    if abs(r12) < _R_TINY:
        r12 = 0.0
    if max(abs(r01), abs(r02), abs(r12)) > 1.0 - 1e-9:
        return math.nan, 0, math.inf
    # conditioning variable: as _log_tvn_plackett (c >= 0 preferred, then least correlated)
    best = math.inf
    ii = 0
    for cand in range(3):
        if cand == 0:
            a_, b_, c_ = r01, r02, r12
        elif cand == 1:
            a_, b_, c_ = r01, r12, r02
        else:
            a_, b_, c_ = r02, r12, r01
        s1 = math.sqrt((1.0 - a_) * (1.0 + a_))
        s2 = math.sqrt((1.0 - b_) * (1.0 + b_))
        pc = (c_ - a_ * b_) / (s1 * s2)
        sc_ = max(abs(a_), abs(b_)) + (0.0 if pc >= 0.0 else 10.0)
        if sc_ < best:
            best = sc_
            ii = cand
    if ii == 0:
        hi_, hj, hk, rij, rik, rjk = h0, h1, h2, r01, r02, r12
    elif ii == 1:
        hi_, hj, hk, rij, rik, rjk = h1, h0, h2, r01, r12, r02
    else:
        hi_, hj, hk, rij, rik, rjk = h2, h0, h1, r02, r12, r01
    sj = math.sqrt((1.0 - rij) * (1.0 + rij))
    sk = math.sqrt((1.0 - rik) * (1.0 + rik))
    c = (rjk - rij * rik) / (sj * sk)
    anti = c < 0.0
    ev = 0
    # ------------------------------------------------------------------ base
    f_hi = hi_
    f_lo = -math.inf
    if rij > 0.0:
        f_hi = min(f_hi, (hj - _Z_FLAT * sj) / rij)
    elif rij < 0.0:
        f_lo = max(f_lo, (hj - _Z_FLAT * sj) / rij)
    if rik > 0.0:
        f_hi = min(f_hi, (hk - _Z_FLAT * sk) / rik)
    elif rik < 0.0:
        f_lo = max(f_lo, (hk - _Z_FLAT * sk) / rik)
    never = (rij == 0.0 and hj < _Z_FLAT) or (rik == 0.0 and hk < _Z_FLAT)
    flat = (not never) and f_lo < f_hi
    base = log_ndtr_diff(f_lo, f_hi) if flat else -math.inf
    slope = rij / sj + rik / sk
    icpt = hj / sj + hk / sk
    dlo = -math.inf
    dhi = hi_
    empty = False
    if anti:
        if slope < 0.0:
            dlo = icpt / slope
        elif slope > 0.0:
            dhi = min(dhi, icpt / slope)
        elif icpt <= 0.0:
            empty = True
    kind = _ANTI if anti else _BASE
    p[0], p[1], p[2], p[3], p[4], p[5] = hj, hk, rij, rik, sj, sk
    kw = min(1.0, sj / max(abs(rij), 1e-300), sk / max(abs(rik), 1e-300))
    err = 0.0
    if not empty:
        for piece in range(2):
            if piece == 0:
                lo, hi2 = dlo, (min(f_lo, dhi) if flat else dhi)
            else:
                if not flat:
                    break
                lo, hi2 = max(f_hi, dlo), dhi
            if lo < hi2:
                v, t, e = _integrate(kind, p, lo, hi2, 0.0, kw, buf)
                ev += e
                err = max(err, t)
                base = logaddexp(base, v)
    # -------------------------------------------------------------- Plackett
    ra = rij * rik - (sj * sk if anti else 0.0)
    corr = -math.inf
    if rjk > ra:
        sa = abs(hj - hk) / _SQRT8
        sc = abs(hj + hk) / _SQRT8
        t_b = math.sqrt((1.0 - rjk) / (1.0 + rjk))
        t_a = math.sqrt((1.0 - ra) / (1.0 + ra)) if ra > -1.0 else math.inf
        degen = (sa * sa + sc * sc) < 1e-12
        if degen:
            u_lo, u_hi = math.atan(t_b), math.atan(t_a)
            off = -_LOG_PI
            guess, scl = 0.5 * (u_lo + u_hi), 0.25 * (u_hi - u_lo)
        else:
            u_lo = sc * t_b - sa / t_b
            u_hi = math.inf if t_a == math.inf else sc * t_a - sa / t_a
            off = -0.5 * max(hj * hj, hk * hk) - _LOG_PI
            guess, scl = 0.0, min(0.5, 0.25 * (u_hi - u_lo))
        p[0], p[1], p[2], p[3], p[4] = hi_, hj, hk, rij, rik
        p[5], p[6], p[7], p[8], p[9] = sj * sk, rij * rik, sa, sc, 4.0 * sa * sc
        p[10], p[11] = (1.0 if degen else 0.0), off
        if u_lo < u_hi:
            corr, t, e = _integrate(_PLACK, p, u_lo, u_hi, guess, scl, buf)
            ev += e
            err = max(err, t)
    res = logaddexp(base, corr)
    if not err <= CHECK_TOL or math.isnan(res):
        return math.nan, ev, err
    return res, ev, err


@jit
def log_tvn(h0: float, h1: float, h2: float, r01: float, r02: float, r12: float) -> float:
    """log P(Y0 <= h0, Y1 <= h1, Y2 <= h2), unit variances; NaN where the fixed rule
    declines (the caller then uses the numpy kernel)."""
    return log_tvn_raw(h0, h1, h2, r01, r02, r12, np.empty(_X.size + _XC.size), np.empty(12))[0]


@pjit
def _log_tvn_vec_raw(h: NDArray[np.float64], r: NDArray[np.float64]
                     ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    n = h.shape[0]
    out = np.empty(n)
    evs = np.empty(n, dtype=np.int64)
    errs = np.empty(n)
    for blk in prange((n + 255) // 256):
        buf = np.empty(_X.size + _XC.size)
        p = np.empty(12)
        for i in range(blk * 256, min(n, (blk + 1) * 256)):
            out[i], evs[i], errs[i] = log_tvn_raw(h[i, 0], h[i, 1], h[i, 2], r[i, 0], r[i, 1], r[i, 2],
                                         buf, p)
    return out, evs, errs


def log_tvn_vec(h: NDArray[np.float64], R: NDArray[np.float64], fallback: bool = True,
                stats: bool = False):  # type: ignore[no-untyped-def]
    """log P(Y <= h) for Y ~ N(0, R) per row.

    Parameters
    ----------
    h : ndarray, shape (n, 3)
        Finite bounds.
    R : ndarray, shape (n, 3, 3) or (n, 3)
        Correlation matrices, or their (r01, r02, r12).
    fallback : bool
        Fill the elements the fixed rule declines from the numpy kernel (else NaN).
    stats : bool
        Also return the integrand evaluations per element (n,) and the fallback mask.

    Returns
    -------
    ndarray, shape (n,)
    """
    h = np.ascontiguousarray(h, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != 3:
        raise ValueError(f"h must have shape (n, 3), got {h.shape}")
    if R.shape == (h.shape[0], 3, 3):
        r = np.ascontiguousarray(np.stack([R[:, 0, 1], R[:, 0, 2], R[:, 1, 2]], axis=1))
    elif R.shape == (h.shape[0], 3):
        r = np.ascontiguousarray(R)
    else:
        raise ValueError(f"R must have shape (n, 3, 3) or (n, 3), got {R.shape}")
    if not np.isfinite(h).all():
        raise ValueError("h must be finite")
    if (np.abs(r) > 1.0).any() or np.isnan(r).any():
        raise ValueError("R: correlations must lie in [-1, 1]")
    out, evs, errs = _log_tvn_vec_raw(h, r)
    bad = np.isnan(out)
    if fallback and bad.any():
        from ._tvn import _log_mvn_cdf_std

        Rf = np.empty((int(bad.sum()), 3, 3))
        Rf[:] = np.eye(3)
        rb = r[bad]
        Rf[:, 0, 1] = Rf[:, 1, 0] = rb[:, 0]
        Rf[:, 0, 2] = Rf[:, 2, 0] = rb[:, 1]
        Rf[:, 1, 2] = Rf[:, 2, 1] = rb[:, 2]
        out[bad] = _log_mvn_cdf_std(h[bad], Rf)
    if stats:
        return out, evs, bad, errs
    return out


def _warmup() -> None:
    h = np.array([[0.5, -1.0, 2.0], [-30.0, -20.0, 1.0], [1.0, 1.0, 1.0]])
    r = np.array([[0.3, -0.2, 0.5], [0.9, 0.5, -0.4], [-0.4, -0.4, -0.3]])
    log_tvn_vec(h, r)
    log_tvn(0.1, 0.2, 0.3, 0.1, 0.2, 0.3)
