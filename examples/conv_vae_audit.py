"""Audit a convolutional VAE trained in PyTorch: its exact likelihood, posterior and KL.

A small convolutional VAE with latent dimension S = 2 is trained in torch on scikit-learn's
bundled 8x8 digits (all classes, pixels scaled to [0, 1] as in fig7_digits.py):

    decoder  z (2) -> Linear(2, 16 C) -> ReLU -> Unflatten (C, 4, 4)
             -> ConvTranspose2d(C, C2, 4, stride 2, padding 1) (C2, 8, 8) -> ReLU
             -> Conv2d(C2, 1, 3, padding 1) -> Flatten (64)
    p(x|z) = N(g(z), s2 I), s2 learned (its log, floored), p(z) = N(0, I)
    encoder  an MLP 64 -> H -> 2 S giving q(z|x) = N(mu, diag sigma^2)

trained with Adam on the single-sample reparameterised ELBO (float64, one thread). The
trained decoder is then read with ``fastpath.from_torch(decoder, s2)``: that DGN IS the
model the VAE defines (its forward pass equals torch's to rounding, checked here), so the
toolkit computes

* the exact log p(x) (``fastpath.log_marginal``) of every training and held-out image,

and on ``--audit-images`` random images of each split (the exact KL costs about a second per
image with the ~5000 regions of this decoder)

* the VAE's ELBO: exact (E_q[log p(x|z)] over the regions, KL(q || p(z)) in closed form)
  and its Monte Carlo estimate from K samples of q,
* the importance-weighted bound IWAE_K = log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q
  (K = 1000, in log space), with a delta-method Monte Carlo standard error,
* the exact KL(q(z|x) || p(z|x)) of the encoder (``fastpath.kl_to_posterior``); log p(x) =
  ELBO + KL is checked per image,

and checks Bayes' rule pointwise on the q-samples: log p(x, z_k) (torch's forward pass) -
log p(z_k|x) (``fastpath.log_posterior_density``) = log p(x) for every sample.

Writes to the output folder (default examples/output/conv_vae_audit/): per_image.csv,
summary.csv, summary.md, training.csv and conv_vae_posterior.png (held-out images, their
reconstructions g(mu), the exact posterior density p(z|x) on a latent grid with the
encoder's q(z|x) 1- and 2-sigma ellipses and the region boundaries). ``--figure PATH`` also
writes the figure there (the README's docs/img/conv_vae_posterior.png).

    python examples/conv_vae_audit.py [--quick] [--out DIR] [--figure PATH]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C

import fastpath
from dgn_core.data import digits
from dgn_core.io import atomic_open

NAME = "conv_vae_audit"
LOG_2PI = math.log(2.0 * math.pi)

__all__ = ["main"]


# --------------------------------------------------------------------------- model
def make_networks(S: int, channels: int, channels2: int, enc_hidden: int, seed: int) -> Any:
    import torch
    from torch import nn
    torch.manual_seed(seed)
    decoder = nn.Sequential(
        nn.Linear(S, channels * 16), nn.ReLU(), nn.Unflatten(1, (channels, 4, 4)),
        nn.ConvTranspose2d(channels, channels2, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(channels2, 1, 3, padding=1), nn.Flatten()).double()
    encoder = nn.Sequential(nn.Linear(64, enc_hidden), nn.ReLU(),
                            nn.Linear(enc_hidden, 2 * S)).double()
    return decoder, encoder


def neg_elbo(decoder: Any, encoder: Any, log_nv: Any, log_floor: float, xb: Any,
             gen: Any) -> Any:
    """Mean over the batch of the single-sample reparameterised -ELBO (torch scalar)."""
    import torch
    h = encoder(xb)
    S = h.shape[1] // 2
    mu, logvar = h[:, :S], h[:, S:]
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
    lv = torch.clamp(log_nv, min=log_floor)
    D = xb.shape[1]
    rec = -0.5 * ((xb - decoder(z)) ** 2).sum(1) * torch.exp(-lv) - 0.5 * D * (lv + LOG_2PI)
    kl = 0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar).sum(1)
    return -(rec - kl).mean()


def train(X: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    import torch
    decoder, encoder = make_networks(2, args.channels, args.channels2, args.enc_hidden,
                                     args.seed)
    floor = 1e-6 * float(np.mean(np.var(X, axis=0)))
    log_nv = torch.tensor(math.log(0.1), dtype=torch.float64, requires_grad=True)
    params = [*decoder.parameters(), *encoder.parameters(), log_nv]
    opt = torch.optim.Adam(params, lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    perm_rng = np.random.default_rng(args.seed)
    Xt = torch.from_numpy(X)
    history = []
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        idx = torch.from_numpy(perm_rng.permutation(len(X)))
        total = 0.0
        for start in range(0, len(X), args.batch_size):
            xb = Xt[idx[start:start + args.batch_size]]
            loss = neg_elbo(decoder, encoder, log_nv, math.log(floor), xb, gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
        history.append({"epoch": epoch, "train_time_s": time.perf_counter() - t0,
                        "neg_elbo_mc_train": total / len(X),
                        "noise_var": math.exp(max(float(log_nv.detach()), math.log(floor)))})
        if not args.quiet and (epoch % max(1, args.epochs // 10) == 0 or epoch == 1):
            h = history[-1]
            C.log(f"  epoch {epoch:4d}  -ELBO (1 sample, per image) "
                  f"{h['neg_elbo_mc_train']:9.3f}  noise var {h['noise_var']:.4g}  "
                  f"{h['train_time_s']:6.1f} s")
    decoder.eval()
    encoder.eval()
    noise_var = math.exp(max(float(log_nv.detach()), math.log(floor)))
    return {"decoder": decoder, "encoder": encoder, "noise_var": noise_var,
            "noise_floor": floor, "floor_binds": float(log_nv.detach()) <= math.log(floor),
            "history": history, "train_time_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------- audit
def encode(encoder: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import torch
    with torch.no_grad():
        h = encoder(torch.from_numpy(X)).numpy()
    S = h.shape[1] // 2
    return h[:, :S].copy(), np.exp(h[:, S:])


def log_joint(decoder: Any, noise_var: float, x: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """log p(x, z) = log N(x; g(z), s2 I) + log N(z; 0, I) by torch's forward pass, (K,)."""
    import torch
    with torch.no_grad():
        G = decoder(torch.from_numpy(Z)).numpy()
    D, S = G.shape[1], Z.shape[1]
    ll = -0.5 * np.sum((x - G) ** 2, axis=1) / noise_var - 0.5 * D * (math.log(noise_var)
                                                                      + LOG_2PI)
    return ll - 0.5 * np.sum(Z * Z, axis=1) - 0.5 * S * LOG_2PI


