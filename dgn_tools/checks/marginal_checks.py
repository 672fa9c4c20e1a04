"""Check of the exact marginal: Theorem 1 (docs/DESIGN.md §2.3).

"Theorem 1": log p(x) against the quadrature of p(x|z) p(z) over z (S = 1: mpmath between
the exact kinks; S = 2: nested float64 Gauss-Legendre, the kinks of every line found by the
sweep), at sampled, off-manifold and far points (seeded, not tuned on); and int p(x) dx = 1
for D = 2 by a 2-D Gauss-Hermite rule over x (two orders, their difference reported as the
quadrature error). The references are in :mod:`~dgn_tools.checks.distribution_reference`.
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np

from dgn_core.model import DGN
from dgn_core.regions import Partition

from . import CheckResult, register
from .distribution_reference import (
    Arr,
    _cases,
    _gauss_hermite_2d,
    _result,
    _same_regions,
    _test_points,
    _z2_hints,
    joint_quadrature_1d,
    joint_quadrature_2d,
)

__all__ = ["check_theorem1"]


# =========================================================================== Theorem 1
@register("Theorem 1", "log p(x) = log sum_w kappa_w(x) Phi_w(mu_w(x), Sigma_w) equals the "
          "quadrature of p(x|z) p(z) over z; int p(x) dx = 1 (D = 2)")
def check_theorem1(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                   dps: int = 30, n_points: int | None = None, normalisation: bool = True
                   ) -> CheckResult:
    """Theorem 1 against independent quadrature.

    For each net of the suite (S = 1 and 2) and ``n_points`` sampled points plus an
    off-manifold and a far point: ``|log p(x) - log I|`` with ``I`` the quadrature of
    ``p(x|z) p(z)``. Tolerances: S = 1, mpmath quadrature at dps + 10: ``10**-(dps - 5)``
    (mpmath's own error estimate is required below it as well); S = 2, float64 nested
    Gauss-Legendre: ``1e-9`` plus the box-truncation bound (about 1e6 positive float
    terms; the rule is also recomputed with 4 more nodes per panel and must agree).
    For D = 2 and S = 1 nets (unless ``normalisation=False``): ``int p(x) dx = 1`` by
    Gauss-Hermite rules of two orders;
    tolerance ``1e-6`` (quick: orders 12, 16) / ``1e-10`` (thorough: orders 20, 28) on
    both |I - 1| and the difference of the two orders (each order pair resolves the
    built-in net well below its tolerance).
    """
    from verified_dgn.distributions import log_marginal
    from verified_dgn.exact_partition import partition

    n_points = n_points if n_points is not None else (1 if quick else 4)
    failures: list[str] = []
    worst1 = worst2 = 0.0
    worst_norm = 0.0
    n1 = n2 = 0
    details: dict[str, Any] = {}
    for name, nt in _cases(net, quick):
        P = partition(nt)
        S = nt.latent_dim
        # quick: S = 1 a sample and the far point; S = 2 a sample and the off-manifold point
        # (for S = 2 the far point's tail integrals over every polygon are the slow part)
        X = _test_points(nt, n_points, seed, off=not quick or S == 2, far=not quick or S == 1)
        lp = log_marginal(nt, X, dps=dps, partition=P)
        for n, x in enumerate(X):
            if S == 1:
                I0, _, _, rel_err = joint_quadrature_1d(nt, x, dps=dps + 10)
                with mpmath.workdps(dps + 10):
                    diff = float(abs(lp[n] - mpmath.log(I0)))
                tol = 10.0 ** -(dps - 5)
                worst1 = max(worst1, diff)
                n1 += 1
                if not (diff <= tol and float(rel_err) <= tol):
                    failures.append(f"{name} x[{n}]: |log p - log quad| = {diff:.3g}, quad error "
                                    f"estimate {float(rel_err):.3g} (tol {tol:.0e})")
            elif S == 2:
                hints = _z2_hints(P)
                lq, _, _, trunc = joint_quadrature_2d(nt, x, hints, n=8)
                lq2, _, _, _ = joint_quadrature_2d(nt, x, hints, n=12)
                diff = abs(float(lp[n]) - lq)
                tol = 1e-9 + trunc
                worst2 = max(worst2, diff)
                n2 += 1
                if not (diff <= tol and abs(lq - lq2) <= tol):
                    failures.append(f"{name} x[{n}]: |log p - log quad| = {diff:.3g}, two rules "
                                    f"differ by {abs(lq - lq2):.3g} (tol {tol:.3g})")
        if normalisation and S == 1 and nt.data_dim == 2:
            err, dev = _normalisation_2d(nt, P, quick, seed)
            worst_norm = max(worst_norm, abs(err))
            ntol = 1e-6 if quick else 1e-10
            details[f"int p(x) dx - 1 ({name})"] = f"{err:.3g} (orders differ by {dev:.3g})"
            if not (abs(err) <= ntol and dev <= ntol):
                failures.append(f"{name}: int p(x) dx - 1 = {err:.3g}, rules differ by {dev:.3g}")
    details["S = 1: max |log p - log quad| (mpmath)"] = f"{worst1:.3g} over {n1} points"
    details["S = 2: max |log p - log quad| (float64)"] = f"{worst2:.3g} over {n2} points"
    residual = max(worst1, worst2, worst_norm)
    return _result("Theorem 1", check_theorem1_statement, failures,
                   f"{n1 + n2} points on {len(_cases(net, quick))} nets, dps={dps}",
                   residual, details)


check_theorem1_statement = ("log p(x) from Theorem 1 equals the quadrature of p(x|z) p(z); "
                            "int p(x) dx = 1")


def _normalisation_2d(net: DGN, P: Partition, quick: bool, seed: int) -> tuple[float, float]:
    """``int p(x) dx - 1`` for D = 2 with the exact log p(x) at Gauss-Hermite nodes over x.

    The identity holds for every noise level, and a tensor rule of order <= 28 resolves p(x)
    only when the noise is not much smaller than the spread of g(z): the check uses the
    net's generator with noise variance ``max(sigma_k^2, mean_k Var[g_k(z)])`` per
    coordinate (unchanged for the built-in relu net, raised for the abs net whose density
    is a thin curve). The change of variables x = c + L u (c, L from the sample mean and
    1.1 x the sample covariance's Cholesky factor) is exact whatever c, L are; two orders
    are evaluated.
    """
    from verified_dgn.distributions import log_marginal

    _, Zs = net.sample(4000, seed=seed + 7)
    spread = float(np.mean(np.var(net.forward(Zs), axis=0)))
    nv = np.maximum(net.noise_var_vector, spread)
    if not np.array_equal(nv, net.noise_var_vector):
        net = net.replace(noise_var=nv if not net.isotropic_noise else float(nv[0]))
        P = _same_regions(P, net)
    X, _ = net.sample(4000, seed=seed + 7)
    c = X.mean(0)
    L = 1.1 * np.linalg.cholesky(np.cov(X.T))
    orders = (12, 16) if quick else (20, 28)

    def logp(Xs: Arr) -> Arr:
        return np.array([float(v) for v in log_marginal(net, Xs, dps=12, partition=P)])

    vals = [_gauss_hermite_2d(logp, c, L, k) for k in orders]
    return vals[-1] - 1.0, abs(vals[-1] - vals[0])
