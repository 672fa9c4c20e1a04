"""How much EM's end point depends on rounding-level changes of its start.

    python examples/em_sensitivity.py --data cosine     # ~2 min
    python examples/em_sensitivity.py --data circle

Trains the Fig. 6 / Fig. 4 DGN (widths (1, 8, 8, 2), leaky-ReLU, seed 0, initial noise
variance 0.1) by ``fastpath.fit_em`` for 200 iterations on 1000 built-in points, once from
the initial weights and ``--runs - 1`` times from the weights multiplied by
(1 + 1e-12 * standard normal) (seed 7), and prints each run's final NLL per point. The
README's "Cosine ... fragile" bullet quotes this script's output.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath
from dgn_core.data import cosine, noisy_circle
from fastpath.em import ConvergenceWarning
from verified_dgn import DGN


def main(argv: list[str] | None = None) -> list[float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", choices=["cosine", "circle"], default="cosine")
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--rel", type=float, default=1e-12, help="relative size of the perturbation")
    args = p.parse_args(argv)
    X = cosine(args.n, noise_std=0.0, seed=0) if args.data == "cosine" else noisy_circle(args.n, seed=0)
    net = DGN.random((1, 8, 8, 2), activation="leaky_relu", seed=0, noise_var=0.1)
    rng = np.random.default_rng(7)
    out = []
    for j in range(args.runs):
        W = [w * (1 + args.rel * rng.standard_normal(w.shape)) if j else w for w in net.weights]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = fastpath.fit_em(net.replace(weights=W), X, max_iter=args.iters, seed=0)
        ll = np.asarray(res.log_likelihood)
        out.append(-ll[-1] / args.n)
        print(f"{args.data} run {j} ({'unperturbed' if j == 0 else f'perturbed {args.rel:g}'}): "
              f"final NLL per point {out[-1]:.4f}, monotone: "
              f"{bool(np.all(np.diff(ll) >= -1e-9 * np.abs(ll[1:])))}", flush=True)
    return out


if __name__ == "__main__":
    main()
