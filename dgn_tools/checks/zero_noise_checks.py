"""Checks of the zero-noise limits: Lemma 2 and Prop. 3 (docs/DESIGN.md §2.6).

* "Lemma 2": along noise variances sigma^2 -> 0, the posterior mean -> z*(x) and the
  covariance -> 0; measured log-log rates (expected 1 in sigma^2) and the leading
  coefficients against -(A^T A)^-1 Sigma_z^-1 z* and (A^T A)^-1 (A the Jacobian at z*).
* "Prop. 3": GLO's latent argmin ||x - g(z)||^2 (exact, from the affine pieces of g, S = 1)
  equals the MAP of the exact posterior under a flat prior (a prior N(0, s^2 I) with
  s^2 -> infinity; the MAP from the mixture of truncated Gaussians by an exact convex QP per
  region), with the measured rate in 1/s^2.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

from dgn_core.model import DGN

from . import CheckResult, register
from .distribution_reference import (
    Arr,
    _affine_pieces_1d,
    _cases,
    _mpf_of,
    _result,
    _same_regions,
    kinks_1d,
)

__all__ = ["check_lemma2", "check_prop3", "glo_latent_1d"]


def glo_latent_1d(net: DGN, x: Sequence[Any], prior_tiebreak: bool = True,
                  delta: Fraction = Fraction(1, 20)) -> tuple[Fraction, Fraction, Fraction]:
    """argmin_z ||x - g(z)||^2 for S = 1, exactly, from the exact affine pieces.

    On every piece the objective is a convex quadratic, minimised exactly on the closed
    piece; the best piece wins (ties within a piece where g is constant, and between
    pieces, are broken by the smallest |z| when ``prior_tiebreak``).

    Returns
    -------
    z_star, value, gap : Fraction
        The minimiser, the minimum, and a uniqueness margin: the smallest excess over the
        minimum among the pieces' minimisers farther than ``delta`` from ``z_star`` (every
        z with |z - z_star| > delta whose piece minimum lies there has at least this excess;
        10**9 when there is none).
    """
    xq = [Fraction(v) for v in x]
    cands: list[tuple[Fraction, Fraction, Fraction]] = []
    for lo, hi, a, c in _affine_pieces_1d(net):
        aa = sum((s * s for s in a), Fraction(0))
        if aa == 0:
            z = Fraction(0)
        else:
            z = sum(((xi - ci) * s for xi, ci, s in zip(xq, c, a)), Fraction(0)) / aa
        if lo is not None and z < lo:
            z = lo
        if hi is not None and z > hi:
            z = hi
        val = sum(((xi - ci - s * z) ** 2 for xi, ci, s in zip(xq, c, a)), Fraction(0))
        cands.append((val, abs(z) if prior_tiebreak else Fraction(0), z))
    cands.sort(key=lambda t: (t[0], t[1]))
    best = cands[0]
    others = [t[0] - best[0] for t in cands[1:] if abs(t[2] - best[2]) > delta]
    gap = min(others) if others else Fraction(10 ** 9)
    return best[2], best[0], gap


# =========================================================================== Lemma 2
def _jacobian_exact(net: DGN, z: Sequence[Fraction]) -> list[list[Fraction]]:
    """Jacobian of g at z (inside a region) by exact differences along the axes, with a step
    small enough that the pattern (signs, or argmax of max-pooling groups) does not change
    (checked)."""
    from .partition_checks import ExactForward

    fwd = ExactForward(net)
    pre0, g0 = fwd(list(z))
    q0, zeros = fwd.signs(pre0)
    if zeros:
        raise ValueError("z lies on a region boundary")
    S = len(z)
    h = Fraction(1, 2 ** 20)
    while True:
        cols, ok = [], True
        for i in range(S):
            zi = list(z)
            zi[i] += h
            pre1, g1 = fwd(zi)
            if fwd.signs(pre1)[0] != q0:
                ok = False
                break
            cols.append([(b - a) / h for a, b in zip(g0, g1)])
        if ok:
            return [[cols[i][k] for i in range(S)] for k in range(len(g0))]
        h /= 1024


def _lemma2_points(net: DGN, rng: np.random.Generator, n: int
                   ) -> list[tuple[Arr, list[Fraction], Fraction]]:
    """Points x = g(z0) (+ a small offset for every other point) with a unique z*(x) inside
    a region where g has full column rank; z* computed exactly (S = 1)."""
    out: list[tuple[Arr, list[Fraction], Fraction]] = []
    tries = 0
    while len(out) < n and tries < 200:
        tries += 1
        z0 = rng.uniform(-1.5, 1.5, net.latent_dim)
        x = net.forward(z0[None, :])[0]
        if len(out) % 2 == 1:
            x = x + 0.02 * rng.standard_normal(net.data_dim)
        zs, _, gap = glo_latent_1d(net, x.tolist())
        try:
            J = _jacobian_exact(net, [zs])
        except ValueError:
            continue
        if sum(J[k][0] ** 2 for k in range(len(J))) < Fraction(1, 10 ** 4) or gap < Fraction(1, 10 ** 4):
            continue
        out.append((x, [zs], gap))
    return out


@register("Lemma 2", "as the noise -> 0 the posterior concentrates at "
          "z*(x) = argmin ||x - g(z)||^2 (ties by the prior)")
def check_lemma2(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 20,
                 noise_levels: Sequence[float] | None = None, n_points: int | None = None
                 ) -> CheckResult:
    """Lemma 2 along a sequence of isotropic noise variances sigma^2 -> 0 (S = 1 below; a
    given net with S = 2 or 3 is checked by :mod:`.zero_noise_multi`, the same criteria with
    z* from exact per-region QPs and the float64 posterior).

    The variances are ``noise_levels`` (factors) times ``min(A^T A Sigma_z, gap, A^T A
    dist^2)``: the limit is reached once the posterior sd is small against the prior's and
    against the distance ``dist`` from z* to the nearest kink, and the other local minima of
    ||x - g(z)||^2 (excess ``gap``) carry negligible weight.

    z*(x) = argmin_z ||x - g(z)||^2 exactly (:func:`glo_latent_1d`), at points where it is
    unique and inside a region with g' != 0. Measured: ``|E[z|x] - z*|`` and ``Var[z|x]``
    for each sigma^2, their log-log slopes against sigma^2 on the three smallest levels
    (theory: 1 and 1), and the leading
    coefficients ``(E[z|x] - z*)/sigma^2 -> -(A^T A)^-1 Sigma_z^-1 z*`` and
    ``Var[z|x]/sigma^2 -> (A^T A)^-1`` (A = g'(z*), computed by exact differences).
    Pass: both errors decrease monotonically, slopes within 0.1 of 1, and both coefficients
    within ``20 sigma_min^2 (1 + |z*|^2) / (A^T A Sigma_z)`` relative at the smallest noise
    (their O(sigma^2) correction is ``sigma^2 / (A^T A Sigma_z)``).
    """
    from verified_dgn.distributions import posterior
    from verified_dgn.exact_partition import partition

    factors = list(noise_levels) if noise_levels is not None else (
        [1e-2, 1e-3, 1e-4, 1e-5] if quick else [1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7])
    n_points = n_points if n_points is not None else (2 if quick else 4)
    rng = np.random.default_rng(seed + 77)
    failures: list[str] = []
    rows: dict[str, str] = {}
    worst_coef = 0.0
    nets = _cases(net, quick, S=(1, 2, 3))
    for name, nt in nets:
        if nt.latent_dim >= 2:
            from .zero_noise_multi import lemma2_multi

            r2, f2, w2 = lemma2_multi(nt, name, factors, n_points, rng)
            rows.update(r2)
            failures += f2
            worst_coef = max(worst_coef, w2)
            continue
        P = partition(nt)
        kinks = kinks_1d(nt)
        Sz = float(nt.prior_cov[0, 0])
        for k, (x, zs, gap) in enumerate(_lemma2_points(nt, rng, n_points)):
            J = _jacobian_exact(nt, zs)
            AtA = float(sum(J[j][0] ** 2 for j in range(len(J))))
            # the limit regime: sigma^2 small against A^T A Sigma_z (posterior sd << prior
            # sd), against the excess of the other local minima (their weight exp(-gap/2s^2))
            # and against A^T A dist^2 (posterior sd << distance from z* to the nearest kink)
            dist = min((abs(float(kk - zs[0])) for kk in kinks), default=math.inf)
            base = min(AtA * Sz, float(gap), AtA * dist ** 2)
            levels = [base * f for f in factors]
            zst = float(zs[0])
            c_mean = -zst / (AtA * Sz)
            c_var = 1.0 / AtA
            errs, vars_, cm, cv = [], [], [], []
            for s2 in levels:
                ns = nt.replace(noise_var=s2)
                post = posterior(ns, x, dps=dps, partition=_same_regions(P, ns))
                with mpmath.workdps(dps + 10):
                    e = post.mean[0, 0] - _mpf_of(zs[0])
                    v = post.cov[0, 0, 0]
                errs.append(abs(float(e)))
                vars_.append(float(v))
                cm.append(float(e) / s2)
                cv.append(float(v) / s2)
            # asymptotic rates: fitted on the three smallest noise levels
            sl_m = _slope(levels[-3:], errs[-3:])
            sl_v = _slope(levels[-3:], vars_[-3:])
            rel_m = abs(cm[-1] - c_mean) / max(abs(c_mean), 1e-300)
            rel_v = abs(cv[-1] - c_var) / c_var
            worst_coef = max(worst_coef, rel_m, rel_v)
            tol_c = 20 * min(levels) * (1 + zst ** 2) / (AtA * Sz)
            rows[f"{name} x[{k}] (z* = {zst:.4f}, A^T A = {AtA:.3g})"] = (
                f"sigma^2 = {', '.join(f'{v:.2e}' for v in levels)}: "
                f"|mean - z*| = {', '.join(f'{v:.2e}' for v in errs)}; var = "
                f"{', '.join(f'{v:.2e}' for v in vars_)}; slopes {sl_m:.3f}, {sl_v:.3f}; "
                f"coefficients rel. err. {rel_m:.2e}, {rel_v:.2e}")
            failures += limit_failures(f"{name} x[{k}]", errs, vars_, (sl_m, sl_v),
                                       (rel_m, rel_v), tol_c)
    unsure = [] if rows else [
        "no test point with a unique z*(x) inside a region was found (e.g. g folds, so every "
        "x tried has several nearest latents): nothing was measured"]
    details = {"noise variances (x min(A^T A Sigma_z, gap, A^T A dist^2))":
               ", ".join(f"{s:.0e}" for s in factors), **rows}
    return _result("Lemma 2", "the zero-noise posterior concentrates at z*(x)", failures,
                   f"{len(rows)} points, {len(factors)} noise levels, dps={dps}; residual: largest "
                   f"relative error of the leading coefficients at the smallest noise", worst_coef,
                   details, digits=False, inconclusive=unsure)


def limit_failures(key: str, errs: Sequence[float], spreads: Sequence[float],
                   slopes: tuple[float, float], rel: tuple[float, float], tol_c: float
                   ) -> list[str]:
    """Lemma 2's criteria on one point: |E[z|x] - z*| and the posterior spread decrease
    along the noise levels, both log-log slopes within 0.1 of 1, both leading coefficients
    within ``tol_c`` relative."""
    out = []
    if not (all(a > b for a, b in itertools.pairwise(errs))
            and all(a > b for a, b in itertools.pairwise(spreads))):
        out.append(f"{key}: errors do not decrease monotonically")
    if not (abs(slopes[0] - 1) <= 0.1 and abs(slopes[1] - 1) <= 0.1):
        out.append(f"{key}: rates {slopes[0]:.3f}, {slopes[1]:.3f} (expected 1)")
    if not (rel[0] <= tol_c and rel[1] <= tol_c):
        out.append(f"{key}: leading coefficients off by {rel[0]:.3g}, {rel[1]:.3g} "
                   f"(tol {tol_c:.3g})")
    return out


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    lx, ly = np.log(np.asarray(xs)), np.log(np.maximum(np.asarray(ys), 1e-300))
    return float(np.polyfit(lx, ly, 1)[0])


# =========================================================================== Prop. 3
def _map_exact(post: Any, n: int) -> tuple[list[Fraction], int]:
    """argmax_z p(z | x_n) from the mixture of truncated Gaussians: per region the convex QP
    min (z - mu)^T Lambda (z - mu) s.t. C z <= d solved exactly by enumerating active sets,
    then the region maximising log kappa_w + log N(z_w; mu_w, Sigma_w)."""
    best = None
    S = post.partition.net.latent_dim
    for w in range(len(post.partition)):
        f = post._forms[w]
        mu = post._mu_exact[n][w]
        z = _qp_region(f, mu, S)
        dz = [a - b for a, b in zip(z, mu)]
        quad = sum((dz[i] * f.Lam[i][j] * dz[j] for i in range(S) for j in range(S)), Fraction(0))
        with mpmath.workdps(post.dps + 20):
            log_det_lam = mpmath.log(f.det_lam.numerator) - mpmath.log(f.det_lam.denominator)
            val = post.log_kappa[n, w] + log_det_lam / 2 - _mpf_of(quad) / 2
        if best is None or val > best[0]:
            best = (val, z, w)
    assert best is not None
    return best[1], best[2]


def _qp_region(f: Any, mu: list[Fraction], S: int) -> list[Fraction]:
    rows = list(zip(f.Crows, f.dvals))

    def feasible(z: list[Fraction]) -> bool:
        return all(sum((c * v for c, v in zip(row, z)), Fraction(0)) <= dd for row, dd in rows)

    if feasible(mu):
        return list(mu)
    best = None
    for k in range(1, S + 1):
        for J in itertools.combinations(range(len(rows)), k):
            CJ = [list(rows[j][0]) for j in J]
            dJ = [rows[j][1] for j in J]
            # z = mu - Sigma C_J^T (C_J Sigma C_J^T)^-1 (C_J mu - d_J)
            SC = [[sum((f.Sigma[i][p] * CJ[a][p] for p in range(S)), Fraction(0)) for a in range(k)]
                  for i in range(S)]
            K = [[sum((CJ[a][i] * SC[i][b] for i in range(S)), Fraction(0)) for b in range(k)]
                 for a in range(k)]
            try:
                from verified_dgn.distributions import _inverse_det

                Ki, _ = _inverse_det(K)
            except ZeroDivisionError:
                continue
            res = [sum((CJ[a][i] * mu[i] for i in range(S)), Fraction(0)) - dJ[a] for a in range(k)]
            lam = [sum((Ki[a][b] * res[b] for b in range(k)), Fraction(0)) for a in range(k)]
            z = [mu[i] - sum((SC[i][a] * lam[a] for a in range(k)), Fraction(0)) for i in range(S)]
            if not feasible(z):
                continue
            dz = [a - b for a, b in zip(z, mu)]
            val = sum((dz[i] * f.Lam[i][j] * dz[j] for i in range(S) for j in range(S)), Fraction(0))
            if best is None or val < best[0]:
                best = (val, z)
    assert best is not None, "no feasible point of a non-empty region"
    return best[1]


@register("Prop. 3", "GLO's latent argmin_z ||x - g(z)||^2 is the MAP of the zero-noise "
          "posterior under a flat prior")
def check_prop3(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 15,
                prior_scales: Sequence[float] | None = None, noise_levels: Sequence[float] | None = None,
                n_points: int | None = None) -> CheckResult:
    """Prop. 3 (S = 1): GLO's latent, computed exactly from the exact affine pieces of g
    (:func:`glo_latent_1d`, no partition, no posterior), against the MAP of the exact
    posterior with prior N(0, s^2) for s^2 -> infinity (a flat prior), at two noise levels.
    The MAP comes from the Prop. 2 mixture (``gauss_mean``, ``gauss_cov``, ``log_kappa``) by
    an exact QP per region. Theory: |MAP - GLO| = sigma^2 |z*| / (s^2 |g'|^2) + O(s^-4),
    so the measured slope against 1/s^2 must be 1 (within 0.1) and the difference at the
    largest s^2 below ``2 sigma^2 |z*| / (s^2 |g'|^2) + 1e-12``.
    """
    from verified_dgn.distributions import posterior
    from verified_dgn.exact_partition import partition

    scales = list(prior_scales) if prior_scales is not None else [1e4, 1e6, 1e8]
    levels = list(noise_levels) if noise_levels is not None else [1e-2, 1e-4]
    n_points = n_points if n_points is not None else (2 if quick else 5)
    rng = np.random.default_rng(seed + 91)
    failures: list[str] = []
    rows: dict[str, str] = {}
    worst = 0.0
    for name, nt in _cases(net, quick, S=(1,)):
        P = partition(nt)
        X, _ = nt.sample(4 * n_points, seed=rng)
        used = 0
        for k, x in enumerate(X):
            if used >= n_points:
                break
            zg, _, gap = glo_latent_1d(nt, x.tolist(), prior_tiebreak=False)
            if gap < Fraction(1, 10 ** 4):
                continue  # GLO's minimiser is not (numerically) unique: no single MAP to compare
            try:
                J = _jacobian_exact(nt, [zg])
            except ValueError:
                continue
            AtA = float(sum(J[j][0] ** 2 for j in range(len(J))))
            if AtA < 1e-4:
                continue
            used += 1
            for s2n in levels:
                diffs = []
                for s2 in scales:
                    ns = nt.replace(noise_var=s2n, prior_cov=np.array([[s2]]))
                    post = posterior(ns, x, dps=dps, partition=_same_regions(P, ns))
                    zmap, _ = _map_exact(post, 0)
                    diffs.append(abs(float(zmap[0] - zg)))
                pred = s2n * abs(float(zg)) / (scales[-1] * AtA)
                sl = _slope([1 / s for s in scales], diffs)
                worst = max(worst, abs(diffs[-1] / pred - 1) if pred > 0 else diffs[-1])
                rows[f"{name} x[{k}], sigma^2={s2n:.0e} (GLO z = {float(zg):.6f})"] = (
                    f"|MAP - GLO| = {', '.join(f'{d:.2e}' for d in diffs)} for s^2 = "
                    f"{', '.join(f'{s:.0e}' for s in scales)}; slope in 1/s^2 {sl:.3f}; "
                    f"predicted {pred:.2e}")
                if not diffs[-1] <= 2 * pred + 1e-12:
                    failures.append(f"{name} x[{k}]: |MAP - GLO| = {diffs[-1]:.3g} > 2 x predicted "
                                    f"{pred:.3g}")
                if min(diffs) > 1e-13 and not abs(sl - 1) <= 0.1:
                    failures.append(f"{name} x[{k}]: rate {sl:.3f} in 1/s^2 (expected 1)")
        if used == 0:
            failures.append(f"{name}: no point with a unique GLO latent found")
    return _result("Prop. 3", "GLO's latent is the flat-prior MAP", failures,
                   f"{len(rows)} (point, noise) cases, prior variances {scales}; residual: "
                   f"largest |(MAP - GLO) / predicted - 1| at the largest prior variance", worst,
                   rows, digits=False)
