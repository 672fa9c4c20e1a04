"""The exact partition (verified_dgn) of nets with max-pooling layers.

Nets: max as the only hidden layer, relu -> max -> relu, max -> abs, overlapping windows
(repeated rows), groups of 1, 2, 3, 4, and degenerate nets (duplicated units inside a group,
so ties hold on whole regions; a unit that is another plus a constant), at S = 1, 2, 3.

Oracles independent of the walk (:mod:`verified_dgn._int_net`):
* ``DGN.sign_patterns`` / ``DGN.forward`` (float64) and ``DGN.forward_exact`` (Fractions);
* the checks' exact forward pass (:class:`dgn_tools.checks.partition_checks.ExactForward`);
* exact membership of sampled points in the regions' H-representations;
* :func:`dgn_core.regions.region_inequalities` / ``region_affine_map`` (Corollary 1 and the
  product formula, through the Lemma 3 checks);
* for S = 1, a brute-force sweep: dense grid + float bisection of every pattern change.
All comparisons are exact (==) unless a tolerance is stated.
"""

from __future__ import annotations

import math
import time
from fractions import Fraction

import numpy as np
import pytest

from dgn_core.model import DGN
from dgn_core.regions import region_inequalities
from tests.conftest import needs_cdd
from tests.partition_suite import assert_partition_checks_exact

pytestmark = needs_cdd

F = Fraction


def _partition(net, **kw):
    from verified_dgn.exact_partition import partition
    return partition(net, **kw)


# --------------------------------------------------------------------------- nets
def _overlap_net(S: int, seed: int) -> DGN:
    """Max over overlapping windows {0,1,2}, {1,2,3} of 4 base units (rows repeated), then a
    relu layer."""
    base = DGN.random((S, 4, 3, 2), seed=seed)
    W1 = np.asarray(base.weights[0])[[0, 1, 2, 1, 2, 3]]
    v1 = np.asarray(base.biases[0])[[0, 1, 2, 1, 2, 3]]
    rng = np.random.default_rng(seed)
    W2 = rng.uniform(-0.7, 0.7, size=(3, 2))
    return DGN([W1, W2, base.weights[2]], [v1, base.biases[1], base.biases[2]],
               activation=["max", "relu"], pool_sizes=[[3, 3], None])


def _degenerate_net(seed: int, first_max: bool) -> DGN:
    """Max groups [3, 2, 1] (then abs) with unit 1 a duplicate of unit 0 (tied on every
    region: unit 0 always wins the tie), unit 4 = unit 3 + 0.25 (unit 4 always wins) and unit
    5 alone in its group. ``first_max``: the max layer is the first hidden layer; otherwise
    it follows a relu layer (the ties then hold between piecewise-affine units)."""
    S = 2
    if first_max:
        base = DGN.random((S, 6, 3, 2), activation=["max", "abs"],
                          pool_sizes=[[3, 2, 1], None], seed=seed)
        Ws, vs, li = [np.array(w) for w in base.weights], [np.array(v) for v in base.biases], 0
    else:
        base = DGN.random((S, 4, 6, 3, 2), activation=["relu", "max", "abs"],
                          pool_sizes=[None, [3, 2, 1], None], seed=seed)
        Ws, vs, li = [np.array(w) for w in base.weights], [np.array(v) for v in base.biases], 1
    Ws[li][1], vs[li][1] = Ws[li][0], vs[li][0]
    Ws[li][4], vs[li][4] = Ws[li][3], vs[li][3] + 0.25
    return DGN(Ws, vs, **base.activation_kwargs())


