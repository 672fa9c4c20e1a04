"""Max-pooling layers in the model (dgn_core): construction, forward pass, argmax patterns,
region maps and argmax H-representations, and the computations that refuse them."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dgn_core.activations import max_pattern, winners
from dgn_core.exceptions import DGNError, UnsupportedLayerError
from dgn_core.model import DGN
from dgn_core.regions import layer_maps, region_affine_map, region_inequalities


def _net(seed: int = 0) -> DGN:
    # relu (6) -> max over groups [3, 1, 2] (6 units -> 3 outputs) -> abs (4) -> output 2
    return DGN.random((2, 6, 6, 4, 2), activation=["relu", "max", "abs"],
                      pool_sizes=[None, [3, 1, 2], None], seed=seed)


def _by_hand(net: DGN, Z: np.ndarray) -> np.ndarray:
    """The forward pass written out for _net's architecture."""
    W, v = net.weights, net.biases
    h = np.maximum(Z @ W[0].T + v[0], 0)
    u = h @ W[1].T + v[1]
    h = np.stack([u[:, 0:3].max(1), u[:, 3], u[:, 4:6].max(1)], axis=1)
    h = np.abs(h @ W[2].T + v[2])
    return h @ W[3].T + v[3]


def test_forward_matches_hand_computation_and_exact_forward():
    net = _net()
    Z = np.random.default_rng(1).normal(size=(200, 2)) * 2
    # the same float operations in another order: agreement to rounding (1e-13 absolute on
    # values of order 1)
    assert np.max(np.abs(net.forward(Z) - _by_hand(net, Z))) < 1e-13
    for z in Z[:5]:
        exact = np.array([float(t) for t in net.forward_exact([Fraction(float(t)) for t in z])])
        assert np.max(np.abs(exact - net.forward(z)[0])) < 1e-13
    assert net.hidden_widths == (6, 6, 4)
    assert net.hidden_output_widths == (6, 3, 4)
    assert net.has_max_pooling and net.activation == "mixed"
    assert net.pool_sizes == ((), (3, 1, 2), ())


