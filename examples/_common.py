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
import contextlib
import csv
import math
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
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
    p.add_argument("--em-restarts", type=int, default=3,
                   help="also report 'EM best of R' (fastpath.fit_em(n_init=R)): EM from the "
                   "experiment's initial DGN and from R - 1 seeded random starts, keeping the "
                   "run with the best final training log-likelihood (1: plain EM only)")
    p.add_argument("--seeds", type=int, default=None,
                   help="run seeds --seed .. --seed + K - 1 (each its own data split, initial "
                   "DGN, restarts, VAE and GMM seeds) and write per-seed rows (seeds.csv), the "
                   "aggregate table (summary.md) and one figure with spread bands")
    p.add_argument("--jobs", type=int, default=2,
                   help="with --seeds: worker processes (one thread each); 1 runs in-process")
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
           score_test: bool = True, label: str = "EM", **kw: Any) -> MethodRun:
    """EM (:func:`fastpath.fit_em`) from ``net`` with the exact NLL after every iteration.

    Training NLL and wall-clock come from EM itself (its exact log p(X) history and
    cumulative times); the held-out NLL of every iterate (kept by the callback) is computed
    after training and not timed (``score_test=False``: left NaN, the iterates kept in
    ``info["iterates"]`` for :func:`score_held_out`). EM stops early when the per-point gain
    of an iteration falls below ``tol`` (its convergence rule).
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
    hist, info = _em_record(res, X.shape[0], iterates)
    run = MethodRun("EM", label, float("nan"), res.model, hist, info)
    if score_test:
        score_held_out(run, X_test)
    log(f"  {label}: {res.n_iter} iterations ({'converged' if res.converged else 'not converged'}),"
        f" {hist['train_time'][-1]:.1f} s, NLL train {hist['nll_train'][-1]:.4f}"
        + (f", held-out {hist['nll_test'][-1]:.4f}" if score_test else ""), quiet)
    return run


def _em_record(res: Any, n_points: int, iterates: list[DGN]) -> tuple[dict, dict]:
    """The history columns and the info of one EM run (``res``: a fit_em result; held-out
    NLLs left NaN for :func:`score_held_out`)."""
    n = len(res.log_likelihood)
    hist = {"update": np.arange(n, dtype=np.float64),
            "train_time": np.asarray(res.times, dtype=np.float64),
            "nll_train": -np.asarray(res.log_likelihood, dtype=np.float64) / n_points,
            "nll_test": np.full(n, np.nan),
            "noise_var": np.array([float(np.mean(v)) for v in res.noise_var]),
            "n_regions": np.asarray(res.n_regions, dtype=np.float64)}
    info = {"converged": bool(res.converged), "n_iter": int(res.n_iter),
            "noise_floor_hit": bool(len(res.noise_floor_hit)), "result": res,
            "iterates": iterates}
    return hist, info


def score_held_out(run: MethodRun, X_test: np.ndarray) -> None:
    """Fill ``run``'s held-out NLL history from its kept EM iterates (not timed)."""
    run.history["nll_test"] = np.array(
        [-float(np.mean(fastpath.log_marginal(m, X_test))) for m in run.info["iterates"]])


