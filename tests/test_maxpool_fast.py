"""fastpath with max-pooling layers: the float partition walk, the batched region maps and
the distribution of x against independent numerical integrals.

Oracles that share no code with fastpath._walk_regions:
* the forward pass (``net.sign_patterns``, ``net.forward``) at sample points and at the
  regions' interior points;
* ``dgn_core.regions.region_inequalities`` / ``layer_maps`` (loops, one pattern at a time);
* areas of box-clipped S = 2 regions (scipy ConvexHull of the vertices of the clipped
  polygon, computed here by brute force over pairs of rows) summing to the box's area;
* scipy ``quad`` over the regions' breakpoints (S = 1) and a fine midpoint grid (S = 2) for
  ``log p(x) = log int N(x; g(z), s^2 I) N(z; 0, I) dz`` and the posterior mean.

Tolerances: geometric identities 1e-9 relative to the size of the points (the walk's own
tolerances are 1e-9 / 1e-10 relative); affine maps 1e-12 relative; log p(x) 1e-9 absolute
against quad (measured: ~2e-16) and the posterior mean 1e-8 relative; log p(x) 1e-6 against
the S = 2 midpoint grid of step 0.02 on [-7, 7]^2 (its error, measured: <= 3.3e-8).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import integrate
from scipy.spatial import ConvexHull

import fastpath
from dgn_core.model import DGN
from dgn_core.regions import RegionLimitError, layer_maps, region_inequalities
from fastpath._region_maps import affine_maps
from fastpath._walk_regions import one_sided_pattern
from fastpath.partition_walk import layer_maps_batch
from tests.partition_suite import degenerate_max_net, overlap_max_net

NETS = {
    "max-S1": lambda: DGN.random((1, 6, 2), activation="max", pool_sizes=[[3, 3]], seed=1,
                                 noise_var=0.3),
    "max-S2-groups1234": lambda: DGN.random((2, 10, 3), activation="max",
                                            pool_sizes=[[1, 2, 3, 4]], seed=2, noise_var=0.5),
    "relu-max-relu-S2-overlap": lambda: overlap_max_net(seed=3),
    "relu-max-relu-S1": lambda: DGN.random((1, 5, 6, 3, 2), activation=["relu", "max", "relu"],
                                           pool_sizes=[None, [2, 4], None], seed=4),
    "max-abs-S3": lambda: DGN.random((3, 8, 4, 2), activation=["max", "abs"],
                                     pool_sizes=[[2, 2, 4], None], seed=5),
    "max-S3-groups4": lambda: DGN.random((3, 8, 2), activation="max", pool_sizes=[4], seed=6),
    "max-degenerate-S2": lambda: degenerate_max_net(2, seed=7),
    "max-degenerate-S1": lambda: degenerate_max_net(1, seed=8),
}

_CACHE: dict[str, tuple[DGN, fastpath.Partition]] = {}


def get(name: str) -> tuple[DGN, fastpath.Partition]:
    if name not in _CACHE:
        net = NETS[name]()
        _CACHE[name] = (net, fastpath.partition(net))
    return _CACHE[name]


def _scale(P) -> float:
    V = np.concatenate([r.vertices for r in P])
    return 1.0 + float(np.abs(V).max())


def _points(net: DGN, P, n: int, seed: int = 0) -> np.ndarray:
    """Random points over a box that holds every vertex with a margin."""
    L = 1.5 * _scale(P)
    return np.random.default_rng(seed).uniform(-L, L, size=(n, net.latent_dim))


# --------------------------------------------------------------------------- the partition
@pytest.mark.parametrize("name", list(NETS))
def test_patterns_maps_and_interior_points(name):
    net, P = get(name)
    assert P.exact is False and len(P) >= 2
    assert len({r.signs for r in P}) == len(P)
    for r in P:
        z = r.interior_point
        assert tuple(net.sign_patterns(z)[0].tolist()) == r.signs
        g = net.forward(z[None])[0]
        np.testing.assert_allclose(r.A @ z + r.b, g, rtol=1e-12, atol=1e-12 * (1 + np.abs(g).max()))
        if r.n_facets:
            assert np.all(r.C @ z < r.d)  # strictly inside
            np.testing.assert_allclose(np.abs(r.C).max(axis=1), 1.0, rtol=0, atol=1e-15)
        # exactly one +1 per max group
        off = 0
        for w, sizes in zip(net.hidden_widths, net.pool_sizes):
            start = off
            for k in sizes:
                assert sum(s > 0 for s in r.signs[start:start + k]) == 1
                start += k
            off += w


@pytest.mark.parametrize("name", list(NETS))
def test_facets_are_the_units_rows_and_reproduce_the_region(name):
    """Each facet is the normalised row of each of its units; the facets alone cut out the
    region of all the rows (checked at random points)."""
    net, P = get(name)
    Z = _points(net, P, 400)
    for r in P:
        C, d = region_inequalities(net, r.signs)
        for c, dd, units in zip(r.C, r.d, r.facet_units):
            for u in units:
                s = np.abs(C[u]).max()
                np.testing.assert_allclose(C[u] / s, c, rtol=0, atol=1e-9)
                assert abs(d[u] / s - dd) <= 1e-9 * (1 + abs(dd))
        scale = 1e-9 * (1 + np.abs(Z).max())
        full = np.all(Z @ C.T <= d + scale, axis=1)
        facets = np.all(Z @ r.C.T <= r.d + scale, axis=1) if r.n_facets else np.ones(len(Z), bool)
        # points within rounding of a boundary can differ: compare with a margin
        margin = np.min(np.abs(Z @ C.T - d), axis=1) > 1e-6 * (1 + np.abs(Z).max())
        assert np.array_equal(full[margin], facets[margin])


@pytest.mark.parametrize("name", list(NETS))
def test_tiling_and_no_missed_region(name):
    net, P = get(name)
    Z = _points(net, P, 4000, seed=1)
    inside = np.zeros(len(Z), dtype=int)
    for r in P:
        if r.n_facets == 0:
            inside += 1
            continue
        inside += np.all(Z @ r.C.T < r.d, axis=1)
    on_boundary = np.zeros(len(Z), dtype=bool)
    for r in P:
        if r.n_facets:
            on_boundary |= np.any(np.abs(Z @ r.C.T - r.d) <= 1e-9 * (1 + np.abs(Z).max()), axis=1)
    assert np.all(inside[~on_boundary] == 1)  # every point strictly inside exactly one region
    # every sampled pattern is a region, and locate() returns it
    Q = net.sign_patterns(Z)
    found = {r.signs for r in P}
    assert {tuple(q) for q in Q.tolist()} <= found
    idx = P.locate(Z)
    assert all(P[i].signs == tuple(q) for i, q in zip(idx.tolist(), Q.tolist()))


@pytest.mark.parametrize("name", [n for n in NETS if "S2" in n])
def test_s2_box_clipped_areas_sum_to_the_box(name):
    net, P = get(name)
    L = 2.0 * _scale(P)
    box_C = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    box_d = np.full(4, L)
    total = 0.0
    for r in P:
        C, d = np.vstack([r.C, box_C]), np.concatenate([r.d, box_d])
        pts = []
        for i, j in itertools.combinations(range(len(C)), 2):
            M = C[[i, j]]
            if abs(np.linalg.det(M)) < 1e-12:
                continue
            v = np.linalg.solve(M, d[[i, j]])
            if np.all(C @ v <= d + 1e-9 * L):
                pts.append(v)
        pts = np.array(pts)
        if len(pts) >= 3 and np.linalg.matrix_rank(pts[1:] - pts[0], tol=1e-9 * L) == 2:
            total += ConvexHull(pts).volume  # the area in 2-d
    assert abs(total - (2 * L) ** 2) <= 1e-9 * (2 * L) ** 2


@pytest.mark.parametrize("name", list(NETS))
def test_neighbours_share_the_facet_and_are_symmetric(name):
    """Across facet j of region i lies region k, which has the same hyperplane as a facet with
    the opposite normal and region i across it; the pattern changes only in the groups /
    units of the facet's units and in later layers."""
    net, P = get(name)
    offsets = np.concatenate([[0], np.cumsum(net.hidden_widths)])
    for i, r in enumerate(P):
        for c, dd, units, k in zip(r.C, r.d, r.facet_units, r.neighbors):
            assert k >= 0 and k != i
            o = P[k]
            back = [j for j, (c2, d2) in enumerate(zip(o.C, o.d))
                    if np.abs(c2 + c).max() <= 1e-9 and abs(d2 + dd) <= 1e-9 * (1 + abs(dd))]
            assert back and i in [o.neighbors[j] for j in back]
            first = int(np.searchsorted(offsets, min(units), side="right")) - 1
            # the layers before the facet's layer do not change
            assert o.signs[:offsets[first]] == r.signs[:offsets[first]]


