"""``dgn impute``: fill in the missing entries (NaN) of a data file by E[x_m | x_o].

    dgn impute MODEL.npz DATA [--out FILE] [--std FILE] [--force]

DATA (.npy, .csv / .txt / .tsv) marks a missing entry by NaN (``nan`` in a text table; an
empty field of a .csv or .tsv file). The completed data, observed entries as given and
missing ones replaced by their exact conditional mean under the model
(:func:`fastpath.missing.impute`), are written to ``--out`` (default: beside DATA,
``NAME.imputed.npy`` or ``NAME.imputed.csv``), ``.npy`` or ``.csv`` by its suffix, atomically
and only over an existing file with ``--force``. ``--std FILE`` also writes the conditional
standard deviation of every entry (0 where observed).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from ._common import CLIError, add_force_arg, check_output_file, write_array

__all__ = ["add_parser", "run"]

_FORMATS = (".npy", ".csv")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "impute", help="fill in missing (NaN) entries of a data file by E[x_m | x_o]",
        description="Replace the missing entries (NaN; empty fields of a .csv file) of every "
        "row by their exact conditional mean given the row's observed entries under the "
        "model, and optionally write their conditional standard deviations.")
    p.add_argument("model", type=Path, help="a model saved with DGN.save (.npz) or dgn fit")
    p.add_argument("data", type=Path, help="the data (.npy, .csv, .txt, .tsv) with NaN = missing")
    p.add_argument("--out", type=Path, default=None,
                   help="the completed data, .npy or .csv (default: DATA's name with "
                   ".imputed before its suffix; .txt / .tsv data give .csv)")
    p.add_argument("--std", type=Path, default=None, metavar="FILE",
                   help="also write the conditional standard deviation of every entry "
                   "(0 where observed), .npy or .csv")
    add_force_arg(p)
    p.set_defaults(func=run)


def _default_out(data: Path) -> Path:
    suffix = ".npy" if data.suffix.lower() == ".npy" else ".csv"
    return data.with_name(f"{data.stem}.imputed{suffix}")


def _check_format(path: Path, option: str) -> None:
    if path.suffix.lower() not in _FORMATS:
        raise CLIError(f"{option} {path}: write .npy or .csv (got {path.suffix or 'no suffix'!r})")


def run(args: argparse.Namespace) -> int:
    from dgn_core.data import load_data
    from dgn_core.model import DGN

    out = args.out if args.out is not None else _default_out(args.data)
    _check_format(out, "--out")
    if args.std is not None:
        _check_format(args.std, "--std")
        if args.std.resolve() == out.resolve():
            raise CLIError(f"--std {args.std} is the --out file; give two different paths")
    inputs = [args.model, args.data]
    check_output_file(out, force=args.force, inputs=inputs)
    if args.std is not None:
        check_output_file(args.std, force=args.force, option="--std", inputs=inputs)
    net = DGN.load(args.model)
    X = load_data(args.data, allow_nan=True)
    if X.shape[1] != net.data_dim:
        raise CLIError(f"{args.data} has {X.shape[1]} columns but the model's data dimension "
                       f"is {net.data_dim}")

    from fastpath.missing import impute, observed_mask

    mask = observed_mask(X)
    n_mis = int((~mask).sum())
    print(f"dgn impute: {args.data}: N = {X.shape[0]}, D = {X.shape[1]}, {n_mis} missing "
          f"entries in {int((~mask).any(axis=1).sum())} rows "
          f"({int((~mask).all(axis=1).sum())} with nothing observed)", flush=True)
    if args.std is None:
        filled = impute(net, X, mask)
        assert isinstance(filled, np.ndarray)
        std = None
    else:
        filled, cov = impute(net, X, mask, return_cov=True)
        std = np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
    write_array(out, filled, header=False)
    print(f"wrote {out}")
    if std is not None and args.std is not None:
        write_array(args.std, std, header=False)
        print(f"wrote {args.std}")
    return 0
