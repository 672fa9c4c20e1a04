"""Exact EM (fastpath.fit_em) against Adam on the same exact log-likelihood.

Usage: python benchmarks/em.py [--quick] [--cases circle8,circle32,s2] [--iters K]
                               [--lrs 0.01,0.03,0.1] [--adam-factor F]

Cases (leaky-ReLU, slope 0.1, PyTorch-default initial weights with seed 0, isotropic noise
starting at 0.05 x the data's mean variance, as in `dgn fit`):

* circle8:  widths (1, 8, 8, 2) on the noisy circle, N = 1000 (the main job);
* circle32: widths (1, 32, 32, 2) on the noisy circle, N = 1000;
* s2:       widths (2, 16, 16, 3) on a 3-D surface, x = (u, v, sin(u) cos(v)) + N(0, 0.05^2),
            u, v ~ N(0, 1), N = 300 (S = 2: every E-step integrates over ~400 polygons).

For each case EM runs K iterations (seconds per iteration = its total time / K); then Adam
(the baseline), once per learning rate, runs from the same initial model for F times EM's
wall-clock time (default F = 2), each step using the exact log-likelihood and its exact
gradient (Fisher's identity from the posterior moments, fastpath.em.log_likelihood_gradient;
checked against finite differences in tests/test_em.py) with respect to every weight, bias
and the log noise variance. Both run
with a single-threaded BLAS (fit_em's default). The table prints the best exact
log p(X) / N each method had reached by the same wall-clock times, and the time each Adam
run needed to reach EM's final value (if it did). Timings are wall-clock on the machine that
runs this, both methods measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_core.data import noisy_circle
from fastpath._threads import blas_limit
from fastpath.em import ConvergenceWarning, fit_em, log_likelihood_gradient
from verified_dgn import DGN


def surface(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal((2, n))
    X = np.stack([u, v, np.sin(u) * np.cos(v)], axis=1)
    return X + 0.05 * rng.standard_normal(X.shape)


CASES = {
    "circle8": lambda quick: ((1, 8, 8, 2), noisy_circle(1000, seed=0)),
    "circle32": lambda quick: ((1, 32, 32, 2), noisy_circle(1000, seed=0)),
    "s2": lambda quick: ((2, 16, 16, 3), surface(150 if quick else 300)),
}


def run_em(net: DGN, X: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, log p(X)) after 0..iters iterations (fit_em's own clock, which starts
    before the initial partition and E-step, as Adam's starts before its first gradient)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = fit_em(net, X, max_iter=iters, tol=0.0)
    return np.asarray(res.times), np.asarray(res.log_likelihood)


def run_adam(net: DGN, X: np.ndarray, budget: float, lr: float, max_steps: int = 100000
             ) -> tuple[np.ndarray, np.ndarray]:
    """Adam (beta1 0.9, beta2 0.999, eps 1e-8) ascending the exact log p(X) / N.

    Parameters: every W_l, v_l and log sigma^2. Returns (seconds, log p(X)) at every step
    (log p(X) of the parameters at which that step's gradient was taken)."""
    L = net.n_layers
    params = [np.array(W) for W in net.weights] + [np.array(v) for v in net.biases] + \
        [np.array([np.log(net.noise_var)])]
    m = [np.zeros_like(p) for p in params]
    s = [np.zeros_like(p) for p in params]
    N = X.shape[0]
    times, lls = [], []
    t0 = time.perf_counter()
    with blas_limit(1):
        for k in range(1, max_steps + 1):
            cur = net.replace(weights=params[:L], biases=params[L:2 * L],
                              noise_var=float(np.exp(params[-1][0])))
            ll, g = log_likelihood_gradient(cur, X)
            times.append(time.perf_counter() - t0)
            lls.append(ll)
            if times[-1] >= budget:
                break
            grads = list(g["weights"]) + list(g["biases"]) + \
                [np.array([g["noise_var"] * float(cur.noise_var)])]
            for i, (p, gr) in enumerate(zip(params, grads)):
                gr = gr / N                                         # ascend the per-point mean
                m[i] = 0.9 * m[i] + 0.1 * gr
                s[i] = 0.999 * s[i] + 0.001 * gr * gr
                mh = m[i] / (1 - 0.9 ** k)
                sh = s[i] / (1 - 0.999 ** k)
                params[i] = p + lr * mh / (np.sqrt(sh) + 1e-8)
    return np.asarray(times), np.asarray(lls)


def at(times: np.ndarray, values: np.ndarray, t: float) -> float:
    """The best value reached by time t (nan before the first)."""
    ok = times <= t
    return float(np.max(values[ok])) if ok.any() else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations, smaller S = 2 data")
    ap.add_argument("--cases", default="circle8,circle32,s2")
    ap.add_argument("--iters", type=int, default=None,
                    help="EM iterations per case (default 60; 6 for s2; --quick: 15 / 2)")
    ap.add_argument("--lrs", default="0.01,0.03,0.1", help="Adam learning rates (0.01,0.03,0.1)")
    ap.add_argument("--adam-factor", type=float, default=2.0,
                    help="Adam runs this many times EM's wall-clock time (2)")
    args = ap.parse_args(argv)
    lrs = [float(t) for t in args.lrs.split(",")]
    for name in args.cases.split(","):
        if name not in CASES:
            ap.error(f"unknown case {name!r}; known: {', '.join(CASES)}")
        widths, X = CASES[name](args.quick)
        N = X.shape[0]
        iters = args.iters or ((2 if args.quick else 6) if name == "s2" else (15 if args.quick else 60))
        net = DGN.random(widths, activation="leaky_relu", slope=0.1, seed=0,
                         noise_var=0.05 * float(np.mean(np.var(X, axis=0))))
        print(f"\n== {name}: widths {widths}, N = {N}, D = {X.shape[1]}; EM {iters} iterations, "
              f"then Adam for {args.adam_factor:g} x EM's wall-clock time", flush=True)
        te, le = run_em(net, X, iters)
        T = float(te[-1])
        print(f"EM: {T / iters:.3f} s per iteration ({T:.1f} s for {iters}); "
              f"log p(X)/N {le[0] / N:.4f} -> {le[-1] / N:.4f}", flush=True)
        adam = {}
        for lr in lrs:
            ta, la = run_adam(net, X, args.adam_factor * T, lr)
            adam[lr] = (ta, la)
            reach = np.flatnonzero(la >= le[-1])
            when = (f"reached EM's final value after {ta[reach[0]]:.1f} s "
                    f"({ta[reach[0]] / T:.2f} x EM's time)" if reach.size else
                    f"did not reach EM's final value (short by {(le[-1] - la.max()) / N:.4f} "
                    "nats per point)")
            print(f"Adam lr {lr:g}: {ta[-1] / len(ta):.3f} s per step ({len(ta)} steps in "
                  f"{ta[-1]:.1f} s), best log p(X)/N {la.max() / N:.4f}; {when}", flush=True)
        head = f"{'seconds':>9} {'EM':>10}" + "".join(f" {'Adam ' + format(lr, 'g'):>12}" for lr in lrs)
        print("best exact log p(X)/N reached by each time:")
        print(head)
        for frac in (0.05, 0.1, 0.25, 0.5, 1.0, args.adam_factor):
            t = frac * T
            em_val = at(te, le, t) / N if frac <= 1.0 else float("nan")
            print(f"{t:9.2f} {em_val:10.4f}" + "".join(f" {at(*adam[lr], t) / N:12.4f}" for lr in lrs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
