"""Simplex cubature of one polytope at S = 3 inside the compiled one-call lane.

The general path's pieces, for one bounded polytope in whitened coordinates (the Gaussian
N(0, I)), serial:

* :func:`fan_s3`: :func:`fastpath._polyhedron_triangulation.fan_triangulation` (recursive
  fans from each face's first vertex over the facets of that face not containing it, rows
  in increasing order) for a simple polytope;
* :func:`cost_s3`: ``_CubatureRouting._cubature_cost`` (estimated rule nodes, and a lower
  bound of the distance from the mean) and ``_log_det_min``;
* :func:`cubature_s3`: ``_CubatureRouting._cubature`` (cost gate on the simplices'
  spreads) then :func:`fastpath._simplex_cubature.simplex_moments` (bisection at the
  longest edge to the rules' spread, the drop rule, the rule of each spread band), whose
  node loop and owner's sums are the batched path's own kernels
  (:func:`fastpath._jit_cubature.simplex_stats`' blocks and ``combine_owners``' range).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit
from ._jit_cubature import _BLOCK, _combine_range, _simplex_blocks

__all__ = ["fan_s3", "cost_s3", "cubature_s3"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SPREAD = 12.0      # _simplex_cubature._SPREAD
_DROP = 60.0        # _simplex_cubature._DROP
#: True as an array entry (see _rules_s3)
_MOMENTS = np.ones(1, dtype=np.bool_)


@jit
def fan_s3(act: NDArray[np.intp], m: int) -> NDArray[np.intp]:
    """Simplices (T, 4) of vertex indices of a simple 3-polytope whose vertex i is tight at
    rows act[i] (3 each, rows 0..m-1); (0, 4) where a face is not as expected (the
    caller then leaves the polytope to the general path)."""
    k = act.shape[0]
    out = np.empty((max(4 * k * m, 1), 4), dtype=np.intp)
    nt = 0
    fail = np.empty((0, 4), dtype=np.intp)
    tight = np.zeros((k, m), dtype=np.bool_)
    used_row = np.zeros(m, dtype=np.bool_)
    for i in range(k):
        for q in range(3):
            tight[i, act[i, q]] = True
            used_row[act[i, q]] = True
    v0 = 0
    face = np.empty(k, dtype=np.intp)
    for j in range(m):                       # facets of P not containing vertex 0
        if not used_row[j] or tight[v0, j]:
            continue
        nf = 0
        for v in range(k):
            if tight[v, j]:
                face[nf] = v
                nf += 1
        if nf < 3:
            continue
        # facets are distinct rows of a simple polytope: no repeated vertex sets
        w0 = face[0]
        for j2 in range(m):                  # edges of the facet not containing w0
            if j2 == j or not used_row[j2] or tight[w0, j2]:
                continue
            a = -1
            b = -1
            c = 0
            for t in range(nf):
                v = face[t]
                if tight[v, j2]:
                    if c == 0:
                        a = v
                    b = v
                    c += 1
            if c < 2:
                continue
            if c > 2:
                return fail
            out[nt, 0] = v0
            out[nt, 1] = w0
            out[nt, 2] = a
            out[nt, 3] = b
            nt += 1
    return out[:nt].copy()


@jit
def cost_s3(V: NDArray[np.float64], ntri: int, CA: NDArray[np.float64],
            bounds: NDArray[np.float64], q_start: NDArray[np.intp]
            ) -> tuple[float, float, float]:
    """(estimated cubature nodes, lower bound of |x| over P, min log det of the cones'
    correlation matrices) of a bounded polytope with vertices V (whitened); ``bounds`` and
    ``q_start`` the rules' spread bands and node offsets (``_simplex_cubature._rule_table``)."""
    k = V.shape[0]
    c0 = c1 = c2 = 0.0
    for i in range(k):
        c0 += V[i, 0]
        c1 += V[i, 1]
        c2 += V[i, 2]
    c0 /= k
    c1 /= k
    c2 /= k
    R2 = 0.0
    for i in range(k):
        R2 = max(R2, (V[i, 0] - c0) ** 2 + (V[i, 1] - c1) ** 2 + (V[i, 2] - c2) ** 2)
    R = math.sqrt(R2)
    D = 2.0 * R
    nc = math.sqrt(c0 * c0 + c1 * c1 + c2 * c2)
    spread = nc * D + 0.5 * D * D
    band = bounds.size - 1
    for b in range(bounds.size - 1):
        if spread <= bounds[b]:
            band = b
            break
    per = float(q_start[band + 1] - q_start[band]) * max(1.0, spread / _SPREAD) ** 3
    cost = ntri * per
    far = max(nc - R, 0.0)
    ldm = math.inf
    M = np.empty((3, 3))
    for i in range(k):
        for q in range(3):
            nn = math.sqrt(CA[i, q, 0] ** 2 + CA[i, q, 1] ** 2 + CA[i, q, 2] ** 2)
            for c in range(3):
                M[q, c] = CA[i, q, c] / nn
        det = (M[0, 0] * (M[1, 1] * M[2, 2] - M[1, 2] * M[2, 1])
               - M[0, 1] * (M[1, 0] * M[2, 2] - M[1, 2] * M[2, 0])
               + M[0, 2] * (M[1, 0] * M[2, 1] - M[1, 1] * M[2, 0]))
        ldm = min(ldm, 2.0 * np.log(abs(det)))
    return cost, far, ldm


