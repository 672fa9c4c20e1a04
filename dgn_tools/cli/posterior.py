"""``dgn posterior``: samples, the marginal p(x) and the posterior p(z | x) of one point
(the paper's Fig. 3; docs/DESIGN.md §2.3)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from dgn_core.model import DGN

from ._common import (
    CLIError,
    add_force_arg,
    add_model_args,
    check_exact_available,
    check_output_file,
    load_model,
)

__all__ = ["POSTERIOR_WIDTHS", "example_posterior_net", "posterior_figure", "add_parser", "run"]

#: the built-in example net of `dgn posterior` with no model (S = 1; S = 2 with --latent 2)
POSTERIOR_WIDTHS = {1: (1, 8, 8, 2), 2: (2, 8, 8, 2)}
#: the largest --grid (points per axis) of the fast and of the exact path: the heat map holds
#: grid^2 log-densities (the exact path evaluates each in mpmath, about 10 ms apiece)
MAX_GRID = {False: 1000, True: 100}


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
            import fastpath
            from fastpath import distributions as fd

            return ("fast (float64)", fastpath.partition,
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


def _log_posterior_density(net: DGN, x: Any, Z: Any, P: Any, post: Any) -> Any:
    """log p(z | x) at latent points Z (M, S)."""
    if hasattr(post, "log_density"):  # the exact posterior (the Prop. 2 mixture formula)
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
        Heat-map resolution per axis. The exact path evaluates p(x) in mpmath at every grid
        point: keep the grid coarse (e.g. 20) with ``exact``.
    exact : bool
        Use verified_dgn (mpmath) instead of the fast path.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.collections import PolyCollection

    from ..plotting import region_polygon, subplots

    _check_net(net)
    _check_grid(grid, exact)
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

    fig, axes = subplots(1, 3, figsize=(16, 5))
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
    fig.colorbar(im, ax=ax, label="log p(x) (clipped 15 below the max)")
    ax.plot(*x, "*", c="crimson", ms=12)
    ax.set_title(f"marginal p(x) [{name}, {grid}x{grid}]")
    # (c) posterior
    ax = axes[2]
    sd = np.sqrt(np.diag(cov))
    if net.latent_dim == 1:
        w = window or max(4.0, abs(mean[0]) + 6 * sd[0])
        kinks = np.unique(np.concatenate([np.asarray(r.vertices, dtype=np.float64).ravel() for r in P]))
        z = np.union1d(np.linspace(-w, w, 1501), np.linspace(mean[0] - 6 * sd[0], mean[0] + 6 * sd[0], 500))
        dens = np.exp(_log_posterior_density(net, x, z[:, None], P, post))
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
        ld = _log_posterior_density(net, x, np.stack([Z1.ravel(), Z2.ravel()], 1), P,
                                    post).reshape(Z1.shape)
        cs = ax.contourf(Z1, Z2, np.exp(ld), levels=20, cmap="magma")
        fig.colorbar(cs, ax=ax, label="p(z | x)")
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


def _check_net(net: DGN) -> None:
    if net.data_dim != 2 or net.latent_dim not in (1, 2):
        raise CLIError(f"the posterior figure needs data dimension 2 and latent dimension 1 or "
                       f"2, got widths {net.widths}")


def _check_grid(grid: Any, exact: bool) -> None:
    """Refuse a heat-map size outside 2 to :data:`MAX_GRID` before anything is allocated."""
    top = MAX_GRID[bool(exact)]
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or not 2 <= grid <= top:
        raise CLIError(f"--grid must be an integer from 2 to {top}"
                       f"{' with --exact' if exact else ''}, got {grid!r}")


def _parse_point(text: str) -> tuple[float, float]:
    try:
        vals = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is two comma-separated numbers like 0.5,-1 "
                                         f"(or --point=-1,2), got {text!r}") from None
    if len(vals) != 2 or not all(np.isfinite(vals)):
        raise argparse.ArgumentTypeError(f"a point is two finite comma-separated numbers, got {text!r}")
    return vals[0], vals[1]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("posterior", help="draw samples, the marginal p(x) and a posterior p(z|x) "
                       "(the paper's Fig. 3)",
                       description="For a net with data dimension 2: noiseless and noisy samples, "
                       "the marginal p(x) as a heat map, and the posterior p(z|x) of one point with "
                       "its mean and the region limits.")
    add_model_args(p, "example_posterior_net(): a random 1,8,8,2 ReLU net (2,8,8,2 with "
                      "--latent 2) with its output layer scaled by 4")
    p.add_argument("--latent", type=int, choices=[1, 2], default=1,
                   help="latent dimension of the built-in example net (default 1)")
    p.add_argument("--noise", type=float, default=None,
                   help="noise variance (default: the model's; 0.001 for the built-in net)")
    p.add_argument("--point", type=_parse_point, default=None, metavar="X1,X2",
                   help="the data point whose posterior is drawn (default: a sample)")
    p.add_argument("--grid", type=int, default=None,
                   help=f"heat-map points per axis (default 150, at most {MAX_GRID[False]}; 16 "
                   f"with --exact, at most {MAX_GRID[True]})")
    p.add_argument("--exact", action="store_true",
                   help="use the exact path (mpmath; slow: keep --grid small)")
    p.add_argument("--out", type=Path, help="picture to write (default dgn_posterior.png)")
    add_force_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dgn_core.validation import check_int

    from ..plotting import save_figure
    from ._common import check_option

    if args.grid is None:
        args.grid = 16 if args.exact else 150
    _check_grid(args.grid, args.exact)
    if args.exact:
        check_exact_available()
    if args.noise is not None and not (np.isfinite(args.noise) and args.noise > 0):
        raise CLIError(f"--noise must be a positive variance, got {args.noise}")
    check_option(check_int, args.seed, "--seed")

    S = args.latent
    net, what = load_model(args, lambda: example_posterior_net(S, noise_var=args.noise or 0.001))
    assert net is not None
    if args.noise is not None and (args.model is not None or args.random is not None):
        net = net.replace(noise_var=args.noise)
    _check_net(net)
    out = args.out or Path("dgn_posterior.png")
    check_output_file(out, force=args.force, inputs=[args.model] if args.model is not None else [])
    print(f"model: {what}: {net!r}")
    t0 = time.perf_counter()
    fig = posterior_figure(net, args.point, grid=args.grid, exact=args.exact, seed=args.seed)
    save_figure(fig, out)
    print(f"wrote {out} [{time.perf_counter() - t0:.2f} s]")
    return 0
