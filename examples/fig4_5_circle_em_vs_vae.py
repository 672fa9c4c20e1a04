"""Figs. 4 and 5: noisy circle, EM versus VAEs at the paper's three learning rates.

Same DGN architecture, same initial weights, same data for EM and every VAE. Writes to the
output folder (default examples/output/fig4_5_circle/):

* fig4_nll.png     exact NLL per point (train and held-out) versus updates and wall-clock,
                   GaussianMixture held-out NLLs as horizontal lines;
* fig5_kl.png      exact KL(q(z|x) || p(z|x)) of each VAE's encoder during training;
* manifolds.png    the learned curves g(z) over the data;
* history.csv      every evaluation of every method; summary.csv (one row per method,
                   GMMs included); summary.md (the Markdown table).

Quick default: a few minutes on a 2-core machine. ``--full``: the paper-sized run.

    python examples/fig4_5_circle_em_vs_vae.py [--full] [--out DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

from dgn_core.data import noisy_circle
from dgn_core.model import DGN
from fastpath.vae import PAPER_LEARNING_RATES

NAME = "fig4_5_circle"


def main(argv: list[str] | None = None) -> dict:
    p = C.base_parser(__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=None, help="training points")
    p.add_argument("--n-test", type=int, default=None, help="held-out points")
    p.add_argument("--noise-var", type=float, default=0.1,
                   help="initial noise variance of the DGN")
    args = p.parse_args(argv)
    full = args.full
    n_train = args.n_train or (1000 if full else 300)
    n_test = args.n_test or (1000 if full else 300)
    widths = C.hidden_widths(args, (8, 8))
    activation = args.activation or "leaky_relu"
    em_iter = args.em_iter or (200 if full else 40)
    epochs = args.vae_epochs or (2000 if full else 600)
    batch = args.batch_size or 64
    lrs = C.parse_floats(args.lrs, PAPER_LEARNING_RATES)
    out = C.output_dir(NAME, args.out)
    q = args.quiet

    X = noisy_circle(n_train, noise_std=0.05, seed=args.seed)
    X_test = noisy_circle(n_test, noise_std=0.05, seed=args.seed + 10_000)
    net = DGN.random((1, *widths, 2), activation=activation, seed=args.seed,
                     noise_var=args.noise_var)
    C.log(f"noisy circle: {n_train} train / {n_test} held-out points; DGN widths {net.widths} "
          f"{activation}, {net.n_params} parameters; initial noise variance {args.noise_var}", q)
    t0 = time.perf_counter()
    runs, gmm, summary = C.run_and_report(
        net, X, X_test, args, em_iter=em_iter, epochs=epochs, batch=batch, lrs=lrs, out=out,
        title=f"Noisy circle (Figs. 4-5): {n_train} train / {n_test} "
              f"held-out points, DGN {net.widths} {activation}")
    if not args.no_plots:
        C.plot_nll(runs, gmm, out / "fig4_nll.png", "Noisy circle: exact NLL, EM vs VAEs")
        C.plot_kl(runs, out / "fig5_kl.png", "Noisy circle: KL between VAE q and true posterior")
        C.plot_curves(net, runs, X, out / "manifolds.png", "Noisy circle")
    C.log(f"wrote {out} ({time.perf_counter() - t0:.0f} s)", q)
    return {"runs": runs, "gmm": gmm, "summary": summary, "out": out}


if __name__ == "__main__":
    main()
