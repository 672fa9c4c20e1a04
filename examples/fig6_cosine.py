"""Fig. 6: the cosine manifold (t ~ N(0, 1), x = (t, cos 1.4 t)): manifolds learned by EM and VAEs.

Same DGN architecture, initial weights and data for EM and the VAEs (the paper's three
learning rates). Writes to the output folder (default examples/output/fig6_cosine/):

* fig6_manifolds.png  the learned curves g(z) over the data (initial DGN, EM, each VAE);
* nll.png, kl.png     exact NLL (train / held-out) and the VAEs' exact KL(q || p(z|x));
* history.csv, summary.csv, summary.md (GaussianMixture baselines included).

The data lie exactly on the curve by default (``--noise-std 0``, as in the paper's
definition); a piecewise-affine g cannot pass through all of them, so the maximum-likelihood
noise variance stays positive (the approximation error of the curve).

    python examples/fig6_cosine.py [--full] [--out DIR] [--noise-std 0.05]
    python examples/fig6_cosine.py --full --seeds 10   # seeds 0-9 (folder fig6_cosine_seeds/)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

from dgn_core.data import cosine
from dgn_core.model import DGN
from fastpath.vae import PAPER_LEARNING_RATES

NAME = "fig6_cosine"


def parser():
    p = C.base_parser(__doc__.split("\n")[0])
    p.add_argument("--n-train", type=int, default=None, help="training points")
    p.add_argument("--n-test", type=int, default=None, help="held-out points")
    p.add_argument("--noise-std", type=float, default=0.0,
                   help="standard deviation of Gaussian noise added to the data")
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
    C.log(f"cosine, seed {seed}: {n_train} train / {n_test} held-out points (noise sd "
          f"{args.noise_std}); DGN widths {net.widths} {activation}, {net.n_params} parameters",
          args.quiet)
    return C.Setup(
        net=net,
        X=cosine(n_train, noise_std=args.noise_std, seed=seed),
        X_test=cosine(n_test, noise_std=args.noise_std, seed=seed + 10_000),
        em_iter=args.em_iter or (200 if full else 40),
        epochs=args.vae_epochs or (2000 if full else 600), batch=args.batch_size or 64,
        lrs=C.parse_floats(args.lrs, PAPER_LEARNING_RATES), seed=seed,
        title=f"Cosine (Fig. 6): {n_train} train / {n_test} held-out points, "
              f"DGN {net.widths} {activation}")


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    t0 = time.perf_counter()
    if args.seeds:
        out = C.output_dir(NAME + "_seeds", args.out)
        return C.run_seeds(__file__, argv, args, out, "Cosine (Fig. 6)")
    out = C.output_dir(NAME, args.out)
    s = setup(args, args.seed)
    runs, gmm, summary = C.run_and_report(s, args, out)
    if not args.no_plots:
        C.plot_curves(s.net, runs, s.X, out / "fig6_manifolds.png", "Cosine manifold",
                      equal_aspect=False)
        C.plot_nll(runs, gmm, out / "nll.png", "Cosine: exact NLL, EM vs VAEs")
        C.plot_kl(runs, out / "kl.png", "Cosine: KL between VAE q and true posterior")
    C.log(f"wrote {out} ({time.perf_counter() - t0:.0f} s)", args.quiet)
    return {"runs": runs, "gmm": gmm, "summary": summary, "out": out}


if __name__ == "__main__":
    main()
