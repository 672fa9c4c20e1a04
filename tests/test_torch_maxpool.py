"""Max-pooling in fastpath.from_torch / to_torch and in the model files (format 3).

Tolerances: an imported max-pool decoder (float64 modules) gives net.forward equal to torch's
forward pass to 1e-12 relative to the largest output (gathering rows per window copies them,
so only the composition of the affine blocks rounds; measured <= 2.3e-16); DGN -> to_torch ->
from_torch is bit-exact, and the exported module's forward equals net.forward to 1e-13
(BLAS summation order). Model files round-trip bit for bit.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import dgn_core._model_file
import dgn_core.model_json
from dgn_core.exceptions import ModelFileError, TorchConversionError
from dgn_core.model import DGN
from dgn_core.model_json import model_schema, model_to_dict
from dgn_tools.schema_check import schema_errors
from tests.conftest import needs_torch


def _group_max():
    from fastpath.torch_interop import GroupMax
    return GroupMax


# (name, builder(nn) -> Sequential with S = 2 latent entries, input_shape or None)
POOL_DECODERS = [
    ("maxpool2d_then_relu",          # non-overlapping; an activation right after the pool
     lambda nn: nn.Sequential(nn.Linear(2, 16), nn.Unflatten(1, (1, 4, 4)), nn.MaxPool2d(2),
                              nn.ReLU(), nn.Flatten(), nn.Linear(4, 3)), None),
    ("conv_relu_maxpool2d_overlap_padding",   # identity block: the pool follows the ReLU
     lambda nn: nn.Sequential(nn.Linear(2, 18), nn.Unflatten(1, (2, 3, 3)),
                              nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(),
                              nn.MaxPool2d(3, stride=1, padding=1), nn.Flatten(),
                              nn.Linear(18, 4)), None),
    ("maxpool2d_dilation_ceil_rect",
     lambda nn: nn.Sequential(nn.Linear(2, 60), nn.Unflatten(1, (2, 5, 6)),
                              nn.MaxPool2d((2, 3), stride=(2, 2), padding=(1, 1),
                                           dilation=(2, 1), ceil_mode=True),
                              nn.Flatten(), nn.LeakyReLU(0.1), nn.Linear(24, 3)), None),
    ("maxpool1d_stride_padding_dilation_ceil",
     lambda nn: nn.Sequential(nn.Linear(2, 14), nn.Unflatten(1, (2, 7)),
                              nn.Conv1d(2, 3, 2), nn.MaxPool1d(3, stride=2, padding=1,
                                                               dilation=2, ceil_mode=True),
                              nn.Flatten(), _abs()(), nn.Linear(9, 3)), None),
    ("pool_of_z_two_pools_pool_last",   # a pool first, two pools in a row, a pool last
     lambda nn: nn.Sequential(nn.MaxPool1d(2, stride=1), nn.Flatten(), nn.Linear(3, 8),
                              nn.Unflatten(1, (2, 4)), nn.MaxPool1d(2, stride=1),
                              nn.MaxPool1d(2), nn.Flatten(), nn.Linear(2, 6),
                              nn.Unflatten(1, (1, 6)), nn.MaxPool1d(3, stride=2, padding=1)),
     (1, 4)),
    ("groupmax_module",
     lambda nn: nn.Sequential(nn.Linear(2, 7), _group_max()([2, 3, 1, 1]), nn.Linear(4, 5),
                              nn.ReLU(), nn.Linear(5, 3)), None),
]


def _abs():
    from fastpath.torch_interop import Abs
    return Abs


def _build(builder, seed=0):
    import torch
    torch.manual_seed(seed)
    return builder(torch.nn).double().eval()


def _torch_out(mod, Z, input_shape):
    import torch
    with torch.no_grad():
        return mod(torch.from_numpy(Z.reshape(len(Z), *input_shape))).reshape(len(Z), -1).numpy()


@needs_torch
@pytest.mark.parametrize("name, builder, shape", POOL_DECODERS, ids=[d[0] for d in POOL_DECODERS])
def test_import_equals_torch_forward(name, builder, shape):
    import fastpath
    mod = _build(builder)
    kw = {"input_shape": shape} if shape else {}
    net = fastpath.from_torch(mod, 0.1, **kw)
    assert net.has_max_pooling
    Z = np.random.default_rng(1).normal(size=(400, net.latent_dim)) * 2
    ref = _torch_out(mod, Z, shape or (2,))
    err = np.abs(net.forward(Z) - ref).max() / np.abs(ref).max()
    assert err <= 1e-12, (name, err)
    # many argmax patterns: the max layers' kinks are crossed, not one region only
    assert len({p.tobytes() for p in net.sign_patterns(Z)}) > 5
    # exported and imported back: bit-exact, and the exported module computes the same
    back = fastpath.from_torch(fastpath.to_torch(net), 0.1)
    assert back == net
    dense = _torch_out(fastpath.to_torch(net), Z, (net.latent_dim,))
    assert np.abs(dense - ref).max() <= 1e-12 * np.abs(ref).max()


@needs_torch
def test_windows_are_torch_windows_and_rows_are_copies():
    """MaxPool2d(3, stride=2, padding=1) of a 4 x 4 map: windows clipped at the padded border
    (sizes 4, 6, 6, 9 per channel), rows of the Linear copied bit for bit, repeated where the
    windows overlap, in torch's (channel, row, column) output order."""
    import fastpath
    torch_nn = pytest.importorskip("torch").nn
    mod = _build(lambda nn: nn.Sequential(nn.Linear(2, 32), nn.Unflatten(1, (2, 4, 4)),
                                          nn.MaxPool2d(3, stride=2, padding=1), nn.Flatten(),
                                          nn.Linear(8, 3)))
    assert isinstance(mod[2], torch_nn.MaxPool2d)
    net = fastpath.from_torch(mod, 0.1)
    assert net.pool_sizes[0] == (4, 6, 6, 9) * 2
    rows = []
    for c in range(2):
        for i0 in (-1, 1):
            for j0 in (-1, 1):
                rows += [16 * c + 4 * i + j for i in range(i0, i0 + 3) for j in range(j0, j0 + 3)
                         if 0 <= i < 4 and 0 <= j < 4]
    W = mod[0].weight.detach().numpy()
    assert net.weights[0].tobytes() == W[rows].tobytes()
    assert net.biases[0].tobytes() == mod[0].bias.detach().numpy()[rows].tobytes()
    assert net.weights[1].tobytes() == mod[4].weight.detach().numpy().tobytes()


