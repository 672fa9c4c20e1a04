"""Multivariate normal orthant probabilities P(Y <= b), Y ~ N(0, cov), in float64 and log space.

These kernels are the numerical core of the fast path: the E-step, the marginal p(x) and the
posterior reduce to Gaussian integrals on polyhedra, which :mod:`fastpath.integrals` reduces
to orthant probabilities of dimension k <= 4 (docs/DESIGN.md §2.4). Every value is computed in
log space with *relative* accuracy, down to log P of -1e4 and below: no routine forms P and
then takes its log in a tail.

Public functions
----------------
``log_mvn_cdf(b, cov)`` / ``mvn_cdf(b, cov)`` (aliases ``log_orthant_probability`` /
``orthant_probability``) validate their input, standardise, drop ``+inf`` bounds and call the
private kernels, which assume valid standardised input and are what hot loops call:

* ``_log_ndtr(h)``: k = 1 (``scipy.special.log_ndtr``), :mod:`fastpath._orthant_rules`.
* ``_log_bvn(h, k, rho)``: k = 2, log P(X <= h, Y <= k) for a standard bivariate normal with
  correlation ``rho``; arrays broadcast. Plackett's integral with fixed rules
  (:mod:`fastpath._bvn`); for |h| close to |k|, Owen's T form or the conditioning integral
  (:mod:`fastpath._bvn_cond`).
* ``_log_tvn(h, R)``, ``_log_qvn(h, R)``: k = 3, 4 with a correlation matrix ``R``
  (:mod:`fastpath._tvn`, with the adaptive 1-D integrals of
  :mod:`fastpath._orthant_adaptive`); ``_log_mvn_cdf_std(h, R)`` dispatches any k <= 4.

The quadrature rules and helpers they share are in :mod:`fastpath._orthant_rules`. This
module re-exports the private kernels and constants that :mod:`fastpath._cone_algebra`, the
tests and the benchmarks use.

Accuracy (tests/test_orthant_fast_*.py, against mpmath oracles): |log P error| (= relative
error of P) <= 1e-13 (k = 2), 1e-12 (k = 3), 1e-10 (k = 4) where P >= 1e-20, and <= 1e-10
(k <= 3), 1e-9 (k = 4) below, plus the conditioning of log P in the inputs, about
4 eps cond(R) |log P| (which dominates for near-singular R and huge |log P|).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._bvn import _Q_24 as _Q_24
from ._bvn import _Q_FAST as _Q_FAST
from ._bvn import _Q_TIERS as _Q_TIERS
from ._bvn import _log_bvn as _log_bvn
from ._bvn import _log_bvn_numpy as _log_bvn_numpy
from ._bvn import _log_bvn_plackett as _log_bvn_plackett
from ._bvn_cond import _OWEN_HMAX as _OWEN_HMAX
from ._bvn_cond import _log_bvn_cond as _log_bvn_cond
from ._bvn_cond import _log_bvn_owen as _log_bvn_owen
from ._bvn_cond import _owens_t_accurate as _owens_t_accurate
from ._orthant_rules import _GL32 as _GL32
from ._orthant_rules import _gl01 as _gl01
from ._orthant_rules import _log_ndtr as _log_ndtr
from ._orthant_rules import _log_ndtr_diff as _log_ndtr_diff
from ._tvn import _log_mvn_cdf_std as _log_mvn_cdf_std
from ._tvn import _log_mvn_sov as _log_mvn_sov
from ._tvn import _log_qvn as _log_qvn
from ._tvn import _log_tvn as _log_tvn

__all__ = [
    "log_mvn_cdf",
    "log_orthant_probability",
    "mvn_cdf",
    "orthant_probability",
]

_KMAX = 4


def _validate(b: ArrayLike, cov: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    b = np.asarray(b, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    if b.ndim < 1:
        raise ValueError("b must have shape (..., k), got a scalar")
    k = b.shape[-1]
    if cov.ndim < 2 or cov.shape[-2:] != (k, k):
        raise ValueError(f"cov must have shape (..., {k}, {k}) to match b of shape {b.shape}, "
                         f"got {cov.shape}")
    if k > _KMAX:
        raise ValueError(f"orthant probabilities are implemented for k <= {_KMAX}, got k = {k}")
    if np.isnan(b).any():
        raise ValueError("b contains NaN")
    if not np.isfinite(cov).all():
        raise ValueError("cov contains NaN or infinite entries")
    try:
        lead = np.broadcast_shapes(b.shape[:-1], cov.shape[:-2])
    except ValueError:
        raise ValueError(f"leading axes of b {b.shape[:-1]} and cov {cov.shape[:-2]} do not "
                         "broadcast") from None
    if k == 0:
        return np.broadcast_to(b, lead + (0,)), np.broadcast_to(cov, lead + (0, 0))
    d = np.diagonal(cov, axis1=-2, axis2=-1)
    if (d <= 0).any():
        raise ValueError("cov is not positive definite: a variance is <= 0")
    scale = np.abs(cov).max(axis=(-2, -1), keepdims=True)
    if (np.abs(cov - np.swapaxes(cov, -1, -2)) > 1e-12 * scale).any():
        raise ValueError("cov is not symmetric")
    sd = np.sqrt(d)
    corr = cov / (sd[..., :, None] * sd[..., None, :])
    corr = 0.5 * (corr + np.swapaxes(corr, -1, -2))
    if k == 2:
        r = corr[..., 0, 1]
        if (np.abs(r) > 1.0 + 1e-10).any():
            raise ValueError("cov is not positive semi-definite (its correlation matrix has "
                             f"eigenvalue {1.0 - np.abs(r).max():.3g})")
    elif k >= 3:
        ev = np.linalg.eigvalsh(corr)
        # semi-definite within rounding is accepted (|rho| -> 1 is handled); below that no
        if (ev[..., 0] < -1e-10 * k).any():
            raise ValueError("cov is not positive semi-definite (its correlation matrix has "
                             f"eigenvalue {ev[..., 0].min():.3g})")
    hstd = b / sd
    return (np.broadcast_to(hstd, lead + (k,)),
            np.broadcast_to(np.clip(corr, -1.0, 1.0), lead + (k, k)))


def log_mvn_cdf(b: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
    """Log of the multivariate normal cdf, log P(Y <= b) for Y ~ N(0, cov), k <= 4.

    Parameters
    ----------
    b : array_like, shape (..., k)
        Upper bounds; entries may be ``+inf`` (no constraint) or ``-inf`` (probability 0).
    cov : array_like, shape (..., k, k)
        Symmetric positive (semi-)definite covariances. Leading axes broadcast with those of
        ``b``. A correlation of exactly +-1 (singular 2x2) is the degenerate one-dimensional
        case; a correlation matrix that is singular within rounding is accepted.

    Returns
    -------
    ndarray, shape = broadcast leading shape
        log P; 0.0 for k = 0. Relative accuracy of P (= absolute accuracy of log P), also
        in the tails (log P of -1e4 and below): 1e-13 for k <= 2, 1e-12 for k = 3, 1e-10
        for k = 4 where P >= 1e-20 (1e-10, 1e-10, 1e-9 below), plus ~4 eps cond(R)|log P|
        from the rounding of the inputs (see the module docstring).

    Raises
    ------
    ValueError
        Wrong shapes, k > 4, NaN in ``b``, non-finite ``cov``, a non-symmetric or
        non-positive-semi-definite ``cov``.
    """
    h, R = _validate(b, cov)
    return _log_mvn_cdf_std(h, R)


def mvn_cdf(b: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
    """Multivariate normal cdf P(Y <= b) for Y ~ N(0, cov), k <= 4.

    Same arguments as :func:`log_mvn_cdf`; returns ``exp(log_mvn_cdf(b, cov))`` (relative
    accuracy where P is representable, absolute accuracy ~1e-16 near 1).
    """
    return np.exp(log_mvn_cdf(b, cov))


def log_orthant_probability(b: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
    """log P(Y <= b), Y ~ N(0, cov): alias of :func:`log_mvn_cdf` (same arguments)."""
    return log_mvn_cdf(b, cov)


def orthant_probability(b: ArrayLike, cov: ArrayLike) -> NDArray[np.float64]:
    """P(Y <= b), Y ~ N(0, cov): alias of :func:`mvn_cdf` (same arguments)."""
    return mvn_cdf(b, cov)

