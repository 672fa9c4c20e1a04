"""The structured inner-layer M-step (fastpath._inner_solve) against the dense one.

What is checked, and against what:

* The factors: B B^T equals the dense M of fastpath._mstep._inner_system (itself checked
  against slow loops in tests/test_em.py), the matrix-free M x equals M @ x and r is the
  same; 1e-12 relative to max |M| (a handful of float64 products and sums per entry).
* The target: the structured solve (Woodbury in the m-dimensional column space of B) equals
  the dense solve (Cholesky of the (D_l K)^2 system, or its eigen-decomposition for the
  pseudo-inverse at ridge 0) on S = 1 and S = 2 nets, relu / leaky, depth 2-3, without a
  prior and with a Gaussian prior, ridge 1e-6, 1e-3 and 0. Both are backward-stable solves
  of the same system, so they differ by the forward error eps cond(A) |y| of each (y the
  step from x0); the tolerance is 50 eps cond(A) |y| with cond(A) computed from the dense A
  (for the pseudo-inverse: the condition of the part that is kept).
* fit_em with the structured solve forced on (every inner layer) against forced off: the
  same log-likelihood history to 1e-9 relative, and the structured runs are monotone. The
  two targets differ by eps cond(A) |y| (above), which moves log p(X) by about that
  relative amount; cond(A) <= 1 + n / ridge is ~1e4-1e7 on these small nets. (On the
  (1, 64, 64, 2) net of benchmarks/wide_layers.py, cond ~ 4e9, one iteration differs by
  6e-9 relative: the rounding of the dense solve itself, whose residual is no smaller.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastpath
import fastpath.distributions
from dgn_core.priors import GaussianPrior
from fastpath import _inner_solve as IS
from fastpath import _mstep as MS
from fastpath import em as E
from verified_dgn import DGN

EPS = np.finfo(float).eps

NETS = [
    ((1, 5, 4, 2), "leaky_relu", 0.2),
    ((1, 6, 2), "relu", None),
    ((1, 4, 4, 3, 2), "leaky_relu", 0.1),
    ((2, 4, 3, 3), "leaky_relu", 0.2),
]


def _setup(widths, act, slope, seed=3, n=40):
    net = DGN.random(widths, activation=act, slope=slope, seed=seed,
                     noise_var=np.linspace(0.05, 0.15, widths[-1]))
    X, _ = net.sample(n, seed=seed + 1)
    X = X + 0.1 * np.random.default_rng(seed + 2).standard_normal(X.shape)
    P = fastpath.partition(net)
    st = fastpath.distributions.estep_statistics(net, X, partition=P, prune=None)
    return net, X, P, st


@pytest.mark.parametrize("widths,act,slope", NETS)
def test_factors_equal_the_dense_system(widths, act, slope):
    net, _, P, st = _setup(widths, act, slope)
    for l in range(net.n_layers - 1):
        _, system = MS._inner_layer_target(net, st, P, l, None, 1e-6)
        sw = MS._sweep_maps(net, P)
        Pl, pl = sw.inputs[l]
        H, Xeta, eta = MS._layer_moments(Pl, pl, st)
        F, c = MS._output_map(net, sw.slopes, l, sw.R)
        M, r = MS._inner_system(F, c, H, Xeta, eta, 1.0 / np.asarray(net.noise_var_vector))
        scale = np.abs(M).max()
        B = system.columns()
        assert B.shape == (system.n, system.m)
        assert np.abs(B @ B.T - M).max() <= 1e-12 * scale
        assert np.abs(system.dense() - M).max() <= 1e-12 * scale
        x = np.random.default_rng(l).standard_normal(system.n)
        assert np.abs(system.matvec(x) - M @ x).max() <= 1e-12 * scale * np.abs(x).sum()
        assert np.array_equal(system.r, r)


def _cond_bound(system, prior, ridge):
    """cond(A) of the dense system (the kept part of its spectrum at lambda = 0)."""
    n = system.n
    lam = ridge * system.trace() / n
    A = system.dense() + lam * np.eye(n)
    if isinstance(prior, GaussianPrior):
        A = A + np.diag(MS._weight_mask(system.shape).ravel() / prior.var)
    ev = np.linalg.eigvalsh(A)
    kept = ev[ev > MS._RANK_RTOL * ev[-1] * n]
    return float(kept[-1] / kept[0])


@pytest.mark.parametrize("widths,act,slope", NETS)
@pytest.mark.parametrize("prior,ridge", [(None, 1e-6), (None, 1e-3), (None, 0.0),
                                         (GaussianPrior(var=2.0), 1e-6)])
def test_structured_target_equals_dense(widths, act, slope, prior, ridge):
    net, _, P, st = _setup(widths, act, slope)
    for l in range(net.n_layers - 1):
        ts, system = MS._inner_layer_target(net, st, P, l, prior, ridge, structured=True)
        td, _ = MS._inner_layer_target(net, st, P, l, prior, ridge, structured=False)
        x0 = MS._Wt(net, l)
        step = np.abs(td - x0).max()
        tol = 50 * EPS * _cond_bound(system, prior, ridge) * max(step, np.abs(x0).max())
        assert np.abs(ts - td).max() <= tol, (l, np.abs(ts - td).max(), tol)
        # the surrogate's predicted gain (what fit_em tests) agrees as well
        gs = system.surrogate(ts.ravel()) - system.surrogate(x0.ravel())
        gd = system.surrogate(td.ravel()) - system.surrogate(x0.ravel())
        assert abs(gs - gd) <= 1e-6 * abs(gd) + 1e-12 * np.abs(system.r).max()


def _fit(monkeypatch, fraction, net, X, **kw):
    monkeypatch.setattr(IS, "STRUCTURED_MAX_FRACTION", fraction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        return E.fit_em(net, X, tol=0.0, **kw)


@pytest.mark.parametrize("widths,act,slope,prior", [
    ((1, 5, 4, 2), "leaky_relu", 0.2, None),
    ((1, 4, 4, 3, 2), "relu", None, GaussianPrior(var=2.0)),
    ((2, 4, 3, 3), "leaky_relu", 0.2, None),
])
def test_em_with_structured_solve_equals_dense_and_is_monotone(monkeypatch, widths, act, slope,
                                                               prior):
    net, X, _, _ = _setup(widths, act, slope, n=60)
    res_s = _fit(monkeypatch, np.inf, net, X, max_iter=4, weight_prior=prior)
    res_d = _fit(monkeypatch, 0.0, net, X, max_iter=4, weight_prior=prior)
    ll_s, ll_d = np.asarray(res_s.log_likelihood), np.asarray(res_d.log_likelihood)
    assert ll_s.shape == ll_d.shape
    assert np.allclose(ll_s, ll_d, rtol=1e-9, atol=0.0), ll_s - ll_d
    obj = np.asarray(res_s.objective)
    tol = E.ECM_RTOL * (np.abs(obj[:-1]) + res_s.n_points)
    assert np.all(np.diff(obj) >= -tol)
    assert obj[-1] > obj[0]   # the inner steps did something


def test_auto_choice_uses_the_structured_solve_on_a_wide_layer(monkeypatch):
    # layer 2 of (1, 24, 24, 2) at S = 1: n = 24 * 25, m = 4 R << n
    net, _, P, st = _setup((1, 24, 24, 2), "leaky_relu", 0.1, n=30)
    calls = []
    real = IS.structured_step
    monkeypatch.setattr(IS, "structured_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    t_auto, system = MS._inner_layer_target(net, st, P, 1, None, 1e-6)
    assert calls and system.m <= IS.STRUCTURED_MAX_FRACTION * system.n
    t_dense, _ = MS._inner_layer_target(net, st, P, 1, None, 1e-6, structured=False)
    x0 = MS._Wt(net, 1)
    tol = 50 * EPS * _cond_bound(system, None, 1e-6) * np.abs(t_dense - x0).max()
    assert np.abs(t_auto - t_dense).max() <= tol


def test_zero_system():
    # M = 0 (no posterior mass anywhere): the dense solve gives x0 + g / lambda at lambda > 0
    # and x0 at lambda = 0
    Dl, K, D, S, R = 3, 4, 2, 1, 2
    rng = np.random.default_rng(0)
    sy = IS.InnerSystem(np.zeros((R, Dl, Dl)), np.zeros((R, K, K)), rng.standard_normal((R, Dl, D)),
                        np.zeros((R, K, S + 1)), np.zeros(Dl * K))
    g = rng.standard_normal(Dl * K)
    d = np.full(Dl * K, 0.5)
    assert np.array_equal(IS.structured_step(sy, g, d, MS._RANK_RTOL), g / d)
    assert np.array_equal(IS.structured_step(sy, g, None, MS._RANK_RTOL), np.zeros_like(g))
    x0 = rng.standard_normal(Dl * K)
    for ridge in (0.0, 1e-3):
        ts = MS._inner_target(sy, x0, None, ridge, structured=True)
        td = MS._inner_target(sy, x0, None, ridge, structured=False)
        assert np.allclose(ts, td, rtol=0, atol=1e-15)
