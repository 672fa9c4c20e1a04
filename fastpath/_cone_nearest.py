"""Nearest point of a polyhedron to a Gaussian's mean in the Gaussian's metric.

The signed vertex-cone decomposition (:mod:`fastpath._cones`) takes its direction from the
point p* of P nearest to the mean in the Mahalanobis metric, and
:meth:`fastpath._cones.ConeTable.log_mass_bound` bounds the mass of P by Phi(-dist). In
whitened coordinates p* is the nearest point over the edges of P (segments and rays), over
the facets (S >= 3) and over the intersections of two facets (S = 4), whichever candidate
is feasible and nearest; the mean itself when it lies in P.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray


class _NearestPoints:
    """The nearest-point step of :class:`fastpath._cones.ConeTable` (a mixin of it)."""

    if TYPE_CHECKING:
        dim: int
        n_poly: int
        e_start: NDArray[np.float64]
        e_dir: NDArray[np.float64]
        e_len: NDArray[np.float64]
        f_C: NDArray[np.float64]
        f_d: NDArray[np.float64]
        f_valid: NDArray[np.bool_]
        pairs: NDArray[np.intp]
        pair_valid: NDArray[np.bool_]

    def _nearest_points(self, mean: NDArray[np.float64], chol: NDArray[np.floating[Any]],
                        Uinv: NDArray[np.floating[Any]]
                        ) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]],
                                   NDArray[np.bool_]]:
        """Whitened nearest point x* of P to the mean (N, n, s), the whitened edge directions
        (Nc, n, E, s), and whether the mean lies in P (N, n)."""
        s = self.dim
        # edges: clipped projection onto each segment / ray (always a point of P). With the
        # whitened mean m, start S_e and direction W_e, the point S_e - m + t W_e has squared
        # norm |S_e|^2 - 2 m.S_e + |m|^2 + 2 t (S_e.W_e - m.W_e) + t^2 |W_e|^2: only the two
        # dot products with m are per Gaussian.
        m = (Uinv @ mean[..., None])[..., 0]                                  # (N, n, s)
        Se = (Uinv[:, :, None] @ self.e_start[None, ..., None])[..., 0]       # (Nc, n, E, s)
        W = (Uinv[:, :, None] @ self.e_dir[None, ..., None])[..., 0]          # (Nc, n, E, s)
        ww = np.sum(W * W, axis=-1)
        sw = np.sum(Se * W, axis=-1)
        ss = np.sum(Se * Se, axis=-1)
        mW = m[..., 0, None] * W[..., 0]
        mS = m[..., 0, None] * Se[..., 0]
        for i in range(1, s):
            mW = mW + m[..., i, None] * W[..., i]
            mS = mS + m[..., i, None] * Se[..., i]
        t = np.clip((mW - sw) / ww, 0.0, self.e_len[None])
        de = ss - 2.0 * mS + 2.0 * t * (sw - mW) + t * t * ww               # + |m|^2
        best = np.argmin(de, axis=-1)[..., None]                              # (N, n, 1)
        tb = np.take_along_axis(t, best, axis=2)
        Wb = np.take_along_axis(np.broadcast_to(W, t.shape + (s,)), best[..., None], axis=2)
        Sb = np.take_along_axis(np.broadcast_to(Se, t.shape + (s,)), best[..., None], axis=2)
        xstar = (Sb + tb[..., None] * Wb)[:, :, 0, :] - m
        dbest = np.sum(xstar * xstar, axis=-1)
        beta = self.f_d[None] - np.einsum("nmi,Nni->Nnm", self.f_C, mean)   # (N, n, M)
        inside = np.all((beta >= 0) | ~self.f_valid[None], axis=-1)
        if s >= 3:
            a = self.f_C[None] @ chol                                         # rows U^T c_j
            aa = np.where(self.f_valid[None], np.sum(a * a, axis=-1), 1.0)
            xf = (beta / aa)[..., None] * a                                   # (N, n, M, s)
            df = beta * beta / aa
            viol = xf @ np.swapaxes(a, -1, -2) - beta[:, :, None, :]        # (N, n, M, M)
            tol = 1e-9 * (1.0 + np.linalg.norm(xf, axis=-1))
            viol = np.where(self.f_valid[None, :, None, :], viol, -np.inf)
            feas = np.max(viol, axis=-1) <= tol
            cand = feas & (beta < 0) & self.f_valid[None]
            df = np.where(cand, df, np.inf)
            j = np.argmin(df, axis=-1)
            dj = np.take_along_axis(df, j[..., None], axis=-1)[..., 0]
            better = dj < dbest
            if np.any(better):
                xj = np.take_along_axis(xf, j[..., None, None], axis=2)[:, :, 0, :]
                xstar = np.where(better[..., None], xj, xstar)
                dbest = np.where(better, dj, dbest)
            if s == 4 and self.pairs.shape[1]:
                p0, p1 = self.pairs[..., 0], self.pairs[..., 1]              # (n, Pm)
                ar = np.arange(self.n_poly)[:, None]
                a0 = a[:, ar, p0]                                             # (Nc, n, Pm, s)
                a1 = a[:, ar, p1]
                b0 = beta[:, ar, p0]
                b1 = beta[:, ar, p1]
                g00 = np.sum(a0 * a0, -1)
                g01 = np.sum(a0 * a1, -1)
                g11 = np.sum(a1 * a1, -1)
                det = g00 * g11 - g01 * g01
                okp = self.pair_valid[None] & (det > 1e-12 * g00 * g11)
                det = np.where(okp, det, 1.0)
                l0 = (g11 * b0 - g01 * b1) / det
                l1 = (g00 * b1 - g01 * b0) / det
                xp = l0[..., None] * a0 + l1[..., None] * a1                  # (N, n, Pm, s)
                viol = xp @ np.swapaxes(a, -1, -2) - beta[:, :, None, :]
                viol = np.where(self.f_valid[None, :, None, :], viol, -np.inf)
                tol = 1e-9 * (1.0 + np.linalg.norm(xp, axis=-1))
                feas = (np.max(viol, axis=-1) <= tol) & okp
                dp = np.where(feas, np.sum(xp * xp, -1), np.inf)
                j = np.argmin(dp, axis=-1)
                dj = np.take_along_axis(dp, j[..., None], axis=-1)[..., 0]
                better = dj < dbest
                if np.any(better):
                    xj = np.take_along_axis(xp, j[..., None, None], axis=2)[:, :, 0, :]
                    xstar = np.where(better[..., None], xj, xstar)
        xstar = np.where(inside[..., None], 0.0, xstar)
        return xstar, W, inside
