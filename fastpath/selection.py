"""Model selection with the exact likelihood: widths by AIC / BIC, and anomaly scores.

Because log p(X) is exact (Theorem 1), information criteria need no bound or estimate:

    AIC = 2 k - 2 log p(X),    BIC = k log N - 2 log p(X)

with k = :attr:`verified_dgn.DGN.n_params` (weights, biases and noise variances). Each
candidate is trained by :func:`fastpath.fit_em` from ``DGN.random(widths, seed=seed)``.
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

__all__ = ["SelectionTable", "anomaly_scores", "select_widths"]


@dataclass
class SelectionTable:
    """Result of :func:`select_widths`: one row per candidate.

    Attributes
    ----------
    rows : list of dict
        ``widths`` (full widths (S, ..., D)), ``hidden`` (hidden widths), ``log_likelihood``
        (exact log p(X) of the trained model), ``per_point``, ``n_params``, ``aic``, ``bic``,
        ``n_iter``, ``converged``, ``seconds``.
    models : list of DGN
        The trained models, in the order of ``rows``.
    n_points : int
    """

    rows: list[dict[str, Any]]
    models: list[DGN] = field(repr=False)
    n_points: int

    def best(self, criterion: str = "bic") -> int:
        """Index of the row with the smallest ``criterion`` ("aic" or "bic"), or the
        largest log-likelihood for "log_likelihood"."""
        if criterion not in ("aic", "bic", "log_likelihood"):
            raise ValueError(f"criterion must be 'aic', 'bic' or 'log_likelihood', got {criterion!r}")
        vals = np.array([r[criterion] for r in self.rows], dtype=np.float64)
        return int(np.argmax(vals) if criterion == "log_likelihood" else np.argmin(vals))

    def to_text(self) -> str:
        """The table as aligned text."""
        head = f"{'hidden widths':>16} {'log p(X)':>14} {'per point':>10} {'k':>6} " \
               f"{'AIC':>14} {'BIC':>14} {'iters':>6} {'conv':>5}"
        lines = [head]
        best = self.best("bic")
        for i, r in enumerate(self.rows):
            lines.append(
                f"{','.join(map(str, r['hidden'])) or '-':>16} {r['log_likelihood']:14.4f} "
                f"{r['per_point']:10.5f} {r['n_params']:6d} {r['aic']:14.4f} {r['bic']:14.4f} "
                f"{r['n_iter']:6d} {'yes' if r['converged'] else 'no':>5}"
                + ("  <- best BIC" if i == best else ""))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


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


def select_widths(X: ArrayLike, candidates: Sequence[Sequence[int]], *, latent_dim: int = 1,
                  activation: str = "leaky_relu", slope: float | None = 0.1,
                  noise_var: float | None = None, max_iter: int = 100, tol: float = 1e-6,
                  seed: int = 0, **fit_kw: Any) -> SelectionTable:
    """Train one DGN per candidate hidden widths and tabulate exact log p(X), AIC and BIC.

    Parameters
    ----------
    X : array_like, shape (N, D)
    candidates : sequence of sequences of int
        Hidden widths, e.g. ``[(4,), (8,), (8, 8)]``; ``()`` is the linear model (PPCA).
    latent_dim : int, default 1
    activation : {"relu", "leaky_relu", "abs"}
    slope : float, optional
        Negative-side slope for leaky_relu (ignored otherwise).
    noise_var : float, optional
        Initial noise variance (default 0.05 times the mean variance of X per dimension, as
        ``dgn fit``: EM leaves the "Gaussian blob" plateau quickly from there).
    max_iter, tol, seed, **fit_kw
        Passed to :func:`fastpath.fit_em` (``seed`` also seeds ``DGN.random``).

    Returns
    -------
    SelectionTable
    """
    from .em import ConvergenceWarning, fit_em

    X = check_data(X)
    cands = _check_candidates(candidates)
    latent_dim = check_int(latent_dim, "latent_dim", 1)
    N, D = X.shape
    if noise_var is None:
        noise_var = max(1e-4, 0.05 * float(np.mean(np.var(X, axis=0))))
    rows, models = [], []
    for hidden in cands:
        widths = (int(latent_dim), *hidden, D)
        net = DGN.random(widths, activation=activation,
                         slope=slope if activation == "leaky_relu" else None, seed=seed,
                         noise_var=noise_var)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = fit_em(net, X, max_iter=max_iter, tol=tol, seed=seed, **fit_kw)
        ll = float(res.log_likelihood[-1])
        k = res.model.n_params
        rows.append({"widths": widths, "hidden": tuple(hidden), "log_likelihood": ll,
                     "per_point": ll / N, "n_params": k, "aic": 2 * k - 2 * ll,
                     "bic": k * math.log(N) - 2 * ll, "n_iter": res.n_iter,
                     "converged": res.converged, "seconds": float(res.times[-1])})
        models.append(res.model)
    return SelectionTable(rows, models, N)


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