def _nets() -> dict[str, DGN]:
    return {
        "max-S1-g123": DGN.random((1, 6, 2), activation="max", pool_sizes=[[1, 2, 3]], seed=1),
        "relu-max-relu-S1": DGN.random((1, 6, 8, 4, 2), activation=["relu", "max", "relu"],
                                       pool_sizes=[None, [4, 4], None], seed=2),
        "max-S2-g4": DGN.random((2, 8, 2), activation="max", pool_sizes=[4], seed=3),
        "max-S2-g123": DGN.random((2, 6, 3), activation="max", pool_sizes=[[1, 2, 3]], seed=4),
        "relu-max-relu-S2": DGN.random((2, 6, 8, 4, 2), activation=["relu", "max", "relu"],
                                       pool_sizes=[None, [2, 2, 4], None], seed=5),
        "max-abs-S2": DGN.random((2, 6, 3, 2), activation=["max", "abs"],
                                 pool_sizes=[[1, 2, 3], None], seed=6),
        "overlap-S2": _overlap_net(2, seed=7),
        "degenerate-max-first-S2": _degenerate_net(8, first_max=True),
        "degenerate-relu-max-S2": _degenerate_net(9, first_max=False),
        # bias-free: where every relu of layer 2 is off, the max units are all 0 (tied on
        # the whole region); crossing into a region where they differ moves the winner
        "biasfree-relu-relu-max-S2": DGN.random((2, 4, 4, 4, 2),
                                                activation=["relu", "relu", "max"],
                                                pool_sizes=[None, None, [2, 2]], init="he",
                                                seed=0),
        "max-S3-g22": DGN.random((3, 4, 2), activation="max", pool_sizes=[2], seed=10),
        "relu-max-relu-S3": DGN.random((3, 5, 6, 3, 2), activation=["relu", "max", "relu"],
                                       pool_sizes=[None, [3, 3], None], seed=11),
        "max-abs-S3": DGN.random((3, 8, 3, 2), activation=["max", "abs"],
                                 pool_sizes=[[4, 4], None], seed=12),
    }


NETS = _nets()
_CACHE: dict[str, object] = {}


def cached(name: str):
    if name not in _CACHE:
        _CACHE[name] = _partition(NETS[name])
    return _CACHE[name]


# --------------------------------------------------------------------------- helpers
def _strictly_inside(r, z) -> bool:
    return all(sum((c * t for c, t in zip(row, z)), F(0)) < d
               for row, d in zip(r.C.tolist(), r.d.tolist()))


def _in_closure(r, z) -> bool:
    return all(sum((c * t for c, t in zip(row, z)), F(0)) <= d
               for row, d in zip(r.C.tolist(), r.d.tolist()))


def _layer_groups(net: DGN):
    """Per hidden unit (flat): its layer and the flat units of its group (itself alone for an
    element-wise unit)."""
    out: list[tuple[int, tuple[int, ...]]] = []
    off = 0
    for l, (w, pool) in enumerate(zip(net.hidden_widths, net.pool_sizes)):
        if pool:
            start = off
            for k in pool:
                out.extend([(l, tuple(range(start, start + k)))] * k)
                start += k
        else:
            out.extend((l, (off + i,)) for i in range(w))
        off += w
    return out


def _extent(P) -> float:
    m = 1.0
    for r in P:
        if len(r.vertices):
            m = max(m, float(np.max(np.abs(np.asarray(r.vertices, dtype=np.float64)))))
    return m


# --------------------------------------------------------------------------- the walk's basics
def test_nets_are_max_nets_with_the_intended_groups():
    sizes = set()
    for name, net in NETS.items():
        assert net.has_max_pooling, name
        sizes |= {k for p in net.pool_sizes for k in p}
    assert {1, 2, 3, 4} <= sizes
    # the degenerate nets really have duplicated units and a constant offset in a group
    net = NETS["degenerate-max-first-S2"]
    W, v = np.asarray(net.weights[0]), np.asarray(net.biases[0])
    assert np.array_equal(W[0], W[1]) and v[0] == v[1]
    assert np.array_equal(W[3], W[4]) and v[4] - v[3] == 0.25