def audit(net: Any, P: Any, decoder: Any, encoder: Any, noise_var: float, X: np.ndarray,
          K: int, seed: int, n_bayes: int) -> dict[str, np.ndarray]:
    """Per-image exact and Monte Carlo quantities (see the module notes)."""
    from scipy.special import logsumexp
    mu, var = encode(encoder, X)
    log_px = fastpath.log_marginal(net, X, partition=P)
    terms = fastpath.kl_to_posterior(net, X, mu, var, partition=P, return_terms=True)
    S = mu.shape[1]
    kl_prior = 0.5 * np.sum(var + mu * mu - 1.0 - np.log(var), axis=1)   # the VAE's formula
    elbo = terms.expected_log_lik - kl_prior
    rng = np.random.default_rng(seed)
    N = len(X)
    out = {k: np.empty(N) for k in ("elbo_mc", "elbo_mc_se", "iwae", "iwae_se",
                                    "bayes_err")}
    out["bayes_err"][:] = np.nan
    for n in range(N):
        eps = rng.standard_normal((K, S))
        Z = mu[n] + np.sqrt(var[n]) * eps
        log_q = (-0.5 * np.sum(eps * eps, axis=1) - 0.5 * np.sum(np.log(var[n]))
                 - 0.5 * S * LOG_2PI)
        lj = log_joint(decoder, noise_var, X[n], Z)
        lw = lj - log_q
        out["elbo_mc"][n] = lw.mean()
        out["elbo_mc_se"][n] = lw.std(ddof=1) / math.sqrt(K)
        out["iwae"][n] = logsumexp(lw) - math.log(K)
        w = np.exp(lw - lw.max())
        # delta method: sd(log mean w) ~ sd(w) / (sqrt(K) mean(w))
        out["iwae_se"][n] = w.std(ddof=1) / (math.sqrt(K) * w.mean())
        if n < n_bayes:   # Bayes' rule at the samples: log p(x, z) - log p(z|x) = log p(x)
            lpost = fastpath.log_posterior_density(net, X[n], Z[:200], partition=P)
            out["bayes_err"][n] = float(np.max(np.abs(lj[:200] - lpost - log_px[n])))
    out.update({"log_px": log_px, "log_px_kl": terms.log_px, "kl": terms.kl, "elbo": elbo,
                "kl_prior": kl_prior, "kl_prior_fastpath": terms.kl_prior,
                "expected_log_lik": terms.expected_log_lik, "q_mass": terms.q_mass,
                "mu": mu, "var": var, "X": X})
    return out


