"""Check that the closed-form M-step maximises the Q function (DESIGN.md 2.5, paper App. G).

Usage: python proofs_checks/mstep_maximises_q.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

The E-step is the exact posterior (verified_dgn, mpmath); the closed forms (last layer and
noise, every inner layer with frozen activations, Sigma_z) come from verified_dgn.em_step;
Q is written point by point and region by region from the posterior moments and maximised
by brute force (scipy.optimize BFGS). The closed form must be at least as good as the brute
force optimum and agree with it.
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "M-step",
        __doc__.splitlines()[0],
        argv,
        thorough_help="three nets, 15 points each",
        dps_help="digits of the exact posterior",
        model_help="a DGN saved with DGN.save (S = 1, 2)")


if __name__ == "__main__":
    sys.exit(main())
