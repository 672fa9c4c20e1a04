"""fastpath.integrals' values against independent references (test_integrals_fast_refs.py):
S = 1 closed forms, S = 2 quadrature, the term-by-term loop of the cone sum and its Tallis
terms, closed forms of sets with lines and of boxes, additivity, affine invariance and Monte
Carlo (loose). Tolerances are stated at each comparison.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from integrals_fast_refs import (
    _mp_interval,
    _mp_polygon,
    _mp_quad2,
    _naive_lawrence,
    _orthant_available,
    _quad2,
    assert_moments_close,
    cov_scale,
    random_cov,
    random_polytope,
)

from fastpath._cones import _condition_on, _orthant_terms
from fastpath._polyhedron import polyhedron_geometry
from fastpath.integrals import (
    PolyhedronCones,
    gaussian_moments,
    log_gaussian_mass,
    truncated_normal_moments,
)


# --------------------------------------------------------------------------- S = 1
@pytest.mark.parametrize("lo,hi", [(-1.0, 2.0), (-np.inf, 0.5), (0.3, np.inf), (2.0, 2.5)])
@pytest.mark.parametrize("mu,var", [(0.0, 1.0), (0.7, 0.3), (30.0, 0.5), (-80.0, 2.0),
                                    (200.0, 1.0)])
def test_interval_closed_form(lo, hi, mu, var):
    """S = 1 against the mpmath truncated normal, including log m0 down to about -2e4."""
    rows, rhs = [], []
    if np.isfinite(hi):
        rows.append([2.0]), rhs.append(2.0 * hi)     # scaled rows: the scale must not matter
    if np.isfinite(lo):
        rows.append([-0.5]), rhs.append(-0.5 * lo)
    C, d = np.array(rows), np.array(rhs)
    got = truncated_normal_moments(C, d, [mu], [[var]])
    lr, mr, sr = _mp_interval(lo, hi, mu, var)
    # log m0: 1e-13 absolute plus the rounding of log m0 itself (4 eps |log m0|). Moments in a
    # far tail (|h| up to 200): every term is a float exp(log term - log m0) with log terms of
    # size h^2/2, so ratios carry a relative error ~eps h^2; E[z|P] - mu ~ |h| sd and
    # E[(z - mu)^2|P] ~ h^2 var, hence the tolerances below (1e-15 ~ 10 eps).
    h2 = max(1.0, (mu - (lo if mu < lo else hi if mu > hi else mu)) ** 2 / var)
    assert abs(got[0] - lr) <= 1e-13 + 4e-16 * abs(lr)
    assert abs(got[1][0] - mr) <= 1e-15 * (1 + h2) * math.sqrt(var * (1 + h2)) + 1e-15 * abs(mr)
    assert abs(got[2][0, 0] - sr) <= 1e-15 * (1 + h2) * var * (1 + h2) + 1e-15 * abs(sr)


def _interval_cones(lo: float, hi: float) -> PolyhedronCones:
    """[lo, hi] (either end may be infinite) as {z : C z <= d}."""
    rows = [([1.0], hi)] if np.isfinite(hi) else []
    rows += [([-1.0], -lo)] if np.isfinite(lo) else []
    return PolyhedronCones.from_halfspaces(np.array([r for r, _ in rows]),
                                           np.array([v for _, v in rows]))


def _mp_interval_var(lo: float, hi: float, mu: float, var: float, dps: int = 60):
    """(E[z|P], Var[z|P]) of N(mu, var) on [lo, hi] by mpmath quadrature about the mode end
    (independent of the closed forms; dps high enough for the 1/h^2 cancellation)."""
    with mpmath.workdps(dps):
        s = mpmath.sqrt(mpmath.mpf(var))
        a = (mpmath.mpf(lo) - mu) / s if np.isfinite(lo) else -mpmath.inf
        b = (mpmath.mpf(hi) - mu) / s if np.isfinite(hi) else mpmath.inf
        peak = a if a > 0 else (b if b < 0 else mpmath.mpf(0))
        f = lambda t, k: (t - peak) ** k * mpmath.exp(-(t * t - peak * peak) / 2)
        pts = [a, b]
        scale = 1 / max(abs(peak), 1)
        inner = [peak + sgn * scale * 2 ** j for j in range(-4, 8) for sgn in (-1, 1)]
        pts = sorted(set([p for p in inner if a < p < b] + pts))
        m = [mpmath.quad(lambda t, k=k: f(t, k), pts) for k in range(3)]
        e = m[1] / m[0]
        v = m[2] / m[0] - e * e      # at dps 60 this difference keeps > 35 digits
        return float(mu + s * (peak + e)), float(v * s * s)


@pytest.mark.parametrize("lo,hi,mu,var", [
    (0.2, 0.21, 1e3, 0.05),          # far above a short interval: Var ~ 1/h^2 sd^2
    (-0.0077, 0.209, 250.0, 0.01),   # the posterior far from the data (test_distributions)
    (0.3, np.inf, -60.0, 1.0),       # lower tail, one-sided
    (-np.inf, -1.0, 40.0, 2.0),      # upper tail, one-sided
    (1.0, 1.0 + 1e-4, 0.5, 1.0),     # a short interval near the mean
    (-1e-3, 1e-3, 0.0, 1.0),         # a short interval around the mean
    (2.0, 5.0, -2.0, 1.0),           # at the switch to quadrature (h = 4)
    (2.0, 5.0, -1.99, 1.0),          # just before it (closed form)
    (2.0, 2.0 + 0.04, 0.5, 1.0),     # short, just past the switch (0.04^2 < 2.6e-3 (1 + 1.5^2))
    (2.0, 2.0 + 0.1, 0.5, 1.0),      # short, closed form
    (30.0, 30.1, 0.0, 1.0),          # far and short (alpha L = 3 < 50): quadrature, not series
    (16.5, np.inf, 0.0, 1.0),        # series just past its switch
])
def test_interval_truncated_variance(lo, hi, mu, var):
    """Cov[z | P] (truncated_mean_cov) keeps its relative accuracy where the truncated
    variance is many orders below the second moment about the Gaussian's mean (the closed
    form E[(z - mu)^2|P] - (E[z|P] - mu)^2 returned negative variances there)."""
    pc = _interval_cones(lo, hi)
    _, dm, tcov = pc.truncated_mean_cov([mu], [[var]])
    mref, vref = _mp_interval_var(lo, hi, mu, var)
    # mean: E[z|P] = mu + dm carries ~eps (|mu| + |dm|) from that sum, and the closed form
    # (|h| < 4, h the standardised distance to the nearer end) ~eps h^2 relative on dm ~ h sd.
    # Variance: 1e-11 relative, the closed form's budget (it is used where its error
    # estimate is below ~1e-11: measured <= 7e-12, test below); quadrature and series are
    # at ~1e-16 plus the rounding of h = (end - mu)/sd (measured <= 2e-14 on these cases)
    sd = math.sqrt(var)
    end = lo if mu < lo else min(mu, hi)
    h = min(abs(end - mu) / sd, 4.0)
    assert abs(mu + dm[0] - mref) <= 1e-15 * (abs(mu) + abs(dm[0])) + 2.2e-16 * (1 + h) ** 3 * sd
    assert tcov[0, 0] > 0
    assert abs(tcov[0, 0] - vref) <= 1e-11 * vref
    # the central form is the same quantity shifted: C2 = Cov + dm dm^T
    _, dm2, C2 = pc.truncated_central_moments([mu], [[var]])
    assert dm2[0] == dm[0] and C2[0, 0] == tcov[0, 0] + dm[0] * dm[0]


def test_interval_truncated_variance_random():
    """Random intervals of every kind (short, long, near and far, one- and two-sided) on
    both sides of every switch (closed form / quadrature / series): Var[z|P] within 1e-11
    relative of mpmath."""
    rng = np.random.default_rng(2026)
    for _ in range(60):
        lo = rng.uniform(-6, 6) * (10.0 if rng.random() < 0.2 else 1.0)
        width = math.exp(rng.uniform(math.log(1e-3), math.log(20.0)))
        hi = lo + width if rng.random() < 0.85 else np.inf
        _, dm, tcov = _interval_cones(lo, hi).truncated_mean_cov([0.0], [[1.0]])
        mref, vref = _mp_interval_var(lo, hi, 0.0, 1.0)
        # mean: 1e-14 of max(sd, |mean|) (the closed form's pa - pb cancels ~1/width-sized
        # terms on short intervals: measured <= 2e-15)
        assert abs(dm[0] - mref) <= 1e-14 * (1 + abs(dm[0])), (lo, hi)
        assert abs(tcov[0, 0] - vref) <= 1e-11 * vref, (lo, hi, tcov[0, 0], vref)


@pytest.mark.parametrize("S", [2, 3])
def test_truncated_mean_cov_is_the_central_form_recentred(S):
    rng = np.random.default_rng(40 + S)
    C, d = random_polytope(rng, S, bounded=S == 2)
    pc = PolyhedronCones.from_halfspaces(C, d)
    mu = rng.normal(size=(5, S)) * 1.5
    cov = random_cov(rng, S)
    lm, dm, tcov = pc.truncated_mean_cov(mu, cov)
    lm2, dm2, C2 = pc.truncated_central_moments(mu, cov)
    _, mP, M2P = pc.truncated_moments(mu, cov)
    np.testing.assert_array_equal(lm, lm2)
    np.testing.assert_array_equal(dm, dm2)
    np.testing.assert_allclose(C2, tcov + dm[..., :, None] * dm[..., None, :], rtol=0, atol=1e-15)
    np.testing.assert_allclose(M2P - mP[..., :, None] * mP[..., None, :], tcov,
                               rtol=0, atol=1e-12 * (1 + np.max(np.abs(M2P))))
    assert np.all(np.linalg.eigvalsh(tcov) > 0)


def test_interval_batched_and_log_mass():
    rng = np.random.default_rng(5)
    mu = rng.normal(size=(7, 1)) * 10
    var = rng.uniform(0.1, 3, size=(7, 1, 1))
    C, d = np.array([[1.0], [-1.0]]), np.array([1.0, 0.5])
    lm = log_gaussian_mass(C, d, mu, var)
    assert lm.shape == (7,)
    for i in range(7):
        lr, _, _ = _mp_interval(-0.5, 1.0, mu[i, 0], var[i, 0, 0])
        assert abs(lm[i] - lr) <= 1e-13 + 4e-16 * abs(lr)
    m0, m1, M2 = gaussian_moments(C, d, mu, var)
    assert m0.shape == (7,) and m1.shape == (7, 1) and M2.shape == (7, 1, 1)
    np.testing.assert_allclose(m0, np.exp(lm), rtol=1e-14, atol=0)


# --------------------------------------------------------------------------- S = 2 quadrature
@pytest.mark.parametrize("seed", range(4))
def test_polygon_against_quadrature(seed):
    """S = 2, bounded and unbounded, means near P: scipy quadrature (float, ~1e-13)."""
    rng = np.random.default_rng(100 + seed)
    C, d = random_polytope(rng, 2, bounded=seed % 2 == 0)
    cov = random_cov(rng, 2)
    pc = PolyhedronCones.from_halfspaces(C, d)
    for scale in (0.0, 2.0):
        mu = rng.normal(size=2) * scale
        got = pc.truncated_moments(mu, cov)
        ref = _quad2(C, d, mu, cov)
        # the float quadrature itself is good to ~1e-13 relative here
        assert_moments_close(got, ref, cov, 5e-12, 5e-12, 5e-12, f"seed {seed}, scale {scale}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_polygon_tails_against_mp_quadrature(seed):
    """S = 2 far from P (m0 down to ~1e-400) against the mpmath quadrature."""
    rng = np.random.default_rng(200 + seed)
    C, d = random_polytope(rng, 2, bounded=seed % 2 == 0)
    cov = random_cov(rng, 2)
    pc = PolyhedronCones.from_halfspaces(C, d)
    for scale in (6.0, 15.0):
        mu = rng.normal(size=2) * scale
        got = pc.truncated_moments(mu, cov)
        ref = _mp_quad2(C, d, mu, cov)
        if ref[0] < math.log(1e-20):
            # tails: log m0 within 1e-8 (the target); the moments are ratios of terms
            # of size e^{-h^2/2} computed in log space: ~eps h^2 relative to the cov scale.
            # The reference there is _mp_polygon (50 digits, its z1 rule split about the
            # mode): _mp_quad2 is off by up to 1.3e-11 in these tails at 30 or 50 digits
            # (seeds 0 and 4), where the two methods of the fast path agree with
            # _mp_polygon to 5e-15
            lm, m, V = _mp_polygon(C, d, mu, cov)
            m = np.array(m, dtype=float)
            ref = (float(lm), m, np.array(V, dtype=float) + np.outer(m, m))
            h2 = 2 * abs(ref[0])
            assert_moments_close(got, ref, cov, 1e-8, 1e-15 * h2 * 10, 1e-15 * h2 * 10,
                                 f"seed {seed}, tail")
        else:
            assert_moments_close(got, ref, cov, 1e-12, 1e-10, 1e-10, f"seed {seed}")


# --------------------------------------------------------------------------- loop version
@pytest.mark.parametrize("S,seed,bounded", [
    (1, 0, True), (1, 1, False), (2, 2, True), (2, 3, False),
    # the mpmath Phi_3 of the oracle takes about a minute per polytope
    pytest.param(3, 4, True, marks=pytest.mark.slow),
    pytest.param(3, 5, False, marks=pytest.mark.slow)])
def test_vectorised_kernel_matches_naive_loop(S, seed, bounded):
    """The vectorised ConeTable against the term-by-term mpmath sum (_naive_lawrence)."""
    if S == 3 and not _orthant_available(3):
        pytest.skip("fastpath.orthant has no k = 3 kernel")
    rng = np.random.default_rng(300 + seed)
    C, d = random_polytope(rng, S, bounded)
    cov = random_cov(rng, S)
    mus = rng.normal(size=(2, S)) * 1.5
    got = PolyhedronCones.from_halfspaces(C, d).truncated_moments(mus, cov)
    for i in range(2):
        ref = _naive_lawrence(C, d, mus[i], cov, dps=25)
        assert_moments_close((got[0][i], got[1][i], got[2][i]), ref, cov,
                             1e-12, 1e-11, 1e-11, f"S={S} seed={seed} case {i}")


def test_condition_on_matches_schur_complement():
    """Geometric conditioning against the textbook Schur complement (loop)."""
    rng = np.random.default_rng(7)
    for k in (2, 3, 4):
        A = rng.normal(size=(5, k, k))
        A /= np.linalg.norm(A, axis=-1, keepdims=True)
        h = rng.normal(size=(5, k))
        for q in range(k):
            hn, An, sd = _condition_on(h, A, q)
            for n in range(5):
                R = A[n] @ A[n].T
                o = [j for j in range(k) if j != q]
                mean = R[o, q] * h[n, q]
                cov = R[np.ix_(o, o)] - np.outer(R[o, q], R[q, o])
                s = np.sqrt(np.diag(cov))
                np.testing.assert_allclose(sd[n], s, rtol=1e-12)
                np.testing.assert_allclose(hn[n], (h[n, o] - mean) / s, rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(An[n] @ An[n].T, cov / np.outer(s, s),
                                           rtol=1e-12, atol=1e-12)


def test_tallis_terms_match_mpmath_orthant_moments():
    """Standardised Tallis terms (P, f_q, f_qs) of single orthants against verified_dgn."""
    from verified_dgn.orthant import orthant_moments

    rng = np.random.default_rng(11)
    for k in (1, 2) + ((3,) if _orthant_available(3) else ()):
        A = rng.normal(size=(3, k, k))
        A /= np.linalg.norm(A, axis=-1, keepdims=True)
        h = rng.normal(size=(3, k))
        logP, logf, logf2 = _orthant_terms(h, A, True)
        for n in range(3):
            R = A[n] @ A[n].T
            P, m1, M2 = orthant_moments(h[n], R, dps=30)
            # Tallis: int y = -R f, int y y^T = P R + R M R with M from f, f2
            f = np.exp(logf[n])
            f2 = np.exp(logf2[n])
            M = f2.copy()
            M[np.diag_indices(k)] = -(h[n] * f + np.sum(R * f2, axis=1))
            np.testing.assert_allclose(np.exp(logP[n]), float(P), rtol=1e-13)
            np.testing.assert_allclose(-R @ f, np.array(m1, dtype=float), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(float(P) * R + R @ M @ R, np.array(M2, dtype=float),
                                       rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("S", [1, 2, 3, 4])
def test_whole_space(S):
    rng = np.random.default_rng(S)
    mu = rng.normal(size=S)
    cov = random_cov(rng, S)
    for C, d in [(np.zeros((0, S)), np.zeros(0)), (np.zeros((2, S)), np.array([0.0, 1.0]))]:
        lm, mP, M2P = truncated_normal_moments(C, d, mu, cov)
        assert lm == 0.0
        np.testing.assert_allclose(mP, mu, rtol=1e-15)
        np.testing.assert_allclose(M2P, cov + np.outer(mu, mu), rtol=1e-14)


@pytest.mark.parametrize("S", [2, 3, 4])
@pytest.mark.parametrize("kind", ["halfspace", "slab"])
def test_sets_with_lines_closed_form(S, kind):
    """Half-spaces and slabs (lineality S-1): the 1-D truncated normal of t = w.z."""
    rng = np.random.default_rng(S * 10 + len(kind))
    w = rng.normal(size=S)
    cov = random_cov(rng, S)
    for far in (0.0, 25.0):
        mu = rng.normal(size=S) + far * w / np.linalg.norm(w)
        if kind == "halfspace":
            C, d, lo, hi = w[None], np.array([0.3]), -np.inf, 0.3
        else:
            C, d, lo, hi = np.array([w, -2 * w]), np.array([0.3, 1.0]), -0.5, 0.3
        lm, mP, M2P = truncated_normal_moments(C, d, mu, cov)
        v = float(w @ cov @ w)
        lr, et, e2t = _mp_interval(lo, hi, float(w @ mu), v)
        # z | t is Gaussian: E[z|t] = mu + k (t - w.mu), Cov[z|t] = cov - k k^T v
        kv = cov @ w / v
        mean = mu + kv * (et - w @ mu)
        vt = e2t - et ** 2
        second = cov - np.outer(kv, kv) * v + np.outer(kv, kv) * vt + np.outer(mean, mean)
        s = cov_scale(cov)
        assert abs(lm - lr) <= 1e-12 + 4e-16 * abs(lr)
        assert np.max(np.abs(mP - mean)) <= 1e-11 * math.sqrt(s) * (1 + far)
        assert np.max(np.abs(M2P - second)) <= 1e-11 * max(s, np.abs(second).max()) * (1 + far)


@pytest.mark.parametrize("S", [2, 3])
def test_rotated_box_isotropic_product(S):
    """A rotated box under an isotropic Gaussian: a product of 1-D truncated normals."""
    if S == 3 and not _orthant_available(3):
        pytest.skip("fastpath.orthant has no k = 3 kernel")
    rng = np.random.default_rng(40 + S)
    Q, _ = np.linalg.qr(rng.normal(size=(S, S)))
    lo, hi = -rng.uniform(0.2, 1.5, S), rng.uniform(0.2, 1.5, S)
    C = np.vstack([Q.T, -Q.T])                  # box in coordinates u = Q^T z
    d = np.concatenate([hi, -lo])
    var = 0.7
    for far in (0.0, 3.0, 12.0):
        mu = Q @ (rng.normal(size=S) * far)
        lm, mP, M2P = truncated_normal_moments(C, d, mu, var * np.eye(S))
        u = Q.T @ mu
        parts = [_mp_interval(lo[i], hi[i], u[i], var) for i in range(S)]
        lr = sum(p[0] for p in parts)
        eu = np.array([p[1] for p in parts])
        Eu2 = np.outer(eu, eu)
        Eu2[np.diag_indices(S)] = [p[2] for p in parts]
        assert abs(lm - lr) <= 1e-12 + 4e-16 * abs(lr)
        tol = 1e-12 * (1 + far ** 2)
        np.testing.assert_allclose(mP, Q @ eu, rtol=0, atol=tol)
        np.testing.assert_allclose(M2P, Q @ Eu2 @ Q.T, rtol=0, atol=tol * max(1, np.abs(Eu2).max()))


# --------------------------------------------------------------------------- identities
@pytest.mark.parametrize("S", [2, 3, 4])
def test_additivity_under_a_cut(S):
    """m(P) = m(P cut below) + m(P cut above), with different vertex sets on each side."""
    if S >= 3 and not _orthant_available(S):
        pytest.skip(f"fastpath.orthant has no k = {S} kernel")
    rng = np.random.default_rng(50 + S)
    # S = 4 orthants are the expensive kernel: one polytope, two distances
    for bounded in ((True, False) if S < 4 else (True,)):
        C, d = random_polytope(rng, S, bounded)
        g = polyhedron_geometry(C, d)
        h = rng.normal(size=S)
        e = float(h @ g.interior_point)
        cov = random_cov(rng, S)
        for far in ((0.0, 2.0, 8.0) if S < 4 else (0.0, 4.0)):
            mu = g.interior_point + rng.normal(size=S) * far
            m = [gaussian_moments(Cx, dx, mu, cov) for Cx, dx in
                 [(C, d), (np.vstack([C, h]), np.append(d, e)),
                  (np.vstack([C, -h]), np.append(d, -e))]]
            m0 = m[0][0]
            tol = {2: 1e-12, 3: 1e-11, 4: 1e-9}[S]
            assert abs(m[1][0] + m[2][0] - m0) <= tol * m0
            s = cov_scale(cov)
            sc1 = m0 * (math.sqrt(s) + np.abs(m[0][1] / m0).max())
            assert np.max(np.abs(m[1][1] + m[2][1] - m[0][1])) <= tol * sc1
            sc2 = m0 * max(s, np.abs(m[0][2] / m0).max())
            assert np.max(np.abs(m[1][2] + m[2][2] - m[0][2])) <= tol * sc2


@pytest.mark.parametrize("S", [2, 3])
def test_affine_invariance(S):
    """z -> T z + t maps P, mean, cov; m0 is invariant and the moments transform."""
    if S == 3 and not _orthant_available(3):
        pytest.skip("fastpath.orthant has no k = 3 kernel")
    rng = np.random.default_rng(60 + S)
    C, d = random_polytope(rng, S, bounded=False)
    cov = random_cov(rng, S)
    mu = rng.normal(size=S) * 3
    T = rng.normal(size=(S, S)) + 2 * np.eye(S)
    t = rng.normal(size=S)
    Ti = np.linalg.inv(T)
    lm, mP, M2P = truncated_normal_moments(C, d, mu, cov)
    # P' = T P + t = {w : C T^{-1} (w - t) <= d}
    lm2, mP2, M2P2 = truncated_normal_moments(C @ Ti, d + C @ Ti @ t, T @ mu + t, T @ cov @ T.T)
    assert abs(lm - lm2) <= 1e-12 * max(1, abs(lm))
    np.testing.assert_allclose(mP2, T @ mP + t, rtol=1e-11, atol=1e-11)
    ref2 = T @ M2P @ T.T + np.outer(T @ mP, t) + np.outer(t, T @ mP) + np.outer(t, t)
    np.testing.assert_allclose(M2P2, ref2, rtol=1e-10, atol=1e-10 * np.abs(ref2).max())


@pytest.mark.parametrize("S", [2, 3, 4])
def test_monte_carlo(S):
    """Loose check against 400,000 samples (tolerance: 5 standard errors)."""
    if S >= 3 and not _orthant_available(S):
        pytest.skip(f"fastpath.orthant has no k = {S} kernel")
    rng = np.random.default_rng(70 + S)
    C, d = random_polytope(rng, S, bounded=True)
    cov = random_cov(rng, S)
    mu = polyhedron_geometry(C, d).interior_point + rng.normal(size=S) * 0.5
    m0, m1, M2 = gaussian_moments(C, d, mu, cov)
    n = 400_000
    Z = rng.multivariate_normal(mu, cov, size=n)
    inside = np.all(Z @ C.T <= d, axis=1)
    p = inside.mean()
    assert abs(m0 - p) <= 5 * math.sqrt(p * (1 - p) / n)
    Zi = Z * inside[:, None]
    se1 = Zi.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(m1 - Zi.mean(axis=0)) <= 5 * se1)
    prod = Zi[:, :, None] * Z[:, None, :]
    se2 = prod.std(axis=0) / math.sqrt(n)
    assert np.all(np.abs(M2 - prod.mean(axis=0)) <= 5 * se2 + 1e-12)
