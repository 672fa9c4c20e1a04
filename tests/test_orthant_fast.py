"""fastpath.orthant against mpmath oracles, closed forms and identities.

Oracles (slow, obviously correct, scalar loops; written here independently of the fast
kernels and of verified_dgn.orthant):

* ``mp_log_bvn``: log of the conditioning integral int_{-inf}^{h} phi(x) Phi((k - rho x)/s) dx
  by mpmath tanh-sinh quadrature, split at the mode of the integrand and at its kink.
* ``mp_log_bvn_plackett``: log of Plackett's form Phi_2(h, k; -1) + int_{-1}^{rho} phi_2 dr
  (a different formula; used to check the first oracle in the slow tests).

Tolerances (see tests/harness.py for the convention |fast - ref| <= atol + rtol |ref| on
log P): atol = 1e-13 where P >= 1e-20 (the stated accuracy: relative error of P <= 1e-13),
atol = 1e-10 in the tails, rtol = 1e-14: log P of magnitude L carries a few eps * L of
rounding of its own (log P ~ -h^2/2), 1e-14 * L allows ~45 eps.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from harness import assert_matches_reference
from scipy import optimize, special

import fastpath
from fastpath import orthant as fo

RTOL = 1e-14
ATOL_BULK = 1e-13  # P >= 1e-20
ATOL_TAIL = 1e-10


# --------------------------------------------------------------------------- oracles
def _float_mode(h: float, k: float, rho: float, s: float) -> tuple[float, float]:
    """Mode and curvature scale of x -> -x^2/2 + log Phi((k - rho x)/s) on (-inf, h]
    (float64, only used to place quadrature breakpoints)."""
    f = lambda x: 0.5 * x * x - special.log_ndtr((k - rho * x) / s)
    lo = h - 60.0 if rho <= 0 else min(h, k / rho) - 60.0
    res = optimize.minimize_scalar(f, bounds=(lo, h), method="bounded",
                                   options={"xatol": 1e-12})
    m = float(res.x)
    d = 1e-4 * max(1.0, abs(m))
    curv = (f(m + d) - 2 * f(m) + f(m - d)) / d**2 if m + d < h else 1.0
    return m, 1.0 / math.sqrt(max(curv, 1.0))


def mp_log_bvn(h: float, k: float, rho: float) -> mpmath.mpf:
    """log P(X <= h, Y <= k), standard bivariate normal, at the current mpmath precision."""
    h, k, rho = float(h), float(k), float(rho)
    if math.isinf(h) or math.isinf(k):
        if h == -math.inf or k == -math.inf:
            return mpmath.ninf
        x = k if h == math.inf else h
        return mpmath.log(mpmath.ncdf(x)) if x != math.inf else mpmath.mpf(0)
    if rho >= 1:
        return mpmath.log(mpmath.ncdf(min(h, k)))
    if rho <= -1:
        d = mpmath.ncdf(h) - mpmath.ncdf(-k)
        return mpmath.log(d) if h + k > 0 else mpmath.ninf
    if h > k:
        h, k = k, h
    K, R = mpmath.mpf(k), mpmath.mpf(rho)
    S = mpmath.sqrt((1 - R) * (1 + R))
    m, sig = _float_mode(h, k, rho, float(S))

    def logf(x):
        return -x * x / 2 + mpmath.log(mpmath.ncdf((K - R * x) / S))

    pts = {h, m}
    for j in (0.5, 2.0, 6.0, 15.0, 40.0):
        pts.update((m - j * sig, m + j * sig))
    if rho != 0:
        xc, w = k / rho, float(S) / abs(rho)
        pts.update(xc + j * w for j in (-30.0, -8.0, -2.0, 0.0, 2.0, 8.0, 30.0))
    pts = sorted(p for p in pts if p <= h and p > m - 50 * sig - 1)
    lm = logf(mpmath.mpf(m))
    v = mpmath.quad(lambda x: mpmath.exp(logf(x) - lm), [mpmath.ninf] + pts)
    return lm + mpmath.log(v) - mpmath.log(mpmath.sqrt(2 * mpmath.pi))


def mp_log_bvn_plackett(h: float, k: float, rho: float) -> mpmath.mpf:
    """Plackett's form from r = -1 (finite h, k, |rho| < 1), an independent second oracle:
    P = max(0, Phi(h) - Phi(-k)) + (1/pi) int_tau^inf exp(-(A+C) - A/t^2 - C t^2)/(1+t^2) dt."""
    H, K, R = mpmath.mpf(h), mpmath.mpf(k), mpmath.mpf(rho)
    A, C = (H - K) ** 2 / 8, (H + K) ** 2 / 8
    tau = mpmath.sqrt((1 - R) / (1 + R))
    base = mpmath.ncdf(H) - mpmath.ncdf(-K) if H + K > 0 else mpmath.mpf(0)
    F = lambda t: -A / t**2 - C * t**2 - mpmath.log(1 + t * t)
    pts = {tau}
    scales = [mpmath.mpf(1)]
    if C > 0:
        scales.append(1 / mpmath.sqrt(C))
        if A > 0:
            scales.append((A / C) ** mpmath.mpf(0.25))
    if A > 0:
        scales.append(mpmath.sqrt(A))
    for sc_ in scales:
        pts.update(sc_ * mpmath.mpf(2) ** j for j in range(-40, 41))
    pts = sorted(p for p in pts if p >= tau)
    fm = max(F(p) for p in pts)
    v = mpmath.quad(lambda t: mpmath.exp(F(t) - fm), pts + [mpmath.inf])
    log_int = fm + mpmath.log(v) - (A + C) - mpmath.log(mpmath.pi)
    return mpmath.log(base + mpmath.exp(log_int)) if base > 0 else log_int


def _atol(ref_log: np.ndarray) -> np.ndarray:
    return np.where(np.abs(ref_log) <= 46.0, ATOL_BULK, ATOL_TAIL)


def _check_bvn(h, k, rho, label, dps=30, kernel=None):
    """Compare a k = 2 kernel with mp_log_bvn, per case tolerance by magnitude."""
    kernel = kernel or fo._log_bvn
    h, k, rho = (np.asarray(v, dtype=float) for v in np.broadcast_arrays(h, k, rho))
    fast = kernel(h, k, rho)
    args = np.stack([h, k, rho], axis=1)
    refs = []
    with mpmath.workdps(dps):
        for i in range(h.size):
            refs.append(mp_log_bvn(h[i], k[i], rho[i]))
    rl = np.array([float(r) for r in refs])
    for tail in (False, True):
        sel = np.flatnonzero((np.abs(rl) > 46.0) == tail)
        if sel.size == 0:
            continue
        assert_matches_reference(
            fast[sel], lambda j, sel=sel: mp_log_bvn(h[sel[j]], k[sel[j]], rho[sel[j]]),
            rtol=RTOL, atol=ATOL_TAIL if tail else ATOL_BULK, dps=dps, args=args[sel],
            label=f"{label} ({'tail' if tail else 'P >= 1e-20'})", n_recheck=1)


def _structured_cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random (h, k, rho) covering bulk, tails, |rho| -> 1 and |h| ~ |k| (both k = 2 paths)."""
    rng = np.random.default_rng(seed)
    h = rng.uniform(-40, 8, n)
    k = rng.uniform(-40, 8, n)
    rho = rng.uniform(-1, 1, n)
    bulk = rng.random(n) < 0.3
    h[bulk], k[bulk] = rng.uniform(-6, 6, bulk.sum()), rng.uniform(-6, 6, bulk.sum())
    ext = rng.random(n) < 0.25
    rho[ext] = rng.choice([1 - 1e-12, -1 + 1e-12, 1 - 1e-6, -1 + 1e-6, 0.99, -0.99], ext.sum())
    near = rng.random(n) < 0.3
    sign = rng.choice([-1.0, 1.0], near.sum())
    k[near] = sign * h[near] + rng.choice([1e-9, 1e-4, 1e-2, 0.3, 2.0], near.sum())
    return h, k, rho


