"""The geometry of many regions of the max-pooling walk at once (one breadth-first level).

:mod:`fastpath._walk_cells` explains the construction for one region (S-subset enumeration,
no LP); the per-region numpy calls cost ~1 ms of fixed overhead, as much as the exact walk
spends per region at S = 2. Here the regions of one level, whose H-representations all have
``n_hidden_units`` rows, go through the same steps as (K, ...) arrays:

1. rows: the pattern's constraint rows for every region (batched
   :func:`fastpath._walk_cells.pattern_rows`); a zero row (a unit constant on the region)
   becomes ``0 z <= 1``, never tight and never violated;
2. vertices: S-subsets of rows solved at once (at S = 2 only the rows whose line may touch
   the polygon; at S = 3 the ends of the feasible segments of the lines where two planes
   meet, which avoids all triples), feasible solutions kept, duplicates (same set of tight
   rows) merged;
3. extreme rays: null directions of all (S-1)-subsets and their negatives in the recession
   cone, duplicates merged alike;
4. facets: a row is a facet iff the vertices and rays tight on it span S - 1 dimensions
   (batched singular values), rows on one hyperplane grouped within ``facet_tol``;
5. interior point: the mean of the vertices plus a positive multiple of the mean ray.

At S = 2 the rows that may touch the polygon come from the polygon clipped row by row
(:func:`fastpath._jit_walk.clip_polygons`, linear in the number of rows m), which also
certifies the polygon (bounded, or a chain of edges plus two rays); only the pairs of those
rows are solved, checked against those rows first and against all rows for the few that
pass, and the candidate rays are checked against the polygon's edge rows first: the cost
per region is linear in m (~1 ms per region at m ~ 1000). The regions the kernel declines
(doubtful cuts, a vertex beyond its box) take the pairwise test :func:`_touching_rows`,
(K, m, m), and the ray test against all rows, (K, 2m, m); both give the same vertices, rays
and facets (tests/test_walk_wide.py).

A region is sent back to the caller (:data:`FALLBACK`, for the general polyhedron tools)
on any doubt: no feasible vertex (lines, or empty in float), a feasible vertex or ray from
a badly conditioned subset, two kept vertices or rays closer than the tolerance, an
interior point with a small slack or whose forward pattern is not the region's. Tolerances
are those of :mod:`fastpath._walk_cells`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dgn_core.activations import winners_batch
from dgn_core.model import DGN

from ._small_polytope import _null_directions, subsets
from ._walk_cells import _DET_SAFE, _DET_SKIP, _SLACK_MIN

__all__ = ["FALLBACK", "batch_cells", "batch_rows", "first_unique_rows"]

Arr = NDArray[np.float64]

#: S = 2 pruning (:func:`_touching_rows`): a row is kept unless its line misses the polygon
#: by more than this (relative); rows with |direction . normal| below _PARALLEL are parallel
_MISS = 1e-7
_PARALLEL = 1e-12
#: S = 2 clipping (:mod:`fastpath._jit_walk`): the starting box's half-width relative to
#: 1 + the largest offset of a unit row (a vertex beyond it comes from rows with |det| <
#: 2 / _BOX, which the construction declines anyway), and the smallest sine of the turn
#: between consecutive edges of a polygon it accepts
_BOX = 1e8
_CLIP_DET = 1e-6
#: regions whose rows are built and clipped at once (S = 2)
_BLOCK = 512
#: the chunks of certified S = 2 regions: about this many float64 numbers (their pairs of
#: candidate rows against all rows)
_CHUNK_FLOATS_S2 = 2_000_000
#: S = 3: a region whose edge enumeration (:func:`_edge_vertices`) holds more numbers than
#: this per array goes to the general tools (above ~50 rows, where they are the faster)
_MAX_S3_FLOATS = 50_000
#: S >= 4: the same where an array of one region would hold more numbers than this
_MAX_REGION_FLOATS = 4_000_000
#: marker of a region the batch leaves to the general tools
FALLBACK = "fallback"
#: about this many float64 numbers per chunk of regions (the (K, subsets, rows) arrays stay
#: in cache: 8x fewer was measured 1.5x faster at S = 2)
_CHUNK_FLOATS = 500_000

#: (A, b, C_facets, d_facets, facet units, V, R, interior point) of one region
CellData = tuple[Arr, Arr, Arr, Arr, list[tuple[int, ...]], Arr, Arr, Arr]


def batch_rows(net: DGN, Q: NDArray[np.int8]
               ) -> tuple[Arr, Arr, Arr, NDArray[np.intp], Arr, Arr]:
    """``(C, d, mag, unit, A, b)`` of K valid patterns (one +1 per group), shapes (K, m, S),
    (K, m), (K, m), (K, m), (K, D, S), (K, D): the rows of
    :func:`fastpath._walk_cells.pattern_rows` without the winners' rows of max groups
    (always zero), ``unit`` the hidden unit of every row (ascending)."""
    K, S = Q.shape[0], net.latent_dim
    M = np.broadcast_to(np.eye(S), (K, S, S))
    c = np.zeros((K, S))
    Cs, ds, ms, us = [], [], [], []
    off = 0
    last = net.n_layers - 1
    rows = np.arange(K)[:, None]
    for l in range(last):
        W, v = net.weights[l], net.biases[l]
        M, c = W @ M, c @ W.T + v
        w = M.shape[1]
        ql = Q[:, off:off + w]
        off += w
        size = np.abs(M).max(axis=2)
        sizes = net.pool_sizes[l]
        if sizes:
            win = winners_batch(ql, sizes)
            _, cols = np.nonzero(ql < 0)
            lose = cols.reshape(K, w - len(sizes))
            # the winner of every loser's group
            rep = win[:, np.repeat(np.arange(len(sizes)), sizes)][rows, lose]
            Cs.append(M[rows, lose] - M[rows, rep])
            ds.append(c[rows, rep] - c[rows, lose])
            ms.append(size[rows, lose] + size[rows, rep])
            us.append(lose + (off - w))
            M, c = M[rows, win], c[rows, win]
        else:
            qf = ql.astype(np.float64)
            Cs.append(-qf[:, :, None] * M)
            ds.append(qf * c)
            ms.append(size)
            us.append(np.broadcast_to(np.arange(off - w, off), (K, w)))
            f = np.where(ql > 0, 1.0, net.slopes[l])
            M, c = f[:, :, None] * M, f * c
    W, v = net.weights[last], net.biases[last]
    return (np.concatenate(Cs, axis=1), np.concatenate(ds, axis=1), np.concatenate(ms, axis=1),
            np.concatenate(us, axis=1), W @ M, c @ W.T + v)


def batch_cells(net: DGN, Q: NDArray[np.int8], rtol: float, tight: float, facet_tol: float
                ) -> list[CellData | str | None]:
    """The geometry of the regions of K valid patterns (K, n): per region its data, None
    (a constant row violated: empty) or :data:`FALLBACK`."""
    K, n = Q.shape
    S = net.latent_dim
    if K == 0:
        return []
    m = n - sum(len(p) for p in net.pool_sizes)
    if m < S:  # no vertex: lines (or R^S), for the general tools
        return [FALLBACK] * K
    if S == 2:
        return _batch_s2(net, Q, rtol, tight, facet_tol)
    if S == 3 and math.comb(m, 2) * m > _MAX_S3_FLOATS \
            or S > 3 and math.comb(m, S) * m > _MAX_REGION_FLOATS:
        # the enumeration costs m^3 / 2 (S = 3), m^(S+1) / S! numbers per region: the general
        # tools, region by region, are faster (S = 3) or the arrays would not fit in memory
        return [FALLBACK] * K
    return _chunks_all_rows(net, Q, rtol, tight, facet_tol)


def _chunks_all_rows(net: DGN, Q: NDArray[np.int8], rtol: float, tight: float,
                     facet_tol: float) -> list[CellData | str | None]:
    """:func:`batch_cells` by the enumeration over all rows, in chunks of regions."""
    K, n = Q.shape
    S = net.latent_dim
    m = n - sum(len(p) for p in net.pool_sizes)
    per = math.comb(m, S) * max(m, S * S) + 1
    step = max(1, _CHUNK_FLOATS // per)
    out: list[CellData | str | None] = []
    for s0 in range(0, K, step):
        out.extend(_chunk(net, Q[s0:s0 + step], rtol, tight, facet_tol))
    return out


def _batch_s2(net: DGN, Q: NDArray[np.int8], rtol: float, tight: float, facet_tol: float
              ) -> list[CellData | str | None]:
    """:func:`batch_cells` at S = 2: the rows that may touch every region from its clipped
    polygon (:func:`fastpath._jit_walk.clip_polygons`, linear in the rows), the vertex pairs
    among those only; the regions it declines (a doubtful cut, an end ray cut beyond its
    box) by :func:`_touching_rows` (quadratic in the rows)."""
    from ._jit_walk import OK, clip_polygons

    K = Q.shape[0]
    out: list[CellData | str | None] = [None] * K
    for b0 in range(0, K, _BLOCK):
        Qb = Q[b0:b0 + _BLOCK]
        C, d, mag, unit, A, b = batch_rows(net, Qb)
        live, Cu, du = _unit_rows(C, d, mag, rtol)
        box = _BOX * (1.0 + np.where(live, np.abs(du), 0.0).max(axis=1))
        status, cand, edge = clip_polygons(Cu, du, live, box, tight, _MISS, _CLIP_DET,
                                           _DET_SKIP)
        good = np.flatnonzero(status == OK)
        rest = np.flatnonzero(status != OK)
        for i, r in zip(rest, _chunks_all_rows(net, Qb[rest], rtol, tight, facet_tol)):
            out[b0 + i] = r
        # chunks of regions with similar candidate counts (the vertex pairs are padded to
        # the largest count of a chunk)
        cnt = cand[good].sum(axis=1)
        good = good[np.argsort(cnt, kind="stable")]
        cnt = np.sort(cnt)
        # floats per region of a chunk padded to a count of c: its pairs against the
        # candidates, and some arrays of all rows
        c2 = np.maximum(cnt, 2)
        per = c2 * (c2 - 1) // 2 * c2 + 32 * C.shape[1]
        s0 = 0
        while s0 < len(good):
            s1 = s0 + 1
            while s1 < len(good) and per[s1] * (s1 + 1 - s0) <= _CHUNK_FLOATS_S2:
                s1 += 1
            idx = good[s0:s1]
            sub = (C[idx], d[idx], mag[idx], unit[idx], A[idx], b[idx])
            for i, r in zip(idx, _chunk(net, Qb[idx], rtol, tight, facet_tol,
                                        rows=sub, cand=cand[idx], edge=edge[idx],
                                        units=(live[idx], Cu[idx], du[idx]))):
                out[b0 + i] = r
            s0 = s1
    return out


def _unit_rows(C: Arr, d: Arr, mag: Arr, rtol: float
               ) -> tuple[NDArray[np.bool_], Arr, Arr]:
    """The live rows (K, m) (largest entry above ``rtol`` times their magnitude) and every
    row scaled to unit norm, (K, m, S) and (K, m); a dead row becomes ``0 z <= 1``."""
    live = np.abs(C).max(axis=2) > rtol * mag
    nrm = np.where(live, np.sqrt(np.einsum("kis,kis->ki", C, C)), 1.0)
    Cu = np.where(live[..., None], C / nrm[..., None], 0.0)
    du = np.where(live, d / nrm, 1.0)
    return live, Cu, du


def _chunk(net: DGN, Q: NDArray[np.int8], rtol: float, tight: float, facet_tol: float,
           rows: tuple[Arr, Arr, Arr, NDArray[np.intp], Arr, Arr] | None = None,
           cand: NDArray[np.bool_] | None = None, edge: NDArray[np.bool_] | None = None,
           units: tuple[NDArray[np.bool_], Arr, Arr] | None = None
           ) -> list[CellData | str | None]:
    """:func:`batch_cells` of K regions: ``rows`` their :func:`batch_rows` (computed when
    None); ``cand`` and ``edge`` (K, m), S = 2 only, the rows that may touch every region
    and the rows on its edges, as certified by :func:`fastpath._jit_walk.clip_polygons`;
    ``units`` their :func:`_unit_rows` (computed when None)."""
    S = net.latent_dim
    C, d, mag, unit, A, b = batch_rows(net, Q) if rows is None else rows
    K, m = d.shape
    live, Cu, du = _unit_rows(C, d, mag, rtol) if units is None else units
    empty = np.any(~live & (d < -rtol * (1.0 + np.abs(d))), axis=1)
    CuT = Cu.transpose(0, 2, 1)
    fb = np.zeros(K, dtype=bool)
    # ---- vertices
    if S == 3:
        X, feas, det, trip = _edge_vertices(Cu, du, tight)
    else:
        X, feas, det, trip = _subset_vertices(Cu, du, live, tight, cand)
    xs = 1.0 + np.abs(X).max(axis=2)
    fb |= ~feas.any(axis=1) | np.any(feas & (np.abs(det) < _DET_SAFE), axis=1)
    scale = 1.0 + np.max(np.where(feas, xs - 1.0, 0.0), axis=1)          # (K,)
    kk, pp = np.nonzero(feas)
    Xf = X[kk, pp]
    if S >= 3:
        # the few vertices again by LU with pivoting (closed forms lose digits on the
        # moderately conditioned subsets: measured 2e-10 relative against 6e-14)
        tf = trip[kk, pp]                                                  # (F, S)
        Mf = Cu[kk[:, None], tf]                                           # (F, S, S)
        Xf = np.linalg.solve(Mf, du[kk[:, None], tf][..., None])[..., 0].astype(np.float64)
    if cand is None:
        Tf = np.abs(np.einsum("fs,fis->fi", Xf, Cu[kk]) - du[kk]) <= (tight * scale[kk])[:, None]
    else:  # the same test compiled (no copy of the rows per point)
        from ._jit_walk import tight_rows

        Tf = tight_rows(Xf, kk, Cu, du, tight * scale[kk])
    V, vmask = _dedupe(kk, Xf, Tf, K)
    fb |= _near_duplicates(V, vmask, tight * scale)
    # ---- rays
    if S == 1:
        ray_c = np.broadcast_to(np.array([[1.0], [-1.0]]), (K, 2, 1))
        cok = np.max(ray_c @ CuT, axis=2) <= tight
    else:
        sub = Cu[:, subsets(m, S - 1)]                               # (K, P', S-1, S)
        P2 = sub.shape[1]
        nd = _null_directions(sub.reshape(K * P2, S - 1, S)).reshape(K, P2, S)
        nn = np.linalg.norm(nd, axis=2)
        ndu = nd / np.where(nn > 0, nn, 1.0)[..., None]
        ray_c = np.concatenate([ndu, -ndu], axis=1)
        good = np.concatenate([nn > _DET_SAFE] * 2, axis=1)
        small = np.concatenate([(nn > _DET_SKIP) & (nn <= _DET_SAFE)] * 2, axis=1)
        if edge is None:
            in_cone = np.max(ray_c @ CuT, axis=2) <= tight
        else:
            in_cone = _in_cone_s2(ray_c, good | small, Cu, du, edge, tight)
        fb |= np.any(small & in_cone, axis=1)
        cok = good & in_cone
    kr, pr = np.nonzero(cok)
    Rf = ray_c[kr, pr]
    Rf = Rf / np.abs(Rf).max(axis=1, keepdims=True)
    TRf = np.abs(np.einsum("fs,fis->fi", Rf, Cu[kr])) <= tight
    R, rmask = _dedupe(kr, Rf, TRf, K)
    fb |= _near_duplicates(R, rmask, np.full(K, tight))
    # ---- facets
    TV = (np.abs(V @ CuT - du[:, None, :]) <= (tight * scale)[:, None, None]) & vmask[..., None]
    TR = (np.abs(R @ CuT) <= tight) & rmask[..., None]                   # (K, Rmax, m)
    cand_f = live & TV.any(axis=1)
    facet = np.zeros((K, m), dtype=bool)
    kc, ic = np.nonzero(cand_f)
    if S == 1:
        facet[kc, ic] = True
    elif len(kc):
        tv = TV[kc, :, ic]                                                  # (Nc, Vmax)
        first = np.argmax(tv, axis=1)
        Vk = V[kc]
        span_v = (Vk - Vk[np.arange(len(kc)), first][:, None, :]) * tv[..., None]
        span_r = R[kc] * TR[kc, :, ic][..., None]
        span = np.concatenate([span_v, span_r], axis=1)
        span = span / np.maximum(np.abs(span).max(axis=2, keepdims=True), 1e-300)
        if span.shape[1] == 0:
            rank = np.zeros(len(kc), dtype=np.intp)
        else:
            rank = (np.linalg.svd(span, compute_uv=False) > tight).sum(axis=1)
        facet[kc, ic] = rank == S - 1
    # the rows on the hyperplane of every facet row
    kf, jf = np.nonzero(facet)
    same = (np.abs(Cu[kf] - Cu[kf, jf][:, None, :]).max(axis=2) <= facet_tol) \
        & (np.abs(du[kf] - du[kf, jf][:, None]) <= facet_tol * scale[kf, None]) & live[kf]
    fstart = np.searchsorted(kf, np.arange(K + 1))
    # ---- interior points
    nv = vmask.sum(axis=1)
    nr = rmask.sum(axis=1)
    Vmean = V.sum(axis=1) / np.maximum(nv, 1)[:, None]
    spread = np.max(np.where(vmask[..., None], np.abs(V - Vmean[:, None, :]), 0.0), axis=(1, 2)) \
        if V.shape[1] else np.zeros(K)
    ip = Vmean + ((1.0 + spread) / np.maximum(nr, 1))[:, None] * R.sum(axis=1)
    slack = np.where(live, du - np.einsum("kis,ks->ki", Cu, ip), np.inf).min(axis=1)
    fb |= ~(slack > _SLACK_MIN * (1.0 + np.abs(ip).max(axis=1)))
    fb |= ~np.all(net.sign_patterns(ip) == Q, axis=1)
    out: list[CellData | str | None] = []
    for k in range(K):
        if empty[k]:
            out.append(None)
            continue
        if fb[k]:
            out.append(FALLBACK)
            continue
        uk = unit[k]
        rows_of = sorted({tuple(np.flatnonzero(same[f]).tolist())
                          for f in range(fstart[k], fstart[k + 1])})
        groups = [tuple(int(uk[j]) for j in g) for g in rows_of]
        reps = np.array([g[0] for g in rows_of], dtype=np.intp)
        Cf, df = C[k, reps].reshape(-1, S), d[k, reps]
        sc = np.abs(Cf).max(axis=1) if len(reps) else np.zeros(0)
        out.append((A[k], b[k], Cf / sc[:, None], df / sc, groups,
                    V[k, :nv[k]], R[k, :nr[k]], ip[k]))
    return out


def _in_cone_s2(ray_c: Arr, used: NDArray[np.bool_], Cu: Arr, du: Arr,
                edge: NDArray[np.bool_], tight: float) -> NDArray[np.bool_]:
    """S = 2: which candidate rays (K, P, 2) satisfy every row within ``tight`` (the test
    ``max(ray_c @ Cu^T) <= tight``), for the candidates ``used`` (K, P) (False elsewhere),
    tested first against the few edge rows ``edge`` (K, m) of every region's certified
    polygon (a ray failing there fails against all rows), and against all rows only for the
    rays that pass (the extreme rays: linear in the rows)."""
    E, _ = _first_rows(Cu, du, edge)                      # padded with 0 rows: dot 0
    pre = used & (np.max(ray_c @ E.transpose(0, 2, 1), axis=2) <= tight)
    kq, pq = np.nonzero(pre)
    out = np.zeros(pre.shape, dtype=bool)
    if len(kq):
        dots = (ray_c[kq, pq][:, None, :] @ Cu[kq].transpose(0, 2, 1))[:, 0, :]
        out[kq, pq] = dots.max(axis=1) <= tight
    return out


def _subset_vertices(Cu: Arr, du: Arr, live: NDArray[np.bool_], tight: float,
                     cand: NDArray[np.bool_] | None = None
                     ) -> tuple[Arr, NDArray[np.bool_], Arr, NDArray[np.intp]]:
    """Vertex candidates of every region from all S-subsets of its rows (S = 2: of the rows
    that may touch the polygon, ``cand`` (K, m) when given, else :func:`_touching_rows`):
    points (K, P, S), feasible (K, P), the subsets' determinants (K, P) and rows (K, P, S)."""
    K, m, S = Cu.shape
    if S != 2:
        Ce, de = Cu, du
    elif cand is not None:
        Ce, de = _first_rows(Cu, du, cand)
    else:
        Ce, de = _touching_rows(Cu, du, live)
    combos = subsets(Ce.shape[1], S)
    Ms = Ce[:, combos]                                        # (K, P, S, S)
    rhs = de[:, combos]                                       # (K, P, S)
    if S == 1:
        det = Ms[..., 0, 0]
    elif S == 2:
        det = Ms[..., 0, 0] * Ms[..., 1, 1] - Ms[..., 0, 1] * Ms[..., 1, 0]
    else:
        det = np.linalg.det(Ms)
    ok = np.abs(det) > _DET_SKIP
    with np.errstate(divide="ignore", invalid="ignore"):
        if S == 1:
            X = rhs / Ms[..., 0]
        elif S == 2:
            X = np.stack([(rhs[..., 0] * Ms[..., 1, 1] - rhs[..., 1] * Ms[..., 0, 1]) / det,
                          (Ms[..., 0, 0] * rhs[..., 1] - Ms[..., 1, 0] * rhs[..., 0]) / det],
                         axis=-1)
        else:
            X = np.linalg.solve(np.where(ok[..., None, None], Ms, np.eye(S)),
                                rhs[..., None])[..., 0].astype(np.float64)
    X = np.where(ok[..., None], X, 0.0)
    xs = 1.0 + np.abs(X).max(axis=2)
    if cand is not None:
        # the same test, first against the candidate rows only (feasible there is
        # necessary), then against all rows for the few candidates that pass
        from ._jit_walk import largest_residual

        pre = ok & (_violation(X, Ce, de) <= tight * xs)
        kp, pp = np.nonzero(pre)
        feas = np.zeros_like(pre)
        feas[kp, pp] = largest_residual(X[kp, pp], kp, Cu, du) <= tight * xs[kp, pp]
    else:
        feas = ok & (_violation(X, Cu, du) <= tight * xs)
    if S == 2:  # rows of the pruned set back to rows of Cu: not needed (no refinement)
        trip = np.zeros((K, len(combos), S), dtype=np.intp)
    else:
        trip = np.broadcast_to(combos, (K,) + combos.shape)
    return X, feas, det, trip


