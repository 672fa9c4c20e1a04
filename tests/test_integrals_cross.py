"""fastpath.gaussian_moments against the exact path verified_dgn.gaussian_moments.

The exact path triangulates P exactly, expands every simplex by Lemma 4 and evaluates the
orthants in mpmath with automatic precision: a method independent of the fast path's signed
vertex cones, nearest-point directions, float geometry and float orthant kernels.

Targets (the issue's): log m0 within 1e-12 (relative error of m0) where m0 >= 1e-20 and
within 1e-8 down to m0 = 1e-300, S = 1..3; E[z|P] and E[z z^T|P] within 1e-10 of the exact
values relative to the scale of cov (for the second moment: to max(||cov||, |E[zz^T]|));
S = 4 within 1e-9. In the far tails the moments are ratios of terms of size e^{-h^2/2}
computed in log space, accurate to about eps h^2 ~ eps |log m0| relative; the tolerance used
there is stated with that reason.

The exact path costs seconds per 2-D polygon in the tails and 10 to 60 s per 3-D polytope,
so the default selection runs a handful of cases (about 15 s); ``--runslow`` runs the
random suite (tens of minutes, nearly all of it in the exact path: ~2 min per 2-D case at
log m0 ~ -200, 1-15 min per 3-D polytope, ~8 min for the 4-D one on this machine).
"""

from __future__ import annotations

import importlib.util
import math

import mpmath
import numpy as np
import pytest

from fastpath._polyhedron import polyhedron_geometry
from fastpath.integrals import ConeBatch, PolyhedronCones

_HAVE_EXACT = importlib.util.find_spec("cdd") is not None
try:
    from verified_dgn.integrals import gaussian_moments as exact_moments
except ImportError as exc:  # pragma: no cover - depends on the checkout
    _HAVE_EXACT = False
    _REASON = f"verified_dgn.gaussian_moments is not importable: {exc}"
else:
    _REASON = "pycddlib is not installed (the exact path needs it)"

pytestmark = pytest.mark.skipif(not _HAVE_EXACT, reason=_REASON)


def _orthant_available(k: int) -> bool:
    from fastpath.orthant import _log_mvn_cdf_std
    try:
        _log_mvn_cdf_std(np.zeros((1, k)), 0.5 * np.eye(k)[None] + 0.5)
    except NotImplementedError:
        return False
    return True


# --------------------------------------------------------------------------- inputs
def random_polytope(rng, S, bounded, m=None):
    """Random {C z <= d}: bounded (rejection) or unbounded toward -e1 (all c_1 > 0)."""
    for _ in range(100):
        mm = int(rng.integers(S + 2, S + 6)) if m is None else m
        N = rng.normal(size=(mm, S))
        N /= np.linalg.norm(N, axis=1, keepdims=True)
        if not bounded:
            N[:, 0] = np.abs(N[:, 0]) + 0.2
        C = N * rng.uniform(0.5, 2.0, mm)[:, None]
        d = C @ rng.normal(size=S) + rng.uniform(0.2, 2.0, mm) * np.linalg.norm(C, axis=1)
        g = polyhedron_geometry(C, d)
        if not g.empty and bounded == (len(g.rays) == 0):
            return C, d
    raise RuntimeError("no polytope drawn")


def random_cov(rng, S):
    A = rng.normal(size=(S, S))
    return A @ A.T + 0.2 * np.eye(S)


# --------------------------------------------------------------------------- comparison
def compare(C, d, mu, cov, *, tol_log, tol_mom, dps=20, label=""):
    """Fast vs exact for one Gaussian; returns the three measured errors."""
    lm, mP, M2P = PolyhedronCones.from_halfspaces(C, d).truncated_moments(mu, cov)
    m0, m1, M2 = exact_moments(C, d, mu, cov, dps=dps)
    if m0 == 0:
        assert lm == -np.inf, f"{label}: exact m0 = 0, fast log m0 = {lm}"
        return 0.0, 0.0, 0.0
    with mpmath.workdps(dps + 5):
        lref = float(mpmath.log(m0))
        mref = np.array([float(x / m0) for x in m1])
        Mref = np.array([[float(x / m0) for x in row] for row in M2])
    s = float(np.linalg.norm(cov, 2))
    e0 = abs(float(lm) - lref)
    e1 = float(np.max(np.abs(mP - mref))) / math.sqrt(s)
    e2 = float(np.max(np.abs(M2P - Mref))) / max(s, float(np.max(np.abs(Mref))))
    t_log = tol_log(lref) if callable(tol_log) else tol_log
    t_mom = tol_mom(lref) if callable(tol_mom) else tol_mom
    msg = (f"{label}: log m0 = {lref:.6g}; errors: log m0 {e0:.3g} (tol {t_log:.3g}), "
           f"mean {e1:.3g}, second {e2:.3g} (tol {t_mom:.3g})")
    assert e0 <= t_log and e1 <= t_mom and e2 <= t_mom, msg
    return e0, e1, e2


