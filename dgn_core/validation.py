"""Input checks shared by the public functions of both backends.

Public functions validate with these and raise the same exception type with the same message
in both paths; private kernels assume valid input (the scipy.stats ``_multivariate.py``
split between ``logpdf`` and ``_logpdf``). The conventions:

- ``TypeError`` when a value has the wrong kind (a float where an integer is needed, a list
  where a :class:`~dgn_core.model.DGN` is needed, a boolean where a number is needed);
- ``ValueError`` when the kind is right and the value is not (a negative count, a
  covariance that is not positive definite).

The covariance rule (:func:`check_covariance`) is the one rule for every Gaussian the
library accepts. It is invariant to rescaling (``cov -> s**2 cov``): symmetry is judged
relative to the largest entry and definiteness by the condition number.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from .model import DGN

__all__ = [
    "SYMMETRY_RTOL",
    "MAX_CONDITION",
    "check_net",
    "check_int",
    "check_max_regions",
    "check_real",
    "check_nonnegative",
    "check_positive",
    "check_covariance",
    "real_array",
    "make_rng",
]

#: largest relative asymmetry max|C - C^T| / max|C| accepted for a covariance (rounding of
#: a product such as A Sigma A^T stays far below it); accepted matrices are symmetrised
SYMMETRY_RTOL = 1e-10
#: largest condition number accepted for a covariance: beyond it float64 solves lose more
#: than 3 of their 16 digits, and the relative accuracies the library states no longer hold
MAX_CONDITION = 1e13


def check_net(net: Any, name: str = "net") -> DGN:
    """``net`` if it is a :class:`DGN`, else ``TypeError``."""
    # imported here: dgn_core.model itself validates its parameters with real_array
    from .model import DGN

    if not isinstance(net, DGN):
        raise TypeError(f"{name} must be a DGN, got {type(net).__name__}")
    return net


def check_int(value: Any, name: str, low: int = 0) -> int:
    """An integer ``>= low``: ``TypeError`` for non-integers (bools included), ``ValueError``
    below ``low``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {low}, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def real_array(value: Any, name: str, error: type[Exception] = TypeError, *,
               copy: bool = True) -> NDArray[np.float64]:
    """``value`` as a float64 array (a new one unless ``copy=False``), refusing anything
    that is not real numbers.

    ``np.asarray(value, dtype=float)`` would silently drop imaginary parts (with only a
    ``ComplexWarning``), read booleans as 0/1 and parse strings such as ``"1.5"``; here each
    of those is an ``error`` naming ``name``, as is a ragged nested list. Object arrays are
    accepted when every element is a real number (``Fraction``, ``mpmath.mpf``).
    Shape and finiteness are the caller's to check.
    """
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as exc:
            raise error(f"{name} is not a rectangular array of numbers (rows of different "
                        f"lengths?): {exc}") from None
    kind = arr.dtype.kind
    if kind == "c":
        raise error(f"{name} holds complex numbers (dtype {arr.dtype}); only real numbers are "
                    "accepted (pass the real part explicitly if that is what you mean)")
    if kind == "b":
        raise error(f"{name} holds booleans, not numbers")
    if kind in "USVMm":
        raise error(f"{name} must hold real numbers, got dtype {arr.dtype} "
                    f"({'strings' if kind in 'US' else 'not numbers'})")
    if kind == "O":
        for item in arr.flat:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Real):
                raise error(f"{name} must hold real numbers, got an element {item!r} of type "
                            f"{type(item).__name__}")
    try:
        return np.array(arr, dtype=np.float64, copy=True if copy else None)
    except (TypeError, ValueError, OverflowError) as exc:
        raise error(f"{name} must hold real numbers: {exc}") from None


def make_rng(seed: Any, name: str = "seed") -> np.random.Generator:
    """``np.random.default_rng(seed)`` with errors that name ``seed``: TypeError for a value
    of the wrong kind (a float, a string, a bool, which numpy would read as 0 or 1),
    ValueError for a negative integer."""
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"{name} must be None, a non-negative integer or a numpy Generator, "
                        f"got {seed!r}")
    try:
        return np.random.default_rng(seed)
    except TypeError:
        raise TypeError(f"{name} must be None, a non-negative integer or a numpy Generator, "
                        f"got {seed!r}") from None
    except ValueError as exc:
        raise ValueError(f"{name} must be None, a non-negative integer or a numpy Generator, "
                         f"got {seed!r} ({exc})") from None


def check_max_regions(max_regions: Any) -> int:
    """The ``max_regions`` option of both partition functions: an integer >= 1."""
    return check_int(max_regions, "max_regions", 1)


def check_real(value: Any, name: str) -> float:
    """A finite real number (``TypeError`` for non-numbers and bools, ``ValueError`` for
    NaN and infinities)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return x


def check_nonnegative(value: Any, name: str) -> float:
    """A finite real number >= 0."""
    x = check_real(value, name)
    if x < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return x


def check_positive(value: Any, name: str) -> float:
    """A finite real number > 0."""
    x = check_real(value, name)
    if x <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return x


def check_covariance(cov: ArrayLike, S: int, name: str = "cov") -> NDArray[np.float64]:
    """The one covariance rule: a finite, symmetric, positive-definite (..., S, S) array.

    Parameters
    ----------
    cov : array_like, shape (..., S, S)
        One or a batch of covariance matrices.
    S : int
        The dimension.
    name : str
        The argument's name, for the error messages.

    Returns
    -------
    ndarray, shape (..., S, S)
        ``(cov + cov^T) / 2`` as float64.

    Raises
    ------
    TypeError
        ``cov`` is not a real array.
    ValueError
        Wrong shape, NaN or infinite entries, asymmetry above :data:`SYMMETRY_RTOL` relative
        to the largest entry, a non-positive eigenvalue, or a condition number of
        :data:`MAX_CONDITION` or more.
    """
    try:
        arr = np.asarray(cov, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real array, got {type(cov).__name__}") from None
    if arr.ndim < 2 or arr.shape[-2:] != (S, S):
        raise ValueError(f"{name} must have shape (..., {S}, {S}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    if S == 0:
        return arr
    scale = np.max(np.abs(arr), axis=(-1, -2), keepdims=True)
    asym = np.max(np.abs(arr - np.swapaxes(arr, -1, -2)), axis=(-1, -2), keepdims=True)
    if np.any(asym > SYMMETRY_RTOL * scale):
        worst = float(np.max(asym / np.where(scale > 0, scale, 1.0)))
        raise ValueError(f"{name} is not symmetric (relative asymmetry {worst:.3g})")
    arr = 0.5 * (arr + np.swapaxes(arr, -1, -2))
    # eigenvalues of the matrix scaled to unit largest entry: no overflow or underflow for
    # covariances anywhere in the float range
    unit = arr / np.where(scale > 0, scale, 1.0)
    ev = np.linalg.eigvalsh(unit)
    lo, hi = ev[..., 0], ev[..., -1]
    if np.any(hi <= 0) or np.any(lo <= 0):
        raise ValueError(f"{name} is not positive definite (smallest eigenvalue "
                         f"{float(np.min(lo * scale[..., 0, 0])):.3g})")
    if np.any(hi >= MAX_CONDITION * lo):
        cond = float(np.max(hi / lo))
        raise ValueError(f"{name} is singular or numerically singular (condition number "
                         f"{cond:.3g} >= {MAX_CONDITION:.0e})")
    return np.asarray(arr, dtype=np.float64)
