"""fastpath._jit_cubature: the compiled simplex cubature against the numpy one and the exact path.

* compiled vs numpy (``simplex_moments(..., compiled=False)``, the same rules evaluated by
  GEMMs): random polytopes (groups of random simplices) at S = 1..4, near and far, small and
  large (subdivided), log m0, mean and covariance to rounding;
* the compiled kernels give the same bits for one thread and two;
* end to end, small polytopes far from N(0, I) (where the signed cone sum cancels and the
  E-step uses this cubature) against the exact path verified_dgn.gaussian_moments.
"""

from __future__ import annotations

import importlib.util
import math

import mpmath
import numpy as np
import pytest
from conftest import switched

from fastpath import _simplex_cubature as sc
from fastpath._polyhedron import polyhedron_geometry

_EPS = float(np.finfo(float).eps)


def _random_polytopes(rng: np.random.Generator, s: int, n_owner: int, far: float,
                      size: float) -> tuple[np.ndarray, np.ndarray]:
    """Simplices (K, s+1, s) and owners (K,): each owner 1-4 random simplices around one
    centre at distance up to ``far``, edges ~``size`` (large ones get subdivided)."""
    Xs, owners = [], []
    for i in range(n_owner):
        centre = rng.normal(size=s)
        centre *= rng.uniform(0.0, far) / np.linalg.norm(centre)
        for _ in range(int(rng.integers(1, 5))):
            Xs.append(centre + size * rng.uniform(0.05, 1.0) * rng.normal(size=(s + 1, s)))
            owners.append(i)
    return np.array(Xs), np.array(owners)


@pytest.mark.parametrize("s", [1, 2, 3, 4])
@pytest.mark.parametrize("far,size", [(3.0, 0.3), (12.0, 0.05), (2.0, 2.5), (25.0, 0.01)])
def test_compiled_matches_numpy(s, far, size):
    """The same rule on the same simplices, summed in another order (per node in four
    interleaved partial sums and a running maximum instead of GEMMs and one maximum) and
    with a vectorised exp within 2 ulp of numpy's: the results differ by rounding only.

    Tolerances: log m0 = max + log(sum) + log vol - |c|^2/2: each term rounded to a few eps
    of its size, the largest being |c|^2/2 ~ |log m0| far out, so 1e-14 (10 + |log m0|)
    (~45 eps of the largest term; measured at most ~1e-14 here). The mean: 1e-14 of the
    polytope's size plus 8 eps of |mean| (the offsets from its first simplex's centre are
    accurate relative to the size; adding that centre rounds to |mean|). The covariance:
    E[YY^T] - mo mo^T about the centres, 1e-13 of size^2 (both implementations lose the same
    digits to that difference, at most ~|c| D / 1 = the spread bound 12 -> 2 digits)."""
    if s == 1 and size > 2:
        size = 1.0
    rng = np.random.default_rng(100 * s + int(far))
    X, owner = _random_polytopes(rng, s, 40, far, size)
    a = sc.simplex_moments(X, owner, 41, compiled=False)          # owner 40 has no simplex
    b = sc.simplex_moments(X, owner, 41, compiled=True)
    np.testing.assert_array_equal(a[3], b[3])
    assert a[0][40] == b[0][40] == -np.inf
    fin = np.isfinite(a[0])
    np.testing.assert_array_equal(fin, np.isfinite(b[0]))
    assert fin[:40].all()
    lm = a[0][fin]
    assert np.all(np.abs(b[0][fin] - lm) <= 1e-14 * (10.0 + np.abs(lm)))
    scale = np.array([np.max(np.abs(X[owner == i] - X[owner == i].mean(axis=(0, 1))))
                      for i in range(40)])
    ma, mb = a[1][:40], b[1][:40]
    assert np.all(np.abs(mb - ma) <= 1e-14 * scale[:, None] + 8 * _EPS * np.abs(ma))
    ca, cb = a[2][:40], b[2][:40]
    assert np.all(np.abs(cb - ca) <= 1e-13 * scale[:, None, None] ** 2)
    np.testing.assert_array_equal(cb, np.swapaxes(cb, 1, 2))
    # moments=False: the same log m0, bit for bit
    c = sc.simplex_moments(X, owner, 41, moments=False, compiled=True)
    assert c[1] is None and c[2] is None
    np.testing.assert_array_equal(c[0], b[0])


