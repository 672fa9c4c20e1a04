"""The exact partition (verified_dgn.partition): properties, brute force, the lemma checks.

All comparisons are exact (==) on Fractions. Independent oracles used here:
* closed-form region counts of hyperplane arrangements in general position (one hidden
  layer): sum_{i<=S} C(n, i), and for central arrangements (bias-free) 2n (S = 2) and
  n(n - 1) + 2 (S = 3);
* an exact 1-D sweep for S = 1 that finds every breakpoint of every unit on every interval
  (written here, sharing nothing with the walk);
* dense sampling (grid + random points) with exact verification;
* the checks' own oracles (exact forward pass, cdd redundancy removal on all rows of eq. 8).
Default selection: the quick cases; the slow-marked tests
(--runslow) add the wide / deep / S = 3, 4 nets.
"""

from __future__ import annotations

import dataclasses
import functools
from fractions import Fraction

import numpy as np
import pytest

from dgn_core.regions import layer_maps, region_inequalities
from tests.conftest import needs_cdd
from tests.partition_suite import assert_partition_checks_exact
from verified_dgn import DGN, Partition

pytestmark = needs_cdd

F = Fraction


def _partition(net, **kw):
    from verified_dgn import partition
    return partition(net, **kw)


def _nets():
    from dgn_tools.checks.partition_checks import degenerate_net
    return {
        "relu-S1": DGN.random((1, 8, 8, 1), seed=11),
        "abs-S1-depth3": DGN.random((1, 6, 6, 6, 1), activation="abs", seed=12),
        "relu-S2": DGN.random((2, 8, 8, 2), seed=13),
        "leaky-S2": DGN.random((2, 6, 6, 3), activation="leaky_relu", slope=0.2, seed=14),
        "abs-S2": DGN.random((2, 6, 5, 2), activation="abs", seed=15),
        "relu-S2-depth1": DGN.random((2, 7, 2), seed=16),
        "relu-S3": DGN.random((3, 5, 4, 2), seed=17),
        "biasfree-S2": DGN.random((2, 6, 6, 2), init="he", seed=18),
        "biasfree-abs-S2": DGN.random((2, 5, 5, 2), init="he", activation="abs", seed=19),
        "width1": DGN.random((2, 1, 3, 2), seed=20),
        "width1-abs-S3": DGN.random((3, 2, 1, 2), activation="abs", seed=21),
        "degenerate": degenerate_net(seed=22),
        "degenerate-leaky": degenerate_net(seed=23, activation="leaky_relu"),
    }


NET_NAMES = list(_nets())


@functools.cache
def cached(name: str) -> Partition:
    return _partition(_nets()[name])


def _dot(a, b):
    return sum((x * y for x, y in zip(a, b)), F(0))


def _exact_rank(vectors):
    return np.linalg.matrix_rank(np.array(vectors, dtype=np.float64)) if vectors else 0


# --------------------------------------------------------------------------- fields
@pytest.mark.parametrize("name", NET_NAMES)
def test_region_fields_are_exact_and_consistent(name):
    P = cached(name)
    net = P.net
    S, D = net.latent_dim, net.data_dim
    assert P.exact and len(P) >= 1
    for r in P:
        assert isinstance(r.signs, tuple) and len(r.signs) == net.n_hidden_units
        assert set(r.signs) <= {1, -1}
        for arr, shape in [(r.A, (D, S)), (r.b, (D,)), (r.C, (r.n_facets, S)),
                           (r.d, (r.n_facets,)), (r.interior_point, (S,))]:
            assert arr.dtype == object and arr.shape == shape
            assert all(isinstance(x, Fraction) for x in arr.ravel())
        for arr in (r.vertices, r.rays, r.lines):
            assert arr.dtype == object and arr.ndim == 2 and arr.shape[1] == S
            assert all(isinstance(x, Fraction) for x in arr.ravel())
        # normalisations
        for row in r.C:
            assert max(abs(t) for t in row) == 1
        for ray in list(r.rays) + list(r.lines):
            assert max(abs(t) for t in ray) == 1
        assert len(r.facet_units) == len(r.neighbors) == r.n_facets
        # A, b are the product formula
        _, A, b = layer_maps(net, r.signs, exact=True)
        assert np.array_equal(A, r.A) and np.array_equal(b, r.b)
        # bounded regions have no rays or lines; unbounded have some
        assert r.bounded == (len(r.rays) == 0 and len(r.lines) == 0)
        if r.bounded:
            assert len(r.vertices) >= S + 1


