"""Missing data: the exact marginal, posterior and imputation given the observed entries.

A data point with some entries missing is observed through a boolean ``mask`` of X's shape,
**True where the entry is observed** (False: missing; the entry's value in X is then ignored
and may be NaN). The noise is diagonal (isotropic included), so the observed coordinates
x_o = g_o(z) + eps_o of a point follow a smaller DGN: the same hidden layers (hence the same
partition of the latent space), the output layer restricted to the observed rows and the
noise to the observed entries. Every quantity here is the exact one of that sub-network
(Theorem 1, :mod:`fastpath.distributions`):

* :func:`log_marginal_observed`: log p(x_o) per point (0 for a point with nothing observed:
  the empty product);
* :func:`posterior_observed`: p(z | x_o) per point (:class:`ObservedPosterior`; the prior
  for a point with nothing observed);
* :func:`impute`: E[x_m | x_o] and, optionally, Cov[x_m | x_o] for the missing entries x_m.
  With e0_w, cmean_w, ccov_w the posterior weight, mean and covariance of region w given
  x_o, and m_w = A_{m,w} cmean_w + b_{m,w} (the rows of the affine map of region w for the
  missing coordinates)::

      E[x_m | x_o]   = sum_w e0_w m_w
      Cov[x_m | x_o] = sum_w e0_w (A_{m,w} ccov_w A_{m,w}^T + (m_w - E)(m_w - E)^T)
                       + diag(Sigma_x)_m

  (law of total covariance, no cancellation of second moments against the mean).

Points are grouped by mask pattern; each pattern is one sub-network and one pass of the
E-step engine over its points. The partition of the full network serves every sub-network
(its hidden layers are the same); a pattern's affine maps are recomputed from the regions'
sign patterns (:func:`fastpath._region_maps.affine_maps`). The cost is therefore one E-step
per distinct pattern plus one over all points. A point with nothing observed gets the
prior: its posterior is computed as that of an auxiliary one-output net with zero output
weights at x = 0 (for which kappa_w is the same for every region, mu_w = 0 and
Sigma_w = Sigma_z, so the posterior is exactly the prior).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data import DataError, check_values
from dgn_core.model import DGN
from dgn_core.regions import Partition
from dgn_core.validation import real_array

from ._checks import _check_chunk_size, _check_net, _check_partition, _check_prune
from ._estep import _chunk, _default_chunk, _model, kernel_threads
from ._region_maps import affine_maps
from ._threads import serial_below
from .distributions import Posterior, _posterior

__all__ = ["ObservedPosterior", "check_mask", "impute", "log_marginal_observed",
           "observed_mask", "posterior_observed", "sub_net"]

Arr = NDArray[np.float64]
Mask = NDArray[np.bool_]

#: a mask pattern with fewer (point, region) pairs runs its compiled kernels on one thread:
#: waking the thread pool costs milliseconds per call on a busy machine, more than such a
#: pattern's work (measured: N = 500, D = 8, S = 2, 102 patterns, the E-step 4-8 s with all
#: threads against 0.7 s); results are the same for any thread count
SERIAL_PAIRS = 4096


def pattern_threads(n_rows: int, n_regions: int) -> AbstractContextManager[object]:
    """The thread block of one mask pattern's computation (:data:`SERIAL_PAIRS`)."""
    return serial_below(n_rows * n_regions, SERIAL_PAIRS)


# =========================================================================== input checks
def observed_mask(X: ArrayLike) -> Mask:
    """The mask of the entries of X that are not NaN (True = observed), shape of X.

    The convention of the command line (``dgn impute``, ``dgn fit --missing nan``): NaN
    marks a missing entry. Infinite entries count as observed (and are refused as such).
    """
    arr = real_array(X, "X", DataError, copy=False)
    return np.asarray(~np.isnan(arr))


