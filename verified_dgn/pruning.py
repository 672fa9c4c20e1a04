"""Pruning of (point, region) pairs: certified bounds and the ``prune`` option.

The ``prune`` option means the same in both backends (``dgn_core.api``): pairs whose
certified upper bound on their share of p(x) is below ``exp(-margin)`` are not integrated,
and their bound still counts in the error budget.

The bounds (docs/DESIGN.md §2.3). Let p be the point of region w nearest to mu_w in the
metric Sigma_w^-1 (an exact QP over the facets' active sets, :func:`_nearest_point`) and r
its Mahalanobis distance. The hyperplane through p with normal Sigma_w^-1 (p - mu_w)
separates the region from mu_w, so with u ~ N(0, 1) along it, ``Phi_w <= Phi(-r)`` and
``int_w z_i^2 N <= T_i = int_{u >= r} (mu_i + beta_i u)^2 phi(u) du + (Sigma_ii - beta_i^2)
Phi(-r)`` (``beta = (p - mu_w) / r``, closed form). Hence ``kappa_w Phi(-r)``,
``kappa_w sqrt(Phi(-r) T_i)`` and ``kappa_w sqrt(T_i T_j)`` bound region w's contribution to
p(x), ``e1`` and ``E2`` (Cauchy-Schwarz); each bound carries a factor 2 against rounding.

The rule. Regions are integrated in decreasing order of their bound, and the loop stops once
the bounds of all remaining regions add up to less than ``exp(-margin)`` of what has been
accumulated (a lower bound of p(x)); for the posterior, in the scales of its digit claims
(``e1_i`` relative to ``sqrt(E[z_i^2 | x])``, ``E2_ii`` relative to ``E[z_i^2 | x]``, with
the margin raised by the digits that ``cov = E2 - mean mean^T`` cancels). So every skipped
pair, and all skipped pairs together, carry less than ``exp(-margin)`` of p(x).

The margin, from ``prune`` (:func:`_prune_digits`, which keeps it in decimal digits):

* ``True`` (default): the safe margin ``(dps + 10) ln 10`` nats (``dps ln 10 + 23.03``):
  the skipped mass stays ten digits below the ``10**-dps`` the results claim;
* a number: the margin in nats, finite and at least ``(dps + 1) ln 10`` (one digit below
  the claim), else ``ValueError``: a smaller one could spoil the claimed digits;
* ``False`` or ``None``: every pair is integrated.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

from .region_forms import _GUARD, _dot, _inverse_det, _logsumexp, _matvec, _mpf, _RegionForm

#: the smallest numeric margin accepted is (dps + _MIN_MARGIN_GUARD) ln 10 nats
_MIN_MARGIN_GUARD = 1


def _prune_digits(prune: Any, dps: int, check: bool = True) -> int | float | None:
    """The pruning margin of ``prune`` in decimal digits; ``None``: integrate every pair.

    ``True`` gives the int ``dps + _GUARD``; a number of nats ``m`` gives ``m / ln 10``
    (refused below ``(dps + 1) ln 10`` when ``check``: it could spoil the claimed digits).
    """
    if prune is None or isinstance(prune, (bool, np.bool_)):
        return dps + _GUARD if prune else None
    if not isinstance(prune, numbers.Real):
        raise TypeError("prune must be True, False, None or a margin in nats (a real number), "
                        f"got {type(prune).__name__}")
    m = float(prune)
    if not math.isfinite(m):
        raise ValueError(f"prune must be True, False, None or a finite margin in nats, got {m}")
    least = (dps + _MIN_MARGIN_GUARD) * math.log(10)
    if check and not m >= least:
        raise ValueError(
            f"prune = {prune!r} nats is too small for dps = {dps}: the regions it skips could "
            f"carry up to exp(-{m:.4g}) of p(x), which would spoil the {dps} claimed digits; "
            f"use a margin >= (dps + 1) ln 10 = {least:.4g} nats, True (the safe margin, "
            f"{(dps + _GUARD) * math.log(10):.4g} nats) or False")
    return m / math.log(10)


def _nearest_point(f: _RegionForm, mu: Sequence[Fraction]) -> tuple[list[Fraction], Fraction] | None:
    """The point p of the region nearest to mu in the metric Lambda_w and r^2 =
    (p - mu)^T Lambda_w (p - mu), exactly; None when mu lies in the region.

    The convex QP min (z - mu)^T Lambda (z - mu) s.t. C z <= d is solved by enumerating
    active sets J of at most S linearly independent facets: z_J = mu - Sigma C_J^T lam with
    lam = (C_J Sigma C_J^T)^-1 (C_J mu - d_J). The optimum satisfies KKT with lam >= 0 on an
    independent active set (Caratheodory), so it is the feasible candidate with lam >= 0 of
    least r^2 = lam^T (C_J Sigma C_J^T) lam.
    """
    rows = f.Crows
    if all(_dot(c, mu) <= d for c, d in zip(rows, f.dvals)):
        return None
    S = len(mu)
    res = [_dot(c, mu) - d for c, d in zip(rows, f.dvals)]  # > 0: violated
    best: tuple[Fraction, list[Fraction]] | None = None
    for k in range(1, min(S, len(rows)) + 1):
        for J in itertools.combinations(range(len(rows)), k):
            K = [[_dot(rows[a], f.Sc[b]) for b in J] for a in J]
            try:
                Ki, _ = _inverse_det(K)
            except ZeroDivisionError:
                continue
            lam = _matvec(Ki, [res[a] for a in J])
            if any(v < 0 for v in lam):
                continue
            z = [mu[i] - sum((lam[q] * f.Sc[J[q]][i] for q in range(k)), Fraction(0))
                 for i in range(S)]
            if not all(_dot(c, z) <= d for c, d in zip(rows, f.dvals)):
                continue
            r2 = _dot(lam, _matvec(K, lam))
            if best is None or r2 < best[0]:
                best = (r2, z)
    if best is None:  # pragma: no cover - a non-empty region always has a nearest point
        raise RuntimeError("internal error: no nearest point of a non-empty region")
    return best[1], best[0]


def _log_bounds(f: _RegionForm, mu: Sequence[Fraction], log_kappa: mpmath.mpf, moments: bool
                ) -> tuple[mpmath.mpf, list[mpmath.mpf]]:
    """Upper bounds (log) of kappa Phi_w and of kappa int_w z_i^2 N (module notes).

    The region lies in the half-space H through its Lambda-nearest point p to mu with normal
    Lambda (p - mu) (a separating hyperplane; the best half-space bound), at Mahalanobis
    distance r from mu: Phi_w <= Phi(-r), int_w z_i^2 N <= int_H z_i^2 N (closed form).
    """
    S = len(mu)
    near = _nearest_point(f, mu)
    mum = [_mpf(m) for m in mu]
    if near is None:
        lphi = mpmath.mpf(0)
    else:
        p, r2 = near
        t = -mpmath.sqrt(_mpf(r2))
        lphi = mpmath.log(mpmath.ncdf(t))
    # a factor 2 on every bound: rigorous despite the rounding of Phi, phi and log kappa
    lphi += mpmath.log(2)
    if not moments:
        return log_kappa + lphi, []
    if near is None:
        T = [mum[i] ** 2 + _mpf(f.Sigma[i][i]) for i in range(S)]
    else:
        # along u = (p - mu)^T Lambda (z - mu) / r ~ N(0, 1), H = {u >= r};
        # z_i = mu_i + beta_i u + (independent), beta = (p - mu) / r
        r = -t
        beta = [_mpf(p[i] - mu[i]) / r for i in range(S)]
        Phi, phi = mpmath.ncdf(t), mpmath.npdf(t)
        # int_{u >= r} (mu_i + beta_i u)^2 phi(u) du + (Sigma_ii - beta_i^2) Phi(-r)
        terms = [((mum[i] ** 2 + _mpf(f.Sigma[i][i])) * Phi, 2 * mum[i] * beta[i] * phi,
                  beta[i] ** 2 * r * phi) for i in range(S)]
        T = [a + b + c for a, b, c in terms]
        # a positive integral: rounding can only matter below eps times its terms
        T = [max(T[i], mpmath.mpf(0)) + mpmath.eps * 16 * sum(abs(v) for v in terms[i])
             for i in range(S)]
    lT = [log_kappa + mpmath.log(2 * Ti) for Ti in T]  # factor 2: safety against rounding
    return log_kappa + lphi, lT



def _negligible(l0: mpmath.mpf, l1: list[mpmath.mpf], l2: list[mpmath.mpf], s0: mpmath.mpf,
                s2: list[mpmath.mpf], ltol: mpmath.mpf) -> bool:
    """Whether the remaining regions' bounds are below 10^-q in the claim scales.

    ``s0 <= p`` and ``s2_ii / (s0 + rem0) <= E[z_i^2 | x]`` from what has been integrated;
    the remaining e1_i is below ``exp(l1_i) / s0`` and E2_ii below ``exp(l2_i) / s0``.
    """
    ls0 = mpmath.log(s0)
    if l0 - ls0 > ltol:
        return False
    lp_hi = _logsumexp([ls0, l0])
    for i in range(len(l1)):
        if s2[i] <= 0:
            return False
        le2 = mpmath.log(s2[i]) - lp_hi  # log lower bound of E[z_i^2 | x]
        if l1[i] - ls0 > ltol + le2 / 2 or l2[i] - ls0 > ltol + le2:
            return False
    return True

