"""Data sources read by row range, and the one-pass streaming summary."""

from __future__ import annotations

import hashlib
import pickle
import sys
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

from dgn_core.data_source import (
    ArraySource,
    DataSource,
    FolderSource,
    NpySource,
    ZarrSource,
    as_source,
    summarise,
)
from dgn_core.exceptions import DataError

SIZES = (37, 5, 58)  # uneven shards of the folder source; N = 100


def _data(n: int = 100, d: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)) * 3.0 + 1.5


def _fingerprint(X: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(str(tuple(int(n) for n in X.shape)).encode())
    h.update(np.ascontiguousarray(X, np.float64).tobytes())
    return h.hexdigest()


def _folder(tmp_path, X, sizes=SIZES):
    folder = tmp_path / "shards"
    folder.mkdir()
    bounds = np.cumsum((0,) + sizes)
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        np.save(folder / f"part{i:02d}.npy", X[a:b])
    (folder / "README.txt").write_text("not a shard")  # ignored
    return folder


def _sources(tmp_path, X) -> dict[str, DataSource]:
    np.save(tmp_path / "data.npy", X)
    out: dict[str, DataSource] = {
        "array": as_source(X),
        "npy": as_source(tmp_path / "data.npy"),
        "folder": as_source(_folder(tmp_path, X)),
    }
    if "zarr" in sys.modules or _has_zarr():
        import zarr
        z = zarr.open(str(tmp_path / "data.zarr"), mode="w", shape=X.shape, chunks=(16, 3),
                      dtype="f8")
        z[:] = X
        out["zarr"] = as_source(str(tmp_path / "data.zarr"))
    return out


def _has_zarr() -> bool:
    try:
        import zarr  # noqa: F401
    except ImportError:
        return False
    return True


KINDS = {"array": ArraySource, "npy": NpySource, "folder": FolderSource, "zarr": ZarrSource}


@pytest.mark.parametrize("kind", list(KINDS))
def test_read_matches_array(tmp_path, kind):
    X = _data()
    sources = _sources(tmp_path, X)
    if kind not in sources:
        pytest.skip("zarr is not installed")
    src = sources[kind]
    assert isinstance(src, KINDS[kind])
    assert (src.n_points, src.dim) == X.shape
    # every range ending or starting at a shard boundary, spanning one, two or all shards
    edges = [0, 1, 36, 37, 38, 41, 42, 43, 99, 100]
    for a in edges:
        for b in edges:
            if a < b:
                got = src.read(a, b)
                assert got.dtype == np.float64 and got.flags.c_contiguous
                np.testing.assert_array_equal(got, X[a:b])
    got = src.read(0, 10)
    got[:] = 0  # a fresh array: writing to it changes nothing
    np.testing.assert_array_equal(src.read(0, 10), X[:10])
    for a, b in [(0, 0), (5, 3), (-1, 4), (0, 101)]:
        with pytest.raises(ValueError, match="row range"):
            src.read(a, b)
    blob = pickle.dumps(src)
    if kind != "array":
        assert len(blob) < 2000, len(blob)  # the path, not the 2400 bytes of data
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.read(30, 70), X[30:70])
    assert again.describe() == src.describe()


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("block_rows", [1, 7, 37, 100, None])
def test_summarise_matches_numpy(tmp_path, kind, block_rows):
    X = _data()
    sources = _sources(tmp_path, X)
    if kind not in sources:
        pytest.skip("zarr is not installed")
    s = summarise(sources[kind], block_rows=block_rows)
    assert (s.n_points, s.dim) == X.shape
    assert s.max_abs == np.abs(X).max()
    np.testing.assert_allclose(s.mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.spread, np.sqrt(np.mean((X - X.mean(axis=0)) ** 2)), rtol=1e-12)
    assert s.fingerprint == _fingerprint(X)


@pytest.mark.parametrize("block_rows", [1, 3, 64, 1000])
def test_summarise_large_offset(block_rows):
    # 1e6 + noise 1e-3: a naive sum of squares loses every digit of the spread
    X = 1e6 + 1e-3 * np.random.default_rng(1).standard_normal((1000, 2))
    X[:, 1] -= 3e6
    s = summarise(ArraySource(X), block_rows=block_rows)
    np.testing.assert_allclose(s.mean, X.mean(axis=0), rtol=1e-12)
    # exact reference: numpy's own two-pass value is off by 1.3e-12 relative here (the error
    # of X.mean(axis=0), ~1e-10, against a spread of 1e-3); the shifted update is not
    total = Fraction(0)
    for col in X.T:
        vals = [Fraction(float(v)) for v in col]
        m = sum(vals, Fraction(0)) / len(vals)
        total += sum(((v - m) ** 2 for v in vals), Fraction(0))
    exact = np.sqrt(float(total / X.size))
    np.testing.assert_allclose(s.spread, exact, rtol=1e-14)
    np.testing.assert_allclose(s.spread, np.sqrt(np.mean((X - X.mean(axis=0)) ** 2)), rtol=1e-11)


def test_fingerprint_converts_dtype(tmp_path):
    X = _data().astype(">f4")  # big-endian float32 on disk: fingerprinted as float64 values
    np.save(tmp_path / "f4.npy", X)
    assert summarise(as_source(tmp_path / "f4.npy"), block_rows=9).fingerprint == _fingerprint(X)


