"""Check Theorem 1: the exact log p(x) against independent quadrature of p(x|z) p(z), and int p(x) dx = 1.

Usage: python proofs_checks/theorem1_marginal.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

Without --model: built-in nets with S = 1 and 2 (relu; abs, leaky-relu, diagonal noise and a
non-identity prior with --thorough); with --model: that net (S = 1 or 2). Points: samples, an
off-manifold and a far point (seeded). S = 1 reference: mpmath quadrature between exact kinks;
S = 2: nested float64 Gauss-Legendre; D = 2, S = 1: int p(x) dx = 1 by Gauss-Hermite rules.
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
    _, check = registry()["Theorem 1"]
    kw = {} if args.dps is None else {"dps": args.dps}
    result = check(net=net, quick=not args.thorough, seed=args.seed, **kw)
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
