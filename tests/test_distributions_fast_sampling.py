"""fastpath.sample_posterior and its truncated-Gaussian samplers (:mod:`fastpath._sampling`).

Exact samples are checked by goodness-of-fit tests with fixed seeds (deterministic) against
the exact mixture CDF (S = 1), region probabilities and binned projections (S >= 2, cut
masses from :func:`fastpath.integrals.log_gaussian_mass`), mpmath inverse CDFs, and the
exact posterior moments (``tests/distributions_fast_oracles.py`` for the loop oracle).
"""

# Lambdas inside loops below are called within the same iteration (CDFs), so late binding
# of loop variables cannot bite:
# ruff: noqa: B023
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp, ndtr

import fastpath
from fastpath import _map, _sampling
from fastpath.integrals import log_gaussian_mass
from tests.distributions_fast_oracles import loop_oracle, net_lines, net_s1, net_s2, region_interval
from verified_dgn import DGN

# --------------------------------------------------------------------------- sampling
ALPHA = 1e-3   # significance level of every goodness-of-fit test (fixed seeds: deterministic)


def _mixture_cdf_s1(net, P, x, t):
    terms = loop_oracle(net, P, x)
    lw = np.array([tt[0] + tt[1] for tt in terms])
    e0 = np.exp(lw - logsumexp(lw))
    out = np.zeros_like(t)
    for w, r in enumerate(P):
        lo, hi = region_interval(r, np.inf)
        mu, sd = terms[w][2][0], math.sqrt(terms[w][3][0, 0])
        a, b = (lo - mu) / sd, (hi - mu) / sd
        m0 = ndtr(b) - ndtr(a)
        if e0[w] < 1e-14 or m0 <= 0:
            continue
        out += e0[w] * (ndtr(np.clip((t - mu) / sd, a, b)) - ndtr(a)) / m0
    return out, e0


def test_sampling_s1_ks():
    net = net_s1(seed=131, noise=0.05)
    P = fastpath.partition(net)
    X, _ = net.sample(2, seed=132)
    for x in X:
        Zs = fastpath.sample_posterior(net, x, 4000, seed=133, partition=P)
        assert Zs.shape == (4000, 1)
        cdf = lambda t: _mixture_cdf_s1(net, P, x, np.asarray(t, float))[0]
        assert stats.kstest(Zs[:, 0], cdf).pvalue > ALPHA
        _, e0 = _mixture_cdf_s1(net, P, x, np.zeros(1))
        _chi2_regions(P, Zs, e0)


def _chi2_regions(P, Zs, e0):
    counts = np.bincount(P.locate(Zs), minlength=len(P))
    n = len(Zs)
    keep = e0 * n >= 5                                       # pool cells with < 5 expected
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(e0[keep] * n, e0[~keep].sum() * n)
    if exp[-1] < 5:
        obs[-2] += obs[-1]
        exp[-2] += exp[-1]
        obs, exp = obs[:-1], exp[:-1]
    if len(obs) > 1:
        assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > ALPHA


def _projection_cdf(net, P, x, v, edges):
    terms = loop_oracle(net, P, x)
    lw = np.array([tt[0] + tt[1] for tt in terms])
    e0 = np.exp(lw - logsumexp(lw))
    F = np.zeros(len(edges))
    for w, r in enumerate(P):
        if e0[w] < 1e-9:
            continue
        C, d = np.asarray(r.C, float), np.asarray(r.d, float)
        for j, t in enumerate(edges):
            lm = log_gaussian_mass(np.vstack([C, v]), np.append(d, t), terms[w][2], terms[w][3])
            F[j] += e0[w] * math.exp(float(lm) - terms[w][1])
    return F, e0


def test_sampling_s2_binned_gof():
    net = net_s2(seed=141, noise=0.05, prior=np.array([[1.0, 0.3], [0.3, 0.6]]))
    P = fastpath.partition(net)
    X, _ = net.sample(1, seed=142)
    x = X[0]
    n = 6000
    Zs = fastpath.sample_posterior(net, x, n, seed=143, partition=P)
    post = fastpath.posterior(net, X, partition=P)
    _chi2_regions(P, Zs, post.e0[0])
    for v in (np.array([1.0, 0.0]), np.array([0.6, -0.8])):
        proj = Zs @ v
        edges = np.quantile(proj, np.linspace(0, 1, 9)[1:-1])
        F, _ = _projection_cdf(net, P, x, v, edges)
        probs = np.diff(np.concatenate([[0.0], F, [1.0]]))
        obs = np.bincount(np.searchsorted(edges, proj), minlength=len(probs))
        assert stats.chisquare(obs, probs * n).pvalue > ALPHA


def _wedge():
    # a 2-D wedge with its apex at distance ~6 from the origin and a sharp angle
    C = np.array([[-1.0, 0.3], [-1.0, -0.25]])
    d = np.array([-6.0, -6.0])
    return C, d


