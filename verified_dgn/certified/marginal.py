"""Certified log p(x) of a DGN (Theorem 1) and the per-point state the posterior shares.

``p(x) = sum_w kappa_w(x) Phi_w(mu_w(x), Sigma_w)`` over the regions of the exact partition.
Everything before the Gaussian integrals is :mod:`verified_dgn.region_forms`' exact rational
algebra (``Sigma_w``, ``det Lambda_w``, ``mu_w(x)``, the quadratic form ``Q_w(x)``); here
``log kappa_w = -(D log 2pi + log det Sigma_x + log det Sigma_z + log det Lambda_w + Q_w) / 2``
is a ball, ``Phi_w`` a ball from :func:`verified_dgn.certified.integrals.mass_ball`.

Regions far from ``mu_w`` are not integrated: each region has the rigorous bound
``Phi_w <= Phi(-r_w)`` (``r_w``: the exact Mahalanobis distance from ``mu_w`` to the region,
:func:`verified_dgn.pruning._nearest_point`; the region lies in a half-space at that
distance). Regions are integrated in decreasing order of ``kappa_w Phi(-r_w)`` until the
bounds left add up to less than ``2**-(bits + 10)`` of what has been accumulated; the ones
left enter the sum as the ball ``[0, sum of their bounds]``, so the result stays an
enclosure. Each integrated region is asked only for the relative bits its share of ``p(x)``
needs (its bound over the accumulated mass), which makes the small regions cheap.

The working precision is raised (the whole point recomputed with more bits) until the
ball of ``log p(x)`` has radius at most ``10**-digits``, or ``max_prec`` is reached.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
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
    check_digits,
    digits_to_bits,
    frac_to_fmpq,
)
from .integrals import mass_ball
from .orthant import KMAX
from .orthant import _ncdf as ncdf

__all__ = ["log_marginal"]

#: bits below the target at which the bounds of the regions left may stop the loop
_PRUNE_GUARD = 10
#: fewest relative bits asked of a region's integral
_MIN_REGION_BITS = 12


def log_fraction(q: Fraction) -> arb:
    """log of a positive rational as a ball (numerator and denominator separately)."""
    return arb(q.numerator).log() - arb(q.denominator).log()


@dataclass
class PointState:
    """Per point: exact ``mu_w``, ``Q_w``, balls ``log kappa_w`` and the bound data."""

    mus: list[list[Fraction]]
    log_kappa: list[arb]
    log_bound: list[arb]          # upper bounds (balls) of log(kappa_w Phi_w)
    near: list[tuple[list[Fraction], Fraction] | None]  # nearest point, r^2; None: inside


def point_state(model: Any, forms: list[Any], x: Sequence[Fraction], prec: int) -> PointState:
    """The exact per-point forms and the balls of ``log kappa_w`` and of the bounds at
    ``prec`` bits plus the bits of the largest quadratic form (absolute accuracy)."""
    from ..pruning import _nearest_point
    from ..region_forms import _point_state

    mus, qs = _point_state(model, forms, x)
    big = max([1.0] + [abs(float(q)) for q in qs])
    with ctx.workprec(prec + int(math.log2(big)) + 8):
        c0 = -(model.D * (2 * arb.pi()).log() + log_fraction(model.det_sx)
               + log_fraction(model.det_sz)) / 2
        lk = [c0 - (log_fraction(f.det_lam) + ball(frac_to_fmpq(q))) / 2 for f, q in zip(forms, qs)]
        near = [_nearest_point(f, mu) for f, mu in zip(forms, mus)]
        lb = []
        for k, nr in zip(lk, near):
            if nr is None:
                lb.append(k)
            else:
                lb.append(k + ncdf(-ball(frac_to_fmpq(nr[1])).sqrt()).log())
    return PointState(mus, lk, lb, near)


def upper(x: arb) -> float:
    """A float at least the ball's upper end (for ordering and budgets only)."""
    return float(x.upper()) if x.is_finite() else math.inf


