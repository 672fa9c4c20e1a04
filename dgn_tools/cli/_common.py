"""What the commands of ``dgn`` share: the error type, option parsers and validation, model
and data loading, and the atomic writers of tables and JSON files."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from dgn_core.exceptions import DGNError
from dgn_core.io import atomic_open
from dgn_core.model import ACTIVATIONS, DGN

__all__ = ["CLIError", "MAX_LATENT_DIM", "check_jobs", "check_latent_dim", "check_exact_available", "Parser",
           "parse_widths", "parse_list", "write_array", "write_array_csv",
           "describe_os_error", "check_output_file", "add_force_arg", "join_negative_values",
           "parse_hidden_widths", "check_option", "random_net", "add_model_args", "load_model",
           "load_fit_data", "write_csv", "write_columns_csv", "write_json"]

T = TypeVar("T")

#: the largest latent dimension the fast path's Gaussian integrals handle (polyhedra in
#: R^S, S <= 4)
MAX_LATENT_DIM = 4


class CLIError(DGNError, ValueError):
    """An input problem reported to the user in one line, without a traceback."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (status 2), like the
    commands' own errors, instead of the usage block followed by the message."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


#: options whose value may start with "-" (a negative number): ``--point -1,2``
_NEGATIVE_VALUE_OPTIONS = ("--point",)
_NUMBER_START = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


