"""Certified log p(x) (verified_dgn.certified, arb) against the mpmath exact path.

Usage: OPENBLAS_NUM_THREADS=1 python benchmarks/certified.py [--points 2] [--repeat 3]
       [--baseline-repeat 1] [--s3-baseline] [--digits 30]

For each net (``DGN.random(widths, activation="relu", seed=0, noise_var=0.05)``: (2,4,4,2),
(2,8,8,2), (3,4,3)) and the same points it times, per point:

* the certified path: ``verified_dgn.certified.log_marginal(net, X, digits=30)``;
* the baseline, in the same run: ``verified_dgn.log_marginal(net, X, dps=30)`` (mpmath).

Both share the exact partition and the cached triangulation (a warm-up call on another
point fills it, untimed); the certified path's orthant cache is cleared before every timed
run, so repeats cost what a new point costs. The (3,4,3) baseline takes more than 20 minutes
per point (issue 16), so it is measured only with ``--s3-baseline``; without it no ratio is
printed for that net. Prints min / median seconds per point, the ratio of the medians, the
certified digits reached and os.getloadavg() beside each line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from flint import arb, ctx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import verified_dgn  # noqa: E402
from verified_dgn import DGN  # noqa: E402
from verified_dgn.certified import certified_decimal, log_marginal  # noqa: E402
from verified_dgn.certified.orthant import orthant_ball  # noqa: E402

NETS = [(2, 4, 4, 2), (2, 8, 8, 2), (3, 4, 3)]


def per_point(fn, n: int, repeat: int, before=None) -> list[float]:
    out = []
    for _ in range(repeat):
        if before is not None:
            before()
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) / n)
    return out


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--baseline-repeat", type=int, default=1)
    ap.add_argument("--digits", type=int, default=30)
    ap.add_argument("--s3-baseline", action="store_true")
    ap.add_argument("--nets", default="all", help="comma-separated indices into (2,4,4,2),(2,8,8,2),(3,4,3)")
    a = ap.parse_args()
    nets = NETS if a.nets == "all" else [NETS[int(i)] for i in a.nets.split(",")]
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, digits={a.digits}, "
          f"{a.points} points, certified repeat {a.repeat}, baseline repeat {a.baseline_repeat}")
    for widths in nets:
        run_net(widths, a)


def _mpf_ball(v: object) -> arb:
    """An mpmath mpf as an exact arb (mantissa and exponent)."""
    sign, man, exp, _ = v._mpf_  # type: ignore[attr-defined]
    with ctx.workprec(max(64, int(man).bit_length() + 8)):
        return arb(-int(man) if sign else int(man)) * arb(2) ** int(exp)


def run_net(widths: tuple[int, ...], a: argparse.Namespace) -> None:
    net = DGN.random(widths, activation="relu", seed=0, noise_var=0.05)
    part = verified_dgn.partition(net)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(a.points, widths[-1]))
    warm = rng.normal(size=(1, widths[-1]))
    log_marginal(net, warm, digits=a.digits, partition=part)  # geometry caches
    res: list = []

    def cert() -> None:
        res[:] = log_marginal(net, X, digits=a.digits, partition=part)

    tc = per_point(cert, a.points, a.repeat, before=orthant_ball.cache_clear)
    digs = min(certified_decimal(v, absolute=True)[1] for v in res)
    print(f"{widths} ({len(part)} regions) certified: min {min(tc):.2f} s, median "
          f"{statistics.median(tc):.2f} s per point; certified digits {digs}  [{load()}]",
          flush=True)
    if widths[0] == 3 and not a.s3_baseline:
        print(f"{widths} baseline not measured (issue 16: > 20 min per point; --s3-baseline)")
        return
    base: list = []

    def mp() -> None:
        base[:] = list(verified_dgn.log_marginal(net, X, dps=a.digits, partition=part))

    tb = per_point(mp, a.points, a.baseline_repeat)
    # mpmath's values (claimed to 10**-digits) must lie within that of the certified balls
    with ctx.workprec(4 * a.digits + 64):
        tol = arb(10) ** (-a.digits)
        agree = all((r + arb(0, tol)).contains(_mpf_ball(b)) for r, b in zip(res, base))
    print(f"{widths} mpmath dps={a.digits}: min {min(tb):.2f} s, median "
          f"{statistics.median(tb):.2f} s per point  [{load()}]")
    print(f"{widths} ratio (mpmath / certified, medians): "
          f"{statistics.median(tb) / statistics.median(tc):.1f}x  (mpmath within 1e-{a.digits} "
          f"of the certified balls: {agree})", flush=True)


if __name__ == "__main__":
    main()
