"""fastpath.partition on its own: properties, degenerate nets, independent oracles.

Oracles that share no code with fastpath._arrangement / fastpath.partition_walk:
* ``reference_walk``: a slow breadth-first region walk written here with scipy LPs (facets by
  LP non-redundancy, neighbours by a forward pass at a point just across each facet);
* vertices and rays by brute-force enumeration of S-subsets of the facet rows;
* regions.layer_maps (loop) for the batched affine maps;
* closed-form region counts of one-hidden-layer arrangements;
* dense sampling, and exact rational re-verification of every region's interior point.

Tolerances: LP and enumeration checks use 1e-7 relative to the scale of the rows and points
(HiGHS's feasibility tolerance is 1e-7); vertex comparisons 1e-9 relative to max(1, |v|)
(the fast vertices are accurate to ~1e-14 relative, measured against exact solves);
affine maps rtol 1e-12 (the same products in a different summation order).

``--runslow`` adds the wide nets and the exact checks of dense sampling.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from scipy.optimize import linprog

import fastpath
from dgn_core.regions import layer_maps, normalize_rows, region_inequalities
from tests.partition_suite import QUICK_NAMES, degenerate_net, get_net
from verified_dgn import DGN, Partition, RegionLimitError

LP_TOL = 1e-7


@pytest.fixture(scope="module")
def parts() -> dict[str, Partition]:
    return {}


def fast(name: str, parts: dict[str, Partition]) -> Partition:
    if name not in parts:
        parts[name] = fastpath.partition(get_net(name))
    return parts[name]


def _sample(P: Partition, k: int, seed: int = 0) -> list[int]:
    """Up to k region indices (all when there are few)."""
    if len(P) <= k:
        return list(range(len(P)))
    return sorted(np.random.default_rng(seed).choice(len(P), size=k, replace=False).tolist())


def _scale(P: Partition) -> float:
    V = np.concatenate([r.vertices for r in P])
    return 1.0 + float(np.abs(V).max()) if V.size else 1.0


# --------------------------------------------------------------------------- reference
def _lp_max(c, A_ub, b_ub, A_eq=None, b_eq=None):
    res = linprog(-np.asarray(c), A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq,
                  bounds=[(None, None)] * len(c), method="highs")
    return res


def reference_walk(net: DGN, seed: int = 0) -> dict[tuple, dict[tuple, tuple]]:
    """Slow, obviously-correct partition: {signs: {facet_units: neighbour signs}}.

    Breadth-first walk. A region's nonzero constraint rows (eq. 8) are normalised and
    identical rows grouped (duplicates and positive multiples); a group is a facet when an LP
    shows that relaxing it enlarges the region. The neighbour is the pattern of a forward
    pass at a point just across the facet's Chebyshev centre.
    """
    S = net.latent_dim
    z0 = np.random.default_rng(seed).normal(size=S) * 1e-3
    q0 = tuple(net.sign_patterns(z0)[0].tolist())
    out: dict[tuple, dict[tuple, tuple]] = {}
    queue, seen = [q0], {q0}
    while queue:
        q = queue.pop(0)
        C, d = region_inequalities(net, q)
        nz = np.flatnonzero(np.abs(C).max(axis=1) > 0)
        Cn, dn = normalize_rows(C[nz], d[nz])
        groups: dict[int, list[int]] = {}
        for i in range(len(nz)):
            for g in groups:
                if np.allclose(Cn[i], Cn[g], rtol=0, atol=1e-12) and \
                        abs(dn[i] - dn[g]) <= 1e-12 * (1 + abs(dn[g])):
                    groups[g].append(int(nz[i]))
                    break
            else:
                groups[i] = [int(nz[i])]
        reps = list(groups)
        Cu, du = Cn[reps], dn[reps]
        facets = {}
        for j, g in enumerate(reps):
            b = du.copy()
            b[j] += 1.0
            res = _lp_max(Cu[j], Cu, b)
            assert res.status == 0
            if -res.fun <= du[j] + LP_TOL * (1 + abs(du[j])):
                continue  # redundant
            # Chebyshev centre of the facet: max t with the other rows at distance >= t
            others = [i for i in range(len(reps)) if i != j]
            norms = np.linalg.norm(Cu[others], axis=1)
            A_ub = np.hstack([Cu[others], norms[:, None]])
            A_ub = np.vstack([A_ub, np.r_[np.zeros(S), 1.0]])
            b_ub = np.r_[du[others], 1.0]
            res = _lp_max(np.r_[np.zeros(S), 1.0], A_ub, b_ub,
                          A_eq=np.r_[Cu[j], 0.0][None], b_eq=[du[j]])
            assert res.status == 0 and res.x[-1] > 0
            zf, t = res.x[:S], res.x[-1]
            n = Cu[j] / np.linalg.norm(Cu[j])
            qn = tuple(net.sign_patterns(zf + 1e-3 * t * n)[0].tolist())
            facets[tuple(sorted(groups[g]))] = qn
            if qn not in seen:
                seen.add(qn)
                queue.append(qn)
        out[q] = facets
    return out


def enumerate_vertices_rays(C: np.ndarray, d: np.ndarray, tol: float
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and extreme rays of the pointed polyhedron {C z <= d} by brute force over
    S-subsets (vertices) and (S-1)-subsets (rays) of the rows."""
    m, S = C.shape
    V, R = [], []
    for J in itertools.combinations(range(m), S):
        A = C[list(J)]
        if abs(np.linalg.det(A)) < 1e-12:
            continue
        v = np.linalg.solve(A, d[list(J)])
        if np.all(C @ v <= d + tol * (1 + np.abs(v).max())):
            if not any(np.abs(v - w).max() <= tol * (1 + np.abs(v).max()) for w in V):
                V.append(v)
    for J in itertools.combinations(range(m), S - 1):
        A = C[list(J)]
        _, sv, Vt = np.linalg.svd(A.reshape(S - 1, S), full_matrices=True)
        if S > 1 and sv.min() < 1e-12:
            continue
        base = Vt[-1]
        for r in (base, -base):
            r = r / np.abs(r).max()
            if np.all(C @ r <= tol):
                if not any(np.abs(r - w).max() <= tol for w in R):
                    R.append(r)
    return np.array(V).reshape(-1, S), np.array(R).reshape(-1, S)