@pytest.mark.parametrize("name", NET_NAMES)
def test_interior_point_pattern_and_locate(name):
    from dgn_tools.checks.partition_checks import ExactForward

    P = cached(name)
    fwd = ExactForward(P.net)
    for i, r in enumerate(P):
        q, _ = fwd.pattern(r.interior_point)
        assert q == r.signs, i
        # strictly inside every facet
        assert all(_dot(c, r.interior_point) < d for c, d in zip(r.C, r.d))
        assert P.index_of(r.signs) == i
    Z = np.array([[float(t) for t in r.interior_point] for r in P])
    loc = P.locate(Z)
    # float rounding of an interior point can cross a facet only for regions thinner than
    # ~1e-15; then the located region must still contain the rounded point exactly
    for i, j in enumerate(loc.tolist()):
        if j != i:
            z = [F(float(t)) for t in P[i].interior_point]
            assert P[j].contains(z)


@pytest.mark.parametrize("name", NET_NAMES)
def test_facets_non_redundant_and_reproduce_region(name):
    from verified_dgn.geometry import exact_polyhedron

    P = cached(name)
    S = P.net.latent_dim
    for r in P:
        C_all, d_all = region_inequalities(P.net, r.signs, exact=True)
        # every generator satisfies every row of eq. 8: the region is inside the eq. 8 set
        for v in r.vertices:
            assert all(_dot(c, v) <= d for c, d in zip(C_all, d_all))
        for ray in r.rays:
            assert all(_dot(c, ray) <= 0 for c in C_all)
        for line in r.lines:
            assert all(_dot(c, line) == 0 for c in C_all)
        for j in range(r.n_facets):
            c, d = r.C[j], r.d[j]
            on_v = [list(v) + [1] for v in r.vertices if _dot(c, v) == d]
            on_r = [list(x) + [0] for x in r.rays if _dot(c, x) == 0]
            on_l = [list(x) + [0] for x in r.lines]
            assert on_v, "a facet has a point of the region"
            # homogenised rank S: the face has dimension S - 1 (a facet)
            assert _exact_rank(on_v + on_r + on_l) == S
            # facet row = normalised eq. 8 row of each unit on it (positive multiple)
            for k in r.facet_units[j]:
                s = max(abs(t) for t in C_all[k])
                assert list(C_all[k] / s) == list(c) and d_all[k] / s == d
        # the facets alone reproduce the region's V-representation
        E = exact_polyhedron(r.C, r.d) if r.n_facets else None
        if E is not None:
            assert E.dim == S and E.n_facets == r.n_facets
            if len(E.lines) == 0:
                assert {tuple(v) for v in E.vertices} == {tuple(v) for v in r.vertices}
                assert {tuple(v) for v in E.rays} == {tuple(v) for v in r.rays}
            assert len(E.lines) == len(r.lines)


@pytest.mark.parametrize("name", NET_NAMES)
def test_neighbours_symmetric_and_bfs_order(name):
    P = cached(name)
    parent_seen = []
    for i, r in enumerate(P):
        for j, nb in enumerate(r.neighbors):
            o = P[nb]
            back = [f for f in range(o.n_facets) if o.neighbors[f] == i]
            assert len(back) == 1
            f = back[0]
            assert list(o.C[f]) == [-t for t in r.C[j]] and o.d[f] == -r.d[j]
        if i > 0:
            parent_seen.append(min(r.neighbors))
            assert parent_seen[-1] < i
    # breadth-first discovery: the discovering region's index never decreases
    assert parent_seen == sorted(parent_seen)


def test_start_region_contains_start_point():
    net = DGN.random((2, 8, 8, 2), seed=31)
    P0 = _partition(net)
    assert P0[0].contains([0, 0])
    z = np.array([3.25, -7.5])
    P1 = _partition(net, start=z)
    assert P1[0].contains([F(3.25), F(-7.5)])
    assert {r.signs for r in P0} == {r.signs for r in P1}
    # a start point on hyperplanes: the origin of a bias-free net, and a vertex
    Pb = cached("biasfree-S2")
    assert Pb[0].contains([0, 0])
    v = list(P0[5].vertices[0])
    P2 = _partition(net, start=v)
    assert P2[0].contains(v) and len(P2) == len(P0)