def test_nan_in_second_shard_names_global_row(tmp_path):
    X = _data()
    X[37 + 2, 2] = np.nan  # row 39: the second shard, its 3rd row
    src = as_source(_folder(tmp_path, X))
    for block_rows in (1, 10, 100):
        with pytest.raises(DataError, match=r"first NaN at row 39, column 2") as info:
            summarise(src, block_rows=block_rows)
        assert "shards" in str(info.value)
    X = _data()
    X[13, 0] = np.inf  # second block of 10
    np.save(tmp_path / "inf.npy", X)
    with pytest.raises(DataError, match=r"among rows 10-19, first infinite at row 13, column 0"):
        summarise(as_source(tmp_path / "inf.npy"), block_rows=10)
    X = _data()
    X[71, 1] = 1e200
    np.save(tmp_path / "big.npy", X)
    with pytest.raises(DataError, match=r"first at row 71"):
        summarise(as_source(tmp_path / "big.npy"), block_rows=16)


def test_bad_sources(tmp_path):
    X = _data()
    with pytest.raises(DataError, match=r"data dimension \(dim\) is 4"):
        as_source(_folder(tmp_path, X), dim=4)
    with pytest.raises(DataError, match="must have 4 columns"):
        as_source(X, dim=4)
    np.save(tmp_path / "one_d.npy", np.arange(5.0))
    with pytest.raises(DataError, match=r"shape \(5,\).*must be 2-D"):
        as_source(tmp_path / "one_d.npy")
    np.save(tmp_path / "three_d.npy", np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match="must be 2-D"):
        as_source(tmp_path / "three_d.npy")
    np.save(tmp_path / "obj.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        as_source(tmp_path / "obj.npy")
    np.save(tmp_path / "cplx.npy", np.ones((3, 2), complex))
    with pytest.raises(DataError, match="complex"):
        as_source(tmp_path / "cplx.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(DataError, match="no rows"):
        as_source(tmp_path / "empty.npy")
    np.savez(tmp_path / "arch.npz", X=X)
    with pytest.raises(DataError, match=r"\.npz archive"):
        as_source(tmp_path / "arch.npz")
    np.savez(tmp_path / "disguised.npy", X=X)  # written as disguised.npy.npz: rename it
    (tmp_path / "disguised.npy.npz").rename(tmp_path / "disguised.npy")
    with pytest.raises(DataError, match=r"\.npz archive"):
        as_source(tmp_path / "disguised.npy")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="holds no .npy files"):
        as_source(tmp_path / "empty_dir")
    with pytest.raises(DataError, match="no data file or folder.*a .npy file"):
        as_source(tmp_path / "missing.npy")
    (tmp_path / "t.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="load_data"):
        as_source(tmp_path / "t.csv")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    np.save(mixed / "a.npy", np.zeros((2, 3)))
    np.save(mixed / "b.npy", np.zeros((2, 4)))
    with pytest.raises(DataError, match="a.npy has 3, b.npy has 4"):
        as_source(mixed)


def test_reopen_detects_changed_file(tmp_path):
    np.save(tmp_path / "d.npy", _data())
    blob = pickle.dumps(as_source(tmp_path / "d.npy"))
    np.save(tmp_path / "d.npy", _data(50))
    with pytest.raises(DataError, match="changed since"):
        pickle.loads(blob).read(0, 5)


def test_zarr_group_and_missing_zarr(tmp_path, monkeypatch):
    zarr = pytest.importorskip("zarr")
    zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    with pytest.raises(DataError, match="zarr group"):
        as_source(tmp_path / "g.zarr")
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr now raises ImportError
    with pytest.raises(DataError, match="pip install zarr"):
        as_source(tmp_path / "g.zarr")


def test_peak_memory_of_streaming_summary(tmp_path):
    # 3.3e6 x 8 float64 = 211 MB on disk, memory-mapped (pages are not heap: tracemalloc does
    # not count them). Blocks of 2**16 rows are 4 MiB; summarise holds one block plus its
    # 0.5 MiB NaN mask and a few (D,) vectors, so 40 MB leaves room for numpy's temporaries
    # (isfinite/any reductions) while any whole-array copy (211 MB) would fail by 5x.
    n, d = 3_300_000, 8
    mm = np.lib.format.open_memmap(tmp_path / "big.npy", mode="w+", dtype=np.float64, shape=(n, d))
    rng = np.random.default_rng(2)
    for a in range(0, n, 500_000):
        mm[a:a + 500_000] = rng.standard_normal((min(500_000, n - a), d))
    mm.flush()
    h = hashlib.sha256()
    h.update(str((n, d)).encode())
    h.update(memoryview(mm).cast("B"))
    want, want_max = h.hexdigest(), float(np.abs(mm).max())
    del mm
    src = as_source(tmp_path / "big.npy")
    tracemalloc.start()
    try:
        s = summarise(src, block_rows=2**16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"tracemalloc peak of summarise over {n} x {d}: {peak / 2**20:.1f} MiB")
    assert peak < 40e6, peak
    assert s.fingerprint == want and s.max_abs == want_max