def _same_rows(A: np.ndarray, B: np.ndarray, tol: float) -> bool:
    if A.shape != B.shape:
        return False
    used = set()
    for a in A:
        dist = np.abs(B - a).max(axis=1) if len(B) else np.array([])
        ok = [i for i in np.flatnonzero(dist <= tol * max(1.0, np.abs(a).max())) if i not in used]
        if not ok:
            return False
        used.add(ok[0])
    return True


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("name", QUICK_NAMES)
def test_region_fields_shapes_and_normalisation(name, parts):
    net = get_net(name)
    P = fast(name, parts)
    S, D, n = net.latent_dim, net.data_dim, net.n_hidden_units
    assert isinstance(P, Partition) and not P.exact and len(P) >= 1
    for r in P:
        assert len(r.signs) == n and set(r.signs) <= {-1, 1}
        m = r.n_facets
        assert r.A.shape == (D, S) and r.b.shape == (D,) and r.A.dtype == np.float64
        assert r.C.shape == (m, S) and r.d.shape == (m,)
        assert r.vertices.shape[1:] == (S,) and r.rays.shape[1:] == (S,)
        assert r.lines.shape[1:] == (S,) and r.interior_point.shape == (S,)
        assert len(r.facet_units) == m and len(r.neighbors) == m
        assert all(list(u) == sorted(u) and len(u) >= 1 for u in r.facet_units)
        if m:
            np.testing.assert_allclose(np.abs(r.C).max(axis=1), 1.0, rtol=0, atol=1e-15)
        if len(r.rays):
            np.testing.assert_allclose(np.abs(r.rays).max(axis=1), 1.0, rtol=0, atol=1e-15)
        assert r.bounded == (len(r.rays) == 0 and len(r.lines) == 0)
        assert len(r.vertices) >= 1  # pointed pieces have a vertex; else a minimal face point
        for a in (r.A, r.b, r.C, r.d, r.vertices, r.rays, r.interior_point):
            assert not a.flags.writeable
    # every first-layer unit with a nonzero row is a hyperplane of R^S: on some facet (not
    # so for a max layer: a unit that never wins its group, or a group of one, has none)
    if n and not net.pool_sizes[0]:
        W1 = net.weights[0]
        on_facets = {u for r in P for fu in r.facet_units for u in fu}
        assert {k for k in range(W1.shape[0]) if np.any(W1[k] != 0)} <= on_facets