# ------------------------------------------------------------------------- k = 1, 2
def test_log_ndtr_diff_against_mpmath():
    rng = np.random.default_rng(3)
    a = rng.uniform(-40, 40, 60)
    d = 10.0 ** rng.uniform(-12, 1.5, 60)
    b = a + d
    a[:5] = -np.inf
    b[5:8] = np.inf
    fast = fo._log_ndtr_diff(a, b)

    def ref(i):
        # reflect to the lower tail, where ncdf is not rounded to 1
        lo, hi = (a[i], b[i]) if a[i] + b[i] <= 0 else (-b[i], -a[i])
        return mpmath.log(mpmath.ncdf(hi) - mpmath.ncdf(lo))

    # the difference of two cdfs at points ~1e-12 apart is ill-conditioned in the inputs
    # only through (b - a), which is exact here; relative accuracy 1e-14 is the claim
    assert_matches_reference(fast, ref, rtol=1e-14, atol=1e-14, dps=40,
                             args=np.stack([a, b], 1), label="log(Phi(b) - Phi(a))")
    assert np.all(fo._log_ndtr_diff([1.0, 2.0], [1.0, 1.0]) == -np.inf)


@pytest.mark.parametrize("rho", [-1.0, -1 + 1e-12, -0.999999, -0.7, -1e-9, 0.0, 1e-9, 0.3,
                                 0.999999, 1 - 1e-12, 1.0])
