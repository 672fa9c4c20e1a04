"""Inputs and independent references shared by the test_integrals_fast_*.py files (no tests).

References (none of them shares code with the fast path):

* S = 1: the closed forms of the truncated normal, in mpmath (``_mp_interval``).
* S = 2: a 1-D quadrature over z1 of the exact conditional z2-integrals (``_quad2``, scipy
  in float64 for moderate cases; ``_mp_quad2``, mpmath with the integrand's peak located
  and the interval split geometrically around it, for the tails, slow).
* Any S: the signed vertex-cone sum evaluated term by term with the mpmath orthant moments
  of verified_dgn.orthant (``_naive_lawrence``: the slow loop version of the vectorised
  kernel, with its own flips, Tallis moments and no whitening).
"""

from __future__ import annotations

import itertools
import math

import mpmath
import numpy as np
import pytest
from mpmath.calculus.quadrature import GaussLegendre

from fastpath._polyhedron import polyhedron_geometry


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
                              reason="fastpath.orthant has no k = 3 kernel")
needs_k4 = pytest.mark.skipif(not _orthant_available(4),
                              reason="fastpath.orthant has no k = 4 kernel")


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


def _breakpoints(C, d):
    """Sorted z1 of the pairwise intersections of the lines C_i z = d_i (float or mpmath
    entries): where the slices of P = {z : C z <= d} change their bounding rows."""
    bps = set()
    for i, j in itertools.combinations(range(len(d)), 2):
        det = C[i][0] * C[j][1] - C[i][1] * C[j][0]
        if det != 0:
            bps.add((d[i] * C[j][1] - d[j] * C[i][1]) / det)
    return sorted(bps)


def _slice_interval(C, d, t, inf):
    """(lo, hi), the z2 with (t, z2) in P = {z : C z <= d}, or None where that slice is
    empty (float or mpmath entries, ``inf`` of the same kind)."""
    lo, hi = -inf, inf
    for (c1, c2), dj in zip(C, d):
        if c2 > 0:
            hi = min(hi, (dj - c1 * t) / c2)
        elif c2 < 0:
            lo = max(lo, (dj - c1 * t) / c2)
        elif c1 * t > dj:
            return None
    return (lo, hi) if lo < hi else None


def _quad2(C, d, mu, cov):
    """S = 2 reference by scipy quad over z1 of the closed-form z2-integrals (moderate m0)."""
    from scipy import integrate
    from scipy.special import ndtr
    from scipy.stats import norm

    s11 = cov[0, 0]
    beta = cov[1, 0] / s11
    v = cov[1, 1] - cov[1, 0] ** 2 / s11
    sv = math.sqrt(v)
    bps = _breakpoints(C, d)

    def inner(t, k):
        bd = _slice_interval(C, d, t, np.inf)
        if bd is None:
            return 0.0
        lo, hi = bd
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


