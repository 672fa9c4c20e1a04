"""fastpath.orthant's public functions: names, validation, broadcasting, standardisation,
and agreement with scipy and with the exact path (k <= 2; k = 3, 4 in
test_orthant_fast_tvn.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import fastpath
from fastpath import orthant as fo

#: relative tolerance on log P (as in test_orthant_fast_bvn.py)
RTOL = 1e-14


def test_public_names_and_aliases():
    assert fastpath.orthant_probability is fo.orthant_probability
    assert fastpath.log_orthant_probability is fo.log_orthant_probability
    b, cov = [0.3, -0.2], [[2.0, 0.4], [0.4, 1.5]]
    assert fo.log_mvn_cdf(b, cov) == fastpath.log_orthant_probability(b, cov)
    assert fo.mvn_cdf(b, cov) == fastpath.orthant_probability(b, cov)


def test_public_k1_and_k0():
    b = np.array([[-50.0], [0.3], [np.inf], [-np.inf]])
    got = fo.log_mvn_cdf(b, [[4.0]])
    np.testing.assert_array_equal(got, special.log_ndtr(b[:, 0] / 2.0))
    assert fo.log_mvn_cdf(np.zeros((3, 0)), np.zeros((0, 0))).tolist() == [0.0, 0.0, 0.0]


def test_public_broadcasting_and_standardisation():
    rng = np.random.default_rng(1)
    b = rng.normal(size=(4, 1, 2)) * 3
    L = rng.normal(size=(3, 2, 2))
    cov = L @ np.swapaxes(L, -1, -2) + 0.1 * np.eye(2)
    got = fo.log_mvn_cdf(b, cov)
    assert got.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            sd = np.sqrt(np.diag(cov[j]))
            r = cov[j, 0, 1] / (sd[0] * sd[1])
            want = fo._log_bvn(b[i, 0, 0] / sd[0], b[i, 0, 1] / sd[1], r)
            assert got[i, j] == pytest.approx(want, rel=1e-15, abs=1e-15)
    # +inf in one coordinate of a 2-D problem = the 1-D marginal
    got = fo.log_mvn_cdf([[1.0, np.inf], [np.inf, -2.0]], [[4.0, 1.0], [1.0, 9.0]])
    np.testing.assert_allclose(got, special.log_ndtr([0.5, -2.0 / 3.0]), rtol=1e-15)


@pytest.mark.parametrize("b, cov, match", [
    (np.zeros(2), np.eye(3), "shape"),
    (np.zeros(5), np.eye(5), "k <= 4"),
    (np.array([np.nan, 0.0]), np.eye(2), "NaN"),
    (np.zeros(2), np.array([[1.0, np.nan], [np.nan, 1.0]]), "NaN or infinite"),
    (np.zeros(2), np.array([[1.0, 0.5], [0.4, 1.0]]), "symmetric"),
    (np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), "semi-definite"),
    (np.zeros(2), np.array([[0.0, 0.0], [0.0, 1.0]]), "positive definite"),
    (np.zeros((2, 2)), np.ones((3, 2, 2)) * np.eye(2), "broadcast"),
    (np.float64(1.0), np.eye(1), "scalar"),
])
def test_public_validation(b, cov, match):
    with pytest.raises(ValueError, match=match):
        fo.log_mvn_cdf(b, cov)


def test_public_singular_2x2_accepted():
    # correlation exactly 1 (singular within rounding): the degenerate 1-D case
    cov = np.array([[4.0, 6.0], [6.0, 9.0]])
    got = fo.log_mvn_cdf([1.0, -3.0], cov)
    # log Phi(-1), compiled on libm's erfc: within a few ulp of scipy's
    assert abs(got - special.log_ndtr(min(0.5, -1.0))) <= 4e-16 * 1.85


def test_against_scipy_bulk():
    # scipy's bivariate cdf (Genz's deterministic bvnu, absolute accuracy ~1e-8 with its
    # default abseps) as an independent loose check in the bulk
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(9)
    for _ in range(20):
        b = rng.uniform(-3, 3, 2)
        r = rng.uniform(-0.95, 0.95)
        cov = [[1.0, r], [r, 1.0]]
        want = multivariate_normal(mean=[0, 0], cov=cov).cdf(b)
        assert fo.mvn_cdf(b, cov) == pytest.approx(want, abs=1e-7)


def test_against_exact_path_k2():
    vo = pytest.importorskip("verified_dgn.orthant")
    cases = [([-3.0, -4.0], [[1.0, -0.5], [-0.5, 1.0]]),
             ([2.0, -25.0], [[2.0, 1.3], [1.3, 1.0]]),
             ([0.1, 0.2], [[1.0, 0.999999], [0.999999, 1.0]])]
    for b, cov in cases:
        ref = vo.log_orthant_probability(b, cov, dps=30)
        got = fo.log_mvn_cdf(b, cov)
        assert abs(got - float(ref)) <= 1e-13 + RTOL * abs(got), (b, cov, got, ref)