def test_bvn_closed_form_at_origin(rho):
    # Phi_2(0, 0; rho) = 1/4 + asin(rho)/(2 pi)
    with mpmath.workdps(40):
        ref = mpmath.log(mpmath.mpf(1) / 4 + mpmath.asin(mpmath.mpf(rho)) / (2 * mpmath.pi))
    got = fo._log_bvn(0.0, 0.0, rho)
    if rho == -1.0:
        assert got == -np.inf
    else:
        assert abs(got - float(ref)) <= 1e-13 + 1e-14 * abs(float(ref)), (got, ref)
    # the public function with a covariance of variances 4 and 9
    cov = np.array([[4.0, 6.0 * rho], [6.0 * rho, 9.0]])
    got_pub = fastpath.log_orthant_probability([0.0, 0.0], cov)
    assert got_pub == got or abs(got_pub - got) <= 1e-14


def test_bvn_independence_and_symmetry():
    rng = np.random.default_rng(7)
    h = rng.uniform(-40, 8, 400)
    k = rng.uniform(-40, 8, 400)
    prod = special.log_ndtr(h) + special.log_ndtr(k)
    assert np.array_equal(fo._log_bvn(h, k, 0.0), prod)
    # tiny correlation: the Plackett increment is ~rho phi_2, relatively < 1e-290
    np.testing.assert_allclose(fo._log_bvn(h, k, 1e-300), prod, rtol=1e-15, atol=1e-15)
    rho = rng.uniform(-1, 1, 400)
    a, b = fo._log_bvn(h, k, rho), fo._log_bvn(k, h, rho)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)


def test_bvn_reflection_identity():
    # Phi_2(h, k; rho) + Phi_2(h, -k; -rho) = Phi(h), checked where neither term is a
    # negligible fraction of Phi(h) (otherwise the identity tests nothing)
    rng = np.random.default_rng(11)
    h = rng.uniform(-30, 5, 3000)
    k = rng.uniform(-4, 4, 3000)
    rho = rng.uniform(-0.999, 0.999, 3000)
    a, b = fo._log_bvn(h, k, rho), fo._log_bvn(h, -k, -rho)
    lh = special.log_ndtr(h)
    keep = (a - lh > -20) & (b - lh > -20)
    assert keep.sum() > 1000
    s = np.logaddexp(a, b)[keep]
    np.testing.assert_allclose(s, lh[keep], rtol=1e-14, atol=2e-13)


def test_bvn_infinite_bounds():
    h = np.array([1.0, np.inf, -np.inf, np.inf, 2.0, -np.inf, -3.0])
    k = np.array([np.inf, -0.5, 3.0, np.inf, -np.inf, -np.inf, np.inf])
    got = fo._log_bvn(h, k, 0.6)
    ref = [special.log_ndtr(1.0), special.log_ndtr(-0.5), -np.inf, 0.0, -np.inf, -np.inf,
           special.log_ndtr(-3.0)]
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(fo._log_bvn(np.nan, 0.0, 0.5))