@needs_torch
@pytest.mark.parametrize("kw", [
    dict(widths=(2, 8, 3), activation="max", pool_sizes=[2]),
    dict(widths=(3, 9, 5, 4), activation=["max", "relu"], pool_sizes=[[2, 3, 4], None]),
    dict(widths=(2, 5, 6, 7, 3), activation=["leaky_relu", "max", "abs"], slope=[0.2, None, None],
         pool_sizes=[None, [1, 2, 3], None]),
])
def test_dgn_round_trip_through_torch(kw):
    import torch

    import fastpath
    net = DGN.random(seed=4, noise_var=0.05, **kw)
    mod = fastpath.to_torch(net)
    assert sum(isinstance(m, _group_max()) for m in mod) == net.activations.count("max")
    back = fastpath.from_torch(mod, 0.05)
    assert back == net
    for W, W2 in zip(net.weights, back.weights):
        assert W.tobytes() == W2.tobytes()
    Z = np.random.default_rng(0).normal(size=(300, net.latent_dim)) * 3
    with torch.no_grad():
        out = mod(torch.from_numpy(Z)).numpy()
    ref = net.forward(Z)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())
    # pickled modules (GroupMax is created lazily, like Abs) read back the same
    assert fastpath.from_torch(pickle.loads(pickle.dumps(mod)), 0.05) == net
    # float32 export: the max of rounded values, to float32 rounding
    with torch.no_grad():
        out32 = fastpath.to_torch(net, dtype="float32")(torch.from_numpy(Z).float()).numpy()
    assert np.abs(out32 - ref).max() <= 1e-5 * np.abs(ref).max()


@needs_torch
def test_group_max_module():
    import torch
    gm = _group_max()([2, 1, 3])
    x = torch.tensor([[1.0, -2.0, 0.5, -1.0, 4.0, 3.0], [0.0, 0.0, -1.0, 7.0, -8.0, 6.9]],
                     dtype=torch.float64)
    assert gm(x).tolist() == [[1.0, 0.5, 4.0], [0.0, -1.0, 7.0]]
    assert "groups=3" in repr(gm)
    with pytest.raises(ValueError, match="GroupMax over 6 features"):
        gm(x[:, :5])
    with pytest.raises(ValueError, match="positive group sizes"):
        _group_max()([2, 0])


def _seq(*layers):
    import torch
    return torch.nn.Sequential(*layers).double().eval()


