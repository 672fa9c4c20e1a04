"""The float64 partition of nets with max-pooling layers, by a breadth-first walk.

A max layer's regions are argmax cells (``h_j - h_i >= 0`` for the losers i of a group with
winner j), not the cells of a hyperplane arrangement, so the layer-wise subdivision of
:mod:`fastpath._arrangement` does not apply. This module walks region by region, as the exact
path (:func:`verified_dgn.partition`) does, in float64:

1. the H-representation of a region comes from its pattern (the rows of
   :func:`dgn_core.regions.region_inequalities`, built from the maps of
   :func:`dgn_core.regions.layer_maps`);
2. its non-redundant facets, vertices, rays, lineality space and an interior point come
   from an LP-free S-subset enumeration, batched over many regions
   (:mod:`fastpath._walk_batch`); on any doubt (lines, badly conditioned subsets, a thin
   region, an interior point whose forward pattern is not the region's) from the float
   polyhedron tools (:func:`fastpath._polyhedron.polyhedron_geometry`, S <= 4);
3. every facet is crossed by the *one-sided* pattern at a relative-interior point p of the
   facet, i.e. the pattern on ``p + s n`` for ``s -> 0+`` along the outward normal n: value
   ties (within :data:`RTOL` of the magnitudes) are broken by the directional derivative along
   n, and remaining ties by the first index (the tie rule of :mod:`dgn_core.activations`);
4. every region's pattern is confirmed by the forward pass at its interior point (where
   units tie within rounding on a whole region, by the same pass with value ties within
   :data:`RTOL` going to the first index; the exact path sees such units as distinct
   hyperplanes and keeps the sliver regions between them, as the element-wise fast path
   documents for hyperplanes that coincide up to rounding).

Order of work (speed only; the regions, their geometry and neighbours are those of a
region-by-region breadth-first walk from the start region, numbering included):

* S = 1: the patterns are proposed by a sweep of the line (:mod:`fastpath._walk_line`) and
  accepted only if closed under crossing every facet; else the walk below runs;
* S >= 2: the forward patterns at fixed sample points are proposed first (one batch), then
  rounds cross all facets of the regions found in the previous round and batch the new
  patterns, until none is new; the region numbers are then replayed breadth first from the
  start region over the neighbour lists, and a proposed region that the walk from the start
  never reaches (possible only for float slivers of degenerate nets) is left out.

Tolerances (relative to the data, never absolute): a hidden unit's pre-activation ``u`` counts
as zero (a max unit as tied with its group's maximum) at a point when it is within
``RTOL * m`` of it, where ``m`` is the same forward pass computed with ``|W|``, ``|b|`` and
``|point|`` (a bound on the rounding error of ``u``); the same rule with ``|n|`` applies to
directional derivatives. A constraint row counts as zero when its largest entry is below
``RTOL`` times the magnitude of the maps it is the difference of. A facet row of the
polyhedron tools (unit rows) is matched to a unit's row, scaled to unit norm, within
``FACET_TOL``.

It never imports pycddlib. Element-wise nets never come here (their subdivision is faster).

Cost (benchmarks/maxpool_partition.py, 2 busy cores, medians): about 0.2 ms per region at
S = 1 (61 regions: 11 ms), 0.3 ms at S = 2 (335 regions: 0.09 s), 0.5 ms at S = 3 (442 / 597
regions: 0.20 / 0.30 s), 1.4 ms at S = 4 (760 regions: 1.0 s): 5.4-10 times faster than the
exact walk on the nets of that script with 24 regions or more; on nets of 8-16 regions a
fixed cost of 2-7 ms leaves 2.4-3.3 times. At S = 2 the cost per region is linear in the
number of hidden units (:mod:`fastpath._jit_walk`): the wide conv + MaxPool2d decoder of
``benchmarks/maxpool_partition.py --wide`` (1,072 hidden units, 55,839 regions) takes
~2.6 ms per region (147 s in all), about 13 times faster than the exact walk on its first
1,000 regions.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.activations import winners
from dgn_core.exceptions import GeometryError
from dgn_core.model import DGN
from dgn_core.progress import ProgressLine
from dgn_core.regions import Partition, Region, RegionLimitError, layer_maps

from ._polyhedron import PolyhedronGeometry, polyhedron_geometry
from ._walk_batch import batch_cells, first_unique_rows
from ._walk_cells import fast_geometry, pattern_rows
from ._walk_line import line_patterns

__all__ = ["walk_partition", "one_sided_pattern", "one_sided_patterns", "RTOL", "FACET_TOL"]

Arr = NDArray[np.float64]

#: relative tolerance of value / derivative ties and zero rows (see the module docstring)
RTOL = 1e-10
#: a unit's unit-norm row matches a facet of the polyhedron tools within this (they work
#: with relative tolerance 1e-9 themselves)
FACET_TOL = 1e-8
#: a vertex (a unit ray) is on a unit row when the row's slack is below this (relative to
#: 1 + the largest vertex coordinate): the polyhedron tools' own tightness tolerance
_TIGHT = 1e-9


# --------------------------------------------------------------------------- patterns
def one_sided_pattern(net: DGN, p: Arr, n: Arr, rtol: float = RTOL) -> NDArray[np.int8]:
    """The sign pattern on ``p + s n`` for small ``s > 0``, shape ``(n_hidden_units,)``.

    An element-wise unit with ``|u(p)| <= rtol * m`` takes the sign of its derivative along
    n (+1 when that is zero too: the unit is constant 0 along n). In a max group, the units
    within ``rtol * m`` of the group's maximum are tied; among them the largest derivative
    wins, and the first index among derivatives tied within ``rtol``.
    """
    return one_sided_patterns(net, np.asarray(p, dtype=np.float64)[None],
                              np.asarray(n, dtype=np.float64)[None], rtol)[0]


def one_sided_patterns(net: DGN, P: Arr, N: Arr, rtol: float = RTOL) -> NDArray[np.int8]:
    """:func:`one_sided_pattern` of every row pair of ``P`` and ``N`` (F, S) -> (F, n)."""
    h, dh = P, N
    hm, dm = np.abs(h), np.abs(dh)
    F = P.shape[0]
    rows = np.arange(F)[:, None]
    out = []
    for l in range(net.n_layers - 1):
        W, v = net.weights[l], net.biases[l]
        aW = np.abs(W)
        u, du = h @ W.T + v, dh @ W.T
        um, dum = hm @ aW.T + np.abs(v), dm @ aW.T
        sizes = net.pool_sizes[l]
        if sizes:
            starts, gid = _groups(sizes)
            umax = np.maximum.reduceat(u, starts, axis=1)[:, gid]
            tied = u >= umax - rtol * np.maximum.reduceat(um, starts, axis=1)[:, gid]
            best = np.maximum.reduceat(np.where(tied, du, -np.inf), starts, axis=1)[:, gid]
            cand = tied & (du >= best - rtol * np.maximum.reduceat(dum, starts, axis=1)[:, gid])
            # the first candidate of every group
            w = u.shape[1]
            win = np.minimum.reduceat(np.where(cand, np.arange(w), w), starts, axis=1)
            q = np.full(u.shape, -1, dtype=np.int8)
            q[rows, win] = 1
            h, dh, hm, dm = u[rows, win], du[rows, win], um[rows, win], dum[rows, win]
        else:
            zero = np.abs(u) <= rtol * um
            pos = np.where(zero, du >= -rtol * dum, u >= 0)
            q = np.where(pos, 1, -1).astype(np.int8)
            f = np.where(pos, 1.0, net.slopes[l])
            h, dh = f * u, f * du
            fa = np.abs(f)
            hm, dm = fa * um, fa * dum
        out.append(q)
    return np.concatenate(out, axis=1) if out else np.zeros((F, 0), dtype=np.int8)


def _groups(sizes: tuple[int, ...]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Start of every group (n_groups,) and the group of every unit (width,)."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
    return starts, np.repeat(np.arange(len(sizes)), sizes)


def _rows(net: DGN, q: NDArray[np.int8]) -> tuple[Arr, Arr, Arr, Arr, Arr]:
    """``(C, d, mag, A, b)``: every unit's constraint ``C_k z <= d_k`` (rows of
    :func:`~dgn_core.regions.region_inequalities`), shape (n, S), (n,); ``mag`` (n,) the size
    of the maps each row is formed from (for the zero-row test); the region's map."""
    pre, A, b = layer_maps(net, q.tolist())
    Cs, ds, ms = [], [], []
    off = 0
    for l, (M, c) in enumerate(pre):
        w = M.shape[0]
        ql = q[off:off + w]
        size = np.abs(M).max(axis=1) if M.shape[1] else np.zeros(w)
        if net.pool_sizes[l]:
            win = np.repeat(np.asarray(winners(ql, net.pool_sizes[l]), dtype=np.intp),
                            np.asarray(net.pool_sizes[l]))
            # h_win - h_i >= 0  <=>  (M_i - M_win) z <= c_win - c_i
            Cs.append(M - M[win])
            ds.append(c[win] - c)
            ms.append(size + size[win])
        else:
            qf = ql.astype(np.float64)
            Cs.append(-qf[:, None] * M)
            ds.append(qf * c)
            ms.append(size)
        off += w
    return (np.concatenate(Cs), np.concatenate(ds), np.concatenate(ms),
            np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64))