def run_em_starts(net: DGN, X: np.ndarray, X_test: np.ndarray, max_iter: int, n_init: int, *,
                  tol: float = 1e-6, seed: int = 0, noise_floor: float = 1e-6,
                  quiet: bool = False, **kw: Any) -> list[MethodRun]:
    """EM and "EM best of R" from one :func:`fastpath.fit_em` call with ``n_init=R``.

    Start 0 is ``net`` (its run is bit for bit the plain EM run of :func:`run_em`: reported
    as "EM"); starts 1..R-1 are fit_em's seeded random nets of the same architecture. The
    kept run has the largest final training log-likelihood (fit_em's choice without
    held-out data: the held-out data play no part in it). Its history ("EM best of R") is
    placed after the other runs: updates and training time are shifted by the iterations
    and time of the runs not kept, so its x-axis is the total cost of the R runs (they run
    one after another). The held-out NLL of every iterate is computed after training and
    not timed.
    """
    # start k's initial model (to score its held-out NLL at update 0)
    from fastpath._em_starts import random_start

    models: list[DGN] = []

    def keep(it: Any) -> None:
        models.append(it.model)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fastpath.fit_em(net, X, max_iter=max_iter, tol=tol, seed=seed, n_init=n_init,
                              noise_floor=noise_floor, callback=keep, **kw)
    results = list(res.init_results) if n_init > 1 else [res]
    best = int(res.best_init) if n_init > 1 else 0
    runs = []
    pos = 0
    for k, r in enumerate(results):
        ll = np.asarray(r.log_likelihood, dtype=np.float64)
        n = len(ll)
        start = net if k == 0 else random_start(net, seed, k)
        lp0 = float(np.sum(fastpath.log_marginal(start, X)))
        if not np.isclose(lp0, ll[0], rtol=1e-9, atol=1e-9):   # pragma: no cover
            raise RuntimeError(f"start {k}: initial log p(X) {ll[0]} but the rebuilt start "
                               f"gives {lp0}")
        hist, info = _em_record(r, X.shape[0], [start, *models[pos:pos + n - 1]])
        pos += n - 1
        runs.append(MethodRun("EM", "EM" if k == 0 else f"EM start {k}", float("nan"),
                              r.model, hist, info))
    if pos != len(models):   # pragma: no cover - one callback per iteration
        raise RuntimeError(f"EM reported {pos} iterations but called back {len(models)}")
    em = runs[0]
    score_held_out(em, X_test)
    out = [em]
    finals = [r.final("nll_train") for r in runs]
    log(f"  EM: {em.info['n_iter']} iterations, {em.final('train_time'):.1f} s, NLL train "
        f"{finals[0]:.4f}, held-out {em.final('nll_test'):.4f}", quiet)
    if n_init > 1:
        chosen = runs[best]
        if best != 0:
            score_held_out(chosen, X_test)
        others = [r for i, r in enumerate(runs) if i != best]
        hist = {k: np.array(v, copy=True) for k, v in chosen.history.items()}
        hist["update"] = hist["update"] + sum(r.history["update"][-1] for r in others)
        hist["train_time"] = hist["train_time"] + sum(r.final("train_time") for r in others)
        label = f"EM best of {n_init}"
        out.append(MethodRun("EM", label, float("nan"), chosen.model, hist,
                             dict(chosen.info, chosen=best, start_nll_train=finals)))
        log(f"  {label}: final training NLLs {', '.join(f'{v:.4f}' for v in finals)}; kept "
            f"start {best}, {hist['train_time'][-1]:.1f} s in all, NLL train "
            f"{hist['nll_train'][-1]:.4f}, held-out {hist['nll_test'][-1]:.4f}", quiet)
    return out


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
            "kept_start": r.info.get("chosen", ""),
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


@dataclass
class Setup:
    """One seed of an experiment: its data, initial DGN and training budgets."""

    net: DGN
    X: np.ndarray
    X_test: np.ndarray
    em_iter: int
    epochs: int
    batch: int
    lrs: list[float]
    title: str
    seed: int


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """BLAS (threadpoolctl) and torch at one thread: every seed of every experiment runs
    like this, in a worker process or not, so a seed's numbers do not depend on how many
    seeds ran beside it."""
    from threadpoolctl import threadpool_limits
    try:
        import torch
    except ImportError:   # pragma: no cover - the VAEs need torch
        torch = None
    old = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None and old is not None:
                torch.set_num_threads(old)