@needs_torch
@pytest.mark.parametrize("build, kw, match", [
    (lambda nn: _seq(nn.Linear(1, 8), nn.Unflatten(1, (2, 4)),
                     nn.MaxPool1d(2, return_indices=True), nn.Flatten(), nn.Linear(4, 2)), {},
     r"'2': MaxPool1d\(return_indices=True\) returns a tuple"),
    (lambda nn: _seq(nn.Linear(1, 8), nn.Unflatten(1, (1, 2, 2, 2)), nn.MaxPool3d(2),
                     nn.Flatten(), nn.Linear(1, 2)), {},
     r"'2' is MaxPool3d, which is not supported: the max-pooling modules from_torch reads"),
    (lambda nn: _seq(nn.Linear(1, 8), nn.Unflatten(1, (2, 4)), nn.AdaptiveMaxPool1d(2),
                     nn.Flatten(), nn.Linear(4, 2)), {}, "AdaptiveMaxPool1d, which is not supported"),
    (lambda nn: _seq(nn.Linear(1, 8), nn.MaxPool1d(2), nn.Linear(4, 2)), {},
     r"'1' \(MaxPool1d\) reads a 2-D tensor per sample.*shape \(8,\)"),
    (lambda nn: _seq(nn.Linear(1, 8), nn.Unflatten(1, (2, 4)), nn.MaxPool2d(2),
                     nn.Linear(4, 2)), {}, r"'2' \(MaxPool2d\) reads a 3-D tensor"),
    (lambda nn: _seq(nn.MaxPool1d(2), nn.Flatten(), nn.Linear(2, 2)), {},
     r"starts with the max-pooling layer '0' \(MaxPool1d\).*pass input_shape"),
    (lambda nn: _seq(nn.Linear(1, 8), nn.Unflatten(1, (2, 4)), nn.MaxPool1d(5),
                     nn.Flatten(), nn.Linear(4, 2)), {}, r"'2' \(MaxPool1d\) cannot be applied"),
    (lambda nn: _seq(nn.Linear(1, 6), _group_max()([2, 2]), nn.Linear(2, 2)), {},
     r"GroupMax over 4 features does not chain .* shape \(6,\)"),
    (lambda nn: _seq(nn.Linear(1, 36), nn.Unflatten(1, (1, 6, 6)), nn.MaxPool2d(2),
                     nn.Flatten(), nn.Linear(9, 3)), {"max_entries": 1000},
     r"'2' \(MaxPool2d\): finding its windows takes 36 one-hot inputs of 36 entries "
     r"\(1,296\), above max_entries=1,000"),
    (lambda nn: _seq(nn.Linear(10, 16), nn.Unflatten(1, (1, 4, 4)),
                     nn.MaxPool2d(3, stride=1), nn.Flatten(), nn.Linear(4, 3)),
     {"max_entries": 300},
     r"'2' \(MaxPool2d\): its max layer would have 36 x 10 = 360 entries, above "
     r"max_entries=300"),
    # activations keep their rules: two in a row (no pool between) are still refused
    (lambda nn: _seq(nn.Linear(1, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 2)), {},
     "two activations in a row"),
    (lambda nn: _seq(nn.Linear(1, 8), nn.Unflatten(1, (2, 4)), nn.MaxPool1d(2), nn.ReLU()),
     {}, "ends with an activation"),
])
def test_refusals(build, kw, match):
    import torch

    import fastpath
    with pytest.raises(TorchConversionError, match=match):
        fastpath.from_torch(build(torch.nn), 0.1, **kw)


# ----------------------------------------------------------------------- model files
MAX_NETS = [
    DGN.random((2, 8, 3), activation="max", pool_sizes=[2], seed=1),
    DGN.random((3, 9, 5, 4), activation=["max", "relu"], pool_sizes=[[2, 3, 4], None], seed=2,
               noise_var=[0.1, 0.2, 0.3, 0.4]),
    DGN.random((2, 5, 6, 7, 3), activation=["leaky_relu", "max", "abs"], slope=[0.2, None, None],
               pool_sizes=[None, [1, 2, 3], None], seed=3, prior_cov=[[2.0, 0.5], [0.5, 1.0]]),
]


def _bits(a: DGN, b: DGN) -> bool:
    return a == b and all(x.tobytes() == y.tobytes() for x, y in
                          zip(a.weights + a.biases, b.weights + b.biases))


