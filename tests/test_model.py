"""The shared model type: construction, validation, evaluation, persistence."""

from __future__ import annotations

import pickle
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from dgn_core.regions import layer_maps, region_inequalities
from tests.conftest import damaged_model_file
from verified_dgn import DGN, ModelFileError


def small_net(**kw):
    W1 = np.array([[1.0, -2.0], [0.5, 0.25], [-1.0, 1.0]])
    W2 = np.array([[1.0, 2.0, -1.0], [0.0, 1.0, 3.0]])
    kw.setdefault("activation", "leaky_relu")
    kw.setdefault("slope", 0.1)
    return DGN([W1, W2], [np.array([0.1, -0.2, 0.3]), np.array([1.0, -1.0])], **kw)


def test_attributes_as_given():
    net = small_net(noise_var=0.02)
    assert net.latent_dim == 2 and net.data_dim == 2
    assert net.widths == (2, 3, 2) and net.hidden_widths == (3,)
    assert net.n_hidden_units == 3 and net.n_layers == 2
    assert net.activation == "leaky_relu" and net.slope == 0.1 and net.noise_var == 0.02
    np.testing.assert_array_equal(net.prior_cov, np.eye(2))


def test_forward_matches_hand_computation():
    net = small_net()
    z = np.array([0.3, -0.7])
    W1, W2 = net.weights
    v1, v2 = net.biases
    h = W1 @ z + v1
    expected = W2 @ np.where(h > 0, h, 0.1 * h) + v2
    np.testing.assert_allclose(net.forward(z)[0], expected, rtol=1e-15)
    # and exactly in rationals
    exact = net.forward_exact([Fraction(3, 10), Fraction(-7, 10)])
    np.testing.assert_allclose([float(t) for t in exact], expected, rtol=1e-14)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "abs"])
def test_region_affine_map_equals_network(activation):
    net = DGN.random((2, 5, 4, 3), activation=activation, seed=3)
    Z = np.random.default_rng(0).normal(size=(50, 2))
    Q = net.sign_patterns(Z)
    for z, q in zip(Z, Q):
        _, A, b = layer_maps(net, q)
        np.testing.assert_allclose(A @ z + b, net.forward(z)[0], rtol=1e-12, atol=1e-12)
        C, d = region_inequalities(net, q)
        assert np.all(C @ z <= d + 1e-12)


def test_region_affine_map_exact():
    net = DGN.random((2, 4, 3, 2), activation="leaky_relu", slope=0.2, seed=1)
    z = [Fraction(1, 3), Fraction(-2, 7)]
    q = net.sign_patterns(np.array([[float(t) for t in z]]))[0]
    _, A, b = layer_maps(net, q, exact=True)
    gz = A @ np.array(z, dtype=object) + b
    assert list(gz) == net.forward_exact(z)
    C, d = region_inequalities(net, q, exact=True)
    assert all(r <= s for r, s in zip(C @ np.array(z, dtype=object), d))


def test_sample_shapes_and_reproducible():
    net = DGN.random((2, 8, 3), seed=0, noise_var=0.05)
    X1, Z1 = net.sample(100, seed=7)
    X2, Z2 = net.sample(100, seed=7)
    assert X1.shape == (100, 3) and Z1.shape == (100, 2)
    np.testing.assert_array_equal(X1, X2)
    # the noise has the stated variance: residual variance within 5 sigma of 0.05
    X, Z = net.sample(20000, seed=1)
    r = X - net.forward(Z)
    assert abs(r.var() - 0.05) < 5 * 0.05 * np.sqrt(2 / r.size)


def test_random_init_schemes():
    torch_net = DGN.random((3, 16, 2), seed=0)
    bound = 1 / np.sqrt(3)
    assert np.abs(torch_net.weights[0]).max() <= bound
    assert np.abs(torch_net.biases[0]).max() <= bound
    he = DGN.random((3, 400, 2), seed=0, init="he")
    assert np.all(he.biases[0] == 0)
    assert abs(he.weights[0].var() - 2 / 3) < 0.1


