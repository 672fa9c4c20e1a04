"""Regions per second of the fast (float64) and exact (rational) partitions, side by side.

    python benchmarks/partition.py                 # 3 nets x seeds 0 1 2
    python benchmarks/partition.py --quick         # [2,32,32,2], seed 0 only
    python benchmarks/partition.py --seeds 0 5 --repeat 9 --nets 2,32,32,2 3,16,16,3

Nets are ``DGN.random(widths, seed=s)`` (relu, PyTorch default init). For every net both
paths run in this process, one after the other: the fast path ``--repeat`` times after one
warm-up call (median and best time reported), the exact path ``--exact-repeat`` times
(default once: it takes seconds). Both must find the same set of sign patterns, else the
script stops. The ratio is fast regions/s over exact regions/s (median times).

Targets on [2,32,32,2]: fast >= 10,000 regions/s, exact >= 150 regions/s. Timings on a
shared machine are noisy: the median over repeats is the number to quote.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import fastpath  # noqa: E402
import verified_dgn  # noqa: E402
from verified_dgn import DGN  # noqa: E402

DEFAULT_NETS = ["2,32,32,2", "2,32,32,32,2", "3,16,16,3"]
TARGETS = {(2, 32, 32, 2): (10_000.0, 150.0)}


def _widths(text: str) -> tuple[int, ...]:
    try:
        w = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"widths must look like 2,32,32,2, got {text!r}") from None
    if len(w) < 2 or min(w) < 1:
        raise argparse.ArgumentTypeError(f"widths must be >= 2 positive integers, got {text!r}")
    return w


def _times(fn, repeat: int) -> tuple[list[float], list[float], object]:
    """Wall-clock and process CPU seconds of ``repeat`` calls, and the last result."""
    out, wall, cpu = None, [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", nargs="+", type=_widths, default=None,
                    help=f"widths of the nets (default: {' '.join(DEFAULT_NETS)})")
    ap.add_argument("--seeds", nargs="+", type=int, default=None,
                    help="seeds of DGN.random (default: 0 1 2)")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs of the fast path")
    ap.add_argument("--exact-repeat", type=int, default=1, help="timed runs of the exact path")
    ap.add_argument("--activation", default="relu", choices=["relu", "leaky_relu", "abs"])
    ap.add_argument("--quick", action="store_true",
                    help="only [2,32,32,2] with seed 0 (about 10 s)")
    args = ap.parse_args(argv)
    if args.repeat < 1 or args.exact_repeat < 1:
        ap.error("--repeat and --exact-repeat must be >= 1")
    nets = args.nets or [_widths(t) for t in DEFAULT_NETS]
    seeds = args.seeds if args.seeds is not None else [0, 1, 2]
    if args.quick:
        nets, seeds = [(2, 32, 32, 2)], [0]

    print(f"# fastpath.partition vs verified_dgn.partition, {args.activation}, torch init")
    print(f"# python {platform.python_version()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.machine()}")
    print(f"# fast: median (best) wall-clock of {args.repeat} runs after a warm-up, and by "
          f"median CPU time; exact: median of {args.exact_repeat}; ratio of wall-clock rates")
    head = (f"{'net':<16} {'seed':>4} {'regions':>8} {'fast s':>8} {'fast reg/s':>18} "
            f"{'(cpu)':>8} {'exact s':>8} {'exact reg/s':>11} {'ratio':>7}")
    print(head)
    print("-" * len(head))
    rows = []
    for widths in nets:
        for seed in seeds:
            net = DGN.random(widths, activation=args.activation, seed=seed)
            fastpath.partition(net)  # warm-up: imports, caches
            tf, cf, Pf = _times(lambda net=net: fastpath.partition(net), args.repeat)
            te, _, Pe = _times(lambda net=net: verified_dgn.partition(net), args.exact_repeat)
            if {r.signs for r in Pf} != {r.signs for r in Pe}:
                print(f"ERROR: the paths disagree on {widths} seed {seed}: "
                      f"{len(Pf)} vs {len(Pe)} regions", file=sys.stderr)
                return 1
            n = len(Pf)
            mf, bf, me = statistics.median(tf), min(tf), statistics.median(te)
            rows.append((widths, seed, n, n / mf, n / me))
            mc = statistics.median(cf)
            print(f"{str(list(widths)).replace(' ', ''):<16} {seed:>4} {n:>8} {mf:>8.3f} "
                  f"{n / mf:>9,.0f} ({n / bf:>6,.0f}) {n / mc:>8,.0f} {me:>8.2f} "
                  f"{n / me:>11,.0f} {(n / mf) / (n / me):>7.0f}", flush=True)
    for widths, (tfast, texact) in TARGETS.items():
        sel = [r for r in rows if r[0] == widths]
        if not sel:
            continue
        f = min(r[3] for r in sel)
        e = min(r[4] for r in sel)
        print(f"# {list(widths)}: slowest seed fast {f:,.0f} regions/s (target {tfast:,.0f}: "
              f"{'met' if f >= tfast else 'NOT met'}), exact {e:,.0f} regions/s (target "
              f"{texact:,.0f}: {'met' if e >= texact else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
