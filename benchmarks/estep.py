"""The full E-step (log p(x) and all posterior moments) of the fast path vs the paper's method.

    python benchmarks/estep.py                 # S = 1 (D = 2, D = 784), S = 2 (D = 2), S = 3 (D = 3)
    python benchmarks/estep.py --quick         # fewer points
    python benchmarks/estep.py --cases s2d2 --points 2000
    python benchmarks/estep.py --cases s2d2 --threads 1 2   # kernel threads (S >= 2)

Measured: (x, region) pairs per second of the full E-step, i.e. for every data point x and
every region w of the partition: log kappa_w(x), mu_w(x), log Phi_w, e0, e1, E2, and per
point log p(x), the posterior mean and covariance. Fast path: the chunked E-step generator
``fastpath.distributions._estep_chunks`` (what EM consumes), with its default certified
pruning (``prune=True``: pairs with e0 < exp(-60) skipped; the pairs are still counted, their
moments are 0) and with ``prune=False`` (every pair integrated). Geometry (the partition and the per-region
cone decompositions) is built before the timing for both methods and timed separately.

Baseline (the paper's own method, measured in the same run on a subset of pairs): per
pair, kappa_w from scipy.stats.multivariate_normal.logpdf on the D x D covariance and the
Gaussian integrals of the region by Delaunay triangulation + Lemma 4 + scipy's
multivariate_normal.cdf (``PaperMethod`` of benchmarks/integrals.py, reused). The ratio
printed is baseline time per pair / fast time per pair. Timings are wall-clock and CPU
(process) time; on a shared machine CPU time is the steadier figure. Targets: S = 1
>= 2,000,000 pairs/s at D = 2 and >= 100,000 at D = 784; S = 2 >= 200,000 at D = 2.

S >= 2 also: the fast E-step with each ``--threads`` count of the compiled kernels
(``fastpath._threads.threads``, one BLAS thread; default 1 and all cores), and, for S = 2,
with the numpy cone sum instead of the compiled one (``fastpath._cones.COMPILED``), all in
the same run, with the load average beside them.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from integrals import PaperMethod
from scipy.special import ndtr
from scipy.stats import multivariate_normal, norm

import fastpath
from fastpath import _cones
from fastpath._threads import max_threads, threads
from fastpath.distributions import _estep_chunks, _model
from verified_dgn import DGN

#: name -> (widths, noise variance, points (full run), points (--quick), baseline pairs)
CASES = {
    "s1d2": ((1, 32, 32, 2), 0.05, 40000, 10000, 200),
    "s1d784": ((1, 32, 784), 0.01, 6000, 1500, 100),
    "s2d2": ((2, 8, 8, 2), 0.05, 2000, 400, 60),
    "s3d3": ((3, 6, 6, 3), 0.05, 200, 40, 12),
}


def _timed(fn, reps: int = 1) -> tuple[float, float]:
    """(wall, cpu) seconds of the best of ``reps`` runs."""
    best_w, best_c = math.inf, math.inf
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best_w = min(best_w, time.perf_counter() - w0)
        best_c = min(best_c, time.process_time() - c0)
    return best_w, best_c


def fast_estep(net, P, X, prune):
    n = 0
    for ch in _estep_chunks(net, P, X, prune=prune):
        n += ch.e0.size
    return n


def paper_estep_s1(net, P, X):
    """The paper's S = 1 E-step, vectorised over all points and regions (the authors' code
    handles S = 1 only): kappa_w from scipy.stats.multivariate_normal.logpdf per region, the
    interval masses Phi(b) - Phi(a) and Tallis moments in float64 (no log space), e0 by
    normalisation. Returns (log p (N,), e0 (N, R), e1 (N, R), E2 (N, R))."""
    Sx_inv = 1.0 / net.noise_var_vector
    N, R = X.shape[0], len(P)
    lk = np.empty((N, R))
    mu = np.empty((N, R))
    sd = np.empty(R)
    lo = np.empty(R)
    hi = np.empty(R)
    for w, r in enumerate(P):
        A, b = np.asarray(r.A)[:, 0], np.asarray(r.b)
        s2 = 1.0 / (1.0 + np.sum(A * A * Sx_inv))
        sd[w] = math.sqrt(s2)
        lk[:, w] = multivariate_normal(mean=b, cov=np.diag(net.noise_var_vector) + np.outer(A, A)
                                       ).logpdf(X)
        mu[:, w] = s2 * ((X - b) * Sx_inv) @ A
        c, d = np.asarray(r.C)[:, 0], np.asarray(r.d)
        hi[w] = min([np.inf] + [dd / cc for cc, dd in zip(c, d) if cc > 0])
        lo[w] = max([-np.inf] + [dd / cc for cc, dd in zip(c, d) if cc < 0])
    a = (lo - mu) / sd
    b = (hi - mu) / sd
    m0 = ndtr(b) - ndtr(a)
    pa, pb = norm.pdf(a), norm.pdf(b)
    apa = np.where(np.isfinite(a), a * pa, 0.0)
    bpb = np.where(np.isfinite(b), b * pb, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t1 = (pa - pb) / m0
        t2 = 1.0 + (apa - bpb) / m0
    m = mu + sd * t1
    M2 = mu * mu + 2 * mu * sd * t1 + sd * sd * t2
    wgt = np.exp(lk) * m0
    px = wgt.sum(axis=1)
    e0 = wgt / px[:, None]
    return np.log(px), e0, e0 * m, e0 * M2


def baseline_pairs(net, P, X, pairs, base):
    """The paper's E-step for the listed (point, region) pairs: log kappa, log m0, moments."""
    Sx = np.diag(net.noise_var_vector)
    Sx_inv = np.diag(1.0 / net.noise_var_vector)
    out = []
    cache = {}
    for n, w in pairs:
        r = P[w]
        if w not in cache:
            A, b = np.asarray(r.A), np.asarray(r.b)
            Sw = np.linalg.inv(np.eye(net.latent_dim) + A.T @ Sx_inv @ A)
            cache[w] = (A, b, 0.5 * (Sw + Sw.T), Sx + A @ A.T)
        A, b, Sw, K = cache[w]
        lk = multivariate_normal(mean=b, cov=K).logpdf(X[n])
        mu = Sw @ A.T @ Sx_inv @ (X[n] - b)
        m0, m1, _ = base[w].moments(mu, Sw)
        out.append((lk, m0, m1))
    return out


