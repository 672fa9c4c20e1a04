"""The compiled k = 3 kernel (fastpath/_jit_tvn.py) vs the numpy kernel, side by side.

    OPENBLAS_NUM_THREADS=1 python benchmarks/tvn_jit.py            # random + E-step inputs
    python benchmarks/tvn_jit.py --points 20 --random 20000

Inputs: (a) random standardised problems (bounds uniform in +-3 or +-30, correlations
uniform on the elliptope, 10% with one correlation within 1e-8..1e-1 of +-1, 10% with one
tiny correlation 1e-13..1e-10); (b) the trivariate problems the S = 3 E-step produces
(benchmarks/estep.py case s3d3, ``--points`` data points), captured by wrapping
``_log_mvn_cdf_std`` where the cone algebra calls it.

Printed per input set: elements/s (min/median of 3 runs, one BLAS thread) of the numpy
kernel (``_tvn._log_tvn_numpy``, the baseline, one thread) and of the compiled one as the
library calls it (``_tvn._log_tvn``) with 1 and 2 numba threads, with the load average; the
fraction of elements the compiled kernel declines (filled by the numpy kernel), integrand
evaluations per element; the difference of the two kernels per band of log P (|d log P| =
relative difference of P), and for log P > -100 the numpy kernel's own two routes
(Plackett vs the conditioning integral ``_log_mvn_sov``) beside it; with ``--exact N``, both
kernels against verified_dgn's exact orthant probability (20 digits) on N elements per band
down to log P = -1000.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
from numpy.typing import NDArray
from orthant_inputs import random_tvn

import fastpath
import fastpath._cone_algebra as _ca
from fastpath._estep_statistics import estep_statistics
from fastpath._tvn import _log_mvn_sov, _log_tvn, _log_tvn_numpy, correlation_matrices
from verified_dgn import DGN


def full(r: NDArray[np.float64]) -> NDArray[np.float64]:
    """(m, 3) correlations (r01, r02, r12) -> (m, 3, 3) matrices."""
    return correlation_matrices(r[:, 0], r[:, 1], r[:, 2])


def estep_inputs(points: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The finite k = 3 problems of the S = 3 E-step (estep.py's s3d3 net, seed 0)."""
    recs = []
    orig = _ca._log_mvn_cdf_std

    def wrap(h, R):  # type: ignore[no-untyped-def]
        if h.shape[-1] == 3:
            recs.append((h.reshape(-1, 3).copy(), R.reshape(-1, 3, 3).copy()))
        return orig(h, R)

    net = DGN.random((3, 6, 6, 3), activation="relu", seed=0, noise_var=0.05)
    P = fastpath.partition(net)
    X, _ = net.sample(points, seed=1)
    _ca._log_mvn_cdf_std = wrap
    try:
        estep_statistics(net, X, partition=P)
    finally:
        _ca._log_mvn_cdf_std = orig
    h = np.concatenate([a for a, _ in recs])
    R = np.concatenate([b for _, b in recs])
    fin = np.isfinite(h).all(axis=1)
    return h[fin], R[fin]


def timed(fn, reps: int = 3) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), float(np.median(ts))


