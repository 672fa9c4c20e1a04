"""Certified orthant probabilities and moments (verified_dgn.certified.orthant).

Every enclosure must contain an independent high-precision value: verified_dgn's mpmath
orthant functions at dps = digits + 40 (their own claim is 10**-dps relative, so the
reference's error is 40 digits below the ball's radius and cannot decide a containment).
"""

from __future__ import annotations

import mpmath
import pytest
from flint import arb, ctx

import verified_dgn
from verified_dgn.certified import (
    certified_decimal,
    certified_digits,
    orthant_moments,
    orthant_probability,
)

REF_EXTRA = 40


def contains(ball: arb, ref: mpmath.mpf) -> bool:
    """Whether ``ball`` contains the mpf ``ref`` (converted exactly: mantissa and exponent)."""
    sign, man, exp, _ = ref._mpf_ if ref != 0 else (0, 0, 0, 0)
    with ctx.workprec(max(64, int(man).bit_length() + 8)):
        v = arb(-int(man) if sign else int(man)) * arb(2) ** int(exp)
    return bool(ball.contains(v))


CASES = [
    ([0.3], [[1.0]]),
    ([-40.0], [[2.0]]),                                           # ~1e-176
    ([0.5, -0.2], [[1, 0.4], [0.4, 2]]),
    ([0.5, -0.2], [[1, -0.7], [-0.7, 2]]),                      # negative correlation
    ([-20.0, -25.0], [[1, 0.5], [0.5, 1]]),                     # ~1e-155
    ([0.1, 0.2, -0.3], [[1, .3, .2], [.3, 1, .4], [.2, .4, 1]]),
    ([0.1, 0.2, -0.3], [[1, -.3, .2], [-.3, 1, -.4], [.2, -.4, 1]]),
    ([-10.0, -12.0, -9.0], [[1, .3, .2], [.3, 1, .4], [.2, .4, 1]]),
]


@pytest.mark.parametrize("b, K", CASES)
def test_orthant_probability_contains_reference(b, K):
    digits = 30
    v = orthant_probability(b, K, digits=digits)
    ref = verified_dgn.orthant_probability(b, K, dps=digits + REF_EXTRA)
    assert contains(v, ref)
    assert certified_digits(v) >= digits


@pytest.mark.parametrize("b, K", [([-37.0, -36.0], [[1, 0.2], [0.2, 1]]), ([-26.0], [[1]])])
def test_far_tail_relative(b, K):
    # P ~ 1e-300 (k = 2) and 1e-150: relative digits, not absolute
    v = orthant_probability(b, K, digits=25)
    ref = verified_dgn.orthant_probability(b, K, dps=65)
    assert contains(v, ref)
    assert certified_digits(v) >= 25
    assert v < 1e-140


def test_widths_shrink_with_digits():
    b, K = [0.1, 0.2, -0.3], [[1, -.3, .2], [-.3, 1, -.4], [.2, -.4, 1]]
    widths = [orthant_probability(b, K, digits=d).rad() for d in (10, 30, 60)]
    assert widths[0] > widths[1] > widths[2]
    assert certified_digits(orthant_probability(b, K, digits=60)) >= 60


def test_infinite_bounds():
    inf = float("inf")
    v = orthant_probability([0.5, inf], [[1, 0.3], [0.3, 1]], digits=20)
    with mpmath.workdps(60):
        assert contains(v, mpmath.ncdf(mpmath.mpf(0.5)))
    assert orthant_probability([-inf, 0.0], [[1, 0.3], [0.3, 1]]) == 0


@pytest.mark.parametrize("b, K", [CASES[2], CASES[3], CASES[5], ([-3.0], [[2.0]])])
def test_moments_contain_reference(b, K):
    P, m1, M2 = orthant_moments(b, K, digits=30)
    rP, r1, r2 = verified_dgn.orthant_moments(b, K, dps=70)
    k = len(b)
    assert contains(P, rP)
    assert all(contains(m1[i], r1[i]) for i in range(k))
    assert all(contains(M2[i][j], r2[i, j]) for i in range(k) for j in range(k))
    assert all(certified_digits(m1[i]) >= 25 for i in range(k))


def test_certified_decimal_is_a_bound():
    v = orthant_probability([0.3], [[1.0]], digits=30)
    s, n = certified_decimal(v)
    assert n >= 30
    with mpmath.workdps(80):
        ref = mpmath.ncdf(mpmath.mpf(0.3))
        assert abs(mpmath.mpf(s) - ref) <= mpmath.mpf(10) ** (-n) * abs(mpmath.mpf(s))
    # arithmetic on balls rounds at flint's global precision (53 bits unless raised)
    with ctx.workprec(200):
        w = arb(-2) * v
    s_abs, n_abs = certified_decimal(w, absolute=True)
    assert n_abs >= 30 and s_abs.startswith("-")


@pytest.mark.parametrize("kwargs, match", [
    (dict(b=[0.1, 0.2, 0.3, 0.4], cov=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
     "dimension up to 3"),
    (dict(b=[0.1, 0.2], cov=[[1, 2], [2, 1]]), "cov"),
    (dict(b=[0.1], cov=[[1, 0], [0, 1]]), "shape"),
    (dict(b=[float("nan")], cov=[[1]]), "NaN"),
    (dict(b=[0.1], cov=[[1]], digits=0), "digits"),
    (dict(b=[0.1], cov=[[1]], digits=100, max_prec=100), "max_prec"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        orthant_probability(**kwargs)


def test_bad_type():
    with pytest.raises(TypeError):
        orthant_probability(["a"], [[1]])
    with pytest.raises(TypeError):
        certified_decimal(0.5)  # type: ignore[arg-type]