@pytest.mark.parametrize("bad, match", [
    (dict(weights=[np.ones((3, 2)), np.ones((2, 4))]), "do not chain"),
    (dict(weights=[np.array([[np.nan, 1.0]])], biases=[np.zeros(1)]), "NaN"),
    (dict(weights=[np.array([[np.inf, 1.0]])], biases=[np.zeros(1)]), "infinite"),
    (dict(noise_var=-1.0), "positive"),
    (dict(noise_var=0.0), "positive"),
    (dict(noise_var=np.ones(5)), "shape"),
    (dict(noise_var=float("nan")), "NaN"),
    (dict(activation="tanh"), "activation"),
    (dict(activation="relu", slope=0.2), "slope"),
    (dict(activation="leaky_relu", slope=1.5), "slope"),
    (dict(activation="abs", slope=0.5), "slope"),
    (dict(biases=[np.zeros(3), np.zeros(3)]), "biases"),
])
def test_validation_errors(bad, match):
    kw = dict(weights=[np.ones((3, 2)), np.ones((2, 3))], biases=[np.zeros(3), np.zeros(2)],
              activation="relu", noise_var=0.1)
    kw.update(bad)
    if "weights" in bad and "biases" not in bad:
        kw["biases"] = [np.zeros(W.shape[0]) for W in bad["weights"]]
    with pytest.raises(ValueError, match=match):
        DGN(**kw)


def test_latent_of_wrong_width():
    net = small_net()
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        net.forward(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        net.forward(np.array([[np.nan, 0.0]]))


def test_save_load_roundtrip(tmp_path):
    net = small_net(noise_var=np.array([0.1, 0.2]))
    p = net.save(tmp_path / "m.npz")
    assert DGN.load(p) == net
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind


def test_load_rejects_pickle(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, format=np.array("verified_dgn.DGN"), W0=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="pickled"):
        DGN.load(p)
    p2 = tmp_path / "pickle.npz"
    p2.write_bytes(pickle.dumps(small_net().weights))
    with pytest.raises(ModelFileError):
        DGN.load(p2)


def test_load_rejects_garbage_and_foreign_npz(tmp_path):
    p = tmp_path / "garbage.npz"
    p.write_bytes(b"not a zip file at all")
    with pytest.raises(ModelFileError, match="not a readable"):
        DGN.load(p)
    q = tmp_path / "other.npz"
    np.savez(q, a=np.arange(3))
    with pytest.raises(ModelFileError, match="not a saved DGN"):
        DGN.load(q)
    # truncated save
    r = small_net().save(tmp_path / "ok.npz")
    data = r.read_bytes()
    t = tmp_path / "truncated.npz"
    t.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError):
        DGN.load(t)


def test_fastpath_imports_without_cddlib():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'cdd' or name.startswith('cdd.'):\n"
        "            raise ImportError('cddlib blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import fastpath, numpy as np\n"
        "net = fastpath.DGN.random((2, 6, 2), seed=0)\n"
        "P = fastpath.partition(net)\n"
        "print(len(P))\n"
        "assert 'cdd' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) > 1


def _damaged_copy(tmp_path, **changes):
    """A (2, 8, 8, 2) model file with some entries replaced (None: removed)."""
    return damaged_model_file(tmp_path, "damaged.npz", **changes)


W1_GOOD = DGN.random((2, 8, 8, 2), seed=0).weights[1]


