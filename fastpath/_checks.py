"""Input checks of fastpath's distribution functions (marginal, posterior, E-step, KL).

The rules both backends share are in :mod:`dgn_core.validation`; this module adds the fast
backend's reading of the shared ``prune`` option, its own ``chunk_size`` option, and the
check that a partition passed in belongs to the net. Public functions call these; private
kernels assume valid input.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from dgn_core.model import DGN
from dgn_core.regions import Partition
from dgn_core.validation import check_int, check_net

__all__ = ["DEFAULT_PRUNE", "MIN_PRUNE"]

#: the safe margin of ``prune=True`` (dgn_core.api): pairs certified to carry less than
#: exp(-60) = 8.8e-27 of p(x), 24 nats below float64 resolution, are not integrated
DEFAULT_PRUNE = 60.0
#: the smallest margin accepted: below ~30 nats the skipped weights (< e^-T) would be
#: visible in float64 results
MIN_PRUNE = 30.0


def _check_net(net: Any) -> DGN:
    """``net`` if it is a DGN, else ``TypeError`` (:func:`dgn_core.validation.check_net`)."""
    return check_net(net)


def _check_chunk_size(chunk_size: Any) -> int | None:
    """None, or an integer >= 1 (TypeError for a float or a bool, ValueError below 1)."""
    if chunk_size is None:
        return None
    return check_int(chunk_size, "chunk_size (or None)", 1)


def _check_prune(prune: Any) -> float | None:
    """The margin in nats of the ``prune`` option, or None to evaluate every pair.

    ``True`` is :data:`DEFAULT_PRUNE`; ``False`` and ``None`` evaluate every pair; a number
    is the margin itself and must be finite and at least :data:`MIN_PRUNE`.
    """
    if prune is None:
        return None
    if isinstance(prune, (bool, np.bool_)):
        return DEFAULT_PRUNE if prune else None
    if not isinstance(prune, numbers.Real):
        raise TypeError(f"prune must be True, False, None or a margin in nats, got {prune!r}")
    T = float(prune)
    if not math.isfinite(T) or T < MIN_PRUNE:
        raise ValueError(f"prune must be a finite number >= {MIN_PRUNE:g} (a margin in nats), "
                         f"True, False or None, got {prune!r}")
    return T


def _same_hidden_layers(a: DGN, b: DGN) -> bool:
    return (a.activations == b.activations and a.slopes == b.slopes and a.n_layers == b.n_layers
            and a.pool_sizes == b.pool_sizes
            and a.latent_dim == b.latent_dim
            and all(np.array_equal(x, y) for x, y in zip(a.weights[:-1], b.weights[:-1]))
            and all(np.array_equal(x, y) for x, y in zip(a.biases[:-1], b.biases[:-1])))


def _check_partition(net: DGN, partition: Any) -> Partition:
    """``partition`` if it is a partition of ``net`` (or of a net with the same hidden
    layers, whose regions are the same), ``fastpath.partition(net)`` if it is None."""
    if partition is None:
        from .partition_walk import partition as _partition
        return _partition(net)
    if not isinstance(partition, Partition):
        raise TypeError(f"partition must be a Partition (fastpath.partition(net)), "
                        f"got {type(partition).__name__}")
    if len(partition) == 0:
        raise ValueError("partition has no regions")
    if not _same_hidden_layers(partition.net, net):
        raise ValueError("partition was computed for a different network (its hidden layers, "
                         "activation or latent dimension differ from net's)")
    return partition
