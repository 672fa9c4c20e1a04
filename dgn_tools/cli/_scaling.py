"""The data transformation of ``dgn fit``: EM runs on centred, rescaled data, and the trained
model is mapped back to the data's own units.

A random initial net puts its outputs near the origin at unit scale, and EM has to move the
last layer's bias out to data that lie far from the origin (1e6, 1e8) through many small
steps, during which the inner layers adapt to a bad fit: such data train worse than the
same data centred. EM therefore runs on y = (x - c) / s, with c the data's mean and s a power
of two near their root-mean-square spread (a power of two: dividing and multiplying by it
is exact in binary floating point, so only the shift c rounds). A DGN's last layer is
affine, so the model of y maps exactly to one of x:

    x = s y + c:  W_L -> s W_L,  b_L -> s b_L + c,  noise_var -> s^2 noise_var,
    log p(x) = log p(y) - D log s  (per point).

With a weight prior s is 1 (centring only): a prior on W_L is not invariant under scaling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.data_source import DataSource
from dgn_core.model import DGN

from ._common import CLIError

__all__ = ["MIN_SPREAD", "ScaledSource", "Scaling", "check_data_range", "check_spread",
           "fit_scaling"]

#: the smallest root-mean-square spread accepted: the variances must stay normal floats
MIN_SPREAD = 1e-150


@dataclass(frozen=True)
class Scaling:
    """y = (x - shift) / scale, ``scale`` a power of two."""

    shift: NDArray[np.float64]
    scale: float

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and not np.any(self.shift)

    def apply(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """The data EM is run on."""
        return (X - self.shift) / self.scale

    def to_scaled(self, net: DGN) -> DGN:
        """A model of x as the equivalent model of y."""
        Ws, bs = list(net.weights), list(net.biases)
        Ws[-1] = Ws[-1] / self.scale
        bs[-1] = (bs[-1] - self.shift) / self.scale
        return net.replace(weights=Ws, biases=bs, noise_var=_scale_var(net.noise_var, 1 / self.scale))

    def from_scaled(self, net: DGN) -> DGN:
        """A model of y as the equivalent model of x (the inverse of :meth:`to_scaled`)."""
        Ws, bs = list(net.weights), list(net.biases)
        Ws[-1] = Ws[-1] * self.scale
        bs[-1] = bs[-1] * self.scale + self.shift
        return net.replace(weights=Ws, biases=bs, noise_var=_scale_var(net.noise_var, self.scale))

    def log_density_shift(self, D: float) -> float:
        """log p(x) - log p(y) of one point: -D log s (D: its observed entries)."""
        return -D * math.log(self.scale)

    def record(self) -> dict[str, Any]:
        return {"shift": self.shift.tolist(), "scale": self.scale}


class ScaledSource(DataSource):
    """The rows of ``source`` transformed by ``scaling`` as they are read (streamed data)."""

    def __init__(self, source: DataSource, scaling: Scaling) -> None:
        self.source, self.scaling = source, scaling
        self.n_points, self.dim = source.n_points, source.dim

    def _read(self, start: int, stop: int) -> NDArray[np.float64]:
        return np.ascontiguousarray(self.scaling.apply(self.source.read(start, stop)))

    def describe(self) -> str:
        return f"{self.source.describe()}, (x - mean) / {self.scaling.scale:g}"


def _scale_var(noise_var: Any, factor: float) -> Any:
    if np.ndim(noise_var) == 0:
        return float(noise_var) * factor * factor
    return np.asarray(noise_var, dtype=np.float64) * (factor * factor)


def check_data_range(X: NDArray[np.float64], what: str) -> float:
    """The data's root-mean-square spread about their mean, after refusing data whose
    variances underflow float64 (magnitudes whose squares overflow are refused when the data
    are loaded: :data:`dgn_core.data.MAX_DATA_ABS`).

    Raises
    ------
    CLIError
        A spread below :data:`MIN_SPREAD` (a positive one; the variance underflows).
    """
    if np.isnan(X).any():  # missing entries (dgn fit --missing nan): the observed ones
        C = X - observed_mean(X, what)
        peak = float(np.nanmax(np.abs(C)))
        spread = peak * math.sqrt(float(np.nanmean((C / peak) ** 2))) if peak > 0 else 0.0
        return check_spread(spread, what)
    C = X - X.mean(axis=0)
    peak = float(np.max(np.abs(C)))
    # in units of the peak, so that the squares neither overflow nor underflow
    spread = peak * math.sqrt(float(np.mean((C / peak) ** 2))) if peak > 0 else 0.0
    return check_spread(spread, what)


def observed_mean(X: NDArray[np.float64], what: str) -> NDArray[np.float64]:
    """The column means of X (D,) over its entries that are not NaN (missing values).

    Raises
    ------
    CLIError
        A column with no observed entry.
    """
    if not np.isnan(X).any():
        return np.asarray(X.mean(axis=0))
    empty = np.flatnonzero(np.isnan(X).all(axis=0))
    if empty.size:
        raise CLIError(f"the data ({what}) have no observed entry in column {int(empty[0])} "
                       f"(counted from 0): nothing to fit it to")
    return np.asarray(np.nanmean(X, axis=0))


def check_spread(spread: float, what: str) -> float:
    """``spread`` after refusing one whose square underflows (:func:`check_data_range`)."""
    if 0 < spread < MIN_SPREAD:
        raise CLIError(f"the data ({what}) spread over only {spread:.3g} (root-mean-square): "
                       f"below {MIN_SPREAD:.0e} their variances underflow float64; rescale "
                       f"the data (e.g. multiply them by 1e{-int(math.floor(math.log10(spread)))})")
    return spread


def fit_scaling(mean: NDArray[np.float64], spread: float, *, scale: bool) -> Scaling:
    """The transformation of data of column means ``mean`` (D,) and spread ``spread``:
    centred on their mean, and with ``scale`` divided by the power of two nearest to
    ``spread``."""
    s = 2.0 ** round(math.log2(spread)) if scale and spread > 0 else 1.0
    return Scaling(shift=np.asarray(mean, dtype=np.float64), scale=s)