def run_methods(s: Setup, args: argparse.Namespace
                ) -> tuple[list[MethodRun], list[dict[str, Any]], list[dict[str, Any]]]:
    """EM (unless ``--skip-em``), "EM best of R" (``--em-restarts`` R > 1), one VAE per
    learning rate and the GaussianMixture baselines for one seed, each at one thread.
    Returns (runs, gmm rows, summary rows)."""
    q = args.quiet
    runs: list[MethodRun] = []
    with one_thread():
        if not args.skip_em:
            runs += run_em_starts(s.net, s.X, s.X_test, s.em_iter, max(1, args.em_restarts),
                                  seed=s.seed, quiet=q, n_jobs=1)
        runs += run_vaes(s.net, s.X, s.X_test, s.lrs, s.epochs, s.batch, s.seed,
                         args.eval_every, learn_noise=not args.fixed_noise, quiet=q,
                         n_evals=args.n_evals)
        gmm = gmm_baseline(s.X, s.X_test, s.net.n_params, s.seed, quiet=q)
    for r in runs:
        r.info.pop("iterates", None)
    return runs, gmm, summarise(runs, gmm, s.net.n_params)


def run_and_report(s: Setup, args: argparse.Namespace, out: Path
                   ) -> tuple[list[MethodRun], list[dict[str, Any]], list[dict[str, Any]]]:
    """The experiment every figure script runs for one seed (:func:`run_methods`); writes
    ``history.csv``, ``summary.csv`` and ``summary.md`` (the table, titled ``s.title``) to
    ``out``. Returns (runs, gmm rows, summary rows)."""
    runs, gmm, summary = run_methods(s, args)
    write_csv(out / "history.csv", history_rows(runs))
    write_csv(out / "summary.csv", summary)
    with atomic_open(out / "summary.md", "w") as fh:
        fh.write(print_table(summary, s.title) + "\n")
    return runs, gmm, summary


# --------------------------------------------------------------------------- several seeds
_SCRIPTS: dict[str, Any] = {}


