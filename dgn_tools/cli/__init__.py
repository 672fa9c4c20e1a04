"""The ``dgn`` command line.

    dgn partition [MODEL.npz | --random WIDTHS] [--exact] [--out FILE.png] [--force]
    dgn check     [--list] [NAME ...] [MODEL.npz | --random WIDTHS] [--thorough]
    dgn posterior [MODEL.npz | --random WIDTHS] [--point X1,X2] [--exact] [--out FILE.png] [--force]
    dgn fit       [--data circle|cosine|FILE] [--widths 8,8] [--latent-dim S] [--out DIR]
                  [--prior P] [--bias-prior P] [--resume DIR] [--force] ...
                  (no arguments: the main job, EM on the circle)
    dgn select    [--data ...] [--candidates '4;8;8,8'] [--out FILE.csv] [--force]
    dgn score     MODEL DATA [--top K] [--out FILE.csv] [--plot FILE.png] [--force]
                  (exact log p(x) per point, anomaly ranking)
    dgn sample    MODEL -n N [--seed S] [--out FILE.npy|FILE.csv] [--no-noise] [--force]
    dgn warmup    [--quiet]   (compile the fast path's kernels ahead of first use)
    dgn reference [MODEL | --random WIDTHS] [--points FILE | --n N] [--digits 30] [--out FILE.json]
                  [--npz FILE.npz] [--force]   (a certified reference bundle)
    dgn compare   BUNDLE [RESULTS | --fastpath] [--digits 10]   (digits of agreement)
    dgn impute    MODEL.npz DATA [--out FILE] [--std FILE] [--force]   (NaN = missing)

Every command has ``--help``. Errors in the input (a missing or damaged model file, bad
widths, a region limit, a file that cannot be written) are reported in one line with exit
status 2, not a traceback (set DGN_DEBUG=1 to see the traceback). No command overwrites a
file that exists already unless given ``--force``.

One module per command (``partition``, ``check``, ``posterior``, ``fit``, ``select``,
``score``, ``sample``, ``impute``, ``warmup``, ``reference``, ``compare``), each
with ``add_parser(subparsers)`` and ``run(args) -> exit status``; ``_common`` holds what they
share, ``_fit_setup`` the validation of a fit run before its folder is written, and
``_scaling`` the centring and rescaling of the data that ``fit`` and ``select`` train on.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from dgn_core.exceptions import DGNError

from . import (
    check,
    compare,
    fit,
    impute,
    partition,
    posterior,
    reference,
    sample,
    score,
    select,
    warmup,
)
from ._common import (
    CLIError,
    Parser,
    describe_os_error,
    join_negative_values,
    load_fit_data,
    parse_hidden_widths,
    parse_widths,
)
from .fit import FIT_DEFAULTS, manifold_figure
from .partition import EXAMPLE_WIDTHS
from .posterior import POSTERIOR_WIDTHS, example_posterior_net, posterior_figure

__all__ = ["main", "build_parser", "posterior_figure", "example_posterior_net", "manifold_figure",
           "load_fit_data", "parse_widths", "parse_hidden_widths", "CLIError", "EXAMPLE_WIDTHS",
           "POSTERIOR_WIDTHS", "FIT_DEFAULTS"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dgn`` and its commands."""
    parser = Parser(
        prog="dgn",
        description="Exact distributions and EM for piecewise-affine deep generative networks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (partition, check, posterior, fit, select, score, sample, impute, warmup,
                    reference, compare):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dgn`` with ``argv`` (default: the process's arguments); returns the exit status.

    Usage errors, the project's own errors (:class:`~dgn_core.exceptions.DGNError`: bad
    input, an unreadable model or data file, a region limit, ...) and file-system errors
    (``OSError``, with the path and what to do) are printed in one line with status 2;
    anything else is a bug and keeps its traceback.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(join_negative_values(argv))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (DGNError, OSError) as exc:
        if os.environ.get("DGN_DEBUG"):
            raise
        msg = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
        print(f"dgn {args.command}: error: {' '.join(msg.split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dgn {args.command}: interrupted", file=sys.stderr)
        return 130
