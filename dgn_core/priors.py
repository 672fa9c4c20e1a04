"""Weight and bias priors for MAP-EM, shared by both backends.

Each prior is a frozen dataclass with ``log_density(weights)`` (the log prior density of a
list of weight matrices, or of bias vectors: every entry is independent, so any list of
arrays works) and ``describe()`` (the text form that :func:`parse_prior` reads
back). The fast path's M-step solves the penalised updates; the exact path's ``em_step``
evaluates the same objective in high precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .validation import check_positive

__all__ = ["GaussianPrior", "LaplacePrior", "BoxPrior", "Prior", "parse_prior", "check_prior",
           "log_prior"]

Arr = NDArray[np.float64]


@dataclass(frozen=True)
class GaussianPrior:
    """Independent N(0, var) prior on every weight (ridge; closed-form M-step).

    log p(W) = sum_ij [-W_ij^2 / (2 var) - log(2 pi var) / 2].
    """

    var: float

    def __post_init__(self) -> None:
        check_positive(self.var, "GaussianPrior var")

    def log_density(self, weights: Sequence[Arr]) -> float:
        n = sum(W.size for W in weights)
        ss = sum(float(np.sum(W * W)) for W in weights)
        return -0.5 * ss / self.var - 0.5 * n * math.log(2.0 * math.pi * self.var)

    def describe(self) -> str:
        return f"gaussian:{self.var:g}"


@dataclass(frozen=True)
class LaplacePrior:
    """Independent Laplace(0, scale) prior on every weight (L1; M-step as a convex QP).

    log p(W) = sum_ij [-|W_ij| / scale - log(2 scale)].
    """

    scale: float

    def __post_init__(self) -> None:
        check_positive(self.scale, "LaplacePrior scale")

    def log_density(self, weights: Sequence[Arr]) -> float:
        n = sum(W.size for W in weights)
        s1 = sum(float(np.sum(np.abs(W))) for W in weights)
        return -s1 / self.scale - n * math.log(2.0 * self.scale)

    def describe(self) -> str:
        return f"laplace:{self.scale:g}"


@dataclass(frozen=True)
class BoxPrior:
    """Independent uniform prior on [-bound, bound] for every weight (clipping; convex QP).

    log p(W) = -n log(2 bound) inside the box, -inf outside.
    """

    bound: float

    def __post_init__(self) -> None:
        check_positive(self.bound, "BoxPrior bound")

    def log_density(self, weights: Sequence[Arr]) -> float:
        n = sum(W.size for W in weights)
        if any(np.any(np.abs(W) > self.bound) for W in weights):
            return -math.inf
        return -n * math.log(2.0 * self.bound)

    def describe(self) -> str:
        return f"box:{self.bound:g}"


Prior = GaussianPrior | LaplacePrior | BoxPrior


def log_prior(prior: Prior | None, weights: Sequence[NDArray[np.float64]]) -> float:
    """log p(W) of ``weights`` under ``prior`` (0 without a prior)."""
    return 0.0 if prior is None else prior.log_density(weights)


def check_prior(prior: Any, name: str = "weight_prior") -> Prior | None:
    """``prior`` if it is None or one of the prior types; TypeError naming ``name`` else."""
    if prior is None or isinstance(prior, (GaussianPrior, LaplacePrior, BoxPrior)):
        return prior
    raise TypeError(f"{name} must be None, GaussianPrior(var), LaplacePrior(scale) or "
                    f"BoxPrior(bound), got {prior!r}")


def parse_prior(text: str | None) -> Prior | None:
    """``"none"``, ``"gaussian:VAR"``, ``"laplace:SCALE"`` or ``"box:BOUND"`` -> a prior."""
    if text is not None and not isinstance(text, str):
        raise TypeError(f"a prior's text form must be a string such as 'gaussian:1', got "
                        f"{type(text).__name__}")
    if text is None or text.strip().lower() in ("", "none"):
        return None
    kind, _, val = text.partition(":")
    kinds: dict[str, type[GaussianPrior] | type[LaplacePrior] | type[BoxPrior]] = {
        "gaussian": GaussianPrior, "laplace": LaplacePrior, "box": BoxPrior}
    if kind.strip().lower() not in kinds or not val:
        raise ValueError(f"a prior is none, gaussian:VAR, laplace:SCALE or box:BOUND, got {text!r}")
    try:
        num = float(val)
    except ValueError:
        raise ValueError(f"the prior's parameter must be a number, got {val!r}") from None
    return kinds[kind.strip().lower()](num)