@jit
def _size(X: NDArray[np.float64], t: int, pa: NDArray[np.intp], pb: NDArray[np.intp]
          ) -> tuple[float, float, int]:
    """|centre|, longest edge and its index (first of the longest) of simplex t."""
    s = X.shape[2]
    cc = 0.0
    for d in range(s):
        acc = X[t, 0, d] + X[t, 1, d]
        for a in range(2, s + 1):
            acc += X[t, a, d]
        cd = acc / (s + 1)
        cc += cd * cd
    bl = -1.0
    be = 0
    for p in range(pa.size):
        L2 = 0.0
        for d in range(s):
            e = X[t, pb[p], d] - X[t, pa[p], d]
            L2 += e * e
        if L2 > bl:
            bl = L2
            be = p
    return math.sqrt(cc), math.sqrt(bl), be


@jit
def cubature_s3(V: NDArray[np.float64], tris: NDArray[np.intp], budget: int,
                bounds: NDArray[np.float64], lamcT: NDArray[np.float64],
                logw: NDArray[np.float64], q_start: NDArray[np.intp],
                res: NDArray[np.float64]) -> bool:
    """N(0, I) moments over the simplices V[tris] (module docstring) into res: log m0,
    mean (3), covariance (9, row-major). False where the cost gate or the bisection cap
    leaves the polytope to its cone sum."""
    s = 3
    pa = np.array([0, 0, 0, 1, 1, 2], dtype=np.intp)
    pb = np.array([1, 2, 3, 2, 3, 3], dtype=np.intp)
    nt = tris.shape[0]
    cur = np.empty((nt, s + 1, s))
    for t in range(nt):
        for a in range(s + 1):
            for d in range(s):
                cur[t, a, d] = V[tris[t, a], d]
    est = 0.0
    for t in range(nt):
        nc, D, _ = _size(cur, t, pa, pb)
        est += max(1.0, (nc * D + 0.5 * D * D) / _SPREAD) ** s
    if est > budget:
        return False
    done = np.empty((max(2 * budget, nt), s + 1, s))
    done_sp = np.empty(done.shape[0])
    nd = 0
    K = nt
    resolved = True
    while K > 0:
        ncs = np.empty(K)
        Ds = np.empty(K)
        es = np.empty(K, dtype=np.intp)
        best = -math.inf
        for t in range(K):
            ncs[t], Ds[t], es[t] = _size(cur, t, pa, pb)
            best = max(best, -0.5 * ncs[t] * ncs[t])
        keep = np.empty(K, dtype=np.bool_)
        cnt = 0
        for t in range(K):
            top = max(ncs[t] - Ds[t], 0.0)
            keep[t] = -0.5 * top * top >= best - _DROP
            cnt += keep[t]
        split = np.zeros(K, dtype=np.bool_)
        nsplit = 0
        for t in range(K):
            sp = ncs[t] * Ds[t] + 0.5 * Ds[t] * Ds[t]
            wide = keep[t] and sp > _SPREAD
            if wide and cnt * 2 <= budget:
                split[t] = True
                nsplit += 1
            elif wide:
                resolved = False
            if keep[t] and not split[t]:
                if nd >= done.shape[0]:
                    # element loops here and below, not done[:nd] / cur[t] slice copies:
                    # an array-to-slice assignment compiles numba's shape-mismatch
                    # error message (seconds of cold compilation)
                    grown = np.empty((2 * done.shape[0], s + 1, s))
                    gsp = np.empty(2 * done.shape[0])
                    for u in range(nd):
                        for a in range(s + 1):
                            for d in range(s):
                                grown[u, a, d] = done[u, a, d]
                        gsp[u] = done_sp[u]
                    done = grown
                    done_sp = gsp
                for a in range(s + 1):
                    for d in range(s):
                        done[nd, a, d] = cur[t, a, d]
                done_sp[nd] = sp
                nd += 1
        if nsplit == 0:
            break
        nxt = np.empty((2 * nsplit, s + 1, s))
        i = 0
        for t in range(K):
            if not split[t]:
                continue
            a = pa[es[t]]
            b = pb[es[t]]
            for u in range(s + 1):
                for d in range(s):
                    nxt[i, u, d] = cur[t, u, d]
                    nxt[nsplit + i, u, d] = cur[t, u, d]
            for d in range(s):
                mid = 0.5 * (cur[t, a, d] + cur[t, b, d])
                nxt[i, b, d] = mid
                nxt[nsplit + i, a, d] = mid
            i += 1
        cur = nxt
        K = 2 * nsplit
    if not resolved or nd == 0:
        return False
    return _rules_s3(done[:nd], done_sp[:nd], bounds, lamcT, logw, q_start, res)


