"""Multivariate normal orthant probabilities P(Y <= b), Y ~ N(0, cov), in float64 and log space.

These kernels are the numerical core of the fast path: the E-step, the marginal p(x) and the
posterior reduce to Gaussian integrals on polyhedra, which :mod:`fastpath.integrals` reduces
to orthant probabilities of dimension k <= 4 (DESIGN 2.4). Every value is computed in log
space with *relative* accuracy, down to log P of -1e4 and below: no routine here forms P and
then takes its log in a tail.

Public functions
----------------
``log_mvn_cdf(b, cov)`` / ``mvn_cdf(b, cov)`` (aliases ``log_orthant_probability`` /
``orthant_probability``) validate their input, standardise, drop ``+inf`` bounds and call the
private kernels, which assume valid standardised input and are what hot loops call:

* ``_log_ndtr(h)``: k = 1 (``scipy.special.log_ndtr``).
* ``_log_bvn(h, k, rho)``: k = 2, log P(X <= h, Y <= k) for a standard bivariate normal with
  correlation ``rho``; arrays broadcast.
* ``_log_tvn(h, R)``, ``_log_qvn(h, R)``: k = 3, 4 with a correlation matrix ``R``.

Methods (k = 2)
---------------
Plackett's identity dPhi_2/drho = phi_2(h, k; rho) integrated from a base point where every
term is non-negative (so nothing cancels, which is what makes the tails relatively accurate):

    rho >= 0:  P = Phi(h) Phi(k)              + int_0^rho  phi_2(h, k; r) dr
    rho <  0:  P = max(0, Phi(h) + Phi(k) - 1) + int_-1^rho phi_2(h, k; r) dr

With r = (1 - t^2)/(1 + t^2) the integral is (1/pi) e^{-(A+C)} int e^{-A/t^2 - C t^2}/(1+t^2) dt,
A = (h-k)^2/8, C = (h+k)^2/8, over t in [tau, 1] (rho >= 0) or [tau, inf) (rho < 0),
tau = sqrt((1-rho)/(1+rho)). The substitution u = sqrt(C) t - sqrt(A)/t turns the exponent
into exactly -u^2 - 2q, q = sqrt(AC) = |h^2 - k^2|/8, and leaves the factor
g(u) = (dt/du)/(1+t^2) = 1/(r (t + 1/t)), r = sqrt(u^2 + 4q), which is analytic in the strip
|Im u| < 2 sqrt(q). The integral of e^{-u^2} g(u) is split at u = 0 into one-sided pieces, each
done with a fixed 24-point Gauss-Legendre rule on the window where e^{-(u^2 - a^2)} > e^{-37.5}
(a >= 0 the start of the piece). Only exp, sqrt and
arithmetic per node: this is the fast path, used for q >= 1.

For q < 1 (|h| close to |k|) g has a knee of width sqrt(q) at u = 0 and the fixed rule loses
digits, so those elements go to the conditioning integral

    P = int_{-inf}^{h} phi(x) Phi(z(x)) dx,   z(x) = (k - rho x)/sqrt(1 - rho^2),  h <= k,

whose log-integrand is concave with curvature >= 1. Where z >= 8.5, Phi(z) = 1 to 1e-17 and
that part is a closed form (a difference of normal cdfs); on the rest the integrand is
single-scale and is integrated by 40-point Gauss-Legendre on the window where it is within
e^{-40} of its maximum (mode by safeguarded Newton, window ends by Newton on the level set).
This path costs ~60 log_ndtr per element.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.polynomial.legendre import leggauss
from numpy.typing import ArrayLike, NDArray
from scipy import special as sc

__all__ = [
    "log_mvn_cdf",
    "log_orthant_probability",
    "mvn_cdf",
    "orthant_probability",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)
_SQRT8 = math.sqrt(8.0)

#: rows processed at once by the node loops: (rows x nodes) temporaries stay in cache
_CHUNK = 2048
#: log of the relative truncation of a quadrature window (e^-37.5 = 5e-17)
_T_WINDOW = 37.5
#: k = 2 elements with q = |h^2 - k^2|/8 below this go to the conditioning integral
_Q_FAST = 1.0
#: Phi(z) = 1 - Phi(-z) >= 1 - 1e-17 for z >= _Z_FLAT
_Z_FLAT = 8.5
#: level (log) of the window of the conditioning integral
_T_COND = 40.0

_KMAX = 4


def _gl01(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss-Legendre nodes and weights on [0, 1], correctly rounded to float64.

    ``numpy.polynomial.legendre.leggauss`` returns the small weights near the ends with
    relative errors up to 7e-13 (n = 40), which shows up directly in integrals concentrated
    at one end; the nodes are polished and the weights recomputed in extended precision
    (x87 long double, or mpmath where long double is plain double).
    """
    x0, _ = leggauss(n)
    if np.finfo(np.longdouble).eps < 1e-18:
        x = x0.astype(np.longdouble)

        def leg(x):
            p0, p1 = np.ones_like(x), x.copy()
            for j in range(2, n + 1):
                p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
            return p1, n * (x * p1 - p0) / (x * x - 1)

        for _ in range(3):
            p, dp = leg(x)
            x = x - p / dp
        _, dp = leg(x)
        w = 2 / ((1 - x * x) * dp * dp)
        xs, ws = (x + 1) / 2, w / 2
        return xs.astype(np.float64), ws.astype(np.float64)
    import mpmath

    with mpmath.workdps(40):
        xs, ws = [], []
        for xi in x0:
            x = mpmath.mpf(float(xi))
            for _ in range(3):
                p0, p1 = mpmath.mpf(1), x
                for j in range(2, n + 1):
                    p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
                dp = n * (x * p1 - p0) / (x * x - 1)
                x = x - p1 / dp
            p0, p1 = mpmath.mpf(1), x
            for j in range(2, n + 1):
                p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
            dp = n * (x * p1 - p0) / (x * x - 1)
            xs.append(float((x + 1) / 2))
            ws.append(float(1 / ((1 - x * x) * dp * dp)))
        return np.array(xs), np.array(ws)