def test_compiled_same_bits_for_one_and_two_threads(monkeypatch):
    """Threads over blocks of simplices and over polytopes, each writing its own slots and summing in
    a fixed order: the thread count cannot change a bit (many simplices and owners, so that
    both threads get work in both kernels; small batches would run on the calling thread,
    so that shortcut is switched off here)."""
    import numba

    monkeypatch.setattr(sc, "_SERIAL_NODES", 0)

    rng = np.random.default_rng(7)
    X, owner = _random_polytopes(rng, 3, 300, 6.0, 0.8)
    perm = rng.permutation(owner.size)                  # owners interleaved in the input
    X, owner = X[perm], owner[perm]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = sc.simplex_moments(X, owner, 300, compiled=True)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = sc.simplex_moments(X, owner, 300, compiled=True)
    finally:
        numba.set_num_threads(before)
    for u, v in zip(one, two):
        np.testing.assert_array_equal(u, v)


def test_bad_input_is_refused():
    X = np.zeros((2, 3, 2))
    with pytest.raises(ValueError, match="X"):
        sc.simplex_moments(np.zeros((2, 3, 3)), np.array([0, 0]), 1)
    with pytest.raises(ValueError, match="owner"):
        sc.simplex_moments(X, np.array([0, 1]), 1)
    with pytest.raises(ValueError, match="owner"):
        sc.simplex_moments(X, np.array([0.0, 0.0]), 1)


_HAVE_EXACT = importlib.util.find_spec("cdd") is not None
try:
    from verified_dgn.integrals import gaussian_moments as exact_moments
except ImportError:  # pragma: no cover - depends on the checkout
    _HAVE_EXACT = False


def _far_polytope(rng: np.random.Generator, s: int, dist: float, size: float):
    """A random bounded {C x <= d} of diameter ~size whose centre is at distance dist."""
    for _ in range(100):
        m = int(rng.integers(s + 2, s + 5))
        N = rng.normal(size=(m, s))
        N /= np.linalg.norm(N, axis=1, keepdims=True)
        d = size * rng.uniform(0.3, 1.0, m)
        g = polyhedron_geometry(N, d)
        if not g.empty and len(g.rays) == 0:
            shift = rng.normal(size=s)
            shift *= dist / np.linalg.norm(shift)
            return N, d + N @ shift
    raise RuntimeError("no polytope drawn")


@pytest.mark.skipif(not _HAVE_EXACT, reason="verified_dgn's exact path (pycddlib) missing")
@pytest.mark.parametrize("s,dist,size,seed", [(2, 6.0, 0.2, 1), (2, 9.0, 0.05, 2),
                                              (2, 5.0, 1.5, 3),
                                              pytest.param(3, 5.0, 0.3, 4,
                                                           marks=pytest.mark.slow)])
def test_compiled_cubature_vs_exact(s, dist, size, seed):
    """Small polytopes far from N(0, I) (the cone sum's cancelling case) against the exact
    path at 30 digits (S = 3 is marked slow: ~25 s in the exact path): log m0 within 1e-12
    (the rules' stated accuracy, _rules: <= 1.6e-13 per simplex), mean and covariance
    within 1e-11 of the polytope's size (its square)."""
    rng = np.random.default_rng(seed)
    C, d = _far_polytope(rng, s, dist, size)
    g = polyhedron_geometry(C, d)
    X = g.simplices
    lm, mean, cov, resolved = sc.simplex_moments(X, np.zeros(X.shape[0], dtype=np.intp), 1,
                                                 compiled=True)
    assert resolved[0]
    m0, m1, M2 = exact_moments(C, d, np.zeros(s), np.eye(s), dps=30)
    with mpmath.workdps(35):
        lref = float(mpmath.log(m0))
        mref = [m / m0 for m in m1]
        cref = np.array([[float(M2[i][j] / m0 - mref[i] * mref[j]) for j in range(s)]
                         for i in range(s)])
        mref_f = np.array([float(m) for m in mref])
    span = float(np.max(np.linalg.norm(g.vertices - g.vertices.mean(0), axis=1)))
    assert lref < math.log(1e-3)                         # far: the hard case
    assert abs(lm[0] - lref) <= 1e-12
    np.testing.assert_allclose(mean[0], mref_f, rtol=0, atol=1e-11 * span)
    np.testing.assert_allclose(cov[0], cref, rtol=0, atol=1e-11 * span * span)


