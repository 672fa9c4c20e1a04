"""Check Prop. 3: GLO's latent argmin ||x - g(z)||^2 is the flat-prior MAP of the zero-noise posterior.

Usage: python proofs_checks/prop3_glo.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

S = 1: GLO's latent exactly from the affine pieces of g; the MAP of the exact posterior with
prior N(0, s^2), s^2 -> infinity, by an exact QP per region; measured rate in 1/s^2.
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Prop. 3",
        __doc__.splitlines()[0],
        argv,
        thorough_help="more nets and points, finer rules",
        dps_help="digits of the exact computation")


if __name__ == "__main__":
    sys.exit(main())