def test_bfs_order_from_start_and_max_regions():
    net, P = get("relu-max-relu-S2-overlap")
    z = np.array([0.7, -0.4])
    Q = fastpath.partition(net, start=z)
    assert Q[0].signs == tuple(net.sign_patterns(z)[0].tolist())
    assert {r.signs for r in Q} == {r.signs for r in P}
    # breadth-first: the graph distance from region 0 never decreases along the list
    dist = [0] + [-1] * (len(Q) - 1)
    frontier = [0]
    while frontier:
        nxt = []
        for i in frontier:
            for k in Q[i].neighbors:
                if dist[k] < 0:
                    dist[k] = dist[i] + 1
                    nxt.append(k)
        frontier = nxt
    assert min(dist) == 0 and dist == sorted(dist)
    with pytest.raises(RegionLimitError, match="max_regions=10"):
        fastpath.partition(net, max_regions=10)


def test_start_on_a_boundary_and_one_sided_ties():
    """A start point on an argmax boundary gives a full-dimensional region next to it; the
    one-sided pattern breaks value ties by the derivative, then by the first index."""
    W = np.array([[1.0], [-1.0], [1.0]])  # groups {0, 1, 2}: h0 = h2 = z, h1 = -z
    net = DGN([W, np.ones((2, 1))], [np.zeros(3), np.zeros(2)], activation="max",
              pool_sizes=[[3]])
    P = fastpath.partition(net)  # the origin ties all three units
    assert len(P) == 2
    assert {r.signs for r in P} == {(1, -1, -1), (-1, 1, -1)}
    assert tuple(one_sided_pattern(net, np.zeros(1), np.ones(1))) == (1, -1, -1)
    assert tuple(one_sided_pattern(net, np.zeros(1), -np.ones(1))) == (-1, 1, -1)
    for r in P:
        assert r.n_facets == 1 and len(r.vertices) == 1
        assert np.abs(r.vertices).max() <= 1e-15  # the origin, up to rounding


