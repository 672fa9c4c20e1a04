"""``dgn fit``: train a DGN by exact, monotone EM (docs/DESIGN.md §2.5) and write a run folder."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dgn_core.exceptions import CheckpointError
from dgn_core.model import DGN

from ._common import (
    MAX_LATENT_DIM,
    CLIError,
    add_force_arg,
    check_jobs,
    parse_hidden_widths,
    parse_layer_activations,
    write_columns_csv,
    write_json,
)
from ._fit_setup import (
    FIT_DEFAULTS,
    OPTION_DEFAULTS,
    RUN_FILES,
    FitPlan,
    architecture_settings,
    parse_update,
    plan_fit,
)

__all__ = ["FIT_DEFAULTS", "RUN_FILES", "manifold_figure", "history_figure", "add_parser", "run"]


def manifold_figure(net: DGN, X: np.ndarray, *, window: float = 4.0, title: str = "") -> Any:
    """The learned manifold g(z) over the data.

    S = 1: the curve g(z), z in [-window, window], with its kinks; S = 2: the image of a
    latent grid on [-3, 3]^2 as a mesh; S >= 3: g of prior samples. Data dimension 2 is drawn
    in the plane, 3 in 3-D axes, larger ones on the first two coordinates.

    Parameters
    ----------
    net : DGN
    X : ndarray, shape (N, D)

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..plotting import new_figure

    S, D = net.latent_dim, net.data_dim
    three = D == 3
    fig = new_figure(figsize=(6.5, 6))
    ax: Any = fig.add_subplot(111, projection="3d" if three else None)
    cols = [0, 1, 2] if three else [0, min(1, D - 1)]
    ax.scatter(*(X[:, c] for c in cols), s=3, c="0.6", alpha=0.6, label="data")
    if S == 1:
        import fastpath

        P = fastpath.partition(net)
        kinks = np.unique(np.concatenate([np.asarray(r.vertices, dtype=np.float64).ravel()
                                          for r in P]))
        kinks = kinks[np.abs(kinks) <= window]
        z = np.union1d(np.linspace(-window, window, 1201), kinks)
        G = net.forward(z[:, None])
        ax.plot(*(G[:, c] for c in cols), "-", c="C0", lw=1.5, label=f"g(z), |z| <= {window:g}")
        if kinks.size:
            Gk = net.forward(kinks[:, None])
            ax.plot(*(Gk[:, c] for c in cols), "o", ms=3, c="crimson",
                    label=f"kinks ({kinks.size}; {len(P)} regions)")
    elif S == 2:
        t = np.linspace(-3.0, 3.0, 41)
        Z1, Z2 = np.meshgrid(t, t)
        G = net.forward(np.stack([Z1.ravel(), Z2.ravel()], 1)).reshape(41, 41, D)
        for i in range(0, 41, 2):
            ax.plot(*(G[i, :, c] for c in cols), "-", c="C0", lw=0.6)
            ax.plot(*(G[:, i, c] for c in cols), "-", c="C0", lw=0.6)
        ax.plot([], [], "-", c="C0", label="g(z), z on a grid of [-3, 3]^2")
    else:
        Z = np.random.default_rng(0).standard_normal((3000, S))
        G = net.forward(Z)
        ax.scatter(*(G[:, c] for c in cols), s=2, c="C0", label="g(z), z ~ N(0, I)")
    if not three:
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"$x_{cols[0] + 1}$")
    ax.set_ylabel(f"$x_{cols[1] + 1}$")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or f"learned manifold, widths {net.widths}")
    return fig


def history_figure(res: Any, history: dict[str, np.ndarray] | None = None) -> Any:
    """Exact log p(X) / N against iterations and seconds, from iteration 1: the initial value
    of a random net is often far below the rest and would flatten the curve (the title
    gives it)."""
    from ..plotting import subplots

    h = res.history if history is None else history
    start = 1 if res.n_iter >= 1 else 0
    fig, axes = subplots(1, 2, figsize=(11, 4))
    axes[0].plot(h["iteration"][start:], h["per_point"][start:], "-o", ms=2)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("exact log p(X) / N")
    axes[1].plot(h["seconds"][start:], h["per_point"][start:], "-o", ms=2)
    axes[1].set_xlabel("seconds")
    if "val_per_point" in h:
        for ax, x in zip(axes, (h["iteration"], h["seconds"])):
            ax.plot(x[start:], h["val_per_point"][start:], "-s", ms=2, c="C1", label="held-out")
            ax.plot([], [], "-o", ms=2, c="C0", label="training")
            ax.legend()
    hits = np.flatnonzero(h["noise_floor_hit"] > 0)
    if hits.size:
        axes[0].plot(h["iteration"][hits], h["per_point"][hits], "x", c="crimson",
                     label="noise floor binds")
        axes[0].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(f"EM: exact log-likelihood per point, {h['per_point'][0]:.4g} (initial) -> "
                 f"{h['per_point'][-1]:.6g} in {res.n_iter} iterations "
                 f"({'converged' if res.converged else 'not converged'})")
    fig.tight_layout()
    return fig


