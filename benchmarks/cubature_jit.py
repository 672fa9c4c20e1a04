"""The compiled simplex cubature (fastpath._jit_cubature) vs its numpy implementation.

    OPENBLAS_NUM_THREADS=1 python benchmarks/cubature_jit.py            # s2d2 and s3d3
    OPENBLAS_NUM_THREADS=1 python benchmarks/cubature_jit.py --cases s2d2 --points 400

Inputs: the (simplices, owners) batches that the E-step itself passes to
``fastpath._simplex_cubature.simplex_moments``, captured by wrapping that function while
the E-step of a benchmarks/estep.py case runs (same nets, points and seeds). Each batch is
then timed through ``simplex_moments`` with ``compiled=False`` (numpy, the baseline) and
``compiled=True`` at 1 and 2 numba threads: nodes per second (the rule nodes after
subdivision) and time per polytope, min / median of 3 runs, with the load average. The
agreement of the two (max |log m0| difference) is printed as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba
import numpy as np
from estep import CASES, fast_estep

import fastpath
from fastpath import _simplex_cubature as sc
from verified_dgn import DGN


def capture(name: str, n_points: int | None, seed: int) -> list[tuple]:
    """The simplex_moments calls of one pruned E-step of case ``name``."""
    widths, nv, n_full, *_ = CASES[name]
    net = DGN.random(widths, activation="relu", seed=seed, noise_var=nv)
    P = fastpath.partition(net)
    X, _ = net.sample(n_points or n_full, seed=seed + 1)
    calls: list[tuple] = []
    orig = sc.simplex_moments

    def wrapped(Xs, owner, n_owner, moments=True, max_simplices=sc._MAX_SIMPLICES,
                compiled=True):
        calls.append((Xs.copy(), owner.copy(), n_owner, moments, max_simplices))
        return orig(Xs, owner, n_owner, moments, max_simplices, compiled)

    sc.simplex_moments = wrapped  # type: ignore[assignment]
    try:
        fast_estep(net, P, X, True)
    finally:
        sc.simplex_moments = orig  # type: ignore[assignment]
    return calls


def count_nodes(calls: list[tuple]) -> int:
    """Rule nodes evaluated (after subdivision) over all batches."""
    total = 0
    for X, owner, n_owner, _, cap in calls:
        Xs, _, spread, _ = sc._subdivide(X, owner, n_owner, cap)
        bounds, _, _, q_start = sc._rule_table(X.shape[-1])
        rule = np.minimum(np.searchsorted(bounds, spread), bounds.size - 1)
        total += int(np.diff(q_start)[rule].sum())
    return total


def timed(calls: list[tuple], compiled: bool) -> list[float]:
    out = []
    for _ in range(3):
        t0 = time.perf_counter()
        for X, owner, n_owner, moments, cap in calls:
            sc.simplex_moments(X, owner, n_owner, moments, cap, compiled=compiled)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=["s2d2", "s3d3"],
                    choices=[c for c in CASES if CASES[c][0][0] >= 2])
    ap.add_argument("--points", type=int, default=None, help="data points (default: estep's)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(f"numba {numba.__version__}, threading layer {numba.config.THREADING_LAYER}, "
          f"max threads {numba.config.NUMBA_NUM_THREADS}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    for name in a.cases:
        calls = capture(name, a.points, a.seed)
        n_owner = sum(c[2] for c in calls)
        nodes = count_nodes(calls)
        worst = 0.0
        for X, owner, n, moments, cap in calls:   # also compiles the kernels before timing
            u = sc.simplex_moments(X, owner, n, moments, cap, compiled=False)[0]
            v = sc.simplex_moments(X, owner, n, moments, cap, compiled=True)[0]
            f = np.isfinite(u)
            worst = max(worst, float(np.max(np.abs(u[f] - v[f]), initial=0.0)))
        print(f"\n{name}: {len(calls)} batches, {n_owner:,} polytopes, "
              f"{sum(c[0].shape[0] for c in calls):,} simplices in, {nodes:,} nodes; "
              f"max |log m0 compiled - numpy| {worst:.1e}")
        base = None
        before = numba.get_num_threads()
        rows = [("numpy", False, before), ("compiled, 1 thread", True, 1)]
        if numba.config.NUMBA_NUM_THREADS >= 2:
            rows.append(("compiled, 2 threads", True, 2))
        try:
            for label, compiled, nt in rows:
                numba.set_num_threads(nt)
                ts = timed(calls, compiled)
                tmin, tmed = min(ts), float(np.median(ts))
                base = base or tmin
                print(f"  {label:22s} {tmin:8.4f} / {tmed:8.4f} s (min / median)  "
                      f"{nodes / tmin / 1e6:7.1f} M nodes/s  "
                      f"{tmin / n_owner * 1e6:8.2f} us/polytope  "
                      f"x{base / tmin:5.2f} vs numpy  load {os.getloadavg()[0]:.2f}")
        finally:
            numba.set_num_threads(before)


if __name__ == "__main__":
    main()
