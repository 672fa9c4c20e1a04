"""Vectorisable log and log Phi for the node loops of the compiled orthant kernels.

``math.log`` and :func:`fastpath._jit_special.log_ndtr` are libm calls that keep a node
loop scalar (a log Phi costs an erfc and a log, ~60-100 ns); the functions here are
straight-line arithmetic (selects instead of branches), which LLVM vectorises:

* :func:`log_vec`: fdlibm's log (reduction to m in [sqrt(2)/2, sqrt(2)), s = f/(2 + f),
  a degree-14 polynomial in s), within 1 ulp, for normal positive x;
* :func:`log_ndtr_vec`: log Phi(a) by Cephes' rational approximations of erf and erfc
  (the ones scipy's ``log_ndtr`` evaluates), in log form for a < -1 (log Phi =
  log(1/2) - z^2 + log(P(z)/Q(z)), z = -a/sqrt 2: no exponential and no underflow) and the
  asymptotic series of the Mills ratio (fixed 10 terms) below a = -40, where the rational
  approximation of erfc is outside its fitted range. The absolute error of log Phi is
  about 2e-16 (1 + |log Phi|): what the node values of a log-integrand need (an error e in
  L is a relative error e of e^L); tests/test_jit_lnd.py checks it against scipy and
  mpmath.
"""

from __future__ import annotations

import math

import llvmlite.ir
import numpy as np
from numba import types
from numba.extending import intrinsic
from numpy.typing import NDArray

from ._jit import jit, jit_inline
from ._jit_special import _bits_to_float, exp_vec


@intrinsic
def _float_to_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """The int64 holding the IEEE bits of the float64 ``x`` (a register move)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], llvmlite.ir.IntType(64))

    return sig, codegen


_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = math.sqrt(2.0)
_MANT = (1 << 52) - 1
_ONE_BITS = 1023 << 52


@jit_inline
def log_vec(x: float) -> float:
    """log x for normal x > 0 (fdlibm's algorithm, within 1 ulp); no special values."""
    bits: int = _float_to_bits(x)  # type: ignore[call-arg]
    k = (bits >> 52) - 1023
    m: float = _bits_to_float((bits & _MANT) | _ONE_BITS)  # type: ignore[call-arg]  # [1, 2)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    kf = float(k + 1) if big else float(k)
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    R = t2 + t1
    hfsq = 0.5 * f * f
    return kf * _LN2_HI - ((hfsq - (s * (hfsq + R) + kf * _LN2_LO)) - f)


# Cephes ndtr.c (Moshier): erf(x) = x T(x^2)/U(x^2) for |x| <= 1; erfc(x) = e^{-x^2} P(x)/Q(x)
# for 1 <= x < 8 and e^{-x^2} R(x)/S(x) for x >= 8 (Q, S with leading coefficient 1)
_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
      7.00332514112805075473e3, 5.55923013010394962768e4)
_U = (3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
      2.26290000613890934246e4, 4.92673942608635921086e4)
_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
      4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
      9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_Q = (1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
      9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
      1.65666309194161350182e3, 5.57535340817727675546e2)
_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
      6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
_S = (2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
      1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)
_SQRTH = math.sqrt(0.5)
_LOG_HALF = math.log(0.5)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
#: Veltkamp's splitter: x = xh + xl with xh of 26 bits, so that xh^2 and 2 xh xl are exact
_SPLIT = 134217729.0


@jit_inline
def _sq(x: float) -> tuple[float, float]:
    """x^2 as hi + lo exactly (Dekker's product without fma)."""
    t = x * _SPLIT
    xh = t - (t - x)
    xl = x - xh
    hi = x * x
    lo = ((xh * xh - hi) + 2.0 * xh * xl) + xl * xl
    return hi, lo


