"""``dgn select``: hidden widths chosen by exact log-likelihood, AIC and BIC."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from dgn_core.validation import check_int, check_nonnegative

from ._common import (
    MAX_LATENT_DIM,
    add_force_arg,
    check_latent_dim,
    check_option,
    check_output_file,
    load_fit_data,
    parse_hidden_widths,
    random_net,
    write_csv,
)
from ._scaling import Scaling, check_data_range, fit_scaling

__all__ = ["add_parser", "run"]

#: the table columns written to the CSV file, after hidden_widths
_COLUMNS = ("log_likelihood", "per_point", "n_params", "aic", "bic", "n_iter")


def _parse_candidates(text: str) -> list[tuple[int, ...]]:
    """Hidden widths separated by ';'; an empty candidate is a typo ('none' is the linear
    model)."""
    parts = [part.strip() for part in text.split(";")]
    if any(not part for part in parts):
        raise argparse.ArgumentTypeError(f"candidates are hidden widths separated by ';', e.g. "
                                         f"'4;8;8,8' ('none': no hidden layer); got an empty "
                                         f"candidate in {text!r}")
    try:
        return [parse_hidden_widths(part) for part in parts]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"candidates are hidden widths separated by ';', "
                                         f"e.g. '4;8;8,8': {exc}") from None


def _in_data_units(table: Any, scaling: Scaling, D: int) -> Any:
    """The table of models trained on the transformed data, for the data themselves:
    log p(X) shifts by N * (-D log s), and AIC and BIC with it."""
    from fastpath.selection import SelectionTable

    N = table.n_points
    rows = []
    for r in table.rows:
        ll = r["log_likelihood"] + N * scaling.log_density_shift(D)
        k = r["n_params"]
        rows.append({**r, "log_likelihood": ll, "per_point": ll / N, "aic": 2 * k - 2 * ll,
                     "bic": k * math.log(N) - 2 * ll})
    return SelectionTable(rows, [scaling.from_scaled(m) for m in table.models], N)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "select", help="choose hidden widths by exact log-likelihood, AIC and BIC",
        description="Train one DGN per candidate hidden widths by exact EM and print the exact "
        "log-likelihood, the number of parameters, AIC and BIC of each.")
    p.add_argument("--data", default="circle", help="circle, cosine or a data file (circle)")
    p.add_argument("--n", type=int, default=500, help="points of a built-in data set (500)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--candidates", type=_parse_candidates, default=[(4,), (8,), (8, 8)],
                   help="hidden widths separated by ';' (default '4;8;8,8')")
    p.add_argument("--latent-dim", type=int, default=1,
                   help=f"latent dimension S, 1 to {MAX_LATENT_DIM} (default 1)")
    p.add_argument("--activation", choices=["relu", "leaky_relu", "abs"], default="leaky_relu")
    p.add_argument("--slope", type=float, default=0.1)
    p.add_argument("--max-iter", type=int, default=50, help="EM iterations per candidate (50)")
    p.add_argument("--tol", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-standardize", dest="standardize", action="store_false",
                   help="train on the data as given (default: centred and divided by a power "
                   "of two near their spread, as dgn fit; the table is in the data's units)")
    p.add_argument("--out", type=Path, default=None, help="also write the table as CSV")
    add_force_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fastpath.selection import select_widths

    # the options select_widths would reject, reported before any training
    check_latent_dim(args.latent_dim)
    check_option(check_int, args.max_iter, "--max-iter", 0)
    check_option(check_nonnegative, args.tol, "--tol")
    check_option(check_int, args.seed, "--seed")
    check_option(check_int, args.data_seed, "--data-seed")
    if args.activation == "leaky_relu":  # the slope rule of the model, on a 1 x 1 net
        random_net((1, 1), activation=args.activation, slope=args.slope)
    X, what = load_fit_data(args.data, args.n, args.data_seed)
    out = Path(args.out) if args.out is not None else None
    if out is not None:  # refused before the training, not after it
        data_file = Path(args.data)
        check_output_file(out, force=args.force, inputs=[data_file] if data_file.is_file() else [])
    print(f"dgn select: {what}: N = {X.shape[0]}, D = {X.shape[1]}; "
          f"{len(args.candidates)} candidates, {args.max_iter} EM iterations each", flush=True)
    scaling = fit_scaling(X.mean(axis=0), check_data_range(X, what), scale=args.standardize)
    table = select_widths(scaling.apply(X), args.candidates, latent_dim=args.latent_dim,
                          activation=args.activation, slope=args.slope, max_iter=args.max_iter,
                          tol=args.tol, seed=args.seed)
    table = _in_data_units(table, scaling, X.shape[1])
    print(table.to_text())
    if out is not None:
        cols = {k: np.array([r[k] for r in table.rows], dtype=np.float64) for k in _COLUMNS}
        rows = [["x".join(map(str, r["hidden"]))] + [repr(float(cols[k][i])) for k in cols]
                for i, r in enumerate(table.rows)]
        write_csv(out, ["hidden_widths", *cols], rows)
        print(f"wrote {out}")
    return 0
