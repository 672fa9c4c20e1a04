"""The result types of :func:`fastpath.fit_em`: :class:`EMIteration` (passed to the callback
after every iteration) and :class:`EMResult` (the outcome). Both are public through
:mod:`fastpath.em`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN

__all__ = ["EMIteration", "EMResult"]

Arr = NDArray[np.float64]


@dataclass
class EMIteration:
    """State passed to ``callback`` after every iteration.

    Attributes
    ----------
    iteration : int
        1 for the first iteration.
    model : DGN
        The parameters after this iteration.
    log_likelihood : float
        Exact log p(X) of ``model``.
    objective : float
        log p(X) + log p(W) + log p(v) (= log_likelihood without weight and bias priors).
    step_sizes : ndarray, shape (L-1,)
        Accepted step of every inner layer (0: rejected, nan: not attempted).
    noise_floor_hit : bool
    seconds : float
        Wall-clock time of this iteration.
    n_regions : int
        Regions of the partition of ``model``.
    val_log_likelihood : float or None
        Exact log p(X_val) of ``model`` (None without held-out data).
    """

    iteration: int
    model: DGN
    log_likelihood: float
    objective: float
    step_sizes: Arr
    noise_floor_hit: bool
    seconds: float
    n_regions: int
    val_log_likelihood: float | None = None


@dataclass
class EMResult:
    """The outcome of :func:`fit_em` (fitted attributes in scikit-learn style).

    Attributes
    ----------
    model : DGN
        The trained model: the last one, or with early stopping (``n_iter_no_change``) the
        one of ``best_iteration``.
    log_likelihood : list of float
        Exact log p(X) of the initial model and after every iteration (length n_iter + 1).
    objective : list of float
        log p(X) + log p(W) + log p(v): the monotone quantity (equal to ``log_likelihood``
        without weight and bias priors).
    n_iter : int
        Iterations run (including those before a resume).
    converged : bool
        The per-point change of the objective fell below ``tol``.
    noise_floor_hit : list of int
        Iterations whose noise update was clipped at the floor.
    step_sizes : ndarray, shape (n_iter, L-1)
        Accepted backtracking step t of every inner layer (0: no step accepted; nan: not
        attempted); column j is layer j + 1.
    noise_var : list
        Noise variance (float or (D,) array) of the initial model and after every iteration.
    times : ndarray, shape (n_iter + 1,)
        Cumulative wall-clock seconds (0 first).
    ecm_gain : list of float
        Change of the exact objective made by the ECM step (last layer + noise) of every
        iteration (>= 0 up to rounding; see :data:`ECM_RTOL`).
    ecm_rejected : list of int
        Iterations whose ECM step was rejected because rounding made it decrease the
        objective beyond the tolerance.
    n_regions : list of int
        Regions of the partition after every iteration (initial model first).
    n_points : int
        N.
    stopped : bool
        ``callback`` returned True.
    val_log_likelihood : list of float
        Exact log p(X_val) of the initial model and after every iteration (empty without
        ``X_val``).
    n_val_points : int
        N_val (0 without ``X_val``).
    best_iteration : int or None
        The (first) iteration of the largest held-out log-likelihood (None without X_val).
    early_stopped : bool
        EM stopped because the held-out log-likelihood had not improved for
        ``n_iter_no_change`` iterations; ``model`` is then the model of ``best_iteration``.
    init_results : list of EMResult
        With ``n_init`` > 1: the result of every run, in start order (the k-th started from
        start k; their own ``init_results`` are empty). Empty for a single run.
    best_init : int
        The index in ``init_results`` of this (the kept) run; 0 for a single run.
    history : dict
        Per-iteration columns (iteration, log_likelihood, per_point, objective, noise_var
        (mean), step_l..., seconds, n_regions, noise_floor_hit, and with held-out data
        val_log_likelihood, val_per_point) for writing a CSV.
    """

    model: DGN
    log_likelihood: list[float]
    objective: list[float]
    n_iter: int
    converged: bool
    noise_floor_hit: list[int]
    step_sizes: Arr
    noise_var: list[Any]
    times: Arr
    ecm_gain: list[float]
    ecm_rejected: list[int]
    n_regions: list[int]
    n_points: int
    stopped: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    val_log_likelihood: list[float] = field(default_factory=list)
    n_val_points: int = 0
    best_iteration: int | None = None
    early_stopped: bool = False
    init_results: list[EMResult] = field(default_factory=list)
    best_init: int = 0

    @property
    def history(self) -> dict[str, Arr]:
        n = self.n_iter + 1
        out: dict[str, Arr] = {
            "iteration": np.arange(n, dtype=np.float64),
            "log_likelihood": np.asarray(self.log_likelihood, dtype=np.float64),
            "per_point": np.asarray(self.log_likelihood, dtype=np.float64) / self.n_points,
            "objective": np.asarray(self.objective, dtype=np.float64),
            "noise_var": np.array([float(np.mean(v)) for v in self.noise_var]),
        }
        steps = np.vstack([np.full((1, self.step_sizes.shape[1]), np.nan), self.step_sizes])
        for j in range(steps.shape[1]):
            out[f"step_layer{j + 1}"] = steps[:, j]
        out["seconds"] = np.asarray(self.times, dtype=np.float64)
        out["n_regions"] = np.asarray(self.n_regions, dtype=np.float64)
        hit = np.zeros(n)
        hit[[i for i in self.noise_floor_hit if i < n]] = 1.0
        out["noise_floor_hit"] = hit
        if self.val_log_likelihood:
            val = np.asarray(self.val_log_likelihood, dtype=np.float64)
            out["val_log_likelihood"] = val
            out["val_per_point"] = val / self.n_val_points
        return out

    def __repr__(self) -> str:
        val = (f", held-out log p {self.val_log_likelihood[0]:.6g} -> "
               f"{self.val_log_likelihood[-1]:.6g}" if self.val_log_likelihood else "")
        runs = (f", best of {len(self.init_results)} starts: {self.best_init}"
                if self.init_results else "")
        return (f"EMResult({self.n_iter} iterations, converged={self.converged}, "
                f"log p(X) {self.log_likelihood[0]:.6g} -> {self.log_likelihood[-1]:.6g}"
                f"{val}{runs}, {self.model!r})")


# =========================================================================== validation
