"""EM with missing entries: the E-step engine of ``fit_em(..., mask=...)``.

The objective is the exact observed-data log-likelihood sum_n log p(x_{o,n})
(:func:`fastpath.missing.log_marginal_observed`). EM treats the missing entries x_m as
latent variables besides z: the joint posterior of a point is
p(z, x_m | x_o) = p(z | x_o) N(x_m; g_m(z), diag(Sigma_x)_m), with p(z | x_o) the exact
posterior of the point's sub-network (:func:`fastpath.missing.sub_net`). The E-step
statistics of :class:`fastpath.distributions.EStepStatistics` are then expectations under
that joint posterior, and a missing x_nd contributes through g_d(z) = A_{w,d} z + b_{w,d}
on each region (eps_d is independent of z with mean 0)::

    x0[w, d]  += E[x_nd 1_w]          = A_{w,d} e1_nw + b_{w,d} e0_nw
    x1[w, d]  += E[x_nd z^T 1_w]      = A_{w,d} E2_nw + b_{w,d} e1_nw^T
    xx[d]     += E[x_nd^2]            = E[g_d(z)^2] + sigma_d^2
    resid2[d] += E[(x_nd - g_d(z))^2] = sigma_d^2

(sums over the points of a mask pattern first: A_{w,d} sum_n e1_nw, ...). s0, s1 and S2
are the sums of every point's own posterior moments. The M-step of
:mod:`fastpath._mstep` is used unchanged on these statistics: it maximises the Q function
of the complete data (z, x_m, x_o), so the last-layer and noise updates are exact EM steps
for the observed-data likelihood (monotone by the usual EM argument), and the inner-layer
closed form is the complete-data surrogate's maximiser, used as a search direction and
accepted by :func:`fastpath.em.fit_em` only when the exact observed-data objective does not
decrease. (The alternative ECM with a per-row regression on the points that observe each
row maximises the observed-data Q instead; it converges in fewer iterations when many
entries are missing, but needs per-row statistics and its own last-layer solver.)

Points with every entry observed are computed by :func:`fastpath.estep_statistics` on
their rows: with ``mask`` all True the statistics, hence the whole run, are those of
``fit_em`` without a mask (bit for bit while N fits in one shard of the unmasked engine,
2048 rows by default).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data_source import ArraySource, DataSummary, summarise
from dgn_core.model import DGN
from dgn_core.regions import Partition

from ._estep import EStepStatistics, _estep_chunks, _residual_sums, estep_statistics
from ._region_maps import affine_maps
from ._sharded import ShardedEStep
from ._threads import blas_limit, threads
from .missing import _patterns, _prior_net, check_mask, log_marginal_observed, sub_net

__all__ = ["MissingEStep", "missing_data"]

Arr = NDArray[np.float64]


def missing_data(net: DGN, X: ArrayLike, mask: ArrayLike) -> tuple[Arr, NDArray[np.bool_],
                                                                    DataSummary]:
    """``(X, mask, summary)`` of data with missing entries, validated.

    ``X`` (N, D) has its missing entries set to 0. The summary's ``max_abs``, ``mean`` and
    ``spread`` are over the observed entries (per column for the mean; a column with
    nothing observed has mean 0), its fingerprint covers X and the mask. With ``mask`` all
    True it is :func:`dgn_core.data_source.summarise` of X (the unmasked run's).
    """
    Xc, m = check_mask(net, X, mask)
    if m.all():
        return Xc, m, summarise(ArraySource(Xc))
    N, D = Xc.shape
    if not m.any():
        raise ValueError("mask has no observed entry: there is nothing to fit")
    h = hashlib.sha256()
    h.update(str(("masked", N, D)).encode())
    h.update(np.ascontiguousarray(Xc).data)
    h.update(np.packbits(m).tobytes())
    count = m.sum(axis=0)
    mean = np.where(count > 0, Xc.sum(axis=0) / np.maximum(count, 1), 0.0)
    dev = np.where(m, Xc - mean, 0.0)
    spread = float(np.sqrt(np.sum(dev * dev) / m.sum()))
    summary = DataSummary(n_points=N, dim=D, max_abs=float(np.max(np.abs(Xc))), mean=mean,
                          spread=spread, fingerprint=h.hexdigest())
    return Xc, m, summary


class MissingEStep(ShardedEStep):
    """The E-step of data with missing entries, in this process (module notes).

    The interface of :class:`fastpath._sharded.ShardedEStep` that :func:`fastpath.fit_em`
    uses: ``n_points``, ``statistics``, ``log_marginal``, ``log_likelihood``, a context
    manager.

    Parameters
    ----------
    X : ndarray, shape (N, D)
        The data, missing entries 0 (:func:`missing_data`).
    mask : ndarray of bool, shape (N, D)
        True where observed.
    blas_threads, n_jobs : int or None
        As for :class:`fastpath._sharded.SerialEStep`.
    """

    def __init__(self, X: Arr, mask: NDArray[np.bool_], blas_threads: int | None = 1,
                 n_jobs: int | None = None) -> None:
        self.X, self.mask = X, mask
        self.blas_threads, self.n_jobs = blas_threads, n_jobs
        patterns, groups = _patterns(mask)
        self.patterns: list[tuple[NDArray[np.bool_], NDArray[np.intp], Arr]] = [
            (o, rows, np.ascontiguousarray(X[np.ix_(rows, np.flatnonzero(o))]))
            for o, rows in zip(patterns, groups)]

    @property
    def n_points(self) -> int:
        return int(self.X.shape[0])

    def log_marginal(self, net: DGN, partition: Partition, **kw: Any) -> Arr:
        """log p(x_o) of every point, (N,)."""
        with blas_limit(self.blas_threads):
            return log_marginal_observed(net, self.X, self.mask, partition=partition,
                                         n_jobs=self.n_jobs, **kw)

    def posterior(self, net: DGN, partition: Partition, **kw: Any) -> Any:
        raise NotImplementedError("use fastpath.posterior_observed for data with missing "
                                  "entries")

    def statistics(self, net: DGN, partition: Partition) -> EStepStatistics:
        """The E-step statistics under p(z, x_m | x_o) (module notes), (shapes as
        :class:`fastpath.distributions.EStepStatistics`)."""
        with blas_limit(self.blas_threads):
            if len(self.patterns) == 1 and self.patterns[0][0].all():
                return estep_statistics(net, self.X, partition=partition, n_jobs=self.n_jobs)
            with threads(self.n_jobs, blas=False):
                return self._statistics(net, partition)

    def _statistics(self, net: DGN, P: Partition) -> EStepStatistics:
        A, b = affine_maps(net, P)
        R, D, S = A.shape
        nv = np.asarray(net.noise_var_vector, dtype=np.float64)
        acc = {"s0": np.zeros(R), "s1": np.zeros((R, S)), "S2": np.zeros((R, S, S)),
               "x0": np.zeros((R, D)), "x1": np.zeros((R, D, S)), "xx": np.zeros(D),
               "resid2": np.zeros(D)}
        log_px = np.zeros(self.n_points)
        for o, rows, Xo in self.patterns:
            if o.all():
                st = estep_statistics(net, Xo, partition=P, n_jobs=self.n_jobs)
                log_px[rows] = st.log_px
                for name, total in acc.items():
                    total += getattr(st, name)
                continue
            obs, mis = np.flatnonzero(o), np.flatnonzero(~o)
            s0, s1, S2 = np.zeros(R), np.zeros((R, S)), np.zeros((R, S, S))
            if obs.size:
                Ao, bo = np.ascontiguousarray(A[:, obs]), np.ascontiguousarray(b[:, obs])
                for ch in _estep_chunks(sub_net(net, o), P, Xo):
                    Xc = Xo[ch.rows]
                    log_px[rows[ch.rows]] = ch.log_px
                    s0 += ch.e0.sum(axis=0)
                    s1 += ch.e1.sum(axis=0)
                    S2 += ch.E2.sum(axis=0)
                    acc["x0"][:, obs] += ch.e0.T @ Xc
                    acc["x1"][:, obs] += np.einsum("nd,nws->wds", Xc, ch.e1)
                    acc["xx"][obs] += np.sum(Xc * Xc, axis=0)
                    acc["resid2"][obs] += _residual_sums(Ao, bo, Xc, ch)
            else:  # nothing observed: the prior (fastpath.missing module notes)
                for ch in _estep_chunks(_prior_net(net), P, np.zeros((rows.size, 1))):
                    s0 += ch.e0.sum(axis=0)
                    s1 += ch.e1.sum(axis=0)
                    S2 += ch.E2.sum(axis=0)
            Am, bm = A[:, mis], b[:, mis]                                  # (R, M, S), (R, M)
            acc["x0"][:, mis] += np.einsum("wms,ws->wm", Am, s1) + bm * s0[:, None]
            acc["x1"][:, mis] += (np.einsum("wms,wst->wmt", Am, S2)
                                  + bm[:, :, None] * s1[:, None, :])
            acc["xx"][mis] += (np.einsum("wms,wst,wmt->m", Am, S2, Am)
                               + 2.0 * np.einsum("wm,wms,ws->m", bm, Am, s1)
                               + np.einsum("wm,w->m", bm * bm, s0) + rows.size * nv[mis])
            acc["resid2"][mis] += rows.size * nv[mis]
            acc["s0"] += s0
            acc["s1"] += s1
            acc["S2"] += S2
        return EStepStatistics(self.n_points, log_px, **acc)
