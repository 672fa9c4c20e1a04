"""Check Prop. 2: the posterior is the mixture of truncated Gaussians kappa_w N(z; mu_w, Sigma_w) 1_w / p(x).

Usage: python proofs_checks/prop2_truncated_mixture.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

At random latent points and region vertices the mixture formula is compared with Bayes'
rule p(x|z) p(z) / p(x), g evaluated by an mpmath forward pass. Any latent dimension
S <= 4 with --model.
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Prop. 2",
        __doc__.splitlines()[0],
        argv,
        thorough_help="more nets and points, finer rules",
        dps_help="digits of the exact computation")


if __name__ == "__main__":
    sys.exit(main())
