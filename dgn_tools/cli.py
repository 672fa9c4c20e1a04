"""The ``dgn`` command line.

    dgn partition [MODEL.npz | --random WIDTHS] [--exact] [--out FILE.png]
    dgn check     [MODEL.npz | --random WIDTHS] [--thorough] [NAME ...]
    dgn posterior [MODEL.npz | --random WIDTHS] [--point X1,X2] [--exact] [--out FILE.png]
    dgn fit       [--data circle|cosine|FILE] [--widths 8,8] [--latent-dim S] [--out DIR]
                  [--resume DIR] ...   (no arguments: the main job, EM on the noisy circle)
    dgn select    [--data ...] [--candidates '4;8;8,8']

Every command has ``--help``. Errors in the input (a missing or damaged model file, bad
widths, a region limit) are reported in one line with exit status 2, not a traceback
(set DGN_DEBUG=1 to see the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dgn_core.model import DGN, ModelFileError
from dgn_core.regions import RegionLimitError

__all__ = ["main", "build_parser", "posterior_figure", "example_posterior_net"]


class CLIError(Exception):
    """An input problem reported to the user without a traceback."""


def _parse_widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(t) for t in text.replace("x", ",").replace(" ", "").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"widths must be comma-separated integers like 2,16,16,2, got {text!r}") from None
    if len(widths) < 2 or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"widths need at least two positive integers (latent, ..., data), got {text!r}")
    return widths


def _add_model_args(p: argparse.ArgumentParser, default_hint: str) -> None:
    p.add_argument("model", nargs="?", type=Path,
                   help=f"a model saved with DGN.save (.npz); default: {default_hint}")
    p.add_argument("--random", type=_parse_widths, metavar="WIDTHS",
                   help="use a random net with these widths, e.g. 2,32,32,2 (PyTorch default init)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random net (default 0)")
    p.add_argument("--activation", choices=["relu", "leaky_relu", "abs"], default="relu",
                   help="activation of the random net (default relu)")
    p.add_argument("--slope", type=float, default=None,
                   help="negative-side slope of leaky_relu (default 0.01)")


#: the built-in example net of `dgn partition` with no model
EXAMPLE_WIDTHS = (2, 16, 16, 2)


def _load_model(args: argparse.Namespace, default: Callable[[], DGN]) -> tuple[DGN, str]:
    if args.model is not None and args.random is not None:
        raise CLIError("give either a model file or --random WIDTHS, not both")
    if args.model is not None:
        return DGN.load(args.model), str(args.model)
    if args.random is not None:
        net = DGN.random(args.random, activation=args.activation, slope=args.slope, seed=args.seed)
        return net, f"random net {args.random} (seed {args.seed}, {args.activation})"
    return default(), "built-in example"


# ------------------------------------------------------------------------------ partition
def _cmd_partition(args: argparse.Namespace) -> int:
    from .plotting import plot_curve, plot_partition, save_figure

    net, what = _load_model(args, lambda: DGN.random(EXAMPLE_WIDTHS, seed=0))
    if args.exact:
        import verified_dgn

        part_fn = verified_dgn.partition
    else:
        from fastpath import partition as part_fn  # type: ignore[attr-defined]
    print(f"model: {what}: {net!r}")
    t0 = time.perf_counter()
    P = part_fn(net, max_regions=args.max_regions, progress=args.progress)
    dt = time.perf_counter() - t0
    path = "exact (rational, cddlib GMP)" if args.exact else "fast (float64)"
    print(f"{len(P)} regions: {P.n_bounded} bounded, {P.n_unbounded} unbounded "
          f"[{path}, {dt:.3f} s, {len(P) / max(dt, 1e-9):,.0f} regions/s]")
    S = net.latent_dim
    if S in (1, 2):
        out = args.out or Path("dgn_partition.png")
        if S == 2:
            ax = plot_partition(P, window=args.window)
        else:
            ax = plot_curve(P, window=args.window)
        save_figure(ax.figure, out)
        print(f"wrote {out}")
    else:
        print(f"(no picture for latent dimension {S}; pictures are drawn for S = 1 and 2)")
    return 0


# ------------------------------------------------------------------------------ check
def _cmd_check(args: argparse.Namespace) -> int:
    from dgn_tools.checks import registry

    reg = registry()
    if args.list:
        for name, (statement, _) in reg.items():
            print(f"{name}: {statement}")
        return 0
    names = args.names or list(reg)
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise CLIError(f"unknown check(s) {unknown}; `dgn check --list` shows them")
    net = None
    if args.model is not None or args.random is not None:
        net, what = _load_model(args, lambda: None)  # type: ignore[arg-type,return-value]
        print(f"model: {what}: {net!r}")
    failed = 0
    for name in names:
        res = reg[name][1](net=net, quick=not args.thorough, seed=args.seed)
        print(res)
        failed += not res.passed
    print(f"{len(names) - failed} of {len(names)} checks passed")
    return 1 if failed else 0


# ------------------------------------------------------------------------------ posterior
#: the built-in example net of `dgn posterior` with no model (S = 1; S = 2 with --latent 2)
POSTERIOR_WIDTHS = {1: (1, 8, 8, 2), 2: (2, 8, 8, 2)}


def example_posterior_net(latent_dim: int = 1, noise_var: float = 0.001, seed: int = 1) -> DGN:
    """The example net of ``dgn posterior`` and examples/fig3_posterior.py: a random
    (S, 8, 8, 2) ReLU net (PyTorch init) whose output layer is scaled by 4, so that the curve
    (S = 1) or surface (S = 2) spans several noise standard deviations and folds back."""
    base = DGN.random(POSTERIOR_WIDTHS[latent_dim], seed=seed)
    Ws, vs = list(base.weights), list(base.biases)
    Ws[-1], vs[-1] = 4.0 * Ws[-1], 4.0 * vs[-1]
    return base.replace(weights=Ws, biases=vs, noise_var=noise_var)


def _posterior_backend(exact: bool) -> tuple[str, Any, Any, Any]:
    """(name, partition, log_marginal(net, X, P), posterior(net, X, P)) of the fast path, or
    of the exact path when ``exact`` or when the fast path's distributions are unavailable."""
    if not exact:
        try:
            from fastpath import distributions as fd
            from fastpath import partition as fpart  # type: ignore[attr-defined]

            return ("fast (float64)", fpart,
                    lambda net, X, P: np.asarray(fd.log_marginal(net, X, partition=P)),
                    lambda net, X, P: fd.posterior(net, X, partition=P))
        except (ImportError, AttributeError):  # pragma: no cover - fast path not installed
            pass
    import verified_dgn
    from verified_dgn.distributions import posterior as exact_posterior

    def lm(net: DGN, X: Any, P: Any) -> Any:
        return np.array([float(v) for v in verified_dgn.log_marginal(net, X, dps=12, partition=P)])

    return ("exact (mpmath)", verified_dgn.partition, lm,
            lambda net, X, P: exact_posterior(net, X, dps=15, partition=P))


