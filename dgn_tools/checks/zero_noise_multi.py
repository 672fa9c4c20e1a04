"""Lemma 2 for latent dimension S >= 2 (the S = 1 check is in :mod:`.zero_noise_checks`).

z*(x) = argmin_z ||x - g(z)||^2 exactly: on every region w, g(z) = A_w z + b_w and the
objective is the convex quadratic ``(z - m_w)^T A_w^T A_w (z - m_w) + c_w`` (m_w the
unconstrained least-squares point), minimised over the region {C_w z <= d_w} by enumerating
active sets in rational arithmetic (:func:`glo_latent`). Where z* is unique (the runner-up
region's minimum exceeds it by a margin), lies inside its region and A = A_w has full column
rank, Lemma 2 says that as the isotropic noise variance sigma^2 -> 0

* E[z|x] - z* = -sigma^2 (A^T A)^-1 Sigma_z^-1 z* + O(sigma^4),
* Cov[z|x] = sigma^2 (A^T A)^-1 + O(sigma^4).

The posterior is the float64 one (:func:`fastpath.posterior`, cross-tested against the exact
path at S <= 2 to ~1e-13): its E[z|x] - z* of order sigma^2 is resolved to ~1e-15 / sigma^2
relative, far below the O(sigma^2) correction at the noise levels used.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

import numpy as np

from dgn_core.model import DGN

from . import CheckNotApplicable

__all__ = ["glo_latent", "lemma2_multi"]


def _solve(M: list[list[Fraction]], v: list[Fraction]) -> list[Fraction] | None:
    """M^-1 v by Gaussian elimination over the rationals (None when M is singular)."""
    n = len(v)
    A = [list(row) + [v[i]] for i, row in enumerate(M)]
    for c in range(n):
        p = next((r for r in range(c, n) if A[r][c] != 0), None)
        if p is None:
            return None
        A[c], A[p] = A[p], A[c]
        for r in range(n):
            if r != c and A[r][c] != 0:
                f = A[r][c] / A[c][c]
                A[r] = [a - f * b for a, b in zip(A[r], A[c])]
    return [A[i][n] / A[i][i] for i in range(n)]


def _region_min(x: list[Fraction], r: Any) -> tuple[Fraction, list[Fraction], bool] | None:
    """(min ||x - A z - b||^2, argmin, interior?) over region r (None if A is rank deficient)."""
    A = [[Fraction(v) for v in row] for row in np.asarray(r.A).tolist()]
    b = [Fraction(v) for v in np.asarray(r.b).tolist()]
    C = [[Fraction(v) for v in row] for row in np.asarray(r.C).tolist()]
    d = [Fraction(v) for v in np.asarray(r.d).tolist()]
    D, S = len(A), len(A[0])
    AtA = [[sum((A[k][i] * A[k][j] for k in range(D)), Fraction(0)) for j in range(S)]
           for i in range(S)]
    res = [x[k] - b[k] for k in range(D)]

    def value(z: list[Fraction]) -> Fraction:
        return sum(((res[k] - sum((A[k][i] * z[i] for i in range(S)), Fraction(0))) ** 2
                    for k in range(D)), Fraction(0))

    def feasible(z: list[Fraction]) -> bool:
        return all(sum((c * v for c, v in zip(row, z)), Fraction(0)) <= dd
                   for row, dd in zip(C, d))

    m = _solve(AtA, [sum((A[k][i] * res[k] for k in range(D)), Fraction(0)) for i in range(S)])
    if m is None:
        return None
    if feasible(m):
        return value(m), m, all(sum((c * v for c, v in zip(row, m)), Fraction(0)) < dd
                                for row, dd in zip(C, d))
    best: tuple[Fraction, list[Fraction]] | None = None
    # KKT on each active set J: minimise (z - m)^T H (z - m) s.t. C_J z = d_J
    for k in range(1, S + 1):
        for J in itertools.combinations(range(len(C)), k):
            # [H C_J^T; C_J 0] [z; lam] = [H m; d_J]
            n = S + k
            M = [[Fraction(0)] * n for _ in range(n)]
            rhs = [Fraction(0)] * n
            for i in range(S):
                for j in range(S):
                    M[i][j] = AtA[i][j]
                rhs[i] = sum((AtA[i][j] * m[j] for j in range(S)), Fraction(0))
            for a, jj in enumerate(J):
                for i in range(S):
                    M[i][S + a] = C[jj][i]
                    M[S + a][i] = C[jj][i]
                rhs[S + a] = d[jj]
            sol = _solve(M, rhs)
            if sol is None or not feasible(sol[:S]):
                continue
            val = value(sol[:S])
            if best is None or val < best[0]:
                best = (val, sol[:S])
    if best is None:
        return None
    return best[0], best[1], False


def glo_latent(partition: Any, x: Any) -> tuple[list[Fraction], Fraction, bool, Any, Fraction]:
    """argmin_z ||x - g(z)||^2 over an exact partition, in rational arithmetic.

    Returns
    -------
    z_star : list of Fraction
    value : Fraction
        The minimum.
    interior : bool
        Whether z* lies in the interior of its region.
    region : Region
        The region of z*.
    gap : Fraction
        The smallest excess over the minimum among the other regions' minima whose
        minimiser is farther than 1/20 from z* (10**9 when there is none).
    """
    xq = [Fraction(float(v)) for v in x]
    cands = []
    for r in partition:
        got = _region_min(xq, r)
        if got is not None:
            cands.append((got[0], got[1], got[2], r))
    if not cands:
        raise ValueError("no region where g has full column rank: argmin ||x - g(z)||^2 is "
                         "not unique in any region")
    cands.sort(key=lambda t: t[0])
    val, z, interior, reg = cands[0]
    far = [c[0] - val for c in cands[1:]
           if max(abs(a - b) for a, b in zip(c[1], z)) > Fraction(1, 20)]
    return z, val, interior, reg, (min(far) if far else Fraction(10 ** 9))


def lemma2_multi(nt: DGN, name: str, factors: list[float], n_points: int,
                 rng: np.random.Generator) -> tuple[dict[str, str], list[str], float]:
    """Lemma 2 on one net with S >= 2 (module notes): (rows, failures, worst coefficient
    error). Pass criteria as the S = 1 check: both errors decrease, slopes within 0.1 of 1,
    coefficients within ``20 sigma_min^2 (1 + |z*|^2) / (lambda_min(A^T A) lambda_min(
    Sigma_z))`` relative at the smallest noise."""
    import fastpath
    import verified_dgn

    from .zero_noise_checks import _slope, limit_failures

    S = nt.latent_dim
    if S > nt.data_dim:
        raise CheckNotApplicable(
            f"Lemma 2's limit needs g of full column rank near z*, impossible with latent "
            f"dimension {S} > data dimension {nt.data_dim} (z* is then a set, not a point)")
    P = verified_dgn.partition(nt)
    Sz = np.asarray(nt.prior_cov, dtype=np.float64)
    lam_z = float(np.min(np.linalg.eigvalsh(Sz)))
    rows: dict[str, str] = {}
    failures: list[str] = []
    worst = 0.0
    found = tries = 0
    while found < n_points and tries < 60:
        tries += 1
        z0 = rng.uniform(-1.5, 1.5, S)
        x = nt.forward(z0[None, :])[0]
        if found % 2 == 1:
            x = x + 0.02 * rng.standard_normal(nt.data_dim)
        try:
            zq, _, interior, reg, gap = glo_latent(P, x)
        except ValueError:          # every region rank deficient: no unique z* to test
            continue
        A = np.asarray(reg.A, dtype=np.float64)
        AtA = A.T @ A
        lam_a = float(np.min(np.linalg.eigvalsh(AtA)))
        if not interior or lam_a < 1e-4 or gap < Fraction(1, 10 ** 4):
            continue
        zs = np.array([float(v) for v in zq])
        C = np.asarray(reg.C, dtype=np.float64)
        d = np.asarray(reg.d, dtype=np.float64)
        dist = float(np.min((d - C @ zs) / np.linalg.norm(C, axis=1)))
        if dist < 0.05:  # the limit regime would need noise below float64's reach
            continue
        found += 1
        base = min(lam_a * lam_z, float(gap), lam_a * dist ** 2)
        levels = [base * f for f in factors]
        inv = np.linalg.inv(AtA)
        c_mean = -inv @ np.linalg.solve(Sz, zs)
        errs, tr, cm, cv = [], [], [], []
        for s2 in levels:
            ns = nt.replace(noise_var=s2)
            post = fastpath.posterior(ns, x[None, :])
            e = post.mean[0] - zs
            V = post.cov[0]
            errs.append(float(np.linalg.norm(e)))
            tr.append(float(np.trace(V)))
            cm.append(e / s2)
            cv.append(V / s2)
        sl_m, sl_v = _slope(levels[-3:], errs[-3:]), _slope(levels[-3:], tr[-3:])
        rel_m = float(np.linalg.norm(cm[-1] - c_mean)) / max(float(np.linalg.norm(c_mean)), 1e-300)
        rel_v = float(np.linalg.norm(cv[-1] - inv) / np.linalg.norm(inv))
        worst = max(worst, rel_m, rel_v)
        tol_c = 20 * min(levels) * (1 + float(zs @ zs)) / (lam_a * lam_z)
        key = f"{name} x[{found - 1}] (z* = {np.round(zs, 4).tolist()}, lambda_min(A^T A) = {lam_a:.3g})"
        rows[key] = (f"sigma^2 = {', '.join(f'{v:.2e}' for v in levels)}: |mean - z*| = "
                     f"{', '.join(f'{v:.2e}' for v in errs)}; trace cov = "
                     f"{', '.join(f'{v:.2e}' for v in tr)}; slopes {sl_m:.3f}, {sl_v:.3f}; "
                     f"coefficients rel. err. {rel_m:.2e}, {rel_v:.2e} (float64 posterior)")
        failures += limit_failures(key, errs, tr, (sl_m, sl_v), (rel_m, rel_v), tol_c)
        if not math.isfinite(rel_m + rel_v):
            failures.append(f"{key}: non-finite posterior moments")
    return rows, failures, worst
