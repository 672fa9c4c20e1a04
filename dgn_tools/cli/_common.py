"""What the commands of ``dgn`` share: the error type, option parsers and validation, model
and data loading, and the atomic writers of tables and JSON files."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dgn_core.exceptions import DGNError
from dgn_core.io import atomic_open
from dgn_core.model import DGN

__all__ = ["CLIError", "parse_widths", "parse_hidden_widths", "check_option", "random_net",
           "add_model_args", "load_model", "load_fit_data", "write_csv", "write_columns_csv", "write_json"]

T = TypeVar("T")


class CLIError(DGNError):
    """An input problem reported to the user in one line, without a traceback."""


# ------------------------------------------------------------------------------ parsing
def parse_widths(text: str, *, hidden: bool = False) -> tuple[int, ...]:
    """Layer widths from ``"2,16,16,2"`` (``x`` and spaces are accepted as separators).

    ``hidden=False``: the widths of a whole net (latent, ..., data), at least two.
    ``hidden=True``: hidden widths only; ``""``, ``"-"`` and ``"none"`` mean no hidden layer
    (a linear model).

    Raises
    ------
    argparse.ArgumentTypeError
        Not integers, a width below 1, or (whole net) fewer than two widths; argparse reports
        it as a usage error.
    """
    if hidden:
        text = text.strip()
        if text in ("", "-", "none"):
            return ()
    try:
        widths = tuple(int(t) for t in text.replace("x", ",").replace(" ", "").split(",") if t)
    except ValueError:
        example = "8,8" if hidden else "2,16,16,2"
        what = "hidden widths are" if hidden else "widths must be"
        raise argparse.ArgumentTypeError(
            f"{what} comma-separated integers like {example}, got {text!r}") from None
    if hidden:
        if min(widths, default=1) < 1:
            raise argparse.ArgumentTypeError(f"hidden widths must be positive, got {text!r}")
    elif len(widths) < 2 or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"widths need at least two positive integers (latent, ..., data), got {text!r}")
    return widths


def parse_hidden_widths(text: str) -> tuple[int, ...]:
    """:func:`parse_widths` of hidden widths (an argparse ``type``)."""
    return parse_widths(text, hidden=True)


def check_option(check: Callable[..., T], *args: Any) -> T:
    """``check(*args)`` for a command-line value, its ``TypeError`` / ``ValueError`` reported
    as :class:`CLIError`.

    For the library's argument checks (:mod:`dgn_core.validation`), applied to the options
    before any work starts: an error that surfaces later, inside a computation, is a bug
    and keeps its traceback.
    """
    try:
        return check(*args)
    except (TypeError, ValueError) as exc:
        raise CLIError(str(exc)) from None


def random_net(widths: Sequence[int], **options: Any) -> DGN:
    """``DGN.random(widths, **options)`` with invalid options (an activation's slope, the
    seed, the noise variance) reported as :class:`CLIError`."""
    return check_option(lambda: DGN.random(widths, **options))


# ------------------------------------------------------------------------------ models
def add_model_args(p: argparse.ArgumentParser, default_hint: str) -> None:
    """The model options of ``partition``, ``check`` and ``posterior``."""
    p.add_argument("model", nargs="?", type=Path,
                   help=f"a model saved with DGN.save (.npz); default: {default_hint}")
    p.add_argument("--random", type=parse_widths, metavar="WIDTHS",
                   help="use a random net with these widths, e.g. 2,32,32,2 (PyTorch default init)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random net (default 0)")
    p.add_argument("--activation", choices=["relu", "leaky_relu", "abs"], default="relu",
                   help="activation of the random net (default relu)")
    p.add_argument("--slope", type=float, default=None,
                   help="negative-side slope of leaky_relu (default 0.01)")


def load_model(args: argparse.Namespace, default: Callable[[], DGN | None]
               ) -> tuple[DGN | None, str]:
    """The model of the options of :func:`add_model_args` and a description of it;
    ``default()`` when neither a file nor ``--random`` is given."""
    if args.model is not None and args.random is not None:
        raise CLIError("give either a model file or --random WIDTHS, not both")
    if args.model is not None:
        return DGN.load(args.model), str(args.model)
    if args.random is not None:
        net = random_net(args.random, activation=args.activation, slope=args.slope, seed=args.seed)
        return net, f"random net {args.random} (seed {args.seed}, {args.activation})"
    return default(), "built-in example"


# ------------------------------------------------------------------------------ data
def load_fit_data(spec: str, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, str]:
    """The training data of ``dgn fit`` and ``dgn select``: "circle" (the paper's Sec. 4.3
    experiment: radius 1, noise sd 0.05), "cosine" (t ~ N(0, 1), x = (t, cos 1.4 t)) or a .npy / .csv /
    IDX file.

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


# ------------------------------------------------------------------------------ files
def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A CSV file of pre-formatted cells, written atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(",".join(header) + "\n")
        for row in rows:
            fh.write(",".join(row) + "\n")


def write_columns_csv(path: Path, columns: Mapping[str, Sequence[float] | np.ndarray]) -> None:
    """Numeric columns as a CSV file (``repr`` of each float: no digit is lost)."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    write_csv(path, names, [[repr(float(columns[k][i])) for k in names] for i in range(n)])


def write_json(path: Path, obj: Mapping[str, Any]) -> None:
    """A JSON file (indented, sorted keys), written atomically."""
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")