@pytest.mark.parametrize("name", QUICK_NAMES)
def test_interior_points_have_the_pattern_and_locate(name, parts):
    net = get_net(name)
    P = fast(name, parts)
    IP = np.array([r.interior_point for r in P])
    Q = net.sign_patterns(IP)
    for r, q in zip(P, Q):
        assert tuple(q.tolist()) == r.signs
        assert r.contains(r.interior_point)
        if r.n_facets:  # strictly inside every facet
            assert np.all(r.C @ r.interior_point < r.d)
    np.testing.assert_array_equal(P.locate(IP), np.arange(len(P)))


@pytest.mark.parametrize("name", QUICK_NAMES)
def test_affine_maps_equal_layer_maps(name, parts):
    net = get_net(name)
    P = fast(name, parts)
    for r in P:
        pre, A, b = layer_maps(net, r.signs)
        np.testing.assert_allclose(r.A, A, rtol=1e-12, atol=1e-14 * np.abs(A).max())
        np.testing.assert_allclose(r.b, b, rtol=1e-12, atol=1e-14 * (1 + np.abs(b).max()))
    np.testing.assert_allclose(P.A_stack, np.array([r.A for r in P]), rtol=0, atol=0)
    # the batched kernel against the loop version
    from fastpath.partition_walk import layer_maps_batch
    if net.n_hidden_units:
        M, c, A, b = layer_maps_batch(net, P.sign_matrix)
        for i in _sample(P, 20):
            pre, A1, b1 = layer_maps(net, P[i].signs)
            np.testing.assert_allclose(M[i], np.concatenate([m for m, _ in pre]), rtol=1e-12,
                                       atol=1e-14)
            np.testing.assert_allclose(c[i], np.concatenate([x for _, x in pre]), rtol=1e-12,
                                       atol=1e-14)


@pytest.mark.parametrize("name", QUICK_NAMES)
def test_facets_are_tight_non_redundant_and_reproduce_the_region(name, parts):
    """Checked with scipy LPs: every facet is needed; every constraint of eq. 8 is implied by
    the facets; facet_units are exactly the units whose normalised row equals the facet."""
    net = get_net(name)
    P = fast(name, parts)
    for i in _sample(P, 10):
        r = P[i]
        C, d = r.C, r.d
        Call, dall = region_inequalities(net, r.signs)
        nz = np.abs(Call).max(axis=1) > 0
        assert np.all(dall[~nz] >= 0)  # constant units: 0 <= q_k c_k
        Cn, dn = normalize_rows(Call[nz], dall[nz])
        units = np.flatnonzero(nz)
        for j in range(r.n_facets):
            b = d.copy()
            b[j] += 1.0
            res = _lp_max(C[j], C, b)
            # relaxing facet j must enlarge the region (the gain is positive, not tiny)
            assert res.status == 0 and -res.fun > d[j] + 1e-6 * (1 + abs(d[j]))
            same = [int(u) for u, c_, d_ in zip(units, Cn, dn)
                    if np.abs(c_ - C[j]).max() <= 1e-9 and abs(d_ - d[j]) <= 1e-9 * (1 + abs(d[j]))]
            assert tuple(same) == r.facet_units[j]
        if r.n_facets == 0:
            assert not nz.any()
            continue
        for c_, d_ in zip(Cn, dn):
            res = _lp_max(c_, C, d)
            assert res.status == 0, "a constraint of eq. 8 is unbounded over the facets"
            assert -res.fun <= d_ + LP_TOL * (1 + abs(d_) + np.abs(res.x).max())


