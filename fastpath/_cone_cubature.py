"""When a bounded polytope is integrated by simplex cubature instead of its signed cone sum.

The signed vertex-cone sum (:mod:`fastpath._cones`) can cancel: a polytope small or thin
compared with its distance from the mean has large terms of both signs. Simplex cubature
(:mod:`fastpath._simplex_cubature`) over a triangulation of a bounded polytope is a sum of
positive terms and cannot cancel, but its cost grows with the polytope's whitened size.
The methods here (a mixin of :class:`fastpath._cones.ConeTable`) decide, per (Gaussian,
polytope) pair, which of the two is used:

* after the cone sum, where it lost more than ``_LOG_CANCEL_CUBATURE`` to cancellation and
  the cubature fits ``_CUBATURE_BUDGET`` (:meth:`_CubatureRouting._cubature_where_cancelled`);
* for S = 2, instead of it, where the polygon's whitened spread is at most
  ``_ROUTE_SPREAD`` (decided in the cone kernel; such polygons nearly always cancel);
* for S = 2, for the moments alone, where the cone sum kept m0 but the kernel's estimate
  of its moments' error is above ``_MOMENT_TOL`` (:meth:`_CubatureRouting._cubature_moments`;
  the tail slices where the polygon is too large for the cubature);
* for S >= 3, before it, where the cubature is estimated cheaper than the cones, or not
  much dearer where thin cones far out lose accuracy in the k = 3 orthants
  (:meth:`_CubatureRouting._cones_or_cubature`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from . import _simplex_cubature
from ._standardise import lower_solve

#: log of the fraction of the terms' magnitude that may cancel in m0 of a bounded polytope
#: before it is recomputed by simplex cubature (a sum of positive terms,
#: fastpath._simplex_cubature): e^3 = 20 keeps m0 within ~20 kernel roundings (<= 1e-13)
_LOG_CANCEL_CUBATURE = 3.0
#: the cubature is used where its estimated number of simplices (after bisection to the
#: rules' spread) is at most this, by log_cancel below / above the bound: where the cone
#: sum cancels little (measured: <= 4.5e-13 in log m0 below e^4 at S = 3, <= 1.3e-13 at
#: S = 2, against the cubature on 2e4 E-step pairs) a large polytope is left to it
_CUBATURE_BUDGET = ((4.0, 64), (np.inf, 1024))
#: s = 2: bounded polygons whose whitened log-density spread bound is at most this go to the
#: cubature without their cone sum (fastpath._jit_cones._pair_deferred). Measured on the
#: E-step pairs of benchmarks/em.py's S = 2 case: 85% of the pairs below 2 (99% below 1)
#: lose more than e^3 to cancellation and were integrated twice; there the 9-point rule
#: (or fewer) costs about as much as the cones
_ROUTE_SPREAD = 2.0
#: s = 2: the moments (not log m0) of a bounded polygon's cone sum are replaced by the
#: cubature's where the cone kernel's estimate of their relative error
#: (fastpath._jit_cones._moment_error) is above this: its central covariance can cancel
#: (a mean far from a small polygon) when m0 does not. Measured on E-step-like pairs
#: (benchmarks/moment_cancellation.py)
_MOMENT_TOL = 1e-10
#: simplices in all per call of the numpy-driven cubature where it replaces moments
#: (:meth:`_CubatureRouting._moments_by_cubature`; ~200 MB at s = 3)
_CUBATURE_SIMPLICES = 1 << 21
#: s >= 3: a bounded polytope is integrated by cubature instead of its cones when the
#: estimated cubature nodes are at most this many per cone: the cost of one cone (a k = 3
#: orthant and its Tallis terms) in cubature nodes, measured at S = 3
_NODES_PER_CONE = 1500.0
#: s >= 3: estimated log relative error of the cone sum over eps, log(|log m0| / det R)
#: of its thinnest cone, above which a bounded polytope goes to the cubature when that
#: costs at most _THIN_COST_FACTOR times its cones: e^6.8 eps = 2e-13
_LOG_AMP_CUBATURE = 6.8
_THIN_COST_FACTOR = 8.0


class _CubatureRouting:
    """The cubature decisions of :class:`fastpath._cones.ConeTable` (a mixin of it)."""

    if TYPE_CHECKING:
        dim: int
        n_poly: int
        p_owner: NDArray[np.intp]
        p_seg: NDArray[np.intp]
        p_L: NDArray[np.float64]
        bounded: tuple[Any, ...]
        own_cache: dict[str, Any]

        @property
        def n_pieces(self) -> int: ...

        def take(self, index: NDArray[np.intp]) -> Any: ...

        def _nearest_points(self, mean: Any, chol: Any, Uinv: Any) -> Any: ...

        def _tail_pairs(self, j_idx: Any, mean: Any, U: Any, xstar: Any) -> Any: ...

        def _evaluate(self, mean: Any, chol: Any, moments: Any, direction: str = ...) -> Any: ...

    def _cubature_where_cancelled(self, mean, chol, moments, out, deferred=None):
        """Replace the results of bounded polyhedra whose signed cone sum lost more than
        ``_LOG_CANCEL_CUBATURE`` (or everything) by simplex cubature where it is cheap
        (``_CUBATURE_BUDGET``: small polytopes, which is where the cone sum cancels most);
        their log_cancel becomes 0 (a sum of positive terms).

        ``deferred`` (N, n) or None: pairs whose cone sum may have been left without its
        moments (:meth:`fastpath._cones.ConeTable._evaluate_compiled`; all of them in the
        selection here); those the cubature does not take are evaluated again in full."""
        lc = out[3]
        if not self.bounded:
            return out
        has = np.array([g is not None for g in self.bounded])
        sel = ~(lc <= _LOG_CANCEL_CUBATURE) & has[None, :]
        if not np.any(sel):
            return out
        if deferred is not None:
            # the compiled kernel's own fresh arrays: filled in place
            out = self._cubature_selected(mean, chol, moments, out, sel, inplace=True)
            return self._undefer(mean, chol, moments, out, deferred)
        return self._cubature_selected(mean, chol, moments, out, sel)

    def _cubature_moments(self, mean, chol, out, flagged):
        """The moments of the ``flagged`` (N, n) pairs (bounded polygons whose cone sum
        kept m0 but whose moments' estimated error is above ``_MOMENT_TOL``) by cubature,
        written into ``out`` (the compiled kernel's own arrays); log m0 and log_cancel stay
        the cone sum's, so that they are the same with and without moments. A pair too
        large for the cubature's largest budget (a large polygon far from the mean) takes
        the tail slices about its nearest point (:mod:`fastpath._cone_tail`), which do not
        cancel at any distance; one whose mean lies in P keeps the cone sum's."""
        left = self._moments_by_cubature(mean, chol, out[1], out[2], flagged,
                                         _CUBATURE_BUDGET[-1][1])
        if not np.any(left):
            return out
        a_idx, j_idx = np.nonzero(left)
        ch = chol[a_idx if chol.shape[0] > 1 else np.zeros_like(a_idx), j_idx]
        sub = self.take(j_idx)
        xstar, _, inside = sub._nearest_points(mean[a_idx, j_idx][None], ch[None],
                                               np.linalg.inv(ch)[None])
        i = np.flatnonzero(~inside[0])
        if i.size:
            a, j = a_idx[i], j_idx[i]
            out[1][a, j], out[2][a, j] = self._tail_pairs(j, mean[a, j], ch[i], xstar[0, i])
        return out

    def _moments_by_cubature(self, mean, chol, dm, tc, sel, budget):
        """Write into ``dm`` (N, n, s) and ``tc`` (N, n, s, s) the cubature's moments of the
        ``sel`` (N, n) pairs of bounded polyhedra it resolves within ``budget`` simplices
        each; returns the mask of the selected pairs it did not. At s = 2 by the compiled
        kernel; the numpy-driven one holds every pair's simplices at once, so it is called
        on at most ``_CUBATURE_SIMPLICES`` of them at a time."""
        from ._cones import COMPILED

        left = sel.copy()
        a_idx, j_idx = np.nonzero(sel)
        compiled = self.dim == 2 and COMPILED[0]
        step = max(1, a_idx.size if compiled else _CUBATURE_SIMPLICES // budget)
        for lo in range(0, a_idx.size, step):
            a_s, j_s = a_idx[lo:lo + step], j_idx[lo:lo + step]
            got = (self._cubature_compiled if compiled else self._cubature)(
                mean, chol, True, a_s, j_s, np.full(a_s.size, budget))
            if got is not None:
                a_got, j_got, _, dm_got, tc_got = got
                dm[a_got, j_got] = dm_got
                tc[a_got, j_got] = tc_got
                left[a_got, j_got] = False
        return left

    def _undefer(self, mean, chol, moments, out, deferred):
        """The full cone sums of the deferred pairs the cubature left (log_cancel != 0),
        written into ``out`` (the compiled kernel's own arrays)."""
        left = deferred & (out[3] != 0.0)
        if not np.any(left):
            return out
        a_idx, j_idx = np.nonzero(left)
        sub = self.take(j_idx)
        ch = chol[:, j_idx] if chol.shape[0] == 1 else chol[a_idx, j_idx][None]
        lm, dm, tc, lc = sub._evaluate_compiled(mean[a_idx, j_idx][None], ch, moments)
        res = list(out)
        res[0][a_idx, j_idx] = lm[0]
        if moments:
            res[1][a_idx, j_idx] = dm[0]
            res[2][a_idx, j_idx] = tc[0]
        res[3][a_idx, j_idx] = lc[0]
        return res[0], res[1], res[2], res[3]

    def _cubature_selected(self, mean, chol, moments, out, sel, inplace=False):
        """:meth:`_cubature_where_cancelled` for the selected pairs ``sel`` (N, n); the
        arrays of ``out`` are written to when ``inplace``, else copied first."""
        lc = out[3]
        a_idx, j_idx = np.nonzero(sel)
        lcs = np.where(np.isnan(lc[a_idx, j_idx]), np.inf, lc[a_idx, j_idx])  # NaN: m0 <= 0
        budget = np.select([lcs < b for b, _ in _CUBATURE_BUDGET],
                           [n for _, n in _CUBATURE_BUDGET], default=_CUBATURE_BUDGET[-1][1])
        from ._cones import COMPILED

        if self.dim == 2 and COMPILED[0]:
            got = self._cubature_compiled(mean, chol, moments, a_idx, j_idx, budget)
        else:
            got = self._cubature(mean, chol, moments, a_idx, j_idx, budget)
        if got is None:
            return out
        res = list(out) if inplace else [None if o is None else o.copy() for o in out]
        self._scatter(res, got)
        return res[0], res[1], res[2], res[3]

    def _cubature(self, mean, chol, moments, a_idx, j_idx, budget):
        """Simplex cubature of entries (a_idx, j_idx) of bounded polyhedra whose estimated
        number of simplices is within ``budget`` (per entry): the resolved ones as
        (a, j, log m0, E[y|P] - mean, Cov[y|P]), or None."""
        tris = {j: self._triangulation(j) for j in np.unique(j_idx).tolist()}
        counts = np.array([tris[j].shape[0] for j in j_idx.tolist()])
        Xs = np.concatenate([tris[j] for j in j_idx.tolist()])              # (K, s+1, s)
        item = np.repeat(np.arange(a_idx.size), counts)
        ai, ji = a_idx[item], j_idx[item]
        U = chol[ai if chol.shape[0] > 1 else np.zeros_like(ai), ji]         # (K, s, s)
        Xw = lower_solve(U[:, None], Xs - mean[ai, ji][:, None, :])         # (K, s+1, s)
        # cost gate: ~ (spread / _SPREAD)^s simplices per simplex after bisection
        est = np.bincount(item, np.maximum(1.0, _simplex_cubature._spread(Xw)
                                           / _simplex_cubature._SPREAD) ** self.dim,
                          minlength=a_idx.size)
        cheap = est <= budget
        if not np.any(cheap):
            return None
        a_idx, j_idx = a_idx[cheap], j_idx[cheap]
        take = cheap[item]
        renum = np.cumsum(cheap) - 1
        lm, mw, cw, resolved = _simplex_cubature.simplex_moments(
            Xw[take], renum[item[take]], a_idx.size, moments,
            max_simplices=int(np.max(budget)))
        a_idx, j_idx, lm = a_idx[resolved], j_idx[resolved], lm[resolved]
        dm = tc = None
        if moments:
            Ue = chol[a_idx if chol.shape[0] > 1 else np.zeros_like(a_idx), j_idx]
            dm = (Ue @ mw[resolved][..., None])[..., 0]
            tc = Ue @ cw[resolved] @ np.swapaxes(Ue, -1, -2)
            tc = 0.5 * (tc + np.swapaxes(tc, -1, -2))
        return a_idx, j_idx, lm, dm, tc

    def _cubature_compiled(self, mean, chol, moments, a_idx, j_idx, budget):
        """:meth:`_cubature` at s = 2 by one compiled kernel over the pairs
        (:mod:`fastpath._jit_pair_cubature`: the same gate, bisection and rules, summed in
        another order, so the two agree to rounding)."""
        from . import _jit_pair_cubature as jp
        from ._cones import _kernel_array
        from ._simplex_cubature import _rule_table
        from ._threads import serial_below

        tri, tri_start = self._triangle_table()
        with serial_below(a_idx.size, 200):
            ok, lm, dm, tc = jp.pair_cubature_s2(
                tri, tri_start, _kernel_array(mean), _kernel_array(chol), a_idx.astype(np.intp),
                j_idx.astype(np.intp), budget.astype(np.intp), *_rule_table(2), moments)
        if not np.any(ok):
            return None
        return (a_idx[ok], j_idx[ok], lm[ok], dm[ok] if moments else None,
                tc[ok] if moments else None)

    def _triangle_table(self):
        """The fan triangles of all polyhedra (T, s+1, s) and where each one's start
        (n_poly + 1,) (none for unbounded ones); built once per table."""
        got = self.own_cache.get("triangle_table")
        if got is None:
            tris = [self._triangulation(j) for j in range(self.n_poly)]
            start = np.zeros(self.n_poly + 1, dtype=np.intp)
            start[1:] = np.cumsum([t.shape[0] for t in tris])
            allt = (np.concatenate(tris) if start[-1] else
                    np.zeros((0, self.dim + 1, self.dim)))
            got = (np.ascontiguousarray(allt, dtype=np.float64), start)
            self.own_cache["triangle_table"] = got
        return got

    def _log_det_min(self, chol):
        """min over each polyhedron's cones of log det(A A^T), A the cone's unit rows in
        whitened coordinates (Nc, n): log det of the orthants' correlation matrices."""
        A0 = self.p_L[None] @ chol[:, self.p_owner]                          # (Nc, Np, s, s)
        A0 = A0 / np.linalg.norm(A0, axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            ld = 2.0 * np.log(np.abs(np.linalg.det(A0)))
        return np.minimum.reduceat(ld, self.p_seg, axis=1)

    @staticmethod
    def _scatter(res, got):
        a_idx, j_idx, lm, dm, tc = got
        res[0][a_idx, j_idx] = lm
        res[3][a_idx, j_idx] = 0.0
        if res[1] is not None:
            res[1][a_idx, j_idx] = dm
            res[2][a_idx, j_idx] = tc

    def _cones_or_cubature(self, mean, chol, moments):
        """:meth:`_evaluate` (direction "nearest"), except that for s >= 3 the bounded
        polyhedra whose cubature is estimated cheaper than their cones are integrated by
        simplex cubature instead (a sum of positive terms, so also free of the conditioning
        of thin cones: ~2e-12 errors of log m0 at S = 3 in the cone sum without any
        cancellation). Cost model: ``_NODES_PER_CONE`` cubature nodes per cone."""
        s = self.dim
        if s < 3 or not any(g is not None for g in self.bounded):
            return self._evaluate(mean, chol, moments)
        N, n = mean.shape[:2]
        cost, far = self._cubature_cost(mean, chol)                         # (N, n) each
        ncones = np.diff(np.append(self.p_seg, self.n_pieces))
        cheap = cost <= _NODES_PER_CONE * ncones[None, :]
        # thin cones far out: the k = 3 orthants lose ~eps |log P| / det(R) relatively (R
        # the cones' correlation matrices; measured 1-3e-12 at det ~1e-3, log P ~ -36,
        # against mpmath on the same float inputs, with two independent kernels), so there
        # the cubature is worth up to _THIN_COST_FACTOR times the cones' cost
        with np.errstate(divide="ignore"):
            amp = np.log(np.maximum(1.0, 0.5 * far * far)) - self._log_det_min(chol)
        cheap |= ((amp > _LOG_AMP_CUBATURE)
                  & (cost <= _THIN_COST_FACTOR * _NODES_PER_CONE * ncones[None, :]))
        if not np.any(cheap):
            return self._evaluate(mean, chol, moments)
        a_c, j_c = np.nonzero(cheap)
        got = self._cubature(mean, chol, moments, a_c, j_c,
                             np.full(a_c.size, _CUBATURE_BUDGET[-1][1]))
        done = np.zeros((N, n), dtype=bool)
        res = [np.empty((N, n)), np.empty((N, n, s)) if moments else None,
               np.empty((N, n, s, s)) if moments else None, np.zeros((N, n))]
        if got is not None:
            self._scatter(res, got)
            done[got[0], got[1]] = True
        a_r, j_r = np.nonzero(~done)
        if a_r.size:
            sub = self.take(j_r)
            ch = chol[a_r if chol.shape[0] > 1 else np.zeros_like(a_r), j_r][None]
            r = sub._evaluate(mean[a_r, j_r][None], ch, moments)
            for i in range(4):
                if res[i] is not None:
                    res[i][a_r, j_r] = r[i][0]
        return res[0], res[1], res[2], res[3]

    def _cubature_cost(self, mean, chol):
        """Estimated cubature nodes (N, n) of each bounded polyhedron (inf if unbounded):
        its simplices times the nodes of the rule for the polytope's whitened spread bound,
        times the bisections that spread would need; and a lower bound (N, n) of the
        whitened distance of the polytope from the mean (|centre| - radius). Compiled
        (:func:`fastpath._jit_cubature.cubature_cost`) unless ``_cones.COMPILED`` is off."""
        s = self.dim
        V, Vmask, T = self._vertex_table()
        # the rules' spread bands and node counts, as the cubature kernels take them
        bounds, _, _, starts = _simplex_cubature._rule_table(s)
        nodes = np.diff(starts).astype(float)
        from ._cones import COMPILED

        if COMPILED[0]:
            from ._jit_cubature import cubature_cost

            return cubature_cost(V, Vmask, T, np.ascontiguousarray(chol, dtype=np.float64),
                                 np.ascontiguousarray(mean, dtype=np.float64), bounds, nodes,
                                 _simplex_cubature._SPREAD)
        Uinv = np.linalg.inv(chol)                                          # (Nc, n, s, s)
        W = (Uinv[:, :, None] @ (V[None] - mean[:, :, None, :])[..., None])[..., 0]
        m = Vmask[None, ..., None]
        cnt = np.maximum(Vmask.sum(axis=1), 1)[None, :, None]
        c = np.sum(np.where(m, W, 0.0), axis=2) / cnt                        # (N, n, s)
        R = np.sqrt(np.max(np.where(Vmask[None], np.sum((W - c[:, :, None]) ** 2, axis=-1),
                                    0.0), axis=2))
        D = 2.0 * R
        spread = np.sqrt(np.sum(c * c, axis=-1)) * D + 0.5 * D * D
        band = np.minimum(np.searchsorted(bounds, spread), len(bounds) - 1)
        per = nodes[band] * np.maximum(1.0, spread / _simplex_cubature._SPREAD) ** s
        cost = T[None, :] * per
        far = np.maximum(np.sqrt(np.sum(c * c, axis=-1)) - R, 0.0)       # >= dist(0, P)
        return np.where(T[None, :] > 0, cost, np.inf), far

    def _vertex_table(self):
        """Padded vertices (n, Vm, s), their mask, and the number of fan simplices (n,) of
        the bounded polyhedra (0 for unbounded ones); built once per table."""
        got = self.own_cache.get("vertex_table")
        if got is None:
            s = self.dim
            Vm = max((len(g.vertices) for g in self.bounded if g is not None), default=1)
            V = np.zeros((self.n_poly, Vm, s))
            mask = np.zeros((self.n_poly, Vm), dtype=bool)
            T = np.zeros(self.n_poly)
            for j, g in enumerate(self.bounded):
                if g is None:
                    continue
                k = len(g.vertices)
                V[j, :k], mask[j, :k] = g.vertices, True
                T[j] = self._triangulation(j).shape[0]
            got = (V, mask, T)
            self.own_cache["vertex_table"] = got
        return got

    def _triangulation(self, j: int) -> NDArray[np.float64]:
        """Simplices (T, s+1, s) of bounded polyhedron j (empty when unbounded)."""
        g = self.bounded[j]
        return np.zeros((0, self.dim + 1, self.dim)) if g is None else g.simplices
