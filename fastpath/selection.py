"""Model selection with the exact likelihood: widths by AIC / BIC, and anomaly scores.

Because log p(X) is exact (Theorem 1), information criteria and held-out likelihoods need no
bound or estimate:

    AIC = 2 k - 2 log p(X),    BIC = k log N - 2 log p(X)

with k = :attr:`verified_dgn.DGN.n_params` (weights, biases and noise variances), and the
held-out log p(X_val). Each candidate (latent dimension, activation, hidden widths) is trained
by :func:`fastpath.fit_em` from ``DGN.random(widths, seed=seed)``.
The anomaly score of a point is its exact negative log-density -log p(x).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.data import check_data
from dgn_core.model import DGN
from dgn_core.validation import check_int

__all__ = ["CRITERIA", "SelectionTable", "anomaly_scores", "select_models", "select_widths"]


@dataclass
class SelectionTable:
    """Result of :func:`select_models` / :func:`select_widths`: one row per candidate.

    Attributes
    ----------
    rows : list of dict
        ``widths`` (full widths (S, ..., D)), ``hidden`` (hidden widths), ``latent_dim``,
        ``activation``, ``log_likelihood`` (exact log p(X) of the trained model),
        ``per_point``, ``n_params``, ``aic``, ``bic``, ``n_iter``, ``converged``,
        ``seconds``; with held-out data also ``val_log_likelihood`` (exact log p(X_val))
        and ``val_per_point``.
    models : list of DGN
        The trained models, in the order of ``rows``.
    n_points : int
    n_val_points : int
        0 without held-out data.
    """

    rows: list[dict[str, Any]]
    models: list[DGN] = field(repr=False)
    n_points: int
    n_val_points: int = 0

    def best(self, criterion: str = "bic") -> int:
        """Index of the row with the smallest ``criterion`` ("aic" or "bic"), or the
        largest "log_likelihood" / "val_log_likelihood" (held-out; needs X_val)."""
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        if criterion == "val_log_likelihood" and not self.n_val_points:
            raise ValueError("criterion 'val_log_likelihood' needs held-out data (X_val)")
        vals = np.array([r[criterion] for r in self.rows], dtype=np.float64)
        return int(np.argmin(vals) if criterion in ("aic", "bic") else np.argmax(vals))

    def to_text(self) -> str:
        """The table as aligned text (the best BIC, and the best held-out row, marked)."""
        val = self.n_val_points > 0
        head = (f"{'S':>2} {'activation':>10} {'hidden widths':>14} {'log p(X)':>14} "
                f"{'per point':>10}" + (f" {'held-out/pt':>11}" if val else "")
                + f" {'k':>6} {'AIC':>14} {'BIC':>14} {'iters':>6} {'conv':>5}")
        lines = [head]
        best_bic = self.best("bic")
        best_val = self.best("val_log_likelihood") if val else -1
        for i, r in enumerate(self.rows):
            marks = (["best BIC"] if i == best_bic else []) + \
                (["best held-out"] if i == best_val else [])
            lines.append(
                f"{r['latent_dim']:>2} {r['activation']:>10} "
                f"{','.join(map(str, r['hidden'])) or '-':>14} {r['log_likelihood']:14.4f} "
                f"{r['per_point']:10.5f}" + (f" {r['val_per_point']:11.5f}" if val else "")
                + f" {r['n_params']:6d} {r['aic']:14.4f} {r['bic']:14.4f} "
                f"{r['n_iter']:6d} {'yes' if r['converged'] else 'no':>5}"
                + (f"  <- {', '.join(marks)}" if marks else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


#: what :meth:`SelectionTable.best` ranks by
CRITERIA = ("aic", "bic", "log_likelihood", "val_log_likelihood")


def _check_candidates(candidates: Any) -> list[tuple[int, ...]]:
    """The candidates as tuples of widths: TypeError for a value of the wrong kind (not a
    list, a width that is not an integer), ValueError for an empty list or a width < 1."""
    example = "a non-empty list of hidden widths, e.g. [(4,), (8, 8)]"
    if isinstance(candidates, np.ndarray):
        candidates = candidates.tolist()
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise TypeError(f"candidates must be {example}, got {type(candidates).__name__}")
    if not candidates:
        raise ValueError(f"candidates must be {example}, got an empty list")
    out = []
    for c in candidates:
        if isinstance(c, np.ndarray):
            c = c.tolist()
        if isinstance(c, numbers.Integral) and not isinstance(c, (bool, np.bool_)):
            c = (int(c),)
        if isinstance(c, (str, bytes)) or not isinstance(c, Sequence):
            raise TypeError(f"each candidate must be a sequence of positive integers (hidden "
                            f"widths), got {c!r}")
        out.append(tuple(check_int(v, f"each width of candidate {c!r}", 1) for v in c))
    return out


def _check_list(values: Any, name: str, example: str) -> list[Any]:
    """A non-empty list from a sequence (a single string or number is one entry)."""
    if isinstance(values, (str, bytes, numbers.Number)):
        values = [values]
    if not isinstance(values, Sequence) or not values:
        raise (TypeError if not isinstance(values, Sequence) else ValueError)(
            f"{name} must be a non-empty list, e.g. {example}, got {values!r}")
    return list(values)


def select_models(X: ArrayLike, *, widths: Sequence[Sequence[int]] = ((8,), (8, 8)),
                  latent_dims: Sequence[int] = (1,),
                  activations: Sequence[str] = ("leaky_relu",), X_val: ArrayLike | None = None,
                  slope: float | None = 0.1, noise_var: float | None = None,
                  max_iter: int = 100, tol: float = 1e-6, seed: int = 0,
                  **fit_kw: Any) -> SelectionTable:
    """Train one DGN per (latent dimension, activation, hidden widths) and tabulate exact
    log p(X), AIC, BIC and, with held-out data, the exact held-out log-likelihood.

    Parameters
    ----------
    X : array_like, shape (N, D)
    widths : sequence of sequences of int
        Hidden widths, e.g. ``[(4,), (8,), (8, 8)]``; ``()`` is the linear model (PPCA).
    latent_dims : sequence of int, default (1,)
    activations : sequence of {"relu", "leaky_relu", "abs"}, default ("leaky_relu",)
    X_val : array_like, shape (N_val, D), optional
        Held-out data: the exact log p(X_val) of every trained model (the criterion that
        does not assume the asymptotics behind AIC / BIC, which a DGN's folded likelihood
        surface does not satisfy). Passed to :func:`fastpath.fit_em` too when ``fit_kw``
        asks for early stopping (``n_iter_no_change``).
    slope : float, optional
        Negative-side slope for leaky_relu (ignored otherwise).
    noise_var : float, optional
        Initial noise variance (default 0.05 times the mean variance of X per dimension, as
        ``dgn fit``: EM leaves the "Gaussian blob" plateau quickly from there).
    max_iter, tol, seed, **fit_kw
        Passed to :func:`fastpath.fit_em` (``seed`` also seeds ``DGN.random``; e.g.
        ``n_init=3`` keeps the best of three starts per candidate).

    Returns
    -------
    SelectionTable
        Rows in the order latent dimension, activation, widths (the product of the three).
    """
    from .distributions import log_marginal
    from .em import ConvergenceWarning, fit_em

    X = check_data(X)
    cands = _check_candidates(widths)
    dims = [check_int(S, "each of latent_dims", 1)
            for S in _check_list(latent_dims, "latent_dims", "[1, 2]")]
    acts = _check_list(activations, "activations", "['relu', 'leaky_relu']")
    N, D = X.shape
    Xv = None if X_val is None else check_data(X_val, dim=D, name="X_val")
    if noise_var is None:
        noise_var = max(1e-4, 0.05 * float(np.mean(np.var(X, axis=0))))
    if Xv is not None and "n_iter_no_change" in fit_kw:
        fit_kw = {**fit_kw, "X_val": Xv}
    rows, models = [], []
    for S in dims:
        for activation in acts:
            for hidden in cands:
                full = (int(S), *hidden, D)
                net = DGN.random(full, activation=activation,
                                 slope=slope if activation == "leaky_relu" else None, seed=seed,
                                 noise_var=noise_var)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    res = fit_em(net, X, max_iter=max_iter, tol=tol, seed=seed, **fit_kw)
                # the returned model's log p(X): the best held-out iterate's with early stopping
                best = res.best_iteration
                ll = float(res.log_likelihood[best if res.early_stopped and best is not None
                                              else -1])
                k = res.model.n_params
                row = {"widths": full, "hidden": tuple(hidden), "latent_dim": int(S),
                       "activation": activation, "log_likelihood": ll, "per_point": ll / N,
                       "n_params": k, "aic": 2 * k - 2 * ll, "bic": k * math.log(N) - 2 * ll,
                       "n_iter": res.n_iter, "converged": res.converged,
                       "seconds": float(res.times[-1])}
                if Xv is not None:
                    lv = float(np.sum(log_marginal(res.model, Xv)))
                    row.update(val_log_likelihood=lv, val_per_point=lv / Xv.shape[0])
                rows.append(row)
                models.append(res.model)
    return SelectionTable(rows, models, N, 0 if Xv is None else Xv.shape[0])


def select_widths(X: ArrayLike, candidates: Sequence[Sequence[int]], *, latent_dim: int = 1,
                  activation: str = "leaky_relu", slope: float | None = 0.1,
                  noise_var: float | None = None, max_iter: int = 100, tol: float = 1e-6,
                  seed: int = 0, X_val: ArrayLike | None = None,
                  **fit_kw: Any) -> SelectionTable:
    """Train one DGN per candidate hidden widths and tabulate exact log p(X), AIC and BIC
    (:func:`select_models` with one latent dimension and one activation).

    Parameters
    ----------
    X : array_like, shape (N, D)
    candidates : sequence of sequences of int
        Hidden widths, e.g. ``[(4,), (8,), (8, 8)]``; ``()`` is the linear model (PPCA).
    latent_dim : int, default 1
    activation : {"relu", "leaky_relu", "abs"}
    slope, noise_var, max_iter, tol, seed, X_val, **fit_kw
        As :func:`select_models`.

    Returns
    -------
    SelectionTable
    """
    latent_dim = check_int(latent_dim, "latent_dim", 1)
    return select_models(X, widths=candidates, latent_dims=(latent_dim,),
                         activations=(activation,), X_val=X_val, slope=slope,
                         noise_var=noise_var, max_iter=max_iter, tol=tol, seed=seed, **fit_kw)


def anomaly_scores(net: DGN, X: ArrayLike, **kw: Any) -> NDArray[np.float64]:
    """Per-point anomaly scores -log p(x) (exact; larger is more anomalous).

    Parameters
    ----------
    net : DGN
    X : array_like, shape (N, D)
    **kw
        Passed to :func:`fastpath.log_marginal`: ``partition``, ``chunk_size``, ``n_jobs``,
        ``client`` and ``shard_size`` (a Dask cluster), and ``prune`` (default True: pairs
        certified below exp(-60) of p(x) are skipped; a number is the margin in nats, False
        or None evaluates every pair).

    Returns
    -------
    ndarray, shape (N,)
    """
    from .distributions import log_marginal

    return -np.asarray(log_marginal(net, X, **kw), dtype=np.float64)
