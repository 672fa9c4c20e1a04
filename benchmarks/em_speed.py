"""Seconds per EM iteration, this tree against a baseline commit, side by side in one run.

    python benchmarks/em_speed.py                      # circle8, circle32, s2 vs 533a59e
    python benchmarks/em_speed.py --cases s2 --iters 3 --reps 3 --baseline 533a59e

The cases are those of benchmarks/em.py (leaky-ReLU 0.1, seed 0): circle8 (1, 8, 8, 2) and
circle32 (1, 32, 32, 2) on the noisy circle, N = 1000 (S = 1), and s2 (2, 16, 16, 3) on the
3-D surface, N = 300 (S = 2). Each measurement is a fresh process running ``fit_em`` for
``--iters`` iterations (tol 0) after one untimed iteration (which loads or compiles the
kernels), single-threaded BLAS (fit_em's default) and ``--jobs`` kernel threads (default 1);
the baseline runs from a git worktree of ``--baseline`` made under the system's temporary
folder. Runs alternate between the two trees; min and median over ``--reps`` are printed
with the ratio baseline / this tree and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys, time, warnings
sys.path.insert(0, {bench!r})
import numpy as np
import em as B
from fastpath.em import fit_em
from dgn_core.exceptions import ConvergenceWarning
widths, X = B.CASES[{case!r}](False)
net = B.DGN.random(widths, activation="leaky_relu", slope=0.1, seed=0,
                   noise_var=0.05 * float(np.mean(np.var(X, axis=0))))
kw = dict(n_jobs={jobs}) if "n_jobs" in fit_em.__code__.co_varnames else {{}}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    fit_em(net, X, max_iter=1, tol=0.0, **kw)
    t = time.perf_counter()
    res = fit_em(net, X, max_iter={iters}, tol=0.0, **kw)
    dt = time.perf_counter() - t
print(json.dumps(dict(s_per_iter=dt / {iters}, ll=float(res.log_likelihood[-1]) / X.shape[0])))
"""


def _tree(rev: str) -> Path:
    path = Path(tempfile.gettempdir()) / f"dgn-baseline-{rev}"
    if not (path / "fastpath").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), rev],
                       check=True, capture_output=True)
    return path


def _measure(tree: Path, case: str, iters: int, jobs: int) -> dict[str, float]:
    code = _CHILD.format(bench=str(tree / "benchmarks"), case=case, iters=iters, jobs=jobs)
    env = dict(os.environ, PYTHONPATH=str(tree), OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=env, cwd=str(tree))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="circle8,circle32,s2")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations (10; s2: 3)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1, help="kernel threads of this tree (1)")
    ap.add_argument("--baseline", default="533a59e", help="git revision of the baseline")
    args = ap.parse_args(argv)
    base = _tree(args.baseline)
    print(f"baseline {args.baseline} at {base}; this tree {ROOT}; jobs {args.jobs}; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    for case in args.cases.split(","):
        iters = args.iters or (3 if case == "s2" else 10)
        t_new: list[float] = []
        t_old: list[float] = []
        for _ in range(args.reps):
            old = _measure(base, case, iters, 1)
            new = _measure(ROOT, case, iters, args.jobs)
            t_old.append(old["s_per_iter"])
            t_new.append(new["s_per_iter"])
        print(f"{case:9s} s/iteration: this tree min {min(t_new):.3f} median "
              f"{statistics.median(t_new):.3f}; baseline min {min(t_old):.3f} median "
              f"{statistics.median(t_old):.3f}; ratio (baseline / this, min) "
              f"{min(t_old) / min(t_new):.2f}x; log p(X)/N after {iters + 1} iterations: "
              f"{new['ll']:.6f} (baseline {old['ll']:.6f}); load {os.getloadavg()[0]:.2f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
