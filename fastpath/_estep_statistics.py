"""The E-step's sufficient statistics for EM: the sums over points of the posterior moments
of each region (:class:`EStepStatistics`), accumulated chunk by chunk from the E-step of
:mod:`fastpath._estep` in O(R D S) memory, with the residual term of the noise update in
its residual form (no cancellation when the fit is good).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from dgn_core.model import DGN
from dgn_core.regions import Partition

from ._estep import (
    COMPILED_ASSEMBLY,
    Arr,
    EStepChunk,
    _assemble,
    _chunk,
    _default_chunk,
    _model,
    _prepare,
    kernel_threads,
)

__all__ = ["EStepStatistics", "estep_statistics"]


@dataclass(frozen=True, eq=False)
class EStepStatistics:
    """Per-region sufficient statistics of the E-step, summed over the data.

    With e0, e1, E2, cmean, ccov as in :class:`EStepChunk` (n the data index, w the
    region)::

        s0[w]     = sum_n e0[n, w]                              (R,)
        s1[w]     = sum_n e1[n, w]                              (R, S)
        S2[w]     = sum_n E2[n, w]                              (R, S, S)
        x0[w]     = sum_n e0[n, w] x_n                          (R, D)
        x1[w]     = sum_n x_n e1[n, w]^T                        (R, D, S)
        xx        = sum_n x_n * x_n   (elementwise)             (D,)
        resid2    = sum_n sum_w E[(x_n - A_w z - b_w)^2 1_w(z) | x_n]   (D,) elementwise,
                  = sum_{n,w} e0 ((x_n - b_w - A_w cmean)^2 + diag(A_w ccov A_w^T)),
                    computed in this residual form (no cancellation at small noise)

    Attributes
    ----------
    n : int
        Number of data points.
    log_px : ndarray, shape (N,)
        log p(x_n); ``log_px.sum()`` is the exact log-likelihood.
    s0, s1, S2, x0, x1, xx, resid2 : ndarray
        As above.
    """

    n: int
    log_px: Arr
    s0: Arr
    s1: Arr
    S2: Arr
    x0: Arr
    x1: Arr
    xx: Arr
    resid2: Arr

    @property
    def log_likelihood(self) -> float:
        """sum_n log p(x_n)."""
        return float(np.sum(self.log_px))


def estep_statistics(net: DGN, X: ArrayLike, *, partition: Partition | None = None,
                     chunk_size: int | None = None, prune: float | bool | None = True,
                     n_jobs: int | None = None) -> EStepStatistics:
    """Sufficient statistics of the E-step (see :class:`EStepStatistics`), in O(R D S) memory.

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    partition, chunk_size, prune, n_jobs
        As in :func:`fastpath.posterior`.

    Returns
    -------
    EStepStatistics
    """
    net, X, partition, chunk_size, prune = _prepare(net, X, partition, chunk_size, prune)
    with kernel_threads(net, n_jobs):
        return _estep_statistics(net, X, partition, chunk_size, prune)


#: (pair, D, S) elements gathered at once by :func:`_residual_sums` (8 MB)
_PAIR_BLOCK = 1 << 20


def _residual_sums(A: Arr, b: Arr, Xc: Arr, ch: EStepChunk) -> Arr:
    """sum over pairs (n, w) of e0 [(x_n - b_w - A_w m_nw)^2 + diag(A_w C_nw A_w^T)], (D,).

    The residuals are formed per pair (not expanded into moments, which would cancel when
    the fit is good); the covariance term sums e0 C over the points of a region first, as
    A_w does not depend on the point.
    """
    mask = ch.e0 > 0
    nn, ww = np.nonzero(mask)
    D, S = A.shape[1], A.shape[2]
    out = np.zeros(D)
    step = max(1, _PAIR_BLOCK // (D * S))
    if S >= 2 and COMPILED_ASSEMBLY[0]:
        # the per-pair terms and the per-region covariance sums in one compiled pass; the
        # sums over pairs stay numpy's (pairwise), block by block as below
        from ._jit_estep import residual_sums

        return residual_sums(A, b, Xc, ch.e0, ch.cmean, ch.ccov, nn, ww, step)
    e0 = ch.e0[nn, ww]
    for a in range(0, nn.size, step):
        n_, w_ = nn[a:a + step], ww[a:a + step]
        res = Xc[n_] - b[w_] - (A[w_] @ ch.cmean[n_, w_][..., None])[..., 0]       # (k, D)
        # numpy's pairwise summation along the contiguous axis: a BLAS dot over ~1e5 pairs
        # lost 1e-14 relative here, and the noise variance inherits it
        out += np.sum(np.ascontiguousarray((res * res).T) * e0[a:a + step], axis=1)
    # pruned pairs (e0 = 0) may hold no covariance: they are left out, not multiplied by 0
    Cw = np.einsum("nw,nwij->wij", ch.e0, np.where(mask[..., None, None], ch.ccov, 0.0))
    out += np.einsum("wdi,wij,wdj->d", A, Cw, A)
    return out


def _estep_statistics(net: DGN, X: Arr, partition: Partition, chunk_size: int | None,
                      prune: float | None) -> EStepStatistics:
    model = _model(net, partition)
    A, b = model.A, model.b
    R, S, D = model.R, model.S, model.D
    s0 = np.zeros(R)
    s1 = np.zeros((R, S))
    S2 = np.zeros((R, S, S))
    x0 = np.zeros((R, D))
    x1 = np.zeros((R, D, S))
    resid2 = np.zeros(D)
    log_px = np.empty(X.shape[0])
    step = chunk_size or _default_chunk(model, moments=True)
    for a in range(0, X.shape[0], step):
        rows = slice(a, min(X.shape[0], a + step))
        ch = _assemble(rows, _chunk(model, X[rows], True, prune))
        Xc = X[rows]
        log_px[rows] = ch.log_px
        s0 += ch.e0.sum(axis=0)
        s1 += ch.e1.sum(axis=0)
        S2 += ch.E2.sum(axis=0)
        x0 += ch.e0.T @ Xc
        x1 += np.einsum("nd,nri->rdi", Xc, ch.e1)
        resid2 += _residual_sums(A, b, Xc, ch)
    return EStepStatistics(X.shape[0], log_px, s0, s1, S2, x0, x1,
                           np.einsum("nd,nd->d", X, X), resid2)


