"""One call of the fast path (one polyhedron, one Gaussian) against the paper's method.

    python benchmarks/one_shot.py                         # S = 2 and 3, this tree only
    python benchmarks/one_shot.py --old /tmp/old_oneshot  # also a baseline tree (a git
                                                          # worktree: git worktree add
                                                          # /tmp/old_oneshot d12422e)

Polytopes: ~20 regions (no lines) of a real partition of a random ReLU net (the nets of
benchmarks/integrals.py), half the most probable for the first data point, half random,
each with the E-step Gaussian N(mu_r(x), Sigma_r) of the data point x (of 4 x batch) for
which the region's mass bound is largest; only regions where that bound is above e^-20
(far pairs, which an E-step skips by their bound, would time the far-tail slices).
Timed per call, as a user calls it:

* fast: ``fastpath.gaussian_moments(C, d, mean, cov)`` (validation, standardisation,
  geometry from the H-representation, cones, moments); at S = 2 the compiled one-call
  lane (fastpath/_one_shot.py) takes the calls it can; its verdicts per call are printed,
  and the same calls with the lane off (the general path);
* paper: the paper's method of benchmarks/integrals.py (imported, not copied): Delaunay
  triangulation of the region from its V-representation (given for free), Lemma 4,
  scipy's multivariate normal cdf, per call;
* batched: ``ConeBatch.truncated_moments`` over the same regions x ``--batch`` Gaussians
  (the E-step's layout; geometry precomputed; each region's next most probable
  points), time per (region, Gaussian) pair.

Each tree is timed in its own fresh process (PYTHONPATH), on the same pickled inputs; each
figure is the min and median of 3 repetitions of the whole set; one BLAS thread; the load
average is printed beside. Numba's thread count is printed (``--numba-threads`` sets it).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPS = 3


def _child(tree: str, data_path: str, batch: int, paper: bool) -> None:
    """Time one tree (its fastpath first on sys.path) and print a JSON line."""
    sys.path.insert(0, tree)
    import warnings

    import numpy as np

    import fastpath  # noqa: F401  (this tree's, before benchmarks/integrals adds ROOT)
    from fastpath.integrals import ConeBatch, PolyhedronCones, gaussian_moments

    with open(data_path, "rb") as fh:
        cases = pickle.load(fh)
    out: dict[str, object] = {"tree": tree}
    try:
        import numba
        out["numba_threads"] = int(numba.get_num_threads())
    except ImportError:
        out["numba_threads"] = None

    def rep_times(fn) -> list[float]:
        fn()                                            # warm: caches, compiled kernels
        ts = []
        for _ in range(REPS):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) / len(cases))
        return ts

    def fast() -> None:
        for c in cases:
            gaussian_moments(c["C"], c["d"], c["mu"], c["cov"])

    out["fast"] = rep_times(fast)
    # the geometry alone (H -> V of the raw rows), and in this tree with the LP + qhull
    from fastpath._polyhedron import polyhedron_geometry

    out["geometry"] = rep_times(lambda: [polyhedron_geometry(c["C"], c["d"]) for c in cases])
    try:
        out["geometry_lp"] = rep_times(lambda: [polyhedron_geometry(c["C"], c["d"],
                                                                    enumerate_small=False)
                                                for c in cases])
    except TypeError:                                   # a tree without the enumeration
        pass
    out["fast_m0"] = [float(gaussian_moments(c["C"], c["d"], c["mu"], c["cov"])[0])
                      for c in cases]
    # the compiled one-call lane: which calls it took, and the time of the rest alone
    try:
        from fastpath import _one_shot
        from fastpath._jit_one_shot import REASONS
    except ImportError:                                 # a tree without the lane
        pass
    else:
        _one_shot.COUNTS.clear()
        _one_shot.COUNTING[0] = True
        for c in cases:
            gaussian_moments(c["C"], c["d"], c["mu"], c["cov"])
        _one_shot.COUNTING[0] = False
        # S = 3: statuses of the geometry kernel, and 100 + those of the cone kernel
        out["lane"] = {("cones: " if k >= 100 else "") + REASONS[k % 100]: v
                       for k, v in sorted(_one_shot.COUNTS.items())}
        _one_shot.ENABLED[0] = False
        out["general"] = rep_times(fast)
        _one_shot.ENABLED[0] = True
    if paper:
        sys.path.insert(1, str(ROOT / "benchmarks"))
        import integrals as bench

        class Region:  # the V-representation PaperMethod reads
            def __init__(self, c):
                self.vertices, self.rays, self.lines = c["V"], c["R"], np.zeros((0, len(c["mu"])))

        def paper_fn() -> None:
            bench._QMC_RNG[0] = np.random.default_rng(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for c in cases:
                    bench.PaperMethod(Region(c)).moments(c["mu"], c["cov"])

        out["paper"] = rep_times(paper_fn)
    # batched: all regions x `batch` Gaussians in one call, geometry precomputed
    cones = ConeBatch([PolyhedronCones.from_halfspaces(c["C"], c["d"]) for c in cases])
    mu_b = np.stack([c["mu_batch"][:batch] for c in cases], axis=1)          # (n, R, S)
    cov_b = np.stack([c["cov"] for c in cases])                              # (R, S, S)
    ts = []
    cones.truncated_moments(mu_b[:2], cov_b)
    for _ in range(REPS):
        t0 = time.perf_counter()
        lm_b, _, _ = cones.truncated_moments(mu_b, cov_b)
        ts.append((time.perf_counter() - t0) / mu_b.shape[0] / len(cases))
    out["batched"] = ts
    out["batched_lm"] = lm_b[:4].tolist()
    print("RESULT " + json.dumps(out))


def _make_cases(S: int, n_regions: int, batch: int, seed: int) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(1, str(ROOT / "benchmarks"))
    import integrals as bench
    import numpy as np

    import fastpath
    from verified_dgn import DGN

    net = DGN.random(bench.NETS[S], activation="relu", seed=seed, noise_var=0.05)
    P = fastpath.partition(net)
    n_pts = max(4 * batch, 200)
    mu, cov = bench.estep_gaussians(net, P, n_pts, seed + 1)
    rng = np.random.default_rng(seed)
    lm = fastpath.integrals.ConeBatch.from_partition(P).log_mass_bound(mu, cov)  # (n, R)
    # regions without lines that matter to some data point (bound above e^-20: the far
    # pairs, which an E-step skips by their bound, would time the far-tail slices)
    ok = [r for r in range(len(P)) if not len(P[r].lines) and np.max(lm[:, r]) > -20.0]
    top = [r for r in np.argsort(-lm[0]) if r in ok][: n_regions // 2]
    rest = [r for r in rng.permutation(ok) if r not in top][: n_regions - len(top)]
    cases = []
    for r in [int(x) for x in list(top) + list(rest)]:
        reg = P[r]
        # the data points for which region r matters most (an E-step evaluates those
        # pairs; it skips the far ones by their bound): one for the single call, the
        # next `batch` for the batched timing
        order = np.argsort(-lm[:, r], kind="stable")
        cases.append(dict(C=np.asarray(reg.C, float), d=np.asarray(reg.d, float),
                          V=np.asarray(reg.vertices, float), R=np.asarray(reg.rays, float),
                          mu=mu[order[0], r].copy(), cov=cov[r].copy(),
                          mu_batch=mu[order[1:batch + 1], r].copy()))
    return cases


def _run_tree(tree: str, data: str, batch: int, paper: bool, threads: int | None) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=tree)
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--child", tree, "--data", data, "--batch", str(batch)]
    if paper:
        cmd.append("--paper")
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    for line in res.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child for {tree} failed:\n{res.stdout}\n{res.stderr}")


def _fmt(ts: list[float], unit: float = 1e6) -> str:
    s = sorted(ts)
    return f"{s[0] * unit:8.1f} / {s[len(s) // 2] * unit:8.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    ap.add_argument("--regions", type=int, default=20)
    ap.add_argument("--batch", type=int, default=50, help="Gaussians per region (batched)")
    ap.add_argument("--this", default=str(ROOT), help="the tree to time (default: this one)")
    ap.add_argument("--old", default=None, help="a baseline tree (git worktree) to time beside")
    ap.add_argument("--numba-threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--data", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--paper", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.data, a.batch, a.paper)
        return
    import numpy as np

    trees = [("this", a.this)] + ([("old", a.old)] if a.old else [])
    for S in a.dims:
        cases = _make_cases(S, a.regions, a.batch, a.seed)
        with tempfile.NamedTemporaryFile(suffix=".pkl", delete=False) as fh:
            pickle.dump(cases, fh)
            data = fh.name
        try:
            res = {name: _run_tree(t, data, a.batch, name == "this", a.numba_threads)
                   for name, t in trees}
        finally:
            os.unlink(data)
        this = res["this"]
        m = [len(c["d"]) for c in cases]
        print(f"\nS = {S}: {len(cases)} regions ({min(m)}-{max(m)} rows), load "
              f"{os.getloadavg()[0]:.2f}, numba threads {this['numba_threads']}; "
              "us per call, min / median of 3")
        paper = this["paper"]
        print(f"  paper's method (Delaunay + Lemma 4 + scipy cdf): {_fmt(paper)}")
        for name, _ in trees:
            r = res[name]
            print(f"  {name:>4} gaussian_moments one call:            {_fmt(r['fast'])}   "
                  f"paper / fast = {min(paper) / min(r['fast']):6.1f} x (min), "
                  f"{sorted(paper)[1] / sorted(r['fast'])[1]:6.1f} x (median)")
        for name, _ in trees:
            r = res[name]
            if "lane" in r:
                print(f"  {name:>4} compiled lane verdicts: {r['lane']}; lane off (general "
                      f"path): {_fmt(r['general'])}   paper / general = "
                      f"{min(paper) / min(r['general']):6.1f} x (min)")
        for name, _ in trees:
            r = res[name]
            print(f"  {name:>4} geometry alone (polyhedron_geometry):  {_fmt(r['geometry'])}"
                  + (f"   (LP + qhull: {_fmt(r['geometry_lp'])})" if "geometry_lp" in r else ""))
        for name, _ in trees:
            r = res[name]
            print(f"  {name:>4} batched, per (region, Gaussian) pair:   {_fmt(r['batched'])}")
        if "old" in res:
            f0, f1 = np.array(res["old"]["fast_m0"]), np.array(this["fast_m0"])
            rel = np.max(np.abs(f1 - f0) / np.maximum(np.abs(f0), 1e-300))
            lb0, lb1 = np.array(res["old"]["batched_lm"]), np.array(this["batched_lm"])
            fin = np.isfinite(lb0)
            print(f"  this vs old: m0 one call max rel diff {rel:.1e}; batched log m0 max "
                  f"abs diff {np.max(np.abs(lb1[fin] - lb0[fin])):.1e}; batched this/old "
                  f"time {min(this['batched']) / min(res['old']['batched']):.2f} (min)")


if __name__ == "__main__":
    main()