def tol_log(lref: float) -> float:
    """1e-12 where m0 >= 1e-20; 1e-8 below (issue targets), plus 4 eps |log m0| rounding."""
    return (1e-12 if lref >= math.log(1e-20) else 1e-8) + 4e-16 * abs(lref)


def tol_mom(lref: float) -> float:
    """1e-10 (issue target) where m0 >= 1e-20. In the tails every moment is a ratio
    exp(log term - log m0) of float log terms of size |log m0|, relatively accurate to
    ~eps |log m0|; E[(z - mean)(z - mean)^T|P] is ~|log m0| cov there, so the second moment
    relative to the cov scale is off by ~eps |log m0|^2: 1e-15 |log m0|^2 (4.5 eps) allowed."""
    if lref >= math.log(1e-20):
        return 1e-10
    return max(1e-10, 1e-15 * lref * lref)


# --------------------------------------------------------------------------- quick (CI)
@pytest.mark.parametrize("bounded", [True, False])
@pytest.mark.parametrize("scale", [0.0, 2.0, 12.0])
def test_interval_vs_exact(bounded, scale):
    rng = np.random.default_rng(int(scale) * 10 + bounded)
    C, d = random_polytope(rng, 1, bounded)
    cov = random_cov(rng, 1)
    mu = rng.normal(size=1) * scale
    compare(C, d, mu, cov, tol_log=tol_log, tol_mom=tol_mom, label="S=1")


@pytest.mark.parametrize("bounded,scale", [(True, 0.5), (False, 1.0), (False, 3.0)])
def test_polygon_vs_exact_quick(bounded, scale):
    rng = np.random.default_rng(7 + bounded)
    C, d = random_polytope(rng, 2, bounded)
    cov = random_cov(rng, 2)
    mu = rng.normal(size=2) * scale
    compare(C, d, mu, cov, tol_log=tol_log, tol_mom=tol_mom, label=f"S=2 b={bounded}")