def _violation(X: Arr, Cu: Arr, du: Arr) -> Arr:
    """The largest violation ``max_i (Cu_i x - du_i)`` of every point of X (K, P, S) over
    the rows (K, m, S), (K, m) of its region, shape (K, P): S broadcast products (a batched
    matmul with an inner dimension of S is slower)."""
    S = X.shape[2]
    Xt = np.ascontiguousarray(X.transpose(2, 0, 1))[..., None]          # (S, K, P, 1)
    Ct = np.ascontiguousarray(Cu.transpose(2, 0, 1))[:, :, None, :]      # (S, K, 1, m)
    G = Xt[0] * Ct[0]
    for i in range(1, S):
        G += Xt[i] * Ct[i]
    G -= du[:, None, :]
    return np.asarray(G.max(axis=2))


def _edge_vertices(Cu: Arr, du: Arr, tight: float
                   ) -> tuple[Arr, NDArray[np.bool_], Arr, NDArray[np.intp]]:
    """S = 3: vertex candidates as the ends of the feasible segment of every line where two
    rows' planes meet (a vertex of P is an end of the segment of any such line through
    it), (K, 2L, 3) for the L row pairs; feasible (K, 2L) by the same rule as the subsets
    (largest violation <= tight (1 + |x|)); the third row's determinant det(C_i, C_j, C_k)
    (K, 2L) and the rows (K, 2L, 3). Cost (K, L, m) against (K, L m / 3, m) for all
    triples."""
    K, m, S = Cu.shape
    pairs = subsets(m, 2)
    Ci, Cj = Cu[:, pairs[:, 0]], Cu[:, pairs[:, 1]]
    di, dj = du[:, pairs[:, 0]], du[:, pairs[:, 1]]
    n = _cross(Ci, Cj)                                                   # (K, L, 3)
    nn2 = np.einsum("kls,kls->kl", n, n)
    okl = nn2 > _DET_SKIP ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = (di[..., None] * _cross(Cj, n) + dj[..., None] * _cross(n, Ci)) \
            / np.where(okl, nn2, 1.0)[..., None]
        a = np.einsum("kls,kms->klm", n, Cu)                           # det(C_i, C_j, C_m)
        b = du[:, None, :] - np.einsum("kls,kms->klm", x0, Cu)
        t = b / a
    pos, neg = a > _DET_SKIP, a < -_DET_SKIP
    th = np.where(pos, t, np.inf)
    tl = np.where(neg, t, -np.inf)
    khi, klo = th.argmin(axis=2), tl.argmax(axis=2)
    hi = np.take_along_axis(th, khi[..., None], axis=2)[..., 0]
    lo = np.take_along_axis(tl, klo[..., None], axis=2)[..., 0]
    ends = np.stack([lo, hi], axis=2)                                    # (K, L, 2)
    fin = np.isfinite(ends) & okl[..., None]
    tt = np.where(fin, ends, 0.0)
    X = x0[:, :, None, :] + tt[..., None] * n[:, :, None, :]             # (K, L, 2, 3)
    xs = 1.0 + np.abs(X).max(axis=3)
    # violation of every row at both ends: t a_m - b_m (= C_m x - d_m)
    viol = np.max(tt[..., None] * a[:, :, None, :] - b[:, :, None, :], axis=3)
    feas = fin & (viol <= tight * xs)
    kb = np.stack([klo, khi], axis=2)                                    # the third row
    det = np.take_along_axis(a, kb, axis=2)
    trip = np.concatenate([np.broadcast_to(pairs[None, :, None, :], (K, len(pairs), 2, 2)),
                           kb[..., None]], axis=3)
    L2 = 2 * len(pairs)
    return (X.reshape(K, L2, 3), feas.reshape(K, L2), det.reshape(K, L2),
            trip.reshape(K, L2, 3))


