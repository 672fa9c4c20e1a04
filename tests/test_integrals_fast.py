"""fastpath.integrals on its own: Gaussian integrals over polyhedra against independent references.

References used here (none of them shares code with the fast path):

* S = 1: the closed forms of the truncated normal, in mpmath (``_mp_interval``).
* S = 2: a 1-D quadrature over z1 of the exact conditional z2-integrals (``_quad2``, scipy
  in float64 for moderate cases; ``_mp_quad2``, mpmath with the integrand's peak located
  and the interval split geometrically around it, for the tails, slow).
* Any S: the signed vertex-cone sum evaluated term by term with the mpmath orthant moments
  of verified_dgn.orthant (``_naive_lawrence``: the slow loop version of the vectorised
  kernel, with its own flips, Tallis moments and no whitening), slabs and half-spaces in
  closed form, additivity under a cut by a hyperplane, invariance under affine maps, Monte
  Carlo (loose), brute-force nearest points (cvxpy).

Tolerances are stated at each comparison. The default selection runs in about 20 s here.
"""

from __future__ import annotations

import itertools
import math
import warnings

import mpmath
import numpy as np
import pytest

from fastpath._cones import ConeTable, _condition_on, _orthant_terms
from fastpath._polyhedron import polyhedron_geometry
from fastpath.integrals import (
    ConeBatch,
    PolyhedronCones,
    gaussian_moments,
    log_gaussian_mass,
    truncated_normal_moments,
)


# --------------------------------------------------------------------------- availability
def _orthant_available(k: int) -> bool:
    from fastpath.orthant import _log_mvn_cdf_std
    h = np.zeros((1, k))
    R = np.eye(k)[None] * 0.5 + 0.5
    try:
        _log_mvn_cdf_std(h, R)
    except NotImplementedError:
        return False
    return True


needs_k3 = pytest.mark.skipif(not _orthant_available(3),
                              reason="fastpath.orthant has no k = 3 kernel yet")
needs_k4 = pytest.mark.skipif(not _orthant_available(4),
                              reason="fastpath.orthant has no k = 4 kernel yet")


def _needs_k(S: int):
    return {3: needs_k3, 4: needs_k4}.get(S, lambda f: f)