@pytest.mark.parametrize("net", MAX_NETS, ids=range(len(MAX_NETS)))
def test_model_files_round_trip(tmp_path, net):
    p = net.save(tmp_path / "m.npz")
    assert _bits(DGN.load(p), net)
    with np.load(p) as f:
        assert int(f["format_version"]) == 3
        assert f["activation"].tobytes().decode("ascii") == ",".join(net.activations)
        assert f["pool_counts"].dtype == f["pool_sizes"].dtype == np.int64
        assert f["pool_counts"].tolist() == [len(q) for q in net.pool_sizes]
        assert f["pool_sizes"].tolist() == [k for q in net.pool_sizes for k in q]
        assert np.array_equal(np.isnan(f["slope"]), [a == "max" for a in net.activations])
    j = net.to_json(tmp_path / "m.json")
    obj = json.loads(j.read_text())
    assert obj["format_version"] == 3 and schema_errors(obj, model_schema()) == []
    assert obj["pool_sizes"] == [list(q) if q else None for q in net.pool_sizes]
    assert [s is None for s in obj["slope"]] == [a == "max" for a in net.activations]
    back = DGN.from_json(j)
    assert _bits(back, net)
    assert back.to_json(tmp_path / "m2.json").read_text() == j.read_text()
    assert _bits(DGN.load(back.save(tmp_path / "m2.npz")), net)
    # the layers as the spec says: h_{i+1} = W_i a(h_i) + v_i, a a max over the groups
    h = np.full(net.latent_dim, 0.3)
    for i, layer in enumerate(obj["layers"]):
        h = np.array(layer["W"]) @ h + np.array(layer["v"])
        if i < len(obj["layers"]) - 1 and obj["activation"][i] == "max":
            starts = np.cumsum([0] + obj["pool_sizes"][i][:-1])
            h = np.maximum.reduceat(h, starts)
        elif i < len(obj["layers"]) - 1:
            eta = obj["slope"][i]
            h = np.where(h > 0, h, eta * h)
    np.testing.assert_array_equal(h, net.forward(np.full(net.latent_dim, 0.3))[0])


def test_element_wise_nets_keep_their_formats(tmp_path):
    for net, version in ((DGN.random((2, 4, 3)), 1),
                         (DGN.random((2, 4, 4, 3), activation=["relu", "abs"]), 2)):
        with np.load(net.save(tmp_path / "m.npz")) as f:
            assert int(f["format_version"]) == version
            assert "pool_sizes" not in f.files and "pool_counts" not in f.files
        assert "pool_sizes" not in model_to_dict(net)
        assert model_to_dict(net)["format_version"] == version


def _arrays(tmp_path, net):
    with np.load(net.save(tmp_path / "good.npz")) as f:
        return {k: f[k] for k in f.files}


