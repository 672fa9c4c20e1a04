"""The settings of ``dgn fit``, validated in full before its run folder is written.

:func:`plan_fit` reads the options (a new run) or the run folder's config.json (``--resume``),
refuses options that conflict with a saved run, loads and checks the data, builds the initial
net and checks it against the noise floor and the prior, and checks the run folder: every
input error is reported before a file is written, so a failed start leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from dgn_core.model import DGN
from dgn_core.validation import check_int, check_nonnegative

from ._common import (
    CLIError,
    activation_value,
    check_latent_dim,
    check_option,
    load_fit_data,
    random_net,
)
from ._scaling import (
    ScaledSource,
    Scaling,
    check_data_range,
    check_spread,
    fit_scaling,
    observed_mean,
)

__all__ = ["FIT_DEFAULTS", "OPTION_DEFAULTS", "RUN_FILES", "FitPlan", "parse_prior", "parse_update",
           "plan_fit", "split_held_out"]

#: the main job: the settings of `dgn fit` with no arguments
FIT_DEFAULTS = {"data": "circle", "n": 1000, "latent_dim": 1, "widths": (8, 8),
                "activation": "leaky_relu", "slope": 0.1, "max_iter": 100, "tol": 1e-6}
#: every setting of a run (config.json) and its default; the parser's defaults are None, so
#: that an option given on the command line can be told from a default
OPTION_DEFAULTS: dict[str, Any] = {
    **FIT_DEFAULTS, "data_seed": 0, "seed": 0, "noise": "isotropic", "noise_var": None,
    "noise_floor": 1e-6, "prior": "none", "bias_prior": "none", "checkpoint_every": 10,
    "standardize": True, "stream": False, "shard_size": 2048, "val": None,
    "n_iter_no_change": None, "n_init": 1, "init": None, "update": "layers,noise",
    "missing": None}
#: rows of streamed data kept in memory for the figures (evenly spread blocks)
_PLOT_ROWS = 10_000
#: the files of a run folder
RUN_FILES = ("model.npz", "history.csv", "history.png", "manifold.png", "summary.json",
             "config.json", "checkpoint.npz")
#: the noise variance a new run starts from, relative to the data's mean variance: from about
#: the data's variance EM can linger on the plateau where the model is one broad Gaussian;
#: much smaller starts pull the random curve onto the nearest data and fold it
_INITIAL_NOISE = 0.05


@dataclass
class FitPlan:
    """A validated run: where it goes, its settings, the data and the initial net (of the
    transformed data, in ``scaling``'s units)."""

    run_dir: Path
    cfg: dict[str, Any]
    resume: bool
    X: np.ndarray               # the data, or evenly spread rows of streamed data (figures)
    data: Any                   # what EM runs on: the transformed array, or a ScaledSource
    n_points: int
    what: str
    scaling: Scaling
    net: DGN
    prior: Any
    bias_prior: Any
    noise_floor: float          # in the transformed data's units
    stale: list[Path]           # files of an earlier run that --force replaces
    X_val: np.ndarray | None = None      # held-out data (--val), in the data's units
    init: DGN | None = None              # the --init model, in the transformed data's units
    mask: np.ndarray | None = None       # --missing nan: True where X is observed


#: the settings that hold a prior's text form
_PRIOR_KEYS = ("prior", "bias_prior")


def parse_prior(text: str) -> Any:
    """The weight prior of ``--prior`` or the bias prior of ``--bias-prior``
    (:func:`dgn_core.priors.parse_prior`)."""
    from dgn_core.priors import parse_prior as parse

    return check_option(parse, text)


def parse_update(text: str) -> tuple[str, ...]:
    """The parts ``--update`` trains (fit_em's ``update``), checked."""
    from fastpath._em_options import UPDATES

    parts = tuple(t.strip() for t in str(text).split(","))
    bad = [t for t in parts if t not in UPDATES]
    if bad or not parts:
        raise CLIError(f"--update takes entries among {', '.join(UPDATES)} separated by ',' "
                       f"(e.g. layers,noise or biases,noise), got {text!r}")
    return parts


def _option(key: str) -> str:
    return "--" + key.replace("_", "-")


def _show(key: str, value: Any) -> str:
    """A setting as it is written on the command line."""
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "none"
    if value is None:
        return "none" if key in _PRIOR_KEYS else "(default)"
    return str(value)


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, in config.json's form."""
    given = {k: getattr(args, k) for k in OPTION_DEFAULTS if getattr(args, k, None) is not None}
    if "widths" in given:
        given["widths"] = list(given["widths"])
    if "data" in given:
        given["data"] = str(given["data"])
    return given


def _new_config(args: argparse.Namespace) -> dict[str, Any]:
    cfg = {**OPTION_DEFAULTS, **_given(args)}
    cfg["widths"] = list(cfg["widths"])
    # kept as given (a described prior rounds its parameter to 6 digits)
    for key in _PRIOR_KEYS:
        cfg[key] = None if parse_prior(cfg[key]) is None else cfg[key].strip()
    return cfg


def _same_setting(key: str, saved: Any, given: Any) -> bool:
    if key in _PRIOR_KEYS:
        return bool(parse_prior(given) == parse_prior(saved or "none"))
    if key == "data" and saved is not None and Path(saved).is_file() and Path(given).is_file():
        return os.path.samefile(saved, given)
    if isinstance(saved, float) or isinstance(given, float):
        return saved is not None and float(saved) == float(given)
    return bool(saved == given)


#: the JSON types of the settings in config.json
_SAVED_TYPES: dict[str, tuple[type, ...]] = {
    "data": (str,), "n": (int,), "data_seed": (int,), "latent_dim": (int,), "widths": (list,),
    "activation": (str,), "slope": (int, float, list), "seed": (int,), "noise": (str,),
    "noise_var": (int, float, type(None)), "noise_floor": (int, float),
    "prior": (str, type(None)), "bias_prior": (str, type(None)), "tol": (int, float),
    "max_iter": (int,),
    "checkpoint_every": (int,), "standardize": (bool,), "stream": (bool,),
    "shard_size": (int,), "val": (str, int, float, type(None)),
    "n_iter_no_change": (int, type(None)), "n_init": (int,), "init": (str, type(None)),
    "update": (str,), "missing": (str, type(None)), "pool_sizes": (list, type(None))}
#: settings whose JSON value is a bool
_BOOLS = ("standardize", "stream")
#: settings that only some runs record (pool_sizes: a net with max-pooling, from --init)
_OPTIONAL = ("pool_sizes",)


def _check_saved_types(saved: dict[str, Any], cfg_path: Path) -> None:
    missing = object()
    for key, types in _SAVED_TYPES.items():
        value = saved.get(key, missing)
        if value is missing and key in _OPTIONAL:
            continue
        # JSON true / false are bools, which Python also counts as ints
        ok = isinstance(value, types) and (key in _BOOLS) == isinstance(value, bool)
        if ok and key == "widths":
            ok = all(isinstance(w, int) and not isinstance(w, bool) for w in value)
        if not ok:
            what = "missing" if value is missing else f"{value!r}"
            raise CLIError(f"--resume: {cfg_path} is damaged: {key!r} is {what}; start a new run "
                           f"with --out")


def _resume_config(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    """The saved settings of the run in ``run_dir``; an option given with ``--resume`` that
    differs from them is an error (``--max-iter`` sets the new total)."""
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise CLIError(f"--resume: {run_dir} is not a run folder of `dgn fit` (no config.json)")
    try:
        saved = json.loads(cfg_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise CLIError(f"--resume: {cfg_path} is damaged ({exc}); start a new run with --out") from None
    if not isinstance(saved, dict):
        raise CLIError(f"--resume: {cfg_path} is not the config.json of `dgn fit`")
    # runs written before the data transformation existed ran on the data as given
    saved.setdefault("standardize", False)
    # ... and runs written before streamed data and shards existed in memory, in one shard
    # of the default size (the E-step of up to 2048 points is unchanged)
    saved.setdefault("stream", False)
    saved.setdefault("shard_size", OPTION_DEFAULTS["shard_size"])
    # ... and before held-out data, early stopping and several starts
    for key in ("val", "n_iter_no_change", "n_init", "init", "update"):
        saved.setdefault(key, OPTION_DEFAULTS[key])
    # ... and runs written before bias priors had none
    saved.setdefault("bias_prior", None)
    saved.setdefault("missing", None)   # ... and before missing values
    _check_saved_types(saved, cfg_path)
    if args.out is not None and Path(args.out).resolve() != run_dir.resolve():
        raise CLIError(f"--out {args.out} conflicts with --resume {run_dir}: a resumed run stays "
                       f"in its folder; drop --out")
    for key, value in _given(args).items():
        if key != "max_iter" and not _same_setting(key, saved.get(key), value):
            raise CLIError(f"{_option(key)} {_show(key, value)} conflicts with the saved run in "
                           f"{run_dir} ({_option(key)} {_show(key, saved.get(key))}); drop the option "
                           f"to continue the run as saved, or start a new run with --out")
    if args.max_iter is not None:
        saved["max_iter"] = args.max_iter
    return saved


def _check_config(cfg: dict[str, Any]) -> None:
    """The options EM would reject."""
    check_latent_dim(cfg["latent_dim"])
    if cfg["max_iter"] < 0:
        raise CLIError(f"--max-iter must be >= 0, got {cfg['max_iter']}")
    check_option(check_nonnegative, cfg["tol"], "--tol")
    check_option(check_int, cfg["checkpoint_every"], "--checkpoint-every", 1)
    check_option(check_int, cfg["seed"], "--seed")
    check_option(check_int, cfg["data_seed"], "--data-seed")
    check_option(check_int, cfg["shard_size"], "--shard-size", 1)
    check_option(check_int, cfg["n_init"], "--n-init", 1)
    parse_update(cfg["update"])
    if cfg["n_iter_no_change"] is not None:
        check_option(check_int, cfg["n_iter_no_change"], "--n-iter-no-change", 1)
        if cfg["val"] is None:
            raise CLIError("--n-iter-no-change (early stopping) needs held-out data: --val "
                           "FRACTION or --val FILE")
    floor = cfg["noise_floor"]
    if not np.isfinite(floor):  # its lower bound depends on the data (_check_noise)
        raise CLIError(f"--noise-floor must be a finite variance, got {floor}")
    nv = cfg["noise_var"]
    if nv is not None and not (np.isfinite(nv) and nv > 0):
        raise CLIError(f"--noise-var must be a positive variance, got {nv}")


def _check_noise(cfg: dict[str, Any], max_abs: float, spread: float, what: str) -> float:
    """The initial noise variance (data units) after checking it and the floor against the
    data (largest magnitude ``max_abs``)."""
    from fastpath._em_options import noise_floor_of_max

    floor, lowest = cfg["noise_floor"], noise_floor_of_max(max_abs)
    if floor < lowest:
        raise CLIError(f"--noise-floor must be at least {lowest:.3g} on these data (the rounding "
                       f"level of the residuals, (8 eps max|x|)^2), got {floor:g}")
    variance = spread * spread  # the mean variance per coordinate (spread is per entry)
    if variance > 0 and floor >= variance:
        raise CLIError(f"--noise-floor {floor:g} is not below the data's mean variance "
                       f"{variance:.3g} ({what}): the noise alone would explain the data; lower "
                       f"it (e.g. --noise-floor {0.001 * variance:.1g})")
    nv0 = cfg["noise_var"]
    if nv0 is None:
        nv0 = max(10.0 * floor, _INITIAL_NOISE * variance)
    elif nv0 < floor:
        raise CLIError(f"--noise-var {nv0:g} is below --noise-floor {floor:g}; raise it or lower "
                       f"the floor")
    return float(nv0)


def _check_prior(prior: Any, net: DGN, cfg: dict[str, Any], key: str = "prior") -> None:
    """A box prior must hold the initial weights (``key`` "prior") or biases ("bias_prior")."""
    from dgn_core.priors import BoxPrior

    arrays = net.weights if key == "prior" else net.biases
    if isinstance(prior, BoxPrior) and not np.isfinite(prior.log_density(arrays)):
        top = max(float(np.max(np.abs(W))) for W in arrays)
        what = "weights" if key == "prior" else "biases"
        raise CLIError(f"{_option(key)} {cfg[key]}: the initial {what} (seed {cfg['seed']}) reach "
                       f"{top:.3g}, outside the box; use a bound of at least {top:.3g}")


def _check_run_dir(run_dir: Path, *, resume: bool, force: bool) -> list[Path]:
    """The files of an earlier run that ``--force`` replaces (none when resuming)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise CLIError(f"--out {run_dir} is a file; give a folder for the run")
    for parent in (run_dir, *run_dir.parents):
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"--out {run_dir}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CLIError(f"the folder {parent} is not writable; choose another --out")
            break
    if resume:
        return []
    stale = [run_dir / f for f in RUN_FILES if (run_dir / f).exists()]
    stale += sorted(run_dir.glob("checkpoint.init*.npz"))  # the runs of --n-init
    if stale and not force:
        raise CLIError(f"{run_dir} already holds a run; use --resume {run_dir}, another --out, "
                       f"or --force to replace it")
    return stale


def plan_fit(args: argparse.Namespace) -> FitPlan:
    """Everything ``dgn fit`` needs, validated; no file is written."""
    resume = args.resume is not None
    if resume:
        run_dir = Path(args.resume)
        cfg = _resume_config(args, run_dir)
    else:
        cfg = _new_config(args)
        run_dir = Path(args.out) if args.out is not None else \
            Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    _check_config(cfg)
    stale = _check_run_dir(run_dir, resume=resume, force=bool(getattr(args, "force", False)))
    stream = _streamed(cfg)
    if stream is not None and cfg["missing"] is not None:
        raise CLIError("--missing reads the data into memory: not with streamed data")
    if stream is not None:
        from dgn_core.data_source import summarise

        summary = summarise(stream)
        what = f"streamed {stream.describe()}"
        spread, mean, max_abs = check_spread(summary.spread, what), summary.mean, summary.max_abs
        X = _plot_rows(stream)
        X_val = split_held_out(cfg, None)[1]
    else:
        if cfg["missing"] is not None and cfg["val"] is not None:
            raise CLIError("--val with --missing: held-out data with missing entries are not "
                           "supported; fit without --val, or fill in the held-out rows")
        X_all, what = load_fit_data(cfg["data"], cfg["n"], cfg["data_seed"],
                                    allow_nan=cfg["missing"] == "nan")
        X, X_val = split_held_out(cfg, X_all)
        spread, mean = check_data_range(X, what), observed_mean(X, what)
        max_abs = float(np.nanmax(np.abs(X)))
    if X_val is not None and X_val.shape[1] != X.shape[1]:
        raise CLIError(f"--val {cfg['val']}: {X_val.shape[1]} column(s), but the training data "
                       f"have {X.shape[1]}")
    nv0 = _check_noise(cfg, max_abs, spread, what)
    prior = parse_prior(cfg["prior"] or "none")
    bias_prior = parse_prior(cfg.get("bias_prior") or "none")
    # with a weight prior only centring keeps the objective unchanged; with a bias prior
    # neither does (centring moves the last bias by the data's mean)
    if cfg["standardize"] and bias_prior is None:
        scaling = fit_scaling(mean, spread, scale=prior is None)
    else:
        scaling = Scaling(shift=np.zeros(X.shape[1]), scale=1.0)
    data = scaling.apply(X) if stream is None else ScaledSource(stream, scaling)
    D = X.shape[1]
    init = _init_model(cfg, D, {} if resume else _given(args))
    if init is not None:  # the saved model's architecture is the run's
        cfg["latent_dim"], cfg["widths"] = init.latent_dim, list(init.widths[1:-1])
        cfg.update(architecture_settings(init))
    widths = (cfg["latent_dim"], *cfg["widths"], D)
    s2 = scaling.scale * scaling.scale
    noise_var: Any = nv0 / s2 if cfg["noise"] == "isotropic" else np.full(D, nv0 / s2)
    net = random_net(widths, activation=activation_value(cfg["activation"]),
                     slope=cfg["slope"] if "leaky_relu" in cfg["activation"].split(",") else None,
                     seed=cfg["seed"], noise_var=noise_var, pool_sizes=cfg.get("pool_sizes"))
    _check_prior(prior, net if init is None else init, cfg)
    _check_prior(bias_prior, net if init is None else init, cfg, "bias_prior")
    return FitPlan(run_dir=run_dir, cfg=cfg, resume=resume, X=X, data=data,
                   n_points=X.shape[0] if stream is None else stream.n_points, what=what,
                   scaling=scaling, net=net, prior=prior, bias_prior=bias_prior,
                   noise_floor=cfg["noise_floor"] / s2, stale=stale, X_val=X_val,
                   init=None if init is None else scaling.to_scaled(init),
                   mask=None if cfg["missing"] is None else ~np.isnan(X))


def architecture_settings(model: DGN) -> dict[str, Any]:
    """``activation`` and ``slope`` as ``--activation`` / ``--slope`` (and the model file)
    give them, with ``pool_sizes`` for a net with max-pooling, whose max layers have slope
    null (JSON has no NaN): the settings config.json and summary.json record."""
    activation, slope = model.activation_entries()
    out: dict[str, Any] = {"activation": activation, "slope": slope}
    if model.has_max_pooling:
        out["slope"] = [None if a == "max" else s for a, s in zip(model.activations, model.slopes)]
        out["pool_sizes"] = model.activation_kwargs()["pool_sizes"]
    return out


@overload
def split_held_out(cfg: dict[str, Any], X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...
@overload
def split_held_out(cfg: dict[str, Any], X: None) -> tuple[None, np.ndarray | None]: ...
def split_held_out(cfg: dict[str, Any], X: np.ndarray | None
              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(training data, held-out data) of ``--val``: a fraction in (0, 1) holds out that share
    of the rows of ``X`` (a random choice drawn from ``--seed``, the same on --resume), a
    file is read as held-out data and ``X`` is kept whole."""
    spec = cfg["val"]
    if spec is None:
        return X, None
    try:
        frac: float | None = float(spec)
    except (TypeError, ValueError):
        frac = None
    if frac is None:
        if not Path(str(spec)).is_file():
            raise CLIError(f"--val: {spec!r} is neither a fraction in (0, 1) nor a data file")
        X_val, _ = load_fit_data(str(spec))
        return X, X_val
    if not 0.0 < frac < 1.0:
        raise CLIError(f"--val must be a fraction in (0, 1) or a data file, got {spec}")
    if X is None:
        raise CLIError("--val FRACTION splits data held in memory; with streamed data give the "
                       "held-out data as a file: --val FILE")
    n_val = int(round(frac * X.shape[0]))
    if not 1 <= n_val < X.shape[0]:
        raise CLIError(f"--val {spec} of {X.shape[0]} points leaves {n_val} held-out and "
                       f"{X.shape[0] - n_val} training points; both need at least one")
    order = np.random.default_rng([abs(int(cfg["seed"])), 9_001]).permutation(X.shape[0])
    held = np.sort(order[:n_val])
    keep = np.ones(X.shape[0], dtype=bool)
    keep[held] = False
    return X[keep], X[held]


def _init_model(cfg: dict[str, Any], D: int, given: dict[str, Any]) -> DGN | None:
    """The model of ``--init`` (in the data's units), checked against the data and the
    architecture options ``given`` on the command line."""
    if cfg["init"] is None:
        return None
    from dgn_core.exceptions import DGNError

    path = Path(cfg["init"])
    try:
        model = DGN.load(path)
    except (OSError, DGNError, ValueError) as exc:
        raise CLIError(f"--init {path}: {exc}") from None
    if model.data_dim != D:
        raise CLIError(f"--init {path}: the model has data dimension {model.data_dim}, the data "
                       f"{D}")
    has = {"latent_dim": model.latent_dim, "widths": list(model.widths[1:-1]),
           **architecture_settings(model)}
    for key, value in has.items():
        if key in given and not _same_setting(key, value, given[key]):
            raise CLIError(f"--init {path} has {key} {_show(key, value)}, which conflicts with "
                           f"{_option(key)} {_show(key, given[key])}; drop the option (the "
                           f"model's architecture is the run's)")
    return model


def _streamed(cfg: dict[str, Any]) -> Any:
    """The data source of streamed data (``--stream``, a folder or a zarr array), else None."""
    from dgn_core.data import BUILTIN_DATASETS
    from dgn_core.data_source import as_source

    spec = cfg["data"]
    if spec in BUILTIN_DATASETS:
        if cfg["stream"]:
            raise CLIError(f"--stream reads a data file or folder; {spec!r} is a built-in data set")
        return None
    path = Path(spec)
    if not (cfg["stream"] or path.is_dir()):
        return None
    if not path.exists():
        raise CLIError(f"--data: no file or folder {spec!r}")
    return as_source(path)


def _plot_rows(source: Any) -> np.ndarray:
    """Up to :data:`_PLOT_ROWS` rows of ``source`` in 20 evenly spread blocks (figures)."""
    n = source.n_points
    if n <= _PLOT_ROWS:
        return np.asarray(source.read(0, n))
    block = _PLOT_ROWS // 20
    starts = np.linspace(0, n - block, 20).astype(int)
    return np.concatenate([source.read(int(a), int(a) + block) for a in starts])