@pytest.mark.parametrize("method", ["auto", "reject"])
def test_truncated_sampler_tail_wedge(method):
    """Far tail (mass ~1e-9): the half-space proposal; binned GOF against cut masses."""
    C, d = _wedge()
    a, h = _sampling._normalise_rows(C, d)
    lm = float(log_gaussian_mass(a, h, np.zeros(2), np.eye(2)))
    assert lm < math.log(1e-8)
    rng = np.random.default_rng(151)
    U = _sampling._sample_whitened(a, h, 5000, rng, lm, method=method)
    assert np.all(U @ a.T <= h + 1e-12)
    for v in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        proj = U @ v
        edges = np.quantile(proj, np.linspace(0, 1, 9)[1:-1])
        F = np.array([math.exp(float(log_gaussian_mass(np.vstack([a, v]), np.append(h, t),
                                                      np.zeros(2), np.eye(2))) - lm)
                      for t in edges])
        probs = np.diff(np.concatenate([[0.0], F, [1.0]]))
        obs = np.bincount(np.searchsorted(edges, proj), minlength=len(probs))
        assert stats.chisquare(obs, probs * len(U)).pvalue > ALPHA


def test_sequential_sampler_quick():
    """The sequential inverse-CDF path (forced) gives points of the set; its first coordinate
    hits the requested quantiles of the exact marginal CDF."""
    C, d = _wedge()
    a, h = _sampling._normalise_rows(C, d)
    lm = float(log_gaussian_mass(a, h, np.zeros(2), np.eye(2)))
    rng = np.random.default_rng(161)
    U = _sampling._sample_whitened(a, h, 3, rng, lm, method="sequential")
    assert U.shape == (3, 2) and np.all(U @ a.T <= h + 1e-9)
    # the same uniform through the exact CDF: F(u . n) must equal the uniform drawn
    rng2 = np.random.default_rng(162)
    Vs = np.random.default_rng(162).random(1)  # first draw of the sampler's stream
    u = _sampling._sequential_draw(a, h, _map._nearest_point(a, h), lm, rng2)
    nvec = _map._nearest_point(a, h)
    nvec = nvec / np.linalg.norm(nvec)
    F = math.exp(float(log_gaussian_mass(np.vstack([a, nvec]), np.append(h, u @ nvec),
                                         np.zeros(2), np.eye(2))) - lm)
    assert abs(F - Vs[0]) <= 1e-9


@pytest.mark.slow
def test_sequential_sampler_gof():
    C, d = _wedge()
    a, h = _sampling._normalise_rows(C, d)
    lm = float(log_gaussian_mass(a, h, np.zeros(2), np.eye(2)))
    U = _sampling._sample_whitened(a, h, 150, np.random.default_rng(171), lm, method="sequential")
    for v in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        cdf = lambda t: np.array([math.exp(float(log_gaussian_mass(
            np.vstack([a, v]), np.append(h, tt), np.zeros(2), np.eye(2))) - lm) for tt in np.atleast_1d(t)])
        assert stats.kstest(U @ v, cdf).pvalue > ALPHA


def test_interval_sampler_against_inverse_cdf():
    rng = np.random.default_rng(181)
    lo = np.array([-np.inf, -1.0, 2.0, 30.0, -40.0, -0.5, 8.0])
    hi = np.array([0.5, 1.0, np.inf, 31.0, -39.5, np.inf, 8.000001])
    t = _sampling._sample_interval(np.repeat(lo, 200), np.repeat(hi, 200), np.random.default_rng(182))
    V = np.random.default_rng(182).random(len(t))
    assert np.all((t >= np.repeat(lo, 200)) & (t <= np.repeat(hi, 200)))
    with mpmath.workdps(40):
        for i in range(0, len(t), 37):
            a, b = np.repeat(lo, 200)[i], np.repeat(hi, 200)[i]
            Fa = mpmath.ncdf(a) if np.isfinite(a) else 0
            Fb = mpmath.ncdf(b) if np.isfinite(b) else 1
            if a > 0:   # upper tail: P(T > t) = 1 - V
                ref = -mpmath.sqrt(2) * mpmath.erfinv(
                    2 * ((1 - V[i]) * mpmath.ncdf(-a) + V[i] * mpmath.ncdf(-b)) - 1)
            else:
                ref = mpmath.sqrt(2) * mpmath.erfinv(2 * (Fa + V[i] * (Fb - Fa)) - 1)
            assert abs(t[i] - float(ref)) <= 1e-9 * max(1, abs(float(ref))), (i, a, b)
    assert rng is not None




@pytest.mark.parametrize("make", [net_lines, lambda: DGN.random((3, 5, 4), seed=241, noise_var=0.02)],
                         ids=["S2-lines", "S3"])
def test_sampling_moments_and_map_s3_lines(make):
    """Sample means within 5 standard errors of the exact posterior mean (per coordinate, a
    test at level ~6e-7 each), and no sample beats the MAP objective."""
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(1, seed=242)
    n = 4000
    Zs = fastpath.sample_posterior(net, X[0], n, seed=243, partition=P)
    post = fastpath.posterior(net, X, partition=P)
    se = np.sqrt(np.diag(post.cov[0]) / n)
    assert np.all(np.abs(Zs.mean(axis=0) - post.mean[0]) <= 5 * se)
    _chi2_regions(P, Zs, post.e0[0])
    zmap, _, obj = fastpath.map_latent(net, X, partition=P, return_info=True)
    r = X[0] - net.forward(Zs)
    F = np.sum(r * r / net.noise_var_vector, axis=1) + np.einsum(
        "ni,ij,nj->n", Zs, np.linalg.inv(net.prior_cov), Zs)
    assert obj[0] <= F.min() + 1e-12
    assert P[int(P.locate(zmap)[0])].contains(zmap[0], tol=1e-9)
