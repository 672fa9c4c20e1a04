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
options in :mod:`fastpath._em_options`, the checkpoints in :mod:`fastpath._em_checkpoint`,
the history and progress lines in :mod:`fastpath._em_history` and the starts (``n_init``) in
:mod:`fastpath._em_starts`.

Weight priors apply to the weight matrices W^1..W^L, bias priors (``bias_prior``, the same
kinds) to the bias vectors v^1..v^L; neither to the noise or Sigma_z. With priors, EM
maximises log p(X) + log p(W) + log p(v) (MAP); that objective is the monotone quantity and
is reported in :attr:`EMResult.objective` beside the log-likelihood.

``update=("biases", "noise")`` trains the biases of every layer with the weights fixed: the
bias-only update of the authors' code (Balestriero et al. 2020, which solves each layer's
bias in closed form from one E-step, first layer to last, under a Gaussian bias prior of
variance 200, without a check of the likelihood). Here the last layer's bias is an exact ECM
step and each inner layer's bias closed-form target is backtracked like a layer's (steps 1
and 2 above, restricted to the bias column), so the objective is monotone as well.

The unbounded likelihood (Mattei & Frellsen 2018): as a generator passes through data points
the likelihood grows without bound as sigma^2 -> 0. The noise update is clipped at
``noise_floor``; iterations where the floor binds are listed in
:attr:`EMResult.noise_floor_hit` and flagged in the progress line.

Cost of one iteration: one E-step with moments after the ECM step, and per inner layer a
partition and an E-step with moments of every backtracking trial net (the accepted trial's
moments serve the next layer; log p(X) alone would cost as much, its orthant terms dominate).
With S = 2 the E-step over the polygons of the partition dominates. ``benchmarks/em.py`` measures it.

Convergence: EM stops when the objective gains less than ``tol`` per point in one
iteration (or nothing at all); with the exact history this is a statement about the exact
log-likelihood, not a bound. Reproducibility: no random numbers are drawn; given (net, X,
options) and a fixed BLAS thread count (``blas_threads``, default 1) a run is reproducible
bit for bit, and so is a run resumed from a checkpoint.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

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

