"""The compiled Owen's T (fastpath/_jit_owens.py) against mpmath quadrature and
scipy.special.owens_t.

Errors are stated relative to T(h, a) itself and to T(h, inf) = Phi(-|h|)/2, the scale on
which the bivariate kernel adds T to Phi(h)/2 terms (its Owen's T form uses |h| < 3.3).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import scipy.special as sc

jit_owens = pytest.importorskip("fastpath._jit_owens")

_EPS = float(np.finfo(np.float64).eps)


def _t_mpmath(h: float, a: float) -> float:
    """T(h, a) = 1/(2 pi) int_0^a exp(-h^2 (1 + x^2)/2)/(1 + x^2) dx at 30 digits, h, a >= 0
    (tanh-sinh, mpmath's default).

    exp(-h^2/2) is taken out; for h >= 1 the quadrature runs in u = h x, where the Gaussian
    factor has scale 1; breakpoints at the scales of both factors.
    """
    with mpmath.workdps(30):
        hm, am = mpmath.mpf(h), mpmath.mpf(a)
        if am == 0:
            return 0.0
        if hm >= 1:
            def f(u):  # type: ignore[no-untyped-def]
                return mpmath.exp(-u * u / 2) / (1 + (u / hm) ** 2)
            top = am * hm
            cuts = [0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, hm, 10 * hm, 100 * hm]
            scale = mpmath.exp(-hm * hm / 2) / (2 * mpmath.pi * hm)
        else:
            def f(x):  # type: ignore[no-untyped-def]
                return mpmath.exp(-hm * hm * x * x / 2) / (1 + x * x)
            top = am
            cuts = [0.5, 1, 2, 4, 10, 100] + ([k / hm for k in (1, 2, 4, 8, 16)] if hm > 0 else [])
            scale = mpmath.exp(-hm * hm / 2) / (2 * mpmath.pi)
        # over t = x/top in [0, 1], the factor top outside: mpmath's convergence test is
        # absolute, and a tiny integral (top = 1e-300) would pass it at its first level
        pts = [mpmath.mpf(0)] + sorted({mpmath.mpf(c) / top for c in cuts if 0 < c < top}) + [1]
        v, err = mpmath.quad(lambda t: f(top * t), pts, error=True)
        assert err <= 1e-20 * v  # the reference itself is good to far below double
        return float(v * top * scale)


# h: 0, tiny, then logarithmic to 40, with T3's weak band [3.36, 3.45] sampled; a: tiny,
# logarithmic to 1e3, and +-1e-5 around 1 (T6, the a = 1 closed form, the 1/a reduction)
_H = np.unique(np.concatenate([[0.0, 1e-300, 1e-12, 1e-6], np.logspace(-3, np.log10(40), 17),
                               [3.3, 3.37, 3.4, 3.42, 3.45, 3.6]]))
_A = np.unique(np.concatenate([[1e-300, 1e-12, 1e-6], np.logspace(-4, 3, 13),
                               [0.5, 0.9, 0.99999, 1.0, 1.00001, 3.0]]))


@pytest.fixture(scope="module")
def grid() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    hh, aa = np.meshgrid(_H, _A, indexing="ij")
    ref = np.array([[_t_mpmath(h, a) for a in _A] for h in _H])
    tinf = np.array([float(mpmath.ncdf(-mpmath.mpf(h)) / 2) for h in _H])[:, None]
    return hh, aa, ref, np.broadcast_to(tinf, ref.shape)


def test_against_mpmath_grid(grid):
    hh, aa, ref, tinf = grid
    got = jit_owens.owens_t_vec(hh.ravel(), aa.ravel()).reshape(hh.shape)
    err = np.abs(got - ref)
    normal = ref > 1e-280  # below, T is subnormal or 0 and has no relative digits
    # measured worst (relative to T and to T(h, inf)): 1.5e-15 for h < 3.3; 5e-15 for
    # h in [3.3, 9) (1.5e-13 from scipy's T3 at h = 3.4 before T5 took that band);
    # 1.8e-13 up to h = 37: erfc(h/sqrt 2) and exp(-h^2/2) carry the rounding of their
    # argument, relative h^2 eps (3e-13 at h = 37)
    tol = np.where(hh < 3.3, 3e-15, np.where(hh < 9.0, 1e-14, 2.0 * hh * hh * _EPS))
    assert np.all(err[normal] <= tol[normal] * ref[normal])
    assert np.all(err[normal] <= tol[normal] * tinf[normal])
    # subnormal T (a = 1e-300, h >= 5.5): intermediate products underflow; only the
    # absolute error is meaningful there
    assert np.all(err[~normal] <= 1e-300)
    # odd in a, even in h: exactly
    assert np.array_equal(jit_owens.owens_t_vec(-hh.ravel(), -aa.ravel()), -got.ravel())


def _random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """h over every magnitude in [-40, 40], a over [-1e3, 1e3] log-uniformly."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(-40, 40, n) * 10.0 ** rng.uniform(-6, 0, n)
    a = 10.0 ** rng.uniform(-4, 3, n) * rng.choice([-1.0, 1.0], n)
    return h, a


def _t3_band(h: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Where scipy uses T3 below h = 3.8 (directly or through the 1/a reduction)."""
    h, a = np.abs(h), np.abs(a)
    direct = (h > 3.36) & (h < 3.8) & (a > 0.36) & (a <= 1.0)
    reduced = (a > 1.0) & (a * h > 3.36) & (a * h < 3.8)
    return direct | reduced


def test_matches_scipy_on_random_points():
    # the same algorithm and tables except in T3's band; elsewhere the differences are
    # those of libm's erf/erfc against Cephes' and rounding. Relative to T(h, inf), worst
    # measured 3.9e-15 for |h| < 3.3, 1.5e-14 below 9, 2.4e-13 below 37 (h^2 eps, above)
    h, a = _random_points(100_000, 1)
    got = jit_owens.owens_t_vec(h, a)
    ref = sc.owens_t(h, a)
    tinf = 0.5 * sc.ndtr(-np.abs(h))
    err = np.abs(got - ref)
    ok = ~_t3_band(h, a)
    for lo, hi, tol in [(0.0, 3.3, 8e-15), (3.3, 9.0, 3e-14), (9.0, 37.0, 5e-13)]:
        m = ok & (np.abs(h) >= lo) & (np.abs(h) < hi)
        assert np.all(err[m] <= tol * tinf[m]), (lo, hi)


def test_more_accurate_than_scipy_in_t3_band():
    # scipy's T3 loses up to 1.5e-13 of T(h, inf) for h in [3.36, 3.6] (a in [0.36, 1]) and
    # for a h there when a > 1; this module uses T5 below h = 3.8
    rng = np.random.default_rng(7)
    h = rng.uniform(3.36, 3.8, 20)
    a = rng.uniform(0.36, 1.0, 20)
    h2 = rng.uniform(0.5, 3.3, 20)  # a > 1 with a h in the band: the bivariate kernel's case
    a2 = rng.uniform(3.36, 3.8, 20) / h2
    hs, as_ = np.concatenate([h, h2]), np.concatenate([a, a2])
    assert np.all(_t3_band(hs, as_))
    ref = np.array([_t_mpmath(x, y) for x, y in zip(hs, as_)])
    tinf = 0.5 * sc.ndtr(-hs)
    ours = np.abs(jit_owens.owens_t_vec(hs, as_) - ref) / tinf
    theirs = np.abs(sc.owens_t(hs, as_) - ref) / tinf
    assert ours.max() <= 4e-15
    assert theirs.max() > 1e-14  # the band is where scipy is measurably worse


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


def test_vec_refuses_mismatched_sizes():
    with pytest.raises(ValueError, match="same size"):
        jit_owens.owens_t_vec(np.zeros(3), np.zeros(2))
