"""Multivariate normal orthant probabilities P(Y <= b), Y ~ N(0, cov), in float64 and log space.

These kernels are the numerical core of the fast path: the E-step, the marginal p(x) and the
posterior reduce to Gaussian integrals on polyhedra, which :mod:`fastpath.integrals` reduces
to orthant probabilities of dimension k <= 4 (docs/DESIGN.md §2.4). Every value is computed in log
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
arithmetic per node: this is the fast path, used for q >= 0.6 (32 nodes for 0.3 <= q < 0.6).

For q < 0.3 (|h| close to |k|) g has a knee of width sqrt(q) at u = 0 and the fixed rule loses
digits, so those elements go to the conditioning integral

    P = int_{-inf}^{h} phi(x) Phi(z(x)) dx,   z(x) = (k - rho x)/sqrt(1 - rho^2),  h <= k,

whose log-integrand is concave with curvature >= 1. Where z >= 8.5, Phi(z) = 1 to 1e-17 and
that part is a closed form (a difference of normal cdfs); on the rest the integrand is
single-scale and is integrated by 40-point Gauss-Legendre on the window where it is within
e^{-40} of its maximum (mode by safeguarded Newton, window ends by Newton on the level set).
This path costs ~60 log_ndtr per element; the Plackett rule with 48 nodes still
resolves the knee down to q = 0.03, and in the variable v of u = 2 sqrt(q) sinh v, which
stretches the knee to width 1, with 32-48 nodes down to q = 1e-7 (_Q_TIERS), at a half to a
third of that cost, so only q < 1e-7 comes here.
Before both, such elements are offered to Owen's
T form (:func:`_log_bvn_owen`, scipy.special.owens_t, ~10x cheaper), which is kept only
where it is accurate: |h|, |k| < 3.3 and at most a factor 16 of cancellation among its
terms (in an S = 2 E-step: ~40% of the q < 0.3 elements, thin cones near the mean).

Methods (k = 3, 4)
------------------
k = 3 (:func:`_log_tvn_plackett`): with i a conditioning variable and c the partial
correlation of the other two given Y_i, P is the probability at the point where that partial
correlation is 0 (c >= 0) or -1 (c < 0), a 1-D conditioning integral of elementary
functions, plus Plackett's integral in r_jk, whose nodes need one log_ndtr: both terms
positive, no cancellation. Rows with a correlation within 1e-9 of +-1 use the conditioning
integral with the k = 2 kernel inside (:func:`_log_mvn_sov`), which is also what k = 4 uses
(with the k = 3 kernel inside).

All these 1-D integrals go through :func:`_adaptive_log_integral`: a window around the
mass found from the Laplace approximation at the dominant point (the most likely point of
the orthant) and refined by node-based passes, 40 (k = 3) or 32 (k = 4) Gauss-Legendre
nodes, and an a posteriori check on the Legendre coefficients of the log-integrand at the
nodes; an unresolved window (a kink, as near-singular correlations produce) is refined
adaptively until a parent and its children agree to 5e-14.

Accuracy (tests/test_orthant_fast.py, against mpmath oracles): |log P error| (= relative
error of P) <= 1e-13 (k = 2), 1e-12 (k = 3), 1e-10 (k = 4) where P >= 1e-20, and <= 1e-10
(k <= 3), 1e-9 (k = 4) below, plus the conditioning of log P in the inputs, about
4 eps cond(R) |log P| (which dominates for near-singular R and huge |log P|).
"""

from __future__ import annotations

import functools
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
#: k = 2 elements with q = |h^2 - k^2|/8 below _Q_FAST go to the conditioning integral;
#: the Plackett rule has 24 nodes for q >= _Q_24, 32 below (measured: both within 1/5 of
#: the 1e-13 tolerance there against the conditioning kernel, 2e5 random cases)
_Q_FAST = 0.3
_Q_24 = 0.6
#: q < _Q_FAST elements that Owen's T declines: (q bound, nodes, in v = asinh(u / 2 sqrt q))
#: Plackett's rule for q >= the bound; the conditioning integral below q = 1e-7. Measured
#: against the conditioning kernel (benchmarks/bvn_small_q.py, 2e5 random and 4e5 E-step
#: elements): <= 0.14 (u rules) and <= 0.21 (v rules) of the 1e-13 tolerance; the next
#: smaller rules fail it by 2.8x (v, 32 nodes on [1e-3, 1e-2)) to 560x. The v rules are
#: 1.2-2x faster than the u rule with 96 nodes and the conditioning integral they replace.
#: u48 replaces u64 on [0.03, 0.1) (0.13-0.14 of the tolerance there, 1.5x cheaper). The
#: v48 rule stops at 1e-7: below it fails the tolerance by up to 5x (q in [1e-9, 1e-8),
#: 1.2e5 random elements; 0.76 on [1e-8, 1e-7), 0.14 on [1e-7, 1e-5)).
_Q_TIERS = ((0.03, 48, False), (0.01, 32, True), (1e-3, 40, True), (1e-7, 48, True))
#: Owen's T path (k = 2, q < _Q_FAST): |h|, |k| below this, cancellation at most this
_OWEN_HMAX = 3.3
_OWEN_RATIO = 16.0
#: Phi(z) = 1 - Phi(-z) >= 1 - 1e-17 for z >= _Z_FLAT
_Z_FLAT = 8.5
#: level (log) of the window of the conditioning integral
_T_COND = 40.0

_KMAX = 4


@functools.cache
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
        xs, ws = ((x + 1) / 2).astype(np.float64), (w / 2).astype(np.float64)
        xs.flags.writeable = ws.flags.writeable = False
        return xs, ws
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
        xa, wa = np.array(xs), np.array(ws)
        xa.flags.writeable = wa.flags.writeable = False
        return xa, wa


_GL10 = _gl01(10)
_GL24 = _gl01(24)
_GL32 = _gl01(32)
_GL40 = _gl01(40)
#: relative candidate distances of the window search: 1, 1/4, ..., 4^-17
_GEOM = 4.0 ** -np.arange(18)


