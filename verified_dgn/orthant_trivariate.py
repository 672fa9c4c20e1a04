"""Trivariate Gaussian orthant probabilities Phi_3 in high precision (docs/DESIGN.md §2.4).

Plackett-type one-dimensional integrals, on standardised bounds ``h`` and a correlation
matrix ``R``; each kernel returns ``(value, magnitude)`` as described in
:mod:`verified_dgn.orthant_base`.

* When no term can subtract much (all correlations ``>= 0``, or a central orthant,
  checked a posteriori) the path from the identity: ``Phi_3 = prod Phi(h_i) + sum_{i<j}
  (1/2pi) int_0^{asin r_ij} exp(-(h_i^2 + h_j^2 - 2 h_i h_j sin t)/(2 cos^2 t))
  Phi(u_k(t)) dt`` (one ``Phi`` per node).
* Otherwise the path from a star reference: with ``i`` the variable of largest partial
  correlation ``rho_{jk.i}``, ``R0`` equals ``R`` except ``r0_jk = r_ij r_ik`` (``Y_j, Y_k``
  independent given ``Y_i``), so ``Phi_3(h; R0) = int_{-inf}^{h_i} phi(x) Phi(u_j(x))
  Phi(u_k(x)) dx``, and along the segment from ``R0`` to ``R`` Plackett's identity
  ``dPhi_3/dr_jk = phi_2(h_j, h_k; r_jk) Phi(conditional bound of Y_i)`` gives (with
  ``r_jk = sin t``) ``Phi_3(h; R) = Phi_3(h; R0) + (1/2pi) int_{asin r0_jk}^{asin r_jk}
  exp(-(h_j^2 + h_k^2 - 2 h_j h_k sin t)/(2 cos^2 t)) Phi(u_i(t)) dt``.
"""

from __future__ import annotations

from collections.abc import Sequence

import mpmath

from .mp_quadrature import _gauss_phi_product
from .orthant_base import _bvn_asin_integral


def _phi3_identity_path(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
                        ) -> tuple[mpmath.mpf, mpmath.mpf]:
    """Phi_3 by the Plackett path from the identity, ``R(t) = I + t (R - I)``.

    ``Phi_3(h; R) = prod Phi(h_i) + sum_{i<j} int_0^{asin r_ij} (1/2pi)
    exp(-(h_i^2 + h_j^2 - 2 h_i h_j sin u)/(2 cos^2 u)) Phi(u_k) du`` (``r_ij(t) = sin u``,
    ``t = sin u / r_ij``, ``u_k`` the standardised bound of ``Y_k`` given ``Y_i = h_i``,
    ``Y_j = h_j`` under ``R(t)``). One ``Phi`` per node (the star path needs about three),
    but the terms of negative correlations subtract: the magnitude returned measures that.
    """
    value = mpmath.ncdf(h[0]) * mpmath.ncdf(h[1]) * mpmath.ncdf(h[2])
    mag = value
    for i, j in ((0, 1), (0, 2), (1, 2)):
        k = 3 - i - j
        rij, rik, rjk = R[i][j], R[i][k], R[j][k]
        if rij == 0:
            continue  # r_ij(t) = 0 along the whole path: no contribution
        hi_, hj, hk = h[i], h[j], h[k]

        def phi_cond(s: mpmath.mpf, rij: mpmath.mpf = rij, rik: mpmath.mpf = rik,
                     rjk: mpmath.mpf = rjk, hi_: mpmath.mpf = hi_, hj: mpmath.mpf = hj,
                     hk: mpmath.mpf = hk) -> mpmath.mpf:
            t = s / rij
            a, b = t * rik, t * rjk  # corr(Y_k, Y_i), corr(Y_k, Y_j) at t
            c2 = (1 - s) * (1 + s)
            m = ((a - s * b) * hi_ + (b - s * a) * hj) / c2
            var = (c2 - a * a - b * b + 2 * s * a * b) / c2
            if var <= 0:
                return mpmath.mpf(1) if hk >= m else mpmath.mpf(0)
            return mpmath.ncdf((hk - m) / mpmath.sqrt(var))

        u1 = mpmath.asin(rij)
        if u1 > 0:
            I = _bvn_asin_integral(hi_, hj, mpmath.mpf(0), u1, digits, phi_cond)
            value += I
        else:
            I = _bvn_asin_integral(hi_, hj, u1, mpmath.mpf(0), digits, phi_cond)
            value -= I
        mag += I
    return value, mag


def _phi3(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
          ) -> tuple[mpmath.mpf, mpmath.mpf]:
    # The identity path needs one Phi per node, the star path about three; use it when it
    # cannot lose more than about two digits: all correlations >= 0 (every term positive), or a central
    # orthant whose result is checked a posteriori.
    if all(R[a][b] >= 0 for a, b in ((0, 1), (0, 2), (1, 2))):
        return _phi3_identity_path(h, R, digits)
    if min(h) > -1.5:
        v, mag = _phi3_identity_path(h, R, digits)
        if v > 0 and mag <= 100 * v:
            return v, mag
    return _phi3_star(h, R, digits)


def _phi3_star(h: Sequence[mpmath.mpf], R: list[list[mpmath.mpf]], digits: int
               ) -> tuple[mpmath.mpf, mpmath.mpf]:
    """Phi_3 by the Plackett path from the star reference (see the module docstring)."""
    # choose the conditioning variable i with the largest partial correlation rho_{jk.i}
    best = None
    for i in range(3):
        j, k = [t for t in range(3) if t != i]
        pc = (R[j][k] - R[i][j] * R[i][k]) / mpmath.sqrt((1 - R[i][j] ** 2) * (1 - R[i][k] ** 2))
        if best is None or pc > best[0]:
            best = (pc, i, j, k)
    assert best is not None
    _, i, j, k = best
    rij, rik, rjk = R[i][j], R[i][k], R[j][k]
    sj = mpmath.sqrt((1 - rij) * (1 + rij))
    sk = mpmath.sqrt((1 - rik) * (1 + rik))
    P0 = _gauss_phi_product(h[i], [h[j] / sj, h[k] / sk], [-rij / sj, -rik / sk], digits)
    r0 = rij * rik
    if rjk == r0:
        return P0, P0
    hi_, hj, hk = h[i], h[j], h[k]

    def phi_cond(s: mpmath.mpf) -> mpmath.mpf:
        # Phi of the standardised bound of Y_i given Y_j = h_j, Y_k = h_k, corr(Y_j,Y_k) = s
        c2 = (1 - s) * (1 + s)
        m = ((rij - s * rik) * hj + (rik - s * rij) * hk) / c2
        var = (c2 - rij * rij - rik * rik + 2 * s * rij * rik) / c2
        if var <= 0:
            return mpmath.mpf(1) if hi_ >= m else mpmath.mpf(0)
        return mpmath.ncdf((hi_ - m) / mpmath.sqrt(var))

    t0, t1 = mpmath.asin(r0), mpmath.asin(rjk)
    if t0 < t1:
        I = _bvn_asin_integral(hj, hk, t0, t1, digits, phi_cond)
        return P0 + I, P0 + I
    I = _bvn_asin_integral(hj, hk, t1, t0, digits, phi_cond)
    return P0 - I, P0 + I

