"""Dispatch of one call (one polyhedron, one Gaussian) to the compiled fast lane.

:func:`fastpath.integrals.gaussian_moments`, :func:`~fastpath.integrals.truncated_normal_moments`
and :func:`~fastpath.integrals.log_gaussian_mass` call :func:`one_shot` first. It takes
the call only when the input is plainly one float64 polygon (C (m, 2), d (m,)) and one
Gaussian (mean (2,), cov (2, 2)), and the compiled kernel
(:func:`fastpath._jit_one_shot.one_shot_s2`) finishes it; otherwise it returns None and the
general path runs, validates (with its own error messages) and answers. The kernel
declines every case the general path treats specially (its module docstring), so results
never differ from the general path's by more than rounding.

At S = 3 the lane covers the steps before the cones: :func:`standardised_geometry`
(input checks, standardisation and geometry by
:func:`fastpath._jit_one_shot3.standardise_geometry_s3`) hands ``_standardised`` the
general path's objects, whose cones it then evaluates as before.

``ENABLED[0] = False`` turns the lane off (the tests' reference). :data:`COUNTS` tallies
the kernel's verdicts by reason (:data:`fastpath._jit_one_shot.REASONS`), for the
benchmark's share of calls the lane takes.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["ENABLED", "COUNTS", "one_shot", "standardised_geometry", "warmup_inputs"]

#: the lane is tried (False: every call takes the general path)
ENABLED = [True]
#: verdicts of the kernels by status (0: taken; S = 3: the geometry kernel's, and 100 +
#: the cone kernel's), when counting is on (COUNTING[0])
COUNTS: Counter[int] = Counter()
COUNTING = [False]

_F64 = np.dtype(np.float64)


@functools.lru_cache(maxsize=1)
def _constants() -> tuple[Any, ...]:
    """The general path's draws, rules and constants, as the kernel takes them."""
    from ._cone_cubature import _LOG_CANCEL_CUBATURE, _MOMENT_TOL
    from ._cone_tail import TAIL_DISTANCE
    from ._cones import _GENERIC_MARGIN, _GENERIC_WEIGHT, _MAX_LOG_CANCEL
    from ._polyhedron import _generic_draws
    from ._simplex_cubature import _rule_table

    bounds, lamcT, logw, q_start = _rule_table(2)
    return (np.ascontiguousarray(_generic_draws(True, 64, 2)), bounds, lamcT, logw,
            q_start, float(_GENERIC_MARGIN), float(_GENERIC_WEIGHT),
            float(_LOG_CANCEL_CUBATURE), float(_MAX_LOG_CANCEL), float(TAIL_DISTANCE),
            float(_MOMENT_TOL))


@functools.lru_cache(maxsize=128)
def _unbounded_draws(m: int) -> NDArray[np.float64]:
    """(m + 1, 64, m): ``_generic_draws(False, 64, k)`` in ``[k, :, :k]`` for k <= m."""
    from ._polyhedron import _generic_draws

    out = np.zeros((m + 1, 64, max(m, 1)))
    for k in range(1, m + 1):
        out[k, :, :k] = _generic_draws(False, 64, k)
    return out


def _plain(a: Any, shape: tuple[int, ...]) -> bool:
    return type(a) is np.ndarray and a.dtype == _F64 and a.shape == shape


def one_shot(C: Any, d: Any, mean: Any, cov: Any, moments: bool
             ) -> NDArray[np.float64] | None:
    """The kernel's output (14,) (log m0, E[z|P], E[z z^T|P], m0, m1, M2), or None when
    the general path is to take the call."""
    if not ENABLED[0]:
        return None
    if not (type(C) is np.ndarray and C.ndim == 2 and C.shape[1] == 2 and C.dtype == _F64
            and C.shape[0] >= 2 and _plain(d, (C.shape[0],)) and _plain(mean, (2,))
            and _plain(cov, (2, 2))):
        return None
    from ._cone_tail import tail_enabled
    from ._jit_one_shot import OK, one_shot_s2

    (draws_b, bounds, lamcT, logw, q_start, margin, gweight, lcc, mlc, tail_d,
     mtol) = _constants()
    out = np.empty(14)
    status = one_shot_s2(np.ascontiguousarray(C), np.ascontiguousarray(d),
                         np.ascontiguousarray(mean), np.ascontiguousarray(cov), draws_b,
                         _unbounded_draws(C.shape[0]), bounds, lamcT, logw, q_start,
                         moments, tail_enabled(), margin, gweight, lcc, mlc, tail_d, mtol,
                         out)
    if COUNTING[0]:
        COUNTS[int(status)] += 1
    return out if status == OK else None


