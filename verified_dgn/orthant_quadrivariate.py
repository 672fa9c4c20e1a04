"""Quadrivariate Gaussian orthant probabilities Phi_4 in high precision (docs/DESIGN.md §2.4).

:func:`_phi4`: the Plackett path from the star reference of the variable ``i`` whose
partial correlations are largest: ``Phi_4(h; R0) = int phi(x) prod_j Phi(u_j(x)) dx`` plus,
for each of the three other pairs, ``(r_jk - r0_jk) int_0^1 phi_2(h_j, h_k; r_jk(t))
Phi_2(conditional) dt`` (nested integrals: the costliest kernel).

:func:`_phi4_conditioning`: an independent, slower version (conditioning on one variable,
nested ``Phi_3``), kept for the tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import mpmath

from .mp_quadrature import _gauss_phi_product, _mode_gauss_phi, _quad, _slc_integral, _to_float
from .orthant_base import _conditional, _phi_acc, _phi_cov


def _phi4_conditioning(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
          ) -> tuple[mpmath.mpf, mpmath.mpf]:
    i = min(range(4), key=lambda t: h[t])
    rest = [t for t in range(4) if t != i]
    r = [R[i][t] for t in rest]
    C = [[R[a][b] - R[i][a] * R[i][b] for b in rest] for a in rest]
    sd = [mpmath.sqrt(C[p][p]) for p in range(3)]
    Rc = [[mpmath.mpf(1) if p == q else C[p][q] / (sd[p] * sd[q]) for q in range(3)]
          for p in range(3)]
    hr = [h[t] for t in rest]
    half_log_2pi = mpmath.log(2 * mpmath.pi) / 2

    def logf(x: mpmath.mpf) -> mpmath.mpf:
        hc = [(hr[p] - r[p] * x) / sd[p] for p in range(3)]
        v = _phi_acc(hc, Rc, digits)
        if v <= 0:
            return -mpmath.inf
        return -x * x / 2 - half_log_2pi + mpmath.log(v)

    # mode of the surrogate phi(x) prod Phi(marginal bounds) (exact mode not needed:
    # the tail bounds are checked on the true integrand)
    af = [_to_float(hr[p] / sd[p]) for p in range(3)]
    bf = [_to_float(-r[p] / sd[p]) for p in range(3)]
    xm = _mode_gauss_phi(af, bf, _to_float(h[i]))
    kinks = [-a / b for a, b in zip(af, bf) if abs(b) > 4.0]
    v = _slc_integral(logf, h[i], xm, digits, kinks)
    return v, v


def _phi4(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
          ) -> tuple[mpmath.mpf, mpmath.mpf]:
    """Phi_4 by a Plackett path from a star-shaped reference correlation.

    With ``i`` the variable whose partial correlations ``rho_{jk.i}`` have the largest
    minimum, ``R0`` keeps ``r_ij`` and sets ``r0_jk = r_ij r_ik`` for the other pairs (the
    others independent given ``Y_i``), so ``Phi_4(h; R0) = int_{-inf}^{h_i} phi(x)
    prod_j Phi((h_j - r_ij x)/s_j) dx``. Along ``R(t) = R0 + t (R - R0)`` (positive
    definite: a convex combination), Plackett's identity gives
    ``Phi_4(h; R) = Phi_4(h; R0) + sum_{j<k != i} (r_jk - r0_jk) int_0^1
    phi_2(h_j, h_k; r_jk(t)) Phi_2(h_{i,l} | y_j = h_j, y_k = h_k; R(t)) dt``,
    one one-signed integral per pair.
    """
    best = None
    for i in range(4):
        rest = [t for t in range(4) if t != i]
        worst = None
        for a in range(3):
            for b in range(a + 1, 3):
                j, k = rest[a], rest[b]
                pc = (R[j][k] - R[i][j] * R[i][k]) / mpmath.sqrt((1 - R[i][j] ** 2) * (1 - R[i][k] ** 2))
                worst = pc if worst is None or pc < worst else worst
        assert worst is not None
        if best is None or worst > best[0]:
            best = (worst, i, rest)
    assert best is not None
    _, i, rest = best
    sd = [mpmath.sqrt((1 - R[i][t]) * (1 + R[i][t])) for t in rest]
    P0 = _gauss_phi_product(h[i], [h[t] / s for t, s in zip(rest, sd)],
                            [-R[i][t] / s for t, s in zip(rest, sd)], digits)
    R0 = [list(row) for row in R]
    for a in range(3):
        for b in range(3):
            if a != b:
                R0[rest[a]][rest[b]] = R[i][rest[a]] * R[i][rest[b]]
    value, mag = P0, P0
    for a in range(3):
        for b in range(a + 1, 3):
            j, k = rest[a], rest[b]
            delta = R[j][k] - R0[j][k]
            if delta == 0:
                continue
            others = [t for t in range(4) if t not in (j, k)]
            hj, hk = h[j], h[k]

            def g(t: mpmath.mpf, j: int = j, k: int = k, delta: mpmath.mpf = delta,
                  others: list[int] = others, hj: mpmath.mpf = hj, hk: mpmath.mpf = hk
                  ) -> mpmath.mpf:
                Rt = [[R0[p][q] + t * (R[p][q] - R0[p][q]) for q in range(4)] for p in range(4)]
                r = Rt[j][k]
                c2 = (1 - r) * (1 + r)
                dens = mpmath.exp(-(hj * hj + hk * hk - 2 * r * hj * hk) / (2 * c2)) / (
                    2 * mpmath.pi * mpmath.sqrt(c2))
                if dens == 0:
                    return dens
                bc, Kc, _ = _conditional(list(h), Rt, [j, k])
                return dens * _phi_cov(bc, Kc, digits)

            pts = [0, 1]
            I = _quad(g, pts, digits)  # dr_jk/dt = delta
            value += delta * I
            mag += abs(delta) * I
    return value, mag

