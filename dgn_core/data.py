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
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .exceptions import DataError

__all__ = ["noisy_circle", "cosine", "digits", "load_data", "read_idx", "check_data",
           "BUILTIN_DATASETS", "DataError"]


def check_data(X: ArrayLike, dim: int | None = None, name: str = "X") -> NDArray[np.float64]:
    """Validate a data matrix: 2-D ``(N, D)`` real, finite, non-empty; returns float64.

    A 1-D array is taken as ``N`` points of dimension 1 when ``dim`` is None or 1.
    """
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a real array: {exc}") from None
    if arr.ndim == 1 and (dim is None or dim == 1):
        arr = arr[:, None]
    elif arr.ndim == 1 and dim is not None and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise DataError(f"{name} must be 2-D (N, D), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} is empty (no rows)")
    if dim is not None and arr.shape[1] != dim:
        raise DataError(f"{name} must have {dim} columns (the data dimension), got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        kind = "NaN" if np.isnan(arr).any() else "infinite"
        raise DataError(f"{name} contains {kind} values in {len(rows)} row(s), first at row {rows[0]}")
    return arr


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


def load_data(path: str | os.PathLike[str]) -> NDArray[np.float64]:
    """Load a data matrix ``(N, D)`` from ``.npy``, ``.csv`` / ``.txt`` or an IDX file.

    ``.npy`` files are read without unpickling; CSV files may have one header line.
    IDX images are flattened to ``(N, rows * cols)`` and scaled to [0, 1].
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            X = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise DataError(f"{path}: refusing to load pickled objects ({exc})") from None
        except OSError as exc:
            raise DataError(f"{path} is not a readable .npy file: {exc}") from None
    elif "idx" in name or name.endswith("-ubyte") or name.endswith("-ubyte.gz"):
        A = read_idx(path)
        X = A.reshape(A.shape[0], -1).astype(np.float64)
        if A.dtype == np.uint8:
            X /= 255.0
    elif name.endswith((".csv", ".txt", ".tsv")):
        delim = "," if name.endswith(".csv") else None
        try:
            X = np.loadtxt(path, delimiter=delim, ndmin=2)
        except ValueError:
            try:
                X = np.loadtxt(path, delimiter=delim, ndmin=2, skiprows=1)
            except ValueError as exc:
                raise DataError(f"{path}: not a numeric table ({exc})") from None
    else:
        raise DataError(f"{path}: unknown data format (use .npy, .csv, .txt or an IDX file)")
    return check_data(X, name=str(path))


BUILTIN_DATASETS = {
    "circle": lambda n=1000, seed=0: noisy_circle(n, seed=seed),
    "cosine": lambda n=1000, seed=0: cosine(n, seed=seed),
}