def _touching_rows(Cu: Arr, du: Arr, live: NDArray[np.bool_]) -> tuple[Arr, Arr]:
    """S = 2: the rows whose line may touch the polygon, first in every region and padded
    with ``0 z <= 1`` to a common count, shapes (K, m', 2), (K, m').

    A vertex lies on two rows' lines, so a row whose line clearly misses the polygon (the
    other rows leave an empty interval of it: by more than ``_MISS`` relative to the
    interval's ends, or a parallel row cuts it off) gives no vertex and is left out of the
    S-subsets; every candidate is still checked against all rows. Cost (K, m, m), against
    (K, m^2 / 2, m) for the full enumeration."""
    x0 = du[..., None] * Cu                                          # a point of every line
    dr = np.stack([-Cu[..., 1], Cu[..., 0]], axis=-1)                # its direction
    a = np.einsum("kis,kjs->kij", dr, Cu)                            # (K, line i, row j)
    b = du[:, None, :] - np.einsum("kis,kjs->kij", x0, Cu)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = b / a
    pos, neg = a > _PARALLEL, a < -_PARALLEL
    hi = np.where(pos, t, np.inf).min(axis=2)
    lo = np.where(neg, t, -np.inf).max(axis=2)
    size = 1.0 + np.abs(du).max(axis=1)[:, None]
    cut = np.any(~pos & ~neg & (b < -_MISS * size[..., None]), axis=2)
    ends = np.where(np.isfinite(lo), np.abs(lo), 0.0) + np.where(np.isfinite(hi), np.abs(hi), 0.0)
    keep = live & ~cut & ~(lo > hi + _MISS * (size + ends))
    return _first_rows(Cu, du, keep)


