"""Exact polyhedra (verified_dgn.geometry.exact_polyhedron) against brute-force oracles.

Oracles that share no code with the module under test:
* vertices: enumerate every S-subset of rows, solve the S x S system in Fractions, keep
  the feasible solutions (bounded polytopes);
* membership: random rational points tested against the input rows and against the facet
  rows must agree exactly;
* non-redundancy: dropping any one facet row must let in a point that violates it (a
  point found exactly: the facet's relative-interior point pushed out a little).
All comparisons are exact (==); no tolerances.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest

from tests.conftest import needs_cdd

pytestmark = needs_cdd

F = Fraction


def _ep(C, d):
    from verified_dgn.geometry import exact_polyhedron
    return exact_polyhedron(C, d)


def _solve(A, b):
    """Exact solution of the square system A x = b (None if singular); plain Gauss-Jordan."""
    n = len(A)
    M = [[F(x) for x in row] + [F(bb)] for row, bb in zip(A, b)]
    for c in range(n):
        p = next((r for r in range(c, n) if M[r][c] != 0), None)
        if p is None:
            return None
        M[c], M[p] = M[p], M[c]
        for r in range(n):
            if r != c and M[r][c] != 0:
                f = M[r][c] / M[c][c]
                M[r] = [a - f * bb for a, bb in zip(M[r], M[c])]
    return tuple(M[i][n] / M[i][i] for i in range(n))


def _brute_vertices(C, d):
    C = [[F(x) for x in row] for row in C]
    d = [F(x) for x in d]
    S = len(C[0])
    out = set()
    for J in itertools.combinations(range(len(C)), S):
        x = _solve([C[j] for j in J], [d[j] for j in J])
        if x is None:
            continue
        if all(sum(c * t for c, t in zip(row, x)) <= dd for row, dd in zip(C, d)):
            out.add(x)
    return out


def _member(C, d, z):
    return all(sum(F(c) * t for c, t in zip(row, z)) <= F(dd) for row, dd in zip(C, d))


def _random_polytope(rng, S, m, box=True, degenerate=False):
    """Integer rows; optionally a box (bounded) and duplicated / scaled rows."""
    C = rng.integers(-5, 6, size=(m, S)).tolist()
    d = rng.integers(0, 8, size=m).tolist()
    if box:
        for i in range(S):
            e = [0] * S
            e[i] = 1
            C.append(e)
            d.append(10)
            C.append([-x for x in e])
            d.append(10)
    if degenerate and m > 0:
        C.append([3 * x for x in C[0]])  # positive multiple
        d.append(3 * d[0])
        C.append(list(C[1 % len(C)]))  # duplicate
        d.append(d[1 % len(d)])
        C.append([0] * S)  # zero row, 0 <= 2
        d.append(2)
    return C, d


@pytest.mark.parametrize("S", [1, 2, 3, 4])
@pytest.mark.parametrize("degenerate", [False, True])
def test_vertices_facets_membership_random_bounded(S, degenerate):
    rng = np.random.default_rng(100 + S + 10 * degenerate)
    n_cases = {1: 6, 2: 6, 3: 4, 4: 2}[S]
    for _ in range(n_cases):
        C, d = _random_polytope(rng, S, m=S + 2, degenerate=degenerate)
        P = _ep(C, d)
        brute = _brute_vertices(C, d)
        if not brute:
            assert P.is_empty or P.dim < S or len(P.vertices) == 0
            continue
        assert {tuple(v) for v in P.vertices.tolist()} == brute
        assert len(P.rays) == 0 and len(P.lines) == 0 and P.bounded
        # every input row is valid at every vertex, and the facets define the same set
        pts = [tuple(F(int(x), 7) for x in rng.integers(-80, 81, size=S)) for _ in range(60)]
        pts += [tuple(v) for v in P.vertices.tolist()]
        for z in pts:
            assert _member(C, d, z) == (P.contains(z)), z
        if P.dim == S:
            # normalisation, strict interior point, non-redundancy of each facet
            for row in P.C:
                assert max(abs(t) for t in row) == 1
            zi = P.interior_point
            assert all(sum(c * t for c, t in zip(row, zi)) < dd for row, dd in zip(P.C, P.d))
            for j in range(P.n_facets):
                on = [v for i, v in enumerate(P.vertices) if j in P.incidence[i]]
                assert len(on) >= S  # a facet of a polytope has >= S vertices
                rank = np.linalg.matrix_rank(np.array(
                    [[float(x) for x in v] + [1.0] for v in on]))
                assert rank == S  # affine dimension S - 1
                # facet-point pushed out along the normal: violates facet j only
                mid = [sum(v[k] for v in on) / len(on) for k in range(S)]
                n = P.C[j]
                for eps in (F(1, 10**6),):
                    z = [m_ + eps * nn for m_, nn in zip(mid, n)]
                    others = [k for k in range(P.n_facets) if k != j]
                    assert all(sum(c * t for c, t in zip(P.C[k], z)) <= P.d[k] for k in others)
                    assert sum(c * t for c, t in zip(P.C[j], z)) > P.d[j]


def test_duplicates_and_multiples_form_one_facet():
    C = [[-1, 0], [-1, 0], [-2, 0], [0, -1], [0, 0], [1, 1]]
    d = [0, 0, 0, 0, 5, 4]
    P = _ep(C, d)
    assert P.n_facets == 3
    assert sorted(P.facet_rows) == [(0, 1, 2), (3,), (5,)]
    assert {tuple(v) for v in P.vertices.tolist()} == {(0, 0), (4, 0), (0, 4)}


def test_homogeneous_cone_has_origin_vertex():
    # bias-free: every d = 0; cdd alone reports only the two rays
    P = _ep([[-1, 2], [3, -1]], [0, 0])
    assert P.vertices.tolist() == [[0, 0]]
    # x >= 2y and y >= 3x: the extreme rays are on x = 2y and y = 3x, pointing to x < 0
    assert {tuple(r) for r in P.rays.tolist()} == {(-1, F(-1, 2)), (F(-1, 3), -1)}
    assert P.incidence[0] == frozenset({0, 1})
    assert P.dim == 2 and not P.bounded and P.pointed
    # 1-D and 3-D homogeneous cones
    P1 = _ep([[-1.0]], [0.0])
    assert P1.vertices.tolist() == [[0]] and P1.rays.tolist() == [[1]]
    P3 = _ep([[-1, 0, 0], [0, -1, 0], [0, 0, -1], [-1, -1, 1]], [0, 0, 0, 0])
    assert P3.vertices.tolist() == [[0, 0, 0]] and len(P3.rays) == 4 and P3.n_facets == 4


def test_homogeneous_non_pointed_and_point():
    P = _ep([[-1, 0]], [0])  # half-plane through the origin
    assert P.vertices.tolist() == [[0, 0]]
    assert P.lines.tolist() == [[0, 1]] and P.rays.tolist() == [[1, 0]]
    Q = _ep([[1, 0], [-1, 0], [0, 1], [0, -1]], [0, 0, 0, 0])  # the origin only
    assert Q.dim == 0 and Q.vertices.tolist() == [[0, 0]] and Q.n_facets == 0
    assert Q.eq_C.shape == (2, 2)


def test_empty_sets():
    assert _ep([[1, 1], [-1, -1]], [-1, -1]).is_empty  # parallel strip of negative width
    assert _ep([[0, 0]], [-1]).is_empty  # zero row with d < 0
    assert _ep([[1], [-1]], [F(1, 3), F(-1, 2)]).is_empty
    E = _ep([[1, 0, 0], [-1, 0, 0]], [-1, 0])
    assert E.is_empty and E.dim == -1 and E.interior_point is None
    assert not E.contains([0, 0, 0])


def test_lower_dimensional_sets():
    # segment {x = 0, 0 <= y <= 1} given with a redundant and a duplicated equality
    C = [[1, 0], [-1, 0], [2, 0], [0, 1], [0, -1], [1, 1]]
    d = [0, 0, 0, 1, 0, 5]
    P = _ep(C, d)
    assert P.dim == 1 and P.interior_point is None
    assert P.eq_C.tolist() == [[1, 0]] and P.eq_d.tolist() == [0]
    assert {tuple(v) for v in P.vertices.tolist()} == {(0, 0), (0, 1)}
    assert sorted(P.facet_rows) == [(3,), (4,)]
    assert P.relative_interior_point.tolist() == [0, F(1, 2)]
    assert P.contains([0, F(1, 3)]) and not P.contains([F(1, 10**9), F(1, 3)])


def test_lines_slab_and_whole_space():
    P = _ep([[1, 0], [-1, 0]], [1, 0])  # slab 0 <= x <= 1
    assert P.lines.tolist() == [[0, 1]] and len(P.rays) == 0 and P.n_facets == 2
    assert {tuple(v) for v in P.vertices.tolist()} <= {(0, y) for y in range(-5, 6)} | {
        (1, y) for y in range(-5, 6)} or len(P.vertices) == 2
    assert P.dim == 2 and P.interior_point[0] == F(1, 2)
    W = _ep(np.zeros((0, 3)), np.zeros(0))
    assert W.dim == 3 and W.lines.shape == (3, 3) and W.n_facets == 0
    Z = _ep([[0, 0, 0]], [F(1, 2)])  # only a trivially true row
    assert Z.dim == 3 and Z.n_facets == 0


def test_floats_convert_exactly():
    P = _ep([[0.1, 0.0], [-1.0, 0.0]], [0.3, 0.0])
    assert P.C[0, 0] == 1 and P.d[0] == F(0.3) / F(0.1)  # exact, not 3.0


def test_unbounded_rays_normalised_and_incidence():
    P = _ep([[-1, 0], [-3, -4]], [1, 2])
    for r in P.rays:
        assert max(abs(t) for t in r) == 1
        assert all(sum(c * t for c, t in zip(row, r)) <= 0 for row in P.C)
    for i, v in enumerate(P.vertices):
        on = {j for j in range(P.n_facets)
              if sum(c * t for c, t in zip(P.C[j], v)) == P.d[j]}
        assert on == set(P.incidence[i])


@pytest.mark.parametrize("bad, err", [
    (([[1, 2]], [1, 2]), ValueError),
    (([1, 2], [1]), ValueError),
    (([[np.nan, 1]], [0]), ValueError),
    (([[1, 1]], [np.inf]), ValueError),
    (([["a", 1]], [0]), TypeError),
    (([[1j, 1]], [0]), TypeError),
    ((np.zeros((2, 0)), [0, 0]), ValueError),
])
def test_invalid_input(bad, err):
    with pytest.raises(err):
        _ep(*bad)


@pytest.mark.parametrize("S", [1, 2, 3, 4])
def test_unbounded_and_degenerate_fuzz(S):
    """Random small integer systems, often unbounded, homogeneous, duplicated or empty.

    Exact properties checked on each: generators satisfy every input row; the facets (and
    equalities) accept exactly the points the input rows accept (random rational points,
    vertices, vertices pushed along rays and lines); each facet is necessary (dropping it
    admits a generator of the larger set that violates it); dim = rank of the generators.
    """
    rng = np.random.default_rng(200 + S)
    for case in range(12 if S < 4 else 5):
        m = int(rng.integers(0, 2 * S + 2))
        C = rng.integers(-3, 4, size=(m, S)).tolist()
        homogeneous = case % 3 == 0
        d = [0] * m if homogeneous else rng.integers(-2, 5, size=m).tolist()
        if m and case % 4 == 1:  # duplicates / positive multiples / opposite rows
            C += [[2 * x for x in C[0]], [-x for x in C[0]]]
            d += [2 * d[0], -d[0]]
        P = _ep(np.array(C, dtype=np.int64).reshape(len(C), S), np.array(d, dtype=np.int64))
        if P.is_empty:
            # no sampled point and no vertex can be feasible; the float LP agrees
            from scipy.optimize import linprog
            res = linprog(np.zeros(S), A_ub=np.array(C, float).reshape(-1, S),
                          b_ub=np.array(d, float),
                          bounds=[(None, None)] * S, method="highs")
            assert res.status == 2  # infeasible
            continue
        for v in P.vertices:
            assert _member(C, d, v)
        for r in P.rays:
            assert all(sum(F(c) * t for c, t in zip(row, r)) <= 0 for row in C)
        for ln in P.lines:
            assert all(sum(F(c) * t for c, t in zip(row, ln)) == 0 for row in C)
        gens = [list(v) + [1] for v in P.vertices] + [list(r) + [0] for r in P.rays] + \
            [list(x) + [0] for x in P.lines]
        assert P.dim == np.linalg.matrix_rank(np.array(gens, dtype=float)) - 1
        pts = [tuple(F(int(x), 3) for x in rng.integers(-12, 13, size=S)) for _ in range(40)]
        for v in P.vertices:
            pts.append(tuple(v))
            for r in list(P.rays) + list(P.lines) + [-x for x in P.lines]:
                pts.append(tuple(a + 7 * b for a, b in zip(v, r)))
        pts.append(tuple(P.relative_interior_point))
        for z in pts:
            assert _member(C, d, z) == P.contains(z), (C, d, z)
        for j in range(P.n_facets):
            keep = [k for k in range(P.n_facets) if k != j]
            Q = _ep(np.concatenate([P.C[keep], P.eq_C, -P.eq_C]) if keep or len(P.eq_C)
                    else np.zeros((0, S), dtype=object),
                    np.concatenate([P.d[keep], P.eq_d, -P.eq_d]) if keep or len(P.eq_C)
                    else np.zeros(0, dtype=object))
            c, dd = P.C[j], P.d[j]
            violated = any(sum(a * b for a, b in zip(c, v)) > dd for v in Q.vertices) or \
                any(sum(a * b for a, b in zip(c, r)) > 0 for r in Q.rays) or \
                any(sum(a * b for a, b in zip(c, x)) != 0 for x in Q.lines)
            assert violated, f"facet {j} is redundant in {C}, {d}"
