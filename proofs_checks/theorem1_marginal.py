"""Check Theorem 1: the exact log p(x) against independent quadrature of p(x|z) p(z), and int p(x) dx = 1.

Usage: python proofs_checks/theorem1_marginal.py [--thorough] [--seed N] [--dps D] [--model PATH.npz]

Without --model: built-in nets with S = 1 and 2 (relu; abs, leaky-relu, diagonal noise and a
non-identity prior with --thorough); with --model: that net (S = 1 or 2). Points: samples, an
off-manifold and a far point (seeded). S = 1 reference: mpmath quadrature between exact kinks;
S = 2: nested float64 Gauss-Legendre; D = 2, S = 1: int p(x) dx = 1 by Gauss-Hermite rules.
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Theorem 1",
        __doc__.splitlines()[0],
        argv,
        thorough_help="more nets and points, finer rules",
        dps_help="digits of the exact computation")


if __name__ == "__main__":
    sys.exit(main())
