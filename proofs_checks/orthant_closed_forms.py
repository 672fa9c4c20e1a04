"""Check the orthant probabilities against their closed forms at the origin.

Usage: python proofs_checks/orthant_closed_forms.py [--thorough] [--seed N] [--model PATH.npz]

Phi_2(0,0;rho) = 1/4 + asin(rho)/(2pi), Phi_3(0;R) = 1/8 + (asin r12 + asin r13 + asin r23)/(4pi)
(and 1/(k+1) for the exchangeable correlation 1/2 with --thorough); digits measured and
confirmed by recomputing at dps + 15. --model is accepted for uniformity and ignored.
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from verified_dgn import DGN  # noqa: E402
from verified_dgn.checks import registry  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thorough", action="store_true", help="larger suite, more points")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, default=None, help="a DGN saved with DGN.save")
    args = ap.parse_args(argv)
    net = DGN.load(args.model) if args.model is not None else None
    _, check = registry()["Orthant closed forms"]
    result = check(net=net, quick=not args.thorough, seed=args.seed)
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
