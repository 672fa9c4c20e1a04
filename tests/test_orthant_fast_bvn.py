"""fastpath.orthant's k = 1, 2 kernels against mpmath oracles, closed forms and identities.

The k = 2 kernel (fastpath._bvn, fastpath._bvn_cond) is reached through fastpath.orthant,
which re-exports it. Oracles (slow, obviously correct, scalar loops; written here
independently of the fast kernels and of verified_dgn.orthant):

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
    breaks = sorted(p for p in pts if p <= h and p > m - 50 * sig - 1)
    lm = logf(mpmath.mpf(m))
    v = mpmath.quad(lambda x: mpmath.exp(logf(x) - lm), [mpmath.ninf] + breaks)
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
    breaks = sorted(p for p in pts if p >= tau)
    fm = max(F(p) for p in breaks)
    v = mpmath.quad(lambda t: mpmath.exp(F(t) - fm), breaks + [mpmath.inf])
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
    # the compiled kernel's log Phi runs on libm's erfc, scipy's on its own: a few ulp apart
    np.testing.assert_allclose(fo._log_bvn(h, k, 0.0), prod, rtol=1e-14, atol=0)
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
    # exact at the infinities; log Phi of the finite bound within a few ulp of scipy's
    np.testing.assert_allclose(got, ref, rtol=1e-15, atol=0)
    assert np.isnan(fo._log_bvn(np.nan, 0.0, 0.5))


def test_bvn_degenerate_correlations():
    h = np.array([-3.0, 2.0, 0.5, -1.0, 10.0])
    k = np.array([-2.0, -2.5, 0.5, 1.0, -9.0])
    np.testing.assert_allclose(fo._log_bvn(h, k, 1.0), special.log_ndtr(np.minimum(h, k)),
                               rtol=1e-14, atol=0)
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
    <= 2.9e-15 there, 2.3e-14 inside that band; tolerance 4e-15), against
    T(h, a) = (1/2pi) int_0^a exp(-h^2 (1 + x^2)/2) / (1 + x^2) dx in mpmath."""
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
    # the numpy kernel routes accepted elements through it; the compiled kernel sends them
    # to the tier rules, which meet the same tolerance there
    np.testing.assert_array_equal(fo._log_bvn_numpy(h[ok][:500], k[ok][:500], rho[ok][:500]),
                                  lp[ok][:500])
    comp = fo._log_bvn(h[ok], k[ok], rho[ok])
    assert np.max(np.abs(comp - ref)) <= ATOL_BULK


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
