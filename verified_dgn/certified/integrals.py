"""Certified moments of order 0, 1, 2 of ``N(mean, cov)`` over a polyhedron ``C z <= d``.

The exact part is :mod:`verified_dgn.integrals`' (exact triangulation and Lemma 4 into a
signed sum ``1_P = sum_t c_t 1[O_t]`` of orthants with integer coefficients, anchored at the
half-space the mean violates most so that no term dwarfs the result). Each orthant
``{C_J z <= d_J}`` becomes ``y = C_J (z - mean) ~ N(0, K)``, ``y <= b`` with ``b = d_J -
C_J mean``, ``K = C_J cov C_J^T``, ``B = cov C_J^T K^-1`` and ``cov_c = cov - B C_J cov``,
all exact rationals (:class:`flint.fmpq`); only the orthant moments
(:mod:`verified_dgn.certified.orthant`) are balls. Then

    m0 = sum_t c_t P_t,  m1 = sum_t c_t (mean P_t + B_t m1y_t),
    M2 = sum_t c_t ((cov_c + mean mean^T) P_t + mean (B m1y)^T + (B m1y) mean^T + B M2y B^T).

The signed sum is evaluated in ball arithmetic, so its cancellation is accounted for
rigorously: the ball widens. The driver measures the bits lost (``log2(sum |c_t| P_t /
m0)``) and repeats the orthants at a target raised by that much until ``m0`` has the
relative accuracy asked for (and, for the moments, ``m1_i`` the accuracy relative to
``sqrt(m0 M2_ii)``, ``M2_ij`` relative to ``sqrt(M2_ii M2_jj)``: the scales of
:func:`verified_dgn.gaussian_moments`' claims).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from flint import arb, ctx, fmpq, fmpq_mat
from numpy.typing import ArrayLike

from ._arb import (
    DEFAULT_DIGITS,
    DEFAULT_MAX_PREC,
    GUARD_BITS,
    ball,
    check_digits,
    digits_to_bits,
    frac_to_fmpq,
    log2_abs,
    rel_bits,
)
from .orthant import KMAX, QMat, QVec, moments_ball, orthant_ball

__all__ = ["gaussian_mass", "gaussian_moments", "mass_ball", "moments_over_polyhedron"]

Terms = tuple[tuple[int, tuple[tuple[Fraction, ...], ...]], ...]


def signed_terms(C: Sequence[Sequence[Fraction]], d: Sequence[Fraction],
                 mean: Sequence[Fraction], cov: Sequence[Sequence[Fraction]]) -> Terms:
    """The anchored Lemma 4 expansion of ``{C z <= d}`` for ``N(mean, cov)`` (exact rows)."""
    from ..integrals import _anchored_terms

    S = len(mean)
    key = tuple(tuple(C[i]) + (d[i],) for i in range(len(d)))
    mf = np.empty(S, dtype=object)
    Kf = np.empty((S, S), dtype=object)
    for i in range(S):
        mf[i] = mean[i]
        for j in range(S):
            Kf[i, j] = cov[i][j]
    return _anchored_terms(key, S, mf, Kf)


class _Term:
    """One orthant term, exact: ``b``, ``K`` (and for moments ``B``, ``cov_c``)."""

    __slots__ = ("c", "b", "K", "B", "covc")

    def __init__(self, c: int, rows: tuple[tuple[Fraction, ...], ...], mean: list[fmpq],
                 cov: list[list[fmpq]], moments: bool) -> None:
        S = len(mean)
        self.c = c
        CJ = [[frac_to_fmpq(r[i]) for i in range(S)] for r in rows]
        k = len(rows)
        self.b: QVec = tuple(frac_to_fmpq(r[S]) - sum((CJ[a][i] * mean[i] for i in range(S)), fmpq(0))
                             for a, r in enumerate(rows))
        SC = [[sum((cov[i][p] * CJ[a][p] for p in range(S)), fmpq(0)) for a in range(k)]
              for i in range(S)]  # cov C_J^T, (S, k)
        self.K: QMat = tuple(tuple(sum((CJ[a][i] * SC[i][c2] for i in range(S)), fmpq(0))
                                   for c2 in range(k)) for a in range(k))
        self.B: list[list[fmpq]] = []
        self.covc: list[list[fmpq]] = []
        if moments and k:
            Ki = fmpq_mat(k, k, [x for row in self.K for x in row]).inv()
            self.B = [[sum((SC[i][c2] * Ki[c2, a] for c2 in range(k)), fmpq(0)) for a in range(k)]
                      for i in range(S)]
            self.covc = [[cov[i][j] - sum((self.B[i][a] * SC[j][a] for a in range(k)), fmpq(0))
                          for j in range(S)] for i in range(S)]


def _prepare(C: Sequence[Sequence[Fraction]], d: Sequence[Fraction], mean: Sequence[Fraction],
             cov: Sequence[Sequence[Fraction]], moments: bool) -> tuple[list[_Term], list[fmpq],
                                                                        list[list[fmpq]]]:
    terms = signed_terms(C, d, mean, cov)
    mq = [frac_to_fmpq(x) for x in mean]
    Kq = [[frac_to_fmpq(x) for x in row] for row in cov]
    return [_Term(c, rows, mq, Kq, moments) for c, rows in terms], mq, Kq


def _mass_pass(terms: list[_Term], bits: int, max_prec: int, abs_log2: int | None
               ) -> tuple[arb, arb]:
    """(m0, sum |c_t| P_t) with every orthant to ``bits`` relative bits or to the absolute
    radius ``2**abs_log2``."""
    vals = [(t.c, orthant_ball(t.b, t.K, bits, max_prec, abs_log2)) for t in terms]
    with ctx.workprec(min(max_prec, bits + 2 * GUARD_BITS)):
        m0 = sum((c * P for c, P in vals), arb(0))
        mag = sum((abs(c) * P.abs_upper() for c, P in vals), arb(0))
    return m0, mag


def _lost_bits(value: arb, magnitude: arb) -> float:
    """Bits the signed sum has cancelled (``inf`` when ``value`` contains 0)."""
    if value.contains(0):
        return math.inf
    return max(0.0, log2_abs(magnitude) - log2_abs(value.abs_lower()))


def _first_cap(bits: int, max_prec: int) -> int:
    """Precision cap of a first pass that has no absolute scale yet: a term that cannot
    reach its relative target below it is, in practice, negligible in the sum (its true
    value is far below its cancelling parts); the second pass decides with the sum's scale."""
    return min(max_prec, 3 * bits + 256)


