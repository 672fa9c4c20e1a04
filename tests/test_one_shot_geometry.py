"""The enumerated geometry of small polyhedra (fastpath._small_polytope: interior point and
redundant rows without the LP and qhull) against the LP + qhull geometry it replaces.

Both are :func:`fastpath._polyhedron.polyhedron_geometry`, with ``enumerate_small`` on and
off. They must agree in meaning: the same emptiness verdict, reduced dimension, facet rows,
vertices with the same tight facets, edges, rays and cones; the interior points differ
(the Chebyshev centre versus a mean of vertices and rays) and so may the inradius.
Cases: bounded, unbounded, with lines, degenerate vertices (more than S facets), redundant
rows (strict, weak, duplicated, rescaled), empty, flat, thin, huge and tiny scales. The
moments of both geometries are compared, and against verified_dgn's exact integrals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from integrals_fast_refs import random_cov, random_polytope

from fastpath._polyhedron import GeometryError, polyhedron_geometry
from fastpath._small_polytope import extreme_rays, facet_rows, interior_point, small_enough
from fastpath.integrals import PolyhedronCones, gaussian_moments, truncated_normal_moments

#: vertices are solved from the same rows with the same tolerances; they differ by the
#: rounding of coordinates taken relative to different interior points, ~eps |x| times the
#: vertex's condition number (measured: up to 2e-12 of |x| on nearly parallel rows of real
#: partitions); the bound is the geometry's own coincidence tolerance (_TOL)
_VTOL = 1e-9


def _match_rows(a, b):
    """Permutation p with a.C[i] == b.C[p[i]] (unit rows, offsets alike), or fail."""
    assert a.C.shape == b.C.shape, (a.C, b.C)
    scale = 1.0 + float(np.max(np.abs(a.d), initial=0.0))
    p = []
    for i in range(len(a.d)):
        err = np.max(np.abs(b.C - a.C[i]), axis=1) + np.abs(b.d - a.d[i]) / scale
        j = int(np.argmin(err))
        assert err[j] < 1e-12, (a.C[i], a.d[i], b.C, b.d)
        p.append(j)
    assert len(set(p)) == len(p)
    return np.array(p, dtype=np.intp)


def _assert_same_geometry(a, b):
    """a and b describe the same polyhedron with the same vertex-cone decomposition."""
    assert a.empty == b.empty
    if a.empty:
        return
    assert a.dim == b.dim and a.ambient_dim == b.ambient_dim
    np.testing.assert_allclose(np.abs(a.basis.T @ b.basis), np.eye(a.dim), atol=1e-12)
    if a.dim == 0:
        return
    p = _match_rows(a, b)
    ext = 1.0 + float(np.max(np.abs(a.vertices), initial=0.0))
    assert a.vertices.shape == b.vertices.shape
    q = []
    for i, v in enumerate(a.vertices):
        dist = np.linalg.norm(b.vertices - v, axis=1)
        j = int(np.argmin(dist))
        assert dist[j] <= _VTOL * ext, (v, b.vertices)
        assert set(p[a.active[i]]) == set(b.active[j])
        q.append(j)
    assert sorted(q) == list(range(len(q)))
    assert a.n_edges == b.n_edges and a.n_pieces == b.n_pieces and len(a.rays) == len(b.rays)
    for r in a.rays:
        assert np.min(np.linalg.norm(b.rays - r, axis=1)) < 1e-12
    np.testing.assert_allclose(np.sort(a.edge_len), np.sort(b.edge_len), rtol=1e-12,
                               atol=_VTOL * ext)
    # the same simplicial cones at the same apices (rows in any order)
    cones_b = {}
    for k in range(b.n_pieces):
        cones_b.setdefault(int(b.piece_vertex[k]), []).append(b.piece_L[k])
    for k in range(a.n_pieces):
        La = a.piece_L[k]
        cands = cones_b[q[int(a.piece_vertex[k])]]
        assert any(np.all(np.sort(np.max(La @ Lb.T, axis=1)) > 1 - 1e-12) for Lb in cands)
    if np.array_equal(p, np.arange(len(p))):
        # the generic direction is a function of the rows (in order) and edges
        np.testing.assert_allclose(a.c_generic, b.c_generic, atol=1e-12)
    # the enumerated interior point is interior
    assert np.all(a.C @ (a.basis.T @ a.interior_point) < a.d)


def _both(C, d, **kw):
    C = np.asarray(C, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    return (polyhedron_geometry(C, d, enumerate_small=True, **kw),
            polyhedron_geometry(C, d, enumerate_small=False, **kw))


def _weak_row(C, d, g, rng):
    """A weakly redundant row: a positive combination of the facets at one vertex of g,
    through that vertex."""
    i = int(rng.integers(len(g.vertices)))
    A = g.active[i]
    w = rng.uniform(0.5, 1.5, len(A))
    c = w @ g.C[A]
    return np.vstack([C, c]), np.append(d, c @ g.vertices[i])


# --------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("S", [2, 3, 4])
def test_random_polytopes_same_geometry(S):
    rng = np.random.default_rng(1500 + S)
    n = {2: 60, 3: 40, 4: 15}[S]
    for t in range(n):
        bounded = t % 2 == 0
        C, d = random_polytope(rng, S, bounded)
        a, b = _both(C, d)
        assert small_enough(len(d), S)
        _assert_same_geometry(a, b)


@pytest.mark.parametrize("S", [2, 3, 4])
def test_redundant_rows_are_pruned_alike(S):
    """Strictly redundant, weakly redundant (through a vertex), duplicated and rescaled rows."""
    rng = np.random.default_rng(1510 + S)
    for t in range(12):
        C, d = random_polytope(rng, S, bounded=t % 3 != 0)
        g = polyhedron_geometry(C, d, enumerate_small=False)
        extra_C = [C[0] * 3.0, C[1]]                       # duplicates (one rescaled)
        extra_d = [d[0] * 3.0, d[1]]
        C2 = np.vstack([C] + extra_C + [C[2]])             # strictly redundant: d + 1
        d2 = np.concatenate([d, extra_d, [d[2] + 1.0]])
        C2, d2 = _weak_row(C2, d2, g, rng)
        perm = rng.permutation(len(d2))
        a, b = _both(C2[perm], d2[perm])
        _assert_same_geometry(a, b)
        _assert_same_geometry(a, g)
        assert len(a.d) == len(g.d)


def test_degenerate_vertices():
    """Vertices where more than S facets meet: pyramid apex, octahedron, cut cube corner."""
    # square pyramid (apex: 4 facets)
    Cp = np.array([[0, 0, -1], [1, 0, 0.5], [-1, 0, 0.5], [0, 1, 0.5], [0, -1, 0.5]], float)
    dp = np.array([0, 1, 1, 1, 1], float)
    # octahedron |x| + |y| + |z| <= 1 (every vertex: 4 facets)
    Co = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    do = np.ones(8)
    # 4-D cross-polytope (every vertex: 8 facets)
    C4 = np.array([[a, b, c, e] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)
                   for e in (-1, 1)], float)
    d4 = np.ones(16)
    # an unbounded cone over a square (apex with 4 facets)
    Cc = Cp[1:]
    dc = np.zeros(4)
    for C, d in ((Cp, dp), (Co, do), (C4, d4), (Cc, dc), (Cc, dc + 1e-3)):
        a, b = _both(C, d)
        assert not a.simple
        _assert_same_geometry(a, b)


def test_empty_flat_and_thin():
    """Contradicting rows, zero width, width below the emptiness threshold, thin but not empty."""
    box = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], float)
    for w, empty in ((-1e-3, True), (0.0, True), (1e-14, True), (1e-6, False), (1e-8, False)):
        d = np.array([w, 0.0, 1.0, 1.0])
        a, b = _both(box, d)
        assert a.empty == b.empty == empty, w
        _assert_same_geometry(a, b)
    # thinner than the vertex tolerance (1e-9 of the extent): both refuse it
    for enum in (True, False):
        with pytest.raises(GeometryError):
            polyhedron_geometry(box, np.array([1e-10, 0.0, 1.0, 1.0]), enumerate_small=enum)
    # a zero row with d < 0, and a triangle pushed empty in 3-D
    a, b = _both(np.vstack([box, [0, 0]]), np.array([1, 1, 1, 1, -1.0]))
    assert a.empty and b.empty
    C3 = np.array([[1, 1, 1], [-1, 0, 0], [0, -1, 0], [0, 0, -1]], float)
    for d0 in (-0.5, 0.0, 1e-13, 1e-5, 1.0):
        a, b = _both(C3, np.array([d0, 0, 0, 0]))
        _assert_same_geometry(a, b)


def test_lines_and_half_spaces():
    """Polyhedra with lines (reduced dimension S' < S) and single half-spaces."""
    rng = np.random.default_rng(1520)
    cases = [
        (np.array([[1.0, 0.0], [-1.0, 0.0]]), np.array([1.0, 2.0])),            # slab, S' = 1
        (np.array([[1.0, 1.0]]), np.array([0.5])),                              # half-plane
        (np.array([[1, 0, 0], [0, 1, 0], [-1, -1, 0.0]]), np.array([1, 1, 1.0])),  # prism
        (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [-1, -1, 0, 0.0], [0, 0, 1, 1.0]]),
         np.array([1, 1, 1, 3.0])),
    ]
    for C, d in cases:
        Q = np.linalg.qr(rng.normal(size=(C.shape[1],) * 2))[0]                # rotate
        a, b = _both(C @ Q.T, d)
        assert a.dim < a.ambient_dim
        _assert_same_geometry(a, b)


