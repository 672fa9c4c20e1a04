"""Certified posterior p(z | x) of a DGN: region weights, mean and covariance (Prop. 2).

``p(x) = sum_w kappa_w m0_w``, ``E[z | x] = sum_w kappa_w m1_w / p(x)``,
``E[z z^T | x] = sum_w kappa_w M2_w / p(x)`` and ``Cov = E[z z^T | x] - mean mean^T``, with
``(m0_w, m1_w, M2_w)`` the certified moments of ``N(mu_w(x), Sigma_w)`` over region w
(:func:`verified_dgn.certified.integrals.moments_over_polyhedron`) and ``kappa_w`` a ball
(:mod:`verified_dgn.certified.marginal`). Regions whose rigorous bounds are negligible are
not integrated; their contributions enter as balls: ``m0_w in [0, Phi(-r_w)]``,
``|m1_w,i| <= sqrt(Phi(-r_w) T_i)``, ``|M2_w,ij| <= sqrt(T_i T_j)`` with ``T_i`` the
half-space bound of ``int_w z_i^2 N`` (:mod:`verified_dgn.pruning`, recomputed here in
ball arithmetic from the exact nearest point). So every output ball is an enclosure.

Digits (the scales of :func:`verified_dgn.posterior`'s claims): region weights absolute,
``mean_i`` relative to ``sqrt(E[z_i^2 | x])``, ``cov_ij`` relative to ``sqrt(cov_ii cov_jj)``;
the whole point is recomputed with more bits until they hold or ``max_prec`` is reached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from flint import arb, ctx
from numpy.typing import ArrayLike

from dgn_core.model import DGN
from dgn_core.regions import Partition

from ._arb import (
    DEFAULT_DIGITS,
    DEFAULT_MAX_PREC,
    GUARD_BITS,
    abs_bits,
    ball,
    digits_to_bits,
    frac_to_fmpq,
    log2_abs,
)
from .integrals import moments_over_polyhedron
from .marginal import PointState, ncdf, point_state, prepared, upper

__all__ = ["posterior", "CertifiedPosterior"]

_PRUNE_GUARD = 10
_MIN_REGION_BITS = 12


@dataclass
class CertifiedPosterior:
    """The certified posterior of one point.

    Attributes
    ----------
    log_px : flint.arb
        log p(x).
    weights : list of flint.arb, length R
        ``P(z in region w | x)`` in partition order (pruned regions: ``[0, bound]``).
    mean : list of flint.arb, length S
    cov : list of list of flint.arb, shape (S, S)
    pruned : list of bool, length R
        Regions not integrated (their contribution is a ball from their bounds).
    digits : int
        The digits asked for; :func:`~verified_dgn.certified.certified_decimal` gives those
        each ball certifies.
    """

    log_px: arb
    weights: list[arb]
    mean: list[arb]
    cov: list[list[arb]]
    pruned: list[bool] = field(default_factory=list)
    digits: int = 0


def _second_moment_bounds(f: Any, mu: Sequence[Fraction],
                          near: tuple[list[Fraction], Fraction] | None) -> tuple[arb, list[arb]]:
    """Balls of ``Phi(-r)`` (1 inside) and ``T_i`` bounding ``int_w z_i^2 N(mu, Sigma_w)``."""
    S = len(mu)
    mum = [ball(frac_to_fmpq(m)) for m in mu]
    sig = [ball(frac_to_fmpq(f.Sigma[i][i])) for i in range(S)]
    if near is None:
        return arb(1), [mum[i] ** 2 + sig[i] for i in range(S)]
    p, r2 = near
    r = ball(frac_to_fmpq(r2)).sqrt()
    Phi = ncdf(-r)
    phi = (-r * r / 2).exp() / (2 * arb.pi()).sqrt()
    beta = [ball(frac_to_fmpq(p[i] - mu[i])) / r for i in range(S)]
    T = [(mum[i] ** 2 + sig[i]) * Phi + 2 * mum[i] * beta[i] * phi + beta[i] ** 2 * r * phi
         for i in range(S)]
    return Phi, T


def _accuracy(weights: list[arb], mean: list[arb], E2: list[list[arb]], cov: list[list[arb]]
              ) -> float:
    """Certified bits in the claim scales (module docstring); -inf when a scale is unknown."""
    S = len(mean)
    acc = min([abs_bits(w) for w in weights] + [math.inf])
    for i in range(S):
        if E2[i][i].contains(0) or cov[i][i].contains(0):
            return -math.inf
        acc = min(acc, log2_abs(E2[i][i].abs_lower().sqrt()) - log2_abs(mean[i].rad())
                  if not mean[i].rad().is_zero() else acc)
        for j in range(S):
            sc = (cov[i][i].abs_lower() * cov[j][j].abs_lower()).sqrt()
            if not cov[i][j].rad().is_zero():
                acc = min(acc, log2_abs(sc) - log2_abs(cov[i][j].rad()))
    return acc


def _posterior_point(model: Any, forms: list[Any], x: Sequence[Fraction], digits: int,
                     max_prec: int) -> CertifiedPosterior:
    bits = digits_to_bits(digits)
    S, R = model.S, len(forms)
    target = bits + 8
    best: CertifiedPosterior | None = None
    best_acc = -math.inf
    while True:
        wp = min(max_prec, target + 2 * GUARD_BITS)
        st: PointState = point_state(model, forms, x, wp)
        with ctx.workprec(wp):
            bnds = [_second_moment_bounds(f, mu, nr) for f, mu, nr in zip(forms, st.mus, st.near)]
        lb_up = [upper(b) for b in st.log_bound]
        order = sorted(range(R), key=lambda w: lb_up[w], reverse=True)
        top = max(upper(k) for k in st.log_kappa)
        kap_f = [2.0 ** ((upper(st.log_kappa[w]) - top) / math.log(2)) for w in range(R)]
        b0 = [2.0 ** ((lb_up[w] - top) / math.log(2)) for w in range(R)]
        bT = [[kap_f[w] * upper(bnds[w][1][i]) for i in range(S)] for w in range(R)]
        suf0 = [0.0] * (R + 1)
        sufT = [[0.0] * S for _ in range(R + 1)]
        for k in range(R - 1, -1, -1):
            w = order[k]
            suf0[k] = suf0[k + 1] + b0[w]
            sufT[k] = [sufT[k + 1][i] + bT[w][i] for i in range(S)]
        tol = 2.0 ** -(target + _PRUNE_GUARD)
        acc0 = 0.0
        acc2 = [0.0] * S
        got: dict[int, tuple[arb, list[arb], list[list[arb]]]] = {}
        for k, w in enumerate(order):
            if acc0 > 0 and suf0[k] <= acc0 * tol and all(
                    sufT[k][i] <= acc2[i] * tol for i in range(S)):
                break
            need = target + 4
            if acc0 > 0 and b0[w] > 0:
                need -= max(0, int(math.floor(math.log2(acc0 / b0[w]))))
            need = max(_MIN_REGION_BITS, need)
            f = forms[w]
            m = moments_over_polyhedron(f.Crows, f.dvals, st.mus[w], f.Sigma, need, max_prec)
            got[w] = m
            with ctx.workprec(wp):
                sc = (st.log_kappa[w] - top).exp()
                v0 = sc * m[0]
                if v0.lower() > 0:
                    acc0 += float(v0.lower())
                for i in range(S):
                    v2 = sc * m[2][i][i]
                    if v2.lower() > 0:
                        acc2[i] += float(v2.lower())
        pruned = [w not in got for w in range(R)]
        with ctx.workprec(wp + int(math.log2(1 + abs(top))) + 8):
            t0 = [arb(0)] * R
            e1 = [arb(0)] * S
            E2 = [[arb(0)] * S for _ in range(S)]
            for w in range(R):
                sc = (st.log_kappa[w] - top).exp()
                if w in got:
                    m0, m1, M2 = got[w]
                    t0[w] = sc * m0
                    for i in range(S):
                        e1[i] += sc * m1[i]
                        for j in range(S):
                            E2[i][j] += sc * M2[i][j]
                else:
                    Phi, T = bnds[w]
                    t0[w] = arb(0).union((sc * Phi).upper())
                    for i in range(S):
                        e1[i] += arb(0, (sc * (Phi * T[i]).sqrt()).upper())
                        for j in range(S):
                            E2[i][j] += arb(0, (sc * (T[i] * T[j]).sqrt()).upper())
            p = sum(t0, arb(0))
            log_px = p.log() + top if p > 0 else arb("nan")
            weights = [t / p for t in t0]
            mean = [v / p for v in e1]
            E2c = [[v / p for v in row] for row in E2]
            cov = [[E2c[i][j] - mean[i] * mean[j] for j in range(S)] for i in range(S)]
        res = CertifiedPosterior(log_px, weights, mean, cov, pruned, digits)
        acc = _accuracy(weights, mean, E2c, cov) if p > 0 else -math.inf
        if best is None or acc > best_acc:
            best, best_acc = res, acc
        if acc >= bits or wp >= max_prec:
            return best
        deficit = bits - acc if math.isfinite(acc) else target
        target += int(math.ceil(deficit)) + 8


def posterior(net: DGN, X: ArrayLike, *, digits: int = DEFAULT_DIGITS,
              max_prec: int = DEFAULT_MAX_PREC, partition: Partition | None = None
              ) -> list[CertifiedPosterior]:
    """Certified posterior of every row of X: region weights, mean and covariance.

    Parameters
    ----------
    net : DGN
        Latent dimension S <= 3.
    X : array_like, shape (N, D) or (D,)
        Data points (floats converted exactly, ints, Fractions, mpf).
    digits : int, default 30
        Digits asked for in the scales of the module docstring (weights absolute, mean
        relative to ``sqrt(E[z_i^2 | x])``, covariance relative to ``sqrt(cov_ii cov_jj)``).
    max_prec : int, default 8192
        Ceiling of the working precision in bits.
    partition : Partition, optional
        ``verified_dgn.partition(net)`` (computed when not given).

    Returns
    -------
    list of CertifiedPosterior, length N

    Raises
    ------
    TypeError, ValueError
        As :func:`verified_dgn.posterior`; ``S > 3``; bad ``digits`` / ``max_prec``.
    """
    digits, max_prec, pts, model, forms = prepared(net, X, digits, max_prec, partition)
    return [_posterior_point(model, forms, x, digits, max_prec) for x in pts]
