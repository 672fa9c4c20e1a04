"""LP-free geometry of one region of the max-pooling walk (:mod:`fastpath._walk_regions`).

The general tool (:func:`fastpath._polyhedron.polyhedron_geometry`) costs 2-5 ms per region,
mostly fixed Python costs of a general-purpose construction (unit scaling, null basis,
redundancy prune, edges and pieces that the walk never uses). A region of the walk is
pointed in the common case and has a few dozen rows, so its vertices, extreme rays and
facets follow from enumerating S-subsets of rows (:func:`fastpath._small_polytope.subsets`)
with a handful of numpy calls:

* rows: the pattern's constraint rows, forwarded layer by layer with the winner rows of the
  max groups taken from the pattern (the +1 entries), as :func:`dgn_core.regions.layer_maps`
  and :func:`~dgn_core.regions.region_inequalities` define them;
* vertices: solutions of the well-conditioned S-subsets of the unit rows that satisfy every
  row (slack >= -``tight`` relative to 1 + |v|), duplicates merged;
* rays: :func:`fastpath._small_polytope.extreme_rays` of the recession cone;
* facets: a hyperplane of rows (unit rows and offsets within ``facet_tol``) is a facet iff
  the vertices and rays on it span S - 1 dimensions, the rule of the general path;
* interior point: the mean of the vertices plus a positive multiple of the mean ray.

Anything outside the easy case returns None and the caller uses the general tool: too many
subsets, a region with lines (no vertex), a feasible vertex or ray from a badly conditioned
subset, an interior point with a small slack (thin or empty region) or whose forward
pattern is not the region's. So the fast geometry is used only where both constructions
agree within their tolerances.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN

from ._small_polytope import extreme_rays, subsets

__all__ = ["pattern_rows", "fast_geometry", "MAX_FAST_SUBSETS"]

Arr = NDArray[np.float64]

#: at most this many S-subsets of a region's live rows are enumerated (else the general tool)
MAX_FAST_SUBSETS = 20_000
#: subsets whose |det| (unit rows) is below this are skipped as singular ...
_DET_SKIP = 1e-13
#: ... and a feasible vertex (a ray) from a subset with |det| (|null vector|) below this sends
#: the region to the general tool (its coordinates would carry rounding ~1e-16 / det)
_DET_SAFE = 1e-7
#: an interior point needs every slack above this (relative to 1 + the vertices' size)
_SLACK_MIN = 1e-7


def pattern_rows(net: DGN, q: NDArray[np.int8]
                 ) -> tuple[Arr, Arr, Arr, Arr, Arr] | None:
    """``(C, d, mag, A, b)`` of the region of pattern q (see
    :func:`fastpath._walk_regions._rows`); None when a max group has not exactly one +1."""
    S = net.latent_dim
    M, c = np.eye(S), np.zeros(S)
    Cs, ds, ms = [], [], []
    off = 0
    last = net.n_layers - 1
    for l in range(last):
        W, v = net.weights[l], net.biases[l]
        M, c = W @ M, W @ c + v
        w = M.shape[0]
        ql = q[off:off + w]
        off += w
        size = np.abs(M).max(axis=1)
        sizes = net.pool_sizes[l]
        if sizes:
            win = np.flatnonzero(ql > 0)
            if win.size != len(sizes):
                return None
            rep = np.repeat(win, sizes)
            # h_win - h_i >= 0  <=>  (M_i - M_win) z <= c_win - c_i
            Cs.append(M - M[rep])
            ds.append(c[rep] - c)
            ms.append(size + size[rep])
            M, c = M[win], c[win]
        else:
            qf = ql.astype(np.float64)
            Cs.append(-qf[:, None] * M)
            ds.append(qf * c)
            ms.append(size)
            f = np.where(ql > 0, 1.0, net.slopes[l])
            M, c = f[:, None] * M, f * c
    W, v = net.weights[last], net.biases[last]
    return (np.concatenate(Cs), np.concatenate(ds), np.concatenate(ms), W @ M, W @ c + v)


def fast_geometry(C: Arr, d: Arr, tight: float, facet_tol: float
                  ) -> tuple[Arr, Arr, list[tuple[int, ...]], list[int], Arr] | None:
    """Vertices, rays and facets of {z : C z <= d} (live rows, none zero), or None.

    Returns
    -------
    V : ndarray, shape (nv, S)
    R : ndarray, shape (nr, S)
        Vertices and extreme rays (rays scaled to max |r_i| = 1).
    members : list of tuple of int
        For every facet, the rows of C on its hyperplane (ascending), facets in ascending
        order of these tuples.
    reps : list of int
        The first row of every facet.
    ip : ndarray, shape (S,)
        A candidate interior point (the caller confirms its pattern).
    """
    m, S = C.shape
    if m < S or math.comb(m, S) > MAX_FAST_SUBSETS:
        return None
    nrm = np.sqrt(np.einsum("ij,ij->i", C, C))
    Cu, du = C / nrm[:, None], d / nrm
    combos = subsets(m, S)
    Ms = Cu[combos]
    if S == 1:
        det = Ms[:, 0, 0]
    elif S == 2:
        det = Ms[:, 0, 0] * Ms[:, 1, 1] - Ms[:, 0, 1] * Ms[:, 1, 0]
    else:
        det = np.linalg.det(Ms)
    ok = np.abs(det) > _DET_SKIP
    combos, Ms, det = combos[ok], Ms[ok], det[ok]
    rhs = du[combos]
    if S == 1:
        X = rhs / Ms[:, :, 0]
    elif S == 2:
        X = np.stack([(rhs[:, 0] * Ms[:, 1, 1] - rhs[:, 1] * Ms[:, 0, 1]) / det,
                      (Ms[:, 0, 0] * rhs[:, 1] - Ms[:, 1, 0] * rhs[:, 0]) / det], axis=1)
    else:
        X = np.linalg.solve(Ms, rhs[..., None])[..., 0]
    xs = 1.0 + np.abs(X).max(axis=1)
    feas = np.max(X @ Cu.T - du, axis=1) <= tight * xs
    if not feas.any() or np.abs(det[feas]).min() < _DET_SAFE:
        return None
    V = _unique(X[feas], tight * float(xs[feas].max()))
    scale = 1.0 + float(np.abs(V).max())
    if S > 1:
        # a ray from nearly dependent rows would be ill-determined: let the general tool do it
        n_small = _null_norms_small(Cu, S)
        if n_small is not None and np.any(np.max(np.concatenate([n_small, -n_small])
                                                 @ Cu.T, axis=1) <= tight):
            return None
    R = extreme_rays(Cu, tight, _DET_SAFE)
    if len(R):
        R = R / np.abs(R).max(axis=1, keepdims=True)
        R = _unique(R, tight)
    # tight sets, rows grouped by hyperplane
    TV = np.abs(V @ Cu.T - du) <= tight * scale          # (nv, m)
    TR = np.abs(R @ Cu.T) <= tight if len(R) else np.zeros((0, m), dtype=bool)
    members: list[tuple[int, ...]] = []
    seen = np.zeros(m, dtype=bool)
    for i in np.flatnonzero(TV.any(axis=0)):
        if seen[i]:
            continue
        same = (np.abs(Cu - Cu[i]).max(axis=1) <= facet_tol) \
            & (np.abs(du - du[i]) <= facet_tol * scale)
        seen |= same
        Vt, Rt = V[TV[:, i]], R[TR[:, i]]
        if S == 1:
            rank = 0
        else:
            span = np.vstack([Vt[1:] - Vt[0], Rt])
            if span.shape[0] < S - 1:
                continue
            span = span / np.maximum(np.abs(span).max(axis=1, keepdims=True), 1e-300)
            rank = int(np.linalg.matrix_rank(span, tol=tight))
        if rank == S - 1:
            members.append(tuple(int(k) for k in np.flatnonzero(same)))
    members.sort()
    reps = [mm[0] for mm in members]
    spread = float(np.abs(V - V.mean(axis=0)).max())
    ip = V.mean(axis=0) + (1.0 + spread) * R.sum(axis=0) / max(len(R), 1)
    if np.min(du - Cu @ ip) <= _SLACK_MIN * (1.0 + float(np.abs(ip).max())):
        return None
    return V, R, members, reps, ip


def _null_norms_small(Cu: Arr, S: int) -> Arr | None:
    """Unit null directions of the (S-1)-subsets whose null vector is short (nearly
    dependent rows, |n| in [_DET_SKIP, _DET_SAFE]), or None when there are none."""
    from ._small_polytope import _null_directions

    n = _null_directions(Cu[subsets(Cu.shape[0], S - 1)])
    nn = np.linalg.norm(n, axis=1)
    bad = (nn > _DET_SKIP) & (nn < _DET_SAFE)
    if not bad.any():
        return None
    return n[bad] / nn[bad, None]


def _unique(X: Arr, tol: float) -> Arr:
    """Rows of X with the later near-duplicates (max-abs distance <= tol) removed."""
    if len(X) <= 1:
        return X
    D = np.abs(X[:, None, :] - X[None, :, :]).max(axis=2) <= tol
    dup = np.tril(D, -1).any(axis=1)
    return X[~dup]
