"""Check of the exact posterior as a distribution (docs/DESIGN.md §2.3).

"Posterior normalisation": sum_w e0_w = 1; the Prop. 2 density integrates to 1; the
posterior mean and covariance equal the quadrature moments of p(x|z) p(z). The references
are in :mod:`~dgn_tools.checks.distribution_reference`.
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np

from dgn_core.model import DGN

from . import CheckResult, register
from .distribution_reference import (
    _cases,
    _gl_batch,
    _mpf_of,
    _piece_breakpoints,
    _result,
    _test_points,
    _z2_hints,
    joint_quadrature_1d,
    joint_quadrature_2d,
)

__all__ = ["check_posterior_normalisation"]


# =========================================================================== posterior
@register("Posterior normalisation", "sum_w e0_w = 1, the posterior density integrates to 1, "
          "posterior mean and covariance equal quadrature")
def check_posterior_normalisation(*, net: DGN | None = None, quick: bool = True, seed: int = 0,
                                  dps: int = 30, n_points: int | None = None) -> CheckResult:
    """The posterior is a probability distribution with the right moments.

    Measured per point: ``|sum_w e0_w - 1|`` (claim 10**-dps); S = 1: the Prop. 2 density
    ``exp(log_density)`` integrated by Gauss-Legendre rules of 24 and 48 nodes per piece
    between the exact kinks and the bumps' breakpoints (tolerance 10**-(dps - 5) on the
    deviation from 1 and on the rules' difference), and mean / covariance against the
    mpmath quadrature moments of p(x|z) p(z) (tolerance 10**-(dps - 5) in the scales
    sqrt(E z^2), sqrt(cov)); S = 2: float64 nested quadrature moments (tolerance 1e-8 in the
    same scales).
    """
    from verified_dgn.distributions import posterior
    from verified_dgn.exact_partition import partition

    n_points = n_points if n_points is not None else (1 if quick else 3)
    failures: list[str] = []
    w_e0 = w_int = w_m1 = w_m2 = 0.0
    w_m_float = 0.0
    count = 0
    for name, nt in _cases(net, quick):
        P = partition(nt)
        X = _test_points(nt, n_points, seed)
        post = posterior(nt, X, dps=dps, partition=P)
        S = nt.latent_dim
        for n, x in enumerate(X):
            count += 1
            with mpmath.workdps(dps + 10):
                s = mpmath.fsum(post.e0[n]) - 1
            w_e0 = max(w_e0, float(abs(s)))
            if not abs(s) <= 10.0 ** -dps:
                failures.append(f"{name} x[{n}]: sum e0 - 1 = {float(s):.3g}")
            if S == 1:
                tol = 10.0 ** -(dps - 5)
                with mpmath.workdps(dps + 10):
                    # batched Gauss-Legendre between the breakpoints (beyond the outermost
                    # ones the density is below exp(-128) of its maximum, Gaussian tails),
                    # two orders: their difference is the quadrature error
                    pts = [_mpf_of(p) for p in _piece_breakpoints(nt, x)]

                    def ld(zs: list[mpmath.mpf], n: int = n, post: Any = post) -> Any:
                        return post.log_density(np.array([[z] for z in zs], dtype=object), n, dps)

                    dens = _gl_batch(ld, pts, 5)
                    dens_lo = _gl_batch(ld, pts, 4)
                    e_rule = float(abs(dens - dens_lo))
                    I0, I1, I2, _ = joint_quadrature_1d(nt, x, dps=dps + 10, moments=True)
                    m = I1 / I0
                    var = I2 / I0 - m * m
                    e_int = float(abs(dens - 1))
                    e_m = float(abs(post.mean[n, 0] - m) / mpmath.sqrt(I2 / I0))
                    e_v = float(abs(post.cov[n, 0, 0] - var) / var)
                w_int, w_m1, w_m2 = max(w_int, e_int), max(w_m1, e_m), max(w_m2, e_v)
                if not (e_int <= tol and e_m <= tol and e_v <= tol and e_rule <= tol):
                    failures.append(f"{name} x[{n}]: |int density - 1| = {e_int:.3g} (rules "
                                    f"differ by {e_rule:.3g}), mean {e_m:.3g}, variance {e_v:.3g} "
                                    f"(tol {tol:.0e})")
            else:
                _, qm, qc, trunc = joint_quadrature_2d(nt, x, _z2_hints(P), n=10)
                mean = np.array([float(v) for v in post.mean[n]])
                cov = np.array([[float(v) for v in row] for row in post.cov[n]])
                sc = np.sqrt(np.diag(cov))
                e2 = np.sqrt(np.diag(cov) + mean ** 2)
                e_m = float(np.max(np.abs(mean - qm) / e2))
                e_c = float(np.max(np.abs(cov - qc) / np.outer(sc, sc)))
                w_m_float = max(w_m_float, e_m, e_c)
                tol = 1e-8 + 10 * trunc
                if not (e_m <= tol and e_c <= tol):
                    failures.append(f"{name} x[{n}]: mean {e_m:.3g}, covariance {e_c:.3g} "
                                    f"(tol {tol:.3g}, float64 quadrature)")
    details = {"max |sum e0 - 1|": f"{w_e0:.3g}",
               "S = 1: max |int density - 1|": f"{w_int:.3g}",
               "S = 1: mean, variance vs mpmath quadrature": f"{w_m1:.3g}, {w_m2:.3g}",
               "S = 2: mean, covariance vs float64 quadrature": f"{w_m_float:.3g}"}
    residual = max(w_e0, w_int, w_m1, w_m2, w_m_float)
    return _result("Posterior normalisation", "the posterior integrates to 1 with the "
                   "quadrature's mean and covariance", failures,
                   f"{count} points, dps={dps}", residual, details)
