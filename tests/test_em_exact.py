"""fastpath's EM step against the exact oracle verified_dgn.em_step, and the EM checks.

The oracle: exact partition (rationals), exact posterior moments (mpmath, dps = 20) and the
M-step formulas of docs/DESIGN.md §2.5 written out in mpmath (column-major Kronecker form, noise
from the per-point S_n). The fast path: float64 posterior statistics and vectorised
kernels. Tolerances (relative to the largest entry of each quantity):

* log p(X): 1e-12 (fast log-marginal accuracy ~1e-13 relative per point);
* the inner systems M and r: 1e-12 (measured <= 1e-15: sums of float64 moments);
* last layer, noise, Sigma_z: 1e-9 (measured <= 1e-12);
* inner-layer targets: 1e-9, or 10 cond(M + lambda I) (dM + dr) when larger (the solve
  amplifies the errors of M and r by the condition number of the regularised system, up
  to ~1e8 with the default proximal ridge 1e-6; measured 1e-15 to 1.1e-9).

Runtime of the default selection: about 25 s (the exact posterior dominates).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_cdd
from verified_dgn import DGN

pytestmark = needs_cdd


def _rel(exact, fast) -> float:
    a = np.array([float(v) for v in np.ravel(np.asarray(exact, dtype=object))])
    b = np.asarray(fast, dtype=np.float64).ravel()
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-300))


def _compare(net, X, **kw):
    from fastpath.em import em_step as fast_step
    from verified_dgn.em import em_step as exact_step

    nx, ix = exact_step(net, X, dps=20, **kw)
    nf, i_f = fast_step(net, X, **kw)
    assert float(ix["log_likelihood"]) == pytest.approx(i_f["log_likelihood"], rel=1e-12)
    assert _rel(ix["last_layer"][0], i_f["last_layer"][0]) <= 1e-9
    assert _rel(ix["last_layer"][1], i_f["last_layer"][1]) <= 1e-9
    assert _rel(ix["noise_var"], np.broadcast_to(i_f["noise_var"], (net.data_dim,))) <= 1e-9
    if kw.get("update_prior_cov"):
        assert _rel(ix["prior_cov"], i_f["prior_cov"]) <= 1e-9
    assert len(ix["inner"]) == len(i_f["inner"]) == net.n_layers - 1
    for (Wx, vx), (Wf, vf), (Mx, rx), (Mf, rf) in zip(ix["inner"], i_f["inner"],
                                                      ix["inner_system"], i_f["inner_system"]):
        dM, dr = _rel(Mx, Mf), _rel(rx, rf)
        assert dM <= 1e-12 and dr <= 1e-12
        # the solve amplifies the errors of M and r by at most the condition number of the
        # regularised system (first-order perturbation bound, factor 10 of slack)
        M = np.array([[float(v) for v in row] for row in Mx])
        lam = kw.get("ridge", 1e-6) * np.trace(M) / M.shape[0]
        kappa = np.linalg.cond(M + lam * np.eye(M.shape[0]))
        tol = max(1e-9, 10.0 * kappa * (dM + dr + np.finfo(float).eps))
        assert _rel(Wx, Wf) <= tol
        assert _rel(vx, vf) <= tol
    # the returned nets carry the ECM updates, rounded to float64
    assert np.allclose(nx.weights[-1], nf.weights[-1], rtol=1e-9, atol=1e-12)
    assert np.allclose(nx.noise_var_vector, nf.noise_var_vector, rtol=1e-9)
    return ix, i_f


def _data(net, n, seed):
    X, _ = net.sample(n, seed=seed)
    return X + 0.1 * np.random.default_rng(seed).standard_normal(X.shape)


@pytest.mark.parametrize("widths,act,nv,kw", [
    ((1, 4, 3, 2), "leaky_relu", 0.1, {}),
    ((1, 3, 3, 2), "abs", np.array([0.1, 0.2]), {"update_prior_cov": True}),
    ((1, 3, 2), "relu", 0.05, {"ridge": 1e-3}),     # a unit active with mass 1e-77 only
    ((1, 2), "relu", 0.2, {}),                      # no hidden layer
    ((1, 3, 3, 2), ["relu", "leaky_relu"], 0.1, {}),  # per-layer activations
])
def test_em_step_matches_exact(widths, act, nv, kw):
    net = DGN.random(widths, activation=act, slope=0.2 if act == "leaky_relu" else None,
                     seed=5, noise_var=nv)
    _compare(net, _data(net, 8, seed=1), **kw)


def test_em_step_matches_exact_gaussian_prior_and_diagonal():
    from fastpath.em import GaussianPrior

    net = DGN.random((1, 3, 4, 3), activation="leaky_relu", slope=0.1, seed=2, noise_var=0.1)
    _compare(net, _data(net, 8, seed=4), weight_prior=GaussianPrior(0.5), noise="diagonal",
             noise_floor=1e-4)


@pytest.mark.slow
def test_em_step_matches_exact_depth3_and_s2():
    net = DGN.random((1, 3, 3, 3, 2), activation="abs", seed=1, noise_var=0.2)
    _compare(net, _data(net, 10, seed=2))
    net = DGN.random((2, 3, 2), activation="leaky_relu", slope=0.2, seed=3, noise_var=0.1)
    _compare(net, _data(net, 5, seed=2), update_prior_cov=True)


def test_exact_em_step_validation():
    from fastpath.em import LaplacePrior
    from verified_dgn.em import em_step

    net = DGN.random((1, 3, 2), activation="relu", seed=0)
    X = _data(net, 3, seed=0)
    with pytest.raises(NotImplementedError, match="closed-form"):
        em_step(net, X, dps=15, weight_prior=LaplacePrior(1.0))
    with pytest.raises(ValueError, match="noise"):
        em_step(net, X, dps=15, noise="full")
    with pytest.raises(ValueError, match="ridge"):
        em_step(net, X, dps=15, ridge=-1.0)
    with pytest.raises(ValueError):
        em_step(net, np.zeros((3, 5)), dps=15)


def test_exact_em_step_is_a_monotone_step():
    # the ECM part of the exact step does not decrease the exact log-likelihood
    import verified_dgn
    from verified_dgn.em import em_step

    net = DGN.random((1, 4, 2), activation="leaky_relu", slope=0.1, seed=3, noise_var=0.3)
    X = _data(net, 8, seed=3)
    new, info = em_step(net, X, dps=20)
    after = sum(verified_dgn.log_marginal(new, X, dps=20))
    assert after >= info["log_likelihood"]


def test_mstep_check_passes_quick():
    from dgn_tools.checks import registry

    res = registry()["M-step"][1](quick=True)
    assert res.passed, str(res)
    assert res.residual is not None and res.residual <= 1e-6


def test_mstep_check_detects_a_wrong_closed_form(monkeypatch):
    # a check that cannot fail is no check: perturb the oracle's last layer by 1e-4
    import verified_dgn.em as vem
    from dgn_tools.checks import em_checks

    real = vem.em_step

    def wrong(*args, **kw):
        new, info = real(*args, **kw)
        Ws = list(new.weights)
        Ws[-1] = Ws[-1] + 1e-4
        return new.replace(weights=Ws), info

    monkeypatch.setattr(vem, "em_step", wrong)
    net = DGN.random((1, 3, 2), activation="leaky_relu", slope=0.2, seed=1, noise_var=0.1)
    res = em_checks.check_mstep(net=net, n_points=5, dps=15)
    assert not res.passed


def test_em_monotone_check_quick():
    from dgn_tools.checks import registry

    net = DGN.random((1, 6, 6, 2), activation="leaky_relu", slope=0.1, seed=0, noise_var=0.1)
    res = registry()["EM monotonicity"][1](net=net, max_iter=5)
    assert res.passed, str(res)
    assert res.residual == 0.0 or res.residual < 1e-6


def test_mstep_check_passes_with_a_dead_unit():
    # a hidden unit that is never active leaves Q flat along its outgoing weights: that is
    # no direction of ascent, so the closed form still passes (it was judged "not a maximum")
    from dgn_tools.checks import em_checks

    net = DGN.random((1, 3, 2), activation="relu", seed=1, noise_var=0.1)
    Ws, vs = list(net.weights), list(net.biases)
    Ws[0] = Ws[0].copy()
    vs[0] = vs[0].copy()
    Ws[0][2] = 0.0
    vs[0][2] = -1.0                                       # unit 3: pre-activation -1 always
    res = em_checks.check_mstep(net=net.replace(weights=Ws, biases=vs), n_points=5, dps=15)
    assert res.status == "PASS", str(res)


@pytest.mark.parametrize("widths,acts,pools", [
    ((1, 4, 3), ["max"], [2]),                               # max as the only hidden layer
    ((1, 3, 4, 2), ["relu", "max"], [None, [1, 3]]),         # relu -> max
    ((1, 4, 3, 2), ["max", "abs"], [[3, 1], None]),          # max -> abs
])
def test_em_step_matches_exact_with_max_pooling(widths, acts, pools):
    """Every layer's M-step of a max-pooling net (D^l_w selects each group's argmax row):
    the fast step against the exact one, same tolerances as the element-wise nets."""
    net = DGN.random(widths, activation=acts, pool_sizes=pools, seed=6, noise_var=0.1)
    _compare(net, _data(net, 8, seed=3))
