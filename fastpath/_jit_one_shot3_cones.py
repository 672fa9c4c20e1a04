"""Signed vertex-cone sum of one polytope at S = 3 inside the compiled one-call lane.

:func:`cones_s3` is :meth:`fastpath._cones.ConeTable.evaluate` for one pointed polytope and
one Gaussian in whitened coordinates (mean 0, covariance I: what ``_standardised`` hands
it), with its guards, serial:

* the route of ``_CubatureRouting._cones_or_cubature`` (a bounded polytope whose cubature
  is estimated cheaper than its cones, or not much dearer where thin cones far out lose
  accuracy, goes to the cubature of :mod:`fastpath._jit_one_shot3_cubature`);
* ``_evaluate_numpy`` for s = 3 (nearest point over edges and facets, the direction c with
  its generic part and per-edge flips, the flipped cones' bounds and unit rows, the
  orthant terms of :func:`fastpath._cone_algebra._orthant_terms_soa` with the compiled
  k = 3 and k = 2 kernels, the signed log-sum-exp and the moment assembly);
* ``_cubature_where_cancelled`` (cancellation beyond ``_LOG_CANCEL_CUBATURE``).

Declined by status, for the general path to take (nothing is guessed): the mean at least
``TAIL_DISTANCE`` from P (tail slices), a cancellation beyond ``_MAX_LOG_CANCEL`` (the
other direction, the point-mass limit), a correlation within 1e-9 of +-1 or an element the
k = 3 kernel declines (the general path's other k = 3 routes), non-finite results.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit
from ._jit_adaptive import N_NODES, N_PAR, SCRATCH_F, SCRATCH_ROWS, SCRATCH_W
from ._jit_bvn import BUF_SIZE, log_bvn_buf
from ._jit_one_shot3_cubature import cost_s3, cubature_s3, fan_s3
from ._jit_one_shot_base import CANCEL, NONFINITE, NONSIMPLE, OK, ORTHANT, TAIL
from ._jit_special import log_ndtr
from ._jit_tvn import log_tvn_raw
from ._orthant_adaptive import _SOV_MAX_PANELS

__all__ = ["cones_s3"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
#: the general path's k = 3 kernel takes correlations below this as 0 (_tvn._R_TINY)
_R_TINY = 1e-40


@jit
def _exp_rel(x: float) -> float:
    if x < -700.0:
        return 0.0
    return math.exp(x)


@jit
def _lphi(x: float) -> float:
    return -0.5 * x * x - _LOG_SQRT_2PI


@jit
def _nearest(Es: NDArray[np.float64], Ed: NDArray[np.float64], El: NDArray[np.float64],
             Cf: NDArray[np.float64], df: NDArray[np.float64], x: NDArray[np.float64]) -> bool:
    """_NearestPoints._nearest_points for mean 0, U = I: x* into x; returns inside."""
    E = El.size
    M = df.size
    best = math.inf
    for e in range(E):
        ww = sw = ss = 0.0
        for c in range(3):
            ww += Ed[e, c] * Ed[e, c]
            sw += Es[e, c] * Ed[e, c]
            ss += Es[e, c] * Es[e, c]
        t = min(max(-sw / ww, 0.0), El[e])
        de = ss + 2.0 * t * sw + t * t * ww
        if de < best or e == 0:
            best = de
            for c in range(3):
                x[c] = Es[e, c] + t * Ed[e, c]
    dbest = x[0] * x[0] + x[1] * x[1] + x[2] * x[2]
    inside = True
    for j in range(M):
        if not df[j] >= 0.0:
            inside = False
    dj = math.inf
    jb = -1
    for j in range(M):
        aa = Cf[j, 0] ** 2 + Cf[j, 1] ** 2 + Cf[j, 2] ** 2
        beta = df[j]
        f = beta / aa
        nx = abs(f) * math.sqrt(aa)
        vmax = -math.inf
        for i in range(M):
            v = f * (Cf[j, 0] * Cf[i, 0] + Cf[j, 1] * Cf[i, 1] + Cf[j, 2] * Cf[i, 2]) - df[i]
            vmax = max(vmax, v)
        if vmax <= 1e-9 * (1.0 + nx) and beta < 0.0:
            dd = beta * beta / aa
            if dd < dj:
                dj = dd
                jb = j
    if jb >= 0 and dj < dbest:
        f = df[jb] / (Cf[jb, 0] ** 2 + Cf[jb, 1] ** 2 + Cf[jb, 2] ** 2)
        for c in range(3):
            x[c] = f * Cf[jb, c]
    if inside:
        x[0] = x[1] = x[2] = 0.0
    return inside


@jit
def _cond(h: NDArray[np.float64], A: NDArray[np.float64], n: int, q: int,
          hn: NDArray[np.float64], An: NDArray[np.float64], sdn: NDArray[np.float64]) -> None:
    """_condition_soa: condition (h[:n], unit rows A[:n]) on row q."""
    i = 0
    for j in range(n):
        if j == q:
            continue
        rho = A[j, 0] * A[q, 0] + A[j, 1] * A[q, 1] + A[j, 2] * A[q, 2]
        r0 = A[j, 0] - rho * A[q, 0]
        r1 = A[j, 1] - rho * A[q, 1]
        r2 = A[j, 2] - rho * A[q, 2]
        sd = math.sqrt(r0 * r0 + r1 * r1 + r2 * r2)
        inv = 1.0 / sd
        hn[i] = (h[j] - rho * h[q]) * inv
        An[i, 0] = r0 * inv
        An[i, 1] = r1 * inv
        An[i, 2] = r2 * inv
        sdn[i] = sd
        i += 1


@jit
def _terms(h: NDArray[np.float64], A: NDArray[np.float64], moments: bool,
           out: NDArray[np.float64], buf: NDArray[np.float64]) -> bool:
    """_orthant_terms_soa for k = 3: out = log P, log f (3), log f2 (01, 02, 12); False
    where the general path's k = 3 kernel would take another route."""
    r01 = A[0, 0] * A[1, 0] + A[0, 1] * A[1, 1] + A[0, 2] * A[1, 2]
    r02 = A[0, 0] * A[2, 0] + A[0, 1] * A[2, 1] + A[0, 2] * A[2, 2]
    r12 = A[1, 0] * A[2, 0] + A[1, 1] * A[2, 1] + A[1, 2] * A[2, 2]
    if abs(r01) < _R_TINY:
        r01 = 0.0
    if abs(r02) < _R_TINY:
        r02 = 0.0
    if abs(r12) < _R_TINY:
        r12 = 0.0
    lim = 1.0 - 1e-9
    if not (math.isfinite(h[0]) and math.isfinite(h[1]) and math.isfinite(h[2])):
        return False
    if abs(r01) > lim or abs(r02) > lim or abs(r12) > lim:
        return False
    # log_tvn_raw with log_tvn's scratch, called here: a log_tvn kernel between the two
    # would compile the whole k = 3 kernel once more (its own linked copy)
    lp = log_tvn_raw(h[0], h[1], h[2], r01, r02, r12, np.empty((SCRATCH_ROWS, N_NODES)),
                     np.empty((SCRATCH_ROWS, N_NODES)), np.empty((SCRATCH_F, SCRATCH_W)),
                     np.empty((_SOV_MAX_PANELS, 4)), np.empty(N_PAR))[0]
    if lp != lp:
        return False
    out[0] = lp
    if not moments:
        return True
    h1 = np.empty(2)
    A1 = np.empty((2, 3))
    sd1 = np.empty(2)
    h2 = np.empty(1)
    A2 = np.empty((1, 3))
    sd2 = np.empty(1)
    for q in range(3):
        lphq = _lphi(h[q])
        _cond(h, A, np.intp(3), np.intp(q), h1, A1, sd1)
        rho = A1[0, 0] * A1[1, 0] + A1[0, 1] * A1[1, 1] + A1[0, 2] * A1[1, 2]
        out[1 + q] = lphq + log_bvn_buf(h1[0], h1[1], rho, buf)
        j = 0
        for t in range(3):
            if t == q:
                continue
            if t > q:
                _cond(h1, A1, np.intp(2), np.intp(j), h2, A2, sd2)
                val = lphq + _lphi(h1[j]) - np.log(sd1[j]) + log_ndtr(h2[0])
                slot = 4 if (q == 0 and t == 1) else (5 if q == 0 else 6)
                out[slot] = val
            j += 1
    return True


