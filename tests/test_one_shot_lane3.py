"""The compiled standardisation and geometry of one call at S = 3 (fastpath._jit_one_shot3)
against the general path's (fastpath._standardise.standardise + polyhedron_geometry).

The lane replaces only the steps before the cones, so its geometry must be the general
path's (same facet rows, vertices with the same tight facets, edges, rays and cones:
test_one_shot_geometry's comparison) and the integrals then agree to the rounding of the
vertices (~eps |x| times a vertex's condition number, amplified by the cone sum's
cancellation up to e^3 before the cubature takes over): bounds 1e-11 relative for m0 and
1e-10 for the moments on the scale of test_one_shot_lane (measured: <= 1.2e-13 on the
benchmark's regions, where verified_dgn shows both paths 1e-13 from the exact values).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from integrals_fast_refs import random_cov, random_polytope
from test_one_shot_geometry import _assert_same_geometry
from test_one_shot_lane import _assert_close, _counting, _lane

from fastpath import _one_shot
from fastpath._polyhedron import polyhedron_geometry
from fastpath._standardise import standardise
from fastpath.integrals import gaussian_moments


def _both(C, d, mu, cov):
    with _lane(True):
        a = gaussian_moments(C, d, mu, cov)
    with _lane(False):
        b = gaussian_moments(C, d, mu, cov)
    return a, b


def _gaussian(rng, C, d, spread):
    cov = random_cov(rng, 3, scale=float(10 ** rng.uniform(-1, 1)))
    z0 = np.linalg.lstsq(C, d - 0.5 * np.linalg.norm(C, axis=1), rcond=None)[0]
    mu = z0 + spread * rng.normal(size=3) * np.sqrt(np.trace(cov))
    return mu, cov


@pytest.mark.parametrize("bounded", [True, False])
def test_random_polytopes_geometry_and_values(bounded):
    rng = np.random.default_rng(31 + bounded)
    n = 30
    with _counting() as counts:
        for i in range(n):
            C, d = random_polytope(rng, 3, bounded)
            mu, cov = _gaussian(rng, C, d, float(rng.uniform(0, 1.5)))
            a, b = _both(C, d, mu, cov)
            _assert_close(a, b, mu, cov, f"case {i}")
            with _lane(True):
                got = _one_shot.standardised_geometry(C, d, mu, cov)
            if got is not None:
                st = standardise(C, d, mu[None], cov[None])
                _assert_same_geometry(got[1], polyhedron_geometry(st.C, st.d))
                np.testing.assert_allclose(got[0].A, st.A, rtol=1e-14, atol=0)
                assert got[0].far == pytest.approx(st.far, rel=1e-12, abs=1e-12)
        taken = counts[0]
        cones = counts[100]
    assert taken >= 0.7 * 2 * n, dict(counts)   # counted in both calls of the lane
    assert cones >= 0.7 * n, dict(counts)       # the compiled cone sum ran


def test_cancelling_small_far_polytopes():
    """Small polytopes 2-6 standard deviations out: the cubature routes (cheaper than the
    cones, or after the cone sum cancelled beyond e^3) inside the lane."""
    rng = np.random.default_rng(7)
    with _counting() as counts:
        for i in range(20):
            C, d = random_polytope(rng, 3, True)
            size = 10 ** rng.uniform(-3, -0.3)
            centre = rng.normal(size=3)
            d = size * d + C @ centre * (1 - size)
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            cov = random_cov(rng, 3)
            mu = centre + rng.uniform(2, 6) * u * np.sqrt(np.linalg.eigvalsh(cov)[0])
            a, b = _both(C, d, mu, cov)
            _assert_close(a, b, mu, cov, f"case {i}")
        assert counts[100] >= 14, dict(counts)


def test_tail_and_sharp_cones_declined_by_the_cone_kernel():
    """A mean 12 standard deviations out (the tail slices) and a cone whose rows are
    within 1e-10 of parallel (the general path's other k = 3 route) are left to the
    general path's ConeTable, on the lane's geometry."""
    cube_C = np.vstack([np.eye(3), -np.eye(3)])
    eps = 1e-10
    wedge_C = np.array([[0.0, -1.0, 0.0], [0.0, -1.0, eps], [0.0, 0.0, -1.0],
                        [1.0, 0.0, 0.0]])
    cases = [(cube_C, np.ones(6), np.array([13.0, 0.0, 0.0])),
             (wedge_C, np.array([0.0, 0.0, 0.0, 1.0]), np.array([0.3, 0.5, 0.5]))]
    with _counting() as counts:
        for C, d, mu in cases:
            a, b = _both(C, d, mu, np.eye(3))
            _assert_close(a, b, mu, np.eye(3), str(mu))
        assert counts[100] == 0 and counts[0] >= 1, dict(counts)


def test_declined_cases_give_the_general_paths_results_exactly():
    cube_C = np.vstack([np.eye(3), -np.eye(3)])
    cov = np.array([[1.0, 0.2, 0.0], [0.2, 0.8, 0.1], [0.0, 0.1, 0.6]])
    cases = {
        "non-simple vertex (a fourth plane through a corner)":
            (np.vstack([cube_C, [[1.0, 1.0, 1.0]]]), np.array([1.0] * 6 + [3.0])),
        "a line": (np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]]),
                   np.ones(4)),
        "far row, mean outside": (np.vstack([cube_C, [[0.0, 0.0, 1.0]]]),
                                  np.array([1.0] * 6 + [1e3])),
        "empty": (cube_C, np.array([-1.0, 1, 1, -1, 1, 1])),
    }
    mus = {"far row, mean outside": np.array([3.0, 0.0, 0.0])}
    with _counting() as counts:
        for name, (C, d) in cases.items():
            mu = mus.get(name, np.zeros(3))
            a, b = _both(C, d, mu, cov)
            for x, y in zip(a, b):
                assert np.array_equal(x, y), name
        assert counts[0] == 0, dict(counts)


def test_far_rows_with_the_mean_inside():
    cube_C = np.vstack([np.eye(3), -np.eye(3)])
    cov = np.eye(3)
    with _counting() as counts:
        for far in (30.0, 1e200):
            C = np.vstack([cube_C, [[0.3, 0.2, 1.0]]])
            d = np.array([1.0, 0.5, 0.7, 1.0, 1.0, 1.0, far])
            mu = np.array([0.1, 0.0, -0.2])
            a, b = _both(C, d, mu, cov)
            _assert_close(a, b, mu, cov, f"far {far}")
        assert counts[0] == 2


@pytest.mark.parametrize("bad", [
    ("cov", np.diag([1.0, -1.0, 1.0]), "not positive definite"),
    ("cov", np.array([[1.0, 0.5, 0.0], [0.4, 1.0, 0.0], [0.0, 0.0, 1.0]]), "not symmetric"),
    ("cov", np.diag([1.0, 1.0, 1e-14]), "singular"),
    ("mean", np.array([np.nan, 0.0, 0.0]), "NaN"),
    ("C", np.array([[np.inf, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 0], [0, -1, 0],
                    [0, 0, -1]]), "infinite"),
])
def test_bad_input_same_errors(bad):
    args = {"C": np.vstack([np.eye(3), -np.eye(3)]), "d": np.ones(6), "mean": np.zeros(3),
            "cov": np.eye(3)}
    name, value, msg = bad
    args[name] = value
    errs = []
    for on in (True, False):
        with _lane(on), pytest.raises(ValueError, match=msg) as exc:
            gaussian_moments(args["C"], args["d"], args["mean"], args["cov"])
        errs.append(str(exc.value))
    assert errs[0] == errs[1]


def test_borderline_covariance_is_left_to_the_rule():
    """trace(cov) trace(cov^-1) >= 1e12 is declined: the rule (condition < 1e13) decides."""
    C = np.vstack([np.eye(3), -np.eye(3)])
    cov = np.diag([1.0, 1.0, 1.0 / 5e12])
    with _counting() as counts:
        a, b = _both(C, np.ones(6), np.zeros(3), cov)
        assert counts[0] == 0
    assert np.array_equal(a[0], b[0])


def test_lane_off_flag_is_respected():
    C = np.vstack([np.eye(3), -np.eye(3)])
    with contextlib.ExitStack() as stack:
        stack.enter_context(_lane(False))
        counts = stack.enter_context(_counting())
        gaussian_moments(C, np.ones(6), np.zeros(3), np.eye(3))
        assert not counts

