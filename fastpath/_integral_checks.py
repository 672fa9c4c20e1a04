"""Input checks of :mod:`fastpath.integrals`: half-spaces, means and covariances.

Entries must be real and finite (complex, boolean and string input is refused, not
converted); covariances follow the shared rule of
:func:`dgn_core.validation.check_covariance`. Every failure is a ValueError naming the
argument.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.validation import MAX_CONDITION, check_covariance, real_array

__all__ = ["_as_finite", "_check_halfspaces", "_check_cov", "_check_gaussians"]


def _as_finite(a: ArrayLike, name: str) -> NDArray[np.float64]:
    # real_array refuses complex, boolean and string entries that np.asarray(dtype=float)
    # would convert silently (imaginary parts dropped, True read as 1)
    arr = real_array(a, name, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinite"
        raise ValueError(f"{name} contains {bad} values")
    return arr


def _check_halfspaces(C: ArrayLike, d: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    C = _as_finite(C, "C")
    d = _as_finite(d, "d")
    if C.ndim != 2:
        raise ValueError(f"C must have shape (m, S), got shape {C.shape}")
    if not 1 <= C.shape[1] <= 4:
        raise ValueError(f"the dimension S = C.shape[1] must be 1 to 4, got {C.shape[1]}")
    if d.shape != (C.shape[0],):
        raise ValueError(f"d must have shape ({C.shape[0]},) to match C {C.shape}, got {d.shape}")
    return C, d


def _check_cov(cov: NDArray[np.float64], S: int, name: str = "cov") -> NDArray[np.float64]:
    """Symmetrised cov (..., S, S) by the shared rule (:func:`dgn_core.validation.check_covariance`).

    One wording differs: a positive semi-definite matrix whose smallest eigenvalue is 0
    within rounding (``lo >= -S eps hi``) is reported as singular, not as "not positive
    definite" (it is rejected either way).
    """
    try:
        return check_covariance(cov, S, name)
    except ValueError as exc:
        if not str(exc).startswith(f"{name} is not positive definite"):
            raise
        ev = np.linalg.eigvalsh(0.5 * (cov + np.swapaxes(cov, -1, -2)))
        lo, hi = ev[..., 0], ev[..., -1]
        if np.any(hi <= 0) or np.any(lo < -S * np.finfo(float).eps * hi):
            raise
        raise ValueError(f"{name} is singular or numerically singular (smallest eigenvalue "
                         f"{float(np.min(lo)):.3g}, condition number >= {MAX_CONDITION:.0e})"
                         ) from None


def _check_gaussians(mean: ArrayLike, cov: ArrayLike, S: int, tail: tuple[int, ...] = ()
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64], tuple[int, ...]]:
    """Broadcast mean (..., *tail, S) and cov (..., *tail, S, S) (or one (S, S) for all).

    Returns mean (N, *tail, S), cov (Nc, *tail, S, S) with Nc in {1, N}, and the batch shape.
    """
    mean = _as_finite(mean, "mean")
    cov = _as_finite(cov, "cov")
    nt = len(tail)
    if nt and cov.ndim == 2:  # one covariance for every polyhedron
        cov = np.broadcast_to(cov, tail + cov.shape)
    if mean.ndim < 1 + nt or mean.shape[-1] != S or mean.shape[mean.ndim - 1 - nt:-1] != tail:
        raise ValueError(f"mean must have shape (..., {', '.join(map(str, tail + (S,)))}), "
                         f"got {mean.shape}")
    if cov.ndim < 2 + nt or cov.shape[cov.ndim - 2 - nt:-2] != tail:
        raise ValueError(f"cov must have shape (..., {', '.join(map(str, tail + (S, S)))}), "
                         f"got {cov.shape}")
    cov = _check_cov(cov, S)
    mlead = mean.shape[:mean.ndim - 1 - nt]
    clead = cov.shape[:cov.ndim - 2 - nt]
    try:
        batch = np.broadcast_shapes(mlead, clead)
    except ValueError:
        raise ValueError(f"mean {mean.shape} and cov {cov.shape} do not broadcast") from None
    N = int(np.prod(batch, dtype=np.int64))
    mean_b = np.broadcast_to(mean, batch + tail + (S,)).reshape((N,) + tail + (S,))
    if int(np.prod(clead, dtype=np.int64)) == 1:
        cov_b = cov.reshape((1,) + tail + (S, S))
    else:
        cov_b = np.broadcast_to(cov, batch + tail + (S, S)).reshape((N,) + tail + (S, S))
    return np.ascontiguousarray(mean_b), np.ascontiguousarray(cov_b), batch
