"""``dgn check``: the registered lemma and theorem checks (:mod:`dgn_tools.checks`)."""

from __future__ import annotations

import argparse
from typing import Any

from ._common import CLIError, add_model_args, load_model

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="run the numerical checks of the theory's lemmas",
                       description="Run the registered lemma / theorem checks and print what "
                       "each measured. Exit status 1 if any fails.")
    add_model_args(p, "each check's own suite of nets")
    p.add_argument("names", nargs="*", metavar="NAME", help="checks to run (default: all)")
    p.add_argument("--thorough", action="store_true", help="longer, more thorough checks")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..checks import registry

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
        # with no model each check runs on its own suite of nets
        net, what = load_model(args, lambda: None)
        print(f"model: {what}: {net!r}")
    failed = 0
    for name in names:
        res = reg[name][1](net=net, quick=not args.thorough, seed=args.seed)
        print(res)
        failed += not res.passed
    print(f"{len(names) - failed} of {len(names)} checks passed")
    return 1 if failed else 0