def thread_lines(net, P, X, pairs: int, S: int, counts: list[int], reps: int) -> None:
    """The fast E-step (every pair) with each kernel thread count, and for S = 2 with the
    numpy cone sum (one thread): min / median of ``reps`` runs, wall clock."""
    import os

    def timed(fn):
        ws = []
        for _ in range(reps):
            w0 = time.perf_counter()
            fn()
            ws.append(time.perf_counter() - w0)
        return min(ws), float(np.median(ws))

    base = None
    for n in counts:
        with threads(n):
            fast_estep(net, P, X[:50], False)                 # warm the pool
            w, med = timed(lambda: fast_estep(net, P, X, False))
        base = base or w
        print(f"  fast every pair, {n} kernel thread(s): {pairs / w:12,.0f} pairs/s (median "
              f"{pairs / med:,.0f}); {base / w:.2f}x the first count; load "
              f"{os.getloadavg()[0]:.2f}")
    if S == 2:
        _cones.COMPILED[0] = False
        try:
            with threads(1):
                w, med = timed(lambda: fast_estep(net, P, X, False))
        finally:
            _cones.COMPILED[0] = True
        print(f"  fast every pair, numpy cone sum, 1 thread: {pairs / w:12,.0f} pairs/s (median "
              f"{pairs / med:,.0f}); load {os.getloadavg()[0]:.2f}")


