"""Truncated moments of a one-dimensional Gaussian on an interval (cone tables of dimension 1).

For S = 1 the signed cone sum of an interval [lo, hi] is a difference of two normal cdfs,
evaluated in closed form on the side of the tail (:meth:`_IntervalMoments._evaluate_interval`,
a method of :class:`fastpath._cones.ConeTable`). The closed forms of the truncated mean and
variance cancel far in a tail and on short intervals; there the moments come from a
one-sided asymptotic series (far tails) or from Gauss-Legendre quadrature about the nearer
end of the interval.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy import special
from scipy.special import log_ndtr

from ._cone_algebra import Arr, _exp_rel, _log_phi
from ._orthant_rules import _gl01

_SQRT2 = math.sqrt(2.0)

#: standardised distance beyond which the interval moments come from quadrature or series
_TAIL_QUAD = 4.0
#: short intervals: (b - a)^2 below this times 1 + h^2 (closed-form variance error above
#: ~1e-11 relative; measured <= 7e-12 where the closed form is kept)
_SHORT_VAR = 6.6e-3
#: windows over which the log-density varies by at most this much use 12 nodes (the
#: integrand is then within 1e-17 of a polynomial of degree 23 on the window)
_SMOOTH_EFOLDS = 4.0
_GL40_01 = _gl01(40)
_GL12_01 = _gl01(12)
#: from there on (and with the far end >= 50 / alpha away) the one-sided series is used
_TAIL_SERIES = 16.0
# Asymptotic series of the standard normal truncated to [alpha, inf), u = 1/alpha^2:
# E - alpha = (1/alpha) sum_k _MILLS_C[k] u^k and Var = u sum_k _MILLS_V[k] u^k. Generated
# with sympy (exact integers): S = sum_{k<=16} (-1)^k (2k-1)!! u^k (Mills ratio alpha Q/phi),
# T = series(1/S, u, 0, 17), c = expand((T - 1)/u), v = series(1 + T (1 - T)/u, u, 0, 16);
# measured against mpmath (dps 50): <= 1e-16 relative for alpha >= 16 with these 14 terms.
_MILLS_C = np.array([1, -2, 10, -74, 706, -8162, 110410, -1708394, 29752066, -576037442,
                     12277827850, -285764591114, 7213364729026, -196316804255522], dtype=float)
_MILLS_V = np.array([1, -6, 50, -518, 6354, -89782, 1435330, -25625910, 505785122,
                     -10944711398, 257834384850, -6572585595622, 180334118225650,
                     -5300553714899094], dtype=float)


def _one_sided_tail_series(alpha: Arr) -> tuple[Arr, Arr]:
    """(E - alpha, Var) of the standard normal truncated to [alpha, inf), alpha >= 16."""
    u = 1.0 / (alpha * alpha)
    c = np.full(u.shape, _MILLS_C[-1])
    v = np.full(u.shape, _MILLS_V[-1])
    for k in range(len(_MILLS_C) - 2, -1, -1):
        c = c * u + _MILLS_C[k]
        v = v * u + _MILLS_V[k]
    return c / alpha, v * u


def _interval_moments_quadrature(a: Arr, b: Arr) -> tuple[Arr, Arr]:
    """Mean and variance of the standard normal truncated to [a, b] (1-D arrays, a < b,
    the end nearer to 0 finite), by Gauss-Legendre about that end.

    With s the distance from the nearer end into the interval, the density is proportional
    to exp(-alpha s - s^2/2), alpha the signed distance of that end from 0. Mean = end + E[s]
    and Var = E[(s - E[s])^2] are then computed without the cancellation of the closed forms
    (1 + a phi(a)/Z - ...), which lose all digits where the variance is ~1/alpha^2 << 1. The
    window [0, W] holds all but e^-45 of the mass; 40 nodes integrate exp(-alpha s) over 45
    e-folds to ~1e-16, 12 nodes suffice where the log-density varies by <= 4 on the window
    (short intervals, the common case; tests/test_integrals_fast.py).
    """
    up = a + b >= 0.0                       # the interval lies mostly above 0: anchor at a
    alpha = np.where(up, a, -b)
    # the log-density -alpha s - s^2/2 is below -45 beyond s = sqrt(alpha^2 + 90) - alpha
    # (written without cancellation); for alpha < 0 only short intervals come here
    W = np.minimum(b - a, 90.0 / (np.sqrt(alpha * alpha + 90.0) + np.maximum(alpha, 0.0)))
    m = np.empty(W.shape)
    v = np.empty(W.shape)
    smooth = np.abs(alpha) * W + 0.5 * W * W <= _SMOOTH_EFOLDS
    for sel, (x, w) in ((smooth, _GL12_01), (~smooth, _GL40_01)):
        if not np.any(sel):
            continue
        Ws, al = W[sel], alpha[sel]
        s = Ws[:, None] * x
        lf = s * (-al[:, None] - 0.5 * s)
        f = w * np.exp(lf - lf.max(axis=1, keepdims=True))
        Z = f.sum(axis=1)
        ms = (f @ x) / Z * Ws
        m[sel] = ms
        v[sel] = (f * (s - ms[:, None]) ** 2).sum(axis=1) / Z
    return np.where(up, alpha + m, -(alpha + m)), v



class _IntervalMoments:
    """The dim-1 evaluation of :class:`fastpath._cones.ConeTable` (a mixin of it)."""

    if TYPE_CHECKING:
        lo: NDArray[np.float64]
        hi: NDArray[np.float64]

    def _evaluate_interval(self, mean, chol, moments):
        """dim 1: the two-cone sum in closed form, on the side of the tail (no gathers).

        With a = (lo - mu)/sd <= b = (hi - mu)/sd: m0 = Phi(-a) - Phi(-b) when a > 0,
        Phi(b) - Phi(a) when b < 0 (the decomposition with c toward the mean), and
        (erf(b/sqrt2) - erf(a/sqrt2))/2, a sum of two non-negative terms, when a <= 0 <= b.
        """
        sd = chol[..., 0, 0]                                                  # (Nc, n)
        mu = mean[..., 0]
        with np.errstate(invalid="ignore"):
            a = (self.lo - mu) / sd
            b = (self.hi - mu) / sd
        upper = a > 0
        lower = b < 0
        mid = ~(upper | lower)
        big = log_ndtr(np.where(upper, -a, b))
        small = log_ndtr(np.where(upper, -b, a))
        x = small - big                                                       # <= 0
        with np.errstate(divide="ignore"):
            xc = np.maximum(x, -700.0)                 # keep exp/expm1 in their vector loops
            l1m = np.where(x > -0.6931471805599453, np.log(-np.expm1(xc)), np.log1p(-_exp_rel(x)))
            log_m0 = big + l1m
            if np.any(mid):
                zm = 0.5 * (special.erf(b / _SQRT2) - special.erf(a / _SQRT2))
                log_m0 = np.where(mid, np.log(zm), log_m0)
            log_cancel = np.where(mid, 0.0, np.logaddexp(big, small) - log_m0)
        if not moments:
            return log_m0, None, None, log_cancel
        with np.errstate(invalid="ignore", over="ignore"):
            pa = _exp_rel(_log_phi(a) - log_m0)                                # phi(a) / m0
            pb = _exp_rel(_log_phi(b) - log_m0)
            apa = np.where(np.isfinite(a), a * pa, 0.0)
            bpb = np.where(np.isfinite(b), b * pb, 0.0)
        e1 = pa - pb
        var = (1.0 + apa - bpb) - e1 * e1
        # the closed form loses ~eps h^6 relatively on the variance at the standardised
        # distance h of the nearer end (3e-11 measured at h = 8, 5e-13 at h = 4), and
        # ~400 eps (1 + h^2) / (b - a)^2 (measured) on short intervals, where the variance
        # ~(b - a)^2 / 12 is the difference of O(1 + h^2) terms: there, the asymptotic
        # series (one-sided far tails) or quadrature about the nearer end
        tail = (a >= _TAIL_QUAD) | (b <= -_TAIL_QUAD)
        with np.errstate(invalid="ignore"):
            short = (b - a) ** 2 < _SHORT_VAR * (1.0 + np.minimum(a * a, b * b))
        if np.any(tail | short):
            e1 = e1.copy()
            alpha = np.where(a >= _TAIL_QUAD, a, -b)
            series = tail & (alpha >= _TAIL_SERIES) & (alpha * (b - a) >= 50.0)
            if np.any(series):
                al = alpha[series]
                c, v = _one_sided_tail_series(al)
                e1[series] = np.where(a[series] >= _TAIL_QUAD, al + c, -(al + c))
                var[series] = v
            quad = (tail | short) & ~series
            if np.any(quad):
                e1[quad], var[quad] = _interval_moments_quadrature(a[quad], b[quad])
        return (log_m0, (sd * e1)[..., None], (sd * sd * var)[..., None, None], log_cancel)
