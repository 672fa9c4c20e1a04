"""Timings of the exact path's Gaussian integrals (verified_dgn.orthant / .integrals).

Usage: python benchmarks/exact_integrals.py [--dps 30] [--repeat 3] [--s4]

Prints, for each case, the median wall-clock time per call and the ratio to a baseline
measured in the same run:

* orthant probabilities (k = 2, 3) against scipy.stats.multivariate_normal.cdf (float64;
  Genz bvn for k = 2, randomised QMC ~1e-5 for k = 3): the price of 30 digits;
* gaussian_moments on polygons / polytopes / net regions against mpmath's own nested
  ``quad`` for m0 alone on the triangle (the obvious high-precision alternative).

Geometry (triangulation, Lemma 4 terms) is cached per (C, d): the first call on a region
is timed separately ("cold") from later calls with another Gaussian ("warm"). Timings
depend on the machine and its load; the ratios to the baseline of the same run compare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mpmath  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402

from verified_dgn import DGN  # noqa: E402
from verified_dgn.integrals import _pieces_cached, gaussian_moments  # noqa: E402
from verified_dgn.orthant import orthant_probability  # noqa: E402


def timeit(fn, repeat: int) -> float:
    fn()  # warm-up: quadrature nodes are computed once per precision and cached
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dps", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--s4", action="store_true", help="also time a 4-simplex (minutes)")
    args = ap.parse_args(argv)
    dps, rep = args.dps, args.repeat
    print(f"dps = {dps}, median of {rep}")

    # ---------------------------------------------------------------- orthants
    R2 = [[1.0, -0.4], [-0.4, 1.0]]
    R3 = [[1.0, 0.3, -0.2], [0.3, 1.0, 0.4], [-0.2, 0.4, 1.0]]
    for name, b, R in [("Phi_2 central", [0.3, -0.5], R2), ("Phi_2 tail", [-8.0, -6.0], R2),
                       ("Phi_3 central", [0.3, -0.5, 1.0], R3), ("Phi_3 tail", [-6.0, -5.0, -4.0], R3)]:
        t = timeit(lambda b=b, R=R: orthant_probability(b, R, dps=dps), rep)
        tb = timeit(lambda b=b, R=R: multivariate_normal.cdf(b, cov=R), rep)
        print(f"{name:28s} {t * 1e3:9.1f} ms   scipy mvn.cdf {tb * 1e3:7.2f} ms   ratio {t / tb:8.0f}")

    # ---------------------------------------------------------------- baseline for polygons
    tri_C = np.array([[-1.0, 0], [0, -1], [1, 1]])
    tri_d = np.array([0.0, 0, 1])
    mu, K = [0.2, 0.1], [[1.0, 0.3], [0.3, 0.5]]

    def nested_quad_m0() -> None:
        with mpmath.workdps(dps):
            Km = mpmath.matrix(K)
            Ki = Km ** -1
            c = 1 / (2 * mpmath.pi * mpmath.sqrt(mpmath.det(Km)))

            def N(x, y):
                u, v = x - mu[0], y - mu[1]
                return c * mpmath.exp(-(Ki[0, 0] * u * u + 2 * Ki[0, 1] * u * v + Ki[1, 1] * v * v) / 2)

            mpmath.quad(lambda x: mpmath.quad(lambda y: N(x, y), [0, 1 - x]), [0, 1])

    t0 = time.perf_counter()
    nested_quad_m0()
    tq = time.perf_counter() - t0
    print(f"{'baseline: mpmath nested quad':28s} {tq * 1e3:9.1f} ms   (m0 only, triangle)")

    def case(name: str, C, d, mean, cov) -> None:
        _pieces_cached.cache_clear()
        t0 = time.perf_counter()
        gaussian_moments(C, d, mean, cov, dps=dps)
        cold = time.perf_counter() - t0
        warm = timeit(lambda: gaussian_moments(C, d, mean, cov, dps=dps), rep)
        print(f"{name:28s} {warm * 1e3:9.1f} ms   cold {cold * 1e3:8.1f} ms   "
              f"ratio to nested quad {warm / tq:6.2f}")

    th = np.arange(6) * np.pi / 3
    hexC = np.c_[np.round(np.cos(th), 3), np.round(np.sin(th), 3)]
    case("triangle", tri_C, tri_d, mu, K)
    case("hexagon, mean inside", hexC, np.ones(6), [0.1, 0.2], [[1, 0.2], [0.2, 0.7]])
    case("hexagon, m0 ~ 1e-29", hexC, np.ones(6), [10.0, -4.0], [[1, 0.2], [0.2, 0.7]])
    case("wedge (unbounded)", np.array([[-1.0, 0.5], [0.25, -1]]), np.array([0.0, 1.0]),
         [0.3, 0.2], [[1, 0.2], [0.2, 0.7]])

    # regions of a [2, 8, 8, 2] net: mean time per region
    from verified_dgn.exact_partition import partition

    net = DGN.random((2, 8, 8, 2), activation="relu", seed=0)
    P = partition(net)
    _pieces_cached.cache_clear()
    t0 = time.perf_counter()
    for r in P:
        gaussian_moments(r.C, r.d, np.zeros(2), np.eye(2), dps=dps)
    cold = (time.perf_counter() - t0) / len(P)
    t0 = time.perf_counter()
    for r in P:
        gaussian_moments(r.C, r.d, np.full(2, 0.3), np.eye(2) * 0.5, dps=dps)
    warm = (time.perf_counter() - t0) / len(P)
    print(f"{'[2,8,8,2] net, per region':28s} {warm * 1e3:9.1f} ms   cold {cold * 1e3:8.1f} ms   "
          f"({len(P)} regions)")

    cov3 = [[1, 0.2, 0.1], [0.2, 0.8, -0.2], [0.1, -0.2, 0.6]]
    case("tetrahedron", np.vstack([-np.eye(3), np.ones((1, 3))]), np.array([0, 0, 0, 1.5]),
         [0.4, 0.1, 0.3], cov3)
    case("cube", np.vstack([np.eye(3), -np.eye(3)]), np.ones(6), [0.1, 0.2, 0.0], cov3)
    if args.s4:
        case("4-simplex", np.vstack([-np.eye(4), np.ones((1, 4))]), np.array([0, 0, 0, 0, 1.0]),
             [0.2, 0.1, 0.3, 0.0], np.eye(4) * 0.5 + 0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