# --------------------------------------------------------------------------- special nets
def test_no_hidden_layers_single_region():
    net = DGN.random((3, 2), seed=1)
    P = _partition(net)
    assert len(P) == 1
    r = P[0]
    assert r.signs == () and r.n_facets == 0 and r.facet_units == () and r.neighbors == ()
    assert np.array_equal(r.A, np.array([[F(float(x)) for x in row] for row in net.weights[0]],
                                        dtype=object))
    assert list(r.b) == [F(float(x)) for x in net.biases[0]]
    assert r.lines.shape == (3, 3) and r.vertices.tolist() == [[0, 0, 0]]
    assert list(P.locate(np.ones((4, 3)))) == [0, 0, 0, 0]


def test_all_units_dead_single_region():
    # every layer-1 unit is dead (h = -1): one region, R^S, on which g is constant
    net = DGN([np.zeros((3, 2)), np.ones((2, 3)), np.ones((1, 2))],
              [-np.ones(3), np.array([0.5, -0.25]), np.zeros(1)])
    P = _partition(net)
    assert len(P) == 1
    r = P[0]
    assert r.signs == (-1, -1, -1, 1, -1) and r.n_facets == 0 and len(r.lines) == 2
    assert r.A.tolist() == [[0, 0]] and r.b.tolist() == [F(1, 2)]


def test_width_one_layer_regions_contain_lines():
    P = cached("width1")
    assert all(len(r.lines) == 1 for r in P)  # S = 2, one hyperplane: half-planes / strips
    P3 = cached("width1-abs-S3")
    assert all(len(r.lines) == 1 for r in P3)  # S = 3, two planes: every region has a line


def test_degenerate_net_shared_hyperplane_and_dead_units():
    """Units 0-3 share one hyperplane (unit 3 reversed); 4, 5 and layer-2 unit 0 are constant."""
    P = cached("degenerate")
    on_shared = [u for r in P for u in r.facet_units if 0 in u]
    assert on_shared and all(tuple(u[:4]) == (0, 1, 2, 3) for u in on_shared)
    for r in P:
        assert r.signs[4] == -1 and r.signs[5] == 1  # dead (h = -0.25) and zero (h = 0 -> +1)
        assert r.signs[8] == -1  # layer-2 unit 0: h = -0.125
        assert r.signs[0] == r.signs[1] == r.signs[2] == -r.signs[3]
        assert all(k not in u for u in r.facet_units for k in (4, 5, 8))


def test_nearly_parallel_hyperplanes_give_thin_regions():
    """2.5 * row is (generically) not exact in float64: the two hyperplanes then differ by
    ~1e-16 relative, and the exact walk must find the thin regions between them."""
    base = DGN.random((2, 4, 2), seed=41)
    W = np.array(base.weights[0])
    v = np.array(base.biases[0])
    W[1], v[1] = 2.5 * W[0], 2.5 * v[0]
    net = DGN([W, base.weights[1]], [v, base.biases[1]])
    Wq = [[F(float(x)) for x in row] for row in W]
    vq = [F(float(x)) for x in v]
    parallel = Wq[1][0] * Wq[0][1] == Wq[1][1] * Wq[0][0]
    same = parallel and all(a * F(2, 5) == b for a, b in zip(Wq[1] + [vq[1]], Wq[0] + [vq[0]]))
    assert not same  # float rounding of 2.5 * x: checked, not assumed
    P = _partition(net)
    from dgn_tools.checks.partition_checks import check_tiling
    assert check_tiling(partition=P).passed
    # 4 distinct lines, otherwise in general position: 11 cells, 10 if two are parallel
    assert len(P) == (10 if parallel else 11)
    assert not any(len(u) > 1 for r in P for u in r.facet_units)


