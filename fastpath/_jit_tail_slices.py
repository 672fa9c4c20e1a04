"""The compiled tail slices, one planar slice: its tilted moments and the adaptive rule.

The building blocks of :mod:`fastpath._jit_tail` (whose notes give the scheme), ported from
:mod:`fastpath._cone_tail`: the moments of exp(-alpha s - s^2/2) on [0, W]
(:func:`_tilted`), the interval of t of a planar slice at u (:func:`_lower_upper`), the
initial sub-intervals of the pieces between the vertices' projections (:func:`_initial`),
one level of the adaptive 12-node Gauss-Legendre rule checked against its two halves
(:func:`_level`: the same acceptance test, window and drop rule) with the final combination
of the accepted nodes about their own mean (:func:`_combine`), and the whole S = 2
computation of one slice (:func:`_slice2`), which the S = 3 outer variable calls at each of
its points.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._cone_interval import _GL12_01, _GL40_01, _MILLS_C, _MILLS_V
from ._cone_tail import _CUT_NATS, _MAX_ITER, _PARALLEL, _TILT_E, _TOL, _U_MAX, _WINDOW
from ._jit import jit
from ._jit_special import exp_vec, log_ndtr, sorted_head

_X12 = np.ascontiguousarray(_GL12_01[0])
_W12 = np.ascontiguousarray(_GL12_01[1])
_X40 = np.ascontiguousarray(_GL40_01[0])
_W40 = np.ascontiguousarray(_GL40_01[1])
_LOG_W12 = np.log(_W12)
_MC = np.ascontiguousarray(_MILLS_C, dtype=np.float64)
_MV = np.ascontiguousarray(_MILLS_V, dtype=np.float64)
#: the Mills ratio R(a) = (1/a) sum_k (-1)^k (2k-1)!! a^-2k, k = 0..12: the first term left
#: out is below 5e-18 of R for a >= _SERIES_FROM (scipy's erfcx in the numpy module)
_R_SERIES = np.array([(-1.0) ** k * float(math.prod(range(1, 2 * k, 2))) for k in range(13)])
_SERIES_FROM = 16.0
#: cuts each side of a piece's maximum (where its Gaussian part has dropped by _CUT_NATS,
#: twice that, ...)
_N_CUTS = int(math.ceil(_WINDOW / _CUT_NATS))
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
        return math.log(p / a)
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
            k8 = 2.0 * _CUT_NATS * (c + 1)
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
        jm = np.argmax(LF[i])
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
                wt = h * _W12[k] * exp_vec(LF[i, k] - ref)
                for m in range(nm):
                    cs[m] += wt * V[m]
            else:
                wt = 0.5 * h * _W12[(k - 12) % 12] * exp_vec(LF[i, k] - ref)
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
            log_h = math.log(0.5 * h)
            for k in range(12, 36):
                acc_lw[n_acc] = log_h + _LOG_W12[(k - 12) % 12] + LF[i, k]
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
    # sizes from arrays and np.int64(0), not literals: a literal argument would compile
    # the callee once more, specialised on it
    acc_lw, acc_mu, acc_C, st = _new_buffers(A.size, mean.size)
    n_acc = np.int64(0)
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


def _warmup() -> None:
    # a half-plane slice and a wedge 12 units out (the series and both quadrature rules)
    fb = np.empty(40)
    mean = np.empty(2)
    cov = np.empty((2, 2))
    for al, ga, G, bps in (([-1.0], [0.3], [0.0], [math.nan]),
                           ([-1.0, -0.8, 0.5], [0.3, -0.6, 0.1], [0.0, 0.0, 2.0], [0.0, 1.0])):
        _slice2(12.0, np.array(al), np.array(ga), np.array(G), np.array(bps), _log_mills(12.0),
                fb, mean, cov)
