"""S = 2 moments of bounded polygons where the cone sum keeps m0 but its moments cancel.

    python benchmarks/moment_cancellation.py                # nets 0 1 2, means spread 3
    python benchmarks/moment_cancellation.py --nets 3 4 --spread 6

On E-step-like pairs (``tests.integrals_fast_refs.estep_like_pairs``: a random S = 2
partition, 60 Gaussians per polygon, one covariance per pair) this prints, for the bounded
pairs closer than the tail slices' distance (8 whitened units):

* the moments' error against the simplex cubature with an unbounded budget (mean over
  sqrt(trace), covariance over trace; pairs the cubature does not resolve are left out),
  with the moment replacement on (``fastpath._cones.MOMENT_CUBATURE``) and off;
* the calibration of the kernel's error estimate (``_jit_cones._moment_error``): the
  quantiles of measured error / estimate over the pairs with error > 1e-12, and the share
  of pairs flagged (estimate > ``_cone_cubature._MOMENT_TOL``);
* the CPU time of the compiled cone pass with moments and the replacement on and off
  (``ConeTable._evaluate_compiled``, as ``evaluate`` calls it outside the E-step; the tail
  slices of the far pairs, which cost far more, are not in it; min / median of 3, one BLAS
  thread, one kernel thread), with the load average.

The E-step's dense pass (``_cone_tail.cone_sum_only``) is not affected: it keeps the cone
sum's moments and recomputes only the pairs that carry weight far in a tail. ``--posterior``
measures what that leaves: ``fastpath.posterior`` as is against the same with every pair's
moments replaced where needed (the dense pass run with the tail slices and the replacement
on), on four random S = 2 nets. ``--s3`` measures the same gap at S = 3, where the moments
are not replaced (a known gap): the kept cone sums' moments of bounded polytopes closer than
8 against the numpy cubature (budget 65536 simplices), four random (3, 8, 8, 3) nets.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nets", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--spread", type=float, default=3.0)
    ap.add_argument("--gaussians", type=int, default=60)
    ap.add_argument("--posterior", action="store_true",
                    help="measure the E-step's posterior instead (see above)")
    ap.add_argument("--s3", action="store_true",
                    help="measure the S = 3 cone sums' moments (not replaced; see below)")
    a = ap.parse_args()
    if a.posterior:
        _posterior()
        return
    if a.s3:
        _s3()
        return

    from threadpoolctl import threadpool_limits

    from fastpath import _cones
    from fastpath._cone_cubature import _LOG_CANCEL_CUBATURE, _MOMENT_TOL
    from fastpath._jit_cones import evaluate_s2
    from fastpath._threads import threads
    from tests.integrals_fast_refs import estep_like_pairs
    from tests.integrals_fast_refs import moment_errors as _errors

    print(f"load average {os.getloadavg()[0]:.2f}; tolerance {_MOMENT_TOL:g}")
    for net in a.nets:
        table, mean, cov, chol = estep_like_pairs(net, 100 + net, a.gaussians, a.spread, False)
        res, times = {}, {}
        for on in (True, False):
            _cones.MOMENT_CUBATURE[0] = on
            res[on] = table.evaluate(mean, chol, True)
            ts = []
            with threadpool_limits(1), threads(1):
                for _ in range(3):
                    t0 = time.process_time()
                    table._evaluate_compiled(mean, chol, True, defer=table._defers(),
                                             route=table._routes())
                    ts.append(time.process_time() - t0)
            times[on] = ts
        _cones.MOMENT_CUBATURE[0] = True
        Uinv = np.linalg.inv(chol)
        xstar, _, inside = table._nearest_points(mean, chol, Uinv)
        near = inside | (np.sqrt(np.sum(xstar * xstar, axis=-1)) < 8.0)
        ai, ji = np.nonzero(table._bounded_mask[None, :] & near
                            & (res[True][0] > math.log(1e-300)))
        e_on = _errors(table, mean, chol, res[True], ai, ji)
        e_off = _errors(table, mean, chol, res[False], ai, ji)
        out = evaluate_s2(_cones._kernel_array(mean), _cones._kernel_array(chol),
                          *table._table_arrays(), True, _cones._GENERIC_MARGIN,
                          _cones._GENERIC_WEIGHT, math.inf, 4.0, 0.0,
                          np.zeros(table.n_poly, np.bool_), 8.0)
        me, lc = out[5], out[3]
        ka, kj = np.nonzero(table._bounded_mask[None, :] & (me > 0)
                            & (lc <= _LOG_CANCEL_CUBATURE))
        e_raw = _errors(table, mean, chol, out, ka, kj)
        big = e_raw > 1e-12
        ratio = e_raw[big] / me[ka, kj][big]
        ok = np.isfinite(e_on)
        print(f"\nnet {net}: {table.n_poly} polygons, {ai.size:,} bounded pairs closer than 8 "
              f"({ok.sum():,} resolved by the reference)")
        for name, e in (("replacement on ", e_on), ("replacement off", e_off)):
            e = e[np.isfinite(e)]
            print(f"  {name}: error > 1e-10 on {np.mean(e > 1e-10):7.3%} of the pairs, "
                  f"max {e.max():.2e}")
        q = np.quantile(ratio, [0.5, 0.99, 0.999])
        print(f"  estimate: error/estimate quantiles 50/99/99.9% {q[0]:.3f} {q[1]:.3f} "
              f"{q[2]:.3f}, max {ratio.max():.2f}; flagged {np.mean(me[ka, kj] > _MOMENT_TOL):.1%} "
              f"of the pairs the cone sum keeps")
        for on in (True, False):
            ts = times[on]
            print(f"  cone pass with moments, replacement {'on ' if on else 'off'}: "
                  f"min {min(ts):.3f} s, median {sorted(ts)[1]:.3f} s CPU")
        print(f"  ratio on/off (min): {min(times[True]) / min(times[False]):.2f}")


def _s3() -> None:
    from dgn_core.model import DGN
    from fastpath._cone_tail import cone_sum_only
    from fastpath.integrals import ConeBatch
    from fastpath.partition_walk import partition

    for seed in (0, 1, 2, 3):
        net = DGN.random((3, 8, 8, 3), activation="leaky_relu", slope=0.1, seed=seed,
                         noise_var=0.05)
        table = [t for _, _, t in ConeBatch.from_partition(partition(net))._groups
                 if t is not None and t.dim == 3][0]
        rng = np.random.default_rng(100 + seed)
        n = table.n_poly
        mean = 3.0 * rng.normal(size=(2, n, 3))
        F = 0.3 * rng.normal(size=(2, n, 3, 3))
        chol = np.linalg.cholesky(F @ np.swapaxes(F, -1, -2) + 0.05 * np.eye(3))
        with cone_sum_only():                       # the far pairs' tail slices left out
            lm, dm, tc, lc = table.evaluate(mean, chol, True)
        xstar, _, inside = table._nearest_points(mean, chol, np.linalg.inv(chol))
        near = inside | (np.sqrt(np.sum(xstar * xstar, axis=-1)) < 8.0)
        a, j = np.nonzero(table._bounded_mask[None] & near & (lm > math.log(1e-300))
                          & (lc != 0))
        # the reference: the cubature with a large budget (1024 leaves out the pairs of the
        # larger polytopes, which are the worst)
        got = table._cubature(mean, chol, True, a, j, np.full(a.size, 65536))
        ga, gj, glm, gdm, gtc = got
        tr = np.einsum("...ii->...", gtc)
        e = np.maximum(np.abs(tc[ga, gj] - gtc).max(axis=(-1, -2)) / tr,
                       np.abs(dm[ga, gj] - gdm).max(axis=-1) / np.sqrt(tr))
        print(f"S = 3 net {seed}: {n} regions, {a.size} kept bounded pairs closer than 8, "
              f"{ga.size} resolved by the cubature: moments off by > 1e-10 on "
              f"{np.mean(e > 1e-10):.1%}, max {e.max():.2e}")


def _posterior() -> None:
    import contextlib

    import fastpath
    from dgn_core.model import DGN
    from fastpath import _estep

    for seed, widths, nv in ((0, (2, 8, 8, 2), 0.05), (1, (2, 16, 16, 2), 0.05),
                             (2, (2, 12, 12, 3), 0.02), (3, (2, 10, 10, 4), 0.1)):
        net = DGN.random(widths, activation="relu", seed=seed, noise_var=nv)
        P = fastpath.partition(net)
        X, _ = net.sample(150, seed=seed + 7)
        X = np.r_[X, X[:50] * 3.0]                  # some points off the manifold
        a = fastpath.posterior(net, X, partition=P, prune=False)
        orig = _estep.cone_sum_only
        _estep.cone_sum_only = contextlib.nullcontext   # type: ignore[assignment]
        try:
            b = fastpath.posterior(net, X, partition=P, prune=False)
        finally:
            _estep.cone_sum_only = orig
        trp = np.einsum("...ii->...", b.cov)
        em = np.max(np.abs(a.mean - b.mean), -1) / np.sqrt(trp)
        ec = np.max(np.abs(a.cov - b.cov), axis=(-1, -2)) / trp
        trr = np.einsum("...ii->...", b.region_cov)
        dr = np.max(np.abs(a.region_cov - b.region_cov), axis=(-1, -2))
        w = b.e0 > 1e-3
        has = trr > 0
        print(f"{widths} noise {nv}: {len(P)} regions, {X.shape[0]} points; posterior mean "
              f"{em.max():.1e}, cov {ec.max():.1e}; region cov at e0 > 1e-3 "
              f"{(dr[w] / trr[w]).max():.1e}, at any e0 {(dr[has] / trr[has]).max():.1e} "
              f"(relative)")


if __name__ == "__main__":
    main()
