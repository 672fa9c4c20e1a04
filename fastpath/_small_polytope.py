"""Interior point and facet rows of a small polyhedron by enumeration (no LP, no qhull).

For the one-call functions of :mod:`fastpath.integrals` (one polyhedron, one Gaussian) the
fixed costs of :func:`fastpath._polyhedron.polyhedron_geometry` were a Chebyshev-centre
linear program (scipy HiGHS, ~1.5 ms) and a dual convex hull for the redundant rows (qhull,
~0.5 ms). For S' <= 4 and a few rows both follow from enumerating S'-subsets of rows,
which the geometry does anyway:

* :func:`interior_point`: every S'-subset of the unit rows {C y <= d} is solved and the
  feasible solutions (the vertices, each possibly several times) are averaged; for an
  unbounded P the mean of the extreme rays of the recession cone {C y <= 0} (null
  directions of (S'-1)-subsets) is added. A strictly positive combination of all vertices
  and all extreme rays lies in the interior of a full-dimensional pointed P. The caller
  accepts the point only where its computed inradius (smallest slack) is well above the
  emptiness threshold, exactly as for a partition region's stored interior point, and
  falls back to the linear program otherwise (flat, empty or numerically doubtful P).
* :func:`facet_rows`: from the vertices (found with the geometry's own tolerances) a row
  is a facet iff the vertices and rays on its hyperplane span S' - 1 dimensions (a facet
  of a pointed polyhedron contains a vertex). A row is dropped only where that is clear:
  no tight vertex, a face of exactly lower dimension (weakly redundant rows through a
  vertex or an edge), or a duplicate of an earlier row; an ambiguous row is kept, which
  is always safe (the geometry tolerates redundant rows).

All tolerances are those of :mod:`fastpath._polyhedron` (passed in by the caller).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAX_SUBSETS", "small_enough", "subsets", "solve_subsets", "interior_point",
           "facet_rows"]

#: at most this many S'-subsets of rows are enumerated (above it the LP and qhull are cheaper)
MAX_SUBSETS = 4096
#: a face whose tight vertices / rays have a relative singular value below this is of
#: lower dimension for certain (only rounding makes it non-zero: vertices are solved to
#: ~1e-15 of their norm)
_FLAT_SV = 1e-12


def small_enough(m: int, s: int) -> bool:
    """Whether the S'-subsets of m rows are few enough to enumerate (s >= 1)."""
    return s >= 1 and math.comb(m, s) <= MAX_SUBSETS


@functools.lru_cache(maxsize=256)
def subsets(m: int, k: int) -> NDArray[np.intp]:
    """All k-subsets of range(m) in lexicographic order, shape (comb(m, k), k), read-only."""
    out = np.array(list(itertools.combinations(range(m), k)), dtype=np.intp).reshape(-1, k)
    out.flags.writeable = False
    return out


