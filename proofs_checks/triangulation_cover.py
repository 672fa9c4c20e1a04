"""Check that the exact triangulation covers P with pairwise disjoint interiors.

Usage: python proofs_checks/triangulation_cover.py [--thorough] [--seed N] [--model PATH.npz]

Bounded polytopes: the exact volumes of the pieces add up to the volume of the barycentric
subdivision (an independent triangulation). All polyhedra: exact membership of random
rational points (each point of P in exactly one piece interior, points outside in none).
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Triangulation",
        __doc__.splitlines()[0],
        argv,
        thorough_help="larger suite, more points")


if __name__ == "__main__":
    sys.exit(main())