@jit
def _piece_sums(npc: int, sgn: NDArray[np.float64], H: NDArray[np.float64],
                AA: NDArray[np.float64], T: NDArray[np.float64], K: float, moments: bool,
                g: NDArray[np.float64], Q: NDArray[np.float64]) -> tuple[float, float]:
    """The signed sums over ``npc`` pieces (signs ``sgn``, bounds ``H`` (., 3), unit rows
    ``AA`` (., 3, 3), terms ``T`` (., 7) of :func:`_terms`), all scaled by e^-K: returns
    (m0, sum of |P|); with ``moments`` adds the first moment sums into ``g`` (3,) and the
    upper triangle of the second into ``Q`` (3, 3) (int x = -A^T f, int x x^T = P I + A^T M A
    per piece, M with diagonal md and off-diagonal f_qt)."""
    m0s = 0.0
    absum = 0.0
    for i in range(npc):
        eP = _exp_rel(T[i, 0] - K)
        m0s += sgn[i] * eP
        absum += eP
        if not moments:
            continue
        f0 = sgn[i] * _exp_rel(T[i, 1] - K)
        f1 = sgn[i] * _exp_rel(T[i, 2] - K)
        f2 = sgn[i] * _exp_rel(T[i, 3] - K)
        f01 = sgn[i] * _exp_rel(T[i, 4] - K)
        f02 = sgn[i] * _exp_rel(T[i, 5] - K)
        f12 = sgn[i] * _exp_rel(T[i, 6] - K)
        A = AA[i]
        R01 = A[0, 0] * A[1, 0] + A[0, 1] * A[1, 1] + A[0, 2] * A[1, 2]
        R02 = A[0, 0] * A[2, 0] + A[0, 1] * A[2, 1] + A[0, 2] * A[2, 2]
        R12 = A[1, 0] * A[2, 0] + A[1, 1] * A[2, 1] + A[1, 2] * A[2, 2]
        md0 = -(H[i, 0] * f0 + R01 * f01 + R02 * f02)
        md1 = -(H[i, 1] * f1 + R01 * f01 + R12 * f12)
        md2 = -(H[i, 2] * f2 + R02 * f02 + R12 * f12)
        for a in range(3):
            g[a] += A[0, a] * f0 + A[1, a] * f1 + A[2, a] * f2
            for b in range(a, 3):
                v = (md0 * A[0, a] * A[0, b] + md1 * A[1, a] * A[1, b]
                     + md2 * A[2, a] * A[2, b]
                     + f01 * (A[0, a] * A[1, b] + A[1, a] * A[0, b])
                     + f02 * (A[0, a] * A[2, b] + A[2, a] * A[0, b])
                     + f12 * (A[1, a] * A[2, b] + A[2, a] * A[1, b]))
                Q[a, b] += v
    return m0s, absum


