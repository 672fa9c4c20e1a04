"""Wide inner layers at S = 1: the structured inner-layer M-step against the dense one.

Usage: python benchmarks/wide_layers.py [--widths 64,128] [--n 500] [--iters 2]
                                        [--dense-iterations]

Case: widths (1, w, w, 2), leaky-ReLU slope 0.1, seed-0 initial weights, isotropic noise at
0.05 x the data's mean variance (as benchmarks/em.py), the noisy circle with N points.

For each width it prints, in one run with a single-threaded BLAS and the load average:

* the inner-layer solve of the wide layer (layer 2, n = w (w + 1) unknowns) alone, from the
  initial model's E-step: the structured solve (fastpath._inner_solve) and the dense one
  (forming the n x n system and its Cholesky solve), CPU seconds (time.process_time, one
  run of the dense one: it is ~90 s at width 128; min of 3 for the structured one), the
  ratio, and the largest difference of the two targets relative to the step;
* seconds per EM iteration of fit_em with the structured solve (its default), the median of
  ``--iters`` iterations (fit_em's own clock), and with ``--dense-iterations`` one EM
  iteration with the dense solve forced (its log-likelihood beside the structured one's).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

import fastpath
import fastpath.distributions
from dgn_core.data import noisy_circle
from fastpath import _inner_solve as IS
from fastpath import _mstep as MS
from fastpath._threads import blas_limit
from fastpath.em import ConvergenceWarning, fit_em
from verified_dgn import DGN


def _timed_target(net: DGN, st, P, structured: bool):  # type: ignore[no-untyped-def]
    """(CPU seconds, (target, system)) of the layer-2 inner solve."""
    t = time.process_time()
    out = MS._inner_layer_target(net, st, P, 1, None, 1e-6, structured=structured)
    return time.process_time() - t, out


def _fit(net: DGN, X: np.ndarray, iters: int, fraction: float):  # type: ignore[no-untyped-def]
    old = IS.STRUCTURED_MAX_FRACTION
    IS.STRUCTURED_MAX_FRACTION = fraction
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return fit_em(net, X, max_iter=iters, tol=0.0)
    finally:
        IS.STRUCTURED_MAX_FRACTION = old


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="64,128")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--dense-iterations", action="store_true")
    a = ap.parse_args(argv)
    X = noisy_circle(a.n, seed=0)
    print(f"N = {a.n}, S = 1, single-threaded BLAS, load {os.getloadavg()}")
    for w in [int(s) for s in a.widths.split(",")]:
        net = DGN.random((1, w, w, 2), activation="leaky_relu", slope=0.1, seed=0,
                         noise_var=0.05 * float(np.mean(np.var(X, axis=0))))
        P = fastpath.partition(net)
        st = fastpath.distributions.estep_statistics(net, X, partition=P)
        with blas_limit(1):
            ts = []
            for _ in range(3):
                t, (tgt_s, system) = _timed_target(net, st, P, True)
                ts.append(t)
            t_d, (tgt_d, _) = _timed_target(net, st, P, False)
        x0 = MS._Wt(net, 1)
        rel = float(np.abs(tgt_s - tgt_d).max() / np.abs(tgt_d - x0).max())
        print(f"width {w}: R = {len(P)}, n = {system.n}, m = {system.m}; layer-2 solve: "
              f"structured {min(ts):.3f} s, dense {t_d:.2f} s (x{t_d / min(ts):.1f}); "
              f"max |target diff| / |step| = {rel:.2e}; load {os.getloadavg()}")
        res = _fit(net, X, a.iters, IS.STRUCTURED_MAX_FRACTION)
        per_it = np.diff(np.asarray(res.times))
        print(f"  EM structured: {np.median(per_it):.2f} s/iteration (iterations "
              f"{', '.join(f'{t:.2f}' for t in per_it)}), log p(X) {res.log_likelihood[-1]:.6f}; "
              f"load {os.getloadavg()}")
        if a.dense_iterations:
            r1 = _fit(net, X, 1, IS.STRUCTURED_MAX_FRACTION)
            rd = _fit(net, X, 1, 0.0)
            print(f"  EM dense (1 iteration): {np.diff(rd.times)[0]:.2f} s, log p(X) "
                  f"{rd.log_likelihood[-1]:.9f} (structured {r1.log_likelihood[-1]:.9f}, "
                  f"{np.diff(r1.times)[0]:.2f} s); load {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