# MAX_NETS[1]: hidden layer 1 max-pools 9 units into groups (2, 3, 4), hidden layer 2 is relu
@pytest.mark.parametrize("changes, words", [
    (dict(pool_counts=None), ["missing entry 'pool_counts'"]),
    (dict(pool_sizes=None), ["missing entry 'pool_sizes'"]),
    (dict(pool_counts=np.array([3.0, 0.0])), ["'pool_counts'", "integers"]),
    (dict(pool_sizes=np.array([[2, 3, 4]])), ["'pool_sizes'", "1-d"]),
    (dict(pool_counts=np.array([3])), ["'pool_counts'", "one count per hidden layer (2)"]),
    (dict(pool_counts=np.array([2, 0])), ["'pool_counts'", "does not add up"]),
    (dict(pool_counts=np.array([3, 1]), pool_sizes=np.array([2, 3, 4, 1])),
     ["'pool_counts'", "hidden layer 2 (relu) 1 groups", "element-wise layer has 0"]),
    (dict(pool_counts=np.array([0, 3])), ["'pool_counts'", "max-pooling hidden layer 1 no groups"]),
    (dict(pool_counts=np.array([2, 1])), ["'pool_sizes'", "hidden layer 1", "adding up to 5"]),
    (dict(pool_sizes=np.array([2, 0, 7])), ["'pool_sizes'", "< 1 for hidden layer 1"]),
    (dict(pool_sizes=np.array([2, 3, 5])), ["'pool_sizes'", "hidden layer 1", "10 units",
                                            "'W0' has 9 rows"]),
    (dict(slope=np.array([0.0, 0.0])), ["'slope'", "hidden layer 1", "max-pooling has no slope"]),
    (dict(slope=np.array([np.nan, np.nan])), ["'slope'", "NaN", "hidden layer 2"]),
    (dict(activation=np.frombuffer(b"max,tanh", np.uint8)), ["'activation'", "'tanh'"]),
    (dict(W1=np.ones((5, 9))), ["'W1'", "expects 9 inputs", "max-pools its 9 units to 3"]),
    # a format 2 file knows neither "max" nor the pool entries; format 4 is newer
    (dict(format_version=np.array(2)), ["unexpected entries", "pool_counts"]),
    (dict(format_version=np.array(2), pool_counts=None, pool_sizes=None),
     ["'activation'", "'max'"]),
    (dict(format_version=np.array(4)), ["newer version (format 4)"]),
])
def test_damaged_npz_names_the_entry(tmp_path, changes, words):
    arrays = _arrays(tmp_path, MAX_NETS[1])
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(ModelFileError) as info:
        DGN.load(p)
    msg = str(info.value)
    assert str(p) in msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize("change, words", [
    (lambda o: o.pop("pool_sizes"), ["missing entries", "pool_sizes"]),
    (lambda o: o.update(pool_sizes=[[2, 3, 4]]), ["'pool_sizes'", "one entry per hidden layer"]),
    (lambda o: o.update(pool_sizes=[[2, 3, 4], [1]]), ["'pool_sizes' for hidden layer 2",
                                                      "(relu) must be null"]),
    (lambda o: o.update(pool_sizes=[None, None]), ["hidden layer 1", "non-empty list"]),
    (lambda o: o.update(pool_sizes=[[2, 3, True], None]), ["hidden layer 1", "positive integers"]),
    (lambda o: o.update(pool_sizes=[[2, 3, 0, 4], None]), ["hidden layer 1", "positive integers"]),
    (lambda o: o.update(pool_sizes=[[2, 3, 3], None]), ["hidden layer 1", "adds up to 8",
                                                       "widths gives the layer 9"]),
    (lambda o: o.update(pool_sizes=[[2, 3, 2, 2], None]), ["'layers[1].W'", "(5, 4)",
                                                          "max-pools to 4 values"]),
    (lambda o: o.update(slope=[0.0, 0.0]), ["'slope'", "null for hidden layer 1"]),
    (lambda o: o.update(slope=[None, None]), ["'slope' is null for hidden layer 2", "relu"]),
    (lambda o: o.update(activation=["max", "tanh"]), ["'activation'", "tanh"]),
    (lambda o: o.update(format_version=2), ["unexpected entries", "pool_sizes"]),
    (lambda o: (o.update(format_version=2), o.pop("pool_sizes")), ["'activation'", "'max'"]),
    (lambda o: o.update(format_version=4), ["newer version (format 4)"]),
])
def test_damaged_json_names_the_entry(tmp_path, change, words):
    obj = model_to_dict(MAX_NETS[1])
    change(obj)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(obj))
    with pytest.raises(ModelFileError) as info:
        DGN.from_json(p)
    msg = str(info.value)
    assert str(p) in msg
    for w in words:
        assert w in msg, (w, msg)


def test_older_readers_refuse_format_3_as_newer(tmp_path, monkeypatch):
    """A reader of format 2 (the version before max-pooling) refuses the file as newer
    instead of misreading it."""
    net = MAX_NETS[1]
    p, j = net.save(tmp_path / "m.npz"), net.to_json(tmp_path / "m.json")
    monkeypatch.setattr(dgn_core._model_file, "_FORMAT_VERSION", 2)
    monkeypatch.setattr(dgn_core.model_json, "_FORMAT_VERSION", 2)
    with pytest.raises(ModelFileError, match=r"newer version \(format 3\); this version reads "
                                             r"format 2"):
        DGN.load(p)
    with pytest.raises(ModelFileError, match=r"newer version \(format 3\)"):
        DGN.from_json(j)


@needs_torch
def test_identity_layer_next_to_a_pool_respects_max_entries():
    import torch

    import fastpath
    nn = torch.nn
    mod = _seq(nn.Linear(1, 4), nn.Unflatten(1, (1, 4)), nn.ReLU(), nn.MaxPool1d(4),
               nn.Flatten(), nn.Linear(1, 2))
    # the identity before the pool is 4 x 4; the max layer gathers its 4 rows
    net = fastpath.from_torch(mod, 0.1, max_entries=16)
    assert net.widths == (1, 4, 4, 2) and net.pool_sizes == ((), (4,))
    assert np.array_equal(net.weights[1], np.eye(4))
    with pytest.raises(TorchConversionError,
                       match=r"identity layer next to the max-pooling layer '3' would have "
                             r"4 x 4 = 16 entries, above max_entries=15"):
        fastpath.from_torch(mod, 0.1, max_entries=15)
