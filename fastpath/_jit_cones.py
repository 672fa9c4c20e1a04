"""Compiled signed vertex-cone sums of dimension 2: one fused kernel per (Gaussian, polyhedron) pair.

The same formulas as :meth:`fastpath._cones.ConeTable._evaluate_numpy` (whose module notes
give the derivation), pair by pair instead of array by array: whitening, the nearest point
over the edges, the direction c and the per-edge flips, the flipped cones' bounds h and unit
rows A, the orthant terms (:func:`fastpath._jit_bvn.log_bvn_buf` for P, the conditional
univariate normal for the Tallis terms), the signed log-sum-exp over the pieces of the
polyhedron, and the moment assembly. What of a pair does not depend on its mean (the
whitened edges, the cones' normalised rows, their correlations and conditional sds) is kept
per thread for the last (Cholesky factor, polyhedron) seen (:func:`_whiten`): with one
factor per polyhedron, as in the E-step, :func:`evaluate_s2` runs tiles of Gaussians of one
polyhedron, which share it. Pairs are split over the kernel threads in tiles or blocks
(:func:`evaluate_s2` by numba's ``prange``, see :func:`fastpath._jit.pjit`; :func:`bound_s2`
by :func:`fastpath._jit.parallel_for`); every pair is computed by one thread by the same
expressions whether or not its geometry was cached, so results do not depend on the thread
count or the order.

The Tallis factors phi(h) Phi(hn) are formed as e^(log phi - K) Phi(hn), K the largest log P
of the pair (the scale of log m0), falling back to their logs where that scale could
overflow (see :func:`_pair_deferred`).

Differences from the numpy path are rounding only: 2 x 2 products written out instead of
``matmul``/``einsum``/``inv``, sums over pieces left to right instead of ``reduceat``.
tests/test_jit_cones.py compares the two.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange
from numpy.typing import NDArray

from ._jit import jit, parallel_for, pjit
from ._jit_bvn import BUF_SIZE, log_bvn_buf
from ._jit_cone_geometry import (
    _EDGE_COLS,
    _GEO_HEAD,
    _PIECE_COLS,
    _inside_s2,
    _nearest_cached,
    _nearest_s2,
    _spread_s2,
    _whiten,
)
from ._jit_special import log_ndtr, ndtr

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
#: pairs per block of the parallel loop (one set of scratch buffers per block)
_BLOCK = 32
#: S = 2: a bounded polygon whose thinnest cone has 1 - rho^2 below this (whitened) goes to
#: the cubature with the small ones: the orthant of a thin cone loses ~0.55 eps / (1 - rho^2)
#: of log P relatively (measured on 22,929 E-step-like pairs with m0 >= 1e-20: up to
#: 1.7e-12 at 7e-5; below 4.3e-13 everywhere above 2.5e-4, which 0.43% of the pairs are not)
_THIN_CONE = 2.5e-4
#: relative error of one summed term of the moments (orthant value and Tallis factors, in
#: log space and exponentiated) for :func:`_moment_error`
_TERM_ERROR = 2e-15
#: per-piece scratch columns: sign, h0, h1, a00, a01, a10, a11, logP, hn0, sd0, sd1 (the
#: conditional sds of row 1 given row 0 and of row 0 given row 1), the moments replacing
#: sd1 by hn1
_NCOL = 11


@jit
def _nmax(a: float, b: float) -> float:
    """np.maximum of two scalars (NaN propagates, as in the numpy path)."""
    if a != a or b != b:
        return math.nan
    return a if a >= b else b


@jit
def _exp_rel(x: float) -> float:
    """exp(x) for x <= 0, 0 below -700 (as _cone_algebra._exp_rel)."""
    if x < -700.0:
        return 0.0
    return math.exp(x)


@jit
def _phi_Phi(lph: float, hn: float) -> float:
    """e^lph Phi(hn) (lph a log density less the sums' offset): one exp and one erfc, and
    through log Phi where Phi(hn) would underflow or lose its relative accuracy (hn < -20)."""
    if hn < -20.0:
        return _exp_rel(lph + log_ndtr(hn))
    return _exp_rel(lph) * ndtr(hn)


@jit
def _pair_s2(a: int, j: int, cj: int, mean: NDArray[np.float64], chol: NDArray[np.float64],
             p_seg: NDArray[np.intp], p_end: NDArray[np.intp], p_apex: NDArray[np.float64],
             p_L: NDArray[np.float64], p_edge: NDArray[np.intp], p_orient: NDArray[np.float64],
             e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
             e_len: NDArray[np.float64], f_C: NDArray[np.float64], f_d: NDArray[np.float64],
             f_valid: NDArray[np.bool_], c_gen: NDArray[np.float64], moments: bool,
             margin: float, gweight: float, tail_from: float, cu: NDArray[np.float64],
             terms: NDArray[np.float64],
             buf: NDArray[np.float64], out_lm: NDArray[np.float64],
             out_dm: NDArray[np.float64], out_tc: NDArray[np.float64],
             out_lc: NDArray[np.float64], out_me: NDArray[np.float64]) -> None:
    """:func:`_pair_deferred` without deferral (the one-call lane's entry; np.bool_: the same
    compilation as the E-step's calls, not one specialised on a literal False)."""
    geo = np.empty(_GEO_HEAD + _EDGE_COLS * e_len.shape[1] + _PIECE_COLS * terms.shape[0])
    key = np.full(2, -1, dtype=np.intp)
    _pair_deferred(a, j, cj, mean, chol, p_seg, p_end, p_apex, p_L, p_edge, p_orient, e_start,
                   e_dir, e_len, f_C, f_d, f_valid, c_gen, moments, margin, gweight, math.inf,
                   math.inf, 0.0, np.bool_(False), tail_from, cu, terms, buf, geo, key, out_lm,
                   out_dm, out_tc, out_lc, np.zeros((1, 1), dtype=np.bool_), out_me)


@jit
def _pair_deferred(a: int, j: int, cj: int, mean: NDArray[np.float64], chol: NDArray[np.float64],
             p_seg: NDArray[np.intp], p_end: NDArray[np.intp], p_apex: NDArray[np.float64],
             p_L: NDArray[np.float64], p_edge: NDArray[np.intp], p_orient: NDArray[np.float64],
             e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
             e_len: NDArray[np.float64], f_C: NDArray[np.float64], f_d: NDArray[np.float64],
             f_valid: NDArray[np.bool_], c_gen: NDArray[np.float64], moments: bool,
             margin: float, gweight: float, defer_lo: float, defer_hi: float,
             route_spread: float, defer_ok: bool, tail_from: float,
             cu: NDArray[np.float64], terms: NDArray[np.float64],
             buf: NDArray[np.float64], geo: NDArray[np.float64], key: NDArray[np.intp],
             out_lm: NDArray[np.float64],
             out_dm: NDArray[np.float64], out_tc: NDArray[np.float64],
             out_lc: NDArray[np.float64], out_def: NDArray[np.bool_],
             out_me: NDArray[np.float64]) -> None:
    """Everything of one (Gaussian a, polyhedron j) pair; cj is a's row of ``chol``.

    ``geo`` holds the whitened geometry (:func:`_whiten`) of the pair (key[0], key[1]) of
    (row of chol, polyhedron); it is filled for (cj, j) first where the key differs.

    With ``moments`` and ``defer_ok``, a pair whose orthant terms alone show a cancellation
    log (sum |P| / sum P) above ``defer_lo`` and away from ``defer_hi`` (by 1e-9, far more
    than the rounding between this value and the final log_cancel; the caller's margin
    above its threshold is in ``defer_lo``) is left without its
    moments, its log m0 and log_cancel from those terms only, and flagged in ``out_def``:
    the caller integrates it by cubature (:meth:`fastpath._cones.ConeTable._guarded_cones`)
    or evaluates it again without deferral. Every other pair is computed as without.

    With ``defer_ok`` and ``route_spread`` > 0, a pair whose polygon (bounded) has a whitened
    log-density spread bound |c| D + D^2 / 2 of at most ``route_spread`` (c the centre of
    its edges' ends, D twice the largest distance from c) is not summed at all: such small
    polygons are where the cone sum cancels (nearly all of them lose more than e^3), and
    the cubature takes them at the cost of their cones. It is flagged in ``out_def`` with
    log_cancel +inf (so every caller sends it to the cubature) and log m0 0. So is a pair
    whose thinnest cone has 1 - rho^2 below ``_THIN_CONE`` (:func:`_thinness_s2`).

    With ``moments``, ``out_me`` gets the estimated relative error of the moments
    (:func:`_moment_error`) of every pair whose moments are summed, except those whose
    mean is at least ``tail_from`` whitened units from P (the caller takes their moments
    from the tail slices, :mod:`fastpath._cone_tail`), and 0 for the others."""
    if key[0] != cj or key[1] != j:
        _whiten(j, cj, chol, p_seg, p_end, p_apex, p_L, e_start, e_dir, c_gen, geo)
        key[0] = cj
        key[1] = j
    u00 = chol[cj, j, 0, 0]
    u10 = chol[cj, j, 1, 0]
    u11 = chol[cj, j, 1, 1]
    mu0 = mean[a, j, 0]
    mu1 = mean[a, j, 1]
    # U^{-1} of the lower-triangular U
    ui00 = 1.0 / u00
    ui11 = 1.0 / u11
    ui10 = -u10 * ui00 * ui11
    m0 = ui00 * mu0
    m1 = ui10 * mu0 + ui11 * mu1
    es = e_start[j]
    ed = e_dir[j]
    el = e_len[j]
    E = el.size
    if defer_ok and route_spread > 0.0 and (
            _spread_s2(m0, m1, ui00, ui10, ui11, es, ed, el) <= route_spread
            or geo[2] < _THIN_CONE):
        out_lm[a, j] = 0.0
        out_lc[a, j] = math.inf
        out_def[a, j] = True
        return
    inside = _inside_s2(f_C, f_d, f_valid, j, mu0, mu1)
    if inside:
        x0 = 0.0
        x1 = 0.0
    else:
        x0, x1 = _nearest_cached(m0, m1, geo, el)
    # the direction c: toward the mean from the nearest point, plus a generic part
    cg0 = geo[0]
    cg1 = geo[1]
    cw0 = -x0
    cw1 = -x1
    ncw = math.sqrt(cw0 * cw0 + cw1 * cw1)
    if ncw > 0:
        c0 = cw0 + gweight * ncw * cg0
        c1 = cw1 + gweight * ncw * cg1
    else:
        c0 = cg0
        c1 = cg1
    nc = math.sqrt(c0 * c0 + c1 * c1)
    bad = False
    for e in range(E):
        o = _GEO_HEAD + _EDGE_COLS * e
        v = c0 * geo[o + 2] + c1 * geo[o + 3]
        cu[e] = v
        if abs(v) <= margin * nc * geo[o + 7] or (not math.isfinite(el[e]) and v >= 0):
            bad = True
    if bad:
        for e in range(E):
            o = _GEO_HEAD + _EDGE_COLS * e
            cu[e] = cg0 * geo[o + 2] + cg1 * geo[o + 3]
    # ---- per piece: flipped cone, orthant terms; running max of the terms
    p0 = p_seg[j]
    npc = p_end[j] - p0
    for k in range(npc):
        p = p0 + k
        o = _GEO_HEAD + _EDGE_COLS * E + _PIECE_COLS * k
        sign = 1.0
        for q in range(2):
            lm = p_L[p, q, 0] * mu0 + p_L[p, q, 1] * mu1
            sg = -1.0 if p_orient[p, q] * cu[p_edge[p, q]] > 0 else 1.0
            sign *= sg
            terms[k, 1 + q] = sg * (geo[o + 4 * q + 3] - lm) / geo[o + 4 * q + 2]
            terms[k, 3 + 2 * q] = sg * geo[o + 4 * q]
            terms[k, 4 + 2 * q] = sg * geo[o + 4 * q + 1]
        terms[k, 0] = sign
        terms[k, 9] = geo[o + 9]
        terms[k, 10] = geo[o + 10]
        terms[k, 7] = log_bvn_buf(terms[k, 1], terms[k, 2], sign * geo[o + 8], buf)
    KP = -math.inf
    for k in range(npc):
        KP = terms[k, 7] if k == 0 else _nmax(KP, terms[k, 7])
    if moments and defer_ok and defer_lo < math.inf:
        s0 = 0.0
        sa = 0.0
        for k in range(npc):
            eP = _exp_rel(terms[k, 7] - KP)
            s0 += terms[k, 0] * eP
            sa += eP
        lcP = np.log(sa) - np.log(s0)
        if (not lcP <= defer_lo) and not abs(lcP - defer_hi) <= 1e-9:
            out_lm[a, j] = KP + np.log(s0)
            out_lc[a, j] = lcP
            out_def[a, j] = True
            return
    # ---- the Tallis factors' arguments. f0 = phi(h0) Phi(hn0), f1 = phi(h1) Phi(hn1) and
    # f01 = phi(h0) phi(hn0) / sd0 are summed scaled by e^-K, K the largest log P: they are
    # formed as e^(log phi - K) Phi(hn) (one exp and one erfc each), not through log Phi and
    # an exp of the sum. Where a factor could overflow that scale (a log phi more than 600
    # above K, or a conditional sd below 1e-30, e^-69: far tails and degenerate pieces) K
    # is the largest of the factors' logs as well, as for the log-space sums. Then
    # e^(log phi - K) <= 1 / Phi(hn) stays finite: hn >= -20 in the product form
    K = KP
    hi = -math.inf
    lo_sd = 1.0
    if moments:
        for k in range(npc):
            h0 = terms[k, 1]
            h1 = terms[k, 2]
            rho = terms[k, 3] * terms[k, 5] + terms[k, 4] * terms[k, 6]
            sd0 = terms[k, 9]
            terms[k, 8] = (h1 - rho * h0) / sd0
            terms[k, 10] = (h0 - rho * h1) / terms[k, 10]
            hi = _nmax(hi, -0.5 * min(h0 * h0, h1 * h1))
            lo_sd = min(lo_sd, sd0)
        if not (hi - _LOG_SQRT_2PI - KP <= 600.0 and lo_sd >= 1e-30):
            # the factors' own logs (through log Phi: Phi(hn) may be far below 1 there)
            for k in range(npc):
                h0 = terms[k, 1]
                hn0 = terms[k, 8]
                lph0 = -0.5 * h0 * h0 - _LOG_SQRT_2PI
                K = _nmax(K, lph0 + log_ndtr(hn0))
                K = _nmax(K, -0.5 * terms[k, 2] * terms[k, 2] - _LOG_SQRT_2PI
                          + log_ndtr(terms[k, 10]))
                K = _nmax(K, lph0 - 0.5 * hn0 * hn0 - _LOG_SQRT_2PI - np.log(terms[k, 9]))
    # ---- signed log-sum-exp and moment sums. log m0 and log_cancel are scaled by the
    # largest orthant term alone, so that they are the same bits with and without moments
    # (log p(x) from posterior equals log_marginal's); the moment sums share the offset K
    # of every term, with m0 scaled alike (mK)
    m0s = 0.0
    absum = 0.0
    mK = 0.0
    g0 = g1 = 0.0
    q00 = q01 = q11 = 0.0
    am = ag = aq = 0.0
    for k in range(npc):
        sign = terms[k, 0]
        eP = _exp_rel(terms[k, 7] - KP)
        m0s += sign * eP
        absum += eP
        if moments:
            eK = eP if K == KP else _exp_rel(terms[k, 7] - K)
            mK += sign * eK
            am += eK
            h0 = terms[k, 1]
            h1 = terms[k, 2]
            a00 = terms[k, 3]
            a01 = terms[k, 4]
            a10 = terms[k, 5]
            a11 = terms[k, 6]
            hn0 = terms[k, 8]
            hn1 = terms[k, 10]
            lph0 = -0.5 * h0 * h0 - _LOG_SQRT_2PI - K
            lph1 = -0.5 * h1 * h1 - _LOG_SQRT_2PI - K
            f0 = sign * _phi_Phi(lph0, hn0)
            f1 = sign * _phi_Phi(lph1, hn1)
            f2 = sign * _exp_rel(lph0 - 0.5 * hn0 * hn0 - _LOG_SQRT_2PI) / terms[k, 9]
            R = a00 * a10 + a01 * a11
            md0 = -(h0 * f0 + R * f2)
            md1 = -(h1 * f1 + R * f2)
            g0 += a00 * f0 + a10 * f1
            g1 += a01 * f0 + a11 * f1
            q00 += md0 * a00 * a00 + md1 * a10 * a10 + f2 * (a00 * a10 + a10 * a00)
            q01 += md0 * a00 * a01 + md1 * a10 * a11 + f2 * (a00 * a11 + a10 * a01)
            q11 += md0 * a01 * a01 + md1 * a11 * a11 + f2 * (a01 * a11 + a11 * a01)
            # the terms' magnitudes (rows a unit vectors): the scale of the sums' errors
            ag += abs(f0) + abs(f1)
            aq += abs(md0) + abs(md1) + 2.0 * abs(f2)
    out_lm[a, j] = KP + np.log(m0s)
    out_lc[a, j] = np.log(absum) - np.log(m0s)
    if not moments:
        return
    d0 = -g0 / mK
    d1 = -g1 / mK
    c00 = 1.0 + q00 / mK
    c01 = q01 / mK
    c11 = 1.0 + q11 / mK
    dm0 = u00 * d0
    dm1 = u10 * d0 + u11 * d1
    # U C2 U^T with U = [[u00, 0], [u10, u11]]
    t00 = u00 * c00 * u00
    t01 = u00 * (c00 * u10 + c01 * u11)
    t11 = u10 * (c00 * u10 + c01 * u11) + u11 * (c01 * u10 + c11 * u11)
    out_dm[a, j, 0] = dm0
    out_dm[a, j, 1] = dm1
    out_tc[a, j, 0, 0] = t00 - dm0 * dm0
    v = t01 - dm0 * dm1
    out_tc[a, j, 0, 1] = v
    out_tc[a, j, 1, 0] = v
    out_tc[a, j, 1, 1] = t11 - dm1 * dm1
    if x0 * x0 + x1 * x1 >= tail_from * tail_from:
        return
    out_me[a, j] = _moment_error(mK, am, ag, aq, d0, d1, c00, c01, c11, u00, u10, u11,
                                 out_tc[a, j, 0, 0] + out_tc[a, j, 1, 1])


@jit
def _moment_error(mK: float, am: float, ag: float, aq: float, d0: float, d1: float,
                  c00: float, c01: float, c11: float, u00: float, u10: float, u11: float,
                  trace: float) -> float:
    """Estimated relative error of a cone sum's moments: max of |error of E - mean| /
    sqrt(tr Cov) and |error of Cov| / tr Cov (entrywise), from the magnitudes of the
    summed terms (``am`` of m0, ``ag`` of the first moments, ``aq`` of the second, all
    scaled as ``mK``), each with the relative error ``_TERM_ERROR``.

    In whitened coordinates d = -g / m0 and C2 = I + Q / m0, so
    err(d) <= (|g| + |d| |m0|)_abs / |m0| and err(C2) <= (|Q| + |C2 - I| |m0|)_abs / |m0|;
    the central covariance C2 - d d^T adds 2 |d| err(d). Back through U these scale by |U|_F
    and |U|_F^2. Where tr Cov is small against |d|^2 (a mean far from a small polygon) the
    central covariance is the difference of two large numbers and the estimate large."""
    amk = abs(mK)
    dn = math.sqrt(d0 * d0 + d1 * d1)
    qn = max(abs(c00 - 1.0), abs(c01), abs(c11 - 1.0))
    err_d = (ag + dn * am) / amk
    err_c = (aq + qn * am) / amk + 2.0 * dn * err_d
    su = u00 * u00 + u10 * u10 + u11 * u11
    if not trace > 0.0:
        return math.inf
    return _TERM_ERROR * max(err_c * su / trace, err_d * math.sqrt(su / trace))


@pjit
def evaluate_s2(mean: NDArray[np.float64], chol: NDArray[np.float64],
                p_seg: NDArray[np.intp], p_end: NDArray[np.intp], p_apex: NDArray[np.float64],
                p_L: NDArray[np.float64], p_edge: NDArray[np.intp],
                p_orient: NDArray[np.float64], e_start: NDArray[np.float64],
                e_dir: NDArray[np.float64], e_len: NDArray[np.float64],
                f_C: NDArray[np.float64], f_d: NDArray[np.float64], f_valid: NDArray[np.bool_],
                c_gen: NDArray[np.float64], moments: bool, margin: float, gweight: float,
                defer_lo: float, defer_hi: float, route_spread: float,
                defer: NDArray[np.bool_], tail_from: float,
                ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                           NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
    """log m0 (N, n), E[y|P] - mean (N, n, 2), Cov[y|P] (N, n, 2, 2), log cancel (N, n) of
    every polyhedron for every Gaussian (``mean`` (N, n, 2), ``chol`` (Nc, n, 2, 2) lower,
    Nc in {1, N}); the table arrays as in :class:`fastpath._cones.ConeTable`, ``p_end``
    the end of each polyhedron's pieces. The moment outputs are left 0 if not ``moments``,
    and for the pairs flagged in the fifth output (N, n): those of the polyhedra with
    ``defer`` (n,) whose cancellation is above ``defer_lo`` (none when it is +inf) or whose
    spread is at most ``route_spread`` (none when it is 0; see :func:`_pair_deferred`).
    The sixth output (N, n) is the estimated relative error of each pair's summed moments
    (:func:`_moment_error`; 0 where none were summed and where the mean is at least
    ``tail_from`` whitened units from P)."""
    N = mean.shape[0]
    n = mean.shape[1]
    shared = chol.shape[0] == 1
    out_lm = np.empty((N, n))
    out_lc = np.empty((N, n))
    out_dm = np.zeros((N, n, 2))
    out_tc = np.zeros((N, n, 2, 2))
    out_def = np.zeros((N, n), dtype=np.bool_)
    out_me = np.zeros((N, n))
    maxp = 1
    for j in range(n):
        maxp = max(maxp, p_end[j] - p_seg[j])
    E = e_len.shape[1]
    total = N * n
    # a shared factor: tiles of _BLOCK Gaussians of one polyhedron, which share its whitened
    # geometry, in Gaussian-tile-major order (each thread's share of the tiles holds every
    # polyhedron, as a share of Gaussian-major pairs would: polyhedra differ in cost);
    # else blocks of _BLOCK pairs, Gaussian-major
    g_tiles = (N + _BLOCK - 1) // _BLOCK
    n_tiles = g_tiles * n if shared else (total + _BLOCK - 1) // _BLOCK
    for t in prange(n_tiles):
        cu = np.empty(E)
        terms = np.empty((maxp, _NCOL))
        buf = np.empty(BUF_SIZE)
        geo = np.empty(_GEO_HEAD + _EDGE_COLS * E + _PIECE_COLS * maxp)
        key = np.full(2, -1, dtype=np.intp)
        if shared:
            ga = t // n
            j_tile = t - ga * n
            lo = ga * _BLOCK
            hi = min(N, lo + _BLOCK)
        else:
            j_tile = 0
            lo = t * _BLOCK
            hi = min(total, lo + _BLOCK)
        for i in range(lo, hi):
            if shared:
                a = i
                j = j_tile
                cj = 0
            else:
                a = i // n
                j = i - a * n
                cj = a
            _pair_deferred(a, j, cj, mean, chol, p_seg, p_end, p_apex, p_L, p_edge,
                           p_orient, e_start, e_dir, e_len, f_C, f_d, f_valid, c_gen, moments,
                           margin, gweight, defer_lo, defer_hi, route_spread, defer[j],
                           tail_from, cu, terms, buf, geo, key,
                           out_lm, out_dm, out_tc, out_lc, out_def, out_me)
    return out_lm, out_dm, out_tc, out_lc, out_def, out_me


def bound_s2(mean: NDArray[np.float64], chol: NDArray[np.float64],
             e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
             e_len: NDArray[np.float64], f_C: NDArray[np.float64], f_d: NDArray[np.float64],
             f_valid: NDArray[np.bool_]) -> NDArray[np.float64]:
    """log Phi(-dist(mean, P)) (N, n) of every polyhedron for every Gaussian, 0 where the
    mean lies in P (:meth:`fastpath._cones.ConeTable.log_mass_bound`, the nearest point
    of :func:`_pair_s2`); arguments as in :func:`evaluate_s2`."""
    out = np.empty(mean.shape[:2])
    parallel_for(lambda lo, hi: _bound_range(lo, hi, mean, chol, e_start, e_dir, e_len, f_C,
                                             f_d, f_valid, out),
                 out.size, 256)
    return out


@jit
def _bound_range(lo: int, hi: int, mean: NDArray[np.float64], chol: NDArray[np.float64],
                 e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
                 e_len: NDArray[np.float64], f_C: NDArray[np.float64],
                 f_d: NDArray[np.float64], f_valid: NDArray[np.bool_],
                 out: NDArray[np.float64]) -> None:
    """:func:`bound_s2` for the (Gaussian, polyhedron) pairs lo..hi-1, Gaussian-major."""
    n = mean.shape[1]
    shared = chol.shape[0] == 1
    for i in range(lo, hi):
        a = i // n
        j = i - a * n
        cj = 0 if shared else a
        mu0 = mean[a, j, 0]
        mu1 = mean[a, j, 1]
        if _inside_s2(f_C, f_d, f_valid, j, mu0, mu1):
            out[a, j] = 0.0
            continue
        ui00 = 1.0 / chol[cj, j, 0, 0]
        ui11 = 1.0 / chol[cj, j, 1, 1]
        ui10 = -chol[cj, j, 1, 0] * ui00 * ui11
        x0, x1 = _nearest_s2(ui00 * mu0, ui10 * mu0 + ui11 * mu1, ui00, ui10, ui11,
                             e_start[j], e_dir[j], e_len[j])
        out[a, j] = log_ndtr(-math.sqrt(x0 * x0 + x1 * x1))


def _warmup() -> None:
    # the unit square [0, 1]^2 as two pieces would need the geometry code; a single cone
    # (the quadrant x, y >= 0 written as one piece with apex 0) exercises every line
    p_seg = np.array([0], dtype=np.intp)
    p_end = np.array([1], dtype=np.intp)
    p_apex = np.zeros((1, 2))
    p_L = np.array([[[-1.0, 0.0], [0.0, -1.0]]])
    p_edge = np.array([[0, 1]], dtype=np.intp)
    p_orient = np.ones((1, 2))
    e_start = np.zeros((1, 2, 2))
    e_dir = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    e_len = np.full((1, 2), np.inf)
    f_C = p_L.copy()
    f_d = np.zeros((1, 2))
    f_valid = np.ones((1, 2), dtype=np.bool_)
    c_gen = np.array([[-0.6, -0.8]])
    mean = np.array([[[0.3, -0.2]]])
    chol = np.array([[[[1.0, 0.0], [0.2, 0.9]]]])
    bound_s2(mean, chol, e_start, e_dir, e_len, f_C, f_d, f_valid)
    for mom in (True, False):
        evaluate_s2(mean, chol, p_seg, p_end, p_apex, p_L, p_edge, p_orient, e_start, e_dir,
                    e_len, f_C, f_d, f_valid, c_gen, mom, 1e-12, 1e-7, 3.0, 4.0, 2.0,
                    np.ones(1, dtype=np.bool_), 8.0)