# --------------------------------------------------------------------------- one region
class _Cell:
    """Float geometry of one region: the polyhedron, its facets in z coordinates."""

    __slots__ = ("A", "b", "lines", "C", "d", "units", "V", "R", "ip")

    def __init__(self, A: Arr, b: Arr, lines: Arr, C: Arr, d: Arr,
                 units: list[tuple[int, ...]], V: Arr, R: Arr, ip: Arr) -> None:
        self.A, self.b, self.lines, self.C, self.d = A, b, lines, C, d
        self.units, self.V, self.R, self.ip = units, V, R, ip


def _live_rows(C_all: Arr, d_all: Arr, mag: Arr) -> NDArray[np.intp] | None:
    """Indices of the non-constant rows (largest entry above RTOL times their magnitude), or
    None when a constant row is violated: 0 <= d is no constraint, d < 0 beyond rounding
    means the region is empty."""
    amax = np.abs(C_all).max(axis=1) if C_all.size else np.zeros(C_all.shape[0])
    live = amax > RTOL * mag
    dead = ~live
    if np.any(d_all[dead] < -RTOL * (1.0 + np.abs(d_all[dead]))):
        return None
    return np.flatnonzero(live)


def _cell(net: DGN, q: NDArray[np.int8]) -> _Cell | None:
    """The geometry of the region of pattern q, or None when it is empty or not
    full-dimensional (in float64): the LP-free construction of :mod:`fastpath._walk_cells`
    where it applies, else the general polyhedron tools."""
    rows = pattern_rows(net, q)
    if rows is None:
        return None
    C_all, d_all, mag, A, b = rows
    idx = _live_rows(C_all, d_all, mag)
    if idx is None:
        return None
    geo = fast_geometry(C_all[idx], d_all[idx], _TIGHT, FACET_TOL)
    if geo is not None:
        V, R, members, reps, ip = geo
        if np.array_equal(net.sign_patterns(ip)[0], q):
            S = net.latent_dim
            rr = idx[reps]
            Cf, df = C_all[rr], d_all[rr]
            s = np.abs(Cf).max(axis=1)
            return _Cell(A, b, np.zeros((0, S)), Cf / s[:, None], df / s,
                         [tuple(int(idx[k]) for k in mm) for mm in members], V, R, ip)
    return _cell_general(net, q)


