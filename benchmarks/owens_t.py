"""Owen's T: the compiled kernel (fastpath/_jit_owens.py, one thread) against
scipy.special.owens_t, on the points the bivariate kernel's Owen's T form meets.

    OPENBLAS_NUM_THREADS=1 python benchmarks/owens_t.py      # ~10 s

1e5 random points with |h| < 3.3 (uniform) and a of every magnitude (log-uniform in
[1e-3, 1e3], both signs). Printed: calls per second of each (min and median of 3 runs of
the whole array), the ratio compiled/scipy (of the medians), the largest difference of
the two relative to T(h, inf) = Phi(-|h|)/2, and the load average beside the timings.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy import special as sc

from fastpath._threads import threads


def _rates(fn, *args, repeat: int = 3) -> tuple[float, float]:
    """(min, median) seconds of fn(*args) over ``repeat`` runs."""
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        ts.append(time.perf_counter() - t0)
    return min(ts), float(np.median(ts))


def main() -> None:
    from fastpath._jit_owens import owens_t_vec

    rng = np.random.default_rng(0)
    n = 100_000
    h = rng.uniform(-3.3, 3.3, n)
    a = 10.0 ** rng.uniform(-3, 3, n) * rng.choice([-1.0, 1.0], n)
    with threads(1):
        owens_t_vec(h[:10], a[:10])  # compile or load the cache outside the timing
        got = owens_t_vec(h, a)
        ref = sc.owens_t(h, a)
        diff = np.max(np.abs(got - ref) / (0.5 * sc.ndtr(-np.abs(h))))
        load = os.getloadavg()
        jit_min, jit_med = _rates(owens_t_vec, h, a)
        sp_min, sp_med = _rates(sc.owens_t, h, a)
        load_after = os.getloadavg()
    print(f"Owen's T, {n} points, |h| < 3.3, |a| in [1e-3, 1e3]")
    print(f"  compiled (1 thread) : {n / jit_min:12.3e} calls/s (min)  {n / jit_med:12.3e} (median)")
    print(f"  scipy.special       : {n / sp_min:12.3e} calls/s (min)  {n / sp_med:12.3e} (median)")
    print(f"  ratio compiled/scipy (median): {sp_med / jit_med:.2f}x")
    print(f"  max |compiled - scipy| / T(h, inf): {diff:.2e}")
    print(f"  load average before/after: {load[0]:.2f} / {load_after[0]:.2f}")


if __name__ == "__main__":
    main()
