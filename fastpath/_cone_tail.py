"""Truncated moments of a Gaussian far from a polyhedron (S = 2, 3), by slices about the nearest point.

Far from the mean (whitened distance d from the mean to P large) the truncated distribution
lives within O(1) of the nearest point x* of P along P's boundary and within O(1/d) across
it, while the signed cone sum (:mod:`fastpath._cones`) forms its covariance as
``E[x x^T] - E[x] E[x]^T`` of terms of size d^2 (and its mean as ratios of log-space terms of
size d^2): the covariance loses ~eps d^4 relative to itself (measured: 2-5% at d = 243, and
no digit at all beyond d ~ 1e4), the mean ~eps d^2 |log m0|.

Here the moments are computed about x* itself. In whitened coordinates (the Gaussian is
N(0, I)) with n = x*/d and an orthonormal completion V, write x = x* + t n + V u. Then
P - x* lies in {t >= 0} and the density is exp(-d^2/2) exp(-d t - t^2/2 - |u|^2/2):

* for fixed u the slice of P is an interval t in [L(u), H(u)], and its mass and the mean
  and variance of t are those of exp(-alpha s - s^2/2) on [0, H - L], alpha = d + L, with
  s = t - L measured from the nearer end (one-sided asymptotic series far out, Gauss-Legendre
  on the window holding all but e^-45 of the mass otherwise; as for S = 1 in
  :mod:`fastpath._cone_interval`): nothing cancels;
* the slice masses are integrated over u by adaptive Gauss-Legendre (12 nodes, accepted
  where the two halves agree with the whole to 1e-13 of the total in every moment), started
  on the pieces between the projections of P's vertices (where L and H are linear), on the
  window where the exactly Gaussian part exp(-|u|^2/2 - d L - L^2/2) is within e^-50 of its
  maximum on the piece; sub-intervals whose ends lie 50 nats below the largest value found
  are dropped (the u-marginal is log-concave, so nothing between them can be larger);
* S = 3 nests this: the outer variable u1, and for each u1 the S = 2 computation of the
  slice of P in (t, u2);
* the moments of each level are combined about their own mean (law of total covariance),
  so the covariance keeps its digits relative to itself.

The remaining errors are those of the inputs far out: the facet offsets relative to x* are
known to ~eps |x*| (rounding of the whitened mean), which moves the relative weight of two
lower facets by ~eps d^2 (1e-9 at d = 2000); where only one lower facet carries the mass
(the common case of a region's boundary far from the data) that is a common factor.

With the compiled kernels the tables run these slices compiled, pair by pair
(:mod:`fastpath._jit_tail`, 3-11x faster); this module is their second implementation and
the path of the pairs they decline.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray
from scipy.special import erfcx

from ._cone_interval import _GL12_01, _GL40_01, _one_sided_tail_series

Arr = NDArray[np.float64]

#: whitened distance from the mean to P from which the cone sum's moments are replaced by
#: these (measured against them on boxes and wedges, S = 2: the cone sum's covariance is
#: within 6e-11 of itself up to d = 8, 4e-10 at 12, 1e-7 at 32)
TAIL_DISTANCE = 8.0

#: False inside :func:`cone_sum_only` (the E-step's dense passes, which fix the pairs that
#: matter afterwards)
_TAIL_ON: contextvars.ContextVar[bool] = contextvars.ContextVar("fastpath_tail_slices",
                                                                default=True)


@contextlib.contextmanager
def cone_sum_only() -> Iterator[None]:
    """Within this block ConeTable.evaluate keeps the cone sum's moments at any distance
    and wherever they cancel (S = 2, ``_cone_cubature._MOMENT_TOL``)."""
    token = _TAIL_ON.set(False)
    try:
        yield
    finally:
        _TAIL_ON.reset(token)


def tail_enabled() -> bool:
    return _TAIL_ON.get()

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_EPS = float(np.finfo(np.float64).eps)
_LOG_SQRT_PI_2 = 0.5 * math.log(0.5 * math.pi)
_SQRT_HALF = math.sqrt(0.5)
#: the slices are clipped to |u| <= this (whitened): exp(-800) of the peak beyond
_U_MAX = 40.0
#: facets with |a.n| below this (unit rows) are parallel to n: they only bound u
_PARALLEL = 1e-12
#: window (nats below the piece's maximum of its Gaussian part) and drop margin
_WINDOW = 50.0
#: relative agreement of the 12-node rule with its two halves that accepts an interval
_TOL = 1e-13
#: ... and for the outer variable of S = 3, whose integrand carries the inner rule's errors
_TOL_OUTER = 1e-11
_MAX_ITER = 60
#: the initial sub-intervals: cut where a piece's Gaussian part has dropped by this many
#: nats, twice this, ... from its maximum (the adaptive rule refines them). The 12-point
#: rule integrates e^-t over 8 nats to ~3e-16, so nearly every sub-interval is accepted at
#: the first level; finer cuts only add points (the comparison with 4 nats, and against
#: mpmath, is in the README's accuracy notes)
_CUT_NATS = 8.0
#: 45 e-folds of the 1-D tilted density: the window of the quadrature branch (as for S = 1)
_TILT_E = 90.0


def _tilted(alpha: Arr, W: Arr) -> tuple[Arr, Arr, Arr]:
    """log J, E[s], Var[s] of the density exp(-alpha s - s^2/2) on [0, W] (alpha >= 0).

    J = int_0^W exp(-alpha s - s^2/2) ds; W <= 0 gives J = 0 (log J = -inf).
    """
    logJ = np.full(alpha.shape, -np.inf)
    Es = np.zeros(alpha.shape)
    Vs = np.zeros(alpha.shape)
    pos = W > 0
    with np.errstate(invalid="ignore", over="ignore"):
        series = pos & (alpha >= 16.0) & (alpha * W >= 50.0)
    if np.any(series):
        al = alpha[series]
        c, v = _one_sided_tail_series(al)
        Es[series], Vs[series] = c, v
        # J = R(alpha), the Mills ratio, = sqrt(pi/2) erfcx(alpha/sqrt 2); the part beyond W
        # is below e^-50 of it
        logJ[series] = _LOG_SQRT_PI_2 + np.log(erfcx(al * _SQRT_HALF))
    quad = pos & ~series
    if np.any(quad):
        al = np.maximum(alpha[quad], 0.0)
        We = np.minimum(W[quad], _TILT_E / (np.sqrt(al * al + _TILT_E) + al))
        lj = np.empty(We.shape)
        es = np.empty(We.shape)
        vs = np.empty(We.shape)
        smooth = al * We + 0.5 * We * We <= 4.0
        for sel, (x, w) in ((smooth, _GL12_01), (~smooth, _GL40_01)):
            if not np.any(sel):
                continue
            Ws, a = We[sel], al[sel]
            s = Ws[:, None] * x
            lf = s * (-a[:, None] - 0.5 * s)                    # <= 0, 0 at s = 0
            f = w * np.exp(lf)
            Z = f.sum(axis=1)
            m = (f @ x) / Z * Ws
            lj[sel] = np.log(Z * Ws)
            es[sel] = m
            vs[sel] = (f * (s - m[:, None]) ** 2).sum(axis=1) / Z
        logJ[quad], Es[quad], Vs[quad] = lj, es, vs
    return logJ, Es, Vs


# --------------------------------------------------------------------------- 1-D engine
Integrand = Callable[[Arr, NDArray[np.intp]], tuple[Arr, Arr, Arr]]


def _osum(owner: NDArray[np.intp], vals: Arr, n_owner: int) -> Arr:
    """Sums of vals (n, ...) per owner: (n_owner, ...) (bincount per component; np.add.at
    is an order of magnitude slower)."""
    flat = vals.reshape(vals.shape[0], -1)
    out = np.stack([np.bincount(owner, flat[:, i], minlength=n_owner)
                    for i in range(flat.shape[1])], axis=-1).astype(np.float64)
    return out.reshape((n_owner,) + vals.shape[1:])


def _adaptive(a: Arr, b: Arr, owner: NDArray[np.intp], n_owner: int, f: Integrand,
              tol: float = _TOL) -> tuple[Arr, Arr, Arr, Arr]:
    """Integrate a log-concave integrand over the intervals [a, b] of each owner.

    ``f(u, own)`` returns, at points u (n,) of owners own (n,): log f (n,), a vector mu
    (n, p) and a matrix C (n, p, p) (the mean and covariance of the inner variables there).
    Returns, per owner: log int f, the f-weighted mean of mu (n_owner, p), the covariance
    E[C] + Cov[mu] (n_owner, p, p) about that mean, and the estimated relative error
    (n_owner,) of the accepted rule (the disagreement of the 12-node rule with its halves,
    summed, relative to the total).
    """
    x, w = _GL12_01
    acc_lw: list[Arr] = []
    acc_mu: list[Arr] = []
    acc_C: list[Arr] = []
    acc_own: list[NDArray[np.intp]] = []
    acc_err: list[Arr] = []
    acc_eown: list[NDArray[np.intp]] = []
    best = np.full(n_owner, -np.inf)
    best_u = np.full(n_owner, np.nan)
    keep = b > a
    a, b, owner = a[keep], b[keep], owner[keep]
    p = None
    for it in range(_MAX_ITER + 1):
        if a.size == 0:
            break
        h = b - a
        mid = a + 0.5 * h
        uc = a[:, None] + h[:, None] * x
        uf = np.concatenate([a[:, None] + 0.5 * h[:, None] * x,
                             mid[:, None] + 0.5 * h[:, None] * x], axis=1)
        U = np.concatenate([uc, uf, a[:, None], b[:, None]], axis=1)       # (I, 38)
        I = a.size
        own = np.repeat(owner, U.shape[1])
        lf, mu, C = f(U.ravel(), own)
        lf = np.where(np.isnan(lf), -np.inf, lf).reshape(I, -1)
        p = mu.shape[-1]
        mu = mu.reshape(I, -1, p)
        C = C.reshape(I, -1, p, p)
        # running maximum (and where) per owner
        j = np.argmax(lf, axis=1)
        lmax = lf[np.arange(I), j]
        umax = U[np.arange(I), j]
        old = best.copy()
        np.maximum.at(best, owner, lmax)
        hit = (lmax == best[owner]) & (lmax > old[owner])
        best_u[owner[hit]] = umax[hit]
        bo = best[owner]
        ok = np.isfinite(bo)
        ref = np.where(ok, bo, 0.0)
        S = C + mu[..., :, None] * mu[..., None, :]
        wc = (h[:, None] * w) * np.exp(lf[:, :12] - ref[:, None])
        wf = np.concatenate([0.5 * h[:, None] * w] * 2, axis=1) * np.exp(lf[:, 12:36] - ref[:, None])
        mc, mf = mu[:, :12], mu[:, 12:36]
        Sc, Sf = S[:, :12], S[:, 12:36]
        d0 = np.abs(wf.sum(1) - wc.sum(1))
        d1 = np.abs(np.einsum("in,inp->ip", wf, mf) - np.einsum("in,inp->ip", wc, mc))
        d2 = np.abs(np.einsum("in,inpq->ipq", wf, Sf) - np.einsum("in,inpq->ipq", wc, Sc))
        # owner totals (absolute values) from this pass and what was accepted before
        t0 = np.bincount(owner, wf.sum(1), minlength=n_owner)
        t1 = _osum(owner, np.einsum("in,inp->ip", wf, np.abs(mf)), n_owner)
        t2 = _osum(owner, np.einsum("in,inpq->ipq", wf, np.abs(Sf)), n_owner)
        if acc_lw:
            lw = np.concatenate(acc_lw)
            ao = np.concatenate(acc_own)
            ww = np.exp(lw - np.where(np.isfinite(best), best, 0.0)[ao])
            t0 += np.bincount(ao, ww, minlength=n_owner)
            Sa = np.concatenate(acc_C)
            ma = np.concatenate(acc_mu)
            t1 += _osum(ao, ww[:, None] * np.abs(ma), n_owner)
            t2 += _osum(ao, ww[:, None, None] * np.abs(Sa + ma[:, :, None] * ma[:, None, :]),
                        n_owner)
        tiny = 1e-300
        # the scales of the moments about the anchor: a first moment against the root mean
        # square (a mean that is 0 by symmetry carries only rounding noise), a second
        # moment against the geometric mean of the two diagonal ones
        dg = np.sqrt(np.maximum(np.diagonal(t2, axis1=1, axis2=2), 0.0))     # (n_owner, p)
        s1 = np.maximum(t1, np.sqrt(t0)[:, None] * dg)
        s2 = np.maximum(t2, dg[:, :, None] * dg[:, None, :])
        conv = ((d0 <= tol * t0[owner] + tiny)
                & np.all(d1 <= tol * s1[owner] + tiny, axis=1)
                & np.all(d2 <= tol * s2[owner] + tiny, axis=(1, 2)))
        # concavity: both ends 50 nats below the best, and the best point outside: drop
        ends = np.maximum(lf[:, 36], lf[:, 37])
        bu = best_u[owner]
        dead = ~ok | ((ends < bo - _WINDOW) & ~((bu >= a) & (bu <= b)))
        # at the resolution of the floats (a slice that is a single point) nothing improves
        last = (it == _MAX_ITER) | (h <= 64.0 * _EPS * np.maximum(np.abs(a), np.abs(b)))
        take = ~dead & (conv | last)
        if np.any(take):
            with np.errstate(divide="ignore"):
                lw = (np.log(np.concatenate([0.5 * h[:, None] * w] * 2, axis=1)[take])
                      + lf[take, 12:36])
            acc_lw.append(lw.ravel())
            acc_mu.append(mf[take].reshape(-1, p))
            acc_C.append(C[take, 12:36].reshape(-1, p, p))
            acc_own.append(np.repeat(owner[take], 24))
            rel = d0[take] / np.maximum(t0[owner[take]], tiny)
            acc_err.append(rel)
            acc_eown.append(owner[take])
        split = ~dead & ~take
        a = np.concatenate([a[split], mid[split]])
        b = np.concatenate([mid[split], b[split]])
        owner = np.concatenate([owner[split], owner[split]])
    if p is None or not acc_lw:
        pp = 1 if p is None else p
        return (np.full(n_owner, -np.inf), np.zeros((n_owner, pp)),
                np.zeros((n_owner, pp, pp)), np.zeros(n_owner))
    lw = np.concatenate(acc_lw)
    ao = np.concatenate(acc_own)
    mu_a = np.concatenate(acc_mu)
    C_a = np.concatenate(acc_C)
    logZ, mean, cov = _combine(lw, ao, mu_a, C_a, n_owner)
    err = np.bincount(np.concatenate(acc_eown), np.concatenate(acc_err),
                      minlength=n_owner).astype(np.float64)
    return logZ, mean, cov, err


def _combine(lw: Arr, own: NDArray[np.intp], mu: Arr, C: Arr, n_owner: int
             ) -> tuple[Arr, Arr, Arr]:
    """log sum exp(lw), the weighted mean of mu and E[C] + Cov[mu] about it, per owner."""
    top = np.full(n_owner, -np.inf)
    np.maximum.at(top, own, lw)
    ok = np.isfinite(top)
    ww = np.exp(lw - np.where(ok, top, 0.0)[own])
    Z = np.bincount(own, ww, minlength=n_owner)
    Zs = np.where(Z > 0, Z, 1.0)
    mean = _osum(own, ww[:, None] * mu, n_owner) / Zs[:, None]
    dev = mu - mean[own]
    cov = _osum(own, ww[:, None, None] * (C + dev[:, :, None] * dev[:, None, :]),
                n_owner) / Zs[:, None, None]
    with np.errstate(divide="ignore"):
        logZ = np.where(ok & (Z > 0), top + np.log(Zs), -np.inf)
    return logZ, mean, cov


# --------------------------------------------------------------------------- slices
def _initial_intervals(d: float, pa: Arr, pb: Arr, p1: Arr, p2: Arr, L1: Arr, L2: Arr,
                       owner: NDArray[np.intp], n_owner: int, f: Integrand, logc: float
                       ) -> tuple[Arr, Arr, NDArray[np.intp]]:
    """Sub-intervals (start, end, owner) of the pieces [pa, pb] on which the lower bound of
    t is linear, through (p1, L1) and (p2, L2).

    The Gaussian part g(u) = -u^2/2 - d L - L^2/2 bounds log f <= g + logc. Pieces whose
    bound stays _WINDOW nats below the largest log f found at the pieces' maxima of g are
    dropped; the others are cut to the window where g is within that margin, and split so
    that g varies by at most ~_CUT_NATS on each sub-interval.
    """
    with np.errstate(invalid="ignore"):
        l1 = (L2 - L1) / (p2 - p1)
    l1 = np.where(np.isfinite(l1), l1, 0.0)
    l0 = np.where(np.isfinite(L1), L1 - l1 * p1, 0.0)
    tau = 1.0 + l1 * l1
    st = np.sqrt(tau)
    mu_p = -l1 * (d + l0) / tau
    va, vb = st * (pa - mu_p), st * (pb - mu_p)
    left = va >= 0.0                                         # maximum at the left end
    right = vb <= 0.0
    h = pb - pa
    u0 = np.where(left, pa, np.where(right, pb, mu_p))
    Lu = l0 + l1 * u0
    gmax = -0.5 * u0 * u0 - Lu * (d + 0.5 * Lu)
    lf0, _, _ = f(np.clip(u0, pa + 1e-6 * h, pb - 1e-6 * h), owner)
    lb = np.full(n_owner, -np.inf)
    np.maximum.at(lb, owner, np.where(np.isnan(lf0), -np.inf, lf0))
    thr = np.maximum(gmax - _WINDOW, lb[owner] - logc - _WINDOW)
    keep = np.isfinite(thr) & (gmax >= thr)
    T = 2.0 * np.where(keep, gmax - thr, 0.0) + 1e-300
    ext_r = T / (np.sqrt(va * va + T) + np.abs(va))        # from a piece end at v0 > 0
    ext_l = T / (np.sqrt(vb * vb + T) + np.abs(vb))
    sT = np.sqrt(T)
    wa = np.where(left, pa, np.where(right, np.maximum(pa, pb - ext_l / st),
                                     np.maximum(pa, mu_p - sT / st)))
    wb = np.where(left, np.minimum(pb, pa + ext_r / st), np.where(
        right, pb, np.minimum(pb, mu_p + sT / st)))
    keep &= wb > wa
    wa, wb, st, own = wa[keep], wb[keep], st[keep], owner[keep]
    # split where g has dropped by c, 2c, 3c, ... (c = _CUT_NATS) from its maximum at u0
    # (on both sides when u0 is inside): the offsets from u0 are
    # 2kc / (sqrt(v0^2 + 2kc) + |v0|) / st
    u0, v0 = u0[keep], np.clip(0.0, va, vb)[keep]
    k8 = 2.0 * _CUT_NATS * np.arange(1, int(math.ceil(_WINDOW / _CUT_NATS)) + 1)
    off = k8 / (np.sqrt(v0[:, None] ** 2 + k8) + np.abs(v0)[:, None]) / st[:, None]
    cuts = np.concatenate([u0[:, None] - off, u0[:, None], u0[:, None] + off,
                           wa[:, None], wb[:, None]], axis=1)
    cuts = np.clip(cuts, wa[:, None], wb[:, None])
    cuts.sort(axis=1)
    sa, sb = cuts[:, :-1].ravel(), cuts[:, 1:].ravel()
    so = np.repeat(np.arange(wa.size), cuts.shape[1] - 1)
    live = sb > sa
    sa, sb, so = sa[live], sb[live], so[live]
    return sa, sb, own[so]


def _slices2(d: float, al: Arr, ga: Arr, G: Arr, bps: Arr) -> tuple[Arr, Arr, Arr, Arr]:
    """K planar slices: the density exp(-d t - t^2/2 - u^2/2) on {al_j t + ga_j u <= G_kj}.

    al, ga (M,) are shared, G (K, M) per slice, bps (K, B) the u of the slices' vertices
    (NaN: none). Returns log mass (K,), mean (K, 2) of (t, u), covariance (K, 2, 2) and
    the estimated relative error (K,).
    """
    K = G.shape[0]
    lower = al < -_PARALLEL
    upper = al > _PARALLEL
    side = ~(lower | upper)
    al_l, ga_l = al[lower], ga[lower]
    al_u, ga_u = al[upper], ga[upper]
    ga_s = ga[side]
    Gl, Gu, Gs = G[:, lower], G[:, upper], G[:, side]

    def LH(u: Arr, k: NDArray[np.intp]) -> tuple[Arr, Arr, NDArray[np.bool_]]:
        L = np.max((Gl[k] - ga_l * u[:, None]) / al_l, axis=1)
        H = (np.min((Gu[k] - ga_u * u[:, None]) / al_u, axis=1) if al_u.size
             else np.full(u.shape, np.inf))
        ok = (np.all(ga_s * u[:, None] <= Gs[k], axis=1) if ga_s.size
              else np.ones(u.shape, dtype=bool))
        return L, H, ok & (L <= H)

    def integrand(u: Arr, k: NDArray[np.intp]) -> tuple[Arr, Arr, Arr]:
        L, H, ok = LH(u, k)
        Lc = np.where(ok, L, 0.0)
        logJ, Es, Vs = _tilted(d + Lc, np.where(ok, H - Lc, 0.0))
        lf = np.where(ok, -0.5 * u * u - Lc * (d + 0.5 * Lc) + logJ, -np.inf)
        mu = np.stack([Lc + Es, u], axis=-1)
        C = np.zeros(u.shape + (2, 2))
        C[:, 0, 0] = Vs
        return lf, mu, C

    # pieces between consecutive vertices (L and H linear on each), clipped to |u| <= U_MAX
    pts = np.concatenate([np.clip(np.where(np.isnan(bps), _U_MAX, bps), -_U_MAX, _U_MAX),
                          np.full((K, 1), -_U_MAX), np.full((K, 1), _U_MAX)], axis=1)
    pts.sort(axis=1)
    pa, pb = pts[:, :-1].ravel(), pts[:, 1:].ravel()
    po = np.repeat(np.arange(K), pts.shape[1] - 1)
    live = pb > pa
    pa, pb, po = pa[live], pb[live], po[live]
    h = pb - pa
    _, _, okm = LH(pa + 0.5 * h, po)
    pa, pb, po, h = pa[okm], pb[okm], po[okm], h[okm]
    p1, p2 = pa + 0.25 * h, pa + 0.75 * h
    L1, _, _ = LH(p1, po)
    L2, _, _ = LH(p2, po)
    # log f <= g + log R(d): the slice integral J <= R(d + L) <= R(d)
    logc = _LOG_SQRT_PI_2 + math.log(float(erfcx(d * _SQRT_HALF)))
    sa, sb, so = _initial_intervals(d, pa, pb, p1, p2, L1, L2, po, K, integrand, logc)
    return _adaptive(sa, sb, so, K, integrand)


def _frame(n: Arr) -> Arr:
    """An orthonormal basis (s, s) whose first column is the unit vector n (Householder)."""
    s = n.shape[0]
    e = np.zeros(s)
    e[0] = 1.0
    v = n - e if n[0] < 0 else n + e
    H = np.eye(s) - 2.0 * np.outer(v, v) / (v @ v)
    Q = H if n[0] < 0 else -H
    return Q


def tail_moments(C: Arr, dvec: Arr, e_start: Arr, e_dir: Arr, e_len: Arr, mean: Arr,
                 U: Arr, xstar: Arr) -> tuple[float, Arr, Arr, float]:
    """log m0, E[z | P] - mean, Cov[z | P] and the estimated relative error, for one
    Gaussian N(mean, U U^T) and P = {z : C z <= dvec} (S = 2 or 3) with edges
    e_start + [0, e_len] e_dir, given the whitened nearest point x* (far from 0)."""
    s = C.shape[1]
    d = float(np.sqrt(xstar @ xstar))
    n = xstar / d
    Q = _frame(n)
    A = C @ U
    na = np.sqrt(np.sum(A * A, axis=1))
    A = A / na[:, None]
    # slack of every facet at x*: (d_j - c_j.mean)/|a_j| - a_j.x* (>= 0 up to rounding)
    g = np.maximum((dvec - C @ mean) / na - A @ xstar, 0.0)
    al = A @ Q[:, 0]
    ga = A @ Q[:, 1:]
    Uinv = np.linalg.inv(U)
    Ys = ((e_start - mean) @ Uinv.T - xstar) @ Q                            # (E, s)
    Wd = (e_dir @ Uinv.T) @ Q
    fin = np.isfinite(e_len)
    Ye = Ys[fin] + e_len[fin, None] * Wd[fin]
    verts = np.concatenate([Ys, Ye])
    if s == 2:
        logZ, mu, cov, err = _slices2(d, al, ga[:, 0], g[None], verts[None, :, 1])
        mu_f, cov_f, er = mu[0], cov[0], float(err[0])
        lz = float(logZ[0])
    else:
        def outer(c: Arr, k: NDArray[np.intp]) -> tuple[Arr, Arr, Arr]:
            G = g[None, :] - c[:, None] * ga[None, :, 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                tau = (c[:, None] - Ys[None, :, 1]) / Wd[None, :, 1]
                bp = Ys[None, :, 2] + tau * Wd[None, :, 2]
            bp = np.where((tau >= 0) & (tau <= e_len[None]), bp, np.nan)
            lm, m2, c2, _ = _slices2(d, al, ga[:, 1], G, bp)
            lf = -0.5 * c * c + lm
            mu3 = np.stack([m2[:, 0], c, m2[:, 1]], axis=-1)
            C3 = np.zeros(c.shape + (3, 3))
            C3[:, 0, 0], C3[:, 0, 2], C3[:, 2, 0], C3[:, 2, 2] = (
                c2[:, 0, 0], c2[:, 0, 1], c2[:, 1, 0], c2[:, 1, 1])
            return lf, mu3, C3

        def lmin(c: Arr) -> Arr:
            # the lowest t of the slice at u1 = c: at one of its vertices (edge crossings)
            with np.errstate(divide="ignore", invalid="ignore"):
                tau = (c[:, None] - Ys[None, :, 1]) / Wd[None, :, 1]
                t = Ys[None, :, 0] + tau * Wd[None, :, 0]
            t = np.where((tau >= 0) & (tau <= e_len[None]), t, np.inf)
            return np.min(t, axis=1)

        pts = np.unique(np.clip(np.concatenate([verts[:, 1], [-_U_MAX, _U_MAX]]),
                                -_U_MAX, _U_MAX))
        qa, qb = pts[:-1], pts[1:]
        q1, q2 = qa + 0.25 * (qb - qa), qa + 0.75 * (qb - qa)
        # the slice at u1 has mass <= sqrt(2 pi) exp(-d Lmin - Lmin^2/2) R(d)
        logc = _LOG_SQRT_2PI + _LOG_SQRT_PI_2 + math.log(float(erfcx(d * _SQRT_HALF)))
        pa, pb, _ = _initial_intervals(d, qa, qb, q1, q2, lmin(q1), lmin(q2),
                                       np.zeros(qa.size, dtype=np.intp), 1, outer, logc)
        logZ, mu, cov, err = _adaptive(pa, pb, np.zeros(pa.size, dtype=np.intp), 1, outer,
                                       _TOL_OUTER)
        mu_f, cov_f, er = mu[0], cov[0], float(err[0])
        lz = float(logZ[0])
    log_m0 = lz - 0.5 * d * d - s * _LOG_SQRT_2PI
    dmean = U @ (xstar + Q @ mu_f)
    UQ = U @ Q
    tcov = UQ @ cov_f @ UQ.T
    return log_m0, dmean, 0.5 * (tcov + tcov.T), er
