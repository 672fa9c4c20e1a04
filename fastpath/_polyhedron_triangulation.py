"""Triangulations of a polytope and of a vertex's tangent cone (float64, combinatorial).

:func:`fan_triangulation` splits a bounded full-dimensional polytope into simplices by
recursive fans over its faces, from the vertices' active facets (no floating-point hull, so
thin polytopes are triangulated as reliably as fat ones): the simplex cubature of
:mod:`fastpath._simplex_cubature` integrates over it. :func:`_triangulate_cone` splits the
tangent cone of a non-simple vertex into simplicial cones through a cross-section (S' = 3:
fan over the angularly sorted generators; S' = 4: Delaunay of the cross-section), for the
signed vertex-cone decomposition of :mod:`fastpath._cones`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from dgn_core.exceptions import GeometryError


def fan_triangulation(vertices: NDArray[np.float64], active: tuple[NDArray[np.intp], ...]
                      ) -> NDArray[np.intp]:
    """Triangulate a bounded, full-dimensional polytope from its vertices' active facets.

    Recursive fan: a face F of dimension k is the union of the cones from its first vertex
    v0 over its facets (faces of dimension k - 1) that do not contain v0. The facets of F
    are the vertex sets {v in F : row j tight at v} of affine dimension k - 1.

    Parameters
    ----------
    vertices : ndarray, shape (V, s)
    active : tuple of V int arrays
        Rows (facets of P) tight at each vertex.

    Returns
    -------
    ndarray of int, shape (T, s + 1)
        Vertex indices of the simplices (disjoint interiors, union = P).
    """
    V, s = vertices.shape
    act = [frozenset(int(j) for j in a) for a in active]
    rows = sorted(set().union(*act)) if act else []
    # relative to the polytope's own extent (a box of width 1e-100 is as fat as one of width
    # 1), plus a few roundings of the coordinates themselves (vertices far from the origin)
    tol = (1e-12 * float(np.max(np.ptp(vertices, axis=0)))
           + 1e-14 * float(np.max(np.abs(vertices)))) if V else 0.0

    def affine_dim(idx: tuple[int, ...]) -> int:
        if len(idx) <= 1:
            return 0
        D = vertices[list(idx[1:])] - vertices[idx[0]]
        sv = np.linalg.svd(D, compute_uv=False)
        return int(np.sum(sv > tol))

    def tri(face: tuple[int, ...], k: int, used: frozenset) -> list[tuple[int, ...]]:
        if k == 0:
            return [face[:1]]
        if k == 1:
            # an edge: its two extreme points along the edge (a face of dimension 1 has two
            # vertices; the others, if any, would be merged by the geometry's clustering)
            return [(face[0], face[-1])] if len(face) == 2 else [_edge_ends(vertices, face)]
        v0 = face[0]
        out: list[tuple[int, ...]] = []
        seen: set[tuple[int, ...]] = set()
        for j in rows:
            if j in used:
                continue
            sub = tuple(v for v in face if j in act[v])
            if len(sub) < k or v0 in sub or sub in seen:
                continue
            # sub lies in a proper face of F (v0 is not in it), so its dimension is at most
            # k - 1; at least k - 1 when k - 1 <= 2, since no three vertices of a polytope
            # are collinear: the rank test is needed only for the facets of a 4-polytope
            if k - 1 > 2 and affine_dim(sub) != k - 1:
                continue
            seen.add(sub)
            out.extend((v0,) + t for t in tri(sub, k - 1, used | {j}))
        return out

    simp = tri(tuple(range(V)), s, frozenset())
    return np.array(simp, dtype=np.intp).reshape(-1, s + 1)


def _edge_ends(vertices: NDArray[np.float64], face: tuple[int, ...]) -> tuple[int, int]:
    X = vertices[list(face)]
    d = X[-1] - X[0]
    t = X @ d
    return face[int(np.argmin(t))], face[int(np.argmax(t))]


def _triangulate_cone(G: NDArray[np.float64], CA: NDArray[np.float64]) -> list[NDArray[np.intp]]:
    """Simplicial cones (index triples / quadruples into the rows of G) covering cone(G).

    ``CA`` are the rows of the cone {x : CA x <= 0}; -sum(CA) is an axis with a.g > 0 for
    every generator g (a.g = -sum_j C_j g, and C_j g <= 0 with some < 0 for a pointed cone),
    so the cross-section {a.x = 1} meets every generator, however wide the cone.
    """
    k, S = G.shape
    if k == S:
        return [np.arange(S)]
    axis = -CA.sum(axis=0)
    axis /= np.linalg.norm(axis)
    if np.min(G @ axis) <= 1e-12:
        raise GeometryError("no cross-section axis for a tangent cone")
    # orthonormal basis of the plane orthogonal to the axis
    _, _, Vt = np.linalg.svd(axis[None, :])
    plane = Vt[1:]                                   # (S-1, S)
    X = (G / (G @ axis)[:, None]) @ plane.T          # cross-section points, (k, S-1)
    if S == 2:  # a 2-D pointed cone has exactly two extreme rays
        raise GeometryError("2-D tangent cone with more than two extreme rays")
    if S == 3:
        ang = np.arctan2(X[:, 1], X[:, 0])
        order = np.argsort(ang)
        return [np.array([order[0], order[i], order[i + 1]]) for i in range(1, k - 1)]
    from scipy.spatial import Delaunay
    tri = Delaunay(X)
    out = []
    for simp in tri.simplices:
        M = G[simp]
        if abs(np.linalg.det(M)) > 1e-12:
            out.append(np.asarray(simp, dtype=np.intp))
    return out
