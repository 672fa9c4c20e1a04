"""Data sets that need not fit in memory: read by global row range, summarised in one pass.

EM streams its data in shards of rows. A :class:`DataSource` knows its shape ``(N, D)`` and
returns rows ``[start, stop)`` as a fresh float64 array; the file-backed sources never load a
whole file (``.npy`` files are memory-mapped, zarr arrays are sliced) and pickle as their path
alone, so that worker processes reopen the data instead of receiving a copy of it.

- :class:`ArraySource`: an in-memory array;
- :class:`NpySource`: one ``.npy`` file (memory-mapped, never unpickled);
- :class:`ZarrSource`: a 2-D zarr array (needs ``pip install zarr``);
- :class:`FolderSource`: a folder of ``.npy`` shards with the same column count;
- :func:`as_source`: any of the above from an array or a path;
- :func:`summarise`: shape, largest magnitude, column means, spread and the SHA-256
  fingerprint of the data, validated with the rules of :func:`dgn_core.data.check_data`.

This module never writes files.
"""

from __future__ import annotations

import abc
import hashlib
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .data import check_data, check_values
from .exceptions import DataError
from .validation import real_array

__all__ = ["DataSource", "ArraySource", "NpySource", "ZarrSource", "FolderSource", "as_source",
           "DataSummary", "summarise"]

#: floats per block of :func:`summarise` by default: 32 MiB of float64, large enough that
#: numpy's per-call overhead is negligible, small enough to sit beside EM's own arrays
DEFAULT_BLOCK_FLOATS = 2**22

_ACCEPTED = ("an array, a .npy file, a zarr array (a folder with zarr.json or .zarray, or "
             "ending in .zarr) or a folder of .npy files")


class DataSource(abc.ABC):
    """A 2-D data set of ``n_points`` rows and ``dim`` columns, read by row range.

    Subclasses set ``n_points`` and ``dim`` and implement :meth:`_read` and :meth:`describe`.
    """

    n_points: int
    dim: int

    def read(self, start: int, stop: int) -> NDArray[np.float64]:
        """Rows ``[start, stop)``, shape ``(stop - start, dim)``, a fresh C-contiguous float64 array.

        Raises
        ------
        ValueError
            Unless ``0 <= start < stop <= n_points`` (a caller's bug, not bad data).
        """
        start, stop = operator.index(start), operator.index(stop)
        if not 0 <= start < stop <= self.n_points:
            raise ValueError(f"row range [{start}, {stop}) is not a non-empty range within "
                             f"[0, {self.n_points}) of {self.describe()}")
        out = self._read(start, stop)
        # the contract callers rely on (they may write into the block): checked, not assumed
        assert out.dtype == np.float64 and out.flags.c_contiguous and out.flags.writeable
        assert out.shape == (stop - start, self.dim)
        return out

    @abc.abstractmethod
    def _read(self, start: int, stop: int) -> NDArray[np.float64]:
        """Rows ``[start, stop)`` of a range already checked; a new array."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A short description for messages, e.g. ``"data.npy (memory-mapped, 100000 x 3)"``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class ArraySource(DataSource):
    """An in-memory data matrix, validated by :func:`dgn_core.data.check_data`.

    Parameters
    ----------
    X : array_like, shape (N, D)
        The data (a 1-D array is read as :func:`check_data` reads it).
    dim : int, optional
        The required column count ``D``.
    """

    def __init__(self, X: ArrayLike, dim: int | None = None) -> None:
        self._X = check_data(X, dim=dim, name="X")
        self.n_points, self.dim = (int(n) for n in self._X.shape)

    def _read(self, start: int, stop: int) -> NDArray[np.float64]:
        return np.array(self._X[start:stop], dtype=np.float64, order="C", copy=True)

    def describe(self) -> str:
        return f"in-memory array ({self.n_points} x {self.dim})"


def _check_matrix(shape: tuple[int, ...], dtype: np.dtype[Any], where: str) -> tuple[int, int]:
    """``(N, D)`` of a stored array of this shape and dtype, or the DataError saying why not."""
    # real_array's dtype rules on an empty array: the same messages, and nothing is read
    real_array(np.empty(0, dtype=dtype), where, DataError, copy=False)
    if len(shape) != 2:
        raise DataError(f"{where} holds an array of shape {shape}; a data set must be 2-D "
                        "(N points, D columns)")
    if shape[0] == 0:
        raise DataError(f"{where} is empty (no rows)")
    if shape[1] == 0:
        raise DataError(f"{where} has no columns (shape {shape})")
    return int(shape[0]), int(shape[1])


class NpySource(DataSource):
    """One ``.npy`` file, memory-mapped read-only; pickled objects are refused.

    The memory map is dropped when pickled and reopened on first use, so a pickle holds the
    path and shape only. A file whose shape or dtype changed in between is a DataError.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        mm = self._open()
        self.n_points, self.dim = _check_matrix(mm.shape, mm.dtype, str(self.path))
        self._layout = (mm.shape, mm.dtype.str)
        self._mm: np.memmap[Any, Any] | None = mm

    def _open(self) -> np.memmap[Any, Any]:
        try:
            mm = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"no data file at {self.path}") from None
        except ValueError as exc:  # object dtype: cannot be mapped, would need unpickling
            raise DataError(f"{self.path}: refusing to load pickled objects ({exc})") from None
        except (OSError, EOFError) as exc:
            raise DataError(f"{self.path} is not a readable .npy file: {exc}") from None
        if not isinstance(mm, np.ndarray):  # an NpzFile despite the name
            mm.close()
            raise DataError(f"{self.path} is an .npz archive, not a single .npy array")
        return mm  # type: ignore[return-value]

    def _array(self) -> np.ndarray[Any, Any]:
        if self._mm is None:
            mm = self._open()
            if (mm.shape, mm.dtype.str) != self._layout:
                raise DataError(f"{self.path} changed since it was opened: now shape {mm.shape}, "
                                f"dtype {mm.dtype}, was {self._layout[0]}, {self._layout[1]}")
            self._mm = mm
        return self._mm

    def _read(self, start: int, stop: int) -> NDArray[np.float64]:
        # only these rows' pages are touched; the copy converts dtype and byte order
        return np.array(self._array()[start:stop], dtype=np.float64, order="C", copy=True)

    def describe(self) -> str:
        return f"{self.path} (memory-mapped, {self.n_points} x {self.dim})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_mm"] = None  # the path is enough; a memmap would pickle all of its data
        return state


