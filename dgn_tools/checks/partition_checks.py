"""Checks of the partition results: Lemma 3, Corollary 1, the per-region affine maps, tiling
(docs/DESIGN.md §2.1 and §2.2).

Each check verifies an identity in exact rational arithmetic, with oracles that do not share
code with the walk in :mod:`verified_dgn.exact_partition`:

* an exact forward pass (:class:`ExactForward`, in :mod:`dgn_tools.checks._exact_forward`:
  exact rational weights, unit by unit; max-pooling groups: the first maximum);
* the region polyhedron straight from eq. 8, :func:`dgn_core.regions.region_inequalities`,
  with cdd's redundancy removal on *all* its rows (:func:`verified_dgn.geometry.exact_polyhedron`);
* :func:`dgn_core.regions.region_affine_map` (the product formula of A_w, b_w);
* sampled latent points, located by their exact sign pattern and by exact membership tests.

Every check takes ``net`` (None: a built-in suite of nets, including degenerate ones),
``quick``, ``seed`` and optionally ``partition`` (an exact partition of ``net`` already
computed, to avoid recomputing it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from dgn_core.model import DGN
from dgn_core.regions import Partition, normalize_rows, region_affine_map, region_inequalities

from . import CheckResult, register
from ._exact_forward import ExactForward

__all__ = [
    "ExactForward",
    "builtin_nets",
    "check_affine_maps",
    "check_corollary1",
    "check_lemma3",
    "check_tiling",
    "degenerate_net",
]


# --------------------------------------------------------------------------- nets
def degenerate_net(seed: int = 3, activation: str = "relu") -> DGN:
    """A [2, 8, 5, 2] net with coinciding and constant units in the first layer.

    Unit 1 duplicates unit 0; unit 2 is ``2 *`` unit 0 and unit 3 is ``-0.5 *`` unit 0
    (multiplications by powers of two are exact in float64, so all four share one
    hyperplane, with unit 3 oriented the other way); unit 4 is dead everywhere (zero weights,
    negative bias) and unit 5 is identically zero. In layer 2, unit 0 is dead everywhere.
    """
    base = DGN.random((2, 8, 5, 2), activation=activation, seed=seed)
    W1 = np.array(base.weights[0])
    v1 = np.array(base.biases[0])
    W1[1], v1[1] = W1[0], v1[0]
    W1[2], v1[2] = 2.0 * W1[0], 2.0 * v1[0]
    W1[3], v1[3] = -0.5 * W1[0], -0.5 * v1[0]
    W1[4], v1[4] = 0.0, -0.25
    W1[5], v1[5] = 0.0, 0.0
    W2 = np.array(base.weights[1])
    v2 = np.array(base.biases[1])
    W2[0], v2[0] = 0.0, -0.125
    return DGN([W1, W2, base.weights[2]], [v1, v2, base.biases[2]],
               **base.activation_kwargs())


def builtin_nets(quick: bool = True) -> list[tuple[str, DGN]]:
    """The nets a check runs on when it is given none: (name, net) pairs.

    Quick: small nets covering S = 1, 2, 3, the three activations (and a net with one per
    layer), a bias-free net, a hidden layer of width 1 (regions with lines), the
    degenerate net and a net with a max-pooling layer (groups of 1, 2, 3). Thorough adds wider and
    deeper nets, S = 4 and the benchmark net [2, 32, 32, 2].
    """
    nets = [
        ("relu [1,8,8,1]", DGN.random((1, 8, 8, 1), seed=1)),
        ("abs [2,5,5,2]", DGN.random((2, 5, 5, 2), activation="abs", seed=2)),
        ("leaky_relu [2,6,6,2]", DGN.random((2, 6, 6, 2), activation="leaky_relu", seed=3)),
        ("relu bias-free (he) [2,6,6,2]", DGN.random((2, 6, 6, 2), init="he", seed=4)),
        ("relu [3,5,5,2]", DGN.random((3, 5, 5, 2), seed=5)),
        ("relu width-1 layer [2,1,4,2]", DGN.random((2, 1, 4, 2), seed=6)),
        ("relu degenerate [2,8,5,2]", degenerate_net()),
        ("relu / abs / leaky_relu(0.2) per layer [2,5,4,4,2]",
         DGN.random((2, 5, 4, 4, 2), activation=["relu", "abs", "leaky_relu"], slope=0.2,
                    seed=12)),
        ("relu / max(1-3) / abs [2,5,6,3,2]",
         DGN.random((2, 5, 6, 3, 2), activation=["relu", "max", "abs"],
                    pool_sizes=[None, [1, 2, 3], None], seed=13)),
        ("relu / identity / abs [2,5,3,4,2]",
         DGN.random((2, 5, 3, 4, 2), activation=["relu", "identity", "abs"], seed=14)),
    ]
    if not quick:
        nets += [
            ("relu [2,16,16,2]", DGN.random((2, 16, 16, 2), seed=7)),
            ("abs [3,8,8,3]", DGN.random((3, 8, 8, 3), activation="abs", seed=8)),
            ("leaky_relu depth 4 [2,6,6,6,6,2]",
             DGN.random((2, 6, 6, 6, 6, 2), activation="leaky_relu", seed=9)),
            ("relu [4,5,5,2]", DGN.random((4, 5, 5, 2), seed=10)),
            ("abs bias-free (he) [3,6,6,2]", DGN.random((3, 6, 6, 2), activation="abs",
                                                        init="he", seed=11)),
            ("abs degenerate [2,8,5,2]", degenerate_net(activation="abs")),
            ("relu [2,32,32,2]", DGN.random((2, 32, 32, 2), seed=0)),
        ]
    return nets


def _cases(net: DGN | None, partition: Partition | None, quick: bool
           ) -> list[tuple[str, DGN, Partition]]:
    from verified_dgn.exact_partition import partition as exact_partition

    if partition is not None:
        if not isinstance(partition, Partition) or not partition.exact:
            raise TypeError("partition must be an exact verified_dgn Partition")
        if net is not None and not (net == partition.net):
            raise ValueError("partition was computed for a different net")
        return [(repr(partition.net), partition.net, partition)]
    if net is not None:
        if not isinstance(net, DGN):
            raise TypeError(f"net must be a verified_dgn.DGN, got {type(net).__name__}")
        return [(repr(net), net, exact_partition(net))]
    return [(name, n, exact_partition(n)) for name, n in builtin_nets(quick)]


# --------------------------------------------------------------------------- oracles
def _dot(a: Sequence[Any], b: Sequence[Any]) -> Any:
    return sum((x * y for x, y in zip(a, b)), Fraction(0))


def _generators(r: Any) -> tuple[list[list[Fraction]], list[list[Fraction]]]:
    return ([list(v) for v in r.vertices.tolist()], [list(v) for v in r.rays.tolist()])


def _random_interior_points(r: Any, rng: np.random.Generator, k: int) -> list[list[Fraction]]:
    """``k`` exact interior points: strictly positive combinations of all generators."""
    verts, rays = _generators(r)
    lines = [list(v) for v in r.lines.tolist()]
    S = r.latent_dim
    out = []
    for _ in range(k):
        w = [Fraction(int(x), 97) for x in rng.integers(1, 98, size=len(verts))]
        tot = sum(w)
        z = [sum((wi * v[i] for wi, v in zip(w, verts)), Fraction(0)) / tot for i in range(S)]
        for ray in rays:
            c = Fraction(int(rng.integers(1, 1000)), 100)
            z = [a + c * b for a, b in zip(z, ray)]
        for line in lines:
            c = Fraction(int(rng.integers(-1000, 1000)), 100)
            z = [a + c * b for a, b in zip(z, line)]
        out.append(z)
    return out


def _extent(P: Partition) -> float:
    """Largest vertex coordinate (at least 1): the scale of the bounded part."""
    m = 1.0
    for r in P:
        if len(r.vertices):
            m = max(m, float(np.max(np.abs(np.asarray(r.vertices, dtype=np.float64)))))
    return m


def _sample_points(P: Partition, n: int, rng: np.random.Generator) -> np.ndarray:
    """Latent points: prior-scale normals, extent-scale normals, uniform on a box, a grid."""
    S = P.net.latent_dim
    ext = _extent(P)
    k = max(n // 4, 1)
    parts = [rng.standard_normal((k, S)), rng.standard_normal((k, S)) * ext,
             rng.uniform(-1.5 * ext, 1.5 * ext, size=(k, S))]
    if S <= 2:
        g = max(int(round(k ** (1.0 / S))), 2)
        axes = [np.linspace(-1.2 * ext, 1.2 * ext, g)] * S
        parts.append(np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, S))
    else:
        parts.append(rng.standard_normal((k, S)) * 3.0)
    return np.concatenate(parts, axis=0)


def _result(name: str, statement: str, ok: bool, measured: str, n_fail: int,
            details: dict[str, Any]) -> CheckResult:
    return CheckResult(name=name, statement=statement, passed=ok, measured=measured,
                       residual=0.0 if ok else float(n_fail),
                       digits=math.inf if ok else 0.0, details=details)


# --------------------------------------------------------------------------- Lemma 3
@register("Lemma 3", "the map from regions to sign patterns is a bijection")
def check_lemma3(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                 partition: Partition | None = None, n_samples: int | None = None) -> CheckResult:
    """Lemma 3: regions and the sign patterns they realise are in bijection.

    Measured, exactly, for every net: (i) the regions' patterns are distinct (injective);
    (ii) at each region's interior point the oracle's forward pass gives the region's pattern
    and no non-constant unit vanishes there (the pattern is that of an open set: the region
    is full-dimensional); (iii) every sampled point that is on no hyperplane has a pattern
    that is a region of the partition (no realised pattern is missed: surjective).
    """
    rng = np.random.default_rng(seed)
    n_samples = n_samples or (400 if quick else 4000)
    cases = _cases(net, partition, quick)
    n_regions = n_samples_tot = n_boundary = 0
    failures: list[str] = []
    for name, nt, P in cases:
        fwd = ExactForward(nt)
        pats = [r.signs for r in P]
        if len(set(pats)) != len(pats):
            failures.append(f"{name}: two regions share a sign pattern")
        for i, r in enumerate(P):
            assert r.interior_point is not None  # exact regions always carry one
            pre, _, _, _ = fwd.numerators(list(r.interior_point))
            q_int, zero = fwd.signs(pre)
            if q_int != r.signs:
                failures.append(f"{name}: region {i}: pattern at the interior point differs")
                continue
            if not zero:
                continue
            C_all, _ = region_inequalities(nt, r.signs, exact=True)  # only when needed
            for k in zero:
                if any(x != 0 for x in C_all[k]):
                    failures.append(f"{name}: region {i}: interior point on the hyperplane "
                                    f"of unit {k}")
        index = {r.signs: i for i, r in enumerate(P)}
        Z = _sample_points(P, n_samples, rng)
        for z in Z:
            q, on_hyperplane = fwd.pattern([Fraction(float(t)) for t in z])
            if q in index:
                continue
            if on_hyperplane:  # a boundary point whose (+1 on zero) pattern is no open set
                n_boundary += 1
                continue
            failures.append(f"{name}: the pattern of sample {z.tolist()} is no region")
        n_regions += len(P)
        n_samples_tot += len(Z)
    measured = (f"{len(cases)} nets, {n_regions} regions: patterns distinct, forward pass at "
                f"every interior point = region pattern; {n_samples_tot} sampled points "
                f"have the pattern of a found region ({n_boundary} exactly on a region "
                f"boundary with a lower-dimensional pattern, skipped)")
    return _result("Lemma 3", "the map from regions to sign patterns is a bijection",
                   not failures, measured, len(failures),
                   {"failures": failures[:5]} if failures else {})


# --------------------------------------------------------------------------- Corollary 1
def _row_key(c: Sequence[Fraction], d: Fraction) -> tuple[Fraction, ...]:
    return tuple(c) + (d,)


@register("Corollary 1", "the H-representation from the sign pattern (eq. 8) is the region")
def check_corollary1(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                     partition: Partition | None = None,
                     max_regions_checked: int | None = None) -> CheckResult:
    """Corollary 1: {z : q_k h_k(z) >= 0 for all units} is exactly the region (for a
    max-pooling unit i of a group whose winner is j: ``h_j(z) - h_i(z) >= 0``).

    For every region (or ``max_regions_checked`` of them, chosen at random), cdd's exact
    redundancy removal on *all* rows of eq. 8 (:func:`region_inequalities`) must give the
    region's facets (as a set of normalised rows), vertices, rays and lineality space;
    ``facet_units[j]`` must be exactly the units whose row is a positive multiple of facet j;
    and random interior points of the region must have the region's sign pattern.
    """
    from verified_dgn.geometry import exact_polyhedron

    rng = np.random.default_rng(seed)
    cap = max_regions_checked if max_regions_checked is not None else (60 if quick else None)
    cases = _cases(net, partition, quick)
    n_checked = n_points = 0
    failures: list[str] = []
    for name, nt, P in cases:
        fwd = ExactForward(nt)
        idx = list(range(len(P)))
        if cap is not None and len(idx) > cap:
            idx = sorted(rng.choice(len(P), size=cap, replace=False).tolist())
        for i in idx:
            r = P[i]
            C_all, d_all = region_inequalities(nt, r.signs, exact=True)
            E = exact_polyhedron(C_all, d_all)
            where = f"{name}: region {i}"
            if E.dim != nt.latent_dim:
                failures.append(f"{where}: eq. 8 polyhedron has dimension {E.dim}")
                continue
            facets = {_row_key(c, dd) for c, dd in zip(E.C.tolist(), E.d.tolist())}
            mine = {_row_key(c, dd) for c, dd in zip(r.C.tolist(), r.d.tolist())}
            if facets != mine or len(mine) != r.n_facets:
                failures.append(f"{where}: facets differ from cdd on all rows of eq. 8")
            if {tuple(v) for v in E.vertices.tolist()} != {tuple(v) for v in r.vertices.tolist()} \
                    and len(E.lines) == 0:
                failures.append(f"{where}: vertices differ")
            if {tuple(v) for v in E.rays.tolist()} != {tuple(v) for v in r.rays.tolist()} \
                    and len(E.lines) == 0:
                failures.append(f"{where}: rays differ")
            if len(E.lines) != len(r.lines) or any(
                    any(_dot(c, l) != 0 for c in C_all.tolist()) for l in r.lines.tolist()):
                failures.append(f"{where}: lineality space differs")
            if len(E.lines):  # vertices / rays are then not unique: compare membership
                for v in r.vertices.tolist():
                    if not E.contains(v):
                        failures.append(f"{where}: a point is not in the eq. 8 polyhedron")
            # facet_units: units whose eq. 8 row is a positive multiple of the facet
            nz = [k for k in range(len(C_all)) if any(x != 0 for x in C_all[k])]
            Cn, dn = normalize_rows(C_all[nz], d_all[nz]) if nz else (C_all[:0], d_all[:0])
            keys = [_row_key(c, dd) for c, dd in zip(Cn.tolist(), dn.tolist())]
            for j in range(r.n_facets):
                fk = _row_key(list(r.C[j]), r.d[j])
                units = tuple(sorted(nz[t] for t, k in enumerate(keys) if k == fk))
                if units != tuple(r.facet_units[j]):
                    failures.append(f"{where}: facet_units[{j}] = {r.facet_units[j]}, "
                                    f"positive multiples: {units}")
            for z in _random_interior_points(r, rng, 2 if quick else 5):
                pre, _ = fwd(z)
                q, zero = fwd.signs(pre)
                n_points += 1
                if q != r.signs or any(k in nz for k in zero):
                    failures.append(f"{where}: an interior point has another pattern or lies "
                                    "on a unit's hyperplane")
            n_checked += 1
    measured = (f"{len(cases)} nets, {n_checked} regions: facets, vertices, rays, lines and "
                f"facet_units equal cdd's redundancy removal on all rows of eq. 8 (exact); "
                f"{n_points} random interior points have the region's pattern")
    return _result("Corollary 1", "the H-representation from the sign pattern (eq. 8) is the "
                   "region", not failures, measured, len(failures),
                   {"failures": failures[:5]} if failures else {})


# --------------------------------------------------------------------------- affine maps
@register("Affine maps", "on every region g(z) = A_w z + b_w exactly (eq. 2)")
def check_affine_maps(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                      partition: Partition | None = None,
                      points_per_region: int | None = None,
                      product_formula_regions: int | None = None) -> CheckResult:
    """The per-region affine maps equal the network, exactly in rationals.

    For every region, the oracle's forward pass equals ``A z + b`` at the interior point, at
    every vertex (g is continuous, so the map holds on the closed region) and at
    ``points_per_region`` random interior points; these points are checked to span R^S
    affinely, so they determine the affine map: ``(A, b)`` is *the* map of g on the region.
    ``A, b`` are also compared with :func:`region_affine_map` (the product formula) on
    ``product_formula_regions`` random regions (quick: 200, thorough: all).
    """
    from verified_dgn.geometry import _rank

    rng = np.random.default_rng(seed)
    k = points_per_region if points_per_region is not None else (2 if quick else 4)
    cap = product_formula_regions if product_formula_regions is not None else (
        200 if quick else None)
    cases = _cases(net, partition, quick)
    n_regions = n_points = n_product = 0
    failures: list[str] = []
    for name, nt, P in cases:
        fwd = ExactForward(nt)
        S = nt.latent_dim
        product = set(range(len(P)))
        if cap is not None and len(P) > cap:
            product = set(rng.choice(len(P), size=cap, replace=False).tolist())
        for i, r in enumerate(P):
            if i in product:
                n_product += 1
                A, b = region_affine_map(nt, r.signs, exact=True)
                if not (np.array_equal(A, r.A) and np.array_equal(b, r.b)):
                    failures.append(f"{name}: region {i}: A, b differ from the product formula")
            assert r.interior_point is not None  # exact regions always carry one
            pts = [list(r.interior_point)] + [list(v) for v in r.vertices.tolist()]
            # enough random points to span R^S: the interior point may be the only vertex
            # (a region without facets, e.g. a max net whose groups all have size 1)
            n_distinct = len({tuple(z) for z in pts})
            pts += _random_interior_points(r, rng, max(k, S + 1 - n_distinct))
            hom = []
            for z in pts:
                den = math.lcm(*(Fraction(t).denominator for t in z))
                hom.append([den] + [int(Fraction(t) * den) for t in z])
            if _rank(hom) != S + 1:
                failures.append(f"{name}: region {i}: evaluation points do not span R^S")
            for z in pts:
                _, g = fwd(z)
                Az = [_dot(row, z) + bb for row, bb in zip(r.A.tolist(), r.b.tolist())]
                n_points += 1
                if g != Az:
                    failures.append(f"{name}: region {i}: g(z) != A z + b at {z}")
            n_regions += 1
    measured = (f"{len(cases)} nets, {n_regions} regions, {n_points} points (interior points, "
                f"vertices, random interior points; affinely spanning in every region): "
                f"g(z) - (A_w z + b_w) = 0 exactly; A_w, b_w equal the product formula on "
                f"{n_product} regions")
    return _result("Affine maps", "on every region g(z) = A_w z + b_w exactly (eq. 2)",
                   not failures, measured, len(failures),
                   {"failures": failures[:5]} if failures else {})


# --------------------------------------------------------------------------- tiling
def _facet_generators(r: Any, j: int) -> tuple[frozenset, frozenset]:
    c, d = list(r.C[j]), r.d[j]
    verts = frozenset(tuple(v) for v in r.vertices.tolist() if _dot(c, v) == d)
    rays = frozenset(tuple(v) for v in r.rays.tolist() if _dot(c, v) == 0)
    return verts, rays


def _polygon_area(E: Any) -> Fraction:
    """Exact area of a bounded 2-D polytope, vertices ordered by walking facet incidence."""
    V = [tuple(v) for v in E.vertices.tolist()]
    inc = E.vertex_incidence
    order = [0]
    prev_f: int | None = None
    while True:
        cur = order[-1]
        f = next(f for f in inc[cur] if f != prev_f)
        nxt = next(i for i in range(len(V)) if i != cur and f in inc[i])
        if nxt == order[0]:
            break
        order.append(nxt)
        prev_f = f
        if len(order) > len(V):  # pragma: no cover - malformed incidence
            raise RuntimeError("polygon incidence does not form a cycle")
    area = Fraction(0)
    for a, b in zip(order, order[1:] + order[:1]):
        area += V[a][0] * V[b][1] - V[b][0] * V[a][1]
    return abs(area) / 2


def _box_measure_sum(P: Partition, half: Fraction) -> tuple[Fraction, Fraction]:
    """Sum over regions of the exact measure of region ∩ [-half, half]^S (S = 1, 2)."""
    from verified_dgn.geometry import exact_polyhedron

    S = P.net.latent_dim
    box_C = []
    for i in range(S):
        e = [0] * S
        e[i] = 1
        box_C += [e, [-x for x in e]]
    box_d = [half] * (2 * S)
    total = Fraction(0)
    for r in P:
        C = [list(c) for c in r.C.tolist()] + box_C
        d = list(r.d.tolist()) + box_d
        E = exact_polyhedron(C, d)
        if E.is_empty or E.dim < S:
            continue
        if S == 1:
            xs = [v[0] for v in E.vertices.tolist()]
            total += max(xs) - min(xs)
        else:
            total += _polygon_area(E)
    return total, (2 * half) ** S


def _unit_groups(net: DGN) -> list[tuple[int, ...]]:
    """Per hidden unit (sign-pattern order): the units of its max-pooling group, or the
    unit alone in an element-wise layer."""
    out: list[tuple[int, ...]] = []
    off = 0
    for w, pool in zip(net.hidden_widths, net.pool_sizes):
        for k in pool or (1,) * w:
            out.extend([tuple(range(off, off + k))] * k)
            off += k
    return out


@register("Tiling", "the regions tile the latent space R^S")
def check_tiling(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                 partition: Partition | None = None, n_samples: int | None = None) -> CheckResult:
    """The regions tile R^S: interiors disjoint, neighbours symmetric, nothing uncovered.

    Measured exactly: (i) every facet's neighbour is another region that has the same facet
    with the opposite orientation and exactly the same vertices and rays on it, and lists
    this region across it (facet-to-facet, symmetric), and the units whose pattern entry
    changes across it are on it from one side (or, in a max-pooling layer, in the group of
    such a unit); (ii) every sampled point lies in the
    interior of exactly one region, or on the boundary of at least two closed regions and
    in no interior (samples: random points, a grid, the origin and exact vertices);
    (iii) for S <= 2, the exact areas (lengths) of the regions clipped to a
    box sum to the box's area. (A float prefilter with a generous tolerance discards regions
    far from a point; every decision is then made exactly.)
    """
    rng = np.random.default_rng(seed)
    n_samples = n_samples or (400 if quick else 4000)
    cases = _cases(net, partition, quick)
    failures: list[str] = []
    n_facets = n_pts = n_bd = 0
    area_msgs = []
    for name, nt, P in cases:
        R = len(P)
        groups = _unit_groups(nt)
        for i, r in enumerate(P):
            if len(r.neighbors) != r.n_facets or len(r.facet_units) != r.n_facets:
                failures.append(f"{name}: region {i}: neighbours / facet_units per facet")
                continue
            for j, nb in enumerate(r.neighbors):
                n_facets += 1
                if not (0 <= nb < R) or nb == i:
                    failures.append(f"{name}: region {i} facet {j}: bad neighbour {nb}")
                    continue
                o = P[nb]
                back = [f for f in range(o.n_facets) if o.neighbors[f] == i
                        and all(a == -b for a, b in zip(o.C[f], r.C[j])) and o.d[f] == -r.d[j]]
                if len(back) != 1:
                    failures.append(f"{name}: region {i} facet {j}: neighbour {nb} does not "
                                    "have the opposite facet back to it")
                    continue
                if _facet_generators(r, j) != _facet_generators(o, back[0]):
                    failures.append(f"{name}: regions {i}, {nb}: the shared facet differs")
                # the units that change sign across the facet vanish on it from one side
                # at least, so they are facet units there (their facet_units may differ: a
                # deeper unit can vanish on the facet on one side and be constant on the
                # other). A max group's new winner has a zero row in the neighbour and may
                # tie with the old one on the whole region (then its row is zero there too):
                # its group holds a facet unit of one side (the old winner's row in the
                # neighbour), so a max group may change where one of its units is on the facet
                changed = {k for k, (a, b) in enumerate(zip(r.signs, o.signs)) if a != b}
                on = set(r.facet_units[j]) | set(o.facet_units[back[0]])
                if not changed or not changed <= {u for k in on for u in groups[k]}:
                    failures.append(f"{name}: regions {i}, {nb}: units {sorted(changed)} "
                                    "change sign but are not on the facet")
        # sampled points: exactly one interior, or boundary of >= 2 closed regions
        Zs = [[Fraction(float(t)) for t in z] for z in _sample_points(P, n_samples, rng)]
        # exact boundary points too: the origin and some vertices (on >= 2 closed regions)
        Zs.append([Fraction(0)] * nt.latent_dim)
        verts = [v for r in P for v in r.vertices.tolist()]
        for t in rng.permutation(len(verts))[:50]:
            Zs.append(list(verts[int(t)]))
        Z = np.array([[float(t) for t in z] for z in Zs], dtype=np.float64)
        Cf = [np.asarray(r.C, dtype=np.float64) for r in P]
        df = [np.asarray(r.d, dtype=np.float64) for r in P]
        zn = 1.0 + np.abs(Z).sum(axis=1)
        near = np.zeros((len(Z), R), dtype=bool)
        for i in range(R):
            if Cf[i].shape[0] == 0:
                near[:, i] = True
                continue
            viol = (Z @ Cf[i].T - df[i]) / (zn[:, None] + np.abs(df[i]))
            near[:, i] = viol.max(axis=1) <= 1e-9  # float error is ~1e-15 of this scale
        for n, (z, zq) in enumerate(zip(Z, Zs)):
            n_in = n_closed = 0
            for w in np.flatnonzero(near[n]).tolist():
                r = P[w]
                s = [dd - _dot(c, zq) for c, dd in zip(r.C.tolist(), r.d.tolist())]
                if all(x >= 0 for x in s):
                    n_closed += 1
                    if all(x > 0 for x in s):
                        n_in += 1
            n_pts += 1
            if n_in > 1:
                failures.append(f"{name}: point {z.tolist()} in {n_in} interiors")
            elif n_in == 0 and n_closed < 2:
                failures.append(f"{name}: point {z.tolist()} in no interior and "
                                f"{n_closed} closed regions")
            elif n_in == 0:
                n_bd += 1
        if nt.latent_dim <= 2:
            half = Fraction(math.ceil(2 * _extent(P)))
            tot, box = _box_measure_sum(P, half)
            area_msgs.append(f"{name}: {tot} of {box}")
            if tot != box:
                failures.append(f"{name}: region measures in the box sum to {tot}, box {box}")
    measured = (f"{len(cases)} nets, {n_facets} facets: every neighbour shares the facet "
                f"(same vertices and rays, opposite orientation), points back, and differs only "
                f"in units on the facet (or in their max-pooling groups); {n_pts} "
                f"sampled points each in exactly one interior ({n_bd} on boundaries of >= 2 "
                f"regions); for S <= 2 the exact clipped areas sum to the box area "
                f"({len(area_msgs)} nets)")
    details: dict[str, Any] = {}
    if failures:
        details["failures"] = failures[:5]
    return _result("Tiling", "the regions tile the latent space R^S", not failures, measured,
                   len(failures), details)
