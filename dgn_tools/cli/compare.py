"""``dgn compare BUNDLE RESULTS``: another implementation's numbers against a reference
bundle, digits of agreement per quantity (docs/reference_bundles.md)."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Any

from ._common import CLIError, add_force_arg, check_output_file, write_json

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    from ..reference import RESULTS_LAYOUTS

    p = sub.add_parser(
        "compare", help="compare another implementation's numbers with a reference bundle",
        description=textwrap.fill(
            "Read RESULTS (another implementation's log p(x), posterior weights, moments, EM "
            "step) and report, per quantity, the digits of agreement with the reference "
            "BUNDLE (written by `dgn reference`) and the worst point and index. Exit status "
            "0: every quantity given agrees to --digits; 1: some quantity does not; 2: bad "
            "input. See docs/reference_bundles.md.", 90) + "\n\n" + RESULTS_LAYOUTS,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", type=Path, help="a reference bundle (.json)")
    p.add_argument("results", type=Path, nargs="?", default=None,
                   help="the numbers to check (.json, .npz, .npy, .csv)")
    p.add_argument("--digits", type=float, default=10,
                   help="digits of agreement required of every quantity (default 10)")
    p.add_argument("--quantity", default=None,
                   help="the quantity held by an .npy results file")
    p.add_argument("--fastpath", action="store_true",
                   help="check this project's fast path instead of a results file")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the comparison as JSON")
    add_force_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reference import compare_to_reference, fastpath_results

    if (args.results is None) == (not args.fastpath):
        raise CLIError("give a RESULTS file or --fastpath (one of them)")
    if not (args.digits >= 0):
        raise CLIError(f"--digits must be a non-negative number, got {args.digits}")
    if args.json is not None:
        check_output_file(args.json, force=args.force, option="--json",
                          inputs=[p for p in (args.bundle, args.results) if p is not None])
    results: Any = fastpath_results(args.bundle) if args.fastpath else args.results
    cmp = compare_to_reference(results, args.bundle, digits=args.digits,
                               quantity=args.quantity)
    print(f"bundle: {args.bundle}; results: "
          f"{'the fast path' if args.fastpath else args.results}")
    print(cmp.table())
    if args.json is not None:
        write_json(args.json, {
            "threshold": cmp.threshold, "passed": cmp.passed, "missing": cmp.missing,
            "quantities": {q.name: {"digits": q.digits,
                                    "worst": list(q.worst), "reference": q.reference,
                                    "result": q.result if q.result == q.result else None,
                                    "reference_digits": q.reference_digits,
                                    "certified": q.certified, "n_values": q.n_values}
                           for q in cmp.quantities.values()}})
    if cmp.passed:
        print(f"PASS: every quantity given agrees to >= {args.digits:g} digits")
        return 0
    names = ", ".join(f"{q.name} ({q.digits:.1f} at {q.where})" for q in cmp.failures)
    print(f"FAIL: below {args.digits:g} digits: {names}")
    return 1

