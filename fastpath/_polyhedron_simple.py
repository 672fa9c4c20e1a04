"""Vertex data of a simple pointed polyhedron in one vectorised pass (no per-vertex loop).

Part of :func:`fastpath._polyhedron.polyhedron_geometry`: when every vertex has exactly S'
tight rows, the generators, edges (each found from both endpoints), rays and the one
simplicial cone per vertex follow from batched inverses; anything else returns None and
the geometry takes its per-vertex loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["simple_polyhedron"]


def simple_polyhedron(Cr: NDArray[np.float64], dt: NDArray[np.float64], X: NDArray[np.floating[Any]],
                      r: float, tol: float, det_tol: float):
    """Vectorised vertex data when every vertex is simple (exactly S' tight rows), else None.

    Coordinates relative to the interior point (rows {Cr x <= dt}). For a simple vertex with
    active rows A the generators are the columns of -C_A^{-1} and its cone is {C_A (x - v) <= 0}
    (row q of C_A is opposite generator q). ``tol`` and ``det_tol`` are the tightness and
    singularity tolerances of :mod:`fastpath._polyhedron`.
    """
    k, Sp = X.shape
    tolx = tol * (r + np.linalg.norm(X, axis=1))
    slack = dt[None, :] - X @ Cr.T                                        # (k, m)
    T = np.abs(slack) <= tolx[:, None]
    if not np.all(T.sum(axis=1) == Sp):
        return None
    A = np.nonzero(T)[1].reshape(k, Sp)                                   # sorted row indices
    CA = Cr[A]                                                            # (k, Sp, Sp)
    if np.any(np.abs(np.linalg.det(CA)) <= det_tol):
        return None
    X = np.linalg.solve(CA, dt[A][..., None])[..., 0]                     # polished
    slack = dt[None, :] - X @ Cr.T
    G = -np.linalg.inv(CA)                                                # columns: generators
    G = G / np.linalg.norm(G, axis=1, keepdims=True)
    Gt = np.swapaxes(G, 1, 2)                                             # (k, q, Sp)
    dots = Gt @ Cr.T                                                      # (k, q, m)
    hit = (dots > 1e-12) & ~T[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.where(hit, slack[:, None, :] / dots, np.inf)
    tstar = tt.min(axis=-1)                                               # (k, q)
    bounded = np.isfinite(tstar)
    end = X[:, None, :] + np.where(bounded, tstar, 0.0)[..., None] * Gt
    dist = np.linalg.norm(end[:, :, None, :] - X[None, None, :, :], axis=-1)   # (k, q, k)
    dist[np.arange(k), :, np.arange(k)] = np.inf
    j = np.argmin(dist, axis=-1)
    dj = np.take_along_axis(dist, j[..., None], axis=-1)[..., 0]
    scale = 1e-6 * (r + np.linalg.norm(end, axis=-1))
    if np.any(bounded & (dj > scale)):
        return None
    i_idx = np.broadcast_to(np.arange(k)[:, None], (k, Sp))
    lo = np.minimum(i_idx, j)
    hi = np.maximum(i_idx, j)
    bi, bq = np.nonzero(bounded)
    pairs = np.stack([lo[bi, bq], hi[bi, bq]], axis=1)
    # unique (lo, hi) pairs in lexicographic order through one integer key (np.unique
    # with axis=0 gives the same order and inverse at several times the cost)
    ukey, inv, cnt = np.unique(pairs[:, 0] * k + pairs[:, 1], return_inverse=True,
                               return_counts=True)
    uniq = np.stack([ukey // k, ukey % k], axis=1)
    if np.any(cnt != 2):
        return None
    nb = len(uniq)
    edge_id = np.empty((k, Sp), dtype=np.intp)
    orient = np.ones((k, Sp))
    edge_id[bi, bq] = inv.ravel()
    orient[bi, bq] = np.where(bi == lo[bi, bq], 1.0, -1.0)
    E_dir = np.empty((nb, Sp))
    first = bi == lo[bi, bq]                                              # seen from the lower end
    E_dir[inv.ravel()[first]] = Gt[bi[first], bq[first]]
    E_start = X[uniq[:, 0]]
    E_len = np.linalg.norm(X[uniq[:, 1]] - X[uniq[:, 0]], axis=1)
    ri, rq = np.nonzero(~bounded)
    nr = len(ri)
    edge_id[ri, rq] = nb + np.arange(nr)
    E_dir = np.vstack([E_dir, Gt[ri, rq]])
    E_start = np.vstack([E_start, X[ri]])
    E_len = np.concatenate([E_len, np.full(nr, np.inf)])
    return (X, tuple(A), E_start, E_dir, E_len, np.arange(k, dtype=np.intp), CA.copy(),
            edge_id, orient)

