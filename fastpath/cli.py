"""The ``dgn`` command line.

    dgn partition [MODEL.npz | --random WIDTHS] [--exact] [--out FILE.png]
    dgn check     [MODEL.npz | --random WIDTHS] [--thorough] [NAME ...]

Every command has ``--help``. Errors in the input (a missing or damaged model file, bad
widths, a region limit) are reported in one line with exit status 2, not a traceback
(set DGN_DEBUG=1 to see the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from verified_dgn.model import DGN, ModelFileError
from verified_dgn.regions import RegionLimitError

__all__ = ["main", "build_parser"]


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
        from . import partition as part_fn  # type: ignore[attr-defined]
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
    from verified_dgn.checks import registry

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
