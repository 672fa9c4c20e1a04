"""Compiled fast lane of one call at S = 2: one polygon, one Gaussian, one kernel.

:func:`fastpath.integrals.gaussian_moments` on one polyhedron and one Gaussian spent ~1.4 ms
in dozens of small numpy calls (standardisation, geometry, cone table, guards) around
~10 us of arithmetic. :func:`one_shot_s2` does the same steps in one compiled call, with
the same formulas and tolerances, in the order the general path takes them:

1. the covariance rule (a fast accept strictly inside :func:`dgn_core.validation.check_covariance`:
   symmetric, condition number below 1e12 by the closed-form eigenvalues of a 2 x 2
   matrix, 10x inside the rule's 1e13 so rounding cannot change the verdict), the
   Cholesky factor A and the standardised rows of :func:`fastpath._standardise.standardise`
   (w = A^{-1}(z - mean), unit rows, far rows dropped about a verified point of P);
2. the geometry of :func:`fastpath._polyhedron.polyhedron_geometry` for a simple pointed
   polygon (scaled to unit size, enumerated interior point and vertices, facet rows by
   their tight vertices, edges and rays from the generators, the generic direction from
   the same fixed draws);
3. the fused S = 2 cone kernel of :mod:`fastpath._jit_cones` (``_pair_s2``, called as is);
4. the guards of :class:`fastpath._cones.ConeTable`: where the signed sum of a bounded
   polygon lost more than ``_LOG_CANCEL_CUBATURE`` the simplex cubature of
   :mod:`fastpath._simplex_cubature` (same fan triangulation, bisection, budgets, rules
   and drop rule; the node loop of :mod:`fastpath._jit_cubature`), and the moments mapped
   back through A.

Anything else returns a non-zero status and the caller runs the general path, which is
then the answer: invalid or borderline input (the general path raises its own errors),
empty or flat polygons, lines, non-simple vertices, duplicate or weakly redundant rows,
too many rows to enumerate, a mean at least ``TAIL_DISTANCE`` from P (the tail slices),
a cancellation the cubature could not take (beyond ``_MAX_LOG_CANCEL``: the general path
tries the other direction), non-finite results. The two differ by rounding only
(tests/test_one_shot_lane.py).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit
from ._jit_bvn import BUF_SIZE
from ._jit_cones import _nearest_s2, _pair_s2
from ._jit_special import exp_vec, sum4

# status codes (0: done; the others name why the general path takes the call)
OK = 0
INVALID = 1        # not finite, covariance not clearly accepted: the general path checks
EMPTY = 2          # a zero row with d < 0, or a row overflowing: the general path's case
FAR = 3            # P at least the tail distance away (or overflow in the units)
LINES = 4          # rank < 2 (lines) or too many rows to enumerate
THIN = 5           # no interior point found clearly inside (LP, emptiness)
NONSIMPLE = 6      # a non-simple vertex, close vertices, duplicate rows, odd edges
TAIL = 7           # the tail slices of _cone_tail
CANCEL = 8         # cancellation beyond what the cubature took
NONFINITE = 9      # results not finite
REASONS = ("ok", "invalid input", "empty", "far", "lines or many rows", "thin or LP",
           "non-simple", "tail", "cancellation", "non-finite")

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_EPS = 2.220446049250313e-16


@jit
def _round_half_even(x: float) -> float:
    r = float(math.floor(x + 0.5))
    if r - x == 0.5 and r % 2.0 != 0.0:
        r -= 1.0
    return r


@jit
def _cov_ok(cov: NDArray[np.float64]) -> bool:
    """Finite, symmetric within 1e-10 of the largest entry, condition number < 1e12."""
    c00 = cov[0, 0]
    c01 = cov[0, 1]
    c10 = cov[1, 0]
    c11 = cov[1, 1]
    if not (math.isfinite(c00) and math.isfinite(c01) and math.isfinite(c10)
            and math.isfinite(c11)):
        return False
    scale = max(max(abs(c00), abs(c01)), max(abs(c10), abs(c11)))
    if not scale > 0.0 or abs(c01 - c10) > 1e-10 * scale:
        return False
    a = c00 / scale
    c = c11 / scale
    b = 0.5 * (c01 + c10) / scale
    if not (a > 0.0 and c > 0.0):
        return False
    hi = 0.5 * (a + c) + math.hypot(0.5 * (a - c), b)
    lo = (a * c - b * b) / hi
    return lo > 0.0 and hi < 1e12 * lo


@jit
def _solve2(c00: float, c01: float, c10: float, c11: float, b0: float, b1: float
            ) -> tuple[float, float]:
    """[[c00, c01], [c10, c11]] x = b by LU with partial pivoting (as LAPACK's gesv: the
    multiplier by the pivot's reciprocal), more accurate than Cramer's rule for nearly
    parallel rows."""
    if abs(c10) > abs(c00):
        c00, c01, c10, c11 = c10, c11, c00, c01
        b0, b1 = b1, b0
    l = c10 * (1.0 / c00)
    u11 = c11 - l * c01
    x1 = (b1 - l * b0) / u11
    x0 = (b0 - c01 * x1) / c00
    return x0, x1


@jit
def _vertices(C: NDArray[np.float64], d: NDArray[np.float64], m: int, det_tol: float,
              X: NDArray[np.float64], ci: NDArray[np.intp]) -> int:
    """Solutions of the non-singular pairs of rows (lexicographic, as solve_subsets) into
    X, their pairs into ci; returns their number."""
    k = 0
    for i in range(m):
        for j in range(i + 1, m):
            det = C[i, 0] * C[j, 1] - C[i, 1] * C[j, 0]
            if not abs(det) > det_tol:
                continue
            X[k, 0], X[k, 1] = _solve2(C[i, 0], C[i, 1], C[j, 0], C[j, 1], d[i], d[j])
            ci[k, 0] = i
            ci[k, 1] = j
            k += 1
    return k


@jit
def _max_viol(C: NDArray[np.float64], d: NDArray[np.float64], m: int, x0: float,
              x1: float) -> float:
    v = -math.inf
    for r in range(m):
        v = max(v, C[r, 0] * x0 + C[r, 1] * x1 - d[r])
    return v


@jit
def _cubature_s2(V: NDArray[np.float64], tris: NDArray[np.intp], nt: int, budget: int,
                 bounds: NDArray[np.float64], lamcT: NDArray[np.float64],
                 logw: NDArray[np.float64], q_start: NDArray[np.intp],
                 res: NDArray[np.float64]) -> bool:
    """Simplex cubature of N(0, I) over triangles V[tris[:nt]] as
    :func:`fastpath._simplex_cubature.simplex_moments` with ``max_simplices = budget``
    after the cost gate of ``_CubatureRouting._cubature``. res: log m0, mean (2), cov
    (00, 01, 11). False where the gate or the bisection cap leaves it to the cone sum."""
    spread_max = 12.0              # _simplex_cubature._SPREAD
    drop = 60.0                    # _simplex_cubature._DROP
    est = 0.0
    cur = np.empty((nt, 3, 2))
    for t in range(nt):
        for a in range(3):
            cur[t, a, 0] = V[tris[t, a], 0]
            cur[t, a, 1] = V[tris[t, a], 1]
    K = nt
    # sizes: |c|, longest edge (first of the pairs (0,1), (0,2), (1,2)), spread
    done = np.empty((max(budget, nt) + nt, 3, 2))
    done_sp = np.empty(done.shape[0])
    nd = 0
    first = True
    resolved = True
    while K > 0:
        nc = np.empty(K)
        D = np.empty(K)
        ea = np.empty(K, dtype=np.intp)
        eb = np.empty(K, dtype=np.intp)
        best = -math.inf
        for t in range(K):
            c0 = (cur[t, 0, 0] + cur[t, 1, 0] + cur[t, 2, 0]) / 3.0
            c1 = (cur[t, 0, 1] + cur[t, 1, 1] + cur[t, 2, 1]) / 3.0
            nc[t] = math.sqrt(c0 * c0 + c1 * c1)
            bl = -1.0
            for p in range(3):
                a = 0 if p < 2 else 1
                b = 1 if p == 0 else 2
                e0 = cur[t, b, 0] - cur[t, a, 0]
                e1 = cur[t, b, 1] - cur[t, a, 1]
                L2 = e0 * e0 + e1 * e1
                if L2 > bl:
                    bl = L2
                    ea[t] = a
                    eb[t] = b
            D[t] = math.sqrt(bl)
            best = max(best, -0.5 * nc[t] * nc[t])
        if first:
            for t in range(K):
                sp = nc[t] * D[t] + 0.5 * D[t] * D[t]
                est += max(1.0, sp / spread_max) ** 2
            if est > budget:
                return False
            first = False
        keep = np.empty(K, dtype=np.bool_)
        cnt = 0
        for t in range(K):
            top = max(nc[t] - D[t], 0.0)
            keep[t] = -0.5 * top * top >= best - drop
            if keep[t]:
                cnt += 1
        nsplit = 0
        split = np.zeros(K, dtype=np.bool_)
        for t in range(K):
            sp = nc[t] * D[t] + 0.5 * D[t] * D[t]
            wide = keep[t] and sp > spread_max
            if wide and cnt * 2 <= budget:
                split[t] = True
                nsplit += 1
            elif wide:
                resolved = False
            if keep[t] and not split[t]:
                if nd >= done.shape[0]:
                    grown = np.empty((2 * done.shape[0], 3, 2))
                    grown[:nd] = done[:nd]
                    grown_sp = np.empty(2 * done.shape[0])
                    grown_sp[:nd] = done_sp[:nd]
                    done = grown
                    done_sp = grown_sp
                done[nd] = cur[t]
                done_sp[nd] = sp
                nd += 1
        if nsplit == 0:
            break
        nxt = np.empty((2 * nsplit, 3, 2))
        i = 0
        for t in range(K):
            if not split[t]:
                continue
            a = ea[t]
            b = eb[t]
            m0 = 0.5 * (cur[t, a, 0] + cur[t, b, 0])
            m1 = 0.5 * (cur[t, a, 1] + cur[t, b, 1])
            nxt[i] = cur[t]
            nxt[i, b, 0] = m0
            nxt[i, b, 1] = m1
            nxt[nsplit + i] = cur[t]
            nxt[nsplit + i, a, 0] = m0
            nxt[nsplit + i, a, 1] = m1
            i += 1
        cur = nxt
        K = 2 * nsplit
    if not resolved:
        return False
    # one rule per simplex (simplex_stats, s = 2), then the owner's sums (combine_owners)
    logW = np.empty(nd)
    mo = np.empty((nd, 2))
    cw = np.empty((nd, 3))
    cen = np.empty((nd, 2))
    nq = logw.size
    Y0 = np.empty(nq)
    Y1 = np.empty(nq)
    lf = np.empty(nq)
    EY = np.empty(nq)
    log_fact = math.log(2.0)
    nb = bounds.size
    for k in range(nd):
        c0 = (done[k, 0, 0] + done[k, 1, 0] + done[k, 2, 0]) / 3.0
        c1 = (done[k, 0, 1] + done[k, 1, 1] + done[k, 2, 1]) / 3.0
        cen[k, 0] = c0
        cen[k, 1] = c1
        mo[k, 0] = mo[k, 1] = 0.0
        cw[k, 0] = cw[k, 1] = cw[k, 2] = 0.0
        r = 0
        while r < nb and bounds[r] < done_sp[k]:
            r += 1
        if r >= nb:
            logW[k] = -math.inf
            continue
        d00 = done[k, 0, 0] - c0
        d01 = done[k, 0, 1] - c1
        d10 = done[k, 1, 0] - c0
        d11 = done[k, 1, 1] - c1
        d20 = done[k, 2, 0] - c0
        d21 = done[k, 2, 1] - c1
        # |det E| by LU with partial pivoting (as _jit_cubature._abs_det)
        e00 = done[k, 1, 0] - done[k, 0, 0]
        e01 = done[k, 1, 1] - done[k, 0, 1]
        e10 = done[k, 2, 0] - done[k, 0, 0]
        e11 = done[k, 2, 1] - done[k, 0, 1]
        if abs(e10) > abs(e00):
            e00, e01, e10, e11 = e10, e11, e00, e01
        if e00 == 0.0:
            vol = 0.0
        else:
            vol = abs(e00 * (e11 - (e10 / e00) * e01))
        if not vol > 0.0:
            logW[k] = -math.inf
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
            logW[k] = -math.inf
            continue
        for q in range(Q):
            lf[q] = exp_vec(lf[q] - mx)
        W = sum4(lf, Q)
        if not W > 0.0:
            logW[k] = -math.inf
            continue
        logW[k] = mx + math.log(W) + logvol - 0.5 * (c0 * c0 + c1 * c1)
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
        mo[k, 0] = m10
        mo[k, 1] = m11
        cw[k, 0] = s00 / W - m10 * m10
        cw[k, 1] = s01 / W - m10 * m11
        cw[k, 2] = s11 / W - m11 * m11
    top = -math.inf
    for k in range(nd):
        top = max(top, logW[k])
    if not math.isfinite(top):
        return False
    tot = 0.0
    for k in range(nd):
        tot += math.exp(logW[k] - top)
    res[0] = top + math.log(tot) - 2.0 * _LOG_SQRT_2PI
    r0 = cen[0, 0]
    r1 = cen[0, 1]
    f0 = 0.0
    f1 = 0.0
    for k in range(nd):
        wk = math.exp(logW[k] - top)
        f0 += wk * ((cen[k, 0] - r0) + mo[k, 0])
        f1 += wk * ((cen[k, 1] - r1) + mo[k, 1])
    f0 /= tot
    f1 /= tot
    v00 = v01 = v11 = 0.0
    for k in range(nd):
        wk = math.exp(logW[k] - top)
        g0 = (cen[k, 0] - r0) + mo[k, 0] - f0
        g1 = (cen[k, 1] - r1) + mo[k, 1] - f1
        v00 += wk * (cw[k, 0] + g0 * g0)
        v01 += wk * (cw[k, 1] + g0 * g1)
        v11 += wk * (cw[k, 2] + g1 * g1)
    res[1] = r0 + f0
    res[2] = r1 + f1
    res[3] = v00 / tot
    res[4] = v01 / tot
    res[5] = v11 / tot
    return True


@jit
def _standardised_rows(C: NDArray[np.float64], d: NDArray[np.float64], mu: NDArray[np.float64],
                       a00: float, a10: float, a11: float, Cw: NDArray[np.float64],
                       dw: NDArray[np.float64]) -> int:
    """Rows of P in w = A^{-1}(z - mu) (unit_rows, then standardise's C A / |C A|); their
    number, or -EMPTY / -FAR where the general path has its own case."""
    m = 0
    for j in range(C.shape[0]):
        amax = max(abs(C[j, 0]), abs(C[j, 1]))
        if amax <= 0.0:
            if d[j] < 0.0:
                return -EMPTY
            continue
        s0 = C[j, 0] / amax
        s1 = C[j, 1] / amax
        nn = math.sqrt(s0 * s0 + s1 * s1)
        u0 = s0 / nn
        u1 = s1 / nn
        du = (d[j] / amax) / nn
        if not math.isfinite(du):
            if d[j] < 0.0:
                return -EMPTY
            continue
        ca0 = u0 * a00 + u1 * a10
        ca1 = u1 * a11
        am = max(abs(ca0), abs(ca1))
        if not am > 0.0:
            return -FAR
        t0 = ca0 / am
        t1 = ca1 / am
        rn = am * math.sqrt(t0 * t0 + t1 * t1)
        w0 = ca0 / rn
        w1 = ca1 / rn
        dv = (du - (u0 * mu[0] + u1 * mu[1])) / rn
        if not (math.isfinite(dv) and math.isfinite(w0) and math.isfinite(w1)):
            return -FAR
        Cw[m, 0] = w0
        Cw[m, 1] = w1
        dw[m] = dv
        m += 1
    return m


@jit
def _drop_far_rows(Cw: NDArray[np.float64], dw: NDArray[np.float64], m: int,
                   t: NDArray[np.float64], far: float, keep: NDArray[np.bool_]) -> int:
    """Rows kept by standardise's rule (rows at least DROP_SIGMAS beyond the distance to a
    verified point of P are dropped; module docstring of fastpath._standardise); returns
    their number, or -THIN where no point was verified (the general path's LP)."""
    drop_sigmas = 20.0
    tmax = -math.inf
    for j in range(m):
        keep[j] = True
        tmax = max(tmax, t[j])
    if not tmax >= drop_sigmas:
        return m
    inside = True
    for j in range(m):
        if not dw[j] > 16.0 * _EPS * abs(dw[j]):
            inside = False
    p0 = 0.0
    p1 = 0.0
    if not inside:
        # the mean of the vertices of P cut by c_j.x <= clip (a subset of P), verified
        clip = 2.0 * (max(far, 0.0) + drop_sigmas)
        dc = np.empty(m)
        for j in range(m):
            dc[j] = min(dw[j], clip)
        nmax = m * (m - 1) // 2
        X = np.empty((max(nmax, 1), 2))
        ci = np.empty((max(nmax, 1), 2), dtype=np.intp)
        n = _vertices(Cw, dc, m, 1e-14, X, ci)
        cnt = 0
        for i in range(n):
            x0 = X[i, 0]
            x1 = X[i, 1]
            if _max_viol(Cw, dc, m, x0, x1) <= 1e-9 * (1.0 + math.hypot(x0, x1)):
                p0 += x0
                p1 += x1
                cnt += 1
        if cnt == 0:
            return -THIN
        p0 /= cnt
        p1 /= cnt
        pn = math.hypot(p0, p1)
        for j in range(m):
            slack = dw[j] - (Cw[j, 0] * p0 + Cw[j, 1] * p1)
            if not slack > 16.0 * _EPS * (abs(dw[j]) + pn):
                return -THIN
    delta = math.hypot(p0, p1)
    kept = 0
    for j in range(m):
        keep[j] = not (t[j] >= (delta + drop_sigmas) * (1.0 + 1e-9))
        if keep[j]:
            kept += 1
    return kept


@jit
def _geometry_s2(C0: NDArray[np.float64], d0: NDArray[np.float64],
                 draws_b: NDArray[np.float64], draws_u: NDArray[np.float64]):
    """polyhedron_geometry of {C0 w <= d0} (unit rows) for a simple pointed polygon.

    Returns (status, k, X, A, CA, E_start, E_dir, E_len, edge_id, orient, Cr, dr, c_gen,
    nr): vertices X (k, 2), their tight rows A (k, 2) and cones CA (k, 2, 2), edges
    (E, 2), (E, 2), (E,), each vertex's edges and orientations (k, 2), facet rows
    Cr (m, 2), dr (m,), the generic direction c_gen (2,) and the number of rays, all at the
    polygon's own scale (as polyhedron_geometry returns them).
    """
    tol = 1e-9                  # _polyhedron._TOL
    det_tol = 1e-14             # _polyhedron._DET_TOL
    empty_tol = 1e-12           # _polyhedron._EMPTY_TOL
    m = C0.shape[0]
    e2 = np.empty((0, 2))
    ei = np.empty((0, 2), dtype=np.intp)
    bad = (e2, ei, np.empty((0, 2, 2)), e2, e2, np.empty(0), ei, e2, e2, np.empty(0),
           np.empty(2), 0)
    if m < 2 or m * (m - 1) // 2 > 4096:       # _small_polytope.MAX_SUBSETS
        return (LINES, 0, 1.0) + bad
    # unit_rows, the scale L (a power of two near max |d|), _geometry_unit's renormalisation
    Cr = np.empty((m, 2))
    dr = np.empty(m)
    dmax = 0.0
    for j in range(m):
        amax = max(abs(C0[j, 0]), abs(C0[j, 1]))
        s0 = C0[j, 0] / amax
        s1 = C0[j, 1] / amax
        nn = math.sqrt(s0 * s0 + s1 * s1)
        Cr[j, 0] = s0 / nn
        Cr[j, 1] = s1 / nn
        dr[j] = (d0[j] / amax) / nn
        dmax = max(dmax, abs(dr[j]))
    L = 2.0 ** _round_half_even(math.log2(dmax)) if dmax > 0.0 else 1.0
    scale_d = 1.0
    for j in range(m):
        dr[j] = dr[j] / L
        nn = math.sqrt(Cr[j, 0] * Cr[j, 0] + Cr[j, 1] * Cr[j, 1])
        Cr[j, 0] = Cr[j, 0] / nn
        Cr[j, 1] = Cr[j, 1] / nn
        dr[j] = dr[j] / nn
        scale_d = max(scale_d, 1.0 + abs(dr[j]))
    # rank 2 for certain: a pair of unit rows with |det| > 1e-6 bounds the smallest
    # singular value far above _null_basis's threshold
    big = 0.0
    for i in range(m):
        for j in range(i + 1, m):
            big = max(big, abs(Cr[i, 0] * Cr[j, 1] - Cr[i, 1] * Cr[j, 0]))
    if not big > 1e-6:
        return (LINES, 0, L) + bad
    # extreme rays of the recession cone (extreme_rays: null directions of single rows)
    R = np.empty((2 * m, 2))
    nr_e = 0
    for sgn in (1.0, -1.0):
        for j in range(m):
            n0 = -Cr[j, 1]
            n1 = Cr[j, 0]
            nn = math.sqrt(n0 * n0 + n1 * n1)
            if not nn > 1e-11:
                continue
            x0 = sgn * n0 / nn
            x1 = sgn * n1 / nn
            mx = -math.inf
            for i in range(m):
                mx = max(mx, Cr[i, 0] * x0 + Cr[i, 1] * x1)
            if mx <= tol:
                R[nr_e, 0] = x0
                R[nr_e, 1] = x1
                nr_e += 1
    # interior point: mean of the feasible pair solutions, stepped out along the rays
    nmax = m * (m - 1) // 2
    X = np.empty((nmax, 2))
    ci = np.empty((nmax, 2), dtype=np.intp)
    n = _vertices(Cr, dr, m, det_tol, X, ci)
    y0 = 0.0
    y1 = 0.0
    cnt = 0
    feas = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        if _max_viol(Cr, dr, m, X[i, 0], X[i, 1]) <= tol * (1.0 + math.hypot(X[i, 0], X[i, 1])):
            feas[i] = True
            y0 += X[i, 0]
            y1 += X[i, 1]
            cnt += 1
    if cnt == 0:
        return (THIN, 0, L) + bad
    y0 /= cnt
    y1 /= cnt
    if nr_e > 0:
        spread = 0.0
        if cnt > 1:
            for i in range(n):
                if feas[i]:
                    spread = max(spread, max(abs(X[i, 0] - y0), abs(X[i, 1] - y1)))
        r0 = 0.0
        r1 = 0.0
        for i in range(nr_e):
            r0 += R[i, 0]
            r1 += R[i, 1]
        f = max(1.0, spread)
        y0 += f * (r0 / nr_e)
        y1 += f * (r1 / nr_e)
    r = math.inf
    for j in range(m):
        r = min(r, dr[j] - (Cr[j, 0] * y0 + Cr[j, 1] * y1))
    if not r > 1e3 * empty_tol * scale_d:
        return (THIN, 0, L) + bad
    dt = np.empty(m)
    for j in range(m):
        dt[j] = dr[j] - (Cr[j, 0] * y0 + Cr[j, 1] * y1)
    # vertices relative to y0
    n = _vertices(Cr, dt, m, det_tol, X, ci)
    V = np.empty((n, 2))
    tv = np.empty(n)
    k = 0
    for i in range(n):
        nx = math.hypot(X[i, 0], X[i, 1])
        tx = tol * (r + nx)
        if _max_viol(Cr, dt, m, X[i, 0], X[i, 1]) <= tx:
            V[k, 0] = X[i, 0]
            V[k, 1] = X[i, 1]
            tv[k] = tx
            k += 1
    if k == 0:
        return (NONSIMPLE, 0, L) + bad
    for i in range(k):               # close vertices: a non-simple vertex (clustering)
        for j in range(i + 1, k):
            if math.hypot(V[i, 0] - V[j, 0], V[i, 1] - V[j, 1]) <= max(tv[i], tv[j]):
                return (NONSIMPLE, 0, L) + bad
    # facet rows (facet_rows, m > S' + 1): a tight vertex and two tight generators;
    # duplicates of an earlier row dropped
    rows = np.empty(m, dtype=np.intp)
    mk = 0
    if m > 3:
        keep = np.zeros(m, dtype=np.bool_)
        for j in range(m):
            c = 0
            for i in range(k):
                if abs(dt[j] - (V[i, 0] * Cr[j, 0] + V[i, 1] * Cr[j, 1])) <= tv[i]:
                    c += 1
            rc = 0
            for i in range(nr_e):
                if abs(R[i, 0] * Cr[j, 0] + R[i, 1] * Cr[j, 1]) <= tol:
                    rc += 1
            keep[j] = c >= 1 and c + rc >= 2
        for b in range(m):
            if not keep[b]:
                continue
            for a in range(b):
                if (keep[a] and max(abs(Cr[a, 0] - Cr[b, 0]), abs(Cr[a, 1] - Cr[b, 1])) <= tol
                        and abs(dt[a] - dt[b]) <= tol * (1.0 + abs(dt[a]))):
                    keep[b] = False
                    break
        for j in range(m):
            if keep[j]:
                rows[mk] = j
                mk += 1
    else:
        for j in range(m):
            rows[j] = j
        mk = m
    Cf = np.empty((mk, 2))
    df = np.empty(mk)
    dtf = np.empty(mk)
    for i in range(mk):
        Cf[i, 0] = Cr[rows[i], 0]
        Cf[i, 1] = Cr[rows[i], 1]
        df[i] = dr[rows[i]]
        dtf[i] = dt[rows[i]]
    m = mk
    # simple_polyhedron: exactly two tight rows per vertex
    A = np.empty((k, 2), dtype=np.intp)
    T = np.zeros((k, m), dtype=np.bool_)
    for i in range(k):
        c = 0
        for j in range(m):
            if abs(dtf[j] - (V[i, 0] * Cf[j, 0] + V[i, 1] * Cf[j, 1])) <= tv[i]:
                if c < 2:
                    A[i, c] = j
                c += 1
                T[i, j] = True
        if c != 2:
            return (NONSIMPLE, 0, L) + bad
    CA = np.empty((k, 2, 2))
    G = np.empty((k, 2, 2))            # G[i, q]: unit generator q (opposite row q)
    for i in range(k):
        p = A[i, 0]
        q = A[i, 1]
        c00 = Cf[p, 0]
        c01 = Cf[p, 1]
        c10 = Cf[q, 0]
        c11 = Cf[q, 1]
        det = c00 * c11 - c01 * c10
        if not abs(det) > det_tol:
            return (NONSIMPLE, 0, L) + bad
        CA[i, 0, 0] = c00
        CA[i, 0, 1] = c01
        CA[i, 1, 0] = c10
        CA[i, 1, 1] = c11
        V[i, 0], V[i, 1] = _solve2(c00, c01, c10, c11, dtf[p], dtf[q])
        # -inv(CA) = -(1/det) [[c11, -c01], [-c10, c00]]; columns are the generators
        g00 = -c11 / det
        g10 = c10 / det
        g01 = c01 / det
        g11 = -c00 / det
        n0 = math.sqrt(g00 * g00 + g10 * g10)
        n1 = math.sqrt(g01 * g01 + g11 * g11)
        G[i, 0, 0] = g00 / n0
        G[i, 0, 1] = g10 / n0
        G[i, 1, 0] = g01 / n1
        G[i, 1, 1] = g11 / n1
    # follow each generator to the row it hits first: the edge's other vertex, or a ray
    other = np.empty((k, 2), dtype=np.intp)
    isray = np.zeros((k, 2), dtype=np.bool_)
    for i in range(k):
        for q in range(2):
            g0 = G[i, q, 0]
            g1 = G[i, q, 1]
            tstar = math.inf
            for j in range(m):
                dot = g0 * Cf[j, 0] + g1 * Cf[j, 1]
                if dot > 1e-12 and not T[i, j]:
                    sl = dtf[j] - (V[i, 0] * Cf[j, 0] + V[i, 1] * Cf[j, 1])
                    tstar = min(tstar, sl / dot)
            if not math.isfinite(tstar):
                isray[i, q] = True
                other[i, q] = -1
                continue
            x0 = V[i, 0] + tstar * g0
            x1 = V[i, 1] + tstar * g1
            best = math.inf
            jb = -1
            for j in range(k):
                if j == i:
                    continue
                dd = math.hypot(x0 - V[j, 0], x1 - V[j, 1])
                if dd < best:
                    best = dd
                    jb = j
            if jb < 0 or best > 1e-6 * (r + math.hypot(x0, x1)):
                return (NONSIMPLE, 0, L) + bad
            other[i, q] = jb
    # bounded edges: the pairs (lo, hi), each seen from both ends, numbered in
    # lexicographic order; rays after them in (vertex, generator) order
    nb = 0
    key = np.empty(2 * k, dtype=np.int64)
    for i in range(k):
        for q in range(2):
            if not isray[i, q]:
                lo = min(i, other[i, q])
                hi = max(i, other[i, q])
                key[nb] = lo * k + hi
                nb += 1
    ks = np.sort(key[:nb])
    ukeys = np.empty(nb, dtype=np.int64)
    nu = 0
    i = 0
    while i < nb:
        j = i
        while j < nb and ks[j] == ks[i]:
            j += 1
        if j - i != 2:
            return (NONSIMPLE, 0, L) + bad
        ukeys[nu] = ks[i]
        nu += 1
        i = j
    nr = 0
    for i in range(k):
        for q in range(2):
            if isray[i, q]:
                nr += 1
    E = nu + nr
    E_start = np.empty((E, 2))
    E_dir = np.empty((E, 2))
    E_len = np.empty(E)
    edge_id = np.empty((k, 2), dtype=np.intp)
    orient = np.ones((k, 2))
    ir = nu
    for i in range(k):
        for q in range(2):
            if isray[i, q]:
                edge_id[i, q] = ir
                E_start[ir, 0] = V[i, 0]
                E_start[ir, 1] = V[i, 1]
                E_dir[ir, 0] = G[i, q, 0]
                E_dir[ir, 1] = G[i, q, 1]
                E_len[ir] = math.inf
                ir += 1
                continue
            lo = min(i, other[i, q])
            hi = max(i, other[i, q])
            kk = lo * k + hi
            e = np.searchsorted(ukeys[:nu], kk)
            edge_id[i, q] = e
            if i == lo:
                E_dir[e, 0] = G[i, q, 0]
                E_dir[e, 1] = G[i, q, 1]
                E_start[e, 0] = V[lo, 0]
                E_start[e, 1] = V[lo, 1]
                E_len[e] = math.hypot(V[hi, 0] - V[lo, 0], V[hi, 1] - V[lo, 1])
            else:
                orient[i, q] = -1.0
    # the generic direction (_choose_generic_direction, the same fixed draws)
    ntry = draws_b.shape[0]
    bestscore = -math.inf
    cg0 = 0.0
    cg1 = 0.0
    for t in range(ntry):
        if nr == 0:
            x0 = draws_b[t, 0]
            x1 = draws_b[t, 1]
        else:
            x0 = 0.0
            x1 = 0.0
            for j in range(m):
                x0 += draws_u[m, t, j] * Cf[j, 0]
                x1 += draws_u[m, t, j] * Cf[j, 1]
        nn = math.sqrt(x0 * x0 + x1 * x1)
        x0 /= nn
        x1 /= nn
        sc = math.inf
        for e in range(E):
            sc = min(sc, abs(x0 * E_dir[e, 0] + x1 * E_dir[e, 1]))
        if sc > bestscore:
            bestscore = sc
            cg0 = x0
            cg1 = x1
    c_gen = np.empty(2)
    c_gen[0] = cg0
    c_gen[1] = cg1
    # back to the polygon's scale (relative to y0, times L: exact)
    for i in range(k):
        V[i, 0] = (V[i, 0] + y0) * L
        V[i, 1] = (V[i, 1] + y1) * L
    for e in range(E):
        E_start[e, 0] = (E_start[e, 0] + y0) * L
        E_start[e, 1] = (E_start[e, 1] + y1) * L
        E_len[e] = E_len[e] * L
    for j in range(m):
        df[j] = df[j] * L
    return (OK, k, L, V[:k].copy(), A, CA, E_start, E_dir, E_len, edge_id, orient, Cf, df,
            c_gen, nr)


@jit
def one_shot_s2(C: NDArray[np.float64], d: NDArray[np.float64], mu: NDArray[np.float64],
                cov: NDArray[np.float64], draws_b: NDArray[np.float64],
                draws_u: NDArray[np.float64], bounds: NDArray[np.float64],
                lamcT: NDArray[np.float64], logw: NDArray[np.float64],
                q_start: NDArray[np.intp], moments: bool, tail_on: bool, margin: float,
                gweight: float, log_cancel_cub: float, max_log_cancel: float,
                tail_distance: float, out: NDArray[np.float64]) -> int:
    """One call of the S = 2 integrals (module docstring); returns the status.

    Parameters
    ----------
    C, d : (m, 2), (m,) the polygon as given. mu, cov : (2,), (2, 2) the Gaussian.
    draws_b : (64, 2), draws_u : (m + 1, 64, m) the generic-direction draws of
        :func:`fastpath._polyhedron._generic_draws` (bounded; unbounded with k rows in
        ``draws_u[k, :, :k]``).
    bounds, lamcT, logw, q_start : the cubature rules (``_simplex_cubature._rule_table(2)``).
    moments : compute the moments (else log m0 only; no tail test).
    tail_on : the tail slices are enabled (``_cone_tail.tail_enabled()``).
    margin, gweight, log_cancel_cub, max_log_cancel, tail_distance : the general path's
        constants (``_cones._GENERIC_MARGIN``, ``_GENERIC_WEIGHT``,
        ``_cone_cubature._LOG_CANCEL_CUBATURE``, ``_cones._MAX_LOG_CANCEL``,
        ``_cone_tail.TAIL_DISTANCE``).
    out : (14,) out: log m0, E[z|P] (2), E[z z^T|P] (4, row-major), m0, m1 (2), M2 (4).
    """
    m_in = C.shape[0]
    for j in range(m_in):
        if not (math.isfinite(C[j, 0]) and math.isfinite(C[j, 1]) and math.isfinite(d[j])):
            return INVALID
    if not (math.isfinite(mu[0]) and math.isfinite(mu[1])) or not _cov_ok(cov):
        return INVALID
    # ---- standardise: A = chol(cov), w = A^{-1}(z - mu), unit rows, far rows dropped
    s01 = 0.5 * (cov[0, 1] + cov[1, 0])
    a00 = math.sqrt(cov[0, 0])
    a10 = s01 / a00
    a11sq = cov[1, 1] - a10 * a10
    if not a11sq > 0.0:
        return INVALID
    a11 = math.sqrt(a11sq)
    Cw = np.empty((max(m_in, 1), 2))
    dw = np.empty(max(m_in, 1))
    m = _standardised_rows(C, d, mu, a00, a10, a11, Cw, dw)
    if m < 0:
        return -m
    if m < 2:
        return LINES
    t = np.empty(m)
    far = -math.inf
    for j in range(m):
        t[j] = dw[j] / math.sqrt(Cw[j, 0] * Cw[j, 0] + Cw[j, 1] * Cw[j, 1])
        far = max(far, -t[j])
    if not far < tail_distance:
        return FAR
    keep = np.empty(m, dtype=np.bool_)
    mk = _drop_far_rows(Cw, dw, m, t, far, keep)
    if mk < 0:
        return -mk
    C0 = np.empty((mk, 2))
    d0 = np.empty(mk)
    i = 0
    for j in range(m):
        if keep[j]:
            C0[i, 0] = Cw[j, 0]
            C0[i, 1] = Cw[j, 1]
            d0[i] = dw[j]
            i += 1
    # ---- geometry
    (status, k, L, V, A, CA, E_start, E_dir, E_len, edge_id, orient, Cf, df, c_gen,
     nr) = _geometry_s2(C0, d0, draws_b, draws_u)
    if status != OK:
        return status
    E = E_len.size
    M = df.size
    # ---- the tail slices take a mean at least tail_distance from P (moments only)
    if moments and tail_on:
        inside = True
        for j in range(M):
            if not df[j] >= 0.0:
                inside = False
        if not inside:
            x0, x1 = _nearest_s2(0.0, 0.0, 1.0, 0.0, 1.0, E_start, E_dir, E_len)
            if math.sqrt(x0 * x0 + x1 * x1) >= tail_distance:
                return TAIL
    # ---- the fused cone kernel on the one (Gaussian, polygon) pair, whitened
    mean3 = np.zeros((1, 1, 2))
    chol4 = np.zeros((1, 1, 2, 2))
    chol4[0, 0, 0, 0] = 1.0
    chol4[0, 0, 1, 1] = 1.0
    p_seg = np.zeros(1, dtype=np.intp)
    p_end = np.full(1, k, dtype=np.intp)
    out_lm = np.empty((1, 1))
    out_lc = np.empty((1, 1))
    out_dm = np.zeros((1, 1, 2))
    out_tc = np.zeros((1, 1, 2, 2))
    _pair_s2(0, 0, 0, mean3, chol4, p_seg, p_end, V, CA, edge_id, orient,
             E_start.reshape((1, E, 2)), E_dir.reshape((1, E, 2)), E_len.reshape((1, E)),
             Cf.reshape((1, M, 2)), df.reshape((1, M)), np.ones((1, M), dtype=np.bool_),
             c_gen.reshape((1, 2)), moments, margin, gweight, np.empty(E),
             np.empty((k, 11)), np.empty(BUF_SIZE), out_lm, out_dm, out_tc, out_lc)
    lm = out_lm[0, 0]
    lc = out_lc[0, 0]
    w0 = out_dm[0, 0, 0]
    w1 = out_dm[0, 0, 1]
    v00 = out_tc[0, 0, 0, 0]
    v01 = out_tc[0, 0, 0, 1]
    v11 = out_tc[0, 0, 1, 1]
    # ---- cancellation in a bounded polygon: simplex cubature over its fan triangulation
    if nr == 0 and not lc <= log_cancel_cub:
        budget = 64 if lc < 4.0 else 1024           # _cone_cubature._CUBATURE_BUDGET
        tris = np.empty((M, 3), dtype=np.intp)
        nt = 0
        for j in range(M):
            a = -1
            b = -1
            c = 0
            has0 = False
            for v in range(k):
                if A[v, 0] == j or A[v, 1] == j:
                    if v == 0:
                        has0 = True
                    if c == 0:
                        a = v
                    b = v
                    c += 1
            if c < 2 or has0:
                continue
            if c > 2:
                return NONSIMPLE
            tris[nt, 0] = 0
            tris[nt, 1] = a
            tris[nt, 2] = b
            nt += 1
        res = np.empty(6)
        if nt > 0 and _cubature_s2(V, tris, nt, budget, bounds, lamcT, logw, q_start, res):
            lm = res[0]
            w0 = res[1]
            w1 = res[2]
            v00 = res[3]
            v01 = res[4]
            v11 = res[5]
            lc = 0.0
    if not lc <= max_log_cancel:
        return CANCEL
    if not math.isfinite(lm):
        return NONFINITE
    out[0] = lm
    m0 = math.exp(lm)
    out[7] = m0
    if not moments:
        return OK
    # ---- back to z: E[z|P] - mu = A dm_w, Cov[z|P] = A Cov_w A^T (symmetrised)
    dm0 = a00 * w0
    dm1 = a10 * w0 + a11 * w1
    # A V A^T with A = [[a00, 0], [a10, a11]]
    t00 = a00 * v00 * a00
    t01 = a00 * (v00 * a10 + v01 * a11)
    t10 = (a10 * v00 + a11 * v01) * a00
    t11 = (a10 * v00 + a11 * v01) * a10 + (a10 * v01 + a11 * v11) * a11
    c01 = 0.5 * (t01 + t10)
    mp0 = mu[0] + dm0
    mp1 = mu[1] + dm1
    out[1] = mp0
    out[2] = mp1
    out[3] = t00 + mp0 * mp0
    out[4] = c01 + mp0 * mp1
    out[5] = c01 + mp1 * mp0
    out[6] = t11 + mp1 * mp1
    for i in range(1, 7):
        if not math.isfinite(out[i]):
            return NONFINITE
    out[8] = m0 * out[1]
    out[9] = m0 * out[2]
    for i in range(4):
        out[10 + i] = m0 * out[3 + i]
    return OK


def _warmup() -> None:
    from ._one_shot import warmup_inputs

    for args in warmup_inputs():
        one_shot_s2(*args)
