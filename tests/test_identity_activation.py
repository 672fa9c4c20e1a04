"""The ``identity`` activation (slope 1, a linear hidden layer without a kink).

The independent check throughout: a net with an identity layer computes the same function
as the net in which that layer is multiplied out (``W' = W_{l+1} W_l``, ``v' = W_{l+1} v_l +
v_{l+1}``). The weights below are small dyadic rationals, so that product is exact in float64
and the two nets are the same function exactly; their exact partitions must then be the same
regions (patterns restricted to the units with a kink, facets, vertices, maps) bit for bit.
The fast partition is compared with the exact one with the tolerances of
``tests/test_partition_cross.py`` (same ``compare``).
"""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest

import fastpath
from dgn_core.regions import layer_maps, region_inequalities
from tests.conftest import needs_cdd
from verified_dgn import DGN


def _dyadic_net(widths, acts, seed, noise_var=0.05, quarter=4):
    """Entries k / quarter with small integers k: every product of two layers is exact."""
    rng = np.random.default_rng(seed)
    Ws = [rng.integers(-quarter, quarter + 1, size=(b, a)) / quarter
          for a, b in zip(widths[:-1], widths[1:])]
    vs = [rng.integers(-quarter, quarter + 1, size=b) / quarter for b in widths[1:]]
    # no zero rows: every unit with a kink has a hyperplane
    for W in Ws:
        W[np.all(W == 0, axis=1), 0] = 1.0
    return DGN(Ws, vs, activation=acts, noise_var=noise_var)


def _multiplied_out(net: DGN) -> DGN:
    """The net with every identity layer multiplied into the next one (by hand)."""
    Ws, vs, acts = [net.weights[0]], [net.biases[0]], []
    for l in range(1, net.n_layers):
        a = net.activations[l - 1]
        if a == "identity":
            Ws[-1] = net.weights[l] @ Ws[-1]
            vs[-1] = net.weights[l] @ vs[-1] + net.biases[l]
        else:
            acts.append(a)
            Ws.append(net.weights[l])
            vs.append(net.biases[l])
    return DGN(Ws, vs, activation=acts, noise_var=net.noise_var)


NETS = {
    "relu-identity-abs": ((2, 4, 3, 4, 2), ["relu", "identity", "abs"]),
    "identity-first": ((2, 3, 4, 2), ["identity", "leaky_relu"]),
    "identity-last": ((2, 4, 3, 3), ["abs", "identity"]),
    "two-identities": ((2, 3, 2, 3, 4, 2), ["relu", "identity", "identity", "relu"]),
}


# --------------------------------------------------------------------------- the model
def test_slope_is_fixed_at_one():
    W = [np.ones((2, 1)), np.ones((2, 2)), np.ones((1, 2))]
    v = [np.zeros(2), np.zeros(2), np.zeros(1)]
    net = DGN(W, v, activation=["relu", "identity"])
    assert net.slopes == (0.0, 1.0) and net.mixed_activations
    assert DGN(W, v, activation=["relu", "identity"], slope=[None, 1.0]) == net
    with pytest.raises(ValueError, match="identity has slope 1"):
        DGN(W, v, activation=["relu", "identity"], slope=[None, 0.5])
    # one slope for the leaky layers does not touch the identity layer
    leaky = DGN(W, v, activation=["leaky_relu", "identity"], slope=0.2)
    assert leaky.slopes == (0.2, 1.0)
    assert DGN(W, v, activation="identity").describe_activations() == "identity"
    assert net.describe_activations() == "relu, identity"
    assert net.kink_units.tolist() == [True, True, False, False]


def test_forward_and_patterns_by_hand():
    W1 = np.array([[1.0, -1.0], [0.5, 2.0]])
    W2 = np.array([[1.0, 1.0], [-1.0, 0.0], [0.0, 2.0]])
    W3 = np.array([[1.0, -2.0, 0.5]])
    v1, v2, v3 = np.array([0.0, -1.0]), np.array([-3.0, 0.0, 1.0]), np.array([0.5])
    net = DGN([W1, W2, W3], [v1, v2, v3], activation=["relu", "identity"])
    Z = np.array([[1.0, 2.0], [-2.0, 0.5], [0.0, 0.0]])
    h1 = Z @ W1.T + v1
    a1 = np.maximum(h1, 0.0)
    h2 = a1 @ W2.T + v2
    x = h2 @ W3.T + v3  # identity: no activation on h2
    np.testing.assert_array_equal(net.forward(Z), x)
    q = net.sign_patterns(Z)
    np.testing.assert_array_equal(q[:, :2], np.where(h1 >= 0, 1, -1))
    assert np.any(h2 < 0)  # the identity entries are +1 even where h2 < 0
    np.testing.assert_array_equal(q[:, 2:], 1)
    for z in Z:
        assert net.forward_exact(z.tolist()) == [Fraction(t) for t in net.forward(z[None])[0]]


