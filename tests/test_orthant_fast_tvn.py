"""fastpath.orthant's k = 3, 4 kernels (fastpath._tvn) against an mpmath oracle, closed forms,
the exact path and identities, and against each other (two different formulas).

Tolerances on log P: the stated accuracy (1e-12 / 1e-10 for k = 3 where P >= 1e-20 / below,
1e-10 / 1e-9 for k = 4) plus the conditioning of log P in the inputs (``_logp_tol``).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from harness import assert_matches_reference
from scipy import optimize, special

from fastpath import orthant as fo

#: relative tolerance on log P (as in test_orthant_fast_bvn.py)
RTOL = 1e-14


def mp_log_onefactor(h, lam) -> mpmath.mpf:
    """log P(Y <= h) for the one-factor correlation r_ij = lam_i lam_j (|lam_i| < 1):
    Y_i = lam_i Z + sqrt(1 - lam_i^2) E_i, so P = int phi(z) prod_i Phi((h_i - lam_i z)/s_i) dz,
    by mpmath quadrature split around the mode (an independent oracle for any k)."""
    h = [float(v) for v in h]
    lam = [float(v) for v in lam]
    s = [math.sqrt((1 - v) * (1 + v)) for v in lam]

    def f64(z):
        return -0.5 * z * z + sum(special.log_ndtr((hi - li * z) / si)
                                  for hi, li, si in zip(h, lam, s))

    res = optimize.minimize_scalar(lambda z: -f64(z), bounds=(-80.0, 80.0), method="bounded",
                                   options={"xatol": 1e-12})
    m = float(res.x)
    d = 1e-4
    curv = -(f64(m + d) - 2 * f64(m) + f64(m - d)) / d**2
    sig = 1.0 / math.sqrt(max(curv, 1.0))
    H = [mpmath.mpf(v) for v in h]
    Lm = [mpmath.mpf(v) for v in lam]
    S = [mpmath.sqrt((1 - v) * (1 + v)) for v in Lm]

    def logf(z):
        return -z * z / 2 + sum(mpmath.log(mpmath.ncdf((hi - li * z) / si))
                                for hi, li, si in zip(H, Lm, S))

    lm = logf(mpmath.mpf(m))
    pts = sorted({m + j * sig for j in (-40, -15, -6, -2, -0.5, 0, 0.5, 2, 6, 15, 40)})
    v = mpmath.quad(lambda z: mpmath.exp(logf(z) - lm), [mpmath.ninf] + pts + [mpmath.inf])
    return lm + mpmath.log(v) - mpmath.log(mpmath.sqrt(2 * mpmath.pi))


def _onefactor_R(lam):
    lam = np.asarray(lam, dtype=float)
    R = np.outer(lam, lam)
    np.fill_diagonal(R, 1.0)
    return R


def _rand_corr(rng, n, k, spread=(1,)):
    A = rng.normal(size=(n, k, k))
    A[..., 0] *= rng.choice(spread, n)[:, None]
    C = A @ np.swapaxes(A, 1, 2)
    d = np.sqrt(np.einsum("nii->ni", C))
    return C / (d[:, :, None] * d[:, None, :])


def _logp_tol(ref, R, atol_bulk, atol_tail):
    """Tolerance on log P: the stated accuracy plus the conditioning of log P in the
    inputs, ~4 eps cond(R) |log P| (log P is a quadratic form in R^-1 in the tails)."""
    ref = np.asarray(ref, dtype=float)
    cond = np.linalg.cond(R)
    return (np.where(np.abs(ref) <= 46.0, atol_bulk, atol_tail)
            + np.maximum(RTOL, 4 * np.finfo(float).eps * cond) * np.abs(ref))


def test_tvn_closed_form_at_origin():
    # Phi_3(0; R) = 1/8 + (asin r12 + asin r13 + asin r23)/(4 pi)
    rng = np.random.default_rng(17)
    R = _rand_corr(rng, 60, 3, spread=(1, 1, 30, 1000))
    got = fo._log_tvn(np.zeros((60, 3)), R)
    with mpmath.workdps(30):
        ref = [mpmath.log(mpmath.mpf(1) / 8 + sum(mpmath.asin(mpmath.mpf(R[i, a, b]))
                                                 for a, b in ((0, 1), (0, 2), (1, 2)))
                          / (4 * mpmath.pi)) for i in range(60)]
    # near-collinear triples make P a small difference of O(1) terms: input rounding of
    # the correlations moves log P by ~eps cond(R); the tolerance includes that term
    refs = np.array([float(v) for v in ref])
    tol = _logp_tol(refs, R, 1e-12, 1e-10)
    err = np.abs(got - refs)
    assert np.all(err <= tol), (err / tol, R[np.argmax(err / tol)])
    well = np.linalg.cond(R) < 1e3
    assert_matches_reference(got[well], [ref[i] for i in np.flatnonzero(well)], rtol=0.0,
                             atol=1e-12, dps=30, label="log Phi_3(0), cond(R) < 1e3",
                             args=R[well][:, [0, 0, 1], [1, 2, 2]])


@pytest.mark.parametrize("k", [3, 4])
def test_onefactor_oracle(k):
    # one-factor correlations of both signs, bulk and tails (k = 3: 1e-12 where
    # P >= 1e-20, 1e-10 below; k = 4: 1e-10, 1e-9)
    rng = np.random.default_rng(100 + k)
    n = 10 if k == 3 else 6
    lam = rng.uniform(-0.97, 0.97, (n, k))
    h = rng.uniform(-12, 4, (n, k))
    h[: n // 3] = rng.uniform(-3, 3, (n // 3, k))
    lam[-2:] = rng.choice([-1, 1], (2, k)) * rng.uniform(0.995, 0.9999, (2, k))
    R = np.array([_onefactor_R(v) for v in lam])
    kern = fo._log_tvn if k == 3 else fo._log_qvn
    got = kern(h, R)
    with mpmath.workdps(30):
        ref = np.array([float(mp_log_onefactor(h[i], lam[i])) for i in range(n)])
    bulk, tail = (1e-12, 1e-10) if k == 3 else (1e-10, 1e-9)
    tol = _logp_tol(ref, R, bulk, tail)
    err = np.abs(got - ref)
    assert np.all(err <= tol), (err / tol, h[np.argmax(err / tol)], lam[np.argmax(err / tol)])


def test_tvn_against_exact_path():
    vo = pytest.importorskip("verified_dgn.orthant")
    cases = [
        ([0.79775255, -1.89513568, -3.860831], (-0.45253214, 0.84175467, 0.0834179)),
        ([-0.97563643, -1.20618848, 1.26865873], (0.20014069, -0.56165, 0.69812758)),
        ([3.41673786, -3.17853639, -0.70907789], (0.72908884, 0.69924616, 0.88361268)),
        ([-21.54091574, -11.30225346, -14.44115952], (-0.49004296, 0.39105671, 0.52163603)),
        ([-9.29066689, -1.73366179, -21.89969376], (-0.93059427, 0.47711995, -0.1332905)),
    ]
    for h, (a, b, c) in cases:
        R = np.array([[1.0, a, b], [a, 1.0, c], [b, c, 1.0]])
        ref = float(vo.log_orthant_probability(h, R, dps=25))
        got = fo.log_mvn_cdf(h, R)
        tol = _logp_tol(ref, R, 1e-12, 1e-10)
        assert abs(got - ref) <= tol, (h, R, got, ref)


@pytest.mark.parametrize("k", [3, 4])
def test_fast_path_against_conditioning(k):
    # k = 3: the base + Plackett kernel against the conditioning integral with the
    # bivariate kernel inside (different formulas); k = 4: conditioning on two different
    # variables. Random correlations including ill-conditioned ones, bulk and tails.
    rng = np.random.default_rng(31 + k)
    n = 1500 if k == 3 else 30
    h = rng.uniform(-30, 6, (n, k))
    h[: n // 3] = rng.uniform(-4, 4, (n // 3, k))
    R = _rand_corr(rng, n, k, spread=(1, 1, 10, 100, 1000))
    if k == 3:
        a, b = fo._log_tvn(h, R), fo._log_mvn_sov(h, R)
        bulk, tail = 1e-12, 1e-10
    else:
        a, b = fo._log_mvn_sov(h, R, cond=0), fo._log_mvn_sov(h, R, cond=3)
        bulk, tail = 1e-10, 1e-9
    tol = _logp_tol(b, R, bulk, tail)
    err = np.abs(a - b)
    w = int(np.argmax(err / tol))
    assert np.all(err <= tol), (err[w] / tol[w], h[w], R[w], a[w], b[w])


def test_qvn_equicorrelated_and_blocks():
    # equicorrelation 1/2: P(Y <= 0) = 1/(k+1); block-diagonal: products
    R = np.full((4, 4), 0.5) + 0.5 * np.eye(4)
    assert abs(fo._log_qvn(np.zeros((1, 4)), R[None])[0] - math.log(0.2)) <= 1e-10
    R3 = np.full((3, 3), 0.5) + 0.5 * np.eye(3)
    assert abs(fo._log_tvn(np.zeros((1, 3)), R3[None])[0] - math.log(0.25)) <= 1e-12
    rng = np.random.default_rng(4)
    for _ in range(5):
        h = rng.uniform(-15, 3, 4)
        r1, r2 = rng.uniform(-0.99, 0.99, 2)
        R = np.eye(4)
        R[0, 1] = R[1, 0] = r1
        R[2, 3] = R[3, 2] = r2
        want = fo._log_bvn(h[0], h[1], r1) + fo._log_bvn(h[2], h[3], r2)
        assert abs(fo._log_qvn(h[None], R[None])[0] - want) <= 1e-10 + RTOL * abs(want)
        R31 = np.eye(4)
        R31[:3, :3] = _rand_corr(rng, 1, 3)[0]
        want = fo._log_tvn(h[None, :3], R31[None, :3, :3])[0] + special.log_ndtr(h[3])
        assert abs(fo._log_qvn(h[None], R31[None])[0] - want) <= 1e-10 + RTOL * abs(want)


@pytest.mark.parametrize("k", [3, 4])
def test_reflection_identity(k):
    # P(Y <= h) + P(Y_{<k} <= h_{<k}, -Y_k <= -h_k) = P(Y_{<k} <= h_{<k}), where both
    # terms are a fair part of the total
    rng = np.random.default_rng(50 + k)
    n = 300 if k == 3 else 30
    h = rng.uniform(-6, 3, (n, k))
    h[:, -1] = rng.uniform(-2, 2, n)
    R = _rand_corr(rng, n, k)
    flip = np.ones(k)
    flip[-1] = -1
    R2 = R * flip[:, None] * flip[None, :]
    h2 = h * flip
    kern = fo._log_tvn if k == 3 else fo._log_qvn
    low = fo._log_mvn_cdf_std(h[:, :-1], R[:, :-1, :-1])
    a, b = kern(h, R), kern(h2, R2)
    keep = (a - low > -25) & (b - low > -25)
    assert keep.sum() > n // 3
    s = np.logaddexp(a, b)[keep]
    tol = 1e-12 if k == 3 else 1e-10
    # the sum recovers the lower-dimensional probability to the stated relative accuracy
    np.testing.assert_allclose(s, low[keep], rtol=0, atol=tol * 2 + RTOL * np.abs(low[keep]).max())


def test_degenerate_correlations_k3():
    # exactly singular: Y_2 = Y_1 (reduces to Phi_2 of the smaller bound) and Y_2 = -Y_1
    h = np.array([[-1.0, -2.0, 0.5], [2.0, 1.0, -3.0], [-20.0, -22.0, -21.0]])
    r13 = 0.3
    R = np.array([[1.0, 1.0, r13], [1.0, 1.0, r13], [r13, r13, 1.0]])
    got = fo._log_tvn(h, np.repeat(R[None], 3, 0))
    want = fo._log_bvn(np.minimum(h[:, 0], h[:, 1]), h[:, 2], r13)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    # Y_2 = -Y_1: P(-h2 <= Y1 <= h1, Y3 <= h3) = Phi_2(h1, h3) - Phi_2(-h2, h3) (h1 > -h2)
    h = np.array([[1.0, 2.0, 0.5], [3.0, -1.0, -1.0]])
    R = np.array([[1.0, -1.0, r13], [-1.0, 1.0, -r13], [r13, -r13, 1.0]])
    got = fo._log_tvn(h, np.repeat(R[None], 2, 0))
    p = np.exp(fo._log_bvn(h[:, 0], h[:, 2], r13)) - np.exp(fo._log_bvn(-h[:, 1], h[:, 2], r13))
    np.testing.assert_allclose(got, np.log(p), rtol=1e-9, atol=1e-9)


def test_public_k3_k4():
    rng = np.random.default_rng(8)
    L = rng.normal(size=(2, 4, 4))
    cov = L @ np.swapaxes(L, -1, -2) + 0.2 * np.eye(4)
    b = rng.normal(size=(3, 1, 4))
    got = fo.log_mvn_cdf(b, cov)
    assert got.shape == (3, 2)
    sd = np.sqrt(np.einsum("nii->ni", cov))
    R = cov / (sd[:, :, None] * sd[:, None, :])
    for i in range(3):
        want = fo._log_qvn(b[i, 0][None] / sd, R)
        np.testing.assert_allclose(got[i], want, rtol=1e-14, atol=1e-14)
    # +inf drops a coordinate, -inf gives -inf
    b4 = np.array([[0.3, np.inf, -1.0, 0.2], [0.1, -np.inf, 0.0, 0.0]])
    got = fo.log_mvn_cdf(b4, cov[0])
    keep = [0, 2, 3]
    want = fo.log_mvn_cdf(b4[0, keep], cov[0][np.ix_(keep, keep)])
    assert got[1] == -np.inf and abs(got[0] - want) <= 1e-12
    # the public k = 3 path agrees with the kernel on standardised input
    c3 = cov[1][:3, :3]
    s3 = np.sqrt(np.diag(c3))
    want = fo._log_tvn((b[0, 0, :3] / s3)[None], (c3 / np.outer(s3, s3))[None])[0]
    assert fo.log_mvn_cdf(b[0, 0, :3], c3) == pytest.approx(want, rel=1e-14, abs=1e-14)


@pytest.mark.slow
def test_qvn_against_exact_path():
    vo = pytest.importorskip("verified_dgn.orthant")
    h = [-3.0, -4.0, -1.0, 0.5]
    R = np.array([[1, -0.5, 0.2, 0.1], [-0.5, 1, 0.3, 0.1], [0.2, 0.3, 1, 0.1],
                  [0.1, 0.1, 0.1, 1.0]])
    ref = float(vo.log_orthant_probability(h, R, dps=20))
    assert abs(fo.log_mvn_cdf(h, R) - ref) <= 1e-10


@pytest.mark.slow
@pytest.mark.parametrize("k", [3, 4])
def test_onefactor_oracle_thorough(k):
    rng = np.random.default_rng(200 + k)
    n = 80 if k == 3 else 40
    lam = rng.uniform(-0.999, 0.999, (n, k))
    h = rng.uniform(-25, 5, (n, k))
    R = np.array([_onefactor_R(v) for v in lam])
    kern = fo._log_tvn if k == 3 else fo._log_qvn
    got = kern(h, R)
    with mpmath.workdps(30):
        ref = np.array([float(mp_log_onefactor(h[i], lam[i])) for i in range(n)])
    bulk, tail = (1e-12, 1e-10) if k == 3 else (1e-10, 1e-9)
    tol = _logp_tol(ref, R, bulk, tail)
    err = np.abs(got - ref)
    assert np.all(err <= tol), (err / tol)


@pytest.mark.parametrize("c", [1.679191038450214e-184, 1e-39, 1e-41, 1e-150, 1e-300, 5e-324])
def test_tiny_correlations_are_finite_and_right(c):
    """Correlations of ~1e-150 and below gave NaN (found by the contract tests' hypothesis
    sweep: Phi_3(0; R) with r = 1.7e-184). Checked against the exact backend at 30 digits,
    at the origin and in the tail; rtol 1e-12 as for the other k = 3 checks."""
    import verified_dgn

    R = np.array([[1.0, 0.25, 0.25], [0.25, 1.0, c], [0.25, c, 1.0]])
    for h in ([0.0, 0.0, 0.0], [-1.0, 0.0, 2.0], [-30.0, -20.0, 2.0]):
        got = float(fo.log_orthant_probability(h, R))
        ref = float(verified_dgn.log_orthant_probability(h, R, dps=30))
        assert np.isfinite(got) and abs(got - ref) <= 1e-12 * abs(ref) + 1e-14, (h, got, ref)