def test_pair_cubature_matches_numpy_route(monkeypatch):
    # the E-step's cancellation cubature at S = 2: the compiled pair kernel against the numpy
    # route on the (Gaussian, polygon) pairs a real E-step sends there (captured). The same
    # gate and rules; the numpy route bisects a batch up to its largest budget, the kernel
    # each pair to its own, so a few pairs end on other simplices and differ by the rules'
    # error: measured 1.1e-13 relative in log m0 at worst (2,513 pairs, 97% within 1e-13
    # absolute). Tolerance: the accuracy target, 1e-12 relative in log m0; moments 1e-10
    # relative to the covariance scale.
    import fastpath
    from fastpath import _cone_cubature as cc
    from fastpath._threads import threads
    from verified_dgn import DGN

    seen = []
    real = cc._CubatureRouting._cubature_where_cancelled

    def spy(self, mean, chol, moments, out, deferred=None):
        seen.append((self, mean.copy(), chol.copy(), moments, out[3].copy()))
        return real(self, mean, chol, moments, out, deferred)

    monkeypatch.setattr(cc._CubatureRouting, "_cubature_where_cancelled", spy)
    net = DGN.random((2, 8, 8, 2), seed=0, noise_var=0.05)
    X, _ = net.sample(60, seed=1)
    fastpath.posterior(net, X)
    n_pairs = 0
    for table, mean, chol, moments, lc in seen:
        sel = ~(lc <= cc._LOG_CANCEL_CUBATURE) & np.array(
            [g is not None for g in table.bounded])[None, :]
        a, j = np.nonzero(sel)
        if not a.size:
            continue
        budget = np.where(lc[a, j] < 4.0, 64, 1024)
        ref = table._cubature(mean, chol, moments, a, j, budget)
        for n in (1, 2):
            with threads(n):
                got = table._cubature_compiled(mean, chol, moments, a, j, budget)
            assert (ref is None) == (got is None)
            if ref is None:
                continue
            assert np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])
            np.testing.assert_allclose(got[2], ref[2], rtol=1e-12, atol=1e-13)
            if moments:
                scale = np.sqrt(np.abs(np.einsum("pii->p", ref[4])))[:, None]
                np.testing.assert_allclose(got[3] / scale, ref[3] / scale, rtol=0, atol=1e-10)
                np.testing.assert_allclose(got[4] / scale[..., None] ** 2,
                                           ref[4] / scale[..., None] ** 2, rtol=0, atol=1e-10)
        n_pairs += a.size
    assert n_pairs > 50  # the E-step does send pairs there