@pytest.mark.parametrize("name", QUICK_NAMES)
def test_vertices_and_rays_match_brute_force_enumeration(name, parts):
    P = fast(name, parts)
    for i in _sample(P, 40):
        r = P[i]
        if len(r.lines):
            # project out the lineality space: coordinates in its orthogonal complement
            Q, _ = np.linalg.qr(r.lines.T, mode="complete")
            B = Q[:, len(r.lines):]  # (S, S - l)
            C, d = r.C @ B, r.d
            np.testing.assert_allclose(r.vertices @ r.lines.T, 0, atol=1e-12)
            if len(r.rays):
                np.testing.assert_allclose(r.rays @ r.lines.T, 0, atol=1e-12)
            V, R = r.vertices @ B, r.rays @ B
            if R.size:
                R = R / np.abs(R).max(axis=1, keepdims=True)
            if C.shape[1] == 0:
                continue
            s = np.abs(C).max(axis=1)
            C, d = C / s[:, None], d / s
        else:
            C, d, V, R = r.C, r.d, r.vertices, r.rays
        Ve, Re = enumerate_vertices_rays(C, d, 1e-9)
        assert _same_rows(Ve, V, 1e-9), (Ve, V)
        assert _same_rows(Re, R, 1e-9), (Re, R)


@pytest.mark.parametrize("name", QUICK_NAMES)
def test_neighbours_symmetric_and_across_each_facet(name, parts):
    """The neighbour shares the facet with opposite orientation, and a forward pass at a
    point just across the facet's centre has the neighbour's pattern (loop check of the
    vectorised rule)."""
    net = get_net(name)
    P = fast(name, parts)
    for i, r in enumerate(P):
        for j, nb in enumerate(r.neighbors):
            assert 0 <= nb < len(P) and nb != i
            back = [k for k, m in enumerate(P[nb].neighbors) if m == i]
            assert len(back) == 1
            k = back[0]
            np.testing.assert_allclose(P[nb].C[k], -r.C[j], rtol=0, atol=1e-12)
            assert abs(P[nb].d[k] + r.d[j]) <= 1e-12 * (1 + abs(r.d[j]))
    for i in _sample(P, 30):
        r = P[i]
        for j, nb in enumerate(r.neighbors):
            on = np.abs(r.vertices @ r.C[j] - r.d[j]) <= 1e-9 * (1 + np.abs(r.vertices).max())
            assert on.any()
            zf = r.vertices[on].mean(axis=0)
            ron = np.abs(r.rays @ r.C[j]) <= 1e-12 if len(r.rays) else np.zeros(0, bool)
            if ron.any():
                zf = zf + r.rays[ron].mean(axis=0)
            # the facet's extent bounds how far a step stays next to this facet
            ext = 1.0 + np.abs(r.vertices[on] - zf).max()
            z = zf + 1e-7 * ext * r.C[j]
            assert tuple(net.sign_patterns(z)[0].tolist()) == P[nb].signs


@pytest.mark.parametrize("name", QUICK_NAMES)
def test_regions_tile_sampled_points(name, parts):
    """Sampled points lie in the interior of exactly one region (points within 1e-9 of a
    facet are skipped), and locate() returns that region."""
    net = get_net(name)
    P = fast(name, parts)
    S = net.latent_dim
    rng = np.random.default_rng(7)
    sc = _scale(P)
    Z = np.concatenate([rng.normal(size=(300, S)), rng.normal(size=(300, S)) * sc])
    slack = np.full((len(Z), len(P)), -np.inf)
    for i, r in enumerate(P):
        if r.n_facets:
            slack[:, i] = ((Z @ r.C.T - r.d) / (1 + np.abs(r.d))).max(axis=1)
    inside = slack < -1e-9
    clear = np.all(np.abs(slack) > 1e-9, axis=1)
    assert clear.mean() > 0.95
    assert np.all(inside[clear].sum(axis=1) == 1)
    np.testing.assert_array_equal(P.locate(Z[clear]), inside[clear].argmax(axis=1))


