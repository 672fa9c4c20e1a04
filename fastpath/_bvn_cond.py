"""The bivariate normal orthant for q = |h^2 - k^2|/8 near 0: Owen's T form and the
conditioning integral.

Plackett's integrand (:mod:`fastpath._bvn`) has a knee of width sqrt(q) at u = 0, which
fixed rules stop resolving as q -> 0. :func:`fastpath._bvn._log_bvn` offers those elements
first to Owen's T form (:func:`_log_bvn_owen`), the cheapest of the paths, which is kept
only where it is accurate: |h|, |k| < 3.3 and at most a factor 16 of cancellation among its
terms (it accepts the thin cones near the mean that are a large part of an S = 2 E-step's
q < 0.3 elements). What it declines goes to Plackett's rule with more nodes
(``_Q_TIERS``) and, below q = 1e-7, where no rule of those reaches the tolerance, to the
conditioning integral (:func:`_log_bvn_cond`)

    P = int_{-inf}^{h} phi(x) Phi(z(x)) dx,   z(x) = (k - rho x)/sqrt(1 - rho^2),  h <= k,

whose log-integrand is concave with curvature >= 1. Where z >= 8.5, Phi(z) = 1 to 1e-17 and
that part is a closed form (a difference of normal cdfs); on the rest the integrand is
single-scale and is integrated by 40-point Gauss-Legendre on the window where it is within
e^{-40} of its maximum (mode by safeguarded Newton, window ends by Newton on the level set:
:func:`_logconcave_window`). It is accurate for every q but is the most expensive k = 2 path
(about 60 log_ndtr per element), hence the last resort.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy import special as sc

from ._orthant_rules import _GL40, _LOG_SQRT_2PI, _Z_FLAT, _chunks, _log_ndtr_diff

#: Owen's T path (k = 2, q < _Q_FAST): |h|, |k| below this, cancellation at most this
_OWEN_HMAX = 3.3
_OWEN_RATIO = 16.0
#: level (log) of the window of the conditioning integral
_T_COND = 40.0
#: relative candidate distances of the window search: 1, 1/4, ..., 4^-17
_GEOM = 4.0 ** -np.arange(18)


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
    _OWEN_RATIO times P: relative error <= ~_OWEN_RATIO * 3e-15
    (tests/test_orthant_fast_bvn.py). The cheapest of the q < 0.3 paths; it accepts the
    thin cones near the mean, a large part of an E-step's q < 0.3 elements (the rest cancel
    too much).
    """
    s = np.sqrt((1.0 - rho) * (1.0 + rho))
    ok = (np.abs(h) < _OWEN_HMAX) & (np.abs(k) < _OWEN_HMAX) & (h != 0) & (k != 0) & (s > 1e-8)
    out = np.zeros(h.shape)
    # Owen's T is the expensive step: evaluated only where it can be accepted
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

