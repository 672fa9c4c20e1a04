"""The compiled one-call lane (fastpath._one_shot / _jit_one_shot) against the general path.

The lane runs the general path's steps (standardisation, geometry, the fused S = 2 cone
kernel, the cubature where the cone sum cancels) in one compiled call and declines every
case the general path treats specially. With ``_one_shot.ENABLED[0] = False`` every call
takes the general path, which is the reference here; verified_dgn's exact integrals check
both on a few cases.

Tolerances: the two compute the same formulas; they differ by the rounding of the vertices
(2 x 2 solves written out instead of LAPACK's, ~eps |x| times the pair's condition
number) and of the sums, which the cone sum's cancellation (up to e^3 before the
cubature takes over) and the conditioning of thin cones amplify. Measured on the cases
below: <= 4e-13 relative in m0 and in the moments (a polygon 1e-3 wide at 6 standard
deviations, where the exact value shows both paths off by 3e-13); the bounds are 1e-11
relative for log m0 / m0 and 1e-10 for the moments relative to their scale.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from conftest import switched
from integrals_fast_refs import random_cov, random_polytope

from fastpath import _one_shot
from fastpath.integrals import gaussian_moments, log_gaussian_mass, truncated_normal_moments

RTOL_M0 = 1e-11
RTOL_MOM = 1e-10


def _lane(on: bool):
    """The one-call lane on or off for the block."""
    return switched(_one_shot.ENABLED, on)


@contextlib.contextmanager
def _counting():
    _one_shot.COUNTS.clear()
    with switched(_one_shot.COUNTING, True):
        yield _one_shot.COUNTS


def _both(C, d, mu, cov):
    with _lane(True):
        a = gaussian_moments(C, d, mu, cov)
    with _lane(False):
        b = gaussian_moments(C, d, mu, cov)
    return a, b


def _assert_close(a, b, mu, cov, what="", amp=0.0):
    """a and b agree within RTOL_M0 (m0) and RTOL_MOM (the moments), or within ``amp``
    where the polygon's conditioning amplifies the rounding of its vertices beyond them.

    The moments are compared on the scale both paths compute them at: in the Gaussian's
    whitened units about its mean, mapped back (E[z|P] = mean + A E[w|P]), so an entry
    carries ~eps times s_i = |mean_i| + |E[z_i|P]| + sqrt(cov_ii) (m1 = m0 E[z|P]) and
    s_i s_j (M2): a thin polygon's tiny spread across itself is a difference of such
    quantities in either path (the module notes of fastpath.integrals).
    """
    m0a, m1a, M2a = a
    m0b, m1b, M2b = b
    assert np.shape(m0a) == np.shape(m0b) and m1a.shape == m1b.shape and M2a.shape == M2b.shape
    m0 = abs(float(m0b))
    assert abs(float(m0a) - float(m0b)) <= max(RTOL_M0, amp) * m0, (what, m0a, m0b)
    tol = max(RTOL_MOM, amp)
    sc = np.abs(mu) + np.abs(m1b) / m0 + np.sqrt(np.diagonal(cov))
    assert np.all(np.abs(m1a - m1b) <= tol * m0 * sc), (what, m1a, m1b)
    assert np.all(np.abs(M2a - M2b) <= tol * m0 * np.outer(sc, sc)), (what, M2a, M2b)


def _random_gaussian(rng, C, d, spread):
    """A Gaussian near the polygon: the mean about a point of it, moved by up to
    ``spread`` of its scale."""
    cov = random_cov(rng, 2, scale=float(10 ** rng.uniform(-1, 1)))
    # a point of P from its vertices' mean would need the geometry; the least-squares
    # point of the rows' offsets is close enough for a random Gaussian
    z0 = np.linalg.lstsq(C, d - 0.5 * np.linalg.norm(C, axis=1), rcond=None)[0]
    mu = z0 + spread * rng.normal(size=2) * math.sqrt(np.trace(cov))
    return mu, cov


@pytest.mark.parametrize("bounded", [True, False])
def test_random_polygons_match_general_path(bounded):
    rng = np.random.default_rng(11 + bounded)
    taken = 0
    n = 60
    with _counting() as counts:
        for i in range(n):
            C, d = random_polytope(rng, 2, bounded)
            mu, cov = _random_gaussian(rng, C, d, spread=float(rng.uniform(0, 2)))
            a, b = _both(C, d, mu, cov)
            _assert_close(a, b, mu, cov, f"case {i}")
        taken = counts[0]
    # the lane must actually run (a lane that always declines would pass the rest)
    assert taken >= 0.8 * n, dict(counts)


def test_cancelling_small_far_polygons_use_the_cubature_in_the_lane():
    """Small polygons several standard deviations out: the signed cone sum cancels beyond
    e^3 and the lane integrates them by its cubature, as the general path does."""
    rng = np.random.default_rng(5)
    with _counting() as counts:
        for i in range(30):
            C, d = random_polytope(rng, 2, True)
            size = 10 ** rng.uniform(-3, -0.5)
            centre = rng.normal(size=2)
            d = size * d + C @ centre * (1 - size)
            u = rng.normal(size=2)
            u /= np.linalg.norm(u)
            cov = random_cov(rng, 2)
            mu = centre + rng.uniform(2, 6) * u * math.sqrt(np.linalg.eigvalsh(cov)[0])
            a, b = _both(C, d, mu, cov)
            _assert_close(a, b, mu, cov, f"case {i}")
        assert counts[0] >= 20, dict(counts)


def test_declined_cases_give_the_general_paths_results_exactly():
    """Cases the lane declines (lines, tail, non-simple vertices, duplicate rows, empty,
    a far polygon) run the general path: the same bits."""
    cov = np.array([[1.0, 0.2], [0.2, 0.5]])
    cases = {
        "strip (a line)": (np.array([[0.0, 1.0], [0.0, -1.0]]), np.array([1.0, 0.5])),
        "half-plane": (np.array([[1.0, 1.0], [2.0, 2.0]]), np.array([1.0, 2.0])),
        "weakly redundant row": (np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0],
                                           [1.0, 1.0]]), np.array([1.0, 1.0, 1.0, 1.0, 2.0])),
        "duplicate row": (np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0],
                                    [2.0, 0.0]]), np.array([1.0, 1.0, 1.0, 1.0, 2.0])),
        "empty": (np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]), np.array([-1.0, -1.0, 1.0])),
        "tail (12 sd away)": (np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]),
                              np.array([-12.0, 13.0, 1.0, 1.0])),
    }
    with _counting() as counts:
        for name, (C, d) in cases.items():
            a, b = _both(C, d, np.zeros(2), cov)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), name
            assert np.array_equal(a[2], b[2]), name
        assert counts[0] == 0, dict(counts)


def test_far_rows_and_huge_bounds():
    """Rows far beyond the polygon (dropped by the standardisation) and huge finite bounds."""
    rng = np.random.default_rng(3)
    with _counting() as counts:
        for far in (25.0, 1e3, 1e150, 1e300):
            C = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0], [0.3, 1.0]])
            d = np.array([1.0, 0.5, far, 0.7, 2.0])
            cov = random_cov(rng, 2)
            # the mean inside P, then outside (the kept rows are decided about a
            # verified point of P)
            for mu in (np.array([0.2, 0.1]), np.array([1.8, -0.9])):
                a, b = _both(C, d, mu, cov)
                _assert_close(a, b, mu, cov, f"far {far} mu {mu}")
        assert counts[0] >= 6, dict(counts)


def test_thin_and_nearly_parallel_polygons():
    """A strip of the given width and length ~2: its vertices carry ~eps absolute rounding,
    so the area, m0 and the moments carry ~eps / width relative in either path (measured
    against verified_dgn at width 1e-6: both paths within 2.3e-10 of the exact m0, and the
    lane within that of the general path in every case); the bound is 8 eps / width."""
    rng = np.random.default_rng(8)
    for width in (1e-2, 1e-4, 1e-6):
        for angle in (1e-1, 1e-3):
            C = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, math.tan(angle)],
                          [-1.0, math.tan(angle)]])
            d = np.array([width, 0.0, 1.0, 1.0])
            cov = random_cov(rng, 2)
            for mu in (np.zeros(2), np.array([0.5, 2.0]), np.array([-3.0, -1.0])):
                a, b = _both(C, d, mu, cov)
                _assert_close(a, b, mu, cov, f"width {width} angle {angle} mu {mu}",
                              amp=8 * np.finfo(float).eps / width)


def test_other_entry_points_and_shapes():
    rng = np.random.default_rng(2)
    C, d = random_polytope(rng, 2, True)
    mu, cov = _random_gaussian(rng, C, d, 0.5)
    with _lane(True):
        lm_a = log_gaussian_mass(C, d, mu, cov)
        t_a = truncated_normal_moments(C, d, mu, cov)
        g_a = gaussian_moments(C, d, mu, cov)
    with _lane(False):
        lm_b = log_gaussian_mass(C, d, mu, cov)
        t_b = truncated_normal_moments(C, d, mu, cov)
        g_b = gaussian_moments(C, d, mu, cov)
    assert type(lm_a) is type(lm_b) and np.shape(lm_a) == np.shape(lm_b) == ()
    assert abs(float(lm_a) - float(lm_b)) <= RTOL_M0 * abs(float(lm_b))
    for x, y in zip(t_a, t_b):
        assert type(x) is type(y) and np.shape(x) == np.shape(y)
        np.testing.assert_allclose(x, y, rtol=RTOL_MOM)
    for x, y in zip(g_a, g_b):
        assert type(x) is type(y) and np.shape(x) == np.shape(y)
    _assert_close(g_a, g_b, mu, cov)
    # list input and batches take the general path, with the same values
    with _lane(True):
        g_l = gaussian_moments(C.tolist(), d.tolist(), mu.tolist(), cov.tolist())
        g_n = gaussian_moments(C, d, np.stack([mu, mu]), cov)
    _assert_close(g_l, g_b, mu, cov)
    _assert_close((g_n[0][1], g_n[1][1], g_n[2][1]), g_b, mu, cov)


@pytest.mark.parametrize("bad", [
    ("cov", np.array([[1.0, 2.0], [2.0, 1.0]]), "not positive definite"),
    ("cov", np.array([[1.0, 0.5], [0.4, 1.0]]), "not symmetric"),
    ("cov", np.array([[1.0, 0.0], [0.0, 1e-14]]), "singular"),
    ("cov", np.array([[1.0, np.nan], [np.nan, 1.0]]), "NaN or infinite|NaN"),
    ("mean", np.array([np.inf, 0.0]), "infinite"),
    ("d", np.array([1.0, np.nan, 1.0, 1.0]), "NaN"),
])
def test_bad_input_same_errors(bad):
    """The lane only accepts input the general path accepts: bad input raises the general
    path's error, lane on or off."""
    C = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    args = {"C": C, "d": np.ones(4), "mean": np.zeros(2), "cov": np.eye(2)}
    name, value, msg = bad
    args[name] = value
    errs = []
    for on in (True, False):
        with _lane(on), pytest.raises(ValueError, match=msg) as exc:
            gaussian_moments(args["C"], args["d"], args["mean"], args["cov"])
        errs.append(str(exc.value))
    assert errs[0] == errs[1]