# --------------------------------------------------------------------------- oracles
@pytest.mark.parametrize("name", ["relu-S1-[1,8,8,1]", "degenerate-relu-S2", "width1-S2",
                                  "biasfree-abs-S3", "relu-dead-layer"])
def test_matches_reference_lp_walk(name, parts):
    net = get_net(name)
    P = fast(name, parts)
    ref = reference_walk(net)
    assert set(ref) == {r.signs for r in P}
    for r in P:
        got = {fu: P[nb].signs for fu, nb in zip(r.facet_units, r.neighbors)}
        assert got == ref[r.signs]


@pytest.mark.slow
@pytest.mark.parametrize("widths, act, seed", [
    ((2, 12, 12, 2), "relu", 1), ((2, 10, 10, 2), "abs", 2), ((3, 8, 6, 2), "leaky_relu", 3),
    ((1, 16, 16, 16, 1), "relu", 4), ((2, 8, 8, 2), "relu", 5),
    ((2, 7, 6, 3), "leaky_relu", 105),
])
def test_matches_reference_lp_walk_slow(widths, act, seed):
    net = DGN.random(widths, activation=act, seed=seed)
    P = fastpath.partition(net)
    ref = reference_walk(net)
    assert set(ref) == {r.signs for r in P}
    for r in P:
        assert {fu: P[nb].signs for fu, nb in zip(r.facet_units, r.neighbors)} == ref[r.signs]


@pytest.mark.parametrize("S, n, init", [
    (1, 20, "torch"), (2, 32, "torch"), (3, 16, "torch"), (4, 10, "torch"),
    (2, 24, "he"), (3, 12, "he"),
])
def test_one_hidden_layer_counts_match_arrangement_formula(S, n, init):
    """n hyperplanes in general position in R^S cut it into sum_{i<=S} C(n, i) regions;
    n central planes in general position: 2n (S = 2), n(n - 1) + 2 (S = 3)."""
    net = DGN.random((S, n, 2), init=init, seed=200 + S + n)
    P = fastpath.partition(net)
    if init == "torch":
        expected = sum(math.comb(n, i) for i in range(S + 1))
    else:
        expected = {2: 2 * n, 3: n * (n - 1) + 2}[S]
    assert len(P) == expected
    # every facet is one unit, and every unit is a facet of some region
    assert all(len(u) == 1 for r in P for u in r.facet_units)
    assert {u[0] for r in P for u in r.facet_units} == set(range(n))


def _exact_interior_check(net: DGN, P: Partition) -> None:
    """Every region's interior point, as an exact rational, satisfies its nonzero rows of
    eq. 8 strictly (the region is full-dimensional with exactly this pattern)."""
    for r in P:
        C, d = region_inequalities(net, r.signs, exact=True)
        z = [Fraction(float(t)) for t in r.interior_point]
        for row, rhs in zip(C, d):
            lhs = sum((a * b for a, b in zip(row, z)), Fraction(0))
            if all(a == 0 for a in row):
                assert rhs >= 0
            else:
                assert lhs < rhs


def _dense_points(P: Partition, n: int, seed: int) -> np.ndarray:
    S = P.net.latent_dim
    rng = np.random.default_rng(seed)
    sc = _scale(P)
    pts = [rng.normal(size=(n, S)) * s for s in (0.1, 1.0, sc / 4, sc, 4 * sc)]
    if S <= 2:
        g = np.linspace(-1.2 * sc, 1.2 * sc, int(n ** (1 / S)) + 1)
        pts.append(np.stack(np.meshgrid(*[g] * S), axis=-1).reshape(-1, S))
    return np.concatenate(pts)


