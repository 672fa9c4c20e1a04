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
are the sums of every point's own posterior moments. The inner-layer closed form of
:mod:`fastpath._mstep`, unchanged on these statistics, maximises the complete-data
surrogate; it is a search direction, accepted by :func:`fastpath.em.fit_em` only when the
exact observed-data objective does not decrease.

The last layer and the noise take the exact ECM step of the observed-data Q function,
Q_o(theta') = sum_n E_{p(z | x_o,n; theta)}[log p(z) + sum_{d in o_n} log N(x_nd; g'_d(z),
sigma'_d^2)] (:func:`ecm_step`): row d of [W^L, v^L] is the regression of x_d on
h~ = [a^{L-1}; 1] over the points that observe d (per-row statistics of
:class:`ObservedStatistics`; a weight prior is a sum over rows, so it splits too), sigma_d^2
the mean expected squared residual over those points (isotropic: pooled over the observed
entries). The partition does not depend on these parameters, so Q_o is exactly quadratic in
them and the step cannot decrease the observed-data likelihood. (The complete-data M-step on
the statistics above is an exact EM step as well, ``PER_ROW_ECM[0] = False``; it shrinks
each row towards its current fit on the points missing it, so it converges more slowly.)

Points with every entry observed are computed by :func:`fastpath.estep_statistics` on
their rows: with ``mask`` all True the statistics, hence the whole run, are those of
``fit_em`` without a mask (bit for bit while N fits in one shard of the unmasked engine,
2048 rows by default).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data_source import ArraySource, DataSummary, summarise
from dgn_core.model import DGN
from dgn_core.regions import Partition

from ._estep import _estep_chunks
from ._estep_statistics import EStepStatistics, _residual_sums, estep_statistics
from ._mstep import (
    _ecm,
    _last_layer_q,
    _last_layer_update,
    _layer_moments,
    _prior_cov_update,
    _residual_after,
    _sweep_maps,
    _Wt,
)
from ._region_maps import affine_maps
from ._sharded import ShardedEStep
from ._threads import blas_limit, threads
from .missing import (
    _patterns,
    _prior_net,
    check_mask,
    log_marginal_observed,
    pattern_threads,
    sub_net,
)

__all__ = ["MissingEStep", "ObservedStatistics", "ecm_step", "missing_data"]

Arr = NDArray[np.float64]

#: the last layer and noise by the per-row ECM of the observed-data Q (True), or by the
#: complete-data M-step on the statistics with x_m latent (False; module notes)
PER_ROW_ECM = [True]


@dataclass(frozen=True, eq=False)
class ObservedStatistics(EStepStatistics):
    """:class:`EStepStatistics` with x_m latent (module notes), and per output row d the
    sums over the points that observe d only.

    Attributes
    ----------
    n_obs : ndarray, shape (D,)
        Points that observe d.
    s0_o, s1_o, S2_o : ndarray, shapes (D, R), (D, R, S), (D, R, S, S)
        sum over those points of e0, e1, E2.
    x0_o, x1_o : ndarray, shapes (R, D), (R, D, S)
        sum over those points of e0 x_nd and x_nd e1.
    resid2_o : ndarray, shape (D,)
        sum over those points of E[(x_nd - g_d(z))^2 | x_o].
    """

    n_obs: Arr
    s0_o: Arr
    s1_o: Arr
    S2_o: Arr
    x0_o: Arr
    x1_o: Arr
    resid2_o: Arr


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

    def _statistics(self, net: DGN, P: Partition) -> ObservedStatistics:
        A, b = affine_maps(net, P)
        R, D, S = A.shape
        nv = np.asarray(net.noise_var_vector, dtype=np.float64)
        acc = {"s0": np.zeros(R), "s1": np.zeros((R, S)), "S2": np.zeros((R, S, S)),
               "x0": np.zeros((R, D)), "x1": np.zeros((R, D, S)), "xx": np.zeros(D),
               "resid2": np.zeros(D)}
        obs_acc = {"n_obs": np.zeros(D), "s0_o": np.zeros((D, R)), "s1_o": np.zeros((D, R, S)),
                   "S2_o": np.zeros((D, R, S, S))}
        mis_acc = {"x0": np.zeros((R, D)), "x1": np.zeros((R, D, S))}   # x_m's parts
        log_px = np.zeros(self.n_points)
        for o, rows, Xo in self.patterns:
            obs, mis = np.flatnonzero(o), np.flatnonzero(~o)
            if o.all():
                with pattern_threads(rows.size, R):
                    st = estep_statistics(net, Xo, partition=P, n_jobs=None)
                log_px[rows] = st.log_px
                for name, total in acc.items():
                    total += getattr(st, name)
                s0, s1, S2 = st.s0, st.s1, st.S2
            else:
                with pattern_threads(rows.size, R):
                    s0, s1, S2 = self._pattern(net, P, A, b, o, rows, Xo, acc, log_px)
                Am, bm = A[:, mis], b[:, mis]                              # (R, M, S), (R, M)
                mis_acc["x0"][:, mis] += np.einsum("wms,ws->wm", Am, s1) + bm * s0[:, None]
                mis_acc["x1"][:, mis] += (np.einsum("wms,wst->wmt", Am, S2)
                                          + bm[:, :, None] * s1[:, None, :])
                acc["xx"][mis] += (np.einsum("wms,wst,wmt->m", Am, S2, Am)
                                   + 2.0 * np.einsum("wm,wms,ws->m", bm, Am, s1)
                                   + np.einsum("wm,w->m", bm * bm, s0) + rows.size * nv[mis])
                acc["s0"] += s0
                acc["s1"] += s1
                acc["S2"] += S2
            obs_acc["n_obs"][obs] += rows.size
            obs_acc["s0_o"][obs] += s0
            obs_acc["s1_o"][obs] += s1
            obs_acc["S2_o"][obs] += S2
        # x0, x1 and resid2 so far hold the observed entries only: the per-row sums
        x0_o, x1_o, resid2_o = acc["x0"].copy(), acc["x1"].copy(), acc["resid2"].copy()
        n_mis = self.n_points - obs_acc["n_obs"]
        acc["resid2"] += n_mis * nv
        for name, part in mis_acc.items():
            acc[name] += part
        return ObservedStatistics(self.n_points, log_px, **acc, **obs_acc, x0_o=x0_o,
                                  x1_o=x1_o, resid2_o=resid2_o)

    def _pattern(self, net: DGN, P: Partition, A: Arr, b: Arr, o: NDArray[np.bool_],
                 rows: NDArray[np.intp], Xo: Arr, acc: dict[str, Arr], log_px: Arr
                 ) -> tuple[Arr, Arr, Arr]:
        """The observed entries' sums of one incomplete pattern into ``acc`` (x0, x1, xx,
        resid2), its log p(x_o) into ``log_px``; returns its sums of e0, e1, E2."""
        R, S = A.shape[0], A.shape[2]
        obs = np.flatnonzero(o)
        s0, s1, S2 = np.zeros(R), np.zeros((R, S)), np.zeros((R, S, S))
        if obs.size == 0:  # nothing observed: the prior (fastpath.missing module notes)
            for ch in _estep_chunks(_prior_net(net), P, np.zeros((rows.size, 1))):
                s0 += ch.e0.sum(axis=0)
                s1 += ch.e1.sum(axis=0)
                S2 += ch.E2.sum(axis=0)
            return s0, s1, S2
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
        return s0, s1, S2


# =========================================================================== the ECM step
def ecm_step(net: DGN, st: EStepStatistics, P: Partition, *, last: bool,
             noise_mode: str | None, update_prior_cov: bool, prior: Any, floor: float
             ) -> tuple[DGN, bool, float]:
    """The exact ECM step of the last layer, the noise and Sigma_z (as
    :func:`fastpath._mstep._ecm`, which it is for complete data): with
    :class:`ObservedStatistics`, the per-row step of the observed-data Q (module notes).

    Returns (new net, whether the noise floor bound, last-layer Q gain).
    """
    if not isinstance(st, ObservedStatistics) or not PER_ROW_ECM[0]:
        return _ecm(net, st, P, last=last, noise_mode=noise_mode,
                    update_prior_cov=update_prior_cov, prior=prior, floor=floor)
    L = net.n_layers
    Pl, pl = _sweep_maps(net, P).inputs[L - 1]
    noise = np.array(net.noise_var_vector, dtype=np.float64)
    Wt_old = _Wt(net, L - 1)
    Wt_new = Wt_old.copy()
    D = Wt_old.shape[0]
    resid2 = np.zeros(D)
    q_gain = 0.0
    for d in range(D):
        if st.n_obs[d] == 0:
            continue
        row = SimpleNamespace(s0=st.s0_o[d], s1=st.s1_o[d], S2=st.S2_o[d],
                              x0=st.x0_o[:, d:d + 1], x1=st.x1_o[:, d:d + 1])
        H, Xeta, _ = _layer_moments(Pl, pl, row)  # type: ignore[arg-type]
        Hh, Xh = H.sum(axis=0), Xeta.sum(axis=0)                              # (K, K), (1, K)
        old = Wt_old[d:d + 1]
        new = old
        if last:
            cand = _last_layer_update(Hh, Xh, old, noise[d:d + 1], prior)
            q_old = _last_layer_q(Hh, Xh, old, noise[d:d + 1], prior)
            q_new = _last_layer_q(Hh, Xh, cand, noise[d:d + 1], prior)
            if q_new >= q_old:
                new, q_gain = cand, q_gain + q_new - q_old
        Wt_new[d] = new[0]
        resid2[d] = _residual_after(st.resid2_o[d:d + 1], Hh, Xh, old, new)[0]
    changes: dict[str, Any] = {}
    if not np.array_equal(Wt_new, Wt_old):
        Ws, vs = list(net.weights), list(net.biases)
        Ws[-1], vs[-1] = Wt_new[:, :-1], Wt_new[:, -1]
        changes.update(weights=Ws, biases=vs)
    hit = False
    if noise_mode is not None:
        seen = st.n_obs > 0
        if noise_mode == "isotropic":
            raw = np.full(D, float(np.sum(resid2[seen])) / float(np.sum(st.n_obs)))
        else:  # a coordinate observed nowhere keeps its variance
            raw = np.where(seen, resid2 / np.maximum(st.n_obs, 1), noise)
        hit = bool(np.any(raw[seen] < floor))
        nv = np.maximum(raw, floor)
        changes["noise_var"] = float(nv[0]) if noise_mode == "isotropic" else nv
    if update_prior_cov:
        changes.update(_prior_cov_update(st))
    return (net.replace(**changes) if changes else net), hit, q_gain
