"""Built-in data sets and loaders for user data.

- ``circle``: the paper's noisy circle (Sec. 4.3): angle uniform on [0, 2 pi), radius 1,
  isotropic Gaussian noise of standard deviation 0.05.
- ``cosine``: t ~ N(0, 1), x = (t, cos(1.4 t)) (+ optional noise).
- ``digits``: scikit-learn's bundled 8x8 digits (scaled to [0, 1]), optionally one class.
- files: ``.npy`` (no pickles), ``.csv`` / ``.txt`` (numbers only), MNIST ``IDX`` files.
"""

from __future__ import annotations

import gzip
import os
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .exceptions import DataError
from .validation import real_array

__all__ = ["noisy_circle", "cosine", "digits", "load_data", "read_idx", "check_data",
           "check_values", "BUILTIN_DATASETS", "DataError", "MAX_DATA_ABS"]


#: largest magnitude accepted in a data matrix: squares (variances, squared residuals) and
#: their sums over up to ~1e8 points stay below float64's 1.8e308
MAX_DATA_ABS = 1e150


def check_data(X: ArrayLike, dim: int | None = None, name: str = "X") -> NDArray[np.float64]:
    """Validate a data matrix: 2-D ``(N, D)`` real, finite, non-empty; returns float64.

    A 1-D array is taken as ``N`` points of dimension 1 when ``dim`` is None or 1, and as one
    point when its length is ``dim``.

    Raises
    ------
    DataError
        Not real numbers (complex, boolean, strings, objects, ragged rows), wrong shape, no
        rows or no columns, a column count other than ``dim``, NaN or infinite values (the
        message gives the first row, counted from 0), or values of magnitude above
        :data:`MAX_DATA_ABS`, whose squares overflow float64.
    """
    arr = real_array(X, name, DataError, copy=False)
    if arr.ndim == 1 and (dim is None or dim == 1):
        arr = arr[:, None]
    elif arr.ndim == 1 and dim is not None and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2:
        want = "2-D (N, D)" if dim is None else f"of shape (N, {dim}) or ({dim},)"
        raise DataError(f"{name} must be {want}, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty (no rows)")
    if arr.shape[1] == 0:
        raise DataError(f"{name} has no columns (shape {arr.shape})")
    if dim is not None and arr.shape[1] != dim:
        raise DataError(f"{name} must have {dim} columns (the data dimension), got shape {arr.shape}")
    check_values(arr, name)
    return arr


def check_values(arr: NDArray[np.float64], name: str, first_row: int = 0,
                 n_rows: int | None = None) -> None:
    """The value rules of :func:`check_data` for a 2-D float64 block of a larger data set.

    ``arr`` holds rows ``first_row, first_row + 1, ...`` of the data set called ``name``;
    error messages give those global row numbers, so that a streamed check (one block at a
    time, see :mod:`dgn_core.data_source`) points at the same row as a check of the whole
    array would. ``n_rows`` is the data set's row count when ``arr`` is only part of it.

    Raises
    ------
    DataError
        NaN or infinite values, or values of magnitude above :data:`MAX_DATA_ABS`.
    """
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        r, c = int(rows[0]), int(np.flatnonzero(bad[rows[0]])[0])
        kind = "NaN" if np.isnan(arr[r, c]) else "infinite"
        # a block only knows its own bad rows: say which rows were counted
        among = "" if n_rows is None or n_rows == arr.shape[0] else (
            f" among rows {first_row}-{first_row + arr.shape[0] - 1}")
        raise DataError(f"{name} contains NaN or infinite values in {len(rows)} row(s){among}, "
                        f"first {kind} at row {first_row + r}, column {c} (counted from 0)")
    _check_magnitude(arr, name, first_row)


def _check_magnitude(arr: NDArray[np.float64], name: str, first_row: int = 0) -> None:
    if max(float(arr.max()), -float(arr.min())) > MAX_DATA_ABS:
        r = int(np.flatnonzero((np.abs(arr) > MAX_DATA_ABS).any(axis=1))[0])
        raise DataError(
            f"{name} has values of magnitude up to {float(np.max(np.abs(arr))):.3g} (first at row "
            f"{first_row + r}, counted from 0): {_TOO_LARGE}")


_TOO_LARGE = (f"too large for float64 computations (the limit is {MAX_DATA_ABS:.0e}: variances "
              "and squared residuals would overflow float64's 1.8e308); rescale the data, e.g. "
              "divide by its standard deviation")