def _import_zarr() -> Any:
    try:
        import zarr
    except ImportError:
        raise DataError("reading zarr data needs the zarr package: pip install zarr") from None
    return zarr


class ZarrSource(DataSource):
    """A 2-D zarr array opened read-only; zarr is imported only here.

    Pickles as its path; the array is reopened on first use after unpickling.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        arr = self._open()
        self.n_points, self.dim = _check_matrix(tuple(arr.shape), np.dtype(arr.dtype), str(self.path))
        self._arr: Any = arr

    def _open(self) -> Any:
        zarr = _import_zarr()
        try:
            node = zarr.open(str(self.path), mode="r")
        except Exception as exc:  # zarr's errors differ between versions and stores
            raise DataError(f"{self.path} is not a readable zarr array: {exc}") from None
        if not hasattr(node, "shape"):
            raise DataError(f"{self.path} is a zarr group, not an array; give the path of the "
                            "array inside it")
        return node

    def _read(self, start: int, stop: int) -> NDArray[np.float64]:
        if self._arr is None:
            self._arr = self._open()
        # zarr decompresses only the chunks these rows touch
        return np.array(self._arr[start:stop], dtype=np.float64, order="C", copy=True)

    def describe(self) -> str:
        return f"{self.path} (zarr array, {self.n_points} x {self.dim})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arr"] = None
        return state


class FolderSource(DataSource):
    """A folder of ``.npy`` shards, read as one data set.

    The shards are the folder's files whose names end in ``.npy`` (any case), not hidden
    (``.`` first), in sorted name order; other files and subfolders are ignored. Each shard
    is a 2-D real array with at least one row and the same column count. Rows are numbered
    across the shards in that order; :meth:`read` may span several shards.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        names = sorted(p.name for p in self.path.iterdir()
                       if p.name.lower().endswith(".npy") and not p.name.startswith(".")
                       and p.is_file())
        if not names:
            raise DataError(f"{self.path} holds no .npy files (a data folder holds the data as "
                            ".npy shards of the same column count)")
        self._shards = [NpySource(self.path / name) for name in names]
        dims = {s.dim for s in self._shards}
        if len(dims) > 1:
            first = self._shards[0]
            other = next(s for s in self._shards if s.dim != first.dim)
            raise DataError(f"{self.path}: the shards differ in column count: {first.path.name} "
                            f"has {first.dim}, {other.path.name} has {other.dim}")
        # offsets[i] is the global number of shard i's first row; offsets[-1] = N
        self._offsets = np.cumsum([0] + [s.n_points for s in self._shards], dtype=np.int64)
        self.n_points, self.dim = int(self._offsets[-1]), self._shards[0].dim

    def _read(self, start: int, stop: int) -> NDArray[np.float64]:
        out = np.empty((stop - start, self.dim), dtype=np.float64)
        i = int(np.searchsorted(self._offsets, start, side="right")) - 1
        row = start
        while row < stop:
            lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
            end = min(stop, hi)
            out[row - start:end - start] = self._shards[i]._array()[row - lo:end - lo]
            row, i = end, i + 1
        return out

    def describe(self) -> str:
        return (f"{self.path} (folder of {len(self._shards)} .npy files, memory-mapped, "
                f"{self.n_points} x {self.dim})")


