"""Per-layer activations and slopes: the model, its files, the exact checks, EM and the CLI.

The distributions and the partitions of such nets are cross-checked where every net is
(tests/partition_suite.py, test_distributions_cross.py, test_em*.py carry mixed nets); here
the model's own contract.
"""

from __future__ import annotations

import json
import warnings
from fractions import Fraction

import numpy as np
import pytest

from dgn_core.exceptions import ModelFileError
from dgn_core.model import DGN


def _mixed(seed: int = 0) -> DGN:
    return DGN.random((2, 5, 4, 3, 2), activation=["relu", "abs", "leaky_relu"], slope=0.3,
                      seed=seed, noise_var=0.05)


def test_attributes_and_forward_follow_each_layer():
    net = _mixed()
    assert net.activation == "mixed" and net.mixed_activations
    assert net.activations == ("relu", "abs", "leaky_relu")
    assert net.slopes == (0.0, -1.0, 0.3)
    np.testing.assert_array_equal(net.unit_slopes(), [0.0] * 5 + [-1.0] * 4 + [0.3] * 3)
    with pytest.raises(ValueError, match="no single slope"):
        _ = net.slope
    assert net.describe_activations() == "relu, abs, leaky_relu(0.3)"
    Z = np.random.default_rng(0).normal(size=(50, 2)) * 2
    h = Z
    acts = [lambda t: np.maximum(t, 0), np.abs, lambda t: np.where(t > 0, t, 0.3 * t)]
    for l, (W, v) in enumerate(zip(net.weights, net.biases)):
        h = h @ W.T + v
        if l < 3:
            h = acts[l](h)
    np.testing.assert_array_equal(net.forward(Z), h)
    # the exact forward pass uses each layer's slope too
    z = [Fraction(1, 3), Fraction(-2)]
    exact = [float(t) for t in net.forward_exact(z)]
    np.testing.assert_allclose(exact, net.forward(np.array([[1 / 3, -2.0]]))[0], rtol=1e-14)


def test_uniform_lists_are_one_activation():
    a = DGN.random((1, 3, 3, 2), activation=["leaky_relu", "leaky_relu"], slope=[0.2, 0.2], seed=1)
    b = DGN.random((1, 3, 3, 2), activation="leaky_relu", slope=0.2, seed=1)
    assert a == b and a.activation == "leaky_relu" and a.slope == 0.2
    c = DGN.random((1, 3, 3, 2), activation="leaky_relu", slope=[0.2, 0.25], seed=1)
    assert c.mixed_activations and c != b
    # replace keeps the per-layer activations; random nets can be drawn with them
    assert _mixed().replace(noise_var=0.5).activations == _mixed().activations
    assert "activation=['relu', 'abs', 'leaky_relu']" in repr(_mixed())


@pytest.mark.parametrize("kw, err, match", [
    (dict(activation=["relu"]), ValueError, "1 activation.*3 hidden layer"),
    (dict(activation=["relu", "abs", "tanh"]), ValueError, "hidden layer 3: activation must be"),
    (dict(activation=["relu", "abs", "relu"], slope=[0.0, 0.0, 0.0]), ValueError,
     "hidden layer 2: abs has slope -1"),
    (dict(activation=["leaky_relu"] * 3, slope=[0.1, 0.2]), ValueError, "slope lists 2"),
    (dict(activation=["leaky_relu"] * 3, slope=[0.1, 1.5, 0.2]), ValueError,
     "hidden layer 2: leaky_relu needs 0 < slope < 1"),
    (dict(activation=["leaky_relu"] * 3, slope=[0.1, "a", 0.2]), TypeError, "slope"),
    (dict(activation=7), TypeError, "activation must be a name or a list"),
])
def test_bad_per_layer_activations(kw, err, match):
    with pytest.raises(err, match=match):
        DGN.random((2, 4, 4, 4, 2), **kw)