def mass_ball(C: Sequence[Sequence[Fraction]], d: Sequence[Fraction], mean: Sequence[Fraction],
              cov: Sequence[Sequence[Fraction]], bits: int, max_prec: int,
              abs_log2: float | None = None) -> arb:
    """``int_P N(mean, cov)`` to ``bits`` relative bits, or to the absolute radius
    ``2**abs_log2`` when given and reached first (exact Fraction inputs); the best ball
    reached when ``max_prec`` does not allow it."""
    terms = _prepare(C, d, mean, cov, False)[0]
    if not terms:
        return arb(0)
    total = sum(abs(t.c) for t in terms)
    lt = math.log2(total) + 2
    extra = int(math.ceil(lt))
    best: arb | None = None
    cap = max_prec if abs_log2 is not None else _first_cap(bits + extra, max_prec)
    scale = abs_log2  # absolute radius the terms may stop at (None: relative only)
    while True:
        q = min(bits + extra, max_prec - GUARD_BITS)
        term_abs = None if scale is None else int(math.floor(scale - lt))
        m0, mag = _mass_pass(terms, q, cap, term_abs)
        if best is None or best.rad() > m0.rad():
            best = m0
        done_abs = abs_log2 is not None and log2_abs(m0.rad()) <= abs_log2
        if rel_bits(m0) >= bits or done_abs or q >= max_prec - GUARD_BITS:
            return best
        got = rel_bits(m0)
        deficit = bits - got + 8 if math.isfinite(got) else 32
        if scale is None and not m0.contains(0):
            # the sum's own scale: no term needs more than its share of the radius
            scale = log2_abs(m0.abs_lower()) - bits - 1
            cap = max_prec
        elif scale is not None:
            scale -= deficit
        else:
            cap = min(max_prec, cap * 2)
        lost = _lost_bits(m0, mag)
        new = int(math.ceil(lost)) + 8 if math.isfinite(lost) else 2 * (extra + 16)
        extra = max(extra + 16, new)