@pytest.mark.parametrize("name", list(NETS))
def test_bijection_and_region_maps(name):
    """Lemma 3 analogue and the region fields: distinct patterns; every region's pattern is
    the forward pattern (exact and float64) at its interior point, strictly inside C z <= d;
    A z + b = g exactly there; crossing a facet changes exactly the facet units' groups at
    the first layer that changes."""
    from dgn_tools.checks.partition_checks import ExactForward

    net = NETS[name]
    t0 = time.perf_counter()
    P = cached(name)
    assert time.perf_counter() - t0 < 20.0
    fwd = ExactForward(net)
    pats = [r.signs for r in P]
    assert len(set(pats)) == len(pats) > 1
    groups = _layer_groups(net)
    for i, r in enumerate(P):
        z = list(r.interior_point)
        pre, g = fwd(z)
        q, zero = fwd.signs(pre)
        assert q == r.signs
        if zero:  # only units whose row vanishes on the whole region (degenerate nets' ties)
            C_all, d_all = region_inequalities(net, r.signs, exact=True)
            assert all(not any(C_all[k]) and d_all[k] == 0 for k in zero), (name, i, zero)
        zf = np.asarray([float(t) for t in z])
        assert tuple(net.sign_patterns(zf[None])[0].tolist()) == r.signs
        assert _strictly_inside(r, z)
        Az = [sum((a * t for a, t in zip(row, z)), F(0)) + b
              for row, b in zip(r.A.tolist(), r.b.tolist())]
        assert Az == net.forward_exact(z) == g
        np.testing.assert_allclose(net.forward(zf[None])[0], [float(t) for t in Az],
                                   rtol=1e-12, atol=1e-12)
        # max groups: one +1 each
        for l, pool in enumerate(net.pool_sizes):
            off = sum(net.hidden_widths[:l])
            start = off
            for k in pool:
                assert sum(1 for s in r.signs[start:start + k] if s > 0) == 1
                start += k
        # neighbours: the first changed layer is the first layer with a facet unit (its maps
        # are the same on both sides, so a unit whose row is a positive multiple of the facet
        # changes there), and it changes only units of the facet units' groups
        for j, nb in enumerate(r.neighbors):
            o = P[nb]
            changed = [k for k, (a, b) in enumerate(zip(r.signs, o.signs)) if a != b]
            assert changed, (name, i, j)
            first = min(groups[k][0] for k in changed)
            units = [f for f in r.facet_units[j] if groups[f][0] == first]
            assert units and min(groups[f][0] for f in r.facet_units[j]) == first
            allowed = {u for f in units for u in groups[f][1]}
            assert {k for k in changed if groups[k][0] == first} <= allowed, (name, i, j)
            # the new winner of a max group is one of the facet's units
            for k in changed:
                if groups[k][0] == first and len(groups[k][1]) > 1 and o.signs[k] > 0:
                    assert k in units


@pytest.mark.parametrize("name", list(NETS))
def test_tiling_and_sampled_points(name):
    """Random points (and a grid) each lie strictly inside exactly one region, or on the
    closures of >= 2; the region holding a point has that point's forward pattern (exact and
    float64)."""
    from dgn_tools.checks.partition_checks import ExactForward

    net = NETS[name]
    P = cached(name)
    S = net.latent_dim
    fwd = ExactForward(net)
    index = {r.signs: i for i, r in enumerate(P)}
    rng = np.random.default_rng(5)
    ext = _extent(P)
    Z = np.concatenate([rng.standard_normal((60, S)), rng.uniform(-2 * ext, 2 * ext, (60, S)),
                        rng.standard_normal((30, S)) * 50 * ext])
    fl = net.sign_patterns(Z)
    n_inside = 0
    for z, qf in zip(Z, fl):
        zq = [F(float(t)) for t in z]
        inside = [i for i, r in enumerate(P) if _strictly_inside(r, zq)]
        closed = [i for i, r in enumerate(P) if _in_closure(r, zq)]
        assert len(inside) <= 1
        if not inside:
            assert len(closed) >= 2
            continue
        n_inside += 1
        pre, _ = fwd(zq)
        q, zero = fwd.signs(pre)
        assert index[q] == inside[0] and tuple(qf.tolist()) == q
        # a tie at a point strictly inside a region holds on the whole region (degenerate)
        C_all, d_all = region_inequalities(net, q, exact=True)
        assert all(not any(C_all[k]) and d_all[k] == 0 for k in zero)
    assert n_inside == len(Z)  # random float points are on no boundary (measured: all)


@pytest.mark.parametrize("name", [n for n in NETS if "-S2" in n or "-S1" in n])
def test_clipped_measures_sum_to_the_box(name):
    """S <= 2: the exact lengths / areas of the regions clipped to a box containing every
    vertex sum to the box's, exactly."""
    from dgn_tools.checks.partition_checks import _box_measure_sum

    P = cached(name)
    half = F(math.ceil(2 * _extent(P)))
    tot, box = _box_measure_sum(P, half)
    assert tot == box


