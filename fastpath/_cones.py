"""Signed vertex-cone decomposition of Gaussian integrals over polyhedra (float64, vectorised).

For a pointed polyhedron P and a direction c with c.w != 0 for every edge direction w at
every vertex and c.r < 0 for every recession direction r (Lawrence; docs/DESIGN.md §2.4),

    1_P = sum_v (-1)^{|F_v|} 1[K_v]        almost everywhere,

where K_v is the tangent cone at v with the generators w of F_v = {w : c.w > 0} reversed.
Each K_v is an orthant of an S-dimensional Gaussian, so m0, m1 and M2 are signed sums of
orthant probabilities and Tallis moments.

Everything here runs in whitened coordinates x = U^{-1}(y - mu) (Sigma = U U^T, Cholesky), in
which the Gaussian is N(0, I):

* The direction is c = Sigma^{-1}(mu - p*) with p* the point of P nearest to mu in the
  Mahalanobis metric (whitened: c_w = -x*), plus a tiny multiple of a fixed generic direction
  so that no edge is orthogonal to it. Then c lies in the normal cone of P at p*, every cone
  K_v lies in the half-space {c.y <= c.p*} that does not contain mu, and no cone carries more
  than Phi(-dist(mu, P)) of mass: the terms of the signed sum are no larger than about
  dist^{S-1} times the result, instead of O(1) while the result underflows.
* Flip decisions are made once per edge (c.u_e with a canonical edge direction u_e) and
  shared by both endpoints of the edge, so they are consistent whatever the rounding.
* Each cone is an orthant of N(0, I) with unit rows; its probability and Tallis moments
  come from :mod:`fastpath._cone_algebra` (which states their accuracy for thin cones).
* All terms are combined in log space with one common scale per Gaussian (signed
  log-sum-exp), so results stay finite and accurate where m0 underflows.

For S = 2 (direction "nearest") all of this runs in one compiled kernel per (Gaussian,
polyhedron) pair (:mod:`fastpath._jit_cones`, threads over pairs); the numpy form below
(:meth:`ConeTable._evaluate_numpy`) serves the other dimensions and is its test reference.

:class:`ConeTable` holds the cones of many polyhedra. Its parts by concern: the nearest
points (:mod:`fastpath._cone_nearest`), the closed forms of dimension 1
(:mod:`fastpath._cone_interval`), and the choice between the cone sum and simplex cubature
for bounded polytopes (:mod:`fastpath._cone_cubature`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr

from ._cone_algebra import _condition_on as _condition_on
from ._cone_algebra import _dot, _exp_rel, _orthant_terms_soa
from ._cone_algebra import _orthant_terms as _orthant_terms
from ._cone_compiled import _CompiledSums
from ._cone_cubature import _NODES_PER_CONE as _NODES_PER_CONE
from ._cone_cubature import _THIN_COST_FACTOR as _THIN_COST_FACTOR
from ._cone_cubature import _CubatureRouting
from ._cone_interval import _IntervalMoments
from ._cone_nearest import _NearestPoints
from ._cone_tail import TAIL_DISTANCE, tail_enabled, tail_moments
from ._polyhedron import PolyhedronGeometry
from ._threads import serial_below

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

#: relative size of the generic direction added to c = Sigma^{-1}(mu - p*) (module docstring)
_GENERIC_WEIGHT = 1e-7
#: |c.u| below this fraction of |c||u| means c is not generic enough for an edge
_GENERIC_MARGIN = 1e-12
#: log of the fraction of the terms' magnitude that may cancel in m0 before the fallback
#: (e^30 ~ 1e13: the result would keep fewer than ~3 digits)
_MAX_LOG_CANCEL = 30.0
#: target number of (Gaussian, cone) pairs processed per vectorised chunk
_CHUNK_PAIRS = 65536
#: simplices the cubature may spend on a bounded polyhedron at least TAIL_DISTANCE from the
#: mean, by dimension, before the tail slices take it (ConeTable._guarded): at S = 2 the
#: compiled cubature resolves 72-90% of such pairs at 4096 in ~30 us each (the compiled
#: slices ~0.1 ms, numpy's ~1 ms); at S = 3 the numpy-driven one resolves 70% at 65536 in
#: ~5 ms each (the compiled slices ~0.08 s, numpy's ~0.3 s); both agree
#: with the slices within 3e-12 of the covariance's size
#: (measured on random (2, 12, 12, 3) / (3, 8, 8, 3) nets and tests/test_far_cubature.py)
_FAR_CUBATURE_BUDGET = {2: 4096, 3: 65536}
#: S = 2 and 3 cone sums (direction "nearest") by the compiled kernels of
#: :mod:`fastpath._jit_cones` and :mod:`fastpath._jit_cones3`; False runs
#: :meth:`ConeTable._evaluate_numpy` (the second implementation, kept for tests)
COMPILED = [True]
#: S = 2 compiled: (Gaussian, cone) pairs per chunk are this many times _CHUNK_PAIRS
_COMPILED_CHUNK_FACTOR = 16
#: S = 2 compiled: leave out the cone-sum moments of the pairs the cubature will replace
#: (:meth:`ConeTable._guarded_cones`); False computes them (the same results, tests)
DEFER = [True]
#: S = 2 compiled: send the small polygons (whitened spread bound at most
#: ``_cone_cubature._ROUTE_SPREAD``) to the cubature without summing their cones
#: (:func:`fastpath._jit_cones._pair_deferred`); False sums them first (tests)
ROUTE = [True]
#: S = 2 compiled: the moments of bounded polygons whose cone sum kept m0 but lost more
#: than ``_cone_cubature._MOMENT_TOL`` in its moments come from the cubature; False keeps
#: the cone sum's (tests)
MOMENT_CUBATURE = [True]
#: a deferred pair's log_cancel (from its orthant terms) is this far above the cubature's
#: threshold and its budget step: far more than its rounding difference (~1e-14) from the
#: log_cancel of the full sum, so the routing of every pair is that of the full sum
_DEFER_MARGIN = 1e-9
#: (Gaussian, cone) pairs below which the compiled kernel runs on the calling thread
#: (~3 ms: about 0.3 us per cone)
_SERIAL_PIECES = 10_000
#: S = 3: the same, for the compiled kernel's ~3 us per cone
_SERIAL_PIECES3 = 1_000


def _kernel_array(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous, writeable float64 array: numba compiles (and caches) a
    kernel once per argument type, and a read-only view (a broadcast mean) is another
    type, which would cost a first call seconds of compilation."""
    return np.require(a, dtype=np.float64, requirements=["C_CONTIGUOUS", "WRITEABLE"])


