"""Compiled fast lane of one call at S = 2: one polygon, one Gaussian, one kernel.

:func:`fastpath.integrals.gaussian_moments` on one polyhedron and one Gaussian spent ~1.4 ms
in dozens of small numpy calls (standardisation, geometry, cone table, guards) around
~10 us of arithmetic. :func:`one_shot_s2` does the same steps in one compiled call, with
the same formulas and tolerances, in the order the general path takes them:

1. the covariance rule (a fast accept strictly inside :func:`dgn_core.validation.check_covariance`:
   symmetric, condition number below 1e12 by the closed-form eigenvalues of a 2 x 2
   matrix, 10x inside the rule's 1e13 so rounding cannot change the verdict), the
   Cholesky factor A and the standardised rows of :func:`fastpath._standardise.standardise`
   (w = A^{-1}(z - mean), unit rows, far rows dropped about a verified point of P);
2. the geometry of :func:`fastpath._polyhedron.polyhedron_geometry` for a simple pointed
   polygon (scaled to unit size, enumerated interior point and vertices, facet rows by
   their tight vertices, edges and rays from the generators, the generic direction from
   the same fixed draws);
3. the fused S = 2 cone kernel of :mod:`fastpath._jit_cones` (``_pair_s2``, called as is);
4. the guards of :class:`fastpath._cones.ConeTable`: where the signed sum of a bounded
   polygon lost more than ``_LOG_CANCEL_CUBATURE``, or its thinnest cone is below
   ``_jit_cones._THIN_CONE``, the simplex cubature of
   :mod:`fastpath._simplex_cubature` (same fan triangulation, bisection, budgets, rules
   and drop rule; the node loop of :mod:`fastpath._jit_cubature`), and the moments mapped
   back through A.

Anything else returns a non-zero status and the caller runs the general path, which is
then the answer: invalid or borderline input (the general path raises its own errors),
empty or flat polygons, lines, non-simple vertices, duplicate or weakly redundant rows,
too many rows to enumerate, a mean at least ``TAIL_DISTANCE`` from P (the tail slices),
a cancellation the cubature could not take (beyond ``_MAX_LOG_CANCEL``: the general path
tries the other direction), non-finite results. The two differ by rounding only
(tests/test_one_shot_lane.py).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit
from ._jit_bvn import BUF_SIZE
from ._jit_cone_geometry import _nearest_s2, _thinness_s2
from ._jit_cones import _THIN_CONE, _pair_s2
from ._jit_one_shot_base import (
    CANCEL,
    EMPTY,
    FAR,
    INVALID,
    LINES,
    NONFINITE,
    NONSIMPLE,
    OK,
    REASONS,
    TAIL,
    THIN,
    cov_ok,
    max_viol,
    vertices2,
)
from ._jit_one_shot_cubature import cubature_s2
from ._jit_one_shot_geometry import geometry_s2

__all__ = ["one_shot_s2", "REASONS", "OK"]

_EPS = 2.220446049250313e-16


@jit
def _standardised_rows(C: NDArray[np.float64], d: NDArray[np.float64], mu: NDArray[np.float64],
                       a00: float, a10: float, a11: float, Cw: NDArray[np.float64],
                       dw: NDArray[np.float64]) -> int:
    """Rows of P in w = A^{-1}(z - mu) (unit_rows, then standardise's C A / |C A|); their
    number, or -EMPTY / -FAR where the general path has its own case."""
    m = 0
    for j in range(C.shape[0]):
        amax = max(abs(C[j, 0]), abs(C[j, 1]))
        if amax <= 0.0:
            if d[j] < 0.0:
                return -EMPTY
            continue
        s0 = C[j, 0] / amax
        s1 = C[j, 1] / amax
        nn = math.sqrt(s0 * s0 + s1 * s1)
        u0 = s0 / nn
        u1 = s1 / nn
        du = (d[j] / amax) / nn
        if not math.isfinite(du):
            if d[j] < 0.0:
                return -EMPTY
            continue
        ca0 = u0 * a00 + u1 * a10
        ca1 = u1 * a11
        am = max(abs(ca0), abs(ca1))
        if not am > 0.0:
            return -FAR
        t0 = ca0 / am
        t1 = ca1 / am
        rn = am * math.sqrt(t0 * t0 + t1 * t1)
        w0 = ca0 / rn
        w1 = ca1 / rn
        dv = (du - (u0 * mu[0] + u1 * mu[1])) / rn
        if not (math.isfinite(dv) and math.isfinite(w0) and math.isfinite(w1)):
            return -FAR
        Cw[m, 0] = w0
        Cw[m, 1] = w1
        dw[m] = dv
        m += 1
    return m


@jit
def _drop_far_rows(Cw: NDArray[np.float64], dw: NDArray[np.float64], m: int,
                   t: NDArray[np.float64], far: float, keep: NDArray[np.bool_]) -> int:
    """Rows kept by standardise's rule (rows at least DROP_SIGMAS beyond the distance to a
    verified point of P are dropped; module docstring of fastpath._standardise); returns
    their number, or -THIN where no point was verified (the general path's LP)."""
    drop_sigmas = 20.0
    tmax = -math.inf
    for j in range(m):
        keep[j] = True
        tmax = max(tmax, t[j])
    if not tmax >= drop_sigmas:
        return m
    inside = True
    for j in range(m):
        if not dw[j] > 16.0 * _EPS * abs(dw[j]):
            inside = False
    p0 = 0.0
    p1 = 0.0
    if not inside:
        # the mean of the vertices of P cut by c_j.x <= clip (a subset of P), verified
        clip = 2.0 * (max(far, 0.0) + drop_sigmas)
        dc = np.empty(m)
        for j in range(m):
            dc[j] = min(dw[j], clip)
        nmax = m * (m - 1) // 2
        X = np.empty((max(nmax, 1), 2))
        ci = np.empty((max(nmax, 1), 2), dtype=np.intp)
        n = vertices2(Cw, dc, m, 1e-14, X, ci)
        cnt = 0
        for i in range(n):
            x0 = X[i, 0]
            x1 = X[i, 1]
            if max_viol(Cw, dc, m, x0, x1) <= 1e-9 * (1.0 + math.hypot(x0, x1)):
                p0 += x0
                p1 += x1
                cnt += 1
        if cnt == 0:
            return -THIN
        p0 /= cnt
        p1 /= cnt
        pn = math.hypot(p0, p1)
        for j in range(m):
            slack = dw[j] - (Cw[j, 0] * p0 + Cw[j, 1] * p1)
            if not slack > 16.0 * _EPS * (abs(dw[j]) + pn):
                return -THIN
    delta = math.hypot(p0, p1)
    kept = 0
    for j in range(m):
        keep[j] = not (t[j] >= (delta + drop_sigmas) * (1.0 + 1e-9))
        if keep[j]:
            kept += 1
    return kept


@jit
def one_shot_s2(C: NDArray[np.float64], d: NDArray[np.float64], mu: NDArray[np.float64],
                cov: NDArray[np.float64], draws_b: NDArray[np.float64],
                draws_u: NDArray[np.float64], bounds: NDArray[np.float64],
                lamcT: NDArray[np.float64], logw: NDArray[np.float64],
                q_start: NDArray[np.intp], moments: bool, tail_on: bool, margin: float,
                gweight: float, log_cancel_cub: float, max_log_cancel: float,
                tail_distance: float, moment_tol: float, out: NDArray[np.float64]) -> int:
    """One call of the S = 2 integrals (module docstring); returns the status.

    Parameters
    ----------
    C, d : (m, 2), (m,) the polygon as given. mu, cov : (2,), (2, 2) the Gaussian.
    draws_b : (64, 2), draws_u : (m + 1, 64, m) the generic-direction draws of
        :func:`fastpath._polyhedron._generic_draws` (bounded; unbounded with k rows in
        ``draws_u[k, :, :k]``).
    bounds, lamcT, logw, q_start : the cubature rules (``_simplex_cubature._rule_table(2)``).
    moments : compute the moments (else log m0 only; no tail test).
    tail_on : the tail slices are enabled (``_cone_tail.tail_enabled()``).
    margin, gweight, log_cancel_cub, max_log_cancel, tail_distance, moment_tol : the general
        path's constants (``_cones._GENERIC_MARGIN``, ``_GENERIC_WEIGHT``,
        ``_cone_cubature._LOG_CANCEL_CUBATURE``, ``_cones._MAX_LOG_CANCEL``,
        ``_cone_tail.TAIL_DISTANCE``, ``_cone_cubature._MOMENT_TOL``).
    out : (14,) out: log m0, E[z|P] (2), E[z z^T|P] (4, row-major), m0, m1 (2), M2 (4).
    """
    m_in = C.shape[0]
    for j in range(m_in):
        if not (math.isfinite(C[j, 0]) and math.isfinite(C[j, 1]) and math.isfinite(d[j])):
            return INVALID
    if not (math.isfinite(mu[0]) and math.isfinite(mu[1])) or not cov_ok(cov):
        return INVALID
    # ---- standardise: A = chol(cov), w = A^{-1}(z - mu), unit rows, far rows dropped
    s01 = 0.5 * (cov[0, 1] + cov[1, 0])
    a00 = math.sqrt(cov[0, 0])
    a10 = s01 / a00
    a11sq = cov[1, 1] - a10 * a10
    if not a11sq > 0.0:
        return INVALID
    a11 = math.sqrt(a11sq)
    Cw = np.empty((max(m_in, 1), 2))
    dw = np.empty(max(m_in, 1))
    m = _standardised_rows(C, d, mu, a00, a10, a11, Cw, dw)
    if m < 0:
        return -m
    if m < 2:
        return LINES
    t = np.empty(m)
    far = -math.inf
    for j in range(m):
        t[j] = dw[j] / math.sqrt(Cw[j, 0] * Cw[j, 0] + Cw[j, 1] * Cw[j, 1])
        far = max(far, -t[j])
    if not far < tail_distance:
        return FAR
    keep = np.empty(m, dtype=np.bool_)
    mk = _drop_far_rows(Cw, dw, m, t, far, keep)
    if mk < 0:
        return -mk
    C0 = np.empty((mk, 2))
    d0 = np.empty(mk)
    i = 0
    for j in range(m):
        if keep[j]:
            C0[i, 0] = Cw[j, 0]
            C0[i, 1] = Cw[j, 1]
            d0[i] = dw[j]
            i += 1
    # ---- geometry
    (status, k, L, V, A, CA, E_start, E_dir, E_len, edge_id, orient, Cf, df, c_gen,
     nr) = geometry_s2(C0, d0, draws_b, draws_u)
    if status != OK:
        return status
    E = E_len.size
    M = df.size
    # ---- the tail slices take a mean at least tail_distance from P (moments only)
    if moments and tail_on:
        inside = True
        for j in range(M):
            if not df[j] >= 0.0:
                inside = False
        if not inside:
            x0, x1 = _nearest_s2(0.0, 0.0, 1.0, 0.0, 1.0, E_start, E_dir, E_len)
            if math.sqrt(x0 * x0 + x1 * x1) >= tail_distance:
                return TAIL
    # ---- the fused cone kernel on the one (Gaussian, polygon) pair, whitened
    mean3 = np.zeros((1, 1, 2))
    chol4 = np.zeros((1, 1, 2, 2))
    chol4[0, 0, 0, 0] = 1.0
    chol4[0, 0, 1, 1] = 1.0
    p_seg = np.zeros(1, dtype=np.intp)
    p_end = np.full(1, k, dtype=np.intp)
    out_lm = np.empty((1, 1))
    out_lc = np.empty((1, 1))
    out_dm = np.zeros((1, 1, 2))
    out_tc = np.zeros((1, 1, 2, 2))
    out_me = np.zeros((1, 1))
    zero = np.intp(0)  # a variable, not a literal: one compiled specialisation of _pair_s2
    _pair_s2(zero, zero, zero, mean3, chol4, p_seg, p_end, V, CA, edge_id, orient,
             E_start.reshape((1, E, 2)), E_dir.reshape((1, E, 2)), E_len.reshape((1, E)),
             Cf.reshape((1, M, 2)), df.reshape((1, M)), np.ones((1, M), dtype=np.bool_),
             c_gen.reshape((1, 2)), moments, margin, gweight, math.inf, np.empty(E),
             np.empty((k, 11)), np.empty(BUF_SIZE), out_lm, out_dm, out_tc, out_lc, out_me)
    lm = out_lm[0, 0]
    lc = out_lc[0, 0]
    w0 = out_dm[0, 0, 0]
    w1 = out_dm[0, 0, 1]
    v00 = out_tc[0, 0, 0, 0]
    v01 = out_tc[0, 0, 0, 1]
    v11 = out_tc[0, 0, 1, 1]
    # ---- cancellation in a bounded polygon (in m0, or in the moments alone): simplex
    # cubature over its fan triangulation; for the moments alone log m0 stays the cone sum's
    # (a thin-coned polygon goes with log_cancel +inf in the batched path: the large budget)
    # np.intp: the E-step's specialisation of _thinness_s2, not one on a literal 0
    thin = nr == 0 and _thinness_s2(CA, np.intp(0), k, 1.0, 0.0, 1.0) < _THIN_CONE
    cancelled = thin or (nr == 0 and not lc <= log_cancel_cub)
    mom_only = (moments and nr == 0 and not cancelled and not out_me[0, 0] <= moment_tol)
    if cancelled or mom_only:
        # _cone_cubature._CUBATURE_BUDGET
        budget = 64 if cancelled and not thin and lc < 4.0 else 1024
        tris = np.empty((M, 3), dtype=np.intp)
        nt = 0
        for j in range(M):
            a = -1
            b = -1
            c = 0
            has0 = False
            for v in range(k):
                if A[v, 0] == j or A[v, 1] == j:
                    if v == 0:
                        has0 = True
                    if c == 0:
                        a = v
                    b = v
                    c += 1
            if c < 2 or has0:
                continue
            if c > 2:
                return NONSIMPLE
            tris[nt, 0] = 0
            tris[nt, 1] = a
            tris[nt, 2] = b
            nt += 1
        res = np.empty(6)
        if nt > 0 and cubature_s2(V, tris, np.intp(nt), budget, bounds, lamcT, logw, q_start, res):
            if cancelled:
                lm = res[0]
                lc = 0.0
            w0 = res[1]
            w1 = res[2]
            v00 = res[3]
            v01 = res[4]
            v11 = res[5]
    if not lc <= max_log_cancel:
        return CANCEL
    if not math.isfinite(lm):
        return NONFINITE
    out[0] = lm
    m0 = math.exp(lm)
    out[7] = m0
    if not moments:
        return OK
    # ---- back to z: E[z|P] - mu = A dm_w, Cov[z|P] = A Cov_w A^T (symmetrised)
    dm0 = a00 * w0
    dm1 = a10 * w0 + a11 * w1
    # A V A^T with A = [[a00, 0], [a10, a11]]
    t00 = a00 * v00 * a00
    t01 = a00 * (v00 * a10 + v01 * a11)
    t10 = (a10 * v00 + a11 * v01) * a00
    t11 = (a10 * v00 + a11 * v01) * a10 + (a10 * v01 + a11 * v11) * a11
    c01 = 0.5 * (t01 + t10)
    mp0 = mu[0] + dm0
    mp1 = mu[1] + dm1
    out[1] = mp0
    out[2] = mp1
    out[3] = t00 + mp0 * mp0
    out[4] = c01 + mp0 * mp1
    out[5] = c01 + mp1 * mp0
    out[6] = t11 + mp1 * mp1
    for i in range(1, 7):
        if not math.isfinite(out[i]):
            return NONFINITE
    out[8] = m0 * out[1]
    out[9] = m0 * out[2]
    for i in range(4):
        out[10 + i] = m0 * out[3 + i]
    return OK


def _warmup() -> None:
    from ._one_shot import warmup_inputs

    for args in warmup_inputs():
        one_shot_s2(*args)
