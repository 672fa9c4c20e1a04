"""Geometry of one simple pointed polygon inside the compiled one-call lane (fastpath._jit_one_shot).

:func:`geometry_s2` is :func:`fastpath._polyhedron.polyhedron_geometry` (with the
enumeration of :mod:`fastpath._small_polytope` and the vectorised construction of
:mod:`fastpath._polyhedron_simple`) for a polygon whose every vertex is simple, with the
same tolerances, orders and generic-direction draws; anything else is declined by status.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit
from ._jit_one_shot_base import LINES, NONSIMPLE, OK, THIN, max_viol, round_half_even, solve2, vertices2
from ._jit_special import sorted_head


@jit
def unit_scaled_rows(C0: NDArray[np.float64], d0: NDArray[np.float64]):
    """(Cr (m, 2), dr (m,), L, scale_d): unit_rows, the scale L (a power of two near
    max |d|) and _geometry_unit's renormalisation of {C0 w <= d0} (no zero rows)."""
    m = C0.shape[0]
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
    L = 2.0 ** round_half_even(math.log2(dmax)) if dmax > 0.0 else 1.0
    scale_d = 1.0
    for j in range(m):
        dr[j] = dr[j] / L
        nn = math.sqrt(Cr[j, 0] * Cr[j, 0] + Cr[j, 1] * Cr[j, 1])
        Cr[j, 0] = Cr[j, 0] / nn
        Cr[j, 1] = Cr[j, 1] / nn
        dr[j] = dr[j] / nn
        scale_d = max(scale_d, 1.0 + abs(dr[j]))
    return Cr, dr, L, scale_d


@jit
def rank2(Cr: NDArray[np.float64]) -> bool:
    """Rank 2 for certain: a pair of unit rows with |det| > 1e-6 bounds the smallest
    singular value far above _null_basis's threshold."""
    m = Cr.shape[0]
    big = 0.0
    for i in range(m):
        for j in range(i + 1, m):
            big = max(big, abs(Cr[i, 0] * Cr[j, 1] - Cr[i, 1] * Cr[j, 0]))
    return big > 1e-6


@jit
def geometry_s2(C0: NDArray[np.float64], d0: NDArray[np.float64],
                 draws_b: NDArray[np.float64], draws_u: NDArray[np.float64]):
    """polyhedron_geometry of {C0 w <= d0} (unit rows) for a simple pointed polygon.

    Returns (status, k, L, X, A, CA, E_start, E_dir, E_len, edge_id, orient, Cr, dr,
    c_gen, nr): vertices X (k, 2), their tight rows A (k, 2) and cones CA (k, 2, 2), edges
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
    Cr, dr, L, scale_d = unit_scaled_rows(C0, d0)
    if not rank2(Cr):
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
    n = vertices2(Cr, dr, m, det_tol, X, ci)
    y0 = 0.0
    y1 = 0.0
    cnt = 0
    feas = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        if max_viol(Cr, dr, m, X[i, 0], X[i, 1]) <= tol * (1.0 + math.hypot(X[i, 0], X[i, 1])):
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
    # np.intp / np.bool_: no specialisation of polygon_geometry on literal arguments (each
    # one a compilation of its own)
    return polygon_geometry(Cr, dr, L, y0, y1, r, R, np.intp(nr_e), np.bool_(True), draws_b,
                            draws_u)


@jit
def polygon_geometry(Cr: NDArray[np.float64], dr: NDArray[np.float64], L: float, y0: float,
                     y1: float, r: float, R: NDArray[np.float64], nr_e: int, prune: bool,
                     draws_b: NDArray[np.float64], draws_u: NDArray[np.float64]):
    """The rest of :func:`geometry_s2` (same return) from the unit-scale rows {Cr y <= dr}
    (:func:`unit_scaled_rows`), an interior point (y0, y1) whose smallest slack is r, and
    the extreme rays R[:nr_e] of the recession cone (only read when ``prune``: the facet
    rows of _small_polytope.facet_rows; without it every row is kept, as
    polyhedron_geometry(prune=False) does)."""
    tol = 1e-9                  # _polyhedron._TOL
    det_tol = 1e-14             # _polyhedron._DET_TOL
    m = Cr.shape[0]
    e2 = np.empty((0, 2))
    ei = np.empty((0, 2), dtype=np.intp)
    bad = (e2, ei, np.empty((0, 2, 2)), e2, e2, np.empty(0), ei, e2, e2, np.empty(0),
           np.empty(2), 0)
    nmax = m * (m - 1) // 2
    X = np.empty((nmax, 2))
    ci = np.empty((nmax, 2), dtype=np.intp)
    dt = np.empty(m)
    for j in range(m):
        dt[j] = dr[j] - (Cr[j, 0] * y0 + Cr[j, 1] * y1)
    # vertices relative to y0
    n = vertices2(Cr, dt, m, det_tol, X, ci)
    V = np.empty((n, 2))
    tv = np.empty(n)
    k = 0
    for i in range(n):
        nx = math.hypot(X[i, 0], X[i, 1])
        tx = tol * (r + nx)
        if max_viol(Cr, dt, m, X[i, 0], X[i, 1]) <= tx:
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
    if prune and m > 3:
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
        V[i, 0], V[i, 1] = solve2(c00, c01, c10, c11, dtf[p], dtf[q])
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
    nb = np.intp(0)  # not a literal: one specialisation of sorted_head
    key = np.empty(2 * k, dtype=np.int64)
    for i in range(k):
        for q in range(2):
            if not isray[i, q]:
                lo = min(i, other[i, q])
                hi = max(i, other[i, q])
                key[nb] = lo * k + hi
                nb += 1
    ks = sorted_head(key, nb)
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


def _warmup() -> None:
    from ._jit_one_shot import _warmup as lane_warmup

    lane_warmup()