def _cell_general(net: DGN, q: NDArray[np.int8]) -> _Cell | None:
    """:func:`_cell` by the general polyhedron tools (LP, qhull)."""
    S = net.latent_dim
    C_all, d_all, mag, A, b = _rows(net, q)
    idx = _live_rows(C_all, d_all, mag)
    if idx is None:
        return None
    C, d = C_all[idx], d_all[idx]
    try:
        g = polyhedron_geometry(C, d)
    except GeometryError:
        return None
    if g.empty:
        return None
    basis = g.basis
    # facets: match every live unit's row (in reduced coordinates, unit norm) to the
    # polyhedron's non-redundant unit rows
    Cr = C @ basis
    nr = np.linalg.norm(Cr, axis=1)
    ok = nr > 0
    Cu = np.zeros_like(Cr)
    du = np.zeros(d.size)
    Cu[ok] = Cr[ok] / nr[ok, None]
    du[ok] = d[ok] / nr[ok]
    scale = 1.0 + (np.abs(g.vertices).max() if g.vertices.size else 0.0)
    fac_rows, fac_d, units = [], [], []
    for j in _true_facets(g, scale):
        hit = ok & (np.abs(Cu - g.C[j]).max(axis=1) <= FACET_TOL) \
            & (np.abs(du - g.d[j]) <= FACET_TOL * scale)
        members = idx[hit]
        if members.size == 0:  # pragma: no cover - the tools only return rows they were given
            raise RuntimeError("internal error: a facet of the region matches no unit")
        key = tuple(int(k) for k in np.sort(members))
        if key in units:  # two of the tools' rows on one hyperplane
            continue
        rep = key[0]  # the representative: the smallest unit, as in the exact path
        row, rhs = C_all[rep], d_all[rep]
        s = np.abs(row).max()
        fac_rows.append(row / s)
        fac_d.append(rhs / s)
        units.append(key)
    order = sorted(range(len(units)), key=lambda i: units[i])
    Cf = np.array([fac_rows[i] for i in order]).reshape(-1, S)
    df = np.array([fac_d[i] for i in order])
    units = [units[i] for i in order]
    V = g.vertices @ basis.T if g.dim else np.zeros((1, S))
    R = g.rays @ basis.T if g.dim else np.zeros((0, S))
    if R.size:
        R = R / np.abs(R).max(axis=1, keepdims=True)
    ip = _interior_point(net, q, g, V, R)
    if ip is None:
        return None
    return _Cell(A, b, g.lines, Cf, df, units, V, R, ip)