@pytest.mark.parametrize("name", [n for n in NETS if "-S2" in n or "-S3" in n or "-S1" in n])
def test_lemma3_checks_on_max_nets(name):
    """The checks `dgn check` runs (Lemma 3, Corollary 1, affine maps, tiling) pass exactly."""
    assert_partition_checks_exact(cached(name), seed=2)


def test_builtin_suite_has_a_max_net_and_its_checks_pass():
    from dgn_tools.checks import run_checks
    from dgn_tools.checks.partition_checks import builtin_nets

    maxnets = [(n, net) for n, net in builtin_nets(True) if net.has_max_pooling]
    assert len(maxnets) == 1
    for res in run_checks(["Lemma 3", "Corollary 1", "Affine maps", "Tiling"],
                          net=maxnets[0][1], quick=True):
        assert res.passed, str(res)


def test_a_group_tied_on_a_region_changes_winner_across_a_facet():
    """Bias-free relu -> relu -> max: some facet moves a max group's winner although no unit
    of the group is a facet unit of either side (the group is tied on the whole region, so
    the new winner's row is zero on both sides); the winner is then the unit that is larger
    in the neighbour (checked at its interior point), and the tiling check accepts it."""
    from dgn_tools.checks.partition_checks import ExactForward, check_tiling

    name = "biasfree-relu-relu-max-S2"
    net = NETS[name]
    P = cached(name)
    groups = _layer_groups(net)
    fwd = ExactForward(net)
    seen = 0
    for i, r in enumerate(P):
        for j, nb in enumerate(r.neighbors):
            o = P[nb]
            back = [f for f in range(o.n_facets) if o.neighbors[f] == i]
            assert len(back) == 1
            on = set(r.facet_units[j]) | set(o.facet_units[back[0]])
            for k, (a, b) in enumerate(zip(r.signs, o.signs)):
                if a != b and k not in on:
                    seen += 1
                    assert len(groups[k][1]) > 1  # a max unit, and its group is on the facet
                    assert set(groups[k][1]) & on
                    pre, _ = fwd(list(o.interior_point))
                    win = [u for u in groups[k][1] if o.signs[u] > 0][0]
                    assert all(pre[win] > pre[u] for u in groups[k][1] if u < win)
                    assert all(pre[win] >= pre[u] for u in groups[k][1])
    assert seen > 0  # measured: 4 (entries of 2 facets, both directions)
    assert check_tiling(partition=P, quick=True, seed=3).passed


# --------------------------------------------------------------------------- counts
def _breakpoints_brute_force(net: DGN, R: float, n: int) -> list[float]:
    """Pattern changes of ``net`` (S = 1) on [-R, R]: a grid of n points, then 80 float
    bisection steps in every cell whose end patterns differ."""
    xs = np.linspace(-R, R, n)
    pats = net.sign_patterns(xs[:, None])
    out = []
    for k in np.flatnonzero(np.any(pats[1:] != pats[:-1], axis=1)).tolist():
        a, b = float(xs[k]), float(xs[k + 1])
        pa = pats[k]
        for _ in range(80):
            m = 0.5 * (a + b)
            if m in (a, b):
                break
            if np.array_equal(net.sign_patterns(np.array([[m]]))[0], pa):
                a = m
            else:
                b = m
        out.append(0.5 * (a + b))
    return out


@pytest.mark.parametrize("name", ["max-S1-g123", "relu-max-relu-S1"])
def test_s1_endpoints_equal_brute_force_breakpoints(name):
    """S = 1: the regions are intervals; their finite endpoints equal the pattern changes
    found by a dense grid + bisection (tolerance 1e-9 absolute). The grid step is below the
    smallest distance between endpoints (asserted), so no cell holds two breakpoints and the
    grid sees every region (also asserted: every region's pattern occurs on the grid)."""
    net = NETS[name]
    P = cached(name)
    ends = sorted({float(v[0]) for r in P for v in r.vertices.tolist()})
    assert len(P) == len(ends) + 1  # a line cut at k points: k + 1 intervals
    R = 4.0 * max(1.0, max(abs(e) for e in ends))
    n = 200_001
    step = 2 * R / (n - 1)
    assert min(np.diff(ends)) > 2 * step
    bp = _breakpoints_brute_force(net, R, n)
    assert len(bp) == len(ends)
    np.testing.assert_allclose(bp, ends, rtol=0, atol=1e-9)
    grid = {tuple(p) for p in net.sign_patterns(np.linspace(-R, R, n)[:, None]).tolist()}
    assert grid == {r.signs for r in P}


