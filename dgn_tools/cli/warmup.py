"""``dgn warmup``: compile the fast path's kernels ahead of their first use.

The compiled kernels (numba, cached on disk) are compiled the first time each is called,
which takes tens of seconds once per installation; later processes load them in
milliseconds. ``tools/setup.sh`` runs this command after installing, so that no user pays
the compilation inside a fit without being told.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("warmup", help="compile the fast path's kernels now (once per installation)",
                       description="Compile (or load from the on-disk cache) every compiled "
                       "kernel of the fast path and report the time each module took.")
    p.add_argument("--quiet", action="store_true", help="print only the total")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="processes compiling at once (default: the usable cores)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fastpath import _jit

    def report(module: str, seconds: float) -> None:
        if not args.quiet:
            print(f"  {module:<28s} {seconds:7.2f} s", file=sys.stderr)

    if not args.quiet:
        print(f"dgn warmup: compiling kernels (cache: {_jit.cache_dir()})", file=sys.stderr)
    if args.jobs is not None and args.jobs < 1:
        print(f"dgn warmup: --jobs must be a positive integer, got {args.jobs}", file=sys.stderr)
        return 2
    total = _jit.warmup(report, jobs=args.jobs)
    print(f"dgn warmup: {len(_jit.KERNEL_MODULES)} kernel modules ready in {total:.1f} s",
          file=sys.stderr)
    return 0
