"""The starts of :func:`fastpath.fit_em` (``n_init``, ``init``) and the choice among runs.

Start 0 is ``init`` (by default the net given); starts 1..n_init-1 are random nets of the
same architecture. A random start keeps the given net's last-layer bias, noise variance and
Sigma_z: they say where the data lie and how noisy they are (``dgn fit`` centres and
rescales the data, so there the bias is near 0 anyway), while the weights, which decide the
folding of the latent space and hence which local maximum EM climbs, are redrawn. The draw
of start k is ``numpy.random.default_rng([seed, k])``, so a run is reproducible from
(net, X, options) like a single run.

The kept run is the one with the largest final training objective, or with held-out data
the largest held-out log-likelihood of the model it returns (scikit-learn's mixtures keep
the best lower bound; held-out likelihood is the better criterion where EM overfits).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dgn_core.model import DGN

if TYPE_CHECKING:
    from ._em_options import EMOptions
    from ._em_result import EMResult

__all__ = ["best_run", "checkpoint_of_start", "random_start", "starts"]


def random_start(net: DGN, seed: int, k: int) -> DGN:
    """Start ``k``: a random net of ``net``'s widths and activation (PyTorch's default
    initialisation) with ``net``'s last-layer bias, noise variance and Sigma_z."""
    # SeedSequence entropy must be non-negative: a negative seed maps to its own stream
    rng = np.random.default_rng([abs(int(seed)), int(seed < 0), int(k)])
    fresh = DGN.random(net.widths, seed=rng, noise_var=net.noise_var,
                       prior_cov=None if net.has_identity_prior else net.prior_cov,
                       **net.activation_kwargs())
    biases = list(fresh.biases)
    biases[-1] = np.array(net.biases[-1], dtype=np.float64)
    return fresh.replace(biases=biases)


def starts(net: DGN, opts: EMOptions) -> list[DGN]:
    """The initial model of every run, in run order (module notes)."""
    init = opts.init
    if isinstance(init, DGN):
        if init.widths != net.widths or init.activations != net.activations \
                or init.slopes != net.slopes:
            raise ValueError(f"init must have net's architecture: widths {net.widths}, "
                             f"{net.describe_activations()}; got widths {init.widths}, "
                             f"{init.describe_activations()}")
        first = init
    elif init == "random":
        first = random_start(net, opts.seed, 0)
    else:
        first = net
    return [first] + [random_start(net, opts.seed, k) for k in range(1, opts.n_init)]


def checkpoint_of_start(path: Path | None, k: int, n_init: int) -> Path | None:
    """The checkpoint file of run ``k``: ``path`` itself for a single run, else
    ``<name>.init<k>.npz`` beside it."""
    if path is None or n_init == 1:
        return path
    return path.with_name(f"{path.stem}.init{k}.npz")


def _score(result: EMResult) -> float:
    """What the choice among runs maximises (module notes)."""
    if result.val_log_likelihood:
        it = result.best_iteration if result.early_stopped else result.n_iter
        return float(result.val_log_likelihood[it if it is not None else -1])
    return float(result.objective[-1])


def best_run(results: list[EMResult]) -> EMResult:
    """The kept run (the first of the best), with every run in ``init_results``."""
    if len(results) == 1:
        return results[0]
    scores = np.array([_score(r) for r in results])
    # a run whose objective is not finite (it cannot happen with exact, monotone steps, but a
    # NaN must never win) ranks last
    scores[~np.isfinite(scores)] = -np.inf
    best = int(np.argmax(scores))
    return replace(results[best], init_results=list(results), best_init=best)
