"""Float64 geometry of a polyhedron P = {z : C z <= d} in R^S, S <= 4, for the Gaussian integrals.

This is the float H -> V conversion the signed vertex-cone decomposition needs (docs/DESIGN.md §2.4):
an interior point (or the verdict "empty / no interior"), the lineality space, and for the
pointed part its vertices, their active facets, the edges at every vertex (bounded edges with
both endpoints, unbounded edges = rays), and a triangulation of every vertex's tangent cone
into simplicial cones (one cone for a simple vertex).

It must not import pycddlib. The algorithm, for the pointed part in reduced coordinates
y (dimension S' = S - dim lineality, S' <= 4):

1. Chebyshev centre y0 by a linear program (scipy HiGHS); inradius r <= ``_EMPTY_TOL`` times
   the scale of the data means "empty or no interior".
2. Redundant rows are pruned by the dual hull: with y0 moved to the origin, row j is
   {p_j . y <= 1}, p_j = C_j / (d_j - C_j y0); it is non-redundant iff p_j is a vertex of
   conv({0} U {p_j}) (Farkas). scipy.spatial.ConvexHull (qhull); if qhull fails all rows are kept,
   which is only slower: every later step tolerates redundant rows.
3. Vertices: every S'-subset of rows is solved; feasible solutions are clustered with the
   relative tolerance ``_TOL`` (points closer than that are one, possibly non-simple, vertex).
4. Edges at a vertex v with active rows A: for a simple vertex the columns of -C_A^{-1};
   otherwise the null directions of all rank-(S'-1) subsets of A that keep C_A n <= 0.
   Each edge is followed to the first row it hits (its other endpoint) or found unbounded.
5. Tangent cones of non-simple vertices are triangulated through a cross-section
   (S' = 3: fan over the angularly sorted generators; S' = 4: Delaunay of the cross-section).
6. A bounded pointed part is triangulated, on first use, by recursive fans over its faces
   (``PolyhedronGeometry.simplices``, :func:`fan_triangulation`). Both triangulations are in
   :mod:`fastpath._polyhedron_triangulation`.

All tolerances are relative: a point x (relative to y0) satisfies row j "tightly" when
|C_j x - d_j| <= ``_TOL`` * (r + |x|) with unit rows C_j. Points closer than that are merged,
which moves P by at most that much (a negligible change of every Gaussian integral).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from dgn_core.exceptions import GeometryError

from ._polyhedron_simple import simple_polyhedron
from ._polyhedron_triangulation import _triangulate_cone
from ._polyhedron_triangulation import fan_triangulation as fan_triangulation
from ._small_polytope import extreme_rays, facet_rows, small_enough, solve_subsets, subsets
from ._small_polytope import interior_point as _enumerated_interior_point
from ._standardise import unit_rows

__all__ = ["PolyhedronGeometry", "polyhedron_geometry", "GeometryError"]

#: relative tolerance of tightness / coincidence of points (see module docstring)
_TOL = 1e-9
#: relative inradius below which P is treated as empty or without interior
_EMPTY_TOL = 1e-12
#: relative singular value below which a direction is in the null space of the rows (lines)
_RANK_TOL = 1e-12
#: |det| of unit rows below which an S'-subset of rows is treated as singular (no vertex)
_DET_TOL = 1e-14


@dataclass(frozen=True, eq=False)
class PolyhedronGeometry:
    """V-data of P = {z : C z <= d} needed by the vertex-cone decomposition.

    The pointed part lives in reduced coordinates y = basis^T z of dimension ``dim``
    (= S minus the dimension of the lineality space); all arrays below except
    ``interior_point``, ``lines`` and ``basis`` are in reduced coordinates.

    Attributes
    ----------
    ambient_dim : int
        S.
    dim : int
        S' = S - number of lines; 0 when P is the whole space.
    empty : bool
        P is empty or has no interior (every Gaussian integral over it is 0).
    basis : ndarray, shape (S, S')
        Orthonormal basis of the orthogonal complement of the lineality space.
    lines : ndarray, shape (S - S', S)
        Orthonormal basis of the lineality space.
    C : ndarray, shape (m, S')
    d : ndarray, shape (m,)
        Non-redundant rows with unit Euclidean norm (P' = {y : C y <= d}).
    vertices : ndarray, shape (k, S')
    active : tuple of ndarray
        Row indices tight at each vertex (S' of them for a simple vertex).
    edge_start : ndarray, shape (E, S')
    edge_dir : ndarray, shape (E, S')
        Unit direction of each edge (a bounded edge points from its lower-index vertex).
    edge_len : ndarray, shape (E,)
        Length of each edge, ``inf`` for an unbounded edge (a ray from a vertex).
    rays : ndarray, shape (r, S')
        Extreme rays of the recession cone (unit; deduplicated unbounded edge directions).
    piece_vertex : ndarray, shape (Np,)
        Apex (vertex index) of each simplicial cone of the tangent-cone triangulations.
    piece_L : ndarray, shape (Np, S', S')
        Unit rows: the cone is {y : piece_L (y - apex) <= 0}; row i is opposite generator i.
    piece_edge : ndarray, shape (Np, S')
        Edge id of generator i of each cone.
    piece_orient : ndarray, shape (Np, S')
        +1 if generator i points along ``edge_dir`` of its edge, -1 if against it.
    c_generic : ndarray, shape (S',)
        A unit direction valid for the decomposition (c.u != 0 for every edge, c.r < 0 for
        every ray), chosen far from every edge's normal plane; the fallback direction.
    interior_point : ndarray, shape (S,)
        A point of the interior of P (ambient coordinates).
    inradius : float
        Radius of a ball around ``interior_point`` inside P (capped for unbounded P).
    """

    ambient_dim: int
    dim: int
    empty: bool
    basis: NDArray[np.float64]
    lines: NDArray[np.float64]
    C: NDArray[np.float64]
    d: NDArray[np.float64]
    vertices: NDArray[np.float64]
    active: tuple[NDArray[np.intp], ...]
    edge_start: NDArray[np.float64]
    edge_dir: NDArray[np.float64]
    edge_len: NDArray[np.float64]
    rays: NDArray[np.float64]
    piece_vertex: NDArray[np.intp]
    piece_L: NDArray[np.float64]
    piece_edge: NDArray[np.intp]
    piece_orient: NDArray[np.float64]
    c_generic: NDArray[np.float64]
    interior_point: NDArray[np.float64]
    inradius: float
    info: dict = field(default_factory=dict)

    @property
    def bounded(self) -> bool:
        return (not self.empty) and self.dim == self.ambient_dim and len(self.rays) == 0

    @property
    def n_pieces(self) -> int:
        return int(self.piece_vertex.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_len.shape[0])

    @property
    def simple(self) -> bool:
        """Every vertex is simple (its tangent cone is one simplicial cone)."""
        return self.n_pieces == len(self.vertices)

    @functools.cached_property
    def simplices(self) -> NDArray[np.float64]:
        """Vertices (T, S'+1, S') of a triangulation of the pointed part when it is bounded
        (no rays; :func:`fan_triangulation`), else shape (0, S'+1, S'). Built on first use
        and kept (the simplex cubature of fastpath._simplex_cubature integrates over it)."""
        s = self.dim
        if self.empty or s == 0 or len(self.rays):
            return np.zeros((0, s + 1, s))
        return self.vertices[fan_triangulation(self.vertices, self.active)]


# --------------------------------------------------------------------------- helpers

def _empty_geometry(S: int, interior: NDArray[np.float64] | None = None) -> PolyhedronGeometry:
    z = np.zeros
    return PolyhedronGeometry(
        ambient_dim=S, dim=S, empty=True, basis=np.eye(S), lines=z((0, S)),
        C=z((0, S)), d=z(0), vertices=z((0, S)), active=(), edge_start=z((0, S)),
        edge_dir=z((0, S)), edge_len=z(0), rays=z((0, S)), piece_vertex=z(0, dtype=np.intp),
        piece_L=z((0, S, S)), piece_edge=z((0, S), dtype=np.intp), piece_orient=z((0, S)),
        c_generic=z(S), interior_point=np.full(S, np.nan) if interior is None else interior,
        inradius=0.0)


def _null_basis(C: NDArray[np.float64], S: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Orthonormal bases of the row space (S, S') and of the null space (S - S', S) of C."""
    if C.shape[0] == 0:
        return np.zeros((S, 0)), np.eye(S)
    _, sv, Vt = np.linalg.svd(C, full_matrices=True)
    rank = int(np.sum(sv > _RANK_TOL * max(sv[0], 1e-300) * max(C.shape)))
    if rank == S:  # pointed: keep the original coordinates (no rotation, no rounding)
        return np.eye(S), np.zeros((0, S))
    return Vt[:rank].T.copy(), Vt[rank:].copy()


def _chebyshev_center(C: NDArray[np.float64], d: NDArray[np.float64]
                      ) -> tuple[NDArray[np.float64], float]:
    """Centre and radius of a large ball in {C y <= d} (unit rows); radius capped for unbounded P."""
    from scipy.optimize import linprog

    m, S = C.shape
    scale = 1.0 + float(np.max(np.abs(d)))
    cap = scale
    cost = np.zeros(S + 1)
    cost[-1] = -1.0
    A = np.hstack([C, np.ones((m, 1))])
    res = linprog(cost, A_ub=A, b_ub=d, bounds=[(None, None)] * S + [(0.0, cap)],
                  method="highs",
                  options={"primal_feasibility_tolerance": 1e-10,
                           "dual_feasibility_tolerance": 1e-10})
    if res.status == 2:  # infeasible
        return np.full(S, np.nan), 0.0
    if res.status != 0:
        raise GeometryError(f"interior-point LP failed: {res.message}")
    y0 = res.x[:S]
    # the LP solves to a tolerance: measure the true radius of the ball at y0
    r = float(np.min(d - C @ y0)) if m else cap
    return y0, r


def _prune_redundant(C: NDArray[np.float64], dt: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices of non-redundant rows of {C x <= dt}, dt > 0 (origin interior), via the dual hull."""
    m, S = C.shape
    if m <= S + 1:
        return np.arange(m)
    from scipy.spatial import ConvexHull, QhullError

    pts = np.vstack([np.zeros((1, S)), C / dt[:, None]])
    try:
        hull = ConvexHull(pts)
    except (QhullError, ValueError):
        return np.arange(m)
    keep = np.sort(hull.vertices[hull.vertices > 0] - 1)
    return keep


def _cluster(points: NDArray[np.float64], tol: NDArray[np.float64]
             ) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Greedy clustering: representative points and the cluster label of every point."""
    reps: list[NDArray[np.float64]] = []
    rep_tol: list[float] = []
    labels = np.empty(len(points), dtype=np.intp)
    for i, p in enumerate(points):
        found = -1
        if reps:
            dist = np.linalg.norm(np.asarray(reps) - p, axis=1)
            j = int(np.argmin(dist))
            if dist[j] <= max(tol[i], rep_tol[j]):
                found = j
        if found < 0:
            reps.append(p)
            rep_tol.append(float(tol[i]))
            found = len(reps) - 1
        labels[i] = found
    return np.asarray(reps).reshape(-1, points.shape[1]), labels


def _null_direction(M: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Unit null vectors of a batch of (S'-1) x S' matrices and their smallest non-zero singular value."""
    _, sv, Vt = np.linalg.svd(M, full_matrices=True)
    return Vt[..., -1, :], sv[..., -1]


def _tangent_generators(C: NDArray[np.float64], A: NDArray[np.intp], S: int
                        ) -> NDArray[np.float64]:
    """Extreme rays (unit) of the tangent cone {x : C_A x <= 0} of a vertex with active rows A."""
    CA = C[A]
    if len(A) == S:
        det = np.linalg.det(CA)
        if abs(det) > _DET_TOL:
            G = -np.linalg.inv(CA)
            return (G / np.linalg.norm(G, axis=0)).T
    if S == 1:
        cand = np.array([[1.0], [-1.0]])
    else:
        n, smin = _null_direction(CA[subsets(len(A), S - 1)])
        n = n[smin > _RANK_TOL * 10]
        cand = np.vstack([n, -n])
    ok = np.max(cand @ CA.T, axis=1) <= _TOL
    cand = cand[ok]
    if len(cand) == 0:
        return cand
    reps, _ = _cluster(cand, np.full(len(cand), 1e-7))
    return reps / np.linalg.norm(reps, axis=1, keepdims=True)


@functools.lru_cache(maxsize=64)
def _generic_draws(bounded: bool, n_try: int, k: int) -> NDArray[np.float64]:
    """The fixed random draws of :func:`_choose_generic_direction` (a fresh seeded
    generator per call gave the same numbers; cached, they cost nothing), read-only."""
    rng = np.random.default_rng(20240607)
    a = rng.normal(size=(n_try, k)) if bounded else rng.exponential(size=(n_try, k))
    a.flags.writeable = False
    return a


def _choose_generic_direction(C: NDArray[np.float64], U: NDArray[np.float64], bounded: bool,
                              n_try: int = 64) -> NDArray[np.float64]:
    """Unit c = C^T lam (lam > 0; any direction if bounded) maximising min_e |c.u_e| (deterministic)."""
    S = C.shape[1]
    if bounded:
        cand = _generic_draws(True, n_try, S).copy()
    else:
        cand = _generic_draws(False, n_try, C.shape[0]) @ C
    cand /= np.linalg.norm(cand, axis=1, keepdims=True)
    if len(U) == 0:
        return cand[0]
    score = np.min(np.abs(cand @ U.T), axis=1)
    return cand[int(np.argmax(score))]


# --------------------------------------------------------------------------- main entry
def polyhedron_geometry(C: NDArray[np.float64], d: NDArray[np.float64],
                        interior_point: NDArray[np.float64] | None = None,
                        prune: bool = True, vectorised: bool = True,
                        enumerate_small: bool = True) -> PolyhedronGeometry:
    """Float V-data of {z : C z <= d}; see :class:`PolyhedronGeometry`.

    Parameters
    ----------
    C : ndarray, shape (m, S)
    d : ndarray, shape (m,)
        Finite float64 arrays (validated by the caller), S in 1..4.
    interior_point : ndarray, shape (S,), optional
        A known interior point (skips the LP; e.g. a partition region's).
    prune : bool
        Remove redundant rows first (skip when the rows are known to be facets).
    vectorised : bool
        Use the loop-free construction when every vertex is simple (the default); False
        forces the per-vertex loop (the reference the tests compare it with).
    enumerate_small : bool
        For few rows (:func:`fastpath._small_polytope.small_enough`) find the interior
        point and the redundant rows by enumeration instead of the LP and qhull (the
        default); False forces the LP and qhull (the reference the tests compare it with).
    """
    C, d, S = unit_rows(C, d)
    if C is None:
        return _empty_geometry(S)
    # Work at unit scale: with L a power of two near max |d_j| (rows of unit norm), the
    # geometry of {C x <= d / L} is computed and every length scaled back by L, exactly. All
    # tolerances below are then relative to the polyhedron's own size, and the result is
    # the same (bit for bit) for P and 2^k P: a box of half-width 1e-100 is as well resolved
    # as one of half-width 1, and LP data stay far from HiGHS's infinity (1e20).
    dmax = float(np.max(np.abs(d))) if len(d) else 0.0
    L = 2.0 ** int(np.round(np.log2(dmax))) if dmax > 0 else 1.0
    ip = None if interior_point is None else np.asarray(interior_point, dtype=np.float64) / L
    try:
        g = _geometry_unit(C, d / L, S, ip, prune, vectorised, enumerate_small)
    except GeometryError as exc:
        raise GeometryError(
            f"{exc}: the polyhedron may be too thin for float64 geometry (width below ~1e-9 "
            "of its extent); log_gaussian_mass / truncated_normal_moments, which know the "
            "Gaussian, drop rows too far away to matter") from None
    return g if L == 1.0 else _scaled(g, L)


def _scaled(g: PolyhedronGeometry, L: float) -> PolyhedronGeometry:
    """The geometry of L P (L a power of two: exact) from that of P."""
    return PolyhedronGeometry(
        ambient_dim=g.ambient_dim, dim=g.dim, empty=g.empty, basis=g.basis, lines=g.lines,
        C=g.C, d=g.d * L, vertices=g.vertices * L, active=g.active,
        edge_start=g.edge_start * L, edge_dir=g.edge_dir, edge_len=g.edge_len * L,
        rays=g.rays, piece_vertex=g.piece_vertex, piece_L=g.piece_L, piece_edge=g.piece_edge,
        piece_orient=g.piece_orient, c_generic=g.c_generic,
        interior_point=g.interior_point * L, inradius=g.inradius * L, info=g.info)


def _geometry_unit(C: NDArray[np.float64], d: NDArray[np.float64], S: int,
                   interior_point: NDArray[np.float64] | None, prune: bool,
                   vectorised: bool, enumerate_small: bool = True) -> PolyhedronGeometry:
    """:func:`polyhedron_geometry` for unit rows and max |d_j| = 1 (or all d_j = 0)."""
    m = C.shape[0]
    scale_d = 1.0 + (float(np.max(np.abs(d))) if m else 0.0)
    basis, lines = _null_basis(C, S)
    Sp = basis.shape[1]
    if Sp == 0:  # no constraints left: the whole space
        z = np.zeros
        return PolyhedronGeometry(
            ambient_dim=S, dim=0, empty=False, basis=basis, lines=lines, C=z((0, 0)),
            d=z(0), vertices=z((0, 0)), active=(), edge_start=z((0, 0)), edge_dir=z((0, 0)),
            edge_len=z(0), rays=z((0, 0)), piece_vertex=z(0, dtype=np.intp),
            piece_L=z((0, 0, 0)), piece_edge=z((0, 0), dtype=np.intp), piece_orient=z((0, 0)),
            c_generic=z(0), interior_point=np.zeros(S), inradius=np.inf)
    Cr = C @ basis
    Cr /= np.linalg.norm(Cr, axis=1, keepdims=True)
    # rows of C are in the row space, so |C basis| = 1 up to rounding; renormalise d alike
    dr = d / np.linalg.norm(C @ basis, axis=1)

    r = -np.inf
    small = enumerate_small and small_enough(m, Sp)
    if interior_point is not None:
        y0 = basis.T @ np.asarray(interior_point, dtype=np.float64)
        r = float(np.min(dr - Cr @ y0)) if len(dr) else np.inf
    rays_e = (extreme_rays(Cr, _TOL, 10 * _RANK_TOL)
              if small and (interior_point is None or prune) else None)
    if interior_point is None and rays_e is not None:
        y_e = _enumerated_interior_point(Cr, dr, _TOL, _DET_TOL, rays_e)
        if y_e is not None:
            y0, r = y_e, float(np.min(dr - Cr @ y_e))
    if not r > 1e3 * _EMPTY_TOL * scale_d:
        # no point given, or one too close to the boundary to decide emptiness with: LP
        y0, r = _chebyshev_center(Cr, dr)
    if not np.isfinite(r) or r <= _EMPTY_TOL * scale_d:
        return _empty_geometry(S)
    z_int = basis @ y0

    dt = dr - Cr @ y0                       # slacks at the centre, all >= r > 0
    # few rows: the redundant ones follow from the vertices (after their enumeration)
    late_prune = prune and rays_e is not None and Sp >= 2 and m > Sp + 1
    if prune and not late_prune:
        keep = _prune_redundant(Cr, dt)
        Cr, dr, dt = Cr[keep], dr[keep], dt[keep]
    m = Cr.shape[0]

    # ---- vertices (relative to y0)
    if Sp == 1:
        c = Cr[:, 0]
        hi = np.min(dt[c > 0]) if np.any(c > 0) else np.inf
        lo = -np.min(dt[c < 0]) if np.any(c < 0) else -np.inf
        pts = [p for p in (lo, hi) if np.isfinite(p)]
        X = np.array(pts, dtype=np.float64).reshape(-1, 1)
    else:
        _, X = solve_subsets(Cr, dt, _DET_TOL)
        if len(X):
            tolx = _TOL * (r + np.linalg.norm(X, axis=1))
            viol = np.max(X @ Cr.T - dt, axis=1)
            X, tolx = X[viol <= tolx], tolx[viol <= tolx]
            X = _cluster_fast(X, tolx)
        if late_prune and len(X):
            assert rays_e is not None
            keep = facet_rows(Cr, dt, X, _TOL * (r + np.linalg.norm(X, axis=1)), _TOL, rays_e)
            Cr, dr, dt = Cr[keep], dr[keep], dt[keep]
            m = Cr.shape[0]
    if len(X) == 0:
        raise GeometryError("no vertex found for a pointed polyhedron with interior")

    fast = (simple_polyhedron(Cr, dt, X, r, _TOL, _DET_TOL)
            if (Sp >= 2 and vectorised) else None)
    if fast is not None:
        return _assemble(S, Sp, basis, lines, Cr, dr, y0, z_int, r, *fast)

    # ---- active sets, polished vertices
    active: list[NDArray[np.intp]] = []
    for i in range(len(X)):
        tolx = _TOL * (r + np.linalg.norm(X[i]))
        A = np.flatnonzero(np.abs(Cr @ X[i] - dt) <= tolx)
        if len(A) < Sp:
            raise GeometryError("a vertex with fewer than S' tight rows")
        X[i] = np.linalg.lstsq(Cr[A], dt[A], rcond=None)[0]
        active.append(A)

    # ---- edges and tangent cones
    k = len(X)
    edge_key: dict[tuple, int] = {}
    e_start: list[NDArray[np.float64]] = []
    e_dir: list[NDArray[np.float64]] = []
    e_len: list[float] = []
    e_seen: list[int] = []
    gens_per_vertex: list[tuple[NDArray[np.float64], list[int], list[float]]] = []
    for i in range(k):
        G = _tangent_generators(Cr, active[i], Sp)
        if len(G) < Sp:
            raise GeometryError("a vertex whose tangent cone has fewer than S' extreme rays")
        ids, ors = [], []
        inA = np.zeros(m, dtype=bool)
        inA[active[i]] = True
        for g in G:
            dots = Cr @ g
            hit = (dots > 1e-12) & ~inA
            if not np.any(hit):
                key: tuple = ("ray", i, tuple(np.round(g, 12)))
                eid = len(e_len)
                edge_key[key] = eid
                e_start.append(X[i])
                e_dir.append(g)
                e_len.append(np.inf)
                e_seen.append(2)
                ids.append(eid)
                ors.append(1.0)
                continue
            t = (dt[hit] - Cr[hit] @ X[i]) / dots[hit]
            tstar = float(np.min(t))
            end = X[i] + tstar * g
            dist = np.linalg.norm(X - end, axis=1)
            dist[i] = np.inf
            j = int(np.argmin(dist))
            if dist[j] > 1e-6 * (r + np.linalg.norm(end)):
                raise GeometryError("an edge whose endpoint is not a vertex (degenerate input)")
            key = (min(i, j), max(i, j))
            if key in edge_key:
                eid = edge_key[key]
                e_seen[eid] += 1
            else:
                eid = len(e_len)
                edge_key[key] = eid
                a, b = key
                # canonical direction: from the lower-index vertex
                e_start.append(X[a])
                e_dir.append(g if i == a else -g)
                e_len.append(float(np.linalg.norm(X[b] - X[a])))
                e_seen.append(1)
            ids.append(eid)
            ors.append(1.0 if i == min(i, j) else -1.0)
        gens_per_vertex.append((G, ids, ors))
    if any(s != 2 for s in e_seen):
        raise GeometryError("an edge found from only one of its endpoints (degenerate input)")

    piece_vertex, piece_L, piece_edge, piece_orient = [], [], [], []
    for i, (G, ids, ors) in enumerate(gens_per_vertex):
        for simp in _triangulate_cone(G, Cr[active[i]]):
            Gs = G[simp]                                  # rows = generators
            L = -np.linalg.inv(Gs.T)                      # L @ Gs.T = -I
            L /= np.linalg.norm(L, axis=1, keepdims=True)
            piece_vertex.append(i)
            piece_L.append(L)
            piece_edge.append([ids[s] for s in simp])
            piece_orient.append([ors[s] for s in simp])

    E_dir = np.asarray(e_dir).reshape(-1, Sp)
    E_len = np.asarray(e_len, dtype=np.float64)
    return _assemble(S, Sp, basis, lines, Cr, dr, y0, z_int, r, X, tuple(active),
                     np.asarray(e_start).reshape(-1, Sp), E_dir, E_len,
                     np.asarray(piece_vertex, dtype=np.intp),
                     np.asarray(piece_L).reshape(-1, Sp, Sp),
                     np.asarray(piece_edge, dtype=np.intp).reshape(-1, Sp),
                     np.asarray(piece_orient, dtype=np.float64).reshape(-1, Sp))


def _assemble(S, Sp, basis, lines, Cr, dr, y0, z_int, r, X, active, E_start, E_dir, E_len,
              piece_vertex, piece_L, piece_edge, piece_orient) -> PolyhedronGeometry:
    """Rays, the generic direction and the geometry object (coordinates relative to y0 in)."""
    rays = E_dir[~np.isfinite(E_len)]
    if len(rays) > 1:
        rays, _ = _cluster(rays, np.full(len(rays), 1e-7))
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    c_gen = _choose_generic_direction(Cr, E_dir, bounded=len(rays) == 0)
    return PolyhedronGeometry(
        ambient_dim=S, dim=Sp, empty=False, basis=basis, lines=lines,
        C=Cr, d=dr, vertices=X + y0, active=active,
        edge_start=E_start + y0, edge_dir=E_dir, edge_len=E_len,
        rays=rays.reshape(-1, Sp), piece_vertex=piece_vertex, piece_L=piece_L,
        piece_edge=piece_edge, piece_orient=piece_orient,
        c_generic=c_gen, interior_point=z_int, inradius=r)


def _cluster_fast(X: NDArray[np.float64], tol: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`_cluster` representatives, without the loop when no two points are close."""
    if len(X) <= 1:
        return X
    D = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)
    np.fill_diagonal(D, np.inf)
    if np.all(D > np.maximum(tol[:, None], tol[None, :])):
        return X
    return _cluster(X, tol)[0]