def _mp_polygon(C, d, mean, cov, centre: float | None = None, scale: float = 1.0,
                dps: int = 50):
    """log m0, E[z | P] and Cov[z | P] of N(mean, cov) on P = {z : C z <= d} in R^2.

    z2 | z1 is normal; for fixed z1 the slice of P is an interval of z2 whose three
    moments are closed forms, integrated over z1 by 24-point Gauss-Legendre rules on the
    interval of z1 split at the vertices of P and at centre +- scale 2^-k (the rule then
    resolves the steep tails far out); ``centre`` defaults to the mode of the z1-marginal.
    Central moments are integrated about the mean found first (no cancellation).
    """
    with mpmath.workdps(dps):
        C = [[mpmath.mpf(float(v)) for v in row] for row in np.asarray(C)]
        d = [mpmath.mpf(float(v)) for v in np.asarray(d)]
        m1, m2 = (mpmath.mpf(float(v)) for v in mean)
        s11, s12, s22 = (mpmath.mpf(float(cov[0][0])), mpmath.mpf(float(cov[0][1])),
                         mpmath.mpf(float(cov[1][1])))
        sc = mpmath.sqrt(s22 - s12 ** 2 / s11)

        def moments(z1):
            bd = _slice_interval(C, d, z1, mpmath.inf)
            if bd is None:
                return mpmath.mpf(0), mpmath.mpf(0), mpmath.mpf(0)
            m = m2 + s12 / s11 * (z1 - m1)
            a, b = (bd[0] - m) / sc, (bd[1] - m) / sc
            P = mpmath.ncdf(-a) - mpmath.ncdf(-b) if a > 0 else mpmath.ncdf(b) - mpmath.ncdf(a)
            pa = mpmath.npdf(a) if a != -mpmath.inf else mpmath.mpf(0)
            pb = mpmath.npdf(b) if b != mpmath.inf else mpmath.mpf(0)
            apa = a * pa if a != -mpmath.inf else mpmath.mpf(0)
            bpb = b * pb if b != mpmath.inf else mpmath.mpf(0)
            e1, e2 = pa - pb, P + apa - bpb
            w = mpmath.npdf((z1 - m1) / mpmath.sqrt(s11)) / mpmath.sqrt(s11)
            return w * P, w * (m * P + sc * e1), w * (m * m * P + 2 * m * sc * e1 + sc * sc * e2)

        # the interval of z1 and its breakpoints (the vertices of P)
        verts = []
        for i in range(len(C)):
            for j in range(i + 1, len(C)):
                det = C[i][0] * C[j][1] - C[i][1] * C[j][0]
                if det == 0:
                    continue
                z1 = (d[i] * C[j][1] - d[j] * C[i][1]) / det
                z2 = (C[i][0] * d[j] - C[j][0] * d[i]) / det
                if all(r[0] * z1 + r[1] * z2 <= dj + mpmath.mpf(10) ** (8 - dps) * (1 + abs(dj))
                       for r, dj in zip(C, d)):
                    verts.append(z1)
        lo, hi = min(verts), max(verts)
        if _slice_interval(C, d, lo - 1, mpmath.inf) is not None:
            lo = -mpmath.inf
        if _slice_interval(C, d, hi + 1, mpmath.inf) is not None:
            hi = mpmath.inf
        if centre is None:
            # the mode of the z1-marginal, which is log-concave: ternary search
            big = 10 * (abs(m1) + abs(m2) + 10 * mpmath.sqrt(s11 + s22) + max(abs(v) for v in d))
            a_, b_ = max(lo, -big), min(hi, big)

            def lw(z):
                v = moments(z)[0]
                return mpmath.log(v) if v > 0 else -mpmath.inf

            for _ in range(120):
                t1, t2 = a_ + (b_ - a_) / 3, b_ - (b_ - a_) / 3
                if lw(t1) < lw(t2):
                    a_ = t1
                else:
                    b_ = t2
            centre = (a_ + b_) / 2
        c, sc_ = mpmath.mpf(centre), mpmath.mpf(scale)
        pts = set(verts)
        for k in range(-40, 6):
            pts.update([c + sc_ * mpmath.mpf(2) ** k, c - sc_ * mpmath.mpf(2) ** k])
        pts.add(c)
        pts = sorted(p for p in pts if lo < p < hi)
        pts = [lo] + pts + [hi]

        # composite 24-point Gauss-Legendre (mpmath's nodes) on the segments; one
        # evaluation per node, central moments from the stored values
        far = 4096 * sc_
        pts = [max(p, c - far) if p == -mpmath.inf else min(p, c + far) if p == mpmath.inf else p
               for p in pts]
        x, wts = zip(*GaussLegendre(mpmath.mp).calc_nodes(4, mpmath.mp.prec))
        Z, W, M = [], [], []
        for a_, b_ in zip(pts[:-1], pts[1:]):
            h = (b_ - a_) / 2
            for xi, wi in zip(x, wts):
                z = a_ + h * (xi + 1)
                Z.append(z)
                W.append(h * wi)
                M.append(moments(z))
        I0 = mpmath.fsum(w_ * m_[0] for w_, m_ in zip(W, M))
        E1 = mpmath.fsum(w_ * m_[0] * z for w_, m_, z in zip(W, M, Z)) / I0
        E2 = mpmath.fsum(w_ * m_[1] for w_, m_ in zip(W, M)) / I0
        V11 = mpmath.fsum(w_ * m_[0] * (z - E1) ** 2 for w_, m_, z in zip(W, M, Z)) / I0
        V12 = mpmath.fsum(w_ * (m_[1] - E2 * m_[0]) * (z - E1) for w_, m_, z in zip(W, M, Z)) / I0
        V22 = mpmath.fsum(w_ * (m_[2] - 2 * E2 * m_[1] + E2 ** 2 * m_[0])
                      for w_, m_ in zip(W, M)) / I0
        return (mpmath.log(I0), [E1, E2], [[V11, V12], [V12, V22]])


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
        bps = _breakpoints(Cm, dm)

        def inner(t):
            bd = _slice_interval(Cm, dm, t, mpmath.inf)
            if bd is None:
                return None
            lo, hi = bd
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


