"""verified_dgn.log_marginal / posterior (mpmath) and the distribution checks.

Independent references used here (none of them calls verified_dgn.distributions):

* a net without hidden layers: p(x) = N(x; b, Sigma_x + A Sigma_z A^T) and the Gaussian
  posterior, evaluated with D x D mpmath matrices;
* a slow loop over the regions with the D x D formulas of docs/DESIGN.md §2.3 (no Woodbury, no
  determinant lemma) and gaussian_moments for Phi_w;
* the checks of dgn_tools.checks.distribution_checks (quadrature of p(x|z) p(z) between
  exactly swept kinks, closed-form interval probabilities, exact GLO latents), run here on
  small nets, plus mutation tests showing that they fail on a perturbed implementation.

The default selection runs the quick versions of the checks (its cost is mostly the S = 2
polygon integrals); ``--runslow`` adds the thorough ones.
"""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest

import verified_dgn
from dgn_core.exceptions import DataError
from dgn_tools.checks import distribution_checks as dc
from dgn_tools.checks import registry
from tests.conftest import needs_cdd
from verified_dgn import DGN
from verified_dgn import distributions as dist
from verified_dgn import marginal as marginal_mod
from verified_dgn import region_forms as forms_mod
from verified_dgn.integrals import PrecisionError, gaussian_moments

