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
  reliably as fat ones): :func:`fan_triangulation`.
* Subdivision: a simplex with centre c and diameter D has log-density -|x|^2/2 within
  |c| D + D^2/2 of its value at c; simplices with that spread above ``_SPREAD`` are bisected
  at their longest edge (bounded work per polytope; simplices whose largest possible density
  is below e^-60 of the polytope's are dropped).
* On each simplex the conical product rule (Stroud): Gauss-Jacobi in the collapsed
  coordinates, exact for polynomials of total degree 2n - 1, with 6-9 points per axis
  chosen by the simplex's spread (:func:`_rules`).
* Log-sum-exp over all nodes of a polytope; the mean and the covariance about it from the
  same nodes (no cancellation against the second moment about the Gaussian's mean).
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import roots_jacobi

#: bisect simplices whose log-density spread bound |c| D + D^2/2 exceeds this
_SPREAD = 2.0
#: at most this many simplices per polytope after subdivision (bisection stops there)
_MAX_SIMPLICES = 4096
#: simplices whose density bound is below the polytope's best by this many nats are dropped
_DROP = 60.0

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def fan_triangulation(vertices: NDArray[np.float64], active: tuple[NDArray[np.intp], ...]
                      ) -> NDArray[np.intp]:
    """Triangulate a bounded, full-dimensional polytope from its vertices' active facets.

    Recursive fan: a face F of dimension k is the union of the cones from its first vertex
    v0 over its facets (faces of dimension k - 1) that do not contain v0. The facets of F
    are the vertex sets {v in F : row j tight at v} of affine dimension k - 1.

    Parameters
    ----------
    vertices : ndarray, shape (V, s)
    active : tuple of V int arrays
        Rows (facets of P) tight at each vertex.

    Returns
    -------
    ndarray of int, shape (T, s + 1)
        Vertex indices of the simplices (disjoint interiors, union = P).
    """
    V, s = vertices.shape
    act = [frozenset(int(j) for j in a) for a in active]
    rows = sorted(set().union(*act)) if act else []
    scale = float(np.max(np.abs(vertices))) + 1.0

    def affine_dim(idx: tuple[int, ...]) -> int:
        if len(idx) <= 1:
            return 0
        D = vertices[list(idx[1:])] - vertices[idx[0]]
        sv = np.linalg.svd(D, compute_uv=False)
        return int(np.sum(sv > 1e-12 * scale))

    def tri(face: tuple[int, ...], k: int, used: frozenset) -> list[tuple[int, ...]]:
        if k == 0:
            return [face[:1]]
        if k == 1:
            # an edge: its two extreme points along the edge (a face of dimension 1 has two
            # vertices; the others, if any, would be merged by the geometry's clustering)
            return [(face[0], face[-1])] if len(face) == 2 else [_edge_ends(vertices, face)]
        v0 = face[0]
        out: list[tuple[int, ...]] = []
        seen: set[tuple[int, ...]] = set()
        for j in rows:
            if j in used:
                continue
            sub = tuple(v for v in face if j in act[v])
            if len(sub) < k or v0 in sub or sub in seen:
                continue
            if affine_dim(sub) != k - 1:
                continue
            seen.add(sub)
            out.extend((v0,) + t for t in tri(sub, k - 1, used | {j}))
        return out

    simp = tri(tuple(range(V)), s, frozenset())
    return np.array(simp, dtype=np.intp).reshape(-1, s + 1)


def _edge_ends(vertices: NDArray[np.float64], face: tuple[int, ...]) -> tuple[int, int]:
    X = vertices[list(face)]
    d = X[-1] - X[0]
    t = X @ d
    return face[int(np.argmin(t))], face[int(np.argmax(t))]


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
    """(spread bound, points per axis) of the rules, by increasing spread: measured on 8000
    random (also thin) simplices against the 20-point rule, the log-mass error is
    <= 1e-13 (s = 2) and <= 5e-14 (s = 3) on each band (the next smaller rule: 3e-12 -
    7e-10); the last band is the one _SPREAD allows (a simplex that bisection could not
    reduce, at _MAX_SIMPLICES, gets the most points)."""
    extra = 1 if s == 2 else 0
    return ((0.5, 6 + extra), (1.0, 7 + extra), (_SPREAD, 8 + extra), (np.inf, 12))


def _spread(X: NDArray[np.float64]) -> NDArray[np.float64]:
    """|c| D + D^2/2: bound of |log N(x) - log N(c)| over a simplex (K, s+1, s) with centre
    c and diameter D (longest edge)."""
    s = X.shape[-1]
    pairs = np.array(list(itertools.combinations(range(s + 1), 2)))
    E = X[:, pairs[:, 1]] - X[:, pairs[:, 0]]
    D = np.sqrt(np.max(np.sum(E * E, axis=-1), axis=1))
    c = X.mean(axis=1)
    return np.sqrt(np.sum(c * c, axis=-1)) * D + 0.5 * D * D


def _subdivide(X: NDArray[np.float64], owner: NDArray[np.intp], n_owner: int
               ) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Bisect simplices (K, s+1, s) until their log-density spread bound is <= _SPREAD."""
    s = X.shape[-1]
    pairs = np.array(list(itertools.combinations(range(s + 1), 2)))
    done_X, done_o = [], []
    while X.shape[0]:
        c = X.mean(axis=1)
        E = X[:, pairs[:, 1]] - X[:, pairs[:, 0]]                            # (K, P, s)
        L2 = np.sum(E * E, axis=-1)
        e = np.argmax(L2, axis=1)
        D = np.sqrt(L2[np.arange(X.shape[0]), e])
        nc = np.sqrt(np.sum(c * c, axis=-1))
        spread = nc * D + 0.5 * D * D
        # drop what cannot matter: the density bound over the simplex vs the best centre
        top = np.maximum(nc - D, 0.0)
        best = np.full(n_owner, -np.inf)
        np.maximum.at(best, owner, -0.5 * nc * nc)
        keep = -0.5 * top * top >= best[owner] - _DROP
        cnt = np.bincount(owner[keep], minlength=n_owner)
        split = keep & (spread > _SPREAD) & (cnt[owner] * 2 <= _MAX_SIMPLICES)
        fin = keep & ~split
        done_X.append(X[fin])
        done_o.append(owner[fin])
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
    return np.concatenate(done_X), np.concatenate(done_o)


def simplex_moments(X: NDArray[np.float64], owner: NDArray[np.intp], n_owner: int,
                    moments: bool = True
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None,
                               NDArray[np.float64] | None]:
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

    Returns
    -------
    log_m0 : ndarray, shape (n_owner,)
        log of the N(0, I) mass of each union (-inf where it has none).
    mean : ndarray, shape (n_owner, s) or None
        E[x | union].
    cov : ndarray, shape (n_owner, s, s) or None
        Cov[x | union], about that mean.
    """
    s = X.shape[-1]
    X, owner = _subdivide(X, owner, n_owner)
    spread = _spread(X)
    parts = []  # per rule: (owner (K,), nodes (K, Q, s), log weight x density (K, Q))
    lo = -np.inf
    for bound, n in _rules(s):
        sel = (spread > lo) & (spread <= bound) if np.isfinite(bound) else spread > lo
        lo = bound
        if not np.any(sel):
            continue
        Xs = X[sel]
        lam, w = conical_rule(s, n)
        E = Xs[:, 1:] - Xs[:, :1]                                            # (K, s, s)
        with np.errstate(divide="ignore"):
            logvol = np.log(np.abs(np.linalg.det(E))) - math.lgamma(s + 1)
        nodes = lam @ Xs                                                     # (K, Q, s)
        lf = -0.5 * np.sum(nodes * nodes, axis=-1) + (np.log(w)[None] + logvol[:, None])
        parts.append((owner[sel], nodes, lf))
    top = np.full(n_owner, -np.inf)
    for o, _, lf in parts:
        np.maximum.at(top, o, lf.max(axis=1))
    ok = np.isfinite(top)
    top0 = np.where(ok, top, 0.0)
    tot = np.zeros(n_owner)
    m1 = np.zeros((n_owner, s))
    ews = []
    for o, nodes, lf in parts:
        ew = np.exp(lf - top0[o][:, None])                                   # (K, Q)
        ews.append(ew)
        tot += np.bincount(o, ew.sum(axis=1), minlength=n_owner)
        if moments:
            sm = (ew[:, None, :] @ nodes)[:, 0, :]
            for i in range(s):
                m1[:, i] += np.bincount(o, sm[:, i], minlength=n_owner)
    with np.errstate(divide="ignore"):
        log_m0 = np.where(ok, top + np.log(tot), -np.inf) - s * _LOG_SQRT_2PI
    if not moments:
        return log_m0, None, None
    norm = np.where(tot > 0, tot, 1.0)
    mean = m1 / norm[:, None]
    c2 = np.zeros((n_owner, s, s))
    for (o, nodes, _), ew in zip(parts, ews):
        dx = nodes - mean[o][:, None, :]
        sm2 = np.swapaxes(dx * ew[..., None], -1, -2) @ dx
        for i in range(s):
            for j in range(i, s):
                c2[:, i, j] += np.bincount(o, sm2[:, i, j], minlength=n_owner)
    c2 = np.triu(c2) + np.swapaxes(np.triu(c2, 1), -1, -2)
    return log_m0, mean, c2 / norm[:, None, None]