def _moments_pass(terms: list[_Term], mean: list[fmpq], cov: list[list[fmpq]], bits: int,
                  max_prec: int, abs_log2: int | None
                  ) -> tuple[arb, list[arb], list[list[arb]], arb, list[arb], list[list[arb]]]:
    S = len(mean)
    with ctx.workprec(min(max_prec, bits + 2 * GUARD_BITS)):
        mu = [ball(x) for x in mean]
        m0 = arb(0)
        m1 = [arb(0)] * S
        M2 = [[arb(0)] * S for _ in range(S)]
        A0 = arb(0)
        sig = [arb(0)] * S  # sum |c| (|mu_i| + sqrt(M2y-scale)) sqrt(P): magnitudes of z_i
        A2 = [[arb(0)] * S for _ in range(S)]
        for t in terms:
            k = len(t.b)
            if k == 0:
                P = arb(1)
                t1 = list(mu)
                t2 = [[ball(cov[i][j]) + mu[i] * mu[j] for j in range(S)] for i in range(S)]
            else:
                P, m1y, M2y = moments_ball(t.b, t.K, bits, max_prec, abs_log2)
                B = [[ball(x) for x in row] for row in t.B]
                Bm = [sum((B[i][a] * m1y[a] for a in range(k)), arb(0)) for i in range(S)]
                t1 = [mu[i] * P + Bm[i] for i in range(S)]
                BM = [[sum((B[i][a] * M2y[a][c] for a in range(k)), arb(0)) for c in range(k)]
                      for i in range(S)]
                t2 = [[(ball(t.covc[i][j]) + mu[i] * mu[j]) * P
                       + sum((BM[i][c] * B[j][c] for c in range(k)), arb(0))
                       + mu[i] * Bm[j] + Bm[i] * mu[j] for j in range(S)] for i in range(S)]
            m0 += t.c * P
            A0 += abs(t.c) * P
            for i in range(S):
                m1[i] += t.c * t1[i]
                for j in range(S):
                    M2[i][j] += t.c * t2[i][j]
            # magnitudes: |t1_i| <= sqrt(P t2_ii) (Cauchy-Schwarz), |t2_ij| <= sqrt(t2_ii t2_jj)
            for i in range(S):
                sig[i] += abs(t.c) * (P * t2[i][i].abs_upper()).sqrt()
                for j in range(S):
                    A2[i][j] += abs(t.c) * (t2[i][i].abs_upper() * t2[j][j].abs_upper()).sqrt()
        for i in range(S):
            for j in range(i):
                M2[i][j] = M2[j][i]
    return m0, m1, M2, A0, sig, A2


def _moment_accuracy(m0: arb, m1: list[arb], M2: list[list[arb]]) -> float:
    """Certified bits of the triple in the claim scales (min over the entries)."""
    S = len(m1)
    if m0.contains(0) or any(M2[i][i].contains(0) for i in range(S)):
        return -math.inf
    acc = rel_bits(m0)
    for i in range(S):
        s1 = log2_abs((m0 * M2[i][i]).abs_lower().sqrt())
        acc = min(acc, s1 - log2_abs(m1[i].rad()) if not m1[i].rad().is_zero() else math.inf)
        for j in range(S):
            s2 = log2_abs((M2[i][i] * M2[j][j]).abs_lower().sqrt())
            r = M2[i][j].rad()
            acc = min(acc, s2 - log2_abs(r) if not r.is_zero() else math.inf)
    return acc


