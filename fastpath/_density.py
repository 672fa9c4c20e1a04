"""The posterior density p(z | x) of one data point at latent points (Theorem 1).

For z in region w (docs/DESIGN.md §2.3)::

    log p(z | x) = log kappa_w(x) + log N(z; mu_w(x), Sigma_w) - log p(x)

with every term from the whitened quantities of :mod:`fastpath._estep` (log kappa_w with
the quadratic form refined in residual form where the cheap form may cancel, log p(x)
without pruning).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data import DataError, check_data
from dgn_core.model import DGN
from dgn_core.regions import Partition

from ._checks import _check_net, _check_partition
from ._estep import _LOG_2PI, _chunk, _model, _needs_refinement, _quadratic_forms, _refine

__all__ = ["log_posterior_density", "posterior_density"]

Arr = NDArray[np.float64]


def _single_point(net: DGN, x: ArrayLike) -> Arr:
    x = check_data(x, dim=net.data_dim, name="x")
    if x.shape[0] != 1:
        raise DataError(f"x must be one data point of shape ({net.data_dim},), got {x.shape[0]} rows")
    return x


def _check_latent_points(net: DGN, Z: ArrayLike, name: str = "Z") -> Arr:
    try:
        Z = np.asarray(Z, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real array") from None
    S = net.latent_dim
    if Z.ndim == 1:
        Z = Z[:, None] if S == 1 else Z[None, :]
    if Z.ndim != 2 or Z.shape[1] != S:
        raise ValueError(f"{name} must have shape (M, {S}), got shape {np.shape(Z)}")
    if not np.all(np.isfinite(Z)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return Z


def log_posterior_density(net: DGN, x: ArrayLike, Z: ArrayLike, *,
                          partition: Partition | None = None) -> Arr:
    """log p(z | x) at latent points Z for one data point x (Theorem 1's mixture form).

    For z in region w: log p(z|x) = log kappa_w(x) + log N(z; mu_w(x), Sigma_w) - log p(x).

    Parameters
    ----------
    net : DGN
    x : array_like, shape (D,)
    Z : array_like, shape (M, S)
    partition : Partition, optional

    Returns
    -------
    ndarray, shape (M,)
    """
    net = _check_net(net)
    x = _single_point(net, x)
    Z = _check_latent_points(net, Z)
    partition = _check_partition(net, partition)
    model = _model(net, partition)
    res = _chunk(model, x, False, None)
    forms = _quadratic_forms(model, x)
    _refine(model, forms, _needs_refinement(model, forms))
    w = partition.locate(Z)                                                 # (M,)
    U = Z if model.Lz is None else np.linalg.solve(model.Lz, Z.T).T
    dev = U - forms.mu_u[0, w]                                              # whitened
    maha = np.einsum("mi,mij,mj->m", dev, model.G[w], dev)
    logdet_lz = 0.0 if model.Lz is None else 2.0 * float(np.sum(np.log(np.diag(model.Lz))))
    # log N(z; mu_w, Sigma_w), Sigma_w = L_z G^-1 L_z^T; log det Sigma_w = logdet L_z^2 - logdet G
    log_gauss = -0.5 * (model.S * _LOG_2PI + logdet_lz - model.logdet_G[w] + maha)
    log_kappa = model.const[w] - 0.5 * forms.Q[0, w]
    return log_kappa + log_gauss - res.log_px[0]


def posterior_density(net: DGN, x: ArrayLike, Z: ArrayLike, *,
                      partition: Partition | None = None) -> Arr:
    """p(z | x) at latent points Z (M, S) for one data point x (D,); shape (M,).

    ``exp`` of :func:`log_posterior_density` (which stays accurate where this underflows).
    """
    return np.exp(log_posterior_density(net, x, Z, partition=partition))

