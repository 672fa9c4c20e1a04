"""Plackett's integral of the k = 3 kernel near its singular end, in the variable log(r - r_a).

When the partial correlation c of Y_j, Y_k given Y_i is negative, the Plackett integral of
:func:`fastpath._tvn._log_tvn_plackett` runs from r_a = r_ij r_ik - s_j s_k (where c = -1)
to r_jk. At r -> r_a the determinant of the correlation matrix vanishes like
delta = r - r_a, and u_i(r) = num(r) / sqrt(det (1 - r^2)) behaves like num(r_a) / sqrt(2
s_j s_k (1 - r_a^2) delta): the integrand phi_2(h_j, h_k; r) Phi(u_i(r)) has a singularity
exp(-A^2 / (2 delta)) (num(r_a) < 0) or a square-root kink (num(r_a) ~ 0) at that end. In the
Gaussianising variable u of the general rule it is a kink at the end of a (typically short)
domain, which the adaptive rule resolves only by refining (about 1,300 integrand
evaluations instead of 40-160 on the E-step's inputs).

With r = r_a + e^{2x} (x from -inf to x_hi = log(r_jk - r_a)/2) the integrand is
analytic in x: log Phi(u_i) is about -A^2 e^{-2x}/2 (a double-exponential decay as
x -> -inf when num(r_a) < 0, else a linear one, 2x, from the Jacobian dr = 2 e^{2x} dx),
log-concave, and its window is found and certified by the same adaptive rule. Every node
quantity is computed from delta = e^{2x} without cancellation: det = delta (2 s_j s_k -
delta), 1 + r = (1 + r_a) + delta with 1 + r_a = (r_ij + r_ik)^2 / (1 + r_ij r_ik + s_j s_k),
the exponent of phi_2 relative to max(h_j^2, h_k^2)/2 as (h_m - r h_M)^2 / (2 (1 - r^2))
(h_M the bound of larger magnitude), num(r) = num(r_a) + delta (num'(r_a) - h_i delta).

:func:`_end_params` gives the per-element constants and the initial window (shared with the
compiled kernel of :mod:`fastpath._jit_adaptive`, kind ``PLACK_END``), :func:`_tvn_plackett_end`
the integral with the numpy adaptive rule (the second implementation it is tested against).
The rule is used where c < 0, num(r_a) <= 0 and the end u_hi of the u-domain lies below
sqrt(level) (:func:`_use_end`; elsewhere the general rule needs no refinement there: the
end is in the far tail of e^{-u^2}, or Phi(u_i) -> 1 at it).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import special as sc

from ._orthant_adaptive import _adaptive_log_integral
from ._orthant_rules import _SQRT8, _gl01

Arr = NDArray[np.float64]
#: log(2) - log(2 pi): the Jacobian's 2 and the constant of phi_2
_LOG_2_OVER_2PI = -math.log(math.pi)


def _num_a(hi_: Arr, hj: Arr, hk: Arr, rij: Arr, rik: Arr, s_j: Arr, s_k: Arr
           ) -> tuple[Arr, Arr, Arr, Arr]:
    """(num(r_a), 1 + r_a, 1 - r_a, r_a); arguments (m,)."""
    sjk = s_j * s_k
    r0 = rij * rik
    ra = r0 - sjk
    opa = (rij + rik) ** 2 / (1.0 + r0 + sjk)
    oma = (1.0 - r0) + sjk
    num_a = hi_ * (opa * oma) - (rij - ra * rik) * hj - (rik - ra * rij) * hk
    return num_a, opa, oma, ra


def _use_end(hi_: Arr, hj: Arr, hk: Arr, rij: Arr, rik: Arr, s_j: Arr, s_k: Arr,
             level: float) -> NDArray[np.bool_]:
    """Rows (c < 0 assumed) whose Plackett integral this rule computes: num(r_a) <= 0 (u_i ->
    -inf at r_a: the singular end; where num(r_a) > 0, Phi(u_i) -> 1 there and the general
    rule needs no refinement) and the end u_hi of the u-domain below sqrt(level), as
    :func:`fastpath._tvn._tvn_plackett_term` computes it (h_j = h_k = 0: u_hi = atan t_a
    < pi/2). Arguments (m,)."""
    ra = rij * rik - s_j * s_k
    sa = np.abs(hj - hk) / _SQRT8
    sc_ = np.abs(hj + hk) / _SQRT8
    degen = (sa * sa + sc_ * sc_) < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        t_a = np.sqrt((1.0 - ra) / (1.0 + ra))
        u_hi = np.where(np.isinf(t_a), np.inf, sc_ * t_a - sa / t_a)
    num_a = _num_a(hi_, hj, hk, rij, rik, s_j, s_k)[0]
    return (degen | (u_hi < math.sqrt(level))) & (num_a <= 0.0)


def _end_params(hi_: Arr, hj: Arr, hk: Arr, rij: Arr, rik: Arr, rjk: Arr, s_j: Arr,
                s_k: Arr, level: float) -> tuple[Arr, ...]:
    """Constants of the log-delta Plackett integrand and its domain / initial window.

    All arguments (m,) (``level`` the window level). Returns (hM, hm, num_a, nd1, sjk, opa,
    oma, off, x_hi, a, b), each (m,): the bound of larger / smaller magnitude, num(r_a),
    num'(r_a), s_j s_k, 1 + r_a, 1 - r_a, the log offset -max(h_j^2, h_k^2)/2 - log(pi),
    the upper end of the domain and the initial window [a, b].
    """
    sjk = s_j * s_k
    r0 = rij * rik
    num_a, opa, oma, ra = _num_a(hi_, hj, hk, rij, rik, s_j, s_k)
    big = np.abs(hj) >= np.abs(hk)
    hM = np.where(big, hj, hk)
    hm = np.where(big, hk, hj)
    nd1 = -2.0 * hi_ * ra + rik * hj + rij * hk
    off = -0.5 * hM * hM + _LOG_2_OVER_2PI
    dmax = (rjk - r0) + sjk
    x_hi = 0.5 * np.log(dmax)
    # log Phi(u_i) ~ -A^2 e^{-2x} / 2: below the level where A e^{-x} > sqrt(2 level + 4);
    # from the upper end, the level is reached after about level / (A^2 / dmax + 2) in x
    A = np.maximum(-num_a, 0.0) / np.sqrt(2.0 * sjk * opa * oma)
    with np.errstate(divide="ignore"):
        a = np.maximum(x_hi - (0.5 * level + 1.0),
                       np.log(np.maximum(A, 1e-300)) - 0.5 * math.log(2.0 * level + 4.0))
    a = np.minimum(a, x_hi - level / (A * A / dmax + 2.0))
    return hM, hm, num_a, nd1, sjk, opa, oma, off, x_hi, a, x_hi.copy()


def _tvn_plackett_end(hi_: Arr, hj: Arr, hk: Arr, rij: Arr, rik: Arr, rjk: Arr, s_j: Arr,
                      s_k: Arr, n: int, level: float) -> Arr:
    """log int_{r_a}^{r_jk} phi_2(h_j, h_k; r) Phi(u_i(r)) dr, r_a = r_ij r_ik - s_j s_k, in
    x = log(r - r_a)/2 (see the module notes). 1-D arrays (m,); c < 0 on every row."""
    hM, hm, num_a, nd1, sjk, opa, oma, off, x_hi, a, b = _end_params(
        hi_, hj, hk, rij, rik, rjk, s_j, s_k, level)
    xg, _ = _gl01(n)

    def ev(p, A, B):
        x = A[:, None] + (B - A)[:, None] * xg
        dl = np.exp(2.0 * x)
        omr2 = (oma[p][:, None] - dl) * (opa[p][:, None] + dl)  # 1 - r^2
        det = dl * (2.0 * sjk[p][:, None] - dl)
        num = num_a[p][:, None] + dl * (nd1[p][:, None] - hi_[p][:, None] * dl)
        r = (opa[p][:, None] - 1.0) + dl
        with np.errstate(divide="ignore", invalid="ignore"):
            ui = num / np.sqrt(det * omr2)
            q = (hm[p][:, None] - r * hM[p][:, None]) ** 2 / (2.0 * omr2)
            L = (-q - 0.5 * np.log(omr2)) + sc.log_ndtr(np.where(np.isnan(ui), -np.inf, ui))
        return L + 2.0 * x, x, off[p]

    return _adaptive_log_integral(ev, np.full(a.size, -np.inf), x_hi, a, b, n, level)
