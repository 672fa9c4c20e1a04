"""Compiled node loops of the simplex cubature (:mod:`fastpath._simplex_cubature`).

Three kernels, all loops over independent elements split over the kernel threads
(:func:`fastpath._jit.parallel_for`), each element writing only its own output slots, so
that the results are the same bit for bit for any thread count:

* :func:`simplex_stats`: per simplex (threads over blocks of simplices), Stroud's conical
  product rule chosen by the simplex's spread band: the log of its N(0, I) mass, and the
  mean offset from its centre and the covariance of the density on it;
* :func:`combine_owners`: per polytope (threads over polytopes, its simplices summed in
  their input order), the log-sum-exp of its simplices' masses, its mean and its
  covariance about that mean;
* :func:`cubature_cost`: per (Gaussian, polytope) pair, the S >= 3 routing's estimate of
  the cubature's nodes and a lower bound of the polytope's whitened distance
  (``fastpath._cone_cubature._CubatureRouting._cubature_cost``).

The arithmetic is that of :func:`fastpath._simplex_cubature._simplex_block_numpy`
(nodes as centre + offset, Y = lamc @ (X - centre), log N = -|c|^2/2 - c.Y - |Y|^2/2,
moments about the centre), with the sums taken over chunks of nodes in a fixed order
(a running maximum for the log-sum-exp, four interleaved partial sums) instead of through
GEMMs, and exp by :func:`fastpath._jit_special.exp_vec` (vectorised, within 2 ulp): the two
agree to rounding (tests/test_jit_cubature.py: log m0 within ~1e-15 relative). On the
S = 3 E-step's cubature batches ~6 ns per node single-threaded against ~10 for numpy
(benchmarks/cubature_jit.py).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit, parallel_for
from ._jit_special import exp_vec, sum4

#: simplices per block (one scratch allocation each)
_BLOCK = 16
#: nodes per chunk of the node loop (its (s + 1) working rows stay in L1)
_CHUNK = 128


# Sums over the nodes in four interleaved partial sums (q mod 4), then (s0 + s1) + (s2 + s3):
# a fixed order (the same for any thread count) whose four chains run in parallel (a
# single running sum is bound by the latency of one addition per node).
# The helpers are plain kernels, which LLVM inlines into the node loops by itself: numba's
# own inlining (jit_inline) gave no measurable speed here (S = 3 cubature batches 1.91 s
# against 1.97 s, load 3) and cost 5 s of this module's 17 s cold compilation.


@jit
def _dot4(x: NDArray[np.float64], y: NDArray[np.float64], n: int) -> float:
    """sum x[:n] * y[:n] in the fixed order above."""
    s0 = s1 = s2 = s3 = 0.0
    m = n - n % 4
    for q in range(0, m, 4):
        s0 += x[q] * y[q]
        s1 += x[q + 1] * y[q + 1]
        s2 += x[q + 2] * y[q + 2]
        s3 += x[q + 3] * y[q + 3]
    for q in range(m, n):
        s0 += x[q] * y[q]
    return (s0 + s1) + (s2 + s3)


@jit
def _max4(x: NDArray[np.float64], n: int) -> float:
    """max x[:n] (-inf when n = 0; NaN entries are skipped, as they fail every >)."""
    s0 = s1 = s2 = s3 = -math.inf
    m = n - n % 4
    for q in range(0, m, 4):
        s0 = x[q] if x[q] > s0 else s0
        s1 = x[q + 1] if x[q + 1] > s1 else s1
        s2 = x[q + 2] if x[q + 2] > s2 else s2
        s3 = x[q + 3] if x[q + 3] > s3 else s3
    for q in range(m, n):
        s0 = x[q] if x[q] > s0 else s0
    return max(max(s0, s1), max(s2, s3))


# Node offsets Y = lamc @ D (s, n) and log terms lf = log w - c.Y - |Y|^2/2 (n,) of the
# nodes qa .. qa + n of the concatenated rules: one loop over the nodes for s = 2 and 3
# (the sums in registers, vectorised over nodes), row passes for other s


@jit
def _offsets(lamcT: NDArray[np.float64], logw: NDArray[np.float64], qa: int, n: int,
             D: NDArray[np.float64], c: NDArray[np.float64], Y: NDArray[np.float64],
             lf: NDArray[np.float64]) -> None:
    sp1, s = D.shape
    for d in range(s):
        Yd = Y[d]
        da = D[0, d]
        for q in range(n):
            Yd[q] = lamcT[0, qa + q] * da
        for a in range(1, sp1):
            da = D[a, d]
            for q in range(n):
                Yd[q] += lamcT[a, qa + q] * da
    for q in range(n):
        lf[q] = logw[qa + q]
    for d in range(s):
        cd = c[d]
        Yd = Y[d]
        for q in range(n):
            y = Yd[q]
            lf[q] -= cd * y + 0.5 * y * y


@jit
def _offsets2(lamcT: NDArray[np.float64], logw: NDArray[np.float64], qa: int, n: int,
              D: NDArray[np.float64], c: NDArray[np.float64], Y: NDArray[np.float64],
              lf: NDArray[np.float64]) -> None:
    l0, l1, l2 = lamcT[0, qa:qa + n], lamcT[1, qa:qa + n], lamcT[2, qa:qa + n]
    lw = logw[qa:qa + n]
    Y0, Y1 = Y[0], Y[1]
    d00, d01, d10, d11, d20, d21 = D[0, 0], D[0, 1], D[1, 0], D[1, 1], D[2, 0], D[2, 1]
    c0, c1 = c[0], c[1]
    for q in range(n):
        y0 = l0[q] * d00 + l1[q] * d10 + l2[q] * d20
        y1 = l0[q] * d01 + l1[q] * d11 + l2[q] * d21
        Y0[q] = y0
        Y1[q] = y1
        lf[q] = lw[q] - (c0 * y0 + 0.5 * y0 * y0) - (c1 * y1 + 0.5 * y1 * y1)


@jit
def _offsets3(lamcT: NDArray[np.float64], logw: NDArray[np.float64], qa: int, n: int,
              D: NDArray[np.float64], c: NDArray[np.float64], Y: NDArray[np.float64],
              lf: NDArray[np.float64]) -> None:
    l0, l1 = lamcT[0, qa:qa + n], lamcT[1, qa:qa + n]
    l2, l3 = lamcT[2, qa:qa + n], lamcT[3, qa:qa + n]
    lw = logw[qa:qa + n]
    Y0, Y1, Y2 = Y[0], Y[1], Y[2]
    d00, d01, d02 = D[0, 0], D[0, 1], D[0, 2]
    d10, d11, d12 = D[1, 0], D[1, 1], D[1, 2]
    d20, d21, d22 = D[2, 0], D[2, 1], D[2, 2]
    d30, d31, d32 = D[3, 0], D[3, 1], D[3, 2]
    c0, c1, c2 = c[0], c[1], c[2]
    for q in range(n):
        y0 = l0[q] * d00 + l1[q] * d10 + l2[q] * d20 + l3[q] * d30
        y1 = l0[q] * d01 + l1[q] * d11 + l2[q] * d21 + l3[q] * d31
        y2 = l0[q] * d02 + l1[q] * d12 + l2[q] * d22 + l3[q] * d32
        Y0[q] = y0
        Y1[q] = y1
        Y2[q] = y2
        lf[q] = (lw[q] - (c0 * y0 + 0.5 * y0 * y0) - (c1 * y1 + 0.5 * y1 * y1)
                 - (c2 * y2 + 0.5 * y2 * y2))


@jit
def _abs_det(E: NDArray[np.float64]) -> float:
    """|det E| of a small square matrix by LU with partial pivoting (as LAPACK's getrf);
    E is overwritten."""
    n = E.shape[0]
    det = 1.0
    for j in range(n):
        p = j
        big = abs(E[j, j])
        for i in range(j + 1, n):
            if abs(E[i, j]) > big:
                big = abs(E[i, j])
                p = i
        if big == 0.0:
            return 0.0
        if p != j:
            for k in range(n):
                t = E[j, k]
                E[j, k] = E[p, k]
                E[p, k] = t
        piv = E[j, j]
        det *= piv
        for i in range(j + 1, n):
            f = E[i, j] / piv
            for k in range(j + 1, n):
                E[i, k] -= f * E[j, k]
    return abs(det)


def simplex_stats(X: NDArray[np.float64], rule: NDArray[np.intp],
                  lamcT: NDArray[np.float64], logw: NDArray[np.float64],
                  q_start: NDArray[np.intp], log_fact: float, moments: bool,
                  logW: NDArray[np.float64], mo: NDArray[np.float64],
                  cw: NDArray[np.float64]) -> None:
    """One cubature rule per simplex, blocks of simplices split over the kernel threads.

    Parameters
    ----------
    X : (K, s+1, s) simplex vertices (whitened).
    rule : (K,) index of each simplex's rule (-1: none, the simplex gets log mass -inf).
    lamcT : (s+1, Qt) barycentric node offsets from the centre of all rules, concatenated.
    logw : (Qt,) log weights of those nodes.
    q_start : (n_rules + 1,) where each rule's nodes start in lamcT / logw.
    log_fact : log s!.
    moments : whether to fill mo and cw.
    logW : (K,) out: log of the N(0, I) mass of each simplex (without (2 pi)^(-s/2)).
    mo : (K, s) out: mean offset from the simplex's centre.
    cw : (K, s, s) out: covariance of the density on the simplex.
    """
    parallel_for(lambda lo, hi: _simplex_blocks(lo, hi, X, rule, lamcT, logw, q_start,
                                                log_fact, moments, logW, mo, cw),
                 (X.shape[0] + _BLOCK - 1) // _BLOCK)


@jit
def _simplex_blocks(lo: int, hi: int, X: NDArray[np.float64], rule: NDArray[np.intp],
                    lamcT: NDArray[np.float64], logw: NDArray[np.float64],
                    q_start: NDArray[np.intp], log_fact: float, moments: bool,
                    logW: NDArray[np.float64], mo: NDArray[np.float64],
                    cw: NDArray[np.float64]) -> None:
    """:func:`simplex_stats` for the simplices of blocks lo..hi-1 (of _BLOCK simplices)."""
    K = X.shape[0]
    sp1 = X.shape[1]
    s = X.shape[2]
    for b in range(lo, hi):
        Y = np.empty((s, _CHUNK))
        EY = np.empty((s, _CHUNK))
        lf = np.empty(_CHUNK)
        c = np.empty(s)
        D = np.empty((sp1, s))
        E = np.empty((s, s))
        m1 = np.empty(s)
        m2 = np.empty((s, s))
        for k in range(b * _BLOCK, min(K, (b + 1) * _BLOCK)):
            for d in range(s):
                mo[k, d] = 0.0
                for e in range(s):
                    cw[k, d, e] = 0.0
            r = rule[k]
            if r < 0:
                logW[k] = -math.inf
                continue
            q0 = q_start[r]
            Q = q_start[r + 1] - q0
            # centre (as _centres: x0 + x1 + ..., then / (s+1)) and offsets
            cc = 0.0
            for d in range(s):
                acc = X[k, 0, d] + X[k, 1, d]
                for a in range(2, sp1):
                    acc += X[k, a, d]
                c[d] = acc / sp1
                cc += c[d] * c[d]
            for a in range(sp1):
                for d in range(s):
                    D[a, d] = X[k, a, d] - c[d]
            for i in range(s):
                for d in range(s):
                    E[i, d] = X[k, i + 1, d] - X[k, 0, d]
            vol = _abs_det(E)
            if not vol > 0.0:
                logW[k] = -math.inf
                continue
            logvol = math.log(vol) - log_fact
            # nodes in chunks of _CHUNK (their offsets Y (s, chunk) and log terms stay in
            # L1): log-sum-exp against a running maximum (the sums are rescaled when a
            # later chunk raises it), the first and second moments about the centre
            mx = -math.inf
            W = 0.0
            for d in range(s):
                m1[d] = 0.0
                for e in range(s):
                    m2[d, e] = 0.0
            for j0 in range(0, Q, _CHUNK):
                n = min(_CHUNK, Q - j0)
                qa = q0 + j0
                if s == 3:
                    _offsets3(lamcT, logw, qa, n, D, c, Y, lf)
                elif s == 2:
                    _offsets2(lamcT, logw, qa, n, D, c, Y, lf)
                else:
                    _offsets(lamcT, logw, qa, n, D, c, Y, lf)
                cm = _max4(lf, n)
                if cm > mx:
                    f = math.exp(mx - cm)          # 0 while mx = -inf
                    W *= f
                    for d in range(s):
                        m1[d] *= f
                        for e in range(d, s):
                            m2[d, e] *= f
                    mx = cm
                if not math.isfinite(mx):
                    continue
                for q in range(n):
                    lf[q] = exp_vec(lf[q] - mx)
                W += sum4(lf, n)
                if moments:
                    for d in range(s):
                        Yd = Y[d]
                        EYd = EY[d]
                        for q in range(n):
                            EYd[q] = lf[q] * Yd[q]
                        m1[d] += sum4(EYd, n)
                        for e in range(d, s):
                            m2[d, e] += _dot4(EYd, Y[e], n)
            if not (math.isfinite(mx) and W > 0.0):
                logW[k] = -math.inf
                continue
            logW[k] = mx + math.log(W) + logvol - 0.5 * cc
            if not moments:
                continue
            for d in range(s):
                m1[d] /= W
                for e in range(d, s):
                    m2[d, e] /= W
            for d in range(s):
                mo[k, d] = m1[d]
                for e in range(d, s):
                    v = m2[d, e] - m1[d] * m1[e]
                    cw[k, d, e] = v
                    cw[k, e, d] = v


def combine_owners(logW: NDArray[np.float64], mo: NDArray[np.float64],
                   cw: NDArray[np.float64], c: NDArray[np.float64],
                   order: NDArray[np.intp], seg: NDArray[np.intp], log_norm: float,
                   moments: bool, log_m0: NDArray[np.float64], mean: NDArray[np.float64],
                   cov: NDArray[np.float64]) -> None:
    """Per polytope: log-sum-exp of its simplices' masses and the mixture's moments;
    polytopes split over the kernel threads.

    Parameters
    ----------
    logW, mo, cw : (K,), (K, s), (K, s, s) per simplex (:func:`simplex_stats`).
    c : (K, s) the simplices' centres.
    order : (K,) simplices grouped by polytope, each group in input order.
    seg : (n_owner + 1,) polytope i owns order[seg[i]:seg[i+1]].
    log_norm : subtracted from each log mass (s log sqrt(2 pi)).
    moments : whether to fill mean and cov.
    log_m0 : (n_owner,) out: log mass (-inf without any).
    mean : (n_owner, s) out: the mean (about the first simplex's centre, whose
        differences with the others' keep the digits of a small polytope far out); the
        first simplex's centre where the mass is 0, zeros without simplices.
    cov : (n_owner, s, s) out: covariance about that mean (zeros where the mass is 0).
    """
    parallel_for(lambda lo, hi: _combine_range(lo, hi, logW, mo, cw, c, order, seg, log_norm,
                                               moments, log_m0, mean, cov),
                 seg.size - 1, 64)


@jit
def _combine_range(i0: int, i1: int, logW: NDArray[np.float64], mo: NDArray[np.float64],
                   cw: NDArray[np.float64], c: NDArray[np.float64],
                   order: NDArray[np.intp], seg: NDArray[np.intp], log_norm: float,
                   moments: bool, log_m0: NDArray[np.float64], mean: NDArray[np.float64],
                   cov: NDArray[np.float64]) -> None:
    """:func:`combine_owners` for the polytopes i0..i1-1."""
    s = c.shape[1]
    for i in range(i0, i1):
        lo = seg[i]
        hi = seg[i + 1]
        top = -math.inf
        for t in range(lo, hi):
            top = max(top, logW[order[t]])
        ok = math.isfinite(top)
        sh = top if ok else 0.0
        tot = 0.0
        for t in range(lo, hi):
            tot += math.exp(logW[order[t]] - sh)
        log_m0[i] = top + math.log(tot) - log_norm if ok else -math.inf
        if not moments:
            continue
        for d in range(s):
            mean[i, d] = c[order[lo], d] if hi > lo else 0.0
            for e in range(s):
                cov[i, d, e] = 0.0
        if not (hi > lo and tot > 0.0):
            continue
        moff = np.zeros(s)
        for t in range(lo, hi):
            k = order[t]
            a = math.exp(logW[k] - sh)
            for d in range(s):
                moff[d] += a * ((c[k, d] - mean[i, d]) + mo[k, d])
        for d in range(s):
            moff[d] /= tot
        for t in range(lo, hi):
            k = order[t]
            a = math.exp(logW[k] - sh)
            for d in range(s):
                dd = (c[k, d] - mean[i, d]) + mo[k, d] - moff[d]
                for e in range(d, s):
                    de = (c[k, e] - mean[i, e]) + mo[k, e] - moff[e]
                    cov[i, d, e] += a * (cw[k, d, e] + dd * de)
        for d in range(s):
            for e in range(d, s):
                v = cov[i, d, e] / tot
                cov[i, d, e] = v
                cov[i, e, d] = v
            mean[i, d] += moff[d]


def cubature_cost(V: NDArray[np.float64], Vmask: NDArray[np.bool_], T: NDArray[np.float64],
                  chol: NDArray[np.float64], mean: NDArray[np.float64],
                  bounds: NDArray[np.float64], nodes: NDArray[np.float64], spread_cap: float
                  ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The cost model of ``fastpath._cone_cubature._CubatureRouting._cubature_cost`` per
    (Gaussian, polytope) pair: estimated cubature nodes (N, n) (inf for an unbounded
    polytope, ``T`` = 0) and the lower bound |c| - R (N, n) of the whitened distance from the
    mean (0 for an unbounded one).

    ``V`` (n, Vm, s) the padded vertices with ``Vmask``, ``T`` (n,) the fan simplices,
    ``chol`` (Nc, n, s, s) lower, Nc in {1, N}, ``mean`` (N, n, s); ``bounds`` and ``nodes``
    the rules' spread bands and node counts, ``spread_cap`` the spread one simplex may have
    (``_simplex_cubature._SPREAD``). The vertices are whitened by forward substitution
    instead of numpy's inverse and product: rounding differs, the estimate does not."""
    N, n = mean.shape[:2]
    cost = np.empty((N, n))
    far = np.empty((N, n))
    parallel_for(lambda lo, hi: _cost_range(lo, hi, V, Vmask, T, chol, mean, bounds, nodes,
                                            spread_cap, cost, far),
                 N * n, 256)
    return cost, far


@jit
def _cost_range(lo: int, hi: int, V: NDArray[np.float64], Vmask: NDArray[np.bool_],
                T: NDArray[np.float64], chol: NDArray[np.float64], mean: NDArray[np.float64],
                bounds: NDArray[np.float64], nodes: NDArray[np.float64], spread_cap: float,
                cost: NDArray[np.float64], far: NDArray[np.float64]) -> None:
    """:func:`cubature_cost` for the pairs lo..hi-1 (Gaussian-major)."""
    n = mean.shape[1]
    s = mean.shape[2]
    Vm = V.shape[1]
    nb = bounds.size
    shared = chol.shape[0] == 1
    W = np.empty((Vm, s))
    c = np.empty(s)
    for i in range(lo, hi):
        a = i // n
        j = i - a * n
        cj = 0 if shared else a
        if not T[j] > 0.0:
            cost[a, j] = math.inf
            far[a, j] = 0.0
            continue
        for d in range(s):
            c[d] = 0.0
        cnt = 0
        for k in range(Vm):
            if not Vmask[j, k]:
                continue
            cnt += 1
            # U^-1 (v - mean), U lower triangular
            for r in range(s):
                acc = V[j, k, r] - mean[a, j, r]
                for q in range(r):
                    acc -= chol[cj, j, r, q] * W[k, q]
                W[k, r] = acc / chol[cj, j, r, r]
                c[r] += W[k, r]
        nc2 = 0.0
        for d in range(s):
            c[d] /= max(cnt, 1)
            nc2 += c[d] * c[d]
        r2 = 0.0
        for k in range(Vm):
            if not Vmask[j, k]:
                continue
            e2 = 0.0
            for d in range(s):
                e2 += (W[k, d] - c[d]) ** 2
            r2 = max(r2, e2)
        R = math.sqrt(r2)
        D = 2.0 * R
        ncn = math.sqrt(nc2)
        spread = ncn * D + 0.5 * D * D
        # the first band whose bound is >= spread, the last one past them all (and for nan)
        b = 0
        while b < nb - 1 and not bounds[b] >= spread:
            b += 1
        cost[a, j] = T[j] * nodes[b] * max(1.0, spread / spread_cap) ** s
        far[a, j] = max(ncn - R, 0.0)


def _warmup() -> None:
    """Compile the kernels for s = 2 (every signature is the same for all s)."""
    from . import _simplex_cubature as sc

    X = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]],
                  [[1.0, 1.0], [1.5, 1.0], [1.0, 2.0]]])
    for moments in (True, False):
        sc.simplex_moments(X, np.array([0, 0]), 1, moments=moments, compiled=True)
    V = X[:1].copy()
    cubature_cost(V, np.ones((1, 3), dtype=np.bool_), np.ones(1), np.eye(2)[None, None].copy(),
                  np.zeros((2, 1, 2)), np.array([1.0, np.inf]), np.array([4.0, 9.0]), 12.0)
