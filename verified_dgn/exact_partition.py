"""The exact partition of a DGN's latent space into its linear regions (paper Sec. 3.2).

:func:`partition` walks the regions breadth-first (paper Fig. 1): it finds the facets of a
region exactly, crosses every facet to the region on the other side, and stops when no new
region appears. Every quantity is exact:

* Network parameters are float64, i.e. dyadic rationals. Each layer is scaled by a power of
  two to Python integers once per net, so the pre-activation maps of a region,
  ``h^l(z) = M^l z + c^l``, are integer matrices ``N^l = [c^l, M^l]`` times a known positive
  scale. A region's constraints are the rows ``q_k N_k`` in cddlib's homogenised form
  (``q_k (c_k + M_k z) >= 0``); in a max-pooling layer, ``N_j - N_i`` for every unit i of a
  group whose winner is j (``h_j(z) - h_i(z) >= 0``). No Fraction arithmetic in the inner
  loop (:mod:`verified_dgn._int_net`).
* Facets: a float64 pass (cddlib's floating-point double description on all rows) proposes
  candidate facet rows. cddlib's GMP backend computes the exact V-representation of the
  candidates; every other row is then checked exactly against those vertices, rays and lines
  (integer dot products). A violated row is added and the V-representation recomputed, so
  the result is exact whatever the float pass proposed. Facets and the units on each facet
  come from the exact slacks (:mod:`verified_dgn.geometry`).
* Crossing facet j: p = a point in the relative interior of the facet (a positive
  combination of its vertices and rays). Along ``p + s n`` (n the outward normal) every
  pre-activation is exactly affine for small ``s > 0``; its sign there is the sign of its
  value at p, or, where that is zero, the sign of its exact directional derivative along n
  in the neighbouring region (computed layer by layer with the neighbour's activation
  pattern); a max group tied at p goes to the tied unit with the largest derivative (the
  first index on equal derivatives). This is the exact forward pass at the points
  ``p + s n``, ``0 < s < s_0``, which all lie in the interior of the neighbour; no step
  size is guessed. Every region's pattern is then confirmed by an exact forward pass at
  its own interior point.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.model import DGN
from dgn_core.progress import ProgressLine
from dgn_core.regions import Partition, Region, RegionLimitError, normalize_rows
from dgn_core.validation import check_max_regions, check_net

from ._int_net import IntVec, _IntNet
from .geometry import (
    _cdd_generators,
    _centroid_hom,
    _normalized_direction,
    _rank,
    to_fraction_array,
)

__all__ = ["partition"]


# --------------------------------------------------------------------------- one region
class _RegionGeometry:
    """Exact facets and V-representation of one region (integer homogenised form)."""

    __slots__ = ("facets", "lines", "points", "rays", "row_tight", "slack", "units")

    def __init__(self, points, rays, lines, slack, facets, units, row_tight):
        self.points = points  # list of [t, x]
        self.rays = rays  # list of [0, r]
        self.lines = lines  # list of [0, l]
        self.slack = slack  # object ndarray (n_units, n_points + n_rays)
        self.facets = facets  # list of frozenset of generator indices (tight set)
        self.units = units  # list of tuple of unit indices, one per facet
        self.row_tight = row_tight  # per unit: the generators on its hyperplane (frozenset)


def _float_candidates(Hf: NDArray[np.float64], nonzero: NDArray[np.bool_]) -> list[int]:
    """Rows that the floating-point double description finds on some vertex or ray."""
    import cdd

    scale = np.max(np.abs(Hf[:, 1:]), axis=1)
    # rows that are zero or not finite in float64 are left to the exact pass
    idx = np.flatnonzero(nonzero & (scale > 0) & np.all(np.isfinite(Hf), axis=1))
    if idx.size == 0:
        return []
    rows = Hf[idx] / scale[idx, None]
    try:
        mat = cdd.matrix_from_array(rows.tolist(), rep_type=cdd.RepType.INEQUALITY)
        poly = cdd.polyhedron_from_matrix(mat)
        inc = cdd.copy_input_incidence(poly)
    except (RuntimeError, ValueError, OverflowError):  # float cdd failed: exact pass repairs it
        return []
    # cdd appends an entry for its own homogenising row t >= 0
    return [int(idx[i]) for i, s in enumerate(inc[: idx.size]) if s]


def _region_geometry(H: NDArray[Any], Hf: NDArray[np.float64], S: int) -> _RegionGeometry:
    """Facets and generators of ``{x : H[:, 0] + H[:, 1:] x >= 0}``, exactly.

    ``H`` (object ints, shape (n_units, S + 1)) are all the region's rows; zero rows are
    constant constraints, already known to hold.
    """
    n = H.shape[0]
    nonzero = np.array([any(H[k, 1:]) for k in range(n)], dtype=bool)
    cand = set(_float_candidates(Hf, nonzero))
    Hf_norm = None
    while True:
        rows = sorted(cand)
        if rows:
            points, rays, lines = _cdd_generators([list(H[k]) for k in rows])
            if not points:
                raise RuntimeError("internal error: a region of the walk is empty")
        else:
            points = [[1] + [0] * S]
            rays = []
            lines = [[0] + [1 if i == k else 0 for i in range(S)] for k in range(S)]
        gens = points + rays
        G = np.array(gens, dtype=object).T  # (S+1, g)
        slack = H @ G
        bad_gen = [g for g in range(len(gens)) if any(x < 0 for x in slack[:, g].tolist())]
        if lines:
            Lm = np.array(lines, dtype=object).T
            lslack = H @ Lm
            bad_line = [i for i in range(len(lines)) if any(x != 0 for x in lslack[:, i].tolist())]
        else:
            bad_line = []
        if not bad_gen and not bad_line:
            break
        # add, for every violated generator, its most violated row (float-normalised)
        if Hf_norm is None:
            Hf_norm = np.linalg.norm(Hf[:, 1:], axis=1)
            Hf_norm[Hf_norm == 0] = 1.0
        added = False
        for g in bad_gen:
            col = slack[:, g].tolist()
            viol = [(float(Fraction(col[k], gens[g][0] or 1)) / Hf_norm[k], k)
                    for k in range(n) if col[k] < 0 and k not in cand]
            if viol:
                cand.add(min(viol)[1])
                added = True
        for i in bad_line:
            col = lslack[:, i].tolist()
            new = [k for k in range(n) if col[k] != 0 and k not in cand]
            if new:
                cand.add(new[0])
                added = True
        if not added:  # pragma: no cover - a violated row is never already a candidate
            raise RuntimeError("internal error: exact facet certification did not progress")

    # facets from the exact slacks
    npts = len(points)
    groups: dict[frozenset[int], list[int]] = {}
    order: list[frozenset[int]] = []
    row_tight: list[frozenset[int]] = []
    for k, col in enumerate(slack.tolist()):
        tight = frozenset(g for g, x in enumerate(col) if x == 0)
        row_tight.append(tight)
        if not nonzero[k]:
            continue
        if not tight or min(tight) >= npts:
            continue
        if tight in groups:
            groups[tight].append(k)
        elif _rank([gens[g] for g in tight] + lines) == S:
            groups[tight] = [k]
            order.append(tight)
    if _rank(gens + lines) != S + 1:
        raise RuntimeError("internal error: a region of the walk is not full-dimensional")
    units = [tuple(groups[t]) for t in order]
    # canonical facet order: by the smallest unit on the facet
    perm = sorted(range(len(order)), key=lambda j: units[j][0])
    return _RegionGeometry(points, rays, lines, slack, [order[j] for j in perm],
                           [units[j] for j in perm], row_tight)


def _obj(rows: Sequence[Sequence[Any]], ncols: int) -> NDArray[Any]:
    out = np.empty((len(rows), ncols), dtype=object)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            out[i, j] = t
    return out


def _frac_vec(vals: Sequence[Any]) -> NDArray[Any]:
    out = np.empty(len(vals), dtype=object)
    for i, t in enumerate(vals):
        out[i] = Fraction(t)
    return out


# --------------------------------------------------------------------------- the walk
def _validate(net: Any, max_regions: Any, start: Any) -> tuple[int, NDArray[Any]]:
    net = check_net(net)
    max_regions = check_max_regions(max_regions)
    S = net.latent_dim
    if start is None:
        z0 = _frac_vec([0] * S)
    else:
        z0 = to_fraction_array(start, "start")
        if z0.ndim != 1 or z0.shape[0] != S:
            raise ValueError(f"start must have shape ({S},) for latent dimension {S}, "
                             f"got shape {np.shape(start)}")
    return max_regions, z0


def _hom(z: Sequence[Fraction]) -> IntVec:
    """Integers ``[t, x]`` with ``x / t == z``."""
    t = math.lcm(*(Fraction(v).denominator for v in z)) if len(z) else 1
    return [t] + [int(Fraction(v) * t) for v in z]


def _directions(S: int):
    """Nudge directions for a start point on a hyperplane: a fixed one, then random ones."""
    yield [1] + [0] * (S - 1) if S == 1 else [1000003 + 7919 * i * i for i in range(S)]
    rng = np.random.default_rng(12345)
    for _ in range(200):
        d = rng.integers(-10**6, 10**6, size=S).tolist()
        if any(d):
            yield d


def partition(net: DGN, *, max_regions: int = 100_000, start: ArrayLike | None = None,
              progress: bool = False) -> Partition:
    """The exact partition of the latent space of ``net`` into its linear regions.

    Parameters
    ----------
    net : DGN
    max_regions : int, default 100_000
        Stop with :class:`~verified_dgn.RegionLimitError` when the walk would find more
        regions than this.
    start : array_like, shape (S,), optional
        The walk starts at the region of this point (default: the origin). A point on a
        region boundary is nudged exactly into the interior of a region touching it.
    progress : bool, default False
        Print a progress line (regions found, queue length, rate) to stderr about every second.

    Returns
    -------
    Partition
        ``Partition(net, regions, exact=True)``, regions in breadth-first discovery order
        from the start region; facets of a region are ordered by the smallest unit on them
        and their neighbours are visited in that order. Every region field is exact:
        ``A`` (D, S), ``b`` (D,), ``C`` (m, S), ``d`` (m,), ``vertices`` (k, S), ``rays``
        (r, S), ``lines`` (l, S), ``interior_point`` (S,) are ``Fraction`` object arrays;
        ``signs`` is the sign pattern (+1 where the pre-activation is >= 0; in a max-pooling
        layer +1 at the first maximum of every group), obtained by an exact forward pass
        at ``interior_point``; ``facet_units[j]`` the sorted hidden units whose constraint
        is a positive multiple of facet j; ``neighbors[j]`` the region across facet j.

    Raises
    ------
    TypeError, ValueError
        Invalid ``net``, ``max_regions`` or ``start``.
    RegionLimitError
        More than ``max_regions`` regions.

    Notes
    -----
    Only full-dimensional regions are kept. Facet rows are normalised so that
    ``max_i |C_ji| = 1``, rays so that ``max_i |r_i| = 1``. Regions are never clipped to a
    box: unbounded regions carry rays (and lines, in degenerate nets).
    """
    max_regions, z0 = _validate(net, max_regions, start)
    inet = _IntNet(net)
    S = inet.S
    if inet.n_units == 0:
        _, No = inet.region_maps(())
        return Partition(net, [_whole_space_region(inet, (), No)], exact=True)

    q0 = _start_pattern(inet, z0)
    patterns: list[tuple[int, ...]] = [q0]
    index = {q0: 0}
    queue: deque[int] = deque([0])
    regions: list[Region | None] = [None]
    line = ProgressLine(progress, "partition")
    done = 0
    while queue:
        i = queue.popleft()
        q = patterns[i]
        Nh, No = inet.region_maps(q)
        H = inet.constraint_rows(q, Nh)
        geo = _region_geometry(H, inet.float_rows(q), S)
        neighbors = []
        for tight, units in zip(geo.facets, geo.units):
            # p = sum of the facet's generators (relative interior point). Slacks are >= 0,
            # so a unit vanishes at p iff it vanishes at every generator of the facet.
            zero = [k for k, t in enumerate(geo.row_tight) if tight <= t]
            normal = [-x for x in H[units[0], 1:].tolist()]  # C_j, outward
            qn = inet.one_sided_signs(q, zero, normal)
            if qn == q:  # pragma: no cover - the facet's own units always change sign
                raise RuntimeError("internal error: crossing a facet did not change the pattern")
            j = index.get(qn)
            if j is None:
                if len(patterns) >= max_regions:
                    raise RegionLimitError(
                        f"the partition has more than max_regions={max_regions} regions: "
                        f"found {len(patterns)} so far ({done} processed, {len(queue)} "
                        f"queued); raise max_regions (memory grows with it)")
                j = len(patterns)
                index[qn] = j
                patterns.append(qn)
                regions.append(None)
                queue.append(j)
            neighbors.append(j)
        regions[i] = _make_region(inet, q, No, H, geo, tuple(neighbors))
        done += 1
        if (el := line.due()) is not None:
            line.say(f"{len(patterns)} regions found, {done} done, {len(queue)} queued, "
                     f"{done / el:.0f} regions/s")
    if (el := line.final()) is not None:
        line.say(f"{len(patterns)} regions in {el:.2f} s "
                 f"({len(patterns) / max(el, 1e-9):.0f} regions/s)")
    return Partition(net, regions, exact=True)  # type: ignore[arg-type]


def _start_pattern(inet: _IntNet, z0: NDArray[Any]) -> tuple[int, ...]:
    x0 = _hom(list(z0))
    q, zeros = inet.forward_signs(x0)
    if not zeros:
        return q
    # z0 lies on a hyperplane: take the region on one side along a nudge direction, and
    # accept it when it is full-dimensional and its interior point gives back its pattern
    for u in _directions(inet.S):
        qn = inet.one_sided_signs(q, zeros, u)
        H = inet.constraint_rows(qn)
        try:
            geo = _region_geometry(H, inet.float_rows(qn), inet.S)
        except RuntimeError:
            continue
        x = _centroid_hom(geo.points, geo.rays)
        if inet.forward_signs(x)[0] == qn:
            return qn
    raise RuntimeError("could not move the start point off the region boundaries")  # pragma: no cover


def _whole_space_region(inet: _IntNet, q: tuple[int, ...], No: NDArray[Any]) -> Region:
    S = inet.S
    sig = inet.sigma[-1]
    A = _obj([[Fraction(x, sig) for x in row[1:]] for row in No.tolist()], S)
    b = _frac_vec([Fraction(row[0], sig) for row in No.tolist()])
    eye = _obj([[Fraction(int(i == k)) for i in range(S)] for k in range(S)], S)
    return Region(signs=q, A=A, b=b, C=np.zeros((0, S), dtype=object),
                  d=np.zeros(0, dtype=object), vertices=_obj([[Fraction(0)] * S], S),
                  rays=np.zeros((0, S), dtype=object), lines=eye, facet_units=(),
                  neighbors=(), interior_point=_frac_vec([0] * S))


def _make_region(inet: _IntNet, q: tuple[int, ...], No: NDArray[Any], H: NDArray[Any],
                 geo: _RegionGeometry, neighbors: tuple[int, ...]) -> Region:
    S = inet.S
    x = _centroid_hom(geo.points, geo.rays)
    qi, _ = inet.forward_signs(x)
    if qi != q:  # the walk's pattern must be the forward-pass pattern at the interior point
        raise RuntimeError("internal error: a region's pattern differs from the forward "
                           "pass at its interior point")
    interior = _frac_vec([Fraction(v, x[0]) for v in x[1:]])
    sig = inet.sigma[-1]
    No_l = No.tolist()
    A = _obj([[Fraction(v, sig) for v in row[1:]] for row in No_l], S)
    b = _frac_vec([Fraction(row[0], sig) for row in No_l])
    if geo.units:
        Crows = [[Fraction(-v) for v in H[u[0], 1:].tolist()] for u in geo.units]
        dvals = _frac_vec([Fraction(H[u[0], 0]) for u in geo.units])
        C, d = normalize_rows(_obj(Crows, S), dvals)
    else:
        C, d = np.zeros((0, S), dtype=object), np.zeros(0, dtype=object)
    verts = _obj([[Fraction(v, g[0]) for v in g[1:]] for g in geo.points], S)
    rays = _obj([_normalized_direction(g) for g in geo.rays], S)
    lines = _obj([_normalized_direction(g, canonical_sign=True) for g in geo.lines], S)
    return Region(signs=q, A=A, b=b, C=C, d=d, vertices=verts, rays=rays, lines=lines,
                  facet_units=tuple(geo.units), neighbors=neighbors, interior_point=interior)
