"""The options of :func:`fastpath.fit_em`, validated once into a frozen :class:`EMOptions`.

:data:`PARAMETER_CONSTRAINTS` is the one place that states, for every keyword argument of
``fit_em``, the values it accepts, what it means and the check that enforces it (in the
spirit of scikit-learn's ``_parameter_constraints``). :class:`EMOptions` runs these checks in
its ``__post_init__`` and stores the normalised values, so the EM loop reads options that are
known to be valid. :func:`fastpath.em.em_step` validates its own options (a subset) through
:func:`check_option` against the same table.

Errors follow ``dgn_core.validation``: ``TypeError`` for a value of the wrong kind,
``ValueError`` for a value of the right kind outside the accepted range.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.model import DGN
from dgn_core.priors import Prior, check_prior
from dgn_core.validation import check_int, check_max_regions, check_nonnegative

from ._sharded import DEFAULT_SHARD_SIZE

__all__ = ["DEFAULT_RIDGE", "EMOptions", "FAR_FROM_DATA", "NOISE_FLOOR_ULPS",
           "INITS", "PARAMETER_CONSTRAINTS", "UPDATES", "check_option", "min_noise_floor",
           "noise_floor_of_max", "warn_if_far_from_mean"]

#: default proximal ridge of the inner-layer systems, relative to their mean diagonal
DEFAULT_RIDGE = 1e-6
#: the smallest noise standard deviation EM uses, in units of the rounding error of the data:
#: (NOISE_FLOOR_ULPS * eps * max |x|)^2 is the smallest noise variance (min_noise_floor)
NOISE_FLOOR_ULPS = 8.0
#: the parts of the model ``update`` may name ("biases": the bias vectors of every layer with
#: the weights fixed, the bias-only update of Balestriero et al. 2020, made monotone)
UPDATES = ("layers", "last", "noise", "biases")
#: the noise models
NOISE_MODELS = ("isotropic", "diagonal")
#: the named initialisations (besides a DGN or a saved model)
INITS = ("random",)


def min_noise_floor(X: ArrayLike) -> float:
    """The smallest noise variance EM uses on the data ``X``: a ``noise_floor`` below it is
    raised to it.

    (NOISE_FLOOR_ULPS * eps * max |x_ij|)^2, and at least the smallest normal float64: the
    residual x - g(z) is computed to about eps |x|, so a smaller variance measures rounding
    error, and a floor of 0 lets the noise update reach exactly 0 (then no model exists) when
    the net passes through repeated points.
    """
    A = np.asarray(X, dtype=np.float64)
    return noise_floor_of_max(float(np.max(np.abs(A))) if A.size else 0.0)


def noise_floor_of_max(max_abs: float) -> float:
    """:func:`min_noise_floor` of data whose largest magnitude is ``max_abs``."""
    return max((NOISE_FLOOR_ULPS * float(np.finfo(np.float64).eps) * max_abs) ** 2,
               float(np.finfo(np.float64).tiny))


#: data whose mean lies farther than this many spreads (root-mean-square distance to the
#: mean) from the initial net's output at z = 0 draw a warning: EM moves the last layer's
#: bias out to them in many small steps while the inner layers fold (the circle data of
#: ``dgn fit`` trained as well at 10 spreads as centred, worse at 30, and to -1e10 nats per
#: point at 1e6)
FAR_FROM_DATA = 20.0


def warn_if_far_from_mean(net: DGN, mean: NDArray[np.float64], spread: float) -> None:
    """Warn (RuntimeWarning) when data of column means ``mean`` (D,) and root-mean-square
    distance ``spread`` to them lie far from where ``net`` puts its outputs."""
    import warnings

    dist = float(np.linalg.norm(net.forward(np.zeros((1, net.latent_dim)))[0] - mean))
    if spread > 0 and dist > FAR_FROM_DATA * spread:
        warnings.warn(f"fit_em: the data's mean lies {dist / spread:.3g} data spreads from the "
                      f"initial net's output g(0); EM trains poorly from there: fit the centred, "
                      f"rescaled data (x - mean) / s and map the last layer back (W_L -> s W_L, "
                      f"b_L -> s b_L + mean, noise_var -> s^2 noise_var), as `dgn fit` does",
                      RuntimeWarning, stacklevel=4)


# ------------------------------------------------------------------------------ the checks
def _integer(low: int) -> Callable[[Any, str], int]:
    return lambda value, name: check_int(value, name, low)


def _truth(value: Any, name: str) -> bool:
    """Any value, read by its truth (as ``if value:`` does)."""
    return bool(value)


def _seed(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _update(value: Any, name: str) -> tuple[str, ...]:
    """The entries of ``update`` (a string is one entry), in the order given."""
    if isinstance(value, str):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a collection of {UPDATES}, got {value!r}") from None
    bad = [u for u in items if u not in UPDATES]
    if bad:
        raise ValueError(f"{name} entries must be among {UPDATES}, got {bad}")
    return items


def _noise(value: Any, name: str) -> str | None:
    if value is not None and value not in NOISE_MODELS:
        raise ValueError(f"{name} must be 'isotropic' or 'diagonal', got {value!r}")
    return value


def _prior(value: Any, name: str) -> Prior | None:
    return check_prior(value, name)


def _checkpoint(value: Any, name: str) -> Path | None:
    """A path; ``.npz`` is appended when the name has another suffix (``np.savez`` does the
    same, so the file read back is the file written)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path or None, got {type(value).__name__}")
    path = Path(value)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _callback(value: Any, name: str) -> Callable[..., Any] | None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable")
    return value