def add_parser(sub: Any) -> None:
    d = OPTION_DEFAULTS
    p = sub.add_parser(
        "fit", help="train a DGN by exact, monotone EM (the main job)",
        description="Train a DGN by exact EM (fastpath.fit_em): the exact log-likelihood never "
        "decreases. With no arguments: the paper's Sec. 4.3 experiment, a leaky-ReLU DGN with "
        "latent dimension 1 and hidden widths 8,8 (slope 0.1) on the built-in noisy circle "
        "(N = 1000, radius 1, noise sd 0.05), 100 iterations (about 20-30 s on a 2-core "
        "machine). Writes a run folder: model.npz, history.csv, history.png, manifold.png, "
        "summary.json, config.json and checkpoint.npz. Interrupt with Ctrl-C and continue "
        "with --resume DIR (same result as an uninterrupted run). EM runs on the data centred "
        "on their mean and divided by a power of two near their spread; the saved model, "
        "history and summary are in the data's own units.")
    # the defaults are None: the settings take OPTION_DEFAULTS, and --resume can tell an
    # option given on the command line (compared with the saved run) from a default
    p.add_argument("--data", help="circle, cosine, a data file (.npy, .csv, IDX), or (streamed) a folder of "
                   ".npy shards or a zarr array (default circle)")
    p.add_argument("--n", type=int, help=f"points of a built-in data set ({d['n']})")
    p.add_argument("--data-seed", type=int, help="seed of a built-in data set (0)")
    p.add_argument("--latent-dim", type=int,
                   help=f"latent dimension S, 1 to {MAX_LATENT_DIM} (default {d['latent_dim']})")
    p.add_argument("--widths", type=parse_hidden_widths,
                   help="hidden widths, e.g. 8,8 (default 8,8; 'none' for a linear model)")
    p.add_argument("--activation", type=parse_layer_activations, metavar="A[,A...]",
                   help=f"activation: relu, leaky_relu or abs, or one per hidden layer separated "
                   f"by ',' (e.g. relu,abs) (default {d['activation']})")
    p.add_argument("--slope", type=float,
                   help=f"negative-side slope of the leaky_relu layers (default {d['slope']})")
    p.add_argument("--seed", type=int, help="seed of the initial weights (default 0)")
    p.add_argument("--max-iter", type=int,
                   help=f"EM iterations (default {d['max_iter']}; with --resume: the new total)")
    p.add_argument("--tol", type=float,
                   help=f"stop when the log-likelihood gains less than this per point ({d['tol']:g})")
    p.add_argument("--noise", choices=["isotropic", "diagonal"],
                   help="noise model (default isotropic)")
    p.add_argument("--noise-var", type=float,
                   help="initial noise variance (default 0.05 x the data's mean variance)")
    p.add_argument("--noise-floor", type=float,
                   help=f"lower bound of the noise variance, positive and below the data's "
                   f"variance (default {d['noise_floor']:g})")
    p.add_argument("--prior", help="weight prior: none, gaussian:VAR, laplace:SCALE or box:BOUND")
    p.add_argument("--bias-prior", help="bias prior (every layer's bias vector): none, "
                   "gaussian:VAR, laplace:SCALE or box:BOUND; the data are then fitted as given "
                   "(centring or rescaling them would change what the prior means)")
    p.add_argument("--checkpoint-every", type=int,
                   help=f"write checkpoint.npz every this many iterations (default "
                   f"{d['checkpoint_every']})")
    p.add_argument("--no-standardize", dest="standardize", action="store_const", const=False,
                   help="run EM on the data as given (default: centred and rescaled, then "
                   "mapped back exactly)")
    p.add_argument("--missing", choices=["nan"],
                   help="the data have missing values, marked NaN (an empty field of a .csv "
                   "file): EM maximises the exact log-likelihood of the observed entries")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<timestamp>)")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="continue the interrupted run in DIR (its saved settings are used; an "
                   "option that differs from them is an error)")
    add_force_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="threads of the compiled E-step kernels at S >= 2 (default: all cores; "
                   "-1 all, -2 all but one; with --workers / --scheduler: per task, default 1); "
                   "the result does not depend on it")
    p.add_argument("--stream", action="store_const", const=True, default=None,
                   help="read a .npy data file shard by shard (memory-mapped) instead of loading "
                   "it; implied for a folder of .npy shards or a zarr array")
    p.add_argument("--shard-size", type=int, default=None, metavar="ROWS",
                   help="rows per shard of the E-step (default 2048; part of the result at the "
                   "rounding level, saved with the run)")
    p.add_argument("--update", default=None, metavar="PARTS",
                   help="what EM trains, among layers (every layer), last (the last layer), "
                   "biases (the paper's bias-only update) and noise, separated by ',' "
                   "(default layers,noise)")
    p.add_argument("--val", default=None, metavar="FRACTION|FILE",
                   help="held-out data: a fraction in (0, 1) of the data (rows drawn with "
                   "--seed) or a data file; its exact log-likelihood is tracked every iteration")
    p.add_argument("--n-iter-no-change", type=int, default=None, metavar="K",
                   help="early stopping (needs --val): stop when the held-out log-likelihood has "
                   "not improved for K iterations and keep the best held-out model")
    p.add_argument("--n-init", type=int, default=None, metavar="K",
                   help="EM runs from K starts (the first from --seed's net or --init, the "
                   "others random), keeping the best by training log-likelihood, or by "
                   "held-out log-likelihood with --val (default 1)")
    p.add_argument("--init", default=None, metavar="MODEL.npz",
                   help="start from a saved model (e.g. an earlier run's model.npz; its "
                   "architecture is the run's)")
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, default=None, metavar="N",
                         help="run the E-step on a local Dask cluster of N worker processes "
                         "(needs the scale extra: pip install 'verified-dgn[scale]'); the "
                         "result is the same bit for bit")
    cluster.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="run the E-step on the Dask cluster whose scheduler is at ADDRESS "
                         "(e.g. tcp://10.0.0.5:8786; streamed data must be at the same path on "
                         "every worker)")
    p.set_defaults(func=run)


