"""The model file format of :class:`~dgn_core.model.DGN` (``.npz``, no pickles; specified in
docs/model_format.md): reading and checking every entry of a file, so that a damaged or foreign file is a
:class:`~dgn_core.exceptions.ModelFileError` naming the file and the entry, never a
different network or a traceback from numpy.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .exceptions import ModelFileError
from .io import atomic_write_npz
from .model import _FORMAT, _FORMAT_VERSION, ACTIVATIONS, DGN, MAX, _ascii_array, _check_activation

__all__ = ["read_model", "write_model"]


def write_model(net: DGN, path: Path) -> Path:
    """Write ``net`` to the ``.npz`` file ``path`` atomically (:meth:`DGN.save`)."""
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    # strings as ASCII bytes (uint8 arrays), not numpy unicode scalars, which many
    # npy readers outside numpy cannot read (docs/model_format.md)
    activation, slope = net.activation_entries()
    arrays: dict[str, NDArray[Any]] = {
        "format": _ascii_array(_FORMAT),
        # format 2 / 3 only where needed, so that older readers still take the other nets
        "format_version": np.array(net.format_version, dtype=np.int64),
        "n_layers": np.array(net.n_layers, dtype=np.int64),
        "activation": _ascii_array(activation),
        "slope": np.array(slope, dtype=np.float64),
        "noise_var": np.asarray(net.noise_var, dtype=np.float64),
    }
    if net._prior_cov is not None:
        arrays["prior_cov"] = net._prior_cov
    if net.has_max_pooling:
        # format 3: groups per hidden layer (0: element-wise) and all group sizes, flat
        arrays["pool_counts"] = np.array([len(p) for p in net.pool_sizes], dtype=np.int64)
        arrays["pool_sizes"] = np.array([k for p in net.pool_sizes for k in p],
                                        dtype=np.int64)
    for i, (W, v) in enumerate(zip(net.weights, net.biases)):
        arrays[f"W{i}"] = W
        arrays[f"v{i}"] = v
    atomic_write_npz(path, arrays)
    return path


def read_model(path: Path) -> dict[str, Any]:
    """The constructor arguments of the model saved at ``path``, every entry checked
    (:meth:`DGN.load <dgn_core.model.DGN.load>` documents the errors)."""
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a saved DGN model (.npz file)")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelFileError(f"cannot read the model file {path}: {exc.strerror}") from None
    if magic[:1] == b"\x80":
        raise ModelFileError(
            f"{path} is a pickle, not a saved DGN model; refusing to unpickle it")
    if magic != b"PK\x03\x04":
        raise ModelFileError(f"{path} is not a readable .npz model file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ModelFileError(
                f"{path} contains pickled Python objects; refusing to load it "
                "(a saved DGN holds plain arrays only)"
            ) from None
        raise ModelFileError(f"{path} is not a saved DGN model: {exc}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelFileError(f"{path} is not a readable .npz model file ({exc})") from None
    return _check_arrays(path, data)


def _check_arrays(path: Path, data: dict[str, NDArray[Any]]) -> dict[str, Any]:
    """Check every entry of a loaded model file (presence, dtype, shape, value); every
    error is a :class:`ModelFileError` naming ``path`` and the entry."""
    marker = data.get("format")
    if marker is None or _text(marker) != _FORMAT:
        raise ModelFileError(f"{path} is not a saved DGN model (no '{_FORMAT}' marker)")
    version = _file_int(path, data, "format_version")
    if version > _FORMAT_VERSION:
        raise ModelFileError(
            f"{path} was written by a newer version (format {version}); "
            f"this version reads format {_FORMAT_VERSION}"
        )
    if version < 1:
        raise ModelFileError(f"{path}: entry 'format_version' must be >= 1, got {version}")
    L = _file_int(path, data, "n_layers")
    if L < 1:
        raise ModelFileError(f"{path}: entry 'n_layers' must be >= 1, got {L}")
    layer_keys = {k for k in data if k[:1] in "Wv" and k[1:].isdigit()}
    expected = {f"{c}{i}" for c in "Wv" for i in range(L)}
    if layer_keys != expected:
        missing = sorted(expected - layer_keys, key=_layer_order)
        extra = sorted(layer_keys - expected, key=_layer_order)
        what = "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unexpected {', '.join(extra)}" if extra else "") if part)
        raise ModelFileError(
            f"{path}: entry 'n_layers' says {L} layer(s) (W0..W{L - 1}, v0..v{L - 1}) "
            f"but the stored layers disagree ({what}); the file is damaged")
    known = {"format", "format_version", "n_layers", "activation", "slope", "noise_var",
             "prior_cov"} | expected | ({"pool_counts", "pool_sizes"} if version >= 3 else set())
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelFileError(f"{path}: unexpected entries {unknown} in a DGN model file")
    Ws = [_file_array(path, data, f"W{i}", 2) for i in range(L)]
    vs = [_file_array(path, data, f"v{i}", 1) for i in range(L)]
    for i, W in enumerate(Ws):
        if 0 in W.shape:
            raise ModelFileError(f"{path}: entry 'W{i}' has an empty dimension: shape "
                                 f"{W.shape}")
        if vs[i].shape != (W.shape[0],):
            raise ModelFileError(f"{path}: entry 'v{i}' must have shape ({W.shape[0]},) to "
                                 f"match 'W{i}' of shape {W.shape}, got {vs[i].shape}")
    act = data.get("activation")
    if act is None:
        raise ModelFileError(f"{path} is a damaged DGN model: missing entry 'activation'")
    text = _text(act)
    # format 2: one activation per hidden layer, comma-separated, and a slope per layer
    names = text.split(",") if text is not None and version >= 2 else [text]
    # format 3: max-pooling layers ("max", slope NaN, group sizes in pool_counts / pool_sizes)
    allowed = sorted(ACTIVATIONS) + ([MAX] if version >= 3 else [])
    for name in names:
        if name is None or name not in allowed:
            got = (repr(name) if name is not None
                   else repr(act.item()) if act.ndim == 0 else f"shape {act.shape}")
            per_layer = " (one per hidden layer, comma-separated)" if version >= 2 else ""
            raise ModelFileError(f"{path}: entry 'activation' must be one of "
                                 f"{allowed}{per_layer}, got {got} (dtype {act.dtype})")
    slope_arr = _file_array(path, data, "slope", None if version >= 2 else 0,
                            allow_nan=version >= 3)
    single = len(names) == 1 and slope_arr.ndim == 0
    if not single and (len(names) != L - 1 or slope_arr.shape != (L - 1,)):
        raise ModelFileError(
            f"{path}: entries 'activation' and 'slope' must give one value per hidden "
            f"layer ({L - 1}), got {len(names)} activation(s) and slope shape "
            f"{slope_arr.shape}")
    acts = [str(a) for a in names]
    slopes = [float(t) for t in np.atleast_1d(slope_arr)]
    for l, (a, t) in enumerate(zip(acts, slopes)):
        where = "" if single else f" for hidden layer {l + 1}"
        if a != MAX and not np.isfinite(t):
            raise ModelFileError(f"{path}: entry 'slope' contains NaN or infinite values"
                                 f"{where} (only a max-pooling layer has the slope NaN)")
        try:
            _check_activation(a, t)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: entry 'slope' is invalid{where}: {exc}") from None
    activation: str | list[str] = acts[0] if single else acts
    slope: float | list[float] = slopes[0] if single else slopes
    layer_acts = acts * (L - 1) if single else acts
    pools = _pool_entries(path, data, layer_acts, Ws) if version >= 3 else None
    for i in range(1, L):
        n_out = len(pools[i - 1]) if pools is not None and pools[i - 1] else Ws[i - 1].shape[0]
        if Ws[i].shape[1] != n_out:
            what = (f"hidden layer {i} max-pools its {Ws[i - 1].shape[0]} units to {n_out} "
                    "outputs" if pools is not None and pools[i - 1]
                    else f"'W{i - 1}' has {n_out} outputs")
            raise ModelFileError(f"{path}: entry 'W{i}' has shape {Ws[i].shape} (expects "
                                 f"{Ws[i].shape[1]} inputs) but {what}")
    D = Ws[-1].shape[0]
    nv = _file_array(path, data, "noise_var", None)
    if nv.ndim > 1 or (nv.ndim == 1 and nv.shape != (D,)):
        raise ModelFileError(f"{path}: entry 'noise_var' must be a scalar or have shape "
                             f"({D},), got shape {nv.shape}")
    if np.any(nv <= 0):
        raise ModelFileError(f"{path}: entry 'noise_var' must be positive, got "
                             f"min {float(nv.min())!r}")
    noise_var: float | NDArray[np.float64] = float(nv) if nv.ndim == 0 else nv
    prior_cov = None
    if "prior_cov" in data:
        prior_cov = _file_array(path, data, "prior_cov", 2)
    return dict(weights=Ws, biases=vs, activation=activation, slope=slope,
                noise_var=noise_var, prior_cov=prior_cov,
                pool_sizes=[list(p) or None for p in pools] if pools is not None else None)


def _pool_entries(path: Path, data: dict[str, NDArray[Any]], acts: list[str],
                  Ws: list[NDArray[np.float64]]) -> list[tuple[int, ...]] | None:
    """Format 3: the group sizes of every hidden layer (``()`` for an element-wise layer)
    from ``pool_counts`` (groups per hidden layer) and ``pool_sizes`` (all sizes, flat);
    ``None`` when the net has no max layer and the file no pool entries."""
    if MAX not in acts and "pool_counts" not in data and "pool_sizes" not in data:
        return None
    counts = _file_ints(path, data, "pool_counts")
    sizes = _file_ints(path, data, "pool_sizes")
    if counts.shape != (len(acts),):
        raise ModelFileError(f"{path}: entry 'pool_counts' must give one count per hidden "
                             f"layer ({len(acts)}), got shape {counts.shape}")
    if int(counts.sum()) != sizes.size or np.any(counts < 0):
        raise ModelFileError(f"{path}: entry 'pool_counts' ({counts.tolist()}) does not add "
                             f"up to the {sizes.size} group sizes of entry 'pool_sizes'")
    out: list[tuple[int, ...]] = []
    start = 0
    for l, (a, n) in enumerate(zip(acts, counts.tolist())):
        layer = sizes[start:start + n]
        start += n
        where = f"hidden layer {l + 1}"
        if a != MAX:
            if n:
                raise ModelFileError(f"{path}: entry 'pool_counts' gives {where} ({a}) {n} "
                                     "groups; an element-wise layer has 0")
            out.append(())
            continue
        if n < 1:
            raise ModelFileError(f"{path}: entry 'pool_counts' gives the max-pooling {where} "
                                 "no groups")
        if np.any(layer < 1):
            raise ModelFileError(f"{path}: entry 'pool_sizes' has group sizes < 1 for {where}: "
                                 f"{layer.tolist()}")
        if int(layer.sum()) != Ws[l].shape[0]:
            raise ModelFileError(
                f"{path}: entry 'pool_sizes' gives {where} groups adding up to "
                f"{int(layer.sum())} units, but 'W{l}' has {Ws[l].shape[0]} rows")
        out.append(tuple(int(k) for k in layer))
    return out


def _file_ints(path: Path, data: dict[str, NDArray[Any]], key: str) -> NDArray[np.int64]:
    """A 1-d integer entry (booleans, floats and strings refused) as int64."""
    arr = _file_entry(path, data, key)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ModelFileError(f"{path}: entry '{key}' must be a 1-d array of integers, got "
                             f"dtype {arr.dtype} and shape {arr.shape}")
    return np.asarray(arr, dtype=np.int64)


def _text(arr: NDArray[Any]) -> str | None:
    """A string entry: a 1-d uint8 array of ASCII bytes (written since the JSON twin of the
    format) or a 0-d numpy unicode scalar (older files); ``None`` for anything else."""
    if arr.dtype == np.uint8 and arr.ndim == 1:
        try:
            return arr.tobytes().decode("ascii")
        except UnicodeDecodeError:
            return None
    if arr.dtype.kind == "U" and arr.ndim == 0:
        return str(arr)
    return None


def _layer_order(key: str) -> tuple[int, str]:
    return int(key[1:]), key[0]


def _file_entry(path: Path, data: dict[str, NDArray[Any]], key: str) -> NDArray[Any]:
    if key not in data:
        raise ModelFileError(f"{path} is a damaged DGN model: missing entry '{key}'")
    return data[key]


def _file_int(path: Path, data: dict[str, NDArray[Any]], key: str) -> int:
    """A 0-d integer entry (booleans, floats and strings refused)."""
    arr = _file_entry(path, data, key)
    if arr.ndim != 0 or arr.dtype.kind not in "iu":
        raise ModelFileError(f"{path}: entry '{key}' must be a single integer, got "
                             f"dtype {arr.dtype} and shape {arr.shape}")
    return int(arr)


def _file_array(path: Path, data: dict[str, NDArray[Any]], key: str,
                ndim: int | None, allow_nan: bool = False) -> NDArray[np.float64]:
    """A finite real entry of ``ndim`` dimensions (``None``: 0 or 1) as float64 (NaN allowed
    with ``allow_nan``: the slope of a max-pooling layer, checked by the caller)."""
    arr = _file_entry(path, data, key)
    if arr.dtype.kind not in "fiu":
        raise ModelFileError(f"{path}: entry '{key}' must hold real numbers, got dtype "
                             f"{arr.dtype}")
    if (arr.ndim != ndim) if ndim is not None else arr.ndim > 1:
        want = "a single number" if ndim == 0 else (f"{ndim}-dimensional" if ndim else
                                                      "a number or a vector")
        raise ModelFileError(f"{path}: entry '{key}' must be {want}, got shape {arr.shape}")
    out = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(out) | (allow_nan & np.isnan(out))):
        raise ModelFileError(f"{path}: entry '{key}' contains NaN or infinite values")
    return out