def test_dense_sampling_finds_no_missed_region_quick():
    net = DGN.random((2, 10, 10, 2), activation="leaky_relu", seed=300)
    P = fastpath.partition(net)
    Z = _dense_points(P, 20_000, seed=1)
    found = {tuple(q) for q in net.sign_patterns(Z).tolist()}
    assert found <= {r.signs for r in P}
    assert len(found) >= 0.8 * len(P)  # the sampling is dense enough to mean something
    _exact_interior_check(net, P)


@pytest.mark.slow
@pytest.mark.parametrize("widths, act, seed", [
    ((1, 32, 32, 1), "relu", 1), ((1, 16, 16, 16, 1), "abs", 2),
    ((2, 32, 32, 2), "relu", 3), ((2, 32, 32, 2), "abs", 4),
    ((2, 16, 16, 16, 2), "leaky_relu", 5),
])
def test_dense_sampling_finds_no_missed_region_slow(widths, act, seed):
    net = DGN.random(widths, activation=act, seed=seed)
    P = fastpath.partition(net)
    Z = _dense_points(P, 400_000, seed=seed)
    found = {tuple(q) for q in net.sign_patterns(Z).tolist()}
    assert found <= {r.signs for r in P}
    _exact_interior_check(net, P)


# --------------------------------------------------------------------------- degenerate nets
def test_shared_parallel_dead_and_zero_units():
    net = degenerate_net(2, "relu", seed=400)
    P = fastpath.partition(net)
    on0 = [u for r in P for u in r.facet_units if 0 in u]
    assert on0 and all(u[:4] == (0, 1, 2, 3) for u in on0)
    assert any(u == (4,) for r in P for u in r.facet_units)  # parallel, not shared
    for r in P:
        assert r.signs[0] == r.signs[1] == r.signs[2] == -r.signs[3]
        assert r.signs[6] == -1 and r.signs[7] == 1  # dead (h = -0.25); zero (0 -> +1)
        assert r.signs[8 + 3] == -1                   # layer-2 dead unit
        assert r.signs[8] == r.signs[9]               # layer-2 duplicate
        assert all(k not in u for u in r.facet_units for k in (6, 7, 11))


def test_duplicates_create_no_sliver_regions():
    """Removing duplicated / proportional units leaves the same regions. (Only units whose
    removal keeps every other hyperplane unchanged: copies in the last hidden layer, and
    copies in layer 1 of a net with one hidden layer.)"""
    net = degenerate_net(2, "leaky_relu", seed=401)
    P = fastpath.partition(net)
    W1, W2, W3 = net.weights
    v1, v2, v3 = net.biases
    keep2 = [0, 3, 4, 5]  # drop layer-2 units 1 and 2 (copy and negation of unit 0)
    reduced = DGN([W1, W2[keep2], W3[:, keep2]], [v1, v2[keep2], v3],
                  activation="leaky_relu", slope=net.slope)
    Pr = fastpath.partition(reduced)
    cols = list(range(8)) + [8 + k for k in keep2]
    assert len(P) == len(Pr)
    assert {tuple(r.signs[c] for c in cols) for r in P} == {r.signs for r in Pr}

    one = DGN([W1, np.ones((2, 8))], [v1, v3],
              activation="leaky_relu", slope=net.slope)
    keep1 = [0, 4, 5, 6, 7]  # drop units 1, 2, 3 (on unit 0's hyperplane)
    one_reduced = DGN([W1[keep1], np.ones((2, 5))], [v1[keep1], v3],
                      activation="leaky_relu", slope=net.slope)
    P1, P1r = fastpath.partition(one), fastpath.partition(one_reduced)
    assert len(P1) == len(P1r)
    assert {tuple(r.signs[c] for c in keep1) for r in P1} == {r.signs for r in P1r}


