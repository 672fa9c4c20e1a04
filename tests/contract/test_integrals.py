"""Gaussian integrals written once and run against both backends, against closed forms.

References are evaluated in mpmath at 40 digits from formulas that share nothing with either
backend's algorithms:

- Sheppard: Phi_2(0, 0; rho) = 1/4 + asin(rho) / (2 pi);
- Phi_3(0; R) = 1/8 + (asin r12 + asin r13 + asin r23) / (4 pi);
- a half-space {c.z <= d} under N(mu, Sigma): with s = sqrt(c^T Sigma c) and
  t = (d - c.mu) / s, the mass is Phi(t), the first moment mu Phi(t) - Sigma c phi(t) / s,
  and the second moment Phi(t) (Sigma + mu mu^T) - (Sigma c mu^T + mu c^T Sigma) phi(t) / s
  - Sigma c c^T Sigma t phi(t) / s^2.

Hypothesis draws correlations across (-1, 1), covariances with condition numbers up to
~1e4, and thresholds into the tails (t down to -30, P ~ 1e-198).
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# derandomize: CI must be reproducible; the examples are a fixed sweep chosen by hypothesis
# (run with --hypothesis-seed=random locally to explore further)
_SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mp(x) -> mpmath.mpf:
    return mpmath.mpf(float(x))


@_SETTINGS
@given(rho=st.floats(-0.995, 0.995))
def test_bivariate_orthant_at_the_origin_is_sheppards_formula(backend, rho):
    cov = [[1.0, rho], [rho, 1.0]]
    with mpmath.workdps(40):
        ref = mpmath.mpf(1) / 4 + mpmath.asin(_mp(rho)) / (2 * mpmath.pi)
    backend.assert_close(backend.module.orthant_probability([0.0, 0.0], cov, **backend.options),
                         ref, what="Phi_2(0, 0; rho)")


@_SETTINGS
@given(a=st.floats(-0.45, 0.45), b=st.floats(-0.45, 0.45), c=st.floats(-0.45, 0.45))
def test_trivariate_orthant_at_the_origin_has_its_closed_form(backend, a, b, c):
    # off-diagonal entries in (-0.45, 0.45): the matrix is diagonally dominant, hence PD
    R = [[1.0, a, b], [a, 1.0, c], [b, c, 1.0]]
    with mpmath.workdps(40):
        ref = mpmath.mpf(1) / 8 + (mpmath.asin(_mp(a)) + mpmath.asin(_mp(b))
                                   + mpmath.asin(_mp(c))) / (4 * mpmath.pi)
    backend.assert_close(backend.module.orthant_probability([0.0, 0.0, 0.0], R,
                                                            **backend.options),
                         ref, what="Phi_3(0; R)")


def _random_gaussian(S: int, seed: int, log_cond: float):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(S, S)))
    ev = np.exp(np.linspace(0.0, log_cond, S)) * np.exp(rng.uniform(-2, 2))
    cov = (Q * ev) @ Q.T
    cov = 0.5 * (cov + cov.T)
    mu = rng.normal(scale=2.0, size=S)
    c = rng.normal(size=S)
    return mu, cov, c


def _half_space_reference(mu, cov, c, d):
    with mpmath.workdps(40):
        M = mpmath.matrix(cov.tolist())
        m = mpmath.matrix(mu.tolist())
        cc = mpmath.matrix(c.tolist())
        Sc = M * cc
        s = mpmath.sqrt((cc.T * Sc)[0])
        t = (_mp(d) - (cc.T * m)[0]) / s
        Phi, phi = mpmath.ncdf(t), mpmath.npdf(t)
        m0 = Phi
        m1 = m * Phi - Sc * (phi / s)
        M2 = (M + m * m.T) * Phi - (Sc * m.T + m * Sc.T) * (phi / s) - Sc * Sc.T * (t * phi / s**2)
        S = len(mu)
        return (m0, np.array([m1[i] for i in range(S)], dtype=object),
                np.array([[M2[i, j] for j in range(S)] for i in range(S)], dtype=object), t)


@_SETTINGS
@given(S=st.integers(1, 3), seed=st.integers(0, 2**20), log_cond=st.floats(0.0, 9.0),
       t=st.floats(-30.0, 6.0))
def test_half_space_mass_and_moments_match_the_closed_form(backend, S, seed, log_cond, t):
    mu, cov, c = _random_gaussian(S, seed, log_cond)
    # place the boundary t standard deviations from the mean (into the far lower tail)
    d = float(c @ mu + t * np.sqrt(c @ cov @ c))
    m0_ref, m1_ref, M2_ref, t_ref = _half_space_reference(mu, cov, c, d)
    C, dd = c[None, :], np.array([d])
    logm = backend.module.log_gaussian_mass(C, dd, mu, cov, **backend.options)
    with mpmath.workdps(40):
        log_ref = mpmath.log(m0_ref)
    # log m0: relative accuracy of m0 (atol on the log), plus the rounding of the inputs,
    # which moves log m0 by ~eps t^2 in float64 (d, mu, cov are rounded to float64 here too,
    # but the reference is computed from the same rounded values, so only the backend's own
    # rounding counts)
    backend.assert_close(logm, log_ref, atol=backend.rtol * (1 + float(t_ref) ** 2),
                         rtol=0.0, what="log m0")
    if float(t_ref) < -20 and not backend.exact:
        # the fast moments are stated to absolute 1e-10 relative to the mass only where the
        # mass is above ~1e-88 (README); far tails are checked through log m0 above
        return
    m0, m1, M2 = backend.module.gaussian_moments(C, dd, mu, cov, **backend.options)
    # moments are judged against their natural scale m0 * r and m0 * r^2 with
    # r = 1 + max |mu_i| + max sigma_i, so entries that cancel to ~0 are not judged against
    # themselves; 10x the backend's rtol: the moments are formed from m0 by a few products
    r = 1.0 + float(np.max(np.abs(mu))) + float(np.max(np.sqrt(np.diag(cov))))
    tol = 10 * backend.rtol
    backend.assert_close(m0, m0_ref, what="m0")
    backend.assert_close(m1, m1_ref, atol=float(tol * m0_ref * r), rtol=tol, what="m1")
    backend.assert_close(M2, M2_ref, atol=float(tol * m0_ref * r * r), rtol=tol, what="M2")


# Found by the randomised sweep above: correlations of ~1e-13 to 1e-10 next to others cost
# the fast trivariate kernel up to 1e-8 relative until its Plackett integral near the end
# of a short domain was taken in log(r - r_a) (fastpath._tvn_end). The two recorded cases
# and a seeded sweep of such matrices (worst measured 8.4e-14 relative on 300 cases); the
# reference is Sheppard's closed form for zero bounds in mpmath at 40 digits.
_SMALL_CORRELATION_CASES = [
    (-0.011367544482787095, -2.947642045662266e-13, -1.0081837178842982e-197),
    (-0.1308271233913169, 0.0, -9.61352157257897e-11),
]


def _small_correlation_sweep(n: int, seed: int) -> list[tuple[float, float, float]]:
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(n):
        vals = [rng.uniform(-0.9, 0.9),
                rng.choice([-1, 1]) * 10 ** rng.uniform(-14, -9) * rng.integers(0, 2),
                rng.choice([-1, 1]) * 10 ** rng.uniform(-200, -9)]
        rng.shuffle(vals)
        cases.append((float(vals[0]), float(vals[1]), float(vals[2])))
    return cases


@pytest.mark.parametrize("a, b, c", _SMALL_CORRELATION_CASES + _small_correlation_sweep(40, 7))
def test_fast_trivariate_orthant_with_tiny_correlations(a, b, c):
    import fastpath

    R = [[1.0, a, b], [a, 1.0, c], [b, c, 1.0]]
    with mpmath.workdps(40):
        ref = mpmath.mpf(1) / 8 + (mpmath.asin(_mp(a)) + mpmath.asin(_mp(b))
                                   + mpmath.asin(_mp(c))) / (4 * mpmath.pi)
    got = float(fastpath.orthant_probability([0.0, 0.0, 0.0], R))
    assert abs(got - float(ref)) <= 1e-12 * float(ref), (got, float(ref))
