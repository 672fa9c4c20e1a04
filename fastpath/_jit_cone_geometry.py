"""The geometry of the compiled S = 2 cone sums (:mod:`fastpath._jit_cones`) for one
(Cholesky factor U, polygon) pair: membership, the nearest point over the edges in whitened
coordinates, the cubature routing's spread bound and cone thinness, and the per-thread
cache of what does not depend on the Gaussian's mean (:func:`_whiten`), read back by
:func:`_nearest_cached` and the cone kernel.

Every function computes by the same expressions with and without the cache, so a pair's
results are the same bits whichever path it took (tests/test_jit_cones.py).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit, jit_inline


@jit
def _inside_s2(f_C: NDArray[np.float64], f_d: NDArray[np.float64], f_valid: NDArray[np.bool_],
               j: int, mu0: float, mu1: float) -> bool:
    """Whether the point (mu0, mu1) satisfies every valid facet row of polyhedron j (a NaN
    residual counts as outside)."""
    for r in range(f_d.shape[1]):
        if f_valid[j, r]:
            beta = f_d[j, r] - (f_C[j, r, 0] * mu0 + f_C[j, r, 1] * mu1)
            if not beta >= 0.0:
                return False
    return True


@jit_inline
def _edge_point(m0: float, m1: float, s0: float, s1: float, w0: float, w1: float, ww: float,
                sw: float, ss: float, length: float) -> tuple[float, float]:
    """The nearest point s + t w of the whitened edge, 0 <= t <= ``length`` (|w|^2 = ww,
    s.w = sw, |s|^2 = ss), to (m0, m1): (squared distance up to the constant |m|^2, t)."""
    mW = m0 * w0 + m1 * w1
    mS = m0 * s0 + m1 * s1
    t = (mW - sw) / ww
    t = min(max(t, 0.0), length)
    de = ss - 2.0 * mS + 2.0 * t * (sw - mW) + t * t * ww
    return de, t


@jit
def _nearest_s2(m0: float, m1: float, ui00: float, ui10: float, ui11: float,
                es: NDArray[np.float64], ed: NDArray[np.float64], el: NDArray[np.float64],
                ) -> tuple[float, float]:
    """Whitened nearest point minus the whitened mean, over the edges (segments / rays) of
    one polyhedron: (x0, x1). ``ui`` is the lower-triangular U^{-1}."""
    E = el.size
    best = math.inf
    bx0 = 0.0
    bx1 = 0.0
    for e in range(E):
        s0 = ui00 * es[e, 0]
        s1 = ui10 * es[e, 0] + ui11 * es[e, 1]
        w0 = ui00 * ed[e, 0]
        w1 = ui10 * ed[e, 0] + ui11 * ed[e, 1]
        de, t = _edge_point(m0, m1, s0, s1, w0, w1, w0 * w0 + w1 * w1, s0 * w0 + s1 * w1,
                            s0 * s0 + s1 * s1, el[e])
        if de < best or (e == 0):
            best = de
            bx0 = s0 + t * w0
            bx1 = s1 + t * w1
    return bx0 - m0, bx1 - m1


@jit
def _spread_s2(m0: float, m1: float, ui00: float, ui10: float, ui11: float,
               es: NDArray[np.float64], ed: NDArray[np.float64], el: NDArray[np.float64]
               ) -> float:
    """The whitened log-density spread bound |c| D + D^2 / 2 of a bounded polygon (the
    cubature's, :func:`fastpath._simplex_cubature._spread`): c the mean of its edges' ends
    (whitened, about the whitened mean (m0, m1)), D twice the largest distance from c."""
    E = el.size
    c0 = 0.0
    c1 = 0.0
    for e in range(E):
        x0 = es[e, 0] + 0.5 * el[e] * ed[e, 0]
        x1 = es[e, 1] + 0.5 * el[e] * ed[e, 1]
        c0 += ui00 * x0
        c1 += ui10 * x0 + ui11 * x1
    c0 = c0 / E - m0
    c1 = c1 / E - m1
    r2 = 0.0
    for e in range(E):
        for end in range(2):
            x0 = es[e, 0] + end * el[e] * ed[e, 0]
            x1 = es[e, 1] + end * el[e] * ed[e, 1]
            w0 = ui00 * x0 - m0 - c0
            w1 = ui10 * x0 + ui11 * x1 - m1 - c1
            r2 = max(r2, w0 * w0 + w1 * w1)
    D = 2.0 * math.sqrt(r2)
    return math.sqrt(c0 * c0 + c1 * c1) * D + 0.5 * D * D


@jit
def _thinness_s2(p_L: NDArray[np.float64], p0: int, p1: int, u00: float, u10: float,
                 u11: float) -> float:
    """min over the cones p0..p1-1 of 1 - rho^2, rho the correlation of a cone's two rows
    in whitened coordinates (rows of L U, U = [[u00, 0], [u10, u11]])."""
    best = 1.0
    for p in range(p0, p1):
        a0 = p_L[p, 0, 0] * u00 + p_L[p, 0, 1] * u10
        a1 = p_L[p, 0, 1] * u11
        b0 = p_L[p, 1, 0] * u00 + p_L[p, 1, 1] * u10
        b1 = p_L[p, 1, 1] * u11
        # 1 - rho^2 = det^2 / (|a|^2 |b|^2), without the cancellation of 1 - rho^2
        det = a0 * b1 - a1 * b0
        best = min(best, det * det / ((a0 * a0 + a1 * a1) * (b0 * b0 + b1 * b1)))
    return best


#: the whitened geometry cache of one (Gaussian row of chol, polyhedron) (:func:`_whiten`):
#: header cg0, cg1 (the generic direction, whitened and normalised), thinness; then per edge
#: _EDGE_COLS values s0, s1, w0, w1, |w|^2, s.w, |s|^2 (U^-1 start and direction) and |w|;
#: then per piece _PIECE_COLS: for each row a0, a1 (of L U, normalised), its norm and L apex,
#: then the rows' correlation and the two conditional sds
_GEO_HEAD = 3
_EDGE_COLS = 8
_PIECE_COLS = 11


@jit
def _whiten(j: int, cj: int, chol: NDArray[np.float64], p_seg: NDArray[np.intp],
            p_end: NDArray[np.intp], p_apex: NDArray[np.float64], p_L: NDArray[np.float64],
            e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
            c_gen: NDArray[np.float64], geo: NDArray[np.float64]) -> None:
    """Fill ``geo`` with what of the pair does not depend on the mean (layout at
    ``_GEO_HEAD``), by the same expressions as the per-pair code used, so the cached values
    are the same bits: pairs of one polyhedron and one Cholesky factor share them (every
    E-step pair of a region)."""
    u00 = chol[cj, j, 0, 0]
    u10 = chol[cj, j, 1, 0]
    u11 = chol[cj, j, 1, 1]
    ui00 = 1.0 / u00
    ui11 = 1.0 / u11
    ui10 = -u10 * ui00 * ui11
    cg0 = c_gen[j, 0] * u00 + c_gen[j, 1] * u10
    cg1 = c_gen[j, 1] * u11
    ncg = math.sqrt(cg0 * cg0 + cg1 * cg1)
    geo[0] = cg0 / ncg
    geo[1] = cg1 / ncg
    geo[2] = _thinness_s2(p_L, p_seg[j], p_end[j], u00, u10, u11)
    es = e_start[j]
    ed = e_dir[j]
    E = ed.shape[0]
    for e in range(E):
        o = _GEO_HEAD + _EDGE_COLS * e
        s0 = ui00 * es[e, 0]
        s1 = ui10 * es[e, 0] + ui11 * es[e, 1]
        w0 = ui00 * ed[e, 0]
        w1 = ui10 * ed[e, 0] + ui11 * ed[e, 1]
        geo[o] = s0
        geo[o + 1] = s1
        geo[o + 2] = w0
        geo[o + 3] = w1
        geo[o + 4] = w0 * w0 + w1 * w1
        geo[o + 5] = s0 * w0 + s1 * w1
        geo[o + 6] = s0 * s0 + s1 * s1
        geo[o + 7] = math.sqrt(w0 * w0 + w1 * w1)
    p0 = p_seg[j]
    for k in range(p_end[j] - p0):
        p = p0 + k
        o = _GEO_HEAD + _EDGE_COLS * E + _PIECE_COLS * k
        for q in range(2):
            lq0 = p_L[p, q, 0]
            lq1 = p_L[p, q, 1]
            # row q of L U (rows U^T L_q), normalised
            a0 = lq0 * u00 + lq1 * u10
            a1 = lq1 * u11
            nA = math.sqrt(a0 * a0 + a1 * a1)
            geo[o + 4 * q] = a0 / nA
            geo[o + 4 * q + 1] = a1 / nA
            geo[o + 4 * q + 2] = nA
            geo[o + 4 * q + 3] = lq0 * p_apex[p, 0] + lq1 * p_apex[p, 1]
        b00 = geo[o]
        b01 = geo[o + 1]
        b10 = geo[o + 4]
        b11 = geo[o + 5]
        rho = b00 * b10 + b01 * b11
        geo[o + 8] = rho
        # the conditional sds of each row given the other (unchanged by the rows' flips)
        r0 = b10 - rho * b00
        r1 = b11 - rho * b01
        geo[o + 9] = math.sqrt(r0 * r0 + r1 * r1)
        r0 = b00 - rho * b10
        r1 = b01 - rho * b11
        geo[o + 10] = math.sqrt(r0 * r0 + r1 * r1)


@jit
def _nearest_cached(m0: float, m1: float, geo: NDArray[np.float64], el: NDArray[np.float64]
                    ) -> tuple[float, float]:
    """:func:`_nearest_s2` from the whitened edges of :func:`_whiten` (the same bits)."""
    E = el.size
    best = math.inf
    bx0 = 0.0
    bx1 = 0.0
    for e in range(E):
        o = _GEO_HEAD + _EDGE_COLS * e
        de, t = _edge_point(m0, m1, geo[o], geo[o + 1], geo[o + 2], geo[o + 3], geo[o + 4],
                            geo[o + 5], geo[o + 6], el[e])
        if de < best or (e == 0):
            best = de
            bx0 = geo[o] + t * geo[o + 2]
            bx1 = geo[o + 1] + t * geo[o + 3]
    return bx0 - m0, bx1 - m1


def _warmup() -> None:
    """Nothing of its own: these functions compile as callees of the kernels of
    :mod:`fastpath._jit_cones` and of the one-call lane."""