_GL10 = _gl01(10)
_GL24 = _gl01(24)
_GL40 = _gl01(40)
#: relative candidate distances of the window search: 1, 1/4, ..., 4^-17
_GEOM = 4.0 ** -np.arange(18)


def _chunks(n: int, size: int = _CHUNK):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# --------------------------------------------------------------------------------- k = 1
def _log_ndtr(h: ArrayLike) -> NDArray[np.float64]:
    """log Phi(h), relative accuracy in both tails (k = 1 kernel)."""
    return sc.log_ndtr(h)


def _log_ndtr_diff(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """log(Phi(b) - Phi(a)) for a <= b, without cancellation.

    Parameters
    ----------
    a, b : array_like
        Broadcast together; ``a`` may be ``-inf`` and ``b`` may be ``+inf``.

    Returns
    -------
    ndarray
        Broadcast shape; ``-inf`` where ``a >= b``.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    shape = a.shape
    a, b = a.ravel(), b.ravel()
    out = np.full(a.shape, -np.inf)
    ok = a < b
    if not np.any(ok):
        return out.reshape(shape)
    a, b = a[ok], b[ok]
    # reflect so that the interval lies mostly in the lower half: Phi(b) - Phi(a) =
    # Phi(-a) - Phi(-b); then both cdfs are computed where they are relatively accurate
    flip = a + b > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    llo, lhi = sc.log_ndtr(lo), sc.log_ndtr(hi)
    d = llo - lhi  # <= 0
    with np.errstate(divide="ignore"):
        res = lhi + np.log(-np.expm1(np.minimum(d, 0.0)))
    # Phi(lo)/Phi(hi) > 1/2: the difference loses digits; integrate phi directly (the
    # interval is then short on the scale of phi: (hi - lo) * |hi| <~ 0.7)
    close = d > -0.7
    if np.any(close):
        x, w = _GL10
        lc, hc = lo[close][:, None], hi[close][:, None]
        xs = lc + (hc - lc) * x
        lf = -0.5 * xs * xs
        m = lf.max(axis=1, keepdims=True)
        res[close] = (m[:, 0] + np.log(np.sum(w * np.exp(lf - m), axis=1) * (hc - lc)[:, 0])
                      - _LOG_SQRT_2PI)
    out[ok] = res
    return out.reshape(shape)


# --------------------------------------------------------------------------------- k = 2
def _log_bvn(h: ArrayLike, k: ArrayLike, rho: ArrayLike) -> NDArray[np.float64]:
    """log P(X <= h, Y <= k) for a standard bivariate normal with correlation ``rho``.

    Parameters
    ----------
    h, k : array_like
        Upper bounds, broadcast together with ``rho``; may be ``+-inf``.
    rho : array_like
        Correlation in [-1, 1]; ``+-1`` is the degenerate (one-dimensional) case.

    Returns
    -------
    ndarray
        log P, broadcast shape. Relative accuracy of P about 1e-15 (see module docstring).
    """
    h, k, rho = np.broadcast_arrays(np.asarray(h, dtype=np.float64),
                                    np.asarray(k, dtype=np.float64),
                                    np.asarray(rho, dtype=np.float64))
    shape = h.shape
    h, k, rho = h.ravel(), k.ravel(), rho.ravel()
    out = np.empty(h.shape)
    done = np.zeros(h.shape, dtype=bool)

    bad = np.isnan(h) | np.isnan(k) | np.isnan(rho)
    out[bad] = np.nan
    done |= bad
    m = ~done & ((h == -np.inf) | (k == -np.inf))
    out[m] = -np.inf
    done |= m
    m = ~done & (h == np.inf)
    out[m] = sc.log_ndtr(k[m])
    done |= m
    m = ~done & (k == np.inf)
    out[m] = sc.log_ndtr(h[m])
    done |= m
    m = ~done & (rho >= 1.0)
    out[m] = sc.log_ndtr(np.minimum(h[m], k[m]))
    done |= m
    m = ~done & (rho <= -1.0)
    if np.any(m):
        # P(-k <= X <= h)
        out[m] = _log_ndtr_diff(-k[m], h[m])
    done |= m
    m = ~done & (rho == 0.0)
    out[m] = sc.log_ndtr(h[m]) + sc.log_ndtr(k[m])
    done |= m

    rest = np.flatnonzero(~done)
    if rest.size:
        hr, kr, rr = h[rest], k[rest], rho[rest]
        q = np.abs(hr - kr) * np.abs(hr + kr) / 8.0
        fast = q >= _Q_FAST
        if np.any(fast):
            out[rest[fast]] = _log_bvn_plackett(hr[fast], kr[fast], rr[fast])
        if not np.all(fast):
            slow = ~fast
            out[rest[slow]] = _log_bvn_cond(hr[slow], kr[slow], rr[slow])
    return out.reshape(shape)


_log_mvn_cdf_k2 = _log_bvn


def _bvn_g(u: NDArray[np.float64], sx: NDArray[np.float64],
           q4: NDArray[np.float64]) -> NDArray[np.float64]:
    """g(u) = 1/(r (t + 1/t)) for u >= 0, with sx = sqrt(C) (or sqrt(A) for the reflected
    piece) and q4 = 4q; written as 2 sx p / (r (p^2 + 4 sx^2)), p = r + u (no cancellation)."""
    r = np.sqrt(u * u + q4)
    p = r + u
    return 2.0 * sx * p / (r * (p * p + 4.0 * sx * sx))


def _bvn_pieces(a: NDArray[np.float64], b: NDArray[np.float64], sx: NDArray[np.float64],
                q4: NDArray[np.float64]) -> NDArray[np.float64]:
    """int_a^b e^{-(u^2 - a^2)} g(u) du for 0 <= a < b <= inf (1-D arrays of pieces).

    g(u) = 2 sx p / (r (p^2 + 4 sx^2)), r = sqrt(u^2 + q4), p = r + u. Fixed 24-point
    Gauss-Legendre on [a, min(b, sqrt(a^2 + 37.5))]: the weight e^{-(u^2 - a^2)} there goes
    from a half Gaussian (a = 0) to an exponential with 37.5 e-folds (a large), both
    integrated to ~1e-16 by 24 points, and g is smooth on the window for q >= 1.
    """
    out = np.empty(a.shape)
    x, w = _GL24
    n = x.size
    # u = a + L x and u^2 - a^2 = 2aL x + L^2 x^2 are polynomials in the node: small matrix
    # products instead of broadcast temporaries
    xpow = np.stack([np.ones(n), x, x * x])
    buf = [np.empty((_CHUNK, n)) for _ in range(4)]
    for sl in _chunks(a.size):
        m = sl.stop - sl.start
        ai = a[sl]
        L = np.minimum(b[sl], np.sqrt(ai * ai + _T_WINDOW)) - ai
        neg_e, r, p, t = (bb[:m] for bb in buf)
        coef = np.stack([np.zeros(m), -2.0 * ai * L, -L * L], axis=1)
        np.matmul(coef, xpow, out=neg_e)  # -(u^2 - a^2)
        coef[:, 0] = ai * ai + q4[sl]
        np.negative(coef[:, 1:], out=coef[:, 1:])
        np.matmul(coef, xpow, out=r)  # u^2 + q4
        np.sqrt(r, out=r)
        np.matmul(np.stack([ai, L], axis=1), xpow[:2], out=p)  # u
        np.add(p, r, out=p)
        np.exp(neg_e, out=neg_e)
        np.multiply(neg_e, p, out=neg_e)
        np.multiply(p, p, out=t)
        t += (4.0 * sx[sl] * sx[sl])[:, None]
        np.multiply(t, r, out=t)
        np.divide(neg_e, t, out=neg_e)
        out[sl] = (neg_e @ w) * (2.0 * sx[sl] * L)
    return out


def _log_bvn_plackett(h: NDArray[np.float64], k: NDArray[np.float64],
                      rho: NDArray[np.float64]) -> NDArray[np.float64]:
    """Fast k = 2 kernel (1-D arrays, finite h, k, 0 < |rho| < 1, q >= ~1)."""
    pos = rho > 0
    tau = np.sqrt((1.0 - rho) / (1.0 + rho))
    sa = np.abs(h - k) / _SQRT8  # sqrt(A)
    sc_ = np.abs(h + k) / _SQRT8  # sqrt(C)
    q4 = 4.0 * sa * sc_
    ua = sc_ * tau - sa / tau
    ub = np.where(pos, sc_ - sa, np.inf)
    # pieces: right u in [max(ua, 0), ub]; left (reflected u' = -u, sqrt(A) in place of
    # sqrt(C)) u' in [max(-ub, 0), -ua]. When both exist both start at 0.
    right = np.flatnonzero(ub > 0)
    left = np.flatnonzero(ua < 0)
    pa = np.concatenate([np.maximum(ua[right], 0.0), np.maximum(-ub[left], 0.0)])
    pb = np.concatenate([ub[right], -ua[left]])
    psx = np.concatenate([sc_[right], sa[left]])
    pq4 = np.concatenate([q4[right], q4[left]])
    vals = _bvn_pieces(pa, pb, psx, pq4)
    total = np.zeros(h.shape)
    start = np.zeros(h.shape)
    np.add.at(total, np.concatenate([right, left]), vals)
    start[right] = pa[:right.size]
    start[left] = np.maximum(start[left], pa[right.size:])
    # A + C + 2q = max(h^2, k^2)/2
    log_j = np.log(total) - start * start - 0.5 * np.maximum(h * h, k * k) - _LOG_PI
    base = np.full(h.shape, -np.inf)
    base[pos] = sc.log_ndtr(h[pos]) + sc.log_ndtr(k[pos])
    neg = ~pos & (h + k > 0)
    if np.any(neg):
        hn, kn = h[neg], k[neg]
        # Phi(h) + Phi(k) - 1 = Phi(min) - Phi(-max) when h + k > 0, else the base is 0
        base[neg] = _log_ndtr_diff(-np.maximum(hn, kn), np.minimum(hn, kn))
    return np.logaddexp(base, log_j)


# ------------------------------------------------------- conditioning integral (k = 2)
def _mills(z: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                             NDArray[np.float64]]:
    """log Phi(z), M(z) = phi(z)/Phi(z) and z + M(z) (> 0), accurate in the lower tail."""
    lz = sc.log_ndtr(z)
    # clamp: exp of arguments below ~-708 takes a slow (denormal) path and gives 0 anyway
    m = np.exp(np.maximum(-0.5 * z * z - _LOG_SQRT_2PI - lz, -700.0))
    zm = z + m
    far = z < -20.0
    if np.any(far):
        zi = 1.0 / z[far]
        zi2 = zi * zi
        # M(z) = -z - 1/z + 2/z^3 - 10/z^5 + ...: the exp form loses ~z^2 eps relatively
        m[far] = -z[far] - zi * (1.0 - 2.0 * zi2 + 10.0 * zi2 * zi2)
        zm[far] = -zi * (1.0 - 2.0 * zi2 + 10.0 * zi2 * zi2)
    return lz, m, zm


def _logconcave_window(
    lfun: Callable[[NDArray[np.float64], NDArray[np.bool_]], tuple],
    lo: NDArray[np.float64], hi: NDArray[np.float64], level: float,
    newton_iter: int = 24, end_iter: int = 4,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Mode and level-set window of strongly log-concave integrands on [lo, hi].

    Parameters
    ----------
    lfun : callable
        ``lfun(x, rows)`` -> ``(L, L', L'')`` at points ``x`` (shape (m,)) for the rows
        ``rows`` (boolean mask over the N elements, m = rows.sum()); L concave with L'' <= -1.
    lo, hi : ndarray, shape (N,)
        Interval; ``lo`` may be ``-inf``, ``hi`` is finite, ``lo < hi``.
    level : float
        Window = {x in [lo, hi] : L(x) >= L(mode) - level} (enlarged slightly, never cut).

    Returns
    -------
    mode, l_mode, xl, xr : ndarray, shape (N,)
    """
    n = lo.shape[0]
    allr = np.ones(n, dtype=bool)
    _, d_hi, _ = lfun(hi, allr)
    mode = hi.copy()
    inner = d_hi < 0
    # strong concavity: L'(x) >= L'(hi) + (hi - x), so the mode is in [hi + L'(hi), hi]
    a = np.maximum(lo, hi + np.minimum(d_hi, 0.0))
    b = hi.copy()
    if np.any(inner & np.isfinite(lo)):
        rows = inner & np.isfinite(lo)
        _, d_lo, _ = lfun(lo[rows], rows)
        at_lo = np.zeros(n, dtype=bool)
        at_lo[rows] = d_lo <= 0
        mode[at_lo] = lo[at_lo]
        inner &= ~at_lo
    if np.any(inner):
        rows = inner
        ar, br = a[rows], b[rows]
        x = br.copy()
        _, d, d2 = lfun(x, rows)
        for _ in range(newton_iter):
            # safeguarded Newton on the decreasing L'
            ar = np.where(d > 0, x, ar)
            br = np.where(d <= 0, x, br)
            xn = x - d / d2
            bad = ~((xn > ar) & (xn < br))
            x = np.where(bad, 0.5 * (ar + br), xn)
            _, d, d2 = lfun(x, rows)
        mode[rows] = x
    l_m, d_m, _ = lfun(mode, allr)
    rmax = math.sqrt(2.0 * level)
    c = l_m - level
    ends = []
    for side in (-1.0, 1.0):
        lim = lo if side < 0 else hi
        end = lim.copy()
        rows = (mode > lo) if side < 0 else (mode < hi)
        if np.any(rows):
            m_r, lim_r, c_r = mode[rows], lim[rows], c[rows]
            slope = side * d_m[rows]  # < 0 when the mode is at the opposite end
            # outside the level set for sure: strong concavity (rmax) and the tangent at an
            # end mode (level / |slope|); inside the domain: the distance to its end
            with np.errstate(divide="ignore"):
                dmax = np.where(slope < 0, np.minimum(rmax, level / -slope), rmax)
            dmax = np.minimum(dmax, np.abs(lim_r - m_r))
            # geometric search for the smallest candidate distance that is still outside
            # (the level set can be many orders of magnitude narrower than dmax: a kink of
            # width sqrt(1 - rho^2)), then Newton from outside, which is monotone for
            # concave L and never crosses the level set
            cand = m_r[:, None] + side * dmax[:, None] * _GEOM[None, :]
            lc = lfun(cand, rows)[0]
            outside = lc < c_r[:, None]
            jstar = np.where(outside.any(axis=1),
                             _GEOM.size - 1 - np.argmax(outside[:, ::-1], axis=1), -1)
            # none outside: the level set reaches the domain end (cand[:, 0] = lim), or the
            # level is below the resolution of L (|L| ~ 1e14): keep the widest candidate
            x = cand[np.arange(cand.shape[0]), np.maximum(jstar, 0)]
            go = jstar >= 0
            for _ in range(end_iter):
                lx, dx, _ = lfun(x, rows)
                with np.errstate(divide="ignore", invalid="ignore"):
                    xn = x - (lx - c_r) / dx
                ok = go & np.isfinite(xn) & (lx < c_r)
                x = np.where(ok, (np.maximum(x, np.minimum(xn, m_r)) if side < 0
                                  else np.minimum(x, np.maximum(xn, m_r))), x)
            end[rows] = x
        ends.append(end)
    return mode, l_m, ends[0], ends[1]


def _log_bvn_cond(h: NDArray[np.float64], k: NDArray[np.float64],
                  rho: NDArray[np.float64]) -> NDArray[np.float64]:
    """k = 2 by the conditioning integral (1-D arrays, finite h, k, 0 < |rho| < 1)."""
    h, k = np.minimum(h, k), np.maximum(h, k)  # condition on the more binding variable
    s = np.sqrt((1.0 - rho) * (1.0 + rho))
    xz = (k - s * _Z_FLAT) / rho  # z(xz) = _Z_FLAT
    pos = rho > 0
    # closed-form part: where z >= _Z_FLAT, Phi(z) = 1
    cf = np.full(h.shape, -np.inf)
    cf[pos] = sc.log_ndtr(np.minimum(h[pos], xz[pos]))
    neg = ~pos & (xz < h)
    if np.any(neg):
        cf[neg] = _log_ndtr_diff(xz[neg], h[neg])
    lo = np.where(pos, xz, -np.inf)
    hi = np.where(pos, h, np.minimum(h, xz))
    has = lo < hi
    res = cf
    if np.any(has):
        kk, rr, ss = k[has], rho[has], s[has]
        # k - rho x = (k - sgn x) + sgn (1 - |rho|) x: exact cancellation (Sterbenz) where
        # x ~ sgn k and |rho| ~ 1, which the direct form loses ~|x|/|k - rho x| ulps to
        sg = np.sign(rr)
        om = 1.0 - np.abs(rr)

        def lfun(x, rows):
            kr, rr_, sr, sgr, omr = kk[rows], rr[rows], ss[rows], sg[rows], om[rows]
            if x.ndim == 2:
                kr, rr_, sr = kr[:, None], rr_[:, None], sr[:, None]
                sgr, omr = sgr[:, None], omr[:, None]
            z = ((kr - sgr * x) + sgr * omr * x) / sr
            lz, m, zm = _mills(z)
            g = rr_ / sr
            return -0.5 * x * x + lz, -x - g * m, -1.0 - g * g * m * zm

        mode, l_m, xl, xr = _logconcave_window(lfun, lo[has], hi[has], _T_COND)
        x, w = _GL40
        part = np.empty(mode.shape)
        for sl in _chunks(mode.size):
            # nodes as exact offsets y >= 0 from the right end: a window of width ~1e-5
            # at |x| ~ 40 would otherwise carry node rounding of ~1e-10 of its width, i.e.
            # an error of slope * ulp(x) in log P
            a = xr[sl]
            y = (xr - xl)[sl, None] * (1.0 - x)
            za = ((kk[sl] - sg[sl] * a) + sg[sl] * om[sl] * a) / ss[sl]
            z = za[:, None] + (rr[sl] / ss[sl])[:, None] * y
            lf = a[:, None] * y - 0.5 * y * y
            lf += sc.log_ndtr(z) + (-0.5 * a * a - l_m[sl])[:, None]
            part[sl] = l_m[sl] + np.log(np.sum(w * np.exp(lf), axis=1) * (xr - xl)[sl])
        part -= _LOG_SQRT_2PI
        res = res.copy()
        res[has] = np.logaddexp(cf[has], part)
    return res


# ------------------------------------------------------------------------ public API
def _validate(b: ArrayLike, cov: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    b = np.asarray(b, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    if b.ndim < 1:
        raise ValueError("b must have shape (..., k), got a scalar")
    k = b.shape[-1]
    if cov.ndim < 2 or cov.shape[-2:] != (k, k):
        raise ValueError(f"cov must have shape (..., {k}, {k}) to match b of shape {b.shape}, "
                         f"got {cov.shape}")
    if k > _KMAX:
        raise ValueError(f"orthant probabilities are implemented for k <= {_KMAX}, got k = {k}")
    if np.isnan(b).any():
        raise ValueError("b contains NaN")
    if not np.isfinite(cov).all():
        raise ValueError("cov contains NaN or infinite entries")
    try:
        lead = np.broadcast_shapes(b.shape[:-1], cov.shape[:-2])
    except ValueError:
        raise ValueError(f"leading axes of b {b.shape[:-1]} and cov {cov.shape[:-2]} do not "
                         "broadcast") from None
    if k == 0:
        return np.broadcast_to(b, lead + (0,)), np.broadcast_to(cov, lead + (0, 0))
    d = np.diagonal(cov, axis1=-2, axis2=-1)
    if (d <= 0).any():
        raise ValueError("cov is not positive definite: a variance is <= 0")
    scale = np.abs(cov).max(axis=(-2, -1), keepdims=True)
    if (np.abs(cov - np.swapaxes(cov, -1, -2)) > 1e-12 * scale).any():
        raise ValueError("cov is not symmetric")
    sd = np.sqrt(d)
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    corr = 0.5 * (corr + np.swapaxes(corr, -1, -2))
    if k >= 2:
        ev = np.linalg.eigvalsh(corr)
        # semi-definite within rounding is accepted (|rho| -> 1 is handled); below that no
        if (ev[..., 0] < -1e-10 * k).any():
            raise ValueError("cov is not positive semi-definite (its correlation matrix has "
                             f"eigenvalue {ev[..., 0].min():.3g})")
    hstd = b / sd
    return (np.broadcast_to(hstd, lead + (k,)),
            np.broadcast_to(np.clip(corr, -1.0, 1.0), lead + (k, k)))


def _log_mvn_cdf_std(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """log P(Y <= h) for Y ~ N(0, R), R a correlation matrix; h (..., k), R (..., k, k).

    Bounds equal to ``+inf`` are dropped (the marginal of the others), ``-inf`` gives -inf.
    """
    k = h.shape[-1]
    lead = h.shape[:-1]
    if k == 0:
        return np.zeros(lead)
    hf = h.reshape(-1, k)
    Rf = R.reshape(-1, k, k)
    out = np.empty(hf.shape[0])
    neg = (hf == -np.inf).any(axis=1)
    out[neg] = -np.inf
    fin = hf < np.inf
    code = (fin * (1 << np.arange(k))).sum(axis=1)
    for c in np.unique(code[~neg]):
        rows = np.flatnonzero((code == c) & ~neg)
        idx = [i for i in range(k) if (c >> i) & 1]
        m = len(idx)
        hs = hf[np.ix_(rows, idx)]
        if m == 0:
            out[rows] = 0.0
        elif m == 1:
            out[rows] = sc.log_ndtr(hs[:, 0])
        elif m == 2:
            out[rows] = _log_bvn(hs[:, 0], hs[:, 1], Rf[rows, idx[0], idx[1]])
        else:
            Rs = Rf[rows][:, idx][:, :, idx]
            kern = _log_tvn if m == 3 else _log_qvn
            out[rows] = kern(hs, Rs)
    return out.reshape(lead)


def log_mvn_cdf(b: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
    """Log of the multivariate normal cdf, log P(Y <= b) for Y ~ N(0, cov), k <= 4.

    Parameters
    ----------
    b : array_like, shape (..., k)
        Upper bounds; entries may be ``+inf`` (no constraint) or ``-inf`` (probability 0).
    cov : array_like, shape (..., k, k)
        Symmetric positive (semi-)definite covariances. Leading axes broadcast with those of
        ``b``. A correlation of exactly +-1 (singular 2x2) is the degenerate one-dimensional
        case; a correlation matrix that is singular within rounding is accepted.

    Returns
    -------
    ndarray, shape = broadcast leading shape
        log P; 0.0 for k = 0. Relative accuracy of P (absolute of log P): about 1e-15 for
        k = 1, 2 (see the module docstring), also in the tails (log P of -1e4 and below).

    Raises
    ------
    ValueError
        Wrong shapes, k > 4, NaN in ``b``, non-finite ``cov``, a non-symmetric or
        non-positive-semi-definite ``cov``.
    """
    h, R = _validate(b, cov)
    return _log_mvn_cdf_std(h, R)


def mvn_cdf(b: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
    """Multivariate normal cdf P(Y <= b) for Y ~ N(0, cov), k <= 4.

    Same arguments as :func:`log_mvn_cdf`; returns ``exp(log_mvn_cdf(b, cov))`` (relative
    accuracy where P is representable, absolute accuracy ~1e-16 near 1).
    """
    return np.exp(log_mvn_cdf(b, cov))


def log_orthant_probability(b: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
    """log P(Y <= b), Y ~ N(0, cov): alias of :func:`log_mvn_cdf` (same arguments)."""
    return log_mvn_cdf(b, cov)


def orthant_probability(b: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
    """P(Y <= b), Y ~ N(0, cov): alias of :func:`mvn_cdf` (same arguments)."""
    return mvn_cdf(b, cov)


def _log_tvn(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    raise NotImplementedError("k = 3 orthant probabilities are not implemented yet")


def _log_qvn(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    raise NotImplementedError("k = 4 orthant probabilities are not implemented yet")
