"""Check Prop. 1: the DGN is the continuous MPPCA / MFA mixture with p(t=r) = Phi_r(0, Sigma_z).

Usage: python proofs_checks/prop1_mppca.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

p(t=r) from closed-form interval probabilities (S = 1) or polygon quadrature (S = 2); the
components p(x|t=r) by quadrature over each region with W_r = A_w, v_r = b_w; the mixture
must equal the exact p(x).
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Prop. 1",
        __doc__.splitlines()[0],
        argv,
        thorough_help="more nets and points, finer rules",
        dps_help="digits of the exact computation")


if __name__ == "__main__":
    sys.exit(main())
