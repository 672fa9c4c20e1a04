"""The exact KL divergence between a Gaussian q(z|x) and the true posterior p(z|x) of a DGN.

For a Gaussian q = N(m, V) (an encoder's output, say) and a DGN with z ~ N(0, Sigma_z),
x | z ~ N(g(z), Sigma_x)::

    KL(q || p(z|x)) = E_q[log q(z)] - E_q[log p(x|z) + log p(z)] + log p(x)
                    = KL(q || p(z)) - E_q[log p(x|z)] + log p(x).

* KL(q || p(z)) between two Gaussians is the textbook closed form
  (tr(Sigma_z^-1 V) + m^T Sigma_z^-1 m - S + log det Sigma_z - log det V) / 2.
* log p(x) is Theorem 1's exact marginal (:func:`fastpath.log_marginal`).
* On region w the generator is affine, g(z) = A_w z + b_w, so log p(x|z) is a quadratic in z
  and its expectation under q restricted to w needs only q's truncated moments there: with
  m0_w = P_q(z in w), mu_w = E_q[z | w] and C_w = Cov_q[z | w] (signed vertex-cone integrals,
  :class:`fastpath.integrals.ConeBatch`), s = sqrt(diag Sigma_x)::

      E_q[log p(x|z)] = -(D log 2 pi + log det Sigma_x) / 2
                        - 1/2 sum_w m0_w ( ||(x - b_w - A_w mu_w) / s||^2 + tr(B_w C_w B_w^T) ),

  B_w = diag(1/s) A_w, a sum of non-negative terms (residual form: no cancellation however
  small the noise). The m0_w sum to 1 (the regions tile the latent space); a partition
  that misses mass (sum below 1 - 1e-6) raises an error rather than give a wrong KL.

Accuracy: the KL is a difference of terms of the size of |log p(x)|, so its absolute error
is that of log p(x) (about 1e-13 |log p(x)| in typical cases; see
:mod:`fastpath._estep`) plus rounding of the same relative size; the truncated
moments contribute a relative ~1e-13. A KL far below that level is rounding noise around
0 (the returned value can then be slightly negative).

Pruning (S >= 2; ``prune=True``, the default, is a margin of 60 nats): pairs (point,
region) whose q-mass is certified below exp(-margin) by :meth:`ConeBatch.log_mass_bound` (a
Mahalanobis-distance bound) are skipped; each skipped pair would contribute m0_w times a
quadratic that grows only polynomially with the distance, far below rounding for a margin
of 60. The same margin prunes log p(x) (:func:`fastpath.log_marginal`). ``prune=False`` or
``None`` evaluates every pair.

The per-region maps (A_w, b_w) and the regions' cone decompositions come from
:mod:`fastpath._region_maps`, shared with the posterior (one cache per partition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data import check_data
from dgn_core.model import DGN
from dgn_core.regions import Partition
from dgn_core.validation import check_covariance, real_array

from ._checks import _check_chunk_size, _check_net, _check_partition, _check_prune
from ._region_maps import affine_maps, cone_batch
from .distributions import log_marginal
from .integrals import ConeBatch

__all__ = ["KLTerms", "gaussian_kl_to_prior", "kl_to_posterior"]

Arr = NDArray[np.float64]

_LOG_2PI = math.log(2.0 * math.pi)
#: the q-masses of the regions must sum to 1 within this (else the partition is incomplete)
_MASS_TOL = 1e-6
#: floats of (pairs, D) residuals per block
_BLOCK_FLOATS = 1 << 21


# =========================================================================== validation
def _as_finite(a: ArrayLike, name: str) -> Arr:
    arr = real_array(a, name)
    if not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinite"
        rows = np.flatnonzero(~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)) \
            if arr.ndim else np.array([0])
        raise ValueError(f"{name} contains {bad} values (first at row {int(rows[0])})")
    return arr


def _check_q(q_mean: ArrayLike, q_cov: ArrayLike, N: int, S: int) -> tuple[Arr, Arr, Arr]:
    """q means (N, S), full covariances (N, S, S) and their Cholesky factors (N, S, S)."""
    m = _as_finite(q_mean, "q_mean")
    if m.ndim == 1 and S == 1 and m.shape[0] == N:
        m = m[:, None]
    if m.shape != (N, S):
        raise ValueError(f"q_mean must have shape ({N}, {S}) (one mean per data point), "
                         f"got {m.shape}")
    V = _as_finite(q_cov, "q_cov")
    if V.ndim == 1 and S == 1 and V.shape[0] == N:
        V = V[:, None]
    if V.ndim == 2:
        if V.shape != (N, S):
            raise ValueError(f"a diagonal q_cov must have shape ({N}, {S}) (variances), "
                             f"got {V.shape}")
        if np.any(V <= 0):
            i = int(np.flatnonzero((V <= 0).any(axis=1))[0])
            raise ValueError(f"q_cov holds variances that are not positive (first at row {i}: "
                             f"{V[i]})")
        V = V[:, :, None] * np.eye(S)
    elif V.ndim != 3 or V.shape != (N, S, S):
        raise ValueError(f"q_cov must have shape ({N}, {S}, {S}) (full) or ({N}, {S}) "
                         f"(diagonal), got {V.shape}")
    # the one covariance rule (dgn_core.validation); on failure, name the first bad row
    try:
        cov = check_covariance(V, S, "q_cov")
    except ValueError:
        for i in range(N):
            check_covariance(V[i], S, f"q_cov[{i}]")
        raise
    chol: Arr = np.asarray(np.linalg.cholesky(cov), dtype=np.float64)
    return m, cov, chol


# =========================================================================== kernels
def gaussian_kl_to_prior(q_mean: Arr, q_cov: Arr, q_chol: Arr, prior_cov: Arr) -> Arr:
    """KL(N(m, V) || N(0, Sigma_z)) for every row: m (N, S), V and its Cholesky (N, S, S).

    (tr(Sigma_z^-1 V) + m^T Sigma_z^-1 m - S + log det Sigma_z - log det V) / 2, shape (N,).
    """
    S = q_mean.shape[1]
    Lp = np.linalg.cholesky(prior_cov)
    # Lp^-1 L_q: tr(Sigma^-1 V) = ||Lp^-1 L_q||_F^2, no explicit inverse
    Y = np.linalg.solve(Lp, q_chol)                                        # (N, S, S)
    y = np.linalg.solve(Lp, q_mean.T).T                                    # (N, S)
    logdet_p = 2.0 * float(np.sum(np.log(np.diag(Lp))))
    logdet_q = 2.0 * np.sum(np.log(np.diagonal(q_chol, axis1=1, axis2=2)), axis=1)
    return 0.5 * (np.sum(Y * Y, axis=(1, 2)) + np.sum(y * y, axis=1) - S
                  + logdet_p - logdet_q)


def _expected_quadratic(cones: ConeBatch, A: Arr, b: Arr, inv_s: Arr, X: Arr, m: Arr,
                        cov: Arr, prune: float | None) -> tuple[Arr, Arr]:
    """sum_w m0_w E_q[||(x - A_w z - b_w)/s||^2 | w] (n,) and sum_w m0_w (n,) for a chunk."""
    n, S = m.shape
    R, D, _ = A.shape
    B = A * inv_s[None, :, None]                                           # (R, D, S)
    BtB = np.swapaxes(B, 1, 2) @ B                                         # (R, S, S)
    Xt = X * inv_s
    bt = b * inv_s
    if prune is None or S == 1 or R == 1:
        mean = np.broadcast_to(m[:, None, :], (n, R, S))
        cv = np.broadcast_to(cov[:, None], (n, R, S, S))
        lm, dm, Cw = cones.truncated_mean_cov(mean, cv)
        live = np.ones((n, R), dtype=bool)
    else:
        mean = np.broadcast_to(m[:, None, :], (n, R, S))
        cv = np.broadcast_to(cov[:, None], (n, R, S, S))
        bound = cones.log_mass_bound(mean, cv)                              # (n, R)
        live = bound >= -prune
        lm = np.full((n, R), -np.inf)
        dm = np.zeros((n, R, S))
        Cw = np.zeros((n, R, S, S))
        for w in np.flatnonzero(live.any(axis=0)):
            rows = np.flatnonzero(live[:, w])
            a, d1, c2 = cones.cones[w].truncated_mean_cov(m[rows], cov[rows])
            lm[rows, w], dm[rows, w], Cw[rows, w] = a, d1, c2
    m0 = np.exp(lm)                                                        # (n, R)
    mu = m[:, None, :] + dm                                                # E_q[z | w]
    # Cw: Cov_q[z | w]
    trace = np.einsum("rij,nrij->nr", BtB, Cw)
    resid2 = np.zeros((n, R))
    nn, ww = np.nonzero(live & (m0 > 0))
    step = max(1, _BLOCK_FLOATS // max(1, D))
    for start in range(0, nn.size, step):
        ii, wi = nn[start:start + step], ww[start:start + step]
        E = Xt[ii] - bt[wi] - np.einsum("kds,ks->kd", B[wi], mu[ii, wi])   # (k, D)
        resid2[ii, wi] = np.einsum("kd,kd->k", E, E)
    quad = np.where(m0 > 0, resid2 + trace, 0.0)
    return np.sum(m0 * quad, axis=1), np.sum(m0, axis=1)


# =========================================================================== public API
@dataclass(frozen=True, eq=False)
class KLTerms:
    """The terms of KL(q || p(z|x)) = kl_prior - expected_log_lik + log_px, per point.

    Attributes
    ----------
    kl : ndarray, shape (N,)
        KL(q(z|x) || p(z|x)).
    log_px : ndarray, shape (N,)
        The exact log p(x).
    expected_log_lik : ndarray, shape (N,)
        E_q[log p(x|z)].
    kl_prior : ndarray, shape (N,)
        KL(q(z|x) || p(z)).
    q_mass : ndarray, shape (N,)
        sum over the regions of P_q(z in w) (1 up to rounding: the regions tile R^S).
    """

    kl: Arr
    log_px: Arr
    expected_log_lik: Arr
    kl_prior: Arr
    q_mass: Arr

    @property
    def elbo(self) -> Arr:
        """The exact evidence lower bound of q, E_q[log p(x|z)] - KL(q || p(z)), (N,).

        Equal to log_px - kl: the gap between log p(x) and the ELBO is the KL.
        """
        return self.expected_log_lik - self.kl_prior


def kl_to_posterior(net: DGN, X: ArrayLike, q_mean: ArrayLike, q_cov: ArrayLike, *,
                    partition: Partition | None = None, chunk_size: int | None = None,
                    prune: float | bool | None = True, return_terms: bool = False) -> Any:
    """Exact KL(q(z|x) || p(z|x)) of a Gaussian q for every data point.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
        Data points.
    q_mean : array_like, shape (N, S)
        Means of q(z|x_n) (``(N,)`` is accepted when S = 1).
    q_cov : array_like, shape (N, S, S) or (N, S)
        Covariances of q(z|x_n): full (symmetric positive definite) or diagonal
        (variances, e.g. ``exp(log_var)`` of a VAE encoder; ``(N,)`` when S = 1).
    partition : Partition, optional
        ``fastpath.partition(net)`` (computed when not given). A partition of a net with
        the same hidden layers is accepted (the affine maps are recomputed).
    chunk_size : int, optional
        Points per block (memory O(chunk_size R S^2)); default about 2^17 / R.
    prune : float, bool or None, default True
        Skip (point, region) pairs whose q-mass is certified below exp(-margin) (S >= 2; see
        the module notes), and prune log p(x) with the same margin. True is 60 nats, a
        number (finite, >= 30) the margin itself; False or None evaluates every pair.
    return_terms : bool, default False
        Return a :class:`KLTerms` (kl, log_px, expected_log_lik, kl_prior, q_mass, and the
        exact ELBO) instead of the KL alone.

    Returns
    -------
    kl : ndarray, shape (N,)
        KL(q || p(z|x)) >= 0 (up to the rounding stated in the module notes), in nats.
        Or a :class:`KLTerms` with ``return_terms=True``.

    Raises
    ------
    dgn_core.data.DataError
        X of the wrong width, empty, or with NaN / infinite values.
    TypeError
        ``net`` is not a DGN, ``partition`` not a Partition, q_mean / q_cov not real arrays,
        ``prune`` not a number, bool or None.
    ValueError
        q_mean / q_cov of the wrong shape or non-finite; a q_cov that breaks the covariance
        rule of :func:`dgn_core.validation.check_covariance` (not symmetric to a relative
        1e-10, not positive definite, condition number 1e13 or more); a partition of
        another net, or one whose regions do not cover q's mass; a bad ``prune`` or
        ``chunk_size``.
    """
    net = _check_net(net)
    X = check_data(X, dim=net.data_dim)
    N, S = X.shape[0], net.latent_dim
    m, cov, chol = _check_q(q_mean, q_cov, N, S)
    chunk_size = _check_chunk_size(chunk_size)
    prune = _check_prune(prune)
    partition = _check_partition(net, partition)

    log_px = log_marginal(net, X, partition=partition, prune=prune)
    A, b = affine_maps(net, partition)
    R, D = A.shape[0], net.data_dim
    nv = np.asarray(net.noise_var_vector, dtype=np.float64)
    inv_s = 1.0 / np.sqrt(nv)
    cones = cone_batch(partition)
    step = chunk_size or max(1, (1 << 17) // (R * (1 + S + S * S)))
    quad = np.empty(N)
    mass = np.empty(N)
    for a in range(0, N, step):
        rows = slice(a, min(N, a + step))
        quad[rows], mass[rows] = _expected_quadratic(cones, A, b, inv_s, X[rows], m[rows],
                                                     cov[rows], prune)
    bad = np.abs(mass - 1.0) > _MASS_TOL
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"the regions of the partition carry q-mass {mass[i]:.12g} != 1 for point {i}: "
            "the partition does not tile the latent space (incomplete partition?)")
    const = -0.5 * (D * _LOG_2PI + float(np.sum(np.log(nv))))
    ell = const - 0.5 * quad
    klp = gaussian_kl_to_prior(m, cov, chol, np.asarray(net.prior_cov, dtype=np.float64))
    kl = klp - ell + log_px
    if return_terms:
        return KLTerms(kl, log_px, ell, klp, mass)
    return kl

