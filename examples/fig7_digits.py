"""Fig. 7: digit 4 with a 3-layer DGN and latent dimension 1, EM versus VAEs.

Default data: scikit-learn's bundled 8x8 digits (class 4, about 180 images, 64 pixels scaled
to [0, 1]), split into training and held-out images. Real MNIST: point ``--mnist-images`` to
an IDX image file (``train-images-idx3-ubyte[.gz]``) and ``--mnist-labels`` to its label
file to keep one digit (without labels every image is used).

Same DGN (widths (1, h1, h2, D), isotropic noise), initial weights and data for EM and the
VAEs. Writes to the output folder (default examples/output/fig7_digits/):

* fig7_manifold.png  g(z) at the deciles of z ~ N(0, 1) for the initial DGN, EM and each
                     VAE (the learned one-dimensional manifold of images), data above;
* nll.png, kl.png    exact NLL (train / held-out) and the VAEs' exact KL(q || p(z|x));
* history.csv, summary.csv, summary.md (GaussianMixture baselines included).

    python examples/fig7_digits.py [--full] [--out DIR]
    python examples/fig7_digits.py --full --seeds 10   # seeds 0-9 (folder fig7_digits_seeds/)
    python examples/fig7_digits.py --mnist-images train-images-idx3-ubyte.gz \\
        --mnist-labels train-labels-idx1-ubyte.gz --n-max 1000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

from dgn_core.data import DataError, digits, read_idx
from dgn_core.model import DGN
from fastpath.vae import PAPER_LEARNING_RATES

NAME = "fig7_digits"


def load_mnist(images: str, labels: str | None, digit: int, n_max: int | None,
               seed: int) -> np.ndarray:
    """Images of one digit from IDX files, flattened and scaled to [0, 1], shape (n, rows*cols)."""
    A = read_idx(images)
    if A.ndim != 3:
        raise DataError(f"{images}: expected an IDX image file (n, rows, cols), got shape {A.shape}")
    X = A.reshape(A.shape[0], -1).astype(np.float64)
    if A.dtype == np.uint8:
        X /= 255.0
    if labels is not None:
        y = read_idx(labels)
        if y.shape != (A.shape[0],):
            raise DataError(f"{labels}: {y.shape[0] if y.ndim else 0} labels for "
                            f"{A.shape[0]} images")
        X = X[y == digit]
        if len(X) == 0:
            raise DataError(f"no image of digit {digit} in {labels}")
    if n_max is not None and len(X) > n_max:
        idx = np.sort(np.random.default_rng(seed).choice(len(X), n_max, replace=False))
        X = X[idx]
    return X


def plot_manifold(net0: DGN, runs: list, X: np.ndarray, path: Path, title: str) -> Path:
    from scipy.special import ndtri

    from dgn_tools.plotting import save_figure, subplots
    side = round(np.sqrt(X.shape[1]))
    shape = (side, side) if side * side == X.shape[1] else (1, X.shape[1])
    z = ndtri((np.arange(10) + 0.5) / 10)[:, None]
    models = [("data (random)", None), ("initial DGN", net0)] + [(r.label, r.model) for r in runs]
    fig, axes = subplots(len(models), 10, figsize=(10, 1.1 * len(models) + 0.6))
    rng = np.random.default_rng(0)
    for i, (label, m) in enumerate(models):
        imgs = X[rng.choice(len(X), 10, replace=False)] if m is None else m.forward(z)
        for j in range(10):
            ax = axes[i, j]
            ax.imshow(imgs[j].reshape(shape), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title + " (columns: g(z) at the deciles of N(0, 1))", fontsize=10)
    return save_figure(fig, path)


def parser():
    p = C.base_parser(__doc__.split("\n")[0])
    p.add_argument("--digit", type=int, default=4, help="the digit class")
    p.add_argument("--mnist-images", default=None, help="MNIST IDX image file (else 8x8 digits)")
    p.add_argument("--mnist-labels", default=None, help="MNIST IDX label file (to keep --digit)")
    p.add_argument("--n-max", type=int, default=None,
                   help="use at most this many images (default: all of the 8x8 class; "
                   "MNIST: 500, --full 2000)")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction")
    p.add_argument("--noise-var", type=float, default=None,
                   help="initial noise variance of the DGN (default: mean pixel variance)")
    return p


def setup(args, seed: int) -> C.Setup:
    """Seed ``seed``: its train / held-out split (and MNIST subsample) and initial DGN."""
    full = args.full
    if args.mnist_images:
        n_max = args.n_max or (2000 if full else 500)
        data = load_mnist(args.mnist_images, args.mnist_labels, args.digit, n_max, seed)
        source = f"MNIST ({Path(args.mnist_images).name}" + (
            f", digit {args.digit})" if args.mnist_labels else ", all digits: no labels given)")
    else:
        data = digits(args.digit)
        if args.n_max:
            data = data[: args.n_max]
        source = f"scikit-learn 8x8 digits (digit {args.digit})"
    X, X_test = C.split(data, args.test_fraction, seed)
    D = X.shape[1]
    widths = C.hidden_widths(args, (16, 32))
    activation = args.activation or "leaky_relu"
    noise_var = args.noise_var or float(np.mean(np.var(X, axis=0)))

    net = DGN.random((1, *widths, D), activation=activation, seed=seed, noise_var=noise_var)
    C.log(f"{source}, seed {seed}: {len(X)} train / {len(X_test)} held-out images of {D} "
          f"pixels; DGN widths {net.widths} {activation}, {net.n_params} parameters, initial "
          f"noise variance {noise_var:.4g}", args.quiet)
    return C.Setup(
        net=net, X=X, X_test=X_test,
        em_iter=args.em_iter or (200 if full else 30),
        epochs=args.vae_epochs or (6000 if full else 2000), batch=args.batch_size or 32,
        lrs=C.parse_floats(args.lrs, PAPER_LEARNING_RATES), seed=seed,
        title=f"Digits (Fig. 7): {source}, {len(X)} train / {len(X_test)} held-out, "
              f"DGN {net.widths} {activation}")


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    t0 = time.perf_counter()
    if args.seeds:
        out = C.output_dir(NAME + "_seeds", args.out)
        return C.run_seeds(__file__, argv, args, out, f"Digit {args.digit} (Fig. 7)")
    out = C.output_dir(NAME, args.out)
    s = setup(args, args.seed)
    runs, gmm, summary = C.run_and_report(s, args, out)
    if not args.no_plots:
        plot_manifold(s.net, runs, s.X, out / "fig7_manifold.png", f"Digit {args.digit}")
        C.plot_nll(runs, gmm, out / "nll.png", "Digits: exact NLL, EM vs VAEs")
        C.plot_kl(runs, out / "kl.png", "Digits: KL between VAE q and true posterior")
    C.log(f"wrote {out} ({time.perf_counter() - t0:.0f} s)", args.quiet)
    return {"runs": runs, "gmm": gmm, "summary": summary, "out": out}


if __name__ == "__main__":
    main()
