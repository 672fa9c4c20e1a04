"""Check the orthant probabilities against their closed forms at the origin.

Usage: python proofs_checks/orthant_closed_forms.py [--thorough] [--seed N] [--model PATH.npz]

Phi_2(0,0;rho) = 1/4 + asin(rho)/(2pi), Phi_3(0;R) = 1/8 + (asin r12 + asin r13 + asin r23)/(4pi)
(and 1/(k+1) for the exchangeable correlation 1/2 with --thorough); digits measured and
confirmed by recomputing at dps + 15. --model is accepted for uniformity and ignored.
Prints what was measured and exits with status 1 if the check fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_tools.checks import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main(
        "Orthant closed forms",
        __doc__.splitlines()[0],
        argv,
        thorough_help="larger suite, more points")


if __name__ == "__main__":
    sys.exit(main())