# --------------------------------------------------------------------------- random inputs
def random_polytope(rng: np.random.Generator, S: int, bounded: bool, m: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Random {C z <= d}: bounded (rejection on the geometry) or unbounded toward -e1."""
    for _ in range(100):
        mm = int(rng.integers(S + 2, S + 7)) if m is None else m
        N = rng.normal(size=(mm, S))
        N /= np.linalg.norm(N, axis=1, keepdims=True)
        if not bounded:
            N[:, 0] = np.abs(N[:, 0]) + 0.2          # every normal has c_1 > 0: unbounded
        C = N * rng.uniform(0.5, 2.0, mm)[:, None]
        d = C @ rng.normal(size=S) + rng.uniform(0.2, 2.0, mm) * np.linalg.norm(C, axis=1)
        g = polyhedron_geometry(C, d)
        if g.empty:
            continue
        if bounded == (len(g.rays) == 0):
            return C, d
    raise RuntimeError("no polytope drawn")


def random_cov(rng: np.random.Generator, S: int, scale: float = 1.0) -> np.ndarray:
    A = rng.normal(size=(S, S))
    return scale * (A @ A.T + 0.2 * np.eye(S))


def cov_scale(cov: np.ndarray) -> float:
    return float(np.linalg.norm(cov, 2))


def assert_moments_close(got, ref, cov, rtol_log, tol_mean, tol_second, what=""):
    """Compare (log m0, E[z|P], E[zz^T|P]) with a reference.

    log m0: absolute (= relative error of m0). E[z|P]: relative to sqrt(||cov||) (the
    scale of z inside P). E[z z^T|P]: relative to max(||cov||, |E[zz^T]|) (a relative error
    of the second moment where the mean is far from 0).
    """
    lm, mP, M2P = got
    lr, mr, Mr = ref
    s = cov_scale(cov)
    e0 = abs(float(lm) - float(lr))
    e1 = float(np.max(np.abs(mP - mr))) / math.sqrt(s)
    e2 = float(np.max(np.abs(M2P - Mr))) / max(s, float(np.max(np.abs(Mr))))
    assert e0 <= rtol_log, f"{what}: |log m0 error| {e0:.3g} > {rtol_log:g} (log m0 = {lr})"
    assert e1 <= tol_mean, f"{what}: mean error {e1:.3g} > {tol_mean:g}"
    assert e2 <= tol_second, f"{what}: second-moment error {e2:.3g} > {tol_second:g}"
    return e0, e1, e2


# --------------------------------------------------------------------------- references
def _mp_interval(lo: float, hi: float, mu: float, var: float, dps: int = 40):
    """(log m0, E[z|P], E[z^2|P]) of N(mu, var) on [lo, hi] in mpmath (closed forms)."""
    with mpmath.workdps(dps):
        s = mpmath.sqrt(mpmath.mpf(var))
        mu = mpmath.mpf(mu)
        a = (mpmath.mpf(lo) - mu) / s if np.isfinite(lo) else -mpmath.inf
        b = (mpmath.mpf(hi) - mu) / s if np.isfinite(hi) else mpmath.inf
        # the difference of the two cdfs on the side of the tail, with no cancellation
        P = mpmath.ncdf(-a) - mpmath.ncdf(-b) if a > 0 else mpmath.ncdf(b) - mpmath.ncdf(a)
        pa = mpmath.npdf(a) if mpmath.isfinite(a) else mpmath.mpf(0)
        pb = mpmath.npdf(b) if mpmath.isfinite(b) else mpmath.mpf(0)
        apa = a * pa if mpmath.isfinite(a) else mpmath.mpf(0)
        bpb = b * pb if mpmath.isfinite(b) else mpmath.mpf(0)
        e1 = (pa - pb) / P
        e2 = 1 + (apa - bpb) / P
        mean = mu + s * e1
        second = mu * mu + 2 * mu * s * e1 + s * s * e2
        return float(mpmath.log(P)), float(mean), float(second)


def _quad2(C, d, mu, cov):
    """S = 2 reference by scipy quad over z1 of the closed-form z2-integrals (moderate m0)."""
    from scipy import integrate
    from scipy.special import ndtr
    from scipy.stats import norm

    s11 = cov[0, 0]
    beta = cov[1, 0] / s11
    v = cov[1, 1] - cov[1, 0] ** 2 / s11
    sv = math.sqrt(v)
    bps = set()
    for i, j in itertools.combinations(range(len(d)), 2):
        det = C[i, 0] * C[j, 1] - C[i, 1] * C[j, 0]
        if det != 0:
            bps.add((d[i] * C[j, 1] - d[j] * C[i, 1]) / det)
    bps = sorted(bps)

    def inner(t, k):
        lo, hi = -np.inf, np.inf
        for (c1, c2), dd in zip(C, d):
            if c2 > 0:
                hi = min(hi, (dd - c1 * t) / c2)
            elif c2 < 0:
                lo = max(lo, (dd - c1 * t) / c2)
            elif c1 * t > dd:
                return 0.0
        if lo >= hi:
            return 0.0
        mc = mu[1] + beta * (t - mu[0])
        a, b = (lo - mc) / sv, (hi - mc) / sv
        P = ndtr(-a) - ndtr(-b) if a > 0 else ndtr(b) - ndtr(a)
        pa, pb = norm.pdf(a), norm.pdf(b)
        apa = a * pa if np.isfinite(a) else 0.0
        bpb = b * pb if np.isfinite(b) else 0.0
        w = norm.pdf(t, mu[0], math.sqrt(s11))
        E1 = pa - pb
        E2 = P + apa - bpb
        vals = (P, t * P, mc * P + sv * E1, t * t * P, t * (mc * P + sv * E1),
                mc * mc * P + 2 * mc * sv * E1 + v * E2)
        return w * vals[k]

    lo_t = min(bps + [mu[0]]) - 40 * math.sqrt(s11)
    hi_t = max(bps + [mu[0]]) + 40 * math.sqrt(s11)
    pts = [lo_t] + [b for b in bps if lo_t < b < hi_t] + [hi_t]
    out = []
    for k in range(6):
        tot = 0.0
        for a, b in zip(pts[:-1], pts[1:]):
            tot += integrate.quad(inner, a, b, args=(k,), epsabs=0, epsrel=2e-14, limit=400)[0]
        out.append(tot)
    m0 = out[0]
    return (math.log(m0), np.array([out[1], out[2]]) / m0,
            np.array([[out[3], out[4]], [out[4], out[5]]]) / m0)


def _mp_quad2(C, d, mu, cov, dps=30):
    """S = 2 reference in mpmath, accurate in the far tails (slow: seconds per case).

    Same integrand as :func:`_quad2`; on every piece between breakpoints the log-integrand
    is concave, its maximum is located by golden section and the piece is split
    geometrically around it, so the quadrature resolves a peak of any width.
    """
    with mpmath.workdps(dps):
        Cm = [[mpmath.mpf(float(x)) for x in r] for r in C]
        dm = [mpmath.mpf(float(x)) for x in d]
        mu_ = [mpmath.mpf(float(x)) for x in mu]
        Sm = [[mpmath.mpf(float(x)) for x in r] for r in cov]
        s11 = Sm[0][0]
        b = Sm[1][0] / s11
        v = Sm[1][1] - Sm[1][0] ** 2 / s11
        sv, sd1 = mpmath.sqrt(v), mpmath.sqrt(s11)
        m = len(Cm)
        bps = set()
        for i, j in itertools.combinations(range(m), 2):
            det = Cm[i][0] * Cm[j][1] - Cm[i][1] * Cm[j][0]
            if det != 0:
                bps.add((dm[i] * Cm[j][1] - dm[j] * Cm[i][1]) / det)
        bps = sorted(bps)

        def inner(t):
            lo, hi = -mpmath.inf, mpmath.inf
            for i in range(m):
                c1, c2 = Cm[i]
                if c2 > 0:
                    hi = min(hi, (dm[i] - c1 * t) / c2)
                elif c2 < 0:
                    lo = max(lo, (dm[i] - c1 * t) / c2)
                elif c1 * t > dm[i]:
                    return None
            if lo >= hi:
                return None
            mc = mu_[1] + b * (t - mu_[0])
            a, c = (lo - mc) / sv, (hi - mc) / sv
            P = mpmath.ncdf(-a) - mpmath.ncdf(-c) if a > 0 else mpmath.ncdf(c) - mpmath.ncdf(a)
            pa = mpmath.npdf(a) if mpmath.isfinite(a) else 0
            pc = mpmath.npdf(c) if mpmath.isfinite(c) else 0
            E1 = pa - pc
            E2 = P + (a * pa if mpmath.isfinite(a) else 0) - (c * pc if mpmath.isfinite(c) else 0)
            w = mpmath.npdf((t - mu_[0]) / sd1) / sd1
            e2 = mc * P + sv * E1
            return (w * P, w * t * P, w * e2, w * t * t * P, w * t * e2,
                    w * (mc * mc * P + 2 * mc * sv * E1 + v * E2))

        def logf(t):
            r = inner(t)
            return -mpmath.inf if (r is None or r[0] <= 0) else mpmath.log(r[0])

        pts = [-mpmath.inf] + bps + [mpmath.inf]
        tot = [mpmath.mpf(0)] * 6
        for a, c in zip(pts[:-1], pts[1:]):
            if a == -mpmath.inf and c == mpmath.inf:
                mid = mu_[0]
            elif a == -mpmath.inf:
                mid = c - sd1
            elif c == mpmath.inf:
                mid = a + sd1
            else:
                mid = (a + c) / 2
            if inner(mid) is None:
                continue
            lo_ = a if a != -mpmath.inf else min(c, mu_[0]) - 100 * sd1
            hi_ = c if c != mpmath.inf else max(a, mu_[0]) + 100 * sd1
            g = (mpmath.sqrt(5) - 1) / 2
            x1, x2 = hi_ - g * (hi_ - lo_), lo_ + g * (hi_ - lo_)
            f1, f2 = logf(x1), logf(x2)
            for _ in range(300):
                if f1 < f2:
                    lo_, x1, f1 = x1, x2, f2
                    x2 = lo_ + g * (hi_ - lo_)
                    f2 = logf(x2)
                else:
                    hi_, x2, f2 = x2, x1, f1
                    x1 = hi_ - g * (hi_ - lo_)
                    f1 = logf(x1)
                if hi_ - lo_ < mpmath.mpf(10) ** (-dps + 5) * (1 + abs(lo_)):
                    break
            ts = (lo_ + hi_) / 2
            fts = logf(ts)
            h = sd1
            for _ in range(300):  # width: where the log-integrand has dropped by about 1
                right = logf(ts + h) if (c == mpmath.inf or ts + h < c) else -mpmath.inf
                left = logf(ts - h) if (a == -mpmath.inf or ts - h > a) else -mpmath.inf
                if max(left, right) >= fts - 1:
                    break
                h /= 2
            sp = [ts]
            k = h / 8
            while True:
                added = False
                if a == -mpmath.inf or ts - k > a:
                    sp.append(ts - k)
                    added = True
                if c == mpmath.inf or ts + k < c:
                    sp.append(ts + k)
                    added = True
                if not added or k > 1e4 * sd1 * (1 + abs(ts - mu_[0]) / sd1):
                    break
                k *= 2
            sp = sorted(set(sp + [a, c]))
            for k6 in range(6):
                tot[k6] += mpmath.quad(lambda t, k6=k6: (inner(t) or (0,) * 6)[k6], sp)
        m0 = tot[0]
        return (float(mpmath.log(m0)), np.array([float(tot[1] / m0), float(tot[2] / m0)]),
                np.array([[float(tot[3] / m0), float(tot[4] / m0)],
                          [float(tot[4] / m0), float(tot[5] / m0)]]))


def _naive_lawrence(C, d, mu, cov, dps=30):
    """Slow loop version of the vectorised kernel: the signed vertex-cone sum term by term.

    Uses the generic direction of the geometry (any valid c gives the same sum), flips the
    generators with c.g > 0, and evaluates every cone {y = sigma L (z - mu) <= sigma L (v - mu)}
    with the mpmath Tallis moments of verified_dgn.orthant; no whitening, no standardisation,
    no log space.
    """
    from verified_dgn.orthant import orthant_moments

    g = polyhedron_geometry(np.asarray(C, float), np.asarray(d, float))
    assert g.dim == g.ambient_dim, "naive version: pointed polyhedra only"
    S = g.dim
    c = g.c_generic
    with mpmath.workdps(dps):
        m0 = mpmath.mpf(0)
        m1 = [mpmath.mpf(0)] * S
        M2 = [[mpmath.mpf(0)] * S for _ in range(S)]
        mu_m = mpmath.matrix([float(x) for x in mu])
        Sig = mpmath.matrix([[float(x) for x in r] for r in cov])
        for p in range(g.n_pieces):
            L = g.piece_L[p]
            v = g.vertices[g.piece_vertex[p]]
            G = -np.linalg.inv(L)                      # columns: generators
            sigma = np.where(c @ G > 0, -1.0, 1.0)
            sign = int(np.prod(sigma))
            Ls = mpmath.matrix((sigma[:, None] * L).tolist())
            b = Ls * (mpmath.matrix(v.tolist()) - mu_m)
            K = Ls * Sig * Ls.T
            K = (K + K.T) / 2                           # exactly symmetric for the oracle
            P, y1, Y2 = orthant_moments([b[i] for i in range(S)],
                                        [[K[i, j] for j in range(S)] for i in range(S)], dps=dps)
            Li = Ls ** -1
            z1 = Li * mpmath.matrix([y1[i] for i in range(S)])      # int (z - mu)
            Z2 = Li * mpmath.matrix([[Y2[i, j] for j in range(S)] for i in range(S)]) * Li.T
            m0 += sign * P
            for i in range(S):
                m1[i] += sign * z1[i]
                for j in range(S):
                    M2[i][j] += sign * Z2[i, j]
        mean = [mu_m[i] + m1[i] / m0 for i in range(S)]
        second = [[M2[i][j] / m0 + mu_m[i] * m1[j] / m0 + m1[i] / m0 * mu_m[j]
                   + mu_m[i] * mu_m[j] for j in range(S)] for i in range(S)]
        return (float(mpmath.log(m0)), np.array([float(x) for x in mean]),
                np.array([[float(x) for x in r] for r in second]))


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
            # of size e^{-h^2/2} computed in log space: ~eps h^2 relative to the cov scale
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
        pytest.skip("fastpath.orthant has no k = 3 kernel yet")
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
        pytest.skip("fastpath.orthant has no k = 3 kernel yet")
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
        pytest.skip(f"fastpath.orthant has no k = {S} kernel yet")
    rng = np.random.default_rng(50 + S)
    # S = 4 orthants cost ~1 ms each in fastpath.orthant: one polytope, two distances
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
        pytest.skip("fastpath.orthant has no k = 3 kernel yet")
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
        pytest.skip(f"fastpath.orthant has no k = {S} kernel yet")
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


# --------------------------------------------------------------------------- geometry
def test_nearest_point_is_the_mahalanobis_projection():
    """The nearest point used for the direction c, against a brute-force QP (cvxpy)."""
    cp = pytest.importorskip("cvxpy")
    rng = np.random.default_rng(80)
    for S in (2, 3, 4):
        for bounded in (True, False):
            C, d = random_polytope(rng, S, bounded)
            g = polyhedron_geometry(C, d)
            table = ConeTable.from_geometries([g])
            cov = random_cov(rng, S)
            U = np.linalg.cholesky(cov)
            mus = g.interior_point + rng.normal(size=(4, S)) * 4
            xs, _, _ = table._nearest_points(mus[:, None], U[None, None], np.linalg.inv(U)[None, None])
            for n in range(4):
                z = cp.Variable(S)
                Ui = np.linalg.inv(U)
                prob = cp.Problem(cp.Minimize(cp.sum_squares(Ui @ (z - mus[n]))), [C @ z <= d])
                prob.solve()
                x_ref = Ui @ (z.value - mus[n])
                assert np.linalg.norm(xs[n, 0]) <= np.linalg.norm(x_ref) * (1 + 1e-6) + 1e-6
                np.testing.assert_allclose(xs[n, 0], x_ref, atol=1e-4 * (1 + np.linalg.norm(x_ref)))


@pytest.mark.parametrize("S", [2, 3, 4])
def test_vectorised_geometry_matches_vertex_loop(S):
    """The loop-free construction for simple polyhedra = the per-vertex loop (same cones)."""
    rng = np.random.default_rng(85 + S)
    for bounded in (True, False):
        for _ in range(3):
            C, d = random_polytope(rng, S, bounded)
            a = polyhedron_geometry(C, d)
            b = polyhedron_geometry(C, d, vectorised=False)
            assert a.simple and b.simple
            np.testing.assert_allclose(a.vertices, b.vertices, rtol=1e-13, atol=1e-13)
            assert [set(x) for x in a.active] == [set(x) for x in b.active]
            assert a.n_edges == b.n_edges and len(a.rays) == len(b.rays)
            # the same cone at every vertex: same rows (any order), flips of the same edges
            for p in range(a.n_pieces):
                La, Lb = a.piece_L[p], b.piece_L[p]
                match = np.abs(La @ Lb.T - 1) < 1e-12
                assert match.sum() == S and np.all(match.sum(axis=0) == 1)
                ea = {tuple(np.round(a.piece_orient[p, i] * a.edge_dir[a.piece_edge[p, i]], 9))
                      for i in range(S)}
                eb = {tuple(np.round(b.piece_orient[p, i] * b.edge_dir[b.piece_edge[p, i]], 9))
                      for i in range(S)}
                assert ea == eb


def test_interval_specialisation_matches_generic_cones():
    """dim 1 closed form (the default) against the general cone code (generic direction)."""
    rng = np.random.default_rng(86)
    for C, d in [(np.array([[1.0], [-2.0]]), np.array([1.0, 1.0])),
                 (np.array([[1.0]]), np.array([0.3])), (np.array([[-1.0]]), np.array([0.3]))]:
        g = polyhedron_geometry(C, d)
        table = ConeTable.from_geometries([g])
        mu = rng.normal(size=(20, 1, 1)) * 1.5
        U = np.sqrt(rng.uniform(0.2, 2.0, size=(20, 1, 1, 1)))
        a = table.evaluate(mu, U)
        b = table.evaluate(mu, U, direction="generic")
        np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-13)
        np.testing.assert_allclose(a[2], b[2], rtol=0, atol=1e-13)


def test_geometry_of_a_square_pyramid_nonsimple_apex():
    """Apex with 4 facets: its tangent cone is triangulated into 2 simplicial cones."""
    C = np.array([[1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, -1, 1], [0, 0, -1.0]])
    d = np.array([1, 1, 1, 1, 0.0])
    g = polyhedron_geometry(C, d)
    assert len(g.vertices) == 5 and g.n_edges == 8 and len(g.rays) == 0
    assert g.n_pieces == 6 and not g.simple
    # every piece's generators are edges at its apex, and piece rows are unit
    np.testing.assert_allclose(np.linalg.norm(g.piece_L, axis=-1), 1.0, rtol=1e-14)


@needs_k3
def test_nonsimple_vertices_against_split_pieces():
    """Square pyramid (non-simple apex) and a 5-facet cone with apex 0 (bias-free region)
    against the sum over two simple halves."""
    rng = np.random.default_rng(90)
    cases = []
    C = np.array([[1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, -1, 1], [0, 0, -1.0]])
    cases.append((C, np.array([1, 1, 1, 1, 0.0]), np.array([1.0, -1.0, 0.0]), 0.0))
    ang = np.sort(rng.uniform(0, 2 * np.pi, 5))
    Ck = np.c_[np.cos(ang), np.sin(ang), -np.full(5, 0.8)]   # cone {c_j . z <= 0} around +e3
    cases.append((Ck, np.zeros(5), np.array([1.0, 0.3, 0.0]), 0.0))
    for C, d, h, e in cases:
        cov = random_cov(rng, 3)
        for mu in (np.array([0.1, 0.2, 0.5]), np.array([3.0, -4.0, -6.0])):
            m = gaussian_moments(C, d, mu, cov)
            a = gaussian_moments(np.vstack([C, h]), np.append(d, e), mu, cov)
            b = gaussian_moments(np.vstack([C, -h]), np.append(d, -e), mu, cov)
            assert abs(a[0] + b[0] - m[0]) <= 1e-11 * m[0]
            np.testing.assert_allclose(a[1] + b[1], m[1], rtol=1e-10, atol=1e-11 * m[0])
            np.testing.assert_allclose(a[2] + b[2], m[2], rtol=1e-10, atol=1e-11 * m[0])


def test_from_region_with_a_boundary_interior_point():
    """A region whose interior_point lies on its boundary: the LP is used instead."""
    from types import SimpleNamespace

    rng = np.random.default_rng(89)
    C, d = random_polytope(rng, 2, bounded=True)
    g = polyhedron_geometry(C, d)
    cov = random_cov(rng, 2)
    mu = rng.normal(size=2)
    ref = PolyhedronCones.from_halfspaces(C, d).truncated_moments(mu, cov)
    for ip in (g.vertices[0], None, np.array([np.nan, 0.0])):
        reg = SimpleNamespace(C=g.C, d=g.d, interior_point=ip)
        got = PolyhedronCones.from_region(reg).truncated_moments(mu, cov)
        assert abs(got[0] - ref[0]) <= 1e-13
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, atol=1e-13)


def test_redundant_duplicate_and_scaled_rows():
    rng = np.random.default_rng(91)
    C, d = random_polytope(rng, 2, bounded=True)
    cov = random_cov(rng, 2)
    mu = rng.normal(size=2)
    ref = truncated_normal_moments(C, d, mu, cov)
    C2 = np.vstack([C, C[:2] * 3.0, C[3:4], rng.normal(size=(3, 2))])
    g = polyhedron_geometry(C, d)
    # redundant rows: far outside P
    extra = C2[-3:]
    d2 = np.concatenate([d, d[:2] * 3.0, d[3:4],
                         np.max(extra @ g.vertices.T, axis=1) + 5.0])
    got = truncated_normal_moments(C2, d2, mu, cov)
    assert abs(got[0] - ref[0]) <= 1e-13
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("S", [1, 2, 3])
def test_empty_and_no_interior(S):
    mu = np.zeros(S)
    cov = np.eye(S)
    e = np.eye(S)[0]
    for C, d in [(np.array([e, -e]), np.array([-1.0, 0.0])),    # empty
                 (np.array([e, -e]), np.array([0.5, -0.5])),    # a hyperplane (no interior)
                 (np.zeros((1, S)), np.array([-1.0]))]:         # 0 <= -1
        m0, m1, M2 = gaussian_moments(C, d, mu, cov)
        assert m0 == 0.0 and np.all(m1 == 0) and np.all(M2 == 0)
        lm, mP, M2P = truncated_normal_moments(C, d, mu, cov)
        assert lm == -np.inf and np.all(mP == 0) and np.all(M2P == 0)
        assert not np.isnan(lm)


def test_nearly_singular_cov_works_and_singular_raises():
    rng = np.random.default_rng(92)
    C, d = random_polytope(rng, 2, bounded=True)
    u = np.array([1.0, 1.0]) / math.sqrt(2)
    mu = polyhedron_geometry(C, d).interior_point
    for eps in (1e-7,):
        cov = np.outer(u, u) + eps * np.eye(2)
        got = truncated_normal_moments(C, d, mu, cov)
        ref = _quad2(C, d, mu, cov)
        # conditioning: errors grow like cond(cov) * eps_machine
        tol = 1e-12 / eps ** 0.5
        assert_moments_close(got, ref, cov, tol, tol, tol, f"eps={eps}")
    with pytest.raises(ValueError, match="singular"):
        gaussian_moments(C, d, mu, np.outer(u, u) + 1e-17 * np.eye(2))
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_moments(C, d, mu, np.outer(u, u) - 1e-3 * np.eye(2))


# --------------------------------------------------------------------------- cancellation
def test_direction_toward_the_mean_limits_cancellation():
    """With c toward the mean the terms of the signed sum are at most ~dist^{S-1} times m0;
    with a fixed direction they are e^{dist^2/2}-times larger and the sum is garbage."""
    rng = np.random.default_rng(93)
    C, d = random_polytope(rng, 2, bounded=True)
    g = polyhedron_geometry(C, d)
    table = ConeTable.from_geometries([g])
    cov = random_cov(rng, 2)
    U = np.linalg.cholesky(cov)[None, None]
    dirs = rng.normal(size=(40, 2))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    mus = g.interior_point + 30 * dirs * math.sqrt(cov_scale(cov))
    lm, _, _, lc = table.evaluate(mus[:, None], U, moments=False)
    lmg, _, _, lcg = table.evaluate(mus[:, None], U, moments=False, direction="generic")
    assert np.all(np.isfinite(lm)) and np.all(lm < -50)
    assert np.max(lc) < math.log(1e4)          # at most 4 digits lost at distance ~30 sd
    # a fixed direction loses everything: more than 15 digits, or a sum <= 0 (nan)
    lost = np.where(np.isfinite(lcg), lcg, np.inf)
    assert np.median(lost) > math.log(1e15)


def _table_and_two_gaussians(bounded, far):
    """A random 2-D polyhedron's ConeTable, two means (its interior point, and that point
    moved by ``far`` along e1) (2, 1, 2) and one Cholesky factor (1, 1, 2, 2)."""
    rng = np.random.default_rng(97)
    C, d = random_polytope(rng, 2, bounded=bounded)
    g = polyhedron_geometry(C, d)
    U = np.linalg.cholesky(random_cov(rng, 2))[None, None]
    mus = g.interior_point + np.array([[[0.0, 0.0]], [[far, 0.0]]])
    return ConeTable.from_geometries([g]), mus, U


def _break_last_gaussian(monkeypatch):
    """Make ConeTable._evaluate report a complete cancellation (log_cancel nan, i.e. a sum
    <= 0) for the last Gaussian, whatever the direction."""
    orig = ConeTable._evaluate

    def broken(self, mean, chol, moments, direction="nearest"):
        lm, dm, C2, lc = orig(self, mean, chol, moments, direction)
        lc = lc.copy()
        lc[-1] = np.nan
        return lm, dm, C2, lc

    monkeypatch.setattr(ConeTable, "_evaluate", broken)


def test_catastrophic_cancellation_fallback_is_nan_free(monkeypatch):
    """If both directions cancel completely (unbounded P: no cubature) the result is a
    flagged point-mass limit, not NaN."""
    table, mus, U = _table_and_two_gaussians(bounded=False, far=40.0)
    good = table.evaluate(mus, U)
    _break_last_gaussian(monkeypatch)       # the far Gaussian: "m0 <= 0" in both directions
    with pytest.warns(RuntimeWarning, match="cancellation"):
        lm, dm, C2, _ = table.evaluate(mus, U)
    assert np.all(np.isfinite(lm)) and np.all(np.isfinite(dm)) and np.all(np.isfinite(C2))
    assert lm[0, 0] == good[0][0, 0]         # the healthy Gaussian is untouched
    assert lm[1, 0] < good[0][1, 0]          # flagged value: below every term's rounding level


def test_complete_cancellation_of_a_bounded_polytope_goes_to_cubature(monkeypatch):
    """A bounded P whose cone sum cancelled completely is recomputed by simplex cubature:
    the same values as the healthy cone sum (to 1e-13), no warning, log_cancel 0."""
    table, mus, U = _table_and_two_gaussians(bounded=True, far=4.0)
    good = table.evaluate(mus, U)
    assert np.all(good[3] < 3.0)                 # healthy: the cone sum was kept
    _break_last_gaussian(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lm, dm, C2, lc = table.evaluate(mus, U)
    assert lm[0, 0] == good[0][0, 0] and lc[1, 0] == 0.0
    assert abs(lm[1, 0] - good[0][1, 0]) <= 1e-13
    np.testing.assert_allclose(dm[1, 0], good[1][1, 0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(C2[1, 0], good[2][1, 0], rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- batching
def test_batch_shapes_and_loop_equivalence():
    rng = np.random.default_rng(94)
    C, d = random_polytope(rng, 2, bounded=False)
    pc = PolyhedronCones.from_halfspaces(C, d)
    mu = rng.normal(size=(3, 4, 2)) * 3
    cov = np.stack([random_cov(rng, 2) for _ in range(4)])          # (4, 2, 2), broadcast
    lm, mP, M2P = pc.truncated_moments(mu, cov)
    assert lm.shape == (3, 4) and mP.shape == (3, 4, 2) and M2P.shape == (3, 4, 2, 2)
    for i, j in itertools.product(range(3), range(4)):
        one = pc.truncated_moments(mu[i, j], cov[j])
        assert one[0].shape == ()
        # same arithmetic up to the order of batched operations
        assert abs(one[0] - lm[i, j]) <= 1e-14 * max(1, abs(lm[i, j]))
        np.testing.assert_allclose(one[1], mP[i, j], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(one[2], M2P[i, j], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("S", [1, 2])
def test_cone_batch_equals_per_region_loop(S):
    """ConeBatch over a real partition (pointed, unbounded, all groups) = one region at a time."""
    import fastpath
    from verified_dgn import DGN

    net = DGN.random((S, 6, 5, 2), activation="leaky_relu", seed=3)
    P = fastpath.partition(net)
    rng = np.random.default_rng(95)
    cones = [PolyhedronCones.from_region(r) for r in P]
    # add special groups: an empty set and the whole space
    cones.append(PolyhedronCones.from_halfspaces(np.zeros((1, S)), np.array([-1.0])))
    cones.append(PolyhedronCones.from_halfspaces(np.zeros((0, S)), np.zeros(0)))
    batch = ConeBatch(cones)
    R = len(cones)
    mu = rng.normal(size=(5, R, S)) * 2
    cov = np.stack([random_cov(rng, S, 0.3) for _ in range(R)])
    lm, mP, M2P = batch.truncated_moments(mu, cov)
    assert lm.shape == (5, R)
    assert lm[0, -2] == -np.inf and lm[0, -1] == 0.0
    for r in range(R):
        one = cones[r].truncated_moments(mu[:, r], cov[r])
        # the two evaluations see inputs equal to rounding (other GEMM blockings), which can
        # pick different k = 2 formulas of ~1e-15 relative accuracy (orthant: Owen's T /
        # Plackett / conditioning); the signed cone sum multiplies their difference by its
        # cancellation factor (measured up to e^8.8 on this partition)
        lc = np.zeros(mu.shape[0])
        pc = cones[r]
        if pc._table is not None and pc.geometry.dim == S:
            lc = pc._table.evaluate(mu[:, r][:, None], np.linalg.cholesky(cov[r])[None, None],
                                    moments=False)[3][:, 0]
        amp = 1e-15 * np.exp(np.max(lc))
        np.testing.assert_allclose(one[0], lm[:, r], rtol=1e-13, atol=1e-13 + amp)
        np.testing.assert_allclose(one[1], mP[:, r], rtol=1e-12 + amp, atol=1e-13)
        np.testing.assert_allclose(one[2], M2P[:, r], rtol=1e-12 + amp, atol=1e-13)
    # one Gaussian for all regions: the regions tile the latent space, the masses sum to 1
    lm1 = batch.log_mass(np.broadcast_to(mu[:, :1], mu.shape), cov[0])
    np.testing.assert_allclose(np.exp(lm1[:, :-2]).sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("S", [1, 2, 3])
def test_log_mass_bound(S):
    """log Phi(-dist) bounds log m0 from above, tightly (within (S-1) log dist + O(1))."""
    if S == 3 and not _orthant_available(3):
        pytest.skip("fastpath.orthant has no k = 3 kernel yet")
    rng = np.random.default_rng(98 + S)
    cones = [PolyhedronCones.from_halfspaces(*random_polytope(rng, S, b)) for b in (True, False)]
    cones.append(PolyhedronCones.from_halfspaces(np.eye(S)[:1], np.ones(1)))    # a half-space
    batch = ConeBatch(cones)
    R = len(cones)
    mu = rng.normal(size=(30, R, S)) * rng.uniform(0, 15, size=(30, 1, 1))
    cov = np.stack([random_cov(rng, S) for _ in range(R)])
    bound = batch.log_mass_bound(mu, cov)
    lm = batch.log_mass(mu, cov)
    assert bound.shape == lm.shape == (30, R)
    assert np.all(lm <= bound + 1e-12 * (1 + np.abs(bound)))
    far = bound < -20
    d = np.sqrt(-2 * bound[far])
    assert np.all(bound[far] - lm[far] <= (S - 1) * np.log(d) + 8)


def test_sparse_pairs_equal_dense_batch():
    """truncated_moments_pairs on a random subset of (point, region) pairs = the dense batch."""
    import fastpath
    from verified_dgn import DGN

    rng = np.random.default_rng(99)
    net = DGN.random((2, 6, 6, 2), activation="relu", seed=2)
    cones = [PolyhedronCones.from_region(r) for r in fastpath.partition(net)]
    cones.append(PolyhedronCones.from_halfspaces(np.array([[1.0, 0.0]]), np.array([0.2])))
    cones.append(PolyhedronCones.from_halfspaces(np.zeros((1, 2)), np.array([-1.0])))
    batch = ConeBatch(cones)
    R = len(cones)
    mu = rng.normal(size=(6, R, 2)) * 2
    cov = np.stack([random_cov(rng, 2, 0.4) for _ in range(R)])
    dense = batch.truncated_moments(mu, cov)
    n_idx, r_idx = np.nonzero(rng.random((6, R)) < 0.5)
    perm = rng.permutation(len(n_idx))                      # any order of pairs
    n_idx, r_idx = n_idx[perm], r_idx[perm]
    sp = batch.truncated_moments_pairs(r_idx, mu[n_idx, r_idx], cov[r_idx])
    np.testing.assert_allclose(sp[0], dense[0][n_idx, r_idx], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(sp[1], dense[1][n_idx, r_idx], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(sp[2], dense[2][n_idx, r_idx], rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="region_index"):
        batch.truncated_moments_pairs(np.array([R]), mu[0, :1], cov[:1])


def test_partition_regions_tile_the_latent_space():
    """Sum over all regions of a partition: (1, mean, cov + mean mean^T)."""
    import fastpath
    from verified_dgn import DGN

    rng = np.random.default_rng(96)
    net = DGN.random((2, 8, 8, 2), activation="relu", seed=1)
    P = fastpath.partition(net)
    batch = ConeBatch.from_partition(P)
    mu = rng.normal(size=(3, 2))
    cov = random_cov(rng, 2, 0.5)
    R = len(P)
    m0, m1, M2 = (np.exp(batch.truncated_moments(np.repeat(mu[:, None], R, 1), cov)[0]),
                  *batch.truncated_moments(np.repeat(mu[:, None], R, 1), cov)[1:])
    s0 = m0.sum(axis=1)
    s1 = np.einsum("nr,nri->ni", m0, m1)
    s2 = np.einsum("nr,nrij->nij", m0, M2)
    np.testing.assert_allclose(s0, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s1, mu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s2, cov + mu[:, :, None] * mu[:, None, :], rtol=0, atol=1e-11)


def test_integrals_run_without_cddlib():
    """fastpath.integrals never imports pycddlib (a user who only trains needs no cddlib)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'cdd' or name.startswith('cdd.'):\n"
        "            raise ImportError('cddlib blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np, fastpath\n"
        "m0, m1, M2 = fastpath.gaussian_moments([[1.0, 0], [0, 1.0], [-1, -1.0]],\n"
        "                                       [1.0, 1, 1], [0.1, 0.2], np.eye(2))\n"
        "P = fastpath.partition(fastpath.DGN.random((2, 5, 2), seed=0))\n"
        "lm = fastpath.ConeBatch.from_partition(P).log_mass(np.zeros((len(P), 2)), np.eye(2))\n"
        "assert abs(np.exp(lm).sum() - 1) < 1e-12 and 0 < m0 < 1\n"
        "assert 'cdd' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- validation
