"""Nets shared by the partition tests (fast path alone, and fast vs exact).

Degenerate nets are built with exact float64 operations only (copies, multiplication by
powers of two, negation, zeros), so that the hyperplanes that are meant to coincide do
coincide in exact rational arithmetic too; otherwise the exact path would rightly find thin
regions between two hyperplanes that differ by rounding (see
``test_partition_cross.py::test_rounded_proportional_rows_documented_difference``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from verified_dgn import DGN


def degenerate_net(S: int = 2, activation: str | list[str] = "relu", seed: int = 0) -> DGN:
    """A [S, 8, 6, 2] net with coinciding, parallel, dead and zero units.

    Layer 1: unit 1 duplicates unit 0, unit 2 is ``2 *`` unit 0, unit 3 is ``-0.5 *`` unit 0
    (same hyperplane, opposite orientation), unit 4 is ``4 *`` unit 5 with a shifted bias
    (parallel hyperplanes), unit 6 is dead everywhere (zero row, bias -0.25), unit 7 is
    identically zero. Layer 2: unit 1 duplicates unit 0, unit 2 is ``-1 *`` unit 0, unit 3
    is dead everywhere (zero row, bias -0.125).
    """
    base = DGN.random((S, 8, 6, 2), activation=activation, seed=seed)
    W1, W2 = np.array(base.weights[0]), np.array(base.weights[1])
    v1, v2 = np.array(base.biases[0]), np.array(base.biases[1])
    W1[1], v1[1] = W1[0], v1[0]
    W1[2], v1[2] = 2.0 * W1[0], 2.0 * v1[0]
    W1[3], v1[3] = -0.5 * W1[0], -0.5 * v1[0]
    W1[4], v1[4] = 4.0 * W1[5], 4.0 * v1[5] + 0.25
    W1[6], v1[6] = 0.0, -0.25
    W1[7], v1[7] = 0.0, 0.0
    W2[1], v2[1] = W2[0], v2[0]
    W2[2], v2[2] = -W2[0], -v2[0]
    W2[3], v2[3] = 0.0, -0.125
    return DGN([W1, W2, base.weights[2]], [v1, v2, base.biases[2]],
               **base.activation_kwargs())


def rank_deficient_net(activation: str = "relu", seed: int = 0) -> DGN:
    """[3, 6, 6, 2] with ``W1[:, 2] = 2 W1[:, 0]`` (exact): every region contains a line."""
    base = DGN.random((3, 6, 6, 2), activation=activation, seed=seed)
    W1 = np.array(base.weights[0])
    W1[:, 2] = 2.0 * W1[:, 0]
    return base.replace(weights=[W1, *base.weights[1:]])


def relu_dead_layer_net(seed: int = 0) -> DGN:
    """[2, 6, 1, 4, 2] relu: the width-1 middle layer is 0 on half the plane, so the units
    after it are constant there (zero rows, sign of the bias)."""
    return DGN.random((2, 6, 1, 4, 2), seed=seed)


def dyadic_grid_net(widths: tuple[int, ...], activation: str = "relu", seed: int = 0) -> DGN:
    """Weights and biases rounded to multiples of 1/4: exact coincidences everywhere
    (hyperplanes through shared vertices, parallel and coinciding bent hyperplanes,
    non-simple vertices), and vertices / rays with non-dyadic coordinates (1/3, 2/3) that
    carry rounding residues. Found a scale bug in the float side tests (a ray (1e-17, 0, 1)
    against a row (0.19, -0.19, 0, .)); kept as a regression net."""
    base = DGN.random(widths, activation=activation, seed=seed)
    return base.replace(weights=[np.round(W * 4) / 4 for W in base.weights],
                        biases=[np.round(v * 4) / 4 for v in base.biases])


def overlap_max_net(seed: int = 0) -> DGN:
    """[2, 5 relu, 6 max (3 overlapping windows of 2 over 4 units), 3 relu, 2].

    Windows {0, 1}, {1, 2}, {2, 3} of four pre-activation units, written as 6 rows of W2 with
    rows 1 and 3 repeated (copies: exact in both paths)."""
    base = DGN.random((2, 5, 4, 3, 2), activation=["relu", "relu", "relu"], seed=seed)
    W2, v2 = np.array(base.weights[1]), np.array(base.biases[1])
    rows = [0, 1, 1, 2, 2, 3]
    W3 = np.array(base.weights[2])[:, :3]
    return DGN([base.weights[0], W2[rows], W3, base.weights[3]],
               [base.biases[0], v2[rows], base.biases[2], base.biases[3]],
               activation=["relu", "max", "relu"], pool_sizes=[None, [2, 2, 2], None])


def degenerate_max_net(S: int = 2, seed: int = 0) -> DGN:
    """[S, 9 max in groups (3, 2, 4), 2] with ties on whole regions.

    Group 0: unit 1 duplicates unit 0 (tied everywhere: unit 0 wins, unit 1 never does).
    Group 1: unit 4 is unit 3 plus 0.25 (a constant difference: unit 4 always wins).
    Group 2: unit 6 is ``2 *`` unit 5 and unit 8 is unit 7 (the copies tie exactly)."""
    base = DGN.random((S, 9, 2), activation="max", pool_sizes=[[3, 2, 4]], seed=seed)
    W1, v1 = np.array(base.weights[0]), np.array(base.biases[0])
    W1[1], v1[1] = W1[0], v1[0]
    W1[4], v1[4] = W1[3], v1[3] + 0.25
    W1[6], v1[6] = 2.0 * W1[5], 2.0 * v1[5]
    W1[8], v1[8] = W1[7], v1[7]
    return base.replace(weights=[W1, base.weights[1]], biases=[v1, base.biases[1]])


#: (id, factory) for the quick suite: S = 1 to 4, the three activations, depth 1 to 4,
#: and the degenerate nets of the issue.
QUICK_NETS: list[tuple[str, Callable[[], DGN]]] = [
    ("relu-S1-[1,8,8,1]", lambda: DGN.random((1, 8, 8, 1), seed=101)),
    ("abs-S1-depth3", lambda: DGN.random((1, 6, 6, 6, 1), activation="abs", seed=102)),
    ("relu-S2-depth1", lambda: DGN.random((2, 9, 2), seed=103)),
    ("relu-S2", lambda: DGN.random((2, 8, 8, 2), seed=104)),
    ("leaky-S2", lambda: DGN.random((2, 7, 6, 3), activation="leaky_relu", slope=0.2,
                                    seed=105)),
    ("abs-S2", lambda: DGN.random((2, 6, 6, 2), activation="abs", seed=106)),
    ("relu-S2-depth4", lambda: DGN.random((2, 5, 5, 5, 5, 2), seed=107)),
    ("relu-S3", lambda: DGN.random((3, 6, 5, 2), seed=108)),
    ("abs-S3-depth3", lambda: DGN.random((3, 4, 4, 4, 3), activation="abs", seed=109)),
    ("leaky-S4", lambda: DGN.random((4, 5, 4, 2), activation="leaky_relu", seed=110)),
    ("biasfree-relu-S2", lambda: DGN.random((2, 6, 6, 2), init="he", seed=111)),
    ("biasfree-abs-S3", lambda: DGN.random((3, 5, 4, 2), init="he", activation="abs",
                                           seed=112)),
    ("width1-S2", lambda: DGN.random((2, 1, 4, 2), seed=113)),
    ("width1-abs-S3", lambda: DGN.random((3, 2, 1, 3, 2), activation="abs", seed=114)),
    ("relu-dead-layer", lambda: relu_dead_layer_net(seed=115)),
    ("degenerate-relu-S2", lambda: degenerate_net(2, "relu", seed=116)),
    ("degenerate-leaky-S2", lambda: degenerate_net(2, "leaky_relu", seed=117)),
    ("degenerate-abs-S1", lambda: degenerate_net(1, "abs", seed=118)),
    ("degenerate-relu-S3", lambda: degenerate_net(3, "relu", seed=119)),
    ("rank-deficient-S3", lambda: rank_deficient_net("leaky_relu", seed=120)),
    ("dyadic-grid-relu-S3", lambda: dyadic_grid_net((3, 6, 5, 4, 2), "relu", seed=421730)),
    ("dyadic-grid-abs-S2", lambda: dyadic_grid_net((2, 8, 6, 2), "abs", seed=122)),
    # vertices at the origin computed as ~1e-17 from points of size ~1/3: with side tests
    # relative to |y|_inf instead of the propagated magnitudes, 4 sliver regions appear
    ("dyadic-grid-leaky-S3", lambda: dyadic_grid_net((3, 5, 5, 2, 2), "leaky_relu",
                                                     seed=841586)),
    ("no-hidden-layer", lambda: DGN.random((3, 2), seed=121)),
    # per-layer activations and slopes
    ("mixed-S1-relu-abs-leaky", lambda: DGN.random((1, 6, 6, 6, 1), seed=131,
                                                   activation=["relu", "abs", "leaky_relu"],
                                                   slope=0.3)),
    ("mixed-S2-abs-relu", lambda: DGN.random((2, 7, 6, 2), activation=["abs", "relu"],
                                             seed=132)),
    ("mixed-S2-leaky-slopes", lambda: DGN.random((2, 6, 6, 5, 2), seed=133,
                                                 activation=["leaky_relu", "leaky_relu", "relu"],
                                                 slope=[0.1, 0.4, None])),
    ("mixed-S3-relu-abs", lambda: DGN.random((3, 5, 4, 2), activation=["relu", "abs"],
                                             seed=134)),
    ("degenerate-mixed-S2", lambda: degenerate_net(2, ["leaky_relu", "abs"], seed=135)),
    # max-pooling layers (the fast path walks these nets region by region)
    ("max-S1", lambda: DGN.random((1, 6, 2), activation="max", pool_sizes=[[3, 3]], seed=141)),
    ("max-S2-groups1234", lambda: DGN.random((2, 10, 2), activation="max",
                                             pool_sizes=[[1, 2, 3, 4]], seed=142)),
    ("max-relu-max-relu-S2-overlap", lambda: overlap_max_net(seed=143)),
    ("max-abs-S3", lambda: DGN.random((3, 8, 4, 2), activation=["max", "abs"],
                                      pool_sizes=[[2, 2, 4], None], seed=144)),
    ("max-degenerate-S2", lambda: degenerate_max_net(2, seed=145)),
]

_CACHE: dict[str, DGN] = {}


def get_net(name: str) -> DGN:
    if name not in _CACHE:
        _CACHE[name] = dict(QUICK_NETS)[name]()
    return _CACHE[name]


QUICK_NAMES = [name for name, _ in QUICK_NETS]


def assert_partition_checks_exact(partition: object, seed: int) -> None:
    """The checks `dgn check` runs on a partition (Lemma 3, Corollary 1, affine maps,
    tiling) pass with zero residual (exact arithmetic): one body for every exact-path test
    that runs them."""
    import math

    from dgn_tools.checks.partition_checks import (
        check_affine_maps,
        check_corollary1,
        check_lemma3,
        check_tiling,
    )

    for chk in (check_lemma3, check_corollary1, check_affine_maps, check_tiling):
        res = chk(partition=partition, quick=True, seed=seed)
        assert res.passed, str(res)
        assert res.residual == 0.0 and math.isinf(res.digits), str(res)
