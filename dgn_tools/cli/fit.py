"""``dgn fit``: train a DGN by exact, monotone EM (docs/DESIGN.md §2.5) and write a run folder."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dgn_core.model import DGN
from dgn_core.validation import check_int, check_nonnegative

from ._common import (
    CLIError,
    check_option,
    load_fit_data,
    parse_hidden_widths,
    random_net,
    write_columns_csv,
    write_json,
)

__all__ = ["FIT_DEFAULTS", "RUN_FILES", "manifold_figure", "history_figure", "add_parser", "run"]

#: the main job: the settings of `dgn fit` with no arguments
FIT_DEFAULTS = {"data": "circle", "n": 1000, "latent_dim": 1, "widths": (8, 8),
                "activation": "leaky_relu", "slope": 0.1, "max_iter": 100, "tol": 1e-6}
#: the files of a run folder
RUN_FILES = ("model.npz", "history.csv", "history.png", "manifold.png", "summary.json",
             "config.json", "checkpoint.npz")


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


def history_figure(res: Any) -> Any:
    """Exact log p(X) / N against iterations and seconds, from iteration 1: the initial value
    of a random net is often far below the rest and would flatten the curve (the title
    gives it)."""
    from ..plotting import subplots

    h = res.history
    start = 1 if res.n_iter >= 1 else 0
    fig, axes = subplots(1, 2, figsize=(11, 4))
    axes[0].plot(h["iteration"][start:], h["per_point"][start:], "-o", ms=2)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("exact log p(X) / N")
    axes[1].plot(h["seconds"][start:], h["per_point"][start:], "-o", ms=2)
    axes[1].set_xlabel("seconds")
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


def _parse_prior(text: str) -> Any:
    """The weight prior of ``--prior`` (:func:`dgn_core.priors.parse_prior`)."""
    from dgn_core.priors import parse_prior

    return check_option(parse_prior, text)


def _fit_config(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of a new run (config.json), validated."""
    prior = _parse_prior(args.prior)
    return {"data": str(args.data), "n": int(args.n), "data_seed": int(args.data_seed),
            "latent_dim": int(args.latent_dim), "widths": list(args.widths),
            "activation": args.activation, "slope": args.slope, "seed": int(args.seed),
            "noise": args.noise, "noise_var": args.noise_var, "noise_floor": float(args.noise_floor),
            "prior": None if prior is None else prior.describe(), "tol": float(args.tol),
            "max_iter": int(args.max_iter), "checkpoint_every": int(args.checkpoint_every)}


def _check_config(cfg: dict[str, Any]) -> None:
    """The options EM would reject, reported before the run folder is written."""
    if cfg["latent_dim"] < 1:
        raise CLIError(f"--latent-dim must be positive, got {cfg['latent_dim']}")
    if cfg["max_iter"] < 0:
        raise CLIError(f"--max-iter must be >= 0, got {cfg['max_iter']}")
    check_option(check_nonnegative, cfg["tol"], "tol")
    check_option(check_nonnegative, cfg["noise_floor"], "noise_floor")
    check_option(check_int, cfg["checkpoint_every"], "checkpoint_every", 1)
    check_option(check_int, cfg["seed"], "seed")
    check_option(check_int, cfg["data_seed"], "data_seed")