def as_source(data: DataSource | ArrayLike | str | os.PathLike[str], *,
              dim: int | None = None) -> DataSource:
    """A :class:`DataSource` for ``data``.

    Parameters
    ----------
    data : DataSource, array_like or path
        A DataSource (returned as is); an array (:class:`ArraySource`); a path of a ``.npy``
        file (:class:`NpySource`); a folder holding ``zarr.json`` or ``.zarray``, or whose
        name ends in ``.zarr`` (:class:`ZarrSource`); any other folder
        (:class:`FolderSource`: its ``.npy`` files are the shards, other files are ignored).
    dim : int, optional
        The required column count ``D``.

    Raises
    ------
    DataError
        A path that does not exist or is none of the forms above (an ``.npz`` archive, a text
        table: :func:`dgn_core.data.load_data` reads those into memory), a zarr group, a
        folder without ``.npy`` files, an array that is not 2-D real with at least one row
        and column, pickled objects, or a column count other than ``dim``.
    """
    if isinstance(data, DataSource):
        source = data
    elif isinstance(data, (str, os.PathLike)):
        source = _source_from_path(Path(data))
    else:
        return ArraySource(data, dim=dim)  # type: ignore[arg-type]
    if dim is not None and source.dim != dim:
        raise DataError(f"{source.describe()} has {source.dim} column(s) but the data dimension "
                        f"(dim) is {dim}")
    return source


def _source_from_path(path: Path) -> DataSource:
    name = path.name.lower()
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zarray").exists() or name.endswith(".zarr"):
            return ZarrSource(path)
        if (path / ".zgroup").exists():
            raise DataError(f"{path} is a zarr group, not an array; give the path of the array "
                            "inside it")
        return FolderSource(path)
    if not path.exists():
        raise DataError(f"no data file or folder at {path} (expected {_ACCEPTED})")
    if name.endswith(".npy"):
        return NpySource(path)
    if name.endswith(".npz"):
        raise DataError(f"{path} is an .npz archive; save the data as one .npy file or as a "
                        "folder of .npy shards")
    raise DataError(f"{path}: not a data source that can be streamed (expected {_ACCEPTED}; "
                    "text and IDX files are read into memory by dgn_core.data.load_data)")


@dataclass(frozen=True)
class DataSummary:
    """What one pass over a data set finds.

    Attributes
    ----------
    n_points, dim : int
        The shape ``(N, D)``.
    max_abs : float
        ``max |x_ij|``.
    mean : ndarray, shape (D,)
        The column means.
    spread : float
        ``sqrt(mean over all N * D entries of (x_ij - mean_j)**2)``: the root-mean-square
        distance of an entry to its column mean.
    fingerprint : str
        SHA-256 (hex) of ``str((N, D))`` then the C-order float64 bytes: the fingerprint EM
        checkpoints record for in-memory data, so a checkpoint matches either way.
    """

    n_points: int
    dim: int
    max_abs: float
    mean: NDArray[np.float64]
    spread: float
    fingerprint: str


def summarise(source: DataSource, *, block_rows: int | None = None) -> DataSummary:
    """Validate and summarise ``source`` in one pass of ``block_rows`` rows at a time.

    Each block is checked with the rules of :func:`dgn_core.data.check_data` (finite,
    magnitude at most :data:`~dgn_core.data.MAX_DATA_ABS`); errors name the source and
    the global row, counted from 0. Means and spread are accumulated with Chan et al.'s
    pairwise update on data shifted by the first row, which keeps them accurate to rounding
    even for a large common offset (say 1e6 plus small noise) and for blocks of one row.
    Memory: one block and its boolean mask, about ``9 * block_rows * D`` bytes.

    Parameters
    ----------
    source : DataSource
    block_rows : int, optional
        Rows per block; by default about 2**22 floats' worth.
    """
    N, D = source.n_points, source.dim
    if block_rows is None:
        block_rows = max(1, DEFAULT_BLOCK_FLOATS // D)
    if isinstance(block_rows, bool) or operator.index(block_rows) < 1:
        raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
    block_rows = operator.index(block_rows)
    where = source.describe()
    h = hashlib.sha256()
    h.update(str((int(N), int(D))).encode())
    max_abs = 0.0
    shift: NDArray[np.float64] | None = None
    count = 0
    mean = np.zeros(D)  # mean of the shifted data
    m2 = np.zeros(D)  # per column, sum of squared deviations from `mean`
    for start in range(0, N, block_rows):
        stop = min(N, start + block_rows)
        block = source.read(start, stop)
        check_values(block, where, first_row=start, n_rows=N)
        h.update(block.data)  # C-contiguous float64: the same bytes as the whole array's
        max_abs = max(max_abs, float(block.max()), -float(block.min()))
        if shift is None:
            shift = block[0].copy()
        # from here on the block is scratch space (read() returned a fresh array)
        block -= shift  # exact for entries near the shift: what removes a large offset
        n_b = stop - start
        mean_b = block.mean(axis=0)
        block -= mean_b
        np.square(block, out=block)
        m2_b = block.sum(axis=0)
        delta = mean_b - mean
        total = count + n_b
        mean += delta * (n_b / total)
        m2 += m2_b + delta * delta * (count * n_b / total)
        count = total
    assert shift is not None and count == N
    spread = float(np.sqrt(m2.sum() / (N * D)))
    return DataSummary(n_points=N, dim=D, max_abs=max_abs, mean=shift + mean, spread=spread,
                       fingerprint=h.hexdigest())
