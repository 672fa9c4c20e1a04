"""Checks of the two mixture forms: Prop. 1 (the marginal) and Prop. 2 (the posterior).

* "Prop. 1": p(t = r) = Phi_r(0, Sigma_z) (closed-form interval probabilities for S = 1,
  polygon quadrature for S = 2) sums to 1, and the mixture sum_r p(t=r) p(x|t=r), with
  p(x|t=r) = int_r N(x; A_r z + b_r, Sigma_x) N(z; 0, Sigma_z) dz / p(t=r) by quadrature,
  equals p(x).
* "Prop. 2": the Prop. 2 density (kappa_w N(z; mu_w, Sigma_w) / p(x) on w) equals Bayes'
  p(x|z) p(z) / p(x) (forward pass in mpmath) at random latent points and on region
  boundaries.

docs/DESIGN.md §2.3 and §2.6; the references are in :mod:`~dgn_tools.checks.distribution_reference`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN
from dgn_core.regions import Partition

from . import CheckResult, register
from .distribution_reference import (
    _bump_points,
    _cases,
    _mpf_of,
    _MPNet,
    _panel_nodes,
    _quad_pieces,
    _result,
    _test_points,
)

__all__ = ["check_prop1", "check_prop2"]


# =========================================================================== Prop. 1
@register("Prop. 1", "the DGN is the continuous MPPCA / MFA mixture with p(t=r) = "
          "Phi_r(0, Sigma_z), W_r = A_w, v_r = b_w")
def check_prop1(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 30,
                n_points: int | None = None) -> CheckResult:
    """Prop. 1: p(x) = sum_r p(t=r) p(x | t=r) with the mixture evaluated independently.

    p(t=r): S = 1, ``Phi(hi) - Phi(lo)`` of the region's interval in mpmath (closed form),
    compared with ``gaussian_moments(C_r, d_r, 0, Sigma_z)`` (tolerance 10**-(dps-2)) and
    summed (must be 1 to 10**-(dps-2)); S = 2, float64 quadrature over each polygon
    (tolerance 1e-10). p(x | t=r) = int_r N(x; A_r z + b_r, Sigma_x) N(z; 0, Sigma_z) dz /
    p(t=r) by quadrature over the region (mpmath for S = 1, float64 for S = 2); the mixture
    must equal the exact p(x) (tolerances as in "Theorem 1").
    """
    from verified_dgn.distributions import log_marginal
    from verified_dgn.exact_partition import partition
    from verified_dgn.integrals import gaussian_moments

    n_points = n_points if n_points is not None else (1 if quick else 3)
    failures: list[str] = []
    w_pt = w_pt2 = w_sum = w_mix1 = w_mix2 = 0.0
    count = 0
    for name, nt in _cases(net, quick):
        P = partition(nt)
        S = nt.latent_dim
        X = _test_points(nt, n_points, seed)
        lp = log_marginal(nt, X, dps=dps, partition=P)
        Sz = nt.prior_cov
        if S == 1:
            with mpmath.workdps(dps + 10):
                s = mpmath.sqrt(mpmath.mpf(float(Sz[0, 0])))
                pts, ivals = [], []
                for r in P:
                    lo, hi = _interval(r)
                    a = mpmath.ninf if lo is None else _mpf_of(lo)
                    b = mpmath.inf if hi is None else _mpf_of(hi)
                    # the interval's mass from the tail on its side of 0: Phi(b) - Phi(a)
                    # of an interval far out cancels to 0 at any fixed precision
                    pt = (mpmath.ncdf(-a / s) - mpmath.ncdf(-b / s) if a > 0 else
                          mpmath.ncdf(b / s) - mpmath.ncdf(a / s))
                    lib = gaussian_moments(r.C, r.d, [0], Sz, dps=dps)[0]
                    w_pt = max(w_pt, float(abs(lib - pt) / pt) if pt > 0 else
                               (0.0 if lib == 0 else math.inf))
                    if not abs(lib - pt) <= 10.0 ** -(dps - 2) * pt:
                        failures.append(f"{name}: p(t=r) closed form vs Phi_r differ by "
                                        f"{float(abs(lib - pt) / pt):.3g} (relative)")
                    pts.append(pt)
                    ivals.append((lo, hi))
                tot = mpmath.fsum(pts) - 1
                w_sum = max(w_sum, float(abs(tot)))
                if not abs(tot) <= 10.0 ** -(dps - 2):
                    failures.append(f"{name}: sum_r p(t=r) - 1 = {float(tot):.3g}")
                for n, x in enumerate(X):
                    count += 1
                    mix = _mixture_1d(nt, P, x, pts, ivals)
                    diff = float(abs(mpmath.log(mix) - lp[n]))
                    w_mix1 = max(w_mix1, diff)
                    if not diff <= 10.0 ** -(dps - 5):
                        failures.append(f"{name} x[{n}]: |log mixture - log p| = {diff:.3g}")
        else:
            masses = [math.exp(_polygon_log_quad(nt, r, None)) for r in P]
            libm = [float(gaussian_moments(r.C, r.d, [0, 0], Sz, dps=dps)[0]) for r in P]
            for m_q, m_l in zip(masses, libm):
                # float64 quadrature: relative 1e-10, absolute 1e-14 for tiny regions
                w_pt2 = max(w_pt2, abs(m_q - m_l) / (m_l + 1e-4))
                if not abs(m_q - m_l) <= 1e-10 * m_l + 1e-14:
                    failures.append(f"{name}: p(t=r) quadrature {m_q:.15g} vs Phi_r {m_l:.15g}")
            w_sum = max(w_sum, abs(math.fsum(masses) - 1))
            if not abs(math.fsum(masses) - 1) <= 1e-10:
                failures.append(f"{name}: sum_r p(t=r) - 1 = {math.fsum(masses) - 1:.3g}")
            for n, x in enumerate(X):
                count += 1
                from scipy.special import log_ndtr, logsumexp

                # log p(t=r) p(x|t=r) for every component; the mixture in log space, on the
                # box |z| <= 9 sd, enlarged when the prior mass it cuts (times the largest
                # p(x|z)) is not negligible against the mixture (far x: posterior far out)
                lmix = float(logsumexp([_polygon_log_quad(nt, r, x) for r in P]))
                lmax = -0.5 * (len(x) * math.log(2 * math.pi)
                               + float(np.sum(np.log(nt.noise_var_vector))))
                if lmax + math.log(4.0) + float(log_ndtr(-9.0)) - lmix > math.log(1e-13):
                    box = math.sqrt(2.0 * (lmax - lmix + 40.0))
                    lmix = float(logsumexp([_polygon_log_quad(nt, r, x, box=box) for r in P]))
                diff = abs(lmix - float(lp[n]))
                w_mix2 = max(w_mix2, diff)
                if not diff <= 1e-9:
                    failures.append(f"{name} x[{n}]: |log mixture - log p| = {diff:.3g} (float64)")
    details = {"S = 1: max relative |p(t=r) - Phi_r(0, Sigma_z)|": f"{w_pt:.3g}",
               "S = 2: max |p(t=r) - Phi_r(0, Sigma_z)| / (Phi_r + 1e-4) (float64)": f"{w_pt2:.3g}",
               "max |sum_r p(t=r) - 1|": f"{w_sum:.3g}",
               "S = 1: max |log mixture - log p| (mpmath)": f"{w_mix1:.3g}",
               "S = 2: max |log mixture - log p| (float64)": f"{w_mix2:.3g}"}
    return _result("Prop. 1", "the DGN density is the continuous MPPCA/MFA mixture", failures,
                   f"{count} points, dps={dps}", max(w_pt, w_pt2, w_sum, w_mix1, w_mix2), details)


def _interval(r: Any) -> tuple[Fraction | None, Fraction | None]:
    """[lo, hi] of a 1-D region from its facets (None: unbounded)."""
    lo = hi = None
    for c, d in zip(np.asarray(r.C).ravel().tolist(), np.asarray(r.d).tolist()):
        c, d = Fraction(c), Fraction(d)
        if c > 0:
            hi = d / c if hi is None else min(hi, d / c)
        elif c < 0:
            lo = d / c if lo is None else max(lo, d / c)
    return lo, hi


def _mixture_1d(net: DGN, P: Partition, x: Sequence[float], pts: list[mpmath.mpf],
                ivals: list[tuple[Fraction | None, Fraction | None]]) -> mpmath.mpf:
    """sum_r p(t=r) p(x|t=r), component r integrated over its interval with its own affine
    map (W_r, v_r) = (A_r, b_r) and mixed with weight p(t=r)."""
    nv = [mpmath.mpf(float(v)) for v in net.noise_var_vector]
    s2 = mpmath.mpf(float(net.prior_cov[0, 0]))
    xm = [mpmath.mpf(float(v)) for v in x]
    D = len(xm)
    lconst = -(D * mpmath.log(2 * mpmath.pi) + mpmath.fsum(mpmath.log(v) for v in nv)
               + mpmath.log(2 * mpmath.pi * s2)) / 2
    nvf = [float(v) for v in net.noise_var_vector]
    total = mpmath.mpf(0)
    for r, pt, (lo, hi) in zip(P, pts, ivals):
        a = mpmath.ninf if lo is None else _mpf_of(lo)
        b = mpmath.inf if hi is None else _mpf_of(hi)
        Wr = [Fraction(v) for v in np.asarray(r.A).ravel().tolist()]
        vr = [Fraction(v) for v in np.asarray(r.b).tolist()]
        Wm, vm = [_mpf_of(v) for v in Wr], [_mpf_of(v) for v in vr]

        def logf(z: mpmath.mpf, Wm: list = Wm, vm: list = vm) -> mpmath.mpf:
            q = mpmath.fsum((xi - w * z - c) ** 2 / s for xi, w, c, s in zip(xm, Wm, vm, nv))
            return lconst - q / 2 - z * z / (2 * s2)

        inner = [_mpf_of(t) for t in sorted(set(_bump_points([float(v) for v in Wr], [float(v) for v in vr],
                                                  [float(v) for v in x], nvf, float(s2), lo, hi)))]
        # the maximum of a Gaussian on [a, b] is at its centre or at an endpoint
        probe = inner + [v for v in (a, b) if mpmath.isfinite(v)] or [mpmath.mpf(0)]
        M = max(logf(t) for t in probe)  # scale: mpmath's error control is absolute
        def scaled(z: mpmath.mpf, M: mpmath.mpf = M, logf: Any = logf) -> mpmath.mpf:
            return mpmath.exp(logf(z) - M)

        comp = _quad_pieces(scaled,
                            [a, *inner, b]) * mpmath.exp(M)  # = p(t=r) p(x | t=r)
        px_given_t = comp / pt
        total += pt * px_given_t
    return total


def _graded(a: float, b: float, step: float, grade: int) -> NDArray[np.float64]:
    """Breakpoints of [a, b]: a uniform grid of ``step`` and geometric grading towards both
    ends (a + (b - a) 2^-k, k = 1..grade), so that boundary layers down to 2^-grade of the
    width are resolved."""
    w = b - a
    k = 2.0 ** -np.arange(1, grade + 1)
    pts = np.concatenate([np.arange(a, b, step), [b], a + w * k, b - w * k])
    return np.unique(pts[(pts >= a) & (pts <= b)])


def _polygon_log_quad(net: DGN, r: Any, x: Sequence[float] | None, n: int = 10,
                      box: float = 9.0, grade: int = 16) -> float:
    """log of the integral over region r (S = 2) of N(z; 0, Sigma_z) (x None) or of
    N(x; A_r z + b_r, Sigma_x) N(z; 0, Sigma_z), float64 nested Gauss-Legendre.

    Outer z2 between the region's vertex heights, inner z1 over the exact chord
    {z1 : C (z1, z2) <= d}; every interval carries a uniform grid and geometric grading to
    its ends (:func:`_graded`): the integrand of a far x is a thin layer along the boundary
    nearest to it. Accumulated in log space. The box |z_i| <= 9 prior sds cuts a prior mass
    below 1e-18.
    """
    from scipy.special import logsumexp

    C = np.asarray(r.C, dtype=np.float64)
    d = np.asarray(r.d, dtype=np.float64)
    A = np.asarray(r.A, dtype=np.float64)
    b = np.asarray(r.b, dtype=np.float64)
    Sz = np.asarray(net.prior_cov, dtype=np.float64)
    Szi = np.linalg.inv(Sz)
    sd = np.sqrt(np.diag(Sz))
    nv = net.noise_var_vector
    step = 0.25
    if x is not None:
        lip = max(float(np.linalg.norm(A, 2)), 1e-12)
        step = min(0.25, 0.3 * math.sqrt(float(nv.min())) / lip)
    V = np.asarray(r.vertices, dtype=np.float64).reshape(-1, 2)
    R_ = np.asarray(r.rays, dtype=np.float64).reshape(-1, 2)
    lo2 = V[:, 1].min() if len(V) else -box * sd[1]
    hi2 = V[:, 1].max() if len(V) else box * sd[1]
    if (len(R_) and (R_[:, 1] < 0).any()) or len(V) == 0:
        lo2 = -box * sd[1]
    if (len(R_) and (R_[:, 1] > 0).any()) or len(V) == 0:
        hi2 = box * sd[1]
    lo2, hi2 = max(lo2, -box * sd[1]), min(hi2, box * sd[1])
    if hi2 <= lo2:
        return -math.inf
    heights = np.unique(np.r_[lo2, V[:, 1][(V[:, 1] > lo2) & (V[:, 1] < hi2)], hi2])
    br = np.unique(np.concatenate([_graded(u, v, step, grade) for u, v in itertools.pairwise(heights)]))
    Z2, W2 = _panel_nodes(br, n)
    lconst = -0.5 * (2 * math.log(2 * math.pi) + math.log(np.linalg.det(Sz)))
    if x is not None:
        lconst -= 0.5 * (len(x) * math.log(2 * math.pi) + np.sum(np.log(nv)))
    logs = []
    for z2, w2 in zip(Z2, W2):
        # chord: c1 z1 <= d - c2 z2
        lo1, hi1 = -box * sd[0], box * sd[0]
        rhs = d - C[:, 1] * z2
        ok = True
        for c1, e in zip(C[:, 0], rhs):
            if c1 > 0:
                hi1 = min(hi1, e / c1)
            elif c1 < 0:
                lo1 = max(lo1, e / c1)
            elif e < 0:
                ok = False
        if not ok or hi1 <= lo1:
            continue
        Z1, W1 = _panel_nodes(_graded(lo1, hi1, step, grade), n)
        Z = np.stack([Z1, np.full_like(Z1, z2)], axis=1)
        lf = lconst - 0.5 * np.einsum("ni,ij,nj->n", Z, Szi, Z)
        if x is not None:
            G = Z @ A.T + b
            lf = lf - 0.5 * np.sum((np.asarray(x) - G) ** 2 / nv, axis=1)
        logs.append(lf + np.log(W1 * w2))
    if not logs:
        return -math.inf
    return float(logsumexp(np.concatenate(logs)))


# =========================================================================== Prop. 2
@register("Prop. 2", "p(z|x) is the mixture of truncated Gaussians "
          "sum_w 1_w(z) kappa_w(x) N(z; mu_w(x), Sigma_w) / p(x)")
def check_prop2(*, net: DGN | None = None, quick: bool = True, seed: int = 0, dps: int = 30,
                n_points: int | None = None, n_latent: int | None = None) -> CheckResult:
    """Prop. 2 at latent points: the mixture-of-truncated-Gaussians density
    (``ExactPosterior.log_density``) against Bayes' rule
    ``log N(x; g(z), Sigma_x) + log N(z; 0, Sigma_z) - log p(x)`` with g evaluated by an
    mpmath forward pass. Latent points: random normal ones, region vertices (boundaries,
    where two or more regions' formulas must agree) and points on facets. Tolerance:
    ``10**-(dps - 3)`` absolute in log density.
    Also ``sum_w e0_w TN_w(z) = density``: the weights are the mixture weights.
    """
    from verified_dgn.distributions import posterior
    from verified_dgn.exact_partition import partition

    rng = np.random.default_rng(seed + 31)
    n_points = n_points if n_points is not None else (1 if quick else 3)
    n_latent = n_latent if n_latent is not None else (8 if quick else 40)
    failures: list[str] = []
    worst = 0.0
    count = 0
    for name, nt in _cases(net, quick, S=(1, 2, 3, 4)):
        if nt.latent_dim >= 3:
            # the exact posterior takes tens of minutes per point at S >= 3: the float64
            # one (cross-tested against it at S <= 2) is checked, with a float tolerance
            c, w = _prop2_float(nt, name, rng, n_points, n_latent, quick, seed, failures)
            count += c
            worst = max(worst, w)
            continue
        P = partition(nt)
        S = nt.latent_dim
        mpn = _MPNet(nt)
        # quick, S >= 2: no far point (its tail integrals over every polygon are slow)
        X = _test_points(nt, n_points, seed, far=not quick or S == 1)
        post = posterior(nt, X, dps=dps, partition=P)
        Zs: list[list[Fraction]] = [[Fraction(float(v)) for v in z]
                                    for z in rng.standard_normal((n_latent, S))]
        for r in list(P)[: (6 if quick else len(P))]:
            V = np.asarray(r.vertices).tolist()
            Zs.extend([[Fraction(v) for v in vert] for vert in V[:2]])
        for n in range(X.shape[0]):
            dens = post.log_density(np.array(Zs, dtype=object), n)
            with mpmath.workdps(dps + 15):
                xm = [mpmath.mpf(float(v)) for v in X[n]]
                for z, ld in zip(Zs, dens):
                    bayes = mpn.log_joint(xm, [_mpf_of(v) for v in z]) - post.log_px[n]
                    diff = float(abs(bayes - ld))
                    worst = max(worst, diff)
                    count += 1
                    if not diff <= 10.0 ** -(dps - 3):
                        failures.append(f"{name} x[{n}] z={[float(v) for v in z]}: |Prop. 2 - "
                                        f"Bayes| = {diff:.3g}")
    return _result("Prop. 2", "the posterior density is the mixture of truncated Gaussians",
                   failures, f"{count} (point, latent) pairs incl. region vertices, dps={dps}",
                   worst, {"max |log density (Prop. 2) - log Bayes|": f"{worst:.3g}"})


#: S >= 3 (float64 posterior): absolute tolerance of the log density against Bayes' rule;
#: log p(x) and the Gaussian terms are ~1e-13 relative, of magnitude <= ~1e2 here
_PROP2_FLOAT_ATOL = 1e-9


def _prop2_float(nt: DGN, name: str, rng: np.random.Generator, n_points: int, n_latent: int,
                 quick: bool, seed: int, failures: list[str]) -> tuple[int, float]:
    """Prop. 2 with :func:`fastpath.posterior` (S >= 3): its ``log_density`` against Bayes'
    rule with g in mpmath; returns (pairs checked, worst difference)."""
    import fastpath

    P = fastpath.partition(nt)
    S = nt.latent_dim
    mpn = _MPNet(nt)
    X = _test_points(nt, n_points, seed, far=False)
    post = fastpath.posterior(nt, X, partition=P)
    Zs = rng.standard_normal((n_latent, S))
    verts = [np.asarray(r.vertices, dtype=np.float64)[:2] for r in list(P)[: (6 if quick else len(P))]]
    Zs = np.concatenate([Zs, *[v for v in verts if v.size]]) if verts else Zs
    worst, count = 0.0, 0
    for n in range(X.shape[0]):
        dens = post.log_density(Zs, n)
        with mpmath.workdps(30):
            xm = [mpmath.mpf(float(v)) for v in X[n]]
            lpx = float(fastpath.log_marginal(nt, X[n:n + 1], partition=P)[0])
            for z, ld in zip(Zs, dens):
                bayes = float(mpn.log_joint(xm, [mpmath.mpf(float(v)) for v in z])) - lpx
                diff = abs(bayes - float(ld))
                worst = max(worst, diff)
                count += 1
                if not diff <= _PROP2_FLOAT_ATOL:
                    failures.append(f"{name} x[{n}] z={z.tolist()}: |Prop. 2 - Bayes| = "
                                    f"{diff:.3g} (float64 posterior, tol {_PROP2_FLOAT_ATOL:g})")
    return count, worst