@pytest.mark.parametrize("scale", [1e-150, 1e-20, 1.0, 1e20, 1e150])
def test_huge_and_tiny_scales(scale):
    rng = np.random.default_rng(1530)
    for S in (2, 3):
        for bounded in (True, False):
            C, d = random_polytope(rng, S, bounded)
            for shift in (0.0, 1e6):               # far from the origin: thin relative to it
                dd = (d + shift * (C @ np.ones(S))) * scale
                a, b = _both(C, dd)
                _assert_same_geometry(a, b)


def test_interior_point_and_facets_directly():
    """The module's functions on a unit triangle: the mean vertex, and the facet test."""
    C = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    V = np.array([[1.0, 1.0], [1.0, -2.0], [-2.0, 1.0]])                   # x, y <= 1, x + y >= -1
    d = np.array([1.0, 1.0, 1.0 / math.sqrt(2.0)])
    y0 = interior_point(C, d, 1e-9, 1e-14, np.zeros((0, 2)))
    np.testing.assert_allclose(y0, V.mean(axis=0), atol=1e-14)
    # a weakly redundant row through vertex (1, 1) and a duplicate of row 0
    C2 = np.vstack([C, [[1.0, 1.0]] / np.sqrt(2.0), C[:1]])
    d2 = np.append(d, [math.sqrt(2.0), 1.0])
    keep = facet_rows(C2, d2 - C2 @ y0, V - y0, np.full(3, 1e-9), 1e-9, np.zeros((0, 2)))
    assert list(keep) == [0, 1, 2]
    # the recession cone of {x <= 1, x + y >= -1} (2-D) and of the positive octant (3-D),
    # against their rays by hand (each found once per subset that spans it)
    R = extreme_rays(C[[0, 2]], 1e-9, 1e-11)
    want = np.array([[-1.0, 1.0], [0.0, 1.0]]) / np.array([[math.sqrt(2.0)], [1.0]])
    assert {tuple(np.round(r, 12)) for r in R} == {tuple(np.round(r, 12)) for r in want}
    R3 = extreme_rays(-np.eye(3), 1e-9, 1e-11)
    assert {tuple(np.round(r, 12)) for r in R3} == {tuple(r) for r in np.eye(3)}
    assert len(extreme_rays(C, 1e-9, 1e-11)) == 0                          # bounded
    # an empty set has no vertex
    assert interior_point(np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]),
                          np.array([-1.0, -1.0, 1.0]), 1e-9, 1e-14, np.zeros((0, 2))) is None