def test_region_lines_of_an_argmax_half_space():
    """One group of two units at S = 2: two half-planes, each with a line (the exact path's
    convention: lines from the region's own rows, vertices on its minimal face)."""
    W = np.array([[1.0, 2.0], [-1.0, 0.5]])
    net = DGN([W, np.eye(2)[:, :1]], [np.array([0.5, 0.0]), np.zeros(2)], activation="max",
              pool_sizes=[[2]])
    P = fastpath.partition(net)
    assert len(P) == 2
    for r in P:
        assert len(r.lines) == 1 and r.n_facets == 1
        np.testing.assert_allclose(r.lines @ r.C.T, 0, atol=1e-12)
        np.testing.assert_allclose(r.C @ r.vertices.T, r.d[:, None], atol=1e-12)


# --------------------------------------------------------------------------- region maps
@pytest.mark.parametrize("name", list(NETS))
def test_layer_maps_batch_matches_the_loop(name):
    net, P = get(name)
    M, c, A, b = layer_maps_batch(net, P.sign_matrix)
    for p, r in enumerate(P):
        pre, A1, b1 = layer_maps(net, r.signs)
        M1 = np.concatenate([m for m, _ in pre])
        c1 = np.concatenate([cc for _, cc in pre])
        for x, y in ((M[p], M1), (c[p], c1), (A[p], A1), (b[p], b1)):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14 * (1 + np.abs(y).max()))