@pytest.mark.skipif(not _HAVE_EXACT, reason="verified_dgn's exact path (pycddlib) missing")
@pytest.mark.parametrize("shared", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_small_polygons_sent_unsummed_match_the_exact_moments(shared):
    """S = 2: the bounded polygons of whitened spread <= _ROUTE_SPREAD go to the cubature
    without their cone sum (fastpath._cones.ROUTE). On E-step-like pairs of a real partition
    (production path, tail slices on) log m0 agrees with summing the cones first within
    1e-12 relative (measured 1.8e-14 / 9.6e-14). The moments differ where the cone sum's
    covariance cancels though its m0 does not (small polygons at moderate distance): the
    pairs that differ most are checked against the exact path (~20 s each), where the routed
    moments meet the accuracy target, 1e-10 of the covariance scale (measured 4.6e-15 on
    the worst pair of the shared case, whose cone sum was off by 2.7e-8)."""
    from fastpath import _cones
    from fastpath._cone_cubature import _ROUTE_SPREAD
    from tests.integrals_fast_refs import estep_like_pairs, exact_mean_cov, thin_pairs

    table, mean, cov, chol = estep_like_pairs(4, 5, 40, 3.0, shared)
    routed = table.evaluate(mean, chol, True)
    with switched(_cones.ROUTE, False):
        summed = table.evaluate(mean, chol, True)
        raw = table._evaluate_compiled(mean, chol, False)
    sent = np.isinf(table._evaluate_compiled(mean, chol, False, route=True)[3])
    assert sent.mean() > 0.05 and _ROUTE_SPREAD > 0
    # some of them did not cancel: those are computed by another method now
    assert np.any(sent & (raw[3] <= 3.0))
    lm_r, dm_r, tc_r, lc_r = routed
    lm_s, _, tc_s, _ = summed
    # the small ones are resolved by the cubature (the thin-coned ones sent with them may
    # be too large for it and are summed again: test_polygons_with_thin_cones_...)
    thin = np.broadcast_to(thin_pairs(table, chol), sent.shape)
    small = sent & ~thin
    assert np.all(np.isfinite(lm_r)) and np.all(lc_r[small] == 0.0)
    # (the thin-coned polygons' summed log m0 is what the cubature corrects, by up to 1e-11)
    np.testing.assert_allclose(lm_r[~thin], lm_s[~thin], rtol=1e-12, atol=0)
    tr = np.einsum("...ii->...", tc_s)
    gap = np.where(sent, np.abs(tc_r - tc_s).max(axis=(-1, -2)) / tr, -1.0)
    for flat in np.argsort(gap, axis=None)[-2:]:
        a, j = np.unravel_index(flat, gap.shape)
        lm_exact, mu, ex = exact_mean_cov(table, j, mean[a, j], cov[a if not shared else 0, j])
        scale = float(np.trace(ex))
        assert abs(lm_r[a, j] - lm_exact) <= 1e-12 * abs(lm_exact)
        assert np.all(np.abs(dm_r[a, j] - (mu - mean[a, j])) <= 1e-10 * math.sqrt(scale))
        assert np.all(np.abs(tc_r[a, j] - ex) <= 1e-10 * scale)


@pytest.mark.skipif(not _HAVE_EXACT, reason="verified_dgn's exact path (pycddlib) missing")
def test_polygons_with_thin_cones_go_to_the_cubature():
    """S = 2: a bounded polygon whose thinnest whitened cone has 1 - rho^2 below
    ``_jit_cones._THIN_CONE`` goes to the cubature unsummed: the orthant of a thin cone loses
    ~0.55 eps / (1 - rho^2) of log P. On a net not used to set the threshold, the two pairs
    whose summed log m0 was most off (above 1e-12 relative; measured 1.1e-11 and 6e-12) are
    within 1e-12 of verified_dgn now, and log m0 is the same with and without moments."""
    import verified_dgn
    from fastpath import _cones
    from tests.integrals_fast_refs import estep_like_pairs, thin_pairs

    table, mean, cov, chol = estep_like_pairs(14, 22, 60, 3.0, False)
    lm = table.evaluate(mean, chol, False)[0]
    # (a few rows: with moments the far pairs take the tail slices, ~1 ms each)
    np.testing.assert_array_equal(lm[:6], table.evaluate(mean[:6], chol[:6], True)[0])
    with switched(_cones.ROUTE, False):
        summed, _, _, lc = table.evaluate(mean, chol, False)
    thin = thin_pairs(table, chol)
    # a few percent of the bounded pairs (3.5% here): the cubature they cost stays small
    assert 0 < thin[:, table._bounded_mask].mean() < 0.1
    a, j = np.nonzero(table._bounded_mask[None] & thin & (lm > math.log(1e-20)) & (lc <= 3.0))
    got = table._cubature_compiled(mean, chol, False, a, j, np.full(a.size, 10**6))
    assert got is not None
    ga, gj, glm, _, _ = got
    gap = np.abs(summed[ga, gj] - glm) / np.abs(glm)
    for i in np.argsort(gap)[-2:]:
        A, J = ga[i], gj[i]
        fv = table.f_valid[J]
        exact = float(verified_dgn.log_gaussian_mass(table.f_C[J][fv], table.f_d[J][fv],
                                                     mean[A, J], cov[A, J], dps=25))
        assert abs(summed[A, J] - exact) > 1e-12 * abs(exact)
        assert abs(lm[A, J] - exact) <= 1e-12 * abs(exact)


@pytest.mark.parametrize("shared", [True, False])
def test_cubature_cost_matches_numpy(shared):
    """The compiled cost model of the S >= 3 cubature routing
    (fastpath._jit_cubature.cubature_cost) against its numpy form on the regions of a real
    S = 3 partition (bounded and unbounded), means near and far: the same estimates to
    rounding (whitening by substitution instead of an inverse), inf and 0 for unbounded."""
    import fastpath
    from fastpath import _cones
    from fastpath.integrals import ConeBatch
    from verified_dgn import DGN

    net = DGN.random((3, 6, 6, 3), activation="relu", seed=2, noise_var=0.05)
    cb = ConeBatch.from_partition(fastpath.partition(net))
    t = next(t for _, _, t in cb._groups if t is not None and t.dim == 3)
    rng = np.random.default_rng(7)
    N, n = 30, t.n_poly
    mean = rng.normal(size=(N, n, 3)) * np.exp(rng.uniform(-1.0, 3.0, (N, n, 1)))
    A = rng.normal(size=(1 if shared else N, n, 3, 3))
    chol = np.linalg.cholesky(A @ np.swapaxes(A, -1, -2) + 0.2 * np.eye(3))
    got = t._cubature_cost(mean, chol)
    with switched(_cones.COMPILED, False):
        want = t._cubature_cost(mean, chol)
    bounded = np.isfinite(want[0])
    assert bounded.any() and (~bounded).any()
    np.testing.assert_array_equal(np.isfinite(got[0]), bounded)
    # measured 4.2e-14 relative (the spread's rounding, raised to the power s)
    np.testing.assert_allclose(got[0][bounded], want[0][bounded], rtol=1e-12)
    # far = |c| - R, a difference of whitened lengths up to ~300: 1e-11 of 1 + |mean|
    # (measured 8.6e-14 of it)
    scale = 1.0 + np.abs(mean).max(axis=-1)[bounded]
    assert np.all(np.abs(got[1][bounded] - want[1][bounded]) <= 1e-11 * scale)
    assert np.all(got[1][~bounded] == 0.0)
