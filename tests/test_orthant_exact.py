"""verified_dgn.orthant: high-precision orthant probabilities and Tallis moments.

References used here, none of which shares code with the module under test:
closed forms (Phi_2 and Phi_3 at the origin, exchangeable correlation 1/2 gives 1/(k+1),
products for block-diagonal correlations, truncated normal in 1-D), an mpmath conditioning
integral scaled to its maximum (relative accuracy in the far tails), scipy's deterministic
bivariate normal (Genz), and a float tensor Gauss-Legendre brute force for the moments.
Every digit claim is re-checked by recomputing at dps + 15.

Default selection: the quick cases; ``--runslow`` adds the (costly)
Plackett-vs-conditioning Phi_4 comparison.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from verified_dgn.orthant import (
    _phi4,
    _phi4_conditioning,
    log_orthant_probability,
    orthant_moments,
    orthant_probability,
)

mp = mpmath.mp


def rel(a, b):
    with mpmath.workdps(80):
        return float(abs(a - b) / abs(b))


def corr_from(rng, k):
    A = rng.standard_normal((k, k + 2))
    K = A @ A.T
    d = np.sqrt(np.diag(K))
    R = K / np.outer(d, d)
    R = (R + R.T) / 2  # exactly symmetric, unit diagonal
    np.fill_diagonal(R, 1.0)
    return R


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("b,cov,exc,msg", [
    ([0.0, 0.0], [[1.0, 0.0]], ValueError, "shape"),
    ([[0.0]], [[1.0]], ValueError, "1-dimensional"),
    ([0.0] * 5, np.eye(5), ValueError, "up to 4"),
    ([float("nan")], [[1.0]], ValueError, "NaN"),
    ([0.0], [[float("inf")]], ValueError, "infinite"),
    ([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]], ValueError, "positive definite"),
    ([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], ValueError, "positive definite"),
    ([0.0, 0.0], [[1.0, 0.2], [0.3, 1.0]], ValueError, "symmetric"),
    (["x"], [[1.0]], ValueError, "cannot create mpf|could not convert"),
    ([None], [[1.0]], TypeError, "real numbers"),
])
def test_invalid_inputs(b, cov, exc, msg):
    with pytest.raises(exc, match=msg):
        orthant_probability(b, cov)
    with pytest.raises(exc, match=msg):
        orthant_moments(b, cov)


def test_invalid_dps():
    with pytest.raises(ValueError, match="dps"):
        orthant_probability([0.0], [[1.0]], dps=0)


# --------------------------------------------------------------------------- the covariance rule
@pytest.mark.parametrize("cov", [
    [[1.0, 1.0], [1.0, 1.0]],            # singular
    [[1.0, 2.0], [2.0, 1.0]],            # indefinite
    [[1.0, 0.2], [0.3, 1.0]],            # not symmetric
    [[1.0, 0.0], [0.0, 1e-14]],          # condition number 1e14
    [[1.0, float("nan")], [0.0, 1.0]],   # NaN
])
def test_float_covariance_fails_as_the_shared_rule(cov):
    """Float input: the exception and message of dgn_core.validation.check_covariance."""
    from dgn_core.validation import check_covariance

    with pytest.raises(ValueError) as shared:
        check_covariance(np.array(cov), 2)
    for f in (orthant_probability, orthant_moments):
        with pytest.raises(ValueError) as mine:
            f([0.0, 0.0], cov)
        assert str(mine.value) == str(shared.value)


@pytest.mark.parametrize("cov,msg", [
    ([[1, Fraction(1, 3)], [Fraction(1, 3), Fraction(1, 9)]], "not positive definite.*singular"),
    ([[1, 2], [2, Fraction(1, 1)]], "not positive definite"),
    ([[1, Fraction(1, 5)], [Fraction(3, 10), 1]], r"not symmetric \(relative asymmetry 0.1\)"),
    ([[mpmath.mpf(1), mpmath.mpf(2)], [mpmath.mpf(2), mpmath.mpf(1)]], "not positive definite"),
])
def test_exact_covariance_checked_exactly(cov, msg):
    """Exact input (Fractions, mpf): the same kinds of message, decided in rationals."""
    for f in (orthant_probability, orthant_moments):
        with pytest.raises(ValueError, match=msg):
            f([0.0, 0.0], cov)


def test_exact_covariance_has_no_condition_limit():
    """Exact input is not limited by the float rule's condition number (no float solve)."""
    cov = [[1, 0], [0, Fraction(1, 10 ** 14)]]
    with pytest.raises(ValueError, match="numerically singular"):
        orthant_probability([0.0, 0.0], [[1.0, 0.0], [0.0, 1e-14]])
    assert rel(orthant_probability([0, 0], cov, dps=20), mpmath.mpf(1) / 4) < 1e-19
    # asymmetry within the shared relative rule (1e-10 of the largest entry) is symmetrised
    a = orthant_probability([0.5, -1], [[1, Fraction(1, 4)], [Fraction(1, 4) + Fraction(1, 10 ** 12), 1]],
                            dps=25)
    b = orthant_probability([0.5, -1], [[1, Fraction(1, 4) + Fraction(1, 2 * 10 ** 12)],
                                        [Fraction(1, 4) + Fraction(1, 2 * 10 ** 12), 1]], dps=25)
    assert rel(a, b) < 1e-24


