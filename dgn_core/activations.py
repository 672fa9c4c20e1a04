"""The hidden layers' nonlinearities: element-wise activations and max-pooling.

Element-wise: a(t) = t for t > 0 and ``slope * t`` otherwise, ReLU (slope 0), leaky-ReLU
(0 < slope < 1) and absolute value (slope -1). A unit's sign is +1 where its pre-activation
is ``>= 0``. The identity (``"identity"``, slope 1: a(t) = t, a linear layer) has no kink:
its units contribute no hyperplane to the partition and their pattern entries are always +1.

Max-pooling (``"max"``): the layer's pre-activation units are split into consecutive groups
(``pool_sizes``, one size per group) and the layer outputs the maximum of every group, so it
has as many outputs as groups. Overlapping windows are groups over repeated rows of the
layer's weight matrix. The pattern entry of a max unit is +1 for the first unit of its group
that attains the group's maximum (the argmax) and -1 for the others, so a region's pattern is
still one +-1 per hidden unit, with exactly one +1 per group; its constraints are
``h_winner - h_i >= 0`` for every other unit i of the group (the argmax regions).

Part of the shared specification (:mod:`dgn_core`): numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .validation import real_array

__all__ = ["ACTIVATIONS", "MIXED", "MAX", "IDENTITY", "NO_SLOPE", "group_offsets", "max_pattern",
           "group_max", "winners", "winners_batch", "check_activation", "layer_activations",
           "check_pool_sizes"]

#: element-wise activation name -> default slope (eta)
ACTIVATIONS: dict[str, float] = {"relu": 0.0, "leaky_relu": 0.01, "abs": -1.0,
                                 "identity": 1.0}

#: the kink-free element-wise activation a(t) = t (slope 1): no hyperplane, pattern +1
IDENTITY = "identity"

#: the max-pooling layer's name in ``DGN.activations``
MAX = "max"

#: what :attr:`DGN.activation` says of a net whose hidden layers differ in activation or slope
MIXED = "mixed"

#: the slope entry of a max-pooling layer (it has none); one shared object, so that the
#: tuples of slopes of equal nets compare equal
NO_SLOPE = float("nan")


def _real_scalar(value: Any, name: str) -> float:
    """A real number: TypeError for complex numbers, booleans, strings and arrays of size > 1."""
    arr = real_array(value, name)
    if arr.ndim != 0:
        raise TypeError(f"{name} must be a real number, got an array of shape {arr.shape}")
    return float(arr)


def check_activation(activation: str, slope: float | None) -> tuple[str, float]:
    """(name, slope) of one hidden layer, checked; a max layer's slope is :data:`NO_SLOPE`."""
    if activation == MAX:
        if slope is not None and not (isinstance(slope, float) and np.isnan(slope)):
            raise ValueError(f"max-pooling has no slope, got slope={slope}")
        return MAX, NO_SLOPE
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS) + [MAX]}, got {activation!r}"
        )
    slope = _real_scalar(ACTIVATIONS[activation] if slope is None else slope, "slope")
    if not np.isfinite(slope):
        raise ValueError(f"slope must be finite, got {slope}")
    if activation == "relu" and slope != 0.0:
        raise ValueError(f"relu has slope 0, got slope={slope} (use activation='leaky_relu')")
    if activation == "abs" and slope != -1.0:
        raise ValueError(f"abs has slope -1, got slope={slope}")
    if activation == IDENTITY and slope != 1.0:
        raise ValueError(f"identity has slope 1, got slope={slope}")
    if activation == "leaky_relu" and not 0.0 < slope < 1.0:
        raise ValueError(f"leaky_relu needs 0 < slope < 1, got slope={slope}")
    return activation, slope


def layer_activations(activation: str | Sequence[str], slope: float | Sequence[float | None] | None,
                      n_hidden: int
                      ) -> tuple[str, float | None, tuple[str, ...], tuple[float, ...]]:
    """(``activation`` attribute, its slope (None when mixed), per-layer activations,
    per-layer slopes), every entry checked.

    One name applies to every hidden layer; a sequence gives one per hidden layer. A single
    slope applies to every leaky_relu layer (relu and abs have fixed slopes, max none); a
    sequence gives one per hidden layer (None: that activation's default).
    """
    if isinstance(activation, str):
        names: list[str] = [activation] * max(n_hidden, 1)
        single = True
    elif isinstance(activation, Sequence) and not isinstance(activation, bytes):
        names = list(activation)
        single = False
        if len(names) != n_hidden:
            raise ValueError(f"activation lists {len(names)} activation(s) but the net has "
                             f"{n_hidden} hidden layer(s); give one per hidden layer (or one "
                             "name for all)")
    else:
        raise TypeError(f"activation must be a name or a list of names (one per hidden "
                        f"layer), got {activation!r}")
    per: list[Any]
    if slope is None or isinstance(slope, (str, bytes)) or not isinstance(slope, Sequence) \
            and np.ndim(slope) == 0:
        per = [slope] * len(names)
        if not single and slope is not None:
            # one slope for the leaky layers; relu, abs and identity keep theirs, max has none
            per = [slope if a == "leaky_relu" else None for a in names]
    else:
        per = list(slope)  # type: ignore[arg-type]  # a 1-d array or a sequence
        if len(per) != len(names):
            raise ValueError(f"slope lists {len(per)} value(s) but the net has {n_hidden} "
                             "hidden layer(s); give one per hidden layer (or one number)")
    acts: list[str] = []
    slopes: list[float] = []
    for l, (a, s) in enumerate(zip(names, per)):
        try:
            a, s_checked = check_activation(a, s)
        except (TypeError, ValueError) as exc:
            if single:
                raise
            raise type(exc)(f"hidden layer {l + 1}: {exc}") from None
        acts.append(a)
        slopes.append(s_checked)
    if not acts:  # an empty list for a net without hidden layers
        return "relu", 0.0, (), ()
    if len(set(zip(acts, slopes))) > 1:
        return MIXED, None, tuple(acts), tuple(slopes)
    # a net without hidden layers keeps the activation it was given (one name)
    n = min(n_hidden, len(acts))
    return acts[0], slopes[0], tuple(acts[:n]), tuple(slopes[:n])