def test_patterns_are_one_hot_argmax_with_first_index_on_ties():
    H = np.array([[1.0, 3.0, 3.0, -1.0, 0.5, 0.5], [2.0, 2.0, 2.0, 4.0, -1.0, 0.0]])
    P = max_pattern(H, (3, 1, 2))
    assert P.tolist() == [[-1, 1, -1, 1, 1, -1], [1, -1, -1, 1, -1, 1]]
    assert winners(P[0], (3, 1, 2)) == [1, 3, 4]
    with pytest.raises(ValueError, match="exactly one"):
        winners([1, 1, -1, 1, 1, -1], (3, 1, 2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_maps_and_inequalities_hold_at_sampled_points(seed):
    net = _net(seed)
    Z = np.random.default_rng(seed).normal(size=(300, 2)) * 3
    P = net.sign_patterns(Z)
    for z, q in zip(Z, P):
        C, d = region_inequalities(net, q)
        assert np.all(C @ z <= d + 1e-12)
        A, b = region_affine_map(net, q)
        assert np.max(np.abs(A @ z + b - net.forward(z)[0])) < 1e-12
        pre, _, _ = layer_maps(net, q)
        for (M, c), h in zip(pre, net.pre_activations(z)):
            assert np.max(np.abs(M @ z + c - h[0])) < 1e-12
    # exact rows: the loser rows of a max group are h_winner - h_i (winner row zero)
    q = P[0]
    Ce, de = region_inequalities(net, q, exact=True)
    start = net.hidden_widths[0]
    win = winners(q[start:start + 6], (3, 1, 2))
    for w in win:
        assert all(t == 0 for t in Ce[start + w]) and de[start + w] == 0


def test_argmax_regions_are_coarser_than_the_order_of_the_group():
    """Points whose group values are ordered differently but share the argmax share a
    region: the H-representation does not constrain the order of the losers."""
    net = DGN([np.eye(3), np.ones((1, 1))], [np.zeros(3), np.zeros(1)], activation="max",
              pool_sizes=[3])
    a, b = np.array([3.0, 1.0, 2.0]), np.array([3.0, 2.0, 1.0])
    qa, qb = net.sign_patterns(a), net.sign_patterns(b)
    assert qa.tolist() == qb.tolist() == [[1, -1, -1]]
    C, d = region_inequalities(net, qa[0])
    assert np.all(C @ a <= d) and np.all(C @ b <= d)


@pytest.mark.parametrize("kw, err, match", [
    (dict(activation=["relu", "max", "abs"]), ValueError, "pool_sizes must give"),
    (dict(activation=["relu", "max", "abs"], pool_sizes=[None, [3, 2], None]), ValueError,
     "add up to 5"),
    (dict(activation=["relu", "max", "abs"], pool_sizes=[None, 4, None]), ValueError,
     "do not divide"),
    (dict(activation=["relu", "max", "abs"], pool_sizes=[None, [3, 0, 3], None]), ValueError,
     ">= 1"),
    (dict(activation=["relu", "max", "abs"], pool_sizes=[2, [3, 3], None]), ValueError,
     "not max-pooling"),
    (dict(activation=["relu", "max", "abs"], pool_sizes=[None, [3, 3]]), ValueError,
     "2 entries"),
    (dict(activation=["relu", "max", "abs"], pool_sizes=[None, ["a"], None]), TypeError,
     "positive integers"),
    (dict(activation=["relu", "max", "abs"], slope=[None, 0.3, None],
          pool_sizes=[None, 3, None]), ValueError, "no slope"),
])
def test_bad_pooling_arguments(kw, err, match):
    Ws = [np.ones((6, 2)), np.ones((6, 6)), np.ones((4, 2)), np.ones((2, 4))]
    vs = [np.zeros(6), np.zeros(6), np.zeros(4), np.zeros(2)]
    with pytest.raises(err, match=match):
        DGN(Ws, vs, **kw)


def test_shapes_must_chain_through_the_pool():
    Ws = [np.ones((6, 2)), np.ones((6, 6)), np.ones((4, 6)), np.ones((2, 4))]
    vs = [np.zeros(6), np.zeros(6), np.zeros(4), np.zeros(2)]
    with pytest.raises(ValueError, match="max-pools its 6 units to 3 outputs"):
        DGN(Ws, vs, activation=["relu", "max", "abs"], pool_sizes=[None, 2, None])


def test_replace_keeps_the_pools_and_equality_sees_them():
    net = _net()
    assert net.replace() == net
    other = net.replace(pool_sizes=[None, [2, 2, 2], None],
                        weights=[net.weights[0], net.weights[1], np.ones((4, 3)),
                                 net.weights[3]])
    assert other != net
    assert "max" in repr(net) and "pool_sizes" in repr(net)
    with pytest.raises(ValueError, match="no single slope"):
        _ = net.slope
    with pytest.raises(ValueError, match="no slope"):
        _ = DGN.random((2, 4, 1), activation="max", pool_sizes=[2]).slope


def test_unit_slopes_refuses_max_pooling():
    net = _net()
    with pytest.raises(UnsupportedLayerError, match="unit_slopes"):
        net.unit_slopes()
    err = UnsupportedLayerError("x")
    assert isinstance(err, DGNError) and isinstance(err, NotImplementedError)


# --------------------------------------------------------------------------- EM
def _s1_net() -> DGN:
    # S = 1: relu (5) -> max over [2, 3] -> output 3
    return DGN.random((1, 5, 5, 3), activation=["relu", "max"], pool_sizes=[None, [2, 3]],
                      seed=4, noise_var=0.05)


def _last_hidden(net: DGN, z: np.ndarray) -> np.ndarray:
    """h^{L-1}(z) by the forward pass written out (relu, then the group maxima)."""
    W, v = net.weights, net.biases
    h = np.maximum(z @ W[0].T + v[0], 0)
    u = h @ W[1].T + v[1]
    return np.stack([u[:, 0:2].max(1), u[:, 2:5].max(1)], axis=1)


@pytest.mark.filterwarnings("ignore::dgn_core.exceptions.ConvergenceWarning")
def test_em_last_layer_of_a_max_net_is_the_quadrature_least_squares_solution():
    """One EM iteration with update=('last',) on a max net equals the M-step computed from
    posterior moments by quadrature: W~* = (sum_n x_n E[h~|x_n]^T)(sum_n E[h~ h~^T|x_n])^-1
    with h~ = [h^{L-1}(z); 1]. Quadrature: a fine trapezoid grid on [-9, 9] (the posterior
    has negligible mass outside), error ~1e-9 relative; tolerance 1e-6."""
    import fastpath

    net = _s1_net()
    X, _ = net.sample(40, seed=7)
    X = X + 0.1 * np.random.default_rng(8).normal(size=X.shape)  # not the net's own data
    res = fastpath.fit_em(net, X, max_iter=1, tol=0.0, update=("last",))
    z = np.linspace(-9, 9, 360_001)[:, None]
    H = np.concatenate([_last_hidden(net, z), np.ones((len(z), 1))], axis=1)
    G = net.forward(z)
    nv = net.noise_var_vector
    logw = (-0.5 * np.sum((X[:, None, :] - G[None]) ** 2 / nv, axis=2) - 0.5 * z[:, 0] ** 2)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    Eh = w @ H                                     # (N, 3)
    Ehh = np.einsum("nz,zi,zj->ij", w, H, H)       # sum_n E[h~ h~^T | x_n]
    Wt = (X.T @ Eh) @ np.linalg.inv(Ehh)           # (D, 3): [W_L, v_L]
    Wt_em = np.concatenate([res.model.weights[-1], res.model.biases[-1][:, None]], axis=1)
    # measured 2.5e-11 relative
    assert np.max(np.abs(Wt_em - Wt)) < 1e-6 * np.max(np.abs(Wt))
    # the inner layers did not move, the log-likelihood did not decrease
    assert all(np.array_equal(a, b) for a, b in zip(res.model.weights[:-1], net.weights[:-1]))
    assert res.log_likelihood[1] >= res.log_likelihood[0]


@pytest.mark.filterwarnings("ignore::dgn_core.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("seed", [0, 1])
def test_em_on_max_nets_is_monotone_and_resumes(seed, tmp_path):
    import fastpath

    net = DGN.random((2, 6, 6, 3), activation=["relu", "max"], pool_sizes=[None, 2],
                     seed=seed, noise_var=0.1)
    X, _ = net.sample(60, seed=seed + 10)
    X = X + 0.2 * np.random.default_rng(seed).normal(size=X.shape)
    ckpt = tmp_path / "em.npz"
    res = fastpath.fit_em(net, X, max_iter=4, tol=0.0, update=("last", "noise"),
                          update_prior_cov=True, checkpoint=ckpt)
    ll = np.asarray(res.log_likelihood)
    # exact EM: non-decreasing up to rounding of log p(X) (1e-9 relative)
    assert np.all(np.diff(ll) >= -1e-9 * np.abs(ll[:-1]))
    assert ll[-1] > ll[0]
    assert res.model.pool_sizes == net.pool_sizes
    more = fastpath.fit_em(net, X, max_iter=6, tol=0.0, update=("last", "noise"),
                           update_prior_cov=True, checkpoint=ckpt, resume=True)
    assert more.log_likelihood[:5] == pytest.approx(res.log_likelihood, rel=1e-12)
    assert len(more.log_likelihood) == 7


def test_cli_fit_trains_the_last_layer_of_a_max_net_and_resumes(tmp_path):
    import json

    from dgn_tools.cli import main

    net = DGN.random((1, 6, 6, 2), activation=["relu", "max"], pool_sizes=[None, 3], seed=0,
                     noise_var=0.05)
    net.save(tmp_path / "m.npz")
    base = ["fit", "--init", str(tmp_path / "m.npz"), "--n", "200"]
    run = tmp_path / "run"
    assert main(base + ["--update", "last,noise", "--max-iter", "2", "--out", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())   # strict JSON: no NaN
    assert summary["activation"] == "relu,max" and summary["slope"] == [0.0, None]
    assert summary["pool_sizes"] == [None, [3, 3]]
    assert main(["fit", "--resume", str(run), "--max-iter", "3"]) == 0
    model = DGN.load(run / "model.npz")
    assert model.pool_sizes == net.pool_sizes
    assert all(np.array_equal(a, b) for a, b in zip(model.weights[:-1], net.weights[:-1]))