def test_trivial_and_infinite_bounds():
    assert orthant_probability([], np.zeros((0, 0))) == 1
    assert orthant_probability([-math.inf, 1.0], np.eye(2)) == 0
    # +inf bounds drop out: equal to the lower-dimensional orthant (same code path for
    # the remaining coordinates, so the comparison is exact)
    R = [[1.0, 0.3], [0.3, 2.0]]
    assert orthant_probability([0.5, math.inf], R) == orthant_probability([0.5], [[1.0]])
    with mpmath.workdps(50):
        assert rel(orthant_probability([math.inf, -1.0], R, dps=40),
                   mpmath.ncdf(-1 / mpmath.sqrt(2))) < 1e-40
    P, m1, M2 = orthant_moments([-math.inf, 0.0], np.eye(2))
    assert P == 0 and all(x == 0 for x in m1) and all(x == 0 for x in M2.ravel())
    P, m1, M2 = orthant_moments([math.inf, math.inf], [[2.0, 0.5], [0.5, 1.0]])
    assert P == 1 and all(x == 0 for x in m1)
    assert [float(x) for x in M2.ravel()] == [2.0, 0.5, 0.5, 1.0]


def test_input_number_types_agree():
    # Fractions, ints, strings, floats and mpf describing the same numbers give equal results
    a = orthant_probability([Fraction(1, 2), -1], [[1, Fraction(1, 4)], [Fraction(1, 4), 1]], dps=25)
    b = orthant_probability([0.5, -1.0], [[1.0, 0.25], [0.25, 1.0]], dps=25)
    with mpmath.workdps(30):
        c = orthant_probability([mpmath.mpf("0.5"), "-1"], [[1, "0.25"], ["0.25", 1]], dps=25)
    assert rel(a, b) < 1e-25 and rel(c, b) < 1e-25


# --------------------------------------------------------------------------- Phi_1, Phi_2
@pytest.mark.parametrize("h", [-40.0, -8.0, -1.0, 0.0, 2.5, 30.0])
def test_phi1_relative_in_tails(h):
    v = orthant_probability([h], [[1.0]], dps=40)
    with mpmath.workdps(60):
        assert rel(v, mpmath.ncdf(h)) < 1e-40


def test_phi1_scaled_variance():
    v = orthant_probability([-3.0], [[4.0]], dps=30)
    with mpmath.workdps(50):
        assert rel(v, mpmath.ncdf(-1.5)) < 1e-30


@pytest.mark.parametrize("rho", [-0.999999, -0.9, -0.5, -0.1, 0.0, 0.2, 0.7, 0.99, 0.9999999])
def test_phi2_closed_form_at_origin(rho):
    v = orthant_probability([0, 0], [[1, rho], [rho, 1]], dps=30)
    with mpmath.workdps(60):
        ref = mpmath.mpf(1) / 4 + mpmath.asin(rho) / (2 * mpmath.pi)
        assert rel(v, ref) < 1e-30


def conditioning_reference(h, k, rho, dps=50):
    """P(Y1<=h, Y2<=k) = int_{-inf}^h phi(x) Phi((k - rho x)/s) dx, scaled by the maximum
    of the integrand on a fine grid so that mpmath's absolute error test is relative."""
    with mpmath.workdps(dps):
        h, k, rho = mpmath.mpf(h), mpmath.mpf(k), mpmath.mpf(rho)
        s = mpmath.sqrt(1 - rho * rho)
        f = lambda x: mpmath.npdf(x) * mpmath.ncdf((k - rho * x) / s)  # noqa: E731
        pts = [h - 60 + j * 2 for j in range(31)]
        sc = max(f(x) for x in pts)
        return mpmath.quad(lambda x: f(x) / sc, pts) * sc


