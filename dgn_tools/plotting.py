"""Figures: the latent-space partition, the generator's curve, densities and training curves.

Figures are built with matplotlib's object-oriented API (:class:`matplotlib.figure.Figure`),
not with pyplot: importing or using this module selects no backend and registers no figure
with pyplot, so it works without a display and leaves a notebook's backend as it was.
:func:`save_figure` writes a figure (the file format follows the suffix).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from numpy.typing import NDArray

from dgn_core.io import atomic_path
from dgn_core.regions import Partition, Region

__all__ = ["new_figure", "subplots", "region_polygon", "plot_partition", "plot_curve",
           "plot_history", "save_figure"]


def new_figure(**fig_kw: Any) -> Figure:
    """A figure outside pyplot (``fig_kw``: ``figsize``, ``dpi``, ... of :class:`Figure`)."""
    return Figure(**fig_kw)


def subplots(nrows: int = 1, ncols: int = 1, *, squeeze: bool = True,
             subplot_kw: dict[str, Any] | None = None, **fig_kw: Any) -> tuple[Figure, Any]:
    """``pyplot.subplots`` without pyplot: a new :class:`Figure` and its axes."""
    fig = new_figure(**fig_kw)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze, subplot_kw=subplot_kw)


def save_figure(fig: Figure, path: str | os.PathLike[str], dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically (a partly written picture never replaces the
    file); the format follows the suffix (PNG when there is none).

    A figure made with pyplot is closed afterwards, so that pyplot releases it.
    """
    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    if "matplotlib.pyplot" in sys.modules:  # a no-op for figures pyplot does not manage
        sys.modules["matplotlib.pyplot"].close(fig)
    return path


def region_polygon(region: Region, reach: float) -> NDArray[np.float64]:
    """Vertices of a 2-D region for drawing, unbounded directions cut at distance ``reach``.

    Returns
    -------
    poly : ndarray, shape (k, 2)
        The polygon's corners in counter-clockwise order (for drawing only: rays are
        truncated, the region itself is not clipped anywhere else).
    """
    V = np.asarray(region.vertices, dtype=np.float64).reshape(-1, 2)
    R = np.asarray(region.rays, dtype=np.float64).reshape(-1, 2)
    L = np.asarray(region.lines, dtype=np.float64).reshape(-1, 2)
    pts = [V]
    base = V if len(V) else np.zeros((1, 2))
    for r in R:
        pts.append(base + reach * r / np.linalg.norm(r))
    for l in L:
        l = l / np.linalg.norm(l)
        pts.append(base + reach * l)
        pts.append(base - reach * l)
    P = np.concatenate(pts, axis=0)
    if len(P) < 3:
        return P
    c = P.mean(axis=0)
    order = np.argsort(np.arctan2(P[:, 1] - c[1], P[:, 0] - c[0]))
    return P[order]


def plot_partition(P: Partition, ax: Axes | None = None, window: float = 4.0, seed: int = 0,
                   title: str | None = None) -> Axes:
    """Draw the regions of a partition with latent dimension 2.

    Parameters
    ----------
    P : Partition
    ax : matplotlib Axes, optional
    window : float
        Half-width of the square view ``[-window, window]^2`` (the standard normal prior puts
        almost all its mass in ``[-4, 4]^2``).
    """
    if P.net.latent_dim != 2:
        raise ValueError(f"plot_partition draws latent dimension 2, got {P.net.latent_dim}")
    if ax is None:
        _, ax = subplots(figsize=(6, 6))
    reach = 100.0 * window
    polys = [region_polygon(r, reach) for r in P]
    rng = np.random.default_rng(seed)
    colors = matplotlib.colormaps["tab20"](rng.integers(0, 20, size=len(polys)))
    ax.add_collection(PolyCollection(polys, facecolors=colors, edgecolors="k",
                                     linewidths=0.3, alpha=0.85))
    ax.set_xlim(-window, window)
    ax.set_ylim(-window, window)
    ax.set_aspect("equal")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title or f"{len(P)} regions ({P.n_bounded} bounded), widths {P.net.widths}")
    return ax


def plot_curve(P: Partition, ax: Axes | None = None, window: float = 4.0,
               X: NDArray[np.float64] | None = None, title: str | None = None) -> Axes:
    """Draw the piecewise-affine curve g(z) of a net with latent dimension 1, kinks marked.

    For data dimension 2 the curve is drawn in data space (optionally over data ``X``); for
    other data dimensions every output coordinate is drawn against z.
    """
    net = P.net
    if net.latent_dim != 1:
        raise ValueError(f"plot_curve draws latent dimension 1, got {net.latent_dim}")
    if ax is None:
        _, ax = subplots(figsize=(6, 5))
    kinks = np.unique(np.concatenate([np.asarray(r.vertices, dtype=np.float64).ravel() for r in P]))
    inside = kinks[np.abs(kinks) <= window]
    z = np.union1d(np.linspace(-window, window, 801), inside)
    G = net.forward(z[:, None])
    Gk = net.forward(inside[:, None]) if len(inside) else np.zeros((0, net.data_dim))
    if net.data_dim == 2:
        if X is not None:
            ax.scatter(X[:, 0], X[:, 1], s=4, c="0.6", label="data")
        sc = ax.scatter(G[:, 0], G[:, 1], c=z, s=2, cmap="viridis")
        ax.plot(G[:, 0], G[:, 1], "-", c="k", lw=0.6, alpha=0.5)
        ax.plot(Gk[:, 0], Gk[:, 1], "o", ms=3, c="crimson", label=f"kinks ({len(inside)} in view)")
        ax.figure.colorbar(sc, ax=ax, label="z")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(loc="best", fontsize=8)
    else:
        for j in range(min(net.data_dim, 10)):
            ax.plot(z, G[:, j], lw=1, label=f"$g_{j + 1}(z)$")
        for k in inside:
            ax.axvline(k, c="0.7", lw=0.5, zorder=0)
        ax.set_xlabel("z")
        ax.legend(loc="best", fontsize=8)
    ax.set_title(title or f"g(z) on [-{window:g}, {window:g}]: {len(P)} regions, "
                 f"{len(kinks)} kinks")
    return ax


def plot_history(values: Sequence[float], ax: Axes | None = None, label: str = "",
                 ylabel: str = "") -> Axes:
    """A training curve."""
    if ax is None:
        _, ax = subplots(figsize=(6, 4))
    ax.plot(np.arange(len(values)), values, "-o", ms=2, label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    if label:
        ax.legend()
    return ax