pytestmark = [needs_cdd, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

DPS = 30


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def net1():
    """S = 1, D = 2 relu net (11 regions)."""
    return DGN.random((1, 6, 6, 2), seed=11, noise_var=0.05)


@pytest.fixture(scope="module")
def part1(net1):
    return verified_dgn.partition(net1)


@pytest.fixture(scope="module")
def net_leaky():
    """S = 1, D = 3 leaky-relu net, diagonal noise, prior variance 2.25."""
    return DGN.random((1, 4, 3, 3), activation="leaky_relu", slope=0.2, seed=5,
                      noise_var=np.array([0.03, 0.05, 0.02]), prior_cov=np.array([[2.25]]))


@pytest.fixture(scope="module")
def net2():
    """S = 2, D = 2 relu net (7 regions)."""
    return DGN.random((2, 3, 2), seed=21, noise_var=0.05)


# --------------------------------------------------------------------------- references
def _mp_matrix(a):
    a = np.asarray(a)
    return mpmath.matrix([[mpmath.mpf(Fraction(v).numerator) / Fraction(v).denominator
                           for v in row] for row in a.tolist()])


def _direct_region(net, region, x):
    """log kappa_w, mu_w, Sigma_w of docs/DESIGN.md §2.3 with D x D mpmath matrices."""
    A = _mp_matrix(region.A)
    b = _mp_matrix(np.asarray(region.b)[:, None])
    Sx = mpmath.diag([mpmath.mpf(float(v)) for v in net.noise_var_vector])
    Sz = _mp_matrix(net.prior_cov)
    xx = mpmath.matrix([[mpmath.mpf(float(v))] for v in x])
    K = Sx + A * Sz * A.T
    r = xx - b
    D = len(x)
    log_kappa = -(D * mpmath.log(2 * mpmath.pi) + mpmath.log(mpmath.det(K))
                  + (r.T * K ** -1 * r)[0, 0]) / 2
    Sigma = (Sz ** -1 + A.T * Sx ** -1 * A) ** -1
    mu = Sigma * A.T * Sx ** -1 * r
    return log_kappa, mu, Sigma


def _loop_log_marginal(net, P, x, dps):
    """Slow, obviously correct: log sum_w kappa_w Phi_w over every region (no pruning)."""
    with mpmath.workdps(dps + 20):
        terms = []
        for r in P:
            lk, mu, Sigma = _direct_region(net, r, x)
            S = net.latent_dim
            # gaussian_moments takes floats/Fractions: round mu, Sigma at this precision
            mu_f = [dist._to_fraction(mu[i], "mu") for i in range(S)]
            Sig_f = [[dist._to_fraction((Sigma[i, j] + Sigma[j, i]) / 2, "S") for j in range(S)]
                     for i in range(S)]
            m0 = gaussian_moments(r.C, r.d, mu_f, Sig_f, dps=dps + 10)[0]
            terms.append(lk + mpmath.log(m0))
        return dist._logsumexp(terms)


# --------------------------------------------------------------------------- validation
def test_input_validation(net1, part1):
    x = np.zeros((1, 2))
    with pytest.raises(TypeError, match="DGN"):
        verified_dgn.log_marginal("net", x)
    with pytest.raises(ValueError, match="shape"):
        verified_dgn.log_marginal(net1, np.zeros((2, 3)), partition=part1)
    with pytest.raises(ValueError, match="NaN"):
        verified_dgn.log_marginal(net1, np.array([[0.0, np.nan]]), partition=part1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        verified_dgn.posterior(net1, np.array([[np.inf, 0.0]]), partition=part1)
    with pytest.raises(ValueError, match="empty"):
        verified_dgn.log_marginal(net1, np.zeros((0, 2)), partition=part1)
    # strings are a DataError naming X, as in the fast path
    with pytest.raises(DataError, match="X must hold real numbers"):
        verified_dgn.log_marginal(net1, np.array([["a", "b"]]), partition=part1)
    for bad in (0, -3, 2.5, True, 10 ** 6):
        with pytest.raises(ValueError, match="dps"):
            verified_dgn.log_marginal(net1, x, dps=bad, partition=part1)
    with pytest.raises(ValueError, match="latent dimension"):
        verified_dgn.log_marginal(DGN.random((5, 3, 2)), np.zeros(2))
    with pytest.raises(TypeError, match="Partition"):
        verified_dgn.posterior(net1, x, partition=[1, 2])
    other = DGN.random((1, 6, 6, 2), seed=12)
    with pytest.raises(ValueError, match="different net"):
        verified_dgn.log_marginal(other, x, partition=part1)


def test_float_partition_rejected(net1):
    import fastpath

    with pytest.raises(ValueError, match="exact partition"):
        verified_dgn.log_marginal(net1, np.zeros(2), partition=fastpath.partition(net1))


# --------------------------------------------------------------------------- closed forms
def test_no_hidden_layer_is_a_gaussian():
    """L = 1: p(x) = N(x; b, Sigma_x + A Sigma_z A^T), the posterior is N(mu, Sigma)."""
    rng = np.random.default_rng(3)
    W = rng.normal(size=(3, 2))
    v = rng.normal(size=3)
    net = DGN([W], [v], noise_var=np.array([0.3, 0.1, 0.2]),
              prior_cov=np.array([[1.5, 0.4], [0.4, 0.7]]))
    P = verified_dgn.partition(net)
    assert len(P) == 1
    X = rng.normal(size=(3, 3)) * 2
    lp = verified_dgn.log_marginal(net, X, dps=DPS, partition=P)
    post = verified_dgn.posterior(net, X, dps=DPS, partition=P)
    with mpmath.workdps(DPS + 20):
        for n, x in enumerate(X):
            lk, mu, Sigma = _direct_region(net, P[0], x)
            assert abs(lp[n] - lk) <= mpmath.mpf(10) ** -DPS
            assert abs(post.log_px[n] - lk) <= mpmath.mpf(10) ** -DPS
            assert post.e0[n, 0] == 1 or abs(post.e0[n, 0] - 1) <= mpmath.mpf(10) ** -DPS
            for i in range(2):
                assert abs(post.mean[n, i] - mu[i]) <= mpmath.mpf(10) ** -DPS
                for j in range(2):
                    sc = mpmath.sqrt(Sigma[i, i] * Sigma[j, j])
                    assert abs(post.cov[n, i, j] - Sigma[i, j]) <= sc * mpmath.mpf(10) ** -DPS


def test_woodbury_forms_match_direct_matrices(net_leaky):
    """log kappa_w, mu_w(x), Sigma_w of the posterior against the D x D formulas."""
    P = verified_dgn.partition(net_leaky)
    X = np.array([[0.3, -0.2, 0.5], [2.0, 1.0, -1.0]])
    post = verified_dgn.posterior(net_leaky, X, dps=DPS, partition=P)
    assert post.e0.shape == (2, len(P)) and post.gauss_cov.shape == (len(P), 1, 1)
    with mpmath.workdps(DPS + 20):
        for n, x in enumerate(X):
            for w, r in enumerate(P):
                lk, mu, Sigma = _direct_region(net_leaky, r, x)
                assert abs(post.log_kappa[n, w] - lk) <= mpmath.mpf(10) ** -(DPS + 5)
                tol = mpmath.mpf(10) ** -(DPS + 5)
                assert abs(post.gauss_mean[n, w, 0] - mu[0]) <= tol * (1 + abs(mu[0]))
                assert abs(post.gauss_cov[w, 0, 0] - Sigma[0, 0]) <= tol * Sigma[0, 0]


def test_log_marginal_matches_slow_loop(net_leaky):
    P = verified_dgn.partition(net_leaky)
    X = np.array([[0.3, -0.2, 0.5], [2.0, 1.0, -1.0], [-0.1, 0.0, 0.05]])
    lp = verified_dgn.log_marginal(net_leaky, X, dps=DPS, partition=P)
    for n, x in enumerate(X):
        ref = _loop_log_marginal(net_leaky, P, x, DPS)
        with mpmath.workdps(DPS + 20):
            assert abs(lp[n] - ref) <= mpmath.mpf(10) ** -DPS, (n, lp[n], ref)


def test_log_marginal_s2_matches_slow_loop(net2):
    P = verified_dgn.partition(net2)
    x = np.array([0.2, -0.3])
    lp = verified_dgn.log_marginal(net2, x, dps=20, partition=P, prune=False)
    ref = _loop_log_marginal(net2, P, x, 20)
    with mpmath.workdps(40):
        assert abs(lp[0] - ref) <= mpmath.mpf(10) ** -20


def test_exact_inputs_fraction_and_negative_mpf(net1, part1):
    """Fractions and mpf (negative ones too) are taken exactly, like the floats they equal."""
    x = np.array([-0.375, 0.8125])
    ref = verified_dgn.log_marginal(net1, x, dps=25, partition=part1)[0]
    xq = np.array([[Fraction(-3, 8), Fraction(13, 16)]], dtype=object)
    xm = np.array([[mpmath.mpf("-0.375"), mpmath.mpf("0.8125")]], dtype=object)
    assert verified_dgn.log_marginal(net1, xq, dps=25, partition=part1)[0] == ref
    assert verified_dgn.log_marginal(net1, xm, dps=25, partition=part1)[0] == ref


# --------------------------------------------------------------------------- pruning and digits
def test_pruning_is_rigorous_and_harmless():
    """Pruned regions' true e0 (computed without pruning) lie below e0_bound, and the pruned
    result agrees with the full one within the claim."""
    # noise 3e-3: 11 (point, region) pairs pruned; (with 1e-3 the off-curve point has regions
    # of mass exp(-3.5e6), costly to integrate with prune=False)
    net = DGN.random((1, 6, 6, 2), seed=11, noise_var=3e-3)
    P = verified_dgn.partition(net)
    X = np.vstack([net.sample(2, seed=4)[0], [[0.4, 0.6]]])
    a = verified_dgn.posterior(net, X, dps=20, partition=P)
    b = verified_dgn.posterior(net, X, dps=20, partition=P, prune=False)
    assert a.pruned.sum() > 0, "the test needs pruned regions"
    assert not b.pruned.any()
    assert dist.posterior_discrepancy(a, b) <= 1e-20
    for n, w in zip(*np.nonzero(a.pruned)):
        assert a.e0[n, w] == 0 and b.e0[n, w] <= a.e0_bound[n, w]
    lp = verified_dgn.log_marginal(net, X, dps=20, partition=P)
    lq = verified_dgn.log_marginal(net, X, dps=20, partition=P, prune=False)
    with mpmath.workdps(40):
        assert max(abs(u - v) for u, v in zip(lp, lq)) <= mpmath.mpf(10) ** -20


def test_pruning_bounds_hold_and_are_tight(net2):
    """For every region of an S = 2 net and several x: Phi_w <= Phi(-r) (times the factor 2
    of the bound) and int_w z_i^2 N <= T_i, against gaussian_moments; the nearest point p is
    in the closed region and no sampled point of the region is nearer; for far regions the
    bound is within a few nats of the truth."""
    P = verified_dgn.partition(net2)
    model, forms = dist._forms(net2, P)
    rng = np.random.default_rng(5)
    slack = []
    for x in [np.array([0.3, -0.2]), np.array([2.0, 1.5]), np.array([-1.0, 0.4])]:
        xq = [Fraction(float(v)) for v in x]
        for f, r in zip(forms, P):
            mu, _ = dist._mu_and_q(model, f, xq)
            with mpmath.workdps(40):
                lb0, lT = dist._log_bounds(f, mu, mpmath.mpf(0), True)
                m0, _, M2 = gaussian_moments(f.C, f.d, mu, f.Sigma, dps=30)
                assert mpmath.log(m0) <= lb0
                for i in range(2):
                    assert mpmath.log(M2[i, i]) <= lT[i]
                near = dist._nearest_point(f, mu)
                if near is None:
                    assert r.contains(np.array(mu, dtype=object))
                    continue
                p, r2 = near
                assert r.contains(np.array(p, dtype=object))
                # brute force: random points of the region (vertices + rays) are not nearer
                V = np.asarray(r.vertices, dtype=float)
                R = np.asarray(r.rays, dtype=float).reshape(-1, 2)
                lam = np.array([[float(v) for v in row] for row in f.Lam])
                muf = np.array([float(v) for v in mu])
                for _ in range(200):
                    a = rng.dirichlet(np.ones(len(V)))
                    z = a @ V + (rng.exponential(size=len(R)) @ R if len(R) else 0)
                    assert (z - muf) @ lam @ (z - muf) >= float(r2) * (1 - 1e-9)
                if float(r2) > 50:
                    slack.append(float(lb0 - mpmath.log(m0)))
    # far regions (r^2 > 50): the bound exceeds the truth only by log 2 and polynomial
    # factors (measured 1.6 to 3.9 nats here), against r^2 / 2 > 25 nats of decay
    assert slack and max(slack) < 8, slack


@pytest.mark.parametrize("noise", [0.05, 1e-9])
def test_digit_claim_by_recomputation(noise):
    """dps = 20 against dps = 45 in the claim's scales, also where cov = E2 - mean^2 cancels
    about 9 digits (noise 1e-9)."""
    net = DGN.random((1, 6, 6, 2), seed=11, noise_var=noise)
    P = verified_dgn.partition(net)
    X = net.sample(2, seed=9)[0]
    lo = verified_dgn.posterior(net, X, dps=20, partition=P)
    hi = verified_dgn.posterior(net, X, dps=45, partition=P)
    assert dist.posterior_discrepancy(lo, hi) <= 1e-20
    if noise < 1e-6:
        assert all(float(hi.cov[n, 0, 0]) < 1e-6 for n in range(2))  # the cancelling case


def test_verify_option(net1, part1, monkeypatch):
    X = np.array([[0.1, 0.2]])
    lp = verified_dgn.log_marginal(net1, X, dps=20, partition=part1, verify=True)
    post = verified_dgn.posterior(net1, X, dps=20, partition=part1, verify=True)
    with mpmath.workdps(40):
        assert abs(lp[0] - post.log_px[0]) <= mpmath.mpf(10) ** -20
    # a computation that is wrong at the lower precision must be caught
    orig = dist._log_marginal_point

    def wrong(model, forms, x, dps, prune):
        v, pr = orig(model, forms, x, dps, prune)
        return (v + mpmath.mpf(10) ** -(dps - 3) if dps < 30 else v), pr

    monkeypatch.setattr(marginal_mod, "_log_marginal_point", wrong)
    with pytest.raises(PrecisionError, match="differs"):
        verified_dgn.log_marginal(net1, X, dps=20, partition=part1, verify=True)


def test_posterior_structure(net1, part1):
    X = net1.sample(3, seed=2)[0]
    post = verified_dgn.posterior(net1, X, dps=DPS, partition=part1)
    N, R, S = 3, len(part1), 1
    assert post.e1.shape == (N, R, S) and post.E2.shape == (N, R, S, S)
    assert post.mean.shape == (N, S) and post.cov.shape == (N, S, S)
    assert post.partition is part1 and post.n_regions == R
    with mpmath.workdps(DPS + 10):
        for n in range(N):
            assert abs(mpmath.fsum(post.e0[n]) - 1) <= mpmath.mpf(10) ** -DPS
            m = mpmath.fsum(post.e1[n, :, 0])
            assert abs(m - post.mean[n, 0]) <= mpmath.mpf(10) ** -DPS
            for w in range(R):
                if post.e0[n, w] > 0:
                    assert abs(post.log_e0[n, w] - mpmath.log(post.e0[n, w])) <= mpmath.mpf(10) ** -DPS
                    # the conditional mean of region w lies in region w
                    rm = post.region_mean[n, w, 0]
                    assert part1[w].contains([float(rm)], tol=1e-12)
    assert "ExactPosterior" in repr(post)


def test_posterior_satisfies_the_protocol(net1, part1):
    """ExactPosterior is a dgn_core.api.PosteriorLike: region_weights, region_cov,
    most_probable_region and log_density(Z, n)."""
    from dgn_core.api import PosteriorLike

    X = net1.sample(3, seed=2)[0]
    post = verified_dgn.posterior(net1, X, dps=20, partition=part1)
    assert isinstance(post, PosteriorLike)
    N, R = post.e0.shape
    assert post.region_weights is post.e0
    assert post.region_cov.shape == (N, R, 1, 1)
    best = post.most_probable_region()
    assert best.shape == (N,) and best.dtype.kind == "i"
    for n in range(N):
        assert post.log_e0[n, best[n]] == max(post.log_e0[n])
        assert post.e0[n, best[n]] == max(post.e0[n])
    assert post.log_density(np.zeros((2, 1)), 1).shape == (2,)


def _truncated_normal_variance(mu, s2, lo, hi):
    """Var of N(mu, s2) truncated to [lo, hi] (closed form, reflected into the lower tail)."""
    s = mpmath.sqrt(s2)
    a, b = (lo - mu) / s, (hi - mu) / s
    if a > 0:
        a, b = -b, -a
    Z = mpmath.ncdf(b) - mpmath.ncdf(a)
    pa, apa = (0, 0) if a == -mpmath.inf else (mpmath.npdf(a), a * mpmath.npdf(a))
    pb, bpb = (0, 0) if b == mpmath.inf else (mpmath.npdf(b), b * mpmath.npdf(b))
    return s2 * (1 + (apa - bpb) / Z - ((pa - pb) / Z) ** 2)


def test_region_cov_s1_against_truncated_normal(net1, part1):
    """Cov[z | x, z in w] for S = 1: the variance of N(mu_w, Sigma_w) truncated to the
    region's interval, in closed form at 60 more digits; within the claim (E2's accuracy
    over e0), and to 10**-dps relative for every region here."""
    X = np.vstack([net1.sample(3, seed=2)[0], [[0.4, 0.6]]])
    post = verified_dgn.posterior(net1, X, dps=DPS, partition=part1)
    rc = post.region_cov
    with mpmath.workdps(DPS + 60):
        for w, r in enumerate(part1):
            lo, hi = -mpmath.inf, mpmath.inf
            for c, d in zip(np.asarray(r.C)[:, 0], np.asarray(r.d)):
                v = dist._mpf(Fraction(d)) / dist._mpf(Fraction(c))
                lo, hi = (lo, min(hi, v)) if c > 0 else (max(lo, v), hi)
            for n in range(len(X)):
                e0 = post.e0[n, w]
                if not e0 > 0:
                    assert rc[n, w, 0, 0] == 0
                    continue
                ref = _truncated_normal_variance(post.gauss_mean[n, w, 0], post.gauss_cov[w, 0, 0],
                                                 lo, hi)
                err = abs(rc[n, w, 0, 0] - ref)
                assert err <= mpmath.mpf(10) ** -DPS * max(ref, post.cov[n, 0, 0] / e0)
                assert err <= mpmath.mpf(10) ** -DPS * ref


def test_region_cov_s2_against_region_moments(net2):
    """Cov[z | x, z in w] for S = 2 against M2/m0 - (m1/m0)(m1/m0)^T of the region's
    Gaussian factor, integrated separately at 20 more digits."""
    P = verified_dgn.partition(net2)
    x = np.array([[0.3, 0.4]])
    post = verified_dgn.posterior(net2, x, dps=20, partition=P)
    rc = post.region_cov
    for w, r in enumerate(P):
        if not post.e0[0, w] > 1e-6:
            continue
        m0, m1, M2 = gaussian_moments(r.C, r.d, post.gauss_mean[0, w], post.gauss_cov[w], dps=40)
        with mpmath.workdps(60):
            for i in range(2):
                for j in range(2):
                    ref = M2[i, j] / m0 - (m1[i] / m0) * (m1[j] / m0)
                    scale = mpmath.sqrt((M2[i, i] / m0 - (m1[i] / m0) ** 2)
                                        * (M2[j, j] / m0 - (m1[j] / m0) ** 2))
                    assert abs(rc[0, w, i, j] - ref) <= mpmath.mpf(10) ** -20 * scale


def test_prune_option():
    """prune: True = the safe margin (dps + 10) ln 10 nats; a number = a margin in nats (refused
    below (dps + 1) ln 10); False or None = every pair; anything else a TypeError."""
    net = DGN.random((1, 6, 6, 2), seed=11, noise_var=3e-3)
    P = verified_dgn.partition(net)
    X = np.vstack([net.sample(2, seed=4)[0], [[0.4, 0.6]]])
    dps = 20
    safe = verified_dgn.posterior(net, X, dps=dps, partition=P)
    assert safe.pruned.any(), "the test needs pruned pairs"
    as_number = verified_dgn.posterior(net, X, dps=dps, partition=P, prune=(dps + 10) * math.log(10))
    assert (as_number.pruned == safe.pruned).all()
    assert dist.posterior_discrepancy(as_number, safe) == 0
    for off in (False, None):
        full = verified_dgn.posterior(net, X, dps=dps, partition=P, prune=off)
        assert not full.pruned.any()
        assert dist.posterior_discrepancy(safe, full) <= 10.0 ** -dps
        lp = verified_dgn.log_marginal(net, X, dps=dps, partition=P, prune=off)
        with mpmath.workdps(dps + 20):
            assert max(abs(a - b) for a, b in zip(lp, full.log_px)) <= mpmath.mpf(10) ** -dps
    # the smallest margin accepted prunes at least as much, and keeps the claimed digits
    least = (dps + 1) * math.log(10)
    lean = verified_dgn.posterior(net, X, dps=dps, partition=P, prune=least)
    assert lean.pruned.sum() >= safe.pruned.sum()
    assert dist.posterior_discrepancy(lean, full) <= 10.0 ** -dps
    lp_lean = verified_dgn.log_marginal(net, X, dps=dps, partition=P, prune=least)
    with mpmath.workdps(dps + 20):
        assert max(abs(a - b) for a, b in zip(lp_lean, full.log_px)) <= mpmath.mpf(10) ** -dps
    for f in (verified_dgn.log_marginal, verified_dgn.posterior):
        with pytest.raises(ValueError, match="too small for dps = 20.*spoil the 20 claimed digits"):
            f(net, X, dps=dps, partition=P, prune=least - 0.01)
        with pytest.raises(ValueError, match="too small"):
            f(net, X, dps=dps, partition=P, prune=-1)
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ValueError, match="finite margin"):
                f(net, X, dps=dps, partition=P, prune=bad)
        for bad in ("yes", [60.0], 1j):
            with pytest.raises(TypeError, match="prune"):
                f(net, X, dps=dps, partition=P, prune=bad)


# --------------------------------------------------------------------------- checks (quick)
def test_kinks_sweep_matches_partition(net1, part1):
    """The independent exact sweep finds the partition's region boundaries."""
    ks = dc.kinks_1d(net1)
    verts = sorted({Fraction(v) for r in part1 for v in np.asarray(r.vertices).ravel().tolist()})
    assert ks == verts


def test_theorem1_s1_quick(net1):
    res = registry()["Theorem 1"][1](net=net1, quick=True, normalisation=False)
    assert res.passed, str(res)
    assert res.residual < 1e-25


def test_theorem1_s2_quick(net2):
    res = registry()["Theorem 1"][1](net=net2, quick=True, n_points=0)
    assert res.passed, str(res)
    assert res.residual < 1e-9


@pytest.mark.parametrize("widths, act", [((1, 3, 2), "relu"), ((2, 4, 2), "leaky_relu"),
                                         ((1, 4, 1), "abs"), ((3, 3, 2), "relu")])
def test_density_integrates_to_one(widths, act):
    from dgn_tools.checks.normalisation import normalisation_integral, normalisation_verdict

    net = DGN.random(widths, activation=act, seed=2, noise_var=0.2)
    res = normalisation_integral(net, tol=1e-9, exact_nodes=1)
    # the cubature's own estimate (8- vs 12-point rules per panel) plus the proved tail bound
    assert res.converged and res.error <= 1e-9, res
    assert abs(res.integral - 1.0) <= 1e-9, res
    if net.latent_dim <= 2:  # fast log p against the exact path at the heaviest node
        assert res.exact_agreement is not None and res.exact_agreement <= 1e-10, res
    assert normalisation_verdict(res, 1e-9) == "PASS"


def test_normalisation_panel_bounds_hold():
    # the bound that closes panels without evaluating p must exceed the panel's integral
    # (12-point product rule; the panels are small against the noise, so it is accurate)
    import fastpath
    from dgn_tools.checks.normalisation import _box, _ImageBound, _panel_nodes

    for widths, S in (((1, 4, 2), 1), ((2, 4, 2), 2), ((3, 3, 2), 3)):
        net = DGN.random(widths, seed=5, noise_var=0.05)
        part = fastpath.partition(net)
        lo0, hi0 = _box(net, part, 1e-10)
        rng = np.random.default_rng(S)
        w = 0.3 * np.sqrt(0.05)
        lo = lo0 + (hi0 - lo0 - w) * rng.random((400, 2))
        hi = lo + w
        nodes, wts = _panel_nodes(lo, hi, 12)
        q = np.sum(wts * np.exp(fastpath.log_marginal(net, nodes.reshape(-1, 2), partition=part)
                                ).reshape(nodes.shape[:2]), axis=1)
        b = _ImageBound(net, part, 1e-10).panel_bounds(lo, hi)
        # where q exceeds b, the excess comes from z beyond the radius r of the bound, a
        # mass of at most delta / 2 = 5e-11 over the whole space (module notes)
        excess = float(np.sum(np.maximum(q - b * (1 + 1e-9), 0.0)))
        assert excess <= 5e-11, (widths, excess, float(np.max(q - b)))
        assert np.mean(b < 1e-12) > 0.2  # and it does close far panels


def test_normalisation_refutes_a_wrong_density(monkeypatch):
    # a density 0.1% too large everywhere must be refuted, not called inconclusive
    import fastpath
    from dgn_tools.checks import normalisation as nm

    real = fastpath.log_marginal
    monkeypatch.setattr(fastpath, "log_marginal",
                        lambda *a, **k: real(*a, **k) + math.log1p(1e-3))
    res = nm.normalisation_integral(DGN.random((1, 3, 2), seed=2, noise_var=0.2), tol=1e-9,
                                    exact_nodes=0)
    assert abs(res.integral - 1.001) < 1e-8 and nm.normalisation_verdict(res, 1e-9) == "FAIL"


@pytest.mark.parametrize("budget", [1000, 30000])
def test_normalisation_out_of_budget_is_inconclusive(budget):
    from dgn_tools.checks.normalisation import normalisation_integral, normalisation_verdict

    net = DGN.random((1, 3, 2), seed=2, noise_var=0.2)
    res = normalisation_integral(net, tol=1e-13, max_evaluations=budget, exact_nodes=0)
    assert not res.converged and not res.error <= 1e-13
    if math.isfinite(res.integral):  # some rounds done: the estimate brackets 1
        assert abs(res.integral - 1.0) <= 10 * res.error
    assert normalisation_verdict(res, 1e-13) == "INCONCLUSIVE"


def test_posterior_normalisation_quick(net1):
    res = registry()["Posterior normalisation"][1](net=net1, quick=True, n_points=0)
    assert res.passed, str(res)


def test_prop1_quick(net1):
    res = registry()["Prop. 1"][1](net=net1, quick=True, n_points=0)
    assert res.passed, str(res)
    assert res.residual < 1e-25


def test_prop2_quick(net_leaky, net2):
    for nt in (net_leaky, net2):
        res = registry()["Prop. 2"][1](net=nt, quick=True, n_points=1, n_latent=4)
        assert res.passed, str(res)
        assert res.residual < 1e-27


def test_lemma2_quick(net_leaky):
    res = registry()["Lemma 2"][1](net=net_leaky, quick=True, n_points=2)
    assert res.passed, str(res)


def test_prop3_quick(net1):
    res = registry()["Prop. 3"][1](net=net1, quick=True, n_points=1)
    assert res.passed, str(res)


def test_checks_reject_unsupported_latent_dimension():
    from dgn_tools.checks import call_check

    with pytest.raises(ValueError, match="latent dimension"):
        registry()["Prop. 3"][1](net=DGN.random((2, 3, 2)), quick=True)
    # through call_check (what `dgn check` runs) the check is SKIPPED with the reason
    res = call_check("Prop. 3", net=DGN.random((2, 3, 2)), quick=True, dps=99)
    assert res.status == "SKIPPED" and not res.failed and "latent dimension" in res.measured


def test_lemma2_multi_latent():
    # S = 3: z* from exact per-region QPs, the float64 posterior along sigma^2 -> 0
    res = registry()["Lemma 2"][1](net=DGN.random((3, 4, 3), seed=3, noise_var=0.05),
                                   quick=True, n_points=2)
    assert res.status == "PASS", str(res)
    assert res.residual is not None and res.residual < 1e-4


def test_lemma2_skips_latent_above_data_dimension():
    # S > D: argmin ||x - g(z)||^2 is a set, Lemma 2's limit is undefined: SKIPPED, not a crash
    from dgn_tools.checks import call_check

    res = call_check("Lemma 2", net=DGN.random((3, 3, 2), seed=1, noise_var=0.05), quick=True)
    assert res.status == "SKIPPED" and "data dimension" in res.measured


def test_lemma2_multi_detects_a_wrong_covariance(monkeypatch):
    # a posterior covariance 1% too large (a wrong Sigma_w) must fail the coefficient test
    import fastpath

    real = fastpath.posterior

    class Wrong:
        def __init__(self, post):
            self.mean, self.cov = post.mean, post.cov * 1.01

    monkeypatch.setattr(fastpath, "posterior", lambda *a, **k: Wrong(real(*a, **k)))
    res = registry()["Lemma 2"][1](net=DGN.random((3, 4, 3), seed=3, noise_var=0.05),
                                   quick=True, n_points=1)
    assert res.status == "FAIL" and "coefficients" in res.details["failures"]


def test_glo_latent_against_local_search():
    # the exact per-region QP minimum is no worse than a dense grid polished by Nelder-Mead
    from scipy import optimize

    from dgn_tools.checks.zero_noise_multi import glo_latent

    net = DGN.random((2, 5, 3), seed=4, noise_var=0.05)
    P = verified_dgn.partition(net)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = net.forward(rng.uniform(-1, 1, (1, 2)))[0] + 0.1 * rng.standard_normal(3)
        zq, val, _, _, _ = glo_latent(P, x)

        def f(z, x=x):
            return float(np.sum((x - net.forward(np.asarray(z)[None])[0]) ** 2))

        g = np.linspace(-4, 4, 81)
        grid = np.array([[a, b] for a in g for b in g])
        z0 = grid[np.argmin([f(z) for z in grid])]
        best = optimize.minimize(f, z0, method="Nelder-Mead",
                                 options={"xatol": 1e-12, "fatol": 1e-15}).fun
        # the exact minimum is below the local search's (which can only be >=), within
        # float rounding of the objective (~1e-15 relative)
        assert float(val) <= best + 1e-12 and abs(f([float(v) for v in zq]) - float(val)) < 1e-12


# --------------------------------------------------------------------------- mutations
def test_checks_fail_on_a_wrong_marginal(net1, monkeypatch):
    """A constant error of 1e-12 in log kappa is caught by Theorem 1 and Prop. 2."""
    orig = dist._log_const
    monkeypatch.setattr(forms_mod, "_log_const", lambda model: orig(model) + mpmath.mpf("1e-12"))
    res = registry()["Theorem 1"][1](net=net1, quick=True, normalisation=False)
    assert not res.passed and 5e-13 < res.residual < 2e-12
    res = registry()["Prop. 2"][1](net=net1, quick=True, n_points=0, n_latent=3)
    assert not res.passed


def test_checks_fail_on_a_wrong_posterior_mean(net1, monkeypatch):
    """mu_w shifted by 1e-9: the MAP (Prop. 3) and the limit (Lemma 2) checks fail."""
    orig = dist._mu_and_q

    def shifted(model, f, x):
        mu, q = orig(model, f, x)
        return [m + Fraction(1, 10 ** 9) for m in mu], q

    monkeypatch.setattr(forms_mod, "_mu_and_q", shifted)
    assert not registry()["Prop. 3"][1](net=net1, quick=True, n_points=1).passed
    assert not registry()["Lemma 2"][1](net=net1, quick=True, n_points=1).passed


# --------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("name", ["Theorem 1", "Posterior normalisation", "Prop. 1", "Prop. 2",
                                  "Lemma 2", "Prop. 3"])
def test_checks_thorough(name):
    res = registry()[name][1](quick=False)
    assert res.passed, str(res)


@pytest.mark.slow
def test_posterior_s2_verify_and_prune():
    net = DGN.random((2, 4, 4, 2), seed=22, noise_var=0.01)
    P = verified_dgn.partition(net)
    X = net.sample(2, seed=1)[0]
    a = verified_dgn.posterior(net, X, dps=20, partition=P, verify=True)
    b = verified_dgn.posterior(net, X, dps=20, partition=P, prune=False)
    assert dist.posterior_discrepancy(a, b) <= 1e-20
    for n, w in zip(*np.nonzero(a.pruned)):
        assert b.e0[n, w] <= a.e0_bound[n, w]
