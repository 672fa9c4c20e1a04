"""Certified Gaussian moments over polyhedra (verified_dgn.certified.integrals).

Reference: verified_dgn.gaussian_moments at dps = 70 (its claim: 10**-70 in the natural
scales), 40 digits beyond the certified balls' radii, so it cannot decide a containment.
"""

from __future__ import annotations

import pytest
from flint import arb
from test_certified_orthant import contains

import verified_dgn
from verified_dgn.certified import certified_digits, gaussian_mass, gaussian_moments

TRI = ([[1, 0], [0, 1], [-1, -1]], [1, 1, 1])
TET = ([[1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]], [1, 1, 1, 1])
CASES = [
    ([[1], [-1]], [1, 2], [0.5], [[2.0]]),                                 # S = 1 interval
    (*TRI, [0.2, 0.1], [[1, 0.3], [0.3, 2]]),                              # S = 2 triangle
    (*TRI, [20.0, 10.0], [[1, 0.3], [0.3, 2]]),                            # far tail, ~1e-83
    ([[1, 1], [-1, 2]], [0, 1], [0.3, -0.2], [[1, -0.4], [-0.4, 1.5]]),    # unbounded cone
    # S = 3 simplex (slow: the mpmath reference takes ~25 s)
    pytest.param(*TET, [0.2, 0.1, 0.0], [[1, 0.3, 0], [0.3, 2, 0.1], [0, 0.1, 1]],
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("C, d, m, K", CASES)
def test_moments_contain_reference(C, d, m, K):
    m0, m1, M2 = gaussian_moments(C, d, m, K, digits=30)
    r0, r1, r2 = verified_dgn.gaussian_moments(C, d, m, K, dps=70)
    S = len(m)
    assert contains(m0, r0)
    assert all(contains(m1[i], r1[i]) for i in range(S))
    assert all(contains(M2[i][j], r2[i, j]) for i in range(S) for j in range(S))
    assert certified_digits(m0) >= 30
    v = gaussian_mass(C, d, m, K, digits=30)
    assert contains(v, r0) and certified_digits(v) >= 30


def test_far_tail_mass_1e300():
    # the triangle ~37 standard deviations from the mean: mass ~1e-300, relative digits
    C, d = TRI
    v = gaussian_mass(C, d, [38.0, 0.0], [[1, 0], [0, 1]], digits=25)
    ref = verified_dgn.gaussian_moments(C, d, [38.0, 0.0], [[1, 0], [0, 1]], dps=65)[0]
    assert contains(v, ref)
    assert certified_digits(v) >= 25
    assert v < 1e-290


def test_widths_shrink():
    C, d, m, K = CASES[1]
    r = [gaussian_mass(C, d, m, K, digits=q).rad() for q in (10, 30, 60)]
    assert r[0] > r[1] > r[2]


def test_empty_polyhedron_is_zero():
    v = gaussian_mass([[1, 0], [-1, 0]], [0, -1], [0, 0], [[1, 0], [0, 1]])
    assert v == arb(0)


@pytest.mark.parametrize("args, match", [
    (([[1, 0, 0, 0]], [1], [0, 0, 0, 0], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
     "S <= 3"),
    (([[1, 0]], [1, 2], [0, 0], [[1, 0], [0, 1]]), "d must have shape"),
    (([[1, 0]], [1], [0, 0], [[1, 2], [2, 1]]), "cov"),
    (([[1, 0]], [float("inf")], [0, 0], [[1, 0], [0, 1]]), "NaN or infinite"),
])
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        gaussian_mass(*args)