def run(name: str, n_points: int, n_base: int, seed: int, reps: int,
        counts: list[int] | None = None) -> None:
    widths, nv, *_ = CASES[name]
    S = widths[0]
    net = DGN.random(widths, activation="relu", seed=seed, noise_var=nv)
    t0 = time.perf_counter()
    P = fastpath.partition(net)
    t_part = time.perf_counter() - t0
    R = len(P)
    X, _ = net.sample(n_points, seed=seed + 1)
    t0 = time.perf_counter()
    fast_estep(net, P, X[:2], True)              # builds and caches the cone decompositions
    t_cones = time.perf_counter() - t0
    print(f"\n{name}: net {widths} relu, noise var {nv}, {R} regions, {n_points} points = "
          f"{n_points * R:,} pairs (partition {t_part:.2f} s, cone geometry {t_cones:.2f} s)")

    pairs = n_points * R
    res = {}
    for prune in (True, False):
        if not prune and S == 1:
            continue                               # S = 1 never prunes (same code path)
        w, c = _timed(lambda prune=prune: fast_estep(net, P, X, prune), reps)
        res[prune] = (w, c)
        tag = "pruned (default)" if prune else "every pair     "
        print(f"  fast {tag}: {pairs / w:12,.0f} pairs/s wall  {pairs / c:12,.0f} pairs/s CPU")

    if S >= 2:
        thread_lines(net, P, X, pairs, S, counts or [1, max_threads()], max(3, reps))

    model = _model(net, P)
    if S == 1:
        # ---- S = 1: the paper's interval E-step, vectorised, on all pairs
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tb_w, tb_c = _timed(lambda: paper_estep_s1(net, P, X), reps)
            lp_b = paper_estep_s1(net, P, X)[0]
        print(f"  paper's method (S = 1 intervals, float64, vectorised): {pairs / tb_w:12,.0f} "
              f"pairs/s wall {pairs / tb_c:12,.0f} pairs/s CPU")
        for w, c in res.values():
            print(f"  RATIO (paper time / fast time): {tb_w / w:8.2f} x wall  {tb_c / c:8.2f} x CPU")
        lp_f = fastpath.log_marginal(net, X, partition=P)
        ok = np.isfinite(lp_b)
        print(f"  paper's log p(x): {int((~ok).sum())} of {len(X)} points not finite (underflow); "
              f"max |log p diff| elsewhere {float(np.max(np.abs(lp_b[ok] - lp_f[ok]))):.1e}")
        return

    # ---- baseline on a subset of pairs (random regions, the first points), one at a time
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        regions = sorted({int(w) for w in rng.permutation(R)[: max(1, n_base // 2)]})
        base = {}
        skipped = 0
        for w in regions:
            if len(P[w].lines):
                skipped += 1
                continue
            base[w] = PaperMethod(P[w])
    t_geo = time.perf_counter() - t0
    regions = sorted(base)
    n_pts = max(1, n_base // max(1, len(regions)))
    sub = [(n, w) for n in range(n_pts) for w in regions][:n_base]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w0, c0 = time.perf_counter(), time.process_time()
        ref = baseline_pairs(net, P, X, sub, base)
        tb_w = (time.perf_counter() - w0) / len(sub)
        tb_c = (time.process_time() - c0) / len(sub)
    print(f"  paper's method (Delaunay + Lemma 4 + scipy cdf, per pair): {1 / tb_w:10,.0f} "
          f"pairs/s wall {1 / tb_c:10,.0f} pairs/s CPU on {len(sub)} pairs "
          f"(geometry {t_geo / max(1, len(base)) * 1e3:.1f} ms/region"
          + (f"; {skipped} regions with lines not supported" if skipped else "") + ")")
    for prune, (w, c) in res.items():
        tag = "pruned" if prune else "every pair"
        print(f"  RATIO (paper time / fast time, {tag}): {tb_w / (w / pairs):10,.0f} x wall  "
              f"{tb_c / (c / pairs):10,.0f} x CPU")

    # ---- agreement on the subset where the region carries real mass (m0 >= 1e-3): the
    # paper's float64 sums cancel in the tails (there its m0 can be <= 0 or off by orders)
    ch = next(_estep_chunks(net, P, X[:n_pts], prune=False))
    forms_lk = ch.log_e0 + ch.log_px[:, None]
    d_m0, d_m, bad = [], [], 0
    for (n, w), (lk, m0, m1) in zip(sub, ref):
        lm_fast = float(forms_lk[n, w]) - float(lk)             # fast log m0 (same kappa)
        if not (m0 > 0 and np.all(np.isfinite(m1))):
            bad += 1
            continue
        if lm_fast > math.log(1e-3):
            d_m0.append(abs(math.log(m0) - lm_fast))
            sd = math.sqrt(float(np.linalg.norm(model.cov_z[w], 2)))
            d_m.append(float(np.max(np.abs(m1 - ch.cmean[n, w]))) / sd)
    msg = f"  fast vs paper on the subset: paper's m0 <= 0 or NaN on {bad} of {len(sub)} pairs"
    if d_m0:
        msg += (f"; where m0 >= 1e-3 ({len(d_m0)} pairs): max |log m0| diff {max(d_m0):.1e}, "
                f"max E[z|w] diff {max(d_m):.1e} posterior sd")
    print(msg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--points", type=int, default=None, help="data points per case")
    ap.add_argument("--baseline", type=int, default=None, help="pairs timed for the baseline")
    ap.add_argument("--reps", type=int, default=2, help="fast runs (best is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="kernel thread counts timed for S >= 2 (default: 1 and all cores)")
    a = ap.parse_args()
    try:
        from threadpoolctl import threadpool_info
        blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info())
    except ImportError:
        blas = "threadpoolctl not installed"
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}; "
          f"BLAS: {blas}")
    for name in a.cases:
        _, _, full, quick, nb = CASES[name]
        run(name, a.points or (quick if a.quick else full), a.baseline or nb, a.seed,
            1 if a.quick else a.reps, a.threads)


if __name__ == "__main__":
    main()
