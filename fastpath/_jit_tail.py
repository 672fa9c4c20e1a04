"""The compiled tail slices: moments of a Gaussian far from a polyhedron (S = 2, 3), per pair.

The method of :mod:`fastpath._cone_tail` (whose notes give it), pair by pair in compiled
code instead of vectorised over the slices of one pair: the frame about the whitened
nearest point x*, the slices' intervals in t and their tilted one-dimensional moments
(:func:`_tilted`), the initial sub-intervals of the pieces between the vertices' projections
(:func:`_initial`), and the adaptive 12-node Gauss-Legendre rule checked against its two
halves (:func:`_level`: the same acceptance test, window and drop rule, level by level), the
S = 3 outer variable nesting the S = 2 computation of each slice. The accepted nodes are
combined about their own mean at the end, as there. The numpy module stays the second
implementation these kernels are tested against (tests/test_jit_tail.py); the differences
are those of rounding and of the sums' order.

The numpy code spends ~2 us per slice evaluation (a 40-node quadrature on arrays), so one S = 3
pair of an unbounded region took ~1 s and one S = 2 pair ~1 ms, most of it Python work; here a
slice evaluation is one pass over the facets and at most 40 vectorised exponentials.

A pair whose slices cannot be set up (no facet below x* along the normal, a non-finite
input) is reported not ``ok``; the caller then takes the numpy path.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._cone_interval import _GL12_01, _GL40_01, _MILLS_C, _MILLS_V
from ._cone_tail import _MAX_ITER, _PARALLEL, _TILT_E, _TOL, _TOL_OUTER, _U_MAX, _WINDOW
from ._jit import jit, jit_inline, parallel_for
from ._jit_special import exp_vec, log_ndtr, sorted_head

_X12 = np.ascontiguousarray(_GL12_01[0])
_W12 = np.ascontiguousarray(_GL12_01[1])
_X40 = np.ascontiguousarray(_GL40_01[0])
_W40 = np.ascontiguousarray(_GL40_01[1])
_MC = np.ascontiguousarray(_MILLS_C, dtype=np.float64)
_MV = np.ascontiguousarray(_MILLS_V, dtype=np.float64)
#: the Mills ratio R(a) = (1/a) sum_k (-1)^k (2k-1)!! a^-2k, k = 0..12: the first term left
#: out is below 5e-18 of R for a >= _SERIES_FROM (scipy's erfcx in the numpy module)
_R_SERIES = np.array([(-1.0) ** k * float(math.prod(range(1, 2 * k, 2))) for k in range(13)])
_SERIES_FROM = 16.0
#: cuts each side of a piece's maximum, where its Gaussian part has dropped by 4, 8, ...
_N_CUTS = int(math.ceil(_WINDOW / 4.0))
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_EPS = float(np.finfo(np.float64).eps)
_TINY = 1e-300
#: nodes per interval of one level: 12 of the whole, 2 x 12 of the halves, the two ends
_NODES = 38


@jit
def _log_mills(a: float) -> float:
    """log R(a), R(a) = int_0^inf exp(-a s - s^2/2) ds = Phi(-a) / phi(a), for a > 0."""
    if a >= _SERIES_FROM:
        u = 1.0 / (a * a)
        p = _R_SERIES[_R_SERIES.size - 1]
        for k in range(_R_SERIES.size - 2, -1, -1):
            p = p * u + _R_SERIES[k]
        return math.log(p) - math.log(a)
    return log_ndtr(-a) + 0.5 * a * a + _LOG_SQRT_2PI


@jit
def _tilted(alpha: float, W: float, fb: NDArray[np.float64]) -> tuple[float, float, float]:
    """log J, E[s], Var[s] of the density exp(-alpha s - s^2/2) on [0, W] (alpha >= 0;
    W <= 0: J = 0), as ``_cone_tail._tilted``; ``fb`` scratch of >= 40."""
    if not W > 0.0:
        return -math.inf, 0.0, 0.0
    if alpha >= 16.0 and alpha * W >= 50.0:
        u = 1.0 / (alpha * alpha)
        c = _MC[_MC.size - 1]
        v = _MV[_MV.size - 1]
        for k in range(_MC.size - 2, -1, -1):
            c = c * u + _MC[k]
            v = v * u + _MV[k]
        return _log_mills(alpha), c / alpha, v * u
    al = max(alpha, 0.0)
    We = min(W, _TILT_E / (math.sqrt(al * al + _TILT_E) + al))
    smooth = al * We + 0.5 * We * We <= 4.0
    x = _X12 if smooth else _X40
    w = _W12 if smooth else _W40
    n = x.size
    for i in range(n):
        s = We * x[i]
        fb[i] = w[i] * exp_vec(s * (-al - 0.5 * s))
    Z = 0.0
    M = 0.0
    for i in range(n):
        Z += fb[i]
        M += fb[i] * x[i]
    m = M / Z * We
    V = 0.0
    for i in range(n):
        e = We * x[i] - m
        V += fb[i] * e * e
    return math.log(Z * We), m, V / Z


# --------------------------------------------------------------------------- one slice
@jit
def _lower_upper(al: NDArray[np.float64], G: NDArray[np.float64], ga: NDArray[np.float64],
                 u: float) -> tuple[float, float, bool]:
    """(L, H, ok) of a planar slice at u: t in [L, H] on {al_j t + ga_j u <= G_j}; ok False
    where a facet parallel to the normal cuts u off or L > H."""
    L = -math.inf
    H = math.inf
    ok = True
    for j in range(al.size):
        a = al[j]
        r = G[j] - ga[j] * u
        if a < -_PARALLEL:
            L = max(L, r / a)
        elif a > _PARALLEL:
            H = min(H, r / a)
        elif r < 0.0:
            ok = False
    return L, H, ok and L <= H


@jit
def _slice_point(d: float, al: NDArray[np.float64], G: NDArray[np.float64],
                 ga: NDArray[np.float64], u: float, fb: NDArray[np.float64]
                 ) -> tuple[float, float, float]:
    """log f(u), the mean of t and its variance of the planar slice's integrand at u
    (``_cone_tail._slices2``'s integrand; the mean of u is u itself)."""
    L, H, ok = _lower_upper(al, G, ga, u)
    if not ok:
        return -math.inf, 0.0, 0.0
    logJ, Es, Vs = _tilted(d + L, H - L, fb)
    return -0.5 * u * u - L * (d + 0.5 * L) + logJ, L + Es, Vs


@jit
def _node(a: float, b: float, k: int) -> float:
    """The k-th of the _NODES points of interval [a, b] in :func:`_level`'s layout."""
    h = b - a
    if k < 12:
        return a + h * _X12[k]
    if k < 24:
        return a + 0.5 * h * _X12[k - 12]
    if k < 36:
        return (a + 0.5 * h) + 0.5 * h * _X12[k - 24]
    return a if k == 36 else b


@jit
def _initial(d: float, pa: NDArray[np.float64], pb: NDArray[np.float64],
             L1: NDArray[np.float64], L2: NDArray[np.float64], lf0: NDArray[np.float64],
             logc: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The sub-intervals (starts, ends) of the pieces [pa, pb] on which the lower bound of t
    is linear through (pa + h/4, L1) and (pa + 3h/4, L2), as ``_cone_tail._initial_intervals``
    (``lf0`` the log integrand at each piece's point of largest Gaussian part, from
    :func:`_piece_peaks`)."""
    m = pa.size
    lb = -math.inf
    for i in range(m):
        if not math.isnan(lf0[i]):
            lb = max(lb, lf0[i])
    nc = 2 * _N_CUTS + 3
    out_a = np.empty(m * (nc - 1))
    out_b = np.empty(m * (nc - 1))
    cuts = np.empty(nc)
    k = 0
    for i in range(m):
        a0 = pa[i]
        b0 = pb[i]
        l1, l0, st, mu_p = _piece_line(d, a0, b0, L1[i], L2[i])
        va = st * (a0 - mu_p)
        vb = st * (b0 - mu_p)
        left = va >= 0.0
        right = vb <= 0.0
        u0 = a0 if left else (b0 if right else mu_p)
        Lu = l0 + l1 * u0
        gmax = -0.5 * u0 * u0 - Lu * (d + 0.5 * Lu)
        thr = max(gmax - _WINDOW, lb - logc - _WINDOW)
        if not (math.isfinite(thr) and gmax >= thr):
            continue
        T = 2.0 * (gmax - thr) + _TINY
        sT = math.sqrt(T)
        if left:
            wa = a0
            wb = min(b0, a0 + T / (math.sqrt(va * va + T) + abs(va)) / st)
        elif right:
            wa = max(a0, b0 - T / (math.sqrt(vb * vb + T) + abs(vb)) / st)
            wb = b0
        else:
            wa = max(a0, mu_p - sT / st)
            wb = min(b0, mu_p + sT / st)
        if not wb > wa:
            continue
        v0 = min(max(0.0, va), vb)
        for c in range(_N_CUTS):
            k8 = 8.0 * (c + 1)
            off = k8 / (math.sqrt(v0 * v0 + k8) + abs(v0)) / st
            cuts[2 * c] = min(max(u0 - off, wa), wb)
            cuts[2 * c + 1] = min(max(u0 + off, wa), wb)
        cuts[nc - 3] = min(max(u0, wa), wb)
        cuts[nc - 2] = wa
        cuts[nc - 1] = wb
        srt = sorted_head(cuts, nc)
        for c in range(nc - 1):
            if srt[c + 1] > srt[c]:
                out_a[k] = srt[c]
                out_b[k] = srt[c + 1]
                k += 1
    return out_a[:k], out_b[:k]


@jit
def _piece_line(d: float, a0: float, b0: float, La: float, Lb: float
                ) -> tuple[float, float, float, float]:
    """(slope, intercept) of the lower bound of t on a piece through its quarter points'
    values (0 where not finite), sqrt(1 + slope^2), and the maximum of the piece's Gaussian
    part -u^2/2 - d L - L^2/2 over the whole line."""
    h = b0 - a0
    p1 = a0 + 0.25 * h
    p2 = a0 + 0.75 * h
    l1 = (Lb - La) / (p2 - p1)
    if not math.isfinite(l1):
        l1 = 0.0
    l0 = La - l1 * p1 if math.isfinite(La) else 0.0
    tau = 1.0 + l1 * l1
    return l1, l0, math.sqrt(tau), -l1 * (d + l0) / tau


@jit
def _piece_peak(d: float, a0: float, b0: float, La: float, Lb: float) -> float:
    """The point of [a0, b0] (pulled 1e-6 of the width inside) where the piece's Gaussian
    part is largest (:func:`_initial`'s u0)."""
    h = b0 - a0
    l1, l0, st, mu_p = _piece_line(d, a0, b0, La, Lb)
    if st * (a0 - mu_p) >= 0.0:
        u0 = a0
    elif st * (b0 - mu_p) <= 0.0:
        u0 = b0
    else:
        u0 = mu_p
    return min(max(u0, a0 + 1e-6 * h), b0 - 1e-6 * h)


# --------------------------------------------------------------------------- adaptive rule
@jit
def _components(mu: NDArray[np.float64], C: NDArray[np.float64], V: NDArray[np.float64]
                ) -> None:
    """The quantities the adaptive rule integrates, flat: V = (1, mu (p), S (p x p, row
    by row)) with S = C + mu mu^T the second moment about the origin of the frame."""
    p = mu.size
    V[0] = 1.0
    for r in range(p):
        V[1 + r] = mu[r]
        for c in range(p):
            V[1 + p + r * p + c] = C[r, c] + mu[r] * mu[c]


@jit
def _level(A: NDArray[np.float64], B: NDArray[np.float64], LF: NDArray[np.float64],
           MU: NDArray[np.float64], CC: NDArray[np.float64], st: NDArray[np.float64],
           acc_lw: NDArray[np.float64], acc_mu: NDArray[np.float64],
           acc_C: NDArray[np.float64], n_acc: int, last_level: bool, tol: float
           ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                      NDArray[np.float64], NDArray[np.float64], int]:
    """One level of ``_cone_tail._adaptive`` for a single owner.

    ``LF`` (I, _NODES) the log integrand at the nodes of the intervals [A, B] (nan: -inf
    already), ``MU`` (I, _NODES, p) and ``CC`` (I, _NODES, p, p) its mean and covariance
    there; ``st`` = [best log f so far, where, summed relative error estimate] (updated).
    The fine nodes of the accepted intervals are appended to the buffers (grown as
    needed). Returns the next level's intervals, the buffers and their fill."""
    I = A.size
    p = MU.shape[2]
    nm = 1 + p + p * p
    # running maximum of the integrand, and where (the last interval to raise it wins)
    old = st[0]
    best = old
    for i in range(I):
        for k in range(_NODES):
            best = max(best, LF[i, k])
    for i in range(I):
        jm = 0
        for k in range(1, _NODES):
            if LF[i, k] > LF[i, jm]:
                jm = k
        if LF[i, jm] == best and LF[i, jm] > old:
            st[1] = _node(A[i], B[i], jm)
    st[0] = best
    ok = math.isfinite(best)
    ref = best if ok else 0.0
    # per interval the disagreement of the 12-node rule with its halves in each quantity,
    # and the totals of |quantity| over this level's halves and the accepted nodes
    D = np.empty((I, nm))
    tot = np.zeros(nm)
    cs = np.empty(nm)
    V = np.empty(nm)
    for i in range(I):
        h = B[i] - A[i]
        for m in range(nm):
            cs[m] = 0.0
            D[i, m] = 0.0
        for k in range(36):
            _components(MU[i, k], CC[i, k], V)
            if k < 12:
                wt = h * _W12[k] * math.exp(LF[i, k] - ref)
                for m in range(nm):
                    cs[m] += wt * V[m]
            else:
                wt = 0.5 * h * _W12[(k - 12) % 12] * math.exp(LF[i, k] - ref)
                for m in range(nm):
                    D[i, m] += wt * V[m]
                    tot[m] += wt * abs(V[m])
        for m in range(nm):
            D[i, m] = abs(D[i, m] - cs[m])
    for q in range(n_acc):
        ww = math.exp(acc_lw[q] - ref)
        _components(acc_mu[q], acc_C[q], V)
        for m in range(nm):
            tot[m] += ww * abs(V[m])
    # the scales of the quantities (as there: a first moment against the root mean square,
    # a second against the geometric mean of the two diagonal ones)
    scale = np.empty(nm)
    scale[0] = tot[0]
    for r in range(p):
        dr = math.sqrt(max(tot[1 + p + r * p + r], 0.0))
        scale[1 + r] = max(tot[1 + r], math.sqrt(tot[0]) * dr)
        for c in range(p):
            dc = math.sqrt(max(tot[1 + p + c * p + c], 0.0))
            scale[1 + p + r * p + c] = max(tot[1 + p + r * p + c], dr * dc)
    nA = np.empty(2 * I)
    nB = np.empty(2 * I)
    n_split = 0
    for i in range(I):
        a = A[i]
        b = B[i]
        h = b - a
        conv = True
        for m in range(nm):
            conv = conv and D[i, m] <= tol * scale[m] + _TINY
        ends = max(LF[i, 36], LF[i, 37])
        inside = st[1] >= a and st[1] <= b
        if (not ok) or (ends < best - _WINDOW and not inside):
            continue  # dead: 50 nats below the best, which lies outside
        if conv or last_level or h <= 64.0 * _EPS * max(abs(a), abs(b)):
            if n_acc + 24 > acc_lw.size:
                acc_lw, acc_mu, acc_C = _grow(acc_lw, acc_mu, acc_C, n_acc)
            for k in range(12, 36):
                acc_lw[n_acc] = math.log(0.5 * h * _W12[(k - 12) % 12]) + LF[i, k]
                for r in range(p):
                    acc_mu[n_acc, r] = MU[i, k, r]
                    for c in range(p):
                        acc_C[n_acc, r, c] = CC[i, k, r, c]
                n_acc += 1
            st[2] += D[i, 0] / max(tot[0], _TINY)
        else:
            # the left halves first, then the right ones (the numpy module's order)
            nA[n_split] = a
            nB[n_split] = a + 0.5 * h
            nA[I + n_split] = a + 0.5 * h
            nB[I + n_split] = b
            n_split += 1
    for q in range(n_split):
        nA[n_split + q] = nA[I + q]
        nB[n_split + q] = nB[I + q]
    return nA[:2 * n_split], nB[:2 * n_split], acc_lw, acc_mu, acc_C, n_acc


@jit
def _grow(acc_lw: NDArray[np.float64], acc_mu: NDArray[np.float64],
          acc_C: NDArray[np.float64], n: int
          ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """The accepted-node buffers with twice the room, their first n entries kept."""
    p = acc_mu.shape[1]
    cap = 2 * acc_lw.size + 24
    g_lw = np.empty(cap)
    g_mu = np.empty((cap, p))
    g_C = np.empty((cap, p, p))
    for q in range(n):
        g_lw[q] = acc_lw[q]
        for r in range(p):
            g_mu[q, r] = acc_mu[q, r]
            for c in range(p):
                g_C[q, r, c] = acc_C[q, r, c]
    return g_lw, g_mu, g_C


@jit
def _combine(acc_lw: NDArray[np.float64], acc_mu: NDArray[np.float64],
             acc_C: NDArray[np.float64], n: int, mean: NDArray[np.float64],
             cov: NDArray[np.float64]) -> float:
    """log sum exp(lw) of the accepted nodes; their weighted mean of mu and E[C] + Cov[mu]
    about it written to ``mean`` (p,) and ``cov`` (p, p) (zeros when there are none)."""
    p = mean.size
    for r in range(p):
        mean[r] = 0.0
        for c in range(p):
            cov[r, c] = 0.0
    top = -math.inf
    for q in range(n):
        top = max(top, acc_lw[q])
    if not math.isfinite(top):
        return -math.inf
    Z = 0.0
    for q in range(n):
        ww = math.exp(acc_lw[q] - top)
        Z += ww
        for r in range(p):
            mean[r] += ww * acc_mu[q, r]
    if not Z > 0.0:
        return -math.inf
    for r in range(p):
        mean[r] /= Z
    for q in range(n):
        ww = math.exp(acc_lw[q] - top)
        for r in range(p):
            dr = acc_mu[q, r] - mean[r]
            for c in range(p):
                cov[r, c] += ww * (acc_C[q, r, c] + dr * (acc_mu[q, c] - mean[c]))
    for r in range(p):
        for c in range(p):
            cov[r, c] /= Z
    return top + math.log(Z)


@jit
def _new_buffers(n_intervals: int, p: int
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                            NDArray[np.float64]]:
    """Accepted-node buffers for about ``n_intervals`` intervals, and the state
    [best, where, error] of :func:`_level`."""
    cap = 24 * max(n_intervals, 1)
    st = np.empty(3)
    st[0] = -math.inf
    st[1] = math.nan
    st[2] = 0.0
    return np.empty(cap), np.empty((cap, p)), np.empty((cap, p, p)), st


# --------------------------------------------------------------------------- S = 2 slices
@jit
def _slice2(d: float, al: NDArray[np.float64], ga: NDArray[np.float64],
            G: NDArray[np.float64], bps: NDArray[np.float64], logc: float,
            fb: NDArray[np.float64], mean: NDArray[np.float64], cov: NDArray[np.float64]
            ) -> tuple[float, float]:
    """One planar slice, ``_cone_tail._slices2`` for K = 1: the density
    exp(-d t - t^2/2 - u^2/2) on {al_j t + ga_j u <= G_j}, ``bps`` the u of its vertices
    (NaN: none). Returns log mass and the estimated relative error; the mean of (t, u) and
    the covariance are written to ``mean`` (2,) and ``cov`` (2, 2)."""
    nb = bps.size
    pts = np.empty(nb + 2)
    for i in range(nb):
        v = bps[i]
        pts[i] = _U_MAX if math.isnan(v) else min(max(v, -_U_MAX), _U_MAX)
    pts[nb] = -_U_MAX
    pts[nb + 1] = _U_MAX
    srt = sorted_head(pts, nb + 2)
    pa = np.empty(nb + 1)
    pb = np.empty(nb + 1)
    L1 = np.empty(nb + 1)
    L2 = np.empty(nb + 1)
    m = 0
    for i in range(nb + 1):
        a0 = srt[i]
        b0 = srt[i + 1]
        if not b0 > a0:
            continue
        h = b0 - a0
        if not _lower_upper(al, G, ga, a0 + 0.5 * h)[2]:
            continue
        pa[m] = a0
        pb[m] = b0
        L1[m] = _lower_upper(al, G, ga, a0 + 0.25 * h)[0]
        L2[m] = _lower_upper(al, G, ga, a0 + 0.75 * h)[0]
        m += 1
    lf0 = np.empty(m)
    for i in range(m):
        u0 = _piece_peak(d, pa[i], pb[i], L1[i], L2[i])
        lf0[i] = _slice_point(d, al, G, ga, u0, fb)[0]
    A, B = _initial(d, pa[:m], pb[:m], L1[:m], L2[:m], lf0, logc)
    acc_lw, acc_mu, acc_C, st = _new_buffers(A.size, 2)
    n_acc = 0
    it = 0
    while A.size > 0 and it <= _MAX_ITER:
        I = A.size
        LF = np.empty((I, _NODES))
        MU = np.empty((I, _NODES, 2))
        CC = np.zeros((I, _NODES, 2, 2))
        for i in range(I):
            for k in range(_NODES):
                u = _node(A[i], B[i], k)
                lf, mt, vt = _slice_point(d, al, G, ga, u, fb)
                LF[i, k] = -math.inf if math.isnan(lf) else lf
                MU[i, k, 0] = mt
                MU[i, k, 1] = u
                CC[i, k, 0, 0] = vt
        A, B, acc_lw, acc_mu, acc_C, n_acc = _level(A, B, LF, MU, CC, st, acc_lw, acc_mu,
                                                     acc_C, n_acc, it == _MAX_ITER, _TOL)
        it += 1
    return _combine(acc_lw, acc_mu, acc_C, n_acc, mean, cov), st[2]


# --------------------------------------------------------------------------- S = 3
@jit
def _crossings(c: float, Ys: NDArray[np.float64], Wd: NDArray[np.float64],
               e_len: NDArray[np.float64], col: int, out: NDArray[np.float64]) -> float:
    """Where the edges cross the plane u1 = c: coordinate ``col`` of each crossing written
    to ``out`` (E,) (NaN where the edge does not cross), and the lowest t among them
    (+inf where none)."""
    lo = math.inf
    for e in range(Ys.shape[0]):
        tau = (c - Ys[e, 1]) / Wd[e, 1]
        if tau >= 0.0 and tau <= e_len[e]:
            out[e] = Ys[e, col] + tau * Wd[e, col]
            lo = min(lo, Ys[e, 0] + tau * Wd[e, 0])
        else:
            out[e] = math.nan
    return lo


@jit_inline
def _outer_point(d: float, c: float, al: NDArray[np.float64], ga: NDArray[np.float64],
                 g: NDArray[np.float64], Ys: NDArray[np.float64], Wd: NDArray[np.float64],
                 e_len: NDArray[np.float64], logc2: float, G: NDArray[np.float64],
                 bp: NDArray[np.float64], fb: NDArray[np.float64], m2: NDArray[np.float64],
                 c2: NDArray[np.float64], mu3: NDArray[np.float64], C3: NDArray[np.float64]
                 ) -> float:
    """The S = 3 outer integrand at u1 = c (``tail_moments``' ``outer``): log f, with the
    mean (3,) and covariance (3, 3) of (t, u1, u2) written to ``mu3`` and ``C3``."""
    for j in range(al.size):
        G[j] = g[j] - c * ga[0, j]
    _crossings(c, Ys, Wd, e_len, 2, bp)
    lm, _ = _slice2(d, al, ga[1], G, bp, logc2, fb, m2, c2)
    mu3[0] = m2[0]
    mu3[1] = c
    mu3[2] = m2[1]
    for r in range(3):
        C3[r, 1] = 0.0
        C3[1, r] = 0.0
    C3[0, 0] = c2[0, 0]
    C3[0, 2] = c2[0, 1]
    C3[2, 0] = c2[1, 0]
    C3[2, 2] = c2[1, 1]
    return -0.5 * c * c + lm


@jit_inline
def _slices3(d: float, al: NDArray[np.float64], ga: NDArray[np.float64],
             g: NDArray[np.float64], Ys: NDArray[np.float64], Wd: NDArray[np.float64],
             e_len: NDArray[np.float64], verts1: NDArray[np.float64], fb: NDArray[np.float64],
             mean: NDArray[np.float64], cov: NDArray[np.float64]) -> tuple[float, float]:
    """The S = 3 nesting of ``tail_moments``: the outer variable u1 by the adaptive rule,
    each of its points the planar slice at u1 (:func:`_slice2`). Returns log mass and the
    estimated relative error; mean (3,) and covariance (3, 3) of (t, u1, u2) written."""
    M = al.size
    E = Ys.shape[0]
    nv = verts1.size
    pts = np.empty(nv + 2)
    for i in range(nv):
        pts[i] = min(max(verts1[i], -_U_MAX), _U_MAX)
    pts[nv] = -_U_MAX
    pts[nv + 1] = _U_MAX
    srt = sorted_head(pts, nv + 2)
    qa = np.empty(nv + 1)
    qb = np.empty(nv + 1)
    L1 = np.empty(nv + 1)
    L2 = np.empty(nv + 1)
    bp = np.empty(E)
    m = 0
    for i in range(nv + 1):
        a0 = srt[i]
        b0 = srt[i + 1]
        if not b0 > a0:
            continue
        h = b0 - a0
        qa[m] = a0
        qb[m] = b0
        L1[m] = _crossings(a0 + 0.25 * h, Ys, Wd, e_len, 2, bp)
        L2[m] = _crossings(a0 + 0.75 * h, Ys, Wd, e_len, 2, bp)
        m += 1
    logc2 = _log_mills(d)
    logc = _LOG_SQRT_2PI + logc2
    G = np.empty(M)
    m2 = np.empty(2)
    c2 = np.empty((2, 2))
    mu3 = np.empty(3)
    C3 = np.empty((3, 3))
    lf0 = np.empty(m)
    for i in range(m):
        u0 = _piece_peak(d, qa[i], qb[i], L1[i], L2[i])
        lf0[i] = _outer_point(d, u0, al, ga, g, Ys, Wd, e_len, logc2, G, bp, fb, m2, c2, mu3,
                              C3)
    A, B = _initial(d, qa[:m], qb[:m], L1[:m], L2[:m], lf0, logc)
    acc_lw, acc_mu, acc_C, st = _new_buffers(A.size, 3)
    n_acc = 0
    it = 0
    while A.size > 0 and it <= _MAX_ITER:
        I = A.size
        LF = np.empty((I, _NODES))
        MU = np.empty((I, _NODES, 3))
        CC = np.empty((I, _NODES, 3, 3))
        for i in range(I):
            for k in range(_NODES):
                lf = _outer_point(d, _node(A[i], B[i], k), al, ga, g, Ys, Wd, e_len, logc2,
                                  G, bp, fb, m2, c2, mu3, C3)
                LF[i, k] = -math.inf if math.isnan(lf) else lf
                for r in range(3):
                    MU[i, k, r] = mu3[r]
                    for c in range(3):
                        CC[i, k, r, c] = C3[r, c]
        A, B, acc_lw, acc_mu, acc_C, n_acc = _level(A, B, LF, MU, CC, st, acc_lw, acc_mu,
                                                     acc_C, n_acc, it == _MAX_ITER,
                                                     _TOL_OUTER)
        it += 1
    return _combine(acc_lw, acc_mu, acc_C, n_acc, mean, cov), st[2]


# --------------------------------------------------------------------------- one pair
@jit
def _frame(x: NDArray[np.float64], d: float) -> NDArray[np.float64]:
    """An orthonormal basis (s, s) whose first column is the unit vector x / d (Householder,
    as ``_cone_tail._frame``)."""
    s = x.size
    v = np.empty(s)
    for i in range(s):
        v[i] = x[i] / d
    neg = v[0] < 0.0
    v[0] += -1.0 if neg else 1.0
    vv = 0.0
    for i in range(s):
        vv += v[i] * v[i]
    Q = np.empty((s, s))
    for i in range(s):
        for k in range(s):
            h = (1.0 if i == k else 0.0) - 2.0 * v[i] * v[k] / vv
            Q[i, k] = h if neg else -h
    return Q


@jit
def _lower_inv(U: NDArray[np.float64]) -> NDArray[np.float64]:
    """The inverse of a lower-triangular s x s matrix (forward substitution)."""
    s = U.shape[0]
    X = np.zeros((s, s))
    for c in range(s):
        for r in range(c, s):
            acc = 1.0 if r == c else 0.0
            for k in range(c, r):
                acc -= U[r, k] * X[k, c]
            X[r, c] = acc / U[r, r]
    return X


@jit_inline
def tail_pair(C: NDArray[np.float64], dvec: NDArray[np.float64], valid: NDArray[np.bool_],
              e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
              e_len: NDArray[np.float64], mean: NDArray[np.float64], U: NDArray[np.float64],
              xstar: NDArray[np.float64], dmean: NDArray[np.float64],
              tcov: NDArray[np.float64]) -> tuple[float, float, bool]:
    """``_cone_tail.tail_moments`` for one Gaussian N(mean, U U^T) (U lower triangular) and
    P = {z : C_j z <= dvec_j, ``valid`` j} (S = 2 or 3), edges e_start + [0, e_len] e_dir,
    given the whitened nearest point x* (far from 0). Writes E[z | P] - mean to ``dmean``
    (s,) and Cov[z | P] to ``tcov`` (s, s); returns (log m0, estimated relative error, ok),
    ok False where the slices cannot be set up (non-finite input, no facet below x*)."""
    s = C.shape[1]
    d = 0.0
    for i in range(s):
        d += xstar[i] * xstar[i]
    d = math.sqrt(d)
    if not (math.isfinite(d) and d > 0.0):
        return math.nan, math.nan, False
    Q = _frame(xstar, d)
    Ui = _lower_inv(U)
    nf = 0
    for j in range(valid.size):
        if valid[j]:
            nf += 1
    al = np.empty(nf)
    ga = np.empty((s - 1, nf))
    g = np.empty(nf)
    row = np.empty(s)
    n_lower = 0
    q = 0
    for j in range(valid.size):
        if not valid[j]:
            continue
        na = 0.0
        cm = 0.0
        for k in range(s):
            acc = 0.0
            for i in range(k, s):
                acc += C[j, i] * U[i, k]
            row[k] = acc
            na += acc * acc
            cm += C[j, k] * mean[k]
        na = math.sqrt(na)
        ax = 0.0
        for k in range(s):
            row[k] /= na
            ax += row[k] * xstar[k]
        g[q] = max((dvec[j] - cm) / na - ax, 0.0)
        for c in range(s):
            acc = 0.0
            for k in range(s):
                acc += row[k] * Q[k, c]
            if c == 0:
                al[q] = acc
            else:
                ga[c - 1, q] = acc
        if al[q] < -_PARALLEL:
            n_lower += 1
        q += 1
    if n_lower == 0:
        return math.nan, math.nan, False
    E = e_len.size
    Ys = np.empty((E, s))
    Wd = np.empty((E, s))
    y = np.empty(s)
    w = np.empty(s)
    for e in range(E):
        for r in range(s):
            acc = 0.0
            acc_w = 0.0
            for k in range(r + 1):
                acc += Ui[r, k] * (e_start[e, k] - mean[k])
                acc_w += Ui[r, k] * e_dir[e, k]
            y[r] = acc - xstar[r]
            w[r] = acc_w
        for c in range(s):
            acc = 0.0
            acc_w = 0.0
            for r in range(s):
                acc += y[r] * Q[r, c]
                acc_w += w[r] * Q[r, c]
            Ys[e, c] = acc
            Wd[e, c] = acc_w
    n_fin = 0
    for e in range(E):
        if math.isfinite(e_len[e]):
            n_fin += 1
    verts1 = np.empty(E + n_fin)
    k = E
    for e in range(E):
        verts1[e] = Ys[e, 1]
        if math.isfinite(e_len[e]):
            verts1[k] = Ys[e, 1] + e_len[e] * Wd[e, 1]
            k += 1
    for i in range(verts1.size):
        if not math.isfinite(verts1[i]):
            return math.nan, math.nan, False
    fb = np.empty(40)
    mu_f = np.empty(s)
    cov_f = np.empty((s, s))
    if s == 2:
        lz, err = _slice2(d, al, ga[0], g, verts1, _log_mills(d), fb, mu_f, cov_f)
    else:
        lz, err = _slices3(d, al, ga, g, Ys, Wd, e_len, verts1, fb, mu_f, cov_f)
    log_m0 = lz - 0.5 * d * d - s * _LOG_SQRT_2PI
    # back to the Gaussian's coordinates: z - mean = U (x* + Q m)
    UQ = np.zeros((s, s))
    for r in range(s):
        for c in range(s):
            acc = 0.0
            for k in range(r + 1):
                acc += U[r, k] * Q[k, c]
            UQ[r, c] = acc
    for r in range(s):
        acc = 0.0
        for k in range(r + 1):
            acc += U[r, k] * xstar[k]
        for c in range(s):
            acc += UQ[r, c] * mu_f[c]
        dmean[r] = acc
    T = np.zeros((s, s))  # UQ cov UQ^T
    for r in range(s):
        for c in range(s):
            acc = 0.0
            for k in range(s):
                for m in range(s):
                    acc += UQ[r, k] * cov_f[k, m] * UQ[c, m]
            T[r, c] = acc
    for r in range(s):
        for c in range(s):
            tcov[r, c] = 0.5 * (T[r, c] + T[c, r])
    return log_m0, err, math.isfinite(lz)


@jit
def _tail_range(lo: int, hi: int, e_start: NDArray[np.float64], e_dir: NDArray[np.float64],
                e_len: NDArray[np.float64], f_C: NDArray[np.float64], f_d: NDArray[np.float64],
                f_valid: NDArray[np.bool_], j_idx: NDArray[np.intp], mean: NDArray[np.float64],
                chol: NDArray[np.float64], xstar: NDArray[np.float64], lm: NDArray[np.float64],
                dm: NDArray[np.float64], tc: NDArray[np.float64], err: NDArray[np.float64],
                ok: NDArray[np.bool_]) -> None:
    """:func:`tail_pairs` for the pairs lo..hi-1."""
    for q in range(lo, hi):
        j = j_idx[q]
        lm[q], err[q], ok[q] = tail_pair(f_C[j], f_d[j], f_valid[j], e_start[j], e_dir[j],
                                         e_len[j], mean[q], chol[q], xstar[q], dm[q], tc[q])


def tail_pairs(j_idx: NDArray[np.intp], mean: NDArray[np.float64], chol: NDArray[np.float64],
               xstar: NDArray[np.float64], e_start: NDArray[np.float64],
               e_dir: NDArray[np.float64], e_len: NDArray[np.float64],
               f_C: NDArray[np.float64], f_d: NDArray[np.float64], f_valid: NDArray[np.bool_]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                          NDArray[np.float64], NDArray[np.bool_]]:
    """The tail-slice moments of K (polyhedron, Gaussian) pairs: polyhedra ``j_idx`` (K,) of
    a cone table, Gaussians N(mean[q], chol[q] chol[q]^T) with ``mean`` (K, s), lower
    ``chol`` (K, s, s) and ``xstar`` (K, s) the whitened nearest point minus the whitened
    mean; the table's edge and facet arrays as :class:`fastpath._cones.ConeTable` holds
    them (padded). The pairs are split over the kernel threads.

    Returns log m0 (K,), E[z | P] - mean (K, s), Cov[z | P] (K, s, s), the estimated
    relative error (K,) and whether each pair was computed (K,) (else take the numpy
    ``_cone_tail.tail_moments``)."""
    K = j_idx.size
    s = mean.shape[1]
    lm = np.empty(K)
    dm = np.zeros((K, s))
    tc = np.zeros((K, s, s))
    err = np.empty(K)
    ok = np.zeros(K, dtype=np.bool_)
    parallel_for(lambda lo, hi: _tail_range(lo, hi, e_start, e_dir, e_len, f_C, f_d, f_valid,
                                            j_idx, mean, chol, xstar, lm, dm, tc, err, ok), K)
    return lm, dm, tc, err, ok


def _warmup() -> None:
    # the quadrant z >= 0 (one unbounded cone) and the unit square, far from the mean, at
    # S = 2; the octant and the unit cube at S = 3
    for s in (2, 3):
        for bounded in (False, True):
            eye = np.eye(s)
            C = -eye if not bounded else np.concatenate([-eye, eye])
            d = np.zeros(s) if not bounded else np.concatenate([np.zeros(s), np.ones(s)])
            starts = []
            dirs = []
            lens = []
            corners = ([np.zeros(s)] if not bounded else
                       [np.array(v, dtype=float) for v in np.ndindex(*(2,) * s)])
            for v in corners:
                for k in range(s):
                    if bounded and v[k] == 1.0:
                        continue
                    starts.append(v)
                    dirs.append(eye[k])
                    lens.append(1.0 if bounded else np.inf)
            mean = -9.0 * np.ones(s) / math.sqrt(s) - 0.3 * eye[0]
            chol = np.linalg.cholesky(np.eye(s) + 0.2).astype(np.float64)
            Ui = np.linalg.inv(chol)
            xs = Ui @ (np.zeros(s) - mean)  # the nearest point of the cone in whitened terms
            tail_pairs(np.zeros(1, dtype=np.intp), mean[None], chol[None], xs[None],
                       np.array(starts)[None], np.array(dirs)[None], np.array(lens)[None],
                       C[None], d[None], np.ones((1, len(d)), dtype=np.bool_))