def test_bvn_degenerate_correlations():
    h = np.array([-3.0, 2.0, 0.5, -1.0, 10.0])
    k = np.array([-2.0, -2.5, 0.5, 1.0, -9.0])
    np.testing.assert_array_equal(fo._log_bvn(h, k, 1.0), special.log_ndtr(np.minimum(h, k)))
    with mpmath.workdps(40):
        ref = [mpmath.log(mpmath.ncdf(a) - mpmath.ncdf(-b)) if a + b > 0 else mpmath.ninf
               for a, b in zip(h, k)]
    got = fo._log_bvn(h, k, -1.0)
    for g, r in zip(got, ref):
        assert (g == -np.inf and r == mpmath.ninf) or abs(g - float(r)) <= 1e-14 * max(1, abs(g))
    # continuity into the degenerate limit
    for rho in (1 - 1e-15, -1 + 1e-15):
        near = fo._log_bvn(h, k, rho)
        lim = fo._log_bvn(h, k, np.sign(rho))
        fin = np.isfinite(lim)
        np.testing.assert_allclose(near[fin], lim[fin], rtol=1e-6, atol=1e-6)


def test_bvn_against_oracle_quick():
    h, k, rho = _structured_cases(24, seed=2024)
    _check_bvn(h, k, rho, "log Phi_2 quick", dps=30)


def test_bvn_deep_tails():
    # log P of -1e4 and far below must stay finite and accurate (never P first, then log)
    h = np.array([-141.0, -141.0, -100.0, -5.0, -80.0, 3.0, -30.0])
    k = np.array([-141.0, -120.0, -130.0, -5.0, 60.0, -90.0, -29.9])
    rho = np.array([0.3, -0.5, 0.9, -0.999999999, -0.95, -0.2, 1 - 1e-12])
    got = fo._log_bvn(h, k, rho)
    assert np.all(np.isfinite(got)) and np.all(got < -100)
    _check_bvn(h, k, rho, "log Phi_2 deep tails", dps=30)


def test_bvn_two_independent_paths_agree():
    # the Plackett kernel and the conditioning kernel are different formulas; where both
    # apply (q >= 1) they must agree to the stated accuracy on many random cases
    rng = np.random.default_rng(5)
    n = 20000
    h = rng.uniform(-40, 8, n)
    k = np.where(rng.random(n) < 0.5, rng.uniform(-40, 8, n),
                 np.sign(rng.normal(size=n)) * h + rng.normal(size=n) * 3)
    rho = np.tanh(rng.uniform(-9, 9, n))
    q = np.abs(h - k) * np.abs(h + k) / 8
    sel = q >= fo._Q_FAST
    h, k, rho, q = h[sel], k[sel], rho[sel], q[sel]
    assert np.sum(q < fo._Q_24) > 500
    a = np.where(q >= fo._Q_24, fo._log_bvn_plackett(h, k, rho),
                 fo._log_bvn_plackett(h, k, rho, rule=fo._GL32))
    b = fo._log_bvn_cond(h, k, rho)
    tol = np.where(np.abs(b) <= 46, ATOL_BULK, ATOL_TAIL) + RTOL * np.abs(b)
    err = np.abs(a - b)
    worst = int(np.argmax(err / tol))
    assert np.all(err <= tol), (h[worst], k[worst], rho[worst], a[worst], b[worst])