def noisy_circle(n: int = 1000, noise_std: float = 0.05, radius: float = 1.0,
                 seed: int | None = 0) -> NDArray[np.float64]:
    """Points on a circle with isotropic Gaussian noise, shape ``(n, 2)``."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.0, 2.0 * np.pi, size=n)
    X = radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    return X + noise_std * rng.standard_normal((n, 2))


def cosine(n: int = 1000, noise_std: float = 0.0, freq: float = 1.4,
           seed: int | None = 0) -> NDArray[np.float64]:
    """t ~ N(0, 1), x = (t, cos(freq t)) + noise, shape ``(n, 2)``."""
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(n)
    X = np.stack([t, np.cos(freq * t)], axis=1)
    if noise_std > 0:
        X = X + noise_std * rng.standard_normal((n, 2))
    return X


def digits(digit: int | None = None) -> NDArray[np.float64]:
    """scikit-learn's bundled 8x8 digits scaled to [0, 1], shape ``(n, 64)``.

    Parameters
    ----------
    digit : int, optional
        Keep only this class (0-9).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - sklearn is a dependency
        raise DataError("the digits data set needs scikit-learn") from exc
    data = load_digits()
    X = data.data.astype(np.float64) / 16.0
    if digit is not None:
        if digit not in range(10):
            raise DataError(f"digit must be 0-9, got {digit!r}")
        X = X[data.target == digit]
    return X


def read_idx(path: str | os.PathLike[str]) -> NDArray[np.generic]:
    """Read an IDX file (the MNIST format), optionally gzip-compressed.

    Returns the array with its stored shape, e.g. ``(60000, 28, 28)`` uint8 for images.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    types: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] not in types:
                raise DataError(f"{path} is not an IDX file (bad magic number)")
            ndim = head[3]
            dims = struct.unpack(">" + "I" * ndim, fh.read(4 * ndim))
            dtype = np.dtype(types[head[2]])
            raw = fh.read()
    except (OSError, EOFError, struct.error) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from None
    count = int(np.prod(dims)) if dims else 1
    if len(raw) != count * dtype.itemsize:
        raise DataError(f"{path}: IDX header says {dims} but the file holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


def load_data(path: str | os.PathLike[str], *, allow_nan: bool = False) -> NDArray[np.float64]:
    """Load a data matrix ``(N, D)`` from ``.npy``, ``.csv`` / ``.txt`` / ``.tsv`` or IDX.

    ``allow_nan=True`` reads data with missing entries (``fastpath.missing``): NaN entries
    (``nan`` in a text table, and empty fields of a ``.csv`` / ``.tsv`` file) are kept as
    NaN; every other rule still applies to the entries that are present.

    ``.npy`` files are read without unpickling. Text tables (``,``-separated for ``.csv``,
    tab-separated for ``.tsv``, whitespace-separated for ``.txt``; ``#`` starts a comment)
    may begin with one header line, recognised as a first line none of whose fields is a
    number. IDX images are flattened
    to ``(N, rows * cols)`` and scaled to [0, 1].

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    DataError
        ``path`` is a directory or unreadable, an unknown format, a pickled or complex
        ``.npy``, a text field that is not a real number (the message gives its line, as
        numbered in the file from 1, and its column, from 1), rows of different lengths,
        NaN or infinite values, or anything :func:`check_data` refuses.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file")
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path}: refusing to load pickled objects ({exc})") from None
        except (OSError, EOFError) as exc:
            raise DataError(f"{path} is not a readable .npy file: {exc}") from None
        if not isinstance(X, np.ndarray):
            X.close()
            raise DataError(f"{path} is an .npz archive, not a single .npy array")
    elif "idx" in name or name.endswith("-ubyte") or name.endswith("-ubyte.gz"):
        A = read_idx(path)
        X = A.reshape(A.shape[0], -1).astype(np.float64)
        if A.dtype == np.uint8:
            X /= 255.0
    elif name.endswith((".csv", ".txt", ".tsv")):
        # tabs for .tsv, so that an empty field is an error, not a shifted row
        delim = "," if name.endswith(".csv") else "\t" if name.endswith(".tsv") else None
        X = _read_table(path, delim, allow_nan)
    else:
        raise DataError(f"{path}: unknown data format (use .npy, .csv, .txt or an IDX file)")
    if allow_nan and np.asarray(X).dtype.kind == "f" and np.isnan(X).any():
        nan = np.isnan(X)
        out = check_data(np.where(nan, 0.0, X), name=str(path)).copy()
        out[nan.reshape(out.shape)] = np.nan
        return out
    return check_data(X, name=str(path))