def check_pool_sizes(pool_sizes: Any, activations: Sequence[str], widths: Sequence[int]
                     ) -> tuple[tuple[int, ...], ...]:
    """One tuple of group sizes per hidden layer: ``()`` for element-wise layers, and for a
    max layer positive sizes that add up to the layer's width (an int k: groups of k)."""
    n = len(activations)
    if pool_sizes is None:
        entries: list[Any] = [None] * n
    elif isinstance(pool_sizes, (str, bytes)) or not isinstance(pool_sizes, Sequence):
        raise TypeError("pool_sizes must be a list with one entry per hidden layer (None for "
                        f"an element-wise layer), got {pool_sizes!r}")
    else:
        entries = list(pool_sizes)
        if len(entries) != n:
            raise ValueError(f"pool_sizes lists {len(entries)} entries but the net has {n} "
                             "hidden layer(s)")
    out: list[tuple[int, ...]] = []
    for l, (a, e, w) in enumerate(zip(activations, entries, widths)):
        where = f"hidden layer {l + 1}"
        if a != MAX:
            if e is not None and not (isinstance(e, Sequence) and len(e) == 0):
                raise ValueError(f"{where} is {a}, not max-pooling: its pool_sizes entry must "
                                 f"be None, got {e!r}")
            out.append(())
            continue
        if e is None:
            raise ValueError(f"{where} is max-pooling: pool_sizes must give its group sizes "
                             "(a list of sizes adding up to the layer's width, or one size)")
        if isinstance(e, (int, np.integer)) and not isinstance(e, bool):
            k = int(e)
            if k < 1 or w % k:
                raise ValueError(f"{where}: groups of {k} do not divide its {w} units")
            out.append((k,) * (w // k))
            continue
        try:
            sizes = np.asarray(e)
        except (TypeError, ValueError):
            sizes = np.asarray([None])
        if sizes.ndim != 1 or sizes.size == 0 or sizes.dtype.kind not in "iu":
            raise TypeError(f"{where}: pool_sizes entry must be a list of positive integers, "
                            f"got {e!r}")
        if np.any(sizes < 1):
            raise ValueError(f"{where}: group sizes must be >= 1, got {sizes.tolist()}")
        if int(sizes.sum()) != w:
            raise ValueError(f"{where}: group sizes add up to {int(sizes.sum())} but the layer "
                             f"has {w} units")
        out.append(tuple(int(s) for s in sizes))
    return tuple(out)


def group_offsets(sizes: Sequence[int]) -> NDArray[np.intp]:
    """Start of every group, shape ``(n_groups,)`` (for ``np.maximum.reduceat``)."""
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)


def group_max(H: NDArray[np.float64], sizes: Sequence[int]) -> NDArray[np.float64]:
    """The maximum of every group of columns of ``H`` (N, width) -> (N, n_groups)."""
    return np.maximum.reduceat(H, group_offsets(sizes), axis=1)


def max_pattern(H: NDArray[np.float64], sizes: Sequence[int]) -> NDArray[np.int8]:
    """The pattern of a max layer: +1 at the first maximum of every group, -1 elsewhere,
    shape ``(N, width)`` like ``H``."""
    H = np.asarray(H)
    out = np.full(H.shape, -1, dtype=np.int8)
    start = 0
    rows = np.arange(H.shape[0])
    for k in sizes:
        out[rows, start + np.argmax(H[:, start:start + k], axis=1)] = 1
        start += k
    return out


def winners(signs: Sequence[int] | NDArray[Any], sizes: Sequence[int]) -> list[int]:
    """Index (within the layer) of the +1 entry of every group of a max layer's pattern;
    ValueError unless every group has exactly one."""
    arr = np.asarray(signs)
    out = []
    start = 0
    for g, k in enumerate(sizes):
        hit = np.flatnonzero(arr[start:start + k] > 0)
        if hit.size != 1:
            raise ValueError(f"a max-pooling group must have exactly one +1 entry (its "
                             f"argmax); group {g} has {hit.size}")
        out.append(start + int(hit[0]))
        start += k
    return out


def winners_batch(signs: NDArray[Any], sizes: Sequence[int]) -> NDArray[np.intp]:
    """Index (within the layer) of the +1 unit of every group of a max layer, for every
    pattern: ``signs`` (P, width) -> (P, n_groups). ValueError unless every group of every
    pattern has exactly one +1 (the argmax pattern)."""
    starts = group_offsets(sizes)
    pos = signs > 0
    counts = np.add.reduceat(pos.astype(np.intp), starts, axis=1) if pos.shape[0] \
        else np.ones((0, len(sizes)), dtype=np.intp)
    if np.any(counts != 1):
        p, g = np.argwhere(counts != 1)[0]
        raise ValueError(f"a max-pooling group must have exactly one +1 entry (its argmax); "
                         f"pattern {p} has {counts[p, g]} in group {g}")
    out = np.empty((signs.shape[0], len(sizes)), dtype=np.intp)
    for g, (a, k) in enumerate(zip(starts.tolist(), sizes)):
        out[:, g] = a + np.argmax(pos[:, a:a + k], axis=1)
    return out
