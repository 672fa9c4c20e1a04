"""fastpath's E-step (:mod:`fastpath._estep`): certified pruning, chunking, the E-step
generator and the sufficient statistics of EM, and partitions shared between nets with the
same hidden layers.

Oracles: the unpruned posterior, loops over regions with explicit A_w, b_w, and scipy
quadrature with ``net.forward`` (``tests/distributions_fast_oracles.py``).
"""

# Lambdas inside loops below are called within the same iteration (quadrature integrands),
# so late binding of loop variables cannot bite:
# ruff: noqa: B023
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

import fastpath
from fastpath import _estep
from fastpath import distributions as fd
from tests.distributions_fast_oracles import log_joint, net_s1, net_s2, region_interval
from verified_dgn import DGN


def test_pruning_is_certified_and_chunking_is_exact():
    net = net_s2(seed=51, noise=1e-4, widths=(2, 8, 2))   # ~20% of pairs survive the bound
    P = fastpath.partition(net)
    X, _ = net.sample(12, seed=52)
    full = fastpath.posterior(net, X, partition=P, prune=None)
    pruned = fastpath.posterior(net, X, partition=P)           # default prune = 60
    skipped = ~np.isfinite(pruned.log_e0)
    assert skipped.any(), "this small-noise case should prune"
    assert np.all(full.log_e0[skipped] < -fd.DEFAULT_PRUNE)
    np.testing.assert_allclose(pruned.log_px, full.log_px, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(pruned.e0, full.e0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(pruned.E2, full.E2, rtol=0, atol=1e-13)
    for cs in (1, 7):
        # other chunks: other GEMM blockings, so equal to rounding only
        ch = fastpath.posterior(net, X, partition=P, chunk_size=cs)
        np.testing.assert_allclose(ch.log_px, pruned.log_px, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(ch.E2, pruned.E2, rtol=0, atol=1e-13)
    lm = fastpath.log_marginal(net, X, partition=P, chunk_size=3)
    np.testing.assert_allclose(lm, full.log_px, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(full.e0.sum(axis=1), 1.0, rtol=0, atol=1e-13)


@pytest.mark.parametrize("noise,dense", [(1e-4, False), (0.05, True)])
def test_pruning_probe_on_large_chunks(noise, dense, monkeypatch):
    """Chunks of >= 4 * _PRUNE_PROBE points bound a probe first: a clearly dense chunk is
    evaluated exactly like prune=None, a sparse one still prunes with the certified bound."""
    net = net_s2(seed=53, noise=noise, widths=(2, 8, 2))
    P = fastpath.partition(net)
    X, _ = net.sample(4 * _estep._PRUNE_PROBE + 5, seed=54)
    full = fastpath.posterior(net, X, partition=P, prune=None)
    bounded = []
    orig = fastpath.ConeBatch.log_mass_bound
    monkeypatch.setattr(fastpath.ConeBatch, "log_mass_bound",
                        lambda self, m, c: bounded.append(m.shape[0]) or orig(self, m, c))
    pruned = fastpath.posterior(net, X, partition=P)
    # the probe is bounded first; only a sparse-looking chunk bounds every point
    assert bounded == ([_estep._PRUNE_PROBE] if dense else [_estep._PRUNE_PROBE, X.shape[0]])
    skipped = ~np.isfinite(pruned.log_e0)
    if dense:
        assert not skipped.any()
        np.testing.assert_array_equal(pruned.log_px, full.log_px)
        np.testing.assert_array_equal(pruned.E2, full.E2)
    else:
        assert skipped.any(), "this small-noise case should prune"
        assert np.all(full.log_e0[skipped] < -fd.DEFAULT_PRUNE)
        np.testing.assert_allclose(pruned.log_px, full.log_px, rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(pruned.E2, full.E2, rtol=0, atol=1e-13)


def test_estep_chunks_and_statistics():
    net = net_s2(seed=61, prior=np.array([[1.2, 0.1], [0.1, 0.9]]), noise=np.array([0.04, 0.09]))
    P = fastpath.partition(net)
    X, _ = net.sample(25, seed=62)
    post = fastpath.posterior(net, X, partition=P, prune=None)
    seen = 0
    for ch in fd._estep_chunks(net, P, X, 6, prune=None):
        sl = ch.rows
        assert ch.e0.shape == (sl.stop - sl.start, len(P))
        np.testing.assert_allclose(ch.E2, post.E2[sl], rtol=0, atol=1e-15)
        np.testing.assert_allclose(ch.cov, post.cov[sl], rtol=0, atol=1e-15)
        seen += sl.stop - sl.start
    assert seen == len(X)
    st = fd.estep_statistics(net, X, partition=P, chunk_size=4, prune=None)
    np.testing.assert_allclose(st.s0, post.e0.sum(axis=0), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(st.s1, post.e1.sum(axis=0), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(st.S2, post.E2.sum(axis=0), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(st.x0, np.einsum("nr,nd->rd", post.e0, X), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(st.x1, np.einsum("nd,nri->rdi", X, post.e1), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(st.xx, np.sum(X * X, axis=0), rtol=1e-14)
    assert st.log_likelihood == pytest.approx(float(post.log_px.sum()), rel=1e-14)
    # resid2 = sum_n E[(x_n - g(z))^2 | x_n], loop over regions with explicit A_w, b_w
    ref = np.zeros(net.data_dim)
    for w, r in enumerate(P):
        A, b = np.asarray(r.A), np.asarray(r.b)
        for n in range(len(X)):
            e0 = post.e0[n, w]
            if e0 == 0:
                continue
            m, C = post.region_mean[n, w], post.region_cov[n, w]
            ref += e0 * ((X[n] - b - A @ m) ** 2 + np.diag(A @ C @ A.T))
    np.testing.assert_allclose(st.resid2, ref, rtol=1e-12)


def test_resid2_against_quadrature_s1():
    net = net_s1(seed=71, noise=np.array([0.02, 0.05]))
    P = fastpath.partition(net)
    X, _ = net.sample(2, seed=72)
    st = fd.estep_statistics(net, X, partition=P)
    ref = np.zeros(2)
    for x in X:
        grid = np.linspace(-12, 12, 4001)[:, None]
        shift = float(np.max(log_joint(net, x, grid)))
        p = lambda z: math.exp(float(log_joint(net, x, np.array([[z]]))[0]) - shift)
        pts = sorted({region_interval(r, 12)[k] for r in P for k in (0, 1)} - {-12.0, 12.0})
        px = integrate.quad(p, -12, 12, points=pts, limit=400, epsrel=1e-13, epsabs=0)[0]
        for j in range(2):
            f = lambda z: (x[j] - net.forward(np.array([[z]]))[0, j]) ** 2 * p(z)
            ref[j] += integrate.quad(f, -12, 12, points=pts, limit=400, epsrel=1e-13, epsabs=0)[0] / px
    np.testing.assert_allclose(st.resid2, ref, rtol=1e-9)


def test_partition_of_same_hidden_layers_is_reused():
    """EM changes the output layer and the noise: the old partition serves the new net."""
    net = net_s2(seed=81)
    P = fastpath.partition(net)
    rng = np.random.default_rng(82)
    net2 = net.replace(weights=[net.weights[0], rng.normal(size=net.weights[1].shape)],
                       biases=[net.biases[0], rng.normal(size=2)], noise_var=0.03)
    X, _ = net2.sample(6, seed=83)
    a = fastpath.posterior(net2, X, partition=P, prune=None)
    P2 = fastpath.partition(net2)
    b = fastpath.posterior(net2, X, partition=P2, prune=None)
    order = [P2.index_of(r.signs) for r in P]
    np.testing.assert_allclose(a.log_px, b.log_px, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(a.e0, b.e0[:, order], rtol=0, atol=1e-13)
    other = DGN.random((2, 5, 2), seed=84)
    with pytest.raises(ValueError, match="different network"):
        fastpath.log_marginal(other, X, partition=P)



@pytest.mark.parametrize("nv", [1e-16, 1e-300])
def test_noise_too_small_for_float64_is_named(nv):
    # a posterior precision I + A^T A / sigma^2 beyond float64 (condition >= 1e13) is a
    # clear error naming the noise, not a LinAlgError from a Cholesky or a NaN
    net = DGN.random((2, 4, 4, 2), seed=3, noise_var=nv)
    X = np.zeros((2, 2))
    for fn in (fastpath.log_marginal, fastpath.posterior):
        with pytest.raises(ValueError, match="noise variance .* too small for float64"):
            fn(net, X)


def test_small_noise_still_float64():
    # 1e-8 is well inside float64's range for these weights: log p(x) against the exact path
    import verified_dgn

    net = DGN.random((2, 3, 2), seed=3, noise_var=1e-8)
    X = net.forward(np.array([[0.3, -0.2]])) + 1e-5
    lf = fastpath.log_marginal(net, X)
    le = np.array([float(v) for v in verified_dgn.log_marginal(net, X, dps=30)])
    # rtol 1e-10: log p ~ -1e1..1e2 here, the quadratic forms carry |x - g|^2 / sigma^2
    np.testing.assert_allclose(lf, le, rtol=1e-10)
