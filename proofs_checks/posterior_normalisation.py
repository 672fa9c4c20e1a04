"""Check that the exact posterior is normalised and has the quadrature's mean and covariance.

Usage: python proofs_checks/posterior_normalisation.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

Measured: sum_w e0_w = 1, the Prop. 2 density integrated by quadrature (S = 1), and the
posterior mean and covariance against quadrature moments of p(x|z) p(z) (S = 1 mpmath,
S = 2 float64).
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
    _, check = registry()["Posterior normalisation"]
    kw = {} if args.dps is None else {"dps": args.dps}
    result = check(net=net, quick=not args.thorough, seed=args.seed, **kw)
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
