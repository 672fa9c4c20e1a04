"""Check Lemma 2: as the noise variance -> 0 the posterior concentrates at z*(x) = argmin ||x - g(z)||^2.

Usage: python proofs_checks/lemma2_zero_noise.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

S = 1: z*(x) exactly from the affine pieces of g; posterior mean error and variance along
sigma^2 -> 0 with their measured log-log rates (expected 1) and leading coefficients.
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Lemma 2",
        __doc__.splitlines()[0],
        argv,
        thorough_help="more nets and points, finer rules",
        dps_help="digits of the exact computation")


if __name__ == "__main__":
    sys.exit(main())