def _true_facets(g: PolyhedronGeometry, scale: float) -> list[int]:
    """Rows of ``g.C`` that are facets: the vertices and rays tight on the row span a face
    of dimension ``g.dim - 1`` (the tools may keep rows they could not prove redundant)."""
    s = g.dim
    out = []
    for j in range(g.C.shape[0]):
        c, dj = g.C[j], g.d[j]
        Vt = g.vertices[np.abs(g.vertices @ c - dj) <= _TIGHT * scale]
        if len(Vt) == 0:
            continue  # a facet of a pointed polyhedron has a vertex
        Rt = g.rays[np.abs(g.rays @ c) <= _TIGHT] if len(g.rays) else np.zeros((0, s))
        span = np.vstack([Vt[1:] - Vt[0], Rt])
        rank = 0 if span.size == 0 else int(np.linalg.matrix_rank(
            span / np.maximum(np.abs(span).max(axis=1, keepdims=True), 1e-300), tol=_TIGHT))
        if rank == s - 1:
            out.append(j)
    return out


def _interior_point(net: DGN, q: NDArray[np.int8], g: PolyhedronGeometry, V: Arr, R: Arr
                    ) -> Arr | None:
    """A point inside the region whose forward pattern is q (the polyhedron tools' interior
    point, else the centroid of the vertices plus the rays), or None."""
    cands = [np.asarray(g.interior_point, dtype=np.float64)]
    if len(V):
        spread = float(np.abs(V - V.mean(axis=0)).max())
        cands.append(V.mean(axis=0) + (1.0 + spread) * R.sum(axis=0) / max(len(R), 1))
    zero = np.zeros(net.latent_dim)
    for z in cands:
        if not np.all(np.isfinite(z)):
            continue
        # the forward pass; or, for units that tie within rounding on the whole region
        # (their row counted as zero), the same pass with ties within RTOL to the first index
        if np.array_equal(net.sign_patterns(z)[0], q) \
                or np.array_equal(one_sided_pattern(net, z, zero), q):
            return z
    return None


def _facet_point(cell: _Cell, j: int) -> Arr:
    """A point in the relative interior of facet j: the centroid of its vertices plus its
    rays (rays on the facet keep the point off its lower-dimensional faces)."""
    c, dj = cell.C[j], cell.d[j]
    V, R = cell.V, cell.R
    scale = 1.0 + (np.abs(V).max() if V.size else 0.0)
    on = np.abs(V @ c - dj) <= 1e-9 * scale
    z = V[on].mean(axis=0) if on.any() else V.mean(axis=0)
    ron = np.abs(R @ c) <= 1e-9 if R.size else np.zeros(0, dtype=bool)
    if ron.any():
        z = z + R[ron].sum(axis=0) / ron.sum()
    return z