# --------------------------------------------------------------------------- brute force
@pytest.mark.parametrize("S, n, init, expected", [
    (2, 10, "torch", 1 + 10 + 45),
    (3, 6, "torch", 1 + 6 + 15 + 20),
    (2, 7, "he", 2 * 7),
    (3, 5, "he", 5 * 4 + 2),
    (1, 9, "torch", 10),
])
def test_one_hidden_layer_counts_match_arrangement_formula(S, n, init, expected):
    net = DGN.random((S, n, 2), init=init, seed=50 + S + n)
    for act in ("relu", "abs", "leaky_relu"):
        P = _partition(net.replace(activation=act, slope=None))
        assert len(P) == expected


def _sweep_1d(net):
    """Exact 1-D enumeration: sorted breakpoints where some unit changes sign on R.

    Layer by layer, on each interval between known breakpoints every pre-activation is
    affine; its zeros inside the interval are new candidate breakpoints. Adjacent intervals
    with equal patterns are merged. Returns the interior breakpoints and the patterns.
    """
    from dgn_tools.checks.partition_checks import ExactForward

    fwd = ExactForward(net)
    bps: list[F] = []
    for l, width in enumerate(net.hidden_widths):
        lo = sum(net.hidden_widths[:l])
        new = set(bps)
        edges = [None] + sorted(bps) + [None]
        for a, b in zip(edges[:-1], edges[1:]):
            # two points inside the interval determine the affine pieces of layer l
            if a is None and b is None:
                x0, x1 = F(0), F(1)
            elif a is None:
                x0, x1 = b - 2, b - 1
            elif b is None:
                x0, x1 = a + 1, a + 2
            else:
                x0, x1 = a + (b - a) / 3, a + 2 * (b - a) / 3
            h0, _ = fwd([x0])
            h1, _ = fwd([x1])
            for k in range(lo, lo + width):
                slope = (h1[k] - h0[k]) / (x1 - x0)
                if slope == 0:
                    continue
                root = x0 - h0[k] / slope
                if (a is None or root > a) and (b is None or root < b):
                    new.add(root)
        bps = sorted(new)
    pats = []
    edges = [None] + bps + [None]
    for a, b in zip(edges[:-1], edges[1:]):
        if a is None and b is None:
            x = F(0)
        elif a is None:
            x = b - 1
        elif b is None:
            x = a + 1
        else:
            x = (a + b) / 2
        pats.append(fwd.pattern([x])[0])
    keep_bps, keep_pats = [], [pats[0]]
    for bp, p in zip(bps, pats[1:]):
        if p != keep_pats[-1]:
            keep_bps.append(bp)
            keep_pats.append(p)
    return keep_bps, keep_pats


@pytest.mark.parametrize("widths, act", [((1, 8, 8, 1), "relu"), ((1, 6, 6, 6, 1), "abs")])
def test_s1_exact_sweep_finds_the_same_regions(widths, act):
    net = DGN.random(widths, activation=act, seed=61)
    bps, pats = _sweep_1d(net)
    P = _partition(net)
    assert len(P) == len(pats)
    assert {r.signs for r in P} == set(pats)
    assert sorted({v[0] for r in P for v in r.vertices}) == bps


def _dense_sampling_check(P, Z):
    """Every sampled pattern is a region; every point is in exactly one region's interior or
    on the boundary of >= 2 closed regions. Decisions exact; float patterns only index."""
    from dgn_tools.checks.partition_checks import ExactForward

    fwd = ExactForward(P.net)
    index = {r.signs: i for i, r in enumerate(P)}
    # float prefilter (relative tolerance 1e-9, float error ~1e-15): regions far from a
    # point are skipped; every decision below is exact
    near = np.ones((len(Z), len(P)), dtype=bool)
    zn = 1.0 + np.abs(Z).sum(axis=1)
    for j, r in enumerate(P):
        if r.n_facets:
            C = np.asarray(r.C, dtype=float)
            d = np.asarray(r.d, dtype=float)
            near[:, j] = ((Z @ C.T - d) / (zn[:, None] + np.abs(d))).max(axis=1) <= 1e-9
    n_interior = n_boundary = 0
    hit: set[int] = set()
    for n, z in enumerate(Z):
        zq = [F(float(t)) for t in z]
        q_exact, on_h = fwd.pattern(zq)
        i = index.get(q_exact)
        if i is None:
            assert on_h, f"sample {z} has a pattern that no region has"
        cand = np.flatnonzero(near[n]).tolist()
        slacks = {j: [d - _dot(c, zq) for c, d in zip(P[j].C, P[j].d)] for j in cand}
        inside = [j for j, s in slacks.items() if all(x > 0 for x in s)]
        closed = [j for j, s in slacks.items() if all(x >= 0 for x in s)]
        assert len(inside) <= 1
        if inside:
            n_interior += 1
            assert i is None or inside == [i]
            hit.add(inside[0])
        else:
            n_boundary += 1
            assert len(closed) >= 2
    return n_interior, n_boundary, hit


