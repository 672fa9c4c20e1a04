"""Check that the exact posterior is normalised and has the quadrature's mean and covariance.

Usage: python proofs_checks/posterior_normalisation.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

Measured: sum_w e0_w = 1, the Prop. 2 density integrated by quadrature (S = 1), and the
posterior mean and covariance against quadrature moments of p(x|z) p(z) (S = 1 mpmath,
S = 2 float64).
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Posterior normalisation",
        __doc__.splitlines()[0],
        argv,
        thorough_help="more nets and points, finer rules",
        dps_help="digits of the exact computation")


if __name__ == "__main__":
    sys.exit(main())
