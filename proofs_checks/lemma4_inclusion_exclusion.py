"""Check Lemma 4 (inclusion-exclusion of a triangulation piece into orthants) as an exact identity.

Usage: python proofs_checks/lemma4_inclusion_exclusion.py [--thorough] [--seed N] [--model PATH.npz]

Without --model: a built-in suite of polyhedra (simple and non-simple vertices, unbounded
pieces, lines, redundant rows; S = 1..3, and S = 4 with --thorough); with --model: the pieces
of the regions of that net's exact partition. Points: random rational ones and points on the
pieces' boundaries (vertices, edge midpoints, facets).
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Lemma 4",
        __doc__.splitlines()[0],
        argv,
        thorough_help="larger suite, more points")


if __name__ == "__main__":
    sys.exit(main())
