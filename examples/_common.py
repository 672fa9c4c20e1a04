"""Shared pieces of the paper's experiments (Figs. 4-7): EM versus VAEs versus a GMM.

Every experiment trains, from ONE initial DGN and on the same data:

* EM (:func:`fastpath.fit_em`), scored after every iteration by the exact log-likelihood;
* a VAE per learning rate (:func:`fastpath.vae.train_vae`), decoder = the same DGN, scored by
  the exact NLL of its decoder and the exact KL between its q and the true posterior;
* scikit-learn's GaussianMixture with about the same number of parameters (full, diagonal
  and spherical covariances), the density baseline a user would reach for;

and reports every number on the training and the held-out data. Wall-clock is training
time only: the exact diagnostics of the VAEs are timed separately and excluded; EM's time
includes its own exact log-likelihood evaluations (it needs them for its step control).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# running as `python examples/figX.py` from anywhere: make the package importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath
from dgn_core.io import atomic_open
from dgn_core.model import DGN
from dgn_tools.cli import parse_hidden_widths

_ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "MethodRun",
    "base_parser",
    "gmm_baseline",
    "output_dir",
    "plot_kl",
    "plot_nll",
    "print_table",
    "run_em",
    "run_vaes",
    "split",
    "summarise",
    "write_csv",
]


# --------------------------------------------------------------------------- results
@dataclass
class MethodRun:
    """One trained method: its history (one entry per evaluation) and final model.

    ``history`` keys: update, train_time, nll_train, nll_test (+ kl_train, kl_test,
    elbo_train, elbo_test, elbo_mc for VAEs), noise_var, n_regions.
    """

    method: str            # "EM" or "VAE"
    label: str             # "EM", "VAE lr=0.001", ...
    lr: float              # NaN for EM
    model: DGN
    history: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    def final(self, key: str) -> float:
        return float(self.history[key][-1])


def output_dir(name: str, out: str | None) -> Path:
    path = Path(out) if out else _ROOT / "examples" / "output" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write dict rows (union of keys, in first-seen order) atomically."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    with atomic_open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: _fmt(r.get(k, "")) for k in keys})
    return path


def _fmt(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v


def split(X: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random train / held-out split of the rows of X."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))
    n_test = max(1, round(test_fraction * len(X)))
    return X[idx[n_test:]], X[idx[:n_test]]


# --------------------------------------------------------------------------- arguments
def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=None, help="output folder (default examples/output/<name>/)")
    p.add_argument("--full", action="store_true",
                   help="the paper-sized run (more data, iterations and epochs; slower)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the initial DGN, "
                   "the VAEs and the GMMs")
    p.add_argument("--widths", type=parse_hidden_widths, default=None,
                   help="hidden widths of the DGN, comma separated (e.g. 8,8)")
    p.add_argument("--activation", default=None, choices=["relu", "leaky_relu", "abs"])
    p.add_argument("--lrs", default=None,
                   help="VAE learning rates, comma separated (default: the paper's "
                   "0.005,0.001,0.0001)")
    p.add_argument("--em-iter", type=int, default=None, help="EM iterations")
    p.add_argument("--vae-epochs", type=int, default=None, help="VAE epochs")
    p.add_argument("--batch-size", type=int, default=None, help="VAE minibatch size")
    p.add_argument("--eval-every", type=int, default=None,
                   help="VAE updates between exact evaluations (default: --n-evals "
                   "evaluations on a geometric grid of updates)")
    p.add_argument("--n-evals", type=int, default=40,
                   help="exact evaluations per VAE run (geometric grid; for the log-scale plots)")
    p.add_argument("--fixed-noise", action="store_true",
                   help="VAEs keep the initial noise variance (default: learned, like EM)")
    p.add_argument("--skip-em", action="store_true", help="train the VAEs and GMMs only")
    p.add_argument("--no-plots", action="store_true", help="write the CSV files only")
    p.add_argument("--quiet", action="store_true")
    return p


def parse_floats(text: str | None, default: Sequence[float]) -> list[float]:
    if text is None:
        return list(default)
    return [float(t) for t in text.split(",") if t.strip()]


def hidden_widths(args: argparse.Namespace, default: Sequence[int]) -> tuple[int, ...]:
    """The hidden widths of ``--widths`` (parsed by the ``dgn`` command's parser), else
    ``default``."""
    return tuple(default) if args.widths is None else tuple(args.widths)


def log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, flush=True)


# --------------------------------------------------------------------------- EM
def run_em(net: DGN, X: np.ndarray, X_test: np.ndarray, max_iter: int, *, tol: float = 1e-6,
           seed: int = 0, noise_floor: float = 1e-6, quiet: bool = False,
           **kw: Any) -> MethodRun:
    """EM (:func:`fastpath.fit_em`) from ``net`` with the exact NLL after every iteration.

    Training NLL and wall-clock come from EM itself (its exact log p(X) history and
    cumulative times); the held-out NLL of every iterate (kept by the callback) is computed
    after training and not timed. EM stops early when the per-point gain of an iteration
    falls below ``tol`` (its convergence rule).
    """
    iterates: list[DGN] = [net]

    def keep(it: Any) -> None:
        iterates.append(it.model)

    with warnings.catch_warnings():
        # ConvergenceWarning at max_iter: the iteration budget is the experiment's choice
        warnings.simplefilter("ignore")
        res = fastpath.fit_em(net, X, max_iter=max_iter, tol=tol, seed=seed,
                              noise_floor=noise_floor, callback=keep, **kw)
    ll = np.asarray(res.log_likelihood, dtype=np.float64)
    n = len(ll)
    if len(iterates) != n:   # pragma: no cover - one callback per iteration
        raise RuntimeError(f"EM reported {n - 1} iterations but called back {len(iterates) - 1}")
    nll_test = np.array([-float(np.mean(fastpath.log_marginal(m, X_test))) for m in iterates])
    hist = {"update": np.arange(n, dtype=np.float64),
            "train_time": np.asarray(res.times, dtype=np.float64),
            "nll_train": -ll / X.shape[0], "nll_test": nll_test,
            "noise_var": np.array([float(np.mean(v)) for v in res.noise_var]),
            "n_regions": np.asarray(res.n_regions, dtype=np.float64)}
    info = {"converged": bool(res.converged), "n_iter": int(res.n_iter),
            "noise_floor_hit": bool(len(res.noise_floor_hit)), "result": res}
    log(f"  EM: {res.n_iter} iterations ({'converged' if res.converged else 'not converged'}),"
        f" {hist['train_time'][-1]:.1f} s, NLL train {hist['nll_train'][-1]:.4f}, held-out "
        f"{nll_test[-1]:.4f}", quiet)
    return MethodRun("EM", "EM", float("nan"), res.model, hist, info)


# --------------------------------------------------------------------------- VAEs
def eval_grid(total: int, n: int) -> list[int]:
    """About n update counts from 1 to total, geometrically spaced (distinct integers)."""
    g = np.unique(np.round(np.geomspace(1, max(1, total), max(2, n))).astype(int))
    return [int(u) for u in g]


def run_vaes(net: DGN, X: np.ndarray, X_test: np.ndarray, lrs: Sequence[float], epochs: int,
             batch_size: int, seed: int, eval_every: int | None, learn_noise: bool,
             quiet: bool = False, n_evals: int = 40, noise_floor: float = 1e-6,
             **kw: Any) -> list[MethodRun]:
    """A VAE per learning rate from ``net`` (exact diagnostics on a geometric update grid
    unless ``eval_every`` is given)."""
    from fastpath.vae import train_vae
    if eval_every is None:
        total = epochs * -(-X.shape[0] // batch_size)
        kw["eval_at"] = eval_grid(total, n_evals)
    runs = []
    for lr in lrs:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            res = train_vae(net, X, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                            X_test=X_test, eval_every=eval_every, learn_noise=learn_noise,
                            noise_floor=noise_floor, **kw)
        h = res.history
        log(f"  VAE lr={lr:g}: {res.config['updates']} updates, {h['train_time'][-1]:.1f} s "
            f"(+{np.sum(h['eval_time']):.1f} s exact diagnostics), NLL train "
            f"{h['nll_train'][-1]:.4f}, held-out {h['nll_test'][-1]:.4f}, KL(q||p) train "
            f"{h['kl_train'][-1]:.4f}", quiet)
        runs.append(MethodRun("VAE", f"VAE lr={lr:g}", float(lr), res.model, dict(h),
                              {"diverged": res.diverged, "noise_floor_hit": res.noise_floor_hit,
                               "updates": res.config["updates"], "result": res}))
    return runs


# --------------------------------------------------------------------------- GMM
def gmm_baseline(X: np.ndarray, X_test: np.ndarray, n_params: int, seed: int,
                 quiet: bool = False) -> list[dict[str, Any]]:
    """scikit-learn GaussianMixture with about ``n_params`` parameters, per covariance type.

    Parameters per component: D means + (full) D(D+1)/2, (diag) D, (spherical) 1
    covariance entries + 1 weight; minus 1 for the weights' sum. K is the count closest to
    n_params (at least 1). Returns rows with the mean log-likelihood per point.
    """
    from sklearn.mixture import GaussianMixture
    N, D = X.shape
    rows = []
    for cov_type, per in (("full", D + D * (D + 1) // 2 + 1), ("diag", 2 * D + 1),
                          ("spherical", D + 2)):
        K = max(1, min(round((n_params + 1) / per), N // 2))
        t0 = time.perf_counter()
        g = GaussianMixture(n_components=K, covariance_type=cov_type, random_state=seed,
                            n_init=1, max_iter=500, reg_covar=1e-6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g.fit(X)
        dt = time.perf_counter() - t0
        row = {"method": f"GMM {cov_type}", "components": K, "n_params": K * per - 1,
               "nll_train": -float(g.score(X)), "nll_test": -float(g.score(X_test)),
               "train_time": dt, "converged": bool(g.converged_)}
        rows.append(row)
        log(f"  GMM {cov_type} (K={K}, {row['n_params']} parameters): NLL train "
            f"{row['nll_train']:.4f}, held-out {row['nll_test']:.4f}, {dt:.2f} s", quiet)
    return rows


# --------------------------------------------------------------------------- summaries
def _time_to_reach(run: MethodRun, target: float) -> float:
    """First training time at which the train NLL is <= target (NaN if never)."""
    nll = run.history["nll_train"]
    ok = np.flatnonzero(nll <= target)
    return float(run.history["train_time"][ok[0]]) if ok.size else float("nan")


def summarise(runs: Sequence[MethodRun], gmm_rows: Sequence[dict[str, Any]],
              n_params: int) -> list[dict[str, Any]]:
    """One row per method: final NLL train / held-out, training time, time to reach it."""
    em = next((r for r in runs if r.method == "EM"), None)
    rows = []
    for r in runs:
        h = r.history
        final = r.final("nll_train")
        row = {
            "method": r.label, "lr": r.lr, "n_params": n_params,
            "updates": int(h["update"][-1]),
            "nll_train": final, "nll_test": r.final("nll_test"),
            "best_nll_train": float(np.nanmin(h["nll_train"])),
            "train_time": r.final("train_time"),
            # time to come within 0.01 nats per point of its own final value
            "time_to_final": _time_to_reach(r, final + 0.01),
            "kl_train": r.final("kl_train") if "kl_train" in h else float("nan"),
            "kl_test": r.final("kl_test") if "kl_test" in h else float("nan"),
            "noise_var": r.final("noise_var"),
            "noise_floor_hit": r.info.get("noise_floor_hit", False),
        }
        if em is not None and r.method == "VAE":
            # how long EM needed to reach this VAE's final train NLL
            row["em_time_to_this_nll"] = _time_to_reach(em, final)
        rows.append(row)
    for g in gmm_rows:
        rows.append({"method": g["method"], "lr": float("nan"), "n_params": g["n_params"],
                     "updates": float("nan"), "nll_train": g["nll_train"],
                     "nll_test": g["nll_test"], "best_nll_train": g["nll_train"],
                     "train_time": g["train_time"], "time_to_final": g["train_time"],
                     "kl_train": float("nan"), "kl_test": float("nan"),
                     "noise_var": float("nan"), "noise_floor_hit": False,
                     "components": g["components"]})
    return rows


def history_rows(runs: Sequence[MethodRun]) -> list[dict[str, Any]]:
    rows = []
    for r in runs:
        n = len(r.history["update"])
        for i in range(n):
            row = {"method": r.label, "lr": r.lr}
            row.update({k: float(v[i]) for k, v in r.history.items()})
            rows.append(row)
    return rows


def print_table(rows: Sequence[dict[str, Any]], title: str) -> str:
    """A Markdown table of the summary (also printed)."""
    head = ("| method | NLL train | NLL held-out | training time (s) | time to final (s) "
            "| updates | KL(q‖p) train | KL(q‖p) held-out | EM time to this NLL (s) |")
    lines = [f"**{title}**", "", head, "|" + "---|" * 9]

    def f(v: Any, fmt: str) -> str:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return "–" if v in ("", None) else str(v)
        return "–" if math.isnan(x) else format(x, fmt)

    for r in rows:
        name = r["method"] + (f" (K={r['components']})" if "components" in r else "")
        em_t = r.get("em_time_to_this_nll", "")
        em_t = "never" if isinstance(em_t, float) and math.isnan(em_t) else f(em_t, ".2f")
        lines.append(f"| {name} | {f(r['nll_train'], '.4f')} | {f(r['nll_test'], '.4f')} "
                     f"| {f(r['train_time'], '.2f')} | {f(r['time_to_final'], '.2f')} "
                     f"| {f(r['updates'], '.0f')} | {f(r['kl_train'], '.4f')} "
                     f"| {f(r['kl_test'], '.4f')} | {em_t} |")
    text = "\n".join(lines)
    print(text, flush=True)
    return text


# --------------------------------------------------------------------------- plots
_COLORS = {"EM": "k"}


def run_and_report(net: DGN, X: np.ndarray, X_test: np.ndarray, args: argparse.Namespace, *,
                   em_iter: int, epochs: int, batch: int, lrs: Sequence[float], out: Path,
                   title: str) -> tuple[list[MethodRun], list[dict[str, Any]], list[dict[str, Any]]]:
    """The experiment every figure script runs: EM (unless ``--skip-em``), one VAE per
    learning rate and the GaussianMixture baselines from ``net``; writes ``history.csv``,
    ``summary.csv`` and ``summary.md`` (the table, titled ``title``) to ``out``.

    Returns (runs, gmm rows, summary rows).
    """
    q = args.quiet
    runs = [] if args.skip_em else [run_em(net, X, X_test, em_iter, seed=args.seed, quiet=q)]
    runs += run_vaes(net, X, X_test, lrs, epochs, batch, args.seed, args.eval_every,
                     learn_noise=not args.fixed_noise, quiet=q, n_evals=args.n_evals)
    gmm = gmm_baseline(X, X_test, net.n_params, args.seed, quiet=q)
    summary = summarise(runs, gmm, net.n_params)
    write_csv(out / "history.csv", history_rows(runs))
    write_csv(out / "summary.csv", summary)
    (out / "summary.md").write_text(print_table(summary, title) + "\n")
    return runs, gmm, summary


def _color(label: str, i: int) -> Any:
    import matplotlib
    return _COLORS.get(label, matplotlib.colormaps["tab10"](i % 10))


def plot_nll(runs: Sequence[MethodRun], gmm_rows: Sequence[dict[str, Any]], path: Path,
             title: str) -> Path:
    """Fig. 4 style: exact NLL (train solid, held-out dashed) vs updates and vs wall-clock."""
    from dgn_tools.plotting import save_figure, subplots
    fig, axes = subplots(1, 2, figsize=(12, 4.5))
    for i, r in enumerate(runs):
        c = _color(r.label, i)
        h = r.history
        x_up = np.maximum(h["update"], 0.5)           # log axis: update 0 drawn at 0.5
        x_t = np.maximum(h["train_time"], 1e-3)
        for ax, x in zip(axes, (x_up, x_t)):
            ax.plot(x, h["nll_train"], "-", color=c, label=f"{r.label} train")
            ax.plot(x, h["nll_test"], "--", color=c, label=f"{r.label} held-out")
    for g, ls in zip(gmm_rows, (":", "-.", (0, (1, 3)))):
        for ax in axes:
            ax.axhline(g["nll_test"], color="gray", ls=ls, lw=1,
                       label=f"{g['method']} (K={g['components']}) held-out")
    axes[0].set_xlabel("updates (EM iterations / Adam steps; 0 drawn at 0.5)")
    axes[1].set_xlabel("training wall-clock (s; diagnostics excluded; 0 drawn at 1e-3)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_ylabel("exact NLL per point (nats)")
        ax.grid(alpha=0.3)
    lo = min([float(np.nanmin(r.history["nll_train"])) for r in runs]
             + [float(g["nll_test"]) for g in gmm_rows])
    hi = max(float(np.nanpercentile(r.history["nll_test"], 95)) for r in runs)
    if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
        pad = 0.05 * (hi - lo)
        for ax in axes:
            ax.set_ylim(lo - 4 * pad, hi + pad)
    axes[1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_kl(runs: Sequence[MethodRun], path: Path, title: str) -> Path:
    """Fig. 5 style: exact KL(q(z|x) || p(z|x)) of each VAE during training."""
    from dgn_tools.plotting import save_figure, subplots
    fig, ax = subplots(figsize=(6.5, 4.5))
    for i, r in enumerate(runs):
        if r.method != "VAE":
            continue
        h = r.history
        c = _color(r.label, i)
        x = np.maximum(h["update"], 0.5)
        ax.plot(x, h["kl_train"], "-", color=c, label=f"{r.label} train")
        ax.plot(x, h["kl_test"], "--", color=c, label=f"{r.label} held-out")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Adam updates (0 drawn at 0.5)")
    ax.set_ylabel("mean exact KL(q(z|x) || p(z|x)) (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return save_figure(fig, path)


def plot_curves(net0: DGN, runs: Sequence[MethodRun], X: np.ndarray, path: Path, title: str,
                z_range: float = 3.0, equal_aspect: bool = True) -> Path:
    """Learned manifolds g(z), z in [-z_range, z_range] (S = 1, D = 2), over the data."""
    from dgn_tools.plotting import save_figure, subplots
    z = np.linspace(-z_range, z_range, 2001)[:, None]
    n = len(runs) + 1
    fig, axes = subplots(1, n, figsize=(3.3 * n, 3.4))
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = 0.15 * (hi - lo)
    for ax, (label, m) in zip(axes, [("initial DGN", net0)] + [(r.label, r.model) for r in runs]):
        ax.scatter(X[:, 0], X[:, 1], s=3, color="0.6", alpha=0.5)
        g = m.forward(z)
        ax.plot(g[:, 0], g[:, 1], "-", color="C3", lw=1.5)
        ax.plot(*m.forward(np.zeros((1, 1)))[0], "o", color="C3", ms=4)
        ax.set_title(label, fontsize=9)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        if equal_aspect:
            ax.set_aspect("equal", adjustable="box")
    fig.suptitle(title + f"  (g(z) for z in [-{z_range:g}, {z_range:g}]; dot: g(0))")
    return save_figure(fig, path)
