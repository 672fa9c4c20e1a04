"""fastpath's side of the backend contract (dgn_core.api): the ``prune`` option, the
posterior protocol :class:`dgn_core.api.PosteriorLike`, and one cone cache per partition.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastpath
from dgn_core.api import PosteriorLike
from fastpath import _region_maps
from fastpath import distributions as fd
from fastpath.integrals import ConeBatch
from verified_dgn import DGN


def _small_noise_net() -> DGN:
    # small noise: the default margin prunes some pairs
    return DGN.random((2, 8, 2), seed=51, noise_var=1e-4)


def test_prune_true_is_the_default_margin_and_false_is_none():
    net = _small_noise_net()
    P = fastpath.partition(net)
    X, _ = net.sample(12, seed=52)
    default = fastpath.posterior(net, X, partition=P)
    assert not np.all(np.isfinite(default.log_e0)), "this small-noise case should prune"
    for prune in (True, np.True_, fd.DEFAULT_PRUNE, 60):
        p = fastpath.posterior(net, X, partition=P, prune=prune)
        np.testing.assert_array_equal(p.log_e0, default.log_e0)
        np.testing.assert_array_equal(p.E2, default.E2)
        np.testing.assert_array_equal(fastpath.log_marginal(net, X, partition=P, prune=prune),
                                      fastpath.log_marginal(net, X, partition=P))
    full = fastpath.posterior(net, X, partition=P, prune=None)
    assert np.all(np.isfinite(full.log_e0))
    for prune in (False, np.False_):
        p = fastpath.posterior(net, X, partition=P, prune=prune)
        np.testing.assert_array_equal(p.log_e0, full.log_e0)
        np.testing.assert_array_equal(p.E2, full.E2)
        st = fd.estep_statistics(net, X, partition=P, prune=prune)
        np.testing.assert_array_equal(st.S2, fd.estep_statistics(net, X, partition=P,
                                                                 prune=None).S2)
    np.testing.assert_array_equal(fastpath.anomaly_scores(net, X, partition=P, prune=False),
                                  -full.log_px)


@pytest.mark.parametrize("prune, err", [
    ("60", TypeError), ([60.0], TypeError), (object(), TypeError),
    (29.9, ValueError), (5, ValueError), (np.inf, ValueError), (np.nan, ValueError),
])
def test_prune_validation(prune, err):
    net = DGN.random((2, 4, 2), seed=0, noise_var=0.1)
    P = fastpath.partition(net)
    X, _ = net.sample(3, seed=1)
    V = np.ones((3, 2))
    for call in (lambda: fastpath.log_marginal(net, X, partition=P, prune=prune),
                 lambda: fastpath.posterior(net, X, partition=P, prune=prune),
                 lambda: fd.estep_statistics(net, X, partition=P, prune=prune),
                 lambda: fastpath.kl_to_posterior(net, X, np.zeros((3, 2)), V, partition=P,
                                                  prune=prune)):
        with pytest.raises(err, match="prune"):
            call()


def test_kl_prunes_log_px_with_its_margin():
    net = _small_noise_net()
    P = fastpath.partition(net)
    X, _ = net.sample(6, seed=53)
    post = fastpath.posterior(net, X, partition=P, prune=None)
    terms = fastpath.kl_to_posterior(net, X, post.mean, post.cov, partition=P, prune=None,
                                     return_terms=True)
    np.testing.assert_array_equal(terms.log_px, post.log_px)
    terms = fastpath.kl_to_posterior(net, X, post.mean, post.cov, partition=P,
                                     return_terms=True)
    np.testing.assert_array_equal(terms.log_px, fastpath.log_marginal(net, X, partition=P))


def test_posterior_is_posterior_like_and_log_density_delegates():
    net = DGN.random((2, 5, 3), activation="leaky_relu", seed=61, noise_var=0.05,
                     prior_cov=np.array([[1.2, 0.2], [0.2, 0.7]]))
    P = fastpath.partition(net)
    X, _ = net.sample(3, seed=62)
    Z = np.random.default_rng(63).normal(size=(40, 2)) * 2.0
    # the partition also serves a net with another output layer and noise (EM)
    rng = np.random.default_rng(64)
    net2 = net.replace(weights=[net.weights[0], rng.normal(size=net.weights[1].shape)],
                       noise_var=0.02)
    for nt in (net, net2):
        post = fastpath.posterior(nt, X, partition=P)
        assert isinstance(post, PosteriorLike)
        assert post.net is nt
        for n in range(len(X)):
            np.testing.assert_array_equal(
                post.log_density(Z, n),
                fastpath.log_posterior_density(nt, X[n], Z, partition=P))
        np.testing.assert_array_equal(post.log_density(Z), post.log_density(Z, 0))
        np.testing.assert_array_equal(post.log_density(Z, np.int64(2)), post.log_density(Z, 2))
    for n, err in ((1.5, TypeError), (True, TypeError), (-1, ValueError), (3, ValueError)):
        with pytest.raises(err, match="n must"):
            post.log_density(Z, n)


def test_one_cone_cache_per_partition(monkeypatch):
    net = DGN.random((2, 5, 2), seed=71, noise_var=0.1)
    P = fastpath.partition(net)
    X, _ = net.sample(4, seed=72)
    calls = []
    orig = ConeBatch.from_partition.__func__
    monkeypatch.setattr(ConeBatch, "from_partition",
                        classmethod(lambda cls, p: calls.append(p) or orig(cls, p)))
    post = fastpath.posterior(net, X, partition=P)
    fastpath.kl_to_posterior(net, X, post.mean, post.cov, partition=P)
    fd.estep_statistics(net, X, partition=P)
    fastpath.log_posterior_density(net, X[0], np.zeros((1, 2)), partition=P)
    assert calls == [P]
    assert _region_maps.cone_batch(P) is fd._model(net, P).cones