def solve_subsets(C: NDArray[np.float64], d: NDArray[np.float64], det_tol: float
                   ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """The non-singular S'-subsets of rows and the point where each is tight, (K, s), (K, s)."""
    m, s = C.shape
    combos = subsets(m, s)
    M = C[combos]
    det = np.linalg.det(M)
    ok = np.abs(det) > det_tol
    if not np.any(ok):
        return combos[:0], np.zeros((0, s))
    combos, M = combos[ok], M[ok]
    X = np.linalg.solve(M, d[combos][..., None])[..., 0]
    return combos, X


def _null_directions(M: NDArray[np.float64]) -> NDArray[np.float64]:
    """A null vector of each (s-1) x s matrix of a batch (K, s-1, s), by the generalised
    cross product (signed (s-1)-minors): unit rows give |n| = the volume their rows span,
    0 when they are dependent."""
    K, k, s = M.shape
    if s == 2:
        return np.stack([-M[:, 0, 1], M[:, 0, 0]], axis=1)
    if s == 3:
        return np.cross(M[:, 0], M[:, 1])
    n = np.empty((K, s))
    for i in range(s):
        cols = [c for c in range(s) if c != i]
        n[:, i] = (-1) ** i * np.linalg.det(M[:, :, cols])
    return n


def extreme_rays(C: NDArray[np.float64], tol: float, rank_tol: float) -> NDArray[np.float64]:
    """Unit extreme rays of the pointed cone {x : C x <= 0} (unit rows), possibly repeated.

    Candidates are the null directions of the (S'-1)-subsets of rows that span S' - 1
    dimensions (volume above ``rank_tol``) and their negatives; a candidate is a ray when
    ``max C x <= tol`` (the tolerance of :func:`fastpath._polyhedron._tangent_generators`).
    """
    m, s = C.shape
    if s == 1:
        cand = np.array([[1.0], [-1.0]])
    else:
        n = _null_directions(C[subsets(m, s - 1)])
        nn = np.linalg.norm(n, axis=1)
        ok = nn > rank_tol
        n = n[ok] / nn[ok, None]
        cand = np.concatenate([n, -n])
    if len(cand) == 0:
        return cand
    return cand[np.max(cand @ C.T, axis=1) <= tol]


def interior_point(C: NDArray[np.float64], d: NDArray[np.float64], tol: float,
                   det_tol: float, R: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """A point of the interior of the pointed P = {y : C y <= d} (unit rows, |d| <= 1), or None.

    The mean of the feasible solutions of all S'-subsets of rows (feasible: every row
    holds within ``tol (1 + |y|)``), plus the mean extreme ray of the recession cone
    scaled to the spread of the vertices (module docstring); R (r, s): the extreme rays
    (:func:`extreme_rays`). None when no vertex is found (P empty, or no subset
    non-singular); the caller checks the point's inradius.
    """
    m, s = C.shape
    _, X = solve_subsets(C, d, det_tol)
    if len(X) == 0:
        return None
    viol = np.max(X @ C.T - d, axis=1)
    X = X[viol <= tol * (1.0 + np.linalg.norm(X, axis=1))]
    if len(X) == 0:
        return None
    y0 = X.mean(axis=0)
    if len(R):
        # step out along the recession cone by about the size of the vertex set (any
        # positive step gives an interior point; this one keeps the ball large)
        spread = float(np.max(np.abs(X - y0))) if len(X) > 1 else 0.0
        y0 = y0 + max(1.0, spread) * R.mean(axis=0)
    return y0


def facet_rows(C: NDArray[np.float64], dt: NDArray[np.float64], X: NDArray[np.float64],
               tolx: NDArray[np.float64], tol: float, R: NDArray[np.float64]) -> NDArray[np.intp]:
    """Indices (sorted) of the rows of {C x <= dt} to keep: the facets and ambiguous rows.

    A facet of a pointed polyhedron holds at least S' of its extreme generators (vertices
    and extreme rays), and a face of lower dimension holds fewer when S' <= 3 (a point is
    one vertex, an edge two generators); at S' = 4 a 2-face may hold any number, so rows
    with 4 or more are checked by the rank of their generators.

    Parameters
    ----------
    C : ndarray, shape (m, s)
    dt : ndarray, shape (m,)
        Unit rows, coordinates relative to an interior point (dt > 0).
    X : ndarray, shape (k, s)
        The vertices (clustered), relative to the same point.
    tolx : ndarray, shape (k,)
        The tightness tolerance of each vertex (:mod:`fastpath._polyhedron`).
    tol : float
        Tightness tolerance of a ray (|C_j r|).
    R : ndarray, shape (r, s)
        The extreme rays (:func:`extreme_rays`).
    """
    m, s = C.shape
    tight = np.abs(dt[None, :] - X @ C.T) <= tolx[:, None]                 # (k, m)
    count = tight.sum(axis=0)
    rtight = np.abs(R @ C.T) <= tol                                         # (r, m)
    keep = (count >= 1) & (count + rtight.sum(axis=0) >= s)
    if s == 4:
        ext = max(1.0, float(np.max(np.abs(X)))) if len(X) else 1.0
        for j in np.flatnonzero(keep):
            V = X[tight[:, j]]
            M = np.concatenate([(V[1:] - V[0]) / ext, R[rtight[:, j]]])
            sv = np.linalg.svd(M, compute_uv=False)
            # relative to the largest generator; a clearly flat face is weakly redundant
            keep[j] = sv[s - 2] > _FLAT_SV * max(1.0, float(sv[0]))
    # duplicates (same row and offset within the tolerances): keep the first
    idx = np.flatnonzero(keep)
    if len(idx) > 1:
        same = ((np.max(np.abs(C[idx, None, :] - C[None, idx, :]), axis=-1) <= tol)
                & (np.abs(dt[idx, None] - dt[None, idx])
                   <= tol * (1.0 + np.abs(dt[idx]))[:, None]))
        dup = np.any(np.triu(same, 1), axis=0)
        keep[idx[dup]] = False
    return np.flatnonzero(keep)
