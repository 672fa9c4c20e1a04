"""Gaussian integrals over the regions of a real partition: the fast path vs the paper's method.

    python benchmarks/integrals.py                # S = 2 and S = 3, default sizes
    python benchmarks/integrals.py --quick        # fewer regions / exact references
    python benchmarks/integrals.py --dims 2 --regions 12 --gaussians 4 --exact 6

Baseline (the paper's own method, in float64, implemented here): Delaunay triangulation of
every region (scipy.spatial; unbounded regions through their homogenised cone, whose
pieces are simplices with ideal vertices), Lemma 4's inclusion-exclusion of each piece into
intersections of at most S half-spaces (a piece with k <= S finite facets is one orthant),
scipy.stats.multivariate_normal.cdf for the orthant probabilities of dimension >= 2
(scipy.special.ndtr for 1), Tallis moments; orthant terms shared by the pieces of a region
are cached. Fast path: fastpath.integrals (signed vertex cones, vectorised).

Both methods run on the same regions and the same E-step Gaussians N(mu_w(x), Sigma_w) of
data points x of the net (nearly all of them far from most regions, as in an E-step).
Printed: time per (region, Gaussian) evaluation of each method (geometry precomputed for
both and timed separately), the speed ratio, and both methods' errors against
verified_dgn.gaussian_moments on a subset (the exact path takes seconds per 2-D region and
tens of seconds per 3-D one). Errors: |log m0| error (= relative error of m0) and the error
of E[z|P] relative to sqrt(||Sigma||). Targets: fast >= 1,000 x faster at S = 2 and
>= 10,000 x at S = 3, and more accurate. The machine is shared: timings are noisy.
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy.spatial import Delaunay  # noqa: E402
from scipy.special import ndtr  # noqa: E402
from scipy.stats import multivariate_normal  # noqa: E402

import fastpath  # noqa: E402
from fastpath import _cone_algebra  # noqa: E402
from fastpath._cone_tail import cone_sum_only  # noqa: E402
from fastpath.integrals import ConeBatch, PolyhedronCones  # noqa: E402
from verified_dgn import DGN  # noqa: E402

NETS = {2: (2, 8, 8, 2), 3: (3, 6, 6, 3)}


# --------------------------------------------------------------------------- baseline
#: scipy's cdf is randomised quasi-Monte Carlo that adds points until its error estimate is
#: below 1e-5, so its cost varies from call to call with the random stream; one seeded
#: stream per run makes the baseline's time (and values) reproducible
_QMC_RNG = [np.random.default_rng(0)]


def _orthant_cdf(b: np.ndarray, V: np.ndarray) -> float:
    """P(Y <= b), Y ~ N(0, V), with scipy (ndtr for k = 1; multivariate_normal.cdf else)."""
    k = len(b)
    if k == 0:
        return 1.0
    if k == 1:
        return float(ndtr(b[0] / math.sqrt(V[0, 0])))
    return float(multivariate_normal.cdf(b, mean=np.zeros(k), cov=V, allow_singular=True,
                                         rng=_QMC_RNG[0]))


def _conditional(b, V, fix):
    """Bounds and covariance of the other coordinates given y_fix = b_fix."""
    o = [i for i in range(len(b)) if i not in fix]
    Vff = V[np.ix_(fix, fix)]
    Vof = V[np.ix_(o, fix)]
    Kf = Vof @ np.linalg.inv(Vff)
    return b[o] - Kf @ b[fix], V[np.ix_(o, o)] - Kf @ Vof.T


def _tallis(L, e, mu, Sig):
    """(P, int (z - mu), int (z - mu)(z - mu)^T) of N(mu, Sig) on {L z <= e} (k <= S rows)."""
    k, S = L.shape
    b = e - L @ mu
    V = L @ Sig @ L.T
    P = _orthant_cdf(b, V)
    F = np.zeros(k)
    F2 = np.zeros((k, k))
    for q in range(k):
        bq, Vq = _conditional(b, V, [q])
        F[q] = math.exp(-b[q] ** 2 / (2 * V[q, q])) / math.sqrt(2 * math.pi * V[q, q]) \
            * _orthant_cdf(bq, Vq)
        for s in range(q + 1, k):
            V2 = V[np.ix_([q, s], [q, s])]
            bb = b[[q, s]]
            dens = math.exp(-0.5 * bb @ np.linalg.solve(V2, bb)) / (
                2 * math.pi * math.sqrt(np.linalg.det(V2)))
            bqs, Vqs = _conditional(b, V, [q, s])
            F2[q, s] = F2[s, q] = dens * _orthant_cdf(bqs, Vqs)
    M = F2.copy()
    for q in range(k):
        M[q, q] = -(b[q] * F[q] + V[q] @ F2[q]) / V[q, q]
    m1 = -Sig @ L.T @ F
    C2 = P * Sig + Sig @ L.T @ M @ L @ Sig
    return P, m1, C2


def _homogeneous_pieces(vertices: np.ndarray, rays: np.ndarray) -> list[np.ndarray]:
    """Delaunay pieces of the homogenised cone: generator index sets (vertices, then rays)."""
    S = vertices.shape[1]
    G = np.vstack([np.c_[vertices, np.ones(len(vertices))], np.c_[rays, np.zeros(len(rays))]])
    def proper(simps):
        # qhull can return flat simplices (zero volume, e.g. coplanar vertices of a facet
        # with more than S of them): they carry no mass and have no facet normals
        return [np.asarray(s) for s in simps
                if abs(np.linalg.det(G[s])) > 1e-12 * np.prod(np.linalg.norm(G[s], axis=1))]

    if len(rays) == 0:
        return proper(Delaunay(vertices).simplices)
    # a functional (w, w0) positive on every generator: w.r > 0 on rays, w.v + w0 > 0
    w = rays.mean(axis=0)
    w /= np.linalg.norm(w)
    if np.min(rays @ w) <= 0:
        raise RuntimeError("no cross-section for the homogenised cone")
    w0 = 1.0 - min(0.0, float(np.min(vertices @ w))) + 1.0
    ell = np.append(w, w0)
    X = G / (G @ ell)[:, None]
    _, _, Vt = np.linalg.svd(ell[None, :])
    Y = X @ Vt[1:].T                                            # S-dim coordinates
    tri = Delaunay(Y)
    assert S + 1 == tri.simplices.shape[1]
    return proper(tri.simplices)


class PaperMethod:
    """Lemma 4 over a Delaunay triangulation of one region, float64 + scipy (the baseline)."""

    def __init__(self, region) -> None:
        V = np.asarray(region.vertices, float)
        R = np.asarray(region.rays, float)
        if len(region.lines):
            raise NotImplementedError("regions with lines are not in the baseline")
        G = np.vstack([np.c_[V, np.ones(len(V))], np.c_[R, np.zeros(len(R))]])
        self.S = V.shape[1]
        self.pieces = []                       # list of (rows L (k,S), rhs e (k,))
        for simp in _homogeneous_pieces(V, R):
            Gs = G[simp]                       # (S+1, S+1) homogeneous generators
            Ninv = np.linalg.inv(Gs.T)         # row i: normal of the facet opposite gen. i
            rows, rhs = [], []
            for i in range(self.S + 1):
                n = Ninv[i]                    # n . g_j = delta_ij >= 0 inside
                a, b0 = n[:-1], n[-1]
                if np.linalg.norm(a) <= 1e-12 * abs(b0):
                    continue                   # the facet at infinity: no constraint
                rows.append(-a)                # a.z + b0 >= 0  <=>  -a.z <= b0
                rhs.append(b0)
            self.pieces.append((np.array(rows), np.array(rhs)))

    def moments(self, mu, Sig):
        cache: dict = {}
        S = self.S
        m0, m1, C2 = 0.0, np.zeros(S), np.zeros((S, S))
        for L, e in self.pieces:
            k = len(e)
            if k <= S:
                terms = [(1, L, e)]
            else:                              # Lemma 4: complements, |J| <= S
                terms = []
                for size in range(0, S + 1):
                    for J in itertools.combinations(range(k), size):
                        J = list(J)
                        Ln = L[J] / np.linalg.norm(L[J], axis=1, keepdims=True)
                        if size > 1 and np.linalg.svd(Ln, compute_uv=False)[-1] < 1e-10:
                            # dependent rows: side facets of a piece with an ideal vertex
                            # (all parallel to its ray); their complements do not meet
                            continue
                        terms.append(((-1) ** size, -L[J], -e[J]))
            for sgn, LJ, eJ in terms:
                key = tuple(np.round(np.c_[LJ / np.linalg.norm(LJ, axis=1, keepdims=True),
                                           eJ / np.linalg.norm(LJ, axis=1)], 12).ravel()
                            ) if len(eJ) else ()
                if key not in cache:
                    if len(eJ) == 0:
                        cache[key] = (1.0, np.zeros(S), Sig.copy())
                    else:
                        cache[key] = _tallis(LJ, eJ, mu, Sig)
                P, a, B = cache[key]
                m0 += sgn * P
                m1 += sgn * a
                C2 += sgn * B
        return m0, mu + m1 / m0, C2 / m0          # log-free: float64 throughout


# --------------------------------------------------------------------------- set-up
def estep_gaussians(net, P, n_points, seed):
    """(mu (n, R, S), Sigma (R, S, S)) of the E-step for n data points of the net."""
    X, _ = net.sample(n_points, seed=seed)
    A, b = P.A_stack, P.b_stack
    S = net.latent_dim
    cov = np.linalg.inv(np.eye(S) + np.einsum("rdi,rdj->rij", A, A) / net.noise_var)
    mu = np.einsum("rij,rdj,nrd->nri", cov, A, X[:, None, :] - b[None]) / net.noise_var
    return mu, cov


def exact_reference(region, mu, cov):
    from verified_dgn.integrals import gaussian_moments as exact
    m0, m1, _ = exact(region.C, region.d, mu, cov, dps=20)
    if m0 == 0:
        return -math.inf, np.zeros(len(mu))
    import mpmath
    return float(mpmath.log(m0)), np.array([float(x / m0) for x in m1])


def run(S: int, n_regions: int, n_gauss: int, n_exact: int, seed: int, n_batch: int) -> None:
    net = DGN.random(NETS[S], activation="relu", seed=seed, noise_var=0.05)
    P = fastpath.partition(net)
    rng = np.random.default_rng(seed)
    mu_all, cov_all = estep_gaussians(net, P, max(n_gauss, n_batch), seed + 1)
    # regions: the most probable ones for the first point, then random ones
    lm0 = ConeBatch.from_partition(P).log_mass(mu_all[0], cov_all)
    top = list(np.argsort(-lm0)[: n_regions // 2])
    rest = [int(r) for r in rng.permutation(len(P)) if r not in top and not len(P[r].lines)]
    regions = [int(r) for r in top] + rest[: n_regions - len(top)]
    print(f"\nS = {S}: net {NETS[S]} relu seed {seed}, {len(P)} regions; {len(regions)} "
          f"regions x {n_gauss} E-step Gaussians (fast batched: x {n_batch} Gaussians)")

    t0 = time.perf_counter()
    base = [PaperMethod(P[r]) for r in regions]
    t_geo_base = time.perf_counter() - t0
    t0 = time.perf_counter()
    cones = [PolyhedronCones.from_region(P[r]) for r in regions]
    t_geo_fast = time.perf_counter() - t0
    n_simp = sum(len(b.pieces) for b in base)
    n_cone = sum(c.n_cones for c in cones)
    print(f"  geometry per region: paper (Delaunay, {n_simp / len(regions):.1f} pieces) "
          f"{t_geo_base / len(regions) * 1e3:.2f} ms; fast (vertex cones, "
          f"{n_cone / len(regions):.1f} cones) {t_geo_fast / len(regions) * 1e3:.2f} ms")

    # ---- timings: every (region, Gaussian) pair, baseline one by one
    _QMC_RNG[0] = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res_base = {}
        for i, r in enumerate(regions):
            for n in range(n_gauss):
                res_base[i, n] = base[i].moments(mu_all[n, r], cov_all[r])
        t_base = (time.perf_counter() - t0) / (len(regions) * n_gauss)
    # fast, one call per (region, Gaussian), as the baseline
    t0 = time.perf_counter()
    res_fast = {}
    for i, r in enumerate(regions):
        for n in range(n_gauss):
            res_fast[i, n] = cones[i].truncated_moments(mu_all[n, r], cov_all[r])
    t_fast1 = (time.perf_counter() - t0) / (len(regions) * n_gauss)
    # fast, batched: all regions x n_batch Gaussians in one call (the E-step's layout);
    # the time spent inside the fastpath.orthant kernels is measured on the side
    batch = ConeBatch(cones)
    reps = 3
    spent = [0.0]
    saved = {name: getattr(_cone_algebra, name) for name in ("_log_bvn", "_log_mvn_cdf_std")}

    def timed(fn):
        def wrapper(*args):
            t = time.perf_counter()
            out = fn(*args)
            spent[0] += time.perf_counter() - t
            return out
        return wrapper

    for name, fn in saved.items():
        setattr(_cone_algebra, name, timed(fn))
    try:
        t0 = time.perf_counter()
        for _ in range(reps):
            batch.truncated_moments(mu_all[:n_batch, regions], cov_all[regions])
        t_all = time.perf_counter() - t0
    finally:
        for name, fn in saved.items():
            setattr(_cone_algebra, name, fn)
    t_fastb = t_all / (reps * len(regions) * n_batch)
    share = spent[0] / t_all
    # the same batch as the E-step evaluates it: the cone sum for every pair, the far-tail
    # slices (fastpath/_cone_tail.py) left to the pairs with posterior weight (the E-step's
    # own rule); the public call above applies them to every pair whose Gaussian is >= 8
    # whitened sd away (compiled, ~0.2 ms each; the cubature first for bounded regions)
    with cone_sum_only():
        batch.truncated_moments(mu_all[:n_batch, regions], cov_all[regions])
        t0 = time.perf_counter()
        for _ in range(reps):
            batch.truncated_moments(mu_all[:n_batch, regions], cov_all[regions])
        t_cs = (time.perf_counter() - t0) / (reps * len(regions) * n_batch)
    print(f"  time per (region, Gaussian): paper {t_base * 1e3:.3f} ms | fast batched "
          f"{t_fastb * 1e6:.2f} us: RATIO {t_base / t_fastb:,.0f} x | fast one call at a "
          f"time {t_fast1 * 1e3:.2f} ms (ratio {t_base / t_fast1:,.1f} x; numpy call overhead)")
    print(f"  fast batched, cone sums only (as in the E-step, which adds the far-tail method "
          f"only where a pair carries weight): {t_cs * 1e6:.2f} us: RATIO {t_base / t_cs:,.0f} x")
    print(f"  fast batched: {share * 100:.0f}% of the time in the fastpath.orthant kernels "
          f"(Phi_2 / Phi_3; the compiled S = 2 cone sums call theirs from compiled code and "
          f"are not counted), {t_fastb * (1 - share) * 1e6:.2f} us per pair elsewhere")

    # ---- errors against the exact path on a subset
    if n_exact <= 0:
        return
    eb0, eb1, ef0, ef1, rows = [], [], [], [], []
    # the exact path takes minutes per pair deep in the tails: check pairs with
    # log m0 >= -150, half of them the most probable ones, half spread over the tail
    cand = [(float(res_fast[i, n][0]), i, n) for n in range(n_gauss)
            for i in range(len(regions)) if float(res_fast[i, n][0]) >= -150.0]
    cand.sort(reverse=True)
    head = cand[: (n_exact + 1) // 2]
    tail = cand[len(head):]
    step = max(1, len(tail) // max(1, n_exact - len(head)))
    pairs = [(i, n) for _, i, n in head + tail[::step][: n_exact - len(head)]]
    for i, n in pairs:
        r = regions[i]
        lref, mref = exact_reference(P[r], mu_all[n, r], cov_all[r])
        sc = math.sqrt(np.linalg.norm(cov_all[r], 2))
        m0b, meanb, _ = res_base[i, n]
        lmf, meanf, _ = res_fast[i, n]
        eb0.append(abs(math.log(m0b) - lref) if m0b > 0 else math.inf)
        eb1.append(float(np.max(np.abs(meanb - mref))) / sc if m0b > 0 else math.inf)
        ef0.append(abs(float(lmf) - lref))
        ef1.append(float(np.max(np.abs(meanf - mref))) / sc)
        rows.append(lref)
    print(f"  errors vs verified_dgn.gaussian_moments on {len(pairs)} pairs "
          f"(log m0 from {min(rows):.1f} to {max(rows):.1f}):")
    print(f"    |log m0| error  paper: max {max(eb0):.2e} median {np.median(eb0):.2e}   "
          f"fast: max {max(ef0):.2e} median {np.median(ef0):.2e}")
    print(f"    E[z|P] error    paper: max {max(eb1):.2e} median {np.median(eb1):.2e}   "
          f"fast: max {max(ef1):.2e} median {np.median(ef1):.2e}")
    near = [k for k, l in enumerate(rows) if l > math.log(1e-20)]
    if near:
        print(f"    where m0 >= 1e-20 ({len(near)} pairs): paper max {max(eb0[k] for k in near):.2e}"
              f", fast max {max(ef0[k] for k in near):.2e} (|log m0| error)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    ap.add_argument("--regions", type=int, default=None, help="regions per net")
    ap.add_argument("--gaussians", type=int, default=None, help="E-step Gaussians per region")
    ap.add_argument("--exact", type=int, default=None, help="pairs checked against the exact path")
    ap.add_argument("--batch", type=int, default=200,
                    help="E-step Gaussians per region in the fast batched timing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    for S in a.dims:
        quick = {2: (8, 3, 6), 3: (4, 2, 2)}[S]
        full = {2: (16, 6, 12), 3: (8, 3, 4)}[S]
        d = quick if a.quick else full
        run(S, a.regions or d[0], a.gaussians or d[1],
            d[2] if a.exact is None else a.exact, a.seed, a.batch)


if __name__ == "__main__":
    main()