def test_bias_free_regions_are_cones_at_the_origin():
    net = DGN.random((3, 8, 8, 2), init="he", activation="abs", seed=402)
    P = fastpath.partition(net)
    assert len(P) > 10
    for r in P:
        np.testing.assert_array_equal(r.vertices, np.zeros((1, 3)))
        np.testing.assert_allclose(r.d, 0.0, atol=0)
        assert len(r.rays) >= 3


def test_width_one_layer_and_rank_deficient_w1_give_lines():
    net = DGN.random((2, 1, 4, 2), seed=403)
    P = fastpath.partition(net)
    w = net.weights[0][0]
    for r in P:
        assert r.lines.shape == (1, 2)
        np.testing.assert_allclose(r.lines @ w, 0, atol=1e-15)
        np.testing.assert_allclose(r.vertices @ r.lines[0], 0, atol=1e-12)
    from tests.partition_suite import rank_deficient_net
    net = rank_deficient_net("relu", seed=404)
    P = fastpath.partition(net)
    for r in P:
        assert r.lines.shape == (1, 3)
        np.testing.assert_allclose(net.weights[0] @ r.lines[0], 0, atol=1e-14)


def test_no_hidden_layer_single_region():
    net = DGN.random((3, 2), seed=405)
    P = fastpath.partition(net)
    assert len(P) == 1
    r = P[0]
    assert r.signs == () and r.n_facets == 0 and r.facet_units == () and r.neighbors == ()
    np.testing.assert_array_equal(r.A, net.weights[0])
    np.testing.assert_array_equal(r.lines, np.eye(3))
    np.testing.assert_array_equal(r.vertices, np.zeros((1, 3)))
    np.testing.assert_array_equal(P.locate(np.ones((4, 3))), np.zeros(4))


def test_all_units_constant_single_region():
    net = DGN.random((2, 3, 3, 2), seed=406)
    W1 = np.zeros((3, 2))
    net = net.replace(weights=[W1, *net.weights[1:]])
    P = fastpath.partition(net)
    assert len(P) == 1 and P[0].n_facets == 0 and P[0].lines.shape == (2, 2)
    assert P[0].signs == tuple(net.sign_patterns(np.zeros(2))[0].tolist())


@pytest.mark.parametrize("k", [-12, 12])
def test_latent_scaling_scales_the_geometry(k):
    """g(2^k z): hyperplanes scale by 2^-k exactly, so does every vertex; the tolerances are
    relative, so the partition must be the same (vertices up to ~4e3 * 4e4)."""
    net = DGN.random((2, 16, 16, 2), activation="abs", seed=407)
    scaled = net.replace(weights=[net.weights[0] * 2.0 ** k, *net.weights[1:]])
    P, Ps = fastpath.partition(net), fastpath.partition(scaled)
    assert {r.signs for r in P} == {r.signs for r in Ps}
    for r in P:
        rs = Ps[Ps.index_of(r.signs)]
        assert r.facet_units == rs.facet_units
        assert _same_rows(rs.vertices * 2.0 ** k, r.vertices, 1e-12)


def test_many_units_and_many_generators():
    """71 lines tangent to the unit circle: more than 64 units (two words of incidence bits)
    and a 71-gon (tight sets over more than 64 generators). No two are parallel (71 is odd)
    and no three concurrent (a point has at most two tangents): 1 + 71 + C(71, 2) regions."""
    k = 71
    th = 2 * np.pi * np.arange(k) / k
    W1 = np.stack([np.cos(th), np.sin(th)], axis=1)
    net = DGN([W1, np.ones((1, k))], [np.ones(k), np.zeros(1)])
    P = fastpath.partition(net)
    assert len(P) == 1 + k + math.comb(k, 2)
    c = P[P.locate(np.zeros((1, 2)))[0]]
    assert c.n_facets == k and len(c.vertices) == k and c.bounded
    assert sorted(u for fu in c.facet_units for u in fu) == list(range(k))
    # vertices of the circumscribed 71-gon lie on the circle of radius 1 / cos(pi / 71)
    np.testing.assert_allclose(np.linalg.norm(c.vertices, axis=1), 1 / np.cos(np.pi / k),
                               rtol=1e-12)


