"""Simplex cubature of one polygon inside the compiled one-call lane (fastpath._jit_one_shot).

:func:`cubature_s2` is :func:`fastpath._simplex_cubature.simplex_moments` for the fan
triangulation of one polygon (after the cost gate of
``fastpath._cone_cubature._CubatureRouting._cubature``): the same bisection to the rules'
spread, the same drop rule, the same rules chosen by spread band, and the node loop of
:func:`fastpath._jit_cubature.simplex_stats` for s = 2 with the owner's sums of
``combine_owners``, serial (one polygon: no threads to wake). The sums over nodes are
taken in another order, so the two agree to rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit, jit_inline
from ._jit_special import exp_vec, sum4

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@jit_inline
def _tri_size(cur: NDArray[np.float64], t: int) -> tuple[float, float, int, int]:
    """|c| (the centroid's norm), the longest edge D and its ends (the first of the pairs
    (0, 1), (0, 2), (1, 2) of that length) of triangle ``cur[t]``."""
    c0 = (cur[t, 0, 0] + cur[t, 1, 0] + cur[t, 2, 0]) / 3.0
    c1 = (cur[t, 0, 1] + cur[t, 1, 1] + cur[t, 2, 1]) / 3.0
    bl = -1.0
    ea = 0
    eb = 1
    for p in range(3):
        a = 0 if p < 2 else 1
        b = 1 if p == 0 else 2
        e0 = cur[t, b, 0] - cur[t, a, 0]
        e1 = cur[t, b, 1] - cur[t, a, 1]
        L2 = e0 * e0 + e1 * e1
        if L2 > bl:
            bl = L2
            ea = a
            eb = b
    return math.sqrt(c0 * c0 + c1 * c1), math.sqrt(bl), ea, eb


@jit
def cubature_s2(V: NDArray[np.float64], tris: NDArray[np.intp], nt: int, budget: int,
                bounds: NDArray[np.float64], lamcT: NDArray[np.float64],
                logw: NDArray[np.float64], q_start: NDArray[np.intp],
                res: NDArray[np.float64]) -> bool:
    """Simplex cubature of N(0, I) over triangles V[tris[:nt]] as
    :func:`fastpath._simplex_cubature.simplex_moments` with ``max_simplices = budget``
    after the cost gate of ``_CubatureRouting._cubature``. res: log m0, mean (2), cov
    (00, 01, 11). False where the gate or the bisection cap leaves it to the cone sum.

    A triangle's sizes are recomputed in each pass over a level rather than stored, and the
    kept triangles and their statistics share one array each: the E-step calls this for
    tens of thousands of small polygons, where a handful of array allocations per call
    cost as much as the rule itself."""
    spread_max = 12.0              # _simplex_cubature._SPREAD
    drop = 60.0                    # _simplex_cubature._DROP
    cur = np.empty((nt, 3, 2))
    for t in range(nt):
        for a in range(3):
            cur[t, a, 0] = V[tris[t, a], 0]
            cur[t, a, 1] = V[tris[t, a], 1]
    K = nt
    # the kept triangles: vertices (6) and spread (1) per row; grown by doubling
    done = np.empty((nt, 7))
    nd = 0
    first = True
    resolved = True
    while K > 0:
        best = -math.inf
        est = 0.0
        for t in range(K):
            nc, D, _, _ = _tri_size(cur, t)
            best = max(best, -0.5 * nc * nc)
            if first:
                sp = nc * D + 0.5 * D * D
                est += max(1.0, sp / spread_max) ** 2
        if first:
            if est > budget:
                return False
            first = False
        cnt = 0
        for t in range(K):
            nc, D, _, _ = _tri_size(cur, t)
            top = max(nc - D, 0.0)
            if -0.5 * top * top >= best - drop:
                cnt += 1
        may_split = cnt * 2 <= budget
        nsplit = 0
        for t in range(K):
            nc, D, _, _ = _tri_size(cur, t)
            top = max(nc - D, 0.0)
            if not -0.5 * top * top >= best - drop:
                continue
            sp = nc * D + 0.5 * D * D
            if sp > spread_max:
                if may_split:
                    nsplit += 1
                    continue
                resolved = False
            if nd >= done.shape[0]:
                # element loops, not done[:nd] slice copies: an array-to-slice assignment
                # compiles numba's shape-mismatch error message (seconds of cold compilation)
                grown = np.empty((2 * done.shape[0] + 1, 7))
                for u in range(nd):
                    for w in range(7):
                        grown[u, w] = done[u, w]
                done = grown
            for w in range(3):
                done[nd, 2 * w] = cur[t, w, 0]
                done[nd, 2 * w + 1] = cur[t, w, 1]
            done[nd, 6] = sp
            nd += 1
        if nsplit == 0:
            break
        nxt = np.empty((2 * nsplit, 3, 2))
        i = 0
        for t in range(K):
            nc, D, a, b = _tri_size(cur, t)
            top = max(nc - D, 0.0)
            if not (-0.5 * top * top >= best - drop and nc * D + 0.5 * D * D > spread_max):
                continue
            m0 = 0.5 * (cur[t, a, 0] + cur[t, b, 0])
            m1 = 0.5 * (cur[t, a, 1] + cur[t, b, 1])
            for w in range(3):
                for u in range(2):
                    nxt[i, w, u] = cur[t, w, u]
                    nxt[nsplit + i, w, u] = cur[t, w, u]
            nxt[i, b, 0] = m0
            nxt[i, b, 1] = m1
            nxt[nsplit + i, a, 0] = m0
            nxt[nsplit + i, a, 1] = m1
            i += 1
        cur = nxt
        K = 2 * nsplit
    if not resolved:
        return False
    # one rule per simplex (simplex_stats, s = 2), then the owner's sums (combine_owners).
    # st[k]: log W, mean (2), covariance (00, 01, 11), centre (2); the nodes' scratch after
    nq = logw.size
    st = np.empty(8 * nd + 4 * nq)
    Y0 = st[8 * nd:8 * nd + nq]
    Y1 = st[8 * nd + nq:8 * nd + 2 * nq]
    lf = st[8 * nd + 2 * nq:8 * nd + 3 * nq]
    EY = st[8 * nd + 3 * nq:]
    log_fact = math.log(2.0)
    nb = bounds.size
    for k in range(nd):
        o = 8 * k
        c0 = (done[k, 0] + done[k, 2] + done[k, 4]) / 3.0
        c1 = (done[k, 1] + done[k, 3] + done[k, 5]) / 3.0
        st[o + 6] = c0
        st[o + 7] = c1
        for i in range(1, 6):
            st[o + i] = 0.0
        r = 0
        while r < nb and bounds[r] < done[k, 6]:
            r += 1
        if r >= nb:
            st[o] = -math.inf
            continue
        d00 = done[k, 0] - c0
        d01 = done[k, 1] - c1
        d10 = done[k, 2] - c0
        d11 = done[k, 3] - c1
        d20 = done[k, 4] - c0
        d21 = done[k, 5] - c1
        # |det E| by LU with partial pivoting (as _jit_cubature._abs_det)
        e00 = done[k, 2] - done[k, 0]
        e01 = done[k, 3] - done[k, 1]
        e10 = done[k, 4] - done[k, 0]
        e11 = done[k, 5] - done[k, 1]
        if abs(e10) > abs(e00):
            e00, e01, e10, e11 = e10, e11, e00, e01
        if e00 == 0.0:
            vol = 0.0
        else:
            vol = abs(e00 * (e11 - (e10 / e00) * e01))
        if not vol > 0.0:
            st[o] = -math.inf
            continue
        logvol = math.log(vol) - log_fact
        q0 = q_start[r]
        Q = q_start[r + 1] - q0
        mx = -math.inf
        for q in range(Q):
            qa = q0 + q
            y0 = lamcT[0, qa] * d00 + lamcT[1, qa] * d10 + lamcT[2, qa] * d20
            y1 = lamcT[0, qa] * d01 + lamcT[1, qa] * d11 + lamcT[2, qa] * d21
            Y0[q] = y0
            Y1[q] = y1
            v = logw[qa] - (c0 * y0 + 0.5 * y0 * y0) - (c1 * y1 + 0.5 * y1 * y1)
            lf[q] = v
            if v > mx:
                mx = v
        if not math.isfinite(mx):
            st[o] = -math.inf
            continue
        for q in range(Q):
            lf[q] = exp_vec(lf[q] - mx)
        W = sum4(lf, Q)
        if not W > 0.0:
            st[o] = -math.inf
            continue
        st[o] = mx + math.log(W) + logvol - 0.5 * (c0 * c0 + c1 * c1)
        for q in range(Q):
            EY[q] = lf[q] * Y0[q]
        m10 = sum4(EY, Q) / W
        s00 = 0.0
        s01 = 0.0
        for q in range(Q):
            s00 += EY[q] * Y0[q]
            s01 += EY[q] * Y1[q]
        for q in range(Q):
            EY[q] = lf[q] * Y1[q]
        m11 = sum4(EY, Q) / W
        s11 = 0.0
        for q in range(Q):
            s11 += EY[q] * Y1[q]
        st[o + 1] = m10
        st[o + 2] = m11
        st[o + 3] = s00 / W - m10 * m10
        st[o + 4] = s01 / W - m10 * m11
        st[o + 5] = s11 / W - m11 * m11
    top = -math.inf
    for k in range(nd):
        top = max(top, st[8 * k])
    if not math.isfinite(top):
        return False
    tot = 0.0
    for k in range(nd):
        tot += math.exp(st[8 * k] - top)
    res[0] = top + math.log(tot) - 2.0 * _LOG_SQRT_2PI
    r0 = st[6]
    r1 = st[7]
    f0 = 0.0
    f1 = 0.0
    for k in range(nd):
        o = 8 * k
        wk = math.exp(st[o] - top)
        f0 += wk * ((st[o + 6] - r0) + st[o + 1])
        f1 += wk * ((st[o + 7] - r1) + st[o + 2])
    f0 /= tot
    f1 /= tot
    v00 = v01 = v11 = 0.0
    for k in range(nd):
        o = 8 * k
        wk = math.exp(st[o] - top)
        g0 = (st[o + 6] - r0) + st[o + 1] - f0
        g1 = (st[o + 7] - r1) + st[o + 2] - f1
        v00 += wk * (st[o + 3] + g0 * g0)
        v01 += wk * (st[o + 4] + g0 * g1)
        v11 += wk * (st[o + 5] + g1 * g1)
    res[1] = r0 + f0
    res[2] = r1 + f1
    res[3] = v00 / tot
    res[4] = v01 / tot
    res[5] = v11 / tot
    return True


def _warmup() -> None:
    from ._jit_one_shot import _warmup as lane_warmup

    lane_warmup()
