"""Check the promise of fastpath.fit_em: the exact log-likelihood never decreases.

Usage: python proofs_checks/em_monotone.py [--thorough] [--seed N] [--iters K] [--model PATH.npz]

Runs EM on a suite of architectures (S = 1 on the noisy circle; --thorough adds width 32,
diagonal noise, S = 2 and weight priors) and measures the largest decrease of the exact
objective log p(X) + log p(W) between iterations; the tolerance is the rounding of the exact
log-likelihood (fastpath.em.ECM_RTOL * (|objective| + N)).
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
    ap.add_argument("--thorough", action="store_true", help="more architectures and iterations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iters", type=int, default=None, help="EM iterations per run")
    ap.add_argument("--model", type=Path, default=None,
                    help="a DGN saved with DGN.save (data dimension 2: trained on the circle)")
    args = ap.parse_args(argv)
    net = DGN.load(args.model) if args.model is not None else None
    _, check = registry()["EM monotonicity"]
    result = check(net=net, quick=not args.thorough, seed=args.seed, max_iter=args.iters)
    print(result)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
