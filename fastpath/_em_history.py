"""The record of a :func:`fastpath.fit_em` run: each completed iteration appended to the
history (with convergence and early stopping decided), its progress line, the checkpoint
write and the :class:`~fastpath.em.EMResult` built from the history.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN
from dgn_core.priors import log_prior

from ._em_checkpoint import _State, _write_checkpoint
from ._em_options import EMOptions
from ._em_result import EMIteration, EMResult

if TYPE_CHECKING:
    from .em import _Point, _Run

__all__ = ["_log_priors", "_progress_line", "_record_iteration", "_report_progress", "_result",
           "_save_checkpoint"]

Arr = NDArray[np.float64]


def _log_priors(opts: EMOptions, net: DGN) -> float:
    """log p(W) + log p(v) of ``net`` under the run's priors (0 without priors)."""
    return log_prior(opts.weight_prior, net.weights) + log_prior(opts.bias_prior, net.biases)



def _record_iteration(run: _Run, state: _State, cur: _Point, it: int, steps: Arr, t_next: Arr,
                      hit: bool, ecm_gain: float, rejected: bool, val: float | None, t_it: float,
                      t_origin: float) -> tuple[EMIteration, float]:
    """Append the completed iteration to the history in ``state`` and decide convergence
    and early stopping (``val``: log p(X_val) of ``cur.model``, None without held-out data).

    Returns what the callback receives and the per-point change of the objective.
    """
    ll = float(cur.obj - _log_priors(run.opts, cur.model))
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
    if val is not None:
        state.val_log_likelihood.append(float(val))
        best = state.best_iteration
        if best == it:
            state.best_model = cur.model
        patience = run.opts.n_iter_no_change
        state.early_stopped = bool(patience is not None and best is not None
                                   and it - best >= patience)
    info = EMIteration(it, cur.model, ll, float(cur.obj), steps.copy(), hit, seconds, len(cur.P),
                       val)
    return info, change


def _progress_line(run: _Run, info: EMIteration, change: float) -> str:
    """The progress line of one iteration ([FLOOR] when the noise floor bound)."""
    ll, N = info.log_likelihood, run.N
    nvm = float(np.mean(info.model.noise_var))
    steps = ",".join("-" if not np.isfinite(s) else f"{s:g}" for s in info.step_sizes)
    val = ("" if info.val_log_likelihood is None or run.val is None
           else f"  held-out {info.val_log_likelihood / run.val.n_points:.6f}/pt")
    return (f"{run.label}EM {info.iteration:4d}/{run.opts.max_iter}  log p(X) = {ll:.6f}  "
            f"({ll / N:.6f}/pt, {change:+.3g}){val}  noise {nvm:.4g}"
            f"{' [FLOOR]' if info.noise_floor_hit else ''}  steps {steps}  {info.n_regions} "
            f"regions  {info.seconds:.2f} s")


def _report_progress(run: _Run, line: str) -> None:
    if run.opts.progress:
        print(line, file=sys.stderr, flush=True)


def _save_checkpoint(run: _Run, state: _State) -> None:
    if run.opts.checkpoint is not None:
        _write_checkpoint(run.opts.checkpoint, state, run.fingerprint, run.record)


def _result(run: _Run, state: _State, stopped: bool) -> EMResult:
    """The :class:`EMResult` of the history in ``state``."""
    n_iter = len(state.log_likelihood) - 1
    model = state.best_model if state.early_stopped and state.best_model is not None \
        else state.model
    return EMResult(
        model=model, log_likelihood=list(state.log_likelihood),
        objective=list(state.objective), n_iter=n_iter, converged=state.converged,
        noise_floor_hit=list(state.floor_hit),
        step_sizes=np.array(state.step_sizes, dtype=np.float64).reshape(
            n_iter, state.model.n_layers - 1),
        noise_var=list(state.noise_var), times=np.asarray(state.times, dtype=np.float64),
        ecm_gain=list(state.ecm_gain), ecm_rejected=list(state.ecm_rejected),
        n_regions=list(state.n_regions), n_points=run.N, stopped=stopped, options=run.record,
        val_log_likelihood=list(state.val_log_likelihood),
        n_val_points=0 if run.val is None else run.val.n_points,
        best_iteration=state.best_iteration, early_stopped=state.early_stopped)
