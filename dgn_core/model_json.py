"""The JSON form of a :class:`~dgn_core.model.DGN` model: language-neutral, exact.

The twin of the ``.npz`` model file (docs/model_format.md specifies both; the JSON Schema
is ``dgn_core/schemas/model.schema.json``, :func:`model_schema`). Every number is a JSON
number written with Python's ``repr`` of the float64 (the shortest decimal that reads back
to the same double), so ``npz -> JSON -> npz`` is bit-exact.

Layout (``layers[i]`` is layer ``i`` counted from 0, the npz file's ``W{i}`` / ``v{i}``)::

    {"format": "verified_dgn.DGN", "format_version": 1,
     "widths": [S, D_1, ..., D],
     "activation": "relu" | "leaky_relu" | "abs", "slope": eta,
       (format 2: one name and one slope per hidden layer, "activation": [...], "slope": [...])
     (format 3, a net with max-pooling layers: per-layer lists, "max" with slope null, and
      "pool_sizes": [null | [group sizes], ...] one entry per hidden layer)
     "noise_var": sigma2 | [sigma2_1, ..., sigma2_D],
     "prior_cov": null | [[...S...], ...S rows...],
     "layers": [{"W": [[...]] (D_{i+1} rows of D_i), "v": [...] (D_{i+1})}, ...]}

``h_{i+1} = W_i a(h_i) + v_i`` (``W`` multiplies a column vector from the left; ``a`` is
the identity on the input ``h_0 = z`` and the activation on hidden layers).
"""

from __future__ import annotations

import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .exceptions import ModelFileError
from .io import atomic_open
from .model import _FORMAT, _FORMAT_VERSION, ACTIVATIONS, DGN, MAX

__all__ = ["model_to_dict", "model_from_dict", "save_json", "load_json", "model_schema",
           "MODEL_JSON_KEYS"]

#: the keys of a JSON model, all required (``prior_cov`` may be null)
MODEL_JSON_KEYS = ("format", "format_version", "widths", "activation", "slope", "noise_var",
                   "prior_cov", "layers")

#: the key that format 3 adds (required there, refused before)
POOL_KEY = "pool_sizes"


def model_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the JSON model format, as shipped in the package."""
    text = resources.files("dgn_core").joinpath("schemas/model.schema.json").read_text("utf-8")
    out: dict[str, Any] = json.loads(text)
    return out


def model_to_dict(net: DGN) -> dict[str, Any]:
    """The JSON model of ``net`` as a plain dict (floats and lists; module notes)."""
    if not isinstance(net, DGN):
        raise TypeError(f"net must be a DGN, got {type(net).__name__}")
    nv = net.noise_var
    version = net.format_version   # 2 / 3 only where needed, so older readers take the rest
    per_layer = version >= 2
    out: dict[str, Any] = {
        "format": _FORMAT,
        "format_version": version,
        "widths": [int(w) for w in net.widths],
        "activation": list(net.activations) if per_layer else net.activation,
        # a max layer has no slope: null
        "slope": [None if a == MAX else float(t) for a, t in zip(net.activations, net.slopes)]
        if per_layer else float(net.slope),
    }
    if version >= 3:
        out[POOL_KEY] = [list(p) if p else None for p in net.pool_sizes]
    return out | {
        "noise_var": float(nv) if net.isotropic_noise else [float(t) for t in np.ravel(nv)],
        # a prior_cov given explicitly (even the identity) is kept, as in the npz file
        "prior_cov": None if net._prior_cov is None else
        [[float(t) for t in row] for row in net.prior_cov],
        "layers": [{"W": [[float(t) for t in row] for row in W], "v": [float(t) for t in v]}
                   for W, v in zip(net.weights, net.biases)],
    }


def save_json(net: DGN, path: str | os.PathLike[str]) -> Path:
    """Write ``net`` as JSON to ``path`` atomically (``.json`` appended to another suffix)."""
    obj = model_to_dict(net)
    path = Path(path)
    if path.suffix != ".json":
        path = path.with_name(path.name + ".json")
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, indent=1, allow_nan=False)
        fh.write("\n")
    return path


def load_json(path: str | os.PathLike[str]) -> DGN:
    """Read a JSON model file (:meth:`DGN.from_json <dgn_core.model.DGN.from_json>`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a DGN model (.json file)")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelFileError(f"cannot read the model file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path} is not a JSON model file (not UTF-8 text)") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a JSON model file ({exc})") from None
    return model_from_dict(obj, str(path))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a model may hold")


