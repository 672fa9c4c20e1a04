"""The compiled k = 2 orthant kernel (fastpath._jit_bvn) vs the numpy kernel it replaces.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bvn_jit.py
    OPENBLAS_NUM_THREADS=1 python benchmarks/bvn_jit.py --points 400 --random 200000

Inputs: (a) random elements over all magnitudes (h, k in +-40, correlations near 0 and
+-1, q down to 1e-12); (b) the (h, k, rho) that the S = 2 E-step of benchmarks/estep.py
(case s2d2, same net, points and seed) passes to ``_log_bvn``, captured by wrapping it in
the modules that call it (with the numpy cone sums, whose kernel calls are the same as the
compiled cone sums'). Each set is timed through ``fastpath._bvn._log_bvn_numpy`` (the
baseline) and the compiled ``log_bvn_vec`` at 1 thread and at all of numba's threads:
elements per second, min / median of 3 runs, ratio to numpy, the load average. The max
difference in log P of the two (relative to max(1, |log P|)) is printed as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numba
import numpy as np
from estep import CASES, fast_estep
from orthant_inputs import random_bvn

import fastpath
from fastpath import _bvn, _cone_algebra, _cones, _tvn
from fastpath._jit_bvn import log_bvn_vec
from verified_dgn import DGN

#: numba's configuration (its attributes are set at import, unknown to mypy)
CFG: Any = numba.config


def capture(name: str, n_points: int | None, seed: int) -> tuple[np.ndarray, ...]:
    """Every (h, k, rho) that one pruned E-step of case ``name`` passes to ``_log_bvn``."""
    widths, nv, n_full, *_ = CASES[name]
    net = DGN.random(widths, activation="relu", seed=seed, noise_var=nv)
    P = fastpath.partition(net)
    X, _ = net.sample(n_points or n_full, seed=seed + 1)
    got: list[tuple[np.ndarray, ...]] = []

    def spy(h, k, rho):
        b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (h, k, rho)))
        got.append(tuple(np.ascontiguousarray(v).ravel().copy() for v in b))
        return _bvn._log_bvn(h, k, rho)

    saved = _cone_algebra._log_bvn, _tvn._log_bvn
    _cone_algebra._log_bvn = _tvn._log_bvn = spy
    # the compiled S = 2 cone sums call the kernel from compiled code: the numpy cone sums
    # (same inputs to the kernel) are run for the capture
    flag = getattr(_cones, "COMPILED", [False])
    was = flag[0]
    flag[0] = False
    try:
        fast_estep(net, P, X, True)
    finally:
        _cone_algebra._log_bvn, _tvn._log_bvn = saved
        flag[0] = was
    return tuple(np.concatenate([g[i] for g in got]) for i in range(3))


def timed(fn, *args) -> list[float]:
    out = []
    for _ in range(3):
        t0 = time.perf_counter()
        fn(*args)
        out.append(time.perf_counter() - t0)
    return out


def report(label: str, h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> None:
    ref = _bvn._log_bvn_numpy(h, k, rho)
    got = log_bvn_vec(h, k, rho)
    f = np.isfinite(ref)
    err = np.abs(got[f] - ref[f]) / np.maximum(1.0, np.abs(ref[f]))
    print(f"\n{label}: {h.size:,} elements; max |log P compiled - numpy| / max(1, |log P|) "
          f"{err.max(initial=0.0):.1e}; same non-finite: "
          f"{np.array_equal(np.isfinite(got), f)}")
    before = numba.get_num_threads()
    rows = [("numpy", None), ("compiled, 1 thread", 1)]
    if CFG.NUMBA_NUM_THREADS > 1:
        rows.append((f"compiled, {CFG.NUMBA_NUM_THREADS} threads",
                     CFG.NUMBA_NUM_THREADS))
    base = None
    try:
        for name, nt in rows:
            if nt is None:
                ts = timed(_bvn._log_bvn_numpy, h, k, rho)
            else:
                numba.set_num_threads(nt)
                ts = timed(log_bvn_vec, h, k, rho)
            tmin, tmed = min(ts), float(np.median(ts))
            base = base or tmin
            print(f"  {name:22s} {tmin:8.4f} / {tmed:8.4f} s (min / median)  "
                  f"{h.size / tmin / 1e6:7.2f} M elements/s  x{base / tmin:5.2f} vs numpy  "
                  f"load {os.getloadavg()[0]:.2f}")
    finally:
        numba.set_num_threads(before)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random", type=int, default=200000, help="random elements")
    ap.add_argument("--points", type=int, default=None, help="E-step points (default: estep's)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(f"numba {numba.__version__}, threading layer {CFG.THREADING_LAYER}, "
          f"max threads {CFG.NUMBA_NUM_THREADS}, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    log_bvn_vec(*random_bvn(100, 1))  # compile / load before timing
    report("random", *random_bvn(a.random, a.seed))
    report("S = 2 E-step (s2d2)", *capture("s2d2", a.points, a.seed))


if __name__ == "__main__":
    main()