# --------------------------------------------------------------------------- table
@dataclass(frozen=True, eq=False)
class ConeTable(_CompiledSums, _CubatureRouting, _NearestPoints, _IntervalMoments):
    """The cones of several pointed polyhedra of one (reduced) dimension, stacked for batching.

    Pieces (simplicial cones) are stored flat and grouped by owner; edges and facets are
    padded per polyhedron (padding repeats a real edge / is an always-satisfied row).
    """

    dim: int
    n_poly: int
    p_owner: NDArray[np.intp]       # (Np,)
    p_seg: NDArray[np.intp]         # (n_poly,) first piece of each polyhedron
    p_apex: NDArray[np.float64]     # (Np, s)
    p_L: NDArray[np.float64]        # (Np, s, s)
    p_edge: NDArray[np.intp]        # (Np, s) local edge index
    p_orient: NDArray[np.float64]   # (Np, s)
    e_start: NDArray[np.float64]    # (n, E, s)
    e_dir: NDArray[np.float64]      # (n, E, s)
    e_len: NDArray[np.float64]      # (n, E)
    f_C: NDArray[np.float64]        # (n, M, s)
    f_d: NDArray[np.float64]        # (n, M)
    f_valid: NDArray[np.bool_]      # (n, M)
    pairs: NDArray[np.intp]         # (n, Pm, 2) facet pairs (dim 4 only)
    pair_valid: NDArray[np.bool_]   # (n, Pm)
    c_gen: NDArray[np.float64]      # (n, s)
    lo: NDArray[np.float64]         # (n,) interval ends when dim == 1 (+-inf when open)
    hi: NDArray[np.float64]         # (n,)
    # per polyhedron: the geometry when it is bounded (its cubature fallback), else None
    bounded: tuple[Any, ...] = ()
    # this table's own derived arrays (not shared by take())
    own_cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_geometries(cls, geoms: Sequence[PolyhedronGeometry]) -> ConeTable:
        if not geoms:
            raise ValueError("no polyhedra")
        s = geoms[0].dim
        if any(g.dim != s or g.empty for g in geoms) or s < 1:
            raise ValueError("a cone table needs non-empty pointed parts of one dimension >= 1")
        n = len(geoms)
        counts = np.array([g.n_pieces for g in geoms])
        owner = np.repeat(np.arange(n), counts)
        seg = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        apex = np.concatenate([g.vertices[g.piece_vertex] for g in geoms])
        L = np.concatenate([g.piece_L for g in geoms])
        pe = np.concatenate([g.piece_edge for g in geoms])
        po = np.concatenate([g.piece_orient for g in geoms])
        E = max(g.n_edges for g in geoms)
        e_start = np.empty((n, E, s))
        e_dir = np.empty((n, E, s))
        e_len = np.empty((n, E))
        M = max(len(g.d) for g in geoms)
        f_C = np.zeros((n, M, s))
        f_d = np.ones((n, M))
        f_valid = np.zeros((n, M), dtype=bool)
        for i, g in enumerate(geoms):
            ne = g.n_edges
            pad = np.zeros(E - ne, dtype=np.intp)  # repeat edge 0: harmless for a minimum
            idx = np.concatenate([np.arange(ne), pad])
            e_start[i], e_dir[i], e_len[i] = g.edge_start[idx], g.edge_dir[idx], g.edge_len[idx]
            m = len(g.d)
            f_C[i, :m], f_d[i, :m], f_valid[i, :m] = g.C, g.d, True
        if s == 4:
            Pm = M * (M - 1) // 2
            iu = np.array(np.triu_indices(M, 1)).T.reshape(-1, 2)
            pairs = np.broadcast_to(iu, (n, Pm, 2)).copy()
            pair_valid = f_valid[:, iu[:, 0]] & f_valid[:, iu[:, 1]]
        else:
            pairs = np.zeros((n, 0, 2), dtype=np.intp)
            pair_valid = np.zeros((n, 0), dtype=bool)
        lo = np.full(n, -np.inf)
        hi = np.full(n, np.inf)
        if s == 1:
            for i, g in enumerate(geoms):
                c = g.C[:, 0]
                if np.any(c > 0):
                    hi[i] = np.min(g.d[c > 0] / c[c > 0])
                if np.any(c < 0):
                    lo[i] = np.max(g.d[c < 0] / c[c < 0])
        return cls(dim=s, n_poly=n, p_owner=owner, p_seg=seg, p_apex=apex, p_L=L, p_edge=pe,
                   p_orient=po, e_start=e_start, e_dir=e_dir, e_len=e_len, f_C=f_C, f_d=f_d,
                   f_valid=f_valid, pairs=pairs, pair_valid=pair_valid,
                   c_gen=np.array([g.c_generic for g in geoms]), lo=lo, hi=hi,
                   bounded=tuple(g if len(g.rays) == 0 else None for g in geoms))

    @property
    def n_pieces(self) -> int:
        return int(self.p_owner.shape[0])

    def take(self, index: NDArray[np.intp]) -> ConeTable:
        """The table of polyhedra ``index`` (repeats allowed): one polyhedron per (point,
        region) pair turns a sparse list of pairs into a dense evaluation with N = 1."""
        index = np.asarray(index, dtype=np.intp)
        counts = np.diff(np.append(self.p_seg, self.n_pieces))[index]
        n = len(index)
        owner = np.repeat(np.arange(n), counts)
        seg = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        # piece ids: seg_old[index] repeated, plus the offset within each polyhedron
        pieces = np.repeat(self.p_seg[index], counts) + (np.arange(owner.size) - seg[owner])
        return ConeTable(
            dim=self.dim, n_poly=n, p_owner=owner, p_seg=seg, p_apex=self.p_apex[pieces],
            p_L=self.p_L[pieces], p_edge=self.p_edge[pieces], p_orient=self.p_orient[pieces],
            e_start=self.e_start[index], e_dir=self.e_dir[index], e_len=self.e_len[index],
            f_C=self.f_C[index], f_d=self.f_d[index], f_valid=self.f_valid[index],
            pairs=self.pairs[index], pair_valid=self.pair_valid[index],
            c_gen=self.c_gen[index], lo=self.lo[index], hi=self.hi[index],
            bounded=tuple(self.bounded[i] for i in index) if self.bounded else ())

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, mean: NDArray[np.float64], chol: NDArray[np.floating[Any]], moments: bool = True,
                 direction: str = "nearest") -> tuple[NDArray[np.float64], NDArray[np.float64] | None,
                            NDArray[np.float64] | None, NDArray[np.float64]]:
        """Truncated-normal quantities of every polyhedron for every Gaussian.

        Parameters
        ----------
        mean : ndarray, shape (N, n_poly, s)
        chol : ndarray, shape (Nc, n_poly, s, s), Nc in {1, N}
            Lower Cholesky factors of the covariances (shared over N when Nc = 1).
        moments : bool
            Also compute the first and second moments.
        direction : {"nearest", "generic"}
            The direction c of the decomposition: toward the mean from the nearest point
            of P (default), or the fixed generic one (for diagnostics and tests only: it
            cancels catastrophically in the tails).

        Returns
        -------
        log_m0 : ndarray, shape (N, n_poly)
        dmean : ndarray, shape (N, n_poly, s) or None
            E[y | P] - mean.
        tcov : ndarray, shape (N, n_poly, s, s) or None
            Cov[y | P], the covariance of the truncated distribution (about its own mean:
            far in a tail it is much smaller than the second moment about ``mean``, and is
            computed without that cancellation where the kernel allows, see
            :func:`_interval_moments_quadrature`).
        log_cancel : ndarray, shape (N, n_poly)
            log(sum of |terms| of m0 / m0): the digits lost to cancellation (diagnostic).
        """
        N = mean.shape[0]
        chunk = _CHUNK_PAIRS
        if self.dim == 2 and direction == "nearest" and COMPILED[0]:
            # the compiled kernels keep no (pair, cone) temporaries: larger chunks, fewer
            # passes of the routing around them (results are per pair, whatever the chunks)
            chunk *= _COMPILED_CHUNK_FACTOR
        per = max(1, chunk // max(1, self.n_pieces))
        if direction not in ("nearest", "generic"):
            raise ValueError(f"direction must be 'nearest' or 'generic', got {direction!r}")
        if N <= per:
            return self._guarded(mean, chol, moments, direction)
        outs = []
        for a in range(0, N, per):
            b = min(N, a + per)
            ch = chol if chol.shape[0] == 1 else chol[a:b]
            outs.append(self._guarded(mean[a:b], ch, moments, direction))
        cat = [np.concatenate([o[i] for o in outs]) if outs[0][i] is not None else None
               for i in range(4)]
        log_m0, log_cancel = cat[0], cat[3]
        assert log_m0 is not None and log_cancel is not None
        return log_m0, cat[1], cat[2], log_cancel

    def log_mass_bound(self, mean: NDArray[np.float64], chol: NDArray[np.floating[Any]]
                       ) -> NDArray[np.float64]:
        """log Phi(-dist(mean, P)) >= log m0, for every polyhedron and Gaussian; (N, n_poly).

        The half-space {c.y <= c.p*} (c = Sigma^{-1}(mean - p*), p* the nearest point) contains
        P and has mass Phi(-dist). Costs the nearest-point step only (no orthants): an E-step
        can skip the pairs whose bound is negligible. 0 where the mean lies in P.
        """
        if self.dim == 1:
            sd = chol[..., 0, 0]
            mu = mean[..., 0]
            with np.errstate(invalid="ignore"):
                a = (self.lo - mu) / sd
                b = (self.hi - mu) / sd
            return np.where(a > 0, log_ndtr(-a), np.where(b < 0, log_ndtr(b), 0.0))
        if self.dim == 2 and COMPILED[0]:
            from ._jit_cones import bound_s2

            arrs = self._table_arrays()
            with serial_below(mean.shape[0] * self.n_poly, _SERIAL_PIECES):
                return bound_s2(_kernel_array(mean), _kernel_array(chol), *arrs[6:12])
        xstar, inside = self._nearest_point(mean, chol)
        return np.where(inside, 0.0, log_ndtr(-np.sqrt(np.sum(xstar * xstar, axis=-1))))

    def _guarded(self, mean, chol, moments, direction):
        """:meth:`_guarded_cones`; then, for S = 2, 3, the moments of the pairs whose mean is
        at least ``TAIL_DISTANCE`` whitened units from P are replaced: there the cone sum's
        covariance cancels (its relative error grows as eps d^4) and its mean loses
        ~eps d^2 |log m0|. A bounded polyhedron's come from the simplex cubature where its
        budget ``_FAR_CUBATURE_BUDGET`` allows (positive terms: nothing cancels at any
        distance; 30 us per pair at S = 2, a few ms at S = 3), the others' from the slices
        about the nearest point (:mod:`fastpath._cone_tail`, compiled in
        :mod:`fastpath._jit_tail`: ~0.1 ms per pair at S = 2, 0.01-0.25 s at S = 3). log m0
        stays the cone sum's."""
        out = self._guarded_cones(mean, chol, moments, direction)
        if not moments or self.dim not in (2, 3) or direction != "nearest" or not tail_enabled():
            return out
        xstar, inside = self._nearest_point(mean, chol)
        dist = np.sqrt(np.sum(xstar * xstar, axis=-1))
        far = ~inside & (dist >= TAIL_DISTANCE)
        if not np.any(far):
            return out
        dm, tc = out[1].copy(), out[2].copy()
        bounded = self._bounded_mask[None, :]
        far = (far & ~bounded) | self._moments_by_cubature(
            mean, chol, dm, tc, far & bounded, _FAR_CUBATURE_BUDGET[self.dim])
        a_idx, j_idx = np.nonzero(far)
        if a_idx.size:
            ch = chol[a_idx if chol.shape[0] > 1 else np.zeros_like(a_idx), j_idx]
            dm[a_idx, j_idx], tc[a_idx, j_idx] = self._tail_pairs(
                j_idx, mean[a_idx, j_idx], ch, xstar[a_idx, j_idx])
        return out[0], dm, tc, out[3]

    def _tail_pairs(self, j_idx: NDArray[np.intp], mean: NDArray[np.float64],
                    U: NDArray[np.float64], xstar: NDArray[np.float64]
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(E[y|P] - mean (K, s), Cov[y|P] (K, s, s)) of polyhedra ``j_idx`` (K,) for
        N(mean[q], U[q] U[q]^T) (``mean`` (K, s), lower ``U`` (K, s, s)) by the tail slices
        about the whitened nearest points ``xstar`` (K, s) (the means outside P): compiled
        (:mod:`fastpath._jit_tail`) with the compiled kernels, the pairs they decline (and
        all without them) by :meth:`_tail_pair`."""
        K = j_idx.size
        if COMPILED[0]:
            from ._jit_tail import tail_pairs

            with serial_below(K, 2):
                _, dm, tc, _, ok = tail_pairs(np.ascontiguousarray(j_idx, dtype=np.intp),
                                              _kernel_array(mean), _kernel_array(U),
                                              _kernel_array(xstar), *self._table_arrays()[6:12])
        else:
            s = self.dim
            dm, tc, ok = np.empty((K, s)), np.empty((K, s, s)), np.zeros(K, dtype=bool)
        for q in np.flatnonzero(~ok):
            dm[q], tc[q] = self._tail_pair(int(j_idx[q]), mean[q], U[q], xstar[q])
        return dm, tc

    def _tail_pair(self, j: int, mean: NDArray[np.float64], U: NDArray[np.float64],
                   xstar: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(E[y|P] - mean (s,), Cov[y|P] (s, s)) of polyhedron j for N(mean, U U^T) by the
        tail slices about the whitened nearest point ``xstar`` (:mod:`fastpath._cone_tail`;
        the mean outside P)."""
        fv = self.f_valid[j]
        _, dm, tc, _ = tail_moments(self.f_C[j][fv], self.f_d[j][fv], self.e_start[j],
                                    self.e_dir[j], self.e_len[j], mean, U, xstar)
        return dm, tc

    def _guarded_cones(self, mean, chol, moments, direction):
        """:meth:`_evaluate`, with a fallback where the signed sum cancelled catastrophically.

        Where more than ``_MAX_LOG_CANCEL`` of the terms' magnitude cancelled (or the sum is
        not positive), the other direction is tried and the better result kept. Should both
        fail, the result is the limit of a point mass at the nearest point of P, with log m0
        set from the rounding level of the terms, and a RuntimeWarning is issued: the answer
        is then no better than the float64 terms allow (never NaN).
        """
        if direction == "nearest":
            out = self._cones_or_cubature(mean, chol, moments)
        else:
            out = self._evaluate(mean, chol, moments, direction)
        deferred = None
        if direction == "nearest" and self.dim == 2 and ((moments and self._defers())
                                                         or self._routes()):
            # the pairs _evaluate may have left without moments or unsummed (see
            # _evaluate_compiled), read off their log_cancel; a pair flagged here that was
            # computed in full is only computed again, with the same result
            from ._cone_cubature import _CUBATURE_BUDGET, _LOG_CANCEL_CUBATURE

            lc = out[3]
            with np.errstate(invalid="ignore"):
                deferred = (self._bounded_mask[None, :] & ~(lc <= _LOG_CANCEL_CUBATURE + _DEFER_MARGIN)
                            & ~(np.abs(lc - _CUBATURE_BUDGET[0][0]) <= _DEFER_MARGIN))
        if direction == "nearest" and self.dim >= 2:
            out = self._cubature_where_cancelled(mean, chol, moments, out, deferred)
        lc = out[3]
        bad = ~(lc <= _MAX_LOG_CANCEL)
        if direction != "nearest" or not np.any(bad):
            return out
        rows = np.flatnonzero(np.any(bad, axis=1))
        ch = chol if chol.shape[0] == 1 else chol[rows]
        alt = self._evaluate(mean[rows], ch, moments, "generic")
        use = ~(out[3][rows] <= alt[3]) & (alt[3] <= _MAX_LOG_CANCEL)
        res = [None if o is None else o.copy() for o in out]
        for i in range(4):
            if res[i] is None:
                continue
            sub = res[i][rows]
            u = use.reshape(use.shape + (1,) * (sub.ndim - 2))
            res[i][rows] = np.where(u, alt[i], sub)
        still = ~(res[3] <= _MAX_LOG_CANCEL)
        if np.any(still):
            warnings.warn(
                f"{int(still.sum())} Gaussian integral(s) lost all digits to cancellation "
                "(an extremely thin polyhedron, or orthant values without relative accuracy); "
                "returned the limit of a point mass at the nearest point", RuntimeWarning,
                stacklevel=5)
            fix = self._point_mass(mean, chol, moments)
            for i in range(3):
                if res[i] is None:
                    continue
                u = still.reshape(still.shape + (1,) * (res[i].ndim - 2))
                res[i] = np.where(u, fix[i], res[i])
        return res[0], res[1], res[2], res[3]

    def _point_mass(self, mean, chol, moments):
        """Fallback: log of the largest cone term times eps, mass at the nearest point."""
        Uinv = np.linalg.inv(chol)
        xstar, _, _ = self._nearest_points(mean, chol, Uinv)
        d2 = np.sum(xstar * xstar, axis=-1)
        s = self.dim
        log_m0 = -0.5 * d2 - s * _LOG_SQRT_2PI + math.log(np.finfo(float).eps)
        if not moments:
            return log_m0, None, None
        dm = (chol @ xstar[..., None])[..., 0]
        return log_m0, dm, np.zeros(dm.shape + (s,))

    @cached_property
    def _bounded_mask(self) -> NDArray[np.bool_]:
        """(n_poly,) whether each polyhedron is bounded (``bounded`` holds its geometry)."""
        if not self.bounded:
            return np.zeros(self.n_poly, dtype=np.bool_)
        return np.array([g is not None for g in self.bounded], dtype=np.bool_)

    def _defers(self) -> bool:
        """Whether :meth:`_evaluate` leaves out moments (S = 2 compiled, bounded polygons)."""
        return DEFER[0] and self._compiled_with_polygons()

    def _routes(self) -> bool:
        """Whether :meth:`_evaluate` leaves the small bounded polygons to the cubature
        unsummed (S = 2 compiled)."""
        return ROUTE[0] and self._compiled_with_polygons()

    def _compiled_with_polygons(self) -> bool:
        """S = 2, the compiled cone kernel, and at least one bounded polygon: where the
        kernel can hand pairs to the cubature."""
        return self.dim == 2 and COMPILED[0] and bool(self._bounded_mask.any())

    def _evaluate(self, mean, chol, moments, direction="nearest"):
        """The signed cone sums (log m0, E - mean, Cov, log_cancel). Where :meth:`_defers`,
        the pairs the cubature of :meth:`_guarded_cones` takes have no moments (0)."""
        if self.dim == 2 and direction == "nearest" and COMPILED[0]:
            return self._evaluate_compiled(mean, chol, moments, defer=self._defers(),
                                           route=self._routes())
        if self.dim == 3 and direction == "nearest" and COMPILED[0]:
            return self._evaluate_compiled3(mean, chol, moments)
        return self._evaluate_numpy(mean, chol, moments, direction)

    def _evaluate_numpy(self, mean, chol, moments, direction="nearest"):
        s = self.dim
        if s == 1 and direction == "nearest":
            return self._evaluate_interval(mean, chol, moments)
        N = mean.shape[0]
        Uinv = np.linalg.inv(chol)
        xstar, W, _ = self._nearest_points(mean, chol, Uinv)

        # ---- the direction c (whitened), generic and toward the mean
        cg = np.einsum("ni,cnij->cnj", self.c_gen, chol)                     # U^T c_gen
        cg = cg / np.linalg.norm(cg, axis=-1, keepdims=True)
        cw = -xstar
        ncw = np.linalg.norm(cw, axis=-1, keepdims=True)
        c = np.where(ncw > 0, cw + _GENERIC_WEIGHT * ncw * cg, cg)
        if direction == "generic":
            c = np.broadcast_to(cg, cw.shape)
        Wc = [np.ascontiguousarray(W[..., i]) for i in range(s)]              # (Nc, n, E)

        def dots(c):
            out = c[..., 0, None] * Wc[0]
            for i in range(1, s):
                out = out + c[..., i, None] * Wc[i]
            return out

        cu = dots(c)                                                          # (N, n, E)
        nW = np.sqrt(np.sum(W * W, axis=-1))
        nc = np.sqrt(np.sum(c * c, axis=-1))
        ray = ~np.isfinite(self.e_len)[None]
        bad = np.any((np.abs(cu) <= _GENERIC_MARGIN * nc[..., None] * nW) | (ray & (cu >= 0)),
                     axis=-1)
        if np.any(bad):
            c = np.where(bad[..., None], cg, c)
            cu = dots(c)

        # ---- flipped cones in whitened coordinates (structure of arrays, module notes)
        own = self.p_owner
        seg = self.p_seg
        E = cu.shape[-1]
        cu_flat = cu.reshape(N, -1)
        A0 = self.p_L[None] @ chol[:, own]                                   # rows U^T L_q
        nA = np.sqrt(np.sum(A0 * A0, axis=-1))                               # (Nc, Np, s)
        A0 = A0 / nA[..., None]
        Lv = np.sum(self.p_L * self.p_apex[:, None, :], axis=-1)             # (Np, s)
        mown = [mean[:, :, j][:, own] for j in range(s)]                     # (N, Np)
        h, sig = [], []
        sign = None
        for q in range(s):
            col = own * E + self.p_edge[:, q]
            fq = (self.p_orient[:, q] * cu_flat[:, col]) > 0                 # flip generator q
            sg = np.where(fq, -1.0, 1.0)
            sign = sg if sign is None else sign * sg
            lm = self.p_L[:, q, 0] * mown[0]
            for j in range(1, s):
                lm = lm + self.p_L[:, q, j] * mown[j]
            h.append(sg * (Lv[:, q] - lm) / nA[..., q])
            sig.append(sg)
        A = [[sig[q] * A0[..., q, i] for i in range(s)] for q in range(s)]
        if A0.shape[0] != N:
            A = [[np.broadcast_to(x, (N,) + x.shape[1:]) for x in r] for r in A]

        logP, logf, logf2 = _orthant_terms_soa(h, A, moments)

        # ---- signed log-sum-exp per polyhedron
        Kp = logP
        if moments:
            for v in logf:
                Kp = np.maximum(Kp, v)
            for v in logf2.values():
                Kp = np.maximum(Kp, v)
        K = np.maximum.reduceat(Kp, seg, axis=1)                             # (N, n)
        Kb = K[:, own]
        eP = _exp_rel(logP - Kb)
        m0s = np.add.reduceat(sign * eP, seg, axis=1)
        absum = np.add.reduceat(eP, seg, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_m0 = K + np.log(m0s)
            log_cancel = np.log(absum) - np.log(m0s)
        if not moments:
            return log_m0, None, None, log_cancel

        # signed, scaled Tallis terms; int x = -A^T f, int x x^T = P I + A^T M A
        f = [sign * _exp_rel(v - Kb) for v in logf]
        f2 = {key: sign * _exp_rel(v - Kb) for key, v in logf2.items()}
        R = {(q, t): _dot(A[q], A[t]) for (q, t) in f2}
        Mdiag = []
        for q in range(s):
            dq = h[q] * f[q]
            for (a_, b_), v in f2.items():
                if q in (a_, b_):
                    dq = dq + R[(a_, b_)] * v
            Mdiag.append(-dq)
        g = np.empty((N, self.n_poly, s))
        for i in range(s):
            gi = A[0][i] * f[0]
            for q in range(1, s):
                gi = gi + A[q][i] * f[q]
            g[..., i] = np.add.reduceat(gi, seg, axis=1)
        Q = np.empty((N, self.n_poly, s, s))
        for i in range(s):
            for j in range(i, s):
                qij = Mdiag[0] * A[0][i] * A[0][j]
                for q in range(1, s):
                    qij = qij + Mdiag[q] * A[q][i] * A[q][j]
                for (q, t), v in f2.items():
                    qij = qij + v * (A[q][i] * A[t][j] + A[t][i] * A[q][j])
                Q[..., i, j] = Q[..., j, i] = np.add.reduceat(qij, seg, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            dm_w = -g / m0s[..., None]
            C2_w = np.eye(s) + Q / m0s[..., None, None]
        U = chol
        # rows with m0 <= 0 (complete cancellation) are NaN here; _guarded replaces them
        with np.errstate(invalid="ignore", over="ignore"):
            dmean = (U @ dm_w[..., None])[..., 0]
            ccov = U @ C2_w @ np.swapaxes(U, -1, -2) - dmean[..., :, None] * dmean[..., None, :]
        tcov = 0.5 * (ccov + np.swapaxes(ccov, -1, -2))
        return log_m0, dmean, tcov, log_cancel
