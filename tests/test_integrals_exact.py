"""verified_dgn.gaussian_moments, the exact triangulation and Lemma 4.

Independent references: truncated-normal closed forms (S = 1, half-spaces and slabs in any
S, separable boxes), and a float brute force that does not use the code under test: the
polyhedron cut by a +-14 sd box (cddlib through geometry.exact_polyhedron), scipy's
Delaunay triangulation, simplices bisected to at most 1.5 sd and integrated by tensor
Gauss-Legendre in collapsed (Duffy) coordinates (good to ~1e-12 of the natural scales).

Default selection: the quick cases; ``--runslow`` adds 3-D polytopes
with non-simple vertices, the cube and a 4-simplex.
"""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from scipy.spatial import Delaunay
from scipy.stats import multivariate_normal

from dgn_tools.checks import registry
from dgn_tools.checks.integral_checks import _truncnorm_moments, barycentric_volume
from verified_dgn import gaussian_moments
from verified_dgn.geometry import exact_polyhedron
from verified_dgn.integrals import (
    PrecisionError,
    log_gaussian_mass,
    moment_discrepancy,
    signed_orthant_terms,
)
from verified_dgn.orthant import orthant_probability
from verified_dgn.triangulation import (
    cone_facets_bruteforce,
    triangulate_polyhedron,
    triangulate_vrep,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --------------------------------------------------------------------------- references
def _simplex_quadrature(V, logpdf, n):
    """int over the simplex conv(V) of (1, z, z z^T) exp(logpdf) by collapsed Gauss-Legendre."""
    S = V.shape[1]
    x, w = np.polynomial.legendre.leggauss(n)
    u, wu = (x + 1) / 2, w / 2
    grids = np.meshgrid(*([u] * S), indexing="ij")
    wg = np.meshgrid(*([wu] * S), indexing="ij")
    U = np.stack([g.ravel() for g in grids], 1)
    W = np.prod(np.stack([g.ravel() for g in wg], 1), 1)
    E = np.diff(V, axis=0)  # v_k - v_{k-1}
    Z = np.repeat(V[:1], len(U), 0)
    prod = np.ones(len(U))
    jac = np.ones(len(U))
    for k in range(S):
        prod = prod * U[:, k]
        Z = Z + prod[:, None] * E[k]
        jac = jac * U[:, k] ** (S - 1 - k)
    jac *= abs(np.linalg.det(E))
    f = np.exp(logpdf(Z)) * W * jac
    return f.sum(), Z.T @ f, (Z * f[:, None]).T @ Z


def _split(V, maxlen):
    """Bisect the longest edge until every edge is at most maxlen."""
    out, todo = [], [V]
    while todo:
        s = todo.pop()
        best, bi = -1.0, None
        for i, j in itertools.combinations(range(len(s)), 2):
            L = np.linalg.norm(s[i] - s[j])
            if L > best:
                best, bi = L, (i, j)
        if best <= maxlen:
            out.append(s)
            continue
        i, j = bi
        m = (s[i] + s[j]) / 2
        a, b = s.copy(), s.copy()
        a[i], b[j] = m, m
        todo += [a, b]
    return out


def bruteforce_moments(C, d, mean, cov, n=12, box=14.0):
    """Float reference: P cut by a box of +-box sd around the mean, Delaunay, quadrature."""
    mean = np.asarray(mean, float)
    cov = np.asarray(cov, float)
    S = len(mean)
    sd = np.sqrt(np.diag(cov))
    C = np.asarray(C, float).reshape(-1, S)
    Cb = np.vstack([C, np.eye(S), -np.eye(S)]) if len(C) else np.vstack([np.eye(S), -np.eye(S)])
    db = np.concatenate([np.asarray(d, float), mean + box * sd, -(mean - box * sd)])
    P = exact_polyhedron(Cb, db)
    if P.is_empty or P.dim < S:
        return 0.0, np.zeros(S), np.zeros((S, S))
    V = np.array(P.vertices, dtype=float)
    logpdf = multivariate_normal(mean=mean, cov=cov).logpdf
    tri = Delaunay(V)
    m0, m1, M2 = 0.0, np.zeros(S), np.zeros((S, S))
    maxlen = 1.5 * float(np.min(sd))
    for simp in tri.simplices:
        for s in _split(V[simp], maxlen):
            if S == 1:
                s = np.sort(s, axis=0)
            a, b, c = _simplex_quadrature(s, lambda Z: np.atleast_1d(logpdf(Z)), n)
            m0, m1, M2 = m0 + a, m1 + b, M2 + c
    return m0, m1, M2


def assert_close_to_float(res, ref, tol=1e-10):
    m0, m1, M2 = res
    r0, r1, r2 = ref
    S = len(m1)
    assert abs(float(m0) - r0) <= tol * float(m0) + 1e-300
    for i in range(S):
        assert abs(float(m1[i]) - r1[i]) <= tol * math.sqrt(float(m0 * M2[i, i]))
        for j in range(S):
            assert abs(float(M2[i, j]) - r2[i, j]) <= tol * math.sqrt(float(M2[i, i] * M2[j, j]))


def halfspace_closed_form(a, c, mean, cov, dps=50):
    """Moments of N(mean, cov) on {a.z <= c} via the 1-D law of u = a.(z - mean)."""
    with mpmath.workdps(dps):
        S = len(mean)
        a = [mpmath.mpf(x) for x in a]
        mu = [mpmath.mpf(x) for x in mean]
        K = [[mpmath.mpf(x) for x in row] for row in cov]
        Ka = [sum(K[i][j] * a[j] for j in range(S)) for i in range(S)]
        s2 = sum(a[i] * Ka[i] for i in range(S))
        t = mpmath.mpf(c) - sum(a[i] * mu[i] for i in range(S))
        Z, e1, e2 = _truncnorm_moments(-mpmath.inf, t, mpmath.mpf(0), s2)
        m1 = [mu[i] * Z + Ka[i] / s2 * e1 for i in range(S)]
        M2 = [[(K[i][j] - Ka[i] * Ka[j] / s2) * Z + Ka[i] * Ka[j] / s2 ** 2 * e2
               + mu[i] * Ka[j] / s2 * e1 + Ka[i] / s2 * e1 * mu[j] + mu[i] * mu[j] * Z
               for j in range(S)] for i in range(S)]
        return Z, np.array(m1, dtype=object), np.array(M2, dtype=object)


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize("args,exc,msg", [
    (([[1.0]], [1.0, 2.0], [0.0], [[1.0]]), ValueError, "d must have shape"),
    (([[1.0, 0]], [1.0], [0.0], [[1.0]]), ValueError, "mean must have shape"),
    (([[1.0]], [1.0], [0.0], [[1.0, 0]]), ValueError, "cov must have shape"),
    ((np.zeros((1, 5)), [1.0], np.zeros(5), np.eye(5)), ValueError, "S in 1..4"),
    (([[float("nan")]], [1.0], [0.0], [[1.0]]), ValueError, "NaN"),
    (([[1.0]], [1.0], [float("inf")], [[1.0]]), ValueError, "NaN or infinite"),
    (([[1.0, 0]], [1.0], [0.0, 0], [[1.0, 1.0], [1.0, 1.0]]), ValueError, "not positive definite"),
    (([[1.0, 0]], [1.0], [0.0, 0], [[1.0, 2.0], [2.0, 1.0]]), ValueError, "not positive definite"),
    (([[1.0, 0]], [1.0], [0.0, 0], [[1.0, 0.1], [0.2, 1.0]]), ValueError, "not symmetric"),
    (([["a"]], [1.0], [0.0], [[1.0]]), TypeError, "entries"),
])
def test_invalid_inputs(args, exc, msg):
    with pytest.raises(exc, match=msg):
        gaussian_moments(*args)


def test_invalid_dps():
    with pytest.raises(ValueError, match="dps"):
        gaussian_moments([[1.0]], [1.0], [0.0], [[1.0]], dps=0)


def test_negative_mpf_inputs_are_taken_exactly():
    """mpf entries (negative ones too) are converted exactly, like the floats they equal."""
    C, d = [[1.0, 0.5], [-1.0, 0.25], [0.0, -1.0]], [1.0, 0.5, 0.75]
    mean, cov = [-0.25, 0.5], [[1.0, -0.375], [-0.375, 0.5]]
    ref = gaussian_moments(C, d, mean, cov, dps=20)

    def mp(a):
        return np.vectorize(mpmath.mpf, otypes=[object])(np.array(a))

    assert moment_discrepancy(gaussian_moments(mp(C), mp(d), mp(mean), mp(cov), dps=20), ref) == 0
    assert log_gaussian_mass(mp(C), mp(d), mp(mean), mp(cov), dps=20) == log_gaussian_mass(
        C, d, mean, cov, dps=20)


@pytest.mark.parametrize("cov", [
    [[1.0, 1.0], [1.0, 1.0]],
    [[1.0, 2.0], [2.0, 1.0]],
    [[1.0, 0.1], [0.2, 1.0]],
    [[1.0, 0.0], [0.0, 1e-14]],
    [[1.0, float("inf")], [0.0, 1.0]],
])
def test_float_covariance_fails_as_the_shared_rule(cov):
    """Float input: the exception and message of dgn_core.validation.check_covariance."""
    from dgn_core.validation import check_covariance

    with pytest.raises(ValueError) as shared:
        check_covariance(np.array(cov), 2)
    for f in (gaussian_moments, log_gaussian_mass):
        with pytest.raises(ValueError) as mine:
            f([[1.0, 0]], [1.0], [0.0, 0.0], cov)
        assert str(mine.value) == str(shared.value)


@pytest.mark.parametrize("cov,msg", [
    ([[1, 1], [1, Fraction(1)]], "not positive definite.*singular"),
    ([[1, 2], [2, Fraction(1)]], "not positive definite"),
    ([[1, Fraction(1, 10)], [Fraction(2, 10), 1]], r"not symmetric \(relative asymmetry 0.1\)"),
])
def test_exact_covariance_checked_exactly(cov, msg):
    """Exact input: the same kinds of message, decided in rationals; no condition limit."""
    with pytest.raises(ValueError, match=msg):
        gaussian_moments([[1.0, 0]], [1.0], [0.0, 0.0], cov)
    m0 = gaussian_moments([[1, 0]], [0], [0, 0], [[1, 0], [0, Fraction(1, 10 ** 14)]], dps=20)[0]
    assert abs(m0 - mpmath.mpf(1) / 2) < 1e-19


# --------------------------------------------------------------------------- degenerate sets
def zeros(res):
    m0, m1, M2 = res
    return m0 == 0 and all(x == 0 for x in m1) and all(x == 0 for x in M2.ravel())


def test_empty_and_lower_dimensional_sets_give_zeros():
    mu, K = [0.1, 0.2], [[1.0, 0.3], [0.3, 2.0]]
    assert zeros(gaussian_moments([[1.0, 0], [-1.0, 0]], [0.0, -1.0], mu, K))  # x <= 0, x >= 1
    assert zeros(gaussian_moments([[1.0, 0], [-1.0, 0]], [0.5, -0.5], mu, K))  # x = 0.5 only
    assert zeros(gaussian_moments([[0.0, 0.0]], [-1.0], mu, K))  # 0 <= -1
    assert zeros(gaussian_moments([[1.0, 1], [-1, 0], [0, -1]], [0.0, 0, 0], mu, K))  # a point
    assert log_gaussian_mass([[1.0, 0], [-1.0, 0]], [0.0, -1.0], mu, K) == -mpmath.inf


def test_whole_space_and_vacuous_rows():
    mu, K = [1.0, -2.0], [[1.0, 0.5], [0.5, 2.0]]
    for C, d in [(np.zeros((0, 2)), np.zeros(0)), ([[0.0, 0.0]], [1.0])]:
        m0, m1, M2 = gaussian_moments(C, d, mu, K)
        assert m0 == 1
        assert [float(x) for x in m1] == mu
        assert [float(x) for x in M2.ravel()] == [2.0, -1.5, -1.5, 6.0]


def test_redundant_and_duplicate_rows_give_identical_results():
    mu, K = [0.3, -0.1], [[1.0, 0.2], [0.2, 0.5]]
    clean = gaussian_moments([[1.0, 0], [-1, 0], [0, 1], [0, -1]], [1.0, 1, 1, 1], mu, K, dps=20)
    messy = gaussian_moments([[1.0, 0], [2, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [0, 0]],
                             [1.0, 2, 1, 1, 1, 1, 7, 3], mu, K, dps=20)
    assert clean[0] == messy[0]
    assert all(a == b for a, b in zip(clean[1], messy[1]))
    assert all(a == b for a, b in zip(clean[2].ravel(), messy[2].ravel()))


def test_input_number_types():
    C, d = [[1, 0], [0, 1], [-1, -1]], [1, 1, 1]
    a = gaussian_moments(C, d, [0.25, 0.5], [[1, 0.5], [0.5, 1]], dps=20)
    b = gaussian_moments([[Fraction(1), 0], [0, 1], [-1, -1]], [1.0, Fraction(1), 1],
                         [Fraction(1, 4), mpmath.mpf("0.5")], [[1, Fraction(1, 2)], [0.5, 1]], dps=20)
    assert moment_discrepancy(a, b) < 1e-20


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("a,b,mu,v", [
    (-1.0, 2.0, 0.3, 2.25), (3.0, 4.0, 0.0, 1.0), (-40.0, -39.0, 0.0, 1.0),
    (-math.inf, -35.0, 1.0, 0.5), (2.0, math.inf, -1.0, 3.0), (-1.0, 1.0, 0.0, 1e-4),
])
def test_one_dimensional_closed_forms(a, b, mu, v):
    rows, rhs = [], []
    if math.isfinite(b):
        rows.append([1.0])
        rhs.append(b)
    if math.isfinite(a):
        rows.append([-1.0])
        rhs.append(-a)
    res = gaussian_moments(rows, rhs, [mu], [[v]], dps=30)
    with mpmath.workdps(60):
        r = _truncnorm_moments(mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(mu), mpmath.mpf(v))
    ref = (r[0], np.array([r[1]], dtype=object), np.array([[r[2]]], dtype=object))
    assert moment_discrepancy(res, ref) < 1e-30


@pytest.mark.parametrize("a,c,mean,cov", [
    ([1.0, 1.0], 0.5, [0.2, -0.3], [[1.0, 0.3], [0.3, 0.5]]),
    ([1.0, -2.0], -30.0, [0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]),  # m0 ~ 1e-90
    ([1.0, 1.0], 0.0, [0.1, 0.2], [[1.0, -0.999999], [-0.999999, 1.0]]),  # cond ~ 2e6
    ([1.0, 0.5, -1.0], 1.0, [0.1, 0.0, 0.3], [[1, 0.2, 0], [0.2, 2, 0.1], [0, 0.1, 0.5]]),
])
def test_halfspace_closed_form(a, c, mean, cov):
    # a half-space contains lines: split exactly into pointed halves
    res = gaussian_moments([a], [c], mean, cov, dps=25)
    assert moment_discrepancy(res, halfspace_closed_form(a, c, mean, cov)) < 1e-25


def test_slab_equals_difference_of_halfspaces():
    a, mean, cov = [1.0, 2.0], [0.3, 0.1], [[1.0, 0.4], [0.4, 0.8]]
    res = gaussian_moments([a, [-1.0, -2.0]], [1.0, 0.5], mean, cov, dps=25)
    hi = halfspace_closed_form(a, 1.0, mean, cov)
    lo = halfspace_closed_form(a, -0.5, mean, cov)
    with mpmath.workdps(50):
        ref = (hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2])
    assert moment_discrepancy(res, ref) < 1e-25


def test_orthant_cone_is_one_orthant_probability():
    mean, cov = [0.5, -0.2, 0.1], [[1, 0.3, 0.1], [0.3, 1.5, -0.2], [0.1, -0.2, 0.7]]
    m0 = gaussian_moments(-np.eye(3), np.zeros(3), mean, cov, dps=25)[0]
    # z >= 0  <=>  -(z - mean) <= mean, -(z - mean) ~ N(0, cov)
    assert moment_discrepancy((m0, np.zeros(1, dtype=object), np.ones((1, 1), dtype=object)),
                              (orthant_probability(mean, cov, dps=40), np.zeros(1, dtype=object),
                               np.ones((1, 1), dtype=object))) < 1e-25


# --------------------------------------------------------------------------- brute force, S = 2
HEX = (np.c_[np.round(np.cos(np.arange(6) * np.pi / 3), 3), np.round(np.sin(np.arange(6) * np.pi / 3), 3)],
       np.ones(6))
POLYS_2D = {
    "triangle": (np.array([[-1.0, 0], [0, -1], [1, 1]]), np.array([0.0, 0, 1])),
    "hexagon": HEX,
    "wedge": (np.array([[-1.0, 0.5], [0.25, -1]]), np.array([0.0, 1.0])),
    "half-strip": (np.array([[1.0, 0], [-1, 0], [0, -1]]), np.array([1.0, 0, 0])),
    "unbounded polygon": (np.array([[-1.0, 0], [0, -1], [-1, -1], [1, -2]]), np.array([0.0, 0, -1, 2])),
}


@pytest.mark.parametrize("name", sorted(POLYS_2D))
@pytest.mark.parametrize("mean", [[0.2, 0.3], [3.0, -1.0]])
def test_2d_against_bruteforce(name, mean):
    C, d = POLYS_2D[name]
    cov = [[1.0, 0.3], [0.3, 0.6]]
    res = gaussian_moments(C, d, mean, cov, dps=20)
    assert_close_to_float(res, bruteforce_moments(C, d, mean, cov))


def test_2d_tail_and_digits():
    # m0 ~ 1e-29: the signed sum cancels ~30 digits; verify=True recomputes at dps + 15
    C, d = HEX
    mean, cov = [10.0, -4.0], [[1.0, 0.2], [0.2, 0.7]]
    res = gaussian_moments(C, d, mean, cov, dps=15, verify=True)
    assert 1e-31 < float(res[0]) < 1e-27
    assert_close_to_float(res, bruteforce_moments(C, d, mean, cov), tol=1e-9)


def test_far_tail_relative_accuracy():
    # m0 ~ 1e-700: the interval far from the mean, relative accuracy by closed form
    res = gaussian_moments([[1.0], [-1.0]], [-56.0, 57.0], [0.0], [[1.0]], dps=20)
    with mpmath.workdps(60):
        r = _truncnorm_moments(mpmath.mpf(-57), mpmath.mpf(-56), mpmath.mpf(0), mpmath.mpf(1))
    assert res[0] < mpmath.mpf("1e-600")
    assert moment_discrepancy(res, (r[0], np.array([r[1]], dtype=object),
                                    np.array([[r[2]]], dtype=object))) < 1e-20


def test_nearly_singular_covariance():
    eps = 1e-9
    cov = [[1.0, 1.0 - eps], [1.0 - eps, 1.0]]
    C, d = POLYS_2D["triangle"]
    res = gaussian_moments(C, d, [0.3, 0.2], cov, dps=20)
    assert 0 < float(res[0]) < 1
    # z1 - z2 ~ N(0.1, 2 eps): the mass concentrates on the segment z1 = z2 + 0.1,
    # z1 in [0.1, 0.55], of the triangle; against the 1-D law of z1 ~ N(0.3, 1) on it
    # (difference ~ sqrt(eps))
    with mpmath.workdps(40):
        approx = mpmath.ncdf(0.55 - 0.3) - mpmath.ncdf(0.1 - 0.3)
    assert abs(float(res[0]) - float(approx)) < 1e-3
    res2 = gaussian_moments(C, d, [0.3, 0.2], cov, dps=35)
    assert moment_discrepancy(res, res2) < 1e-20


# --------------------------------------------------------------------------- S = 3, 4
def test_3d_simplex_against_bruteforce():
    C = np.vstack([-np.eye(3), np.ones((1, 3))])
    d = np.array([0.0, 0, 0, 1.5])
    mean, cov = [0.4, 0.1, 0.3], [[1, 0.2, 0.1], [0.2, 0.8, -0.2], [0.1, -0.2, 0.6]]
    res = gaussian_moments(C, d, mean, cov, dps=20)
    assert_close_to_float(res, bruteforce_moments(C, d, mean, cov, n=10), tol=2e-9)


def test_3d_unbounded_prism_separable():
    # {z1, z2 >= 0, z1 + z2 <= 1} x {z3 >= 0} with cov block-diagonal: m0 factorises
    C = np.array([[-1.0, 0, 0], [0, -1, 0], [1, 1, 0], [0, 0, -1]])
    d = np.array([0.0, 0, 1, 0])
    mean = [0.2, 0.3, -0.5]
    cov = [[1, 0.2, 0], [0.2, 0.8, 0], [0, 0, 2.0]]
    m0 = gaussian_moments(C, d, mean, cov, dps=20)[0]
    tri = gaussian_moments(C[:3, :2], d[:3], mean[:2], [r[:2] for r in cov[:2]], dps=25)[0]
    with mpmath.workdps(40):
        z3 = mpmath.ncdf(-0.5 / mpmath.sqrt(2))  # P(z3 >= 0)
        assert abs(m0 - tri * z3) / m0 < 1e-20


@pytest.mark.slow
def test_cube_separable_closed_form():
    C, d = np.vstack([np.eye(3), -np.eye(3)]), np.ones(6)
    mean, var = [0.3, -0.5, 1.2], [1.0, 0.5, 2.0]
    res = gaussian_moments(C, d, mean, np.diag(var), dps=20)
    with mpmath.workdps(50):
        one = [_truncnorm_moments(mpmath.mpf(-1), mpmath.mpf(1), mpmath.mpf(m), mpmath.mpf(v))
               for m, v in zip(mean, var)]
        Z = [o[0] for o in one]
        m0 = Z[0] * Z[1] * Z[2]
        m1 = np.array([one[i][1] * m0 / Z[i] for i in range(3)], dtype=object)
        M2 = np.array([[one[i][2] * m0 / Z[i] if i == j else one[i][1] * one[j][1] * m0 / (Z[i] * Z[j])
                        for j in range(3)] for i in range(3)], dtype=object)
    assert moment_discrepancy(res, (m0, m1, M2)) < 1e-20


@pytest.mark.slow
@pytest.mark.parametrize("name", ["octahedron", "pyramid"])
def test_3d_non_simple_vertices_against_bruteforce(name):
    if name == "octahedron":
        C, d = np.array(list(itertools.product([-1.0, 1.0], repeat=3))), np.ones(8)
    else:
        C = np.array([[0, 0, -1.0], [1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, -1, 1]])
        d = np.array([0, 1.0, 1, 1, 1])
    mean, cov = [0.2, -0.1, 0.3], [[1, 0.2, 0.1], [0.2, 0.8, -0.2], [0.1, -0.2, 0.6]]
    res = gaussian_moments(C, d, mean, cov, dps=20)
    assert_close_to_float(res, bruteforce_moments(C, d, mean, cov, n=10), tol=2e-9)


@pytest.mark.slow
def test_4d_simplex_against_bruteforce():
    C = np.vstack([-np.eye(4), np.ones((1, 4))])
    d = np.array([0.0, 0, 0, 0, 1.0])
    mean = [0.2, 0.1, 0.3, 0.0]
    cov = np.eye(4) * 0.5 + 0.1
    res = gaussian_moments(C, d, mean, cov, dps=15)
    assert_close_to_float(res, bruteforce_moments(C, d, mean, cov, n=8, box=6.0), tol=1e-8)


def test_4d_orthant_cone():
    mean = [0.3, -0.2, 0.1, 0.4]
    cov = np.eye(4) * 0.7 + 0.3
    m0 = gaussian_moments(-np.eye(4), np.zeros(4), mean, cov, dps=15)[0]
    with mpmath.workdps(30):
        assert abs(m0 - orthant_probability(mean, cov, dps=25)) / m0 < 1e-15


# --------------------------------------------------------------------------- triangulation
def test_triangulation_volumes_and_pieces():
    cube = exact_polyhedron(np.vstack([np.eye(3), -np.eye(3)]), np.ones(6))
    pieces = triangulate_polyhedron(cube.vertices, cube.rays, cube.incidence)
    assert sum(p.volume() for p in pieces) == 8 == barycentric_volume(cube)
    octa = exact_polyhedron(np.array(list(itertools.product([-1.0, 1.0], repeat=3))), np.ones(8))
    pieces = triangulate_polyhedron(octa.vertices, octa.rays, octa.incidence)
    assert sum(p.volume() for p in pieces) == Fraction(4, 3) == barycentric_volume(octa)
    # V-representation only: facets by enumeration give the same pieces
    assert (sorted(p.generators for p in triangulate_vrep(octa.vertices))
            == sorted(p.generators for p in pieces))


def test_cone_facets_bruteforce_matches_cdd_incidence():
    P = exact_polyhedron(np.array([[0, 0, -1.0], [1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, -1, 1]]),
                         np.array([0, 1.0, 1, 1, 1]))
    gens = [list(v) + [1] for v in P.vertices]
    brute = set(cone_facets_bruteforce(gens))
    inc = P.vertex_incidence
    cdd = {frozenset(i for i in range(len(gens)) if f in inc[i]) for f in range(P.n_facets)}
    assert brute == cdd


def test_random_polytopes_triangulation_exact():
    rng = np.random.default_rng(4)
    for S in (2, 3):
        for _ in range(3):
            pts = rng.integers(-6, 7, size=(12, S)).astype(float)
            # H-representation of the hull through cdd: the V-rep of the hull of the points
            from scipy.spatial import ConvexHull
            h = ConvexHull(pts)
            C = h.equations[:, :-1]
            d = -h.equations[:, -1]
            # floats from qhull are not exact: use the exact hull of the integer points
            P = exact_polyhedron(np.round(C * 1e6), np.round(d * 1e6) + 1)
            pieces = triangulate_polyhedron(P.vertices, P.rays, P.incidence)
            assert sum(p.volume() for p in pieces) == barycentric_volume(P)


def test_signed_terms_identity_at_random_points():
    rnd = random.Random(1)
    for name, (C, d) in POLYS_2D.items():
        terms = signed_orthant_terms(C, d)
        Cf = [[Fraction(float(x)) for x in row] for row in C]
        df = [Fraction(float(x)) for x in d]
        for _ in range(200):
            z = [Fraction(rnd.randrange(-40000, 40000), 9973) for _ in range(2)]
            lhs = int(all(sum(a * b for a, b in zip(r, z)) <= e for r, e in zip(Cf, df)))
            rhs = sum(c * int(all(sum(a * b for a, b in zip(r[:-1], z)) <= r[-1] for r in rows))
                      for c, rows in terms)
            assert lhs == rhs, name
        # every term has at most S independent rows
        for c, rows in terms:
            assert len(rows) <= 2 and c != 0
            if len(rows) == 2:
                assert rows[0][0] * rows[1][1] - rows[0][1] * rows[1][0] != 0


# --------------------------------------------------------------------------- checks
@pytest.mark.parametrize("name", ["Lemma 4", "Triangulation", "Orthant closed forms"])
def test_registered_checks_pass_quick(name):
    statement, fn = registry()[name]
    res = fn(quick=True, seed=2)
    assert res.passed, str(res)


def test_exact_checks_on_the_regions_of_a_net():
    from verified_dgn import DGN
    net = DGN.random((2, 5, 2), activation="relu", seed=1)
    for name in ("Lemma 4", "Triangulation"):
        res = registry()[name][1](net=net, quick=True, seed=0)
        assert res.passed, str(res)


def test_moments_check_on_a_given_net():
    from verified_dgn import DGN
    net = DGN.random((1, 6, 6, 2), activation="leaky_relu", seed=3)
    res = registry()["Moments"][1](net=net, quick=True, dps=25)
    assert res.passed, str(res)
    assert res.residual is not None and res.residual < 1e-25


def test_moment_discrepancy_detects_differences():
    a = (mpmath.mpf(1), np.array([mpmath.mpf(0)], dtype=object), np.array([[mpmath.mpf(1)]], dtype=object))
    b = (mpmath.mpf(1), np.array([mpmath.mpf("1e-10")], dtype=object),
         np.array([[mpmath.mpf(1)]], dtype=object))
    assert moment_discrepancy(a, a) == 0
    assert 0.9e-10 < moment_discrepancy(a, b) < 1.1e-10
    assert issubclass(PrecisionError, ArithmeticError)