def _start_run(plan: FitPlan) -> None:
    """Create the run folder (or clear an earlier run's files with --force) and write
    config.json; nothing happens to a resumed run's folder."""
    if plan.resume:
        return
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    for f in plan.stale:
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    cfg = dict(plan.cfg)
    if plan.cfg["standardize"]:
        cfg["scaling"] = plan.scaling.record()
    write_json(plan.run_dir / "config.json", cfg)


def _observed_dim(plan: FitPlan) -> float:
    """Observed entries per point: D, or their mean number with missing values (each
    observed entry contributes -log s to log p(x) - log p(y))."""
    if plan.mask is None:
        return float(plan.X.shape[1])
    return float(plan.mask.sum()) / plan.n_points


def _in_data_units(res: Any, plan: FitPlan) -> tuple[DGN, dict[str, np.ndarray], list[float], list[float]]:
    """The trained model, the history columns, log p(X) and the objective of every
    iteration, mapped from the transformed data back to the data's units."""
    N = plan.n_points
    shift = plan.scaling.log_density_shift(_observed_dim(plan))
    hist = dict(res.history)
    ll = [v + N * shift for v in res.log_likelihood]
    obj = [v + N * shift for v in res.objective]
    hist["log_likelihood"] = np.asarray(ll, dtype=np.float64)
    hist["per_point"] = hist["log_likelihood"] / N
    hist["objective"] = np.asarray(obj, dtype=np.float64)
    hist["noise_var"] = hist["noise_var"] * plan.scaling.scale ** 2
    if "val_log_likelihood" in hist:
        hist["val_log_likelihood"] = hist["val_log_likelihood"] + res.n_val_points * shift
        hist["val_per_point"] = hist["val_log_likelihood"] / res.n_val_points
    return plan.scaling.from_scaled(res.model), hist, ll, obj