def test_borderline_covariance_is_left_to_the_rule():
    """Condition numbers between the lane's 1e12 and the rule's 1e13 are accepted by the
    rule: the general path computes them (the lane declines, same result)."""
    C = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    cov = np.diag([1.0, 1.0 / 3e12])
    with _counting() as counts:
        a, b = _both(C, np.ones(4), np.zeros(2), cov)
        assert counts[0] == 0
    assert np.array_equal(a[0], b[0])


def test_against_exact_integrals():
    """Lane results against verified_dgn's mpmath integrals (30 digits)."""
    verified_dgn = pytest.importorskip("verified_dgn")
    rng = np.random.default_rng(21)
    with _counting() as counts:
        for bounded in (True, True, False):
            C, d = random_polytope(rng, 2, bounded)
            mu, cov = _random_gaussian(rng, C, d, 1.0)
            with _lane(True):
                m0, m1, M2 = gaussian_moments(C, d, mu, cov)
            e0, e1, e2 = verified_dgn.gaussian_moments(C, d, mu, cov, dps=30)
            e1 = np.array(e1, dtype=float)
            e2 = np.array(e2, dtype=float)
            # the stated accuracy of the fast path: log m0 ~1e-14 relative, moments ~1e-12
            assert abs(m0 - float(e0)) <= 1e-12 * float(e0)
            np.testing.assert_allclose(m1, e1, rtol=0, atol=1e-11 * np.max(np.abs(e1)))
            np.testing.assert_allclose(M2, e2, rtol=0, atol=1e-11 * np.max(np.abs(e2)))
        assert counts[0] == 3