def _log_marginal_point(model: Any, forms: list[Any], x: Sequence[Fraction], bits: int,
                        max_prec: int) -> arb:
    """log p(x) with an absolute radius of at most ``2**-bits`` when ``max_prec`` allows."""
    prec = bits + GUARD_BITS
    st = point_state(model, forms, x, prec)
    R = len(forms)
    order = sorted(range(R), key=lambda w: upper(st.log_bound[w]), reverse=True)
    lb_up = [upper(st.log_bound[w]) for w in range(R)]
    # suffix sums of the bounds in log2 units relative to the largest
    top = lb_up[order[0]]
    shares = [2.0 ** ((lb_up[w] - top) / math.log(2)) for w in range(R)]
    suffix = [0.0] * (R + 1)
    for k in range(R - 1, -1, -1):
        suffix[k] = suffix[k + 1] + shares[order[k]]
    best: arb | None = None
    target = bits
    while True:
        wp = min(max_prec, target + GUARD_BITS)
        acc_share = 0.0  # accumulated mass (lower end) / exp(top)
        vals: list[tuple[int, arb]] = []
        k_stop = R
        for k, w in enumerate(order):
            if acc_share > 0 and suffix[k] <= acc_share * 2.0 ** -(target + _PRUNE_GUARD):
                k_stop = k
                break
            # the relative bits this region needs: its bound's share of the accumulated mass
            need = target + 4
            if acc_share > 0 and shares[w] > 0:
                need -= max(0, int(math.floor(math.log2(acc_share / shares[w]))))
            need = max(_MIN_REGION_BITS, need)
            f = forms[w]
            # absolute radius of m0_w worth 2**-(target + 4) of the accumulated p(x)
            lk_up = upper(st.log_kappa[w])
            abs_l2 = (None if acc_share <= 0 else
                      math.log2(acc_share) + (top - lk_up) / math.log(2) - target - 4
                      - math.log2(R))
            m0 = mass_ball(f.Crows, f.dvals, st.mus[w], f.Sigma, need, max_prec, abs_l2)
            vals.append((w, m0))
            with ctx.workprec(wp):
                lo = (st.log_kappa[w] - top).exp() * m0
                if not lo.contains(0) or lo.lower() > 0:
                    acc_share += float(lo.lower())
        with ctx.workprec(wp + int(math.log2(1 + abs(top))) + 8):
            total = arb(0)
            for w, m0 in vals:
                total += (st.log_kappa[w] - top).exp() * m0
            if k_stop < R:
                tail = arb(0)
                for w in order[k_stop:]:
                    tail += (st.log_bound[w] - top).exp()
                total += arb(0).union(tail.upper())
            res = total.log() + top if total > 0 else arb("nan")
        if best is None or abs_bits(res) > abs_bits(best):
            best = res
        got = abs_bits(res)
        if got >= bits or wp >= max_prec:
            return best
        deficit = bits - got if math.isfinite(got) else target
        target += int(math.ceil(deficit)) + 8


def check_net_s3(net: Any) -> DGN:
    from ..region_forms import _check_net

    net = _check_net(net)
    if net.latent_dim > KMAX:
        raise ValueError(f"the certified path handles latent dimension S <= {KMAX}, "
                         f"got S = {net.latent_dim}")
    return net


def log_marginal(net: DGN, X: ArrayLike, *, digits: int = DEFAULT_DIGITS,
                 max_prec: int = DEFAULT_MAX_PREC, partition: Partition | None = None) -> list[arb]:
    """Certified log p(x) of every row of X (Theorem 1), as arb balls.

    Parameters
    ----------
    net : DGN
        Latent dimension S <= 3.
    X : array_like, shape (N, D) or (D,)
        Data points: floats (converted exactly), ints, Fractions or mpf.
    digits : int, default 30
        Absolute decimal digits of ``log p(x)`` asked for (so ``p(x)`` to ``10**-digits``
        relative); the precision is raised until the ball's radius is at most
        ``10**-digits`` or ``max_prec`` bits are reached (then fewer digits are certified:
        :func:`~verified_dgn.certified.certified_decimal` with ``absolute=True``).
    max_prec : int, default 8192
        Ceiling of the working precision in bits.
    partition : Partition, optional
        ``verified_dgn.partition(net)`` (computed when not given).

    Returns
    -------
    list of flint.arb, length N
        Balls guaranteed to contain ``log p(x_n)``.

    Raises
    ------
    TypeError, ValueError
        As :func:`verified_dgn.log_marginal`; ``S > 3``; bad ``digits`` / ``max_prec``.
    """
    digits, max_prec, pts, model, forms = prepared(net, X, digits, max_prec, partition)
    bits = digits_to_bits(digits)
    return [_log_marginal_point(model, forms, x, bits, max_prec) for x in pts]


def prepared(net: Any, X: ArrayLike, digits: int, max_prec: int, partition: Any
             ) -> tuple[int, int, Any, Any, list[Any]]:
    """The checked arguments of a certified per-point function and the exact region forms:
    (digits, max_prec, points, model, forms)."""
    from ..region_forms import _check_partition, _check_points, _forms

    net = check_net_s3(net)
    digits, max_prec = check_digits(digits, max_prec)
    pts = _check_points(X, net.data_dim, "X")
    model, forms = _forms(net, _check_partition(net, partition))
    return digits, max_prec, pts, model, forms