def add_parser(sub: Any) -> None:
    d = FIT_DEFAULTS
    p = sub.add_parser(
        "fit", help="train a DGN by exact, monotone EM (the main job)",
        description="Train a DGN by exact EM (fastpath.fit_em): the exact log-likelihood never "
        "decreases. With no arguments: the paper's Sec. 4.3 experiment, a leaky-ReLU DGN with "
        "latent dimension 1 and hidden widths 8,8 (slope 0.1) on the built-in noisy circle "
        "(N = 1000, radius 1, noise sd 0.05), 100 iterations (about 20-30 s on a 2-core "
        "machine). Writes a run folder: model.npz, history.csv, history.png, manifold.png, "
        "summary.json, config.json and checkpoint.npz. Interrupt with Ctrl-C and continue "
        "with --resume DIR (same result as an uninterrupted run).")
    p.add_argument("--data", default=d["data"],
                   help="circle, cosine, or a data file (.npy, .csv, IDX) (default circle)")
    p.add_argument("--n", type=int, default=d["n"], help="points of a built-in data set (1000)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of a built-in data set (0)")
    p.add_argument("--latent-dim", type=int, default=d["latent_dim"], help="latent dimension S (1)")
    p.add_argument("--widths", type=parse_hidden_widths, default=d["widths"],
                   help="hidden widths, e.g. 8,8 (default 8,8; 'none' for a linear model)")
    p.add_argument("--activation", choices=["relu", "leaky_relu", "abs"], default=d["activation"],
                   help="activation (default leaky_relu)")
    p.add_argument("--slope", type=float, default=d["slope"],
                   help="negative-side slope of leaky_relu (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    p.add_argument("--max-iter", type=int, default=None,
                   help=f"EM iterations (default {d['max_iter']}; with --resume: the new total)")
    p.add_argument("--tol", type=float, default=d["tol"],
                   help="stop when the log-likelihood gains less than this per point (1e-6)")
    p.add_argument("--noise", choices=["isotropic", "diagonal"], default="isotropic",
                   help="noise model (default isotropic)")
    p.add_argument("--noise-var", type=float, default=None,
                   help="initial noise variance (default 0.05 x the data's mean variance)")
    p.add_argument("--noise-floor", type=float, default=1e-6,
                   help="lower bound of the noise variance (default 1e-6)")
    p.add_argument("--prior", default="none",
                   help="weight prior: none, gaussian:VAR, laplace:SCALE or box:BOUND")
    p.add_argument("--checkpoint-every", type=int, default=10,
                   help="write checkpoint.npz every this many iterations (default 10)")
    p.add_argument("--out", type=Path, default=None, help="run folder (default runs/<timestamp>)")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="continue the interrupted run in DIR (its saved settings are used)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # looked up at call time (not imported at module level), so that a test can replace it
    from fastpath.em import ConvergenceWarning, fit_em

    from ..plotting import save_figure

    max_iter_given = args.max_iter is not None
    if not max_iter_given:
        args.max_iter = FIT_DEFAULTS["max_iter"]
    if args.resume is not None:
        run_dir = Path(args.resume)
        cfg_path = run_dir / "config.json"
        if not cfg_path.exists():
            raise CLIError(f"--resume: {run_dir} is not a run folder of `dgn fit` (no config.json)")
        cfg = json.loads(cfg_path.read_text())
        if max_iter_given:
            cfg["max_iter"] = int(args.max_iter)
        _check_config(cfg)
    else:
        cfg = _fit_config(args)
        _check_config(cfg)
        run_dir = Path(args.out) if args.out is not None else \
            Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        if run_dir.exists() and any((run_dir / f).exists() for f in RUN_FILES):
            raise CLIError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", cfg)
    X, what = load_fit_data(cfg["data"], cfg["n"], cfg["data_seed"])
    N, D = X.shape
    widths = (cfg["latent_dim"], *cfg["widths"], D)
    nv0 = cfg["noise_var"]
    if nv0 is None:
        # a start well below the data's variance: from about the data's variance EM can
        # linger on the plateau where the model is one broad Gaussian; much smaller starts
        # pull the random curve onto the nearest data and fold it
        nv0 = max(10.0 * cfg["noise_floor"], 0.05 * float(np.mean(np.var(X, axis=0))))
    if not (np.isfinite(nv0) and nv0 > 0):
        raise CLIError(f"--noise-var must be a positive variance, got {nv0}")
    noise_var: Any = float(nv0) if cfg["noise"] == "isotropic" else np.full(D, float(nv0))
    net = random_net(widths, activation=cfg["activation"],
                     slope=cfg["slope"] if cfg["activation"] == "leaky_relu" else None,
                     seed=cfg["seed"], noise_var=noise_var)
    quiet = getattr(args, "quiet", False)
    if not quiet:
        print(f"dgn fit: {what}: N = {N}, D = {D}; model {net!r}; run folder {run_dir}", flush=True)
    try:
        with warnings.catch_warnings():
            # reported in the summary line instead ("max-iter reached")
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = fit_em(net, X, max_iter=cfg["max_iter"], tol=cfg["tol"], noise=cfg["noise"],
                         weight_prior=_parse_prior(cfg["prior"]), noise_floor=cfg["noise_floor"],
                         seed=cfg["seed"], progress=not quiet, checkpoint=run_dir / "checkpoint.npz",
                         checkpoint_every=cfg["checkpoint_every"],
                         resume=args.resume is not None)
    except KeyboardInterrupt:
        print(f"dgn fit: the last completed iteration is saved in {run_dir}/checkpoint.npz; "
              f"continue with: dgn fit --resume {run_dir}", file=sys.stderr)
        raise
    model = res.model
    model.save(run_dir / "model.npz")
    write_columns_csv(run_dir / "history.csv", res.history)
    save_figure(history_figure(res), run_dir / "history.png")
    save_figure(manifold_figure(model, X, title=f"learned manifold over the data ({what})"),
                run_dir / "manifold.png")
    ll = float(res.log_likelihood[-1])
    k = model.n_params
    summary = {
        "data": what, "n_points": N, "data_dim": D, "widths": list(model.widths),
        "activation": model.activation, "slope": model.slope,
        "log_likelihood": ll, "per_point": ll / N, "initial_log_likelihood": res.log_likelihood[0],
        "objective": float(res.objective[-1]), "n_params": k, "aic": 2 * k - 2 * ll,
        "bic": k * float(np.log(N)) - 2 * ll, "n_iter": res.n_iter, "converged": res.converged,
        "seconds": float(res.times[-1]),
        "noise_var": np.asarray(model.noise_var).tolist(),
        "noise_floor_hit": res.noise_floor_hit, "ecm_rejected": res.ecm_rejected,
        "n_regions": res.n_regions[-1],
        "files": [f for f in RUN_FILES if (run_dir / f).exists() or f == "summary.json"],
    }
    write_json(run_dir / "summary.json", summary)
    if not quiet:
        floor = (f"; the noise floor bound at {len(res.noise_floor_hit)} iteration(s)"
                 if res.noise_floor_hit else "")
        print(f"log p(X) = {ll:.6f} ({ll / N:.6f} per point) after {res.n_iter} iterations "
              f"[{'converged' if res.converged else 'max-iter reached'}, "
              f"{res.times[-1]:.1f} s]{floor}")
        print(f"wrote {run_dir}/: " + ", ".join(summary["files"]))
    return 0
