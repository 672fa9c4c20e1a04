"""fastpath.kl_to_posterior: exact KL(q || p(z|x)) for Gaussian q.

References, none of which shares the region-wise closed form under test:
- Monte Carlo: z ~ q, KL = E_q[log q(z) - log p(z|x)] with the posterior density of
  Theorem 1 (fastpath.posterior_density); tolerance 5 standard errors of the MC mean.
- 1-D quadrature (S = 1), independent of fastpath's distributions: log p(x), E_q[log p(x|z)],
  E_q[log p(z)], E_q[log q] all by Gauss-Legendre on subintervals split at the kinks of g,
  using only net.forward.
- A slow loop: per point and region, fastpath.truncated_normal_moments and the quadratic
  expanded in raw moments (E[z], E[z z^T]) instead of the vectorised central residual form.
- Linear nets (no hidden layer): the posterior is Gaussian, the KL of q = the posterior is 0
  and the KL of any Gaussian q has the Gaussian closed form.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import fastpath
from dgn_core.data import DataError
from dgn_core.model import DGN
from dgn_core.regions import Partition
from fastpath.distributions import log_posterior_density
from fastpath.integrals import truncated_normal_moments

# --------------------------------------------------------------------------- helpers
_GL_T, _GL_W = np.polynomial.legendre.leggauss(24)


def _gl_nodes(breaks):
    """Gauss-Legendre nodes and weights on consecutive intervals of sorted ``breaks``."""
    a, b = breaks[:-1, None], breaks[1:, None]
    z = 0.5 * (b - a) * _GL_T + 0.5 * (a + b)
    w = 0.5 * (b - a) * _GL_W
    return z.ravel(), w.ravel()


def _kinks_1d(net, lo, hi):
    """Points in [lo, hi] where a hidden pre-activation of a 1-D-latent net changes sign.

    Found on a dense grid and refined by (vectorised) bisection with net.pre_activations only.
    """
    grid = np.linspace(lo, hi, 100_001)
    H = np.concatenate(net.pre_activations(grid[:, None]), axis=1)
    sgn = H >= 0
    idx, unit = np.nonzero(sgn[1:] != sgn[:-1])
    a, b, s0 = grid[idx], grid[idx + 1], sgn[idx, unit]
    for _ in range(60):
        c = 0.5 * (a + b)
        hc = np.concatenate(net.pre_activations(c[:, None]), axis=1)[np.arange(c.size), unit]
        left = (hc >= 0) == s0
        a, b = np.where(left, c, a), np.where(left, b, c)
    return 0.5 * (a + b)


def _log_lik_1d(net, x, z):
    """log N(x; g(z), Sigma_x) for z (M,), straight from net.forward; shape (M,)."""
    nv = net.noise_var_vector
    r = (x - net.forward(z[:, None])) ** 2 / nv
    return -0.5 * (np.sum(r, axis=1) + np.sum(np.log(2 * np.pi * nv)))


def _quadrature_kl_1d(net, x, m, v):
    """KL(N(m, v) || p(z|x)) for S = 1 by brute-force quadrature (independent of fastpath)."""
    pv = float(net.prior_cov[0, 0])
    kinks = _kinks_1d(net, -60.0, 60.0)
    # log p(x) = log int N(x; g(z)) N(z; 0, pv) dz on [-40 sd, 40 sd], fine panels
    lim = 40.0 * np.sqrt(pv)
    br = np.unique(np.concatenate([np.linspace(-lim, lim, 4_001), kinks[np.abs(kinks) < lim]]))
    z, w = _gl_nodes(br)
    log_prior = -0.5 * (z * z / pv + np.log(2 * np.pi * pv))
    log_px = logsumexp(_log_lik_1d(net, x, z) + log_prior, b=w)
    # expectations under q on [m - 14 sd, m + 14 sd] (tails below e^-98)
    sd = np.sqrt(v)
    br = np.linspace(m - 14 * sd, m + 14 * sd, 1_001)
    br = np.unique(np.concatenate([br, kinks[(kinks > br[0]) & (kinks < br[-1])]]))
    z, w = _gl_nodes(br)
    log_q = -0.5 * ((z - m) ** 2 / v + np.log(2 * np.pi * v))
    log_prior = -0.5 * (z * z / pv + np.log(2 * np.pi * pv))
    qw = w * np.exp(log_q)
    integrand = log_q - _log_lik_1d(net, x, z) - log_prior
    return float(np.sum(qw * integrand) + log_px), float(log_px)


def _loop_kl(net, X, q_mean, q_cov):
    """Slow reference: every (point, region) pair by truncated_normal_moments, raw moments."""
    P = fastpath.partition(net)
    log_px = fastpath.log_marginal(net, X, partition=P)
    nv = net.noise_var_vector
    Sinv = np.diag(1.0 / nv)
    Pz = net.prior_cov
    Pzinv = np.linalg.inv(Pz)
    S, D = net.latent_dim, net.data_dim
    ell = np.full(len(X), -0.5 * (D * np.log(2 * np.pi) + np.sum(np.log(nv))))
    for r in P:
        A, b = np.asarray(r.A), np.asarray(r.b)
        lm0, E1, E2 = truncated_normal_moments(r.C, r.d, q_mean, q_cov)   # all points
        for n in range(X.shape[0]):
            m0 = np.exp(lm0[n])
            if m0 == 0:
                continue
            # E[(x - b - A z)^T Sinv (x - b - A z) | w] from E[z], E[z z^T]
            y = X[n] - b
            quad = y @ Sinv @ y - 2 * y @ Sinv @ A @ E1[n] + np.trace(A.T @ Sinv @ A @ E2[n])
            ell[n] -= 0.5 * m0 * quad
    out = []
    for n in range(X.shape[0]):
        m, V = q_mean[n], q_cov[n]
        klp = 0.5 * (np.trace(Pzinv @ V) + m @ Pzinv @ m - S
                     + np.log(np.linalg.det(Pz)) - np.log(np.linalg.det(V)))
        out.append(klp - ell[n] + log_px[n])
    return np.array(out)


def _net(widths, activation="relu", seed=0, noise_var=0.01, **kw):
    return DGN.random(widths, activation=activation, seed=seed, noise_var=noise_var, **kw)


def _perturbed_posterior_q(net, X, seed, shift=0.2, scale=1.5):
    post = fastpath.posterior(net, X)
    rng = np.random.default_rng(seed)
    S = net.latent_dim
    m = post.mean + shift * rng.normal(size=post.mean.shape) * np.sqrt(
        np.diagonal(post.cov, axis1=1, axis2=2))
    R = rng.normal(size=(len(X), S, S)) * 0.3 + np.eye(S)
    V = scale * (R @ post.cov @ np.swapaxes(R, 1, 2)) + 1e-4 * np.eye(S)
    return m, 0.5 * (V + np.swapaxes(V, 1, 2))


# --------------------------------------------------------------------------- quadrature
QUAD_NETS = [
    ((1, 16, 16, 2), "relu", {}),
    ((1, 8, 8, 3), "leaky_relu", {"slope": 0.2, "noise_var": [0.02, 0.05, 0.01],
                                  "prior_cov": [[2.0]]}),
    ((1, 6, 5, 2), "abs", {"noise_var": 0.05}),
]


@pytest.mark.parametrize("widths, act, kw", QUAD_NETS)
def test_kl_matches_quadrature_1d(widths, act, kw):
    kw = dict(kw)
    net = _net(widths, act, seed=2, noise_var=kw.pop("noise_var", 0.01), **kw)
    X = net.sample(3, seed=5)[0]
    X[2] += 0.5                                   # one point off the data manifold
    m, V = _perturbed_posterior_q(net, X, seed=1)
    m[1] += 2.0                                   # one q far from the posterior: large KL
    terms = fastpath.kl_to_posterior(net, X, m, V, return_terms=True)
    for n in range(len(X)):
        ref, ref_lpx = _quadrature_kl_1d(net, X[n], m[n, 0], V[n, 0, 0])
        # quadrature: 24-point Gauss-Legendre on panels of <= 0.02 prior sd and 0.028 q sd,
        # split at the kinks (bisected to 1e-18): error at rounding level. Measured
        # |KL - quadrature| <= 3e-15 on these cases; the tolerance leaves 1000x for
        # platform-dependent rounding (BLAS summation order) of terms of size ~10
        assert abs(terms.log_px[n] - ref_lpx) <= 1e-11 + 1e-12 * abs(ref_lpx)
        assert abs(terms.kl[n] - ref) <= 1e-11 + 1e-12 * abs(ref), (n, terms.kl[n], ref)
    np.testing.assert_allclose(terms.elbo, terms.log_px - terms.kl, rtol=1e-13, atol=1e-12)
    assert np.all(terms.kl > 0)


# --------------------------------------------------------------------------- Monte Carlo
MC_NETS = [
    ((2, 8, 8, 2), "relu", {}),
    ((2, 6, 6, 3), "leaky_relu", {"slope": 0.1, "noise_var": [0.02, 0.05, 0.03],
                                  "prior_cov": [[1.5, 0.3], [0.3, 0.8]]}),
    ((3, 6, 2), "abs", {"noise_var": 0.05}),
]


@pytest.mark.parametrize("widths, act, kw", MC_NETS)
def test_kl_matches_monte_carlo(widths, act, kw):
    kw = dict(kw)
    net = _net(widths, act, seed=4, noise_var=kw.pop("noise_var", 0.01), **kw)
    P = fastpath.partition(net)
    X = net.sample(3, seed=6)[0]
    m, V = _perturbed_posterior_q(net, X, seed=2)
    kl = fastpath.kl_to_posterior(net, X, m, V, partition=P)
    rng = np.random.default_rng(7)
    M = 40_000
    for n in range(len(X)):
        Z = rng.multivariate_normal(m[n], V[n], size=M)
        d = multivariate_normal(m[n], V[n]).logpdf(Z) - log_posterior_density(
            net, X[n], Z, partition=P)
        se = d.std(ddof=1) / np.sqrt(M)
        # 5 standard errors: a correct implementation fails with probability ~6e-7 per point
        assert abs(kl[n] - d.mean()) <= 5 * se + 1e-9, (n, kl[n], d.mean(), se)
        assert kl[n] > 0


# --------------------------------------------------------------------------- loop reference
@pytest.mark.parametrize("widths, act, kw", QUAD_NETS[:2] + MC_NETS[:2])
def test_kl_matches_loop(widths, act, kw):
    kw = dict(kw)
    net = _net(widths, act, seed=1, noise_var=kw.pop("noise_var", 0.01), **kw)
    X = net.sample(4, seed=3)[0]
    m, V = _perturbed_posterior_q(net, X, seed=3, shift=1.0, scale=0.7)
    ref = _loop_kl(net, X, m, V)
    # measured agreement 1e-14 absolute; the raw-moment expansion of the reference can lose
    # ~eps |x - b|^2 / noise_var (~1e-13 here) to cancellation: 1e-11
    np.testing.assert_allclose(fastpath.kl_to_posterior(net, X, m, V), ref,
                               rtol=1e-11, atol=1e-11)
    # and without pruning, with tiny chunks
    np.testing.assert_allclose(
        fastpath.kl_to_posterior(net, X, m, V, prune=None, chunk_size=1), ref,
        rtol=1e-11, atol=1e-11)


# --------------------------------------------------------------------------- Gaussian limit
@pytest.mark.parametrize("S, D, prior_cov, noise_var", [
    (1, 2, None, 0.05),
    (2, 3, [[1.5, 0.4], [0.4, 0.7]], [0.1, 0.02, 0.05]),
    (3, 5, None, 0.01),
])
def test_linear_net_posterior_q_gives_zero(S, D, prior_cov, noise_var):
    """No hidden layer: p(z|x) is Gaussian, so q = the posterior has KL 0 to rounding."""
    rng = np.random.default_rng(S)
    net = DGN([rng.normal(size=(D, S))], [rng.normal(size=D)], noise_var=noise_var,
              prior_cov=prior_cov)
    X = net.sample(6, seed=1)[0]
    # the Gaussian posterior in closed form (independent of fastpath)
    A, b = net.weights[0], net.biases[0]
    Sx_inv = np.diag(1.0 / net.noise_var_vector)
    Pz_inv = np.linalg.inv(net.prior_cov)
    cov = np.linalg.inv(Pz_inv + A.T @ Sx_inv @ A)
    mean = (X - b) @ Sx_inv @ A @ cov
    covs = np.broadcast_to(cov, (len(X), S, S))
    kl = fastpath.kl_to_posterior(net, X, mean, covs)
    # KL = 0 up to rounding of log p(x) and of E_q log p(x|z) (terms of size ~10)
    np.testing.assert_allclose(kl, 0.0, atol=1e-12)
    # any other Gaussian q: KL between two Gaussians in closed form
    m2 = mean + rng.normal(size=mean.shape)
    V2 = np.broadcast_to(np.diag(rng.uniform(0.1, 2.0, size=S)), (len(X), S, S))
    ref = [0.5 * (np.trace(np.linalg.solve(cov, V2[n])) + (m2[n] - mean[n]) @ np.linalg.solve(
        cov, m2[n] - mean[n]) - S + np.linalg.slogdet(cov)[1] - np.linalg.slogdet(V2[n])[1])
        for n in range(len(X))]
    np.testing.assert_allclose(fastpath.kl_to_posterior(net, X, m2, V2), ref,
                               rtol=1e-11, atol=1e-11)
    # diagonal form of q_cov equals the full form
    np.testing.assert_allclose(
        fastpath.kl_to_posterior(net, X, m2, np.diagonal(V2, axis1=1, axis2=2)),
        fastpath.kl_to_posterior(net, X, m2, V2), rtol=0, atol=1e-14)


def test_one_dominant_region_near_zero():
    """Tiny noise, x = g(z0) with z0 deep inside a region: the posterior is the region's
    Gaussian N(mu_w, Sigma_w) up to a truncated mass far below eps, so KL(that Gaussian ||
    posterior) is 0 to rounding."""
    net = _net((2, 6, 6, 3), "relu", seed=0, noise_var=1e-6)
    P = fastpath.partition(net)
    # the region whose interior point is farthest from its facets
    dist = [np.min((np.asarray(r.d) - np.asarray(r.C) @ r.interior_point)
                   / np.linalg.norm(np.asarray(r.C), axis=1)) for r in P]
    w = int(np.argmax(dist))
    assert dist[w] > 5.0                              # >= 5000 posterior sds (sd ~ 1e-3)
    x = net.forward(P[w].interior_point[None])
    post = fastpath.posterior(net, x, partition=P)
    assert post.e0[0, w] == 1.0
    kl = fastpath.kl_to_posterior(net, x, post.region_mean[:, w], post.region_cov[:, w],
                                  partition=P)
    # rounding of log p(x) and E_q log p(x|z), terms of size ~20 at noise 1e-6: measured 1e-13
    assert abs(kl[0]) <= 1e-10


# --------------------------------------------------------------------------- properties
def test_kl_nonnegative_many_random_q():
    net = _net((2, 8, 8, 2), "leaky_relu", seed=3, noise_var=0.02, slope=0.1)
    P = fastpath.partition(net)
    rng = np.random.default_rng(0)
    X = net.sample(40, seed=2)[0] + 0.1 * rng.normal(size=(40, 2))
    m = rng.normal(size=(40, 2)) * 2
    V = np.exp(rng.normal(size=(40, 2)) * 2)                 # variances from e^-6 to e^6
    kl = fastpath.kl_to_posterior(net, X, m, V, partition=P)
    assert np.all(np.isfinite(kl)) and np.all(kl > 0)


def test_partition_of_same_hidden_layers():
    net = _net((2, 6, 6, 2), "relu", seed=5)
    other = net.replace(weights=list(net.weights[:-1]) + [2 * net.weights[-1]],
                        noise_var=0.03)
    X = other.sample(5, seed=1)[0]
    m, V = _perturbed_posterior_q(other, X, seed=0)
    a = fastpath.kl_to_posterior(other, X, m, V, partition=fastpath.partition(net))
    b = fastpath.kl_to_posterior(other, X, m, V)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


# --------------------------------------------------------------------------- validation
def test_input_validation():
    net = _net((2, 4, 2), "relu")
    X = np.zeros((3, 2))
    m = np.zeros((3, 2))
    V = np.ones((3, 2))
    with pytest.raises(TypeError, match="DGN"):
        fastpath.kl_to_posterior("net", X, m, V)
    with pytest.raises(DataError, match="columns"):
        fastpath.kl_to_posterior(net, np.zeros((3, 3)), m, V)
    with pytest.raises(ValueError, match=r"q_mean must have shape \(3, 2\)"):
        fastpath.kl_to_posterior(net, X, np.zeros((2, 2)), V)
    with pytest.raises(ValueError, match="q_mean contains NaN"):
        fastpath.kl_to_posterior(net, X, np.full((3, 2), np.nan), V)
    with pytest.raises(ValueError, match="q_cov contains infinite"):
        fastpath.kl_to_posterior(net, X, m, np.full((3, 2), np.inf))
    with pytest.raises(ValueError, match="not positive"):
        fastpath.kl_to_posterior(net, X, m, np.array([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]]))
    bad = np.broadcast_to(np.eye(2), (3, 2, 2)).copy()
    bad[1] = [[1.0, 2.0], [2.0, 1.0]]
    with pytest.raises(ValueError, match=r"q_cov\[1\] is not positive definite"):
        fastpath.kl_to_posterior(net, X, m, bad)
    bad[1] = [[1.0, 0.5], [0.4, 1.0]]
    with pytest.raises(ValueError, match=r"q_cov\[1\] is not symmetric"):
        fastpath.kl_to_posterior(net, X, m, bad)
    bad[1] = [[1.0, 0.0], [0.0, 1e-14]]
    with pytest.raises(ValueError, match="numerically singular"):
        fastpath.kl_to_posterior(net, X, m, bad)
    with pytest.raises(ValueError, match="q_cov must have shape"):
        fastpath.kl_to_posterior(net, X, m, np.ones((3, 2, 3)))
    with pytest.raises(ValueError, match="different network"):
        fastpath.kl_to_posterior(net, X, m, V, partition=fastpath.partition(_net((2, 4, 2),
                                                                                  seed=9)))
    with pytest.raises(ValueError, match="prune"):
        fastpath.kl_to_posterior(net, X, m, V, prune=5)
    with pytest.raises(ValueError, match="chunk_size"):
        fastpath.kl_to_posterior(net, X, m, V, chunk_size=0)


def test_incomplete_partition_is_an_error():
    net = _net((2, 6, 6, 2), "relu", seed=1)
    P = fastpath.partition(net)
    X = net.sample(4, seed=0)[0]
    m, V = _perturbed_posterior_q(net, X, seed=0, scale=30.0)   # wide q: mass everywhere
    part = Partition(net, list(P)[: len(P) // 2], exact=False)
    with pytest.raises(ValueError, match="tile"):
        fastpath.kl_to_posterior(net, X, m, V, partition=part, prune=None)


def test_one_dimensional_shortcuts():
    net = _net((1, 5, 2), "relu", seed=0)
    X = net.sample(4, seed=0)[0]
    m = np.linspace(-1, 1, 4)
    v = np.linspace(0.1, 0.4, 4)
    np.testing.assert_array_equal(fastpath.kl_to_posterior(net, X, m, v),
                                  fastpath.kl_to_posterior(net, X, m[:, None], v[:, None, None]))