def _residual(g):
    """Largest |C_j v - d_j| over the tight rows of every vertex (exact arithmetic)."""
    from fractions import Fraction

    out = 0.0
    for v, A in zip(g.vertices, g.active):
        for j in A:
            r = sum(Fraction(c) * Fraction(x) for c, x in zip(g.C[j], v)) - Fraction(g.d[j])
            out = max(out, abs(float(r)))
    return out


@pytest.mark.parametrize("S,seed", [(2, 0), (3, 1)])
def test_partition_regions_same_geometry(S, seed):
    """Every region of a real partition, with and without extra redundant rows; the
    enumerated interior point lies nearer the vertices than the capped Chebyshev centre of
    an unbounded region, so its vertices are at least as accurate (exact residuals)."""
    import fastpath
    from verified_dgn import DGN

    net = DGN.random({2: (2, 8, 8, 2), 3: (3, 6, 6, 3)}[S], activation="relu", seed=seed,
                     noise_var=0.05)
    for reg in fastpath.partition(net):
        C, d = np.asarray(reg.C, dtype=np.float64), np.asarray(reg.d, dtype=np.float64)
        a, b = _both(C, d)
        _assert_same_geometry(a, b)
        assert _residual(a) <= max(2.0 * _residual(b), 1e-13 * (1 + np.max(np.abs(a.d))))
        a2, _ = _both(np.vstack([C, 2.0 * C[:2]]), np.append(d, 2.0 * d[:2] + np.array([0, 1.0])))
        _assert_same_geometry(a2, a)