def model_from_dict(obj: Any, source: str = "JSON model") -> DGN:
    """The DGN of a JSON model dict, every entry checked.

    Raises
    ------
    ModelFileError
        Naming ``source`` and the entry: not an object, no format marker, a newer format,
        a key missing or unknown, a value of the wrong type, shape or range.
    """
    def err(msg: str) -> ModelFileError:
        return ModelFileError(f"{source}: {msg}")

    if not isinstance(obj, dict) or obj.get("format") != _FORMAT:
        raise ModelFileError(f"{source} is not a DGN model (no \"format\": \"{_FORMAT}\")")
    version = obj.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise err(f"entry 'format_version' must be an integer, got {version!r}")
    if version > _FORMAT_VERSION:
        raise err(f"written by a newer version (format {version}); this version reads "
                  f"format {_FORMAT_VERSION}")
    if version < 1:
        raise err(f"entry 'format_version' must be >= 1, got {version}")
    keys = MODEL_JSON_KEYS + ((POOL_KEY,) if version >= 3 else ())
    missing = [k for k in keys if k not in obj]
    if missing:
        raise err(f"missing entries {missing}")
    unknown = sorted(set(obj) - set(keys))
    if unknown:
        raise err(f"unexpected entries {unknown} in a DGN model")
    act = obj["activation"]
    per_layer = version >= 2 and isinstance(act, list)
    allowed = sorted(ACTIVATIONS) + ([MAX] if version >= 3 else [])
    if not all(isinstance(a, str) and a in allowed for a in (act if per_layer else [act])):
        raise err(f"entry 'activation' must be one of {allowed}"
                  f"{' or a list of them (format 2)' if version >= 2 else ''}, got {act!r}")
    layers = obj["layers"]
    if not isinstance(layers, list) or not layers:
        raise err("entry 'layers' must be a non-empty list of {\"W\": ..., \"v\": ...}")
    Ws, vs = [], []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict) or set(layer) != {"W", "v"}:
            raise err(f"entry 'layers[{i}]' must be an object with exactly the keys W and v")
        Ws.append(_numbers(layer["W"], f"layers[{i}].W", 2, err))
        vs.append(_numbers(layer["v"], f"layers[{i}].v", 1, err))
    widths = obj["widths"]
    if (not isinstance(widths, list) or len(widths) != len(layers) + 1
            or not all(isinstance(w, int) and not isinstance(w, bool) for w in widths)):
        raise err(f"entry 'widths' must list {len(layers) + 1} integers (one more than the "
                  f"layers), got {widths!r}")
    acts = act if per_layer else [act] * (len(layers) - 1)
    pools = _pools(obj[POOL_KEY], acts, widths, err) if version >= 3 else None
    for i, W in enumerate(Ws):
        # a max layer passes on one value per group: the next W has that many columns
        prev = pools[i - 1] if i > 0 and pools is not None else None
        cols = len(prev) if prev else widths[i]
        if W.shape != (widths[i + 1], cols):
            why = (f"widths {widths}, hidden layer {i} max-pools to {cols} values"
                   if cols != widths[i] else f"widths {widths}")
            raise err(f"entry 'layers[{i}].W' must have shape ({widths[i + 1]}, {cols}) "
                      f"({why}), got {W.shape}")
    slope_raw = obj["slope"]
    no_slope: list[int] = []     # format 3: the max layers' null slopes
    if version >= 3:
        slope_raw, no_slope = _null_slopes(slope_raw, acts, per_layer, err)
    slope = _numbers(slope_raw, "slope", 1 if per_layer else 0, err)
    if no_slope:
        slope = np.array(np.nan) if slope.ndim == 0 else slope
        slope[no_slope if slope.ndim else ()] = np.nan
    nv_raw = obj["noise_var"]
    nv = _numbers(nv_raw, "noise_var", 1 if isinstance(nv_raw, list) else 0, err)
    pc = None if obj["prior_cov"] is None else _numbers(obj["prior_cov"], "prior_cov", 2, err)
    try:
        return DGN(Ws, vs, activation=act, slope=[float(t) for t in slope] if per_layer
                   else float(slope),
                   noise_var=float(nv) if nv.ndim == 0 else nv, prior_cov=pc,
                   pool_sizes=pools)
    except (ValueError, TypeError) as exc:
        raise err(f"holds an invalid DGN model: {exc}") from None


