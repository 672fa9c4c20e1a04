"""Compiled signed vertex-cone sums of dimension 3: one kernel call per (Gaussian, polytope) pair.

:meth:`fastpath._cones.ConeTable._evaluate_numpy` for s = 3, direction "nearest", pair by
pair instead of array by array (the batched S = 3 integrals and E-step): whitening, the
nearest point over the edges and the facets, the direction c with its generic part and the
per-edge flips, the flipped cones' bounds h and unit rows A, the orthant terms of each
piece (:func:`fastpath._jit_one_shot3_cones._terms`: the compiled k = 3 kernel for P, the
k = 2 kernel and the univariate normal for the Tallis terms), the signed log-sum-exp over
the pieces with one scale for m0 and the moments (as the numpy path), and the moment
assembly. A pair one of whose orthants the compiled terms decline (a correlation within
1e-9 of +-1, a non-finite bound: where the numpy path's k = 3 kernel takes another route)
is flagged and left to the numpy path.

Differences from the numpy path are rounding only: 3 x 3 products written out instead of
``matmul``/``einsum``/``inv``, sums over pieces left to right instead of ``reduceat``.
tests/test_jit_cones3.py compares the two. Pairs are split over the kernel threads by
:func:`fastpath._jit.parallel_for`; each is computed by one thread in a fixed order, so
results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit, parallel_for
from ._jit_bvn import BUF_SIZE
from ._jit_one_shot3_cones import _piece_sums, _terms

__all__ = ["evaluate_s3", "nearest_s3"]

#: fewest pairs per range of the threaded loop (~20 us each)
_GRAIN = 8


@jit
def _lower_inverse(U: NDArray[np.float64], Ui: NDArray[np.float64]) -> None:
    """U^{-1} (3 x 3, lower triangular) of the lower-triangular U into ``Ui``."""
    Ui[0, 0] = 1.0 / U[0, 0]
    Ui[1, 1] = 1.0 / U[1, 1]
    Ui[2, 2] = 1.0 / U[2, 2]
    Ui[1, 0] = -U[1, 0] * Ui[0, 0] * Ui[1, 1]
    Ui[2, 1] = -U[2, 1] * Ui[1, 1] * Ui[2, 2]
    Ui[2, 0] = -(U[2, 0] * Ui[0, 0] + U[2, 1] * Ui[1, 0]) * Ui[2, 2]
    Ui[0, 1] = Ui[0, 2] = Ui[1, 2] = 0.0


@jit
def _nearest3(U: NDArray[np.float64], Ui: NDArray[np.float64], mu: NDArray[np.float64],
              es: NDArray[np.float64], ed: NDArray[np.float64], el: NDArray[np.float64],
              fC: NDArray[np.float64], fd: NDArray[np.float64], fv: NDArray[np.bool_],
              W: NDArray[np.float64], a: NDArray[np.float64], beta: NDArray[np.float64],
              xs: NDArray[np.float64]) -> None:
    """_NearestPoints._nearest_points (s = 3) of one pair: the whitened nearest point minus the
    whitened mean into ``xs`` (0 where the mean lies in P), the whitened edge directions
    into ``W`` (E, 3); ``a`` (M, 3) and ``beta`` (M,) are scratch."""
    m0 = Ui[0, 0] * mu[0]
    m1 = Ui[1, 0] * mu[0] + Ui[1, 1] * mu[1]
    m2 = Ui[2, 0] * mu[0] + Ui[2, 1] * mu[1] + Ui[2, 2] * mu[2]
    E = el.size
    best = math.inf
    b0 = b1 = b2 = 0.0
    for e in range(E):
        s0 = Ui[0, 0] * es[e, 0]
        s1 = Ui[1, 0] * es[e, 0] + Ui[1, 1] * es[e, 1]
        s2 = Ui[2, 0] * es[e, 0] + Ui[2, 1] * es[e, 1] + Ui[2, 2] * es[e, 2]
        w0 = Ui[0, 0] * ed[e, 0]
        w1 = Ui[1, 0] * ed[e, 0] + Ui[1, 1] * ed[e, 1]
        w2 = Ui[2, 0] * ed[e, 0] + Ui[2, 1] * ed[e, 1] + Ui[2, 2] * ed[e, 2]
        W[e, 0] = w0
        W[e, 1] = w1
        W[e, 2] = w2
        ww = w0 * w0 + w1 * w1 + w2 * w2
        sw = s0 * w0 + s1 * w1 + s2 * w2
        ss = s0 * s0 + s1 * s1 + s2 * s2
        mW = m0 * w0 + m1 * w1 + m2 * w2
        mS = m0 * s0 + m1 * s1 + m2 * s2
        t = min(max((mW - sw) / ww, 0.0), el[e])
        de = ss - 2.0 * mS + 2.0 * t * (sw - mW) + t * t * ww
        if de < best or e == 0:
            best = de
            b0 = s0 + t * w0
            b1 = s1 + t * w1
            b2 = s2 + t * w2
    x0 = b0 - m0
    x1 = b1 - m1
    x2 = b2 - m2
    dbest = x0 * x0 + x1 * x1 + x2 * x2
    # facets: the foot of the perpendicular from the mean, where feasible
    M = fd.size
    inside = True
    for r in range(M):
        beta[r] = fd[r] - (fC[r, 0] * mu[0] + fC[r, 1] * mu[1] + fC[r, 2] * mu[2])
        for i in range(3):
            a[r, i] = fC[r, i] * U[i, i]
            for k in range(i + 1, 3):
                a[r, i] += fC[r, k] * U[k, i]                       # rows U^T c_r
        if fv[r] and not beta[r] >= 0.0:
            inside = False
    dj = math.inf
    jb = -1
    for r in range(M):
        if not fv[r]:
            continue
        aa = a[r, 0] * a[r, 0] + a[r, 1] * a[r, 1] + a[r, 2] * a[r, 2]
        f = beta[r] / aa
        xf0 = f * a[r, 0]
        xf1 = f * a[r, 1]
        xf2 = f * a[r, 2]
        vmax = -math.inf
        for k in range(M):
            if fv[k]:
                vmax = max(vmax, xf0 * a[k, 0] + xf1 * a[k, 1] + xf2 * a[k, 2] - beta[k])
        tol = 1e-9 * (1.0 + math.sqrt(xf0 * xf0 + xf1 * xf1 + xf2 * xf2))
        if vmax <= tol and beta[r] < 0.0:
            d = beta[r] * beta[r] / aa
            if d < dj:
                dj = d
                jb = r
    if jb >= 0 and dj < dbest:
        f = beta[jb] / (a[jb, 0] * a[jb, 0] + a[jb, 1] * a[jb, 1] + a[jb, 2] * a[jb, 2])
        x0 = f * a[jb, 0]
        x1 = f * a[jb, 1]
        x2 = f * a[jb, 2]
    if inside:
        x0 = x1 = x2 = 0.0
    xs[0] = x0
    xs[1] = x1
    xs[2] = x2


@jit
def _pair3(a: int, j: int, cj: int, mean: NDArray[np.float64], chol: NDArray[np.float64],
           p_seg: NDArray[np.intp], p_end: NDArray[np.intp], p_apex: NDArray[np.float64],
           p_L: NDArray[np.float64], p_edge: NDArray[np.intp], p_orient: NDArray[np.float64],
           e_start: NDArray[np.float64], e_dir: NDArray[np.float64], e_len: NDArray[np.float64],
           f_C: NDArray[np.float64], f_d: NDArray[np.float64], f_valid: NDArray[np.bool_],
           c_gen: NDArray[np.float64], moments: bool, margin: float, gweight: float,
           Ui: NDArray[np.float64], W: NDArray[np.float64], fa: NDArray[np.float64],
           fb: NDArray[np.float64], xs: NDArray[np.float64], cu: NDArray[np.float64],
           H: NDArray[np.float64], AA: NDArray[np.float64], T: NDArray[np.float64],
           sgn: NDArray[np.float64], buf: NDArray[np.float64], out_lm: NDArray[np.float64],
           out_dm: NDArray[np.float64], out_tc: NDArray[np.float64],
           out_lc: NDArray[np.float64]) -> bool:
    """Everything of one (Gaussian a, polytope j) pair; cj is a's row of ``chol``. Returns
    False (outputs unwritten) where an orthant is declined (module notes)."""
    U = chol[cj, j]
    mu = mean[a, j]
    _lower_inverse(U, Ui)
    el = e_len[j]
    _nearest3(U, Ui, mu, e_start[j], e_dir[j], el, f_C[j], f_d[j], f_valid[j], W, fa, fb, xs)
    # ---- the direction c (whitened): toward the mean from the nearest point, plus U^T c_gen
    cg0 = c_gen[j, 0] * U[0, 0] + c_gen[j, 1] * U[1, 0] + c_gen[j, 2] * U[2, 0]
    cg1 = c_gen[j, 1] * U[1, 1] + c_gen[j, 2] * U[2, 1]
    cg2 = c_gen[j, 2] * U[2, 2]
    ng = math.sqrt(cg0 * cg0 + cg1 * cg1 + cg2 * cg2)
    cg0 /= ng
    cg1 /= ng
    cg2 /= ng
    ncw = math.sqrt(xs[0] * xs[0] + xs[1] * xs[1] + xs[2] * xs[2])
    if ncw > 0:
        c0 = -xs[0] + gweight * ncw * cg0
        c1 = -xs[1] + gweight * ncw * cg1
        c2 = -xs[2] + gweight * ncw * cg2
    else:
        c0, c1, c2 = cg0, cg1, cg2
    nc = math.sqrt(c0 * c0 + c1 * c1 + c2 * c2)
    E = el.size
    bad = False
    for e in range(E):
        v = c0 * W[e, 0] + c1 * W[e, 1] + c2 * W[e, 2]
        cu[e] = v
        nW = math.sqrt(W[e, 0] * W[e, 0] + W[e, 1] * W[e, 1] + W[e, 2] * W[e, 2])
        if abs(v) <= margin * nc * nW or (not math.isfinite(el[e]) and v >= 0):
            bad = True
    if bad:
        for e in range(E):
            cu[e] = cg0 * W[e, 0] + cg1 * W[e, 1] + cg2 * W[e, 2]
    # ---- pieces: flipped cones (bounds h, unit rows A), orthant terms, running max
    p0 = p_seg[j]
    npc = p_end[j] - p0
    K = -math.inf
    for k in range(npc):
        p = p0 + k
        sign = 1.0
        for q in range(3):
            A0 = p_L[p, q, 0] * U[0, 0] + p_L[p, q, 1] * U[1, 0] + p_L[p, q, 2] * U[2, 0]
            A1 = p_L[p, q, 1] * U[1, 1] + p_L[p, q, 2] * U[2, 1]
            A2 = p_L[p, q, 2] * U[2, 2]
            nA = math.sqrt(A0 * A0 + A1 * A1 + A2 * A2)
            lv = p_L[p, q, 0] * p_apex[p, 0] + p_L[p, q, 1] * p_apex[p, 1] \
                + p_L[p, q, 2] * p_apex[p, 2]
            lm = p_L[p, q, 0] * mu[0] + p_L[p, q, 1] * mu[1] + p_L[p, q, 2] * mu[2]
            sg = -1.0 if p_orient[p, q] * cu[p_edge[p, q]] > 0 else 1.0
            sign *= sg
            H[k, q] = sg * (lv - lm) / nA
            AA[k, q, 0] = sg * (A0 / nA)
            AA[k, q, 1] = sg * (A1 / nA)
            AA[k, q, 2] = sg * (A2 / nA)
        sgn[k] = sign
        if not _terms(H[k], AA[k], moments, T[k], buf):
            return False
        kp = T[k, 0]
        if moments:
            for c in range(1, 7):
                kp = max(kp, T[k, c])
        K = kp if k == 0 else max(K, kp)
    # ---- signed log-sum-exp and moment sums (one scale K, as the numpy path)
    g = np.zeros(3)
    Q = np.zeros((3, 3))
    m0s, absum = _piece_sums(npc, sgn, H, AA, T, K, moments, g, Q)
    out_lm[a, j] = K + np.log(m0s)
    out_lc[a, j] = np.log(absum) - np.log(m0s)
    if not moments:
        return True
    # whitened E - mean = -g / m0 and second moment I + Q / m0, then back through U
    d0 = -g[0] / m0s
    d1 = -g[1] / m0s
    d2 = -g[2] / m0s
    C = np.empty((3, 3))
    for r in range(3):
        for c in range(r, 3):
            C[r, c] = C[c, r] = (1.0 if r == c else 0.0) + Q[r, c] / m0s
    dm0 = U[0, 0] * d0
    dm1 = U[1, 0] * d0 + U[1, 1] * d1
    dm2 = U[2, 0] * d0 + U[2, 1] * d1 + U[2, 2] * d2
    out_dm[a, j, 0] = dm0
    out_dm[a, j, 1] = dm1
    out_dm[a, j, 2] = dm2
    dm = (dm0, dm1, dm2)
    # U C U^T: (U C)[r, c] over the lower-triangular U, then times U^T
    UC = np.zeros((3, 3))
    for r in range(3):
        for c in range(3):
            v = 0.0
            for k in range(r + 1):
                v += U[r, k] * C[k, c]
            UC[r, c] = v
    for r in range(3):
        for c in range(r, 3):
            v = 0.0
            vt = 0.0
            for k in range(c + 1):
                v += UC[r, k] * U[c, k]
            for k in range(r + 1):
                vt += UC[c, k] * U[r, k]
            v = 0.5 * ((v - dm[r] * dm[c]) + (vt - dm[c] * dm[r]))
            out_tc[a, j, r, c] = v
            out_tc[a, j, c, r] = v
    return True


@jit
def _evaluate_range(lo: int, hi: int, mean: NDArray[np.float64], chol: NDArray[np.float64],
                    p_seg: NDArray[np.intp], p_end: NDArray[np.intp],
                    p_apex: NDArray[np.float64], p_L: NDArray[np.float64],
                    p_edge: NDArray[np.intp], p_orient: NDArray[np.float64],
                    e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
                    e_len: NDArray[np.float64], f_C: NDArray[np.float64],
                    f_d: NDArray[np.float64], f_valid: NDArray[np.bool_],
                    c_gen: NDArray[np.float64], moments: bool, margin: float, gweight: float,
                    maxp: int, out_lm: NDArray[np.float64], out_dm: NDArray[np.float64],
                    out_tc: NDArray[np.float64], out_lc: NDArray[np.float64],
                    out_ok: NDArray[np.bool_]) -> None:
    """:func:`evaluate_s3` for the (Gaussian, polytope) pairs lo..hi-1, Gaussian-major."""
    n = mean.shape[1]
    shared = chol.shape[0] == 1
    E = e_len.shape[1]
    M = f_d.shape[1]
    Ui = np.empty((3, 3))
    W = np.empty((E, 3))
    fa = np.empty((M, 3))
    fb = np.empty(M)
    xs = np.empty(3)
    cu = np.empty(E)
    H = np.empty((maxp, 3))
    AA = np.empty((maxp, 3, 3))
    T = np.empty((maxp, 7))
    sgn = np.empty(maxp)
    buf = np.empty(BUF_SIZE)
    for i in range(lo, hi):
        a = i // n
        j = i - a * n
        cj = 0 if shared else a
        out_ok[a, j] = _pair3(a, j, cj, mean, chol, p_seg, p_end, p_apex, p_L,
                              p_edge, p_orient, e_start, e_dir, e_len, f_C, f_d, f_valid,
                              c_gen, moments, margin, gweight, Ui, W, fa, fb, xs, cu, H, AA,
                              T, sgn, buf, out_lm, out_dm, out_tc, out_lc)


def evaluate_s3(mean: NDArray[np.float64], chol: NDArray[np.float64],
                p_seg: NDArray[np.intp], p_end: NDArray[np.intp], p_apex: NDArray[np.float64],
                p_L: NDArray[np.float64], p_edge: NDArray[np.intp],
                p_orient: NDArray[np.float64], e_start: NDArray[np.float64],
                e_dir: NDArray[np.float64], e_len: NDArray[np.float64],
                f_C: NDArray[np.float64], f_d: NDArray[np.float64], f_valid: NDArray[np.bool_],
                c_gen: NDArray[np.float64], moments: bool, margin: float, gweight: float
                ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                           NDArray[np.float64], NDArray[np.bool_]]:
    """log m0 (N, n), E[y|P] - mean (N, n, 3), Cov[y|P] (N, n, 3, 3), log cancel (N, n) of
    every polytope for every Gaussian (``mean`` (N, n, 3), ``chol`` (Nc, n, 3, 3) lower,
    Nc in {1, N}), and whether each pair was computed (N, n): False where an orthant was
    declined (outputs undefined there). The table arrays as in
    :class:`fastpath._cones.ConeTable`, ``p_end`` the end of each polytope's pieces; the
    moment outputs are 0 if not ``moments``."""
    N, n = mean.shape[0], mean.shape[1]
    out_lm = np.empty((N, n))
    out_lc = np.empty((N, n))
    out_dm = np.zeros((N, n, 3))
    out_tc = np.zeros((N, n, 3, 3))
    out_ok = np.zeros((N, n), dtype=np.bool_)
    maxp = max(1, int(np.max(p_end - p_seg))) if n else 1
    parallel_for(lambda lo, hi: _evaluate_range(
        lo, hi, mean, chol, p_seg, p_end, p_apex, p_L, p_edge, p_orient, e_start, e_dir,
        e_len, f_C, f_d, f_valid, c_gen, moments, margin, gweight, maxp, out_lm, out_dm,
        out_tc, out_lc, out_ok), N * n, _GRAIN)
    return out_lm, out_dm, out_tc, out_lc, out_ok


@jit
def _nearest_range(lo: int, hi: int, mean: NDArray[np.float64], chol: NDArray[np.float64],
                   e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
                   e_len: NDArray[np.float64], f_C: NDArray[np.float64],
                   f_d: NDArray[np.float64], f_valid: NDArray[np.bool_],
                   out_x: NDArray[np.float64], out_in: NDArray[np.bool_]) -> None:
    """:func:`nearest_s3` for the (Gaussian, polytope) pairs lo..hi-1, Gaussian-major."""
    n = mean.shape[1]
    shared = chol.shape[0] == 1
    Ui = np.empty((3, 3))
    W = np.empty((e_len.shape[1], 3))
    fa = np.empty((f_d.shape[1], 3))
    fb = np.empty(f_d.shape[1])
    for i in range(lo, hi):
        a = i // n
        j = i - a * n
        U = chol[0 if shared else a, j]
        _lower_inverse(U, Ui)
        mu = mean[a, j]
        xs = out_x[a, j]
        _nearest3(U, Ui, mu, e_start[j], e_dir[j], e_len[j], f_C[j], f_d[j], f_valid[j], W,
                  fa, fb, xs)
        inside = True
        for r in range(f_d.shape[1]):
            if f_valid[j, r] and not (f_d[j, r] - (f_C[j, r, 0] * mu[0] + f_C[j, r, 1] * mu[1]
                                                   + f_C[j, r, 2] * mu[2])) >= 0.0:
                inside = False
        out_in[a, j] = inside


def nearest_s3(mean: NDArray[np.float64], chol: NDArray[np.float64],
               e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
               e_len: NDArray[np.float64], f_C: NDArray[np.float64], f_d: NDArray[np.float64],
               f_valid: NDArray[np.bool_]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """The whitened nearest point of each polytope minus the whitened mean (N, n, 3), 0 where
    the mean lies in P, and whether it does (N, n): ``_NearestPoints._nearest_points`` for
    s = 3 without the edge directions (arguments as in :func:`evaluate_s3`)."""
    N, n = mean.shape[0], mean.shape[1]
    out_x = np.empty((N, n, 3))
    out_in = np.empty((N, n), dtype=np.bool_)
    parallel_for(lambda lo, hi: _nearest_range(lo, hi, mean, chol, e_start, e_dir, e_len, f_C,
                                               f_d, f_valid, out_x, out_in), N * n, 256)
    return out_x, out_in


def _warmup() -> None:
    # a unit cube and one Gaussian: every kernel of the module with its one signature
    from ._cones import ConeTable
    from ._polyhedron import polyhedron_geometry

    C = np.vstack([np.eye(3), -np.eye(3)])
    table = ConeTable.from_geometries([polyhedron_geometry(C, np.ones(6))])
    chol = np.ascontiguousarray(np.eye(3)[None, None])
    mean = np.full((1, 1, 3), 0.3)
    for moments in (True, False):
        table._evaluate_compiled3(mean, chol, moments)
    table._nearest_point(mean, chol)