def test_pattern_rules_and_zero_rows():
    net = _dyadic_net((2, 3, 2, 2), ["relu", "identity"], seed=1)
    with pytest.raises(ValueError, match="identity"):
        layer_maps(net, [1, -1, 1, -1, 1])
    q = [1, -1, 1, 1, 1]
    for exact in (False, True):
        C, d = region_inequalities(net, q, exact=exact)
        assert C.shape == (5, 2)
        assert all(t == 0 for t in np.ravel(C[3:])) and all(t == 0 for t in d[3:])
        assert any(t != 0 for t in np.ravel(C[:3]))
    # the map: slope 1 passes h2 on unchanged
    A, b = layer_maps(net, q)[1:]
    D1 = np.diag([1.0, 0.0, 1.0])
    np.testing.assert_allclose(A, net.weights[2] @ net.weights[1] @ D1 @ net.weights[0],
                               rtol=0, atol=0)


# --------------------------------------------------------------------------- partitions
def _check_against_multiplied_out(P, Pc, net):
    """P (of net) and Pc (of the net multiplied out): the same regions."""
    keep = np.flatnonzero(net.kink_units)
    assert len(P) == len(Pc)
    assert np.all(P.sign_matrix[:, ~net.kink_units] == 1)
    by_pattern = {tuple(np.asarray(r.signs)[keep].tolist()): r for r in P}
    assert set(by_pattern) == {r.signs for r in Pc}
    for rc in Pc:
        r = by_pattern[rc.signs]
        assert [tuple(int(keep[k]) for k in u) for u in rc.facet_units] == list(r.facet_units)
        for a, b in ((r.A, rc.A), (r.b, rc.b), (r.C, rc.C), (r.d, rc.d),
                     (r.vertices, rc.vertices), (r.rays, rc.rays)):
            if r.exact:
                assert np.array_equal(a, b)   # exact: the same rationals
            else:
                np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float),
                                           rtol=1e-12, atol=1e-12)
        assert [tuple(np.asarray(P[j].signs)[keep].tolist()) for j in r.neighbors] == \
            [Pc[j].signs for j in rc.neighbors]


@needs_cdd
@pytest.mark.parametrize("name", sorted(NETS))
def test_exact_partition_equals_multiplied_out(name):
    from verified_dgn import partition

    widths, acts = NETS[name]
    net = _dyadic_net(widths, acts, seed=3)
    comp = _multiplied_out(net)
    # the dyadic weights make the product exact: the same function (exact arithmetic)
    for z in np.random.default_rng(0).integers(-8, 9, size=(10, net.latent_dim)) / 4:
        assert net.forward_exact(z.tolist()) == comp.forward_exact(z.tolist())
    P, Pc = partition(net), partition(comp)
    assert len(P) > 1
    _check_against_multiplied_out(P, Pc, net)


@needs_cdd
@pytest.mark.parametrize("name", sorted(NETS))
def test_fast_partition_equals_exact_and_multiplied_out(name):
    from tests.test_partition_cross import compare
    from verified_dgn import partition

    widths, acts = NETS[name]
    net = _dyadic_net(widths, acts, seed=3)
    Pf = fastpath.partition(net)
    worst = compare(partition(net), Pf)
    assert worst["facet"] < 1e-13 and worst["vertex"] < 1e-11
    _check_against_multiplied_out(Pf, fastpath.partition(_multiplied_out(net)), net)
    # every region's interior point has the region's pattern (identity entries +1)
    ips = np.array([r.interior_point for r in Pf])
    np.testing.assert_array_equal(net.sign_patterns(ips), Pf.sign_matrix)