def _start_pattern(net: DGN, z0: Arr) -> tuple[NDArray[np.int8], _Cell]:
    """The region containing z0, or the region on one side of it when z0 lies on a
    boundary (one-sided patterns along fixed directions)."""
    S = net.latent_dim
    q = net.sign_patterns(z0)[0]
    cell = _cell(net, q)
    if cell is not None:
        return q, cell
    rng = np.random.default_rng(0)
    dirs = list(np.eye(S)) + list(-np.eye(S)) + list(rng.standard_normal((16, S)))
    for u in dirs:
        qn = one_sided_pattern(net, z0, u)
        cell = _cell(net, qn)
        if cell is not None:
            return qn, cell
    raise RuntimeError("fastpath.partition: could not move the start point off the region "
                       "boundaries (float degeneracy); try another start")


def _across_by_points(net: DGN, cell: _Cell, j: int, p: Arr, q: NDArray[np.int8]
                      ) -> NDArray[np.int8] | None:
    """Fallback: the forward pattern at points stepped off the facet along its normal."""
    scale = 1.0 + (np.abs(cell.V).max() if cell.V.size else 0.0)
    steps = 10.0 ** -np.arange(12, 2, -1)
    Q = net.sign_patterns(p + (steps * scale)[:, None] * cell.C[j])
    for qn in Q:
        if not np.array_equal(qn, q):
            return qn
    return None


