"""Gaussian integrals over bounded polytopes by simplex cubature: a sum of positive terms.

The signed vertex-cone sum of :mod:`fastpath._cones` loses digits where the polytope is small
(or thin) compared with its distance from the Gaussian's mean: every cone then carries about
Phi(-dist) of mass while the polytope carries far less, and m0 is their difference. In an
E-step that is common (measured on real partitions: 16-25% of the (point, bounded region)
pairs lose more than a factor 20, up to e^17 = 2e7 at S = 3, i.e. relative errors of 1e-9 in
m0 and 2e-8 in the mean). It is exactly the case where the Gaussian is nearly log-linear over
the polytope, so a cubature rule over a triangulation of the polytope is accurate with few
nodes and every term is positive.

Method (whitened coordinates, the Gaussian is N(0, I)):

* A triangulation of the polytope by recursive fans over its faces (combinatorial, from the
  vertices' active facets: no floating-point hull, so thin polytopes are triangulated as
  reliably as fat ones): ``PolyhedronGeometry.simplices`` (:mod:`fastpath._polyhedron`).
* Subdivision: a simplex with centre c and diameter D has log-density -|x|^2/2 within
  |c| D + D^2/2 of its value at c; simplices with that spread above ``_SPREAD`` are bisected
  at their longest edge (bounded work per polytope; simplices whose largest possible density
  is below e^-60 of the polytope's are dropped).
* On each simplex the conical product rule (Stroud): Gauss-Jacobi in the collapsed
  coordinates, exact for polynomials of total degree 2n - 1, with 6-14 points per axis
  chosen by the simplex's spread (:func:`_rules`).
* Log-sum-exp over all nodes of a polytope; the mean and the covariance about it from the
  same nodes (no cancellation against the second moment about the Gaussian's mean).

The rules and the per-polytope sums run in compiled kernels (:mod:`fastpath._jit_cubature`,
imported on first use); the numpy evaluation (``simplex_moments(..., compiled=False)``)
stays as the second implementation they are tested against.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import roots_jacobi

from ._threads import serial_below

#: bisect simplices whose log-density spread bound |c| D + D^2/2 exceeds this (the last
#: band of :func:`_rules`: fewer, larger simplices with more nodes are far cheaper than
#: bisection, which multiplies the simplices by ~2^s per halving of the spread)
_SPREAD = 12.0
#: default cap on the simplices per polytope after subdivision (bisection stops there and
#: the polytope is reported unresolved)
_MAX_SIMPLICES = 4096
#: nodes x simplices per vectorised block: the (nodes, simplices) planes stay in cache
_BLOCK_NODES = 131072
#: simplices whose density bound is below the polytope's best by this many nats are dropped
_DROP = 60.0

#: batches with fewer rule nodes than this (~3 ms on one thread) skip the kernel threads
_SERIAL_NODES = 500_000

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@functools.cache
def conical_rule(s: int, n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Stroud's conical product rule on the s-simplex, n points per collapsed axis.

    Returns barycentric nodes (n^s, s + 1) and weights (n^s,) summing to 1 (so that the
    integral over a simplex T is vol(T) * sum w f(nodes)); exact for polynomials of total
    degree <= 2n - 1.
    """
    axes = []
    for i in range(1, s + 1):
        alpha = s - i                      # Jacobian factor (1 - u_i)^(s - i)
        x, w = roots_jacobi(n, alpha, 0.0)
        axes.append(((x + 1.0) / 2.0, w / 2.0 ** (alpha + 1)))
    U = np.array(list(itertools.product(*[a[0] for a in axes])))       # (Q, s)
    W = np.prod(np.array(list(itertools.product(*[a[1] for a in axes]))), axis=1)
    lam = np.empty((U.shape[0], s + 1))
    rest = np.ones(U.shape[0])
    for i in range(s):
        lam[:, i + 1] = rest * U[:, i]
        rest = rest * (1.0 - U[:, i])
    lam[:, 0] = rest
    W = W * math.factorial(s)
    lam.flags.writeable = W.flags.writeable = False
    return lam, W