@needs_cdd
@pytest.mark.parametrize("widths,acts,seed", [
    ((2, 6, 4, 6, 2), ["relu", "identity", "abs"], 1),
    ((2, 5, 3, 5, 3), ["leaky_relu", "identity", "relu"], 2),
    ((3, 5, 2, 5, 2), ["abs", "identity", "relu"], 3),
    ((2, 4, 4, 4, 4, 2), ["identity", "relu", "identity", "abs"], 4),
])
def test_fast_partition_equals_exact_random_weights(widths, acts, seed):
    """Weights that are not dyadic: the fast path's folded product W_{l+1} W_l is rounded,
    the exact path's is not. Measured (facet, vertex): below 7e-16 and 8e-14 on these nets;
    the tolerances are test_partition_cross's."""
    from tests.test_partition_cross import compare
    from verified_dgn import partition

    net = DGN.random(widths, activation=acts, slope=0.2, seed=seed)
    worst = compare(partition(net), fastpath.partition(net))
    assert worst["facet"] < 1e-13 and worst["vertex"] < 1e-11


@needs_cdd
def test_identity_with_max_pooling():
    from tests.test_partition_cross import compare
    from verified_dgn import partition

    rng = np.random.default_rng(5)
    Ws = [rng.integers(-4, 5, size=s) / 4 for s in [(4, 2), (3, 2), (2, 3)]]
    vs = [rng.integers(-4, 5, size=s[0]) / 4 for s in [(4, 2), (3, 2), (2, 3)]]
    net = DGN(Ws, vs, activation=["max", "identity"], pool_sizes=[[2, 2], None])
    comp = DGN([Ws[0], Ws[2] @ Ws[1]], [vs[0], Ws[2] @ vs[1] + vs[2]], activation=["max"],
               pool_sizes=[[2, 2]])
    P = partition(net)
    _check_against_multiplied_out(P, partition(comp), net)
    compare(P, fastpath.partition(net))


def test_all_identity_is_one_region():
    net = _dyadic_net((2, 3, 3, 2), "identity", seed=2)
    P = fastpath.partition(net)
    assert len(P) == 1 and P[0].signs == (1,) * 6 and P[0].n_facets == 0
    np.testing.assert_allclose(P[0].A, net.weights[2] @ net.weights[1] @ net.weights[0],
                               rtol=1e-15)


# --------------------------------------------------------------------------- distributions
def test_log_marginal_equals_multiplied_out():
    net = _dyadic_net((2, 4, 3, 4, 2), ["relu", "identity", "abs"], seed=3, noise_var=0.1)
    comp = _multiplied_out(net)
    X, _ = net.sample(20, seed=1)
    a, b = fastpath.log_marginal(net, X), fastpath.log_marginal(comp, X)
    # same regions and maps to rounding (A: rtol 1e-12): log p agrees to 1e-12 relative
    np.testing.assert_allclose(a, b, rtol=1e-12)


@needs_cdd
def test_exact_log_marginal_s1():
    import verified_dgn

    net = _dyadic_net((1, 3, 2, 2), ["relu", "identity"], seed=4, noise_var=0.25)
    comp = _multiplied_out(net)
    X = np.array([[0.5, -0.25], [1.0, 1.0]])
    a = verified_dgn.log_marginal(net, X, dps=30)
    b = verified_dgn.log_marginal(comp, X, dps=30)
    assert [float(t) for t in a] == pytest.approx([float(t) for t in b], rel=1e-25, abs=0)
    assert [float(t) for t in a] == pytest.approx(fastpath.log_marginal(net, X), rel=1e-12)


# --------------------------------------------------------------------------- EM
@needs_cdd
def test_em_step_fast_equals_exact():
    from tests.test_em_exact import _compare

    net = DGN.random((1, 3, 2, 2), activation=["relu", "identity"], seed=5, noise_var=0.1)
    X, _ = net.sample(8, seed=1)
    X = X + 0.1 * np.random.default_rng(1).standard_normal(X.shape)
    _compare(net, X)


