"""The compiled Owen's T (fastpath/_jit_owens.py) against scipy.special.owens_t and mpmath."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special as sc

jit_owens = pytest.importorskip("fastpath._jit_owens")


def _random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """h over every magnitude in [-40, 40], a over [-1e3, 1e3] log-uniformly."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(-40, 40, n) * 10.0 ** rng.uniform(-6, 0, n)
    a = 10.0 ** rng.uniform(-4, 3, n) * rng.choice([-1.0, 1.0], n)
    return h, a


def test_matches_scipy_on_random_points():
    # the same algorithm and tables; the differences are those of libm's erf/erfc against
    # Cephes' and rounding, measured relative to T(h, inf) = Phi(-|h|)/2 (the scale
    # the bivariate kernel adds T to): worst 3.9e-15 for |h| < 3.3 and 8e-14 at
    # |h| in [3.3, 3.6], where both lose digits (T4 cancels there)
    h, a = _random_points(100_000, 1)
    got = jit_owens.owens_t_vec(h, a)
    ref = sc.owens_t(h, a)
    tinf = 0.5 * sc.ndtr(-np.abs(h))
    small = np.abs(h) < 3.3
    assert np.all(np.abs(got - ref)[small] <= 8e-15 * tinf[small])
    mid = (np.abs(h) >= 3.3) & (np.abs(h) < 9.0)
    assert np.all(np.abs(got - ref)[mid] <= 2e-13 * tinf[mid])


def test_special_values():
    T = jit_owens.owens_t
    assert T(0.0, 0.0) == 0.0
    assert T(1.7, 0.0) == 0.0
    assert T(0.0, 1.0) == 0.125  # atan(1)/(2 pi)
    assert T(0.0, 0.3) == pytest.approx(math.atan(0.3) / (2 * math.pi), rel=1e-15)
    # T(h, 1) = Phi(h) Phi(-h)/2
    assert T(1.3, 1.0) == pytest.approx(0.5 * sc.ndtr(1.3) * sc.ndtr(-1.3), rel=1e-15)
    assert T(1.3, math.inf) == pytest.approx(0.5 * sc.ndtr(-1.3), rel=1e-15)
    assert T(-1.3, -math.inf) == pytest.approx(-0.5 * sc.ndtr(-1.3), rel=1e-15)
    assert T(math.inf, 0.5) == 0.0 and T(-math.inf, math.inf) == 0.0
    assert math.isnan(T(math.nan, 1.0)) and math.isnan(T(1.0, math.nan))
    # even in h, odd in a
    for h, a in [(0.7, 0.2), (2.5, 3.0), (5.0, 0.9), (0.01, 100.0)]:
        assert T(-h, a) == T(h, a)
        assert T(h, -a) == -T(h, a)
