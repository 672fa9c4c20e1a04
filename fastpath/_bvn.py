"""The bivariate normal orthant probability P(X <= h, Y <= k), correlation rho, in log space.

:func:`_log_bvn` is the k = 2 kernel: it routes every element to the cheapest method that
is accurate for it and returns log P with relative accuracy of P about 1e-13, down to
log P of -1e4 and below (no path forms P and then takes its log in a tail). It runs the
compiled kernel of :mod:`fastpath._jit_bvn`, element by element; the numpy implementation
here (:func:`_log_bvn_numpy`, array by array) is the one the rules below were designed
and measured in, and the second implementation the compiled one is tested against.

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
(a >= 0 the start of the piece). Only exp, sqrt and arithmetic per node: this is the fast
path, used for q >= 0.6 (32 nodes for 0.3 <= q < 0.6).

For q < 0.3 (|h| close to |k|) g has a knee of width sqrt(q) at u = 0 and the 24-point rule
loses digits. Those elements go to Owen's T form where it is accurate
(:mod:`fastpath._bvn_cond`), else to the Plackett rule with 48 nodes (down to q = 0.03) or
in the variable v of u = 2 sqrt(q) sinh v, which stretches the knee to width 1, with 32-48
nodes down to q = 1e-7 (``_Q_TIERS``), and below q = 1e-7 to the conditioning integral
(:mod:`fastpath._bvn_cond`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special as sc

from ._bvn_cond import _log_bvn_cond, _log_bvn_owen
from ._orthant_rules import (
    _CHUNK,
    _GL24,
    _GL32,
    _GL40,
    _LOG_PI,
    _SQRT8,
    _chunks,
    _gl01,
    _log_ndtr_diff,
    _quiet,
)
from ._threads import serial_below

#: log of the relative truncation of a quadrature window (e^-37.5 = 5e-17)
_T_WINDOW = 37.5
#: k = 2 elements with q = |h^2 - k^2|/8 below _Q_FAST go to the small-q paths (Owen's T,
#: the rules of _Q_TIERS, the conditioning integral); the Plackett rule has 24 nodes for
#: q >= _Q_24, 32 below (measured: both within 1/5 of the 1e-13 tolerance there against the
#: conditioning kernel, 2e5 random cases)
_Q_FAST = 0.3
_Q_24 = 0.6
#: q < _Q_FAST elements that Owen's T declines: (q bound, nodes, in v = asinh(u / 2 sqrt q))
#: Plackett's rule for q >= the bound; the conditioning integral below q = 1e-7. Measured
#: against the conditioning kernel (benchmarks/bvn_small_q.py, 2e5 random and 4e5 E-step
#: elements): <= 0.14 (u rules) and <= 0.21 (v rules) of the 1e-13 tolerance; the next
#: smaller rules fail it by 2.8x (v, 32 nodes on [1e-3, 1e-2)) to 560x. In v the rules
#: are cheaper than a rule in u or the conditioning integral of the same accuracy. The v48
#: rule stops at 1e-7: below it fails the tolerance by up to 5x (q in [1e-9, 1e-8), 1.2e5
#: random elements; 0.76 of it on [1e-8, 1e-7), 0.14 on [1e-7, 1e-5)).
#: calls with fewer elements than this (~3 ms on one thread) run on the calling thread
_SERIAL_ELEMENTS = 15_000
_Q_TIERS = ((0.03, 48, False), (0.01, 32, True), (1e-3, 40, True), (1e-7, 48, True))
#: |rho| (1 + |h|)(1 + |k|) below this: P = Phi(h) Phi(k) to within it relatively, since
#: dP/drho = phi_2 <= (1 + |h|)(1 + |k|) Phi(h) Phi(k) near rho = 0 (Mills' ratio); such
#: correlations (|rho| < ~1e-190 at q < 1e-7) overflow the conditioning integral's window
_RHO_NEGLIGIBLE = 1e-17


def _log_bvn(h: ArrayLike, k: ArrayLike, rho: ArrayLike) -> NDArray[np.float64]:
    """log P(X <= h, Y <= k) for a standard bivariate normal with correlation ``rho``: the
    compiled kernel (:mod:`fastpath._jit_bvn`, the same rules element by element).

    Parameters
    ----------
    h, k : array_like
        Upper bounds, broadcast together with ``rho``; may be ``+-inf``.
    rho : array_like
        Correlation in [-1, 1]; ``+-1`` is the degenerate (one-dimensional) case.

    Returns
    -------
    ndarray
        log P, broadcast shape. Relative accuracy of P about 1e-13 (module notes).
    """
    from ._jit_bvn import log_bvn_vec

    h, k, rho = np.broadcast_arrays(np.asarray(h, dtype=np.float64),
                                    np.asarray(k, dtype=np.float64),
                                    np.asarray(rho, dtype=np.float64))
    shape = h.shape
    with serial_below(h.size, _SERIAL_ELEMENTS):
        out = log_bvn_vec(np.ascontiguousarray(h).ravel(), np.ascontiguousarray(k).ravel(),
                          np.ascontiguousarray(rho).ravel())
    return out.reshape(shape)


@_quiet
def _log_bvn_numpy(h: ArrayLike, k: ArrayLike, rho: ArrayLike) -> NDArray[np.float64]:
    """:func:`_log_bvn` in numpy, array by array (with Owen's T form for q < 0.3 where it
    is accurate): the second implementation the compiled kernel is tested against. Same
    parameters, result and accuracy as :func:`_log_bvn`."""
    h, k, rho = np.broadcast_arrays(np.asarray(h, dtype=np.float64),
                                    np.asarray(k, dtype=np.float64),
                                    np.asarray(rho, dtype=np.float64))
    shape = h.shape
    h, k, rho = h.ravel(), k.ravel(), rho.ravel()
    out = np.empty(h.shape)
    q = np.abs(h - k) * np.abs(h + k) / 8.0
    indep = (rho == 0.0) | (np.abs(rho) * (1.0 + np.abs(h)) * (1.0 + np.abs(k))
                            < _RHO_NEGLIGIBLE)
    # regular elements: finite, 0 < |rho| < 1 (comparisons with nan are False); q is nan
    # or inf for non-finite bounds
    fast = (q >= _Q_FAST) & (q < np.inf) & (np.abs(rho) < 1.0) & ~indep
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
    m = ~done & indep[oth]
    res[m] = sc.log_ndtr(ho[m]) + sc.log_ndtr(ko[m])
    done |= m
    slow = np.flatnonzero(~done)  # finite, 0 < |rho| < 1 (not negligible), q < 0.3
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


