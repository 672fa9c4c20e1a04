"""fastpath.distributions, Theorem 1: the marginal, the posterior and its moments, and the
posterior density.

Every quantity is checked against something computed independently of the fast path
(``tests/distributions_fast_oracles.py``):

* brute-force quadrature of p(x|z) p(z) over z with ``net.forward`` (not the region maps):
  scipy ``quad`` per region interval (S = 1) and nested ``quad`` over each region's slices
  (S = 2; the integrand is smooth inside a region, so quadrature converges to ~1e-13);
* a slow loop oracle per (point, region) with numpy.linalg on the D x D covariance
  Sigma_x + A Sigma_z A^T, and the Gaussian integrals of each region one at a time;
* mpmath evaluations of the same formulas at 40-80 digits (hard cases: D = 784, noise sd
  1e-3, |x| = 1e3).

The E-step (pruning, chunks, statistics) is tested in ``test_distributions_fast_estep.py``,
sampling in ``test_distributions_fast_sampling.py``, the MAP latent in
``test_distributions_fast_map.py``, the backend contract (``prune``, ``PosteriorLike``) in
``test_distributions_fast_api.py``. ``--runslow`` adds larger sweeps.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import logsumexp

import fastpath
from dgn_core.data import DataError
from fastpath import _estep
from fastpath import distributions as fd
from tests.distributions_fast_oracles import (
    digit_like,
    log_joint,
    loop_oracle,
    loop_posterior,
    net_lines,
    net_s1,
    net_s2,
    quad_moments_s1,
    quad_moments_s2,
    region_interval,
)
from verified_dgn import DGN

# None of the nets or points of these tests was used while writing the code (seeds picked
# up front).


# --------------------------------------------------------------------------- Theorem 1 vs quadrature
S1_CASES = [
    {"seed": 11, "act": "relu", "noise": 0.05},
    {"seed": 12, "act": "leaky_relu", "noise": 0.02},
    {"seed": 13, "act": "abs", "noise": np.array([0.03, 0.08])},
    {"seed": 14, "act": "relu", "noise": 0.1, "prior": np.array([[2.5]])},
]


@pytest.mark.parametrize("case", S1_CASES, ids=lambda c: f"{c['act']}-seed{c['seed']}")
def test_theorem1_s1_against_quadrature(case):
    net = net_s1(**case)
    P = fastpath.partition(net)
    Xs, _ = net.sample(3, seed=case["seed"] + 100)
    X = np.vstack([Xs, [[0.9, -1.3]]])                   # one point off the data
    post = fastpath.posterior(net, X, partition=P, prune=None)
    for i, x in enumerate(X):
        shift, I = quad_moments_s1(net, P, x)
        px = I[:, 0].sum()
        lp = shift + math.log(px)
        # quad's epsrel 1e-13 per region; 1e-10 leaves room for float rounding of the sums
        assert abs(post.log_px[i] - lp) <= 1e-10 * max(1.0, abs(lp)), (post.log_px[i], lp)
        e0 = I[:, 0] / px
        np.testing.assert_allclose(post.e0[i], e0, rtol=0, atol=1e-10)
        np.testing.assert_allclose(post.e1[i, :, 0], I[:, 1] / px, rtol=0, atol=1e-9)
        np.testing.assert_allclose(post.E2[i, :, 0, 0], I[:, 2] / px, rtol=0, atol=1e-9)
        mean = I[:, 1].sum() / px
        var = I[:, 2].sum() / px - mean ** 2
        assert abs(post.mean[i, 0] - mean) <= 1e-9
        assert abs(post.cov[i, 0, 0] - var) <= 1e-9 * max(1.0, var)
        assert abs(post.e0[i].sum() - 1.0) <= 1e-13


S2_CASES = [
    ("relu", lambda: net_s2(seed=7)),
    ("leaky-diag-prior", lambda: net_s2(seed=8, act="leaky_relu", noise=np.array([0.05, 0.12]),
                                        prior=np.array([[1.5, 0.3], [0.3, 0.7]]), widths=(2, 4, 2))),
    ("abs", lambda: net_s2(seed=9, act="abs", noise=0.15, widths=(2, 4, 2))),
    ("lines", net_lines),
]


@pytest.mark.parametrize("name,make", S2_CASES, ids=["relu", "leaky-diag-prior", "abs", "lines"])
def test_theorem1_s2_against_quadrature(name, make):
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(1, seed=321)
    post = fastpath.posterior(net, X, partition=P, prune=None)
    x = X[0]
    shift, I = quad_moments_s2(net, P, x)
    px = I[:, 0].sum()
    lp = shift + math.log(px)
    # nested quad at epsrel 1e-11 (outer) / 1e-12 (inner): 1e-10 relative on p(x)
    assert abs(post.log_px[0] - lp) <= 1e-10 * max(1.0, abs(lp)), (post.log_px[0], lp)
    np.testing.assert_allclose(post.e0[0], I[:, 0] / px, rtol=0, atol=1e-10)
    np.testing.assert_allclose(post.e1[0], I[:, 1:3] / px, rtol=0, atol=1e-9)
    E2q = I[:, [3, 4, 4, 5]].reshape(-1, 2, 2) / px
    np.testing.assert_allclose(post.E2[0], E2q, rtol=0, atol=1e-9)
    mean = I[:, 1:3].sum(axis=0) / px
    cov = E2q.sum(axis=0) - np.outer(mean, mean)
    np.testing.assert_allclose(post.mean[0], mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(post.cov[0], cov, rtol=0, atol=1e-9)


# --------------------------------------------------------------------------- int p(x) dx = 1
def _gl_panels(lo: float, hi: float, panels: int, order: int = 20):
    t, w = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(lo, hi, panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    return ((a + b) / 2 + (b - a) / 2 * t).ravel(), ((b - a) / 2 * w).ravel()


@pytest.mark.parametrize("make", [lambda: net_s1(seed=21, noise=0.15),
                                  lambda: net_s2(seed=22, noise=0.2, widths=(2, 3, 2))],
                         ids=["S1", "S2"])
def test_marginal_integrates_to_one(make):
    net = make()
    P = fastpath.partition(net)
    # the data lie within g(|z| <= 7) + 7 noise sd; composite Gauss-Legendre on a box
    Zb = np.random.default_rng(0).standard_normal((20000, net.latent_dim)) * 2.5
    G = net.forward(Zb)
    sd = math.sqrt(float(np.max(net.noise_var_vector)))
    lo = G.min(axis=0) - 8 * sd
    hi = G.max(axis=0) + 8 * sd
    n_pan = [math.ceil((h - l) / (2.5 * sd)) for l, h in zip(lo, hi)]
    x1, w1 = _gl_panels(lo[0], hi[0], n_pan[0])
    x2, w2 = _gl_panels(lo[1], hi[1], n_pan[1])
    Xg = np.array(np.meshgrid(x1, x2, indexing="ij")).reshape(2, -1).T
    W = np.outer(w1, w2).ravel()
    total = float(np.sum(W * np.exp(fastpath.log_marginal(net, Xg, partition=P))))
    # |total - 1| is ~3e-16 for both nets; 1e-12 covers the box's missing tails (beyond 8
    # noise sd of g(|z| <= ~10)) and the rule's error
    assert abs(total - 1.0) <= 1e-12, total - 1.0


# --------------------------------------------------------------------------- loop oracle
@pytest.mark.parametrize("make", [lambda: net_s1(seed=31, act="leaky_relu"),
                                  lambda: net_s2(seed=32, prior=np.array([[0.8, -0.2], [-0.2, 1.1]]),
                                                 noise=np.array([0.07, 0.03])),
                                  lambda: DGN.random((3, 5, 4), seed=33, noise_var=0.05),
                                  pytest.param(lambda: DGN.random((4, 4, 3), seed=34, noise_var=0.05,
                                                                  activation="leaky_relu"),
                                               marks=pytest.mark.slow)],
                         ids=["S1", "S2", "S3", "S4"])
def test_vectorised_kernels_against_loop_oracle(make):
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(3, seed=41)
    X = np.vstack([X, X[0] + 3.0])
    post = fastpath.posterior(net, X, partition=P, prune=None)
    model = fd._model(net, P)
    forms = _estep._quadratic_forms(model, X)
    _estep._refine(model, forms, _estep._needs_refinement(model, forms))
    S = net.latent_dim
    for i, x in enumerate(X):
        lp, e0, e1, E2, terms = loop_posterior(net, P, x)
        log_kappa = np.array([t[0] for t in terms])
        np.testing.assert_allclose(model.const - 0.5 * forms.Q[i], log_kappa, rtol=1e-12, atol=1e-11)
        np.testing.assert_allclose(model.mu_z(forms.mu_u[i]), np.array([t[2] for t in terms]),
                                   rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(model.cov_z, np.array([t[3] for t in terms]), rtol=1e-11,
                                   atol=1e-13)
        assert abs(post.log_px[i] - lp) <= 1e-12 * max(1, abs(lp))
        np.testing.assert_allclose(post.e0[i], e0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(post.e1[i], e1, rtol=0, atol=1e-11)
        np.testing.assert_allclose(post.E2[i], E2, rtol=0, atol=1e-11)
        mean = e1.sum(axis=0)
        np.testing.assert_allclose(post.mean[i], mean, rtol=0, atol=1e-11)
        np.testing.assert_allclose(post.cov[i], E2.sum(axis=0) - np.outer(mean, mean),
                                   rtol=0, atol=1e-10)
        # region conditional moments (E[z | x, z in w])
        live = e0 > 1e-300
        np.testing.assert_allclose(post.region_mean[i][live], np.array([t[4] for t in terms])[live],
                                   rtol=1e-10, atol=1e-10)
        assert post.region_cov.shape == (len(X), len(P), S, S)

# --------------------------------------------------------------------------- hard cases
def _mp_posterior_s1(net: DGN, P, x: np.ndarray, dps: int = 80):
    """(log p(x), E[z|x], Var[z|x]) for S = 1 entirely in mpmath: Woodbury Q, determinant
    lemma, closed-form truncated-normal moments per interval (80 digits absorb the
    cancellation of tail variances)."""
    with mpmath.workdps(dps):
        nv = [mpmath.mpf(float(v)) for v in net.noise_var_vector]
        sz = mpmath.mpf(float(net.prior_cov[0, 0]))
        D = net.data_dim
        lw, m1, m2 = [], [], []
        for r in P:
            A = [mpmath.mpf(float(a)) for a in np.asarray(r.A)[:, 0]]
            b = [mpmath.mpf(float(v)) for v in np.asarray(r.b)]
            res = [mpmath.mpf(float(xi)) - bi for xi, bi in zip(x, b)]
            ata = mpmath.fsum(a * a / v for a, v in zip(A, nv))
            atr = mpmath.fsum(a * q / v for a, q, v in zip(A, res, nv))
            prec = 1 / sz + ata                                    # Sigma_w^-1
            Q = mpmath.fsum(q * q / v for q, v in zip(res, nv)) - atr * atr / prec
            logdet = mpmath.fsum(mpmath.log(v) for v in nv) + mpmath.log(1 + sz * ata)
            lk = -(D * mpmath.log(2 * mpmath.pi) + logdet + Q) / 2
            mu, sd = atr / prec, mpmath.sqrt(1 / prec)
            lo, hi = region_interval(r, mpmath.inf)
            a_, b_ = (mpmath.mpf(lo) - mu) / sd, (mpmath.mpf(hi) - mu) / sd
            Z = mpmath.ncdf(-a_) - mpmath.ncdf(-b_) if a_ > 0 else mpmath.ncdf(b_) - mpmath.ncdf(a_)
            pa = mpmath.npdf(a_) if mpmath.isfinite(a_) else 0
            pb = mpmath.npdf(b_) if mpmath.isfinite(b_) else 0
            apa = a_ * pa if mpmath.isfinite(a_) else 0
            bpb = b_ * pb if mpmath.isfinite(b_) else 0
            et, et2 = (pa - pb) / Z, 1 + (apa - bpb) / Z
            lw.append(lk + mpmath.log(Z))
            m1.append(mu + sd * et)
            m2.append(mu * mu + 2 * mu * sd * et + sd * sd * et2)
        top = max(lw)
        ws = [mpmath.exp(t - top) for t in lw]
        tot = mpmath.fsum(ws)
        mean = mpmath.fsum(w * m for w, m in zip(ws, m1)) / tot
        var = mpmath.fsum(w * (m - mean ** 2) for w, m in zip(ws, m2)) / tot
        return top + mpmath.log(tot), mean, var


HARD_S1 = [
    ("D2-sd1e-3-near", lambda: net_s1(seed=91, noise=1e-6), "sample"),
    ("D2-far1e3", lambda: net_s1(seed=92, noise=0.05), "far"),
    ("D2-sd1e-3-far1e3", lambda: net_s1(seed=93, noise=1e-6), "far"),
    ("D784-sd1e-3-near", lambda: DGN.random((1, 8, 784), seed=94, noise_var=1e-6), "sample"),
    ("D784-far1e3", lambda: DGN.random((1, 8, 784), seed=95, noise_var=0.01), "far"),
    ("D784-digits", lambda: DGN.random((1, 8, 784), seed=96, noise_var=0.01), "digits"),
]


@pytest.mark.parametrize("name,make,where", HARD_S1, ids=[c[0] for c in HARD_S1])
def test_hard_cases_against_mpmath(name, make, where):
    net = make()
    P = fastpath.partition(net)
    D = net.data_dim
    rng = np.random.default_rng(97)
    if where == "sample":
        X, _ = net.sample(3, seed=98)
    elif where == "far":
        U = rng.normal(size=(3, D))
        X = 1e3 * U / np.linalg.norm(U, axis=1, keepdims=True)
        X[0] = net.forward(np.array([[700.0]]))[0]             # far, on the image of g
        X[0] *= 1e3 / np.linalg.norm(X[0])
    else:
        X = digit_like(3)
    lp = fastpath.log_marginal(net, X, partition=P)
    assert np.all(np.isfinite(lp))
    post = fastpath.posterior(net, X, partition=P)
    for i, x in enumerate(X):
        ref, mean, var = _mp_posterior_s1(net, P, x)
        # the stated target: 1e-10 relative
        assert abs(float(lp[i] - ref)) <= 1e-10 * abs(float(ref)), (name, i, float(ref), lp[i])
        assert post.log_px[i] == lp[i] or abs(post.log_px[i] - lp[i]) <= 1e-13 * abs(lp[i])
        assert abs(post.e0[i].sum() - 1) <= 1e-13
        if where != "far":
            assert abs(post.mean[i, 0] - float(mean)) <= 1e-9 * (1 + abs(float(mean)))
            assert abs(post.cov[i, 0, 0] - float(var)) <= 1e-9 * float(var)
        else:
            # far from the data the posterior sits ~2e3 sd outside the regions' Gaussians:
            # the integrals' truncated first moment carries the rounding of log m0 ~ -2e6
            # (1e-9 relative) times the tail depth: about 1e-6 of the region's width
            assert abs(post.mean[i, 0] - float(mean)) <= 1e-6 * (1 + abs(float(mean)))


def test_posterior_variance_deep_tail():
    """Far from the data (|x| = 1e3) the posterior variance ~3e-7 is ~1e-13 of the squared
    distance of the regions' Gaussians: it must come from the kernels' truncated covariance
    (Cov[z|w] directly), not from second moments about the Gaussian's mean (which gave
    negative variances here). It agrees with mpmath to ~2e-9 relative; tolerance 1e-7: the
    weights e0 carry the rounding of log kappa ~ -1e7 (~1e-9 relative)."""
    net = net_s1(seed=92, noise=0.05)
    P = fastpath.partition(net)
    U = np.random.default_rng(97).normal(size=(3, 2))
    X = 1e3 * U / np.linalg.norm(U, axis=1, keepdims=True)
    post = fastpath.posterior(net, X[1:], partition=P)
    for i, x in enumerate(X[1:]):
        _, _, var = _mp_posterior_s1(net, P, x)
        assert abs(post.cov[i, 0, 0] - float(var)) <= 1e-7 * float(var)


def test_quadratic_form_refinement_and_bound():
    """The cheap Q's rounding bound holds, and refined Q matches the mpmath value."""
    for net in (net_s1(seed=101, noise=1e-6), DGN.random((2, 6, 784), seed=102, noise_var=1e-6)):
        P = fastpath.partition(net)
        X, _ = net.sample(3, seed=103)
        X = np.vstack([X, X[0] + 500.0])
        model = fd._model(net, P)
        cheap = _estep._quadratic_forms(model, X)
        forms = _estep._quadratic_forms(model, X)
        flag = _estep._needs_refinement(model, forms)
        assert flag.any()
        _estep._refine(model, forms, np.ones_like(flag))
        with mpmath.workdps(40):
            for w in range(0, model.R, max(1, model.R // 4)):
                Bw = [[mpmath.mpf(float(v)) for v in row] for row in model.B[w]]
                S = model.S
                G = mpmath.matrix([[(1 if i == j else 0) + mpmath.fsum(r[i] * r[j] for r in Bw)
                                    for j in range(S)] for i in range(S)])
                for n in range(len(X)):
                    rt = [mpmath.mpf(float(a)) / mpmath.sqrt(mpmath.mpf(float(v))) - mpmath.mpf(float(c))
                          for a, v, c in zip(X[n], net.noise_var_vector, model.bt[w])]
                    y = mpmath.matrix([mpmath.fsum(r[i] * t for r, t in zip(Bw, rt)) for i in range(S)])
                    Q = mpmath.fsum(t * t for t in rt) - (y.T * mpmath.lu_solve(G, y))[0]
                    scale = max(1.0, float(Q), 2 * abs(model.const[w]))
                    assert abs(float(Q) - forms.Q[n, w]) <= 1e-13 * scale
                    # the cheap form's error stays within its bound
                    assert abs(float(Q) - cheap.Q[n, w]) <= cheap.bound[n, w] + 1e-15 * scale


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["subset", "all-regions"])
def test_d784_s2_against_loop_oracle(full):
    """D = 784 digit-like data: per-region log(kappa Phi) and moments against the D x D loop
    (default: the 3 most probable and 2 other regions; --runslow: all regions and log p)."""
    net = DGN.random((2, 6, 784), seed=111, noise_var=0.01)
    P = fastpath.partition(net)
    X = digit_like(2)
    post = fastpath.posterior(net, X, partition=P, prune=None)
    for i, x in enumerate(X):
        if full:
            sub = list(range(len(P)))
        else:
            order = np.argsort(-post.log_e0[i])
            sub = sorted(set(order[:3].tolist()) | {int(order[len(P) // 2]), int(order[-1])})
        terms = loop_oracle(net, [P[w] for w in sub], x)
        lw = np.array([t[0] + t[1] for t in terms])
        fast_lw = post.log_e0[i, sub] + post.log_px[i]
        np.testing.assert_allclose(fast_lw, lw, rtol=1e-11, atol=1e-9)
        for k, w in enumerate(sub):
            if post.e0[i, w] > 1e-12:
                np.testing.assert_allclose(post.region_mean[i, w], terms[k][4], rtol=1e-9, atol=1e-10)
                np.testing.assert_allclose(post.E2[i, w] / post.e0[i, w], terms[k][5], rtol=1e-9,
                                           atol=1e-10)
        if full:
            assert abs(post.log_px[i] - logsumexp(lw)) <= 1e-10 * abs(post.log_px[i])


# --------------------------------------------------------------------------- density
@pytest.mark.parametrize("make", [lambda: net_s1(seed=121, prior=np.array([[0.6]])),
                                  lambda: net_s2(seed=122, prior=np.array([[1.3, 0.4], [0.4, 0.8]]))],
                         ids=["S1", "S2"])
def test_posterior_density_is_bayes_rule(make):
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(2, seed=123)
    S = net.latent_dim
    Z = np.random.default_rng(124).normal(size=(300, S)) * 2.0
    Z = np.vstack([Z, [[5.0] * S], [[-30.0] * S]])
    for x in X:
        lp = fastpath.log_marginal(net, x, partition=P)[0]
        got = fastpath.log_posterior_density(net, x, Z, partition=P)
        ref = log_joint(net, x, Z) - lp
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(fastpath.posterior_density(net, x, Z[:5], partition=P),
                                   np.exp(ref[:5]), rtol=1e-10)
    if S == 1:
        pts = sorted({region_interval(r, 15)[k] for r in P for k in (0, 1)} - {-15.0, 15.0})
        f = lambda z: float(fastpath.posterior_density(net, X[0], [[z]], partition=P)[0])
        total = integrate.quad(f, -15, 15, points=pts, limit=400, epsrel=1e-12)[0]
        assert abs(total - 1) <= 1e-10




# --------------------------------------------------------------------------- validation
def test_input_validation():
    net = net_s2(seed=221)
    P = fastpath.partition(net)
    X, _ = net.sample(3, seed=222)
    with pytest.raises(DataError, match="columns"):
        fastpath.log_marginal(net, np.zeros((3, 5)), partition=P)
    with pytest.raises(DataError, match="NaN"):
        fastpath.posterior(net, np.array([[0.0, np.nan]]), partition=P)
    with pytest.raises(DataError, match="infinite"):
        fastpath.log_marginal(net, np.array([[0.0, 1.0], [np.inf, 0.0]]), partition=P)
    with pytest.raises(DataError, match="empty"):
        fastpath.log_marginal(net, np.zeros((0, 2)), partition=P)
    for bad, err in ((0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)):
        with pytest.raises(err, match="chunk_size"):
            fastpath.log_marginal(net, X, partition=P, chunk_size=bad)
    with pytest.raises(ValueError, match="prune"):
        fastpath.posterior(net, X, partition=P, prune=5)
    with pytest.raises(TypeError, match="DGN"):
        fastpath.log_marginal("net", X)
    with pytest.raises(TypeError, match="Partition"):
        fastpath.log_marginal(net, X, partition=[1, 2])
    with pytest.raises(DataError, match="one data point"):
        fastpath.sample_posterior(net, X, 3, partition=P)
    with pytest.raises(ValueError, match=r"n must be an integer >= 0"):
        fastpath.sample_posterior(net, X[0], -1, partition=P)
    with pytest.raises(ValueError, match="shape"):
        fastpath.posterior_density(net, X[0], np.zeros((4, 3)), partition=P)
    with pytest.raises(ValueError, match="NaN"):
        fastpath.posterior_density(net, X[0], np.array([[np.nan, 0.0]]), partition=P)
    with pytest.raises(ValueError, match="prior"):
        fastpath.map_latent(net, X, partition=P, prior="uniform")
    assert fastpath.sample_posterior(net, X[0], 0, partition=P).shape == (0, 2)
    # a 1-D x is one point
    assert fastpath.log_marginal(net, X[0], partition=P).shape == (1,)


def test_linear_net_is_probabilistic_pca():
    """No hidden layer: one region (R^S), p(x) = N(x; v, Sigma_x + W Sigma_z W^T) and the
    posterior is the Gaussian of probabilistic PCA (closed forms, scipy)."""
    rng = np.random.default_rng(231)
    W, v = rng.normal(size=(3, 2)), rng.normal(size=3)
    Sz = np.array([[1.4, -0.3], [-0.3, 0.6]])
    nv = np.array([0.05, 0.2, 0.1])
    net = DGN([W], [v], noise_var=nv, prior_cov=Sz)
    X = rng.normal(size=(5, 3)) * 2
    post = fastpath.posterior(net, X)
    ref = stats.multivariate_normal(v, np.diag(nv) + W @ Sz @ W.T).logpdf(X)
    np.testing.assert_allclose(post.log_px, ref, rtol=1e-13)
    Sw = np.linalg.inv(np.linalg.inv(Sz) + W.T @ np.diag(1 / nv) @ W)
    mu = (X - v) @ np.diag(1 / nv) @ W @ Sw
    np.testing.assert_allclose(post.mean, mu, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(post.cov, np.broadcast_to(Sw, (5, 2, 2)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(post.e0, 1.0)
    np.testing.assert_allclose(fastpath.map_latent(net, X), mu, rtol=1e-10, atol=1e-12)