def _null_slopes(value: Any, acts: list[Any], per_layer: bool, err: Any
                 ) -> tuple[Any, list[int]]:
    """Format 3's slopes: null exactly for the max layers. Returns the slopes with 0.0 in
    place of the nulls (for :func:`_numbers`) and the positions of the nulls."""
    if not per_layer:
        if (value is None) != (acts[:1] == [MAX]):
            raise err(f"entry 'slope' must be null for max-pooling and a number otherwise, "
                      f"got {value!r}")
        return (0.0, [0]) if value is None else (value, [])
    if not isinstance(value, list) or len(value) != len(acts):
        return value, []           # _numbers / the constructor name the problem
    for l, (a, t) in enumerate(zip(acts, value)):
        if a == MAX and t is not None:
            raise err(f"entry 'slope' must be null for hidden layer {l + 1} (max-pooling has "
                      f"no slope), got {t!r}")
        if a != MAX and t is None:
            raise err(f"entry 'slope' is null for hidden layer {l + 1}, which is {a} (only a "
                      "max-pooling layer has no slope)")
    nulls = [l for l, t in enumerate(value) if t is None]
    return [0.0 if t is None else t for t in value], nulls


def _pools(value: Any, acts: list[Any], widths: list[Any], err: Any
           ) -> list[list[int] | None]:
    """Format 3's ``pool_sizes``: one entry per hidden layer, null for an element-wise layer
    and a list of positive integers adding up to the layer's width for a max layer."""
    if not isinstance(value, list) or len(value) != len(acts):
        raise err(f"entry 'pool_sizes' must list one entry per hidden layer ({len(acts)}), "
                  f"got {value!r:.80}")
    out: list[list[int] | None] = []
    for l, (a, p) in enumerate(zip(acts, value)):
        where = f"entry 'pool_sizes' for hidden layer {l + 1}"
        if a != MAX:
            if p is not None:
                raise err(f"{where} ({a}) must be null, got {p!r:.80}")
            out.append(None)
            continue
        if (not isinstance(p, list) or not p
                or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                           for k in p)):
            raise err(f"{where} (max-pooling) must be a non-empty list of positive integers, "
                      f"got {p!r:.80}")
        if sum(p) != widths[l + 1]:
            raise err(f"{where} adds up to {sum(p)} units, but widths gives the layer "
                      f"{widths[l + 1]}")
        out.append(list(p))
    return out


def _numbers(value: Any, name: str, ndim: int, err: Any) -> np.ndarray:
    """A rectangular nested list of JSON numbers (ints or floats, not booleans) of ``ndim``
    dimensions as float64; each value must be finite and exactly representable (ints
    beyond 2**53 are refused rather than rounded)."""
    def walk(v: Any, depth: int) -> Any:
        if depth == ndim:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise err(f"entry '{name}' must hold numbers, got {v!r}")
            f = float(v)
            if not math.isfinite(f):
                raise err(f"entry '{name}' contains NaN or infinite values")
            if isinstance(v, int) and int(f) != v:
                raise err(f"entry '{name}' holds the integer {v}, not a float64")
            return f
        if not isinstance(v, list):
            want = "a number" if ndim == 0 else f"a {ndim}-dimensional nested list"
            raise err(f"entry '{name}' must be {want}, got {type(v).__name__}")
        return [walk(t, depth + 1) for t in v]

    nested = walk(value, 0)
    try:
        arr = np.array(nested, dtype=np.float64)
    except ValueError:
        raise err(f"entry '{name}' is not rectangular") from None
    if arr.ndim != ndim:
        raise err(f"entry '{name}' must be {ndim}-dimensional, got shape {arr.shape}")
    return arr