def check_mask(net: DGN, X: ArrayLike, mask: ArrayLike) -> tuple[Arr, Mask]:
    """``(X, mask)`` validated: X (N, D) float64 with its missing entries set to 0.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D) or (D,)
        Data; entries where ``mask`` is False are ignored (NaN allowed there).
    mask : array_like of bool, shape of X
        True where the entry is observed.

    Returns
    -------
    X : ndarray, shape (N, D)
        A copy with the missing entries replaced by 0.
    mask : ndarray of bool, shape (N, D)

    Raises
    ------
    dgn_core.data.DataError
        X not real numbers, of the wrong shape or empty; observed entries NaN, infinite or
        above :data:`dgn_core.data.MAX_DATA_ABS` in magnitude.
    TypeError
        ``mask`` not boolean.
    ValueError
        ``mask`` of another shape than X.
    """
    D = net.data_dim
    arr = real_array(X, "X", DataError, copy=True)
    if arr.ndim == 1 and arr.shape[0] == D:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != D:
        raise DataError(f"X must be of shape (N, {D}) or ({D},), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError("X is empty (no rows)")
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array (True = observed), got dtype {m.dtype}")
    if m.ndim == 1 and m.shape[0] == D:
        m = m[None, :]
    if m.shape != arr.shape:
        raise ValueError(f"mask must have the shape of X {arr.shape}, got {m.shape}")
    arr[~m] = 0.0
    check_values(arr, "X (observed entries)")
    return arr, np.ascontiguousarray(m)


def sub_net(net: DGN, observed: ArrayLike) -> DGN:
    """The DGN of the observed coordinates: output rows and noise restricted to them.

    Parameters
    ----------
    net : DGN
    observed : array_like of bool, shape (D,)
        True for the coordinates kept (at least one).

    Returns
    -------
    DGN
        ``net`` itself when every coordinate is kept; otherwise the same hidden layers,
        output layer ``W_L[observed]``, ``v_L[observed]`` and noise variance restricted to
        the observed coordinates (a float stays a float). Its regions are ``net``'s.
    """
    o = np.asarray(observed, dtype=bool)
    if o.shape != (net.data_dim,) or not o.any():
        raise ValueError(f"observed must be a boolean array of shape ({net.data_dim},) with "
                         f"at least one True entry, got {o!r}")
    if o.all():
        return net
    nv = net.noise_var if net.isotropic_noise else net.noise_var_vector[o]
    return net.replace(weights=[*net.weights[:-1], net.weights[-1][o]],
                       biases=[*net.biases[:-1], net.biases[-1][o]], noise_var=nv)


def _prior_net(net: DGN) -> DGN:
    """A one-output net with ``net``'s hidden layers whose posterior at x = 0 is the prior."""
    H = net.weights[-1].shape[1]
    return net.replace(weights=[*net.weights[:-1], np.zeros((1, H))],
                       biases=[*net.biases[:-1], np.zeros(1)], noise_var=1.0)


def _patterns(mask: Mask) -> tuple[Mask, list[NDArray[np.intp]]]:
    """The distinct rows of ``mask`` (P, D) and the row indices of X of each (ascending)."""
    patterns, inverse = np.unique(mask, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(patterns.shape[0] + 1))
    groups = [order[bounds[k]:bounds[k + 1]] for k in range(patterns.shape[0])]
    return np.asarray(patterns, dtype=bool), groups


def _prepare(net: DGN, X: ArrayLike, mask: ArrayLike, partition: Partition | None,
             chunk_size: int | None, prune: float | bool | None
             ) -> tuple[DGN, Arr, Mask, Partition, int | None, float | None]:
    net = _check_net(net)
    Xc, m = check_mask(net, X, mask)
    return (net, Xc, m, _check_partition(net, partition), _check_chunk_size(chunk_size),
            _check_prune(prune))


# =========================================================================== log p(x_o)
def log_marginal_observed(net: DGN, X: ArrayLike, mask: ArrayLike, *,
                          partition: Partition | None = None, chunk_size: int | None = None,
                          prune: float | bool | None = True,
                          n_jobs: int | None = None) -> Arr:
    """log p(x_o) of every row of X given its observed entries, exact up to float64 rounding.

    Parameters
    ----------
    net : DGN
        Its noise is diagonal or isotropic (every DGN's is).
    X : array_like, shape (N, D)
        Data; entries where ``mask`` is False are ignored (NaN allowed there).
    mask : array_like of bool, shape (N, D)
        True where the entry is observed.
    partition : Partition, optional
        ``fastpath.partition(net)`` (computed when not given); it serves every mask pattern.
    chunk_size, prune, n_jobs
        As in :func:`fastpath.log_marginal`.

    Returns
    -------
    log_px : ndarray, shape (N,)
        log p(x_o); 0 for a row with nothing observed. With every entry observed this is
        :func:`fastpath.log_marginal` (the same computation, equal bit for bit).

    Raises
    ------
    As :func:`check_mask` and :func:`fastpath.log_marginal`.
    """
    net, Xc, m, partition, chunk_size, prune = _prepare(net, X, mask, partition, chunk_size,
                                                        prune)
    out = np.zeros(Xc.shape[0])
    patterns, groups = _patterns(m)
    with kernel_threads(net, n_jobs):
        for o, rows in zip(patterns, groups):
            if not o.any():
                continue
            model = _model(sub_net(net, o), partition)
            Xo = np.ascontiguousarray(Xc[np.ix_(rows, np.flatnonzero(o))])
            step = chunk_size or _default_chunk(model, moments=False)
            with pattern_threads(rows.size, model.R):
                for a in range(0, rows.size, step):
                    b = min(rows.size, a + step)
                    out[rows[a:b]] = _chunk(model, Xo[a:b], False, prune).log_px
    return out


# =========================================================================== p(z | x_o)
@dataclass(frozen=True, eq=False)
class ObservedPosterior:
    """p(z | x_o) of every row of X: one :class:`fastpath.Posterior` per mask pattern.

    Attributes
    ----------
    log_px : ndarray, shape (N,)
        log p(x_o) (0 where nothing is observed).
    e0 : ndarray, shape (N, R)
        P(z in w | x_o); rows sum to 1.
    mean : ndarray, shape (N, S)
        E[z | x_o].
    cov : ndarray, shape (N, S, S)
        Cov[z | x_o].
    mask : ndarray of bool, shape (N, D)
        True where observed.
    patterns : ndarray of bool, shape (P, D)
        The distinct rows of ``mask``.
    groups : tuple of ndarray of intp
        ``groups[k]``: the rows of X with pattern ``patterns[k]``, ascending.
    posteriors : tuple of Posterior
        ``posteriors[k]``: the posterior of the sub-network :func:`sub_net` (net,
        patterns[k]) at the observed entries of the rows ``groups[k]`` (in that order);
        for the pattern with nothing observed, that of an auxiliary net whose posterior is
        the prior (module notes; its ``log_px`` is not used).
    partition : Partition
        The regions (the R axis), those of ``net``.
    net : DGN
        The full network.
    """

    log_px: Arr
    e0: Arr
    mean: Arr
    cov: Arr
    mask: Mask
    patterns: Mask
    groups: tuple[NDArray[np.intp], ...]
    posteriors: tuple[Posterior, ...]
    partition: Partition
    net: DGN

    @property
    def n_points(self) -> int:
        return int(self.log_px.shape[0])

    def point(self, n: int) -> tuple[Posterior, int]:
        """``(posterior, i)``: row ``n`` of X is row ``i`` of ``posterior`` (its pattern's)."""
        if not 0 <= int(n) < self.n_points:
            raise ValueError(f"n must be an index in [0, {self.n_points}), got {n!r}")
        for post, rows in zip(self.posteriors, self.groups):
            i = int(np.searchsorted(rows, n))
            if i < rows.size and rows[i] == n:
                return post, i
        raise AssertionError("unreachable: every row belongs to a pattern")

    def __repr__(self) -> str:
        return (f"ObservedPosterior({self.n_points} points, {len(self.groups)} mask patterns, "
                f"{self.e0.shape[1]} regions, latent dimension {self.mean.shape[1]})")


def _posteriors(net: DGN, Xc: Arr, m: Mask, partition: Partition, chunk_size: int | None,
                prune: float | None, skip_complete: bool = False
                ) -> tuple[Mask, list[NDArray[np.intp]], list[Posterior | None]]:
    patterns, groups = _patterns(m)
    posts: list[Posterior | None] = []
    for o, rows in zip(patterns, groups):
        if skip_complete and o.all():
            posts.append(None)
            continue
        with pattern_threads(rows.size, len(partition)):
            if o.any():
                Xo = np.ascontiguousarray(Xc[np.ix_(rows, np.flatnonzero(o))])
                posts.append(_posterior(sub_net(net, o), Xo, partition, chunk_size, prune))
            else:
                posts.append(_posterior(_prior_net(net), np.zeros((rows.size, 1)), partition,
                                        chunk_size, prune))
    return patterns, groups, posts


def posterior_observed(net: DGN, X: ArrayLike, mask: ArrayLike, *,
                       partition: Partition | None = None, chunk_size: int | None = None,
                       prune: float | bool | None = True,
                       n_jobs: int | None = None) -> ObservedPosterior:
    """The exact posterior p(z | x_o) of every row of X given its observed entries.

    Parameters
    ----------
    net, X, mask, partition, chunk_size, prune, n_jobs
        As in :func:`log_marginal_observed`.

    Returns
    -------
    ObservedPosterior
        log_px (N,), e0 (N, R), mean (N, S), cov (N, S, S), and per mask pattern the rows
        and the sub-network's :class:`fastpath.Posterior` (per-region e0, e1, E2,
        region_mean, region_cov). With every entry observed, one pattern whose posterior is
        :func:`fastpath.posterior` of X (equal bit for bit).

    Raises
    ------
    As :func:`log_marginal_observed`.
    """
    net, Xc, m, partition, chunk_size, prune = _prepare(net, X, mask, partition, chunk_size,
                                                        prune)
    with kernel_threads(net, n_jobs):
        patterns, groups, posts = _posteriors(net, Xc, m, partition, chunk_size, prune)
    N, R, S = Xc.shape[0], len(partition), net.latent_dim
    log_px, e0 = np.zeros(N), np.empty((N, R))
    mean, cov = np.empty((N, S)), np.empty((N, S, S))
    done: list[Posterior] = []
    for o, rows, post in zip(patterns, groups, posts):
        assert post is not None
        if o.any():
            log_px[rows] = post.log_px
        e0[rows], mean[rows], cov[rows] = post.e0, post.mean, post.cov
        done.append(post)
    return ObservedPosterior(log_px, e0, mean, cov, m, patterns, tuple(groups), tuple(done),
                             partition, net)


# =========================================================================== imputation
def _conditional_moments(A: Arr, b: Arr, post: Posterior, noise: Arr,
                         want_cov: bool) -> tuple[Arr, Arr | None]:
    """E[x_m | x_o] (n, M) and Cov[x_m | x_o] (n, M, M) from a posterior (module notes).

    ``A`` (R, M, S) and ``b`` (R, M) are the affine maps' rows of the missing coordinates,
    ``noise`` (M,) their noise variances.
    """
    e0 = post.e0
    live = np.flatnonzero(np.any(e0 > 0, axis=0))                     # regions with weight
    m = np.einsum("rms,nrs->nrm", A[live], post.region_mean[:, live]) + b[live]  # (n, r, M)
    mean = np.einsum("nr,nrm->nm", e0[:, live], m)
    if not want_cov:
        return mean, None
    n, M = mean.shape
    cov = np.zeros((n, M, M))
    for j, w in enumerate(live):
        wt = e0[:, w]
        used = wt > 0          # pruned pairs (e0 = 0) hold no moments: left out, not x 0
        if not used.any():
            continue
        Aw = A[w]
        dev = m[used, j] - mean[used]                                   # (k, M)
        c = Aw @ post.region_cov[used, w] @ Aw.T + dev[:, :, None] * dev[:, None, :]
        cov[used] += wt[used, None, None] * c
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    cov[:, np.arange(M), np.arange(M)] += noise
    return mean, cov


def impute(net: DGN, X: ArrayLike, mask: ArrayLike, *, partition: Partition | None = None,
           return_cov: bool = False, chunk_size: int | None = None,
           prune: float | bool | None = True,
           n_jobs: int | None = None) -> Arr | tuple[Arr, Arr]:
    """X with its missing entries replaced by E[x_m | x_o] (exact conditional mean).

    Parameters
    ----------
    net, X, mask, partition, chunk_size, prune, n_jobs
        As in :func:`log_marginal_observed`.
    return_cov : bool, default False
        Also return the conditional covariance of every row.

    Returns
    -------
    X_filled : ndarray, shape (N, D)
        Observed entries as given, missing ones E[x_m | x_o] = E[g_m(z) | x_o] (for a row
        with nothing observed: the mean of the model, E[g(z)]).
    cov : ndarray, shape (N, D, D)
        Only with ``return_cov``: Cov[x | x_o], zero in the rows and columns of the
        observed entries; the block of the missing ones is
        Cov[g_m(z) | x_o] + diag(Sigma_x)_m (module notes). ``sqrt`` of its diagonal is the
        conditional standard deviation of every entry (0 where observed).

    Raises
    ------
    As :func:`log_marginal_observed`.
    """
    net, Xc, m, partition, chunk_size, prune = _prepare(net, X, mask, partition, chunk_size,
                                                        prune)
    N, D = Xc.shape
    cov = np.zeros((N, D, D)) if return_cov else None
    if (~m).any():
        A, b = affine_maps(net, partition)
        nv = np.asarray(net.noise_var_vector, dtype=np.float64)
        with kernel_threads(net, n_jobs):
            patterns, groups, posts = _posteriors(net, Xc, m, partition, chunk_size, prune,
                                                  skip_complete=True)
        for o, rows, post in zip(patterns, groups, posts):
            if post is None:
                continue
            mis = np.flatnonzero(~o)
            mean, c = _conditional_moments(np.ascontiguousarray(A[:, mis]),
                                           np.ascontiguousarray(b[:, mis]), post, nv[mis],
                                           return_cov)
            Xc[np.ix_(rows, mis)] = mean
            if cov is not None and c is not None:
                cov[np.ix_(rows, mis, mis)] = c
    return (Xc, cov) if cov is not None else Xc