def moments_over_polyhedron(C: Sequence[Sequence[Fraction]], d: Sequence[Fraction],
                            mean: Sequence[Fraction], cov: Sequence[Sequence[Fraction]], bits: int,
                            max_prec: int, abs_log2: float | None = None
                            ) -> tuple[arb, list[arb], list[list[arb]]]:
    """(m0, m1, M2) to ``bits`` in the claim scales (module docstring), exact inputs;
    ``abs_log2``: the orthants may stop at that absolute radius (the caller's scale)."""
    terms, mq, Kq = _prepare(C, d, mean, cov, True)
    S = len(mean)
    if not terms:
        return arb(0), [arb(0)] * S, [[arb(0)] * S for _ in range(S)]
    total = sum(abs(t.c) for t in terms)
    lt = math.log2(total) + 4
    extra = int(math.ceil(lt))
    best: tuple[arb, list[arb], list[list[arb]]] | None = None
    best_acc = -math.inf
    cap = max_prec if abs_log2 is not None else _first_cap(bits + extra, max_prec)
    scale = abs_log2
    while True:
        q = min(bits + extra, max_prec - 2 * GUARD_BITS)
        term_abs = None if scale is None else int(math.floor(scale - lt))
        m0, m1, M2, A0, _, _ = _moments_pass(terms, mq, Kq, q, cap, term_abs)
        acc = _moment_accuracy(m0, m1, M2)
        if best is None or acc > best_acc:
            best, best_acc = (m0, m1, M2), acc
        if acc >= bits or q >= max_prec - 2 * GUARD_BITS:
            return best
        deficit = bits - acc + 8 if math.isfinite(acc) else 2 * (extra + 16)
        if scale is None and not m0.contains(0):
            scale = log2_abs(m0.abs_lower()) - bits - 1
            cap = max_prec
        elif scale is not None:
            scale -= deficit
        else:
            cap = min(max_prec, cap * 2)
        extra = max(extra + 16, extra + int(math.ceil(deficit)))


# --------------------------------------------------------------------------- public functions
def _inputs(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike
            ) -> tuple[list[list[Fraction]], list[Fraction], list[Fraction], list[list[Fraction]]]:
    from ..integral_inputs import _check_inputs

    Cf, df, mf, Kf, _ = _check_inputs(C, d, mean, cov, 30)
    if Cf.shape[1] > KMAX:
        raise ValueError(f"the certified integrals handle S <= {KMAX}, got S = {Cf.shape[1]}")
    return ([list(r) for r in Cf], list(df), list(mf), [list(r) for r in Kf])


def gaussian_mass(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike, *,
                  digits: int = DEFAULT_DIGITS, max_prec: int = DEFAULT_MAX_PREC) -> arb:
    """Certified ``int_P N(z; mean, cov) dz`` over ``P = {z : C z <= d}``, ``S <= 3``.

    Parameters
    ----------
    C : array_like, shape (m, S)
    d : array_like, shape (m,)
        The polyhedron (ints, floats taken exactly, Fractions); unbounded, empty or with
        lines allowed, as :func:`verified_dgn.gaussian_moments`.
    mean : array_like, shape (S,)
    cov : array_like, shape (S, S)
        The Gaussian (the shared covariance rule; exact).
    digits : int, default 30
        Relative decimal digits asked for.
    max_prec : int, default 8192
        Ceiling of the working precision in bits.

    Returns
    -------
    flint.arb
        A ball containing the mass (exactly 0 for a null set).

    Raises
    ------
    TypeError, ValueError
        As :func:`verified_dgn.gaussian_moments`; ``S > 3``; bad ``digits`` / ``max_prec``.
    """
    digits, max_prec = check_digits(digits, max_prec)
    Cl, dl, ml, Kl = _inputs(C, d, mean, cov)
    return mass_ball(Cl, dl, ml, Kl, digits_to_bits(digits) + 4, max_prec)


def gaussian_moments(C: ArrayLike, d: ArrayLike, mean: ArrayLike, cov: ArrayLike, *,
                     digits: int = DEFAULT_DIGITS, max_prec: int = DEFAULT_MAX_PREC
                     ) -> tuple[arb, list[arb], list[list[arb]]]:
    """Certified ``(m0, m1, M2) = int_P (1, z, z z^T) N(z; mean, cov) dz``, ``S <= 3``.

    Same inputs as :func:`gaussian_mass`. ``digits`` is reached in the scales of
    :func:`verified_dgn.gaussian_moments`' claim: ``m0`` relative, ``m1[i]`` relative to
    ``sqrt(m0 M2[i][i])``, ``M2[i][j]`` relative to ``sqrt(M2[i][i] M2[j][j])``.

    Returns
    -------
    m0 : flint.arb
    m1 : list of flint.arb, length S
    M2 : list of list of flint.arb, shape (S, S)
    """
    digits, max_prec = check_digits(digits, max_prec)
    Cl, dl, ml, Kl = _inputs(C, d, mean, cov)
    return moments_over_polyhedron(Cl, dl, ml, Kl, digits_to_bits(digits) + 4, max_prec)