from ._em_checkpoint import _consistent, _read_checkpoint, _State
from ._em_history import (
    _log_priors,
    _progress_line,
    _record_iteration,
    _report_progress,
    _result,
    _save_checkpoint,
)
from ._em_options import (
    DEFAULT_RIDGE,
    EMOptions,
    noise_floor_of_max,
    warn_if_far_from_mean,
)
from ._em_result import EMIteration, EMResult
from ._em_step import _partition, em_step, log_likelihood_gradient
from ._mstep import (
    _ecm,
    _inner_layer_target,
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
    bias_prior: Prior | None = None,
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
    X_val: Any = None,
    n_iter_no_change: int | None = None,
    n_init: int = 1,
    init: Any = None,
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
    update : collection of {"layers", "last", "noise", "biases"}, default ("layers", "noise")
        What to train: "layers" all layers (last by ECM, inner by backtracked closed form),
        "last" the last layer only, "noise" the noise variance, "biases" the bias vectors of
        every layer with the weights fixed (module notes; with "last" the last layer's
        weights are trained too, with "layers" it adds nothing).
    noise : {"isotropic", "diagonal"}, optional
        Noise model (default: the net's: isotropic if ``net.noise_var`` is a float).
    update_prior_cov : bool, default False
        Also update Sigma_z (exact ECM: the mean of E[z z^T | x]).
    weight_prior : GaussianPrior, LaplacePrior, BoxPrior or None
        Prior on the weight matrices; EM then maximises log p(X) + log p(W). The initial
        weights must lie inside a box prior.
    bias_prior : GaussianPrior, LaplacePrior, BoxPrior or None
        Prior on the bias vectors of every layer (independent entries); EM then maximises
        log p(X) + log p(W) + log p(v). The initial biases must lie inside a box prior.
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
    X_val : array_like of shape (N_val, D), DataSource or path, optional
        Held-out data (same forms as ``X``): the exact log p(X_val) of the initial model
        and after every iteration is recorded in :attr:`EMResult.val_log_likelihood` and
        the progress line (one log p(x) pass over X_val per iteration, counted in
        ``times``). It does not steer EM unless ``n_iter_no_change`` is set; with
        ``n_init`` > 1 it chooses the kept run.
    n_iter_no_change : int, optional
        Early stopping (needs ``X_val``): stop when the held-out log-likelihood has not
        exceeded its best value for this many iterations, and return the model of the best
        held-out iteration (:attr:`EMResult.best_iteration`; the history runs on to the
        stop). None (default) runs to convergence or ``max_iter``.
    n_init : int, default 1
        Runs from different starts: start 0 is ``init`` (``net`` by default), starts
        1..n_init-1 are random nets of ``net``'s architecture (PyTorch's default
        initialisation, drawn from ``numpy.random.default_rng([seed, k])``, with ``net``'s
        last-layer bias, noise and Sigma_z so that every start sits where ``net`` puts its
        outputs). The kept run has the largest final training objective, or with ``X_val``
        the largest held-out log-likelihood of its returned model (first on ties); every
        run's result is in :attr:`EMResult.init_results`. The runs are sequential (each
        E-step already uses every core, or the ``client``'s cluster). With a
        ``checkpoint``, run k is checkpointed to ``<name>.init<k>.npz`` and ``resume``
        continues every run (finished runs are read back, not re-run).
    init : None, "random", DGN or path, optional
        Start 0: None ``net`` itself; "random" a seeded random net like starts 1.. (drawn
        with k = 0); a DGN or the path of a model saved by :meth:`DGN.save` (a warm start,
        e.g. from an earlier fit), which must have ``net``'s widths and activation.
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
        ``n_iter``, ``converged``, ``noise_floor_hit``, ``step_sizes``, ``times``,
        ``val_log_likelihood``, ``best_iteration``, ``init_results``, ...

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
        weight_prior=weight_prior, bias_prior=bias_prior, noise_floor=noise_floor, ridge=ridge,
        max_halvings=max_halvings,
        max_regions=max_regions, seed=seed, progress=progress, checkpoint=checkpoint,
        checkpoint_every=checkpoint_every, resume=resume, callback=callback,
        blas_threads=blas_threads, n_jobs=n_jobs, client=client, shard_size=shard_size,
        X_val=X_val, n_iter_no_change=n_iter_no_change, n_init=n_init, init=init,
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
    val: ShardedEStep | None = None  # the held-out data's log p(x), or None
    label: str = ""                # "[start k/K] " in progress lines with n_init > 1

    @property
    def N(self) -> int:
        return self.estep.n_points


@dataclass
class _Point:
    """The parameters within an iteration, with their partition, E-step and objective."""

    model: DGN
    P: Partition                   # the partition of pnet (and of model: same inner layers)
    st: EStepStatistics            # the E-step of model on P
    obj: float                     # the exact log p(X) + log p(W) + log p(v) of model
    pnet: DGN                      # the net P was computed for


def _fit(net: DGN, X: Any, opts: EMOptions) -> EMResult:
    """:func:`_fit_loop` on the data ``X`` (validated in one streaming pass), once per start
    (``n_init``), keeping the best run (:mod:`fastpath._em_starts`)."""
    from dgn_core.data_source import as_source, summarise

    from ._em_starts import best_run, checkpoint_of_start, starts

    kw: dict[str, Any] = dict(client=opts.client, shard_size=opts.shard_size,
                              blas_threads=opts.blas_threads, n_jobs=opts.n_jobs)
    if opts.mask is not None:  # missing entries: fastpath._em_missing
        from ._em_missing import MissingEStep, missing_data
        Xm, m, summary = missing_data(net, X, opts.mask)
        engine: Callable[[], ShardedEStep] = lambda: MissingEStep(  # noqa: E731
            Xm, m, opts.blas_threads, opts.n_jobs)
    else:
        source = as_source(X, dim=net.data_dim)
        summary = summarise(source)
        engine = lambda: make_estep(source, **kw)  # noqa: E731
    opts = replace(opts, noise_floor=max(opts.noise_floor, noise_floor_of_max(summary.max_abs)))
    val_source, val_fp = _held_out(opts.X_val, net.data_dim)
    nets = [_initial_model(start, opts) for start in starts(net, opts)]
    warn_if_far_from_mean(nets[0], summary.mean, summary.spread)
    with engine() as estep, contextlib.ExitStack() as stack:
        val = None if val_source is None else stack.enter_context(make_estep(val_source, **kw))
        results = []
        for k, start in enumerate(nets):
            opts_k = replace(opts, checkpoint=checkpoint_of_start(opts.checkpoint, k, opts.n_init))
            record = {**opts_k.record(start), "val_sha256": val_fp}
            label = f"[start {k + 1}/{opts.n_init}] " if opts.n_init > 1 else ""
            run = _Run(estep, opts_k, opts_k.noise_model(start), record, summary.fingerprint,
                       val, label)
            results.append(_fit_loop(run, start))
    return best_run(results)


def _held_out(X_val: Any, dim: int) -> tuple[Any, str | None]:
    """The DataSource of the held-out data and its fingerprint (None, None without)."""
    if X_val is None:
        return None, None
    from dgn_core.data_source import as_source, summarise
    from dgn_core.exceptions import DataError

    try:
        source = as_source(X_val, dim=dim)
        return source, summarise(source).fingerprint
    except DataError as exc:
        raise DataError(f"X_val (held-out data): {exc}") from None


def _fit_loop(run: _Run, net: DGN) -> EMResult:
    """The EM loop of :func:`fit_em`: every iteration is the named steps below, in order."""
    opts = run.opts
    state, cur, t_origin = _start(run, net)
    val0 = (f", held-out log p = {state.val_log_likelihood[-1]:.6f}"
            if state.val_log_likelihood else "")
    _report_progress(run, f"{run.label}EM: {net!r}, N = {run.N}, "
                          f"log p(X) = {state.log_likelihood[-1]:.6f}"
                          f"{val0}")
    stopped = False
    try:
        while (len(state.log_likelihood) - 1 < opts.max_iter and not state.converged
               and not state.early_stopped):
            it = len(state.log_likelihood)
            t_it = time.perf_counter()
            cur, hit, ecm_gain, rejected = _exact_ecm_step(run, cur, it)
            t_next = state.t_next.copy()
            steps = np.full(net.n_layers - 1, np.nan)     # nan: not attempted
            inner = opts.train_layers or opts.train_biases
            for l in range(net.n_layers - 2, -1, -1) if inner else ():
                cur, t = _inner_layer_step(run, cur, l, float(t_next[l]))
                steps[l] = 0.0 if t is None else t
                if t is not None:
                    t_next[l] = min(1.0, 2.0 * t)
            val = None if run.val is None else run.val.log_likelihood(cur.model, cur.P)
            info, change = _record_iteration(run, state, cur, it, steps, t_next, hit, ecm_gain,
                                             rejected, val, t_it, t_origin)
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
    if (not state.converged and not stopped and not state.early_stopped
            and n_iter >= opts.max_iter and opts.max_iter > 0):
        warnings.warn(f"fit_em {run.label}did not converge in {opts.max_iter} iterations (last per-point "
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
    for prior, what, arrays in ((opts.weight_prior, "weights", net.weights),
                                (opts.bias_prior, "biases", net.biases)):
        if isinstance(prior, BoxPrior) and not math.isfinite(prior.log_density(arrays)):
            raise ValueError(f"the initial {what} lie outside the box prior [-{prior.bound:g}, "
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
        state.objective.append(st.log_likelihood + _log_priors(opts, state.model))
        if run.val is not None:
            state.val_log_likelihood.append(run.val.log_likelihood(state.model, P))
            state.best_model = state.model
    return state, _Point(state.model, P, st, state.objective[-1], state.pnet), t_origin


def _exact_ecm_step(run: _Run, cur: _Point, it: int) -> tuple[_Point, bool, float, bool]:
    """Step 1 of an iteration: the exact ECM update of the last layer, the noise and Sigma_z.

    Returns the new point, whether the noise floor bound, the change of the exact objective
    and whether the step was rejected (a decrease beyond :data:`ECM_RTOL`, with a warning).
    """
    opts = run.opts
    if not (opts.train_last or opts.train_biases or opts.train_noise or opts.update_prior_cov):
        return cur, False, 0.0, False
    if opts.mask is not None:
        from ._em_missing import ecm_step  # the per-row step of the observed-data Q
        cand, hit, _ = ecm_step(cur.model, cur.st, cur.P, last=opts.train_last,
                                noise_mode=run.noise if opts.train_noise else None,
                                update_prior_cov=opts.update_prior_cov, prior=opts.weight_prior,
                                floor=opts.noise_floor)
    else:
        cand, hit, _ = _ecm(cur.model, cur.st, cur.P, last=opts.train_last or opts.train_biases,
                            noise_mode=run.noise if opts.train_noise else None,
                            update_prior_cov=opts.update_prior_cov, prior=opts.weight_prior,
                            floor=opts.noise_floor, bias_prior=opts.bias_prior,
                            last_biases_only=not opts.train_last)
    if cand == cur.model:
        return cur, hit, 0.0, False
    # the partition depends on the inner layers only: the E-step of cand reuses it
    st_c = run.estep.statistics(cand, cur.P)
    obj_c = st_c.log_likelihood + _log_priors(opts, cand)
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
                                         opts.ridge, bias_prior=opts.bias_prior,
                                         biases_only=not opts.train_layers)
    Wt0 = _Wt(cur.model, l)
    d = target - Wt0
    # the surrogate's predicted gain of the full step, priors included (the target maximises
    # their sum, and a shrinking step can lower the surrogate alone): nothing to try when it
    # is below the rounding level of the objective
    wp, bp = opts.priors
    gain1 = (system.surrogate(target.ravel()) - system.surrogate(Wt0.ravel())
             + log_prior(wp, [target[:, :-1]]) - log_prior(wp, [Wt0[:, :-1]])
             + log_prior(bp, [target[:, -1]]) - log_prior(bp, [Wt0[:, -1]]))
    if not np.all(np.isfinite(d)) or not gain1 > _MIN_PREDICTED_GAIN * (abs(cur.obj) + run.N):
        return cur, None
    t = t0
    for _ in range(opts.max_halvings + 1):
        trial = _with_layer(cur.model, l, Wt0 + t * d)
        # every trial is evaluated with the moments the next layer needs: a pass without
        # them costs as much (the orthant terms dominate both), so an accepted trial never
        # needs a second pass
        obj_t, P_t, st_t = _trial_objective(run, trial)
        if P_t is not None and st_t is not None and obj_t >= cur.obj:
            return _Point(trial, P_t, st_t, obj_t, trial), t
        t *= 0.5
    return cur, None


def _trial_objective(run: _Run, trial: DGN
                     ) -> tuple[float, Partition | None, EStepStatistics | None]:
    """The exact objective of a trial net with its partition and E-step; -inf (and no
    partition) outside a box prior or beyond ``max_regions``."""
    lp = _log_priors(run.opts, trial)
    if not math.isfinite(lp):
        return -math.inf, None, None
    try:
        P_t = _partition(trial, run.opts.max_regions)
        st_t = run.estep.statistics(trial, P_t)
        return st_t.log_likelihood + lp, P_t, st_t
    except RegionLimitError:
        return -math.inf, None, None
