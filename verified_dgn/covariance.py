"""The shared covariance rule applied to the exact functions' inputs.

The exact functions (:func:`~verified_dgn.orthant.orthant_probability`,
:func:`~verified_dgn.orthant.orthant_moments`,
:func:`~verified_dgn.integrals.gaussian_moments`, ...) accept covariances of ints,
floats, Fractions and mpf. They fail with the exception types and messages of the shared
rule :func:`dgn_core.validation.check_covariance` for the same kinds of failure (wrong
shape, NaN or infinite entries, not symmetric, not positive definite):

* float input (every entry a float, or an int that a float holds exactly) is checked by
  ``check_covariance`` itself, so it is accepted by the exact backend exactly when the fast
  backend accepts it (condition number below ``MAX_CONDITION`` included);
* exact input (any Fraction or mpf entry, or an int beyond 2**53) is checked in rational
  arithmetic: symmetry by the same relative rule (``max |K - K^T| <= SYMMETRY_RTOL
  max |K|``), definiteness by an exact LDL^T factorisation. No condition-number limit
  applies: the exact backend solves no float system.

Only the checks are shared: the values the exact functions compute with are their own
exact (or mpf) conversions of the entries, symmetrised as ``(K + K^T) / 2``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import NDArray

from dgn_core.validation import SYMMETRY_RTOL, check_covariance

__all__ = ["is_float_matrix", "check_covariance_rule"]

#: the largest integer every float64 integer up to it represents exactly
_FLOAT_INT_LIMIT = 2 ** 53


def is_float_matrix(entries: NDArray[Any]) -> bool:
    """Whether every entry is a float (Python or numpy) or an int a float holds exactly."""
    for v in entries.flat:
        if isinstance(v, (bool, np.bool_)):
            return False
        if isinstance(v, (float, np.floating)):
            continue
        if isinstance(v, (int, np.integer)) and abs(int(v)) <= _FLOAT_INT_LIMIT:
            continue
        return False
    return True


def _exact(v: Any) -> Fraction:
    """The exact rational value of an int, float, Fraction or finite mpf."""
    if isinstance(v, Fraction):
        return v
    if isinstance(v, mpmath.mpf):
        sign, man, exp, _ = v._mpf_  # (man_exp drops the sign)
        q = Fraction(int(man)) * Fraction(2) ** int(exp)
        return -q if sign else q
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (numbers.Integral, float)):
        return Fraction(v)
    raise TypeError(f"cannot take the exact value of {type(v).__name__}")  # pragma: no cover


def check_covariance_rule(entries: NDArray[Any], name: str = "cov",
                          values: Sequence[Sequence[Any]] | None = None) -> None:
    """Raise as :func:`dgn_core.validation.check_covariance` would for a bad (S, S) matrix.

    Parameters
    ----------
    entries : ndarray of object, shape (S, S)
        The covariance as given (finite numbers; the caller has checked shape and types).
    name : str
        The argument's name, for the messages.
    values : (S, S) nested sequence, optional
        The caller's mpf conversions of the entries; the exact checks use them for the
        entries given as decimal strings (every other entry is checked at its exact value).

    Raises
    ------
    ValueError
        ``{name} is not symmetric (relative asymmetry ...)`` or ``{name} is not positive
        definite (...)``; for float input also ``{name} is singular or numerically
        singular (condition number ...)``.
    """
    S = entries.shape[0]
    if is_float_matrix(entries):
        check_covariance(np.array([[float(v) for v in row] for row in entries.tolist()],
                                  dtype=np.float64).reshape(S, S), S, name)
        return
    K = [[_exact(values[i][j] if values is not None and isinstance(entries[i, j], str)
                 else entries[i, j]) for j in range(S)] for i in range(S)]
    scale = max((abs(v) for row in K for v in row), default=Fraction(0))
    asym = max((abs(K[i][j] - K[j][i]) for i in range(S) for j in range(i)), default=Fraction(0))
    if asym > Fraction(SYMMETRY_RTOL) * scale:
        raise ValueError(f"{name} is not symmetric (relative asymmetry {float(asym / scale):.3g})")
    # exact LDL^T of (K + K^T)/2: positive definite iff every pivot is > 0
    A = [[(K[i][j] + K[j][i]) / 2 for j in range(S)] for i in range(S)]
    for c in range(S):
        p = A[c][c]
        if p <= 0:
            what = "it is singular: " if p == 0 else ""
            raise ValueError(f"{name} is not positive definite ({what}exact pivot {c} of its "
                             f"LDL^T factorisation is {float(p):.3g}); a Gaussian needs a "
                             "positive definite covariance")
        for i in range(c + 1, S):
            f = A[i][c] / p
            for j in range(c + 1, S):
                A[i][j] -= f * A[c][j]
