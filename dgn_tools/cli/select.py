"""``dgn select``: latent dimension, activation and hidden widths chosen by exact
log-likelihood, AIC, BIC and held-out log-likelihood."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from dgn_core.validation import check_int, check_nonnegative

from ._common import (
    ACTIVATION_NAMES,
    MAX_LATENT_DIM,
    CLIError,
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

#: the table columns written to the CSV file, after latent_dim, activation, hidden_widths
_COLUMNS = ("log_likelihood", "per_point", "n_params", "aic", "bic", "n_iter")
#: ... and with held-out data
_VAL_COLUMNS = ("val_log_likelihood", "val_per_point")


def _parse_latent_dims(text: str) -> list[int]:
    try:
        dims = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"latent dimensions are integers separated by ',', "
                                         f"e.g. 1,2; got {text!r}") from None
    return dims


def _parse_activations(text: str) -> list[str]:
    acts = [t.strip() for t in text.split(",")]
    bad = [a for a in acts if a not in ACTIVATION_NAMES]
    if bad:
        raise argparse.ArgumentTypeError(f"activations are among {', '.join(ACTIVATION_NAMES)} "
                                         f"separated by ','; got {text!r}")
    return acts


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

    N, Nv, shift = table.n_points, table.n_val_points, scaling.log_density_shift(D)
    rows = []
    for r in table.rows:
        ll = r["log_likelihood"] + N * shift
        k = r["n_params"]
        row = {**r, "log_likelihood": ll, "per_point": ll / N, "aic": 2 * k - 2 * ll,
               "bic": k * math.log(N) - 2 * ll}
        if Nv:
            lv = r["val_log_likelihood"] + Nv * shift
            row.update(val_log_likelihood=lv, val_per_point=lv / Nv)
        rows.append(row)
    return SelectionTable(rows, [scaling.from_scaled(m) for m in table.models], N, Nv)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "select", help="choose the architecture by exact log-likelihood, AIC, BIC and held-out "
        "log-likelihood",
        description="Train one DGN per candidate (latent dimension x activation x hidden "
        "widths) by exact EM and print the exact log-likelihood, the number of parameters, AIC "
        "and BIC of each, and with --val the exact held-out log-likelihood.")
    p.add_argument("--data", default="circle", help="circle, cosine or a data file (circle)")
    p.add_argument("--n", type=int, default=500, help="points of a built-in data set (500)")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--candidates", type=_parse_candidates, default=[(4,), (8,), (8, 8)],
                   help="hidden widths separated by ';' (default '4;8;8,8')")
    p.add_argument("--latent-dim", type=_parse_latent_dims, default=[1], metavar="S[,S...]",
                   help=f"latent dimension(s) S, 1 to {MAX_LATENT_DIM}, e.g. 1,2 (default 1)")
    p.add_argument("--activation", type=_parse_activations, default=["leaky_relu"],
                   metavar="A[,A...]", help="activation(s) among relu, leaky_relu, abs, e.g. "
                   "relu,leaky_relu (default leaky_relu)")
    p.add_argument("--val", default=None, metavar="FRACTION|FILE",
                   help="held-out data (a fraction in (0, 1) of the data, drawn with --seed, or "
                   "a data file): adds the exact held-out log-likelihood per point")
    p.add_argument("--n-init", type=int, default=1, metavar="K",
                   help="EM starts per candidate, the best kept (default 1)")
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
    from fastpath.selection import select_models

    from ._fit_setup import split_held_out

    # the options select_models would reject, reported before any training
    for S in args.latent_dim:
        check_latent_dim(S)
    check_option(check_int, args.n_init, "--n-init", 1)
    check_option(check_int, args.max_iter, "--max-iter", 0)
    check_option(check_nonnegative, args.tol, "--tol")
    check_option(check_int, args.seed, "--seed")
    check_option(check_int, args.data_seed, "--data-seed")
    if "leaky_relu" in args.activation:  # the slope rule of the model, on a 1 x 1 net
        random_net((1, 1), activation="leaky_relu", slope=args.slope)
    X, what = load_fit_data(args.data, args.n, args.data_seed)
    X, X_val = split_held_out({"val": args.val, "seed": args.seed}, X)
    out = Path(args.out) if args.out is not None else None
    if out is not None:  # refused before the training, not after it
        data_file = Path(args.data)
        check_output_file(out, force=args.force, inputs=[data_file] if data_file.is_file() else [])
    if X_val is not None and X_val.shape[1] != X.shape[1]:
        raise CLIError(f"--val {args.val}: {X_val.shape[1]} column(s), but the data have "
                       f"{X.shape[1]}")
    n_cand = len(args.candidates) * len(args.latent_dim) * len(args.activation)
    held = "" if X_val is None else f", {X_val.shape[0]} held out"
    print(f"dgn select: {what}: N = {X.shape[0]}{held}, D = {X.shape[1]}; {n_cand} candidates, "
          f"{args.max_iter} EM iterations each", flush=True)
    scaling = fit_scaling(X.mean(axis=0), check_data_range(X, what), scale=args.standardize)
    table = select_models(scaling.apply(X), widths=args.candidates, latent_dims=args.latent_dim,
                          activations=args.activation, slope=args.slope,
                          X_val=None if X_val is None else scaling.apply(X_val),
                          max_iter=args.max_iter, tol=args.tol, seed=args.seed,
                          n_init=args.n_init)
    table = _in_data_units(table, scaling, X.shape[1])
    print(table.to_text())
    if out is not None:
        names = _COLUMNS + (_VAL_COLUMNS if table.n_val_points else ())
        cols = {k: np.array([r[k] for r in table.rows], dtype=np.float64) for k in names}
        rows = [[str(r["latent_dim"]), r["activation"], "x".join(map(str, r["hidden"]))]
                + [repr(float(cols[k][i])) for k in cols] for i, r in enumerate(table.rows)]
        write_csv(out, ["latent_dim", "activation", "hidden_widths", *cols], rows)
        print(f"wrote {out}")
    return 0