def test_dense_sampling_quick():
    P = cached("relu-S2")
    g = np.linspace(-6, 6, 31)
    Z = np.concatenate([np.stack(np.meshgrid(g, g), -1).reshape(-1, 2),
                        np.random.default_rng(0).standard_normal((100, 2)) * 3])
    n_in, n_bd, hit = _dense_sampling_check(P, Z)
    assert n_in + n_bd == len(Z) and n_in > 0.9 * len(Z)
    assert len(hit) > 0.5 * len(P)  # the sampling is dense enough to say something


@pytest.mark.slow
@pytest.mark.parametrize("widths, act, seed", [
    ((2, 16, 16, 2), "relu", 71), ((2, 12, 12, 2), "abs", 72),
    ((2, 10, 10, 2), "leaky_relu", 73), ((1, 32, 32, 1), "relu", 74),
])
def test_dense_sampling_slow(widths, act, seed):
    net = DGN.random(widths, activation=act, seed=seed)
    P = _partition(net)
    ext = max(float(np.max(np.abs(np.asarray(r.vertices, dtype=float)))) for r in P
              if len(r.vertices))
    S = net.latent_dim
    rng = np.random.default_rng(seed)
    if S == 2:
        g = np.linspace(-1.1 * ext, 1.1 * ext, 120)
        grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        # the bounded regions are small near the origin: a fine grid there too
        g2 = np.linspace(-2, 2, 80)
        grid2 = np.stack(np.meshgrid(g2, g2), -1).reshape(-1, 2)
        Z = np.concatenate([grid, grid2, rng.standard_normal((2000, 2))])
    else:
        Z = np.concatenate([np.linspace(-1.1 * ext, 1.1 * ext, 4001)[:, None],
                            rng.standard_normal((2000, 1))])
    _, _, hit = _dense_sampling_check(P, Z)
    # measured 0.70-0.96 of the regions hit (the rest are smaller than the grid step)
    assert len(hit) >= 0.6 * len(P)


# --------------------------------------------------------------------------- lemma checks
@pytest.mark.parametrize("name", ["relu-S1", "abs-S2", "leaky-S2", "relu-S3", "biasfree-abs-S2",
                                  "width1-abs-S3", "degenerate-leaky"])
def test_lemma_checks_pass(name):
    assert_partition_checks_exact(cached(name), seed=1)


def test_checks_registered_and_run_on_a_given_net():
    from dgn_tools.checks import registry, run_checks

    names = ["Lemma 3", "Corollary 1", "Affine maps", "Tiling"]
    assert set(names) <= set(registry())
    for res in run_checks(names, net=DGN.random((2, 4, 3, 2), seed=5), quick=True):
        assert res.passed, str(res)
        assert res.measured.startswith("1 nets")


@pytest.mark.slow
def test_checks_builtin_suite_quick():
    from dgn_tools.checks import run_checks
    from dgn_tools.checks.partition_checks import builtin_nets

    n = len(builtin_nets(True))
    for res in run_checks(["Lemma 3", "Corollary 1", "Affine maps", "Tiling"], quick=True):
        assert res.passed, str(res)
        assert res.measured.startswith(f"{n} nets")


def _naive_forward(net, z):
    """The slow, obviously correct loop: Fraction weights, unit by unit."""
    h = [F(t) for t in z]
    pre = []
    slope = F(net.slope)
    for l, (W, v) in enumerate(zip(net.weights, net.biases)):
        out = [sum((F(float(w)) * x for w, x in zip(row, h)), F(0)) + F(float(b))
               for row, b in zip(W, v)]
        if l == net.n_layers - 1:
            return pre, out
        pre += out
        h = [t if t > 0 else slope * t for t in out]


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "abs"])
def test_exact_forward_oracle_equals_naive_loop(act):
    from dgn_tools.checks.partition_checks import ExactForward

    net = DGN.random((3, 5, 4, 4, 2), activation=act, seed=90)
    fwd = ExactForward(net)
    rng = np.random.default_rng(0)
    pts = [[F(int(a), int(b)) for a, b in zip(rng.integers(-50, 50, 3), rng.integers(1, 9, 3))]
           for _ in range(10)] + [[0, 0, 0], [0.1, -2.5, 1e-3]]
    for z in pts:
        pre, out = fwd(z)
        assert (pre, out) == _naive_forward(net, z)
        assert out == net.forward_exact(z)
        q, on = fwd.pattern(z)
        assert q == tuple(1 if t >= 0 else -1 for t in pre) and on == (0 in pre)


