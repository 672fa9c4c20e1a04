"""Ball-arithmetic helpers of the certified path: precision, exact conversions, digits.

Every certified quantity is an :class:`flint.arb` ball ``[m +/- r]`` that is guaranteed to
contain the true value (python-flint's arb: rigorous error propagation through every
operation, including ``erfc``, ``exp``, ``log`` and ``acb.integral``). Exact inputs (ints,
floats, Fractions) are carried as :class:`flint.fmpq` rationals; an ``arb`` is made of one
only at the point where it enters the transcendental part, so the only rounding is arb's.

The number of *certified digits* of a ball (:func:`certified_decimal`) is a theorem: for
the decimal string ``s`` returned with ``n`` digits, ``|x - s| <= 10**-n * |s|`` (relative)
or ``|x - s| <= 10**-n`` (absolute) holds for every ``x`` in the ball.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from flint import arb, fmpq

__all__ = ["certified_decimal", "certified_digits", "DEFAULT_DIGITS", "DEFAULT_MAX_PREC"]

#: decimal digits requested by default
DEFAULT_DIGITS = 30
#: default ceiling of the working precision, in bits (about 2,460 decimal digits)
DEFAULT_MAX_PREC = 8192
#: bits per decimal digit
LOG2_10 = math.log2(10.0)
#: extra bits of working precision above the target of a computation
GUARD_BITS = 24


def digits_to_bits(digits: int) -> int:
    return int(math.ceil(digits * LOG2_10))


def check_digits(digits: Any, max_prec: Any) -> tuple[int, int]:
    """Validate the ``digits`` and ``max_prec`` arguments of the public functions."""
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 1:
        raise ValueError(f"digits must be a positive integer, got {digits!r}")
    if isinstance(max_prec, bool) or not isinstance(max_prec, (int, np.integer)) or max_prec < 64:
        raise ValueError(f"max_prec must be an integer number of bits >= 64, got {max_prec!r}")
    if digits_to_bits(int(digits)) + GUARD_BITS > int(max_prec):
        raise ValueError(f"digits = {digits} needs more than max_prec = {max_prec} bits "
                         f"(at least {digits_to_bits(int(digits)) + GUARD_BITS})")
    return int(digits), int(max_prec)


# --------------------------------------------------------------------------- exact numbers
def to_fmpq(x: Any, name: str) -> fmpq:
    """An exact rational from an int, float (its binary value), Fraction, fmpq or mpf."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, fmpq):
        return x
    if isinstance(x, bool):
        raise TypeError(f"{name} entries must be numbers, got a boolean")
    if isinstance(x, int):
        return fmpq(x)
    if isinstance(x, Fraction):
        return fmpq(x.numerator, x.denominator)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"{name} contains NaN or infinite entries")
        n, d = x.as_integer_ratio()
        return fmpq(n, d)
    if isinstance(x, mpmath.mpf):
        if not mpmath.isfinite(x):
            raise ValueError(f"{name} contains NaN or infinite entries")
        sign, man, exp, _ = x._mpf_
        q = fmpq(int(man)) * (fmpq(2) ** int(exp))
        return -q if sign else q
    raise TypeError(f"{name} entries must be ints, floats, Fractions or mpf, got {type(x).__name__}")


def frac_to_fmpq(q: Fraction) -> fmpq:
    return fmpq(q.numerator, q.denominator)


def fmpq_to_fraction(q: fmpq) -> Fraction:
    return Fraction(int(q.p), int(q.q))


def ball(q: fmpq | int) -> arb:
    """The ball of an exact rational at the current precision (radius: one rounding)."""
    return arb(q)


def log2_abs(x: arb) -> float:
    """log2 of the largest absolute value in the ball, as a float (-inf for exactly 0)."""
    up = x.abs_upper()
    if up.is_zero():
        return -math.inf
    m, e = up.mid().man_exp()
    return math.log2(abs(int(m))) + int(e)