def test_partition_regions_vs_exact_quick():
    """Regions of a real partition (S = 2) with the E-step's Gaussians N(mu_w(x), Sigma_w)."""
    import fastpath
    from verified_dgn import DGN

    net = DGN.random((2, 6, 6, 2), activation="leaky_relu", slope=0.2, seed=4, noise_var=0.05)
    P = fastpath.partition(net)
    batch = ConeBatch.from_partition(P)
    X, _ = net.sample(1, seed=2)
    A, b = P.A_stack, P.b_stack
    cov = np.linalg.inv(np.eye(2) + np.einsum("rdi,rdj->rij", A, A) / net.noise_var)
    mu = np.einsum("rij,rdj,rd->ri", cov, A, X[0] - b) / net.noise_var
    lm = batch.log_mass(mu, cov)
    # the region of the sample, its neighbours, and a far region
    order = np.argsort(-lm)
    for r in [int(order[0]), int(order[1]), int(order[len(order) // 2])]:
        reg = P[r]
        compare(reg.C, reg.d, mu[r], cov[r], tol_log=tol_log, tol_mom=tol_mom,
                label=f"region {r} ({reg!r})")


@pytest.mark.skipif(not _orthant_available(3), reason="fastpath.orthant has no k = 3 kernel")
def test_polytope_3d_vs_exact_quick():
    """One unbounded 3-D polytope (the exact path needs ~10 s per 3-D polytope)."""
    rng = np.random.default_rng(31)
    C, d = random_polytope(rng, 3, bounded=False, m=4)
    cov = random_cov(rng, 3)
    mu = rng.normal(size=3)
    compare(C, d, mu, cov, tol_log=tol_log, tol_mom=tol_mom, label="S=3")


def _estep_bounded(widths, activation, seed, n_points):
    """The E-step Gaussians N(mu_w(x), Sigma_w) of n_points samples of a random net on the
    bounded regions of its partition: (partition, mu (n, R, S), cov (R, S, S), bounded
    region ids, their ConeTable, its Cholesky factors (1, R', S, S))."""
    import fastpath
    from fastpath._cones import ConeTable
    from verified_dgn import DGN

    net = DGN.random(widths, activation=activation, seed=seed, noise_var=0.05)
    P = fastpath.partition(net)
    X, _ = net.sample(n_points, seed=seed + 1)
    A, b = P.A_stack, P.b_stack
    S = net.latent_dim
    cov = np.linalg.inv(np.eye(S) + np.einsum("rdi,rdj->rij", A, A) / net.noise_var)
    mu = np.einsum("rij,rdj,nrd->nri", cov, A, X[:, None, :] - b[None]) / net.noise_var
    regions = [r for r in range(len(P)) if len(P[r].rays) == 0 and len(P[r].lines) == 0]
    table = ConeTable.from_geometries(
        [PolyhedronCones.from_region(P[r]).geometry for r in regions])
    return P, mu, cov, regions, table, np.linalg.cholesky(cov[regions])[None]


def _top_pairs(P, mu, cov, regions, score, value, n_pairs):
    """(region, mean, cov, value) of the n_pairs entries with the largest score (n, R')."""
    out = []
    for flat in np.argsort(-score.ravel())[:n_pairs]:
        k, j = np.unravel_index(flat, score.shape)
        r = regions[j]
        out.append((P[r], mu[k, r], cov[r], float(value[k, j])))
    return out


def _most_cancelling_pairs(widths, seed, n_pairs, n_points=300):
    """(region, mean, cov, log_cancel) of the E-step pairs of a real partition whose signed
    cone sum cancels most (m0 >= 1e-20, bounded regions): the raw cone sum's own
    log_cancel, before the simplex-cubature fallback replaces it."""
    P, mu, cov, regions, table, chol = _estep_bounded(widths, "relu", seed, n_points)
    lm, _, _, lc = table._evaluate(mu[:, regions], chol, False)
    score = np.where(lm >= math.log(1e-20), lc, -np.inf)
    return _top_pairs(P, mu, cov, regions, score, lc, n_pairs)


@pytest.mark.parametrize("S,widths,seed,n", [
    (2, (2, 7, 7, 2), 11, 2),
    pytest.param(3, (3, 5, 5, 3), 12, 1, marks=pytest.mark.skipif(
        not _orthant_available(3), reason="fastpath.orthant has no k = 3 kernel")),
])
def test_cancelling_estep_pairs_vs_exact_quick(S, widths, seed, n):
    """Small regions far (relative to their size) from the E-step Gaussian: the signed cone
    sum cancels by e^8 - e^17 there (16-25% of an E-step's bounded pairs cancel by more than
    e^3), and the fast path recomputes them by simplex cubature. Full targets."""
    pairs = _most_cancelling_pairs(widths, seed, n)
    assert pairs[0][3] > 6.0            # the hard case is exercised
    for reg, mu, cov, lc in pairs:
        compare(reg.C, reg.d, mu, cov, tol_log=tol_log, tol_mom=tol_mom,
                label=f"S={S} region {reg!r} (cone sum cancels e^{lc:.1f})")


@pytest.mark.slow
@pytest.mark.parametrize("S,widths,seed,n", [(2, (2, 8, 8, 2), 13, 12), (3, (3, 6, 6, 3), 14, 6)])
def test_cancelling_estep_pairs_vs_exact(S, widths, seed, n):
    pairs = _most_cancelling_pairs(widths, seed, n)
    for reg, mu, cov, lc in pairs:
        compare(reg.C, reg.d, mu, cov, tol_log=tol_log, tol_mom=tol_mom,
                label=f"S={S} region {reg!r} (cone sum cancels e^{lc:.1f})")


def _thin_cone_pairs(widths, seed, n_pairs, n_points=60):
    """E-step pairs (S >= 3, bounded regions, m0 >= 1e-20) whose thinnest cone is most
    ill-conditioned relative to the distance (the estimate by which the fast path routes
    them to simplex cubature): (region, mean, cov, log amplification)."""
    from fastpath import _cones

    P, mu, cov, regions, table, chol = _estep_bounded(widths, "leaky_relu", seed, n_points)
    cost, far = table._cubature_cost(mu[:, regions], chol)
    ncones = np.diff(np.append(table.p_seg, table.n_pieces))
    amp = np.log(np.maximum(1.0, 0.5 * far * far)) - table._log_det_min(chol)
    routed = cost <= _cones._THIN_COST_FACTOR * _cones._NODES_PER_CONE * ncones[None, :]
    lm = table.evaluate(mu[:, regions], chol, moments=False)[0]
    score = np.where(routed & (lm >= math.log(1e-20)), amp, -np.inf)
    return _top_pairs(P, mu, cov, regions, score, amp, n_pairs)


@pytest.mark.skipif(not _orthant_available(3), reason="fastpath.orthant has no k = 3 kernel")
@pytest.mark.parametrize("seed,n", [(16, 2), pytest.param(17, 6, marks=pytest.mark.slow)])
def test_thin_cone_estep_pairs_vs_exact(seed, n):
    """S = 3: regions whose cones are thin (correlation determinants ~1e-3) far from the
    Gaussian: the k = 3 orthants lose ~eps |log P| / det R there (measured 2e-12 in log m0
    and 4e-10 in the mean without any cancellation), and the fast path integrates them by
    simplex cubature instead. Full targets."""
    pairs = _thin_cone_pairs((3, 6, 6, 3), seed, n)
    assert pairs[0][3] > 6.8            # the routed case is exercised
    for reg, mu, cov, amp in pairs:
        compare(reg.C, reg.d, mu, cov, tol_log=tol_log, tol_mom=tol_mom,
                label=f"S=3 region {reg!r} (thin cones: e^{amp:.1f} eps)")


def test_degenerate_inputs_vs_exact():
    """Duplicate / redundant / zero rows, a set with a line (slab), an empty set."""
    rng = np.random.default_rng(41)
    C, d = random_polytope(rng, 2, bounded=True)
    cov = random_cov(rng, 2)
    mu = rng.normal(size=2)
    Cd = np.vstack([C, C[:2], 2 * C[2:3], np.zeros((1, 2))])
    dd = np.concatenate([d, d[:2], 2 * d[2:3], [1.0]])
    compare(Cd, dd, mu, cov, tol_log=tol_log, tol_mom=tol_mom, label="duplicates")
    w = np.array([0.6, -0.8])
    compare(np.array([w, -w]), np.array([0.5, 0.3]), mu, cov, tol_log=tol_log,
            tol_mom=tol_mom, label="slab")
    compare(np.array([w, -w]), np.array([-0.5, 0.3]), mu, cov, tol_log=tol_log,
            tol_mom=tol_mom, label="empty")


# --------------------------------------------------------------------------- slow suite
@pytest.mark.slow
@pytest.mark.parametrize("S", [1, 2])
@pytest.mark.parametrize("seed", range(4))
def test_random_suite_vs_exact(S, seed):
    """Random bounded / unbounded polytopes, Gaussians near and far (m0 down to ~1e-300)."""
    rng = np.random.default_rng(1000 * S + seed)
    for bounded in (True, False):
        C, d = random_polytope(rng, S, bounded)
        cov = random_cov(rng, S)
        g = polyhedron_geometry(C, d)
        # the exact path's time grows steeply in the tails (minutes per 2-D case at
        # log m0 ~ -500): S = 2 goes to m0 ~ 1e-100, S = 1 far beyond 1e-300
        for dist in ((0.0, 1.0, 4.0, 12.0, 30.0) if S == 1 else (0.0, 1.0, 2.5)):
            u = rng.normal(size=S)
            u /= np.linalg.norm(u)
            mu = g.interior_point + dist * math.sqrt(np.linalg.norm(cov, 2)) * u * (1 + S)
            compare(C, d, mu, cov, tol_log=tol_log, tol_mom=tol_mom,
                    label=f"S={S} seed={seed} b={bounded} dist={dist}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_random_suite_3d_vs_exact(seed):
    if not _orthant_available(3):
        pytest.skip("fastpath.orthant has no k = 3 kernel")
    rng = np.random.default_rng(3000 + seed)
    for bounded in (True, False):
        C, d = random_polytope(rng, 3, bounded)
        cov = random_cov(rng, 3)
        g = polyhedron_geometry(C, d)
        for dist in (0.0, 1.0):
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            mu = g.interior_point + dist * math.sqrt(np.linalg.norm(cov, 2)) * u * 3
            compare(C, d, mu, cov, tol_log=tol_log, tol_mom=tol_mom,
                    label=f"S=3 seed={seed} b={bounded} dist={dist}")


@pytest.mark.slow
def test_polytope_4d_vs_exact():
    """S = 4 target: 1e-9 relative (the exact path takes minutes here)."""
    if not _orthant_available(4):
        pytest.skip("fastpath.orthant has no k = 4 kernel")
    rng = np.random.default_rng(4000)
    C, d = random_polytope(rng, 4, bounded=False, m=5)
    cov = random_cov(rng, 4)
    mu = rng.normal(size=4)
    compare(C, d, mu, cov, tol_log=1e-9, tol_mom=1e-9, dps=15, label="S=4")


@pytest.mark.slow
def test_partition_regions_vs_exact_all():
    """Every region of a small S = 2 partition, E-step Gaussians of three data points."""
    import fastpath
    from verified_dgn import DGN

    net = DGN.random((2, 5, 5, 2), activation="relu", seed=8, noise_var=0.05)
    P = fastpath.partition(net)
    X, _ = net.sample(3, seed=5)
    A, b = P.A_stack, P.b_stack
    cov = np.linalg.inv(np.eye(2) + np.einsum("rdi,rdj->rij", A, A) / net.noise_var)
    for x in X:
        mu = np.einsum("rij,rdj,rd->ri", cov, A, x - b) / net.noise_var
        for r, reg in enumerate(P):
            compare(reg.C, reg.d, mu[r], cov[r], tol_log=tol_log, tol_mom=tol_mom,
                    label=f"region {r}")