def _rules(s: int) -> tuple[tuple[float, int], ...]:
    """(spread bound, points per axis) of the rules, by increasing spread.

    Measured on 8000 random simplices (half of them thin) per dimension, spreads 0.05 to
    16, against the 24-point rule: the log-mass error is <= 1.6e-13 (s = 2) and
    <= 7.5e-14 (s = 3) in every band, and the next smaller rule misses by 10x or more
    somewhere in the band. s = 4 uses the s = 3 rules (measured on 600 simplices against
    the 16-point rule: <= 4.9e-14). The last band ends at _SPREAD; a simplex left above it
    (bisection capped) is evaluated with the last rule and its polytope reported unresolved.
    """
    if s == 2:
        return ((0.5, 7), (1.0, 8), (2.0, 9), (4.0, 10), (6.0, 11), (8.0, 12), (np.inf, 14))
    return ((0.5, 6), (1.0, 7), (2.0, 8), (4.0, 9), (6.0, 10), (8.0, 11), (np.inf, 12))


def _centres(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """Centroids (K, s) of simplices (K, s+1, s) (X.mean(axis=1), without its strided
    reduction)."""
    c = X[:, 0] + X[:, 1]
    for i in range(2, X.shape[1]):
        c += X[:, i]
    return c / X.shape[1]


@functools.cache
def _edge_pairs(s: int) -> NDArray[np.intp]:
    """Vertex index pairs (s(s+1)/2, 2) of the edges of an s-simplex."""
    return np.array(list(itertools.combinations(range(s + 1), 2)))


def _size(X: NDArray[np.float64]
          ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]]:
    """|c| (distance of the centre from the origin), D (longest edge) and the index of that
    edge in :func:`_edge_pairs`, for simplices X (K, s+1, s)."""
    pairs = _edge_pairs(X.shape[-1])
    E = X[:, pairs[:, 1]] - X[:, pairs[:, 0]]                                # (K, P, s)
    L2 = np.sum(E * E, axis=-1)
    e = np.argmax(L2, axis=1)
    c = _centres(X)
    return np.sqrt(np.sum(c * c, axis=-1)), np.sqrt(L2[np.arange(X.shape[0]), e]), e