# --------------------------------------------------------------------------- walk
def walk_partition(net: DGN, max_regions: int, z0: Arr, progress: bool) -> Partition:
    """All regions of a net with max-pooling layers, breadth first from the region of z0
    (see :func:`fastpath.partition` for the fields and :mod:`fastpath._walk_regions` for the
    method).

    The walk goes level by level: the facets of all regions of a level are crossed in one
    batched pass, and the regions first seen across them get their geometry in one batch
    (:func:`fastpath._walk_batch.batch_cells`); region numbers are those of a region-by-region
    breadth-first walk (the same order of regions and facets)."""
    line = ProgressLine(progress, "partition")
    if net.latent_dim == 1:
        swept = _line_partition(net, max_regions, z0)
        if swept is not None:
            if (el := line.final()) is not None:
                line.say(f"{len(swept)} regions in {el:.2f} s (S = 1 sweep)")
            return swept
    # regions proposed by the forward patterns at sample points (z0's first): their geometry
    # in one batch, so that the rounds below (each a batch) are few; which regions and
    # neighbours result does not depend on them (see the docstring)
    props = _proposals(net, z0)[:max_regions]
    pcells = _cells(net, props)
    if props and pcells[0] is not None:
        q0, c0 = props[0], pcells[0]
    else:  # z0 on a boundary (or no proposals): the start rule of the one-region path
        q0, c0 = _start_pattern(net, z0)
    patterns: list[NDArray[np.int8]] = [q0]
    cells: list[_Cell | None] = [c0]
    index: dict[bytes, int] = {q0.tobytes(): 0}
    dead: dict[bytes, None] = {}
    nbrs: list[list[int]] = [[]]
    level = [0]
    done, n_missing = 0, 0
    S = net.latent_dim
    for qp, cp in zip(props, pcells):
        if qp.tobytes() in index:
            continue
        if cp is None:
            dead[qp.tobytes()] = None
            continue
        index[qp.tobytes()] = len(patterns)
        level.append(len(patterns))
        patterns.append(qp)
        cells.append(cp)
        nbrs.append([])
    while level:
        pts = [_facet_points(_live(cells[i])) for i in level]
        nf = [len(p) for p in pts]
        P = np.concatenate(pts) if pts else np.zeros((0, S))
        N = np.concatenate([_live(cells[i]).C for i in level]).reshape(-1, S)
        across_all = one_sided_patterns(net, P, N)
        # the patterns not seen before, in walk order: their geometry in one batch
        fresh: dict[bytes, NDArray[np.int8]] = {}
        for i, lo, hi in zip(level, np.cumsum([0] + nf[:-1]), np.cumsum(nf)):
            for qn in across_all[lo:hi]:
                key = qn.tobytes()
                if key not in index and key not in dead and key not in fresh \
                        and not np.array_equal(qn, patterns[i]):
                    fresh[key] = qn
        # past max_regions - len(patterns) + 1 new regions the walk stops: no batch for more
        # (a fresh pattern that proves empty is then looked at one by one below)
        batch = list(fresh.items())[:max(0, max_regions - len(patterns)) + 1]
        found = dict(zip([k for k, _ in batch], _cells(net, [q for _, q in batch])))
        nxt: list[int] = []
        for i, lo in zip(level, np.cumsum([0] + nf[:-1])):
            cell = _live(cells[i])
            q = patterns[i]
            out: list[int] = []
            for j in range(cell.C.shape[0]):
                p, qn = P[lo + j], across_all[lo + j]
                k = index.get(qn.tobytes())
                if k is None and qn.tobytes() in dead or k == i:
                    # the one-sided pattern is no region (a float degeneracy): step off instead
                    alt = _across_by_points(net, cell, j, p, q)
                    if alt is not None:
                        qn = alt
                        k = index.get(qn.tobytes())
                key = qn.tobytes()
                if k is None and not np.array_equal(qn, q) and key not in dead:
                    cn = found.pop(key) if key in found else _cell(net, qn)
                    if cn is None:
                        dead[key] = None
                    else:
                        if len(patterns) >= max_regions:
                            raise RegionLimitError(
                                f"the partition has more than max_regions={max_regions} "
                                f"regions: found {len(patterns)} so far ({done} processed, "
                                f"{len(patterns) - done} queued); raise max_regions (memory "
                                "grows with it)")
                        k = len(patterns)
                        index[key] = k
                        patterns.append(qn)
                        cells.append(cn)
                        nbrs.append([])
                        nxt.append(k)
                if k is None or k == i:
                    n_missing += 1
                    k = -1
                out.append(k)
            nbrs[i] = out
            done += 1
        level = nxt
        if (el := line.due()) is not None:
            line.say(f"{len(patterns)} regions found, {done} done, {len(level)} queued, "
                     f"{done / el:.0f} regions/s")
    # the numbering of the region-by-region breadth-first walk from the start region;
    # proposed regions it never reaches (float slivers of degenerate nets) are left out
    order, pos = [0], {0: 0}
    for i in order:
        for j in nbrs[i]:
            if j >= 0 and j not in pos:
                pos[j] = len(order)
                order.append(j)
    n_missing = sum(1 for i in order for j in nbrs[i] if j < 0)
    if (el := line.final()) is not None:
        line.say(f"{len(order)} regions in {el:.2f} s")
    if n_missing:
        warnings.warn(
            f"fastpath.partition: no neighbour found across {n_missing} facet(s) (float "
            "degeneracy); their neighbors entry is -1. verified_dgn.partition is exact.",
            RuntimeWarning, stacklevel=3)
    regions = [_region(patterns[i], _live(cells[i]), [pos[j] if j >= 0 else -1
                                                      for j in nbrs[i]]) for i in order]
    return Partition(net, regions, exact=False)


#: sample points of the proposals: uniform in a box, and far out along random directions
_N_BOX = {2: 1500, 3: 4000, 4: 8000}
_N_FAR = {2: 200, 3: 800, 4: 2000}


def _proposals(net: DGN, z0: Arr) -> list[NDArray[np.int8]]:
    """Distinct forward patterns at fixed pseudo-random points (seed 0): in the box of
    half-width 2 L (L the largest distance from the origin of a first-layer hyperplane,
    at least 1) and on the sphere of radius 100 L; the start region's pattern first."""
    S = net.latent_dim
    if S not in _N_BOX:
        return []
    W, v = net.weights[0], net.biases[0]
    nw = np.linalg.norm(W, axis=1)
    L = max(1.0, float(np.max(np.abs(v[nw > 0]) / nw[nw > 0])) if np.any(nw > 0) else 1.0)
    rng = np.random.default_rng(0)
    far = rng.standard_normal((_N_FAR[S], S))
    far *= 100.0 * L / np.linalg.norm(far, axis=1, keepdims=True)
    Z = np.concatenate([z0[None], 2.0 * L * rng.uniform(-1.0, 1.0, (_N_BOX[S], S)), far])
    Q = net.sign_patterns(Z).astype(np.int8)
    return list(Q[first_unique_rows(np.packbits(Q > 0, axis=1))])


