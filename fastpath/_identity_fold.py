"""Identity (linear) hidden layers in the float64 partition: fold them into the next layer.

An identity layer (``a(t) = t``) has no kink, so it adds no hyperplane: the partition of a
net with identity layers is the partition of the net in which every identity layer is
multiplied into the layer after it (``W' = W_{l+1} W_l``, ``v' = W_{l+1} v_l + v_{l+1}``),
with a +1 pattern entry for every identity unit. :func:`fold_identity` builds that net and
:func:`unfold_partition` turns its partition back into one of the original net: patterns get
the +1 entries, facet units are renumbered, and the maps ``A``, ``b`` are recomputed with the
original layers (the folded product rounds differently). The geometry (facets, vertices,
rays, neighbours) is the folded net's, up to float64 rounding of the folded weights
(measured against the exact partition, which keeps the identity layers: facets within 7e-16,
vertices within 8e-14 relative, ``tests/test_identity_activation.py``).

Limitation: the rounding check of the layer-wise subdivision sees the folded weights only, not
the magnitudes of the products that formed them; a folded row that cancels exactly in
rationals but not in float64 (a degenerate net) can then cut the space where the exact
partition does not (a thin extra region), where the unfolded subdivision would have treated it
as zero within its tolerance.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.activations import IDENTITY
from dgn_core.model import DGN
from dgn_core.regions import Partition

__all__ = ["has_identity_layer", "fold_identity", "unfold_partition"]


def has_identity_layer(net: DGN) -> bool:
    """Whether some hidden layer of ``net`` is an identity layer."""
    return IDENTITY in net.activations


def fold_identity(net: DGN) -> DGN:
    """The net with every identity hidden layer multiplied into the layer after it (same
    function g, same noise and prior; fewer hidden layers)."""
    Ws = [np.asarray(net.weights[0], dtype=np.float64)]
    vs = [np.asarray(net.biases[0], dtype=np.float64)]
    acts: list[str] = []
    slopes: list[float | None] = []
    pools: list[Any] = []
    for l in range(1, net.n_layers):
        W, v = np.asarray(net.weights[l]), np.asarray(net.biases[l])
        a = net.activations[l - 1]
        if a == IDENTITY:  # h^{l+1} = W_{l+1} (W_l x + v_l) + v_{l+1}
            Ws[-1], vs[-1] = W @ Ws[-1], W @ vs[-1] + v
            continue
        acts.append(a)
        slopes.append(None if net.pool_sizes[l - 1] else net.slopes[l - 1])
        pools.append(list(net.pool_sizes[l - 1]) or None)
        Ws.append(W)
        vs.append(v)
    kw: dict[str, Any] = {"activation": acts, "slope": slopes}
    if any(p is not None for p in pools):
        kw["pool_sizes"] = pools
    return DGN(Ws, vs, noise_var=net.noise_var,
               prior_cov=None if net.has_identity_prior else net.prior_cov, **kw)


def unfold_partition(net: DGN, folded: Partition,
                     maps: Any) -> Partition:
    """The partition of ``net`` from the partition ``folded`` of :func:`fold_identity`
    ``(net)``.

    Parameters
    ----------
    net : the original net (with identity layers).
    folded : the folded net's float64 partition.
    maps : ``layer_maps_batch``-like callable ``(net, signs (P, n)) -> (M, c, A, b)``; only
        ``A`` (P, D, S) and ``b`` (P, D) are used.
    """
    kink = net.kink_units
    keep = np.flatnonzero(kink)  # original index of every unit of the folded net
    n = net.n_hidden_units
    R = len(folded)
    signs = np.ones((R, n), dtype=np.int8)
    if R and keep.size:
        signs[:, keep] = folded.sign_matrix
    _, _, A, b = maps(net, signs)
    regions = []
    for i, r in enumerate(folded):
        A_i: NDArray[np.float64] = np.ascontiguousarray(A[i])
        b_i: NDArray[np.float64] = np.ascontiguousarray(b[i])
        A_i.setflags(write=False)
        b_i.setflags(write=False)
        regions.append(dataclasses.replace(
            r, signs=tuple(int(s) for s in signs[i]), A=A_i, b=b_i,
            facet_units=tuple(tuple(int(keep[k]) for k in u) for u in r.facet_units)))
    return Partition(net, regions, exact=False)