# (entry changes, words the message must contain besides the file name)
@pytest.mark.parametrize("changes, words", [
    # n_layers disagreeing with the stored layers used to load as a (2, 8, 8) network
    (dict(n_layers=np.array(2)), ["'n_layers'", "unexpected W2"]),
    (dict(n_layers=np.array(4)), ["'n_layers'", "missing W3"]),
    (dict(n_layers=np.array(0)), ["'n_layers'", ">= 1"]),
    (dict(n_layers=np.array([3])), ["'n_layers'", "single integer"]),  # was a TypeError
    (dict(n_layers=np.array(3.0)), ["'n_layers'", "single integer"]),
    (dict(n_layers=None), ["missing entry 'n_layers'"]),
    (dict(format_version=np.array("1")), ["'format_version'", "integer"]),
    (dict(format_version=np.array(4)), ["newer version"]),
    (dict(format_version=np.array(0)), ["'format_version'"]),
    (dict(slope=np.array("0.0")), ["'slope'", "real numbers"]),
    (dict(slope=np.array([0.0])), ["'slope'", "single number"]),
    (dict(slope=np.array(0.5)), ["'slope'", "relu has slope 0"]),
    (dict(slope=np.array(np.nan)), ["'slope'", "NaN"]),
    (dict(activation=np.array("tanh")), ["'activation'", "tanh"]),
    (dict(activation=np.array(1)), ["'activation'"]),
    (dict(activation=None), ["missing entry 'activation'"]),
    (dict(noise_var=np.array(0.0)), ["'noise_var'", "positive"]),
    (dict(noise_var=np.array(-1.0)), ["'noise_var'", "positive"]),
    (dict(noise_var=np.array(np.inf)), ["'noise_var'", "infinite"]),
    (dict(noise_var=np.array(0.1 + 1j)), ["'noise_var'", "complex"]),
    (dict(noise_var=np.ones(3)), ["'noise_var'", "shape"]),
    (dict(noise_var=np.ones((2, 2))), ["'noise_var'"]),
    (dict(W1=W1_GOOD > 0), ["'W1'", "bool"]),
    (dict(W1=W1_GOOD.astype(np.complex128)), ["'W1'", "complex"]),
    (dict(W1=W1_GOOD.astype(str)), ["'W1'", "real numbers"]),
    (dict(W1=W1_GOOD[:, :3]), ["'W1'", "inputs"]),
    (dict(W1=W1_GOOD[0]), ["'W1'", "2-dimensional"]),
    (dict(W1=np.full_like(W1_GOOD, np.nan)), ["'W1'", "NaN"]),
    (dict(v1=np.zeros(3)), ["'v1'", "shape"]),
    (dict(v2=None), ["'n_layers'", "missing v2"]),
    (dict(prior_cov=-np.eye(2)), ["prior_cov", "positive definite"]),
    (dict(prior_cov=np.eye(3)), ["prior_cov", "shape"]),
    (dict(extra=np.array(1)), ["unexpected entries", "extra"]),
    (dict(format=np.array("something.else")), ["not a saved DGN model"]),
])
def test_load_checks_every_entry(tmp_path, changes, words):
    path = _damaged_copy(tmp_path, **changes)
    with pytest.raises(ModelFileError) as info:
        DGN.load(path)
    msg = str(info.value)
    assert str(path) in msg
    for word in words:
        assert word in msg, (word, msg)


def test_load_of_a_directory_or_missing_file(tmp_path):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(ModelFileError, match="is a directory"):
        DGN.load(tmp_path / "m.npz")
    with pytest.raises(FileNotFoundError, match="no model file"):
        DGN.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("kw, match", [
    (dict(weights=[np.ones((2, 2)) * (1 + 1j)]), r"weights\[0\] holds complex"),
    (dict(weights=[np.ones((2, 2), dtype=bool)]), r"weights\[0\] holds booleans"),
    (dict(weights=[[["1", "2"], ["3", "4"]]]), r"weights\[0\] .*strings"),
    (dict(biases=[np.zeros(2, dtype=complex)]), r"biases\[0\] holds complex"),
    (dict(weights=[[[1.0, 2.0], [3.0]]]), r"weights\[0\] is not a rectangular"),
    (dict(noise_var=0.1 + 0j), "noise_var holds complex"),
    (dict(noise_var="0.1"), "noise_var .*strings"),
    (dict(noise_var=True), "noise_var holds booleans"),
    (dict(activation="leaky_relu", slope=np.complex128(0.1)), "slope holds complex"),
    (dict(activation="leaky_relu", slope="0.1"), "slope .*strings"),
    # one slope per hidden layer, each a real number
    (dict(weights=[np.eye(2)] * 2, biases=[np.zeros(2)] * 2, activation="leaky_relu",
          slope=[[0.1, 0.2]]), "slope must be a real number"),
])
def test_parameters_must_be_real_numbers(kw, match):
    # np.asarray(..., dtype=float) would drop the imaginary part with only a warning,
    # read booleans as 0/1 and parse strings
    args = dict(weights=[np.eye(2)], biases=[np.zeros(2)])
    args.update(kw)
    with pytest.raises(TypeError, match=match):
        DGN(**args)


def test_parameters_accept_exact_rationals():
    W = np.array([[Fraction(1, 3), Fraction(2)]], dtype=object)
    net = DGN([W], [[Fraction(1, 2)]])
    np.testing.assert_array_equal(net.weights[0], [[1 / 3, 2.0]])


def test_save_replaces_atomically_and_keeps_no_temporary(tmp_path):
    a = DGN.random((2, 3, 2), seed=0)
    b = DGN.random((2, 3, 2), seed=1)
    p = a.save(tmp_path / "m.npz")
    assert b.save(p) == p  # the API overwrites (the command line asks for --force)
    assert DGN.load(p) == b
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.npz"]
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(OSError):
        a.save(tmp_path / "d.npz")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["d.npz", "m.npz"]
