"""Check eq. 2 (per-region affine maps equal the network, exactly).

Usage: python proofs_checks/affine_maps_exact.py [--thorough] [--seed N] [--model PATH.npz]

Without --model the check runs on its built-in suite of nets (degenerate ones included);
--thorough uses a larger suite and more sample points. Prints what was measured and exits
with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Affine maps",
        __doc__.splitlines()[0],
        argv,
        thorough_help="larger suite, more samples")


if __name__ == "__main__":
    sys.exit(main())
