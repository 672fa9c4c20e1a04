"""Check gaussian_moments against independent computations, with the digits verified.

Usage: python proofs_checks/gaussian_moments_digits.py [--thorough] [--seed N] [--model PATH.npz]

Without --model: one-dimensional truncated normals (closed forms, far tails included) and
the tiling identity (regions of a small net integrate N(0, I) to (1, 0, I)); with --model:
the tiling identity over that net's regions (S <= 2, or S <= 3 with --thorough).
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Moments",
        __doc__.splitlines()[0],
        argv,
        thorough_help="larger suite, more points")


if __name__ == "__main__":
    sys.exit(main())