def _owen_cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elements of the q < 0.3 set the Owen's T path is offered: |h| ~ |k| (both signs),
    h near the edge of its domain, correlations up to 1 - 1e-9 of both signs."""
    rng = np.random.default_rng(seed)
    h = np.where(rng.random(n) < 0.2, np.sign(rng.normal(size=n)) * rng.uniform(3.0, 3.3, n),
                 rng.uniform(-3.3, 3.3, n))
    k = np.sign(rng.normal(size=n)) * h + rng.normal(size=n) * np.exp(rng.uniform(-10, 0, n))
    rho = np.tanh(rng.uniform(-10, 10, n))
    q = np.abs(h - k) * np.abs(h + k) / 8
    sel = (q < fo._Q_FAST) & (np.abs(k) < fo._OWEN_HMAX)
    return h[sel], k[sel], rho[sel]


def test_owens_t_accuracy_where_it_is_used():
    """The premise of the Owen's T path: scipy.special.owens_t(h, a) is accurate relative to
    T(h, inf) = Phi(-|h|)/2 to a few eps for |h| < 3.3 and a h outside [3.3, 3.5] (measured
    <= 2.9e-15 there, 2.3e-14 inside that band; tolerance 4e-15), against T(h, a) = (1/2pi) int_0^a exp(-h^2 (1 + x^2)/2) / (1 + x^2) dx in mpmath."""
    rng = np.random.default_rng(77)
    with mpmath.workdps(30):
        n = 0
        while n < 200:
            h = rng.uniform(0, fo._OWEN_HMAX) * np.sign(rng.normal())
            # half of the cases near a = 1 and a h ~ 3.4, where scipy changes method
            a = np.sign(rng.normal()) * (math.exp(rng.uniform(-8, 8)) if n % 2
                                         else rng.uniform(0.5, 2.0))
            if not fo._owens_t_accurate(np.array([h]), np.array([a]))[0]:
                continue
            n += 1
            H, A = mpmath.mpf(h), mpmath.mpf(a)
            f = lambda x, H=H: mpmath.exp(-H * H * (1 + x * x) / 2) / (1 + x * x)
            ref = mpmath.quad(f, [0, min(abs(A), 1), abs(A)] if abs(A) > 1 else [0, abs(A)])
            ref = float(mpmath.sign(A) * ref / (2 * mpmath.pi))
            scale = 0.5 * special.ndtr(-abs(h))
            assert abs(special.owens_t(h, a) - ref) <= 4e-15 * scale, (h, a)


@pytest.mark.parametrize("n", [40, pytest.param(400, marks=pytest.mark.slow)])
def test_bvn_owen_path_against_mpmath(n):
    """Accepted Owen's T elements against the mpmath oracle (bulk tolerance 1e-13); the
    mpmath oracle costs ~0.15 s per case, hence 40 by default."""
    h, k, rho = _owen_cases(4000, seed=31)
    _, ok = fo._log_bvn_owen(h, k, rho)
    assert 0.2 < ok.mean() < 0.9          # the path is exercised, and also declines
    idx = np.flatnonzero(ok)[:n]
    _check_bvn(h[idx], k[idx], rho[idx], "log Phi_2 Owen's T path", dps=30,
               kernel=lambda a, b, c: fo._log_bvn_owen(a, b, c)[0])


def test_bvn_owen_path_against_conditioning_kernel():
    """Two independent formulas on 1e5 random q < 0.3 elements: where the Owen's T path
    accepts, it agrees with the conditioning integral to the stated 1e-13 (measured 1.8e-14)."""
    h, k, rho = _owen_cases(200000, seed=32)
    lp, ok = fo._log_bvn_owen(h, k, rho)
    ref = fo._log_bvn_cond(h[ok], k[ok], rho[ok])
    err = np.abs(lp[ok] - ref)
    worst = int(np.argmax(err))
    assert err.max() <= ATOL_BULK, (h[ok][worst], k[ok][worst], rho[ok][worst], err.max())
    # and _log_bvn routes accepted elements through it
    np.testing.assert_array_equal(fo._log_bvn(h[ok][:500], k[ok][:500], rho[ok][:500]),
                                  lp[ok][:500])


@pytest.mark.parametrize("tier", range(len(fo._Q_TIERS)))
def test_bvn_plackett_tiers_against_conditioning_kernel(tier):
    """Below q = 0.3 the Plackett rule with more nodes, in u or in v (orthant._Q_TIERS),
    against the conditioning integral, an independent formula, on 2e4 random elements of
    each tier, q log-uniform in the tier (measured <= 0.21 of the tolerance; the next
    smaller rule fails it by 2.8x or more)."""
    qmin, nodes, sinh = fo._Q_TIERS[tier]
    qmax = fo._Q_FAST if tier == 0 else fo._Q_TIERS[tier - 1][0]
    rng = np.random.default_rng(60 + tier)
    n = 20000
    h = np.where(rng.random(n) < 0.3, rng.uniform(-40, 8, n), rng.uniform(-4, 4, n))
    q = np.exp(rng.uniform(math.log(qmin), math.log(qmax), n))
    # |k| from q = |h^2 - k^2| / 8, either sign of k and of h^2 - k^2
    k2 = h * h + np.where(rng.random(n) < 0.5, 8 * q, -8 * q)
    keep = k2 > 0
    h, q = h[keep], q[keep]
    k = np.sign(rng.normal(size=h.size)) * np.sqrt(k2[keep])
    rho = np.tanh(rng.uniform(-9, 9, h.size))
    got = fo._log_bvn_plackett(h, k, rho, rule=fo._gl01(nodes), sinh=sinh)
    ref = fo._log_bvn_cond(h, k, rho)
    tol = np.where(np.abs(ref) <= 46, ATOL_BULK, ATOL_TAIL) + RTOL * np.abs(ref)
    err = np.abs(got - ref)
    worst = int(np.argmax(err / tol))
    assert np.all(err <= tol), (h[worst], k[worst], rho[worst], got[worst], ref[worst])


def test_bvn_below_the_v_rules_against_mpmath():
    """q < 1e-7 goes to the conditioning integral: the 48-node rule in v failed the
    tolerance there by up to 5x. The first element is the one that exposed it (q = 2.2e-9,
    the v rule 4.5e-13 off in log P); the others are random, q log-uniform in [1e-9, 1e-7)."""
    rng = np.random.default_rng(71)
    h = rng.uniform(-12, 6, 7)
    q = np.exp(rng.uniform(math.log(1e-9), math.log(1e-7), 7))
    k = np.sign(h * rng.normal(size=7)) * np.sqrt(h * h + 8 * q)
    rho = np.tanh(rng.uniform(-4, 4, 7))
    _check_bvn(np.r_[-7.859489440925685, h], np.r_[7.859489442041769, k],
               np.r_[-0.06129107686031161, rho], "q < 1e-7", dps=40)


@pytest.mark.parametrize("qs", ["_Q_FAST", "_Q_24", 0.03, 0.01, 1e-3, 1e-7])
def test_bvn_fast_path_boundary(qs):
    # elements on both sides of a switch of rule (q = |h^2 - k^2|/8) are continuous
    h = np.linspace(3.0, 30.0, 200)
    qv = getattr(fo, qs) if isinstance(qs, str) else qs
    assert isinstance(qs, str) or qs in [t[0] for t in fo._Q_TIERS]
    k = np.sqrt(h * h - 8.0 * qv)  # on the switch (up to rounding)
    assert np.all(np.isfinite(k))
    for rho in (-0.9, -0.3, 0.4, 0.97):
        lo = fo._log_bvn(h, k * (1 + 1e-12), rho)
        hi = fo._log_bvn(h, k * (1 - 1e-12), rho)
        np.testing.assert_allclose(lo, hi, rtol=1e-11, atol=1e-12)


def test_mvn_cdf_near_one_absolute():
    b = np.array([[8.0, 9.0], [40.0, 40.0], [6.0, -6.0]])
    cov = np.array([[1.0, -0.3], [-0.3, 1.0]])
    p = fastpath.orthant_probability(b, cov)
    with mpmath.workdps(40):
        ref = [mpmath.exp(mp_log_bvn(x, y, -0.3)) for x, y in b]
    for pi, ri in zip(p, ref):
        assert abs(pi - float(ri)) <= 1e-16 + 1e-15 * float(ri)


# ------------------------------------------------------------------------- public API
def test_public_names_and_aliases():
    assert fastpath.orthant_probability is fo.orthant_probability
    assert fastpath.log_orthant_probability is fo.log_orthant_probability
    b, cov = [0.3, -0.2], [[2.0, 0.4], [0.4, 1.5]]
    assert fo.log_mvn_cdf(b, cov) == fastpath.log_orthant_probability(b, cov)
    assert fo.mvn_cdf(b, cov) == fastpath.orthant_probability(b, cov)


def test_public_k1_and_k0():
    b = np.array([[-50.0], [0.3], [np.inf], [-np.inf]])
    got = fo.log_mvn_cdf(b, [[4.0]])
    np.testing.assert_array_equal(got, special.log_ndtr(b[:, 0] / 2.0))
    assert fo.log_mvn_cdf(np.zeros((3, 0)), np.zeros((0, 0))).tolist() == [0.0, 0.0, 0.0]


def test_public_broadcasting_and_standardisation():
    rng = np.random.default_rng(1)
    b = rng.normal(size=(4, 1, 2)) * 3
    L = rng.normal(size=(3, 2, 2))
    cov = L @ np.swapaxes(L, -1, -2) + 0.1 * np.eye(2)
    got = fo.log_mvn_cdf(b, cov)
    assert got.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            sd = np.sqrt(np.diag(cov[j]))
            r = cov[j, 0, 1] / (sd[0] * sd[1])
            want = fo._log_bvn(b[i, 0, 0] / sd[0], b[i, 0, 1] / sd[1], r)
            assert got[i, j] == pytest.approx(want, rel=1e-15, abs=1e-15)
    # +inf in one coordinate of a 2-D problem = the 1-D marginal
    got = fo.log_mvn_cdf([[1.0, np.inf], [np.inf, -2.0]], [[4.0, 1.0], [1.0, 9.0]])
    np.testing.assert_allclose(got, special.log_ndtr([0.5, -2.0 / 3.0]), rtol=1e-15)


@pytest.mark.parametrize("b, cov, match", [
    (np.zeros(2), np.eye(3), "shape"),
    (np.zeros(5), np.eye(5), "k <= 4"),
    (np.array([np.nan, 0.0]), np.eye(2), "NaN"),
    (np.zeros(2), np.array([[1.0, np.nan], [np.nan, 1.0]]), "NaN or infinite"),
    (np.zeros(2), np.array([[1.0, 0.5], [0.4, 1.0]]), "symmetric"),
    (np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]), "semi-definite"),
    (np.zeros(2), np.array([[0.0, 0.0], [0.0, 1.0]]), "positive definite"),
    (np.zeros((2, 2)), np.ones((3, 2, 2)) * np.eye(2), "broadcast"),
    (np.float64(1.0), np.eye(1), "scalar"),
])
def test_public_validation(b, cov, match):
    with pytest.raises(ValueError, match=match):
        fo.log_mvn_cdf(b, cov)


def test_public_singular_2x2_accepted():
    # correlation exactly 1 (singular within rounding): the degenerate 1-D case
    cov = np.array([[4.0, 6.0], [6.0, 9.0]])
    got = fo.log_mvn_cdf([1.0, -3.0], cov)
    assert got == special.log_ndtr(min(0.5, -1.0))


def test_against_scipy_bulk():
    # scipy's bivariate cdf (Genz's deterministic bvnu, absolute accuracy ~1e-8 with its
    # default abseps) as an independent loose check in the bulk
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(9)
    for _ in range(20):
        b = rng.uniform(-3, 3, 2)
        r = rng.uniform(-0.95, 0.95)
        cov = [[1.0, r], [r, 1.0]]
        want = multivariate_normal(mean=[0, 0], cov=cov).cdf(b)
        assert fo.mvn_cdf(b, cov) == pytest.approx(want, abs=1e-7)


def test_against_exact_path_k2():
    vo = pytest.importorskip("verified_dgn.orthant")
    cases = [([-3.0, -4.0], [[1.0, -0.5], [-0.5, 1.0]]),
             ([2.0, -25.0], [[2.0, 1.3], [1.3, 1.0]]),
             ([0.1, 0.2], [[1.0, 0.999999], [0.999999, 1.0]])]
    for b, cov in cases:
        ref = vo.log_orthant_probability(b, cov, dps=30)
        got = fo.log_mvn_cdf(b, cov)
        assert abs(got - float(ref)) <= 1e-13 + RTOL * abs(got), (b, cov, got, ref)


# ------------------------------------------------------------------------------ slow
@pytest.mark.slow
def test_bvn_against_oracle_thorough():
    h, k, rho = _structured_cases(300, seed=99)
    _check_bvn(h, k, rho, "log Phi_2 thorough", dps=30)


@pytest.mark.slow
def test_bvn_oracles_agree():
    # the two mpmath oracles (conditioning integral, Plackett from r = -1) agree
    h, k, rho = _structured_cases(60, seed=123)
    with mpmath.workdps(40):
        for i in range(h.size):
            a, b = mp_log_bvn(h[i], k[i], rho[i]), mp_log_bvn_plackett(h[i], k[i], rho[i])
            assert abs(a - b) <= mpmath.mpf(10) ** -30 * max(1, abs(a)), (h[i], k[i], rho[i])


# ---------------------------------------------------------------------------- k = 3, 4
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