@jit
def cones_s3(V: NDArray[np.float64], CA: NDArray[np.float64], edge_id: NDArray[np.intp],
             orient: NDArray[np.float64], Es: NDArray[np.float64], Ed: NDArray[np.float64],
             El: NDArray[np.float64], Cf: NDArray[np.float64], df: NDArray[np.float64],
             c_gen: NDArray[np.float64], act: NDArray[np.intp], bounded: bool, moments: bool,
             tail_on: bool, bounds: NDArray[np.float64], lamcT: NDArray[np.float64],
             logw: NDArray[np.float64], q_start: NDArray[np.intp], consts: NDArray[np.float64],
             res: NDArray[np.float64]) -> int:
    """log m0, E[w|P] (3) and Cov[w|P] (9) of N(0, I) over one pointed polytope into res
    (module docstring); returns the status. consts: _GENERIC_MARGIN, _GENERIC_WEIGHT,
    _LOG_CANCEL_CUBATURE, _MAX_LOG_CANCEL, TAIL_DISTANCE, _NODES_PER_CONE,
    _LOG_AMP_CUBATURE, _THIN_COST_FACTOR."""
    margin, gweight, lcc, mlc, tail_d = consts[0], consts[1], consts[2], consts[3], consts[4]
    npc, lamp, thin = consts[5], consts[6], consts[7]
    k = V.shape[0]
    E = El.size
    xs = np.empty(3)
    inside = _nearest(Es, Ed, El, Cf, df, xs)
    dist = math.sqrt(xs[0] ** 2 + xs[1] ** 2 + xs[2] ** 2)
    if moments and tail_on and not inside and dist >= tail_d:
        return TAIL
    tris = np.empty((0, 4), dtype=np.intp)
    if bounded:
        tris = fan_s3(act, df.size)
        if tris.shape[0] == 0:
            return NONSIMPLE
        cost, far, ldm = cost_s3(V, tris.shape[0], CA, bounds, q_start)
        amp = np.log(max(1.0, 0.5 * far * far)) - ldm
        if cost <= npc * k or (amp > lamp and cost <= thin * npc * k):
            if cubature_s3(V, tris, np.intp(1024), bounds, lamcT, logw, q_start, res):
                return OK
    # ---- the direction c: toward the mean from the nearest point, plus a generic part
    ng = math.sqrt(c_gen[0] ** 2 + c_gen[1] ** 2 + c_gen[2] ** 2)
    cg = np.empty(3)
    for c in range(3):
        cg[c] = c_gen[c] / ng
    cv = np.empty(3)
    ncw = dist
    for c in range(3):
        cv[c] = -xs[c] + gweight * ncw * cg[c] if ncw > 0 else cg[c]
    nc = math.sqrt(cv[0] ** 2 + cv[1] ** 2 + cv[2] ** 2)
    cu = np.empty(E)
    bad = False
    for e in range(E):
        v = cv[0] * Ed[e, 0] + cv[1] * Ed[e, 1] + cv[2] * Ed[e, 2]
        cu[e] = v
        nW = math.sqrt(Ed[e, 0] ** 2 + Ed[e, 1] ** 2 + Ed[e, 2] ** 2)
        if abs(v) <= margin * nc * nW or (not math.isfinite(El[e]) and v >= 0):
            bad = True
    if bad:
        for e in range(E):
            cu[e] = cg[0] * Ed[e, 0] + cg[1] * Ed[e, 1] + cg[2] * Ed[e, 2]
    # ---- pieces: flipped cones, orthant terms
    T = np.empty((k, 7))
    H = np.empty((k, 3))
    AA = np.empty((k, 3, 3))
    sgn = np.empty(k)
    buf = np.empty(BUF_SIZE)
    K = -math.inf
    for i in range(k):
        sign = 1.0
        for q in range(3):
            nA = math.sqrt(CA[i, q, 0] ** 2 + CA[i, q, 1] ** 2 + CA[i, q, 2] ** 2)
            lv = CA[i, q, 0] * V[i, 0] + CA[i, q, 1] * V[i, 1] + CA[i, q, 2] * V[i, 2]
            sg = -1.0 if orient[i, q] * cu[edge_id[i, q]] > 0 else 1.0
            sign *= sg
            H[i, q] = sg * lv / nA
            for c in range(3):
                AA[i, q, c] = sg * (CA[i, q, c] / nA)
        sgn[i] = sign
        if not _terms(H[i], AA[i], moments, T[i], buf):
            return ORTHANT
        kp = T[i, 0]
        if moments:
            for c in range(1, 7):
                kp = max(kp, T[i, c])
        K = kp if i == 0 else max(K, kp)
    g = np.zeros(3)
    Q = np.zeros((3, 3))
    m0s, absum = _piece_sums(k, sgn, H, AA, T, K, moments, g, Q)
    lm = K + np.log(m0s)
    lc = np.log(absum) - np.log(m0s)
    res[0] = lm
    if moments:
        dm = np.empty(3)
        for a in range(3):
            dm[a] = -g[a] / m0s
            res[1 + a] = dm[a]
        for a in range(3):
            for b in range(a, 3):
                v = (1.0 if a == b else 0.0) + Q[a, b] / m0s - dm[a] * dm[b]
                res[4 + 3 * a + b] = v
                res[4 + 3 * b + a] = v
    if bounded and not lc <= lcc:
        budget = 64 if lc < 4.0 else 1024
        if cubature_s3(V, tris, budget, bounds, lamcT, logw, q_start, res):
            return OK
        res[0] = lm
    if not lc <= mlc:
        return CANCEL
    for i in range(13 if moments else 1):
        if not math.isfinite(res[i]):
            return NONFINITE
    return OK


def _warmup() -> None:
    from ._jit_one_shot3 import _warmup as lane_warmup

    lane_warmup()