def test_input_validation():
    C, d = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 1.0])
    mu, cov = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match="shape"):
        gaussian_moments(C, d[:1], mu, cov)
    with pytest.raises(ValueError, match=r"\(m, S\)"):
        gaussian_moments(C.ravel(), d, mu, cov)
    with pytest.raises(ValueError, match="1 to 4"):
        gaussian_moments(np.ones((2, 5)), d, np.zeros(5), np.eye(5))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_moments(C, np.array([np.nan, 1.0]), mu, cov)
    with pytest.raises(ValueError, match="infinite"):
        gaussian_moments(C, d, np.array([np.inf, 0.0]), cov)
    with pytest.raises(ValueError, match="mean must have shape"):
        gaussian_moments(C, d, np.zeros(3), cov)
    with pytest.raises(ValueError, match="cov must have shape"):
        gaussian_moments(C, d, mu, np.eye(3))
    with pytest.raises(ValueError, match="not symmetric"):
        gaussian_moments(C, d, mu, np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="broadcast"):
        gaussian_moments(C, d, np.zeros((3, 2)), np.broadcast_to(np.eye(2), (4, 2, 2)))
    with pytest.raises(TypeError):
        gaussian_moments(C, d, "a", cov)
    batch = ConeBatch([PolyhedronCones.from_halfspaces(C, d)] * 2)
    with pytest.raises(ValueError, match="mean must have shape"):
        batch.truncated_moments(np.zeros((4, 3, 2)), np.eye(2))
