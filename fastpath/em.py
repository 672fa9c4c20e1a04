"""Exact, monotone EM training of a DGN (docs/DESIGN.md §2.5).

The model: z ~ N(0, Sigma_z), x = g(z) + eps, eps ~ N(0, Sigma_x) with g continuous
piecewise affine. Every quantity used here is exact up to float64 rounding: the E-step
moments come from :func:`fastpath.distributions.estep_statistics` (per-region sufficient
statistics of the exact posterior) and the log-likelihood log p(X) = sum_n log p(x_n) from
:func:`fastpath.log_marginal` (Theorem 1).

One iteration of :func:`fit_em` (a "sweep")
------------------------------------------
1. **ECM step of the last layer and the noise** (and of Sigma_z with ``update_prior_cov``),
   from the E-step at the current parameters theta. The partition of the latent space does
   not depend on these parameters, so the Q function is exactly quadratic in (W^L, v^L) and
   exactly maximised in Sigma_x / Sigma_z: these are exact EM (ECM) steps and the exact
   log-likelihood (plus log prior) cannot decrease. It is recomputed anyway; a step that
   decreases it by more than ``ECM_RTOL * (|objective| + N)`` (rounding) is rejected and
   reported in :attr:`EMResult.ecm_rejected`.
2. **Inner layers**, one at a time from layer L-1 down to layer 1 (coordinate ascent with a
   fresh E-step before each layer). Moving W^l moves the partition, so the closed-form
   maximiser of the frozen-activation surrogate (the Kronecker system of docs/DESIGN.md §2.5)
   is not an EM step. It is used as a search direction: theta(t) = theta + t (theta_cf -
   theta), t = t0, t0/2, t0/4, ... (``max_halvings`` halvings) until the exact objective
   (log p(X) + log prior, recomputed with a new partition of theta(t)) does not decrease;
   if no t is accepted the layer keeps its weights. t0 is twice the layer's previous
   accepted step, capped at 1. The surrogate's gradient at theta equals the gradient of the
   exact log-likelihood (Fisher's identity: the activation pattern is constant near almost
   every z), so the direction is an ascent direction and small enough steps succeed.

Hence the history of the exact objective is non-decreasing by construction: inner-layer
steps are accepted only when the computed objective does not decrease, and ECM steps only
when it does not decrease beyond rounding. With no weight prior the objective is log p(X).

The M-step formulas and their numerical treatment are in :mod:`fastpath._mstep`, the
options in :mod:`fastpath._em_options` and the checkpoints in :mod:`fastpath._em_checkpoint`.

Weight priors apply to the weight matrices W^1..W^L (not to the biases, the noise or
Sigma_z). With a prior, EM maximises log p(X) + log p(W) (MAP); that objective is the
monotone quantity and is reported in :attr:`EMResult.objective` beside the log-likelihood.

The unbounded likelihood (Mattei & Frellsen 2018): as a generator passes through data points
the likelihood grows without bound as sigma^2 -> 0. The noise update is clipped at
``noise_floor``; iterations where the floor binds are listed in
:attr:`EMResult.noise_floor_hit` and flagged in the progress line.

Cost of one iteration: one E-step with moments after the ECM step, and per inner layer a
partition of every backtracking trial net with the E-step of the first trial (which is
usually accepted and then provides the next layer's moments) and log p(X) alone (no
moments) for later trials, plus one E-step when a later trial is accepted. With S = 2 the
E-step over the polygons of the partition dominates. ``benchmarks/em.py`` measures it.

Convergence: EM stops when the objective gains less than ``tol`` per point in one
iteration (or nothing at all); with the exact history this is a statement about the exact
log-likelihood, not a bound. Reproducibility: no random numbers are drawn; given (net, X,
options) and a fixed BLAS thread count (``blas_threads``, default 1) a run is reproducible
bit for bit, and so is a run resumed from a checkpoint.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data import check_data
from dgn_core.exceptions import ConvergenceWarning, RegionLimitError
from dgn_core.model import DGN
from dgn_core.priors import (
    BoxPrior,
    GaussianPrior,
    LaplacePrior,
    Prior,
    log_prior,
    parse_prior,
)
from dgn_core.regions import Partition
from dgn_core.validation import check_net

from ._em_checkpoint import _consistent, _read_checkpoint, _State, _write_checkpoint
from ._em_options import (
    DEFAULT_RIDGE,
    EMOptions,
    check_option,
    min_noise_floor,
    noise_floor_of_max,
    warn_if_far_from_mean,
)
from ._em_result import EMIteration, EMResult
from ._mstep import (
    _ecm,
    _inner_gradient,
    _inner_layer_target,
    _layer_moments,
    _output_map,
    _sweep_maps,
    _with_layer,
    _Wt,
)
from ._sharded import DEFAULT_SHARD_SIZE, ShardedEStep, make_estep
from ._threads import blas_limit, threads

if TYPE_CHECKING:
    from .distributions import EStepStatistics

__all__ = [
    "ECM_RTOL",
    "BoxPrior",
    "ConvergenceWarning",
    "EMIteration",
    "EMResult",
    "GaussianPrior",
    "LaplacePrior",
    "em_step",
    "fit_em",
    "log_likelihood_gradient",
    "parse_prior",
]

Arr = NDArray[np.float64]

#: relative rounding tolerance of an exact ECM step: a step whose exact objective falls by
#: more than ECM_RTOL * (|objective| + N) is rejected (log p(x) is accurate to ~1e-13
#: relative per point; summing N terms adds ~N eps relative)
ECM_RTOL = 1e-10
#: an inner-layer step is tried only when the surrogate predicts a gain above this fraction
#: of (|objective| + N), the rounding level of the objective
_MIN_PREDICTED_GAIN = 1e-14


# =========================================================================== fit_em
def fit_em(
    net: DGN,
    X: ArrayLike,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    update: Iterable[str] = ("layers", "noise"),
    noise: str | None = None,
    update_prior_cov: bool = False,
    weight_prior: Prior | None = None,
    noise_floor: float = 1e-6,
    ridge: float = DEFAULT_RIDGE,
    max_halvings: int = 12,
    max_regions: int = 100_000,
    seed: int = 0,
    progress: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    callback: Callable[[EMIteration], Any] | None = None,
    blas_threads: int | None = 1,
    n_jobs: int | None = None,
    client: Any = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    mask: ArrayLike | None = None,
) -> EMResult:
    """Train a DGN by exact, monotone EM (module notes).

    Parameters
    ----------
    net : DGN
        The initial model (any depth, S = 1..4, relu / leaky_relu / abs).
    X : array_like of shape (N, D), DataSource or path
        Training data: an array, a :class:`dgn_core.data_source.DataSource`, or a path that
        :func:`dgn_core.data_source.as_source` opens without loading it (a ``.npy`` file,
        memory-mapped; a zarr array; a folder of ``.npy`` shards). Data in files are streamed
        shard by shard (module notes of :mod:`fastpath._sharded`).
    max_iter : int, default 200
        Maximum number of iterations (sweeps); a :class:`ConvergenceWarning` is issued when
        it is reached before convergence.
    tol : float, default 1e-6
        Convergence threshold on the per-point change of the exact objective:
        EM stops when (objective_k - objective_{k-1}) / N < tol (nats per point, as
        scikit-learn's mixtures). 0 runs all ``max_iter`` iterations unless an iteration
        makes no progress at all.
    update : collection of {"layers", "last", "noise"}, default ("layers", "noise")
        What to train: "layers" all layers (last by ECM, inner by backtracked closed form),
        "last" the last layer only, "noise" the noise variance.
    noise : {"isotropic", "diagonal"}, optional
        Noise model (default: the net's: isotropic if ``net.noise_var`` is a float).
    update_prior_cov : bool, default False
        Also update Sigma_z (exact ECM: the mean of E[z z^T | x]).
    weight_prior : GaussianPrior, LaplacePrior, BoxPrior or None
        Prior on the weight matrices; EM then maximises log p(X) + log p(W). The initial
        weights must lie inside a box prior.
    noise_floor : float, default 1e-6
        Lower bound of every noise variance (module notes); a value below
        :func:`fastpath._em_options.min_noise_floor` of the data (about (2e-15 max |x|)^2, the
        rounding level of the residuals) is raised to it. The initial noise must not be below
        it.
    ridge : float, default 1e-6
        Proximal ridge of the inner-layer systems relative to their mean diagonal.
    max_halvings : int, default 12
        Step halvings tried per inner layer before keeping its weights.
    max_regions : int, default 100000
        Partition size limit; a trial step with more regions is rejected (the initial model
        raises :class:`~dgn_core.regions.RegionLimitError`).
    seed : int, default 0
        Recorded in the result and the checkpoint. EM itself draws no random numbers (the
        E-step moments are exact integrals), so a run is reproducible bit for bit from
        (net, X, options); seed the initial model (``DGN.random(..., seed=...)``) for
        different starts.
    progress : bool, default False
        Print a line per iteration to stderr (log-likelihood, per point, noise, steps; the
        noise floor when it binds).
    checkpoint : path, optional
        ``.npz`` file (no pickle) written atomically every ``checkpoint_every`` iterations,
        at the end, and when interrupted (KeyboardInterrupt): the model, the history and
        every piece of state the next iteration depends on.
    checkpoint_every : int, default 10
    resume : bool, default False
        Continue from ``checkpoint`` if it exists (else start from ``net``). The checkpoint
        must come from the same data (SHA-256) and options; ``max_iter`` counts all
        iterations. A resumed run gives bit for bit the result of an uninterrupted one.
    callback : callable, optional
        ``callback(EMIteration)`` after every iteration; returning True stops EM.
    blas_threads : int or None, default 1
        BLAS threads while fitting (through threadpoolctl; None leaves the
        setting alone). The linear algebra here is many small calls, for which extra BLAS
        threads mostly add synchronisation cost (worst on a busy machine), and a fixed
        thread count keeps runs reproducible bit for bit.
    n_jobs : int or None, default None
        Threads of the compiled kernels of the E-step (S >= 2): None or -1 all cores, -k all
        but k - 1, k >= 1 that many. Each (point, region) pair is computed by the same code
        on whatever thread, so the result is the same bit for bit for any ``n_jobs``.
        With a ``client``, the threads of each shard task (default 1).
    client : dask.distributed.Client, optional
        Run the E-step's shards as tasks on this Dask cluster (the partition and the M-step
        stay on this process). The history is the same bit for bit as without a client
        (the shards are reduced in a fixed order; :mod:`fastpath._sharded`). In-memory data
        are sent to the workers once; data in files are read by the workers from the same
        path. A shard whose worker dies is resubmitted.
    shard_size : int, default 2048
        Rows per shard of the E-step (the unit of work of a cluster and the order of the
        sums: part of the result at the rounding level, recorded in checkpoints).
    mask : array_like of bool, shape (N, D), optional
        Data with missing entries: True where X is observed (X may be NaN elsewhere; X must
        then be an array). EM maximises the exact observed-data log-likelihood
        sum_n log p(x_o,n) (:mod:`fastpath._em_missing`: per-row ECM of the last layer and
        the noise over the points observing each row); the history is that objective. All
        True: the run without a mask. Not with a ``client``.

    Returns
    -------
    EMResult
        ``model``, ``log_likelihood`` (exact log p(X), initial model first), ``objective``,
        ``n_iter``, ``converged``, ``noise_floor_hit``, ``step_sizes``, ``times``, ...

    Raises
    ------
    TypeError, ValueError
        Bad arguments (TypeError for a value of the wrong kind, ValueError for one out of
        range; :data:`fastpath._em_options.PARAMETER_CONSTRAINTS` lists what each option
        accepts), data of the wrong width or with NaN / infinite values, initial noise below
        the floor, initial weights outside a box prior, an incompatible checkpoint.
    dgn_core.regions.RegionLimitError
        The initial model has more than ``max_regions`` regions.
    """
    net = check_net(net)
    opts = EMOptions.from_kwargs(
        max_iter=max_iter, tol=tol, update=update, noise=noise, update_prior_cov=update_prior_cov,
        weight_prior=weight_prior, noise_floor=noise_floor, ridge=ridge, max_halvings=max_halvings,
        max_regions=max_regions, seed=seed, progress=progress, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, resume=resume, callback=callback,
        blas_threads=blas_threads, n_jobs=n_jobs, client=client, shard_size=shard_size,
        mask=mask)
    with blas_limit(opts.blas_threads), threads(opts.n_jobs, blas=False):
        return _fit(net, X, opts)


# =========================================================================== the EM loop
@dataclass(frozen=True)
class _Run:
    """What stays fixed during a run: the data, the options and the fingerprints that a
    checkpoint must match."""

    estep: ShardedEStep            # the E-step of the data, shard by shard
    opts: EMOptions
    noise: str                     # the run's noise model
    record: dict[str, Any]         # EMOptions.record of the initial model
    fingerprint: str               # SHA-256 of X

    @property
    def N(self) -> int:
        return self.estep.n_points


@dataclass
class _Point:
    """The parameters within an iteration, with their partition, E-step and objective."""

    model: DGN
    P: Partition                   # the partition of pnet (and of model: same inner layers)
    st: EStepStatistics            # the E-step of model on P
    obj: float                     # the exact log p(X) + log p(W) of model
    pnet: DGN                      # the net P was computed for


def _fit(net: DGN, X: Any, opts: EMOptions) -> EMResult:
    """:func:`_fit_loop` on the data ``X`` (validated in one streaming pass)."""
    from dgn_core.data_source import as_source, summarise

    if opts.mask is not None:  # missing entries: fastpath._em_missing
        from ._em_missing import MissingEStep, missing_data
        Xm, m, summary = missing_data(net, X, opts.mask)
        engine: Callable[[], ShardedEStep] = lambda: MissingEStep(  # noqa: E731
            Xm, m, opts.blas_threads, opts.n_jobs)
    else:
        source = as_source(X, dim=net.data_dim)
        summary = summarise(source)
        engine = lambda: make_estep(  # noqa: E731
            source, client=opts.client, shard_size=opts.shard_size,
            blas_threads=opts.blas_threads, n_jobs=opts.n_jobs)
    opts = replace(opts, noise_floor=max(opts.noise_floor, noise_floor_of_max(summary.max_abs)))
    net = _initial_model(net, opts)
    warn_if_far_from_mean(net, summary.mean, summary.spread)
    with engine() as estep:
        run = _Run(estep, opts, opts.noise_model(net), opts.record(net), summary.fingerprint)
        return _fit_loop(run, net)


def _fit_loop(run: _Run, net: DGN) -> EMResult:
    """The EM loop of :func:`fit_em`: every iteration is the named steps below, in order."""
    opts = run.opts
    state, cur, t_origin = _start(run, net)
    _report_progress(run, f"EM: {net!r}, N = {run.N}, log p(X) = {state.log_likelihood[-1]:.6f}")
    stopped = False
    try:
        while len(state.log_likelihood) - 1 < opts.max_iter and not state.converged:
            it = len(state.log_likelihood)
            t_it = time.perf_counter()
            cur, hit, ecm_gain, rejected = _exact_ecm_step(run, cur, it)
            t_next = state.t_next.copy()
            steps = np.full(net.n_layers - 1, np.nan)     # nan: not attempted
            for l in range(net.n_layers - 2, -1, -1) if opts.train_layers else ():
                cur, t = _inner_layer_step(run, cur, l, float(t_next[l]))
                steps[l] = 0.0 if t is None else t
                if t is not None:
                    t_next[l] = min(1.0, 2.0 * t)
            info, change = _record_iteration(run, state, cur, it, steps, t_next, hit, ecm_gain,
                                             rejected, t_it, t_origin)
            _report_progress(run, _progress_line(run, info, change))
            stopped = opts.callback is not None and opts.callback(info) is True
            if it % opts.checkpoint_every == 0:
                _save_checkpoint(run, state)
            if stopped:
                break
    except KeyboardInterrupt:
        # save the last completed iteration (state is only updated between iterations)
        if _consistent(state):
            _save_checkpoint(run, state)
        raise
    _save_checkpoint(run, state)
    n_iter = len(state.log_likelihood) - 1
    if not state.converged and not stopped and n_iter >= opts.max_iter and opts.max_iter > 0:
        warnings.warn(f"fit_em did not converge in {opts.max_iter} iterations (last per-point "
                      f"change {(state.objective[-1] - state.objective[-2]) / run.N:.3g} >= "
                      f"tol={opts.tol:g}); raise max_iter or tol", ConvergenceWarning, stacklevel=4)
    return _result(run, state, stopped)


def _initial_model(net: DGN, opts: EMOptions) -> DGN:
    """``net`` in the run's noise model, after the checks that need the net: the initial
    noise is not below the floor and the weights lie inside a box prior."""
    nv = net.noise_var_vector
    if np.any(nv < opts.noise_floor):
        raise ValueError(f"the initial noise variance ({float(nv.min()):.3g}) is below "
                         f"noise_floor={opts.noise_floor:g}; raise the noise or lower the floor")
    noise = opts.noise_model(net)
    if noise == "isotropic" and not net.isotropic_noise:
        net = net.replace(noise_var=float(np.mean(nv)))
    elif noise == "diagonal" and net.isotropic_noise:
        net = net.replace(noise_var=np.array(nv))
    prior = opts.weight_prior
    if isinstance(prior, BoxPrior) and not math.isfinite(prior.log_density(net.weights)):
        raise ValueError(f"the initial weights lie outside the box prior [-{prior.bound:g}, "
                         f"{prior.bound:g}]; clip them first (np.clip)")
    return net


def _start(run: _Run, net: DGN) -> tuple[_State, _Point, float]:
    """The state to start from (``net``, or the checkpoint with ``resume``), its first
    point, and the clock origin (moved back by the time already spent on a resumed run)."""
    opts, ckpt = run.opts, run.opts.checkpoint
    t_origin = time.perf_counter()
    if opts.resume and ckpt is not None and ckpt.exists():
        state = _read_checkpoint(ckpt, run.fingerprint, run.record)
        P = _partition(state.pnet, opts.max_regions)
        t_origin -= state.times[-1]
    else:
        P = _partition(net, opts.max_regions)
        state = _State(model=net, pnet=net, log_likelihood=[], objective=[],
                       noise_var=[net.noise_var], step_sizes=[], times=[0.0], floor_hit=[],
                       ecm_gain=[], ecm_rejected=[], n_regions=[len(P)],
                       t_next=np.ones(net.n_layers - 1))
    st = run.estep.statistics(state.model, P)
    if not state.log_likelihood:
        state.log_likelihood.append(st.log_likelihood)
        state.objective.append(st.log_likelihood + log_prior(opts.weight_prior, state.model.weights))
    return state, _Point(state.model, P, st, state.objective[-1], state.pnet), t_origin


def _exact_ecm_step(run: _Run, cur: _Point, it: int) -> tuple[_Point, bool, float, bool]:
    """Step 1 of an iteration: the exact ECM update of the last layer, the noise and Sigma_z.

    Returns the new point, whether the noise floor bound, the change of the exact objective
    and whether the step was rejected (a decrease beyond :data:`ECM_RTOL`, with a warning).
    """
    opts = run.opts
    if not (opts.train_last or opts.train_noise or opts.update_prior_cov):
        return cur, False, 0.0, False
    from ._em_missing import ecm_step  # _mstep._ecm, or its per-row form with missing data
    cand, hit, _ = ecm_step(cur.model, cur.st, cur.P, last=opts.train_last,
                        noise_mode=run.noise if opts.train_noise else None,
                        update_prior_cov=opts.update_prior_cov, prior=opts.weight_prior,
                        floor=opts.noise_floor)
    if cand == cur.model:
        return cur, hit, 0.0, False
    # the partition depends on the inner layers only: the E-step of cand reuses it
    st_c = run.estep.statistics(cand, cur.P)
    obj_c = st_c.log_likelihood + log_prior(opts.weight_prior, cand.weights)
    gain = obj_c - cur.obj
    if obj_c >= cur.obj - ECM_RTOL * (abs(cur.obj) + run.N):
        return replace(cur, model=cand, st=st_c, obj=obj_c), hit, gain, False
    warnings.warn(f"fit_em: iteration {it}: the exact ECM step decreased the objective by "
                  f"{-gain:.3g} (beyond rounding); rejected", RuntimeWarning, stacklevel=5)
    return cur, False, gain, True


def _inner_layer_step(run: _Run, cur: _Point, l: int, t0: float) -> tuple[_Point, float | None]:
    """Step 2 for inner layer ``l`` (0-based): the closed-form target as a search direction,
    backtracked on the exact objective from the step ``t0`` (module notes).

    Returns the new point and the accepted step, or ``cur`` and None when no step is
    accepted (or the surrogate predicts no gain above rounding).
    """
    opts = run.opts
    target, system = _inner_layer_target(cur.model, cur.st, cur.P, l, opts.weight_prior,
                                         opts.ridge)
    Wt0 = _Wt(cur.model, l)
    d = target - Wt0
    # the surrogate's predicted gain of the full step: nothing to try when it is below the
    # rounding level of the objective
    gain1 = system.surrogate(target.ravel()) - system.surrogate(Wt0.ravel())
    if not np.all(np.isfinite(d)) or not gain1 > _MIN_PREDICTED_GAIN * (abs(cur.obj) + run.N):
        return cur, None
    t = t0
    for k in range(opts.max_halvings + 1):
        trial = _with_layer(cur.model, l, Wt0 + t * d)
        # the first trial is usually accepted: evaluate it with the moments the next layer
        # needs (one pass instead of two); later trials need log p(X) only
        obj_t, P_t, st_t = _trial_objective(run, trial, moments=k == 0)
        if P_t is not None and obj_t >= cur.obj:
            st = st_t if st_t is not None else run.estep.statistics(trial, P_t)
            return _Point(trial, P_t, st, obj_t, trial), t
        t *= 0.5
    return cur, None


def _trial_objective(run: _Run, trial: DGN, moments: bool
                     ) -> tuple[float, Partition | None, EStepStatistics | None]:
    """The exact objective of a trial net with its partition, and its E-step when
    ``moments``; -inf (and no partition) outside a box prior or beyond ``max_regions``."""
    lp = log_prior(run.opts.weight_prior, trial.weights)
    if not math.isfinite(lp):
        return -math.inf, None, None
    try:
        P_t = _partition(trial, run.opts.max_regions)
        if moments:
            st_t = run.estep.statistics(trial, P_t)
            return st_t.log_likelihood + lp, P_t, st_t
        return run.estep.log_likelihood(trial, P_t) + lp, P_t, None
    except RegionLimitError:
        return -math.inf, None, None


def _record_iteration(run: _Run, state: _State, cur: _Point, it: int, steps: Arr, t_next: Arr,
                      hit: bool, ecm_gain: float, rejected: bool, t_it: float, t_origin: float
                      ) -> tuple[EMIteration, float]:
    """Append the completed iteration to the history in ``state`` and decide convergence.

    Returns what the callback receives and the per-point change of the objective.
    """
    ll = float(cur.obj - log_prior(run.opts.weight_prior, cur.model.weights))
    prev = state.objective[-1]
    seconds = time.perf_counter() - t_it
    state.model, state.pnet, state.t_next = cur.model, cur.pnet, t_next
    state.log_likelihood.append(ll)
    state.objective.append(float(cur.obj))
    state.noise_var.append(cur.model.noise_var)
    state.step_sizes.append(steps)
    state.ecm_gain.append(float(ecm_gain))
    state.n_regions.append(len(cur.P))
    if rejected:
        state.ecm_rejected.append(it)
    if hit:
        state.floor_hit.append(it)
    state.times.append(time.perf_counter() - t_origin)
    change = (cur.obj - prev) / run.N
    state.converged = bool(change < run.opts.tol or change <= 0.0)
    info = EMIteration(it, cur.model, ll, float(cur.obj), steps.copy(), hit, seconds, len(cur.P))
    return info, change


def _progress_line(run: _Run, info: EMIteration, change: float) -> str:
    """The progress line of one iteration ([FLOOR] when the noise floor bound)."""
    ll, N = info.log_likelihood, run.N
    nvm = float(np.mean(info.model.noise_var))
    steps = ",".join("-" if not np.isfinite(s) else f"{s:g}" for s in info.step_sizes)
    return (f"EM {info.iteration:4d}/{run.opts.max_iter}  log p(X) = {ll:.6f}  ({ll / N:.6f}/pt, "
            f"{change:+.3g})  noise {nvm:.4g}{' [FLOOR]' if info.noise_floor_hit else ''}  steps "
            f"{steps}  {info.n_regions} regions  {info.seconds:.2f} s")


def _report_progress(run: _Run, line: str) -> None:
    if run.opts.progress:
        print(line, file=sys.stderr, flush=True)


def _save_checkpoint(run: _Run, state: _State) -> None:
    if run.opts.checkpoint is not None:
        _write_checkpoint(run.opts.checkpoint, state, run.fingerprint, run.record)


def _result(run: _Run, state: _State, stopped: bool) -> EMResult:
    """The :class:`EMResult` of the history in ``state``."""
    n_iter = len(state.log_likelihood) - 1
    return EMResult(
        model=state.model, log_likelihood=list(state.log_likelihood),
        objective=list(state.objective), n_iter=n_iter, converged=state.converged,
        noise_floor_hit=list(state.floor_hit),
        step_sizes=np.array(state.step_sizes, dtype=np.float64).reshape(
            n_iter, state.model.n_layers - 1),
        noise_var=list(state.noise_var), times=np.asarray(state.times, dtype=np.float64),
        ecm_gain=list(state.ecm_gain), ecm_rejected=list(state.ecm_rejected),
        n_regions=list(state.n_regions), n_points=run.N, stopped=stopped, options=run.record)


# =========================================================================== E-step glue
def _e_step(net: DGN, X: Arr, P: Partition) -> EStepStatistics:
    from .distributions import estep_statistics
    return estep_statistics(net, X, partition=P)


def _partition(net: DGN, max_regions: int) -> Partition:
    from .partition_walk import partition
    return partition(net, max_regions=max_regions)


# =========================================================================== one step, gradient
def em_step(net: DGN, X: ArrayLike, *, noise: str | None = None, update_prior_cov: bool = False,
            weight_prior: Prior | None = None, noise_floor: float = 0.0, ridge: float = DEFAULT_RIDGE,
            partition: Partition | None = None) -> tuple[DGN, dict[str, Any]]:
    """One M-step from one E-step at ``net``: the fast counterpart of
    :func:`verified_dgn.em.em_step` (same semantics; compared in tests/test_em_exact.py).

    From the E-step at theta = ``net``:

    * the last layer by its exact ECM update, then the noise given the new last layer (exact
      ECM, clipped at ``noise_floor``), then Sigma_z with ``update_prior_cov``;
    * for every inner layer l, the closed-form target of docs/DESIGN.md §2.5's Kronecker system with
      all other parameters at theta (the full step t = 1 that :func:`fit_em` backtracks).

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    noise : {"isotropic", "diagonal"}, optional
        Default: the net's noise model.
    update_prior_cov : bool
    weight_prior : GaussianPrior, LaplacePrior, BoxPrior or None
    noise_floor : float, default 0
        Raised to ``min_noise_floor(X)`` when below it (as in :func:`fit_em`).
    ridge : float
        Proximal ridge of the inner systems (relative to their mean diagonal).
    partition : Partition, optional
        ``fastpath.partition(net)``.

    Returns
    -------
    new_net : DGN
        ``net`` with the ECM updates (last layer, noise, Sigma_z); inner layers unchanged.
    info : dict
        ``log_likelihood`` (exact log p(X) at theta); ``last_layer`` (W (D, D_{L-1}),
        v (D,)); ``noise_var``; ``prior_cov`` (S, S) or None; ``inner`` list over l = 1..L-1
        of (W_l, v_l) targets; ``inner_system`` list of (M, r) (row-major vec of [W_l, v_l]);
        ``noise_floor_hit``.
    """
    net = check_net(net)
    X = check_data(X, dim=net.data_dim)
    noise = check_option("noise", noise)
    if noise is None:
        noise = "isotropic" if net.isotropic_noise else "diagonal"
    prior = check_option("weight_prior", weight_prior)
    floor = max(check_option("noise_floor", noise_floor), min_noise_floor(X))
    ridge = check_option("ridge", ridge)
    P = partition if partition is not None else _partition(net, 100_000)
    st = _e_step(net, X, P)
    new, hit, _ = _ecm(net, st, P, last=True, noise_mode=noise,
                       update_prior_cov=bool(update_prior_cov), prior=prior, floor=floor)
    inner, systems = [], []
    for l in range(net.n_layers - 1):
        target, system = _inner_layer_target(net, st, P, l, prior, ridge)
        inner.append((target[:, :-1], target[:, -1]))
        systems.append((system.dense(), system.r))
    info = {"log_likelihood": st.log_likelihood,
            "last_layer": (np.array(new.weights[-1]), np.array(new.biases[-1])),
            "noise_var": new.noise_var,
            "prior_cov": np.array(new.prior_cov) if update_prior_cov else None,
            "inner": inner, "inner_system": systems, "noise_floor_hit": hit}
    return new, info


def log_likelihood_gradient(net: DGN, X: ArrayLike, *, partition: Partition | None = None
                            ) -> tuple[float, dict[str, Any]]:
    """The exact log p(X) and its gradient with respect to every weight, bias and the noise.

    By Fisher's identity, grad log p(x) = E_{p(z|x)}[grad log p(x, z)], exact here because
    the posterior moments are exact; on region w, log p(x | z) is a quadratic in the
    parameters of every layer with the activation pattern frozen (it is constant near almost
    every z), so the gradient is that of the frozen-activation Q function at theta:
    r - M vec([W^l, v^l]) for layer l (docs/DESIGN.md §2.5), and for the noise
    d/d sigma_d^2 = -N / (2 sigma_d^2) + sum_n E[(x_n - g(z))_d^2 | x_n] / (2 sigma_d^4).

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    partition : Partition, optional

    Returns
    -------
    log_likelihood : float
    grads : dict
        ``weights``: list of (D_l, D_{l-1}) arrays; ``biases``: list of (D_l,) arrays;
        ``noise_var``: float (isotropic net) or (D,) array (diagonal). The gradient with
        respect to Sigma_z is not computed.
    """
    net = check_net(net)
    X = check_data(X, dim=net.data_dim)
    P = partition if partition is not None else _partition(net, 100_000)
    st = _e_step(net, X, P)
    sw = _sweep_maps(net, P)
    nv = np.asarray(net.noise_var_vector, dtype=np.float64)
    gW, gv = [], []
    for l in range(net.n_layers):
        Pl, pl = sw.inputs[l]
        H, Xeta, eta = _layer_moments(Pl, pl, st)
        F, c = _output_map(net, sw.slopes, l, sw.R)
        g = _inner_gradient(F, c, H, Xeta, eta, 1.0 / nv, _Wt(net, l))
        gW.append(g[:, :-1])
        gv.append(g[:, -1])
    gn = -0.5 * st.n / nv + 0.5 * st.resid2 / (nv * nv)
    return st.log_likelihood, {"weights": gW, "biases": gv,
                               "noise_var": float(gn.sum()) if net.isotropic_noise else gn}
