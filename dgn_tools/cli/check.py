"""``dgn check``: the registered lemma and theorem checks (:mod:`dgn_tools.checks`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import CLIError, add_model_args, load_model

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="run the numerical checks of the theory's lemmas",
                       description="Run the registered lemma / theorem checks and print what "
                       "each measured. Exit status 1 if any fails. Each positional argument "
                       "is a check name (see --list) or, at most once, a model file (.npz) "
                       "to run the checks on.")
    p.add_argument("items", nargs="*", metavar="NAME|MODEL.npz",
                   help="checks to run (default: all) and optionally a model file; without a "
                   "model each check runs on its own suite of nets")
    add_model_args(p, "each check's own suite of nets", positional=False)
    p.add_argument("--thorough", action="store_true", help="longer, more thorough checks")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.set_defaults(func=run, model=None)


def _split_items(items: list[str], reg: Any) -> tuple[list[str], Path | None]:
    """The check names and the model file among the positional arguments: a registered name
    is a check, a path ending in .npz or naming a file is a model, anything else an error."""
    names: list[str] = []
    models: list[Path] = []
    for item in items:
        if item in reg:
            names.append(item)
        elif item.lower().endswith(".npz") or Path(item).is_file():
            models.append(Path(item))
        else:
            raise CLIError(f"unknown check {item!r} (not a model file either); the checks are "
                           f"{', '.join(reg)} (quote names with spaces: dgn check 'Lemma 3')")
    if len(models) > 1:
        raise CLIError(f"give at most one model file, got {', '.join(map(str, models))}")
    return names, models[0] if models else None


def run(args: argparse.Namespace) -> int:
    from ..checks import registry

    reg = registry()
    if args.list:
        for name, (statement, _) in reg.items():
            print(f"{name}: {statement}")
        return 0
    names, args.model = _split_items(list(args.items), reg)
    names = names or list(reg)
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
