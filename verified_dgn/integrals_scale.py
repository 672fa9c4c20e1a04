"""Scale and far rows for the exact Gaussian integrals (:mod:`verified_dgn.integrals`).

:func:`standardise` rewrites ``(C, d, mean, cov)`` exactly before the geometry and the
orthant integrals:

* every nonzero row of ``C z <= d`` is divided by ``max_i |C_ji|`` (exact in rationals);
* lengths are divided by ``sigma = 2^k``, a power of two near the largest standard
  deviation: ``d / sigma``, ``mean / sigma``, ``cov / sigma^2``. The integrals then satisfy
  ``m0 = m0'``, ``m1 = sigma m1'``, ``M2 = sigma^2 M2'`` exactly (a power of two scales an
  mpf exactly), so the digits claimed in the original scales are the digits computed, and
  a problem and its rescaling by ``s`` are computed at the same size (up to a factor
  ``sqrt(2)``);
* rows far beyond the polyhedron are dropped (next paragraph).

Far rows. Let ``delta`` be the Mahalanobis distance from the mean to ``P``, ``w*`` the
nearest point of ``P`` (whitened coordinates ``w``), and row ``j`` at ``t_j >= delta + K``
standard deviations from the mean. Dropping it adds ``A_j = P' n {c.w > t_j}`` (``P'``:
``P`` without row ``j``). In polar coordinates about ``w*``, ``w = w* + r u``: along a ray
meeting ``A_j`` the segment ``0 < r <= rho = (t_j - c.w*) / (c.u)`` lies in ``P``,
``rho >= t_j - delta >= K``, and ``a = w*.u >= 0`` (``w*`` is the nearest point of the
convex ``P``), so ``|w|^2 = delta^2 + 2 a r + r^2``. For ``f = alpha + r beta`` affine along
the ray, ``int_1^2 f^2 dr >= (alpha^2 + beta^2) / 204`` while ``f^2 <= 2 r^2 (alpha^2 +
beta^2)`` for ``r >= 1``; the radial weight ``r^(S-1) exp(-(r^2 + 2 a r) / 2)`` is
``>= e^(-2-2a)`` on ``[1, 2]`` and ``<= e^(-a K) r^(S-1) e^(-r^2/2)`` beyond ``K >= 2``.
Hence the ray's part of ``int_{A_j} f^2 dN`` is at most ``eps_K = 408 e^2 (K^4 + 4 K^2 + 8)
e^(-K^2/2)`` times its part of ``int_P f^2 dN`` (``S <= 4``), and summed over rays so is the
whole. With ``f = 1`` this bounds ``m0`` relatively; with ``f = z_i``, ``M2[i, i]``; by
Cauchy-Schwarz ``|dm1_i| <= eps_K sqrt(m0 M2[i, i])`` and ``|dM2_ij| <= eps_K sqrt(M2[i, i]
M2[j, j])``: exactly the scales of the digit claim. ``K`` is chosen so that the ``m`` rows
together cost at most ``10^-(dps + 5)`` (:func:`drop_sigmas`; ``K`` ~ 14 at ``dps = 30``).
Rows are dropped one after another, each from a larger polyhedron whose ``delta`` is no
larger. ``delta`` is bounded above by the distance to a point of ``P`` checked exactly
(the mean, the vertices, the interior point, nudged float projections).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import NDArray

from .triangulation import _inverse

__all__ = ["Standardised", "standardise", "drop_sigmas"]

#: a polyhedron farther than this many standard deviations from the mean is refused (its
#: log mass is below -5e299; mpmath's erfc overflows a float near 1e155)
MAX_SIGMAS = 1e150


@dataclass(frozen=True)
class Standardised:
    """``P' = {C z' <= d}``, ``N(mean, cov)`` with ``z = 2^log2_sigma z'``."""

    C: NDArray[Any]
    d: NDArray[Any]
    mean: NDArray[Any]
    cov: NDArray[Any]
    log2_sigma: int


def drop_sigmas(dps: int, m: int) -> float:
    """The smallest K (>= 2) with ``m eps_K <= 10^-(dps + 5)`` (module docstring)."""
    target = (dps + 5) * math.log(10.0) + math.log(max(m, 1)) + math.log(408.0) + 2.0
    K = math.sqrt(2.0 * target)
    for _ in range(8):
        K = math.sqrt(2.0 * (target + math.log(K ** 4 + 4 * K ** 2 + 8)))
    return max(K, 2.0)


def _log2(x: Fraction) -> int:
    """floor-ish log2 of a positive rational (within 1)."""
    return x.numerator.bit_length() - x.denominator.bit_length()


def _flt(x: Fraction) -> float:
    """float(x), clamped to +-1e300 (used only to propose candidate points)."""
    if abs(x) > Fraction(10) ** 300:
        return math.copysign(1e300, x)
    return float(x)


def standardise(Cf: NDArray[Any], df: NDArray[Any], mf: NDArray[Any], Kf: NDArray[Any],
                dps: int) -> Standardised:
    """The rescaled problem with far rows dropped (module docstring); exact Fractions in."""
    m, S = Cf.shape
    C = Cf.copy()
    d = df.copy()
    for j in range(m):
        a = max(abs(t) for t in C[j])
        if a != 0 and a != 1:
            C[j] = C[j] / a
            d[j] = d[j] / a
    k = _log2(max(Kf[i, i] for i in range(S))) // 2
    sc = Fraction(2) ** k
    d = d / sc
    mean = mf / sc
    cov = Kf / (sc * sc)
    keep = _rows_kept(C, d, mean, cov, dps)
    return Standardised(C[keep], d[keep], mean, cov, k)