@jit_inline
def log_ndtr_vec(a: float) -> float:
    """log Phi(a), straight-line (see the module notes); 0 for +inf, -inf for -inf.

    One rational function (numerator and denominator chosen by the range, one division)
    and one :func:`log_vec` of an argument chosen by the range."""
    x = a * _SQRTH
    z = abs(x)
    zc = max(z, 1.0)
    zs = min(z, 1.0)
    w = zs * zs
    # erf(x)/x = T(x^2)/U(x^2) for z < 1
    pt = (((_T[0] * w + _T[1]) * w + _T[2]) * w + _T[3]) * w + _T[4]
    qt = ((((w + _U[0]) * w + _U[1]) * w + _U[2]) * w + _U[3]) * w + _U[4]
    # e^{z^2} erfc(z) = P(z)/Q(z) (1 <= z < 8), R(z)/S(z) (z >= 8)
    pp = ((((((((_P[0] * zc + _P[1]) * zc + _P[2]) * zc + _P[3]) * zc + _P[4]) * zc + _P[5])
             * zc + _P[6]) * zc + _P[7]) * zc + _P[8])
    qp = (((((((zc + _Q[0]) * zc + _Q[1]) * zc + _Q[2]) * zc + _Q[3]) * zc + _Q[4]) * zc
           + _Q[5]) * zc + _Q[6]) * zc + _Q[7]
    pr = ((((_R[0] * zc + _R[1]) * zc + _R[2]) * zc + _R[3]) * zc + _R[4]) * zc + _R[5]
    qr = (((((zc + _S[0]) * zc + _S[1]) * zc + _S[2]) * zc + _S[3]) * zc + _S[4]) * zc + _S[5]
    small = z < 1.0
    num = pt if small else (pp if zc < 8.0 else pr)
    den = qt if small else (qp if zc < 8.0 else qr)
    ratio = num / den
    zh, zl = _sq(zc)
    # a <= -40: the Mills ratio series, Phi(a) = phi(a)/(-a) (1 - 1/a^2 + 3/a^4 - ...)
    ai = 1.0 / (a * a)
    ser = 1.0 - ai * (1.0 - 3.0 * ai * (1.0 - 5.0 * ai * (1.0 - 7.0 * ai * (1.0 - 9.0 * ai * (
        1.0 - 11.0 * ai * (1.0 - 13.0 * ai * (1.0 - 15.0 * ai * (1.0 - 17.0 * ai))))))))
    far = a < -40.0
    # z < 1: Phi = (1 + erf(x))/2; a <= -sqrt 2: erfc(z)/2 = e^{-z^2} ratio / 2;
    # a >= sqrt 2: 1 - erfc(z)/2
    y = 0.5 * exp_vec(-zh) * (1.0 - zl) * ratio
    if small:
        arg = 0.5 + 0.5 * max(min(x, 1.0), -1.0) * ratio
        add = 0.0
    elif a < 0.0:
        arg = ser * ai * -a if far else ratio  # ser / (-a)
        add = -0.5 * a * a - _LOG_SQRT_2PI if far else _LOG_HALF - zh - zl
    else:
        arg = 1.0 - y
        add = 0.0
    res = add + log_vec(arg)
    res = 0.0 if a == math.inf else res
    return -math.inf if a == -math.inf else res


@jit
def log_vec_array(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`log_vec` over a 1-D array (tests)."""
    out = np.empty(x.size)
    for i in range(x.size):
        out[i] = log_vec(x[i])
    return out


@jit
def log_ndtr_vec_array(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`log_ndtr_vec` over a 1-D array (tests; the loop vectorises)."""
    out = np.empty(a.size)
    for i in range(a.size):
        out[i] = log_ndtr_vec(a[i])
    return out


def _warmup() -> None:
    x = np.array([-50.0, -30.0, -1.0, 0.5, 7.0])
    # the one kernel compiled here (its inline functions live in their callers' code): the
    # cache then holds this module; log_ndtr_vec_array serves the tests only
    log_vec_array(np.abs(x))
