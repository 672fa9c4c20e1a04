"""The S = 2 geometries of a partition's regions in one compiled call (numpy-facing side).

:func:`region_geometries` gives, for every region of a partition, what
``polyhedron_geometry(C, d, interior_point=ip, prune=False)`` gives
(:meth:`fastpath.integrals.PolyhedronCones.from_region`): for S = 2 the simple pointed
polygons come from :func:`fastpath._jit_geometry_batch.geometry_s2_batch` (one call over all
regions, ~0.5 ms per region in Python before), every other region from the Python geometry.
The compiled geometry equals the Python one up to the rounding of the slacks at the interior
point and of the generic direction's draws (tests/test_geometry_batch.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._integral_checks import _check_halfspaces
from ._polyhedron import PolyhedronGeometry, polyhedron_geometry

__all__ = ["ENABLED", "partition_rows", "region_geometries", "region_rows"]

#: the compiled S = 2 batch; False runs the Python geometry for every region (tests)
ENABLED = [True]

_EYE2 = np.eye(2)
_EYE2.flags.writeable = False
_NOLINES = np.zeros((0, 2))
_NOLINES.flags.writeable = False


def region_rows(region: Any) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                       NDArray[np.float64] | None]:
    """(C, d, interior point or None) of a partition region, validated."""
    C, d = _check_halfspaces(np.asarray(region.C, dtype=np.float64),
                             np.asarray(region.d, dtype=np.float64))
    ip = getattr(region, "interior_point", None)
    ip = None if ip is None else np.asarray(ip, dtype=np.float64)
    if ip is not None and (ip.shape != (C.shape[1],) or not np.all(np.isfinite(ip))):
        ip = None
    return C, d, ip


def partition_rows(partition: Sequence[Any]) -> list[tuple[NDArray[np.float64],
                                                             NDArray[np.float64],
                                                             NDArray[np.float64] | None]]:
    """:func:`region_rows` of every region; float64 arrays of the right shapes (what a
    partition holds) are checked for finiteness all at once, anything else one by one."""
    f64 = np.dtype(np.float64)
    rows: list[Any] = []
    plain: list[int] = []
    for i, r in enumerate(partition):
        C, d = r.C, r.d
        ip = getattr(r, "interior_point", None)
        if (type(C) is np.ndarray and C.dtype == f64 and C.ndim == 2
                and 1 <= C.shape[1] <= 4 and type(d) is np.ndarray and d.dtype == f64
                and d.shape == (C.shape[0],)
                and (ip is None or (type(ip) is np.ndarray and ip.dtype == f64
                                    and ip.shape == (C.shape[1],)))):
            rows.append((C, d, ip))
            plain.append(i)
        else:
            rows.append(region_rows(r))
    if plain:
        flat = np.concatenate([np.concatenate([rows[i][0].ravel(), rows[i][1]]) for i in plain])
        if not np.all(np.isfinite(flat)):
            for i in plain:           # the offending region's own error
                rows[i] = region_rows(partition[i])
        for i in plain:
            ip = rows[i][2]
            if ip is not None and not np.all(np.isfinite(ip)):
                rows[i] = (rows[i][0], rows[i][1], None)
    return rows


def region_geometries(regions: Sequence[tuple[NDArray[np.float64], NDArray[np.float64],
                                              NDArray[np.float64] | None]]
                      ) -> list[PolyhedronGeometry]:
    """The geometry of every region ``(C (m, S), d (m,), interior point (S,) or None)``.

    Rows are validated (finite) by the caller; an interior point, when given, is finite
    and of shape (S,).
    """
    out: list[PolyhedronGeometry | None] = [None] * len(regions)
    if ENABLED[0] and regions and all(C.shape[1] == 2 for C, _, _ in regions):
        _batch_s2(regions, out)
    return [g if g is not None else polyhedron_geometry(C, d, interior_point=ip, prune=False)
            for g, (C, d, ip) in zip(out, regions)]


def _batch_s2(regions: Sequence[tuple[Any, Any, Any]], out: list[PolyhedronGeometry | None]
              ) -> None:
    from ._jit_geometry_batch import geometry_s2_batch
    from ._one_shot import _constants, _unbounded_draws

    idx = [i for i, (_, _, ip) in enumerate(regions) if ip is not None]
    if not idx:
        return
    ms = np.array([regions[i][0].shape[0] for i in idx], dtype=np.intp)
    offs = np.concatenate([[0], np.cumsum(ms)]).astype(np.intp)
    C = np.ascontiguousarray(np.concatenate([regions[i][0] for i in idx]), dtype=np.float64)
    d = np.ascontiguousarray(np.concatenate([regions[i][1] for i in idx]), dtype=np.float64)
    ip = np.ascontiguousarray(np.array([regions[i][2] for i in idx]), dtype=np.float64)
    (status, kk, ne, nray, inr, V, A, CA, eid, ori, Es, Ed, El, Cu, du, cg, rays, tri,
     ntri) = geometry_s2_batch(C, d, offs, ip, _constants()[0], _unbounded_draws(int(ms.max())))
    for t, i in enumerate(idx):
        if status[t] != 0:
            continue
        a, m, k, E = int(offs[t]), int(ms[t]), int(kk[t]), int(ne[t])
        e = a + t
        g = PolyhedronGeometry(
            ambient_dim=2, dim=2, empty=False, basis=_EYE2, lines=_NOLINES,
            C=Cu[a:a + m], d=du[a:a + m], vertices=V[a:a + k], active=tuple(A[a:a + k]),
            edge_start=Es[e:e + E], edge_dir=Ed[e:e + E], edge_len=El[e:e + E],
            rays=rays[t, :nray[t]], piece_vertex=np.arange(k, dtype=np.intp),
            piece_L=CA[a:a + k], piece_edge=eid[a:a + k], piece_orient=ori[a:a + k],
            c_generic=cg[t], interior_point=ip[t], inradius=float(inr[t]))
        if ntri[t] >= 0:
            # the cached property's value (fan_triangulation's, see _jit_geometry_batch._fan)
            g.__dict__["simplices"] = g.vertices[tri[a:a + int(ntri[t])]]
        out[i] = g
