"""Trivariate and quadrivariate normal orthant probabilities (k = 3, 4) in log space.

k = 3 (:func:`_log_tvn_plackett`): with i a conditioning variable and c the partial
correlation of the other two given Y_i, P is the probability at the point where that partial
correlation is 0 (c >= 0) or -1 (c < 0), a 1-D conditioning integral of elementary
functions, plus Plackett's integral in r_jk, whose nodes need one log_ndtr: both terms
positive, no cancellation (where c < 0 and the end r_a, where c = -1, is singular and in the
bulk, Plackett's integral is taken in log(r - r_a): :mod:`fastpath._tvn_end`). Rows with a
correlation within 1e-9 of +-1 use the conditioning
integral with the k = 2 kernel inside (:func:`_log_mvn_sov`), which is also what k = 4 uses
(with the k = 3 kernel inside).

All these 1-D integrals go through
:func:`fastpath._orthant_adaptive._adaptive_log_integral`, with 40 (k = 3) or 32 (k = 4)
Gauss-Legendre nodes. :func:`_log_tvn` computes the k = 3 fast path with the compiled
kernel of :mod:`fastpath._jit_tvn` (the same rule element by element, node loops
vectorised, elements over the threads); :func:`_log_tvn_numpy` keeps the numpy one as the
second implementation it is tested against (tests/test_jit_tvn.py).

:func:`_log_mvn_cdf_std` dispatches a batch of standardised problems of any k <= 4 to the
kernels, dropping ``+inf`` bounds; the public functions of :mod:`fastpath.orthant` and the
k = 4 kernel (for its inner k = 3 probabilities) call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special as sc

from ._bvn import _log_bvn
from ._orthant_adaptive import (
    _adaptive_log_integral,
    _into_domain,
    _laplace_interval,
    _laplace_window,
)
from ._orthant_rules import (
    _LOG_PI,
    _LOG_SQRT_2PI,
    _SQRT8,
    _Z_FLAT,
    _chunks,
    _gl01,
    _log_ndtr_diff,
    _quiet,
)
from ._threads import serial_below
from ._tvn_end import _tvn_plackett_end, _use_end

Arr = NDArray[np.float64]

#: Gauss-Legendre nodes and log window level of the outer conditioning integral
_SOV_NODES = {3: 40, 4: 32}
_SOV_LEVEL = {3: 36.0, 4: 32.0}
#: rows per chunk of the conditioning integral
_SOV_CHUNK = {3: 1024, 4: 128}
#: Gauss-Legendre nodes / window level of the two 1-D integrals of the k = 3 fast path
_TVN_NODES = 40
_TVN_LEVEL = 36.0



def correlation_matrices(r01: Arr, r02: Arr, r12: Arr) -> Arr:
    """The 3 x 3 correlation matrices (N, 3, 3) with off-diagonal entries r01, r02, r12 (N,)."""
    R = np.empty((np.shape(r01)[0], 3, 3))
    R[:] = np.eye(3)
    R[:, 0, 1] = R[:, 1, 0] = r01
    R[:, 0, 2] = R[:, 2, 0] = r02
    R[:, 1, 2] = R[:, 2, 1] = r12
    return R

def _log_mvn_cdf_std(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """log P(Y <= h) for Y ~ N(0, R), R a correlation matrix; h (..., k), R (..., k, k).

    Bounds equal to ``+inf`` are dropped (the marginal of the others), ``-inf`` gives -inf.
    """
    k = h.shape[-1]
    lead = h.shape[:-1]
    if k == 0:
        return np.zeros(lead)
    hf = h.reshape(-1, k)
    Rf = R.reshape(-1, k, k)
    if np.isfinite(hf).all():
        kern = {1: lambda a, b: sc.log_ndtr(a[:, 0]),
                2: lambda a, b: _log_bvn(a[:, 0], a[:, 1], b[:, 0, 1]),
                3: _log_tvn, 4: _log_qvn}[k]
        return kern(hf, Rf).reshape(lead)
    out = np.empty(hf.shape[0])
    neg = (hf == -np.inf).any(axis=1)
    out[neg] = -np.inf
    fin = hf < np.inf
    code = (fin * (1 << np.arange(k))).sum(axis=1)
    for c in np.unique(code[~neg]):
        rows = np.flatnonzero((code == c) & ~neg)
        idx = [i for i in range(k) if (c >> i) & 1]
        m = len(idx)
        hs = hf[np.ix_(rows, np.array(idx, dtype=np.intp))]
        if m == 0:
            out[rows] = 0.0
        elif m == 1:
            out[rows] = sc.log_ndtr(hs[:, 0])
        elif m == 2:
            out[rows] = _log_bvn(hs[:, 0], hs[:, 1], Rf[rows, idx[0], idx[1]])
        else:
            Rs = Rf[rows][:, idx][:, :, idx]
            kern = _log_tvn if m == 3 else _log_qvn
            out[rows] = kern(hs, Rs)
    return out.reshape(lead)


@_quiet
def _log_mvn_sov(h: NDArray[np.float64], R: NDArray[np.float64],
                 cond: int | None = None) -> NDArray[np.float64]:
    """k = 3, 4 by conditioning on one variable (rows of finite h; ``cond`` forces the
    conditioning variable, for tests: the default is the least correlated one).

    log P = log int_{-inf}^{h_i} phi(x) Phi_{k-1}(beta(x); R') dx with the k-1 kernel
    inside, beta_m(x) = (h_m - r_mi x)/s_m, s_m = sqrt(1 - r_mi^2) and R' the conditional
    correlation. The log-integrand is concave with curvature >= 1 (Prekopa). Window: the
    Laplace approximation at the dominant point, then node-based passes until the
    integrand at both free window ends is below e^-level of its maximum (extending with
    the secant bound of a concave function) and at least 60% of the nodes lie above that
    level (shrinking to the bracket of the level set, exact for a concave function).
    """
    N, k = h.shape
    out = np.empty(N)
    for sl in _chunks(N, _SOV_CHUNK[k]):
        out[sl] = _sov_chunk(h[sl], R[sl], cond)
    return out


def _sov_chunk(h: NDArray[np.float64], R: NDArray[np.float64],
               cond: int | None = None) -> NDArray[np.float64]:
    N, k = h.shape
    n, level = _SOV_NODES[k], _SOV_LEVEL[k]
    rows = np.arange(N)
    # condition on the variable least correlated with the others: the inner bounds
    # beta(x) then have the smallest slopes (no kinks of width sqrt(1 - r^2))
    absr = np.abs(R) - np.eye(k)
    i0 = np.argmin(absr.max(axis=2) + 1e-9 * h, axis=1)
    if cond is not None:
        i0[:] = cond
    order = np.empty((N, k), dtype=np.int64)
    order[:, 0] = i0
    others = np.array([[j for j in range(k) if j != i] for i in range(k)])
    order[:, 1:] = others[i0]
    hp = np.take_along_axis(h, order, axis=1)
    Rp = R[rows[:, None, None], order[:, :, None], order[:, None, :]]
    r = Rp[:, 0, 1:]
    s = np.sqrt(np.maximum((1.0 - r) * (1.0 + r), 1e-300))
    Rc = (Rp[:, 1:, 1:] - r[:, :, None] * r[:, None, :]) / (s[:, :, None] * s[:, None, :])
    Rc = np.clip(Rc, -1.0, 1.0)
    idx_d = np.arange(k - 1)
    Rc[:, idx_d, idx_d] = 1.0
    hi = hp[:, 0]
    hr = hp[:, 1:]
    sg = np.where(r >= 0, 1.0, -1.0)
    om = 1.0 - np.abs(r)

    # Where every inner bound is >= _Z_FLAT the inner probability is 1 - O(1e-17):
    # that interval [f_lo, f_hi] of x is a closed form, and what remains are at most two
    # intervals on which the integrand is single-scale (a near-collinear variable has a
    # kink of width s_m/|r_m| at the edge of that interval; see _log_bvn_cond)
    with np.errstate(divide="ignore", invalid="ignore"):
        edge = (hr - _Z_FLAT * s) / r
    f_hi = np.min(np.where(r > 0, edge, np.inf), axis=1)
    f_lo = np.max(np.where(r < 0, edge, -np.inf), axis=1)
    never = ((r == 0) & (hr < _Z_FLAT)).any(axis=1)
    f_hi = np.minimum(f_hi, hi)
    flat = ~never & (f_lo < f_hi)
    res = np.full(N, -np.inf)
    if np.any(flat):
        res[flat] = _log_ndtr_diff(f_lo[flat], f_hi[flat])
    # sub-problems (row, domain [plo, phi])
    sub_left = np.flatnonzero(flat & (f_lo > -np.inf))
    sub_right = np.flatnonzero(flat & (f_hi < hi))
    sub_all = np.flatnonzero(~flat)
    prow = np.concatenate([sub_all, sub_left, sub_right])
    plo = np.concatenate([np.full(sub_all.size, -np.inf), np.full(sub_left.size, -np.inf),
                          f_hi[sub_right]])
    phi = np.concatenate([hi[sub_all], f_lo[sub_left], hi[sub_right]])
    if prow.size == 0:
        return res

    # initial windows: the Laplace approximation at the dominant point, cut to the domain
    a0, b0 = _laplace_interval(hp, Rp, hi, level)
    kink = np.min(s / np.maximum(np.abs(r), 1e-300), axis=1)
    span = np.minimum(math.sqrt(2.0 * level), 30.0 * kink)[prow]
    a, b = _into_domain(a0[prow], b0[prow], plo, phi, span)

    x, _ = _gl01(n)

    def evaluate(p, A, B):
        """log-integrand at the GL nodes of [A, B] for problems p: (L - off, nodes, off)."""
        rw = prow[p]
        W = B - A
        # nodes as exact offsets y from the right end B (see _log_bvn_cond)
        y = W[:, None] * (1.0 - x)
        Bh = B[:, None]
        beta_b = ((hr[rw] - sg[rw] * Bh) + sg[rw] * om[rw] * Bh) / s[rw]
        beta = beta_b[:, :, None] + (r[rw] / s[rw])[:, :, None] * y[:, None, :]
        bt = beta.transpose(0, 2, 1).reshape(-1, k - 1)
        if k == 3:
            li = _log_bvn(bt[:, 0], bt[:, 1], np.repeat(Rc[rw, 0, 1], n))
        else:
            li = _log_mvn_cdf_std(bt, np.repeat(Rc[rw], n, axis=0))
        return ((Bh * y - 0.5 * y * y) + li.reshape(rw.size, n), Bh - y,
                -0.5 * B * B - _LOG_SQRT_2PI)

    pres = _adaptive_log_integral(evaluate, plo, phi, a, b, n, level)

    # combine the pieces of each row (closed form and up to two integrals)
    for part in (slice(0, sub_all.size), slice(sub_all.size, sub_all.size + sub_left.size),
                 slice(sub_all.size + sub_left.size, prow.size)):
        rr = prow[part]
        res[rr] = np.logaddexp(res[rr], pres[part])
    return res


#: correlations smaller in magnitude are taken as 0 by the k = 3 kernel (see _log_tvn)
_R_TINY = 1e-40


@_quiet
def _log_tvn(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """k = 3: log P(Y <= h), Y ~ N(0, R), R a correlation matrix; h (N, 3), R (N, 3, 3).

    Fast path (:func:`_log_tvn_plackett`, by the compiled kernel of
    :mod:`fastpath._jit_tvn`); rows with a correlation within 1e-9 of +-1 go to the
    conditioning integral with the bivariate kernel inside (:func:`_log_mvn_sov`).
    """
    return _log_tvn_routed(h, R, _log_tvn_fast)


def _log_tvn_routed(h: ArrayLike, R: ArrayLike,
                    plackett: Callable[[Arr, Arr], Arr]) -> Arr:
    """:func:`_log_tvn` with ``plackett(h, R)`` for the rows without a correlation within
    1e-9 of +-1 (the compiled or the numpy rule)."""
    h = np.asarray(h, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    # A correlation below _R_TINY changes log P by less than |r| h_j h_k, far below float64
    # resolution for any finite bound that matters, but dividing by it overflows the Plackett
    # windows (NaN for |r| < ~1e-150): it is taken as the exact 0 the kernel handles.
    tiny = (R != 0.0) & (np.abs(R) < _R_TINY)
    if tiny.any():
        R = np.where(tiny, 0.0, R)
    off = np.abs(R[:, [0, 0, 1], [1, 2, 2]])
    degen = (off > 1.0 - 1e-9).any(axis=1)
    out = np.empty(h.shape[0])
    fast = np.flatnonzero(~degen)
    if fast.size:
        out[fast] = plackett(h[fast], R[fast])
    if np.any(degen):
        out[degen] = _log_mvn_sov(h[degen], R[degen])
    return out


#: calls with fewer k = 3 elements than this (~3 ms on one thread) run on the calling thread
_SERIAL_ELEMENTS = 150


def _log_tvn_fast(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`_log_tvn_plackett` by the compiled kernel (:mod:`fastpath._jit_tvn`, the same
    rule element by element); the elements it declines (nan: non-finite input) by the numpy
    one. h (N, 3), R (N, 3, 3), no correlation within 1e-9 of +-1."""
    from ._jit_tvn import log_tvn_vec

    r = np.ascontiguousarray(R[:, [0, 0, 1], [1, 2, 2]])
    with serial_below(h.shape[0], _SERIAL_ELEMENTS):
        out: NDArray[np.float64] = log_tvn_vec(h, r)
    bad = np.flatnonzero(np.isnan(out))
    if bad.size:
        out[bad] = _log_tvn_plackett(h[bad], R[bad])
    return out


@_quiet
def _log_tvn_numpy(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """:func:`_log_tvn` with the numpy kernel for every element: the second implementation
    the compiled one is tested against (same parameters, result and accuracy)."""
    def plackett(hh: NDArray[np.float64], RR: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty(hh.shape[0])
        for sl in _chunks(hh.shape[0], 4096):
            out[sl] = _log_tvn_plackett(hh[sl], RR[sl])
        return out

    return _log_tvn_routed(h, R, plackett)


def _log_tvn_plackett(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """k = 3 as a base probability plus a Plackett integral, both with positive terms.

    With i the conditioning variable, j, k the others, s_m = sqrt(1 - r_im^2),
    beta_m(x) = (h_m - r_im x)/s_m and c = rho_{jk.i} the partial correlation:

        c >= 0:  P = int_{-inf}^{h_i} phi(x) Phi(beta_j) Phi(beta_k) dx
                     + int_{r_ij r_ik}^{r_jk} phi_2(h_j, h_k; r) Phi(u_i(r)) dr
        c <  0:  P = int phi(x) [Phi(beta_j) + Phi(beta_k) - 1]_+ dx
                     + int_{r_ij r_ik - s_j s_k}^{r_jk} phi_2(h_j, h_k; r) Phi(u_i(r)) dr

    The base is the probability at the correlation r_jk where Y_j, Y_k are independent
    (c = 0) or perfectly anti-correlated (c = -1) given Y_i; the second term is Plackett's
    identity dP/dr_jk = phi_2(h_j, h_k; r_jk) Phi(u_i), u_i the standardised bound of Y_i
    given Y_j = h_j, Y_k = h_k. Both integrands have elementary nodes (log_ndtr, exp); the
    Plackett integral uses the Gaussianising variable of the bivariate kernel (u, with
    r = (1 - t^2)/(1 + t^2), u = sqrt(C) t - sqrt(A)/t). Both are done by
    :func:`_adaptive_log_integral`. i: a variable with c >= 0 if there is one, the least
    correlated with the others among those.
    """
    N = h.shape[0]
    rows = np.arange(N)
    n, level = _TVN_NODES, _TVN_LEVEL
    r01, r02, r12 = R[:, 0, 1], R[:, 0, 2], R[:, 1, 2]
    rr = np.stack([np.stack([r01, r02, r12], 1), np.stack([r01, r12, r02], 1),
                   np.stack([r02, r12, r01], 1)], 1)  # per i: (r_ij, r_ik, r_jk)
    sj = np.sqrt((1.0 - rr[..., 0]) * (1.0 + rr[..., 0]))
    sk = np.sqrt((1.0 - rr[..., 1]) * (1.0 + rr[..., 1]))
    pc = (rr[..., 2] - rr[..., 0] * rr[..., 1]) / (sj * sk)  # partial correlations (N, 3)
    score = np.maximum(np.abs(rr[..., 0]), np.abs(rr[..., 1])) + np.where(pc >= 0, 0.0, 10.0)
    i = np.argmin(score, axis=1)
    jk = np.array([[1, 2], [0, 2], [0, 1]])[i]
    hi_ = h[rows, i]
    hj, hk = h[rows, jk[:, 0]], h[rows, jk[:, 1]]
    rij, rik, rjk = rr[rows, i, 0], rr[rows, i, 1], rr[rows, i, 2]
    s_j, s_k, c = sj[rows, i], sk[rows, i], pc[rows, i]
    anti = c < 0  # base at c = -1

    # ---------------------------------------------------------------- base integral
    with np.errstate(divide="ignore", invalid="ignore"):
        e_j = (hj - _Z_FLAT * s_j) / rij
        e_k = (hk - _Z_FLAT * s_k) / rik
    f_hi = np.minimum(np.minimum(np.where(rij > 0, e_j, np.inf), np.where(rik > 0, e_k, np.inf)),
                      hi_)
    f_lo = np.maximum(np.where(rij < 0, e_j, -np.inf), np.where(rik < 0, e_k, -np.inf))
    never = ((rij == 0) & (hj < _Z_FLAT)) | ((rik == 0) & (hk < _Z_FLAT))
    flat = ~never & (f_lo < f_hi)
    base = np.full(N, -np.inf)
    if np.any(flat):
        base[flat] = _log_ndtr_diff(f_lo[flat], f_hi[flat])
    # support of [Phi(beta_j) + Phi(beta_k) - 1]_+ : beta_j + beta_k > 0, a half-line in x
    slope = rij / s_j + rik / s_k
    icpt = hj / s_j + hk / s_k
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = icpt / slope
    sup_lo = np.where(anti & (slope < 0), xs, -np.inf)
    sup_hi = np.where(anti & (slope > 0), xs, np.inf)
    empty = anti & (slope == 0) & (icpt <= 0)
    dlo = np.maximum(sup_lo, -np.inf)
    dhi = np.minimum(sup_hi, hi_)
    # pieces outside the flat interval, inside the support
    p_row, p_lo, p_hi = [], [], []
    for lo_, hi2 in ((dlo, np.where(flat, np.minimum(f_lo, dhi), dhi)),
                     (np.where(flat, np.maximum(f_hi, dlo), np.inf), dhi)):
        sel = np.flatnonzero(~empty & (lo_ < hi2) & (flat | (lo_ == dlo)))
        p_row.append(sel)
        p_lo.append(lo_[sel])
        p_hi.append(hi2[sel])
    prow = np.concatenate(p_row)
    plo = np.concatenate(p_lo)
    phi = np.concatenate(p_hi)
    if prow.size:
        # initial windows: Laplace at the dominant point of the base problem
        R0 = correlation_matrices(rij, rik, rij * rik - np.where(anti, s_j * s_k, 0.0))
        hh = np.stack([hi_, hj, hk], axis=1)
        a, b = _laplace_window(hh[prow], R0[prow], plo, phi, level)
        x, _ = _gl01(n)
        bj_s, bk_s = rij / s_j, rik / s_k

        def ev_base(p, A, B):
            rw = prow[p]
            y = (B - A)[:, None] * (1.0 - x)
            Bh = B[:, None]
            b_j = ((hj[rw] - rij[rw] * B) / s_j[rw])[:, None] + bj_s[rw][:, None] * y
            b_k = ((hk[rw] - rik[rw] * B) / s_k[rw])[:, None] + bk_s[rw][:, None] * y
            lf = np.empty(y.shape)
            an = anti[rw]
            if np.any(~an):
                lf[~an] = sc.log_ndtr(b_j[~an]) + sc.log_ndtr(b_k[~an])
            if np.any(an):
                lf[an] = _log_ndtr_diff(-b_k[an], b_j[an])
            return (Bh * y - 0.5 * y * y) + lf, Bh - y, -0.5 * B * B - _LOG_SQRT_2PI

        vals = _adaptive_log_integral(ev_base, plo, phi, a, b, n, level)
        for part in np.split(np.arange(prow.size), np.cumsum([v.size for v in p_row])[:-1]):
            base[prow[part]] = np.logaddexp(base[prow[part]], vals[part])

    # ------------------------------------------------------------- Plackett integral
    ra = rij * rik - np.where(anti, s_j * s_k, 0.0)
    has = rjk > ra
    corr = np.full(N, -np.inf)
    # c < 0 with the singular end r_a inside the bulk: in log(r - r_a) (fastpath._tvn_end)
    end = has & anti
    end[end] = _use_end(hi_[end], hj[end], hk[end], rij[end], rik[end], s_j[end], s_k[end],
                        level)
    if np.any(has & ~end):
        q_ = np.flatnonzero(has & ~end)
        corr[q_] = _tvn_plackett_term(hi_[q_], hj[q_], hk[q_], rij[q_], rik[q_], rjk[q_],
                                      ra[q_], s_j[q_], s_k[q_], n, level)
    if np.any(end):
        q_ = np.flatnonzero(end)
        corr[q_] = _tvn_plackett_end(hi_[q_], hj[q_], hk[q_], rij[q_], rik[q_], rjk[q_],
                                     s_j[q_], s_k[q_], n, level)
    return np.logaddexp(base, corr)


def _tvn_plackett_term(hi_, hj, hk, rij, rik, rjk, ra, s_j, s_k, n, level):
    """log int_{ra}^{rjk} phi_2(hj, hk; r) Phi(u_i(r)) dr (1-D arrays)."""
    sa = np.abs(hj - hk) / _SQRT8
    sc_ = np.abs(hj + hk) / _SQRT8
    q4 = 4.0 * sa * sc_
    # t = sqrt((1 - r)/(1 + r)); r = rjk <-> t_b (smaller), r = ra <-> t_a
    t_b = np.sqrt((1.0 - rjk) / (1.0 + rjk))
    with np.errstate(divide="ignore"):
        t_a = np.sqrt((1.0 - ra) / (1.0 + ra))
    degen = (sa * sa + sc_ * sc_) < 1e-12  # h_j = h_k = 0: u would be constant; use psi
    with np.errstate(divide="ignore", invalid="ignore"):
        u_lo = np.where(degen, np.arctan(t_b), sc_ * t_b - sa / t_b)
        u_hi = np.where(degen, np.arctan(t_a), np.where(np.isinf(t_a), np.inf, sc_ * t_a - sa / t_a))
    # initial window: the Gaussian e^{-u^2} (psi: the whole interval)
    rmax = math.sqrt(level)
    a = np.where(degen, u_lo, np.maximum(u_lo, -rmax))
    b = np.where(degen, u_hi, np.minimum(u_hi, rmax))
    one_r = u_lo >= rmax
    a = np.where(one_r & ~degen, u_lo, a)
    b = np.where(one_r & ~degen, np.minimum(u_hi, np.sqrt(u_lo * u_lo + level)), b)
    one_l = u_hi <= -rmax
    b = np.where(one_l & ~degen, u_hi, b)
    a = np.where(one_l & ~degen, np.maximum(u_lo, -np.sqrt(u_hi * u_hi + level)), a)
    a = np.minimum(a, b - 1e-300)
    x, _ = _gl01(n)
    off = np.where(degen, 0.0, -0.5 * np.maximum(hj * hj, hk * hk)) - _LOG_PI
    # u_i = (h_i (1 - r^2) - (r_ij - r r_ik) h_j - (r_ik - r r_ij) h_k) / sqrt(det (1 - r^2))
    # det = s_j^2 s_k^2 (1 - c)(1 + c), c = (r - r_ij r_ik)/(s_j s_k)
    sjk = s_j * s_k
    r0 = rij * rik

    def ev(p, A, B):
        u = A[:, None] + (B - A)[:, None] * x
        dg = degen[p][:, None]
        if np.any(dg):
            t_psi = np.tan(u)
        rq = np.sqrt(u * u + q4[p][:, None])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(u >= 0, (u + rq) / (2.0 * sc_[p][:, None]),
                         2.0 * sa[p][:, None] / (rq - u))
            if np.any(dg):
                t = np.where(dg, t_psi, t)
            lg = np.where(dg, 0.0, -u * u - np.log(rq * (t + 1.0 / t)))
            tt = t * t
            one_p = 1.0 + tt
            r = (1.0 - tt) / one_p
            omr2 = 4.0 * tt / (one_p * one_p)  # 1 - r^2
            cc = (r - r0[p][:, None]) / sjk[p][:, None]
            det = sjk[p][:, None] ** 2 * (1.0 - cc) * (1.0 + cc)
            num = (hi_[p][:, None] * omr2 - (rij[p][:, None] - r * rik[p][:, None]) * hj[p][:, None]
                   - (rik[p][:, None] - r * rij[p][:, None]) * hk[p][:, None])
            ui = num / np.sqrt(np.maximum(det, 0.0) * omr2)
        ui = np.where(np.isnan(ui), -np.inf, ui)
        return lg + sc.log_ndtr(ui), u, off[p]

    return _adaptive_log_integral(ev, u_lo, u_hi, a, b, n, level)


@_quiet
def _log_qvn(h: NDArray[np.float64], R: NDArray[np.float64]) -> NDArray[np.float64]:
    """k = 4: log P(Y <= h), Y ~ N(0, R), R a correlation matrix; h (N, 4), R (N, 4, 4)."""
    return _log_mvn_sov(np.asarray(h, dtype=np.float64), np.asarray(R, dtype=np.float64))

