"""Check the promise of fastpath.fit_em: the exact log-likelihood never decreases.

Usage: python proofs_checks/em_monotone.py [--thorough] [--seed N] [--iters K] [--model PATH.npz]

Runs EM on a suite of architectures (S = 1 on the noisy circle; --thorough adds width 32,
diagonal noise, S = 2 and weight priors) and measures the largest decrease of the exact
objective log p(X) + log p(W) between iterations; the tolerance is the rounding of the exact
log-likelihood (fastpath.em.ECM_RTOL * (|objective| + N)).
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "EM monotonicity",
        __doc__.splitlines()[0],
        argv,
        thorough_help="more architectures and iterations",
        model_help="a DGN saved with DGN.save (data dimension 2: trained on the circle)",
        extra=(("--iters", "max_iter", int, "EM iterations per run"),))


if __name__ == "__main__":
    sys.exit(main())