@pytest.mark.parametrize("S", [2, 3, 4])
def test_fan_triangulation_volume(S):
    """The fan triangulation (rank tests only for the facets of 4-polytopes) tiles P: its
    simplices' volumes sum to qhull's volume of the vertices' hull, none is flat."""
    from scipy.spatial import ConvexHull

    rng = np.random.default_rng(1560 + S)
    for t in range(10):
        C, d = random_polytope(rng, S, True, m=S + 2 + t)
        g = polyhedron_geometry(C, d)
        T = g.simplices
        vol = np.abs(np.linalg.det(T[:, 1:] - T[:, :1])) / math.factorial(S)
        assert np.all(vol > 1e-12 * vol.sum())
        # both volumes are sums of ~10-100 rounded terms: 1e-12 relative
        assert abs(vol.sum() / ConvexHull(g.vertices).volume - 1) < 1e-12


# --------------------------------------------------------------------------- moments
@pytest.mark.parametrize("S", [2, 3])
def test_moments_equal_with_either_geometry(S):
    """Same cones, so the same moments up to the rounding of the vertices (1e-12 relative):
    the one-call functions against PolyhedronCones on the LP + qhull geometry."""
    rng = np.random.default_rng(1540 + S)
    for t in range(8):
        C, d = random_polytope(rng, S, bounded=t % 2 == 0)
        C, d = _weak_row(C, d, polyhedron_geometry(C, d), rng)
        cov = random_cov(rng, S)
        mu = rng.normal(size=S) * 2.0
        old = PolyhedronCones(polyhedron_geometry(C, d, enumerate_small=False))
        lm0, m0, M0 = old.truncated_moments(mu, cov)
        lm1, m1, M1 = truncated_normal_moments(C, d, mu, cov)
        sc = math.sqrt(np.linalg.norm(cov, 2))
        assert abs(lm1 - lm0) <= 1e-11 * (1 + abs(lm0))
        np.testing.assert_allclose(m1, m0, atol=1e-11 * sc * (1 + np.max(np.abs(m0)) / sc))
        np.testing.assert_allclose(M1, M0, atol=1e-10 * (sc ** 2 + np.max(np.abs(M0))))


@pytest.mark.slow
def test_moments_against_exact():
    """gaussian_moments on the enumerated geometry against verified_dgn (exact, 30 digits):
    a 2-D polygon with a weakly redundant row and a 3-D unbounded polyhedron."""
    vg = pytest.importorskip("verified_dgn.integrals")
    rng = np.random.default_rng(1550)
    for S, bounded in ((2, True), (3, False)):
        C, d = random_polytope(rng, S, bounded)
        C, d = _weak_row(C, d, polyhedron_geometry(C, d), rng)
        cov = random_cov(rng, S)
        mu = rng.normal(size=S)
        m0, m1, M2 = gaussian_moments(C, d, mu, cov)
        e0, e1, e2 = vg.gaussian_moments(C, d, mu, cov, dps=30)
        e0 = float(e0)
        # the fast path's stated accuracy near the mean: ~1e-14 in log m0 (module notes)
        assert abs(m0 / e0 - 1) < 1e-12
        np.testing.assert_allclose(m1, np.array([float(x) for x in e1]), rtol=1e-11, atol=1e-12 * e0)
        np.testing.assert_allclose(M2, np.array([[float(x) for x in r] for r in e2]),
                                   rtol=1e-11, atol=1e-12 * e0)
