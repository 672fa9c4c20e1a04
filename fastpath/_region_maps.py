"""Per-region quantities shared by the E-step, the posterior and the KL.

* :func:`affine_maps`: the maps g(z) = A_w z + b_w of a net on every region of a partition
  (docs/DESIGN.md §2.1), as two stacked arrays. A partition also serves a net with the same
  hidden layers (EM changes the output layer and the noise, not the regions); the maps are
  then recomputed from the regions' sign patterns in one batched pass
  (:func:`fastpath.partition_walk.layer_maps_batch`, the code that built the partition's own
  maps).
* :func:`cone_batch`: the vertex-cone decompositions of a partition's regions
  (:class:`fastpath.integrals.ConeBatch`). They depend on the geometry only, so one cache,
  keyed by the partition object and dropped with it, serves every function and every net
  that uses the partition.
"""

from __future__ import annotations

import weakref

import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN
from dgn_core.regions import Partition

from .integrals import ConeBatch

__all__ = ["affine_maps", "cone_batch"]

Arr = NDArray[np.float64]

_CONES: weakref.WeakKeyDictionary[Partition, ConeBatch] = weakref.WeakKeyDictionary()


def cone_batch(partition: Partition) -> ConeBatch:
    """The vertex-cone decompositions of the regions of ``partition`` (cached)."""
    cb = _CONES.get(partition)
    if cb is None:
        cb = ConeBatch.from_partition(partition)
        _CONES[partition] = cb
    return cb


def affine_maps(net: DGN, partition: Partition) -> tuple[Arr, Arr]:
    """``(A (R, D, S), b (R, D))`` of ``net`` on the regions of ``partition``.

    ``partition`` must be a partition of ``net`` or of a net with the same hidden layers
    (:func:`fastpath._checks._check_partition`).
    """
    if partition.net is net or partition.net == net:
        return partition.A_stack, partition.b_stack
    from .partition_walk import layer_maps_batch
    _, _, A, b = layer_maps_batch(net, partition.sign_matrix)
    return np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64)
