"""``dgn score``: the exact log p(x) of every data point under a model, and the anomalies.

log p(x) is Theorem 1's marginal (``fastpath.log_marginal``); the anomaly score is
-log p(x) (``fastpath.anomaly_scores``), rank 1 the most anomalous point.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN
from dgn_core.validation import check_int

from ._common import (
    CLIError,
    add_force_arg,
    check_jobs,
    check_option,
    check_output_file,
    write_csv,
)

__all__ = ["add_parser", "run", "load_points", "anomaly_ranks", "score_figure"]

Arr = NDArray[np.float64]


def load_points(path: Path, net: DGN, option: str = "DATA", allow_nan: bool = False) -> Arr:
    """The data points of ``path`` (.npy, .csv / .txt / .tsv or IDX, as ``dgn fit`` reads
    them), checked against the model's data dimension.

    Returns
    -------
    X : ndarray, shape (N, D)

    Raises
    ------
    CLIError
        No such file, a folder, or a column count other than the model's data dimension
        (``load_data`` raises :class:`~dgn_core.exceptions.DataError` for NaN, infinite or
        non-numeric entries and unreadable files).
    """
    from dgn_core.data import load_data

    if not path.exists():
        raise CLIError(f"{option}: no data file {str(path)!r}; give a .npy, .csv, .txt or IDX file")
    if path.is_dir():
        raise CLIError(f"{option} {path} is a folder; give a data file (.npy, .csv, .txt or IDX)")
    from dgn_core.exceptions import DataError

    try:
        X = load_data(path, allow_nan=allow_nan)
    except DataError as exc:
        if allow_nan or "NaN" not in str(exc):
            raise
        raise CLIError(f"{exc}; if NaN marks missing entries, add --missing nan") from None
    if X.shape[1] != net.data_dim:
        raise CLIError(f"{option} {path} has {X.shape[1]} column(s), but the model's data "
                       f"dimension is {net.data_dim} (widths {net.widths})")
    return X


def anomaly_ranks(scores: Arr) -> NDArray[np.int64]:
    """Rank of every point by anomaly score: 1 for the largest -log p(x); ties in row order.

    Parameters
    ----------
    scores : ndarray, shape (N,)
        -log p(x).

    Returns
    -------
    ranks : ndarray of int, shape (N,)
        A permutation of 1..N.
    """
    order = np.lexsort((np.arange(scores.shape[0]), -scores))   # by -score, then by row
    ranks = np.empty(scores.shape[0], dtype=np.int64)
    ranks[order] = np.arange(1, scores.shape[0] + 1)
    return ranks


def score_figure(X: Arr, log_p: Arr, ranks: NDArray[np.int64], top: int, *, title: str = "") -> Any:
    """Histogram of log p(x) with the ``top`` most anomalous points marked; for D = 2 also
    the points coloured by log p(x), the anomalies circled.

    Parameters
    ----------
    X : ndarray, shape (N, D)
    log_p : ndarray, shape (N,)
    ranks : ndarray of int, shape (N,)
        From :func:`anomaly_ranks`.
    top : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ..plotting import subplots

    two = X.shape[1] == 2
    fig, axes = subplots(1, 2 if two else 1, squeeze=False, figsize=(11 if two else 6, 4.5))
    ax = axes[0, 0]
    finite = np.isfinite(log_p)
    ax.hist(log_p[finite], bins=min(60, max(10, int(np.sqrt(finite.sum())))), color="0.6")
    worst = np.flatnonzero((ranks <= top) & finite)
    for i, j in enumerate(worst):
        ax.axvline(log_p[j], c="crimson", lw=0.8, alpha=0.8,
                   label=f"top {top} anomalies" if i == 0 else None)
    ax.set_xlabel("log p(x)")
    ax.set_ylabel("points")
    if worst.size:
        ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "exact log p(x)")
    if two:
        ax2 = axes[0, 1]
        sc = ax2.scatter(X[finite, 0], X[finite, 1], c=log_p[finite], s=6, cmap="viridis")
        fig.colorbar(sc, ax=ax2, label="log p(x)")
        top_rows = np.flatnonzero(ranks <= top)
        ax2.scatter(X[top_rows, 0], X[top_rows, 1], s=60, facecolors="none",
                    edgecolors="crimson", linewidths=1.2, label=f"top {top} anomalies")
        ax2.set_xlabel("$x_1$")
        ax2.set_ylabel("$x_2$")
        ax2.set_aspect("equal", adjustable="datalim")
        ax2.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "score", help="exact log p(x) of every data point and the most anomalous points",
        description="Compute the exact log p(x) of every row of DATA under MODEL (Theorem 1), "
        "rank the rows by anomaly score -log p(x) (rank 1: the most anomalous), print the mean "
        "log p(x) and the top anomalies, and optionally write a CSV (row, log_p, rank) and a "
        "figure.")
    p.add_argument("model", type=Path, help="a model saved with DGN.save or dgn fit (.npz)")
    p.add_argument("data", type=Path, help="data points: .npy, .csv, .txt or IDX, one per row")
    p.add_argument("--missing", choices=["nan"], default=None,
                   help="NaN (or an empty CSV field) marks a missing entry: score each row by "
                   "the exact log p of its observed entries")
    p.add_argument("--top", type=int, default=10,
                   help="how many of the most anomalous points to print and mark (default 10)")
    p.add_argument("--out", type=Path, default=None,
                   help="write a CSV with columns row (0-based), log_p, rank")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                   help="write a histogram of log p(x) with the anomalies marked (D = 2: and "
                   "the points coloured by log p(x))")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="threads of the compiled kernels at S >= 2 (default: all cores); the "
                   "result does not depend on it")
    add_force_arg(p)
    p.set_defaults(func=run)


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse the output files before any work (see :func:`check_output_file`)."""
    inputs = [args.model, args.data]
    for option, path in (("--out", args.out), ("--plot", args.plot)):
        if path is not None:
            check_output_file(path, force=args.force, option=option, inputs=inputs)
    if args.out is not None and args.plot is not None and args.out.resolve() == args.plot.resolve():
        raise CLIError(f"--out and --plot are the same file {args.out}; give two paths")


def run(args: argparse.Namespace) -> int:
    import fastpath

    from ..plotting import save_figure

    top = check_option(check_int, args.top, "--top", 1)
    jobs = check_jobs(args.jobs)
    _check_outputs(args)
    if not args.model.is_file():
        raise CLIError(f"MODEL: no model file {str(args.model)!r}; give a .npz saved by "
                       f"DGN.save or dgn fit")
    net = DGN.load(args.model)
    missing = getattr(args, "missing", None) == "nan"
    X = load_points(args.data, net, allow_nan=missing)
    N = X.shape[0]
    P = fastpath.partition(net)
    if missing:  # log p(x_obs) of the observed entries of every row (fastpath.missing)
        from fastpath.missing import log_marginal_observed, observed_mask

        log_p = np.asarray(log_marginal_observed(net, X, observed_mask(X), partition=P),
                           dtype=np.float64)
    else:
        log_p = -np.asarray(fastpath.anomaly_scores(net, X, partition=P, n_jobs=jobs),
                            dtype=np.float64)
    scores = -log_p
    ranks = anomaly_ranks(scores)
    finite = np.isfinite(log_p)
    print(f"dgn score: model {args.model}: {net!r} ({len(P)} regions)")
    n_mis = int(np.isnan(X).sum())
    print(f"data {args.data}: N = {N}, D = {X.shape[1]}"
          + (f"; {n_mis} missing entries: log p of the observed entries (rows with fewer "
             f"observed entries are not comparable by log p alone)" if n_mis else ""))
    total = float(np.sum(log_p))
    print(f"log p(X) = {total:.6f}; mean log p(x) = {total / N:.6f} per point; "
          f"min {float(np.min(log_p)):.6f}, median {float(np.median(log_p)):.6f}, "
          f"max {float(np.max(log_p)):.6f}")
    if not np.all(finite):   # beyond ~1e14 sd of the model the density underflows to 0
        print(f"{int(np.sum(~finite))} point(s) have log p(x) = -inf (farther than float64 "
              f"can represent a density)")
    k = min(top, N)
    print(f"top {k} anomalies (largest -log p(x)):")
    print(f"{'rank':>6} {'row':>8} {'log p(x)':>16}")
    for j in np.argsort(ranks)[:k]:
        print(f"{int(ranks[j]):>6} {int(j):>8} {float(log_p[j]):>16.6f}")
    if args.out is not None:
        write_csv(args.out, ["row", "log_p", "rank"],
                  [[str(i), repr(float(log_p[i])), str(int(ranks[i]))] for i in range(N)])
        print(f"wrote {args.out}")
    if args.plot is not None:
        fig = score_figure(X, log_p, ranks, k, title=f"exact log p(x) under {args.model.name}")
        save_figure(fig, args.plot)
        print(f"wrote {args.plot}")
    return 0