@pytest.mark.parametrize("name", ["max-S2-g4", "max-abs-S2", "overlap-S2"])
def test_s2_region_count_equals_sampled_patterns(name):
    """S = 2: the distinct patterns of a 301 x 301 grid over 1.5 x the vertex extent plus
    20000 points on a far circle (radius 1e4 x the extent, for the unbounded regions) are
    exactly the regions' patterns, so the count of regions equals the count of sampled
    patterns (10, 11, 27 regions). That the sample sees every region is asserted, not
    assumed: every region's pattern occurs in it (on relu -> max -> relu S = 2 it does not:
    60 of 135 regions at 301^2, 91 at 1001^2, the others are slivers; not used here)."""
    net = NETS[name]
    P = cached(name)
    ext = _extent(P)
    g = np.linspace(-1.5 * ext, 1.5 * ext, 301)
    Z = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    ang = np.linspace(0, 2 * np.pi, 20_000, endpoint=False)
    Z = np.concatenate([Z, 1e4 * ext * np.stack([np.cos(ang), np.sin(ang)], axis=1)])
    sampled = {tuple(p) for p in net.sign_patterns(Z).tolist()}
    assert sampled == {r.signs for r in P}
    assert len(P) == len(sampled)


# --------------------------------------------------------------------------- ties and starts
def test_one_sided_ties_go_to_the_largest_derivative_then_the_first_index():
    """A max group (z, -z, 0, z) at z = 0: all four tie. Along +1 the first of the two units
    with derivative 1 wins (unit 0, not its duplicate 3); along -1 unit 1 wins."""
    from verified_dgn._int_net import _IntNet

    net = DGN([np.array([[1.0], [-1.0], [0.0], [1.0]]), np.array([[1.0]])],
              [np.zeros(4), np.zeros(1)], activation="max", pool_sizes=[[4]])
    inet = _IntNet(net)
    q, zeros = inet.forward_signs([1, 0])
    assert q == (1, -1, -1, -1) and zeros == [1, 2, 3]
    assert inet.one_sided_signs(q, zeros, [1]) == (1, -1, -1, -1)
    assert inet.one_sided_signs(q, zeros, [-1]) == (-1, 1, -1, -1)
    # the partition: two regions, the duplicate never wins, the constant unit only ties at 0
    P = _partition(net)
    assert sorted(r.signs for r in P) == [(-1, 1, -1, -1), (1, -1, -1, -1)]
    # a start point exactly on the tie is nudged into a region touching it
    assert len(_partition(net, start=[0])) == 2


def test_constraint_rows_of_a_max_layer():
    """H rows: q_k N_k for relu units, N_winner - N_i for max units (zero for the winner), in
    the relu layer's scale; float_rows agrees in float64."""
    from verified_dgn._int_net import _IntNet

    net = NETS["relu-max-relu-S2"]
    P = cached("relu-max-relu-S2")
    inet = _IntNet(net)
    for r in list(P)[:10]:
        Nh, _ = inet.region_maps(r.signs)
        H = inet.constraint_rows(r.signs, Nh)
        Hf = inet.float_rows(r.signs)
        C, d = region_inequalities(net, r.signs, exact=True)
        off = 0
        true = []
        for l, w in enumerate(net.hidden_widths):
            sig = inet.sigma[l]
            for k in range(off, off + w):
                # region_inequalities row k is C_k z <= d_k, i.e. (d_k, -C_k) . (1, z) >= 0;
                # H holds it times the layer's scale sigma
                true.append([F(x, sig) for x in H[k].tolist()])
                assert true[-1] == [d[k]] + [-c for c in C[k]]
            off += w
        # float64 rows: relative error of a few ulps of the largest entry (tolerance 1e-12)
        tf = np.asarray(true, dtype=np.float64)
        np.testing.assert_allclose(Hf, tf, rtol=0, atol=1e-12 * float(np.max(np.abs(tf))))
