"""fastpath.integrals' geometry and cancellation: nearest points (against cvxpy), the vertex
data, non-simple vertices, redundant rows, empty sets, singular covariances, the direction of
the decomposition and the fallbacks where the signed cone sum cancels.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from integrals_fast_refs import (
    _quad2,
    assert_moments_close,
    cov_scale,
    needs_k3,
    random_cov,
    random_polytope,
)

from fastpath._cones import ConeTable
from fastpath._polyhedron import polyhedron_geometry
from fastpath.integrals import (
    PolyhedronCones,
    gaussian_moments,
    truncated_normal_moments,
)


# --------------------------------------------------------------------------- geometry
def test_nearest_point_is_the_mahalanobis_projection():
    """The nearest point used for the direction c, against a brute-force QP (cvxpy)."""
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(80)
    for S in (2, 3, 4):
        for bounded in (True, False):
            C, d = random_polytope(rng, S, bounded)
            g = polyhedron_geometry(C, d)
            table = ConeTable.from_geometries([g])
            cov = random_cov(rng, S)
            U = np.linalg.cholesky(cov)
            mus = g.interior_point + rng.normal(size=(4, S)) * 4
            xs, _, _ = table._nearest_points(mus[:, None], U[None, None], np.linalg.inv(U)[None, None])
            for n in range(4):
                z = cp.Variable(S)
                Ui = np.linalg.inv(U)
                prob = cp.Problem(cp.Minimize(cp.sum_squares(Ui @ (z - mus[n]))), [C @ z <= d])
                prob.solve()
                x_ref = Ui @ (z.value - mus[n])
                assert np.linalg.norm(xs[n, 0]) <= np.linalg.norm(x_ref) * (1 + 1e-6) + 1e-6
                np.testing.assert_allclose(xs[n, 0], x_ref, atol=1e-4 * (1 + np.linalg.norm(x_ref)))


@pytest.mark.parametrize("S", [2, 3, 4])
def test_vectorised_geometry_matches_vertex_loop(S):
    """The loop-free construction for simple polyhedra = the per-vertex loop (same cones)."""
    rng = np.random.default_rng(85 + S)
    for bounded in (True, False):
        for _ in range(3):
            C, d = random_polytope(rng, S, bounded)
            a = polyhedron_geometry(C, d)
            b = polyhedron_geometry(C, d, vectorised=False)
            assert a.simple and b.simple
            np.testing.assert_allclose(a.vertices, b.vertices, rtol=1e-13, atol=1e-13)
            assert [set(x) for x in a.active] == [set(x) for x in b.active]
            assert a.n_edges == b.n_edges and len(a.rays) == len(b.rays)
            # the same cone at every vertex: same rows (any order), flips of the same edges
            for p in range(a.n_pieces):
                La, Lb = a.piece_L[p], b.piece_L[p]
                match = np.abs(La @ Lb.T - 1) < 1e-12
                assert match.sum() == S and np.all(match.sum(axis=0) == 1)
                ea = {tuple(np.round(a.piece_orient[p, i] * a.edge_dir[a.piece_edge[p, i]], 9))
                      for i in range(S)}
                eb = {tuple(np.round(b.piece_orient[p, i] * b.edge_dir[b.piece_edge[p, i]], 9))
                      for i in range(S)}
                assert ea == eb


def test_interval_specialisation_matches_generic_cones():
    """dim 1 closed form (the default) against the general cone code (generic direction)."""
    rng = np.random.default_rng(86)
    for C, d in [(np.array([[1.0], [-2.0]]), np.array([1.0, 1.0])),
                 (np.array([[1.0]]), np.array([0.3])), (np.array([[-1.0]]), np.array([0.3]))]:
        g = polyhedron_geometry(C, d)
        table = ConeTable.from_geometries([g])
        mu = rng.normal(size=(20, 1, 1)) * 1.5
        U = np.sqrt(rng.uniform(0.2, 2.0, size=(20, 1, 1, 1)))
        a = table.evaluate(mu, U)
        b = table.evaluate(mu, U, direction="generic")
        np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-13)
        np.testing.assert_allclose(a[2], b[2], rtol=0, atol=1e-13)


def test_geometry_of_a_square_pyramid_nonsimple_apex():
    """Apex with 4 facets: its tangent cone is triangulated into 2 simplicial cones."""
    C = np.array([[1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, -1, 1], [0, 0, -1.0]])
    d = np.array([1, 1, 1, 1, 0.0])
    g = polyhedron_geometry(C, d)
    assert len(g.vertices) == 5 and g.n_edges == 8 and len(g.rays) == 0
    assert g.n_pieces == 6 and not g.simple
    # every piece's generators are edges at its apex, and piece rows are unit
    np.testing.assert_allclose(np.linalg.norm(g.piece_L, axis=-1), 1.0, rtol=1e-14)


@needs_k3
def test_nonsimple_vertices_against_split_pieces():
    """Square pyramid (non-simple apex) and a 5-facet cone with apex 0 (bias-free region)
    against the sum over two simple halves."""
    rng = np.random.default_rng(90)
    cases = []
    C = np.array([[1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, -1, 1], [0, 0, -1.0]])
    cases.append((C, np.array([1, 1, 1, 1, 0.0]), np.array([1.0, -1.0, 0.0]), 0.0))
    ang = np.sort(rng.uniform(0, 2 * np.pi, 5))
    Ck = np.c_[np.cos(ang), np.sin(ang), -np.full(5, 0.8)]   # cone {c_j . z <= 0} around +e3
    cases.append((Ck, np.zeros(5), np.array([1.0, 0.3, 0.0]), 0.0))
    for C, d, h, e in cases:
        cov = random_cov(rng, 3)
        for mu in (np.array([0.1, 0.2, 0.5]), np.array([3.0, -4.0, -6.0])):
            m = gaussian_moments(C, d, mu, cov)
            a = gaussian_moments(np.vstack([C, h]), np.append(d, e), mu, cov)
            b = gaussian_moments(np.vstack([C, -h]), np.append(d, -e), mu, cov)
            assert abs(a[0] + b[0] - m[0]) <= 1e-11 * m[0]
            np.testing.assert_allclose(a[1] + b[1], m[1], rtol=1e-10, atol=1e-11 * m[0])
            np.testing.assert_allclose(a[2] + b[2], m[2], rtol=1e-10, atol=1e-11 * m[0])


def test_from_region_with_a_boundary_interior_point():
    """A region whose interior_point lies on its boundary: the LP is used instead."""
    from types import SimpleNamespace

    rng = np.random.default_rng(89)
    C, d = random_polytope(rng, 2, bounded=True)
    g = polyhedron_geometry(C, d)
    cov = random_cov(rng, 2)
    mu = rng.normal(size=2)
    ref = PolyhedronCones.from_halfspaces(C, d).truncated_moments(mu, cov)
    for ip in (g.vertices[0], None, np.array([np.nan, 0.0])):
        reg = SimpleNamespace(C=g.C, d=g.d, interior_point=ip)
        got = PolyhedronCones.from_region(reg).truncated_moments(mu, cov)
        assert abs(got[0] - ref[0]) <= 1e-13
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, atol=1e-13)


def test_redundant_duplicate_and_scaled_rows():
    rng = np.random.default_rng(91)
    C, d = random_polytope(rng, 2, bounded=True)
    cov = random_cov(rng, 2)
    mu = rng.normal(size=2)
    ref = truncated_normal_moments(C, d, mu, cov)
    C2 = np.vstack([C, C[:2] * 3.0, C[3:4], rng.normal(size=(3, 2))])
    g = polyhedron_geometry(C, d)
    # redundant rows: far outside P
    extra = C2[-3:]
    d2 = np.concatenate([d, d[:2] * 3.0, d[3:4],
                         np.max(extra @ g.vertices.T, axis=1) + 5.0])
    got = truncated_normal_moments(C2, d2, mu, cov)
    assert abs(got[0] - ref[0]) <= 1e-13
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("S", [1, 2, 3])
def test_empty_and_no_interior(S):
    mu = np.zeros(S)
    cov = np.eye(S)
    e = np.eye(S)[0]
    for C, d in [(np.array([e, -e]), np.array([-1.0, 0.0])),    # empty
                 (np.array([e, -e]), np.array([0.5, -0.5])),    # a hyperplane (no interior)
                 (np.zeros((1, S)), np.array([-1.0]))]:         # 0 <= -1
        m0, m1, M2 = gaussian_moments(C, d, mu, cov)
        assert m0 == 0.0 and np.all(m1 == 0) and np.all(M2 == 0)
        lm, mP, M2P = truncated_normal_moments(C, d, mu, cov)
        assert lm == -np.inf and np.all(mP == 0) and np.all(M2P == 0)
        assert not np.isnan(lm)


def test_nearly_singular_cov_works_and_singular_raises():
    rng = np.random.default_rng(92)
    C, d = random_polytope(rng, 2, bounded=True)
    u = np.array([1.0, 1.0]) / math.sqrt(2)
    mu = polyhedron_geometry(C, d).interior_point
    for eps in (1e-7,):
        cov = np.outer(u, u) + eps * np.eye(2)
        got = truncated_normal_moments(C, d, mu, cov)
        ref = _quad2(C, d, mu, cov)
        # conditioning: errors grow like cond(cov) * eps_machine
        tol = 1e-12 / eps ** 0.5
        assert_moments_close(got, ref, cov, tol, tol, tol, f"eps={eps}")
    with pytest.raises(ValueError, match="singular"):
        gaussian_moments(C, d, mu, np.outer(u, u) + 1e-17 * np.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_moments(C, d, mu, np.outer(u, u) - 1e-3 * np.eye(2))


# --------------------------------------------------------------------------- cancellation
def test_direction_toward_the_mean_limits_cancellation():
    """With c toward the mean the terms of the signed sum are at most ~dist^{S-1} times m0;
    with a fixed direction they are e^{dist^2/2}-times larger and the sum is garbage."""
    rng = np.random.default_rng(93)
    C, d = random_polytope(rng, 2, bounded=True)
    g = polyhedron_geometry(C, d)
    table = ConeTable.from_geometries([g])
    cov = random_cov(rng, 2)
    U = np.linalg.cholesky(cov)[None, None]
    dirs = rng.normal(size=(40, 2))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    mus = g.interior_point + 30 * dirs * math.sqrt(cov_scale(cov))
    lm, _, _, lc = table.evaluate(mus[:, None], U, moments=False)
    lmg, _, _, lcg = table.evaluate(mus[:, None], U, moments=False, direction="generic")
    assert np.all(np.isfinite(lm)) and np.all(lm < -50)
    assert np.max(lc) < math.log(1e4)          # at most 4 digits lost at distance ~30 sd
    # a fixed direction loses everything: more than 15 digits, or a sum <= 0 (nan)
    lost = np.where(np.isfinite(lcg), lcg, np.inf)
    assert np.median(lost) > math.log(1e15)


def _table_and_two_gaussians(bounded, far):
    """A random 2-D polyhedron's ConeTable, two means (its interior point, and that point
    moved by ``far`` along e1) (2, 1, 2) and one Cholesky factor (1, 1, 2, 2)."""
    rng = np.random.default_rng(97)
    C, d = random_polytope(rng, 2, bounded=bounded)
    g = polyhedron_geometry(C, d)
    U = np.linalg.cholesky(random_cov(rng, 2))[None, None]
    mus = g.interior_point + np.array([[[0.0, 0.0]], [[far, 0.0]]])
    return ConeTable.from_geometries([g]), mus, U


def _break_last_gaussian(monkeypatch):
    """Make ConeTable._evaluate report a complete cancellation (log_cancel nan, i.e. a sum
    <= 0) for the last Gaussian, whatever the direction."""
    orig = ConeTable._evaluate

    def broken(self, mean, chol, moments, direction="nearest"):
        lm, dm, C2, lc = orig(self, mean, chol, moments, direction)
        lc = lc.copy()
        lc[-1] = np.nan
        return lm, dm, C2, lc

    monkeypatch.setattr(ConeTable, "_evaluate", broken)


def test_catastrophic_cancellation_fallback_is_nan_free(monkeypatch):
    """If both directions cancel completely (unbounded P: no cubature) the result is a
    flagged point-mass limit, not NaN."""
    table, mus, U = _table_and_two_gaussians(bounded=False, far=40.0)
    good = table.evaluate(mus, U)
    _break_last_gaussian(monkeypatch)       # the far Gaussian: "m0 <= 0" in both directions
    with pytest.warns(RuntimeWarning, match="cancellation"):
        lm, dm, C2, _ = table.evaluate(mus, U)
    assert np.all(np.isfinite(lm)) and np.all(np.isfinite(dm)) and np.all(np.isfinite(C2))
    assert lm[0, 0] == good[0][0, 0]         # the healthy Gaussian is untouched
    assert lm[1, 0] < good[0][1, 0]          # flagged value: below every term's rounding level


def test_complete_cancellation_of_a_bounded_polytope_goes_to_cubature(monkeypatch):
    """A bounded P whose cone sum cancelled completely is recomputed by simplex cubature:
    the same values as the healthy cone sum (to 1e-13), no warning, log_cancel 0."""
    table, mus, U = _table_and_two_gaussians(bounded=True, far=4.0)
    good = table.evaluate(mus, U)
    assert np.all(good[3] < 3.0)                 # healthy: the cone sum was kept
    _break_last_gaussian(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm, dm, C2, lc = table.evaluate(mus, U)
    assert lm[0, 0] == good[0][0, 0] and lc[1, 0] == 0.0
    assert abs(lm[1, 0] - good[0][1, 0]) <= 1e-13
    np.testing.assert_allclose(dm[1, 0], good[1][1, 0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(C2[1, 0], good[2][1, 0], rtol=0, atol=1e-13)