def join_negative_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--point -1,2`` written as ``--point=-1,2``: argparse takes a value
    that starts with "-" and is not a plain number for an option and stops with "expected
    one argument"."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if (tok in _NEGATIVE_VALUE_OPTIONS and i + 1 < len(argv)
                and _NUMBER_START.match(argv[i + 1])):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
        else:
            out.append(tok)
            i += 1
    return out


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
    example = "8,8" if hidden else "2,16,16,2"
    what = "hidden widths are" if hidden else "widths must be"
    try:
        widths = tuple(int(t) for t in parse_list(text.replace("x", ","), "widths"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{what} comma-separated integers like {example}, got {text!r} ({exc})") from None
    if hidden:
        if min(widths, default=1) < 1:
            raise argparse.ArgumentTypeError(f"hidden widths must be positive, got {text!r}")
    elif len(widths) < 2 or min(widths) < 1:
        raise argparse.ArgumentTypeError(
            f"widths need at least two positive integers (latent, ..., data), got {text!r}")
    return widths


def parse_list(text: str, what: str) -> list[str]:
    """The comma-separated entries of ``text`` (spaces around them ignored).

    Raises
    ------
    ValueError
        An empty entry (``"8,,8"``, ``","``, a trailing comma): a typo that must not be read
        as a different list.
    """
    parts = [t.strip() for t in text.split(",")]
    if any(not t for t in parts):
        raise ValueError(f"empty entry in the {what} list")
    return parts


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


def check_jobs(jobs: int | None) -> int | None:
    """``--jobs N``: the thread count of the compiled kernels (None: all cores), checked by
    ``fastpath``'s own rule."""
    from fastpath._threads import resolve_n_jobs

    try:
        resolve_n_jobs(jobs)
    except (TypeError, ValueError) as exc:
        msg = str(exc).replace("n_jobs", "the thread count").replace(" or None", "")
        raise CLIError(f"--jobs: {msg}") from None
    return jobs


def check_latent_dim(value: int, option: str = "--latent-dim") -> int:
    """A latent dimension from 1 to :data:`MAX_LATENT_DIM`."""
    if not 1 <= value <= MAX_LATENT_DIM:
        raise CLIError(f"{option} must be from 1 to {MAX_LATENT_DIM} (the fast path integrates "
                       f"over polyhedra in at most {MAX_LATENT_DIM} dimensions), got {value}")
    return value


def check_exact_available() -> None:
    """``--exact`` needs pycddlib (the exact path's rational geometry), an optional extra."""
    import importlib.util

    if importlib.util.find_spec("cdd") is None:
        raise CLIError("--exact needs pycddlib (the exact path's rational geometry), which is "
                       "not installed; install it (pip install pycddlib, with libcdd-dev and "
                       "libgmp-dev) or drop --exact")


#: the activation names of the command line: the model's (relu, leaky_relu, abs, identity)
ACTIVATION_NAMES = tuple(ACTIVATIONS)


def parse_layer_activations(text: str) -> str:
    """``--activation``: one activation for every hidden layer (``relu``) or one per hidden
    layer separated by commas (``relu,abs,leaky_relu``); returned normalised."""
    acts = [t.strip() for t in str(text).split(",")]
    bad = [a for a in acts if a not in ACTIVATION_NAMES]
    if bad:
        raise argparse.ArgumentTypeError(
            f"the activation is one of {', '.join(ACTIVATION_NAMES)}, or one per hidden layer "
            f"separated by ',' (e.g. relu,abs); got {text!r}")
    return ",".join(acts)


def activation_value(text: str) -> str | list[str]:
    """The ``activation`` argument of :class:`DGN` for a ``--activation`` setting."""
    acts = text.split(",")
    return acts[0] if len(acts) == 1 else acts


def random_net(widths: Sequence[int], **options: Any) -> DGN:
    """``DGN.random(widths, **options)`` with invalid options (an activation's slope, the
    seed, the noise variance) reported as :class:`CLIError`."""
    return check_option(lambda: DGN.random(widths, **options))


# ------------------------------------------------------------------------------ files
_OS_FIXES = {
    errno.EACCES: "check its permissions or choose another location",
    errno.EPERM: "check its permissions or choose another location",
    errno.EROFS: "the file system is read-only: choose another location",
    errno.EISDIR: "it is a folder: give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.ENOENT: "check the path",
    errno.EEXIST: "choose another path or remove it",
    errno.ENOSPC: "the disk is full: free space or choose another location",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another location",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def describe_os_error(exc: OSError) -> str:
    """An ``OSError`` in one line that names the path and what to do about it."""
    path = exc.filename
    reason = exc.strerror or str(exc)
    fix = _OS_FIXES.get(exc.errno or -1, "check the path and try again")
    if path is None:
        return f"{reason}; {fix}"
    if exc.filename2 is not None:
        path = f"{path} -> {exc.filename2}"
    return f"{path}: {reason}; {fix}"


def add_force_arg(p: argparse.ArgumentParser) -> None:
    """``--force``: allow the command to replace files that exist already."""
    p.add_argument("--force", action="store_true",
                   help="overwrite output files that exist already (default: refuse)")


def check_output_file(path: Path, *, force: bool, option: str = "--out",
                      inputs: Sequence[Path] = ()) -> None:
    """Refuse an output file the command would overwrite or cannot write, before any work.

    Raises
    ------
    CLIError
        ``path`` is a folder, is one of ``inputs`` (even with ``force``), exists already
        (without ``force``), or lies below a file.
    """
    if path.is_dir():
        raise CLIError(f"{option} {path} is a folder; give a file name inside it")
    for inp in inputs:
        if path.exists() and inp.exists() and os.path.samefile(path, inp):
            raise CLIError(f"{option} {path} is the input file {inp}; choose another path")
    if path.exists() and not force:
        raise CLIError(f"{option} {path} exists already; choose another path or add --force "
                       f"to overwrite it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"{option} {path}: {parent} is a file, not a folder; "
                               f"choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise CLIError(f"{option} {path}: the folder {parent} is not writable; "
                               f"choose another location")
            break


# ------------------------------------------------------------------------------ models
def add_model_args(p: argparse.ArgumentParser, default_hint: str, *, positional: bool = True
                   ) -> None:
    """The model options of ``partition``, ``check`` and ``posterior`` (``positional=False``:
    the command reads the model file from its own positional arguments)."""
    if positional:
        p.add_argument("model", nargs="?", type=Path,
                       help=f"a model saved with DGN.save (.npz); default: {default_hint}")
    p.add_argument("--random", type=parse_widths, metavar="WIDTHS",
                   help="use a random net with these widths, e.g. 2,32,32,2 (PyTorch default init)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random net (default 0)")
    p.add_argument("--activation", type=parse_layer_activations, default="relu",
                   metavar="A[,A...]",
                   help="activation of the random net: relu, leaky_relu or abs, or one per "
                   "hidden layer separated by ',' (default relu)")
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
        net = random_net(args.random, activation=activation_value(args.activation),
                         slope=args.slope, seed=args.seed)
        return net, f"random net {args.random} (seed {args.seed}, {args.activation})"
    return default(), "built-in example"


# ------------------------------------------------------------------------------ data
def load_fit_data(spec: str, n: int = 1000, seed: int = 0, *, allow_nan: bool = False
                  ) -> tuple[np.ndarray, str]:
    """The training data of ``dgn fit`` and ``dgn select``: "circle" (the paper's Sec. 4.3
    experiment: radius 1, noise sd 0.05), "cosine" (t ~ N(0, 1), x = (t, cos 1.4 t)) or a .npy / .csv /
    IDX file (``allow_nan``: NaN entries, missing values, are kept; ``dgn fit --missing nan``).

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
    if path.is_dir():
        raise CLIError(f"--data {path} is a folder; give a data file (.npy, .csv, .txt or IDX)")
    return load_data(path, allow_nan=allow_nan), f"file {path}"


# ------------------------------------------------------------------------------ writers
def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A CSV file of pre-formatted cells, written atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(",".join(header) + "\n")
        for row in rows:
            fh.write(",".join(row) + "\n")


def write_array(path: Path, X: np.ndarray, *, header: bool) -> None:
    """``X`` (N, D) to ``path`` atomically: ``.npy`` (binary), else CSV (:func:`write_array_csv`)."""
    if path.suffix.lower() == ".npy":
        with atomic_open(path, "wb") as fh:
            np.save(fh, X, allow_pickle=False)
        return
    with atomic_open(path, "w") as fh:
        write_array_csv(fh, X, header=header)


def write_array_csv(fh: Any, X: np.ndarray, *, header: bool) -> None:
    """``X`` (N, D) as CSV on ``fh``: ``repr`` of every float, so no digit is lost and
    ``dgn fit`` / ``dgn score`` read it back exactly; ``header``: a first line x1,...,xD."""
    if header:
        fh.write(",".join(f"x{j + 1}" for j in range(X.shape[1])) + "\n")
    for row in X:
        fh.write(",".join(repr(float(v)) for v in row) + "\n")


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
