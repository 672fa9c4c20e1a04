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
    python examples/fig4_5_circle_em_vs_vae.py --full --seeds 10   # seeds 0-9, 2 processes

With ``--seeds K`` (default folder examples/output/fig4_5_circle_seeds/): seeds.csv (every
seed and method), seeds_history.csv, summary.csv / summary.md (mean ± std, min, max over
seeds; EM against each VAE seed by seed), per_seed.md and nll_seeds.png (mean curves with
10-90% bands).
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


def parser():
    p = C.base_parser(__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=None, help="training points")
    p.add_argument("--n-test", type=int, default=None, help="held-out points")
    p.add_argument("--noise-var", type=float, default=0.1,
                   help="initial noise variance of the DGN")
    return p


def setup(args, seed: int) -> C.Setup:
    """Seed ``seed``: its data (train: seed, held-out: seed + 10000) and initial DGN."""
    full = args.full
    n_train = args.n_train or (1000 if full else 300)
    n_test = args.n_test or (1000 if full else 300)
    widths = C.hidden_widths(args, (8, 8))
    activation = args.activation or "leaky_relu"
    net = DGN.random((1, *widths, 2), activation=activation, seed=seed,
                     noise_var=args.noise_var)
    C.log(f"noisy circle, seed {seed}: {n_train} train / {n_test} held-out points; DGN widths "
          f"{net.widths} {activation}, {net.n_params} parameters; initial noise variance "
          f"{args.noise_var}", args.quiet)
    return C.Setup(
        net=net,
        X=noisy_circle(n_train, noise_std=0.05, seed=seed),
        X_test=noisy_circle(n_test, noise_std=0.05, seed=seed + 10_000),
        em_iter=args.em_iter or (200 if full else 40),
        epochs=args.vae_epochs or (2000 if full else 600), batch=args.batch_size or 64,
        lrs=C.parse_floats(args.lrs, PAPER_LEARNING_RATES), seed=seed,
        title=f"Noisy circle (Figs. 4-5): {n_train} train / {n_test} held-out points, "
              f"DGN {net.widths} {activation}")


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    t0 = time.perf_counter()
    if args.seeds:
        out = C.output_dir(NAME + "_seeds", args.out)
        return C.run_seeds(__file__, argv, args, out, "Noisy circle (Figs. 4-5)")
    out = C.output_dir(NAME, args.out)
    s = setup(args, args.seed)
    runs, gmm, summary = C.run_and_report(s, args, out)
    if not args.no_plots:
        C.plot_nll(runs, gmm, out / "fig4_nll.png", "Noisy circle: exact NLL, EM vs VAEs")
        C.plot_kl(runs, out / "fig5_kl.png", "Noisy circle: KL between VAE q and true posterior")
        C.plot_curves(s.net, runs, s.X, out / "manifolds.png", "Noisy circle")
    C.log(f"wrote {out} ({time.perf_counter() - t0:.0f} s)", args.quiet)
    return {"runs": runs, "gmm": gmm, "summary": summary, "out": out}


if __name__ == "__main__":
    main()