# --------------------------------------------------------------------------- figure
def plot_posteriors(net: Any, P: Any, decoder: Any, X: np.ndarray, mu: np.ndarray,
                    var: np.ndarray, log_px: np.ndarray, kl: np.ndarray, paths: list[Path],
                    grid_n: int) -> None:
    import torch
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    from dgn_tools.plotting import new_figure, region_polygon, save_figure
    n = len(X)
    fig = new_figure(figsize=(9.6, 3.0 * n + 0.3))
    axes = fig.subplots(n, 3, squeeze=False, gridspec_kw={"width_ratios": [1, 1, 2.2]})
    with torch.no_grad():
        rec = decoder(torch.from_numpy(mu)).numpy()
    polys = [region_polygon(r, 1e3) for r in P]
    for i in range(n):
        for j, (img, title) in enumerate([(X[i], "held-out image x"),
                                          (rec[i], r"reconstruction $g(\mu_q)$")]):
            ax = axes[i, j]
            ax.imshow(img.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=9)
        ax = axes[i, 2]
        # window: the encoder's q (4 sd) and the exact posterior's mean (4 sd) together
        post = fastpath.posterior(net, X[i:i + 1], partition=P)
        pm, pc = post.mean[0], post.cov[0]
        half = 4.0 * np.maximum(np.sqrt(var[i]), np.sqrt(np.diag(pc)))
        lo = np.minimum(mu[i] - half, pm - half)
        hi = np.maximum(mu[i] + half, pm + half)
        u = np.linspace(lo[0], hi[0], grid_n)
        v = np.linspace(lo[1], hi[1], grid_n)
        U, V = np.meshgrid(u, v)
        dens = fastpath.posterior_density(net, X[i], np.column_stack([U.ravel(), V.ravel()]),
                                          partition=P).reshape(U.shape)
        im = ax.pcolormesh(U, V, dens, cmap="viridis", shading="auto")
        fig.colorbar(im, ax=ax, label=r"exact $p(z\,|\,x)$")
        ax.add_collection(PolyCollection(polys, facecolors="none", edgecolors="w",
                                         linewidths=0.25, alpha=0.5))
        sd = np.sqrt(var[i])
        for k, ls in ((1, "-"), (2, "--")):
            ax.add_patch(Ellipse(tuple(mu[i]), 2 * k * sd[0], 2 * k * sd[1], fill=False,
                                 color="r", lw=1.3, ls=ls))
        ax.plot(*mu[i], "r+", ms=9)
        ax.plot(*pm, "wx", ms=7)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
        ax.set_title(f"log p(x) = {log_px[i]:.2f} nats, KL(q || p(z|x)) = {kl[i]:.3f}",
                     fontsize=9)
        if i == 0:
            ax.legend(handles=[
                Line2D([], [], color="r", ls="-", label="q(z|x) 1 sd"),
                Line2D([], [], color="r", ls="--", label="q(z|x) 2 sd"),
                Line2D([], [], color="r", marker="+", ls="", label="q mean"),
                Line2D([], [], color="w", marker="x", ls="", mec="k", label="exact posterior mean"),
                Line2D([], [], color="w", lw=0.8, label="region boundaries")],
                fontsize=7, loc="upper right", framealpha=0.7, facecolor="0.6")
    fig.suptitle("Convolutional VAE (S = 2) on 8x8 digits: exact posterior p(z|x) of its "
                 "decoder vs the encoder's q(z|x)", fontsize=10)
    fig.tight_layout()
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, p)