def test_affine_maps_for_a_net_with_the_same_hidden_layers():
    net, P = get("relu-max-relu-S2-overlap")
    other = net.replace(weights=[*net.weights[:-1], 2.0 * net.weights[-1]])
    A, b = affine_maps(other, P)
    Pz = fastpath.partition(other)
    for r, Ar, br in zip(P, A, b):
        q = Pz[Pz.index_of(r.signs)]
        np.testing.assert_allclose(Ar, q.A, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(br, q.b, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="different network"):
        fastpath.log_marginal(net.replace(pool_sizes=[None, [2, 1, 3], None]),
                              np.zeros((1, 2)), partition=P)


def test_winners_batch_refuses_bad_patterns():
    net, P = get("max-S1")
    bad = P.sign_matrix.copy()
    bad[0, :3] = 1
    with pytest.raises(ValueError, match="exactly one"):
        layer_maps_batch(net, bad)


# --------------------------------------------------------------------------- distributions
def _log_density(net: DGN, Z: np.ndarray, x: np.ndarray) -> np.ndarray:
    G = net.forward(Z)
    s2 = float(net.noise_var)
    D, S = G.shape[1], Z.shape[1]
    return (-0.5 * np.sum((x - G) ** 2, axis=1) / s2 - 0.5 * D * np.log(2 * np.pi * s2)
            - 0.5 * np.sum(Z ** 2, axis=1) - 0.5 * S * np.log(2 * np.pi))


@pytest.mark.parametrize("name", ["max-S1", "relu-max-relu-S1", "max-degenerate-S1"])
def test_log_marginal_and_posterior_mean_s1_against_quad(name):
    net, P = get(name)
    X = net.sample(4, seed=11)
    X = X[0] if isinstance(X, tuple) else X
    post = fastpath.posterior(net, X, partition=P)
    lm = fastpath.log_marginal(net, X, partition=P)
    np.testing.assert_allclose(post.log_px, lm, rtol=0, atol=1e-12)
    # the kinks (a region's endpoint and its neighbour's can differ by rounding: one
    # each), and a fine split of the prior's bulk (a sharp likelihood at small noise)
    cuts = np.sort(np.concatenate([np.concatenate([r.vertices[:, 0] for r in P]),
                                   np.linspace(-12.0, 12.0, 241)]))
    cuts = cuts[np.concatenate([[True], np.diff(cuts) > 1e-6])]
    edges = [-np.inf, *cuts.tolist(), np.inf]
    for x, l, m in zip(X, lm, post.mean):
        def f(z, k=0, x=x):
            return z ** k * np.exp(_log_density(net, np.array([[z]]), x)[0])
        # absolute tolerance 1e-15 p(x) (p(x) from the tested value, only as a scale): the
        # far pieces underflow to 0, where a purely relative tolerance cannot be met
        p = sum(integrate.quad(f, a, b, epsabs=1e-15 * np.exp(l), epsrel=1e-12, limit=200)[0]
                for a, b in zip(edges[:-1], edges[1:]))
        m1 = sum(integrate.quad(f, a, b, args=(1,), epsabs=1e-14 * p, epsrel=1e-12,
                                limit=200)[0] for a, b in zip(edges[:-1], edges[1:]))
        assert abs(l - np.log(p)) <= 1e-9
        assert abs(m[0] - m1 / p) <= 1e-8 * (1 + abs(m1 / p))


@pytest.mark.parametrize("name", ["max-S2-groups1234", "max-degenerate-S2"])
def test_log_marginal_s2_against_a_grid(name):
    net, P = get(name)
    X = net.sample(3, seed=12)
    X = X[0] if isinstance(X, tuple) else X
    lm = fastpath.log_marginal(net, X, partition=P)
    h = 0.02
    t = np.arange(-7.0 + h / 2, 7.0, h)  # the prior mass outside is below 1e-11
    Z = np.stack(np.meshgrid(t, t, indexing="ij"), axis=-1).reshape(-1, 2)
    for x, l in zip(X, lm):
        ld = _log_density(net, Z, x)
        mx = ld.max()
        grid = mx + np.log(np.sum(np.exp(ld - mx)) * h * h)
        assert abs(l - grid) <= 1e-6  # measured: 3.3e-8 (1.2e-8 with h = 0.01)


def test_start_whose_forward_pattern_is_not_a_region():
    """h0 = 0, h1 = z, h2 = -z in one group: at the origin the first index wins, whose argmax
    cell is the point {0}; the walk starts on a full-dimensional side (+e1 first)."""
    W = np.array([[0.0], [1.0], [-1.0]])
    net = DGN([W, np.ones((2, 1))], [np.zeros(3), np.zeros(2)], activation="max",
              pool_sizes=[[3]])
    assert tuple(net.sign_patterns(np.zeros(1))[0]) == (1, -1, -1)
    P = fastpath.partition(net)
    assert [r.signs for r in P] == [(-1, 1, -1), (-1, -1, 1)]
    assert P[0].neighbors == (1,) and P[1].neighbors == (0,)


def test_neighbour_fallback_by_points_agrees(monkeypatch):
    """With the one-sided rule disabled (it returns the region's own pattern), the fallback
    that steps off each facet finds the same neighbours."""
    import fastpath._walk_regions as wr

    net, P = get("relu-max-relu-S2-overlap")

    def own_patterns(net, P, N, rtol=wr.RTOL):
        return net.sign_patterns(P - 1e-6 * N)

    monkeypatch.setattr(wr, "one_sided_patterns", own_patterns)
    Q = fastpath.partition(net)
    assert [r.signs for r in Q] == [r.signs for r in P]
    assert [r.neighbors for r in Q] == [r.neighbors for r in P]


def test_units_equal_up_to_rounding_are_one_documented_difference():
    """h0 = 0.1 * 3 z (= 0.30000000000000004 z) and h1 = 0.3 z differ by 5.6e-17 z, below
    the walk's zero-row tolerance (1e-10 of the rows' size): the float walk treats them as
    tied everywhere (unit 0 wins), where the exact path (the float weights as rationals)
    also has the region z in (-5 / 1.3, 0) in which unit 1 wins. The forward pattern there
    is not a region of the fast partition; locate() still places such points (in the
    region that holds them, up to the merged hyperplane)."""
    W = np.array([[0.1 * 3], [0.3], [-1.0]])
    net = DGN([W, np.ones((2, 1))], [np.array([0.0, 0.0, -5.0]), np.zeros(2)],
              activation="max", pool_sizes=[[3]])
    P = fastpath.partition(net)
    assert [r.signs for r in P] == [(1, -1, -1), (-1, -1, 1)]
    np.testing.assert_allclose(P[0].vertices, [[-5 / 1.3]], rtol=1e-14)
    assert tuple(net.sign_patterns(np.array([-1.0]))[0]) == (-1, 1, -1)
    assert P.locate(np.array([[-1.0], [-6.0]])).tolist() == [0, 1]


def test_progress_line(capsys):
    net, P = get("max-S1")
    Q = fastpath.partition(net, progress=True)
    assert len(Q) == len(P)
    assert f"partition: {len(P)} regions in" in capsys.readouterr().err


def test_one_region_when_a_unit_always_wins():
    """h1 = h0 + 1: unit 1 wins everywhere; the partition is R^S, with the conventions of a
    net without hidden layers (lines the identity, the origin as vertex)."""
    W = np.array([[1.0, -2.0], [1.0, -2.0]])
    net = DGN([W, np.ones((3, 1))], [np.array([0.0, 1.0]), np.zeros(3)], activation="max",
              pool_sizes=[[2]])
    P = fastpath.partition(net)
    assert len(P) == 1 and P[0].signs == (-1, 1) and P[0].n_facets == 0
    np.testing.assert_array_equal(P[0].lines, np.eye(2))
    np.testing.assert_array_equal(P[0].vertices, np.zeros((1, 2)))
    np.testing.assert_allclose(P[0].A, np.ones((3, 1)) @ W[1:], rtol=0, atol=0)


def test_log_marginal_s3_against_monte_carlo():
    """S = 3 (max -> abs): p(x) = E_z N(x; g(z), s^2 I) over 1e6 prior draws (fixed seed);
    the fast value within 5 standard errors (measured: 0.24, 0.37, 0.89)."""
    net = NETS["max-abs-S3"]().replace(noise_var=0.5)
    P = fastpath.partition(net)
    X = net.sample(3, seed=1)
    X = X[0] if isinstance(X, tuple) else X
    lm = fastpath.log_marginal(net, X, partition=P)
    Z = np.random.default_rng(0).standard_normal((1_000_000, 3))
    G = net.forward(Z)
    D = G.shape[1]
    for x, l in zip(X, lm):
        w = np.exp(-np.sum((x - G) ** 2, axis=1) - 0.5 * D * np.log(2 * np.pi * 0.5))
        se = w.std() / np.sqrt(len(w))
        assert abs(np.exp(l) - w.mean()) <= 5 * se


# --------------------------------------------------------------------------- S = 1 sweep
def _walk_only(monkeypatch, net):
    """The partition by the breadth-first walk, the S = 1 sweep switched off."""
    from fastpath import _walk_regions

    with monkeypatch.context() as mp:
        mp.setattr(_walk_regions, "_line_partition", lambda *a: None)
        return fastpath.partition(net)


def _same_partition(P, W):
    """Same regions in the same order, same neighbours and facet units; geometry within
    1e-12 relative (measured: equal up to rounding); vertices and rays as sets (their order
    is that of the enumeration that found them, not part of the result)."""
    assert [r.signs for r in P] == [r.signs for r in W]
    for a, b in zip(P, W):
        assert a.neighbors == b.neighbors and a.facet_units == b.facet_units
        for x, y in ((a.vertices, b.vertices), (a.rays, b.rays)):
            assert x.shape == y.shape
            for row in x:
                assert np.abs(y - row).max(axis=1).min() <= 1e-12 * (1 + np.abs(y).max())
        for x, y in ((a.C, b.C), (a.d, b.d), (a.interior_point, b.interior_point),
                     (a.A, b.A), (a.b, b.b)):
            assert x.shape == y.shape
            if y.size:
                np.testing.assert_allclose(x, y, rtol=1e-12,
                                           atol=1e-12 * (1 + np.abs(y).max()))


@pytest.mark.parametrize("name", [n for n in NETS if n.endswith("S1")])
def test_line_sweep_equals_the_walk(name, monkeypatch):
    """S = 1: the sweep (proposed patterns checked by closure) is used and gives the walk's
    partition, region numbering included."""
    from fastpath import _walk_regions

    net = NETS[name]()
    swept = _walk_regions._line_partition(net, 100_000, np.zeros(1))
    assert swept is not None
    _same_partition(fastpath.partition(net), _walk_only(monkeypatch, net))


def test_line_sweep_falls_back_when_a_region_is_missed(monkeypatch):
    """A proposal that misses a region fails the closure check: the walk runs instead and
    the result is unchanged."""
    from fastpath import _walk_regions

    net = NETS["relu-max-relu-S1"]()
    ref = _walk_only(monkeypatch, net)
    full = _walk_regions.line_patterns(net)
    assert len(full) == len(ref)
    monkeypatch.setattr(_walk_regions, "line_patterns", lambda n: full[np.arange(len(full)) != 2])
    assert _walk_regions._line_partition(net, 100_000, np.zeros(1)) is None
    _same_partition(fastpath.partition(net), ref)


@pytest.mark.parametrize("name", ["max-S2-groups1234", "relu-max-relu-S2-overlap",
                                  "max-degenerate-S2", "max-abs-S3"])
def test_proposed_regions_do_not_change_the_partition(name, monkeypatch):
    """S >= 2: the regions proposed from sample points only change the order of work; the
    walk without them (breadth first from the start region alone) gives the same regions,
    numbering, neighbours and geometry (1e-12)."""
    from fastpath import _walk_regions

    net = NETS[name]()
    assert len(_walk_regions._proposals(net, np.zeros(net.latent_dim))) >= 2
    with_props = fastpath.partition(net)
    monkeypatch.setattr(_walk_regions, "_proposals", lambda n, z: [])
    _same_partition(with_props, fastpath.partition(net))
