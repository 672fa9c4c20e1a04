"""What the compiled kernels cost a process: cold compilation, warm start, first call.

    python benchmarks/jit_startup.py

1. Cold: ``dgn warmup`` in a fresh process with an empty numba cache (NUMBA_CACHE_DIR set
   to a new temporary folder): every kernel compiled, once per installation. Wall time,
   and the CPU time of the process and its compiling workers together (on a shared
   machine the steadier figure: wall ~ CPU / 2 on two idle cores).
2. Warm: the same again with that cache filled: what every later process pays to load
   the kernels, in total and per module.
3. ``import fastpath`` (must not import numba) and the extra cost of the first S = 2
   ``log_marginal`` call of a warm process over its second call (same inputs).
Targets (issue 15): cold <= 30 s, warm start overhead <= 0.5 s.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_FIRST_CALL = r"""
import time
t0 = time.perf_counter()
import numpy as np
import fastpath
t_import = time.perf_counter() - t0
import sys
numba_loaded = "numba" in sys.modules
from fastpath import DGN, partition, log_marginal
net = DGN.random((2, 8, 8, 2), seed=0)
P = partition(net)
X = np.random.default_rng(0).normal(size=(50, 2))
t = time.perf_counter(); log_marginal(net, X, partition=P, n_jobs=1); first = time.perf_counter() - t
t = time.perf_counter(); log_marginal(net, X, partition=P, n_jobs=1); second = time.perf_counter() - t
print(f"{t_import:.3f} {numba_loaded} {first:.3f} {second:.3f}")
"""


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process and its children, output) of one command."""
    t = time.perf_counter()
    cpu = _children_cpu()
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    return time.perf_counter() - t, _children_cpu() - cpu, out.stdout + out.stderr


def main() -> int:
    dgn = [sys.executable, "-m", "dgn_tools.cli", "warmup"]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, OPENBLAS_NUM_THREADS="1")
        print(f"load {os.getloadavg()[0]:.2f}", flush=True)
        cold, cpu, text = _run(dgn, env)
        print(f"cold (empty cache): {cold:.1f} s in all, {cpu:.1f} s CPU; load "
              f"{os.getloadavg()[0]:.2f}\n{text.rstrip()}", flush=True)
        warm, _, text = _run(dgn, env)
        print(f"warm (cache filled): {warm:.2f} s in all, process start included\n{text.rstrip()}",
              flush=True)
        _, _, text = _run([sys.executable, "-c", _FIRST_CALL], env)
        t_import, numba_loaded, first, second = text.split()
        print(f"import fastpath {float(t_import):.3f} s (numba imported: {numba_loaded}); first S = 2 "
              f"log_marginal {float(first):.3f} s, second {float(second):.3f} s: first-call overhead "
              f"{float(first) - float(second):.3f} s; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