def _quiet(fn):
    """Run a kernel with floating-point warnings off: the kernels produce and consume
    +-inf on purpose (log 0, Mills ratios of huge arguments) and check what matters."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def _chunks(n: int, size: int = _CHUNK):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# --------------------------------------------------------------------------------- k = 1
def _log_ndtr(h: ArrayLike) -> NDArray[np.float64]:
    """log Phi(h), relative accuracy in both tails (k = 1 kernel)."""
    return sc.log_ndtr(h)


@_quiet
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
@_quiet
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
    q = np.abs(h - k) * np.abs(h + k) / 8.0
    # regular elements: finite, 0 < |rho| < 1 (comparisons with nan are False); q is nan
    # or inf for non-finite bounds
    fast = (q >= _Q_FAST) & (q < np.inf) & (np.abs(rho) < 1.0) & (rho != 0.0)
    fi = np.flatnonzero(fast)
    if fi.size == h.size and np.all(q >= _Q_24):
        out[:] = _log_bvn_plackett(h, k, rho)
        return out.reshape(shape)
    if fi.size:
        lowq = q[fi] < _Q_24
        f24, f32 = fi[~lowq], fi[lowq]
        if f24.size:
            out[f24] = _log_bvn_plackett(h[f24], k[f24], rho[f24])
        if f32.size:
            out[f32] = _log_bvn_plackett(h[f32], k[f32], rho[f32], rule=_GL32)
    oth = np.flatnonzero(~fast)
    ho, ko, ro = h[oth], k[oth], rho[oth]
    res = np.empty(oth.size)
    done = np.zeros(oth.size, dtype=bool)
    bad = np.isnan(ho) | np.isnan(ko) | np.isnan(ro)
    res[bad] = np.nan
    done |= bad
    m = ~done & ((ho == -np.inf) | (ko == -np.inf))
    res[m] = -np.inf
    done |= m
    m = ~done & (ho == np.inf)
    res[m] = sc.log_ndtr(ko[m])
    done |= m
    m = ~done & (ko == np.inf)
    res[m] = sc.log_ndtr(ho[m])
    done |= m
    m = ~done & (ro >= 1.0)
    res[m] = sc.log_ndtr(np.minimum(ho[m], ko[m]))
    done |= m
    m = ~done & (ro <= -1.0)
    if np.any(m):
        # P(-k <= X <= h)
        res[m] = _log_ndtr_diff(-ko[m], ho[m])
    done |= m
    m = ~done & (ro == 0.0)
    res[m] = sc.log_ndtr(ho[m]) + sc.log_ndtr(ko[m])
    done |= m
    slow = np.flatnonzero(~done)  # finite, 0 < |rho| < 1, q < 0.3
    if slow.size:
        lp, ok = _log_bvn_owen(ho[slow], ko[slow], ro[slow])
        res[slow[ok]] = lp[ok]
        rest = slow[~ok]
        if rest.size:
            # the Plackett rule with more nodes (in u, then in v) still resolves the knee
            # down to q = 1e-7
            qr = q[oth[rest]]
            cond = np.ones(rest.size, dtype=bool)
            for qmin, nodes, sinh in _Q_TIERS:
                tier = cond & (qr >= qmin)
                if np.any(tier):
                    t = rest[tier]
                    res[t] = _log_bvn_plackett(ho[t], ko[t], ro[t], rule=_gl01(nodes),
                                               sinh=sinh)
                    cond &= ~tier
            c = rest[cond]
            if c.size:
                res[c] = _log_bvn_cond(ho[c], ko[c], ro[c])
    out[oth] = res
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
                q4: NDArray[np.float64],
                rule: tuple[NDArray[np.float64], NDArray[np.float64]] = _GL24
                ) -> NDArray[np.float64]:
    """int_a^b e^{-(u^2 - a^2)} g(u) du for 0 <= a < b <= inf (1-D arrays of pieces).

    g(u) = 2 sx p / (r (p^2 + 4 sx^2)), r = sqrt(u^2 + q4), p = r + u. Fixed 24-point
    Gauss-Legendre on [a, min(b, sqrt(a^2 + 37.5))]: the weight e^{-(u^2 - a^2)} there goes
    from a half Gaussian (a = 0) to an exponential with 37.5 e-folds (a large), both
    integrated to ~1e-16 by 24 points, and g is smooth on the window for q >= 0.6 (32
    points: q >= 0.3).
    """
    out = np.empty(a.shape)
    x, w = rule
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


def _bvn_pieces_sinh(a: NDArray[np.float64], b: NDArray[np.float64], sx: NDArray[np.float64],
                     q4: NDArray[np.float64],
                     rule: tuple[NDArray[np.float64], NDArray[np.float64]] = _GL40
                     ) -> NDArray[np.float64]:
    """:func:`_bvn_pieces` with u = 2 sqrt(q) sinh v (same integral, same window; q > 0).

    For small q, g(u) has a knee of width sqrt(q) at u = 0 that the rule in u resolves only
    with many nodes; in v, g(u) du = sech(v - v0) dv / 2 (v0 = log(sx / sqrt(q))), smooth
    on the scale 1, and e^{-(u^2 - a^2)} = e^{-(u - a)(u + a)} with u - a written without
    cancellation. 32 / 40 / 48 nodes resolve it down to q = 1e-2 / 1e-3 / 1e-7
    (``_Q_TIERS``; benchmarks/bvn_small_q.py).
    """
    out = np.empty(a.shape)
    x, w = rule
    for sl in _chunks(a.size):
        ai, sxi = a[sl], sx[sl]
        c = np.sqrt(q4[sl])  # 2 sqrt(q)
        bw = np.minimum(b[sl], np.sqrt(ai * ai + _T_WINDOW))
        va = np.arcsinh(ai / c)
        lv = np.arcsinh(bw / c) - va
        y = lv[:, None] * x  # v - va
        v = va[:, None] + y
        p = np.exp(v)
        # u - a = 2 c cosh((v + va)/2) sinh((v - va)/2) (no cancellation near the start)
        d = np.cosh(0.5 * v + (0.5 * va)[:, None])
        d *= np.sinh(0.5 * y)
        d *= (2.0 * c)[:, None]
        upa = (0.5 * c)[:, None] * (p - 1.0 / p) + ai[:, None]  # u + a
        f = np.exp(-d * upa)
        p *= c[:, None]  # r + u = c e^v
        f *= p
        p *= p
        p += (4.0 * sxi * sxi)[:, None]
        f /= p
        out[sl] = (f @ w) * (2.0 * sxi * lv)
    return out


def _log_bvn_plackett(h: NDArray[np.float64], k: NDArray[np.float64],
                      rho: NDArray[np.float64],
                      rule: tuple[NDArray[np.float64], NDArray[np.float64]] = _GL24,
                      sinh: bool = False) -> NDArray[np.float64]:
    """Fast k = 2 kernel (1-D arrays, finite h, k, 0 < |rho| < 1; q >= 0.6 with the
    default 24-point rule, q >= 0.3 with 32 points; the rules of ``_Q_TIERS`` below, in the
    variable v of :func:`_bvn_pieces_sinh` where ``sinh``)."""
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
    vals = (_bvn_pieces_sinh if sinh else _bvn_pieces)(pa, pb, psx, pq4, rule)
    total = np.zeros(h.shape)
    start = np.zeros(h.shape)
    # each element has at most one piece on each side (unique indices within each group)
    total[right] = vals[:right.size]
    total[left] += vals[right.size:]
    start[right] = pa[:right.size]
    start[left] = np.maximum(start[left], pa[right.size:])
    # A + C + 2q = max(h^2, k^2)/2
    with np.errstate(divide="ignore"):  # no piece (rho -> 0+): the integral is 0
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
            xn = np.where(bad, 0.5 * (ar + br), xn)
            # the mode only centres the window search: 1e-9 of the bracket is plenty
            conv = np.all(np.abs(xn - x) <= 1e-9 * (1.0 + np.abs(x)) + 1e-12 * (br - ar))
            x = xn
            if conv:
                break
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
            # smallest geometric candidate distance dmax 4^-j that is still outside (the
            # level set can be many orders of magnitude narrower than dmax: a kink of width
            # sqrt(1 - rho^2)), by bisection on j: L is decreasing away from the mode, so
            # "outside" is monotone in j (5 evaluations instead of 18); then Newton from
            # outside, which is monotone for concave L and never crosses the level set
            jlo = np.full(m_r.shape, -1)           # largest j known outside (-1: none yet)
            jhi = np.full(m_r.shape, _GEOM.size)   # smallest j known inside
            while True:
                act = jhi - jlo > 1
                if not act.any():
                    break
                mid = (jlo + jhi) // 2
                xm = m_r + side * dmax * _GEOM[np.minimum(mid, _GEOM.size - 1)]
                out_m = lfun(xm, rows)[0] < c_r
                jlo = np.where(act & out_m, mid, jlo)
                jhi = np.where(act & ~out_m, mid, jhi)
            # none outside: the level set reaches the domain end (candidate 0 = lim), or the
            # level is below the resolution of L (|L| ~ 1e14): keep the widest candidate
            x = m_r + side * dmax * _GEOM[np.maximum(jlo, 0)]
            go = jlo >= 0
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


def _owens_t_accurate(h: NDArray[np.float64], a: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Where scipy.special.owens_t(h, a) is accurate to a few eps of T(h, inf) (|h| < 3.3):
    for |a| > 1 it evaluates T(a h, 1/a), and its argument band [3.36, 3.45] is ~50x less
    accurate (measured against mpmath), so a |h| there is declined."""
    arg = np.abs(h) * np.maximum(1.0, np.abs(a))
    return ~((arg >= 3.3) & (arg <= 3.5))


