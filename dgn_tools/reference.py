"""Reference bundles: certified values of a DGN for checking other implementations.

A bundle (docs/reference_bundles.md; schema ``dgn_tools/schemas/reference.schema.json``)
holds a model, points, the exact regions and, per point, log p(x), the posterior region
weights, mean and covariance, and one exact EM step's updated parameters, each value as a
decimal string with its digits. ``dgn reference`` writes one, ``dgn compare`` reads another
implementation's numbers against it; this module is the Python API of both:

* :func:`load_bundle`, :func:`write_bundle`, :func:`bundle_schema`, :func:`golden_bundles`;
* :func:`read_results` (CSV / NPY / NPZ / JSON files, layouts in :data:`RESULTS_LAYOUTS`);
* :func:`compare_to_reference` -> a :class:`Comparison` (per quantity: digits of agreement,
  worst point and index) and :func:`assert_matches_reference` (raises ``AssertionError``
  naming the quantity and the worst point, in the spirit of ``numpy.testing``);
* :func:`fastpath_results`: this project's fast path in the layout of a bundle.

Agreement of a result ``y`` with a reference value ``r`` (scale ``s``, digits ``n``):
``min(n, -log10(|y - r| / max(|r|, s)))``: relative where ``|r| >= s``, absolute in units
of ``s`` below; never more than the reference itself holds.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dgn_core.exceptions import DGNError
from dgn_core.io import atomic_open, atomic_write_npz
from dgn_core.model import DGN
from dgn_core.model_json import model_from_dict

from ._reference_build import BUNDLE_FORMAT, BUNDLE_VERSION, build_bundle
from .schema_check import schema_errors

__all__ = ["BundleError", "Comparison", "QuantityAgreement", "RESULTS_LAYOUTS", "bundle_schema",
           "build_bundle", "load_bundle", "write_bundle", "write_bundle_npz", "bundle_model",
           "bundle_points", "bundle_reference", "golden_bundles", "read_results",
           "compare_to_reference", "assert_matches_reference", "fastpath_results"]

RESULTS_LAYOUTS = """\
Accepted layouts of RESULTS (quantity names as in the bundle: log_px, region_weights,
posterior_mean, posterior_cov, em_W{L-1}, em_v{L-1}, em_noise_var; any subset):
  JSON  {"log_px": [..N..], "posterior_mean": [[..S..], ..N..], ...}: nested lists of the
        quantity's shape (numbers, or strings such as "1.5e-3", "nan").
  NPZ   one array per quantity, keyed by its name, of the quantity's shape.
  NPY   one array: needs --quantity NAME (Python: read_results(path, quantity=NAME)).
  CSV   header quantity,point,index,value (any column order); one row per value; index is
        the position inside the point's slice, "i" or "i;j" (empty for log_px); the EM
        quantities have no point (leave it empty) and use "i;j" for matrices.
