"""The compiled tail slices: moments of a Gaussian far from a polyhedron (S = 2, 3), per pair.

The method of :mod:`fastpath._cone_tail` (whose notes give it), pair by pair in compiled
code instead of vectorised over the slices of one pair: the frame about the whitened
nearest point x*, the facets and edges in it, and the slices of
:mod:`fastpath._jit_tail_slices` (their tilted moments, initial sub-intervals and adaptive
rule); at S = 3 the outer variable u1 by the same adaptive rule, each of its points the S = 2
computation of the slice at u1. The accepted nodes are combined about their own mean at the
end, as there. The numpy module stays the second implementation these kernels are tested
against (tests/test_jit_tail.py); the differences are those of rounding and of the sums'
order.

The numpy code spends most of its time in Python work per slice evaluation (a 40-node
quadrature on short arrays, the bookkeeping of the adaptive levels); here a slice evaluation
is one pass over the facets and at most 40 vectorised exponentials (timings in
benchmarks/tail_slices.py and the README).

The three functions of the S = 3 nesting and the pair set-up, each called from one place,
are inlined at numba's level (:func:`fastpath._jit.jit_inline`): every compiled function's
machine code is generated again inside each caller, so a deep chain of large functions
costs its callees' compilation once per level.

A pair whose slices cannot be set up (no facet below x* along the normal, a non-finite
input) is reported not ``ok``; the caller then takes the numpy path.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._cone_tail import _MAX_ITER, _PARALLEL, _TOL_OUTER, _U_MAX
from ._jit import jit, jit_inline, parallel_for
from ._jit_special import sorted_head
from ._jit_tail_slices import (
    _LOG_SQRT_2PI,
    _NODES,
    _combine,
    _initial,
    _level,
    _log_mills,
    _new_buffers,
    _node,
    _piece_peak,
    _slice2,
)


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
    # the driver loop of _slice2 with the outer integrand: numba has no cheap function
    # arguments, and one driver for both would call itself through the inner slices
    # sizes from arrays and np.int64(0), not literals: a literal argument would compile
    # the callee once more, specialised on it
    acc_lw, acc_mu, acc_C, st = _new_buffers(A.size, mean.size)
    n_acc = np.int64(0)
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