def _load_script(path: str) -> Any:
    """The experiment script at ``path`` as a module (once per process)."""
    if path not in _SCRIPTS:
        import importlib.util
        spec = importlib.util.spec_from_file_location(f"_dgn_example_{Path(path).stem}", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _SCRIPTS[path] = mod
    return _SCRIPTS[path]


def _worker_init() -> None:
    """A seed worker: one thread for BLAS, torch (and numba, unused at S = 1)."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1)
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:   # pragma: no cover
        pass


def seed_result(script: str, argv: Sequence[str], seed: int) -> dict[str, Any]:
    """Run one seed of the experiment ``script`` (its ``parser()`` and ``setup(args, seed)``)
    with the command line ``argv``; returns plain data (picklable): the summary rows and the
    histories of every method, the GMM rows and the seed's wall-clock."""
    t0 = time.perf_counter()
    mod = _load_script(script)
    args = mod.parser().parse_args(list(argv))
    args.quiet = True
    s = mod.setup(args, seed)
    runs, gmm, summary = run_methods(s, args)
    return {"seed": seed, "summary": summary, "gmm": gmm, "title": s.title,
            "histories": {r.label: {k: np.asarray(v) for k, v in r.history.items()} for r in runs},
            "em_chosen": next((r.info.get("chosen") for r in runs if "chosen" in r.info), None),
            "wall": time.perf_counter() - t0}


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def run_seeds(script: str, argv: Sequence[str] | None, args: argparse.Namespace, out: Path,
              title: str) -> dict[str, Any]:
    """``--seeds K``: seeds ``--seed`` .. ``--seed`` + K - 1 in ``--jobs`` worker processes
    (spawned, one thread each; ``--jobs 1``: in this process). Writes ``seeds.csv`` (one row
    per seed and method), ``seeds_history.csv`` (every evaluation), ``summary.csv`` and
    ``summary.md`` (mean ± std, min, max over seeds; EM against each VAE seed by seed),
    ``per_seed.md`` and the figure ``nll_seeds.png`` (unless ``--no-plots``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    seeds = list(range(args.seed, args.seed + args.seeds))
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    if args.jobs <= 1:
        for sd in seeds:
            results.append(seed_result(script, argv, sd))
            log(f"seed {sd} done ({results[-1]['wall']:.0f} s)", args.quiet)
    else:
        import concurrent.futures as cf
        import multiprocessing as mp
        import os
        saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        os.environ.update({k: "1" for k in _THREAD_VARS})   # inherited by the workers
        try:
            with cf.ProcessPoolExecutor(max_workers=min(args.jobs, len(seeds)),
                                        mp_context=mp.get_context("spawn"),
                                        initializer=_worker_init) as pool:
                futs = {pool.submit(seed_result, script, argv, sd): sd for sd in seeds}
                for fut in cf.as_completed(futs):
                    results.append(fut.result())
                    log(f"seed {futs[fut]} done ({results[-1]['wall']:.0f} s, "
                        f"{time.perf_counter() - t0:.0f} s elapsed)", args.quiet)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    results.sort(key=lambda r: r["seed"])
    wall = time.perf_counter() - t0
    import pickle
    with atomic_open(out / "seeds_results.pkl", "wb") as fh:   # for re-plotting: plot_seeds
        pickle.dump(results, fh)
    rows = [dict({"seed": r["seed"]}, **row, seed_wall_s=r["wall"]) for r in results
            for row in r["summary"]]
    write_csv(out / "seeds.csv", rows)
    write_csv(out / "seeds_history.csv",
              [dict({"seed": r["seed"], "method": m}, **{k: float(v[i]) for k, v in h.items()})
               for r in results for m, h in r["histories"].items()
               for i in range(len(h["update"]))])
    agg = aggregate(rows)
    write_csv(out / "summary.csv", agg)
    head = (f"{title}; {len(seeds)} seeds ({seeds[0]}-{seeds[-1]}), {args.jobs} worker "
            f"process(es), {wall:.0f} s wall-clock")
    text = aggregate_table(agg, head) + "\n\n" + compare_table(rows)
    with atomic_open(out / "summary.md", "w") as fh:
        fh.write(text + "\n")
    with atomic_open(out / "per_seed.md", "w") as fh:
        fh.write(per_seed_table(rows) + "\n")
    log(text, args.quiet)
    fig = None
    if not args.no_plots:
        fig = plot_seeds(results, out / "nll_seeds.png", f"{title}: {len(seeds)} seeds")
    log(f"{len(seeds)} seeds in {wall:.0f} s wall-clock ({args.jobs} jobs); wrote {out}",
        args.quiet)
    return {"results": results, "rows": rows, "aggregate": agg, "out": out, "figure": fig,
            "wall": wall}


_AGG_KEYS = ("nll_train", "nll_test", "train_time", "time_to_final", "updates", "kl_train",
             "kl_test", "em_time_to_this_nll")


def _methods(rows: Sequence[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for r in rows:
        if r["method"] not in out:
            out.append(r["method"])
    return out


def _float(v: Any) -> float:
    """A number of a row (in memory or read back from seeds.csv); NaN for '' / None."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method: mean, sample std (ddof 1), min and max over seeds of each number, and the
    count of seeds where it is finite (``em_time_to_this_nll`` is NaN where EM never reached
    that VAE's final training NLL)."""
    out = []
    for m in _methods(rows):
        sub = [r for r in rows if r["method"] == m]
        row: dict[str, Any] = {"method": m, "n_seeds": len(sub)}
        if sub[0].get("components", "") != "":
            row["components"] = sub[0]["components"]
        for k in _AGG_KEYS:
            v = np.array([_float(r.get(k)) for r in sub], dtype=np.float64)
            ok = v[np.isfinite(v)]
            row[f"{k}_n"] = int(ok.size)
            row[f"{k}_mean"] = float(ok.mean()) if ok.size else float("nan")
            row[f"{k}_std"] = float(ok.std(ddof=1)) if ok.size > 1 else float("nan")
            row[f"{k}_min"] = float(ok.min()) if ok.size else float("nan")
            row[f"{k}_max"] = float(ok.max()) if ok.size else float("nan")
        out.append(row)
    return out


def _num(v: Any, fmt: str) -> str:
    x = float(v)
    return "–" if math.isnan(x) else format(x, fmt)


def aggregate_table(agg: Sequence[dict[str, Any]], title: str) -> str:
    """Markdown: per method, mean ± std [min, max] over seeds."""
    lines = [f"**{title}**", "",
             "| method | NLL train: mean ± std [min, max] | NLL held-out: mean ± std [min, max] "
             "| training time (s): mean ± std | KL(q‖p) train / held-out: mean |",
             "|---|---|---|---|---|"]

    def ms(a: dict[str, Any], k: str, fmt: str = ".3f") -> str:
        return (f"{_num(a[k + '_mean'], fmt)} ± {_num(a[k + '_std'], fmt)} "
                f"[{_num(a[k + '_min'], fmt)}, {_num(a[k + '_max'], fmt)}]")

    for a in agg:
        kl = ("–" if math.isnan(a["kl_train_mean"]) else
              f"{_num(a['kl_train_mean'], '.3f')} / {_num(a['kl_test_mean'], '.3f')}")
        t = f"{_num(a['train_time_mean'], '.2f')} ± {_num(a['train_time_std'], '.2f')}"
        name = a["method"] + (f" (K={a['components']})" if "components" in a else "")
        lines.append(f"| {name} | {ms(a, 'nll_train')} | {ms(a, 'nll_test')} | {t} "
                     f"| {kl} |")
    return "\n".join(lines)


def compare_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: each EM variant against each VAE (the paper's claim) and the full-covariance
    GaussianMixture, seed by seed."""
    methods = _methods(rows)
    ems = [m for m in methods if m.startswith("EM")]
    vaes = [m for m in methods if m.startswith("VAE")] + [m for m in methods if m == "GMM full"]
    by = {(r["seed"], r["method"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    lines = ["| EM variant vs other | seeds EM lower, train | seeds EM lower, held-out "
             "| NLL train gap (other - EM): mean [min, max] | held-out gap: mean [min, max] "
             "| EM reached the VAE's final train NLL (seeds) | ... in median (s) | VAE's own "
             "training time, median (s) |", "|---|---|---|---|---|---|---|---|"]
    for e in ems:
        for v in vaes:
            pairs = [(by[(s, e)], by[(s, v)]) for s in seeds if (s, e) in by and (s, v) in by]
            if not pairs:
                continue
            n = len(pairs)
            gtr = np.array([float(b["nll_train"]) - float(a["nll_train"]) for a, b in pairs])
            gte = np.array([float(b["nll_test"]) - float(a["nll_test"]) for a, b in pairs])
            line = (f"| {e} vs {v} | {int(np.sum(gtr > 0))}/{n} | {int(np.sum(gte > 0))}/{n} "
                    f"| {gtr.mean():+.3f} [{gtr.min():+.3f}, {gtr.max():+.3f}] "
                    f"| {gte.mean():+.3f} [{gte.min():+.3f}, {gte.max():+.3f}] |")
            if e == "EM" and v.startswith("VAE"):
                reach = np.array([_float(b.get("em_time_to_this_nll"))
                                  for _, b in pairs])
                ok = reach[np.isfinite(reach)]
                vt = np.array([float(b["train_time"]) for _, b in pairs])
                line += (f" {ok.size}/{n} | {_num(np.median(ok), '.2f') if ok.size else '–'} "
                         f"| {np.median(vt):.2f} |")
            else:
                line += " – | – | – |"
            lines.append(line)
    return "\n".join(lines)


def per_seed_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: NLL train / held-out of every method for every seed."""
    methods = _methods(rows)
    by = {(r["seed"], r["method"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    lines = ["| seed | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for sd in seeds:
        cells = []
        for m in methods:
            r = by.get((sd, m))
            cells.append("–" if r is None else
                         f"{_num(r['nll_train'], '.3f')} / {_num(r['nll_test'], '.3f')}")
        lines.append(f"| {sd} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _step_at(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The value of the last evaluation at or before each grid point (the curve held after
    its end: the method has stopped)."""
    i = np.searchsorted(x, grid, side="right") - 1
    return y[np.clip(i, 0, len(y) - 1)]


def plot_seeds(results: Sequence[dict[str, Any]], path: Path, title: str,
               band: tuple[float, float] = (10.0, 90.0)) -> Path:
    """Exact NLL (rows: train, held-out) against updates and training wall-clock (columns)
    over seeds: per method the mean curve and the ``band`` percentile band across seeds
    (each seed's curve held at its last value after it ends); GaussianMixtures as
    horizontal lines (mean) with bands (same percentiles)."""
    from dgn_tools.plotting import save_figure, subplots
    fig, axes = subplots(2, 2, figsize=(13, 9))
    labels = list(results[0]["histories"])
    lo = {0: math.inf, 1: math.inf}
    hi = {0: -math.inf, 1: -math.inf}
    for i, lab in enumerate(labels):
        hs = [r["histories"][lab] for r in results if lab in r["histories"]]
        c = _color(lab, i)
        g_up = np.unique(np.concatenate([h["update"] for h in hs]))
        t_end = max(float(h["train_time"][-1]) for h in hs)
        t_first = min(float(h["train_time"][h["train_time"] > 0].min()) if
                      np.any(h["train_time"] > 0) else 1e-3 for h in hs)
        g_t = np.geomspace(max(t_first, 1e-3), max(t_end, 2e-3), 300)
        for row, key in enumerate(("nll_train", "nll_test")):
            for col, (xk, grid) in enumerate((("update", g_up), ("train_time", g_t))):
                Y = np.array([_step_at(h[xk], h[key], grid) for h in hs])
                mean = np.mean(Y, axis=0)
                plo, phi = np.percentile(Y, band, axis=0)
                x = np.maximum(grid, 0.5) if xk == "update" else grid
                ax = axes[row, col]
                ax.plot(x, mean, "-", color=c, lw=1.6, label=f"{lab} (mean)")
                ax.fill_between(x, plo, phi, color=c, alpha=0.18, lw=0)
                if col == 0:
                    lo[row] = min(lo[row], float(np.min(plo)))
                    hi[row] = max(hi[row], float(np.percentile(mean, 95)))
    gmm_names = [g["method"] for g in results[0]["gmm"]]
    for j, (name, ls) in enumerate(zip(gmm_names, (":", "-.", (0, (1, 3))))):
        for row, key in enumerate(("nll_train", "nll_test")):
            v = np.array([next(g[key] for g in r["gmm"] if g["method"] == name) for r in results])
            plo, phi = np.percentile(v, band)
            shade = ("0.35", "0.55", "0.7")[j]
            for ax in axes[row]:
                ax.axhline(float(v.mean()), color=shade, ls=ls, lw=1.2,
                           label=f"{name} (mean, band)")
                ax.axhspan(plo, phi, color=shade, alpha=0.12, lw=0)
            if row == 1 and name == "GMM full":
                lo[row] = min(lo[row], float(plo))
    for row, what in enumerate(("training data", "held-out data")):
        for col in range(2):
            ax = axes[row, col]
            ax.set_xscale("log")
            ax.grid(alpha=0.3)
            ax.set_ylabel(f"exact NLL per point, {what} (nats)")
        if np.isfinite(lo[row]) and np.isfinite(hi[row]) and hi[row] > lo[row]:
            pad = 0.05 * (hi[row] - lo[row])
            for ax in axes[row]:
                ax.set_ylim(lo[row] - 2 * pad, hi[row] + pad)
    for col, xl in enumerate(("updates (EM iterations / Adam steps; 0 drawn at 0.5)",
                              "training wall-clock (s; VAE diagnostics excluded)")):
        axes[1, col].set_xlabel(xl)
    axes[0, 1].legend(fontsize=7, loc="upper right")
    fig.suptitle(f"{title}\nlines: mean over seeds; bands: {band[0]:g}th-{band[1]:g}th "
                 "percentile across seeds", fontsize=10)
    return save_figure(fig, path)


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
