"""Input checks of the exact Gaussian integrals: every number made an exact ``Fraction``.

Floats are converted exactly (their binary value), ``mpmath.mpf`` through its mantissa and
exponent, so the exact geometry sees precisely the numbers the caller passed.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import ArrayLike, NDArray

from .covariance import check_covariance_rule
from .orthant_base import _MAX_DIGITS

#: the largest dimension S of the exact integrals
_SMAX = 4


def _fraction(x: Any, name: str) -> Fraction:
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} entries must be numbers, got a boolean")
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    if isinstance(x, (float, np.floating)):
        if not math.isfinite(float(x)):
            raise ValueError(f"{name} contains NaN or infinite entries")
        return Fraction(float(x))
    if isinstance(x, mpmath.mpf):
        if not mpmath.isfinite(x):
            raise ValueError(f"{name} contains NaN or infinite entries")
        sign, man, exp, _ = x._mpf_  # (man_exp drops the sign)
        q = Fraction(int(man)) * (Fraction(2) ** int(exp))
        return -q if sign else q
    raise TypeError(f"{name} entries must be ints, floats, Fractions or mpf, got {type(x).__name__}")


def _fraction_array(a: ArrayLike, name: str, ndim: int) -> NDArray[Any]:
    arr = a if isinstance(a, np.ndarray) else np.asarray(a, dtype=object)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        v = arr[idx]
        if isinstance(v, np.generic):
            v = v.item()
        out[idx] = _fraction(v, name)
    return out


def _check_inputs(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike, dps: int
                  ) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any], float]:
    """Validate; returns exact (Fraction) C, d, mean, cov and log10 cond(cov)."""
    if not isinstance(dps, (int, np.integer)) or isinstance(dps, bool) or dps < 1:
        raise ValueError(f"dps must be a positive integer, got {dps!r}")
    if dps > _MAX_DIGITS:
        raise ValueError(f"dps = {dps} exceeds the limit of {_MAX_DIGITS} digits")
    Cf = _fraction_array(C, "C", 2)
    if Cf.shape[1] < 1 or Cf.shape[1] > _SMAX:
        raise ValueError(f"C must have shape (m, S) with S in 1..{_SMAX}, got {Cf.shape}")
    S = Cf.shape[1]
    df = _fraction_array(d, "d", 1)
    if df.shape != (Cf.shape[0],):
        raise ValueError(f"d must have shape ({Cf.shape[0]},) to match C {Cf.shape}, got {df.shape}")
    mf = _fraction_array(mean, "mean", 1)
    if mf.shape != (S,):
        raise ValueError(f"mean must have shape ({S},), got {mf.shape}")
    Kf = _fraction_array(cov, "cov", 2)
    if Kf.shape != (S, S):
        raise ValueError(f"cov must have shape ({S}, {S}), got {Kf.shape}")
    cov_in = cov if isinstance(cov, np.ndarray) else np.asarray(cov, dtype=object)
    check_covariance_rule(cov_in, "cov")
    for i in range(S):
        for j in range(i):
            a, b = Kf[i, j], Kf[j, i]
            if a != b:
                Kf[i, j] = Kf[j, i] = (a + b) / 2
    try:
        cond = float(np.linalg.cond(np.array([[float(x) for x in r] for r in Kf])))
    except (ValueError, OverflowError):
        cond = math.inf
    lcond = math.log10(cond) if math.isfinite(cond) and cond > 1 else (0.0 if cond <= 1 else 300.0)
    return Cf, df, mf, Kf, lcond