@pytest.mark.parametrize("h,k,rho", [
    (0.3, -0.5, 0.6), (-3.0, -2.0, 0.9), (-10.0, -10.0, -0.5), (-5.0, 3.0, -0.9),
    (-30.0, -20.0, 0.8), (-30.0, -20.0, -0.3), (2.0, -1.0, -0.3), (-8.0, -8.0, -0.999),
])
def test_phi2_tails_relative(h, k, rho):
    v = orthant_probability([h, k], [[1, rho], [rho, 1]], dps=30)
    assert rel(v, conditioning_reference(h, k, rho)) < 1e-30


def test_phi2_matches_genz_bvn():
    rng = np.random.default_rng(11)
    for _ in range(15):
        rho = rng.uniform(-0.95, 0.95)
        b = rng.normal(size=2) * 1.5
        s = np.array([1.0, rng.uniform(0.5, 2.0)])
        cov = [[s[0] ** 2, rho * s[0] * s[1]], [rho * s[0] * s[1], s[1] ** 2]]
        v = float(orthant_probability(b, cov, dps=20))
        ref = multivariate_normal.cdf(b, cov=cov)
        assert abs(v - ref) < 1e-14  # scipy's Genz bvn: ~1e-16 absolute


# --------------------------------------------------------------------------- Phi_3, Phi_4
def test_phi3_closed_form_at_origin():
    rng = np.random.default_rng(5)
    for _ in range(4):
        R = corr_from(rng, 3)
        v = orthant_probability([0, 0, 0], R, dps=30)
        with mpmath.workdps(60):
            ref = mpmath.mpf(1) / 8 + sum(mpmath.asin(R[i, j])
                                          for i, j in ((0, 1), (0, 2), (1, 2))) / (4 * mpmath.pi)
            assert rel(v, ref) < 1e-30


@pytest.mark.parametrize("k", [3, 4])
def test_exchangeable_half_gives_one_over_k_plus_one(k):
    R = np.full((k, k), 0.5) + 0.5 * np.eye(k)
    v = orthant_probability([0] * k, R, dps=30)
    with mpmath.workdps(60):
        assert rel(v, mpmath.mpf(1) / (k + 1)) < 1e-30


def test_phi3_independent_tails_are_products():
    b = [-20.0, -25.0, -30.0]
    v = orthant_probability(b, np.eye(3), dps=30)
    with mpmath.workdps(60):
        ref = mpmath.ncdf(-20) * mpmath.ncdf(-25) * mpmath.ncdf(-30)
    assert rel(v, ref) < 1e-30


def test_phi3_block_diagonal_product():
    # Y1 independent of (Y2, Y3): Phi_3 = Phi(h1) * Phi_2; the Plackett path of Phi_3 is not
    # the Phi_2 code path
    rho = -0.7
    R = np.array([[1, 0, 0], [0, 1, rho], [0, rho, 1]], dtype=float)
    v = orthant_probability([-6.0, -4.0, -3.0], R, dps=30)
    ref = orthant_probability([-4.0, -3.0], R[1:, 1:], dps=40)
    with mpmath.workdps(60):
        assert rel(v, mpmath.ncdf(-6) * ref) < 1e-30


def phi3_float_reference(b, R):
    """int_{-inf}^{b1} phi(x) BVN(conditional bounds) dx with Genz's bvn (scipy, ~1e-16)
    and 400-point Gauss-Legendre on [b1 - 12, b1]: an independent float reference."""
    from scipy.stats import norm
    x, w = np.polynomial.legendre.leggauss(400)
    lo, hi = b[0] - 12.0, b[0]
    xs = lo + (x + 1) * (hi - lo) / 2
    ws = w * (hi - lo) / 2
    r = R[0, 1:]
    Cc = R[1:, 1:] - np.outer(r, r)
    total = 0.0
    for xi, wi in zip(xs, ws):
        total += wi * norm.pdf(xi) * multivariate_normal.cdf(b[1:] - r * xi, cov=Cc)
    return total


def test_phi3_against_float_conditioning():
    rng = np.random.default_rng(7)
    for _ in range(3):
        R = corr_from(rng, 3)
        b = rng.normal(size=3)
        v = float(orthant_probability(b, R, dps=20))
        assert abs(v - phi3_float_reference(b, R)) < 1e-12


