"""Throughput of fastpath.orthant against scipy, measured side by side in one run.

For k = 1..4: a batch of random problems (bounds uniform in [-40, 8], random correlation
matrices R = normalised A A^T with A standard normal) is evaluated by the batched kernel
(``log_mvn_cdf``, which validates and standardises, and the private kernel it calls), and a
sample of the same problems by ``scipy.stats.multivariate_normal.cdf`` one call at a time
(it does not batch covariances; for k >= 3 it is randomised QMC with ~1e-5 accuracy). For
k = 1 also ``scipy.special.log_ndtr``. Prints evaluations per second and the ratios.

    python benchmarks/orthant.py                 # k = 1..4, default batch sizes
    python benchmarks/orthant.py --k 2 --n 100000 --scipy-calls 300

Single core: BLAS threads are limited to 1 before numpy is imported. Timings on a shared
machine are noisy; compare ratios, which are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import time

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
from scipy import special, stats  # noqa: E402

from fastpath import orthant as fo  # noqa: E402

DEFAULT_N = {1: 100_000, 2: 100_000, 3: 20_000, 4: 1_000}
KERNELS = {1: lambda h, R: special.log_ndtr(h[:, 0]),
           2: lambda h, R: fo._log_bvn(h[:, 0], h[:, 1], R[:, 0, 1]),
           3: fo._log_tvn, 4: fo._log_qvn}


def problems(k: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    h = rng.uniform(-40.0, 8.0, (n, k))
    A = rng.normal(size=(n, k, k))
    C = A @ np.swapaxes(A, 1, 2)
    d = np.sqrt(np.einsum("nii->ni", C))
    return h, C / (d[:, :, None] * d[:, None, :])


def best_rate(fn, count: int, repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return count / best


def bench(k: int, args: argparse.Namespace) -> None:
    """Time the kernels of dimension k against scipy and print one row."""
    n = args.n or DEFAULT_N[k]
    h, R = problems(k, n, args.seed)
    kern = KERNELS[k]
    kern(h[:10], R[:10])  # warm up (node tables, imports)
    r_kern = best_rate(lambda: kern(h, R), n, args.repeat)
    r_pub = best_rate(lambda: fo.log_mvn_cdf(h, R), n, args.repeat)
    calls = args.scipy_calls or {1: 2000, 2: 300, 3: 30, 4: 15}[k]
    mvns = [stats.multivariate_normal(mean=np.zeros(k), cov=R[i]) for i in range(calls)]

    def run_scipy():
        for i in range(calls):
            mvns[i].cdf(h[i])

    r_sp = best_rate(run_scipy, calls, 1)
    note = ""
    if k == 1:
        r_ln = best_rate(lambda: special.log_ndtr(h[:, 0]), n, args.repeat)
        note = f"scipy.special.log_ndtr {r_ln:,.0f}/s, ratio {r_pub / r_ln:.3f}"
    if k == 2:
        q = np.abs(h[:, 0] - h[:, 1]) * np.abs(h[:, 0] + h[:, 1]) / 8
        note = f"{np.mean(q < fo._Q_FAST):.1%} on the small-q paths (q < {fo._Q_FAST})"
    print(f"{k:>2} {n:>8} {r_kern:>12,.0f} {r_pub:>15,.0f} {r_sp:>17,.0f} "
          f"{r_pub / r_sp:>8,.0f}x  {note}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="*", default=[1, 2, 3, 4])
    ap.add_argument("--n", type=int, default=None, help="batch size (default per k)")
    ap.add_argument("--scipy-calls", type=int, default=None,
                    help="scipy calls timed (default 2000/300/30/15 for k = 1..4)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(f"{'k':>2} {'batch':>8} {'kernel /s':>12} {'log_mvn_cdf /s':>15} "
          f"{'scipy mvn.cdf /s':>17} {'ratio':>9}  notes")
    for k in args.k:
        bench(k, args)


if __name__ == "__main__":
    main()
