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


def test_computations_without_max_pooling_support_refuse_clearly():
    import fastpath
    from fastpath import em as fem

    net = _net()
    X, _ = net.sample(20, seed=0)
    with pytest.raises(UnsupportedLayerError, match=r"fit_em.*hidden layer\(s\) \[2\]"):
        fastpath.fit_em(net, X, max_iter=1)
    with pytest.raises(UnsupportedLayerError, match="em_step"):
        fem.em_step(net, X)
    with pytest.raises(UnsupportedLayerError, match="unit_slopes"):
        net.unit_slopes()
    err = UnsupportedLayerError("x")
    assert isinstance(err, DGNError) and isinstance(err, NotImplementedError)


def test_exact_em_step_refuses_max_pooling():
    pytest.importorskip("cdd")
    from verified_dgn import em as vem

    net = _net()
    X, _ = net.sample(5, seed=0)
    with pytest.raises(UnsupportedLayerError, match="em_step"):
        vem.em_step(net, X)