def test_phi4_block_diagonal_closed_form():
    r1, r2 = 0.6, -0.4
    R = np.zeros((4, 4))
    R[:2, :2] = [[1, r1], [r1, 1]]
    R[2:, 2:] = [[1, r2], [r2, 1]]
    v = orthant_probability([0, 0, 0, 0], R, dps=25)
    with mpmath.workdps(50):
        ref = ((mpmath.mpf(1) / 4 + mpmath.asin(r1) / (2 * mpmath.pi))
               * (mpmath.mpf(1) / 4 + mpmath.asin(r2) / (2 * mpmath.pi)))
    assert rel(v, ref) < 1e-25


@pytest.mark.slow
def test_phi4_plackett_vs_conditioning():
    # two independent algorithms: Plackett path from a star reference (used) and
    # conditioning on one variable with a nested Phi_3 (slow; kept for this test)
    rng = np.random.default_rng(3)
    for _ in range(2):
        R = corr_from(rng, 4)
        b = rng.normal(size=4) * 1.5
        with mpmath.workdps(40):
            h = [mpmath.mpf(x) for x in b]
            RR = [[mpmath.mpf(x) for x in row] for row in R]
            a, _ = _phi4(h, RR, 25)
            c, _ = _phi4_conditioning(h, RR, 25)
            assert rel(a, c) < 1e-24


def test_phi4_against_float_reference():
    rng = np.random.default_rng(8)
    R = corr_from(rng, 4)
    b = rng.normal(size=4)
    v = float(orthant_probability(b, R, dps=15))
    ref = multivariate_normal.cdf(b, cov=R, abseps=1e-9, releps=1e-9)
    assert abs(v - ref) < 2e-7  # scipy's QMC for k = 4: ~1e-8 at best, randomised


# --------------------------------------------------------------------------- digit claims
@pytest.mark.parametrize("b,R", [
    ([-7.0, -9.0], [[1, -0.3], [-0.3, 1]]),
    ([-4.0, -3.0, -5.0], [[1, 0.2, -0.4], [0.2, 1, -0.3], [-0.4, -0.3, 1]]),
    ([1.0, -2.0, 0.5], [[1, 0.9, 0.5], [0.9, 1, 0.6], [0.5, 0.6, 1]]),
])
def test_digits_confirmed_at_dps_plus_15(b, R):
    dps = 30
    a = orthant_probability(b, R, dps=dps)
    c = orthant_probability(b, R, dps=dps + 15)
    assert rel(a, c) < 10.0 ** -dps


def test_log_orthant_probability():
    lp = log_orthant_probability([-40.0, -45.0], [[1.0, 0.5], [0.5, 1.0]], dps=20)
    # exponent (h^2 + k^2 - 2 rho h k) / (2 (1 - rho^2)) = 1216.7 plus a log prefactor:
    # far below double precision's range
    assert -1235 < lp < -1216
    p = orthant_probability([-40.0, -45.0], [[1.0, 0.5], [0.5, 1.0]], dps=20)
    with mpmath.workdps(40):
        assert abs(lp - mpmath.log(p)) < 1e-15
    assert log_orthant_probability([-math.inf], [[1.0]]) == -mpmath.inf


# --------------------------------------------------------------------------- moments
def truncnorm_1d(b, s2, dps=50):
    with mpmath.workdps(dps):
        s = mpmath.sqrt(mpmath.mpf(s2))
        be = mpmath.mpf(b) / s
        P = mpmath.ncdf(be)
        m1 = -s * mpmath.npdf(be)
        m2 = s * s * (P - be * mpmath.npdf(be))
        return P, m1, m2


@pytest.mark.parametrize("b,s2", [(0.3, 1.0), (-30.0, 2.0), (5.0, 0.5)])
def test_moments_1d_closed_form(b, s2):
    P, m1, M2 = orthant_moments([b], [[s2]], dps=30)
    rP, r1, r2 = truncnorm_1d(b, s2)
    assert rel(P, rP) < 1e-30 and rel(m1[0], r1) < 1e-30 and rel(M2[0, 0], r2) < 1e-30