def _first_rows(Cu: Arr, du: Arr, keep: NDArray[np.bool_]) -> tuple[Arr, Arr]:
    """The rows ``keep`` (K, m) of every region, first and in their order, padded with
    ``0 z <= 1`` to a common count (at least 2): (K, m', 2), (K, m')."""
    order = np.argsort(~keep, axis=1, kind="stable")
    me = max(int(keep.sum(axis=1).max()), 2)
    sel = order[:, :me]
    pad = ~np.take_along_axis(keep, sel, axis=1)
    Ce = np.where(pad[..., None], 0.0, np.take_along_axis(Cu, sel[..., None], axis=1))
    de = np.where(pad, 1.0, np.take_along_axis(du, sel, axis=1))
    return Ce, de


def _cross(a: Arr, b: Arr) -> Arr:
    """Cross products of (..., 3) arrays (elementwise; np.cross is slower on many small rows)."""
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], axis=-1)


def first_unique_rows(B: NDArray[np.uint8]) -> NDArray[np.intp]:
    """Indices (ascending) of the first occurrence of every distinct row of a byte matrix
    (N, w): a lexicographic sort of the rows as 64-bit words (``np.unique(axis=0)`` sorts
    a structured view, ~10x slower on a few thousand rows)."""
    N, w = B.shape
    if N == 0:
        return np.zeros(0, dtype=np.intp)
    padded = np.zeros((N, w + (-w) % 8), dtype=np.uint8)
    padded[:, :w] = B
    words = padded.view(np.uint64)
    order = np.lexsort(words.T[::-1])           # stable: equal rows keep their index order
    sw = words[order]
    new = np.ones(N, dtype=bool)
    new[1:] = np.any(sw[1:] != sw[:-1], axis=1)
    return np.sort(order[new])