def rel_bits(x: arb) -> float:
    """Certified relative accuracy in bits (``-inf`` when the ball contains 0)."""
    if x.rad().is_zero():
        return math.inf
    if x.contains(0):
        return -math.inf
    return log2_abs(x.abs_lower()) - log2_abs(x.rad())


def abs_bits(x: arb) -> float:
    """Certified absolute accuracy in bits: ``-log2(radius)``."""
    r = x.rad()
    if r.is_zero():
        return math.inf
    if not x.is_finite():
        return -math.inf
    return -log2_abs(r)


# --------------------------------------------------------------------------- decimal output
def certified_digits(x: arb, *, absolute: bool = False) -> int:
    """Decimal digits the ball certifies: relative (``|x - mid| <= 10**-n |x|`` for every x
    in the ball), or absolute with ``absolute=True`` (radius <= ``10**-n``); 0 when none."""
    if not isinstance(x, arb):
        raise TypeError(f"x must be a flint.arb ball, got {type(x).__name__}")
    bits = abs_bits(x) if absolute else rel_bits(x)
    if bits == math.inf:
        return 10**6
    return max(0, int(math.floor(bits / LOG2_10)))


def _mid_fraction(x: arb) -> Fraction:
    m, e = x.mid().man_exp()
    return Fraction(int(m)) * Fraction(2) ** int(e)


def certified_decimal(x: arb, *, absolute: bool = False, max_digits: int = 10**4
                      ) -> tuple[str, int]:
    """A decimal string of a ball and the number of digits it is certified to.

    Parameters
    ----------
    x : flint.arb
        A certified enclosure.
    absolute : bool, default False
        Count digits absolutely (after the decimal point; for logarithms, or quantities that
        may vanish by symmetry) instead of relatively (significant digits).
    max_digits : int
        Cap on the digits printed.

    Returns
    -------
    s : str
        The midpoint rounded to the certified digits (plus one), in ``%e`` style.
    n : int
        Certified digits: every value ``v`` in the ball satisfies ``|v - s| <= 10**-n * |s|``
        (relative) or ``|v - s| <= 10**-n`` (absolute); the rounding of ``s`` is included.
        0 when nothing is certified (``s`` is then the midpoint, for information).
    """
    if not isinstance(x, arb):
        raise TypeError(f"x must be a flint.arb ball, got {type(x).__name__}")
    if not x.is_finite():
        return "nan", 0
    n0 = min(certified_digits(x, absolute=absolute), max_digits)
    mid = _mid_fraction(x)
    rad = _mid_fraction(x.rad()) if not x.rad().is_zero() else Fraction(0)
    # the radius as stored is an upper bound (arb's mag_t rounds up): exact Fraction is fine
    for n in range(n0, -1, -1):
        s = _round_decimal(mid, n + 1, absolute)
        sv = _decimal_fraction(s)
        err = abs(mid - sv) + rad
        bound = Fraction(1, 10**n) * (1 if absolute else abs(sv))
        if err <= bound:
            return s, n
    return _round_decimal(mid, 17, absolute), 0


def _round_decimal(v: Fraction, n: int, absolute: bool) -> str:
    """``v`` with ``n`` significant digits (relative) or ``n`` digits after the point."""
    with mpmath.workdps(max(n, 1) + 20 + (len(str(abs(v.numerator) // max(v.denominator, 1)))
                                          if absolute else 0)):
        m = mpmath.mpf(v.numerator) / v.denominator
        if absolute:
            mag = int(mpmath.floor(mpmath.log10(abs(m)))) + 1 if m != 0 else 1
            sig = max(1, n + mag)
        else:
            sig = max(1, n)
        return str(mpmath.nstr(m, sig, min_fixed=1, max_fixed=0, strip_zeros=False))


def _decimal_fraction(s: str) -> Fraction:
    return Fraction(s)