Region weights follow the bundle's region order, or give the sign patterns of your order as
"region_signs" (R x n_hidden_units of +1/-1; JSON or NPZ) and they are matched by pattern."""

_EM_PREFIX = "em_"


class BundleError(DGNError, ValueError):
    """A bundle or a results file that cannot be read (reported by the CLI with status 2)."""


# ------------------------------------------------------------------------------ bundles
def bundle_schema() -> dict[str, Any]:
    """The JSON Schema of a reference bundle, as shipped in the package."""
    text = resources.files("dgn_tools").joinpath("schemas/reference.schema.json").read_text(
        "utf-8")
    out: dict[str, Any] = json.loads(text)
    return out


def golden_bundles() -> list[Path]:
    """The reference bundles shipped in the package (dgn_tools/reference_bundles/)."""
    folder = resources.files("dgn_tools").joinpath("reference_bundles")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".json"))


def load_bundle(bundle: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """A bundle from a file (or a dict), checked against the schema and for consistency.

    Raises
    ------
    BundleError
        Not JSON, not a bundle, a newer format, a schema violation, or lists whose lengths
        disagree with the shapes.
    """
    where = "bundle"
    if not isinstance(bundle, dict):
        path = Path(bundle)
        where = str(path)
        if not path.is_file():
            raise BundleError(f"no bundle file at {path}")
        try:
            bundle = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path} is not a JSON reference bundle ({exc})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where} is not a reference bundle (no \"format\": "
                          f"\"{BUNDLE_FORMAT}\")")
    version = bundle.get("format_version")
    if isinstance(version, int) and version > BUNDLE_VERSION:
        raise BundleError(f"{where} was written by a newer version (format {version}); this "
                          f"version reads format {BUNDLE_VERSION}")
    errors = schema_errors(bundle, bundle_schema())
    if errors:
        raise BundleError(f"{where} does not match the bundle schema: " + "; ".join(errors[:3]))
    for name, q in bundle["quantities"].items():
        n = int(np.prod(q["shape"])) if q["shape"] else 1
        if not all(len(q[k]) == n for k in ("values", "digits", "scales", "certified")):
            raise BundleError(f"{where}: quantity {name!r} has shape {q['shape']} but lists of "
                              f"other lengths")
    return bundle


def bundle_model(bundle: dict[str, Any]) -> DGN:
    """The model of a bundle."""
    return model_from_dict(bundle["model"], "bundle model")


def bundle_points(bundle: dict[str, Any]) -> np.ndarray:
    """The points of a bundle, ``(N, D)`` float64 (exact: the strings are ``repr``)."""
    return np.array([[float(t) for t in row] for row in bundle["points"]], dtype=np.float64)


def bundle_reference(bundle: dict[str, Any], name: str
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(values, digits, scales, certified)`` of a quantity as arrays of its shape (values
    rounded to float64)."""
    q = bundle["quantities"][name]
    shape = tuple(q["shape"])
    return (np.array([float(v) for v in q["values"]], dtype=np.float64).reshape(shape),
            np.array(q["digits"], dtype=np.int64).reshape(shape),
            np.array(q["scales"], dtype=np.float64).reshape(shape),
            np.array(q["certified"], dtype=bool).reshape(shape))


def write_bundle(path: str | os.PathLike[str], bundle: dict[str, Any]) -> None:
    """Write a bundle as JSON atomically (sorted keys, so a regeneration can be diffed)."""
    with atomic_open(path, "w") as fh:
        json.dump(bundle, fh, indent=1, sort_keys=True, allow_nan=False)
        fh.write("\n")


def write_bundle_npz(path: str | os.PathLike[str], bundle: dict[str, Any]) -> None:
    """The bundle's content as ``.npz`` for numerical tools: per quantity ``NAME`` (float64,
    the values rounded), ``NAME.digits`` (int64), ``NAME.scales`` (float64),
    ``NAME.certified`` (bool); ``points`` (N, D); ``region_signs`` (R, H) int8; and the whole
    bundle as JSON text in ``bundle_json`` (uint8 bytes). No unicode or object arrays."""
    arrays: dict[str, np.ndarray] = {"points": bundle_points(bundle)}
    H = len(bundle["regions"][0]["signs"])
    arrays["region_signs"] = np.array([r["signs"] for r in bundle["regions"]],
                                      dtype=np.int8).reshape(len(bundle["regions"]), H)
    for name in bundle["quantities"]:
        v, d, s, c = bundle_reference(bundle, name)
        arrays[name], arrays[f"{name}.digits"] = v, d
        arrays[f"{name}.scales"], arrays[f"{name}.certified"] = s, c
    text = json.dumps(bundle, sort_keys=True, allow_nan=False).encode("utf-8")
    arrays["bundle_json"] = np.frombuffer(text, dtype=np.uint8).copy()
    atomic_write_npz(path, arrays)


