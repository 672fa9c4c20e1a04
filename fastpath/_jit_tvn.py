"""The compiled k = 3 orthant kernel: log P(Y <= h), Y ~ N(0, R), per element.

The rule of :func:`fastpath._tvn._log_tvn_plackett` (whose notes give the derivation)
element by element: with i the conditioning variable and c the partial correlation of the
other two given Y_i, P is a base probability (at c = 0, or c = -1 when c < 0) plus
Plackett's integral in r_jk, both with positive terms; each 1-D integral by the adaptive
rule of :mod:`fastpath._jit_adaptive` (the compiled port of
:func:`fastpath._orthant_adaptive._adaptive_log_integral`), with the same initial windows
(the Laplace approximation at the dominant point for the base, the Gaussian e^{-u^2} for
Plackett's integral). Same accuracy as the numpy kernel: tests/test_jit_tvn.py checks the
two against each other and against mpmath in the far tail.

Elements with a correlation within 1e-9 of +-1, non-finite inputs, and any element whose
result is nan, are declined (nan from :func:`log_tvn_vec`); :func:`fastpath._tvn._log_tvn`
computes those with the numpy kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit, parallel_for
from ._jit_adaptive import (
    ANTI,
    BASE,
    LEVEL,
    N_NODES,
    N_PAR,
    PLACK,
    PLACK_END,
    SCRATCH_F,
    SCRATCH_ROWS,
    SCRATCH_W,
    adaptive,
    fmax,
    fmin,
)
from ._jit_special import log_ndtr_diff, logaddexp
from ._orthant_adaptive import _SOV_MAX_PANELS
from ._orthant_rules import _LOG_PI, _SQRT8, _Z_FLAT
from ._tvn_end import _LOG_2_OVER_2PI

#: correlations smaller in magnitude are taken as 0 (as _tvn._R_TINY)
_R_TINY = 1e-40
#: elements per block of the threaded loop (one scratch set per block)
_BLOCK = 32


@jit
def _solve(m: int, M: NDArray[np.float64], v: NDArray[np.float64], out: NDArray[np.float64]
           ) -> None:
    """out = M^-1 v for the leading m x m block (m <= 3), by cofactors."""
    if m == 1:
        out[0] = v[0] / M[0, 0]
    elif m == 2:
        det = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
        out[0] = (M[1, 1] * v[0] - M[0, 1] * v[1]) / det
        out[1] = (M[0, 0] * v[1] - M[1, 0] * v[0]) / det
    else:
        c00 = M[1, 1] * M[2, 2] - M[1, 2] * M[2, 1]
        c01 = M[1, 2] * M[2, 0] - M[1, 0] * M[2, 2]
        c02 = M[1, 0] * M[2, 1] - M[1, 1] * M[2, 0]
        det = M[0, 0] * c00 + M[0, 1] * c01 + M[0, 2] * c02
        c10 = M[0, 2] * M[2, 1] - M[0, 1] * M[2, 2]
        c11 = M[0, 0] * M[2, 2] - M[0, 2] * M[2, 0]
        c12 = M[0, 1] * M[2, 0] - M[0, 0] * M[2, 1]
        c20 = M[0, 1] * M[1, 2] - M[0, 2] * M[1, 1]
        c21 = M[0, 2] * M[1, 0] - M[0, 0] * M[1, 2]
        c22 = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
        out[0] = (c00 * v[0] + c10 * v[1] + c20 * v[2]) / det
        out[1] = (c01 * v[0] + c11 * v[1] + c21 * v[2]) / det
        out[2] = (c02 * v[0] + c12 * v[1] + c22 * v[2]) / det


@jit
def _laplace_window(h: NDArray[np.float64], R: NDArray[np.float64], plo: float, phi: float
                    ) -> tuple[float, float]:
    """Initial window of the base integral over y_0 in [plo, phi]: the Laplace
    approximation at the dominant point of P(Y <= h) (``h`` (3,), ``R`` (3, 3)), cut to the
    domain (_orthant_adaptive._laplace_window with its _dominant_point and _into_domain)."""
    best = 0.0 if (h[0] >= 0.0 and h[1] >= 0.0 and h[2] >= 0.0) else math.inf
    mu0, nu0, var0 = 0.0, 0.0, 1.0
    S = np.empty(3, dtype=np.int64)
    M = np.empty((3, 3))
    hs = np.empty(3)
    nus = np.empty(3)
    sol = np.empty(3)
    for mask in range(1, 8):
        m = 0
        for j in range(3):
            if (mask >> j) & 1:
                S[m] = j
                m += 1
        for a in range(m):
            hs[a] = -h[S[a]]
            for b in range(m):
                M[a, b] = R[S[a], S[b]] + (1e-13 if a == b else 0.0)
        _solve(np.intp(m), M, hs, nus)  # nus = -Rss^-1 hs (np.intp: one compilation)
        feas = True
        for a in range(m):
            feas = feas and nus[a] >= -1e-12
        y0 = 0.0
        for j in range(3):
            y = 0.0
            for a in range(m):
                y -= R[j, S[a]] * nus[a]
            feas = feas and y <= h[j] + 1e-9 * (1.0 + abs(h[j]))
            if j == 0:
                y0 = y
        obj = 0.0
        for a in range(m):
            obj += nus[a] * hs[a]
        obj *= 0.5  # -0.5 nus . h_S with hs = -h_S
        if not (feas and obj < best):
            continue
        best = obj
        mu0 = y0
        if S[0] == 0:
            nu0 = nus[0]
            var0 = 0.0
        else:
            for a in range(m):
                hs[a] = R[0, S[a]]
            _solve(np.intp(m), M, hs, sol)
            q = 0.0
            for a in range(m):
                q += hs[a] * sol[a]
            nu0 = 0.0
            var0 = fmax(1.0 - q, 1e-30)
    level = LEVEL
    rmax = math.sqrt(2.0 * level)
    hi = fmin(h[0], phi)
    if math.isfinite(best):
        if var0 == 0.0:
            w_act = min(1.2 * rmax, 1.2 * level / nu0) if nu0 != 0.0 else 1.2 * rmax
            a_, b_ = hi - w_act, hi
        else:
            sd = math.sqrt(var0)
            a_, b_ = mu0 - 1.1 * rmax * sd, fmin(hi, mu0 + 1.1 * rmax * sd)
    else:
        a_, b_ = fmin(hi, 0.0) - 1.2 * rmax, hi
    span = min(rmax, phi - plo) if math.isfinite(phi - plo) else rmax
    a_ = fmax(a_, plo)
    b_ = fmin(b_, phi)
    if b_ <= plo:
        a_, b_ = plo, fmin(phi, plo + span)
    if a_ >= phi:
        a_, b_ = fmax(plo, phi - span), phi
    return fmin(a_, b_ - 1e-300), b_


@jit
def _end_setup(hi_: float, hj: float, hk: float, rij: float, rik: float, rjk: float,
               sj: float, sk: float, level: float, p: NDArray[np.float64]
               ) -> tuple[float, float, float]:
    """Fill ``p`` for PLACK_END and return (x_hi, a, b): the upper end of the domain and the
    initial window (:func:`fastpath._tvn_end._end_params`, the same operations)."""
    sjk = sj * sk
    r0 = rij * rik
    ra = r0 - sjk
    opa = (rij + rik) ** 2 / (1.0 + r0 + sjk)
    oma = (1.0 - r0) + sjk
    big = abs(hj) >= abs(hk)
    hM = hj if big else hk
    hm = hk if big else hj
    num_a = hi_ * (opa * oma) - (rij - ra * rik) * hj - (rik - ra * rij) * hk
    p[0], p[1], p[2], p[3] = hi_, hM, hm, num_a
    p[4], p[5], p[6], p[7] = -2.0 * hi_ * ra + rik * hj + rij * hk, sjk, opa, oma
    p[8] = -0.5 * hM * hM + _LOG_2_OVER_2PI
    dmax = (rjk - r0) + sjk
    x_hi = 0.5 * math.log(dmax)
    A = max(-num_a, 0.0) / math.sqrt(2.0 * sjk * opa * oma)
    a = fmax(x_hi - (0.5 * level + 1.0),
             math.log(max(A, 1e-300)) - 0.5 * math.log(2.0 * level + 4.0))
    a = fmin(a, x_hi - level / (A * A / dmax + 2.0))
    return x_hi, a, x_hi


@jit
def log_tvn_raw(h0: float, h1: float, h2: float, r01: float, r02: float, r12: float,
                sL: NDArray[np.float64], sX: NDArray[np.float64], sF: NDArray[np.float64],
                cuts: NDArray[np.float64], p: NDArray[np.float64]) -> tuple[float, int]:
    """log P(Y <= h) (finite h, |r| <= 1 - 1e-9; else nan); (value, integrand evaluations).

    Scratch as :func:`fastpath._jit_adaptive.adaptive`, ``p`` of N_PAR.
    """
    if not (math.isfinite(h0) and math.isfinite(h1) and math.isfinite(h2)):
        return math.nan, 0
    if abs(r01) < _R_TINY:
        r01 = 0.0
    if abs(r02) < _R_TINY:
        r02 = 0.0
    if abs(r12) < _R_TINY:
        r12 = 0.0
    if not max(abs(r01), abs(r02), abs(r12)) <= 1.0 - 1e-9:
        return math.nan, 0
    # conditioning variable: one with c >= 0 if there is one, the least correlated with
    # the others among those (first of equals, as np.argmin)
    best = math.inf
    ii = 0
    for cand in range(3):
        if cand == 0:
            a_, b_, c_ = r01, r02, r12
        elif cand == 1:
            a_, b_, c_ = r01, r12, r02
        else:
            a_, b_, c_ = r02, r12, r01
        s1 = math.sqrt((1.0 - a_) * (1.0 + a_))
        s2 = math.sqrt((1.0 - b_) * (1.0 + b_))
        pc = (c_ - a_ * b_) / (s1 * s2)
        score = max(abs(a_), abs(b_)) + (0.0 if pc >= 0.0 else 10.0)
        if score < best:
            best = score
            ii = cand
    if ii == 0:
        hi_, hj, hk, rij, rik, rjk = h0, h1, h2, r01, r02, r12
    elif ii == 1:
        hi_, hj, hk, rij, rik, rjk = h1, h0, h2, r01, r12, r02
    else:
        hi_, hj, hk, rij, rik, rjk = h2, h0, h1, r02, r12, r01
    sj = math.sqrt((1.0 - rij) * (1.0 + rij))
    sk = math.sqrt((1.0 - rik) * (1.0 + rik))
    c = (rjk - rij * rik) / (sj * sk)
    anti = c < 0.0
    evals = 0
    # ------------------------------------------------------------------ base integral
    f_hi = hi_
    f_lo = -math.inf
    if rij > 0.0:
        f_hi = fmin(f_hi, (hj - _Z_FLAT * sj) / rij)
    elif rij < 0.0:
        f_lo = fmax(f_lo, (hj - _Z_FLAT * sj) / rij)
    if rik > 0.0:
        f_hi = fmin(f_hi, (hk - _Z_FLAT * sk) / rik)
    elif rik < 0.0:
        f_lo = fmax(f_lo, (hk - _Z_FLAT * sk) / rik)
    never = (rij == 0.0 and hj < _Z_FLAT) or (rik == 0.0 and hk < _Z_FLAT)
    flat = (not never) and f_lo < f_hi
    base = log_ndtr_diff(f_lo, f_hi) if flat else -math.inf
    # support of [Phi(beta_j) + Phi(beta_k) - 1]_+ : beta_j + beta_k > 0, a half-line in x
    slope = rij / sj + rik / sk
    icpt = hj / sj + hk / sk
    dlo = -math.inf
    dhi = hi_
    empty = False
    if anti:
        if slope < 0.0:
            dlo = icpt / slope
        elif slope > 0.0:
            dhi = fmin(icpt / slope, hi_)
        elif icpt <= 0.0:
            empty = True
    hh = np.empty(3)
    R0 = np.empty((3, 3))
    hh[0], hh[1], hh[2] = hi_, hj, hk
    r0jk = rij * rik - (sj * sk if anti else 0.0)
    R0[0, 0] = R0[1, 1] = R0[2, 2] = 1.0
    R0[0, 1] = R0[1, 0] = rij
    R0[0, 2] = R0[2, 0] = rik
    R0[1, 2] = R0[2, 1] = r0jk
    p[0], p[1], p[2], p[3], p[4], p[5] = hj, hk, rij, rik, sj, sk
    kind = ANTI if anti else BASE
    if not empty:
        for piece in range(2):
            if piece == 0:
                lo, hi2 = dlo, (fmin(f_lo, dhi) if flat else dhi)
            else:
                if not flat:
                    break
                lo, hi2 = fmax(f_hi, dlo), dhi
            if lo < hi2:
                a, b = _laplace_window(hh, R0, lo, hi2)
                v, e = adaptive(kind, p, lo, hi2, a, b, sL, sX, sF, cuts)
                evals += e
                base = logaddexp(base, v)
    # -------------------------------------------------------------- Plackett integral
    corr = -math.inf
    ra = r0jk
    if rjk > ra:
        sa = abs(hj - hk) / _SQRT8
        sc = abs(hj + hk) / _SQRT8
        t_b = math.sqrt((1.0 - rjk) / (1.0 + rjk))
        t_a = math.sqrt((1.0 - ra) / (1.0 + ra)) if ra != -1.0 else math.inf
        degen = (sa * sa + sc * sc) < 1e-12  # h_j = h_k = 0: u constant; psi = atan t
        level = LEVEL
        rmax = math.sqrt(level)
        if degen:
            u_lo, u_hi = math.atan(t_b), math.atan(t_a)
            a, b = u_lo, u_hi
        else:
            u_lo = sc * t_b - sa / t_b
            u_hi = math.inf if t_a == math.inf else sc * t_a - sa / t_a
            a, b = fmax(u_lo, -rmax), fmin(u_hi, rmax)
            if u_lo >= rmax:
                a, b = u_lo, fmin(u_hi, math.sqrt(u_lo * u_lo + level))
            if u_hi <= -rmax:
                a, b = fmax(u_lo, -math.sqrt(u_hi * u_hi + level)), u_hi
        if anti and (degen or u_hi < rmax):
            # the singular end r_a inside the bulk (fastpath._tvn_end._use_end): in
            # log(r - r_a) where u_i -> -inf there (p[3] = num(r_a) <= 0)
            x_hi, a_e, b_e = _end_setup(hi_, hj, hk, rij, rik, rjk, sj, sk, level, p)
            if p[3] <= 0.0:
                corr, e = adaptive(np.intp(PLACK_END), p, -math.inf, x_hi, a_e, b_e, sL, sX, sF, cuts)
                return logaddexp(base, corr), evals + e
        a = fmin(a, b - 1e-300)
        off = (0.0 if degen else -0.5 * max(hj * hj, hk * hk)) - _LOG_PI
        p[0], p[1], p[2], p[3], p[4] = hi_, hj, hk, rij, rik
        p[5], p[6], p[7], p[8], p[9] = sj * sk, rij * rik, sa, sc, 4.0 * sa * sc
        p[10], p[11] = (1.0 if degen else 0.0), off
        corr, e = adaptive(np.intp(PLACK), p, u_lo, u_hi, a, b, sL, sX, sF, cuts)
        evals += e
    return logaddexp(base, corr), evals


def _scratch() -> tuple[NDArray[np.float64], ...]:
    return (np.empty((SCRATCH_ROWS, N_NODES)), np.empty((SCRATCH_ROWS, N_NODES)),
            np.empty((SCRATCH_F, SCRATCH_W)), np.empty((_SOV_MAX_PANELS, 4)),
            np.empty(N_PAR))


@jit
def log_tvn(h0: float, h1: float, h2: float, r01: float, r02: float, r12: float) -> float:
    """log P(Y0 <= h0, Y1 <= h1, Y2 <= h2), unit variances; nan where declined (tests; the
    S = 3 lane calls log_tvn_raw with this scratch)."""
    sL = np.empty((SCRATCH_ROWS, N_NODES))
    sX = np.empty((SCRATCH_ROWS, N_NODES))
    sF = np.empty((SCRATCH_F, SCRATCH_W))
    cuts = np.empty((_SOV_MAX_PANELS, 4))
    return log_tvn_raw(h0, h1, h2, r01, r02, r12, sL, sX, sF, cuts, np.empty(N_PAR))[0]


@jit
def _log_tvn_blocks(lo: int, hi: int, h: NDArray[np.float64], r: NDArray[np.float64],
                    out: NDArray[np.float64], evs: NDArray[np.int64]) -> None:
    """out[i], evs[i] for the rows of blocks lo..hi-1 (of _BLOCK rows)."""
    n = h.shape[0]
    for blk in range(lo, hi):
        sL = np.empty((SCRATCH_ROWS, N_NODES))
        sX = np.empty((SCRATCH_ROWS, N_NODES))
        sF = np.empty((SCRATCH_F, SCRATCH_W))
        cuts = np.empty((_SOV_MAX_PANELS, 4))
        p = np.empty(N_PAR)
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            out[i], evs[i] = log_tvn_raw(h[i, 0], h[i, 1], h[i, 2], r[i, 0], r[i, 1], r[i, 2],
                                         sL, sX, sF, cuts, p)


def _log_tvn_rows(h: NDArray[np.float64], r: NDArray[np.float64]
                  ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """(log P, integrand evaluations) per row, blocks of rows split over the kernel threads."""
    n = h.shape[0]
    out = np.empty(n)
    evs = np.empty(n, dtype=np.int64)
    parallel_for(lambda lo, hi: _log_tvn_blocks(lo, hi, h, r, out, evs),
                 (n + _BLOCK - 1) // _BLOCK)
    return out, evs


def log_tvn_vec(h: NDArray[np.float64], R: NDArray[np.float64], stats: bool = False
                ):  # type: ignore[no-untyped-def]
    """log P(Y <= h) for Y ~ N(0, R) per row; nan where declined (see module notes).

    Parameters
    ----------
    h : ndarray, shape (n, 3)
        Bounds.
    R : ndarray, shape (n, 3, 3) or (n, 3)
        Correlation matrices, or their (r01, r02, r12).
    stats : bool
        Also return the integrand evaluations per element, shape (n,).

    Returns
    -------
    ndarray, shape (n,)
    """
    h = np.ascontiguousarray(h, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != 3:
        raise ValueError(f"h must have shape (n, 3), got {h.shape}")
    if R.shape == (h.shape[0], 3, 3):
        r = np.ascontiguousarray(np.stack([R[:, 0, 1], R[:, 0, 2], R[:, 1, 2]], axis=1))
    elif R.shape == (h.shape[0], 3):
        r = np.ascontiguousarray(R)
    else:
        raise ValueError(f"R must have shape (n, 3, 3) or (n, 3), got {R.shape}")
    out, evs = _log_tvn_rows(h, r)
    if stats:
        return out, evs
    return out


def _warmup() -> None:
    h = np.array([[0.5, -1.0, 2.0], [-30.0, -20.0, 1.0], [1.0, 1.0, 1.0]])
    r = np.array([[0.3, -0.2, 0.5], [0.9, 0.5, -0.4], [-0.4, -0.4, -0.3]])
    # log_tvn (scalar) serves the tests; the S = 3 lane calls log_tvn_raw itself
    log_tvn_vec(h, r)