def _rows_kept(C: NDArray[Any], d: NDArray[Any], mean: NDArray[Any], cov: NDArray[Any],
               dps: int) -> NDArray[np.bool_]:
    m, S = C.shape
    keep = np.ones(m, dtype=bool)
    nonzero = [j for j in range(m) if any(t != 0 for t in C[j])]
    if not nonzero:
        return keep
    K = drop_sigmas(dps, m)
    with mpmath.workdps(30):
        t = {}
        for j in nonzero:
            num = d[j] - sum(C[j, i] * mean[i] for i in range(S))
            var = sum(C[j, i] * cov[i, p] * C[j, p] for i in range(S) for p in range(S))
            t[j] = (mpmath.mpf(num.numerator) / num.denominator) / mpmath.sqrt(
                mpmath.mpf(var.numerator) / var.denominator)
        far = max(-v for v in t.values())
        if far > MAX_SIGMAS and not _empty(C, d):
            raise ValueError(f"d: the polyhedron lies {mpmath.nstr(far, 3)} standard "
                             "deviations from the mean, beyond the exact kernels' range "
                             f"({MAX_SIGMAS:.0e})")
        if max(t.values()) < K:
            return keep
        delta = _distance_bound(C, d, mean, cov)
        if delta is None:
            return keep
        for j in nonzero:
            # the 1e-20 covers the 30-digit roundings of t and delta
            if t[j] >= (delta + K) * (1 + mpmath.mpf(10) ** -20):
                keep[j] = False
    return keep


def _empty(C: NDArray[Any], d: NDArray[Any]) -> bool:
    from .geometry import exact_polyhedron

    P = exact_polyhedron(C, d)
    return bool(P.is_empty or P.dim < C.shape[1])


def _distance_bound(C: NDArray[Any], d: NDArray[Any], mean: NDArray[Any], cov: NDArray[Any]
                    ) -> mpmath.mpf | None:
    """An upper bound on the Mahalanobis distance from mean to P (None: P null)."""
    from .geometry import exact_polyhedron

    m, S = C.shape

    def inside(x: list[Fraction]) -> bool:
        return all(sum(C[j, i] * x[i] for i in range(S)) <= d[j] for j in range(m))

    mu = [mean[i] for i in range(S)]
    if inside(mu):
        return mpmath.mpf(0)
    P = exact_polyhedron(C, d)
    if P.is_empty or P.dim < S or P.interior_point is None:
        return None
    zint = [P.interior_point[i] for i in range(S)]
    cands = [zint] + [[v[i] for i in range(S)] for v in P.vertices]
    lam = Fraction(1, 2 ** 20)
    for z in _float_projections(C, d, mean, cov):
        zf = [Fraction(float(x)) for x in z]
        for step in (Fraction(0), lam, Fraction(1, 2 ** 8)):
            x = [a + step * (b - a) for a, b in zip(zf, zint)]
            if inside(x):
                cands.append(x)
                break
    covi = _inverse([[Fraction(x) for x in row] for row in cov])  # cov is positive definite
    best = None
    for x in cands:
        diff = [x[i] - mu[i] for i in range(S)]
        q = sum(diff[i] * covi[i][p] * diff[p] for i in range(S) for p in range(S))
        r = mpmath.sqrt(mpmath.mpf(q.numerator) / q.denominator)
        best = r if best is None else min(best, r)
    return best


def face_projections(A: NDArray[np.float64], e: NDArray[np.float64], mu: NDArray[np.float64],
                     K: NDArray[np.float64], max_sets: int | None = None
                     ) -> Iterator[tuple[NDArray[np.float64], NDArray[Any], NDArray[np.float64]]]:
    """The projections ``z`` of ``mu`` (metric ``K^{-1}``) onto the faces of up to S rows of
    ``{z : A z <= e}`` that satisfy every row to 1e-9 relative, with their multipliers
    ``lam`` and Gram matrices ``G`` (the nearest point is one of them).

    ``max_sets``: stop at the first face size with more than this many row sets.
    """
    m, S = A.shape
    for k in range(1, min(S, m) + 1):
        if max_sets is not None and math.comb(m, k) > max_sets:
            break
        for act in itertools.combinations(range(m), k):
            Aa = A[list(act)]
            G = Aa @ K @ Aa.T
            try:
                lam = np.linalg.solve(G, e[list(act)] - Aa @ mu)
            except np.linalg.LinAlgError:
                continue
            z = mu + K @ Aa.T @ lam
            if np.all(A @ z <= e + 1e-9 * (1 + np.abs(e))):
                yield z, lam, G


def _float_projections(C: NDArray[Any], d: NDArray[Any], mean: NDArray[Any], cov: NDArray[Any]
                       ) -> list[NDArray[np.float64]]:
    """Float candidates for the nearest point: projections of the mean (metric cov^{-1})
    onto the faces of up to S rows that satisfy every row to 1e-9 (checked exactly later)."""
    A = np.array([[_flt(x) for x in row] for row in C])
    e = np.array([_flt(x) for x in d])
    mu = np.array([_flt(x) for x in mean])
    Kc = np.array([[_flt(x) for x in row] for row in cov])
    with np.errstate(all="ignore"):
        # many rows: fewer candidates, still valid
        return [z for z, _, _ in face_projections(A, e, mu, Kc, max_sets=2000)
                if np.all(np.isfinite(z))]
