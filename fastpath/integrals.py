"""Fast float64 Gaussian integrals over polyhedra: m0, m1, M2 and the truncated-normal moments.

For P = {z : C z <= d} in R^S (S = 1..4, bounded or not) and N(mean, cov)::

    m0 = int_P N(z; mean, cov) dz,   m1 = int_P z N dz,   M2 = int_P z z^T N dz.

Method (docs/DESIGN.md §2.4): the signed vertex-cone decomposition of P (Lawrence), one
S-dimensional orthant per vertex (per simplicial cone of a non-simple vertex), with the
direction of the decomposition chosen per Gaussian toward its mean, Tallis moments of the
orthants, and every signed sum combined in log space; see :mod:`fastpath._cones`. Bounded
P where that sum loses digits (a polytope small or thin compared with its distance from the
mean cancels: in an E-step 16-25% of the bounded pairs by more than e^3, up to e^17; and at
S >= 3 thin cones far out lose ~eps |log P| / det R in the orthants) and, at S >= 3, bounded
P where it is cheaper, are integrated instead by a cubature rule over a triangulation of P,
a sum of positive terms (:mod:`fastpath._simplex_cubature`, chosen by
:mod:`fastpath._cone_cubature`). Lines of a non-pointed P are integrated out analytically:
with B an orthonormal basis of the complement of the lineality space, y = B^T z carries all
constraints, and z | y is Gaussian with mean mean + K (y - B^T mean),
K = cov B (B^T cov B)^{-1}, and covariance cov - K B^T cov.

One call on one polyhedron and one Gaussian (float64 arrays C (m, S), d (m,), mean (S,),
cov (S, S)) takes a compiled lane (:mod:`fastpath._one_shot`): at S = 2 the whole call
in one kernel (:mod:`fastpath._jit_one_shot`), at S = 3 the checks, standardisation,
geometry and cone sum of a simple polytope (:mod:`fastpath._jit_one_shot3`); the lane
declines every case the steps below treat specially, which then run as described.

Public functions validate their inputs (covariances by the shared rule,
:func:`dgn_core.validation.check_covariance`); the module-level functions integrate in the
Gaussian's own units and drop rows too far away to matter (:mod:`fastpath._standardise`),
so they are invariant to rescaling and give huge bounds their limit. The geometry of a
polyhedron (float H->V, no pycddlib) is computed once per :class:`PolyhedronCones` and
reused for any number of Gaussians; :class:`ConeBatch` evaluates many polyhedra times many
Gaussians with a handful of vectorised passes (the E-step's layout: regions x points, one
covariance per region).

Accuracy (measured against verified_dgn.gaussian_moments, tests/test_integrals_cross.py):
log m0 to ~1e-14 where m0 >= 1e-20 (the cancelling and thin-cone E-step pairs: <= 4e-13,
limited by the float vertices of regions of size ~1e-3) and ~1e-12 down to m0 = 1e-300 and
beyond; the moments are ratios of log-space terms and carry a relative error ~eps |log m0|
(E[z|P]) and ~eps |log m0|^2 relative to the scale of cov (E[z z^T|P]) in the far tails.

Limitations: a vertex cone whose rows meet at a small angle theta in the metric of cov
loses ~eps/theta^2 (the orthant kernels take correlations; measured at S = 3 on large
bounded regions far from the mean, where the cubature is too costly: up to 3e-11 in log m0
and 1.2e-9 in the mean); P thinner than ~1e-12 of its scale is treated as having no
interior; unbounded P get no cubature (measured: their cone sums cancel by at most e^3.5 in
E-steps), nor do bounded P whose cubature would need more than 1024 simplices; where the
signed sum of such a P cancels completely a RuntimeWarning flags a point-mass limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._cones import ConeTable
from ._integral_checks import _as_finite, _check_cov, _check_gaussians, _check_halfspaces
from ._one_shot import cones_s3, one_shot, standardised_geometry
from ._polyhedron import GeometryError, PolyhedronGeometry, polyhedron_geometry
from ._standardise import MAX_SIGMAS, standardise
from ._threads import serial_below

__all__ = [
    "gaussian_moments",
    "log_gaussian_mass",
    "truncated_normal_moments",
    "PolyhedronCones",
    "ConeBatch",
    "GeometryError",
]

#: (pair, cone) elements per pass of ConeBatch.truncated_moments_pairs
_PAIRS_CHUNK = 65536


# --------------------------------------------------------------------------- groups
def _bound_group(geoms: Sequence[PolyhedronGeometry], table: ConeTable | None,
                 mean: NDArray[np.float64], cov: NDArray[np.float64]) -> NDArray[np.float64]:
    """log Phi(-Mahalanobis distance from the mean to P) (N, n) for a group (upper bound)."""
    N, n, S = mean.shape
    g0 = geoms[0]
    if g0.empty:
        return np.full((N, n), -np.inf)
    if g0.dim == 0:
        return np.zeros((N, n))
    assert table is not None
    if g0.dim == S:
        return table.log_mass_bound(mean, np.linalg.cholesky(cov))
    B = np.array([g.basis for g in geoms])
    mean_y = np.einsum("nSs,NnS->Nns", B, mean)
    cov_y = np.swapaxes(B, -1, -2)[None] @ cov @ B[None]
    return table.log_mass_bound(mean_y, np.linalg.cholesky(0.5 * (cov_y + np.swapaxes(cov_y, -1, -2))))


def _evaluate_group(geoms: Sequence[PolyhedronGeometry], table: ConeTable | None,
                    mean: NDArray[np.float64], cov: NDArray[np.float64], moments: bool
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64] | None,
                               NDArray[np.float64] | None]:
    """log m0 (N, n), E[z|P] - mean (N, n, S), Cov[z|P] (N, n, S, S) for a group.

    All polyhedra of the group share the reduced dimension s and whether they are pointed;
    mean (N, n, S), cov (Nc, n, S, S).
    """
    N, n, S = mean.shape
    s = geoms[0].dim
    if geoms[0].empty:
        lm = np.full((N, n), -np.inf)
        return lm, (np.zeros((N, n, S)) if moments else None), \
            (np.zeros((N, n, S, S)) if moments else None)
    if s == 0:  # the whole space
        lm = np.zeros((N, n))
        if not moments:
            return lm, None, None
        return lm, np.zeros((N, n, S)), np.broadcast_to(cov, (N, n, S, S)).copy()
    pointed = s == S
    if pointed:
        chol = np.linalg.cholesky(cov)
        assert table is not None
        log_m0, dm, tcov, _ = table.evaluate(mean, chol, moments)
        return log_m0, dm, tcov
    B = np.array([g.basis for g in geoms])                                  # (n, S, s)
    mean_y = np.einsum("nSs,NnS->Nns", B, mean)
    cov_y = np.swapaxes(B, -1, -2)[None] @ cov @ B[None]
    cov_y = 0.5 * (cov_y + np.swapaxes(cov_y, -1, -2))
    assert table is not None
    log_m0, dm_y, tcov_y, _ = table.evaluate(mean_y, np.linalg.cholesky(cov_y), moments)
    if not moments:
        return log_m0, None, None
    assert dm_y is not None and tcov_y is not None
    # z | y ~ N(mean + K (y - B^T mean), cov - K B^T cov), K = cov B cov_y^{-1}
    CB = cov @ B[None]                                                      # (Nc, n, S, s)
    K = np.swapaxes(np.linalg.solve(cov_y, np.swapaxes(CB, -1, -2)), -1, -2)
    dm = (K @ dm_y[..., None])[..., 0]
    cond = cov - K @ np.swapaxes(CB, -1, -2)
    # total covariance: E[Cov[z | y]] + Cov[E[z | y]] with E[z | y] affine in y
    tcov = cond + K @ tcov_y @ np.swapaxes(K, -1, -2)
    return log_m0, dm, 0.5 * (tcov + np.swapaxes(tcov, -1, -2))


def _group_key(g: PolyhedronGeometry) -> tuple[Any, ...]:
    if g.empty:
        return ("empty",)
    return (g.dim, g.dim == g.ambient_dim)


# --------------------------------------------------------------------------- public classes
class PolyhedronCones:
    """Precomputed vertex-cone decomposition of one polyhedron P = {z : C z <= d}, S <= 4.

    Build it once (``from_halfspaces`` or ``from_region``) and evaluate it for any number of
    Gaussians; all methods broadcast ``mean`` (..., S) against ``cov`` (..., S, S).

    Attributes
    ----------
    geometry : PolyhedronGeometry
        Vertices, edges, tangent-cone triangulation, lineality space.
    """

    def __init__(self, geometry: PolyhedronGeometry) -> None:
        self.geometry = geometry

    @cached_property
    def _table(self) -> ConeTable | None:
        """The one-polyhedron cone table, built on first use (a partition's ConeBatch
        evaluates its groups' tables and seldom this one)."""
        g = self.geometry
        return ConeTable.from_geometries([g]) if (not g.empty and g.dim >= 1) else None

    @classmethod
    def from_halfspaces(cls, C: ArrayLike, d: ArrayLike) -> PolyhedronCones:
        """Decomposition of {z : C z <= d}; C (m, S), d (m,). Redundant rows are fine."""
        C, d = _check_halfspaces(C, d)
        return cls(polyhedron_geometry(C, d))

    @classmethod
    def from_region(cls, region: Any) -> PolyhedronCones:
        """Decomposition of a partition region (its non-redundant facets and interior point)."""
        from ._geometry_batch import region_rows

        C, d, ip = region_rows(region)
        return cls(polyhedron_geometry(C, d, interior_point=ip, prune=False))

    # ------------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Ambient dimension S."""
        return self.geometry.ambient_dim

    @property
    def empty(self) -> bool:
        """P is empty or has no interior (all integrals are 0)."""
        return self.geometry.empty

    @property
    def n_cones(self) -> int:
        """Number of signed orthants per Gaussian (vertices; more for non-simple vertices)."""
        return self.geometry.n_pieces

    def __repr__(self) -> str:
        g = self.geometry
        if g.empty:
            return f"PolyhedronCones(empty, S={g.ambient_dim})"
        return (f"PolyhedronCones(S={g.ambient_dim}, {len(g.vertices)} vertices, "
                f"{len(g.rays)} rays, {g.ambient_dim - g.dim} lines, {g.n_pieces} cones)")

    # ------------------------------------------------------------------ evaluation
    def _run(self, mean: ArrayLike, cov: ArrayLike, moments: bool):
        S = self.dim
        mean_b, cov_b, batch = _check_gaussians(mean, cov, S)
        lm, dm, tcov = _evaluate_group([self.geometry], self._table, mean_b[:, None],
                                     cov_b[:, None], moments)
        return mean_b, cov_b, batch, lm[:, 0], (None if dm is None else dm[:, 0]), \
            (None if tcov is None else tcov[:, 0])

    def log_mass(self, mean: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
        """log m0 = log P(Z in P), Z ~ N(mean, cov); shape (...). -inf only for empty P."""
        _, _, batch, lm, _, _ = self._run(mean, cov, moments=False)
        return lm.reshape(batch)

    def truncated_moments(self, mean: ArrayLike, cov: ArrayLike
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(log m0 (...), E[z | z in P] (..., S), E[z z^T | z in P] (..., S, S)).

        Scaled form: accurate where m0 underflows. Empty P: (-inf, 0, 0).
        """
        mean_b, _, batch, lm, dm, tcov = self._run(mean, cov, moments=True)
        mP, M2P = _finish(mean_b, lm, dm, tcov)
        S = self.dim
        return lm.reshape(batch), mP.reshape(batch + (S,)), M2P.reshape(batch + (S, S))

    def truncated_central_moments(self, mean: ArrayLike, cov: ArrayLike
                                  ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                             NDArray[np.float64]]:
        """(log m0 (...), E[z | z in P] - mean (..., S), E[(z - mean)(z - mean)^T | z in P] (..., S, S)).

        Moments about the Gaussian's own mean, as the kernel computes them: unlike
        ``E[z z^T | P] - E[z|P] E[z|P]^T`` they do not cancel against ``|mean|^2`` (use them
        for truncated covariances far from the origin). Empty P: (-inf, 0, 0).
        """
        _, _, batch, lm, dm, tcov = self._run(mean, cov, moments=True)
        S = self.dim
        C2 = tcov + dm[..., :, None] * dm[..., None, :]
        return lm.reshape(batch), dm.reshape(batch + (S,)), C2.reshape(batch + (S, S))

    def truncated_mean_cov(self, mean: ArrayLike, cov: ArrayLike
                           ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                      NDArray[np.float64]]:
        """(log m0 (...), E[z | z in P] - mean (..., S), Cov[z | z in P] (..., S, S)).

        The truncated distribution's own covariance, computed without forming
        ``E[(z - mean)(z - mean)^T | P] - (E[z|P] - mean)(...)^T``: far in a tail that
        difference cancels (the variance ~1/d^2 of a Gaussian whose mean is d standard
        deviations away). S = 1: series or quadrature about the nearer end of the interval;
        S = 2, 3 with the mean at least ``fastpath._cone_tail.TAIL_DISTANCE`` (8) whitened
        units from P: slices about the nearest point of P (:mod:`fastpath._cone_tail`;
        measured against mpmath on boxes and cones at d = 10..1e6: the covariance within
        3e-12 of itself, i.e. on the scale of its own smallest eigenvalue, where the cone
        sum was off by 1e-5 at d = 100 and by orders of magnitude beyond d ~ 1e3; the mean
        within ~eps d whitened units, the rounding of the inputs); closer in,
        the cone sum (within ~1e-10 of itself there). S = 4 far in a tail keeps the cone
        sum's error, ~eps d^4 relative to the covariance.
        Empty P: (-inf, 0, 0).
        """
        _, _, batch, lm, dm, tcov = self._run(mean, cov, moments=True)
        S = self.dim
        return lm.reshape(batch), dm.reshape(batch + (S,)), tcov.reshape(batch + (S, S))

    def moments(self, mean: ArrayLike, cov: ArrayLike
                ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(m0 (...), m1 (..., S), M2 (..., S, S)): the Gaussian integrals of 1, z, z z^T over P."""
        lm, mP, M2P = self.truncated_moments(mean, cov)
        m0 = np.exp(lm)
        return m0, m0[..., None] * mP, m0[..., None, None] * M2P


def _finish(mean: NDArray[np.float64], lm: NDArray[np.float64], dm: NDArray[np.float64],
            tcov: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """E[z|P] and E[z z^T|P] from E[z|P] - mean and Cov[z|P]; zeros where P is empty."""
    mP = mean + dm
    M2P = tcov + mP[..., :, None] * mP[..., None, :]
    empty = ~np.isfinite(lm) & (lm < 0)
    if np.any(empty):
        mP = np.where(empty[..., None], 0.0, mP)
        M2P = np.where(empty[..., None, None], 0.0, M2P)
    return mP, M2P


class ConeBatch:
    """Many precomputed polyhedra evaluated together (the E-step's regions x points layout).

    Polyhedra are grouped by reduced dimension (pointed / with lines / empty / whole space)
    and each group is evaluated in one vectorised pass over all its cones and Gaussians.

    Parameters
    ----------
    cones : sequence of PolyhedronCones
        R polyhedra of one ambient dimension S.
    """

    def __init__(self, cones: Sequence[PolyhedronCones]) -> None:
        cones = list(cones)
        if not cones:
            raise ValueError("ConeBatch needs at least one polyhedron")
        if any(not isinstance(c, PolyhedronCones) for c in cones):
            raise TypeError("ConeBatch takes PolyhedronCones objects")
        S = {c.dim for c in cones}
        if len(S) != 1:
            raise ValueError(f"all polyhedra must have one dimension, got {sorted(S)}")
        self.dim = S.pop()
        self.cones = cones
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, c in enumerate(cones):
            groups.setdefault(_group_key(c.geometry), []).append(i)
        self._groups = []
        for key, idx in groups.items():
            geoms = [cones[i].geometry for i in idx]
            table = (ConeTable.from_geometries(geoms)
                     if key[0] != "empty" and key[0] >= 1 else None)
            self._groups.append((np.asarray(idx, dtype=np.intp), geoms, table))

    @classmethod
    def from_partition(cls, partition: Sequence[Any]) -> ConeBatch:
        """Batch of all regions of a partition (``PolyhedronCones.from_region`` for each;
        at S = 2 the geometries of the simple polygons in one compiled call,
        :mod:`fastpath._geometry_batch`)."""
        from ._geometry_batch import partition_rows, region_geometries

        return cls([PolyhedronCones(g) for g in region_geometries(partition_rows(partition))])

    def __len__(self) -> int:
        return len(self.cones)

    def _run(self, mean: ArrayLike, cov: ArrayLike, moments: bool):
        R, S = len(self.cones), self.dim
        mean_b, cov_b, batch = _check_gaussians(mean, cov, S, tail=(R,))
        N = mean_b.shape[0]
        if len(self._groups) == 1:  # every region in one group, in order: no gathering
            _, geoms, table = self._groups[0]
            a, b, c = _evaluate_group(geoms, table, mean_b, cov_b, moments)
            return mean_b, batch, a, b, c
        lm = np.empty((N, R))
        dm = np.empty((N, R, S)) if moments else None
        tcov = np.empty((N, R, S, S)) if moments else None
        for idx, geoms, table in self._groups:
            a, b, c = _evaluate_group(geoms, table, mean_b[:, idx], cov_b[:, idx], moments)
            lm[:, idx] = a
            if moments:
                assert dm is not None and tcov is not None
                dm[:, idx] = b
                tcov[:, idx] = c
        return mean_b, batch, lm, dm, tcov

    def truncated_moments_pairs(self, region_index: ArrayLike, mean: ArrayLike, cov: ArrayLike
                                ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                           NDArray[np.float64]]:
        """Truncated moments for a sparse list of (Gaussian, region) pairs.

        The E-step's layout after pruning with :meth:`log_mass_bound`: only the pairs that
        matter, in one vectorised pass per group of regions.

        Parameters
        ----------
        region_index : array_like of int, shape (P,)
            The region of each pair (0 <= index < R).
        mean : array_like, shape (P, S)
        cov : array_like, shape (P, S, S)
            The Gaussian of each pair (e.g. ``Sigma_r[region_index]``).

        Returns
        -------
        log_m0 : ndarray, shape (P,)
        mean_P : ndarray, shape (P, S)
        second_P : ndarray, shape (P, S, S)
            As :meth:`truncated_moments`, pair by pair.
        """
        R, S = len(self.cones), self.dim
        ri = np.asarray(region_index)
        if ri.ndim != 1 or not np.issubdtype(ri.dtype, np.integer):
            raise ValueError(f"region_index must be a 1-D integer array, got {ri.dtype} {ri.shape}")
        if ri.size and (ri.min() < 0 or ri.max() >= R):
            raise ValueError(f"region_index must lie in [0, {R}), got [{ri.min()}, {ri.max()}]")
        mean_b = _as_finite(mean, "mean")
        cov_b = _as_finite(cov, "cov")
        Pn = ri.shape[0]
        if mean_b.shape != (Pn, S):
            raise ValueError(f"mean must have shape ({Pn}, {S}), got {mean_b.shape}")
        if cov_b.shape != (Pn, S, S):
            raise ValueError(f"cov must have shape ({Pn}, {S}, {S}), got {cov_b.shape}")
        cov_b = _check_cov(cov_b, S)
        lm, dm, tcov = self._mean_cov_pairs(ri, mean_b, cov_b)
        mP, M2P = _finish(mean_b, lm, dm, tcov)
        return lm, mP, M2P

    def _mean_cov_pairs(self, ri: NDArray[np.intp], mean_b: NDArray[np.float64],
                        cov_b: NDArray[np.float64]
                        ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                   NDArray[np.float64]]:
        """(log m0 (P,), E[z|P_r] - mean (P, S), Cov[z|P_r] (P, S, S)) of valid pairs
        (:meth:`truncated_moments_pairs` without the checks)."""
        R, S = len(self.cones), self.dim
        Pn = ri.shape[0]
        lm = np.empty(Pn)
        dm = np.empty((Pn, S))
        tcov = np.empty((Pn, S, S))
        lut = np.full(R, -1, dtype=np.intp)
        for idx, geoms, table in self._groups:
            lut[idx] = np.arange(len(idx))
            sel = np.flatnonzero(lut[ri] >= 0) if len(idx) < R else np.arange(Pn)
            lut[idx] = -1
            if sel.size == 0:
                continue
            loc = np.searchsorted(idx, ri[sel])          # idx is sorted (built in order)
            pieces = 1 if table is None else max(1, table.n_pieces // table.n_poly)
            step = max(1, _PAIRS_CHUNK // pieces)
            for a in range(0, sel.size, step):
                c = sel[a:a + step]
                lc = loc[a:a + step]
                sub = None if table is None else table.take(lc)
                g = [geoms[j] for j in lc]
                x, y, z = _evaluate_group(g, sub, mean_b[c][None], cov_b[c][None], True)
                assert y is not None and z is not None
                lm[c], dm[c], tcov[c] = x[0], y[0], z[0]
        return lm, dm, tcov

    def log_mass_bound(self, mean: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
        """Cheap upper bound of log P(Z in P_r): log Phi(-d), d the Mahalanobis distance
        from the mean to P_r (0 inside P_r, -inf for an empty P_r); shape (..., R).

        No orthant is evaluated (only the nearest point), so an E-step can bound every
        (point, region) pair first and compute the moments only where they matter: the
        true log m0 is below the bound by about (S - 1) log d plus geometry terms.
        """
        R, S = len(self.cones), self.dim
        mean_b, cov_b, batch = _check_gaussians(mean, cov, S, tail=(R,))
        if len(self._groups) == 1:
            _, geoms, table = self._groups[0]
            return _bound_group(geoms, table, mean_b, cov_b).reshape(batch + (R,))
        out = np.empty((mean_b.shape[0], R))
        for idx, geoms, table in self._groups:
            out[:, idx] = _bound_group(geoms, table, mean_b[:, idx], cov_b[:, idx])
        return out.reshape(batch + (R,))

    def log_mass(self, mean: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
        """log P(Z in P_r) for mean (..., R, S), cov (..., R, S, S); shape (..., R)."""
        _, batch, lm, _, _ = self._run(mean, cov, moments=False)
        return lm.reshape(batch + (len(self.cones),))

    def truncated_moments(self, mean: ArrayLike, cov: ArrayLike
                          ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """(log m0 (..., R), E[z|P_r] (..., R, S), E[z z^T|P_r] (..., R, S, S)).

        ``mean`` (..., R, S): one Gaussian per (point, region); ``cov`` (..., R, S, S), e.g.
        (R, S, S) for one covariance per region shared by all points.
        """
        mean_b, batch, lm, dm, tcov = self._run(mean, cov, moments=True)
        mP, M2P = _finish(mean_b, lm, dm, tcov)
        R, S = len(self.cones), self.dim
        return (lm.reshape(batch + (R,)), mP.reshape(batch + (R, S)),
                M2P.reshape(batch + (R, S, S)))

    def truncated_central_moments(self, mean: ArrayLike, cov: ArrayLike
                                  ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                             NDArray[np.float64]]:
        """(log m0 (..., R), E[z|P_r] - mean (..., R, S), E[(z - mean)(z - mean)^T | P_r] (..., R, S, S)).

        Moments about each Gaussian's own mean (no cancellation against ``|mean|^2``; see
        :meth:`PolyhedronCones.truncated_central_moments`). Shapes as in
        :meth:`truncated_moments`.
        """
        _, batch, lm, dm, tcov = self._run(mean, cov, moments=True)
        R, S = len(self.cones), self.dim
        C2 = tcov + dm[..., :, None] * dm[..., None, :]
        return (lm.reshape(batch + (R,)), dm.reshape(batch + (R, S)),
                C2.reshape(batch + (R, S, S)))

    def truncated_mean_cov(self, mean: ArrayLike, cov: ArrayLike
                           ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                      NDArray[np.float64]]:
        """(log m0 (..., R), E[z|P_r] - mean (..., R, S), Cov[z | z in P_r] (..., R, S, S)).

        See :meth:`PolyhedronCones.truncated_mean_cov`. Shapes as in
        :meth:`truncated_moments`.
        """
        _, batch, lm, dm, tcov = self._run(mean, cov, moments=True)
        R, S = len(self.cones), self.dim
        return (lm.reshape(batch + (R,)), dm.reshape(batch + (R, S)),
                tcov.reshape(batch + (R, S, S)))


# --------------------------------------------------------------------------- standardisation
def _standardised(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike, moments: bool
                  ) -> tuple[NDArray[np.float64], tuple[int, ...], NDArray[np.float64],
                             NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """(mean (N, S), batch, log m0 (N,), E[z|P] - mean (N, S), Cov[z|P] (N, S, S)).

    Computed in the standardised coordinates w = A^{-1} (z - c) of
    :func:`fastpath._standardise.standardise` (far rows dropped there) and mapped back:
    log m0 is unchanged, E[z|P] - mean = A (E[w|P] - mean_w), Cov[z|P] = A Cov[w|P] A^T.
    """
    lane = standardised_geometry(C, d, mean, cov)       # S = 3, one call: compiled
    batch: tuple[int, ...] = ()
    got = None
    if lane is not None:
        st, geometry = lane
        mean_b = np.asarray(mean, dtype=np.float64)[None]
        got = cones_s3(geometry, moments)
    else:
        C, d = _check_halfspaces(C, d)
        mean_b, cov_b, batch = _check_gaussians(mean, cov, C.shape[1])
        st = standardise(C, d, mean_b, cov_b)
        geometry = polyhedron_geometry(st.C, st.d)
    dm_w: NDArray[np.float64] | None
    tcov_w: NDArray[np.float64] | None
    if got is not None:
        lm, dm_w, tcov_w = got[0][:, None], got[1][:, None], got[2][:, None]
    else:
        cones = PolyhedronCones(geometry)
        if st.far > MAX_SIGMAS and not cones.empty:
            raise ValueError(f"d: the polyhedron lies {st.far:.3g} standard deviations from "
                             "the mean; its log mass (about -0.5 * that squared) is beyond "
                             "float64")
        # one Gaussian: a handful of orthants, so the compiled kernels run on this thread
        # (waking a thread pool costs more than the work; results do not depend on the
        # count)
        with serial_below(mean_b.shape[0], 2):
            lm, dm_w, tcov_w = _evaluate_group([cones.geometry], cones._table,
                                               st.mean[:, None], st.cov[:, None], moments)
    if not moments:
        return mean_b, batch, lm[:, 0], None, None
    assert dm_w is not None and tcov_w is not None
    A = st.A
    dm = dm_w[:, 0] @ A.T
    tcov = A @ tcov_w[:, 0] @ A.T
    return mean_b, batch, lm[:, 0], dm, 0.5 * (tcov + np.swapaxes(tcov, -1, -2))


# --------------------------------------------------------------------------- functions
def truncated_normal_moments(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike
                             ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Log mass and moments of N(mean, cov) truncated to P = {z : C z <= d}.

    Parameters
    ----------
    C : array_like, shape (m, S)
    d : array_like, shape (m,)
        The polyhedron, S = 1..4; bounded or not, redundant rows allowed.
    mean : array_like, shape (..., S)
    cov : array_like, shape (..., S, S)
        Broadcast together over the leading axes; symmetric positive definite.

    Returns
    -------
    log_m0 : ndarray, shape (...)
        log P(Z in P); -inf only when P is empty or has no interior.
    mean_P : ndarray, shape (..., S)
        E[Z | Z in P] (zeros for an empty P).
    second_P : ndarray, shape (..., S, S)
        E[Z Z^T | Z in P] (zeros for an empty P).

    Both moments are computed in scaled form and stay accurate where m0 underflows.
    The computation is standardised (:mod:`fastpath._standardise`): the results are invariant
    to rescaling z -> s z (mean -> s mean, cov -> s^2 cov, d -> s d), and rows farther
    than 20 standard deviations beyond the polyhedron are dropped (their effect is below
    1e-78 relative), so huge finite bounds give their limit.

    Raises
    ------
    ValueError
        Bad shapes, NaN / infinite entries, a bad covariance; d - C mean, in units of the
        standard deviation, or E[Z Z^T | P] not representable in float64.
    """
    lane = one_shot(C, d, mean, cov, True)
    if lane is not None:
        return lane[:1].reshape(()), lane[1:3], lane[3:7].reshape(2, 2)
    mean_b, batch, lm, dm, tcov = _standardised(C, d, mean, cov, True)
    assert dm is not None and tcov is not None
    with np.errstate(over="ignore", invalid="ignore"):
        mP, M2P = _finish(mean_b, lm, dm, tcov)
    if not (np.all(np.isfinite(mP)) and np.all(np.isfinite(M2P))):
        raise ValueError("mean, cov: E[Z Z^T | P] overflows float64 (entries beyond 1e308)")
    S = mean_b.shape[-1]
    return lm.reshape(batch), mP.reshape(batch + (S,)), M2P.reshape(batch + (S, S))


def log_gaussian_mass(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike
                      ) -> NDArray[np.float64]:
    """log int_P N(z; mean, cov) dz for P = {z : C z <= d}; shape (...).

    Accurate where the mass underflows double precision; -inf only for an empty P (or one
    without interior). Shapes, scale invariance and huge bounds as in
    :func:`truncated_normal_moments`.
    """
    lane = one_shot(C, d, mean, cov, False)
    if lane is not None:
        return lane[:1].reshape(())
    _, batch, lm, _, _ = _standardised(C, d, mean, cov, False)
    return lm.reshape(batch)


def gaussian_moments(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Gaussian integrals of 1, z, z z^T over P = {z : C z <= d}.

    Parameters
    ----------
    C : array_like, shape (m, S)
    d : array_like, shape (m,)
        The polyhedron, S = 1..4; bounded or unbounded, redundant / duplicate rows allowed.
    mean : array_like, shape (..., S)
    cov : array_like, shape (..., S, S)
        Broadcast together over the leading axes (one polyhedron, many Gaussians).

    Returns
    -------
    m0 : ndarray, shape (...)
    m1 : ndarray, shape (..., S)
    M2 : ndarray, shape (..., S, S)
        Zeros when P is empty or has no interior. Use :func:`log_gaussian_mass` or
        :func:`truncated_normal_moments` where m0 underflows. Scale invariance and huge
        bounds as in :func:`truncated_normal_moments`.
    """
    lane = one_shot(C, d, mean, cov, True)
    if lane is not None:
        return lane[7], lane[8:10], lane[10:14].reshape(2, 2)
    lm, mP, M2P = truncated_normal_moments(C, d, mean, cov)
    m0 = np.exp(lm)
    return m0, m0[..., None] * mP, m0[..., None, None] * M2P