def test_model_files_format_2_round_trip_and_format_1_kept(tmp_path):
    net = _mixed(3)
    p = net.save(tmp_path / "m.npz")
    with np.load(p) as f:
        assert int(f["format_version"]) == 2
        assert f["activation"].tobytes() == b"relu,abs,leaky_relu"
        np.testing.assert_array_equal(f["slope"], [0.0, -1.0, 0.3])
    assert DGN.load(p) == net
    j = net.to_json(tmp_path / "m.json")
    obj = json.loads(j.read_text())
    assert obj["format_version"] == 2 and obj["activation"] == ["relu", "abs", "leaky_relu"]
    assert DGN.from_json(j) == net
    # one activation throughout is still written as format 1 (older readers take it)
    q = DGN.random((2, 3, 3, 2), activation="abs", seed=1).save(tmp_path / "u.npz")
    with np.load(q) as f:
        assert int(f["format_version"]) == 1 and f["slope"].ndim == 0


def test_damaged_format_2_files_name_the_entry(tmp_path):
    net = _mixed(4)
    p = net.save(tmp_path / "m.npz")
    with np.load(p) as f:
        data = {k: f[k] for k in f.files}
    cases = [
        (dict(slope=np.array([0.0, -1.0])), "one value per hidden layer"),
        (dict(activation=np.frombuffer(b"relu,abs", dtype=np.uint8).copy()),
         "one value per hidden layer"),
        (dict(activation=np.frombuffer(b"relu,abs,swish", dtype=np.uint8).copy()), "'swish'"),
        (dict(slope=np.array([0.0, -1.0, 2.0])), "hidden layer 3"),
        # a per-layer list in a format 1 file is refused
        (dict(format_version=np.array(1)), "got 'relu,abs,leaky_relu'"),
    ]
    for i, (change, words) in enumerate(cases):
        bad = dict(data, **change)
        path = tmp_path / f"bad{i}.npz"
        np.savez(path, **bad)
        with pytest.raises(ModelFileError, match=words):
            DGN.load(path)


def test_exact_lemma_checks_hold_on_a_mixed_net():
    """The exact path's partition checks (Lemma 3 bijection of patterns and regions, tiling,
    region maps, Corollary 1) on a net with a different activation in every layer."""
    pytest.importorskip("cdd")
    from dgn_tools.checks import partition_checks as pc
    from verified_dgn.exact_partition import partition

    net = DGN.random((2, 4, 4, 3, 2), activation=["abs", "leaky_relu", "relu"], slope=0.25,
                     seed=21)
    P = partition(net)
    assert len(P) > 10
    for check in (pc.check_lemma3, pc.check_tiling, pc.check_affine_maps, pc.check_corollary1):
        kw = {"partition": P} if "partition" in check.__code__.co_varnames else {}
        result = check(net=net, **kw)
        assert result.passed, (check.__name__, result)


def test_em_resume_keeps_per_layer_activations(tmp_path):
    from dgn_core.exceptions import ConvergenceWarning
    from fastpath.em import fit_em

    net = DGN.random((1, 4, 4, 2), activation=["abs", "leaky_relu"], slope=0.2, seed=2,
                     noise_var=0.1)
    X = net.sample(120, seed=3)[0]
    ck = tmp_path / "ck.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        first = fit_em(net, X, max_iter=2, tol=0.0, checkpoint=ck)
        resumed = fit_em(net, X, max_iter=4, tol=0.0, checkpoint=ck, resume=True)
        straight = fit_em(net, X, max_iter=4, tol=0.0)
    assert first.model.activations == ("abs", "leaky_relu") and first.model.slopes == (-1.0, 0.2)
    assert resumed.model == straight.model
    assert np.all(np.diff(straight.log_likelihood) >= -1e-9 * abs(straight.log_likelihood[0]))


def test_cli_fit_with_one_activation_per_layer(tmp_path, capsys):
    from dgn_tools.cli import main

    args = ["fit", "--activation", "abs,leaky_relu", "--slope", "0.2", "--max-iter", "2",
            "--n", "200"]
    assert main(args + ["--widths", "4,4", "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["activation"] == "abs,leaky_relu" and summary["slope"] == [-1.0, 0.2]
    model = DGN.load(tmp_path / "run" / "model.npz")
    assert model.activations == ("abs", "leaky_relu") and model.slopes == (-1.0, 0.2)
    capsys.readouterr()
    assert main(args + ["--widths", "4", "--out", str(tmp_path / "bad")]) == 2
    assert "2 activation(s) but the net has 1 hidden layer" in capsys.readouterr().err