def _held_out_summary(res: Any, hist: dict[str, np.ndarray]) -> dict[str, Any]:
    """The held-out entries of summary.json (data units): log p(X_val) of the returned model."""
    if "val_log_likelihood" not in hist:
        return {}
    it = res.best_iteration if res.early_stopped else res.n_iter
    val = float(hist["val_log_likelihood"][it])
    return {"val_n_points": res.n_val_points, "val_log_likelihood": val,
            "val_per_point": val / res.n_val_points, "best_iteration": res.best_iteration,
            "early_stopped": res.early_stopped}


def _starts_summary(res: Any, plan: FitPlan) -> dict[str, Any]:
    """The entries of summary.json on several starts: the kept one and each run's final
    training log-likelihood per point (data units)."""
    if not res.init_results:
        return {}
    shift = plan.scaling.log_density_shift(plan.X.shape[1])
    return {"n_init": len(res.init_results), "best_init": res.best_init,
            "start_per_point": [r.log_likelihood[-1] / r.n_points + shift
                                for r in res.init_results]}


def _saved_iteration(ckpt: Path) -> int | None:
    """The last iteration stored in an EM checkpoint (0: the initial model), or None."""
    try:
        with np.load(ckpt, allow_pickle=False) as data:
            return len(data["log_likelihood"]) - 1
    except (OSError, ValueError, KeyError):
        return None


def _interrupted(plan: FitPlan) -> None:
    """Say what an interruption left: fit_em saves the last completed iteration, but an
    interruption before that (while the initial model is evaluated) leaves no checkpoint."""
    ckpt = plan.run_dir / "checkpoint.npz"
    it = _saved_iteration(ckpt) if ckpt.exists() else None
    if it is not None:
        what = f"iteration {it}" if it else "the initial model (no iteration had completed)"
        print(f"dgn fit: {what} is saved in {ckpt}; continue with: "
              f"dgn fit --resume {plan.run_dir}", file=sys.stderr)
    else:
        print(f"dgn fit: interrupted before the first iteration completed: no checkpoint was "
              f"saved; start the run again with: dgn fit --resume {plan.run_dir}", file=sys.stderr)


def _cluster_options(args: argparse.Namespace) -> tuple[int | None, str | None]:
    """(--workers, --scheduler), checked; Dask is imported only when one is given."""
    workers, scheduler = getattr(args, "workers", None), getattr(args, "scheduler", None)
    if workers is not None and workers < 1:
        raise CLIError(f"--workers must be at least 1, got {workers}")
    if workers is not None or scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise CLIError("--workers / --scheduler need Dask: pip install "
                           "'dask[distributed]' (or the package's scale extra)") from None
    return workers, scheduler


@contextlib.contextmanager
def _dask_client(cluster: tuple[int | None, str | None], quiet: bool) -> Iterator[Any]:
    """A Dask client for the E-step (a local cluster of ``--workers`` processes, or the
    ``--scheduler``'s), closed afterwards; None without either option."""
    workers, scheduler = cluster
    if workers is None and scheduler is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if workers is not None:
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as local, Client(local) as client:
            if not quiet:
                print(f"dgn fit: E-step on a local Dask cluster of {workers} worker processes",
                      flush=True)
            yield client
        return
    try:
        client = Client(scheduler, timeout=30)
    except OSError as exc:
        raise CLIError(f"--scheduler {scheduler}: cannot reach the Dask scheduler ({exc})") from None
    with client:
        if not quiet:
            n = len(client.scheduler_info().get("workers", {}))
            print(f"dgn fit: E-step on the Dask cluster at {scheduler} ({n} workers)", flush=True)
        yield client


