"""The model file formats (docs/model_format.md): npz without unicode scalars, the JSON twin
and its schema, bit-exact round trips, reading older files, clear errors on bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from dgn_core.exceptions import ModelFileError
from dgn_core.model import DGN
from dgn_core.model_json import MODEL_JSON_KEYS, model_from_dict, model_schema, model_to_dict
from dgn_tools.schema_check import schema_errors

NETS = [
    DGN.random((1, 3, 2), seed=0),
    DGN.random((2, 4, 3, 2), activation="leaky_relu", slope=0.2, seed=1,
               noise_var=np.array([0.1, 0.3]), prior_cov=np.array([[2.0, 0.5], [0.5, 1.0]])),
    DGN.random((3, 5, 4), activation="abs", seed=2, noise_var=1e-3),
    DGN.random((2, 3), seed=3),  # no hidden layer
    # per-layer activations (format 2)
    DGN.random((2, 4, 3, 5, 2), activation=["relu", "abs", "leaky_relu"], slope=0.3, seed=4),
    DGN.random((1, 3, 3, 1), activation=["leaky_relu", "leaky_relu"], slope=[0.1, 0.25], seed=5,
               noise_var=np.array([0.2])),
    # awkward doubles: subnormal, the largest finite, 0.1's neighbours, negative zero
    DGN([np.array([[5e-324, -0.0], [np.nextafter(0.1, 1.0), 1.7976931348623157e308]]),
         np.array([[1.0, 2.0]])], [np.array([0.1, -np.nextafter(0.1, 0.0)]), np.zeros(1)]),
]


def _bits(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float64).tobytes()


def _same_bits(a: DGN, b: DGN) -> bool:
    # == compares values (0.0 == -0.0); the formats must keep the exact bits
    return (a == b and all(_bits(x) == _bits(y) for x, y in zip(a.weights, b.weights))
            and all(_bits(x) == _bits(y) for x, y in zip(a.biases, b.biases))
            and _bits(np.asarray(a.noise_var)) == _bits(np.asarray(b.noise_var))
            and _bits(a.prior_cov) == _bits(b.prior_cov))


@pytest.mark.parametrize("net", NETS, ids=range(len(NETS)))
def test_npz_json_round_trip_is_bit_exact(tmp_path, net):
    p = net.save(tmp_path / "m.npz")
    j = DGN.load(p).to_json(tmp_path / "m.json")
    back = DGN.from_json(j)
    assert _same_bits(back, net)
    p2 = back.save(tmp_path / "m2.npz")
    assert _same_bits(DGN.load(p2), net)
    # the JSON text is canonical: writing the read-back model gives the same bytes
    assert back.to_json(tmp_path / "m2.json").read_text() == j.read_text()


@pytest.mark.parametrize("net", NETS, ids=range(len(NETS)))
def test_written_files_match_the_schema_and_the_spec(tmp_path, net):
    j = net.to_json(tmp_path / "m.json")
    obj = json.loads(j.read_text())
    schema = model_schema()
    assert schema_errors(obj, schema) == []
    assert sorted(schema["required"]) == sorted(MODEL_JSON_KEYS)
    # conventions of the spec, checked on the file itself: layers[i].W has shape
    # (widths[i+1], widths[i]) and multiplies from the left
    z = np.array([0.3] * net.latent_dim)
    h = z
    for i, layer in enumerate(obj["layers"]):
        W, v = np.array(layer["W"]), np.array(layer["v"])
        assert W.shape == (obj["widths"][i + 1], obj["widths"][i])
        h = W @ h + v
        if i < len(obj["layers"]) - 1:
            eta = obj["slope"][i] if isinstance(obj["slope"], list) else obj["slope"]
            h = np.where(h > 0, h, eta * h)
    np.testing.assert_array_equal(h, net.forward(z)[0])
    # the npz file: no unicode or object arrays, keys W0.. v0.., strings as ASCII uint8
    p = net.save(tmp_path / "m.npz")
    with np.load(p) as f:
        assert all(f[k].dtype.kind in "fiu" for k in f.files), {k: f[k].dtype for k in f.files}
        assert f["format"].tobytes() == b"verified_dgn.DGN"
        want = ",".join(net.activations) if net.mixed_activations else net.activation
        assert f["activation"].tobytes().decode("ascii") == want
        assert int(f["format_version"]) == (2 if net.mixed_activations else 1)
        assert {f"W{i}" for i in range(net.n_layers)} <= set(f.files)


def test_schema_check_catches_violations():
    obj = model_to_dict(NETS[1])
    schema = model_schema()
    bad = dict(obj, activation="tanh")
    assert any("activation" in e for e in schema_errors(bad, schema))
    bad = dict(obj, noise_var=[0.1, -1.0])
    assert schema_errors(bad, schema)
    bad = {k: v for k, v in obj.items() if k != "layers"}
    assert any("layers" in e for e in schema_errors(bad, schema))
    bad = dict(obj, extra=1)
    assert any("extra" in e for e in schema_errors(bad, schema))


def test_older_npz_files_with_unicode_scalars_still_load(tmp_path):
    net = NETS[1]
    p = net.save(tmp_path / "new.npz")
    with np.load(p) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["format"] = np.array("verified_dgn.DGN")  # the encoding written before
    arrays["activation"] = np.array(net.activation)
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    with zipfile.ZipFile(old) as z, z.open("format.npy") as fh:
        assert b"<U" in fh.read(128)  # really the old encoding
    assert _same_bits(DGN.load(old), net)


@pytest.mark.parametrize("change, words", [
    (lambda o: o.update(format="other"), ["not a DGN model"]),
    (lambda o: o.update(format_version=4), ["newer version"]),
    (lambda o: o.update(format_version="1"), ["'format_version'"]),
    (lambda o: o.pop("slope"), ["missing entries", "slope"]),
    (lambda o: o.update(extra=1), ["unexpected entries", "extra"]),
    (lambda o: o.update(activation="tanh"), ["'activation'", "tanh"]),
    (lambda o: o["layers"][1].update(W=[[1.0, 2.0]]), ["'layers[1].W'", "shape"]),
    (lambda o: o["layers"][0].update(v=[True] * 4), ["'layers[0].v'", "numbers"]),
    (lambda o: o["layers"][0].update(v=[1.0, [2.0], 3.0, 4.0]), ["'layers[0].v'"]),
    (lambda o: o["layers"][0].pop("v"), ["'layers[0]'", "W and v"]),
    (lambda o: o.update(widths=[2, 4, 3]), ["'widths'"]),
    (lambda o: o.update(noise_var=-1.0), ["noise_var", "positive"]),
    (lambda o: o.update(noise_var=[0.1]), ["noise_var"]),
    (lambda o: o.update(slope=1.5), ["slope", "0 < slope < 1"]),
    (lambda o: o.update(prior_cov=[[1.0, 2.0], [2.0, 1.0]]), ["prior_cov", "positive definite"]),
    (lambda o: o.update(slope=2**60 + 1), ["'slope'", "not a float64"]),
])
def test_bad_json_models_name_the_entry(tmp_path, change, words):
    obj = model_to_dict(NETS[1])
    change(obj)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(ModelFileError) as info:
        DGN.from_json(path)
    msg = str(info.value)
    assert str(path) in msg
    for word in words:
        assert word in msg, (word, msg)


@pytest.mark.parametrize("text, words", [
    ("{not json", ["not a JSON model file"]),
    ('{"format": "verified_dgn.DGN", "slope": NaN}', ["NaN"]),
    ("[1, 2]", ["not a DGN model"]),
])
def test_unreadable_json_files(tmp_path, text, words):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ModelFileError) as info:
        DGN.from_json(path)
    for word in words:
        assert word in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        DGN.from_json(tmp_path / "absent.json")
    (tmp_path / "d.json").mkdir()
    with pytest.raises(ModelFileError, match="directory"):
        DGN.from_json(tmp_path / "d.json")
    with pytest.raises(ModelFileError, match="is not a DGN model"):
        model_from_dict("text", "arg")