def _log_posterior_density(net: DGN, x: Any, Z: Any, P: Any, post: Any, exact: bool) -> Any:
    """log p(z | x) at latent points Z (M, S)."""
    if hasattr(post, "log_density"):  # the exact posterior (Prop. 2 mixture formula)
        return np.array([float(v) for v in post.log_density(Z, 0)])
    from fastpath import distributions as fd

    return np.asarray(fd.log_posterior_density(net, x, Z, partition=P))


def posterior_figure(net: DGN, x: Any | None = None, *, grid: int = 120, exact: bool = False,
                     n_samples: int = 2000, seed: int = 0, window: float | None = None) -> Any:
    """The paper's Fig. 3 for a net with data dimension 2 (latent dimension 1 or 2).

    Panels: (a) noiseless samples g(z) and noisy samples g(z) + eps; (b) the marginal p(x)
    on a ``grid`` x ``grid`` heat map (log scale) with the chosen point; (c) the posterior
    p(z | x) of that point: S = 1, its density with the region limits (kinks of g) as vertical
    lines and the posterior mean; S = 2, its contours with the region edges and the mean.

    Parameters
    ----------
    net : DGN
        Data dimension 2, latent dimension 1 or 2.
    x : array_like, shape (2,), optional
        The point whose posterior is drawn (default: the first noisy sample).
    grid : int
        Heat-map resolution per axis (the exact path costs about 0.05-0.5 s per grid point:
        keep it coarse, e.g. 20, with ``exact``).
    exact : bool
        Use verified_dgn (mpmath) instead of the fast path.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    from .plotting import region_polygon

    if net.data_dim != 2 or net.latent_dim not in (1, 2):
        raise CLIError(f"the posterior figure needs data dimension 2 and latent dimension 1 or "
                       f"2, got widths {net.widths}")
    if not isinstance(grid, (int, np.integer)) or grid < 2:
        raise CLIError(f"--grid must be an integer >= 2, got {grid!r}")
    name, part_fn, log_marginal, posterior = _posterior_backend(exact)
    P = part_fn(net)
    X, Zs = net.sample(n_samples, seed=seed)
    G = net.forward(Zs)
    if x is None:
        x = X[0]
    x = np.asarray(x, dtype=np.float64).reshape(2)
    if not np.all(np.isfinite(x)):
        raise CLIError("the point must be finite")
    post = posterior(net, x[None, :], P)
    mean = np.array([float(v) for v in np.asarray(post.mean)[0]])
    cov = np.array([[float(v) for v in row] for row in np.asarray(post.cov)[0]])
    log_px = float(np.asarray(post.log_px)[0])

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    # (a) samples
    ax = axes[0]
    ax.scatter(X[:, 0], X[:, 1], s=3, c="0.65", label="noisy samples g(z) + eps")
    ax.scatter(G[:, 0], G[:, 1], s=2, c="C0", label="noiseless samples g(z)")
    ax.plot(*x, "*", c="crimson", ms=12, label="x")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"samples, widths {net.widths}")
    ax.legend(loc="best", fontsize=8)
    # (b) marginal heat map, on the samples' bounding box
    lo = np.minimum(X.min(0), x) - 0.1 * np.ptp(X, axis=0)
    hi = np.maximum(X.max(0), x) + 0.1 * np.ptp(X, axis=0)
    u = np.linspace(lo[0], hi[0], int(grid))
    v = np.linspace(lo[1], hi[1], int(grid))
    U, V = np.meshgrid(u, v)
    L = log_marginal(net, np.stack([U.ravel(), V.ravel()], 1), P).reshape(U.shape)
    ax = axes[1]
    im = ax.imshow(np.maximum(L, L.max() - 15.0), origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]),
                   aspect="auto", cmap="viridis")
    plt.colorbar(im, ax=ax, label="log p(x) (clipped 15 below the max)")
    ax.plot(*x, "*", c="crimson", ms=12)
    ax.set_title(f"marginal p(x) [{name}, {grid}x{grid}]")
    # (c) posterior
    ax = axes[2]
    sd = np.sqrt(np.diag(cov))
    if net.latent_dim == 1:
        w = window or max(4.0, abs(mean[0]) + 6 * sd[0])
        kinks = np.unique(np.concatenate([np.asarray(r.vertices, dtype=np.float64).ravel() for r in P]))
        z = np.union1d(np.linspace(-w, w, 1501), np.linspace(mean[0] - 6 * sd[0], mean[0] + 6 * sd[0], 500))
        dens = np.exp(_log_posterior_density(net, x, z[:, None], P, post, exact))
        ax.plot(z, dens, c="C0", lw=1.5, label="p(z | x)")
        ax.plot(z, np.exp(-z ** 2 / 2 / float(net.prior_cov[0, 0]))
                / np.sqrt(2 * np.pi * float(net.prior_cov[0, 0])), "--", c="0.6", label="prior p(z)")
        for i, k in enumerate(kinks[np.abs(kinks) <= w]):
            ax.axvline(k, c="0.75", lw=0.6, zorder=0, label="region limits" if i == 0 else None)
        ax.axvline(mean[0], c="crimson", lw=1.5, label=f"E[z|x] = {mean[0]:.3f}")
        ax.set_xlim(-w, w)
        ax.set_xlabel("z")
    else:
        w = window or max(3.0, float(np.max(np.abs(mean) + 5 * sd)))
        zz = np.linspace(-w, w, 121)
        Z1, Z2 = np.meshgrid(zz, zz)
        ld = _log_posterior_density(net, x, np.stack([Z1.ravel(), Z2.ravel()], 1), P, post,
                                    exact).reshape(Z1.shape)
        cs = ax.contourf(Z1, Z2, np.exp(ld), levels=20, cmap="magma")
        plt.colorbar(cs, ax=ax, label="p(z | x)")
        ax.add_collection(PolyCollection([region_polygon(r, 100 * w) for r in P], facecolors="none",
                                         edgecolors="w", linewidths=0.4))
        ax.plot(*mean, "x", c="cyan", ms=10, mew=2, label="E[z|x]")
        ax.set_xlim(-w, w)
        ax.set_ylim(-w, w)
        ax.set_aspect("equal")
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
    ax.set_title(f"posterior of x = ({x[0]:.3f}, {x[1]:.3f}); log p(x) = {log_px:.4f}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def _parse_point(text: str) -> tuple[float, float]:
    try:
        vals = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is two comma-separated numbers, got {text!r}") from None
    if len(vals) != 2 or not all(np.isfinite(vals)):
        raise argparse.ArgumentTypeError(f"a point is two finite comma-separated numbers, got {text!r}")
    return vals  # type: ignore[return-value]


def _cmd_posterior(args: argparse.Namespace) -> int:
    from .plotting import save_figure

    if args.grid is None:
        args.grid = 16 if args.exact else 150
    if args.noise is not None and not (np.isfinite(args.noise) and args.noise > 0):
        raise CLIError(f"--noise must be a positive variance, got {args.noise}")

    S = args.latent
    net, what = _load_model(args, lambda: example_posterior_net(S, noise_var=args.noise or 0.001))
    if args.noise is not None and (args.model is not None or args.random is not None):
        net = net.replace(noise_var=args.noise)
    print(f"model: {what}: {net!r}")
    t0 = time.perf_counter()
    fig = posterior_figure(net, args.point, grid=args.grid, exact=args.exact, seed=args.seed)
    out = args.out or Path("dgn_posterior.png")
    save_figure(fig, out)
    print(f"wrote {out} [{time.perf_counter() - t0:.2f} s]")
    return 0


# ------------------------------------------------------------------------------ fit
#: the main job: hidden widths, activation and slope of `dgn fit` with no arguments
FIT_DEFAULTS = {"data": "circle", "n": 1000, "latent_dim": 1, "widths": (8, 8),
                "activation": "leaky_relu", "slope": 0.1, "max_iter": 100, "tol": 1e-6}
_RUN_FILES = ("model.npz", "history.csv", "history.png", "manifold.png", "summary.json",
              "config.json", "checkpoint.npz")


def _parse_hidden(text: str) -> tuple[int, ...]:
    text = text.strip()
    if text in ("", "-", "none"):
        return ()
    try:
        widths = tuple(int(t) for t in text.replace("x", ",").replace(" ", "").split(",") if t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"hidden widths are comma-separated integers like 8,8, got {text!r}") from None
    if min(widths, default=1) < 1:
        raise argparse.ArgumentTypeError(f"hidden widths must be positive, got {text!r}")
    return widths


def load_fit_data(spec: str, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, str]:
    """The training data of `dgn fit`: "circle" (Sec. 4.3: radius 1, noise sd 0.05),
    "cosine" (t ~ N(0, 1), x = (t, cos 1.4 t)) or a .npy / .csv / IDX file.

    Returns (X (N, D), a description)."""
    from dgn_core.data import BUILTIN_DATASETS, load_data

    if spec in BUILTIN_DATASETS:
        if n < 1:
            raise CLIError(f"--n must be positive, got {n}")
        return BUILTIN_DATASETS[spec](n, seed), f"built-in {spec} (n={n}, seed={seed})"
    path = Path(spec)
    if not path.exists():
        raise CLIError(f"--data: no built-in data set or file {spec!r} "
                       f"(built-in: {', '.join(BUILTIN_DATASETS)})")
    return load_data(path), f"file {path}"


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
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    S, D = net.latent_dim, net.data_dim
    three = D == 3
    fig = plt.figure(figsize=(6.5, 6))
    ax = fig.add_subplot(111, projection="3d" if three else None)
    cols = [0, 1, 2] if three else [0, min(1, D - 1)]
    ax.scatter(*(X[:, c] for c in cols), s=3, c="0.6", alpha=0.6, label="data")
    if S == 1:
        from fastpath import partition as fpart  # type: ignore[attr-defined]

        P = fpart(net)
        kinks = np.unique(np.concatenate([np.asarray(r.vertices, dtype=np.float64).ravel()
                                          for r in P]))
        kinks = kinks[np.abs(kinks) <= window]
        z = np.union1d(np.linspace(-window, window, 1201), kinks)
        G = net.forward(z[:, None])
        ax.plot(*(G[:, c] for c in cols), "-", c="C0", lw=1.5, label="g(z), |z| <= %g" % window)
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


def _history_figure(res: Any) -> Any:
    """Exact log p(X) / N against iterations and seconds (from iteration 1: the initial
    value of a random net, often 100x lower, is given in the title instead)."""
    import matplotlib.pyplot as plt

    h = res.history
    start = 1 if res.n_iter >= 1 else 0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
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


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> None:
    import tempfile

    names = list(columns)
    n = len(next(iter(columns.values())))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(",".join(names) + "\n")
            for i in range(n):
                fh.write(",".join(repr(float(columns[k][i])) for k in names) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    import json
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _fit_config(args: argparse.Namespace) -> dict[str, Any]:
    from fastpath.em import parse_prior

    prior = parse_prior(args.prior)   # validates
    return {"data": str(args.data), "n": int(args.n), "data_seed": int(args.data_seed),
            "latent_dim": int(args.latent_dim), "widths": list(args.widths),
            "activation": args.activation, "slope": args.slope, "seed": int(args.seed),
            "noise": args.noise, "noise_var": args.noise_var, "noise_floor": float(args.noise_floor),
            "prior": None if prior is None else prior.describe(), "tol": float(args.tol),
            "max_iter": int(args.max_iter), "checkpoint_every": int(args.checkpoint_every)}


def _cmd_fit(args: argparse.Namespace) -> int:
    import json

    from fastpath.em import fit_em, parse_prior

    from .plotting import save_figure

    max_iter_given = args.max_iter is not None
    if not max_iter_given:
        args.max_iter = FIT_DEFAULTS["max_iter"]
    if args.resume is not None:
        run = Path(args.resume)
        cfg_path = run / "config.json"
        if not cfg_path.exists():
            raise CLIError(f"--resume: {run} is not a run folder of `dgn fit` (no config.json)")
        cfg = json.loads(cfg_path.read_text())
        if max_iter_given:
            cfg["max_iter"] = int(args.max_iter)
    else:
        cfg = _fit_config(args)
        run = Path(args.out) if args.out is not None else \
            Path("runs") / time.strftime("%Y%m%d-%H%M%S")
        if run.exists() and any((run / f).exists() for f in _RUN_FILES):
            raise CLIError(f"{run} already holds a run; use --resume {run} or another --out")
        run.mkdir(parents=True, exist_ok=True)
        _write_json(run / "config.json", cfg)
    if cfg["latent_dim"] < 1:
        raise CLIError(f"--latent-dim must be positive, got {cfg['latent_dim']}")
    if cfg["max_iter"] < 0:
        raise CLIError(f"--max-iter must be >= 0, got {cfg['max_iter']}")
    X, what = load_fit_data(cfg["data"], cfg["n"], cfg["data_seed"])
    N, D = X.shape
    widths = (cfg["latent_dim"], *cfg["widths"], D)
    nv0 = cfg["noise_var"]
    if nv0 is None:
        # measured on the circle (seeds 0-3, 100 iterations): from 0.05 x var EM leaves the
        # "Gaussian blob" plateau within ~10 iterations (from 1 x var it can stay there 40
        # iterations); from 0.01 x var the random curve is pulled onto the nearest data and
        # often folds (log p(X)/N -0.40 instead of -0.24 to -0.32)
        nv0 = max(10.0 * cfg["noise_floor"], 0.05 * float(np.mean(np.var(X, axis=0))))
    if not (np.isfinite(nv0) and nv0 > 0):
        raise CLIError(f"--noise-var must be a positive variance, got {nv0}")
    noise_var: Any = float(nv0) if cfg["noise"] == "isotropic" else np.full(D, float(nv0))
    net = DGN.random(widths, activation=cfg["activation"],
                     slope=cfg["slope"] if cfg["activation"] == "leaky_relu" else None,
                     seed=cfg["seed"], noise_var=noise_var)
    quiet = getattr(args, "quiet", False)
    if not quiet:
        print(f"dgn fit: {what}: N = {N}, D = {D}; model {net!r}; run folder {run}", flush=True)
    import warnings

    from fastpath.em import ConvergenceWarning
    try:
        with warnings.catch_warnings():
            # reported in the summary line instead ("max-iter reached")
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = fit_em(net, X, max_iter=cfg["max_iter"], tol=cfg["tol"], noise=cfg["noise"],
                         weight_prior=parse_prior(cfg["prior"]), noise_floor=cfg["noise_floor"],
                         seed=cfg["seed"], progress=not quiet, checkpoint=run / "checkpoint.npz",
                         checkpoint_every=cfg["checkpoint_every"],
                         resume=args.resume is not None)
    except KeyboardInterrupt:
        print(f"dgn fit: the last completed iteration is saved in {run}/checkpoint.npz; "
              f"continue with: dgn fit --resume {run}", file=sys.stderr)
        raise
    model = res.model
    model.save(run / "model.npz")
    _write_csv(run / "history.csv", res.history)
    save_figure(_history_figure(res), run / "history.png")
    save_figure(manifold_figure(model, X, title=f"learned manifold over the data ({what})"),
                run / "manifold.png")
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
        "files": [f for f in _RUN_FILES if (run / f).exists() or f == "summary.json"],
    }
    _write_json(run / "summary.json", summary)
    if not quiet:
        floor = (f"; the noise floor bound at {len(res.noise_floor_hit)} iteration(s)"
                 if res.noise_floor_hit else "")
        print(f"log p(X) = {ll:.6f} ({ll / N:.6f} per point) after {res.n_iter} iterations "
              f"[{'converged' if res.converged else 'max-iter reached'}, "
              f"{res.times[-1]:.1f} s]{floor}")
        print(f"wrote {run}/: " + ", ".join(summary["files"]))
    return 0


# ------------------------------------------------------------------------------ select
def _parse_candidates(text: str) -> list[tuple[int, ...]]:
    try:
        return [_parse_hidden(part) for part in text.split(";")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"candidates are hidden widths separated by ';', "
                                         f"e.g. '4;8;8,8': {exc}") from None


def _cmd_select(args: argparse.Namespace) -> int:
    from fastpath.selection import select_widths

    X, what = load_fit_data(args.data, args.n, args.data_seed)
    print(f"dgn select: {what}: N = {X.shape[0]}, D = {X.shape[1]}; "
          f"{len(args.candidates)} candidates, {args.max_iter} EM iterations each", flush=True)
    table = select_widths(X, args.candidates, latent_dim=args.latent_dim,
                          activation=args.activation, slope=args.slope, max_iter=args.max_iter,
                          tol=args.tol, seed=args.seed)
    print(table.to_text())
    if args.out is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        cols = {k: np.array([r[k] for r in table.rows], dtype=np.float64)
                for k in ("log_likelihood", "per_point", "n_params", "aic", "bic", "n_iter")}
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write("hidden_widths," + ",".join(cols) + "\n")
            for i, r in enumerate(table.rows):
                fh.write("x".join(map(str, r["hidden"])) + ","
                         + ",".join(repr(float(cols[k][i])) for k in cols) + "\n")
        os.replace(tmp, out)
        print(f"wrote {out}")
    return 0


def _add_fit_parsers(sub: Any) -> None:
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
    p.add_argument("--widths", type=_parse_hidden, default=d["widths"],
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
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser(
        "select", help="choose hidden widths by exact log-likelihood, AIC and BIC",
        description="Train one DGN per candidate hidden widths by exact EM and print the exact "
        "log-likelihood, the number of parameters, AIC and BIC of each.")
    p.add_argument("--data", default="circle", help="circle, cosine or a data file (circle)")
    p.add_argument("--n", type=int, default=500, help="points of a built-in data set (500)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--candidates", type=_parse_candidates, default=[(4,), (8,), (8, 8)],
                   help="hidden widths separated by ';' (default '4;8;8,8')")
    p.add_argument("--latent-dim", type=int, default=1)
    p.add_argument("--activation", choices=["relu", "leaky_relu", "abs"], default="leaky_relu")
    p.add_argument("--slope", type=float, default=0.1)
    p.add_argument("--max-iter", type=int, default=50, help="EM iterations per candidate (50)")
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    p.set_defaults(func=_cmd_select)


# ------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dgn",
        description="Exact distributions and EM for piecewise-affine deep generative networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("partition", help="compute the latent-space partition of a net",
                       description="Compute the linear regions of a net's latent space, print "
                       "their number, and draw them (S = 2) or the curve g(z) (S = 1).")
    _add_model_args(p, f"a random {','.join(map(str, EXAMPLE_WIDTHS))} ReLU net, seed 0")
    p.add_argument("--exact", action="store_true",
                   help="use the exact path (rational arithmetic, needs pycddlib)")
    p.add_argument("--out", type=Path, help="picture to write (default dgn_partition.png)")
    p.add_argument("--window", type=float, default=4.0,
                   help="half-width of the latent window drawn (default 4)")
    p.add_argument("--max-regions", type=int, default=100_000,
                   help="stop with an error beyond this many regions (default 100000)")
    p.add_argument("--progress", action="store_true", help="print progress while walking")
    p.set_defaults(func=_cmd_partition)

    p = sub.add_parser("check", help="run the numerical checks of the theory's lemmas",
                       description="Run the registered lemma / theorem checks and print what "
                       "each measured. Exit status 1 if any fails.")
    _add_model_args(p, "each check's own suite of nets")
    p.add_argument("names", nargs="*", metavar="NAME", help="checks to run (default: all)")
    p.add_argument("--thorough", action="store_true", help="longer, more thorough checks")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("posterior", help="draw samples, the marginal p(x) and a posterior p(z|x) "
                       "(the paper's Fig. 3)",
                       description="For a net with data dimension 2: noiseless and noisy samples, "
                       "the marginal p(x) as a heat map, and the posterior p(z|x) of one point with "
                       "its mean and the region limits.")
    _add_model_args(p, "example_posterior_net(): a random 1,8,8,2 ReLU net (2,8,8,2 with "
                       "--latent 2) with its output layer scaled by 4")
    p.add_argument("--latent", type=int, choices=[1, 2], default=1,
                   help="latent dimension of the built-in example net (default 1)")
    p.add_argument("--noise", type=float, default=None,
                   help="noise variance (default: the model's; 0.001 for the built-in net)")
    p.add_argument("--point", type=_parse_point, default=None, metavar="X1,X2",
                   help="the data point whose posterior is drawn (default: a sample)")
    p.add_argument("--grid", type=int, default=None,
                   help="heat-map points per axis (default 150; 16 with --exact)")
    p.add_argument("--exact", action="store_true",
                   help="use the exact path (mpmath; slow: keep --grid small)")
    p.add_argument("--out", type=Path, help="picture to write (default dgn_posterior.png)")
    p.set_defaults(func=_cmd_posterior)
    _add_fit_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (CLIError, ModelFileError, RegionLimitError, FileNotFoundError, ValueError) as exc:
        if os.environ.get("DGN_DEBUG"):
            raise
        print(f"dgn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dgn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
