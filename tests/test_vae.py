"""fastpath.vae.train_vae: a tiny VAE run with exact diagnostics.

Checks: history shapes and contents; the recorded exact NLL is -mean log_marginal of the
decoder (initial and final); the decoder starts as the DGN; KL >= 0 and ELBO <= log p(x);
the VAE's Monte Carlo objective converges to the exact ELBO (kl_to_posterior); runs are
reproducible with a seed; options (fixed noise, prior covariance, diagonal noise, float32,
time limit, no evaluation) and input validation.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastpath
from dgn_core.data import noisy_circle
from dgn_core.model import DGN
from tests.conftest import needs_torch

pytestmark = needs_torch


def _data():
    return noisy_circle(120, seed=0), noisy_circle(60, seed=1)


def _run(**kw):
    from fastpath.vae import train_vae
    X, Xt = _data()
    net = kw.pop("net", None) or DGN.random((1, 8, 8, 2), seed=0, noise_var=0.05)
    args = {"lr": 0.005, "epochs": 3, "batch_size": 32, "seed": 0, "X_test": Xt}
    args.update(kw)
    return net, X, Xt, train_vae(net, X, **args)


def test_tiny_run_records_exact_diagnostics():
    from fastpath.vae import HISTORY_FIELDS
    net, X, Xt, res = _run()
    h = res.history
    assert set(h) == set(HISTORY_FIELDS)
    # default: an evaluation before training and after every epoch (4 batches per epoch)
    np.testing.assert_array_equal(h["update"], [0, 4, 8, 12])
    np.testing.assert_array_equal(h["epoch"], [0, 1, 2, 3])
    assert all(v.shape == (4,) for v in h.values())
    assert np.isnan(h["elbo_mc"][0]) and np.all(np.isfinite(h["elbo_mc"][1:]))
    for k in ("nll_train", "nll_test", "kl_train", "kl_test", "elbo_train", "elbo_test",
              "n_regions", "noise_var"):
        assert np.all(np.isfinite(h[k])), k
    assert np.all(np.diff(h["train_time"]) > 0)
    # before any update the decoder is the DGN: the same exact NLL, bit for bit
    assert h["nll_train"][0] == -np.mean(fastpath.log_marginal(net, X))
    assert h["nll_test"][0] == -np.mean(fastpath.log_marginal(net, Xt))
    assert h["n_regions"][0] == len(fastpath.partition(net))
    # after training: the returned model is the decoder, scored by the exact marginal
    np.testing.assert_allclose(h["nll_train"][-1], -np.mean(fastpath.log_marginal(res.model, X)),
                               rtol=0, atol=0)
    np.testing.assert_allclose(h["nll_test"][-1], -np.mean(fastpath.log_marginal(res.model, Xt)),
                               rtol=0, atol=0)
    # KL >= 0 (rounding level ~1e-12 nats at these sizes) and ELBO = log p(x) - KL
    assert np.all(h["kl_train"] >= -1e-10) and np.all(h["kl_test"] >= -1e-10)
    np.testing.assert_allclose(h["elbo_train"], -h["nll_train"] - h["kl_train"],
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h["elbo_test"], -h["nll_test"] - h["kl_test"],
                               rtol=1e-12, atol=1e-12)
    # the exact KL of the returned encoder
    m, v = res.encode(X)
    assert m.shape == (len(X), 1) and v.shape == (len(X), 1) and np.all(v > 0)
    kl = fastpath.kl_to_posterior(res.model, X, m, v)
    assert h["kl_train"][-1] == pytest.approx(np.mean(kl), rel=1e-13, abs=1e-13)
    assert res.config["updates"] == 12 and not res.diverged
    assert len(res.rows()) == 4 and res.final("nll_train") == h["nll_train"][-1]
    # the learned noise variance is the model's
    assert res.model.noise_var == pytest.approx(h["noise_var"][-1], rel=1e-15)


def test_monte_carlo_objective_is_the_exact_elbo():
    """The VAE's reparameterised objective (what Adam climbs) is an unbiased estimate of the
    exact ELBO E_q log p(x|z) - KL(q || p(z)) of the decoder: 4000 samples per point."""
    for kw in ({}, {"net": DGN.random((2, 6, 2), seed=1, noise_var=[0.05, 0.02],
                                      prior_cov=[[1.5, 0.2], [0.2, 0.6]])}):
        _, X, _, res = _run(**kw)
        X = X[:10]
        m, v = res.encode(X)
        exact = fastpath.kl_to_posterior(res.model, X, m, v, return_terms=True).elbo
        n = 4000
        a = res.elbo_mc(X, n_samples=n, seed=1)
        b = res.elbo_mc(X, n_samples=n, seed=2)
        # standard error per point estimated from two independent estimates' spread and
        # from per-sample variation: 6 sigma with sigma from 200 single-sample estimates
        single = np.array([res.elbo_mc(X, n_samples=1, seed=s) for s in range(200)])
        se = single.std(axis=0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(a - exact) <= 6 * se + 1e-9), (a - exact) / se
        assert np.all(np.abs(b - exact) <= 6 * se + 1e-9), (b - exact) / se


def test_reproducible_with_seed():
    _, _, _, r1 = _run(seed=3)
    _, _, _, r2 = _run(seed=3)
    _, _, _, r3 = _run(seed=4)
    assert r1.model == r2.model
    for k in r1.history:
        if k not in ("train_time", "eval_time"):
            np.testing.assert_array_equal(r1.history[k], r2.history[k], err_msg=k)
    assert r1.model != r3.model


def test_fixed_noise_prior_cov_and_options():
    net = DGN.random((2, 5, 2), seed=2, noise_var=[0.03, 0.05], prior_cov=[[2.0, 0.0], [0.0, 0.5]])
    _, _, _, res = _run(net=net, learn_noise=False, eval_every=3, X_test=None)
    np.testing.assert_array_equal(res.model.noise_var, [0.03, 0.05])
    np.testing.assert_array_equal(res.model.prior_cov, net.prior_cov)
    np.testing.assert_array_equal(res.history["update"], [0, 3, 6, 9, 12])
    assert np.all(np.isnan(res.history["nll_test"])) and np.all(np.isnan(res.history["kl_test"]))
    assert np.all(np.isfinite(res.history["kl_train"]))
    # float32 training: the decoder reads back exactly (float32 values), diagnostics float64
    _, _, _, r32 = _run(dtype="float32", epochs=1)
    for W in r32.model.weights:
        assert np.array_equal(W.astype(np.float32).astype(np.float64), W)
    assert np.all(np.isfinite(r32.history["nll_train"]))
    # no evaluation: only the MC ELBO and times
    _, _, _, r0 = _run(evaluate=False, epochs=1)
    assert np.all(np.isnan(r0.history["nll_train"])) and np.isfinite(r0.history["elbo_mc"][-1])
    # a time limit stops early, with a final evaluation
    _, _, _, rt = _run(epochs=10_000, time_limit=0.2)
    assert rt.config["updates"] < 40_000 and rt.history["update"][-1] == rt.config["updates"]
    # evaluations at chosen updates (plus the first and the last)
    _, _, _, re = _run(eval_at=[1, 2, 5, 50], epochs=2)
    np.testing.assert_array_equal(re.history["update"], [0, 1, 2, 5, 8])
    # custom encoder and kl on a subset
    _, _, _, rk = _run(encoder_widths=(5,), kl_points=7, epochs=1)
    assert [m.out_features for m in rk.encoder if hasattr(m, "out_features")] == [5, 2]


def test_noise_floor_binds():
    # the circle's noise is 0.05^2: starting at 1.0 the learned variance falls to the floor
    net = DGN.random((1, 4, 2), seed=0, noise_var=1.0)
    _, _, _, res = _run(net=net, noise_floor=0.5, epochs=5, lr=0.05)
    assert res.noise_floor_hit
    assert res.model.noise_var == pytest.approx(0.5, rel=1e-14)


def test_validation():
    from fastpath.vae import train_vae
    X, _ = _data()
    net = DGN.random((1, 4, 2), seed=0)
    with pytest.raises(TypeError, match="DGN"):
        train_vae("net", X, lr=0.01, epochs=1)
    with pytest.raises(ValueError, match="lr"):
        train_vae(net, X, lr=-1.0, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        train_vae(net, X, lr=0.01, epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        train_vae(net, X, lr=0.01, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        train_vae(net, X, lr=0.01, epochs=1, seed=-1)
    with pytest.raises(ValueError, match="columns"):
        train_vae(net, np.zeros((5, 3)), lr=0.01, epochs=1)
    with pytest.raises(ValueError, match="X_test"):
        train_vae(net, X, lr=0.01, epochs=1, X_test=np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="noise_floor"):
        train_vae(net, X, lr=0.01, epochs=1, noise_floor=1.0)
    with pytest.raises(ValueError, match="eval_at"):
        train_vae(net, X, lr=0.01, epochs=1, eval_at=[0, 3])
    with pytest.raises(ValueError, match="dtype"):
        train_vae(net, X, lr=0.01, epochs=1, dtype="int8")