def test_em_monotone_with_an_identity_layer():
    from fastpath import em as E
    from tests.test_em import _assert_monotone, _ll

    net = DGN.random((1, 4, 2, 4, 2), activation=["leaky_relu", "identity", "abs"], slope=0.2,
                     seed=7, noise_var=0.1)
    X, _ = net.sample(40, seed=11)
    X = X + 0.1 * np.random.default_rng(12).standard_normal(X.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", E.ConvergenceWarning)
        res = E.fit_em(net, X, max_iter=4, tol=0.0)
    _assert_monotone(res)
    assert res.log_likelihood[-1] > res.log_likelihood[0]
    assert res.log_likelihood[-1] == pytest.approx(_ll(res.model, X), rel=1e-9)
    assert res.model.activations == net.activations and res.model.slopes == net.slopes
    # every layer moved, the identity layer's weights included
    for W0, W1 in zip(net.weights, res.model.weights):
        assert not np.array_equal(W0, W1)


# --------------------------------------------------------------------------- files, torch, CLI
def test_model_file_and_json_round_trip(tmp_path):
    net = DGN.random((2, 4, 3, 2), activation=["relu", "identity"], seed=1, noise_var=0.2)
    assert net.format_version == 2
    path = net.save(tmp_path / "m.npz")
    back = DGN.load(path)
    assert back == net and back.activations == ("relu", "identity")
    assert back.slopes == (0.0, 1.0)
    assert DGN.from_json(net.to_json(tmp_path / "m.json")) == net
    one = DGN.random((2, 3, 2), activation="identity", seed=2)
    assert one.format_version == 1
    assert DGN.load(one.save(tmp_path / "one.npz")) == one
    assert DGN.from_json(one.to_json(tmp_path / "one.json")) == one


def test_torch_round_trip_is_bit_exact():
    torch = pytest.importorskip("torch")
    from fastpath.torch_interop import IdentityActivation, from_torch, to_torch

    net = DGN.random((2, 4, 3, 4, 2), activation=["relu", "identity", "abs"], seed=3,
                     noise_var=0.1)
    mod = to_torch(net)
    assert isinstance(mod[3], IdentityActivation)
    back = from_torch(mod, noise_var=0.1)
    assert back == net
    for a, b in zip(back.weights, net.weights):
        assert np.array_equal(a, b)
    Z = np.random.default_rng(0).normal(size=(5, 2))
    with torch.no_grad():
        out = mod(torch.from_numpy(Z)).numpy()
    np.testing.assert_allclose(out, net.forward(Z), rtol=1e-13, atol=1e-13)
    # nn.LeakyReLU(1.0) is the identity activation too
    lin = [torch.nn.Linear(2, 3, dtype=torch.float64), torch.nn.LeakyReLU(1.0),
           torch.nn.Linear(3, 2, dtype=torch.float64)]
    assert from_torch(torch.nn.Sequential(*lin), noise_var=0.1).activations == ("identity",)
    # nn.Identity between two Linear modules stays an affine no-op: one composed layer
    seq = torch.nn.Sequential(lin[0], torch.nn.Identity(), lin[2])
    comp = from_torch(seq, noise_var=0.1)
    assert comp.n_layers == 1 and comp.widths == (2, 2)


def test_cli_fit_with_an_identity_layer(tmp_path, capsys):
    from dgn_tools.cli import main

    X = np.random.default_rng(0).standard_normal((60, 3)) * [1.0, 0.5, 0.2]
    np.save(tmp_path / "x.npy", X)
    run = tmp_path / "r"
    assert main(["fit", "--data", str(tmp_path / "x.npy"), "--latent-dim", "2",
                 "--widths", "3,2", "--activation", "relu,identity", "--max-iter", "2",
                 "--quiet", "--out", str(run)]) == 0
    m = DGN.load(run / "model.npz")
    assert m.widths == (2, 3, 2, 3) and m.activations == ("relu", "identity")
    assert m.slopes == (0.0, 1.0)


@needs_cdd
def test_independent_checks_pass_on_an_identity_net():
    """The checks' own exact oracles (forward pass, cdd on all rows of eq. 8, tiling, the
    1-D kink sweep) accept the identity layer's rules."""
    from dgn_tools.checks import partition_checks as pc
    from dgn_tools.checks.distribution_reference import kinks_1d

    net = _dyadic_net((2, 4, 3, 4, 2), ["relu", "identity", "abs"], seed=3)
    for check in (pc.check_lemma3, pc.check_corollary1, pc.check_tiling):
        res = check(net=net)
        assert res.passed, res
    one = _dyadic_net((1, 3, 2, 2), ["relu", "identity"], seed=4)
    assert kinks_1d(one) == kinks_1d(_multiplied_out(one))