def _dedupe(kk: NDArray[np.intp], X: Arr, T: NDArray[np.bool_], K: int
            ) -> tuple[Arr, NDArray[np.bool_]]:
    """Points X (F, S) of regions kk (ascending) with duplicates (same region, same tight
    rows T) removed, first occurrence kept, padded to (K, max count, S) with a mask."""
    S = X.shape[1]
    if len(kk) == 0:
        return np.zeros((K, 0, S)), np.zeros((K, 0), dtype=bool)
    key = np.concatenate([kk.astype("<i8").view(np.uint8).reshape(-1, 8),
                          np.packbits(T, axis=1)], axis=1)
    keep = first_unique_rows(key)
    kk, X = kk[keep], X[keep]
    cnt = np.bincount(kk, minlength=K)
    start = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    pos = np.arange(len(kk)) - start[kk]
    out = np.zeros((K, int(cnt.max()), S))
    mask = np.zeros((K, int(cnt.max())), dtype=bool)
    out[kk, pos] = X
    mask[kk, pos] = True
    return out, mask


def _near_duplicates(X: Arr, mask: NDArray[np.bool_], tol: Arr) -> NDArray[np.bool_]:
    """Regions (K,) with two kept points of X (K, c, S) within ``tol`` (K,) of each other."""
    if X.shape[1] <= 1:
        return np.zeros(X.shape[0], dtype=bool)
    D = np.abs(X[:, :, None, :] - X[:, None, :, :]).max(axis=3) <= tol[:, None, None]
    D &= mask[:, :, None] & mask[:, None, :]
    D &= ~np.eye(X.shape[1], dtype=bool)
    return np.asarray(D.any(axis=(1, 2)))
