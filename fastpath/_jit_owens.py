"""Compiled Owen's T function (scalar): T(h, a) = 1/(2 pi) int_0^a exp(-h^2 (1+x^2)/2)/(1+x^2) dx.

Patefield & Tandy (2000), "Fast and accurate calculation of Owen's T function",
J. Stat. Softw. 5(5): one of six series or quadratures (T1-T6) chosen from a table over
(h, a) regions, for h >= 0 and 0 <= a <= 1; T is even in h and odd in a, and |a| > 1 is
reduced to 1/|a| by

    T(h, a) = [Phi(h) + Phi(ah)]/2 - Phi(h) Phi(ah) - T(ah, 1/a)   (h >= 0, a > 1).

Ported from scipy's implementation (xsf ``cephes/owens_t.h``: Boost's ``owens_t`` by
B. Sobotta, translated to C++ by the SciPy developers; Boost Software License), with its
region table, orders and coefficient tables (T3's C_i, T5's 13-point Gauss rule) copied
digit for digit, so that it computes what ``scipy.special.owens_t`` computes, compiled and
without calling scipy (a kernel that does cannot be cached). The normal cdf is
:func:`fastpath._jit_special.ndtr` and erf/erfc of the platform where scipy uses
Cephes' erf/erfc. Two departures, where scipy loses digits relative to T:

* T5 instead of T3 for h in (3.36, 3.8) (and so for a h there when |a| > 1): T3's
  recursion loses up to 1.5e-13 of T(h, inf) at h = 3.37-3.6, T5 is within 2e-15;
* T2 forms Phi(ah) - 1/2 by erf: scipy's ndtr(ah) - 0.5 loses it for small a h.

tests/test_jit_owens.py measures both against mpmath: relative to T(h, inf) and to T,
within 3e-15 for |h| < 3.3, 1e-14 below 9, and h^2 eps beyond (the rounding of h^2 and
h/sqrt 2 inside exp and erfc).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit, parallel_for
from ._jit_special import ndtr

_TWO_PI = 2.0 * math.pi
#: where the table picks T3 below this h, T5 is used instead (accurate relatively)
_T3_FROM = 3.8
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_SQRT1_2 = math.sqrt(0.5)

#: method index of each (a interval, h interval) cell: row a (8), column h (15)
_SELECT = np.array([
    0, 0, 1, 12, 12, 12, 12, 12, 12, 12, 12, 15, 15, 15, 8,
    0, 1, 1, 2, 2, 4, 4, 13, 13, 14, 14, 15, 15, 15, 8,
    1, 1, 2, 2, 2, 4, 4, 14, 14, 14, 14, 15, 15, 15, 9,
    1, 1, 2, 4, 4, 4, 4, 6, 6, 15, 15, 15, 15, 15, 9,
    1, 2, 2, 4, 4, 5, 5, 7, 7, 16, 16, 16, 11, 11, 10,
    1, 2, 4, 4, 4, 5, 5, 7, 7, 16, 16, 16, 11, 11, 11,
    1, 2, 3, 3, 5, 5, 7, 7, 16, 16, 16, 16, 16, 11, 11,
    1, 2, 3, 3, 5, 5, 17, 17, 17, 17, 16, 16, 16, 11, 11], dtype=np.int64)
#: upper ends of the h intervals (the last runs to infinity)
_HRANGE = np.array([0.02, 0.06, 0.09, 0.125, 0.26, 0.4, 0.6, 1.6, 1.7, 2.33, 2.4, 3.36, 3.4,
                    4.8])
#: upper ends of the a intervals
_ARANGE = np.array([0.025, 0.09, 0.15, 0.36, 0.5, 0.9, 0.99999])
#: order (number of terms) and method (T1-T6) of each method index
_ORD = np.array([2, 3, 4, 5, 7, 10, 12, 18, 10, 20, 30, 0, 4, 7, 8, 20, 0, 0], dtype=np.int64)
_METH = np.array([1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 4, 4, 4, 4, 5, 6], dtype=np.int64)
#: T3's coefficients (Chebyshev-economised series of (1 + x)^-1 ... of the paper)
_C3 = np.array([
    1.0, -1.0, 1.0, -0.9999999999999998, 0.9999999999999839, -0.9999999999993063,
    0.9999999999797337, -0.9999999995749584, 0.9999999933226235, -0.9999999188923242,
    0.9999992195143483, -0.9999939351372067, 0.9999613559769055, -0.9997955636651394,
    0.9990927896296171, -0.9965938374119182, 0.9891001713838613, -0.9700785580406933,
    0.9291143868326319, -0.8542058695956156, 0.737965260330301, -0.585234698828374,
    0.4159977761456763, -0.25882108752419436, 0.13755358251638927, -0.060795276632595575,
    0.021633768329987153, -0.005934056934551867, 0.0011743414818332946,
    -0.0001489155613350369, 9.072354320794358e-06])
#: T5's Gauss rule: squares of the 13 positive nodes of 26-point Gauss-Legendre on [-1, 1]
#: and their weights over 2 pi (T = a int_0^1 exp(-h^2 (1 + a^2 x^2)/2)/(1 + a^2 x^2) dx/(2 pi))
_PTS5 = np.array([
    0.35082039676451715489e-02, 0.31279042338030753740e-01, 0.85266826283219451090e-01,
    0.16245071730812277011e+00, 0.25851196049125434828e+00, 0.36807553840697533536e+00,
    0.48501092905604697475e+00, 0.60277514152618576821e+00, 0.71477884217753226516e+00,
    0.81475510988760098605e+00, 0.89711029755948965867e+00, 0.95723808085944261843e+00,
    0.99178832974629703586e+00])
_WTS5 = np.array([
    0.18831438115323502887e-01, 0.18567086243977649478e-01, 0.18042093461223385584e-01,
    0.17263829606398753364e-01, 0.16243219975989856730e-01, 0.14994592034116704829e-01,
    0.13535474469662088392e-01, 0.11886351605820165233e-01, 0.10070377242777431897e-01,
    0.81130545742299586629e-02, 0.60419009528470238773e-02, 0.38862217010742057883e-02,
    0.16793031084546090448e-02])


@jit
def _half_erf(x: float) -> float:
    """Phi(x) - 1/2, without the cancellation of forming Phi(x) first."""
    return 0.5 * math.erf(x * _SQRT1_2)


@jit
def _t1(h: float, a: float, m: int) -> float:
    """Series in powers of a (small h)."""
    hs = -0.5 * h * h
    dhs = math.exp(hs)
    as_ = a * a
    aj = a / _TWO_PI
    dj = math.expm1(hs)
    gj = hs * dhs
    val = math.atan(a) / _TWO_PI
    j = 1
    jj = 1
    while True:
        val += dj * aj / jj
        if m <= j:
            break
        j += 1
        jj += 2
        aj *= as_
        dj = gj - dj
        gj *= hs / j
    return val


@jit
def _t2(h: float, a: float, ah: float, m: int) -> float:
    """Series in powers of 1/h^2 (large h, small a h)."""
    maxi = 2 * m + 1
    hs = h * h
    as_ = -a * a
    y = 1.0 / hs
    val = 0.0
    vi = a * math.exp(-0.5 * ah * ah) / _SQRT_2PI
    # Phi(ah) - 1/2 as erf: scipy's ndtr(ah) - 0.5 keeps only ~|log2(ah)| bits of it for
    # small a h (relative 1e-5 of T at a h = 1e-11)
    z = _half_erf(ah) / h
    i = 1
    while True:
        val += z
        if maxi <= i:
            break
        z = y * (vi - i * z)
        vi *= as_
        i += 2
    return val * math.exp(-0.5 * hs) / _SQRT_2PI


@jit
def _t3(h: float, a: float, ah: float) -> float:
    """T2 with the Chebyshev-economised coefficients (a near 1)."""
    aa = a * a
    hh = h * h
    y = 1.0 / hh
    vi = a * math.exp(-0.5 * ah * ah) / _SQRT_2PI
    zi = _half_erf(ah) / h
    result = 0.0
    for i in range(_C3.size):
        result += zi * _C3[i]
        zi = y * ((2 * i + 1) * zi - vi)
        vi *= aa
    return result * math.exp(-0.5 * hh) / _SQRT_2PI


@jit
def _t4(h: float, a: float, m: int) -> float:
    """Series in powers of a^2 with exact exp(-h^2 (1 + a^2)/2) factored out."""
    maxi = 2 * m + 1
    hh = h * h
    naa = -a * a
    ai = a * math.exp(-0.5 * hh * (1.0 - naa)) / _TWO_PI
    yi = 1.0
    result = 0.0
    i = 1
    while True:
        result += ai * yi
        if maxi <= i:
            break
        i += 2
        yi = (1.0 - hh * yi) / i
        ai *= naa
    return result


@jit
def _t5(h: float, a: float) -> float:
    """Gauss quadrature of the defining integral (moderate h, a near 1)."""
    aa = a * a
    nhh = -0.5 * h * h
    result = 0.0
    for i in range(_PTS5.size):
        r = 1.0 + aa * _PTS5[i]
        result += _WTS5[i] * math.exp(nhh * r) / r
    return result * a


@jit
def _t6(h: float, a: float) -> float:
    """Expansion about a = 1 (a within 1e-5 of 1)."""
    normh = ndtr(-h)
    y = 1.0 - a
    r = math.atan2(y, 1.0 + a)
    result = 0.5 * normh * (1.0 - normh)
    if r != 0.0:
        result -= r * math.exp(-y * h * h / (2.0 * r)) / _TWO_PI
    return result


@jit
def _dispatch(h: float, a: float, ah: float) -> float:
    """T(h, a) for h >= 0, 0 <= a <= 1 (``ah`` = a h, passed exactly by the reduction)."""
    if h == 0.0:
        return math.atan(a) / _TWO_PI
    if a == 0.0:
        return 0.0
    if a == 1.0:
        return 0.5 * ndtr(-h) * ndtr(h)
    ih = _HRANGE.size
    for i in range(_HRANGE.size):
        if h <= _HRANGE[i]:
            ih = i
            break
    ia = _ARANGE.size
    for i in range(_ARANGE.size):
        if a <= _ARANGE[i]:
            ia = i
            break
    index = _SELECT[ia * 15 + ih]
    m = _ORD[index]
    meth = _METH[index]
    if meth == 1:
        return _t1(h, a, m)
    if meth == 2:
        return _t2(h, a, ah, m)
    if meth == 3:
        if h < _T3_FROM:
            # T3's recursion amplifies rounding by ~prod (2i + 1)/h^2 (up to 1e-13 relative
            # at h = 3.4); T5's 13-point rule is within 2e-15 there (tests/test_jit_owens.py)
            return _t5(h, a)
        return _t3(h, a, ah)
    if meth == 4:
        return _t4(h, a, m)
    if meth == 5:
        return _t5(h, a)
    return _t6(h, a)


@jit
def owens_t(h: float, a: float) -> float:
    """Owen's T function T(h, a) (scalar; nan for a nan argument).

    Even in h, odd in a; T(h, +-inf) = +-Phi(-|h|)/2, T(+-inf, a) = 0.
    """
    if math.isnan(h) or math.isnan(a):
        return math.nan
    h = abs(h)
    fa = abs(a)
    fah = fa * h
    if fa == math.inf:
        result = 0.5 * ndtr(-h)
    elif h == math.inf:
        result = 0.0
    elif fa <= 1.0:
        result = _dispatch(h, fa, fah)
    elif fah <= 0.67:
        # [Phi(h) + Phi(ah)]/2 - Phi(h) Phi(ah) = 1/4 - (Phi(h) - 1/2)(Phi(ah) - 1/2)
        result = 0.25 - _half_erf(h) * _half_erf(fah) - _dispatch(fah, 1.0 / fa, h)
    else:
        # ... = [Q(h) + Q(ah)]/2 - Q(h) Q(ah) with Q(x) = Phi(-x): accurate when both are small
        qh = ndtr(-h)
        qah = ndtr(-fah)
        result = 0.5 * (qh + qah) - qh * qah - _dispatch(fah, 1.0 / fa, h)
    return -result if a < 0.0 else result


@jit
def _owens_t_range(lo: int, hi: int, h: NDArray[np.float64], a: NDArray[np.float64],
                   out: NDArray[np.float64]) -> None:
    for i in range(lo, hi):
        out[i] = owens_t(h[i], a[i])


def owens_t_vec(h: NDArray[np.float64], a: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`owens_t` elementwise over two 1-D arrays of one size (n,) -> (n,), elements
    split over the kernel threads (tests, warm-up, benchmarks)."""
    if a.size != h.size:
        raise ValueError("owens_t_vec: h and a must have the same size")
    out = np.empty(h.size)
    parallel_for(lambda lo, hi: _owens_t_range(lo, hi, h, a, out), h.size, 1024)
    return out


def _warmup() -> None:
    h = np.array([0.0, 0.5, 2.0, 5.0, -1.0])
    a = np.array([0.3, 1.0, 0.7, 2.5, -0.2])
    owens_t_vec(h, a)
    owens_t(0.5, 0.3)
