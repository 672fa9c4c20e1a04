"""The partition of a max-pooling net with S = 1: a sweep of the line, checked by closure.

At S = 1 the regions are intervals, so the breadth-first walk of
:mod:`fastpath._walk_regions` (one level per step away from the start: ~K/2 levels of two
regions each) batches nothing. Here the patterns are *proposed* by a layer-wise subdivision
of the line and then *checked* as the walk would check them:

1. proposal: the breakpoints of hidden layer l on every interval of layers < l are where an
   element-wise unit's pre-activation is zero or two units of a max group are equal (every
   pair; an affine function per interval, from the forward pass and its derivative at the
   interval's midpoint); after the last layer the forward pattern at every interval's
   midpoint, consecutive repeats merged;
2. geometry: all proposed regions in one batch (:func:`fastpath._walk_batch.batch_cells`,
   the one-region path on any doubt), as in the walk;
3. check: every facet of every region is crossed by the walk's one-sided pattern
   (:func:`fastpath._walk_regions.one_sided_patterns`) in one batched pass, and must land on
   a proposed region other than its own. A set of regions that holds the start region and
   is closed under crossing facets is the whole partition (the facet graph is connected).

If any check fails (a missed sliver interval, a region the geometry rejects, a float
degeneracy) the result is discarded and the general walk runs instead, so the sweep changes
speed, not results. Region numbers are those of the breadth-first walk (replayed on the
neighbour lists).
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN

Arr = NDArray[np.float64]

__all__ = ["line_patterns"]


def line_patterns(net: DGN) -> NDArray[np.int8]:
    """Proposed patterns of the regions of a net with S = 1, left to right, shape (K, n)."""
    bps = np.zeros(0)
    for l in range(net.n_layers - 1):
        z, lo, hi = _representatives(bps)
        u, du = _pre_activation(net, z, l)          # (K, w): u(z) + du (t - z) on the interval
        sizes = net.pool_sizes[l]
        with np.errstate(divide="ignore", invalid="ignore"):
            if sizes:
                i, j = _group_pairs(tuple(sizes))
                t = z[:, None] - (u[:, i] - u[:, j]) / (du[:, i] - du[:, j])
            else:
                t = z[:, None] - u / du
        inside = np.isfinite(t) & (t > lo[:, None]) & (t < hi[:, None])
        if inside.any():
            bps = np.unique(np.concatenate([bps, t[inside]]))
    z, _, _ = _representatives(bps)
    Q = net.sign_patterns(z[:, None]).astype(np.int8)
    keep = np.ones(len(Q), dtype=bool)
    keep[1:] = np.any(Q[1:] != Q[:-1], axis=1)
    return Q[keep]


@functools.lru_cache(maxsize=64)
def _group_pairs(sizes: tuple[int, ...]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Every pair (i < j) of units in one group of a max layer, two index arrays."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ii, jj = [], []
    for s0, g in zip(starts, sizes):
        a, b = np.triu_indices(g, 1)
        ii.append(a + s0)
        jj.append(b + s0)
    return np.concatenate(ii).astype(np.intp), np.concatenate(jj).astype(np.intp)


def _representatives(bps: Arr) -> tuple[Arr, Arr, Arr]:
    """A point inside every interval between sorted breakpoints (the midpoint; one unit
    beyond the ends), with the interval's ends, shape (K,) each."""
    lo = np.concatenate([[-np.inf], bps])
    hi = np.concatenate([bps, [np.inf]])
    if len(bps) == 0:
        return np.zeros(1), lo, hi
    span = 1.0 + (bps[-1] - bps[0])
    z = np.concatenate([[bps[0] - span], 0.5 * (bps[:-1] + bps[1:]), [bps[-1] + span]])
    return z, lo, hi


def _pre_activation(net: DGN, z: Arr, layer: int) -> tuple[Arr, Arr]:
    """Pre-activation of hidden layer ``layer`` and its derivative along +1 at the points z
    (K,), shape (K, w) each (the forward pass; max groups pass on their argmax, first index
    on ties)."""
    h, dh = z[:, None], np.ones((len(z), 1))
    rows = np.arange(len(z))[:, None]
    for l in range(layer + 1):
        W, v = net.weights[l], net.biases[l]
        u, du = h @ W.T + v, dh @ W.T
        if l == layer:
            return u, du
        sizes = net.pool_sizes[l]
        if sizes:
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
            gid = np.repeat(np.arange(len(sizes)), sizes)
            umax = np.maximum.reduceat(u, starts, axis=1)[:, gid]
            w = u.shape[1]
            win = np.minimum.reduceat(np.where(u >= umax, np.arange(w), w), starts, axis=1)
            h, dh = u[rows, win], du[rows, win]
        else:
            f = np.where(u >= 0, 1.0, net.slopes[l])
            h, dh = f * u, f * du
    raise AssertionError("unreachable")  # pragma: no cover