def test_neighbour_chunks_give_the_same_result(monkeypatch):
    import fastpath.partition_walk as pw
    net = DGN.random((2, 8, 8, 2), activation="abs", seed=412)
    P = fastpath.partition(net)
    monkeypatch.setattr(pw, "NEIGHBOUR_CHUNK_CELLS", 7 * net.n_hidden_units)
    Pc = fastpath.partition(net)
    assert [r.neighbors for r in P] == [r.neighbors for r in Pc]


def test_neighbour_fallback_by_points_agrees(monkeypatch):
    """The fallback used where the derivative rule finds no region (float degeneracy) gives
    the same neighbours when forced on every facet."""
    import fastpath.partition_walk as pw
    net = DGN.random((2, 8, 8, 2), activation="leaky_relu", seed=413)
    P = fastpath.partition(net)
    monkeypatch.setattr(pw, "_neighbours",
                        lambda net, arr, fpiece, *a: np.full(fpiece.size, -1, dtype=np.intp))
    Pf = fastpath.partition(net)
    assert [r.neighbors for r in P] == [r.neighbors for r in Pf]


# --------------------------------------------------------------------------- API
def test_start_region_first_and_breadth_first_order():
    net = DGN.random((2, 8, 8, 2), seed=408)
    z = np.array([1.5, -0.7])
    P = fastpath.partition(net, start=z)
    assert P.locate(z[None])[0] == 0
    for i in range(1, len(P)):  # every later region has an earlier neighbour
        assert min(P[i].neighbors) < i
    P0 = fastpath.partition(net)
    assert P0[0].signs == tuple(net.sign_patterns(np.zeros(2))[0].tolist())
    # start on every hyperplane (bias-free net): still a region containing the origin
    Pb = fastpath.partition(DGN.random((2, 6, 2), init="he", seed=409))
    assert Pb[0].contains(np.zeros(2), tol=1e-12)


def test_max_regions_limit():
    net = DGN.random((2, 16, 16, 2), seed=410)
    n = len(fastpath.partition(net))
    assert len(fastpath.partition(net, max_regions=n)) == n
    with pytest.raises(RegionLimitError, match=r"max_regions=50\b.*at least \d+"):
        fastpath.partition(net, max_regions=50)
    with pytest.raises(RegionLimitError, match="max_regions=1"):
        fastpath.partition(net, max_regions=1)


@pytest.mark.parametrize("kw, err, msg", [
    (dict(max_regions=-5), ValueError, "max_regions"),
    (dict(start=[0.0]), ValueError, r"start must have shape \(2,\)"),
    (dict(start="ab"), TypeError, "start"),
    (dict(progress="yes"), TypeError, "progress"),
])
def test_invalid_arguments(kw, err, msg):
    with pytest.raises(err, match=msg):
        fastpath.partition(DGN.random((2, 4, 2), seed=0), **kw)


def test_subdivision_generators_satisfy_their_patterns():
    """Loop check of the vectorised cuts: every generator of every piece lies on the closed
    side of every constraint of the piece's pattern."""
    from fastpath._arrangement import subdivide
    net = DGN.random((3, 7, 5, 2), activation="leaky_relu", seed=411)
    arr = subdivide(net, max_regions=10_000)
    # loop check: every generator of every piece satisfies every constraint of its pattern
    Mfull = []
    for p in range(arr.n_pieces):
        C, d = region_inequalities(net, arr.signs[p])
        g = arr.gen[arr.start[p]:arr.start[p + 1]]
        for y in g:
            if y[-1] > 0:
                assert np.all(C @ y[:-1] <= d + 1e-9 * (1 + np.abs(d) + np.abs(y).max()))
            else:
                assert np.all(C @ y[:-1] <= 1e-9)
        Mfull.append(len(g))
    assert min(Mfull) >= 4  # full-dimensional pointed pieces in R^3 have >= 4 generators