def run(name: str, h: NDArray[np.float64], R: NDArray[np.float64], exact: int) -> None:
    import numba

    from fastpath._jit_tvn import log_tvn_vec

    n = h.shape[0]
    print(f"\n{name}: {n} elements, load {os.getloadavg()}")
    _log_tvn(h[:10], R[:10])  # compile / load the cache outside the timings
    ref = _log_tvn_numpy(h, R)
    out = _log_tvn(h, R)
    raw, ev = log_tvn_vec(h, R, stats=True)
    t_np = timed(lambda: _log_tvn_numpy(h, R))
    for label, nt in (("numpy kernel (baseline)", 0), ("compiled, 1 thread", 1),
                      ("compiled, 2 threads", 2)):
        if nt:
            numba.set_num_threads(min(nt, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
            tmin, tmed = timed(lambda: _log_tvn(h, R))
        else:
            tmin, tmed = t_np
        print(f"  {label:26s} {n / tmin:10,.0f} el/s (min)  {n / tmed:10,.0f} el/s (median)"
              f"  ratio {t_np[0] / tmin:5.2f}x  load {os.getloadavg()[0]:.2f}")
    numba.set_num_threads(1)
    off = np.abs(R[:, [0, 0, 1], [1, 2, 2]])
    reg = (off <= 1 - 1e-9).all(axis=1)
    print(f"  declined by the compiled kernel: {np.isnan(raw[reg]).mean():.4f} of the regular "
          f"elements ({(~reg).sum()} with a correlation within 1e-9 of +-1 go to the "
          f"conditioning integral); evaluations per element mean {ev[reg].mean():.1f}, "
          f"median {np.median(ev[reg]):.0f}, max {ev[reg].max()}")
    mism = int((np.isfinite(ref) != np.isfinite(out)).sum())
    ok = np.isfinite(ref) & np.isfinite(out)
    d = np.abs(out - ref)
    print(f"  compiled vs numpy (|d log P| = rel. difference of P; -inf mismatches {mism}):")
    for lo, hi in BANDS:
        s = ok & (ref > lo) & (ref <= hi)
        if not s.any():
            continue
        rel = d[s] / np.maximum(1.0, np.abs(ref[s]))
        print(f"    log P in ({lo:g}, {hi:g}]: n {s.sum():7d}  max {d[s].max():.1e}  "
              f"p99.9 {np.quantile(d[s], 0.999):.1e}  >1e-13 {np.mean(d[s] > 1e-13):.4f}  "
              f"| d log P / |log P| max {rel.max():.1e}")
    mod = np.flatnonzero(np.isfinite(ref) & (ref > -100))[:5000]
    if mod.size:
        sov = _log_mvn_sov(h[mod], R[mod])
        dn = np.abs(sov - ref[mod])
        print(f"  numpy kernel's own routes (Plackett vs conditioning), log P > -100, "
              f"{mod.size} el.: max {dn.max():.1e} p99.9 {np.quantile(dn, 0.999):.1e} "
              f">1e-13 {np.mean(dn > 1e-13):.4f}")
    if exact:
        from verified_dgn.orthant import log_orthant_probability

        rng = np.random.default_rng(0)
        cond = np.linalg.cond(R)
        print(f"  against the exact value ({exact} per band; |d log P| / tol, tol = 1e-13 + "
              "max(1e-14, 4 eps cond(R)) |log P|):")
        for lo, hi in BANDS[:3]:
            idx = np.flatnonzero(ok & (ref > lo) & (ref <= hi))
            if not idx.size:
                continue
            idx = rng.choice(idx, min(exact, idx.size), replace=False)
            ex = np.array([float(log_orthant_probability(h[i], R[i], dps=20)) for i in idx])
            tol = 1e-13 + np.maximum(1e-14, 4 * np.finfo(float).eps * cond[idx]) * np.abs(ex)
            dj = np.abs(out[idx] - ex)
            dnp = np.abs(ref[idx] - ex)
            print(f"    log P in ({lo:g}, {hi:g}]: compiled max |d| {dj.max():.1e} "
                  f"(max d/tol {np.max(dj / tol):.2f}), numpy max |d| {dnp.max():.1e} "
                  f"(max d/tol {np.max(dnp / tol):.2f})")


BANDS = ((-10.0, 1.0), (-100.0, -10.0), (-1000.0, -100.0), (-np.inf, -1000.0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--random", type=int, default=20000)
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--exact", type=int, default=0,
                    help="elements per band checked against verified_dgn (slow)")
    args = ap.parse_args()
    import numba

    numba.set_num_threads(1)
    h, r = random_tvn(args.random, 1)
    R = full(r)
    run("random", h, R, args.exact)
    h, R = estep_inputs(args.points)
    run(f"S = 3 E-step (s3d3, {args.points} points)", h, R, args.exact)


if __name__ == "__main__":
    main()