def _mutated(P, i, **changes):
    regions = list(P)
    regions[i] = dataclasses.replace(regions[i], **changes)
    return Partition(P.net, regions, exact=True)


def test_checks_fail_on_corrupted_partitions():
    from dgn_tools.checks.partition_checks import (
        check_affine_maps,
        check_corollary1,
        check_lemma3,
        check_tiling,
    )

    P = cached("relu-S2")
    r = P[3]
    # a wrong affine map
    bad_A = r.A.copy()
    bad_A[0, 0] += F(1, 10**30)
    assert not check_affine_maps(partition=_mutated(P, 3, A=bad_A)).passed
    # a missing facet
    bad = _mutated(P, 3, C=r.C[1:], d=r.d[1:], facet_units=r.facet_units[1:],
                   neighbors=r.neighbors[1:])
    assert not check_corollary1(partition=bad, max_regions_checked=len(P)).passed
    assert not check_tiling(partition=bad).passed
    # a wrong neighbour
    nb = list(r.neighbors)
    nb[0] = (nb[0] + 1) % len(P) if (nb[0] + 1) % len(P) != 3 else (nb[0] + 2) % len(P)
    assert not check_tiling(partition=_mutated(P, 3, neighbors=tuple(nb))).passed
    # a missing region: the one containing the origin, which standard normal samples hit
    short = Partition(P.net, list(P)[1:], exact=True)
    assert P[0].contains([0, 0])
    assert not check_lemma3(partition=short, n_samples=2000).passed
    assert not check_tiling(partition=short).passed
    # a wrong sign pattern
    q = list(r.signs)
    q[0] = -q[0]
    if tuple(q) not in {x.signs for x in P}:
        assert not check_lemma3(partition=_mutated(P, 3, signs=tuple(q))).passed


@pytest.mark.parametrize("kw, err, msg", [
    (dict(max_regions="10"), TypeError, "max_regions"),
    (dict(start=[0.0, 0.0, 0.0]), ValueError, "start"),
    (dict(start=["a", 0.0]), TypeError, "start"),
])
def test_invalid_arguments(kw, err, msg):
    net = DGN.random((2, 3, 2), seed=1)
    with pytest.raises(err, match=msg):
        _partition(net, **kw)


def test_lazy_public_name():
    import verified_dgn
    from verified_dgn.exact_partition import partition
    assert verified_dgn.partition is partition


# --------------------------------------------------------------------------- slow nets
@pytest.mark.slow
@pytest.mark.parametrize("widths, act, init, seed", [
    ((2, 32, 32, 2), "relu", "torch", 0),
    ((2, 16, 16, 16, 2), "leaky_relu", "torch", 81),
    ((3, 8, 8, 3), "abs", "torch", 82),
    ((4, 6, 6, 2), "relu", "torch", 83),
    ((2, 6, 6, 6, 6, 2), "abs", "torch", 84),
    ((3, 8, 8, 2), "relu", "he", 85),
    ((1, 32, 32, 32, 1), "leaky_relu", "torch", 86),
])
def test_lemma_checks_slow_nets(widths, act, init, seed):
    from dgn_tools.checks.partition_checks import (
        check_affine_maps,
        check_corollary1,
        check_lemma3,
        check_tiling,
    )

    P = _partition(DGN.random(widths, activation=act, init=init, seed=seed))
    for chk in (check_lemma3, check_affine_maps, check_tiling):
        res = chk(partition=P, quick=True, seed=2)
        assert res.passed, str(res)
    res = check_corollary1(partition=P, quick=True, seed=2, max_regions_checked=150)
    assert res.passed, str(res)
