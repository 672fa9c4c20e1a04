"""The exact marginal, posterior and posterior moments of a DGN in float64 (Theorem 1).

For the model z ~ N(0, Sigma_z), x = g(z) + eps, eps ~ N(0, Sigma_x) with g(z) = A_w z + b_w
on every region w of the partition (docs/DESIGN.md §2.3)::

    Sigma_w    = (Sigma_z^-1 + A_w^T Sigma_x^-1 A_w)^-1
    mu_w(x)    = Sigma_w A_w^T Sigma_x^-1 (x - b_w)
    kappa_w(x) = N(x; b_w, Sigma_x + A_w Sigma_z A_w^T)
    p(x)       = sum_w kappa_w(x) Phi_w(mu_w(x), Sigma_w)
    p(z|x)     = p(x)^-1 sum_w 1[z in w] kappa_w(x) N(z; mu_w(x), Sigma_w)

with Phi_w(mu, Sigma) = P(z in w), z ~ N(mu, Sigma). The per-region posterior moments are
e0_w = E[1_w(z) | x], e1_w = E[z 1_w(z) | x] and E2_w = E[z z^T 1_w(z) | x].

This module holds the marginal (:func:`log_marginal`) and the posterior (:func:`posterior`,
:class:`Posterior`) and is the import path of everything else about these distributions:

* the E-step engine (whitening, the quadratic forms, certified pruning, chunking) and the
  E-step of EM, :func:`estep_statistics`: :mod:`fastpath._estep`, whose notes state the
  method and its accuracy;
* the posterior density at latent points, :func:`log_posterior_density` and
  :func:`posterior_density`: :mod:`fastpath._density`;
* the posterior mode, :func:`map_latent`: :mod:`fastpath._map`;
* exact posterior samples, :func:`sample_posterior`: :mod:`fastpath._sampling`.

Public functions validate their inputs (:func:`dgn_core.data.check_data` for X, the shared
checks of :mod:`dgn_core.validation`); private kernels (leading underscore) assume valid
input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.model import DGN
from dgn_core.regions import Partition
from dgn_core.validation import check_int

# Also re-exported: other modules, the tests and the benchmarks import the private names
# _check_* (input checks), _estep_chunks and _model (the E-step engine) from here.
from ._checks import (  # noqa: F401
    DEFAULT_PRUNE,
    _check_chunk_size,
    _check_net,
    _check_partition,
    _check_prune,
)
from ._density import log_posterior_density, posterior_density
from ._estep import (  # noqa: F401
    EStepChunk,
    _assemble,
    _chunk,
    _default_chunk,
    _estep_chunks,
    _model,
    _prepare,
    kernel_threads,
)
from ._estep_statistics import EStepStatistics, estep_statistics
from ._map import map_latent
from ._sampling import sample_posterior

__all__ = [
    "DEFAULT_PRUNE",
    "EStepChunk",
    "EStepStatistics",
    "Posterior",
    "estep_statistics",
    "log_marginal",
    "log_posterior_density",
    "map_latent",
    "posterior",
    "posterior_density",
    "sample_posterior",
]

Arr = NDArray[np.float64]


# =========================================================================== public API
def log_marginal(net: DGN, X: ArrayLike, *, partition: Partition | None = None,
                 chunk_size: int | None = None, prune: float | bool | None = True,
                 n_jobs: int | None = None, client: Any = None,
                 shard_size: int | None = None) -> Arr:
    """log p(x) of every row of X (Theorem 1), exact up to float64 rounding.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
        Data points (a 1-D array of length D is one point).
    partition : Partition, optional
        ``fastpath.partition(net)`` (computed when not given; pass it to reuse it).
    chunk_size : int, optional
        Points per block; memory is O(chunk_size R S) plus O(N).
    prune : float, bool or None, default True
        Skip (point, region) pairs certified to carry less than exp(-margin) of p(x) (see
        :mod:`fastpath._estep`; the computed p(x) is then low by a relative R exp(-margin)
        at most). True is this backend's safe margin, :data:`DEFAULT_PRUNE` = 60 nats; a
        number is the margin in nats (finite, >= 30); False or None evaluates every pair.
    n_jobs : int or None, default None
        Threads of the compiled kernels (S >= 2; BLAS is kept at one thread meanwhile):
        None or -1 all cores, -k all but k - 1, k >= 1 that many. The result is the same bit
        for bit for any ``n_jobs``.
    client : dask.distributed.Client, optional
        Compute the rows in shards of ``shard_size`` (default 2048) as tasks on this Dask
        cluster (``n_jobs`` then counts the threads of each task, default 1). Each point's
        value equals the single-process one to rounding (a point's pruning depends on the
        rows it is computed with; <= 1e-13 relative in tests/test_scale.py).
    shard_size : int, optional
        Rows per task with a ``client``.

    Returns
    -------
    log_px : ndarray, shape (N,)
        Finite for every finite x (log space throughout).

    Raises
    ------
    dgn_core.data.DataError
        X of the wrong width, empty, or with NaN / infinite values.
    TypeError
        ``net`` is not a DGN, ``partition`` not a Partition, ``prune`` not a number, bool
        or None.
    ValueError
        A partition of another net; ``prune`` below 30 or not finite; a bad ``chunk_size``.
    """
    net, X, partition, chunk_size, prune = _prepare(net, X, partition, chunk_size, prune)
    if client is not None:
        with _on_cluster(X, client, shard_size, n_jobs) as engine:
            return engine.log_marginal(net, partition, chunk_size=chunk_size, prune=prune)
    with kernel_threads(net, n_jobs):
        model = _model(net, partition)
        step = chunk_size or _default_chunk(model, moments=False)
        out = np.empty(X.shape[0])
        for a in range(0, X.shape[0], step):
            b = min(X.shape[0], a + step)
            out[a:b] = _chunk(model, X[a:b], False, prune).log_px
    return out


@dataclass(frozen=True, eq=False)
class Posterior:
    """The posterior p(z | x) of every data point: a mixture of truncated Gaussians.

    Attributes
    ----------
    log_px : ndarray, shape (N,)
        log p(x).
    log_e0 : ndarray, shape (N, R)
        log P(z in w | x) (-inf for pairs skipped by pruning).
    e0 : ndarray, shape (N, R)
        P(z in w | x); rows sum to 1.
    e1 : ndarray, shape (N, R, S)
        E[z 1_w(z) | x].
    E2 : ndarray, shape (N, R, S, S)
        E[z z^T 1_w(z) | x].
    mean : ndarray, shape (N, S)
        E[z | x].
    cov : ndarray, shape (N, S, S)
        Cov[z | x] (law of total variance; accurate far from the origin).
    region_mean : ndarray, shape (N, R, S)
        E[z | x, z in w] (0 where e0 == 0).
    region_cov : ndarray, shape (N, R, S, S)
        Cov[z | x, z in w] (0 where e0 == 0). Pairs without weight keep the signed cone
        sum's error, which far from a small region is large relative to that region's own
        covariance (measured up to 2.6e-4 at S = 2; ``benchmarks/moment_cancellation.py
        --posterior``); the pairs that carry weight are recomputed where it matters (1.8e-11
        to 2.9e-11 measured at e0 > 1e-3), and ``mean`` and ``cov`` are not affected. For a
        region's exact truncated moments use
        :meth:`fastpath.integrals.PolyhedronCones.truncated_mean_cov`.
    partition : Partition
        The regions w, in the order of the R axis.
    net : DGN
        The network (its partition may belong to a net with other output layer or noise).
    X : ndarray, shape (N, D)
        The data points.

    Satisfies :class:`dgn_core.api.PosteriorLike`.
    """

    log_px: Arr
    log_e0: Arr
    e0: Arr
    e1: Arr
    E2: Arr
    mean: Arr
    cov: Arr
    region_mean: Arr
    region_cov: Arr
    partition: Partition
    net: DGN
    X: Arr

    @property
    def region_weights(self) -> Arr:
        """P(z in w | x), shape (N, R) (the same array as ``e0``)."""
        return self.e0

    @property
    def n_points(self) -> int:
        return int(self.log_px.shape[0])

    @property
    def n_regions(self) -> int:
        return int(self.e0.shape[1])

    def most_probable_region(self) -> NDArray[np.intp]:
        """Index of the region of largest posterior probability per point, shape (N,)."""
        return np.argmax(self.log_e0, axis=1)

    def log_density(self, Z: ArrayLike, n: int = 0) -> Arr:
        """log p(z | x_n) at the latent points ``Z`` (M, S), shape (M,).

        The same as ``fastpath.log_posterior_density(net, X[n], Z, partition=partition)``
        (every region evaluated, whatever the pruning of this posterior's moments).
        """
        n = check_int(n, "n", 0)
        if n >= self.n_points:
            raise ValueError(f"n must be an index in [0, {self.n_points}), got {n!r}")
        return log_posterior_density(self.net, self.X[n], Z, partition=self.partition)

    def __repr__(self) -> str:
        return (f"Posterior({self.n_points} points, {self.n_regions} regions, "
                f"latent dimension {self.mean.shape[1]})")


def posterior(net: DGN, X: ArrayLike, *, partition: Partition | None = None,
              chunk_size: int | None = None, prune: float | bool | None = True,
              n_jobs: int | None = None, client: Any = None,
              shard_size: int | None = None) -> Posterior:
    """The exact posterior of every row of X: log p(x), region weights and moments.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    partition : Partition, optional
        ``fastpath.partition(net)`` (computed when not given).
    chunk_size : int, optional
        Points per block of the computation (the result itself is (N, R, S, S)).
    prune : float, bool or None, default True
        As in :func:`log_marginal`: pairs certified to have e0 < exp(-margin) are 0 (True:
        60 nats; False or None: every pair is evaluated).
    n_jobs, client, shard_size
        As in :func:`log_marginal` (with a client the arrays of every shard come back to
        this process).

    Returns
    -------
    Posterior
        log_px (N,), log_e0 and e0 (N, R), e1 (N, R, S), E2 (N, R, S, S), mean (N, S),
        cov (N, S, S), region_mean (N, R, S), region_cov (N, R, S, S), partition, net, X;
        ``log_density(Z, n)``.

    Raises
    ------
    As :func:`log_marginal`.
    """
    net, X, partition, chunk_size, prune = _prepare(net, X, partition, chunk_size, prune)
    if client is not None:
        with _on_cluster(X, client, shard_size, n_jobs) as engine:
            return engine.posterior(net, partition, chunk_size=chunk_size, prune=prune)
    with kernel_threads(net, n_jobs):
        return _posterior(net, X, partition, chunk_size, prune)


def _on_cluster(X: Arr, client: Any, shard_size: Any, n_jobs: Any) -> Any:
    """The Dask engine of :mod:`fastpath._sharded` for the rows of ``X`` (validated)."""
    from dgn_core.data_source import ArraySource

    from ._em_options import check_option
    from ._sharded import DEFAULT_SHARD_SIZE, DaskEStep

    client = check_option("client", client)
    n_jobs = check_option("n_jobs", n_jobs)
    size = check_option("shard_size", DEFAULT_SHARD_SIZE if shard_size is None else shard_size)
    return DaskEStep(ArraySource(X), client, size, 1, 1 if n_jobs is None else n_jobs)


def _posterior(net: DGN, X: Arr, partition: Partition, chunk_size: int | None,
               prune: float | None) -> Posterior:
    model = _model(net, partition)
    N, R, S = X.shape[0], model.R, model.S
    out = {k: np.empty(shape) for k, shape in (
        ("log_px", (N,)), ("log_e0", (N, R)), ("e0", (N, R)), ("e1", (N, R, S)),
        ("E2", (N, R, S, S)), ("mean", (N, S)), ("cov", (N, S, S)),
        ("cmean", (N, R, S)), ("ccov", (N, R, S, S)))}
    step = chunk_size or _default_chunk(model, moments=True)
    for a in range(0, N, step):
        rows = slice(a, min(N, a + step))
        ch = _assemble(rows, _chunk(model, X[rows], True, prune))
        for k, arr in out.items():
            arr[rows] = getattr(ch, k)
    return Posterior(out["log_px"], out["log_e0"], out["e0"], out["e1"], out["E2"],
                     out["mean"], out["cov"], out["cmean"], out["ccov"], partition, net, X)