def _blas_threads(value: Any, name: str) -> int | None:
    return None if value is None else check_int(value, name, 1)


def _mask(value: Any, name: str) -> Any:
    """None or a boolean array (its shape is checked against the data's)."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype != np.bool_:
        raise TypeError(f"{name} must be None or a boolean array (True = observed), got dtype "
                        f"{arr.dtype}")
    return arr


def _client(value: Any, name: str) -> Any:
    """None or a ``dask.distributed.Client`` (anything with ``submit`` and ``scatter``)."""
    if value is not None and not (callable(getattr(value, "submit", None))
                                  and callable(getattr(value, "scatter", None))):
        raise TypeError(f"{name} must be None or a dask.distributed.Client, got "
                        f"{type(value).__name__}")
    return value


def _val_data(value: Any, name: str) -> Any:
    """None or held-out data (an array, a DataSource or a path): checked when the run opens
    it (:func:`dgn_core.data_source.as_source`, with the net's data dimension)."""
    if isinstance(value, (str, bytes)) and not value:
        raise ValueError(f"{name} must be None, an array, a DataSource or a path, got ''")
    return value


def _patience(value: Any, name: str) -> int | None:
    return None if value is None else check_int(value, name, 1)


def _init(value: Any, name: str) -> Any:
    """None (start from ``net``), "random" (seeded random starts only), a DGN, or the path
    of a saved model (read here, so that a bad file fails before any work)."""
    if value is None or isinstance(value, DGN):
        return value
    if isinstance(value, str) and value in INITS:
        return value
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if path.suffix != ".npz":
            raise ValueError(f"{name} must be None, 'random', a DGN or a saved model (.npz), "
                             f"got {str(value)!r}")
        return DGN.load(path)
    raise TypeError(f"{name} must be None, 'random', a DGN or a path to a saved model, got "
                    f"{type(value).__name__}")


def _n_jobs(value: Any, name: str) -> int | None:
    from ._threads import resolve_n_jobs

    resolve_n_jobs(value)  # raises TypeError / ValueError naming n_jobs
    return None if value is None else int(value)


@dataclass(frozen=True)
class Constraint:
    """What one option accepts and means, and the check that enforces it.

    ``check(value, name)`` returns the normalised value or raises ``TypeError`` /
    ``ValueError``.
    """

    accepts: str
    meaning: str
    check: Callable[[Any, str], Any]


#: option -> constraint, in the order of fit_em's signature (the order of validation)
PARAMETER_CONSTRAINTS: dict[str, Constraint] = {
    "max_iter": Constraint("int >= 0", "maximum number of iterations (sweeps)", _integer(0)),
    "tol": Constraint("float >= 0", "convergence threshold on the per-point gain of the exact "
                      "objective in one iteration (nats per point)", check_nonnegative),
    "update": Constraint(f"collection of {UPDATES}", "what to train: 'layers' every layer, "
                         "'last' the last layer only, 'noise' the noise variance, 'biases' the "
                         "biases of every layer (weights fixed unless 'layers' / 'last')", _update),
    "noise": Constraint("None, 'isotropic' or 'diagonal'",
                        "noise model (None: the initial net's)", _noise),
    "update_prior_cov": Constraint("bool", "also update Sigma_z (exact ECM)", _truth),
    "weight_prior": Constraint("None, GaussianPrior, LaplacePrior or BoxPrior",
                               "prior on the weight matrices (MAP-EM)", _prior),
    "bias_prior": Constraint("None, GaussianPrior, LaplacePrior or BoxPrior",
                             "prior on the bias vectors (MAP-EM)", _prior),
    "noise_floor": Constraint("float >= 0", "lower bound of every noise variance (raised to "
                              "min_noise_floor(X) when below it)", check_nonnegative),
    "ridge": Constraint("float >= 0", "proximal ridge of the inner-layer systems, relative to "
                        "their mean diagonal", check_nonnegative),
    "max_halvings": Constraint("int >= 0", "step halvings tried per inner layer", _integer(0)),
    "max_regions": Constraint("int >= 1", "partition size limit; larger trial steps are rejected",
                              lambda value, name: check_max_regions(value)),
    "seed": Constraint("int", "recorded in the result and the checkpoint (EM draws no random "
                       "numbers)", _seed),
    "progress": Constraint("bool", "print a line per iteration to stderr", _truth),
    "checkpoint": Constraint("None or a path (.npz appended if missing)",
                             "checkpoint file, written atomically", _checkpoint),
    "checkpoint_every": Constraint("int >= 1", "iterations between checkpoints", _integer(1)),
    "resume": Constraint("bool (needs checkpoint)", "continue from the checkpoint if it exists",
                         _truth),
    "callback": Constraint("None or callable", "callback(EMIteration) after every iteration; "
                           "returning True stops EM", _callback),
    "blas_threads": Constraint("None or int >= 1", "BLAS threads while fitting (None: leave "
                               "the setting alone)", _blas_threads),
    "n_jobs": Constraint("None, int >= 1 or -1..-cores", "threads of the compiled kernels (None "
                         "or -1: all cores; results are identical for any count)", _n_jobs),
    "client": Constraint("None or dask.distributed.Client", "run the E-step's shards on a Dask "
                         "cluster (None: in this process); results are identical", _client),
    "shard_size": Constraint("int >= 1", "rows per shard of the E-step's map-reduce (its "
                             "fixed reduction order; part of the result)", _integer(1)),
    "X_val": Constraint("None, array (N_val, D), DataSource or path", "held-out data: its "
                        "exact log-likelihood is recorded every iteration", _val_data),
    "n_iter_no_change": Constraint("None or int >= 1 (needs X_val)", "early stopping: stop "
                                   "when the held-out log-likelihood has not improved for this "
                                   "many iterations, and return the best held-out model",
                                   _patience),
    "n_init": Constraint("int >= 1", "runs from different initialisations; the best is kept "
                         "(by the training objective, or the held-out log-likelihood with "
                         "X_val)", _integer(1)),
    "init": Constraint("None, 'random', DGN or path of a saved model", "the first start: "
                       "None net itself, 'random' a seeded random net of net's architecture, "
                       "a DGN / saved model of net's architecture (a warm start); further "
                       "starts are seeded random nets", _init),
    "mask": Constraint("None or boolean array (N, D), True = observed (not with client)",
                       "missing entries: EM maximises the exact observed-data log-likelihood "
                       "(fastpath._em_missing)", _mask),
}


def check_option(name: str, value: Any) -> Any:
    """``value`` checked and normalised by the constraint of option ``name``."""
    return PARAMETER_CONSTRAINTS[name].check(value, name)


@dataclass(frozen=True)
class EMOptions:
    """The validated options of one :func:`fastpath.fit_em` run (see its parameters).

    The fields and their defaults are fit_em's keyword arguments (a test checks that they
    agree); :data:`PARAMETER_CONSTRAINTS` states what each accepts. Construction validates
    every field and stores its normalised value: ``update`` as a tuple, ``checkpoint`` as a
    :class:`~pathlib.Path` ending in ``.npz``, the flags as bools, numbers as int / float.
    """

    max_iter: int = 200
    tol: float = 1e-6
    update: tuple[str, ...] = ("layers", "noise")
    noise: str | None = None
    update_prior_cov: bool = False
    weight_prior: Prior | None = None
    bias_prior: Prior | None = None
    noise_floor: float = 1e-6
    ridge: float = DEFAULT_RIDGE
    max_halvings: int = 12
    max_regions: int = 100_000
    seed: int = 0
    progress: bool = False
    checkpoint: Path | None = None
    checkpoint_every: int = 10
    resume: bool = False
    callback: Callable[..., Any] | None = None
    blas_threads: int | None = 1
    n_jobs: int | None = None
    client: Any = None
    shard_size: int = DEFAULT_SHARD_SIZE
    X_val: Any = None
    n_iter_no_change: int | None = None
    n_init: int = 1
    init: Any = None
    mask: Any = None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> EMOptions:
        """The options from fit_em's keyword arguments, which accept more than the stored
        types (any iterable for ``update``, a string or ``os.PathLike`` for ``checkpoint``,
        any truth value for the flags)."""
        return cls(**kwargs)

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, check_option(f.name, getattr(self, f.name)))
        if self.resume and self.checkpoint is None:
            raise ValueError("resume=True needs checkpoint=PATH")
        if self.n_iter_no_change is not None and self.X_val is None:
            raise ValueError("n_iter_no_change (early stopping) needs held-out data X_val")
        if self.mask is not None and self.client is not None:
            raise ValueError("mask (missing entries) is not supported with a client")
        if self.mask is not None and (self.bias_prior is not None or self.train_biases):
            raise ValueError("mask (missing entries) is not supported with a bias prior or the "
                             "bias-only update ('biases' in update)")

    # the parts of the model to train ("layers" trains the last layer too)
    @property
    def train_layers(self) -> bool:
        return "layers" in self.update

    @property
    def train_last(self) -> bool:
        return self.train_layers or "last" in self.update

    @property
    def train_noise(self) -> bool:
        return "noise" in self.update

    # the biases alone, weights fixed, where "layers" (or "last" for the last layer) does
    # not train the whole layer
    @property
    def train_biases(self) -> bool:
        return "biases" in self.update and not self.train_layers

    @property
    def priors(self) -> tuple[Prior | None, Prior | None]:
        """(weight prior, bias prior)."""
        return self.weight_prior, self.bias_prior

    def noise_model(self, net: DGN) -> str:
        """The noise model of the run: ``noise``, or the initial net's."""
        if self.noise is not None:
            return self.noise
        return "isotropic" if net.isotropic_noise else "diagonal"

    def record(self, net: DGN) -> dict[str, Any]:
        """The options that determine the result, as JSON-ready values: stored in
        :attr:`EMResult.options` and in checkpoints, whose resumption requires them equal.

        ``update`` is recorded as checkpoints of earlier versions record it: ``["layers"]``
        whenever the layers are trained (the noise entry is then not recorded), else the
        sorted entries among "biases", "last" and "noise". ``bias_prior`` is None in
        checkpoints written before it existed (read back so, :mod:`._em_checkpoint`).
        """
        update = ["layers"] if self.train_layers else sorted(
            ({"last"} if self.train_last else set()) | ({"noise"} if self.train_noise else set())
            | ({"biases"} if self.train_biases else set()))
        return {"update": update,
                "noise": self.noise_model(net), "update_prior_cov": self.update_prior_cov,
                "weight_prior": None if self.weight_prior is None else self.weight_prior.describe(),
                "bias_prior": None if self.bias_prior is None else self.bias_prior.describe(),
                "noise_floor": self.noise_floor, "ridge": self.ridge,
                "max_halvings": self.max_halvings, "max_regions": self.max_regions,
                "tol": self.tol, "seed": self.seed, "shard_size": self.shard_size,
                "n_iter_no_change": self.n_iter_no_change, "val_sha256": None,
                "activation": (net.describe_activations() if net.mixed_activations
                               else net.activation), "widths": list(net.widths)}