def warmup_inputs() -> list[tuple[Any, ...]]:
    """Arguments of the kernel that exercise its paths (cones, cubature, rays), for
    :func:`fastpath._jit_one_shot._warmup`."""
    (draws_b, bounds, lamcT, logw, q_start, margin, gweight, lcc, mlc, tail_d,
     mtol) = _constants()
    cov = np.array([[1.0, 0.3], [0.3, 0.8]])
    square = (np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]),
              np.array([1.0, 1.0, 1.0, 1.0]))
    small_far = (square[0], np.array([4.1, -4.0, 0.1, 0.0]))   # cancels: the cubature
    wedge = (np.array([[-1.0, 0.2], [0.3, -1.0]]), np.array([0.5, 0.5]))
    out = []
    for (C, d) in (square, small_far, wedge):
        for mom in (True, False):
            out.append((C, d, np.array([0.1, -0.2]), cov, draws_b,
                        _unbounded_draws(C.shape[0]), bounds, lamcT, logw, q_start, mom,
                        True, margin, gweight, lcc, mlc, tail_d, mtol, np.empty(14)))
    return out


def standardised_geometry(C: Any, d: Any, mean: Any, cov: Any) -> tuple[Any, Any] | None:
    """(Standardised, PolyhedronGeometry) of one call at S = 3 by the compiled
    :func:`fastpath._jit_one_shot3.standardise_geometry_s3`, or None when the general
    path is to take the call (input not plainly one float64 polytope and one Gaussian,
    or a case the kernel declines)."""
    if not ENABLED[0]:
        return None
    if not (type(C) is np.ndarray and C.ndim == 2 and C.shape[1] == 3 and C.dtype == _F64
            and _plain(d, (C.shape[0],)) and _plain(mean, (3,)) and _plain(cov, (3, 3))):
        return None
    from ._jit_one_shot3 import standardise_geometry_s3
    from ._polyhedron import _assemble, _scaled
    from ._standardise import Standardised

    res = standardise_geometry_s3(np.ascontiguousarray(C), np.ascontiguousarray(d),
                                  np.ascontiguousarray(mean), np.ascontiguousarray(cov))
    status = int(res[0])
    if COUNTING[0]:
        COUNTS[status] += 1
    if status != 0:
        return None
    (_, A, Cw, dw, far, L, Cf, df, y0, r, V, act, E_start, E_dir, E_len, CA, edge_id,
     orient) = res
    g = _assemble(3, 3, np.eye(3), np.zeros((0, 3)), Cf, df, y0, y0.copy(), r, V,
                  tuple(act), E_start, E_dir, E_len, np.arange(V.shape[0], dtype=np.intp),
                  CA, edge_id, orient)
    if L != 1.0:
        g = _scaled(g, L)
    return Standardised(Cw, dw, A, np.zeros((1, 3)), np.eye(3)[None], float(far)), g


@functools.lru_cache(maxsize=1)
def _constants3() -> tuple[Any, ...]:
    from ._cone_cubature import _LOG_AMP_CUBATURE, _LOG_CANCEL_CUBATURE, _NODES_PER_CONE, _THIN_COST_FACTOR
    from ._cone_tail import TAIL_DISTANCE
    from ._cones import _GENERIC_MARGIN, _GENERIC_WEIGHT, _MAX_LOG_CANCEL
    from ._simplex_cubature import _rule_table

    consts = np.array([_GENERIC_MARGIN, _GENERIC_WEIGHT, _LOG_CANCEL_CUBATURE,
                       _MAX_LOG_CANCEL, TAIL_DISTANCE, _NODES_PER_CONE, _LOG_AMP_CUBATURE,
                       _THIN_COST_FACTOR], dtype=np.float64)
    return (*_rule_table(3), consts)


def cones_s3(g: Any, moments: bool) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                              NDArray[np.float64]] | None:
    """(log m0 (1,), E[w|P] (1, 3), Cov[w|P] (1, 3, 3)) of N(0, I) over the geometry g
    from :func:`standardised_geometry`, by :func:`fastpath._jit_one_shot3_cones.cones_s3`;
    None where it declines (the general path's ConeTable then evaluates g)."""
    from ._cone_tail import tail_enabled
    from ._jit_one_shot3_cones import cones_s3 as kernel

    bounds, lamcT, logw, q_start, consts = _constants3()
    res = np.empty(13)
    status = kernel(g.vertices, g.piece_L, g.piece_edge, g.piece_orient, g.edge_start,
                    g.edge_dir, g.edge_len, g.C, g.d, g.c_generic, np.array(g.active),
                    len(g.rays) == 0, moments, tail_enabled(), bounds, lamcT, logw, q_start,
                    consts, res)
    if COUNTING[0]:
        COUNTS[100 + int(status)] += 1
    if status != 0:
        return None
    return res[:1], res[1:4][None], res[4:13].reshape(1, 3, 3)
