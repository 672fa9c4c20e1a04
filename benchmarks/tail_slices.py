"""The tail slices of far pairs: the compiled kernels against the numpy ones, in one run.

    python benchmarks/tail_slices.py                 # S = 2 and 3, bounded and unbounded
    python benchmarks/tail_slices.py --pairs 40 --reps 3

Pairs whose mean is at least 8 whitened units from a polyhedron have their moments replaced
by slices about the nearest point (fastpath/_cone_tail.py; the cubature first for bounded
polytopes within its budget). Here: random polyhedra (5-9 half-spaces; the unbounded ones
open toward -e_1) and one Gaussian each, means 8-60 whitened units out. Timed per pair, one
kernel thread and one BLAS thread: ``fastpath._jit_tail.tail_pairs`` (compiled) and
``fastpath._cone_tail.tail_moments`` (numpy), min and median of ``--reps`` passes over the
same pairs; printed with the ratio numpy / compiled and the largest differences between the
two (mean relative to sqrt(trace Cov), covariance relative to itself).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from fastpath import _cone_tail, _cones  # noqa: E402
from fastpath._polyhedron import polyhedron_geometry  # noqa: E402
from fastpath._threads import threads  # noqa: E402


def _table(rng: np.random.Generator, s: int, n: int, bounded: bool) -> _cones.ConeTable:
    geoms = []
    while len(geoms) < n:
        m = int(rng.integers(s + 3, s + 8)) if bounded else int(rng.integers(s + 1, s + 6))
        C = rng.normal(size=(m, s))
        if not bounded:
            C[:, 0] = np.abs(C[:, 0]) + 0.3
        C /= np.linalg.norm(C, axis=1, keepdims=True)
        centre = rng.normal(size=s)
        g = polyhedron_geometry(C, C @ centre + rng.uniform(0.1, 1.0, m))
        if g.empty or g.dim != s or (len(g.rays) > 0) == bounded:
            continue
        geoms.append(g)
    return _cones.ConeTable.from_geometries(geoms)


def _cov_err(ref: np.ndarray, got: np.ndarray) -> float:
    w, V = np.linalg.eigh(ref)
    Wm = V / np.sqrt(w)
    return float(np.max(np.abs(np.linalg.eigvalsh(Wm.T @ (got - ref) @ Wm))))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=24, help="polyhedra per kind at S = 2 (S = 3: a third)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from fastpath import _jit_tail

    rng = np.random.default_rng(args.seed)
    print(f"load {os.getloadavg()[0]:.2f}; one kernel thread, one BLAS thread", flush=True)
    for s in (2, 3):
        for bounded in (False, True):
            n = args.pairs if s == 2 else max(2, args.pairs // 3)
            table = _table(rng, s, n, bounded)
            F = 0.5 * rng.normal(size=(1, n, s, s))
            chol = np.linalg.cholesky(F @ np.swapaxes(F, -1, -2) + 0.2 * np.eye(s))
            mean = rng.normal(size=(1, n, s)) * rng.choice([15.0, 30.0, 60.0], size=(1, n, 1))
            xstar, inside = table._nearest_point(mean, chol)
            d = np.linalg.norm(xstar[0], axis=-1)
            j = np.flatnonzero(~inside[0] & (d >= _cone_tail.TAIL_DISTANCE))
            if j.size == 0:
                continue
            mu, ch, xs = mean[0, j], chol[0, j], xstar[0, j]
            arrs = table._table_arrays()[6:12]
            t_jit, t_np = [], []
            with threads(1):
                _jit_tail.tail_pairs(j, mu, ch, xs, *arrs)  # loads the kernels
                for _ in range(args.reps):
                    t = time.perf_counter()
                    lm, dm, tc, _, ok = _jit_tail.tail_pairs(j, mu, ch, xs, *arrs)
                    t_jit.append((time.perf_counter() - t) / j.size)
                    refs = []
                    t = time.perf_counter()
                    for q, jj in enumerate(j.tolist()):
                        fv = table.f_valid[jj]
                        refs.append(_cone_tail.tail_moments(
                            table.f_C[jj][fv], table.f_d[jj][fv], table.e_start[jj],
                            table.e_dir[jj], table.e_len[jj], mu[q], ch[q], xs[q]))
                    t_np.append((time.perf_counter() - t) / j.size)
            e_mean = max(np.linalg.norm(dm[q] - r[1]) / math.sqrt(np.trace(r[2]))
                         for q, r in enumerate(refs))
            e_cov = max(_cov_err(r[2], tc[q]) for q, r in enumerate(refs))
            kind = "bounded" if bounded else "unbounded"
            print(f"S = {s} {kind:9s} {j.size:3d} pairs, d {d[j].min():5.1f}-{d[j].max():5.1f}: "
                  f"compiled {min(t_jit) * 1e3:8.2f} ms (median {statistics.median(t_jit) * 1e3:.2f}), "
                  f"numpy {min(t_np) * 1e3:8.2f} ms (median {statistics.median(t_np) * 1e3:.2f}) "
                  f"per pair: RATIO {min(t_np) / min(t_jit):5.1f} x; declined {int((~ok).sum())}; "
                  f"max diff mean {e_mean:.1e}, cov {e_cov:.1e}", flush=True)
    print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