# --------------------------------------------------------------------------- report
def summary_rows(res: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    rows = []
    for name, r in res.items():
        rows.append({
            "data": name, "n_images": len(r["log_px"]),
            "nll_exact": -float(np.mean(r["log_px"])),
            "neg_iwae": -float(np.mean(r["iwae"])),
            "neg_elbo_exact": -float(np.mean(r["elbo"])),
            "neg_elbo_mc": -float(np.mean(r["elbo_mc"])),
            "kl_q_posterior": float(np.mean(r["kl"])),
            "kl_q_posterior_median": float(np.median(r["kl"])),
            "iwae_gap": float(np.mean(r["log_px"] - r["iwae"])),
            # |log p - ELBO - KL| relative to max(|log p(x)|, 1 nat) (log p(x) can be ~0)
            "max_rel_identity_err": float(np.max(np.abs(r["log_px"] - r["elbo"] - r["kl"])
                                                 / np.maximum(np.abs(r["log_px"]), 1.0))),
            "max_iwae_above_log_px_in_se": float(np.max((r["iwae"] - r["log_px"])
                                                        / r["iwae_se"])),
            "max_elbo_above_iwae": float(np.max(r["elbo"] - r["iwae"])),
        })
    return rows


def write_markdown(path: Path, rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        f"# Convolutional VAE audit ({info['command']})",
        "",
        f"Decoder {info['arch']}; exact DGN widths {info['widths']}, "
        f"{info['n_regions']} regions of the latent plane; learned noise variance "
        f"{info['noise_var']:.4g}. Training {info['train_time_s']:.1f} s "
        f"({info['epochs']} epochs, {info['n_train']} images); audit {info['audit_time_s']:.1f} s.",
        "",
        f"Exact NLL -log p(x) over all images: train {info['nll_all']['train']:.3f}, "
        f"held-out {info['nll_all']['held-out']:.3f} nats per image "
        f"({info['n_train']} / {info['n_test']} images).",
        "",
        f"On {info['audit_images']} random images per split (the exact KL costs about a second "
        "per image here), nats per image (mean over the images); IWAE with K = "
        f"{info['K']} samples of q.",
        "",
        "| data | images | exact NLL -log p(x) | -IWAE | -ELBO (exact) | -ELBO (MC) "
        "| KL(q‖p(z|x)) mean | KL median | max rel. err. of log p = ELBO + KL (a) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['data']} | {r['n_images']} | {r['nll_exact']:.3f} | {r['neg_iwae']:.3f} | "
            f"{r['neg_elbo_exact']:.3f} | {r['neg_elbo_mc']:.3f} | {r['kl_q_posterior']:.3f} | "
            f"{r['kl_q_posterior_median']:.3f} | {r['max_rel_identity_err']:.1e} |")
    lines += ["", "(a) max over the images of |log p(x) - ELBO - KL| / max(|log p(x)|, 1).",
              "", info["ordering"], ""]
    text = "\n".join(lines)
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return text


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=None, help="output folder (default examples/output/"
                   f"{NAME}/)")
    p.add_argument("--figure", default=None, help="also write the figure here")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: few images and epochs, K = 200, small figure grid")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="default 300 (--quick: 3)")
    p.add_argument("--n-max", type=int, default=None,
                   help="use this many images (default all 1797; --quick: 120)")
    p.add_argument("--channels", type=int, default=2, help="C: channels after the Linear")
    p.add_argument("--channels2", type=int, default=1,
                   help="C2: channels after the transposed convolution")
    p.add_argument("--enc-hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--K", type=int, default=None, help="IWAE samples (default 1000; "
                   "--quick: 200)")
    p.add_argument("--audit-images", type=int, default=None,
                   help="images per split (random) for the KL, ELBO and IWAE (default 100; "
                   "--quick: 4); the exact NLL uses every image")
    p.add_argument("--n-figure", type=int, default=None,
                   help="held-out images in the figure (default 4; --quick: 2)")
    p.add_argument("--grid", type=int, default=None, help="latent grid points per axis "
                   "(default 160; --quick: 40)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    q = args.quick
    args.epochs = args.epochs if args.epochs is not None else (3 if q else 300)
    args.n_max = args.n_max if args.n_max is not None else (120 if q else None)
    args.audit_images = (args.audit_images if args.audit_images is not None
                         else (4 if q else 100))
    args.n_figure = args.n_figure if args.n_figure is not None else (2 if q else 4)
    args.K = args.K if args.K is not None else (200 if q else 1000)
    args.grid = args.grid if args.grid is not None else (40 if q else 160)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = C.output_dir(NAME, args.out)
    X = digits()
    if args.n_max is not None and args.n_max < len(X):
        X = X[np.sort(np.random.default_rng(args.seed).choice(len(X), args.n_max,
                                                              replace=False))]
    X_train, X_test = C.split(X, 0.2, args.seed)
    C.log(f"{NAME}: {len(X_train)} training / {len(X_test)} held-out 8x8 digits", args.quiet)
    tr = train(X_train, args)
    decoder, encoder, noise_var = tr["decoder"], tr["encoder"], tr["noise_var"]

    t0 = time.perf_counter()
    net = fastpath.from_torch(decoder, noise_var)
    Zr = np.random.default_rng(args.seed + 1).standard_normal((500, 2)) * 3.0
    with torch.no_grad():
        torch_fwd = decoder(torch.from_numpy(Zr)).numpy()
    fwd_err = float(np.max(np.abs(net.forward(Zr) - torch_fwd)) / np.max(np.abs(torch_fwd)))
    P = fastpath.partition(net)
    t_part = time.perf_counter() - t0
    C.log(f"  decoder -> DGN widths {tuple(net.widths)}; {len(P)} regions "
          f"({t_part:.1f} s); forward max rel. diff to torch {fwd_err:.1e}", args.quiet)
    # the exact KL costs about a second per image here (thousands of regions): it and the
    # bounds are computed on a random subset of each split; log p(x) on every image
    nll_all = {}
    res = {}
    for i, (name, data) in enumerate((("train", X_train), ("held-out", X_test))):
        nll_all[name] = -float(np.mean(fastpath.log_marginal(net, data, partition=P)))
        sub = data
        if args.audit_images < len(data):
            sub = data[np.sort(np.random.default_rng(args.seed + 3 + i).choice(
                len(data), args.audit_images, replace=False))]
        res[name] = audit(net, P, decoder, encoder, noise_var, sub, args.K, args.seed + 7 + i,
                          n_bayes=5)
    audit_time = time.perf_counter() - t0

    rows = summary_rows(res)
    # ordering ELBO <= IWAE <= log p(x) per image, IWAE within 4 Monte Carlo s.e. of log p
    n_total = sum(len(r["log_px"]) for r in res.values())
    n_elbo_ok = sum(int(np.sum(r["elbo"] <= r["iwae"] + 4 * r["iwae_se"]))
                    for r in res.values())
    n_iwae_ok = sum(int(np.sum(r["iwae"] <= r["log_px"] + 4 * r["iwae_se"]))
                    for r in res.values())
    n_iwae_strict = sum(int(np.sum(r["iwae"] <= r["log_px"])) for r in res.values())
    ordering = (f"Ordering per image: exact ELBO <= IWAE within 4 Monte Carlo s.e. for "
                f"{n_elbo_ok}/{n_total} images; IWAE <= exact log p(x) within 4 s.e. for "
                f"{n_iwae_ok}/{n_total} (strictly below for {n_iwae_strict}/{n_total}). "
                f"Decoder forward pass: DGN vs torch max relative difference {fwd_err:.1e}. "
                "Bayes' rule at q-samples, max |log p(x,z) - log p(z|x) - log p(x)| = "
                f"{max(float(np.nanmax(r['bayes_err'])) for r in res.values()):.1e} nats.")
    argv_s = " ".join(argv) if argv else ""
    info = {"command": f"python examples/{NAME}.py {argv_s}".strip(),
            "arch": (f"Linear(2,{16 * args.channels})-ReLU-Unflatten({args.channels},4,4)-"
                     f"ConvTranspose2d({args.channels},{args.channels2},4,s2,p1)-ReLU-"
                     f"Conv2d({args.channels2},1,3,p1)-Flatten"),
            "widths": tuple(net.widths), "n_regions": len(P), "noise_var": noise_var,
            "train_time_s": tr["train_time_s"], "audit_time_s": audit_time,
            "epochs": args.epochs, "n_train": len(X_train), "n_test": len(X_test),
            "nll_all": nll_all, "audit_images": args.audit_images, "K": args.K, "ordering": ordering}
    text = write_markdown(out / "summary.md", rows, info)
    C.write_csv(out / "summary.csv", rows)
    C.write_csv(out / "training.csv", tr["history"])
    per = []
    for name, r in res.items():
        for n in range(len(r["log_px"])):
            per.append({"data": name, "image": n, "log_px": r["log_px"][n],
                        "elbo_exact": r["elbo"][n], "elbo_mc": r["elbo_mc"][n],
                        "elbo_mc_se": r["elbo_mc_se"][n], "iwae": r["iwae"][n],
                        "iwae_se": r["iwae_se"][n], "kl_q_posterior": r["kl"][n],
                        "q_mean_1": r["mu"][n, 0], "q_mean_2": r["mu"][n, 1],
                        "q_var_1": r["var"][n, 0], "q_var_2": r["var"][n, 1]})
    C.write_csv(out / "per_image.csv", per)
    if not args.quiet:
        print(text)
    t1 = time.perf_counter()
    nf = min(args.n_figure, len(X_test))
    paths = [out / "conv_vae_posterior.png"] + ([Path(args.figure)] if args.figure else [])
    Xf = X_test[:nf]
    mu_f, var_f = encode(encoder, Xf)
    terms_f = fastpath.kl_to_posterior(net, Xf, mu_f, var_f, partition=P, return_terms=True)
    plot_posteriors(net, P, decoder, Xf, mu_f, var_f, terms_f.log_px, terms_f.kl, paths,
                    args.grid)
    C.log(f"  figure {time.perf_counter() - t1:.1f} s; outputs in {out}", args.quiet)
    return {"out": out, "net": net, "partition": P, "decoder": decoder, "encoder": encoder,
            "noise_var": noise_var, "results": res, "rows": rows, "X_train": X_train,
            "X_test": X_test, "forward_rel_err": fwd_err, "nll_all": nll_all, "train": tr}


if __name__ == "__main__":
    main(sys.argv[1:])
