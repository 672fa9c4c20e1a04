"""Standardised coordinates for the Gaussian integrals over one polyhedron (scale, far rows).

The public functions of :mod:`fastpath.integrals` (``log_gaussian_mass``,
``truncated_normal_moments``, ``gaussian_moments``) know both P = {z : C z <= d} and the
Gaussians, so they integrate in coordinates w = A^{-1} (z - c) where the Gaussian has unit
scale: for a single Gaussian c = mean and A its Cholesky factor (w ~ N(0, I)); for a batch
c = the first mean and A = sigma I, sigma a power of two near the largest standard
deviation. Rows are normalised (without overflow), so the geometry sees the same problem
for P and s P with the Gaussian scaled alike: the results are invariant to the scale s,
and the geometry's tolerances and LP data are in units of the Gaussian.

Far rows. Let delta be the Mahalanobis distance from a mean to P, w* the nearest point of
P, and row j (unit in the metric of the Gaussian) at distance t_j >= delta + K from the
mean. Dropping row j adds A_j = P' n {c.w > t_j} (P' = P without row j). In polar
coordinates about w*, w = w* + r u: along a ray that meets A_j the segment 0 < r <= rho =
(t_j - c.w*) / (c.u) lies in P, rho >= t_j - delta >= K, and a = w*.u >= 0 (w* is the
nearest point of the convex P), so |w|^2 = delta^2 + 2 a r + r^2. For an affine f = alpha +
r beta along the ray, int_1^2 f^2 dr >= (alpha^2 + beta^2) / 204, while f^2 <= 2 r^2
(alpha^2 + beta^2) for r >= 1; the radial weight r^(S-1) exp(-(r^2 + 2 a r) / 2) is
>= e^(-2-2a) on [1, 2] and <= e^(-a K) r^(S-1) e^(-r^2/2) beyond K >= 2. So the ray's part
of int_{A_j} f^2 dN is at most eps_K = 408 e^2 (K^4 + 4 K^2 + 8) e^(-K^2/2) times its part
of int_P f^2 dN (S <= 4; int_K^inf r^5 e^(-r^2/2) dr = (K^4 + 4 K^2 + 8) e^(-K^2/2)), and,
summed over rays, so is the whole. With f = 1 this bounds m0; with f any coordinate about
any centre, every second moment; by Cauchy-Schwarz the first. Hence the mass, the mean
and the covariance of the truncated Gaussian change by at most ~eps_K relative: K = 20
gives eps_K < 1e-78, far below float64 rounding. Rows are dropped one after another, each
time from a larger polyhedron whose delta is no larger, so the bound holds for each.
delta is bounded above by the distance to a verified point of P (:func:`point_near_origin`);
without one nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: rows more than this many standard deviations beyond (an upper bound on) the distance from
#: the mean to P are dropped (module docstring: relative effect < 1e-78)
DROP_SIGMAS = 20.0
#: a polyhedron farther than this many standard deviations has log mass below -5e307
MAX_SIGMAS = 1e154


@dataclass(frozen=True)
class Standardised:
    """The problem in w = A^{-1} (z - c): P_w = {w : C w <= d}, N(mean[n], cov[n])."""

    C: NDArray[np.float64]
    d: NDArray[np.float64]
    A: NDArray[np.float64]
    mean: NDArray[np.float64]
    cov: NDArray[np.float64]
    far: float  # a lower bound on the distance from the means to P, in standard deviations


def row_norms(A: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean norms of the rows of A without overflow or underflow of the squares."""
    amax = np.max(np.abs(A), axis=1) if A.shape[0] else np.zeros(0)
    safe = np.where(amax > 0, amax, 1.0)
    return amax * np.linalg.norm(A / safe[:, None], axis=1)


