"""The compiled evaluations of :class:`fastpath._cones.ConeTable` (a mixin of it).

The table's arrays in the form the kernels take them, and the calls of the fused per-pair
cone sums at S = 2 (:mod:`fastpath._jit_cones`, with the deferral to the cubature, the
routing of small or thin-coned polygons and the moment replacement) and S = 3
(:mod:`fastpath._jit_cones3`, the pairs it declines by the numpy path), and of the S = 3
nearest point. The formulas, guards and switches (``COMPILED``, ``DEFER``, ``ROUTE``,
``MOMENT_CUBATURE``) are those of :mod:`fastpath._cones`, whose numpy path is the second
implementation these are tested against.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ._threads import serial_below


class _CompiledSums:
    """The compiled-kernel methods of :class:`fastpath._cones.ConeTable`."""

    if TYPE_CHECKING:
        dim: int
        n_poly: int
        p_seg: NDArray[np.intp]
        p_apex: NDArray[np.float64]
        p_L: NDArray[np.float64]
        p_edge: NDArray[np.intp]
        p_orient: NDArray[np.float64]
        e_start: NDArray[np.float64]
        e_dir: NDArray[np.float64]
        e_len: NDArray[np.float64]
        f_C: NDArray[np.float64]
        f_d: NDArray[np.float64]
        f_valid: NDArray[np.bool_]
        c_gen: NDArray[np.float64]
        own_cache: dict[str, Any]

        @property
        def n_pieces(self) -> int: ...
        @property
        def _bounded_mask(self) -> NDArray[np.bool_]: ...

        def _nearest_points(self, mean: Any, chol: Any, Uinv: Any) -> Any: ...
        def _cubature_moments(self, mean: Any, chol: Any, out: Any, flagged: Any) -> Any: ...
        def take(self, index: NDArray[np.intp]) -> Any: ...

    def _nearest_point(self, mean, chol):
        """(whitened nearest point minus the whitened mean (N, n, s), whether the mean lies
        in P (N, n)): :meth:`_nearest_points` without the edge directions, by the compiled
        kernel at S = 3 (:func:`fastpath._jit_cones3.nearest_s3`)."""
        from ._cones import _SERIAL_PIECES, COMPILED, _kernel_array

        if self.dim == 3 and COMPILED[0]:
            from ._jit_cones3 import nearest_s3

            with serial_below(mean.shape[0] * self.n_poly, _SERIAL_PIECES):
                return nearest_s3(_kernel_array(mean), _kernel_array(chol),
                                  *self._table_arrays()[6:12])
        xstar, _, inside = self._nearest_points(mean, chol, np.linalg.inv(chol))
        return xstar, inside

    def _table_arrays(self) -> tuple[Any, ...]:
        """The table's arrays as the compiled kernels take them (cached per table)."""
        got = self.own_cache.get("jit_arrays")
        if got is None:
            f64 = np.float64
            p_end = np.append(self.p_seg[1:], self.n_pieces).astype(np.intp)
            got = (np.ascontiguousarray(self.p_seg, dtype=np.intp), p_end,
                   np.ascontiguousarray(self.p_apex, dtype=f64),
                   np.ascontiguousarray(self.p_L, dtype=f64),
                   np.ascontiguousarray(self.p_edge, dtype=np.intp),
                   np.ascontiguousarray(self.p_orient, dtype=f64),
                   np.ascontiguousarray(self.e_start, dtype=f64),
                   np.ascontiguousarray(self.e_dir, dtype=f64),
                   np.ascontiguousarray(self.e_len, dtype=f64),
                   np.ascontiguousarray(self.f_C, dtype=f64),
                   np.ascontiguousarray(self.f_d, dtype=f64),
                   np.ascontiguousarray(self.f_valid, dtype=np.bool_),
                   np.ascontiguousarray(self.c_gen, dtype=f64))
            self.own_cache["jit_arrays"] = got
        return got

    def _evaluate_compiled(self, mean, chol, moments, defer=False, route=False):
        """:meth:`_evaluate_numpy` for S = 2, direction "nearest", by the fused per-pair
        kernel :func:`fastpath._jit_cones.evaluate_s2` (same formulas; rounding differs).

        ``defer``: the moments of the bounded polyhedra's pairs whose orthant terms cancel
        beyond ``_LOG_CANCEL_CUBATURE`` (by ``_DEFER_MARGIN``, away from the cubature's
        budget step) are left out: the cubature replaces nearly all of them, and
        :meth:`_guarded_cones` evaluates the others again (kernel: ``_pair_deferred``).
        ``route``: the pairs of bounded polygons whose whitened spread is at most
        ``_ROUTE_SPREAD`` are not summed at all (log m0 0, log_cancel +inf), for the
        cubature alike."""
        from ._cone_cubature import (
            _CUBATURE_BUDGET,
            _LOG_CANCEL_CUBATURE,
            _MOMENT_TOL,
            _ROUTE_SPREAD,
        )
        from ._cone_tail import TAIL_DISTANCE, tail_enabled
        from ._cones import (
            _DEFER_MARGIN,
            _GENERIC_MARGIN,
            _GENERIC_WEIGHT,
            _SERIAL_PIECES,
            MOMENT_CUBATURE,
            _kernel_array,
        )
        from ._jit_cones import evaluate_s2

        has = (self._bounded_mask if defer or route else np.zeros(self.n_poly, dtype=np.bool_))
        with serial_below(mean.shape[0] * self.n_pieces, _SERIAL_PIECES):
            lm, dm, tc, lc, dfr, me = evaluate_s2(
                _kernel_array(mean), _kernel_array(chol), *self._table_arrays(),
                bool(moments), _GENERIC_MARGIN, _GENERIC_WEIGHT,
                _LOG_CANCEL_CUBATURE + _DEFER_MARGIN if defer else math.inf,
                float(_CUBATURE_BUDGET[0][0]), _ROUTE_SPREAD if route else 0.0, has,
                TAIL_DISTANCE if tail_enabled() else math.inf)
        if not moments:
            return lm, None, None, lc
        if MOMENT_CUBATURE[0] and tail_enabled():
            # where m0 is kept (log_cancel at most the cubature's threshold) but the moments
            # cancelled; the pairs above it are the cubature's already. Not in the E-step's
            # dense pass (cone_sum_only), which fixes the pairs that carry weight afterwards
            flagged = (self._bounded_mask[None, :] & ~(me <= _MOMENT_TOL)
                       & (lc <= _LOG_CANCEL_CUBATURE))
            if np.any(flagged):
                self._cubature_moments(mean, chol, (lm, dm, tc, lc), flagged)
        return lm, dm, tc, lc

    def _evaluate_compiled3(self, mean, chol, moments):
        """:meth:`_evaluate_numpy` for S = 3, direction "nearest", by the per-pair kernel
        :func:`fastpath._jit_cones3.evaluate_s3` (same formulas; rounding differs); the
        pairs whose orthants it declines are evaluated by the numpy path."""
        from ._cones import _GENERIC_MARGIN, _GENERIC_WEIGHT, _SERIAL_PIECES3, _kernel_array
        from ._jit_cones3 import evaluate_s3

        with serial_below(mean.shape[0] * self.n_pieces, _SERIAL_PIECES3):
            lm, dm, tc, lc, ok = evaluate_s3(_kernel_array(mean), _kernel_array(chol),
                                             *self._table_arrays(), bool(moments),
                                             _GENERIC_MARGIN, _GENERIC_WEIGHT)
        if not ok.all():
            a, j = np.nonzero(~ok)
            ch = chol[:, j] if chol.shape[0] == 1 else chol[a, j][None]
            got = self.take(j)._evaluate_numpy(mean[a, j][None], ch, moments)
            for out, part in zip((lm, dm, tc, lc), got):
                if part is not None:
                    out[a, j] = part[0]
        return lm, (dm if moments else None), (tc if moments else None), lc
