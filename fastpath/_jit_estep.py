"""Compiled per-point assembly of the E-step's posterior moments (fastpath._estep._assemble).

:func:`assemble` is the numpy ``_assemble`` after the normalising constant: from log w
(n, R) with its row maxima and sums of exp(log w - max) (computed by numpy, so e0 is the
same to the last bit), the per-region posterior moments e0, e1, E2, cmean, ccov and the
posterior mean and covariance of every point, in one pass over each point's regions
(threads over points) instead of a dozen (n, R, S, S) temporaries. Each element is the same
expression as in numpy; the sums over regions run left to right, as numpy's reductions
over a non-contiguous axis do (tests/test_jit_estep.py compares the two).

:func:`far_pairs` is the screen of ``fastpath._estep._fix_tails`` (pairs with weight whose
truncated mean lies far in a tail) in one pass over a chunk's pairs.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._cones import _kernel_array
from ._jit import jit, parallel_for

__all__ = ["assemble", "far_pairs"]


def assemble(log_w: NDArray[np.float64], ew: NDArray[np.float64], top: NDArray[np.float64],
             tot: NDArray[np.float64], log_tot: NDArray[np.float64],
             mu_z: NDArray[np.float64], dm: NDArray[np.float64], tcov: NDArray[np.float64]):
    """(log_e0, e0 (n, R), e1 (n, R, S), E2 (n, R, S, S), cmean, ccov, mean (n, S),
    cov (n, S, S)) of :class:`fastpath._estep.EStepChunk`.

    ``top`` (n,): max of each row of ``log_w``; ``ew`` (n, R): exp(log_w - top);
    ``tot`` (n,): its row sums, ``log_tot`` their logs (numpy's: its exp and log may differ
    from libm's in the last bit). Points split over the kernel threads.
    """
    n, R = log_w.shape
    S = mu_z.shape[2]
    log_e0 = np.empty((n, R))
    e0 = np.empty((n, R))
    e1 = np.empty((n, R, S))
    E2 = np.empty((n, R, S, S))
    cmean = np.empty((n, R, S))
    ccov = np.empty((n, R, S, S))
    mean = np.zeros((n, S))
    cov = np.zeros((n, S, S))
    parallel_for(lambda lo, hi: _assemble_range(lo, hi, log_w, ew, top, tot, log_tot, mu_z, dm,
                                                tcov, log_e0, e0, e1, E2, cmean, ccov, mean,
                                                cov),
                 n, max(1, 4096 // max(1, R * S * S)))
    return log_e0, e0, e1, E2, cmean, ccov, mean, cov


@jit
def _assemble_range(lo: int, hi: int, log_w: NDArray[np.float64], ew: NDArray[np.float64],
                    top: NDArray[np.float64], tot: NDArray[np.float64],
                    log_tot: NDArray[np.float64], mu_z: NDArray[np.float64],
                    dm: NDArray[np.float64], tcov: NDArray[np.float64],
                    log_e0: NDArray[np.float64], e0: NDArray[np.float64],
                    e1: NDArray[np.float64], E2: NDArray[np.float64],
                    cmean: NDArray[np.float64], ccov: NDArray[np.float64],
                    mean: NDArray[np.float64], cov: NDArray[np.float64]) -> None:
    """:func:`assemble` for the points lo..hi-1, into its outputs (mean and cov zeroed)."""
    R = log_w.shape[1]
    S = mu_z.shape[2]
    for p in range(lo, hi):
        t = top[p]
        lt = log_tot[p]
        for r in range(R):
            sh = log_w[p, r] - t
            w = ew[p, r] / tot[p]
            e0[p, r] = w
            log_e0[p, r] = sh - lt
            live = w > 0
            for i in range(S):
                c = mu_z[p, r, i] + dm[p, r, i] if live else 0.0
                cmean[p, r, i] = c
                e1[p, r, i] = w * c
                mean[p, i] += w * c
            for i in range(S):
                for j in range(S):
                    cc = tcov[p, r, i, j] if live else 0.0
                    ccov[p, r, i, j] = cc
                    E2[p, r, i, j] = w * (cc + cmean[p, r, i] * cmean[p, r, j])
        for r in range(R):
            w = e0[p, r]
            for i in range(S):
                for j in range(S):
                    di = cmean[p, r, i] - mean[p, i]
                    dj = cmean[p, r, j] - mean[p, j]
                    cov[p, i, j] += w * (ccov[p, r, i, j] + di * dj)
        for i in range(S):
            for j in range(i + 1, S):
                v = 0.5 * (cov[p, i, j] + cov[p, j, i])
                cov[p, i, j] = v
                cov[p, j, i] = v
            cov[p, i, i] = 0.5 * (cov[p, i, i] + cov[p, i, i])


def residual_terms(Xc: NDArray[np.float64], b: NDArray[np.float64], A: NDArray[np.float64],
                   cmean: NDArray[np.float64], e0: NDArray[np.float64],
                   ccov: NDArray[np.float64], nn: NDArray[np.intp], ww: NDArray[np.intp]):
    """The terms of :func:`fastpath._estep_statistics._residual_sums`: T (D, P) with
    T[d, p] = (x_n - b_w - A_w m_nw)_d^2 e0_nw for the pairs p = (nn[p], ww[p]), and
    Cw (R, S, S) = sum over n (in order) of e0_nw ccov_nw where e0_nw > 0. The residual is
    numpy's expression (the matrix product summed left to right from 0); the caller sums
    T along the pairs (numpy's pairwise summation). Pairs, then regions, split over the
    kernel threads."""
    P = nn.shape[0]
    R, D, S = A.shape
    n = e0.shape[0]
    T = np.empty((D, P))
    parallel_for(lambda lo, hi: _residual_range(lo, hi, Xc, b, A, cmean, e0, nn, ww, T), P,
                 max(1, 4096 // max(1, D * S)))
    Cw = np.zeros((R, S, S))
    parallel_for(lambda lo, hi: _region_cov_range(lo, hi, e0, ccov, Cw), R,
                 max(1, 4096 // max(1, n * S * S)))
    return T, Cw


@jit
def _residual_range(lo: int, hi: int, Xc: NDArray[np.float64], b: NDArray[np.float64],
                    A: NDArray[np.float64], cmean: NDArray[np.float64],
                    e0: NDArray[np.float64], nn: NDArray[np.intp], ww: NDArray[np.intp],
                    T: NDArray[np.float64]) -> None:
    """The columns lo..hi-1 of T of :func:`residual_terms`."""
    D = A.shape[1]
    S = A.shape[2]
    for p in range(lo, hi):
        i = nn[p]
        w = ww[p]
        e = e0[i, w]
        for d in range(D):
            acc = 0.0
            for k in range(S):
                acc += A[w, d, k] * cmean[i, w, k]
            r = Xc[i, d] - b[w, d] - acc
            T[d, p] = (r * r) * e


@jit
def _region_cov_range(lo: int, hi: int, e0: NDArray[np.float64], ccov: NDArray[np.float64],
                      Cw: NDArray[np.float64]) -> None:
    """Cw[lo:hi] of :func:`residual_terms` (zeroed), each summed over the points in order."""
    n = e0.shape[0]
    S = Cw.shape[1]
    for w in range(lo, hi):
        for i in range(n):
            e = e0[i, w]
            if e > 0:
                for k in range(S):
                    for l in range(S):
                        Cw[w, k, l] += e * ccov[i, w, k, l]


def assemble_chunk(log_w: NDArray[np.float64], ew: NDArray[np.float64],
                   top: NDArray[np.float64], tot: NDArray[np.float64],
                   mu_z: NDArray[np.float64], dm: NDArray[np.float64],
                   tcov: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """:func:`assemble` of numpy arrays (log w, exp(log w - top) (n, R), top, tot (n,),
    mu_z, dm (n, R, S), tcov (n, R, S, S)); log(tot) by numpy."""
    c = _kernel_array
    tot = c(tot)
    return assemble(c(log_w), c(ew), c(top), tot, np.log(tot), c(mu_z), c(dm), c(tcov))


def residual_sums(A: NDArray[np.float64], b: NDArray[np.float64], Xc: NDArray[np.float64],
                  e0: NDArray[np.float64], cmean: NDArray[np.float64],
                  ccov: NDArray[np.float64], nn: NDArray[np.intp], ww: NDArray[np.intp],
                  step: int) -> NDArray[np.float64]:
    """fastpath._estep_statistics._residual_sums from :func:`residual_terms`: the terms summed over
    the pairs by numpy (pairwise) in blocks of ``step`` pairs, as the numpy form does."""
    c = _kernel_array
    T, Cw = residual_terms(c(Xc), c(b), c(A), c(cmean), c(e0), c(ccov),
                           nn.astype(np.intp), ww.astype(np.intp))
    out = np.zeros(A.shape[1])
    for a in range(0, nn.size, step):
        out += np.sum(T[:, a:a + step], axis=1)
    out += np.einsum("wdi,wij,wdj->d", A, Cw, A)
    return out


def far_pairs(log_w: NDArray[np.float64], log_px: NDArray[np.float64],
              dm: NDArray[np.float64], chol: NDArray[np.float64], tail_nats: float,
              dist2: float, weight: float) -> NDArray[np.bool_]:
    """(n, R) the pairs of :func:`fastpath._estep._fix_tails`' screen: log e0 >= -tail_nats,
    the whitened offset of E[z|w] - mu_w (``chol`` (R, S, S) lower, of the regions' posterior
    covariances) at least sqrt(dist2), and e0 d^5 above ``weight``. Points split over the
    kernel threads; a screen, so libm's exp in place of numpy's does not matter."""
    n, R = log_w.shape
    out = np.zeros((n, R), dtype=np.bool_)
    parallel_for(lambda lo, hi: _far_range(lo, hi, _kernel_array(log_w), _kernel_array(log_px),
                                           _kernel_array(dm), _kernel_array(chol), tail_nats,
                                           dist2, weight, out),
                 n, max(1, 4096 // max(1, R)))
    return out


@jit
def _far_range(lo: int, hi: int, log_w: NDArray[np.float64], log_px: NDArray[np.float64],
               dm: NDArray[np.float64], chol: NDArray[np.float64], tail_nats: float,
               dist2: float, weight: float, out: NDArray[np.bool_]) -> None:
    """:func:`far_pairs` for the points lo..hi-1."""
    R = log_w.shape[1]
    S = dm.shape[2]
    y = np.empty(S)
    for i in range(lo, hi):
        for w in range(R):
            le = log_w[i, w] - log_px[i]
            if not le >= -tail_nats:
                continue
            # forward substitution, L y = dm
            d2 = 0.0
            for r in range(S):
                acc = 0.0
                for c in range(r):
                    acc += chol[w, r, c] * y[c]
                y[r] = (dm[i, w, r] - acc) / chol[w, r, r]
                d2 += y[r] * y[r]
            if d2 >= dist2 and math.exp(le) * d2 * d2 * math.sqrt(d2) > weight:
                out[i, w] = True


def _warmup() -> None:
    rng = np.random.default_rng(0)
    log_w = rng.normal(size=(3, 4))
    top = log_w.max(axis=1)
    ew = np.exp(log_w - top[:, None])
    tot = ew.sum(axis=1)
    assemble(log_w, ew, top, tot, np.log(tot), rng.normal(size=(3, 4, 2)), rng.normal(size=(3, 4, 2)),
             rng.normal(size=(3, 4, 2, 2)))
    far_pairs(log_w - 3.0, np.zeros(3), 10.0 * rng.normal(size=(3, 4, 2)),
              np.broadcast_to(np.eye(2), (4, 2, 2)), 46.0, 64.0, 100.0)
    mask = rng.random((3, 4)) > 0.3
    nn, ww = np.nonzero(mask)
    residual_terms(rng.normal(size=(3, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 3, 2)),
                   rng.normal(size=(3, 4, 2)), np.where(mask, 0.5, 0.0),
                   rng.normal(size=(3, 4, 2, 2)), nn.astype(np.intp), ww.astype(np.intp))