def lower_solve(L: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """L^-1 b for lower-triangular L (..., s, s) and b (..., s), broadcast together: many
    small systems at once by forward substitution (a batched LAPACK solve costs ~1 us per
    small system; whitening by a Cholesky factor)."""
    y = np.empty(np.broadcast_shapes(L.shape[:-1], b.shape))
    for i in range(b.shape[-1]):
        y[..., i] = (b[..., i] - np.sum(L[..., i, :i] * y[..., :i], axis=-1)) / L[..., i, i]
    return y


def unit_rows(C: NDArray[np.float64], d: NDArray[np.float64]
              ) -> tuple[Any, NDArray[np.float64], int]:
    """Rows of {C z <= d} scaled to unit Euclidean norm, zero rows removed.

    Returns (C, d, S), or (None, d, S) when a zero row has d_j < 0 (P is empty). Norms are
    taken without overflow (entries up to the float64 maximum). A row whose d_j / |C_j|
    overflows (beyond 1.8e308) is dropped when d_j > 0 (its half-space holds every point of
    norm below 1.8e308), and for d_j < 0 it is a :class:`ValueError` (no such point
    satisfies it, although the half-space is not empty).
    """
    C = np.asarray(C, dtype=np.float64)
    d = np.asarray(d, dtype=np.float64)
    S = C.shape[1]
    amax = np.max(np.abs(C), axis=1) if C.shape[0] else np.zeros(0)
    zero = amax <= 0.0
    if np.any(d[zero] < 0):
        return None, d, S
    C, d, amax = C[~zero], d[~zero], amax[~zero]
    Cs = C / amax[:, None]
    n = np.linalg.norm(Cs, axis=1)
    Cu = Cs / n[:, None]
    with np.errstate(over="ignore"):
        du = (d / amax) / n
    over = ~np.isfinite(du)
    if np.any(over & (d < 0)):
        j = int(np.flatnonzero(over & (d < 0))[0])
        raise ValueError(f"row {j} of (C, d): d[{j}] / |C[{j}]| = {d[j]:.3g} / |C[{j}]| "
                         "overflows float64; the half-space holds no float64 point")
    return Cu[~over], du[~over], S


def standardise(C: NDArray[np.float64], d: NDArray[np.float64], mean: NDArray[np.float64],
                cov: NDArray[np.float64]) -> Standardised:
    """The standardised problem (module docstring) for validated C (m, S), d (m,),
    mean (N, S) and cov (Nc, S, S), Nc in {1, N}; far rows dropped.

    Raises ValueError when d - C mean or the spread of the means, in standard deviations,
    overflows float64.
    """
    S = C.shape[1]
    N = mean.shape[0]
    c0 = mean[0]
    if cov.shape[0] == 1 and N == 1:
        A = np.linalg.cholesky(cov[0])
        mean_w = np.zeros((1, S))
        cov_w = np.eye(S)[None]
    else:
        sd = float(np.sqrt(np.max(np.diagonal(cov, axis1=-2, axis2=-1))))
        sigma = 2.0 ** int(np.round(np.log2(sd)))
        A = sigma * np.eye(S)
        with np.errstate(over="ignore", invalid="ignore"):
            mean_w = (mean - c0) / sigma
        if not np.all(np.isfinite(mean_w)):
            raise ValueError("mean: the means of the batch are too far apart, in units of "
                             "the standard deviation, for float64")
        cov_w = cov / sigma ** 2
    Cu, du, _ = unit_rows(C, d)
    if Cu is None:  # a zero row with d_j < 0: P is empty
        return Standardised(np.zeros((1, S)), np.full(1, -1.0), A, mean_w, cov_w, -np.inf)
    CA = Cu @ A
    n = row_norms(CA)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        Cw = CA / n[:, None]
        dw = (du - Cu @ c0) / n
    if not (np.all(np.isfinite(dw)) and np.all(np.isfinite(Cw))):
        raise ValueError("d, mean: d - C mean overflows float64 in units of the standard "
                         "deviation (mean, cov and d too far apart)")
    if Cw.shape[0] == 0:
        return Standardised(Cw, dw, A, mean_w, cov_w, -np.inf)
    sd_rows = np.sqrt(np.einsum("js,nst,jt->nj", Cw, cov_w, Cw))
    t = (dw[None] - mean_w @ Cw.T) / sd_rows                                   # (N, m)
    # every point of P is at least max_j(-t_j) standard deviations from the mean
    far = float(np.max(-t))
    keep, p = _rows_kept(Cw, dw, mean_w, cov_w, t)
    Cw, dw = Cw[keep], dw[keep]
    if p is not None and far >= DROP_SIGMAS:
        # P lies in a tail: its geometry is computed about a point of P, so that the
        # tolerances are relative to P's own size, not to its distance from the mean (a
        # box of width 1 at 1e12 sd); the translation is exact up to one rounding of d
        dw = dw - Cw @ p
        mean_w = mean_w - p
    return Standardised(Cw, dw, A, mean_w, cov_w, far)


def _rows_kept(C: NDArray[np.float64], d: NDArray[np.float64], mean: NDArray[np.float64],
               cov: NDArray[np.float64], t: NDArray[np.float64]
               ) -> tuple[NDArray[np.bool_], NDArray[np.float64] | None]:
    """Rows that may matter for some Gaussian of the batch (module docstring), and the
    point of P used to decide it (None if none was needed or found); t (N, m): the
    distances of the rows from the means in standard deviations."""
    keep = np.ones(C.shape[0], dtype=bool)
    if np.all(t < DROP_SIGMAS):
        return keep, None
    # clip where no row can be dropped anyway: beyond the farthest violated row, + 2 K
    lb = float(np.max(np.maximum(-t, 0.0)))
    p = point_near_origin(C, d - C @ mean[0], 2.0 * (lb + DROP_SIGMAS))
    if p is None:
        return keep, None
    p = p + mean[0]
    diff = p[None] - mean                                                     # (N, S)
    delta = np.sqrt(np.einsum("ns,ns->n", diff, np.linalg.solve(cov, diff[..., None])[..., 0]))
    # the 1e-9 covers the roundings of delta and t (far inside the slack of K)
    far = t >= (delta[:, None] + DROP_SIGMAS) * (1 + 1e-9)
    return ~np.all(far, axis=0), p


def point_near_origin(C: NDArray[np.float64], d: NDArray[np.float64], clip: float
                      ) -> NDArray[np.float64] | None:
    """A point of P = {x : C x <= d} (unit rows) near the origin, verified, or None.

    Used only as an upper bound on the distance from the origin to P, so it needs to be in
    P, not to be the nearest point. The LPs run on P_clip = P cut by c_j.x <= clip (a
    subset of P, so its points are points of P) scaled to unit size: a far row (d_j = 1e20)
    cannot then reach HiGHS's infinity or squeeze the rest of P below its tolerances.
    Candidates: the origin, the point of P_clip shrunk by half its inradius nearest to the
    origin in the max-norm, and P_clip's Chebyshev centre. A candidate is accepted when
    every computed slack d_j - C_j x exceeds the rounding error of computing it
    (16 eps (|d_j| + |x|), S <= 4 terms), so the true slacks are positive.
    """
    from scipy.optimize import linprog

    from ._polyhedron import _chebyshev_center

    m, S = C.shape
    if m == 0:
        return np.zeros(S)

    def inside(x: NDArray[np.float64]) -> bool:
        slack = d - C @ x
        return bool(np.all(slack > 16 * np.finfo(float).eps * (np.abs(d) + np.linalg.norm(x))))

    if inside(np.zeros(S)):
        return np.zeros(S)
    dc = np.minimum(d, clip)
    dmax = float(np.max(np.abs(dc)))
    L = 2.0 ** int(np.round(np.log2(dmax))) if dmax > 0 else 1.0
    y0, r = _chebyshev_center(C, dc / L)
    if not (np.isfinite(r) and r > 0):
        return None
    cands = [y0 * L]
    A = np.block([[C, np.zeros((m, 1))], [np.eye(S), -np.ones((S, 1))],
                  [-np.eye(S), -np.ones((S, 1))]])
    b = np.concatenate([dc / L - 0.5 * r, np.zeros(2 * S)])
    cost = np.zeros(S + 1)
    cost[-1] = 1.0
    res = linprog(cost, A_ub=A, b_ub=b, bounds=[(None, None)] * S + [(0.0, None)],
                  method="highs")
    if res.status == 0:
        cands.insert(0, res.x[:S] * L)
    ok = [x for x in cands if np.all(np.isfinite(x)) and inside(x)]
    if not ok:
        return None
    return min(ok, key=lambda x: float(np.linalg.norm(x)))
