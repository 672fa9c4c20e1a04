"""The S = 2 geometry of every region of a partition in one compiled call.

:func:`geometry_s2_batch` is :func:`fastpath._polyhedron.polyhedron_geometry` with the
region's own interior point and ``prune=False`` (what
:meth:`fastpath.integrals.PolyhedronCones.from_region` asks for), region by region, for
simple pointed polygons: the rows are scaled as :func:`fastpath._standardise.unit_rows` and
``_geometry_unit`` scale them (:func:`fastpath._jit_one_shot_geometry.unit_scaled_rows`),
the inradius is the smallest slack at the given point, and the rest is the one-call lane's
own polygon kernel (:func:`fastpath._jit_one_shot_geometry.polygon_geometry`: vertices,
simple cones, edges, rays, generic direction, the same tolerances and orders). A region
the kernel declines (status != 0: zero or overflowing rows, lines, an interior point too
close to the boundary for the emptiness test, a non-simple vertex, close vertices, ...)
is left to the Python geometry by the caller (:mod:`fastpath._geometry_batch`).

The outputs are packed by region: a region with rows ``offs[i]:offs[i+1]`` (m rows) has its
k <= m vertices (and their tight rows, cones, edge ids, orientations) at
``offs[i]:offs[i]+k`` and its E <= m + 1 edges at ``offs[i]+i : offs[i]+i+E``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit
from ._jit_one_shot_base import LINES, OK, THIN
from ._jit_one_shot_geometry import polygon_geometry, rank2, unit_scaled_rows

__all__ = ["geometry_s2_batch"]

#: status of a region whose rows the compiled scaling does not cover (a zero row, a row
#: whose offset overflows): unit_rows drops or rejects those, so the Python path takes it
ROWS = 11


@jit
def geometry_s2_batch(C: NDArray[np.float64], d: NDArray[np.float64], offs: NDArray[np.intp],
                      ip: NDArray[np.float64], draws_b: NDArray[np.float64],
                      draws_u: NDArray[np.float64]):
    """Geometry of the simple pointed polygons {C[a:b] w <= d[a:b]}, a, b = offs[i], offs[i+1].

    Parameters
    ----------
    C : ndarray, shape (M, 2)
    d : ndarray, shape (M,)
        The rows of every region, stacked (finite).
    offs : ndarray of int, shape (R + 1,)
    ip : ndarray, shape (R, 2)
        An interior point of each region (finite).
    draws_b : ndarray, shape (64, 2)
    draws_u : ndarray, shape (mmax + 1, 64, mmax)
        The generic-direction draws (fastpath._one_shot._constants, _unbounded_draws).

    Returns
    -------
    status : (R,) int (0: done), k : (R,) vertices, ne : (R,) edges, nray : (R,) rays,
    inradius : (R,), V (M, 2), A (M, 2) int, CA (M, 2, 2), edge_id (M, 2) int,
    orient (M, 2), E_start (M + R, 2), E_dir (M + R, 2), E_len (M + R,), Cu (M, 2) unit
    rows, du (M,), c_gen (R, 2), rays (R, 2, 2), tri (M, 3) int: the fan triangulation of
    a bounded region (``PolyhedronGeometry.simplices`` as vertex indices), ntri (R,) its
    number of triangles (-1: none given); packed as the module docstring says.
    """
    empty_tol = 1e-12           # _polyhedron._EMPTY_TOL
    R = offs.shape[0] - 1
    M = C.shape[0]
    status = np.zeros(R, dtype=np.intp)
    kk = np.zeros(R, dtype=np.intp)
    ne = np.zeros(R, dtype=np.intp)
    nray = np.zeros(R, dtype=np.intp)
    inr = np.zeros(R)
    V = np.zeros((M, 2))
    A = np.zeros((M, 2), dtype=np.intp)
    CA = np.zeros((M, 2, 2))
    eid = np.zeros((M, 2), dtype=np.intp)
    ori = np.zeros((M, 2))
    Es = np.zeros((M + R, 2))
    Ed = np.zeros((M + R, 2))
    El = np.zeros(M + R)
    Cu = np.zeros((M, 2))
    du = np.zeros(M)
    cg = np.zeros((R, 2))
    rays = np.zeros((R, 2, 2))
    tri = np.zeros((M, 3), dtype=np.intp)
    ntri = np.full(R, -1, dtype=np.intp)
    R0 = np.empty((0, 2))
    for i in range(R):
        a = offs[i]
        b = offs[i + 1]
        m = b - a
        if m < 2:
            status[i] = LINES
            continue
        ok = True
        for j in range(a, b):
            amax = max(abs(C[j, 0]), abs(C[j, 1]))
            if not (amax > 0.0 and math.isfinite(d[j] / amax)):
                ok = False
        if not ok:
            status[i] = ROWS
            continue
        Cr, dr, L, scale_d = unit_scaled_rows(C[a:b], d[a:b])
        if not rank2(Cr):
            status[i] = LINES
            continue
        y0 = ip[i, 0] / L
        y1 = ip[i, 1] / L
        r = math.inf
        for j in range(m):
            r = min(r, dr[j] - (Cr[j, 0] * y0 + Cr[j, 1] * y1))
        # polyhedron_geometry takes the LP when the given point is this close to the boundary
        if not r > 1e3 * empty_tol * scale_d:
            status[i] = THIN
            continue
        (st, k, L2, X, Ai, CAi, E_start, E_dir, E_len, edge_id, orient, Cf, df, c_gen,
         nr) = polygon_geometry(Cr, dr, L, y0, y1, r, R0, np.intp(0), np.bool_(False), draws_b,
                                 draws_u)
        if st != OK:
            status[i] = st
            continue
        E = E_len.shape[0]
        # _assemble's rays: the unbounded edges' directions, clustered (1e-7) and
        # renormalised when there are several
        nrr = 0
        for e in range(E):
            if not math.isfinite(E_len[e]):
                if nrr == 1 and math.hypot(E_dir[e, 0] - rays[i, 0, 0],
                                           E_dir[e, 1] - rays[i, 0, 1]) <= 1e-7:
                    continue
                rays[i, nrr, 0] = E_dir[e, 0]
                rays[i, nrr, 1] = E_dir[e, 1]
                nrr += 1
        if nrr > 1:
            for q in range(nrr):
                nn = math.sqrt(rays[i, q, 0] * rays[i, q, 0] + rays[i, q, 1] * rays[i, q, 1])
                rays[i, q, 0] = rays[i, q, 0] / nn
                rays[i, q, 1] = rays[i, q, 1] / nn
        kk[i] = k
        ne[i] = E
        nray[i] = nrr
        inr[i] = r * L
        for v in range(k):
            for c in range(2):
                V[a + v, c] = X[v, c]
                A[a + v, c] = Ai[v, c]
                eid[a + v, c] = edge_id[v, c]
                ori[a + v, c] = orient[v, c]
                for c2 in range(2):
                    CA[a + v, c, c2] = CAi[v, c, c2]
        for e in range(E):
            Es[a + i + e, 0] = E_start[e, 0]
            Es[a + i + e, 1] = E_start[e, 1]
            Ed[a + i + e, 0] = E_dir[e, 0]
            Ed[a + i + e, 1] = E_dir[e, 1]
            El[a + i + e] = E_len[e]
        for j in range(m):
            Cu[a + j, 0] = Cf[j, 0]
            Cu[a + j, 1] = Cf[j, 1]
            du[a + j] = df[j]
        cg[i, 0] = c_gen[0]
        cg[i, 1] = c_gen[1]
        if nrr == 0:
            ntri[i] = _fan(Ai, k, m, tri[a:b])
    return (status, kk, ne, nray, inr, V, A, CA, eid, ori, Es, Ed, El, Cu, du, cg, rays, tri,
            ntri)


@jit
def _fan(A: NDArray[np.intp], k: int, m: int, out: NDArray[np.intp]) -> int:
    """fan_triangulation of a bounded simple polygon from its vertices' tight rows A (k, 2):
    the triangles (0, a, b), a < b the two vertices on row j, for the rows j in increasing
    order that are not tight at vertex 0 (a face of dimension 1 of a simple polygon has
    exactly two vertices); the number of triangles, -1 where a row has another count."""
    t = 0
    for j in range(m):
        if A[0, 0] == j or A[0, 1] == j:
            continue
        c = 0
        va = -1
        vb = -1
        for v in range(k):
            if A[v, 0] == j or A[v, 1] == j:
                if c == 0:
                    va = v
                else:
                    vb = v
                c += 1
        if c == 0:
            continue
        if c != 2:
            return -1
        out[t, 0] = 0
        out[t, 1] = va
        out[t, 2] = vb
        t += 1
    return t


def _warmup() -> None:
    from ._one_shot import _constants, _unbounded_draws

    C = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    d = np.array([1.0, 1.0, 1.0])
    geometry_s2_batch(C, d, np.array([0, 3], dtype=np.intp), np.zeros((1, 2)),
                      _constants()[0], _unbounded_draws(3))