def _spread(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """|c| D + D^2/2: bound of |log N(x) - log N(c)| over a simplex (K, s+1, s) with centre
    c and diameter D (longest edge)."""
    nc, D, _ = _size(X)
    return nc * D + 0.5 * D * D


def _subdivide(X: NDArray[np.float64], owner: NDArray[np.intp], n_owner: int,
               max_simplices: int = _MAX_SIMPLICES
               ) -> tuple[NDArray[np.float64], NDArray[np.intp], NDArray[np.float64],
                          NDArray[np.bool_]]:
    """Bisect simplices (K, s+1, s) until their log-density spread bound is <= _SPREAD,
    at most ``max_simplices`` per owner. Returns the simplices, their owners, their spreads
    and which owners got there (n_owner,)."""
    pairs = _edge_pairs(X.shape[-1])
    done_X, done_o, done_sp = [], [], []
    resolved = np.ones(n_owner, dtype=bool)
    while X.shape[0]:
        nc, D, e = _size(X)
        spread = nc * D + 0.5 * D * D
        # drop what cannot matter: the density bound over the simplex vs the best centre
        top = np.maximum(nc - D, 0.0)
        best = np.full(n_owner, -np.inf)
        np.maximum.at(best, owner, -0.5 * nc * nc)
        keep = -0.5 * top * top >= best[owner] - _DROP
        cnt = np.bincount(owner[keep], minlength=n_owner)
        wide = keep & (spread > _SPREAD)
        split = wide & (cnt[owner] * 2 <= max_simplices)
        resolved[owner[wide & ~split]] = False
        fin = keep & ~split
        done_X.append(X[fin])
        done_o.append(owner[fin])
        done_sp.append(spread[fin])
        if not np.any(split):
            break
        Xs, es, os_ = X[split], e[split], owner[split]
        a, b = pairs[es, 0], pairs[es, 1]
        r = np.arange(Xs.shape[0])
        mid = 0.5 * (Xs[r, a] + Xs[r, b])
        A = Xs.copy()
        B = Xs.copy()
        A[r, b] = mid
        B[r, a] = mid
        X = np.concatenate([A, B])
        owner = np.concatenate([os_, os_])
    return (np.concatenate(done_X), np.concatenate(done_o), np.concatenate(done_sp),
            resolved)


def simplex_moments(X: NDArray[np.float64], owner: NDArray[np.intp], n_owner: int,
                    moments: bool = True, max_simplices: int = _MAX_SIMPLICES,
                    compiled: bool = True
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None,
                               NDArray[np.float64] | None, NDArray[np.bool_]]:
    """Moments of N(0, I) over unions of simplices.

    Parameters
    ----------
    X : ndarray, shape (K, s + 1, s)
        Simplex vertices (whitened coordinates).
    owner : ndarray of int, shape (K,)
        The polytope (0 <= owner < n_owner) each simplex belongs to; a polytope's simplices
        have disjoint interiors.
    n_owner : int
    moments : bool
    max_simplices : int
        Cap on the simplices per polytope after subdivision.
    compiled : bool
        Evaluate the rules and combine the simplices by the compiled kernels
        (:mod:`fastpath._jit_cubature`, threads over simplices and polytopes); False: by
        numpy (:func:`_simplex_block_numpy`). The two agree to rounding.

    Returns
    -------
    log_m0 : ndarray, shape (n_owner,)
        log of the N(0, I) mass of each union (-inf where it has none).
    mean : ndarray, shape (n_owner, s) or None
        E[x | union].
    cov : ndarray, shape (n_owner, s, s) or None
        Cov[x | union], about that mean.
    resolved : ndarray of bool, shape (n_owner,)
        False where the cap stopped the subdivision (the values are then less accurate
        than stated in :func:`_rules`).
    """
    X = np.asarray(X, dtype=np.float64)
    owner = np.asarray(owner)
    if X.ndim != 3 or X.shape[1] != X.shape[2] + 1 or X.shape[2] < 1:
        raise ValueError(f"X: expected simplices of shape (K, s + 1, s), got {X.shape}")
    if owner.shape != (X.shape[0],) or owner.dtype.kind not in "iu" or (
            owner.size and not (0 <= owner.min() and owner.max() < n_owner)):
        raise ValueError("owner: expected (K,) integers in [0, n_owner)")
    s = X.shape[-1]
    if X.shape[0] == 0:
        return (np.full(n_owner, -np.inf), np.zeros((n_owner, s)) if moments else None,
                np.zeros((n_owner, s, s)) if moments else None, np.ones(n_owner, dtype=bool))
    X, owner, spread, resolved = _subdivide(X, owner.astype(np.intp), n_owner, max_simplices)
    if compiled:
        return (*_moments_compiled(X, owner, spread, n_owner, moments), resolved)
    K = X.shape[0]
    # per simplex: log of its mass (logW), and about its centre c the mean offset (mo)
    # and covariance (cw) of the density on it; combined per owner below
    logW = np.full(K, -np.inf)
    mo = np.zeros((K, s))
    cw = np.zeros((K, s, s))
    lo = -np.inf
    for bound, n in _rules(s):
        sel_all = np.flatnonzero((spread > lo) & (spread <= bound))
        lo = bound
        lam, w = conical_rule(s, n)
        lamc = lam - 1.0 / (s + 1)          # barycentric offsets from the centre
        logw = np.log(w)[:, None]
        blk = max(8, _BLOCK_NODES // lam.shape[0])
        for i in range(0, sel_all.size, blk):
            sel = sel_all[i:i + blk]
            logW[sel], mo[sel], cw[sel] = _simplex_block_numpy(X[sel], lamc, logw, moments)
    c = _centres(X)
    top = np.full(n_owner, -np.inf)
    np.maximum.at(top, owner, logW)
    ok = np.isfinite(top)
    a = np.exp(logW - np.where(ok, top, 0.0)[owner])                     # (K,)
    tot = np.bincount(owner, a, minlength=n_owner)
    with np.errstate(divide="ignore"):
        log_m0 = np.where(ok, top + np.log(np.where(ok, tot, 1.0)), -np.inf) - s * _LOG_SQRT_2PI
    if not moments:
        return log_m0, None, None, resolved
    norm = np.where(tot > 0, tot, 1.0)
    # the owner's mean about the first simplex's centre (differences of nearby points)
    first = np.full(n_owner, -1)
    first[owner[::-1]] = np.arange(K)[::-1]
    ref = c[np.maximum(first, 0)]                                         # (n_owner, s)
    mk = (c - ref[owner]) + mo                                            # simplex means
    mean_off = np.stack([np.bincount(owner, a * mk[:, i], minlength=n_owner)
                         for i in range(s)], axis=1) / norm[:, None]
    mean = ref + mean_off
    dk = mk - mean_off[owner]
    cov = np.zeros((n_owner, s, s))
    for i in range(s):
        for j in range(i, s):
            v = np.bincount(owner, a * (cw[:, i, j] + dk[:, i] * dk[:, j]),
                            minlength=n_owner) / norm
            cov[:, i, j] = cov[:, j, i] = v
    return log_m0, mean, cov, resolved


@functools.cache
def _rule_table(s: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                                 NDArray[np.intp]]:
    """The rules of :func:`_rules` concatenated for the compiled kernel: band upper bounds
    (R,), barycentric node offsets from the centre (s+1, Qt), log weights (Qt,) and where
    each rule's nodes start (R + 1,)."""
    bounds, lamcs, logws, starts = [], [], [], [0]
    for bound, n in _rules(s):
        lam, w = conical_rule(s, n)
        bounds.append(bound)
        lamcs.append((lam - 1.0 / (s + 1)).T)
        logws.append(np.log(w))
        starts.append(starts[-1] + w.size)
    return (np.array(bounds), np.ascontiguousarray(np.concatenate(lamcs, axis=1)),
            np.concatenate(logws), np.array(starts, dtype=np.intp))


def _moments_compiled(X: NDArray[np.float64], owner: NDArray[np.intp],
                      spread: NDArray[np.float64], n_owner: int, moments: bool
                      ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None,
                                 NDArray[np.float64] | None]:
    """:func:`simplex_moments` after the subdivision, by the compiled kernels: simplices
    (K, s+1, s) with owners (K,) and spreads (K,) -> log m0 (n_owner,), mean
    (n_owner, s), cov (n_owner, s, s) (None unless ``moments``)."""
    from . import _jit_cubature as jc

    K, _, s = X.shape
    bounds, lamcT, logw, q_start = _rule_table(s)
    # the band (lo, bound] of each spread, as the numpy path selects it; NaN: no rule
    rule = np.searchsorted(bounds, spread, side="left")
    rule[~(rule < bounds.size)] = -1
    X = np.ascontiguousarray(X)
    logW = np.empty(K)
    mo = np.empty((K, s))
    cw = np.empty((K, s, s))
    order = np.argsort(owner, kind="stable")           # a polytope's simplices in input order
    seg = np.zeros(n_owner + 1, dtype=np.intp)
    np.cumsum(np.bincount(owner, minlength=n_owner), out=seg[1:])
    log_m0 = np.empty(n_owner)
    mean = np.empty((n_owner, s)) if moments else np.empty((0, s))
    cov = np.empty((n_owner, s, s)) if moments else np.empty((0, s, s))
    # a small batch runs on the calling thread (same bits: the kernels do not depend on the
    # thread count): waking the pool cost milliseconds per kernel on a loaded machine,
    # more than such a batch's work
    nodes = int(np.diff(q_start)[rule[rule >= 0]].sum())
    with serial_below(nodes, _SERIAL_NODES):
        jc.simplex_stats(X, rule, lamcT, logw, q_start, math.lgamma(s + 1), moments,
                         logW, mo, cw)
        jc.combine_owners(logW, mo, cw, _centres(X), order, seg, s * _LOG_SQRT_2PI, moments,
                          log_m0, mean, cov)
    return log_m0, (mean if moments else None), (cov if moments else None)


def _mm_small(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.einsum("ij,jk->ik", a, b)


def _simplex_block_numpy(X: NDArray[np.float64], lamc: NDArray[np.float64],
                         logw: NDArray[np.float64], moments: bool
                         ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """One rule on simplices X (K, s+1, s): log mass (K,), mean offset from the centre
    (K, s) and covariance (K, s, s) of N(0, I) on each simplex.

    Nodes are written as centre + offset, Y = lamc @ (X - centre), so that log N at the
    nodes, -|c|^2/2 - c.Y - |Y|^2/2, and the moments about the centre keep the digits of
    the small offsets (a simplex of size 1e-3 at distance 6 would otherwise lose ~4).
    """
    K, sp1, s = X.shape
    c = _centres(X)                                                       # (K, s)
    D = X - c[:, None, :]                                                 # (K, s+1, s)
    # With Y_q = sum_a lamc_qa D_a: c.Y_q = lamc_q . (D c) and |Y_q|^2 = lamc_q^T G lamc_q,
    # G = D D^T; so log N at all nodes is two GEMMs over (Q, .) x (., K), and the moments
    # are GEMMs of the weights with lamc and lamc x lamc, mapped back through D
    L2 = (lamc[:, :, None] * lamc[:, None, :]).reshape(lamc.shape[0], sp1 * sp1)
    Dc = np.einsum("kad,kd->ak", D, c)                                   # (s+1, K)
    G = np.einsum("kad,kbd->abk", D, D).reshape(sp1 * sp1, K)
    E = X[:, 1:] - X[:, :1]
    with np.errstate(divide="ignore"):
        logvol = np.log(np.abs(np.linalg.det(E))) - math.lgamma(s + 1)
    # s = 2: einsum, as BLAS only adds threading overhead to inner dimensions 3 and 9;
    # s >= 3: matmul, where the inner dimensions are large enough for BLAS
    mm = _mm_small if s == 2 else np.matmul
    lf = mm(lamc, Dc)
    lf += 0.5 * mm(L2, G)
    np.subtract(logw, lf, out=lf)                                         # (Q, K)
    mx = lf.max(axis=0)
    fin = np.isfinite(mx)
    lf -= np.where(fin, mx, 0.0)
    ew = np.exp(lf, out=lf)
    W = ew.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logW = np.where(fin & (logvol > -np.inf),
                        mx + np.log(W) + logvol - 0.5 * np.sum(c * c, axis=1), -np.inf)
    if not moments:
        return logW, np.zeros((K, s)), np.zeros((K, s, s))
    Wn = np.where(W > 0, W, 1.0)
    B = mm(lamc.T, ew) / Wn                                               # (s+1, K)
    mo = np.einsum("ak,kad->kd", B, D)
    H = (mm(L2.T, ew) / Wn).reshape(sp1, sp1, K)
    # second moments about the centre minus mo mo^T: all of the simplex's own size
    cw = np.einsum("kai,abk,kbj->kij", D, H, D) - mo[:, :, None] * mo[:, None, :]
    return logW, mo, 0.5 * (cw + np.swapaxes(cw, -1, -2))