# ------------------------------------------------------------------------------ results
def _as_array(value: Any, name: str, where: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: quantity {name!r} is not an array of numbers ({exc})") \
            from None
    return arr


def read_results(path: str | os.PathLike[str], *, quantity: str | None = None
                 ) -> dict[str, Any]:
    """Another implementation's numbers, ``{quantity: array}`` (layouts:
    :data:`RESULTS_LAYOUTS`). ``region_signs`` is passed through when given.

    Raises
    ------
    BundleError
        A missing or unreadable file, an unknown suffix, a CSV without the needed columns,
        an NPY file without ``quantity``.
    """
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"no results file at {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            obj = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(obj, dict):
                raise BundleError(f"{path}: a JSON results file is an object "
                                  "{quantity: nested list}")
            return {k: _as_array(v, k, str(path)) for k, v in obj.items()}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                return {k: _as_array(f[k], k, str(path)) for k in f.files}
        if suffix == ".npy":
            if quantity is None:
                raise BundleError(f"{path}: an .npy file holds one array; name its quantity "
                                  "(--quantity NAME)")
            return {quantity: _as_array(np.load(path, allow_pickle=False), quantity, str(path))}
        if suffix == ".csv":
            return _read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{path}: cannot read the results ({exc})") from None
    raise BundleError(f"{path}: unknown results format {suffix!r} (.json, .npz, .npy, .csv)")


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    """CSV rows quantity,point,index,value -> ``{quantity: {(point, index...): value}}``,
    returned as NaN-filled arrays by :func:`_place_csv` once the shapes are known."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"quantity", "value"} <= set(rows[0]):
        raise BundleError(f"{path}: a CSV results file needs a header with at least "
                          "quantity,value (and point,index)")
    entries: dict[str, dict[tuple[int, ...], float]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            pt = (row.get("point") or "").strip()
            idx = (row.get("index") or "").strip()
            key = ((int(pt),) if pt else ()) + tuple(
                int(t) for t in idx.replace(",", ";").split(";") if t.strip())
            entries.setdefault(row["quantity"].strip(), {})[key] = float(row["value"])
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{path}, line {line}: cannot read {row} ({exc})") from None
    # shapes are completed against the bundle in compare_to_reference
    return {name: _SparseResult(vals) for name, vals in entries.items()}  # type: ignore[misc]


class _SparseResult(dict):  # type: ignore[type-arg]
    """CSV values keyed by index tuple, placed into the bundle's shape when compared."""

    def place(self, shape: tuple[int, ...]) -> np.ndarray:
        out = np.full(shape, np.nan)
        for key, v in self.items():
            if len(key) != len(shape) or any(not 0 <= k < s for k, s in zip(key, shape)):
                raise BundleError(f"CSV index {key} does not fit the shape {shape}")
            out[key] = v
        return out


# ------------------------------------------------------------------------------ comparing
@dataclass
class QuantityAgreement:
    """The agreement of one quantity.

    ``digits``: the worst value's digits of agreement, in [0, the reference's digits];
    ``worst``: the index tuple of that value (its first entry is the point, except for the
    EM quantities); ``reference`` and ``result``: the two values there;
    ``reference_digits``: the fewest digits the reference holds; ``certified``: every
    reference value of the quantity is certified; ``per_value``: the digits of every value,
    in the quantity's shape."""

    name: str
    digits: float
    worst: tuple[int, ...]
    reference: float
    result: float
    reference_digits: int
    certified: bool
    n_values: int
    per_value: np.ndarray = field(repr=False)

    @property
    def where(self) -> str:
        if not self.worst:
            return "-"
        if self.name.startswith(_EM_PREFIX):
            return f"index {self.worst}"
        rest = self.worst[1:]
        return f"point {self.worst[0]}" + (f", index {rest if len(rest) > 1 else rest[0]}"
                                           if rest else "")


@dataclass
class Comparison:
    """Per quantity agreements (:class:`QuantityAgreement`) and the quantities of the bundle
    the results did not give."""

    quantities: dict[str, QuantityAgreement]
    missing: list[str]
    threshold: float

    @property
    def passed(self) -> bool:
        return all(q.digits >= self.threshold for q in self.quantities.values())

    @property
    def failures(self) -> list[QuantityAgreement]:
        return [q for q in self.quantities.values() if q.digits < self.threshold]

    def table(self) -> str:
        """A table a person can read: one line per quantity."""
        head = (f"{'quantity':<16} {'values':>6} {'digits':>6} {'ref':>4} {'cert':>4}  "
                f"{'worst at':<24} {'reference':>24} {'result':>24}  verdict")
        lines = [head, "-" * len(head)]
        for q in self.quantities.values():
            d = f"{q.digits:.1f}"
            ok = "ok" if q.digits >= self.threshold else f"BELOW {self.threshold:g}"
            lines.append(f"{q.name:<16} {q.n_values:>6} {d:>6} {q.reference_digits:>4} "
                         f"{'yes' if q.certified else 'no':>4}  {q.where:<24} "
                         f"{q.reference:>24.17g} {q.result:>24.17g}  {ok}")
        if self.missing:
            lines.append(f"not in the results: {', '.join(self.missing)}")
        lines.append("digits: -log10(|result - ref| / max(|ref|, scale)), capped at the "
                     "reference's own digits (ref); cert: the reference is certified")
        return "\n".join(lines)


def _match_regions(bundle: dict[str, Any], signs: np.ndarray, where: str) -> np.ndarray:
    """For each bundle region, its column in results ordered by ``signs`` (R, H)."""
    ref = [tuple(r["signs"]) for r in bundle["regions"]]
    theirs = {tuple(int(t) for t in row): k for k, row in enumerate(np.asarray(signs))}
    missing = [i for i, s in enumerate(ref) if s not in theirs]
    if missing or len(theirs) != len(ref):
        raise BundleError(f"{where}: region_signs lists {len(theirs)} distinct regions; the "
                          f"bundle has {len(ref)}" + (f" (bundle regions {missing[:5]} absent)"
                                                      if missing else ""))
    return np.array([theirs[s] for s in ref])


def compare_to_reference(results: dict[str, Any] | str | os.PathLike[str],
                         bundle: dict[str, Any] | str | os.PathLike[str], *,
                         digits: float = 10, quantity: str | None = None) -> Comparison:
    """Digits of agreement of ``results`` with ``bundle``, per quantity.

    Parameters
    ----------
    results : dict or path
        ``{quantity: array of the quantity's shape}`` (optionally ``region_signs``), or a
        results file (:data:`RESULTS_LAYOUTS`).
    bundle : dict or path
        A reference bundle (:func:`load_bundle`).
    digits : float
        The threshold of :attr:`Comparison.passed`.
    quantity : str, optional
        The quantity of an ``.npy`` results file.

    Raises
    ------
    BundleError
        An unreadable bundle or results file, an unknown quantity, a shape that differs from
        the bundle's, or no quantity in common.
    """
    bundle = load_bundle(bundle)
    where = "results"
    if not isinstance(results, dict):
        where = str(results)
        results = read_results(results, quantity=quantity)
    if not isinstance(digits, (int, float)) or isinstance(digits, bool) or not digits >= 0:
        raise ValueError(f"digits must be a non-negative number, got {digits!r}")
    refq = bundle["quantities"]
    given = {k: v for k, v in results.items() if k != "region_signs"}
    unknown = sorted(set(given) - set(refq))
    if unknown:
        raise BundleError(f"{where}: unknown quantities {unknown}; the bundle holds "
                          f"{sorted(refq)}")
    if not given:
        raise BundleError(f"{where}: no quantity of the bundle given ({sorted(refq)})")
    out: dict[str, QuantityAgreement] = {}
    for name in refq:
        if name not in given:
            continue
        ref, ref_digits, scales, cert = bundle_reference(bundle, name)
        y = given[name]
        y = y.place(ref.shape) if isinstance(y, _SparseResult) else np.asarray(y, np.float64)
        if name == "region_weights" and "region_signs" in results:
            y = y[:, _match_regions(bundle, results["region_signs"], where)]
        if y.shape != ref.shape:
            raise BundleError(f"{where}: quantity {name!r} has shape {y.shape}; the bundle's "
                              f"is {ref.shape} ({', '.join(refq[name]['index_names'])})")
        ref_exact = [float(v) for v in refq[name]["values"]]
        # the decimal's rounding to float64 counts: a result equal to float(r) agrees with
        # r to its 16-17 digits, not to the reference's 30 (y - float(r) is exact when close)
        resid = np.array([_rounding_residual(v) for v in refq[name]["values"]],
                         dtype=np.float64).reshape(ref.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.abs((y - ref) - resid) / np.maximum(np.abs(ref), scales)
            agree = np.where(err == 0, np.inf, -np.log10(err))
        # NaN or infinite results agree to 0 digits; the reference caps the agreement
        agree = np.clip(np.where(np.isfinite(y), agree, 0.0), 0.0, ref_digits)
        flat = int(np.argmin(agree)) if agree.size else 0
        worst = tuple(int(i) for i in np.unravel_index(flat, ref.shape)) if agree.size else ()
        out[name] = QuantityAgreement(
            name=name, digits=float(agree.min()) if agree.size else math.inf, worst=worst,
            reference=ref_exact[flat] if agree.size else math.nan,
            result=float(y.ravel()[flat]) if agree.size else math.nan,
            reference_digits=int(ref_digits.min()) if agree.size else 0,
            certified=bool(cert.all()), n_values=int(agree.size), per_value=agree)
    return Comparison(out, [k for k in refq if k not in given], float(digits))


def _rounding_residual(text: str) -> float:
    """``r - float(r)`` for the decimal string ``r`` (exact, then rounded)."""
    if text == "nan":
        return 0.0
    exact = Fraction(text)
    return float(exact - Fraction(float(exact)))


def assert_matches_reference(results: dict[str, Any] | str | os.PathLike[str],
                             bundle: dict[str, Any] | str | os.PathLike[str], *,
                             digits: float = 10, quantity: str | None = None) -> Comparison:
    """Raise ``AssertionError`` unless every quantity given agrees with the bundle to
    ``digits`` digits (:func:`compare_to_reference`); the message names each failing
    quantity, its worst point and index, the two values and the table. Returns the
    comparison when it passes."""
    cmp = compare_to_reference(results, bundle, digits=digits, quantity=quantity)
    if not cmp.passed:
        parts = [f"{q.name}: {q.digits:.1f} digits at {q.where} (reference {q.reference!r}, "
                 f"result {q.result!r}, reference holds {q.reference_digits})"
                 for q in cmp.failures]
        raise AssertionError(f"results do not match the reference to {digits:g} digits: "
                             + "; ".join(parts) + "\n" + cmp.table())
    return cmp


def fastpath_results(bundle: dict[str, Any] | str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """This project's fast path at the bundle's model and points, in the bundle's layout
    (``log_px``, ``region_weights`` with ``region_signs``, ``posterior_mean``,
    ``posterior_cov``, and the EM quantities when the bundle has them)."""
    import fastpath

    bundle = load_bundle(bundle)
    net, X = bundle_model(bundle), bundle_points(bundle)
    P = fastpath.partition(net)
    post = fastpath.posterior(net, X, partition=P)
    out = {"log_px": np.asarray(fastpath.log_marginal(net, X, partition=P)),
           "region_weights": np.asarray(post.e0), "region_signs": P.sign_matrix,
           "posterior_mean": np.asarray(post.mean), "posterior_cov": np.asarray(post.cov)}
    opts = bundle.get("em_options")
    if opts:
        new, _ = fastpath.em_step(net, X, noise=opts["noise"], partition=P)
        L = net.n_layers
        out[f"em_W{L - 1}"] = np.asarray(new.weights[-1])
        out[f"em_v{L - 1}"] = np.asarray(new.biases[-1])
        out["em_noise_var"] = np.asarray(new.noise_var_vector)
    return out
