"""Check Lemma 2: as the noise variance -> 0 the posterior concentrates at z*(x) = argmin ||x - g(z)||^2.

Usage: python proofs_checks/lemma2_zero_noise.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

S = 1: z*(x) exactly from the affine pieces of g; posterior mean error and variance along
sigma^2 -> 0 with their measured log-log rates (expected 1) and leading coefficients.
Prints what was measured and exits with status 1 if the check fails.
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
    ap.add_argument("--thorough", action="store_true", help="more nets and points, finer rules")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dps", type=int, default=None, help="digits of the exact computation")
    ap.add_argument("--model", type=Path, default=None, help="a DGN saved with DGN.save")
    args = ap.parse_args(argv)
    net = DGN.load(args.model) if args.model is not None else None
    _, check = registry()["Lemma 2"]
    kw = {} if args.dps is None else {"dps": args.dps}
    result = check(net=net, quick=not args.thorough, seed=args.seed, **kw)
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