def _log_bvn_owen(h: NDArray[np.float64], k: NDArray[np.float64], rho: NDArray[np.float64]
                  ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Owen's T form of Phi_2 where it is accurate: (log P, accepted) for 1-D arrays.

    P = t_h + t_k - T(h, a_h) - T(k, a_k), a_h = (k - rho h)/(h s), s = sqrt(1 - rho^2),
    t_x = Phi(x)/2, or -Phi(-x)/2 for the positive one of h, k when h k < 0 (Owen 1956,
    with the constant 1/2 folded in without cancellation). scipy.special.owens_t is
    accurate relative to T(h, inf) = Phi(-|h|)/2 to ~3e-15 for |h| < 3.3 (measured against
    mpmath; it degrades to 1e-13 for h in [3.36, 3.45] and 1e-2 beyond 9, and for |a| > 1
    it works with a h), so elements are accepted only for 0 < |h|, |k| < 3.3, a h outside
    [3.3, 3.5] (:func:`_owens_t_accurate`), and where the terms' magnitude is at most
    _OWEN_RATIO times P: relative error <= ~_OWEN_RATIO * 3e-15 (tests/test_orthant_fast.py).
    About 10x faster than the conditioning integral; it takes ~40% of the E-step's q < 0.3
    elements (thin cones near the mean), the rest cancel too much.
    """
    s = np.sqrt((1.0 - rho) * (1.0 + rho))
    ok = (np.abs(h) < _OWEN_HMAX) & (np.abs(k) < _OWEN_HMAX) & (h != 0) & (k != 0) & (s > 1e-8)
    out = np.zeros(h.shape)
    # Owen's T costs ~100 ns an element: evaluated only where it can be accepted
    i = np.flatnonzero(ok)
    h, k, s, rho = h[i], k[i], s[i], rho[i]
    sg = np.sign(rho)
    om = 1.0 - np.abs(rho)
    # k - rho h as (k - sgn(rho) h) + sgn(rho) (1 - |rho|) h: no cancellation where |rho| ~ 1
    # and k ~ sgn(rho) h
    ah = ((k - sg * h) + sg * om * h) / (h * s)
    ak = ((h - sg * k) + sg * om * k) / (k * s)
    acc = _owens_t_accurate(h, ah) & _owens_t_accurate(k, ak)
    i, h, k, ah, ak = i[acc], h[acc], k[acc], ah[acc], ak[acc]
    th_ = sc.owens_t(h, ah)
    tk_ = sc.owens_t(k, ak)
    opp = h * k < 0
    th = np.where(opp & (h > 0), -0.5 * sc.ndtr(-h), 0.5 * sc.ndtr(h))
    tk = np.where(opp & (k > 0), -0.5 * sc.ndtr(-k), 0.5 * sc.ndtr(k))
    P = th + tk - th_ - tk_
    mag = np.abs(th) + np.abs(tk) + np.abs(th_) + np.abs(tk_)
    good = P * _OWEN_RATIO > mag
    i = i[good]
    out[i] = np.log(P[good])
    accepted = np.zeros(out.shape, dtype=bool)
    accepted[i] = True
    return out, accepted


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
    if k == 2:
        r = corr[..., 0, 1]
        if (np.abs(r) > 1.0 + 1e-10).any():
            raise ValueError("cov is not positive semi-definite (its correlation matrix has "
                             f"eigenvalue {1.0 - np.abs(r).max():.3g})")
    elif k >= 3:
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
    if np.isfinite(hf).all():
        kern = {1: lambda a, b: sc.log_ndtr(a[:, 0]),
                2: lambda a, b: _log_bvn(a[:, 0], a[:, 1], b[:, 0, 1]),
                3: _log_tvn, 4: _log_qvn}[k]
        return kern(hf, Rf).reshape(lead)
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
        log P; 0.0 for k = 0. Relative accuracy of P (= absolute accuracy of log P), also
        in the tails (log P of -1e4 and below): 1e-13 for k <= 2, 1e-12 for k = 3, 1e-10
        for k = 4 where P >= 1e-20 (1e-10, 1e-10, 1e-9 below), plus ~4 eps cond(R)|log P|
        from the rounding of the inputs (see the module docstring).

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


# ----------------------------------------------------------- k = 3, 4: conditioning
#: Gauss-Legendre nodes and log window level of the outer conditioning integral
_SOV_NODES = {3: 40, 4: 32}
_SOV_LEVEL = {3: 36.0, 4: 32.0}
#: window passes before a result is accepted as it is
_SOV_PASSES = 10
_SOV_CHUNK = {3: 1024, 4: 128}
#: recursion depth of the panel splitting around kinks
_SOV_DEPTH = 14
#: open panels per problem in one level of the splitting
_SOV_MAX_PANELS = 8
#: agreement (log units) of a refined panel sum with its parent that accepts the sum
_REFINE_TOL = 5e-14


def _dominant_point(h: NDArray[np.float64], R: NDArray[np.float64]
                    ) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64],
                               NDArray[np.float64]]:
    """argmin of y^T R^-1 y / 2 subject to y <= h, by enumerating active sets (k <= 4).

    Parameters
    ----------
    h : ndarray, shape (N, k)
    R : ndarray, shape (N, k, k)

    Returns
    -------
    mu : ndarray, shape (N, k)
        The dominant point (the most likely point of the orthant).
    found : ndarray of bool, shape (N,)
        False where no active set passed the KKT test (numerically singular R).
    nu0 : ndarray, shape (N,)
        Multiplier of the constraint y_0 <= h_0 (0 when inactive): the slope of the log
        density of y_0 at h_0 in the Laplace approximation.
    var0 : ndarray, shape (N,)
        Variance of y_0 given the other active constraints held with equality (Laplace
        scale of y_0 when y_0 is inactive).
    """
    N, k = h.shape
    best = np.where((h >= 0).all(axis=1), 0.0, np.inf)
    mu = np.zeros((N, k))
    nu0 = np.zeros(N)
    var0 = np.ones(N)
    eye = np.eye(k)
    for mask in range(1, 1 << k):
        S = [j for j in range(k) if (mask >> j) & 1]
        Rss = R[:, S][:, :, S] + 1e-13 * eye[: len(S), : len(S)]
        hs = h[:, S]
        nus = -np.linalg.solve(Rss, hs[..., None])[..., 0]
        y = -np.einsum("nij,nj->ni", R[:, :, S], nus)
        tol = 1e-9 * (1.0 + np.abs(h))
        feas = (nus >= -1e-12).all(axis=1) & (y <= h + tol).all(axis=1)
        obj = -0.5 * np.einsum("ni,ni->n", nus, hs)
        upd = feas & (obj < best)
        if not np.any(upd):
            continue
        best[upd] = obj[upd]
        mu[upd] = y[upd]
        if 0 in S:
            nu0[upd] = nus[upd, S.index(0)]
            var0[upd] = 0.0
        else:
            r0s = R[upd][:, 0, S]
            sol = np.linalg.solve(Rss[upd], r0s[..., None])[..., 0]
            nu0[upd] = 0.0
            var0[upd] = np.maximum(1.0 - np.einsum("ni,ni->n", r0s, sol), 1e-30)
    return mu, np.isfinite(best), nu0, var0


def _adaptive_log_integral(
    evaluate: Callable[[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]],
                       tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]],
    plo: NDArray[np.float64], phi: NDArray[np.float64], a: NDArray[np.float64],
    b: NDArray[np.float64], n: int, level: float,
) -> NDArray[np.float64]:
    """log int_{plo}^{phi} e^{L(x)} dx for P unimodal (typically log-concave) integrands.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(p, A, B)`` for problem indices ``p`` (m,) and intervals [A, B] returns
        ``(Lr, X, off)``: the log-integrand minus ``off`` (m, n) at the n Gauss-Legendre
        nodes ``X`` (m, n) of [A, B], and ``off`` (m,) (a per-row constant kept apart so
        that the node values stay exact, e.g. -B^2/2).
    plo, phi : ndarray, shape (P,)
        Domains (``plo`` may be -inf, ``phi`` may be +inf).
    a, b : ndarray, shape (P,)
        Initial windows inside the domains (modified in place).
    n : int
        Gauss-Legendre nodes per window / panel.
    level : float
        Window = where the integrand is within e^-level of its maximum.

    Returns
    -------
    ndarray, shape (P,)

    Notes
    -----
    Window passes: extend a free end while the integrand there (or the secant bound of a
    concave log-integrand beyond it) is above the level, jumping to the level predicted by
    a parabola through the three outer nodes when the mode lies beyond the window; shrink
    to the bracket of the level set when fewer than 60% of the nodes lie above it. Then the
    Legendre coefficients of degree n-8..n-1 of the log-integrand at the nodes must be at
    rounding level; where not (a kink: inner correlation near +-1, near-collinear
    variables), the window is split around the kink (or bisected) recursively.
    """
    _, w = _gl01(n)
    tailT = _legendre_tail(n)
    rmax = math.sqrt(2.0 * level)
    user_evaluate = evaluate

    def evaluate(p, A, B):
        L, X, off = user_evaluate(p, A, B)
        return np.where(np.isnan(L), -np.inf, L), X, off

    def integral(L, lmax, A, B, off):
        fin = np.isfinite(lmax)
        lm = np.where(fin, lmax, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log(np.sum(w * np.exp(L - lm[:, None]), axis=1) * (B - A))
        return np.where(fin, lm + v + off, -np.inf)

    def smooth(L, lmax):
        """Whether the log-integrand is resolved: its Legendre coefficients of degree
        n-8..n-1 at the nodes are at rounding level. A kink (inner correlation near +-1,
        a near-collinear variable) leaves them large; so does a smooth peak that is merely
        under-resolved, which the parent/children comparison below then accepts."""
        lc = np.where(L > lmax[:, None] - 1e4, L, lmax[:, None] - 1e4)
        tail = np.abs(lc @ tailT.T).max(axis=1)
        scale = np.abs(lc).max(axis=1)
        return tail <= 1e-13 + 256.0 * np.finfo(float).eps * scale

    def split3(L, X, A, B):
        """Three panels: around the node where the slope of L jumps when that jump stands
        out (a kink: its panel is small, the others become smooth), else the two halves
        (an under-resolved smooth peak) and an empty third."""
        with np.errstate(invalid="ignore", divide="ignore"):
            sl = np.diff(L, axis=1) / np.diff(X, axis=1)
            jump = np.abs(np.diff(sl, axis=1))
        jump = np.where(np.isfinite(jump), jump, np.inf)
        j = np.argmax(jump, axis=1) + 1
        ar = np.arange(L.shape[0])
        med = np.median(jump, axis=1)
        kinky = jump[ar, j - 1] > 30.0 * med
        xk = X[ar, j]
        d = np.maximum(X[ar, j + 1] - xk, xk - X[ar, j - 1])
        mid = 0.5 * (A + B)
        c1 = np.where(kinky, np.maximum(A, xk - d), mid)
        c2 = np.where(kinky, np.minimum(B, xk + d), mid)
        return np.stack([A, c1, c2, B], axis=1)

    pres = np.full(plo.size, -np.inf)
    sub_lmax = np.full(plo.size, -np.inf)
    todo = np.ones(plo.size, dtype=bool)
    kinked = []  # (sub-problem, L, X, A, B)
    for npass in range(_SOV_PASSES):
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        A, B = a[idx], b[idx]
        W = B - A
        L, X, off = evaluate(idx, A, B)
        jmax = np.argmax(L, axis=1)
        lmax = L[np.arange(idx.size), jmax]
        c = lmax - level
        dead = ~np.isfinite(lmax)
        ar = np.arange(idx.size)
        lo_d, hi_d = plo[idx], phi[idx]
        # secants at the two ends: for concave L the secant line through the two outer
        # nodes lies above L beyond them, so it bounds L at the window end
        with np.errstate(divide="ignore", invalid="ignore"):
            sec_l = (L[:, 1] - L[:, 0]) / (X[:, 1] - X[:, 0])
            sec_r = (L[:, -1] - L[:, -2]) / (X[:, -1] - X[:, -2])
            left_free = A > lo_d
            left_ok = ~left_free | (L[:, 0] <= c) | (
                (sec_l > 0) & (L[:, 0] - sec_l * (X[:, 0] - A) <= c))
            right_free = B < hi_d
            right_ok = ~right_free | (L[:, -1] <= c) | (
                (sec_r < 0) & (L[:, -1] + sec_r * (B - X[:, -1]) <= c))
        left_ok &= ~dead
        right_ok &= ~dead
        above = L >= c[:, None]
        cnt = above.sum(axis=1)
        first = np.argmax(above, axis=1)
        last = n - 1 - np.argmax(above[:, ::-1], axis=1)
        # resolution: most nodes above the level, and no long stretch below it at an end
        # (a steep tail there costs nodes and, being far from polynomial, accuracy)
        frac_l = (X[np.arange(idx.size), first] - A) / W
        frac_r = (B - X[np.arange(idx.size), last]) / W
        res_ok = (cnt >= int(0.6 * n)) & (frac_l <= 0.15) & (frac_r <= 0.15)
        ok = left_ok & right_ok & res_ok
        if npass == _SOV_PASSES - 1:
            ok[:] = True
        if np.any(ok):
            j = idx[ok]
            sm = smooth(L[ok], lmax[ok]) | dead[ok]
            pres[j[sm]] = integral(L[ok][sm], lmax[ok][sm], A[ok][sm], B[ok][sm], off[ok][sm])
            sub_lmax[j] = lmax[ok] + off[ok]
            if not np.all(sm):
                nk = ~sm
                kinked.append((j[nk], integral(L[ok][nk], lmax[ok][nk], A[ok][nk], B[ok][nk],
                                               off[ok][nk]),
                               L[ok][nk], X[ok][nk], A[ok][nk], B[ok][nk]))
            todo[j] = False
        bad = ~ok
        if not np.any(bad):
            continue
        # new windows for the failures
        An, Bn = A.copy(), B.copy()
        # parabola through the three outer nodes on each side: where the mode lies
        # beyond the window (the end node is the largest), jump to its predicted level set
        with np.errstate(divide="ignore", invalid="ignore"):
            g_l = 2.0 * ((L[:, 2] - L[:, 1]) / (X[:, 2] - X[:, 1]) - sec_l) / (X[:, 2] - X[:, 0])
            g_r = 2.0 * (sec_r - (L[:, -2] - L[:, -3]) / (X[:, -2] - X[:, -3])) / (
                X[:, -1] - X[:, -3])
        curv_l = np.maximum(-np.where(np.isfinite(g_l), g_l, -1.0), 1.0)
        curv_r = np.maximum(-np.where(np.isfinite(g_r), g_r, -1.0), 1.0)
        ext_l = bad & ~left_ok & ~dead
        with np.errstate(divide="ignore", invalid="ignore"):
            # slope at the end node from the parabola, then the distance to the level
            d_l = sec_l + 0.5 * curv_l * (X[:, 1] - X[:, 0])
            m_l = X[:, 0] + np.minimum(d_l, 0.0) / curv_l  # predicted mode (<= X0)
            lm_l = L[:, 0] + np.where(d_l < 0, 0.5 * d_l * d_l / curv_l, 0.0)
            reach_l = np.sqrt(2.0 * np.maximum(lm_l - c, 0.0) / curv_l)
            # rigorous where the end still rises: secant bound; else the parabola, doubled
            step_l = np.where(sec_l > 0, (L[:, 0] - c) / sec_l, 2.0 * (X[:, 0] - m_l + reach_l))
        step_l = np.where(np.isfinite(step_l), step_l, 2.0 * W + rmax)
        step_l = np.maximum(step_l, 0.0)
        An = np.where(ext_l, np.maximum(lo_d, X[:, 0] - 1.1 * step_l - 0.01 * (W + step_l)
                                        - 1e-12 * np.abs(X[:, 0])), An)
        ext_r = bad & ~right_ok & ~dead
        with np.errstate(divide="ignore", invalid="ignore"):
            d_r = sec_r - 0.5 * curv_r * (X[:, -1] - X[:, -2])
            m_r = X[:, -1] + np.maximum(d_r, 0.0) / curv_r
            lm_r = L[:, -1] + np.where(d_r > 0, 0.5 * d_r * d_r / curv_r, 0.0)
            reach_r = np.sqrt(2.0 * np.maximum(lm_r - c, 0.0) / curv_r)
            step_r = np.where(sec_r < 0, (L[:, -1] - c) / -sec_r, 2.0 * (m_r - X[:, -1] + reach_r))
        step_r = np.where(np.isfinite(step_r), step_r, 2.0 * W + rmax)
        step_r = np.maximum(step_r, 0.0)
        Bn = np.where(ext_r, np.minimum(hi_d, X[:, -1] + 1.1 * step_r + 0.01 * (W + step_r)
                                        + 1e-12 * np.abs(X[:, -1])), Bn)
        # both ends outside but too wide: shrink to the bracket of the level set
        shrink = bad & left_ok & right_ok & ~res_ok
        if np.any(shrink):
            xa = np.where(first > 0, X[ar, np.maximum(first - 1, 0)], A)
            xb = np.where(last < n - 1, X[ar, np.minimum(last + 1, n - 1)], B)
            An = np.where(shrink, xa, An)
            Bn = np.where(shrink, xb, Bn)
        # nothing finite seen: widen both ways
        An = np.where(dead, np.maximum(lo_d, A - 2.0 * W - 1.0), An)
        Bn = np.where(dead, np.minimum(hi_d, B + 2.0 * W + 1.0), Bn)
        a[idx], b[idx] = An, np.maximum(Bn, An + 1e-300)

    # windows whose log-integrand is not resolved: adaptive refinement. Each parent is
    # split (around its kink, or in halves); where the children's sum agrees with the
    # parent to _REFINE_TOL the children's (far smaller) error is accepted, otherwise the
    # children that are not resolved themselves become parents.
    if kinked:
        par_sub = np.concatenate([kk[0] for kk in kinked])
        par_val = np.concatenate([kk[1] for kk in kinked])
        cuts = np.concatenate([split3(*kk[2:]) for kk in kinked])
        for depth in range(_SOV_DEPTH):
            m = par_sub.size
            c_par = np.repeat(np.arange(m), 3)
            c_a = cuts[:, :3].ravel()
            c_b = cuts[:, 1:].ravel()
            keep = c_b > c_a
            c_par, c_a, c_b = c_par[keep], c_a[keep], c_b[keep]
            c_sub = par_sub[c_par]
            L, X, off = evaluate(c_sub, c_a, c_b)
            lmax = L.max(axis=1)
            val = integral(L, lmax, c_a, c_b, off)
            tot = np.full(m, -np.inf)
            np.logaddexp.at(tot, c_par, val)
            with np.errstate(invalid="ignore"):
                agree = (np.abs(tot - par_val) <= _REFINE_TOL * np.maximum(1.0, np.abs(tot))) | (
                    ~np.isfinite(tot) & ~np.isfinite(par_val))
            last = depth == _SOV_DEPTH - 1
            if last:
                agree[:] = True
            np.logaddexp.at(pres, par_sub[agree], tot[agree])
            open_ = ~agree[c_par]
            negligible = (lmax + off) < sub_lmax[c_sub] - level - 20.0
            fine = open_ & (negligible | ~np.isfinite(lmax) | smooth(L, lmax))
            np.logaddexp.at(pres, c_sub[fine], val[fine])
            nxt = open_ & ~fine
            if not np.any(nxt):
                break
            # bound the work (an integrand that is not resolved after _SOV_MAX_PANELS open
            # panels per problem is accepted as it is)
            cnt_open = np.bincount(c_sub[nxt], minlength=plo.size)
            over = nxt & (cnt_open[c_sub] > _SOV_MAX_PANELS)
            if np.any(over):
                np.logaddexp.at(pres, c_sub[over], val[over])
                nxt &= ~over
                if not np.any(nxt):
                    break
            par_sub, par_val = c_sub[nxt], val[nxt]
            cuts = split3(L[nxt], X[nxt], c_a[nxt], c_b[nxt])
    return pres


@_quiet
def _log_mvn_sov(h: NDArray[np.float64], R: NDArray[np.float64],
                 cond: int | None = None) -> NDArray[np.float64]:
    """k = 3, 4 by conditioning on one variable (rows of finite h; ``cond`` forces the
    conditioning variable, for tests: the default is the least correlated one).

    log P = log int_{-inf}^{h_i} phi(x) Phi_{k-1}(beta(x); R') dx with the k-1 kernel
    inside, beta_m(x) = (h_m - r_mi x)/s_m, s_m = sqrt(1 - r_mi^2) and R' the conditional
    correlation. The log-integrand is concave with curvature >= 1 (Prekopa). Window: the
    Laplace approximation at the dominant point, then node-based passes until the
    integrand at both free window ends is below e^-level of its maximum (extending with
    the secant bound of a concave function) and at least 60% of the nodes lie above that
    level (shrinking to the bracket of the level set, exact for a concave function).
    """
    N, k = h.shape
    out = np.empty(N)
    for sl in _chunks(N, _SOV_CHUNK[k]):
        out[sl] = _sov_chunk(h[sl], R[sl], cond)
    return out


def _sov_chunk(h: NDArray[np.float64], R: NDArray[np.float64],
               cond: int | None = None) -> NDArray[np.float64]:
    N, k = h.shape
    n, level = _SOV_NODES[k], _SOV_LEVEL[k]
    rows = np.arange(N)
    # condition on the variable least correlated with the others: the inner bounds
    # beta(x) then have the smallest slopes (no kinks of width sqrt(1 - r^2))
    absr = np.abs(R) - np.eye(k)
    i0 = np.argmin(absr.max(axis=2) + 1e-9 * h, axis=1)
    if cond is not None:
        i0[:] = cond
    order = np.empty((N, k), dtype=np.int64)
    order[:, 0] = i0
    others = np.array([[j for j in range(k) if j != i] for i in range(k)])
    order[:, 1:] = others[i0]
    hp = np.take_along_axis(h, order, axis=1)
    Rp = R[rows[:, None, None], order[:, :, None], order[:, None, :]]
    r = Rp[:, 0, 1:]
    s = np.sqrt(np.maximum((1.0 - r) * (1.0 + r), 1e-300))
    Rc = (Rp[:, 1:, 1:] - r[:, :, None] * r[:, None, :]) / (s[:, :, None] * s[:, None, :])
    Rc = np.clip(Rc, -1.0, 1.0)
    idx_d = np.arange(k - 1)
    Rc[:, idx_d, idx_d] = 1.0
    hi = hp[:, 0]
    hr = hp[:, 1:]
    sg = np.where(r >= 0, 1.0, -1.0)
    om = 1.0 - np.abs(r)

    # Where every inner bound is >= _Z_FLAT the inner probability is 1 - O(1e-17):
    # that interval [f_lo, f_hi] of x is a closed form, and what remains are at most two
    # intervals on which the integrand is single-scale (a near-collinear variable has a
    # kink of width s_m/|r_m| at the edge of that interval; see _log_bvn_cond)
    with np.errstate(divide="ignore", invalid="ignore"):
        edge = (hr - _Z_FLAT * s) / r
    f_hi = np.min(np.where(r > 0, edge, np.inf), axis=1)
    f_lo = np.max(np.where(r < 0, edge, -np.inf), axis=1)
    never = ((r == 0) & (hr < _Z_FLAT)).any(axis=1)
    f_hi = np.minimum(f_hi, hi)
    flat = ~never & (f_lo < f_hi)
    res = np.full(N, -np.inf)
    if np.any(flat):
        res[flat] = _log_ndtr_diff(f_lo[flat], f_hi[flat])
    # sub-problems (row, domain [plo, phi])
    sub_left = np.flatnonzero(flat & (f_lo > -np.inf))
    sub_right = np.flatnonzero(flat & (f_hi < hi))
    sub_all = np.flatnonzero(~flat)
    prow = np.concatenate([sub_all, sub_left, sub_right])
    plo = np.concatenate([np.full(sub_all.size, -np.inf), np.full(sub_left.size, -np.inf),
                          f_hi[sub_right]])
    phi = np.concatenate([hi[sub_all], f_lo[sub_left], hi[sub_right]])
    if prow.size == 0:
        return res

    # initial windows: the Laplace approximation at the dominant point, cut to the domain
    a0, b0 = _laplace_interval(hp, Rp, hi, level)
    kink = np.min(s / np.maximum(np.abs(r), 1e-300), axis=1)
    span = np.minimum(math.sqrt(2.0 * level), 30.0 * kink)[prow]
    a, b = _into_domain(a0[prow], b0[prow], plo, phi, span)

    x, _ = _gl01(n)

    def evaluate(p, A, B):
        """log-integrand at the GL nodes of [A, B] for problems p: (L - off, nodes, off)."""
        rw = prow[p]
        W = B - A
        # nodes as exact offsets y from the right end B (see _log_bvn_cond)
        y = W[:, None] * (1.0 - x)
        Bh = B[:, None]
        beta_b = ((hr[rw] - sg[rw] * Bh) + sg[rw] * om[rw] * Bh) / s[rw]
        beta = beta_b[:, :, None] + (r[rw] / s[rw])[:, :, None] * y[:, None, :]
        bt = beta.transpose(0, 2, 1).reshape(-1, k - 1)
        if k == 3:
            li = _log_bvn(bt[:, 0], bt[:, 1], np.repeat(Rc[rw, 0, 1], n))
        else:
            li = _log_mvn_cdf_std(bt, np.repeat(Rc[rw], n, axis=0))
        return ((Bh * y - 0.5 * y * y) + li.reshape(rw.size, n), Bh - y,
                -0.5 * B * B - _LOG_SQRT_2PI)

    pres = _adaptive_log_integral(evaluate, plo, phi, a, b, n, level)

    # combine the pieces of each row (closed form and up to two integrals)
    for part in (slice(0, sub_all.size), slice(sub_all.size, sub_all.size + sub_left.size),
                 slice(sub_all.size + sub_left.size, prow.size)):
        rr = prow[part]
        res[rr] = np.logaddexp(res[rr], pres[part])
    return res


@functools.cache
def _legendre_tail(n: int, m: int = 8) -> NDArray[np.float64]:
    """Rows n-m..n-1 of the discrete Legendre transform at the n Gauss-Legendre nodes:
    coefficient c_j = (2j+1)/2 sum_i w_i P_j(y_i) f(y_i) on [-1, 1]."""
    x01, w01 = _gl01(n)
    y, wy = 2.0 * x01 - 1.0, 2.0 * w01
    P = np.zeros((n, n))
    P[0] = 1.0
    if n > 1:
        P[1] = y
    for j in range(2, n):
        P[j] = ((2 * j - 1) * y * P[j - 1] - (j - 1) * P[j - 2]) / j
    coef = (2 * np.arange(n) + 1)[:, None] / 2.0 * P * wy[None, :]
    out = np.ascontiguousarray(coef[n - m:])
    out.flags.writeable = False
    return out


@_quiet
def _log_tvn(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """k = 3: log P(Y <= h), Y ~ N(0, R), R a correlation matrix; h (N, 3), R (N, 3, 3).

    Fast path (:func:`_log_tvn_plackett`); rows with a correlation within 1e-9 of +-1 go
    to the conditioning integral with the bivariate kernel inside (:func:`_log_mvn_sov`).
    """
    h = np.asarray(h, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    off = np.abs(R[:, [0, 0, 1], [1, 2, 2]])
    degen = (off > 1.0 - 1e-9).any(axis=1)
    out = np.empty(h.shape[0])
    fast = np.flatnonzero(~degen)
    for sl in _chunks(fast.size, 4096):
        out[fast[sl]] = _log_tvn_plackett(h[fast[sl]], R[fast[sl]])
    if np.any(degen):
        out[degen] = _log_mvn_sov(h[degen], R[degen])
    return out


#: Gauss-Legendre nodes / window level of the two 1-D integrals of the k = 3 fast path
_TVN_NODES = 40
_TVN_LEVEL = 36.0


def _log_tvn_plackett(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """k = 3 as a base probability plus a Plackett integral, both with positive terms.

    With i the conditioning variable, j, k the others, s_m = sqrt(1 - r_im^2),
    beta_m(x) = (h_m - r_im x)/s_m and c = rho_{jk.i} the partial correlation:

        c >= 0:  P = int_{-inf}^{h_i} phi(x) Phi(beta_j) Phi(beta_k) dx
                     + int_{r_ij r_ik}^{r_jk} phi_2(h_j, h_k; r) Phi(u_i(r)) dr
        c <  0:  P = int phi(x) [Phi(beta_j) + Phi(beta_k) - 1]_+ dx
                     + int_{r_ij r_ik - s_j s_k}^{r_jk} phi_2(h_j, h_k; r) Phi(u_i(r)) dr

    The base is the probability at the correlation r_jk where Y_j, Y_k are independent
    (c = 0) or perfectly anti-correlated (c = -1) given Y_i; the second term is Plackett's
    identity dP/dr_jk = phi_2(h_j, h_k; r_jk) Phi(u_i), u_i the standardised bound of Y_i
    given Y_j = h_j, Y_k = h_k. Both integrands have elementary nodes (log_ndtr, exp); the
    Plackett integral uses the Gaussianising variable of the bivariate kernel (u, with
    r = (1 - t^2)/(1 + t^2), u = sqrt(C) t - sqrt(A)/t). Both are done by
    :func:`_adaptive_log_integral`. i: a variable with c >= 0 if there is one, the least
    correlated with the others among those.
    """
    N = h.shape[0]
    rows = np.arange(N)
    n, level = _TVN_NODES, _TVN_LEVEL
    r01, r02, r12 = R[:, 0, 1], R[:, 0, 2], R[:, 1, 2]
    rr = np.stack([np.stack([r01, r02, r12], 1), np.stack([r01, r12, r02], 1),
                   np.stack([r02, r12, r01], 1)], 1)  # per i: (r_ij, r_ik, r_jk)
    sj = np.sqrt((1.0 - rr[..., 0]) * (1.0 + rr[..., 0]))
    sk = np.sqrt((1.0 - rr[..., 1]) * (1.0 + rr[..., 1]))
    pc = (rr[..., 2] - rr[..., 0] * rr[..., 1]) / (sj * sk)  # partial correlations (N, 3)
    score = np.maximum(np.abs(rr[..., 0]), np.abs(rr[..., 1])) + np.where(pc >= 0, 0.0, 10.0)
    i = np.argmin(score, axis=1)
    jk = np.array([[1, 2], [0, 2], [0, 1]])[i]
    hi_ = h[rows, i]
    hj, hk = h[rows, jk[:, 0]], h[rows, jk[:, 1]]
    rij, rik, rjk = rr[rows, i, 0], rr[rows, i, 1], rr[rows, i, 2]
    s_j, s_k, c = sj[rows, i], sk[rows, i], pc[rows, i]
    anti = c < 0  # base at c = -1

    # ---------------------------------------------------------------- base integral
    with np.errstate(divide="ignore", invalid="ignore"):
        e_j = (hj - _Z_FLAT * s_j) / rij
        e_k = (hk - _Z_FLAT * s_k) / rik
    f_hi = np.minimum(np.minimum(np.where(rij > 0, e_j, np.inf), np.where(rik > 0, e_k, np.inf)),
                      hi_)
    f_lo = np.maximum(np.where(rij < 0, e_j, -np.inf), np.where(rik < 0, e_k, -np.inf))
    never = ((rij == 0) & (hj < _Z_FLAT)) | ((rik == 0) & (hk < _Z_FLAT))
    flat = ~never & (f_lo < f_hi)
    base = np.full(N, -np.inf)
    if np.any(flat):
        base[flat] = _log_ndtr_diff(f_lo[flat], f_hi[flat])
    # support of [Phi(beta_j) + Phi(beta_k) - 1]_+ : beta_j + beta_k > 0, a half-line in x
    slope = rij / s_j + rik / s_k
    icpt = hj / s_j + hk / s_k
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = icpt / slope
    sup_lo = np.where(anti & (slope < 0), xs, -np.inf)
    sup_hi = np.where(anti & (slope > 0), xs, np.inf)
    empty = anti & (slope == 0) & (icpt <= 0)
    dlo = np.maximum(sup_lo, -np.inf)
    dhi = np.minimum(sup_hi, hi_)
    # pieces outside the flat interval, inside the support
    p_row, p_lo, p_hi = [], [], []
    for lo_, hi2 in ((dlo, np.where(flat, np.minimum(f_lo, dhi), dhi)),
                     (np.where(flat, np.maximum(f_hi, dlo), np.inf), dhi)):
        sel = np.flatnonzero(~empty & (lo_ < hi2) & (flat | (lo_ == dlo)))
        p_row.append(sel)
        p_lo.append(lo_[sel])
        p_hi.append(hi2[sel])
    prow = np.concatenate(p_row)
    plo = np.concatenate(p_lo)
    phi = np.concatenate(p_hi)
    if prow.size:
        # initial windows: Laplace at the dominant point of the base problem
        R0 = np.empty((N, 3, 3))
        R0[:] = np.eye(3)
        r0jk = rij * rik - np.where(anti, s_j * s_k, 0.0)
        R0[:, 0, 1] = R0[:, 1, 0] = rij
        R0[:, 0, 2] = R0[:, 2, 0] = rik
        R0[:, 1, 2] = R0[:, 2, 1] = r0jk
        hh = np.stack([hi_, hj, hk], axis=1)
        a, b = _laplace_window(hh[prow], R0[prow], plo, phi, level)
        x, _ = _gl01(n)
        bj_s, bk_s = rij / s_j, rik / s_k

        def ev_base(p, A, B):
            rw = prow[p]
            y = (B - A)[:, None] * (1.0 - x)
            Bh = B[:, None]
            b_j = ((hj[rw] - rij[rw] * B) / s_j[rw])[:, None] + bj_s[rw][:, None] * y
            b_k = ((hk[rw] - rik[rw] * B) / s_k[rw])[:, None] + bk_s[rw][:, None] * y
            lf = np.empty(y.shape)
            an = anti[rw]
            if np.any(~an):
                lf[~an] = sc.log_ndtr(b_j[~an]) + sc.log_ndtr(b_k[~an])
            if np.any(an):
                lf[an] = _log_ndtr_diff(-b_k[an], b_j[an])
            return (Bh * y - 0.5 * y * y) + lf, Bh - y, -0.5 * B * B - _LOG_SQRT_2PI

        vals = _adaptive_log_integral(ev_base, plo, phi, a, b, n, level)
        for part in np.split(np.arange(prow.size), np.cumsum([v.size for v in p_row])[:-1]):
            base[prow[part]] = np.logaddexp(base[prow[part]], vals[part])

    # ------------------------------------------------------------- Plackett integral
    ra = rij * rik - np.where(anti, s_j * s_k, 0.0)
    has = rjk > ra
    corr = np.full(N, -np.inf)
    if np.any(has):
        q_ = np.flatnonzero(has)
        corr[q_] = _tvn_plackett_term(hi_[q_], hj[q_], hk[q_], rij[q_], rik[q_], rjk[q_],
                                      ra[q_], s_j[q_], s_k[q_], n, level)
    return np.logaddexp(base, corr)


def _laplace_window(h: NDArray[np.float64], R: NDArray[np.float64], plo: NDArray[np.float64],
                    phi: NDArray[np.float64], level: float
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Initial window of the conditioning integral over y_0 in [plo, phi]: the Laplace
    approximation at the dominant point of P(Y <= h), cut to the domain."""
    a, b = _laplace_interval(h, R, np.minimum(h[:, 0], phi), level)
    rmax = math.sqrt(2.0 * level)
    span = np.minimum(rmax, np.where(np.isfinite(phi - plo), phi - plo, rmax))
    return _into_domain(a, b, plo, phi, span)


def _laplace_interval(h: NDArray[np.float64], R: NDArray[np.float64], hi: NDArray[np.float64],
                      level: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """[a, b] around the mass of y_0 <= hi from the Laplace approximation at the dominant
    point of P(Y <= h): the level set of a Gaussian in y_0, or of the tangent where the
    dominant point lies on the face y_0 = h_0 (widened by 10-20%)."""
    mu, found, nu0, var0 = _dominant_point(h, R)
    rmax = math.sqrt(2.0 * level)
    active0 = found & (var0 == 0.0)
    with np.errstate(divide="ignore"):
        w_act = np.minimum(1.2 * rmax, 1.2 * level / nu0)
    sd = np.sqrt(var0)
    a = np.where(active0, hi - w_act, mu[:, 0] - 1.1 * rmax * sd)
    b = np.where(active0, hi, np.minimum(hi, mu[:, 0] + 1.1 * rmax * sd))
    a = np.where(found, a, np.minimum(hi, 0.0) - 1.2 * rmax)
    b = np.where(found, b, hi)
    return a, b


def _into_domain(a: NDArray[np.float64], b: NDArray[np.float64], plo: NDArray[np.float64],
                 phi: NDArray[np.float64], span: NDArray[np.float64]
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """[a, b] cut to the domain [plo, phi]; a window entirely outside it starts at the
    nearer domain end with width ``span``."""
    a = np.maximum(a, plo)
    b = np.minimum(b, phi)
    below = b <= plo
    a = np.where(below, plo, a)
    b = np.where(below, np.minimum(phi, plo + span), b)
    above_ = a >= phi
    b = np.where(above_, phi, b)
    a = np.where(above_, np.maximum(plo, phi - span), a)
    return np.minimum(a, b - 1e-300), b


def _tvn_plackett_term(hi_, hj, hk, rij, rik, rjk, ra, s_j, s_k, n, level):
    """log int_{ra}^{rjk} phi_2(hj, hk; r) Phi(u_i(r)) dr (1-D arrays)."""
    sa = np.abs(hj - hk) / _SQRT8
    sc_ = np.abs(hj + hk) / _SQRT8
    q4 = 4.0 * sa * sc_
    # t = sqrt((1 - r)/(1 + r)); r = rjk <-> t_b (smaller), r = ra <-> t_a
    t_b = np.sqrt((1.0 - rjk) / (1.0 + rjk))
    with np.errstate(divide="ignore"):
        t_a = np.sqrt((1.0 - ra) / (1.0 + ra))
    degen = (sa * sa + sc_ * sc_) < 1e-12  # h_j = h_k = 0: u would be constant; use psi
    with np.errstate(divide="ignore", invalid="ignore"):
        u_lo = np.where(degen, np.arctan(t_b), sc_ * t_b - sa / t_b)
        u_hi = np.where(degen, np.arctan(t_a), np.where(np.isinf(t_a), np.inf, sc_ * t_a - sa / t_a))
    # initial window: the Gaussian e^{-u^2} (psi: the whole interval)
    rmax = math.sqrt(level)
    a = np.where(degen, u_lo, np.maximum(u_lo, -rmax))
    b = np.where(degen, u_hi, np.minimum(u_hi, rmax))
    one_r = u_lo >= rmax
    a = np.where(one_r & ~degen, u_lo, a)
    b = np.where(one_r & ~degen, np.minimum(u_hi, np.sqrt(u_lo * u_lo + level)), b)
    one_l = u_hi <= -rmax
    b = np.where(one_l & ~degen, u_hi, b)
    a = np.where(one_l & ~degen, np.maximum(u_lo, -np.sqrt(u_hi * u_hi + level)), a)
    a = np.minimum(a, b - 1e-300)
    x, _ = _gl01(n)
    off = np.where(degen, 0.0, -0.5 * np.maximum(hj * hj, hk * hk)) - _LOG_PI
    # u_i = (h_i (1 - r^2) - (r_ij - r r_ik) h_j - (r_ik - r r_ij) h_k) / sqrt(det (1 - r^2))
    # det = s_j^2 s_k^2 (1 - c)(1 + c), c = (r - r_ij r_ik)/(s_j s_k)
    sjk = s_j * s_k
    r0 = rij * rik

    def ev(p, A, B):
        u = A[:, None] + (B - A)[:, None] * x
        dg = degen[p][:, None]
        if np.any(dg):
            t_psi = np.tan(u)
        rq = np.sqrt(u * u + q4[p][:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(u >= 0, (u + rq) / (2.0 * sc_[p][:, None]),
                         2.0 * sa[p][:, None] / (rq - u))
            if np.any(dg):
                t = np.where(dg, t_psi, t)
            lg = np.where(dg, 0.0, -u * u - np.log(rq * (t + 1.0 / t)))
            tt = t * t
            one_p = 1.0 + tt
            r = (1.0 - tt) / one_p
            omr2 = 4.0 * tt / (one_p * one_p)  # 1 - r^2
            cc = (r - r0[p][:, None]) / sjk[p][:, None]
            det = sjk[p][:, None] ** 2 * (1.0 - cc) * (1.0 + cc)
            num = (hi_[p][:, None] * omr2 - (rij[p][:, None] - r * rik[p][:, None]) * hj[p][:, None]
                   - (rik[p][:, None] - r * rij[p][:, None]) * hk[p][:, None])
            ui = num / np.sqrt(np.maximum(det, 0.0) * omr2)
        ui = np.where(np.isnan(ui), -np.inf, ui)
        return lg + sc.log_ndtr(ui), u, off[p]

    return _adaptive_log_integral(ev, u_lo, u_hi, a, b, n, level)


@_quiet
def _log_qvn(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """k = 4: log P(Y <= h), Y ~ N(0, R), R a correlation matrix; h (N, 4), R (N, 4, 4)."""
    return _log_mvn_sov(np.asarray(h, dtype=np.float64), np.asarray(R, dtype=np.float64))


_log_mvn_cdf_k3 = _log_tvn
_log_mvn_cdf_k4 = _log_qvn
