"""fastpath.map_latent (:mod:`fastpath._map`): the posterior mode and the flat-prior latent
by exact per-region QPs, and the nearest point of a polyhedron.

Oracles: grid search refined by scipy.optimize with ``net.forward`` (no region maps), and
SLSQP for the nearest point.
"""

# Lambdas inside loops below are called within the same iteration (constraints), so late
# binding of loop variables cannot bite:
# ruff: noqa: B023
from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

import fastpath
from fastpath import _map
from tests.distributions_fast_oracles import net_s1, net_s2
from verified_dgn import DGN


def test_nearest_point_against_optimizer():
    rng = np.random.default_rng(191)
    for _ in range(6):
        a = rng.normal(size=(5, 2))
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        z0 = rng.normal(size=2) * 4
        h = a @ z0 + rng.uniform(0.2, 2.0, size=5)             # z0 inside
        p = _map._nearest_point(a, h)
        res = optimize.minimize(lambda z: z @ z, z0, jac=lambda z: 2 * z, method="SLSQP",
                                constraints=[{"type": "ineq", "fun": lambda z: h - a @ z,
                                              "jac": lambda z: -a}], options={"ftol": 1e-15})
        assert np.all(a @ p <= h + 1e-9)
        assert p @ p <= res.fun + 1e-9
        np.testing.assert_allclose(p, res.x, atol=1e-6)


# --------------------------------------------------------------------------- MAP latent
def _brute_map(net, x, flat, L=8.0):
    S = net.latent_dim
    nv = net.noise_var_vector
    Si = np.linalg.inv(net.prior_cov)

    def F(Z):
        Z = np.atleast_2d(Z)
        r = x - net.forward(Z)
        f = np.sum(r * r / nv, axis=1)
        return f if flat else f + np.einsum("ni,ij,nj->n", Z, Si, Z)

    if S == 1:
        g = np.linspace(-L, L, 200001)[:, None]
        v = F(g)
        i = int(np.argmin(v))
        res = optimize.minimize_scalar(lambda z: F(np.array([[z]]))[0],
                                       bounds=(g[max(i - 2, 0), 0], g[min(i + 2, len(g) - 1), 0]),
                                       method="bounded", options={"xatol": 1e-12})
        return np.array([res.x]), float(res.fun)
    g = np.linspace(-L, L, 801)
    G = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    v = F(G)
    best = None
    for i in np.argsort(v)[:5]:
        res = optimize.minimize(lambda z: F(z)[0], G[i], method="Nelder-Mead",
                                options={"xatol": 1e-11, "fatol": 1e-15, "maxiter": 20000})
        if best is None or res.fun < best.fun:
            best = res
    return best.x, float(best.fun)


@pytest.mark.parametrize("prior", ["gaussian", "flat"])
@pytest.mark.parametrize("make", [lambda: net_s1(seed=201, act="leaky_relu", noise=0.05),
                                  lambda: net_s2(seed=202, noise=np.array([0.05, 0.1]),
                                                 prior=np.array([[1.2, 0.3], [0.3, 0.8]]))],
                         ids=["S1", "S2"])
def test_map_latent_against_grid_search(make, prior):
    net = make()
    P = fastpath.partition(net)
    X, _ = net.sample(2, seed=203)
    Z, reg, obj = fastpath.map_latent(net, X, partition=P, prior=prior, return_info=True)
    for i, x in enumerate(X):
        zb, fb = _brute_map(net, x, prior == "flat")
        nv = net.noise_var_vector
        r = x - net.forward(Z[i:i + 1])[0]
        f = float(np.sum(r * r / nv))
        if prior == "gaussian":
            f += float(Z[i] @ np.linalg.solve(net.prior_cov, Z[i]))
        assert f == pytest.approx(obj[i], rel=1e-10, abs=1e-12)
        assert f <= fb + 1e-9 * (1 + fb), (f, fb)                # no better point exists
        np.testing.assert_allclose(Z[i], zb, atol=1e-5)
        assert P.locate(Z[i:i + 1])[0] == reg[i] or P[reg[i]].contains(Z[i], tol=1e-9)


def test_map_flat_tie_break_and_zero_noise_limit():
    # g(z) = |z - 0.2|: x = 0.5 has the two preimages 0.7 and -0.3; f = 0 at both
    net = DGN([np.array([[1.0]]), np.array([[1.0]])], [np.array([-0.2]), np.array([0.0])],
              activation="abs", noise_var=0.01)
    Z = fastpath.map_latent(net, [[0.5]], prior="flat")
    assert Z[0, 0] == pytest.approx(-0.3, abs=1e-12)            # the one of least z^2
    # the flat latent is the limit of the posterior mode as the noise goes to zero
    net2 = net_s2(seed=211)
    X, _ = net2.sample(4, seed=212)
    flat = fastpath.map_latent(net2, X, prior="flat")
    tiny = fastpath.map_latent(net2.replace(noise_var=1e-12), X, prior="gaussian")
    np.testing.assert_allclose(tiny, flat, atol=1e-6)


