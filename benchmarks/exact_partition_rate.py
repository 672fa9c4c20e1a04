"""Regions per second of the exact partition walk, against the naive exact per-region step.

Usage: python benchmarks/exact_partition_rate.py [--widths 2 32 32 2] [--seeds 0 1 2]
                                                 [--baseline-regions 100]

For each seed: ``verified_dgn.partition(DGN.random(widths, seed=s))`` (PyTorch default init)
is timed end to end. The baseline, measured in the same run on the first
``--baseline-regions`` regions of the same partition, is the naive exact per-region step:
all eq. 8 rows as Fractions (``region_inequalities(exact=True)``) and
``cdd.gmp.redundant_rows`` on them. It does not even cross facets, so the printed speed-up
is a lower bound against a naive walk.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cdd
import cdd.gmp

from dgn_core.regions import region_inequalities
from verified_dgn import DGN, partition


def naive_step(net: DGN, signs: tuple[int, ...]) -> set[int]:
    C, d = region_inequalities(net, signs, exact=True)
    rows = [[dd] + [-c for c in row] for row, dd in zip(C.tolist(), d.tolist())
            if any(c != 0 for c in row)]
    mat = cdd.gmp.matrix_from_array(rows, rep_type=cdd.RepType.INEQUALITY)
    return set(range(len(rows))) - set(cdd.gmp.redundant_rows(mat))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[2, 32, 32, 2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--baseline-regions", type=int, default=100)
    args = ap.parse_args(argv)
    print(f"widths {tuple(args.widths)}, relu, PyTorch default init")
    print(f"{'seed':>4} {'regions':>8} {'walk s':>8} {'regions/s':>10} "
          f"{'naive s/region':>15} {'speed-up':>9}")
    for s in args.seeds:
        net = DGN.random(tuple(args.widths), seed=s)
        t0 = time.perf_counter()
        P = partition(net)
        t_walk = time.perf_counter() - t0
        k = min(args.baseline_regions, len(P))
        t0 = time.perf_counter()
        for r in list(P)[:k]:
            naive_step(net, r.signs)
        t_naive = (time.perf_counter() - t0) / k
        rate = len(P) / t_walk
        print(f"{s:>4} {len(P):>8} {t_walk:>8.2f} {rate:>10.0f} {t_naive:>15.4f} "
              f"{t_naive * rate:>8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
