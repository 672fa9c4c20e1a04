"""Fig. 3: samples of a DGN, its marginal p(x) and the exact posterior p(z | x) of one point.

For the example net of ``dgn posterior`` (a random ReLU net with widths (S, 8, 8, 2), output
layer scaled by 4, noise variance 0.001; S = 1 by default, ``--latent 2`` for S = 2):

* panel (a): noiseless samples g(z) and noisy samples g(z) + eps;
* panel (b): the marginal p(x) (Theorem 1) as a heat map;
* panel (c): the posterior p(z | x) of one point (Prop. 2): S = 1 its density with the region
  limits (the kinks of g) and the posterior mean; S = 2 its contours with the region edges.

The point is chosen where the generator folds back: the midpoint of g(z_a) and g(z_b) for
two latents far apart whose images are close, so that its posterior has several modes (the
mean then lies between them, the situation the paper's Fig. 3 illustrates). The script also
prints log p(x) and the posterior moments of that point from the exact path (mpmath, 30
digits, confirmed at 45 with ``verify=True``) next to the fast path's (S = 1; for S = 2 with
``--report``: the 2-D exact integrals over the net's ~200 regions take minutes).

    python examples/fig3_posterior.py [--latent 2] [--exact] [--grid N] [--out DIR]

Writes fig3_posterior_S{1,2}.png to the output folder (default examples/output/fig3_posterior/).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# running as `python examples/fig3_posterior.py` from anywhere: make the package importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mpmath

from dgn_core.model import DGN
from dgn_tools.cli import example_posterior_net, posterior_figure
from dgn_tools.plotting import save_figure

_ROOT = Path(__file__).resolve().parents[1]


def folded_point(net: DGN, seed: int = 0) -> np.ndarray:
    """x = (g(z_a) + g(z_b)) / 2 for the latents z_a, z_b at distance > 1.5 (in a +-2.5
    window) whose images are closest: a point between two sheets of the generator."""
    rng = np.random.default_rng(seed)
    S = net.latent_dim
    Z = rng.uniform(-2.5, 2.5, size=(600 if S == 1 else 1500, S))
    G = net.forward(Z)
    dz = np.linalg.norm(Z[:, None] - Z[None], axis=-1)
    dx = np.linalg.norm(G[:, None] - G[None], axis=-1)
    dx[dz <= 1.5] = np.inf
    a, b = np.unravel_index(np.argmin(dx), dx.shape)
    return (G[a] + G[b]) / 2


def report(net: DGN, x: np.ndarray) -> None:
    """log p(x) and the posterior moments of x, exact (verified) and fast, side by side."""
    import verified_dgn

    P = verified_dgn.partition(net)
    t0 = time.perf_counter()
    ex = verified_dgn.posterior(net, x, dps=30, partition=P, verify=True)
    t_exact = time.perf_counter() - t0
    with mpmath.workdps(30):
        print(f"exact (verified to 30 digits, {t_exact:.1f} s, {len(P)} regions, "
              f"{int(ex.pruned.sum())} pruned):")
        print(f"  log p(x)  = {mpmath.nstr(ex.log_px[0], 30)}")
        print(f"  E[z|x]    = {[mpmath.nstr(v, 20) for v in ex.mean[0]]}")
        print(f"  Cov[z|x]  = {[[mpmath.nstr(v, 20) for v in row] for row in ex.cov[0]]}")
        top = np.argsort([-float(v) for v in ex.e0[0]])[:4]
        print("  largest region weights e0: "
              + ", ".join(f"region {w}: {mpmath.nstr(ex.e0[0, w], 12)}" for w in top))
    try:
        import fastpath

        fa = fastpath.posterior(net, x[None, :])
        print(f"fast (float64): log p(x) = {fa.log_px[0]:.15g}, E[z|x] = {fa.mean[0]}, "
              f"|log p fast - exact| = {abs(fa.log_px[0] - float(ex.log_px[0])):.2e}")
    except (ImportError, AttributeError):  # pragma: no cover - fast path not available
        pass


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latent", type=int, choices=[1, 2], default=1)
    ap.add_argument("--noise", type=float, default=0.001, help="noise variance (default 0.001)")
    ap.add_argument("--exact", action="store_true",
                    help="draw the heat map and the posterior with the exact path (slow)")
    ap.add_argument("--grid", type=int, default=None,
                    help="heat-map points per axis (default 150; 16 with --exact)")
    ap.add_argument("--no-report", action="store_true", help="skip the exact numbers")
    ap.add_argument("--report", action="store_true", help="print the exact numbers also for S = 2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    net = example_posterior_net(args.latent, noise_var=args.noise)
    x = folded_point(net, args.seed)
    print(f"net: {net!r}; point x = {x}")
    if not args.no_report and (args.latent == 1 or args.report):
        report(net, x)
    grid = args.grid or (16 if args.exact else 150)
    fig = posterior_figure(net, x, grid=grid, exact=args.exact, seed=args.seed)
    out = (args.out or _ROOT / "examples" / "output" / "fig3_posterior")
    path = save_figure(fig, Path(out) / f"fig3_posterior_S{args.latent}.png")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
