"""Gauss-Legendre rules, the univariate normal kernels and helpers shared by the orthant kernels.

Every orthant kernel (:mod:`fastpath._bvn`, :mod:`fastpath._bvn_cond`, :mod:`fastpath._tvn`)
reduces its probability to 1-D integrals done with fixed Gauss-Legendre rules on [0, 1].
:func:`_gl01` gives those rules correctly rounded to float64 (numpy's small weights near the
ends are not, and integrals concentrated at one end inherit that error), and
:func:`_legendre_tail` the discrete Legendre coefficients with which
:func:`fastpath._orthant_adaptive._adaptive_log_integral` tests whether a rule resolves its
integrand.

The k = 1 kernels live here because every other kernel uses them: ``_log_ndtr`` (log Phi,
relatively accurate in both tails) and ``_log_ndtr_diff`` (log of a difference of two normal
cdfs, without cancellation).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.polynomial.legendre import leggauss
from numpy.typing import ArrayLike, NDArray
from scipy import special as sc

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)
_SQRT8 = math.sqrt(8.0)

#: rows processed at once by the node loops: (rows x nodes) temporaries stay in cache
_CHUNK = 2048
#: Phi(z) = 1 - Phi(-z) >= 1 - 1e-17 for z >= _Z_FLAT
_Z_FLAT = 8.5


@functools.cache
def _gl01(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Gauss-Legendre nodes and weights on [0, 1], correctly rounded to float64.

    ``numpy.polynomial.legendre.leggauss`` returns the small weights near the ends with
    relative errors up to 7e-13 (n = 40), which shows up directly in integrals concentrated
    at one end; the nodes are polished and the weights recomputed in extended precision
    (x87 long double, or mpmath where long double is plain double).
    """
    x0, _ = leggauss(n)
    if np.finfo(np.longdouble).eps < 1e-18:
        x = x0.astype(np.longdouble)

        def leg(x):
            p0, p1 = np.ones_like(x), x.copy()
            for j in range(2, n + 1):
                p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
            return p1, n * (x * p1 - p0) / (x * x - 1)

        for _ in range(3):
            p, dp = leg(x)
            x = x - p / dp
        _, dp = leg(x)
        w = 2 / ((1 - x * x) * dp * dp)
        xs, ws = ((x + 1) / 2).astype(np.float64), (w / 2).astype(np.float64)
        xs.flags.writeable = ws.flags.writeable = False
        return xs, ws
    import mpmath

    with mpmath.workdps(40):
        xl: list[float] = []
        wl: list[float] = []
        for xi in x0:
            x = mpmath.mpf(float(xi))
            for _ in range(3):
                p0, p1 = mpmath.mpf(1), x
                for j in range(2, n + 1):
                    p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
                dp = n * (x * p1 - p0) / (x * x - 1)
                x = x - p1 / dp
            p0, p1 = mpmath.mpf(1), x
            for j in range(2, n + 1):
                p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
            dp = n * (x * p1 - p0) / (x * x - 1)
            xl.append(float((x + 1) / 2))
            wl.append(float(1 / ((1 - x * x) * dp * dp)))
        xa, wa = np.array(xl), np.array(wl)
        xa.flags.writeable = wa.flags.writeable = False
        return xa, wa


_GL10 = _gl01(10)
_GL24 = _gl01(24)
_GL32 = _gl01(32)
_GL40 = _gl01(40)


def _quiet(fn):
    """Run a kernel with floating-point warnings off: the kernels produce and consume
    +-inf on purpose (log 0, Mills ratios of huge arguments) and check what matters."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(divide="ignore", over="ignore", invalid="ignore", under="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def _chunks(n: int, size: int = _CHUNK):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


# --------------------------------------------------------------------------------- k = 1
def _log_ndtr(h: ArrayLike) -> NDArray[np.float64]:
    """log Phi(h), relative accuracy in both tails (k = 1 kernel)."""
    return sc.log_ndtr(h)


@_quiet
def _log_ndtr_diff(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """log(Phi(b) - Phi(a)) for a <= b, without cancellation.

    Parameters
    ----------
    a, b : array_like
        Broadcast together; ``a`` may be ``-inf`` and ``b`` may be ``+inf``.

    Returns
    -------
    ndarray
        Broadcast shape; ``-inf`` where ``a >= b``.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    shape = a.shape
    a, b = a.ravel(), b.ravel()
    out = np.full(a.shape, -np.inf)
    ok = a < b
    if not np.any(ok):
        return out.reshape(shape)
    a, b = a[ok], b[ok]
    # reflect so that the interval lies mostly in the lower half: Phi(b) - Phi(a) =
    # Phi(-a) - Phi(-b); then both cdfs are computed where they are relatively accurate
    flip = a + b > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    llo, lhi = sc.log_ndtr(lo), sc.log_ndtr(hi)
    d = llo - lhi  # <= 0
    with np.errstate(divide="ignore"):
        res = lhi + np.log(-np.expm1(np.minimum(d, 0.0)))
    # Phi(lo)/Phi(hi) > 1/2: the difference loses digits; integrate phi directly (the
    # interval is then short on the scale of phi: (hi - lo) * |hi| <~ 0.7)
    close = d > -0.7
    if np.any(close):
        x, w = _GL10
        lc, hc = lo[close][:, None], hi[close][:, None]
        xs = lc + (hc - lc) * x
        lf = -0.5 * xs * xs
        m = lf.max(axis=1, keepdims=True)
        res[close] = (m[:, 0] + np.log(np.sum(w * np.exp(lf - m), axis=1) * (hc - lc)[:, 0])
                      - _LOG_SQRT_2PI)
    out[ok] = res
    return out.reshape(shape)



@functools.cache
def _legendre_tail(n: int, m: int = 8) -> NDArray[np.float64]:
    """Rows n-m..n-1 of the discrete Legendre transform at the n Gauss-Legendre nodes:
    coefficient c_j = (2j+1)/2 sum_i w_i P_j(y_i) f(y_i) on [-1, 1]."""
    x01, w01 = _gl01(n)
    y, wy = 2.0 * x01 - 1.0, 2.0 * w01
    P = np.zeros((n, n))
    P[0] = 1.0
    if n > 1:
        P[1] = y
    for j in range(2, n):
        P[j] = ((2 * j - 1) * y * P[j - 1] - (j - 1) * P[j - 2]) / j
    coef = (2 * np.arange(n) + 1)[:, None] / 2.0 * P * wy[None, :]
    out = np.ascontiguousarray(coef[n - m:])
    out.flags.writeable = False
    return out
