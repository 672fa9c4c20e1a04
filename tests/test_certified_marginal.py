"""Certified log p(x) and posterior of a DGN (verified_dgn.certified.marginal / .posterior).

Reference: verified_dgn.log_marginal / verified_dgn.posterior at dps = 60 (their claims:
10**-60 in the scales of the certified claims), 30 digits beyond the balls' radii at
digits = 30, so the reference cannot decide a containment.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_certified_orthant import contains

import verified_dgn
from verified_dgn import DGN
from verified_dgn.certified import certified_decimal, log_marginal, posterior

REF_DPS = 60


def _net(widths, seed=0, noise=0.1, activation="relu"):
    net = DGN.random(widths, activation=activation, seed=seed, noise_var=noise)
    return net, verified_dgn.partition(net)


def _check_log_marginal(widths, n=2, **kw):
    net, part = _net(widths, **kw)
    X = np.random.default_rng(1).normal(size=(n, widths[-1]))
    got = log_marginal(net, X, digits=30, partition=part)
    ref = verified_dgn.log_marginal(net, X, dps=REF_DPS, partition=part)
    for g, r in zip(got, ref):
        assert contains(g, r)
        assert certified_decimal(g, absolute=True)[1] >= 30


def _check_posterior(widths, **kw):
    net, part = _net(widths, **kw)
    X = np.random.default_rng(2).normal(size=(1, widths[-1]))
    cp = posterior(net, X, digits=30, partition=part)[0]
    ep = verified_dgn.posterior(net, X, dps=REF_DPS, partition=part)
    S = widths[0]
    assert contains(cp.log_px, ep.log_px[0])
    assert all(contains(cp.weights[w], ep.region_weights[0, w]) for w in range(len(part)))
    assert all(contains(cp.mean[i], ep.mean[0, i]) for i in range(S))
    assert all(contains(cp.cov[i][j], ep.cov[0, i, j]) for i in range(S) for j in range(S))
    assert all(certified_decimal(w, absolute=True)[1] >= 30 for w in cp.weights)
    assert all(certified_decimal(cp.cov[i][i])[1] >= 30 for i in range(S))


def test_log_marginal_s1():
    _check_log_marginal((1, 3, 2))


def test_log_marginal_s2():
    _check_log_marginal((2, 3, 2), n=1)


def test_posterior_s1():
    _check_posterior((1, 3, 2))


@pytest.mark.slow
@pytest.mark.parametrize("widths", [(3, 3, 3), (2, 4, 4, 2)])
def test_log_marginal_slow(widths):
    _check_log_marginal(widths, n=1, noise=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("widths", [(2, 3, 2), (3, 3, 3)])
def test_posterior_slow(widths):
    _check_posterior(widths)


@pytest.mark.slow
def test_log_marginal_far_point():
    # a point far from the data manifold: every region's mass is in a far tail
    net, part = _net((2, 3, 2))
    X = np.array([[40.0, -35.0]])
    got = log_marginal(net, X, digits=30, partition=part)[0]
    ref = verified_dgn.log_marginal(net, X, dps=REF_DPS, partition=part)[0]
    assert contains(got, ref)


def test_widths_shrink():
    net, part = _net((1, 3, 2))
    x = np.array([[0.3, -0.2]])
    r = [log_marginal(net, x, digits=q, partition=part)[0].rad() for q in (10, 30, 60)]
    assert r[0] > r[1] > r[2]


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(digits=0), ValueError, "digits"),
    (dict(max_prec=10), ValueError, "max_prec"),
    (dict(X=np.array([[np.nan, 0.0]])), ValueError, "NaN"),
    (dict(X=np.zeros((1, 3))), ValueError, "shape"),
])
def test_bad_input(kwargs, exc, match):
    net, part = _net((1, 3, 2))
    args = dict(X=np.zeros((1, 2)), partition=part)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        log_marginal(net, **args)


def test_s4_refused():
    net = DGN.random((4, 4), activation="relu", seed=0, noise_var=0.1)
    with pytest.raises(ValueError, match="S <= 3"):
        log_marginal(net, np.zeros((1, 4)))
    with pytest.raises(TypeError):
        posterior("not a net", np.zeros((1, 2)))  # type: ignore[arg-type]
