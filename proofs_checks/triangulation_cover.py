"""Check that the exact triangulation covers P with pairwise disjoint interiors.

Usage: python proofs_checks/triangulation_cover.py [--thorough] [--seed N] [--model PATH.npz]

Bounded polytopes: the exact volumes of the pieces add up to the volume of the barycentric
subdivision (an independent triangulation). All polyhedra: exact membership of random
rational points (each point of P in exactly one piece interior, points outside in none).
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
    _, check = registry()["Triangulation"]
    result = check(net=net, quick=not args.thorough, seed=args.seed)
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
