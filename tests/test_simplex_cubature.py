"""fastpath._simplex_cubature: the positive-sum fallback for bounded polytopes.

References: exact polynomial integrals on the simplex (Dirichlet formula), scipy's
ConvexHull volumes and point location for the triangulation, and a 2-D adaptive quadrature
(scipy.integrate.dblquad) of the Gaussian over triangles for the moments.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import integrate
from scipy.spatial import ConvexHull
from simplex_inputs import normalised_stats, random_simplices, rule_errors

import fastpath
from fastpath import _simplex_cubature as sc
from fastpath.integrals import PolyhedronCones
from verified_dgn import DGN


def _monomial_errors(lam, w, degrees):
    """Largest relative error of the rule (barycentric nodes lam, weights w summing to 1) on
    the monomials prod x_i^a_i of total degree in ``degrees``, against their integrals over
    the unit simplex, prod a_i! / (sum a_i + s)! (Dirichlet)."""
    s = lam.shape[1] - 1
    x = lam[:, 1:]
    vol = 1.0 / math.factorial(s)
    worst = 0.0
    for a in itertools.product(range(max(degrees) + 1), repeat=s):
        if sum(a) in degrees:
            exact = math.prod(math.factorial(k) for k in a) / math.factorial(sum(a) + s)
            got = vol * np.sum(w * np.prod(x ** np.array(a), axis=1))
            worst = max(worst, abs(got / exact - 1))
    return worst


@pytest.mark.parametrize("s", [2, 3, 4])
def test_conical_rule_is_exact_to_degree_2n_minus_1(s):
    """Every monomial of total degree <= 2n - 1 to 1e-13 relative, and those of degree
    2n + 2 not all exact (the check can fail)."""
    n = 5
    lam, w = sc.conical_rule(s, n)
    assert abs(w.sum() - 1.0) < 1e-14 and np.all(w > 0) and np.all(lam >= 0)
    assert _monomial_errors(lam, w, range(2 * n)) <= 1e-13
    assert _monomial_errors(lam, w, [2 * n + 2]) > 1e-10


@pytest.mark.parametrize("s", [2, 3])
def test_band_rules_are_exact_to_their_degree(s):
    """Every rule of _rules (the symmetric rules where the table has them, else conical):
    positive weights summing to 1, nodes inside the simplex, every monomial of total degree
    <= rule_degree (2n - 1, or the degree of _BAND_DEGREE) to 1e-13 relative, those of
    degree + 3 not all exact (a symmetric rule misses some single ones by only 1e-13), and
    no more nodes than the conical rule of the band (fewer wherever symmetric)."""
    symmetric = 0
    for _, n in sc._rules(s):
        lam, w = sc.simplex_rule(s, n)
        deg = sc.rule_degree(s, n)
        assert 2 * n - 2 <= deg <= 2 * n
        assert abs(w.sum() - 1.0) < 1e-14 and np.all(w > 0) and np.all(lam > 0)
        assert np.allclose(lam.sum(axis=1), 1.0, rtol=0, atol=1e-15)
        assert w.size <= n ** s
        symmetric += w.size < n ** s
        assert _monomial_errors(lam, w, range(deg + 1)) <= 1e-13, n
        assert _monomial_errors(lam, w, [deg + 3]) > 1e-10, n
    # the table is found and used: all 7 bands at s = 2, the 6 up to spread 8 at s = 3
    assert symmetric >= {2: 7, 3: 6}[s]


@pytest.mark.parametrize("s", [2, 3])
def test_band_rules_as_accurate_as_the_conical_rules(s):
    """Each band's rule (symmetric where tabulated, of the degree _BAND_DEGREE chose) on
    random simplices of a seed the choice was not made on: its largest errors of log m0,
    the mean (relative to sqrt trace Cov) and the covariance (relative to trace Cov)
    against the conical rule with 24 (s = 2) / 16 (s = 3) points per axis stay within the
    conical band rules' largest errors in that band and the bands below it. Slack: 1.5x
    (the largest error over a few hundred simplices per band varies by that much between
    seeds) and floors of 1e-14 / 1e-13 / 1e-12 (rounding: at s = 2 both rules are there)."""
    X = random_simplices(np.random.default_rng(7), s, 3000 if s == 2 else 1600, 12.0)
    spread = sc._spread(X)
    ref = normalised_stats(X, *sc.conical_rule(s, 24 if s == 2 else 16))
    floor = np.array([1e-14, 1e-13, 1e-12])
    bar = np.zeros(3)
    lo = 0.0
    for bound, n in sc._rules(s):
        sel = (spread > lo) & (spread <= bound)
        lo = bound
        assert sel.sum() >= 50, (s, bound)
        ref_sel = (ref[0][sel], ref[1][sel], ref[2][sel])
        errs = {name: rule_errors(X[sel], ref_sel, *rule)
                for name, rule in (("conical", sc.conical_rule(s, n)),
                                   ("band", sc.simplex_rule(s, n)))}
        bar = np.maximum(bar, errs["conical"])
        assert np.all(errs["band"] <= np.maximum(1.5 * bar, floor)), (s, n, errs, bar)


def test_missing_rule_table_falls_back_to_conical_rules(monkeypatch, tmp_path):
    # an installation without the table: a warning naming it, and the conical rules of the
    # same degrees (as accurate, more nodes) instead of an error deep inside the E-step
    def clear():
        sc._symmetric_rules.cache_clear()
        sc.simplex_rule.cache_clear()

    clear()
    monkeypatch.setattr(sc, "_SYMMETRIC_RULES", str(tmp_path / "absent.npz"))
    try:
        with pytest.warns(RuntimeWarning, match="absent.npz"):
            lam, w = sc.simplex_rule(2, 7)
        ref_lam, ref_w = sc.conical_rule(2, 7)
        assert np.array_equal(lam, ref_lam) and np.array_equal(w, ref_w)
    finally:
        monkeypatch.undo()
        clear()
    assert sc.simplex_rule(2, 7)[1].size == 37


@pytest.mark.parametrize("S,widths", [(2, (2, 8, 8, 2)), (3, (3, 6, 6, 3)), (4, (4, 5, 5, 4))])
def test_fan_triangulation_tiles_real_regions(S, widths):
    """Every bounded region of a real partition: the simplices' volumes sum to the hull's
    (1e-10 relative; qhull's volume is itself a float computation), and random points of
    the region lie in exactly one simplex (barycentric test, 1e-12 slack)."""
    net = DGN.random(widths, activation="leaky_relu", seed=21)
    P = fastpath.partition(net)
    rng = np.random.default_rng(5)
    n_checked = 0
    for reg in P:
        g = PolyhedronCones.from_region(reg).geometry
        if not g.bounded:
            continue
        X = g.simplices                                          # (T, S+1, S)
        vol = np.abs(np.linalg.det(X[:, 1:] - X[:, :1])).sum() / math.factorial(S)
        hull = ConvexHull(g.vertices).volume
        assert abs(vol / hull - 1) <= 1e-10
        # random convex combinations of the vertices: points of P
        wts = rng.dirichlet(np.ones(len(g.vertices)), size=50)
        pts = wts @ g.vertices
        M = np.linalg.inv(np.swapaxes(X[:, 1:] - X[:, :1], 1, 2))  # barycentric solve
        bary = np.einsum("tij,ptj->pti", M, pts[:, None, :] - X[None, :, 0])
        inside = np.all(bary >= -1e-12, axis=-1) & (bary.sum(-1) <= 1 + 1e-12)
        assert np.all(inside.sum(axis=1) >= 1)
        # interior points (not within 1e-9 of a simplex face) in exactly one simplex
        strict = np.all(bary > 1e-9, axis=-1) & (bary.sum(-1) < 1 - 1e-9)
        assert np.all(strict.sum(axis=1) <= 1)
        n_checked += 1
    assert n_checked >= 20


def _dblquad_moments(tri):
    """(log m0, mean, cov) of N(0, I) on a triangle by scipy's adaptive dblquad."""
    tri = tri[np.argsort(tri[:, 0])]
    (x0, y0), (x1, y1), (x2, y2) = tri

    def line(xa, ya, xb, yb):
        return lambda x: ya + (yb - ya) * (x - xa) / (xb - xa)

    lo_a, hi_a = sorted([line(x0, y0, x1, y1), line(x0, y0, x2, y2)],
                        key=lambda f: f(0.5 * (x0 + x1)))
    lo_b, hi_b = sorted([line(x1, y1, x2, y2), line(x0, y0, x2, y2)],
                        key=lambda f: f(0.5 * (x1 + x2)))
    # scale: the density at the nearest vertex, so the integrand is O(1)
    c = 0.5 * np.min(np.sum(tri * tri, axis=1))

    def integral(g):
        tot = 0.0
        for a, b, lo, hi in ((x0, x1, lo_a, hi_a), (x1, x2, lo_b, hi_b)):
            if b > a:
                tot += integrate.dblquad(lambda y, x: g(x, y) * math.exp(c - 0.5 * (x * x + y * y)),
                                         a, b, lo, hi, epsabs=0, epsrel=1e-13)[0]
        return tot

    with warnings.catch_warnings():
        # "roundoff error detected": the rule is already at rounding level, as wanted
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return _moments(integral, c)


def _moments(integral, c):
    m0 = integral(lambda x, y: 1.0)
    mx = integral(lambda x, y: x) / m0
    my = integral(lambda x, y: y) / m0
    cxx = integral(lambda x, y: (x - mx) ** 2) / m0
    cyy = integral(lambda x, y: (y - my) ** 2) / m0
    cxy = integral(lambda x, y: (x - mx) * (y - my)) / m0
    return math.log(m0) - c - math.log(2 * math.pi), np.array([mx, my]), \
        np.array([[cxx, cxy], [cxy, cyy]])


@pytest.mark.parametrize("case", range(6))
def test_simplex_moments_against_2d_quadrature(case):
    """Triangles small and large, near and far (the large ones are subdivided: spread up to
    ~60): log m0 within 1e-12, mean and covariance within 1e-11 of the triangle's size."""
    rng = np.random.default_rng(40 + case)
    size = [0.01, 0.3, 2.0, 5.0, 0.05, 1.0][case]
    dist = [6.0, 3.0, 1.0, 8.0, 20.0, 0.0][case]
    centre = rng.normal(size=2)
    centre *= dist / max(np.linalg.norm(centre), 1e-300)
    tri = centre + size * rng.normal(size=(3, 2))
    lm, mean, cov, resolved = sc.simplex_moments(tri[None], np.array([0]), 1)
    assert resolved[0]
    lr, mr, cr = _dblquad_moments(tri)
    assert abs(lm[0] - lr) <= 1e-12
    scale = np.max(np.abs(tri - tri.mean(0)))
    np.testing.assert_allclose(mean[0], mr, rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(cov[0], cr, rtol=0, atol=1e-11 * scale * scale)


def test_simplex_moments_groups_and_empty_owner():
    """Owners sum their simplices (a square as two triangles = the square's two halves
    evaluated apart, combined); an owner without simplices gets log m0 = -inf."""
    sq = np.array([[1.0, 1.0], [1.5, 1.0], [1.5, 1.5], [1.0, 1.5]])
    t1, t2 = sq[[0, 1, 2]], sq[[0, 2, 3]]
    lm, mean, cov, _ = sc.simplex_moments(np.stack([t1, t2]), np.array([0, 0]), 2)
    a = sc.simplex_moments(t1[None], np.array([0]), 1)
    b = sc.simplex_moments(t2[None], np.array([0]), 1)
    assert lm[1] == -np.inf
    assert abs(lm[0] - np.logaddexp(a[0][0], b[0][0])) <= 1e-14
    wa, wb = np.exp(a[0][0] - lm[0]), np.exp(b[0][0] - lm[0])
    np.testing.assert_allclose(mean[0], wa * a[1][0] + wb * b[1][0], rtol=1e-13)
    # the square is a product set: independent coordinates with equal marginals
    assert abs(cov[0, 0, 1]) <= 1e-15 and abs(cov[0, 0, 0] - cov[0, 1, 1]) <= 1e-15


def test_subdivision_cap_is_reported():
    """A large triangle far out needs thousands of simplices; with a cap of 16 it is
    reported unresolved (callers then keep their other result), without it resolved."""
    tri = np.array([[8.0, 0.0], [13.0, 1.0], [9.0, 5.0]])
    *_, capped = sc.simplex_moments(tri[None], np.array([0]), 1, max_simplices=16)
    *_, full = sc.simplex_moments(tri[None], np.array([0]), 1)
    assert not capped[0] and full[0]
