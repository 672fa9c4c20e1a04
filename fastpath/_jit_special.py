"""Compiled univariate normal kernels (scalar): Phi, log Phi and log(Phi(b) - Phi(a)).

The compiled orthant kernels call these per element. They reproduce scipy.special's
``ndtr`` and ``log_ndtr`` (the same algorithms, on the platform's erf/erfc) and
:func:`fastpath._orthant_rules._log_ndtr_diff`; tests/test_jit_special.py cross-checks
them against those and against mpmath over all magnitudes.
"""

from __future__ import annotations

import math
from typing import Any

import llvmlite.ir
import numpy as np
from numba import types
from numba.extending import intrinsic
from numpy.typing import NDArray

from ._jit import jit, jit_inline
from ._orthant_rules import _GL10, _gl01

_SQRT1_2 = math.sqrt(0.5)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_EPS = float(np.finfo(np.float64).eps)
_X10 = np.ascontiguousarray(_GL10[0])
_W10 = np.ascontiguousarray(_GL10[1])


@intrinsic
def _bits_to_float(typingctx, bits):  # type: ignore[no-untyped-def]
    """The float64 whose IEEE bits are the int64 ``bits`` (a register move, vectorisable)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], llvmlite.ir.DoubleType())

    return sig, codegen


_LOG2E = 1.4426950408889634
# ln 2 split so that k * _LN2_HI is exact for |k| < 2^20 (fdlibm's constants)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
#: 1.5 * 2^52: adding and subtracting it rounds |y| < 2^51 to the nearest integer
_SHIFT = 6755399441055744.0


@jit_inline
def exp_vec(x: float) -> float:
    """e^x for x >= -708 (0 below; nan for nan), within 2 ulp: straight-line arithmetic that LLVM
    vectorises in node loops, where the libm call would stay scalar (~4x slower).

    Cody-Waite reduction x = k ln 2 + r, |r| <= ln(2)/2 (+ 1 ulp), then Taylor to degree 13
    (truncation < 4e-18 relative) and 2^k from its exponent bits.
    """
    xc = min(max(x, -708.0), 709.0)
    kf = (xc * _LOG2E + _SHIFT) - _SHIFT  # round to nearest (math.floor is a call)
    r = (xc - kf * _LN2_HI) - kf * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale: float = _bits_to_float((np.int64(kf) + 1023) << 52)  # type: ignore[call-arg]
    return p * scale if x >= -708.0 else (0.0 if x < -708.0 else x)  # nan stays nan


@jit
def ndtr(a: float) -> float:
    """Phi(a) (Cephes ndtr: erf near 0, erfc in the tails)."""
    if math.isnan(a):
        return math.nan
    x = a * _SQRT1_2
    z = abs(x)
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0.0 else y


@jit
def log_ndtr(a: float) -> float:
    """log Phi(a), relatively accurate in both tails (scipy's log_ndtr: log1p for a > 0,
    the asymptotic series below -20)."""
    if math.isnan(a):
        return math.nan
    if a > 0.0:
        return math.log1p(-ndtr(-a))  # Phi(a) near 1: log(Phi(a)) would lose digits
    if a > -20.0:
        return math.log(ndtr(a))
    # asymptotic series of the Mills ratio: Phi(a) = phi(a)/(-a) (1 - 1/a^2 + 3/a^4 - ...)
    log_lhs = -0.5 * a * a - math.log(-a) - _LOG_SQRT_2PI
    last = 0.0
    rhs = 1.0
    numer = 1.0
    denom_factor = 1.0
    denom_cons = 1.0 / (a * a)
    sign = 1.0
    i = 0
    while abs(last - rhs) > _EPS:
        i += 1
        last = rhs
        sign = -sign
        denom_factor *= denom_cons
        numer *= 2 * i - 1
        rhs += sign * numer * denom_factor
    return log_lhs + math.log(rhs)


@jit
def log_ndtr_diff(a: float, b: float) -> float:
    """log(Phi(b) - Phi(a)) for a < b without cancellation; -inf where a >= b."""
    if not a < b:
        return -math.inf
    # reflect so that the interval lies mostly in the lower half, where both cdfs are
    # relatively accurate
    if a + b > 0.0:
        lo, hi = -b, -a
    else:
        lo, hi = a, b
    llo = log_ndtr(lo)
    lhi = log_ndtr(hi)
    d = min(llo - lhi, 0.0)
    if d > -0.7:
        # Phi(lo)/Phi(hi) > 1/2: integrate phi directly (the interval is short on the
        # scale of phi there: (hi - lo) |hi| <~ 0.7)
        width = hi - lo
        m = -math.inf
        for i in range(_X10.size):
            x = lo + width * _X10[i]
            m = max(m, -0.5 * x * x)
        s = 0.0
        for i in range(_X10.size):
            x = lo + width * _X10[i]
            s += _W10[i] * math.exp(-0.5 * x * x - m)
        return m + math.log(s * width) - _LOG_SQRT_2PI
    return lhi + math.log(-math.expm1(d))


@jit
def logaddexp(a: float, b: float) -> float:
    """log(e^a + e^b) for scalars (-inf allowed)."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


@jit_inline
def sum4(x: NDArray[np.float64], n: int) -> float:
    """sum of x[:n] in four interleaved partial sums: a fixed order (the same result on
    any thread) and four independent chains of additions instead of one."""
    s0 = s1 = s2 = s3 = 0.0
    m = n - n % 4
    for i in range(0, m, 4):
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
    for i in range(m, n):
        s0 += x[i]
    return (s0 + s1) + (s2 + s3)


@jit
def sorted_head(x: NDArray[Any], n: int) -> NDArray[Any]:
    """x[:n] sorted ascending, as a new array of x's dtype (insertion sort, for the few
    tens to hundreds of keys the kernels sort; no NaN among them). Stands in for
    ``np.sort(x[:n])``, whose quicksort compiles for seconds in every process that compiles
    a caller and sorts the same values in the same order.

    Parameters
    ----------
    x : ndarray, shape (>= n,)
        Keys (int64 or float64).
    n : int
        How many leading keys to sort.

    Returns
    -------
    ndarray, shape (n,)
    """
    out = np.empty(n, dtype=x.dtype)
    for i in range(n):
        v = x[i]
        j = i
        while j > 0 and out[j - 1] > v:
            out[j] = out[j - 1]
            j -= 1
        out[j] = v
    return out


def gl_rule(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The n-point Gauss-Legendre rule on [0, 1] (``_orthant_rules._gl01``) as contiguous
    arrays, the form the kernels take as constants."""
    x, w = _gl01(n)
    return np.ascontiguousarray(x), np.ascontiguousarray(w)


@jit
def log_ndtr_vec(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`log_ndtr` over a 1-D array (tests)."""
    out = np.empty(a.size)
    for i in range(a.size):
        out[i] = log_ndtr(a[i])
    return out


@jit
def log_ndtr_diff_vec(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`log_ndtr_diff` over two 1-D arrays of one size (tests)."""
    out = np.empty(a.size)
    for i in range(a.size):
        out[i] = log_ndtr_diff(a[i], b[i])
    return out


@jit
def exp_vec_array(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`exp_vec` over a 1-D array (tests)."""
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = exp_vec(x[i])
    return out


def _warmup() -> None:
    # the kernels that other modules' kernels call, each with its one signature; the array
    # forms above serve the tests only, which compile them on their first use
    ndtr(0.5)
    log_ndtr(-1.0)
    log_ndtr_diff(-1.0, 0.5)
    logaddexp(-1.0, 0.5)
