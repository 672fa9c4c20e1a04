"""``dgn check``: the registered lemma and theorem checks (:mod:`dgn_tools.checks`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ._common import (
    CLIError,
    add_force_arg,
    add_model_args,
    check_output_file,
    load_model,
    write_json,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check", help="run the numerical checks of the theory's lemmas",
                       description="Run the registered lemma / theorem checks and print what "
                       "each measured. Each check ends PASS, FAIL (the claim refuted beyond "
                       "the reference's own error), INCONCLUSIVE (the independent reference "
                       "did not reach the accuracy needed; its error estimate is printed) or "
                       "SKIPPED (the check does not handle this model, e.g. its latent "
                       "dimension; the other checks still run). Exit status 1 if any check "
                       "FAILs, else 0. Each positional argument is a check name (see --list) "
                       "or, at most once, a model file (.npz) to run the checks on.")
    p.add_argument("items", nargs="*", metavar="NAME|MODEL.npz",
                   help="checks to run (default: all) and optionally a model file; without a "
                   "model each check runs on its own suite of nets")
    add_model_args(p, "each check's own suite of nets", positional=False)
    p.add_argument("--thorough", action="store_true", help="longer, more thorough checks")
    p.add_argument("--dps", type=int, default=None,
                   help="decimal digits of the exact computations (default: each check's own, "
                   "20-30); checks without a precision setting ignore it")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write the results as JSON to FILE ('-': standard output, "
                   "instead of the text report)")
    add_force_arg(p)
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
    from ..checks import call_check

    names, args.model = _split_items(list(args.items), reg)
    names = names or list(reg)
    if args.dps is not None and not 10 <= args.dps <= 1000:
        raise CLIError(f"--dps must be between 10 and 1000, got {args.dps}")
    to_stdout = args.json == "-"
    if args.json is not None and not to_stdout:
        check_output_file(Path(args.json), force=args.force, option="--json")
    say = (lambda *a: print(*a, file=sys.stderr)) if to_stdout else print
    net, what = None, "each check's own suite of nets"
    if args.model is not None or args.random is not None:
        # with no model each check runs on its own suite of nets
        net, what = load_model(args, lambda: None)
        say(f"model: {what}: {net!r}")
    kw = {"net": net, "quick": not args.thorough, "seed": args.seed}
    if args.dps is not None:
        kw["dps"] = args.dps
    results = []
    for name in names:
        res = call_check(name, **kw)
        results.append(res)
        say(res)
    counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "INCONCLUSIVE",
                                                                "SKIPPED")}
    words = {"PASS": "passed", "FAIL": "failed", "INCONCLUSIVE": "inconclusive",
             "SKIPPED": "skipped"}
    say(f"{len(results)} check{'s' * (len(results) != 1)}: "
        + ", ".join(f"{n} {words[s]}" for s, n in counts.items() if n or s == "PASS"))
    if args.json is not None:
        doc = {"model": what, "quick": not args.thorough, "seed": args.seed, "dps": args.dps,
               "counts": counts, "checks": [r.to_dict() for r in results]}
        if to_stdout:
            json.dump(doc, sys.stdout, indent=2, sort_keys=True)
            print()
        else:
            write_json(Path(args.json), doc)
    return 1 if counts["FAIL"] else 0