@jit
def _rules_s3(X: NDArray[np.float64], spread: NDArray[np.float64],
              bounds: NDArray[np.float64], lamcT: NDArray[np.float64],
              logw: NDArray[np.float64], q_start: NDArray[np.intp],
              res: NDArray[np.float64]) -> bool:
    """The band's rule on each simplex and the polytope's sums, by the batched path's
    kernels (``simplex_stats``' blocks, ``combine_owners``' range) on one owner: the
    same numbers as the E-step's cubature of these simplices."""
    s = 3
    nd = X.shape[0]
    rule = np.empty(nd, dtype=np.intp)
    cen = np.empty((nd, s))
    nb = bounds.size
    for k in range(nd):
        r = 0
        while r < nb and bounds[r] < spread[k]:
            r += 1
        rule[k] = r if r < nb else -1
        for d in range(s):
            cen[k, d] = (X[k, 0, d] + X[k, 1, d] + X[k, 2, d] + X[k, 3, d]) / (s + 1)
    logW = np.empty(nd)
    mo = np.empty((nd, s))
    cw = np.empty((nd, s, s))
    # np.intp and _MOMENTS[0], not literals: a literal argument would compile the batched
    # kernels a second time, specialised on it
    _simplex_blocks(np.intp(0), (nd + _BLOCK - 1) // _BLOCK, X, rule, lamcT, logw, q_start,
                    math.log(6.0), _MOMENTS[0], logW, mo, cw)
    order = np.arange(nd)
    seg = np.array([0, nd], dtype=np.intp)
    log_m0 = np.empty(1)
    mean = np.empty((1, s))
    cov = np.empty((1, s, s))
    _combine_range(np.intp(0), np.intp(1), logW, mo, cw, cen, order, seg, s * _LOG_SQRT_2PI,
                   _MOMENTS[0], log_m0, mean, cov)
    if not math.isfinite(log_m0[0]):
        return False
    res[0] = log_m0[0]
    for d in range(s):
        res[1 + d] = mean[0, d]
        for e in range(s):
            res[4 + 3 * d + e] = cov[0, d, e]
    return True


def _warmup() -> None:
    from ._jit_one_shot3 import _warmup as lane_warmup

    lane_warmup()