def run(args: argparse.Namespace) -> int:
    # looked up at call time (not imported at module level), so that a test can replace it
    from fastpath.em import ConvergenceWarning, fit_em

    from ..plotting import save_figure

    jobs = check_jobs(getattr(args, "jobs", None))
    cluster = _cluster_options(args)
    plan = plan_fit(args)          # every input error is raised here, before any file
    if plan.mask is not None and cluster != (None, None):
        raise CLIError("--missing runs the E-step in this process: not with --workers / "
                       "--scheduler")
    cfg, X, run_dir = plan.cfg, plan.X, plan.run_dir
    N, D = plan.n_points, X.shape[1]
    _start_run(plan)
    quiet = getattr(args, "quiet", False)
    if not quiet:
        print(f"dgn fit: {plan.what}: N = {N}, D = {D}; model "
              f"{plan.scaling.from_scaled(plan.net)!r}; run folder {run_dir}", flush=True)
        if plan.scaling.scale != 1.0:
            print(f"dgn fit: EM runs on (x - mean) / {plan.scaling.scale:g}: its progress lines "
                  f"give log p(X) and the noise variance of those data (add "
                  f"{N * plan.scaling.log_density_shift(_observed_dim(plan)):+.6g} to log p(X) "
                  f"and multiply the "
                  f"variance by {plan.scaling.scale ** 2:g} for the data's units)", flush=True)
    try:
        with warnings.catch_warnings(), _dask_client(cluster, quiet) as client:
            # reported in the summary line instead ("max-iter reached")
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = fit_em(plan.net, plan.data, max_iter=cfg["max_iter"],
                         tol=cfg["tol"], noise=cfg["noise"], weight_prior=plan.prior,
                         bias_prior=plan.bias_prior,
                         noise_floor=plan.noise_floor, seed=cfg["seed"], progress=not quiet,
                         checkpoint=run_dir / "checkpoint.npz",
                         checkpoint_every=cfg["checkpoint_every"], resume=plan.resume,
                         n_jobs=jobs, client=client, shard_size=cfg["shard_size"],
                         X_val=None if plan.X_val is None else plan.scaling.apply(plan.X_val),
                         n_iter_no_change=cfg["n_iter_no_change"], n_init=cfg["n_init"],
                         init=plan.init, update=parse_update(cfg["update"]),
                         mask=plan.mask)
    except KeyboardInterrupt:
        _interrupted(plan)
        raise
    except CheckpointError as exc:
        # a checkpoint fit_em cannot continue (damaged, other data or options)
        raise CLIError(f"--resume {run_dir}: {exc}") from None
    model, hist, lls, objs = _in_data_units(res, plan)
    model.save(run_dir / "model.npz")
    write_columns_csv(run_dir / "history.csv", hist)
    save_figure(history_figure(res, hist), run_dir / "history.png")
    shown = X if plan.mask is None else X[plan.mask.all(axis=1)]   # complete rows
    save_figure(manifold_figure(model, shown, title=f"learned manifold over the data ({plan.what})"),
                run_dir / "manifold.png")
    ll = lls[-1]
    k = model.n_params
    summary = {
        "data": plan.what, "n_points": N, "data_dim": D, "widths": list(model.widths),
        **architecture_settings(model),
        "log_likelihood": ll, "per_point": ll / N, "initial_log_likelihood": lls[0],
        "objective": objs[-1], "n_params": k, "aic": 2 * k - 2 * ll,
        "bic": k * float(np.log(N)) - 2 * ll, "n_iter": res.n_iter, "converged": res.converged,
        "seconds": float(res.times[-1]),
        "noise_var": np.asarray(model.noise_var).tolist(),
        "noise_floor_hit": res.noise_floor_hit, "ecm_rejected": res.ecm_rejected,
        "n_regions": res.n_regions[-1],
        **_held_out_summary(res, hist), **_starts_summary(res, plan),
        "files": [f for f in RUN_FILES if (run_dir / f).exists() or f == "summary.json"]
        + sorted(p.name for p in run_dir.glob("checkpoint.init*.npz")),
    }
    write_json(run_dir / "summary.json", summary)
    if not quiet:
        floor = (f"; the noise floor bound at {len(res.noise_floor_hit)} iteration(s)"
                 if res.noise_floor_hit else "")
        state = ("converged" if res.converged else "early stop" if res.early_stopped
                 else "max-iter reached")
        print(f"log p(X) = {ll:.6f} ({ll / N:.6f} per point) after {res.n_iter} iterations "
              f"[{state}, {res.times[-1]:.1f} s]{floor}")
        if "val_per_point" in summary:
            print(f"held-out: {summary['val_per_point']:.6f} per point ({res.n_val_points} points)"
                  f" for the returned model; best at iteration {res.best_iteration}")
        if res.init_results:
            print(f"kept start {res.best_init} of {len(res.init_results)}: "
                  + ", ".join(f"{v:.6f}" for v in summary["start_per_point"]) + " per point")
        print(f"wrote {run_dir}/: " + ", ".join(summary["files"]))
    return 0