def _line_partition(net: DGN, max_regions: int, z0: Arr) -> Partition | None:
    """The partition at S = 1 from the proposed patterns of :mod:`fastpath._walk_line`,
    or None when a check fails (the walk then runs; see that module)."""
    Q = line_patterns(net)
    if len(Q) > max_regions:
        return None  # the walk raises the error, with its counts
    cells = _cells(net, list(Q))
    index = {q.tobytes(): k for k, q in enumerate(Q)}
    if len(index) != len(Q) or any(c is None for c in cells):
        return None
    live = [_live(c) for c in cells]
    pts = np.concatenate([_facet_points(c) for c in live]).reshape(-1, 1)
    across = one_sided_patterns(net, pts, np.concatenate([c.C for c in live]).reshape(-1, 1))
    nbrs: list[list[int]] = []
    row = 0
    for k, c in enumerate(live):
        out = []
        for qn in across[row:row + c.C.shape[0]]:
            j = index.get(qn.tobytes())
            if j is None or j == k:
                return None
            out.append(j)
        row += c.C.shape[0]
        nbrs.append(out)
    q0 = net.sign_patterns(z0[None])[0]
    start = index.get(q0.astype(np.int8).tobytes())
    if start is None:  # z0 on a boundary: the walk's own start rule
        return None
    # the numbering of the breadth-first walk from the start region
    order, pos = [start], {start: 0}
    for i in order:
        for j in nbrs[i]:
            if j not in pos:
                pos[j] = len(order)
                order.append(j)
    if len(order) != len(Q):
        return None
    return Partition(net, [_region(Q[i], live[i], [pos[j] for j in nbrs[i]]) for i in order],
                     exact=False)


def _live(c: _Cell | None) -> _Cell:
    assert c is not None
    return c


def _cells(net: DGN, qs: list[NDArray[np.int8]]) -> list[_Cell | None]:
    """:func:`_cell` of many patterns: the batch where it applies, else one by one."""
    if not qs:
        return []
    res = batch_cells(net, np.array(qs, dtype=np.int8), RTOL, _TIGHT, FACET_TOL)
    out: list[_Cell | None] = []
    for q, r in zip(qs, res):
        if isinstance(r, tuple):
            A, b, Cf, df, units, V, R, ip = r
            out.append(_Cell(A, b, np.zeros((0, net.latent_dim)), Cf, df, units, V, R, ip))
        else:  # FALLBACK, or None (a constant row violated): the one-region path decides
            out.append(_cell(net, q))
    return out


def _facet_points(cell: _Cell) -> Arr:
    """:func:`_facet_point` of every facet, shape (F, S)."""
    C, d, V, R = cell.C, cell.d, cell.V, cell.R
    scale = 1.0 + (np.abs(V).max() if V.size else 0.0)
    on = np.abs(V @ C.T - d) <= 1e-9 * scale                      # (nv, F)
    cnt = on.sum(axis=0)
    Z = np.where((cnt > 0)[:, None], (on.T @ V) / np.maximum(cnt, 1)[:, None],
                 V.mean(axis=0))
    if R.size:
        ron = np.abs(R @ C.T) <= 1e-9
        rc = ron.sum(axis=0)
        Z = Z + (ron.T @ R) / np.maximum(rc, 1)[:, None]
    return Z


def _ro(a: NDArray[Any]) -> NDArray[Any]:
    a = np.ascontiguousarray(a, dtype=np.float64)
    a.setflags(write=False)
    return a


def _region(q: NDArray[np.int8], c: _Cell, nbrs: list[int]) -> Region:
    return Region(signs=tuple(int(s) for s in q), A=_ro(c.A), b=_ro(c.b), C=_ro(c.C),
                  d=_ro(c.d), vertices=_ro(c.V), rays=_ro(c.R), lines=_ro(c.lines),
                  facet_units=tuple(c.units), neighbors=tuple(nbrs), interior_point=_ro(c.ip))
