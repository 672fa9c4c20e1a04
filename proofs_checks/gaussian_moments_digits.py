"""Check gaussian_moments against independent computations, with the digits verified.

Usage: python proofs_checks/gaussian_moments_digits.py [--thorough] [--seed N] [--model PATH.npz]

Without --model: one-dimensional truncated normals (closed forms, far tails included) and
the tiling identity (regions of a small net integrate N(0, I) to (1, 0, I)); with --model:
the tiling identity over that net's regions (S <= 2, or S <= 3 with --thorough).
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
    _, check = registry()["Moments"]
    result = check(net=net, quick=not args.thorough, seed=args.seed)
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