# --------------------------------------------------------------------------- E-step-like pairs
def estep_like_pairs(net_seed: int, pair_seed: int, n_gauss: int, spread: float, shared: bool
                     ) -> tuple[object, np.ndarray, np.ndarray, np.ndarray]:
    """The cone table of a random S = 2 partition (leaky-ReLU 0.1, widths (2, 12, 12, 3)) and
    ``n_gauss`` Gaussians per polygon as an E-step meets them: means ``spread`` * N(0, I),
    covariances F F^T + 0.05 I (one per polygon when ``shared``, else one per pair).

    Returns (table, mean (n_gauss, n, 2), cov (1 or n_gauss, n, 2, 2), its Cholesky factors).
    """
    from dgn_core.model import DGN
    from fastpath.integrals import ConeBatch
    from fastpath.partition_walk import partition

    net = DGN.random((2, 12, 12, 3), activation="leaky_relu", slope=0.1, seed=net_seed,
                     noise_var=0.05)
    (_, _, table), = ConeBatch.from_partition(partition(net))._groups
    rng = np.random.default_rng(pair_seed)
    n = table.n_poly
    mean = spread * rng.normal(size=(n_gauss, n, 2))
    F = 0.3 * rng.normal(size=(1 if shared else n_gauss, n, 2, 2))
    cov = F @ np.swapaxes(F, -1, -2) + 0.05 * np.eye(2)
    return table, mean, cov, np.linalg.cholesky(cov)


def thin_pairs(table: object, chol: np.ndarray) -> np.ndarray:
    """(Nc, n) whether each polygon's thinnest cone, whitened by ``chol`` (Nc, n, 2, 2), has
    1 - rho^2 below ``fastpath._jit_cones._THIN_CONE`` (such bounded polygons go to the
    cubature unsummed)."""
    from fastpath._jit_cones import _THIN_CONE

    A0 = table.p_L[None] @ chol[:, table.p_owner]                       # type: ignore[attr-defined]
    A0 = A0 / np.linalg.norm(A0, axis=-1, keepdims=True)
    det2 = np.linalg.det(A0) ** 2
    return np.minimum.reduceat(det2, table.p_seg, axis=1) < _THIN_CONE  # type: ignore[attr-defined]


def moment_errors(table: object, mean: np.ndarray, chol: np.ndarray, out: tuple, a: np.ndarray,
                  j: np.ndarray) -> np.ndarray:
    """Relative errors (P,) of the moments ``out`` = (_, E - mean (N, n, 2), Cov (N, n, 2, 2),
    ...) at the S = 2 pairs (a, j) against the simplex cubature with an unbounded budget:
    max of |mean error| / sqrt(trace) and |covariance error| / trace, NaN where the
    cubature did not resolve a pair."""
    got = table._cubature_compiled(mean, chol, True, a, j,  # type: ignore[attr-defined]
                                   np.full(a.size, 10**6))
    err = np.full(mean.shape[:2], np.nan)
    if got is None:
        return err[a, j]
    ga, gj, _, gdm, gtc = got
    tr = np.einsum("...ii->...", gtc)
    err[ga, gj] = np.maximum(np.abs(out[1][ga, gj] - gdm).max(axis=-1) / np.sqrt(tr),
                             np.abs(out[2][ga, gj] - gtc).max(axis=(-1, -2)) / tr)
    return err[a, j]


def exact_mean_cov(table: object, j: int, mean: np.ndarray, cov: np.ndarray
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """(log m0, E[z|P], Cov[z|P]) of polygon j of ``table`` for N(mean, cov) by verified_dgn
    (mpmath, 25 digits); the central covariance is formed in mpmath (in float64 the
    difference E[z z^T] - E[z] E[z]^T would lose the digits it is checked for)."""
    import mpmath

    import verified_dgn

    fv = table.f_valid[j]  # type: ignore[attr-defined]
    m0, m1, M2 = verified_dgn.gaussian_moments(table.f_C[j][fv],  # type: ignore[attr-defined]
                                               table.f_d[j][fv],  # type: ignore[attr-defined]
                                               mean, cov, dps=25)
    mu = np.array([float(x / m0) for x in m1])
    ex = np.array([[float(M2[p, q] / m0 - (m1[p] / m0) * (m1[q] / m0)) for q in range(2)]
                   for p in range(2)])
    return float(mpmath.log(m0)), mu, ex