def _fields(line: str, delim: str | None) -> list[str]:
    text = line.split("#", 1)[0]
    if not text.strip():
        return []
    return [f.strip() for f in text.split(delim)] if delim else text.split()


def _data_lines(path: Path, delim: str | None) -> Iterator[tuple[int, list[str]]]:
    """``(line number from 1, fields)`` of every line that is not blank or a comment."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            for lineno, line in enumerate(fh, start=1):
                fields = _fields(line, delim)
                if fields:
                    yield lineno, fields
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a text file (not UTF-8); a .csv/.txt data file "
                        "holds numbers as text") from None
    except OSError as exc:
        raise DataError(f"cannot read the data file {path}: {exc.strerror}") from None


def _field_error(path: Path, lineno: int, col: int, field: str, delim: str | None) -> DataError:
    where = f"{path}, line {lineno}, column {col}"
    if not field:
        return DataError(f"{where} is empty (a missing value?)")
    try:
        complex(field)
    except ValueError:
        pass
    else:
        return DataError(f"{where}: {field!r} is a complex number; the data must be real")
    hint = ""
    if delim is not None and any(c in field for c in ";,\t "):
        hint = f" (fields are separated by {delim!r})"
    return DataError(f"{where}: {field!r} is not a number{hint}")


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return "_" not in field  # float() reads "1_000"; numpy's parser does not


def _read_table(path: Path, delim: str | None, allow_nan: bool = False) -> NDArray[np.float64]:
    """A numeric text table with an optional header line, errors located by line and column."""
    header = 0  # line number of the header, 0 if none
    for lineno, fields in _data_lines(path, delim):
        numeric = [_is_number(f) or (allow_nan and not f) for f in fields]
        if not any(numeric) and all(fields):
            header = lineno
        elif not all(numeric):
            # a first line mixing numbers and text is a bad data row, not a header
            col = numeric.index(False)
            raise _field_error(path, lineno, col + 1, fields[col], delim)
        break
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            # allow_nan: an empty field of a delimited table is a missing entry
            conv = ((lambda f: float(f) if f.strip() else np.nan) if allow_nan and delim
                    else None)
            X = np.loadtxt(path, delimiter=delim, ndmin=2, skiprows=header,
                           encoding="utf-8-sig", converters=conv)
    except (ValueError, UnicodeDecodeError) as exc:
        _locate_table_error(path, delim, header, allow_nan)
        raise DataError(f"{path}: not a numeric table ({exc})") from None
    except OSError as exc:
        raise DataError(f"cannot read the data file {path}: {exc.strerror}") from None
    if X.shape[0] == 0:
        raise DataError(f"{path} holds no data rows" + (f" (only the header on line {header})"
                                                        if header else ""))
    bad = np.isinf(X) if allow_nan else ~np.isfinite(X)
    if np.any(bad) or np.any(np.abs(X) > MAX_DATA_ABS):
        _locate_table_error(path, delim, header, allow_nan)
    return np.asarray(X, dtype=np.float64)


def _locate_table_error(path: Path, delim: str | None, header: int,
                        allow_nan: bool = False) -> None:
    """Raise the DataError for the first bad field, ragged row or non-finite value."""
    width = None
    first = 0
    for lineno, fields in _data_lines(path, delim):
        if lineno <= header:
            continue
        if width is None:
            width, first = len(fields), lineno
        elif len(fields) != width:
            raise DataError(f"{path}, line {lineno} has {len(fields)} column(s) but line "
                            f"{first} has {width}")
        for col, field in enumerate(fields, start=1):
            if allow_nan and not field:
                continue
            if not _is_number(field):
                raise _field_error(path, lineno, col, field, delim)
            value = float(field)
            if allow_nan and np.isnan(value):
                continue
            if not np.isfinite(value):
                raise DataError(f"{path}, line {lineno}, column {col}: {field!r} is not a finite "
                                "number (the data must be finite)")
            if abs(value) > MAX_DATA_ABS:
                raise DataError(f"{path}, line {lineno}, column {col}: {field!r} is "
                                f"{_TOO_LARGE}")


BUILTIN_DATASETS = {
    "circle": lambda n=1000, seed=0: noisy_circle(n, seed=seed),
    "cosine": lambda n=1000, seed=0: cosine(n, seed=seed),
}
