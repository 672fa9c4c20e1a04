"""Built-in data sets and data loaders."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from dgn_core.data import DataError, check_data, cosine, digits, load_data, noisy_circle, read_idx


def test_noisy_circle_statistics():
    X = noisy_circle(20000, noise_std=0.05, seed=1)
    r = np.linalg.norm(X, axis=1)
    # radial residual has std ~ 0.05 (the noise); mean radius ~ 1 within 5 standard errors
    assert abs(r.mean() - 1.0) < 5 * 0.05 / np.sqrt(len(r)) + 0.05**2  # + bias of |.|: O(s^2/2)
    assert abs(r.std() - 0.05) < 0.002


def test_cosine_relation():
    X = cosine(500, seed=0)
    np.testing.assert_allclose(X[:, 1], np.cos(1.4 * X[:, 0]), rtol=0, atol=0)


def test_digits_class():
    X4 = digits(4)
    assert X4.shape[1] == 64 and 150 < len(X4) < 200
    assert X4.min() >= 0 and X4.max() <= 1


def test_check_data_errors():
    with pytest.raises(DataError, match="NaN"):
        check_data([[0.0, np.nan]])
    with pytest.raises(DataError, match="infinite"):
        check_data([[0.0, np.inf]])
    with pytest.raises(DataError, match="empty"):
        check_data(np.zeros((0, 2)))
    with pytest.raises(DataError, match="columns"):
        check_data(np.zeros((3, 3)), dim=2)


def test_load_npy_csv_idx(tmp_path):
    X = np.random.default_rng(0).normal(size=(7, 3))
    np.save(tmp_path / "x.npy", X)
    np.testing.assert_array_equal(load_data(tmp_path / "x.npy"), X)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", header="a,b,c")
    np.testing.assert_allclose(load_data(tmp_path / "x.csv"), X, rtol=1e-15)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        load_data(tmp_path / "obj.npy")
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2, 3, 4) + imgs.tobytes()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), imgs)
    L = load_data(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert L.shape == (2, 12)
    np.testing.assert_allclose(L * 255, imgs.reshape(2, 12))
    (tmp_path / "bad-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 5, 3, 4))
    with pytest.raises(DataError, match="bytes"):
        load_data(tmp_path / "bad-idx3-ubyte")
