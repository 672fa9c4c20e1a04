"""The compiled univariate normal kernels (fastpath/_jit_special.py) against scipy.special,
the numpy kernel they replace and mpmath, over all magnitudes."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import scipy.special as sc

from fastpath._orthant_rules import _log_ndtr_diff

jit_special = pytest.importorskip("fastpath._jit_special")

# both tails and the middle, every magnitude the kernels meet
_X = np.concatenate([-np.logspace(-12, 3, 400), [0.0], np.logspace(-12, 1.5, 300)])


def test_log_ndtr_matches_scipy():
    # the same algorithm on a different erfc (libm's vs scipy's own): both are within 9e-14
    # relative of mpmath in the upper tail near x = 23 (erfc(16)), a few ulp elsewhere
    got = jit_special.log_ndtr_vec(_X)
    ref = sc.log_ndtr(_X)
    assert np.all(np.abs(got - ref) <= 2e-13 * np.abs(ref))


def test_log_ndtr_against_mpmath():
    # relative 2e-13 of log Phi (measured worst 9.4e-14 at x = 23, the same as scipy's:
    # erfc's own accuracy there; within 5e-15, a few ulp of erfc, below |x| = 8); the
    # reference takes the log1p form above 0 as well
    with mpmath.workdps(40):
        for x in _X[::3]:
            xm = mpmath.mpf(float(x))
            ref = float(mpmath.log1p(-mpmath.ncdf(-xm)) if x > 0 else mpmath.log(mpmath.ncdf(xm)))
            got = jit_special.log_ndtr(float(x))
            assert abs(got - ref) <= 2e-13 * abs(ref), (x, got, ref)
            if abs(x) < 8:
                assert abs(got - ref) <= 5e-15 * abs(ref), (x, got, ref)


def test_specials():
    got = jit_special.log_ndtr_vec(np.array([-np.inf, np.inf, np.nan]))
    assert got[0] == -np.inf and got[1] == 0.0 and np.isnan(got[2])
    assert jit_special.log_ndtr_diff(1.0, 1.0) == -np.inf
    assert jit_special.log_ndtr_diff(2.0, 1.0) == -np.inf
    assert jit_special.log_ndtr_diff(-np.inf, np.inf) == 0.0


def test_log_ndtr_diff_against_numpy_kernel_and_mpmath():
    rng = np.random.default_rng(3)
    a = rng.normal(size=4000) * 10.0 ** rng.uniform(-3, 1.5, 4000)
    b = a + 10.0 ** rng.uniform(-10, 1.5, 4000)
    got = jit_special.log_ndtr_diff_vec(a, b)
    ref = _log_ndtr_diff(a, b)
    # same formulas, same nodes: differences are rounding only
    assert np.all(np.abs(got - ref) <= 1e-14 * np.maximum(1.0, np.abs(ref)))
    with mpmath.workdps(50):
        for i in range(0, 4000, 200):
            exact = mpmath.ncdf(mpmath.mpf(b[i])) - mpmath.ncdf(mpmath.mpf(a[i]))
            if exact == 0:
                continue
            ref_i = float(mpmath.log(exact))
            # relative 1e-13 of the difference itself (an absolute error in the log)
            assert abs(got[i] - ref_i) <= 1e-13 * max(1.0, abs(ref_i)), (a[i], b[i])


def test_exp_vec_within_two_ulp():
    # the vectorisable exp of the node loops against numpy's (itself within 1 ulp):
    # |difference| <= 2 ulp over the whole range, 0 below -708, nan stays nan
    x = np.concatenate([np.linspace(-708.0, 709.0, 400001), -(10.0 ** np.linspace(-300, 2.5, 2000)),
                        10.0 ** np.linspace(-300, 2.5, 2000), [0.0, -0.0]])
    got = jit_special.exp_vec_array(x)
    ref = np.exp(x)
    assert np.all(np.abs(got - ref) <= 2 * np.spacing(ref))
    tail = jit_special.exp_vec_array(np.array([-708.5, -745.2, -1e300, -np.inf, np.nan]))
    assert np.array_equal(tail[:4], np.zeros(4)) and np.isnan(tail[4])


def test_sorted_head_equals_np_sort():
    # the kernels' stand-in for np.sort(x[:n]) (int64 edge keys, float64 slope jumps with
    # inf and ties): the same values in the same order, bit for bit, x left unchanged
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 40, size=200).astype(np.int64)
    jumps = np.concatenate([rng.exponential(size=150), [np.inf, 0.0, 0.0, 2.5, 2.5, np.inf]])
    rng.shuffle(jumps)
    for x in (keys, jumps):
        before = x.copy()
        for n in (0, 1, 2, 7, x.size - 1, x.size):
            got = jit_special.sorted_head(x, n)
            assert got.dtype == x.dtype
            assert np.array_equal(got, np.sort(x[:n]))
        assert np.array_equal(x, before)