def moments_bruteforce(b, K, n=60, width=12.0):
    """Tensor Gauss-Legendre over the box prod [b_i - width sd_i, b_i] (an infinite bound
    becomes +width sd_i): float moments of order 0, 1, 2 (slow obvious loop version)."""
    K = np.asarray(K, float)
    k = len(b)
    sd = np.sqrt(np.diag(K))
    x, w = np.polynomial.legendre.leggauss(n)
    axes, wts = [], []
    for i in range(k):
        hi = b[i] if np.isfinite(b[i]) else width * sd[i]
        lo = (b[i] if np.isfinite(b[i]) else 0.0) - width * sd[i] if np.isfinite(b[i]) else -width * sd[i]
        axes.append(lo + (x + 1) * (hi - lo) / 2)
        wts.append(w * (hi - lo) / 2)
    grids = np.meshgrid(*axes, indexing="ij")
    Y = np.stack([g.ravel() for g in grids], axis=1)
    W = np.ones(len(Y))
    for g in np.meshgrid(*wts, indexing="ij"):
        W *= g.ravel()
    dens = multivariate_normal(mean=np.zeros(k), cov=K).pdf(Y).reshape(-1) * W
    return dens.sum(), Y.T @ dens, (Y * dens[:, None]).T @ Y


@pytest.mark.parametrize("b,K", [
    ([0.3, -0.5], [[2, 0.5], [0.5, 1]]),
    ([-3.0, -2.0], [[1, -0.6], [-0.6, 1.5]]),
    ([0.7, math.inf], [[1.5, -0.4], [-0.4, 0.8]]),
    ([0.3, -0.5, 1.0], [[2, 0.5, 0.2], [0.5, 1, -0.3], [0.2, -0.3, 1.2]]),
    ([-1.0, math.inf, 0.4], [[1, 0.3, -0.2], [0.3, 1, 0.4], [-0.2, 0.4, 1]]),
    ([0.3, -0.5, 1.0, 0.2], [[2, 0.5, 0.2, 0.1], [0.5, 1, -0.3, 0], [0.2, -0.3, 1.2, 0.4], [0.1, 0, 0.4, 1]]),
])
def test_moments_against_bruteforce(b, K):
    k = len(b)
    P, m1, M2 = orthant_moments(b, K, dps=20)
    n = {2: 80, 3: 64, 4: 30}[k]
    rP, r1, r2 = moments_bruteforce(b, K, n=n)
    scale1 = [math.sqrt(float(P * M2[i, i])) for i in range(k)]
    # the float brute force itself is good to ~1e-11 (n nodes on a 12-sd box)
    assert abs(float(P) - rP) < 1e-11
    for i in range(k):
        assert abs(float(m1[i]) - r1[i]) < 1e-10 * scale1[i]
        for j in range(k):
            assert abs(float(M2[i, j]) - r2[i, j]) < 1e-10 * math.sqrt(float(M2[i, i] * M2[j, j]))


@pytest.mark.slow
def test_moments_2d_exact_quadrature():
    # nested mpmath quadrature at 25 digits: the orthant moments to 20 digits
    b = [0.3, -0.5]
    K = [[2, 0.5], [0.5, 1]]
    P, m1, M2 = orthant_moments(b, K, dps=20)
    with mpmath.workdps(25):
        Km = mpmath.matrix(K)
        Ki = Km ** -1
        det = mpmath.det(Km)

        def N(x, y):
            return mpmath.exp(-(Ki[0, 0] * x * x + 2 * Ki[0, 1] * x * y + Ki[1, 1] * y * y) / 2) / (
                2 * mpmath.pi * mpmath.sqrt(det))

        def integral(g):
            return mpmath.quad(lambda x: mpmath.quad(lambda y: g(x, y) * N(x, y), [-mpmath.inf, b[1]]),
                               [-mpmath.inf, b[0]])

        assert rel(P, integral(lambda x, y: 1)) < 1e-20
        assert rel(m1[0], integral(lambda x, y: x)) < 1e-20
        assert rel(M2[0, 1], integral(lambda x, y: x * y)) < 1e-20
        assert rel(M2[1, 1], integral(lambda x, y: y * y)) < 1e-20


def test_moment_digits_confirmed_at_dps_plus_15():
    b = [-5.0, -6.0, 2.0]
    K = [[1, -0.3, 0.2], [-0.3, 1.5, 0.1], [0.2, 0.1, 0.7]]
    a = orthant_moments(b, K, dps=25)
    c = orthant_moments(b, K, dps=40)
    assert rel(a[0], c[0]) < 1e-25
    for i, j in itertools.product(range(3), range(3)):
        with mpmath.workdps(60):
            scale = mpmath.sqrt(c[2][i, i] * c[2][j, j])
            assert float(abs(a[2][i, j] - c[2][i, j]) / scale) < 1e-25
        with mpmath.workdps(60):
            assert float(abs(a[1][i] - c[1][i]) / mpmath.sqrt(c[0] * c[2][i, i])) < 1e-25
