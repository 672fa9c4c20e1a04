"""Check Lemma 3 (the map from regions to sign patterns is a bijection).

Usage: python proofs_checks/lemma3_bijection.py [--thorough] [--seed N] [--model PATH.npz]

Without --model the check runs on its built-in suite of nets (degenerate ones included);
--thorough uses a larger suite and more sample points. Prints what was measured and exits
with status 1 if the check fails.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from verified_dgn import DGN
from verified_dgn.checks import registry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--thorough", action="store_true", help="larger suite, more samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", type=Path, default=None, help="a DGN saved with DGN.save")
    args = ap.parse_args(argv)
    net = DGN.load(args.model) if args.model is not None else None
    _, check = registry()["Lemma 3"]
    result = check(net=net, quick=not args.thorough, seed=args.seed)
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
