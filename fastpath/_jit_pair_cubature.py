"""The E-step's cancellation cubature at S = 2 as one compiled kernel over (Gaussian, polygon)
pairs (:meth:`fastpath._cone_cubature._CubatureRouting._cubature_where_cancelled`).

Per pair: the polygon's fan triangles whitened by the Gaussian (U^-1 (X - mean), U its
Cholesky factor), the cost gate, bisection and rules of the one-call lane's
:func:`fastpath._jit_one_shot_cubature.cubature_s2` (the numpy route's
:func:`fastpath._simplex_cubature.simplex_moments` for one polygon), and the moments mapped
back to z (E[z|P] - mean = U m_w, Cov[z|P] = U C_w U^T). The pairs run over the kernel
threads (:func:`fastpath._jit.parallel_for`); each is computed by the same code on any
thread, so results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ._jit import jit, parallel_for
from ._jit_one_shot_cubature import cubature_s2


def pair_cubature_s2(tri: NDArray[np.float64], tri_start: NDArray[np.intp],
                     mean: NDArray[np.float64], chol: NDArray[np.float64],
                     a_idx: NDArray[np.intp], j_idx: NDArray[np.intp],
                     budget: NDArray[np.intp], bounds: NDArray[np.float64],
                     lamcT: NDArray[np.float64], logw: NDArray[np.float64],
                     q_start: NDArray[np.intp], moments: bool
                     ) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64],
                                NDArray[np.float64]]:
    """Simplex cubature of pairs (a_idx[p], j_idx[p]).

    Parameters
    ----------
    tri : ndarray, shape (T, 3, 2)
        The fan triangles of all polygons, polygon j's at ``tri[tri_start[j]:tri_start[j+1]]``.
    mean : ndarray, shape (N, n, 2)
    chol : ndarray, shape (Nc, n, 2, 2)
        Lower Cholesky factors; Nc is N or 1 (one per polygon for every Gaussian).
    budget : ndarray, shape (P,)
        Most simplices after bisection, per pair.

    Returns
    -------
    ok : ndarray of bool, shape (P,)
        Where the cubature resolved the pair (else the cone sum stands).
    lm : ndarray, shape (P,)
        log m0.
    dm : ndarray, shape (P, 2)
        E[z|P] - mean.
    tc : ndarray, shape (P, 2, 2)
        Cov[z|P] (symmetric).
    """
    P = a_idx.size
    ok = np.zeros(P, dtype=np.bool_)
    lm = np.full(P, np.nan)
    dm = np.zeros((P, 2))
    tc = np.zeros((P, 2, 2))
    parallel_for(lambda lo, hi: _pairs_range(lo, hi, tri, tri_start, mean, chol, a_idx, j_idx,
                                             budget, bounds, lamcT, logw, q_start, moments,
                                             ok, lm, dm, tc), P, 4)
    return ok, lm, dm, tc


@jit
def _pairs_range(lo: int, hi: int, tri: NDArray[np.float64], tri_start: NDArray[np.intp],
                 mean: NDArray[np.float64], chol: NDArray[np.float64],
                 a_idx: NDArray[np.intp], j_idx: NDArray[np.intp], budget: NDArray[np.intp],
                 bounds: NDArray[np.float64], lamcT: NDArray[np.float64],
                 logw: NDArray[np.float64], q_start: NDArray[np.intp], moments: bool,
                 ok: NDArray[np.bool_], lm: NDArray[np.float64], dm: NDArray[np.float64],
                 tc: NDArray[np.float64]) -> None:
    """:func:`pair_cubature_s2` for the pairs lo..hi-1, into its outputs."""
    one = chol.shape[0] == 1
    # scratch for the range's largest polygon, allocated once (per pair it would cost as
    # much as a small polygon's rule)
    most = 0
    for p in range(lo, hi):
        most = max(most, tri_start[j_idx[p] + 1] - tri_start[j_idx[p]])
    V = np.empty((3 * most, 2))
    tris = np.empty((most, 3), dtype=np.intp)
    for t in range(most):
        for v in range(3):
            tris[t, v] = 3 * t + v
    res = np.empty(6)
    for p in range(lo, hi):
        a = a_idx[p]
        j = j_idx[p]
        ca = 0 if one else a
        u00 = chol[ca, j, 0, 0]
        u10 = chol[ca, j, 1, 0]
        u11 = chol[ca, j, 1, 1]
        m0 = mean[a, j, 0]
        m1 = mean[a, j, 1]
        t0 = tri_start[j]
        nt = tri_start[j + 1] - t0
        for t in range(nt):
            for v in range(3):
                # U^-1 (x - mean), U lower triangular
                y0 = (tri[t0 + t, v, 0] - m0) / u00
                y1 = (tri[t0 + t, v, 1] - m1 - u10 * y0) / u11
                V[3 * t + v, 0] = y0
                V[3 * t + v, 1] = y1
        if nt == 0 or not cubature_s2(V, tris, nt, budget[p], bounds, lamcT, logw, q_start,
                                      res):
            continue
        ok[p] = True
        lm[p] = res[0]
        if moments:
            w0 = res[1]
            w1 = res[2]
            dm[p, 0] = u00 * w0
            dm[p, 1] = u10 * w0 + u11 * w1
            v00 = res[3]
            v01 = res[4]
            v11 = res[5]
            # U C U^T with U = [[u00, 0], [u10, u11]]
            c00 = u00 * v00 * u00
            c01 = u00 * (v00 * u10 + v01 * u11)
            c11 = (u10 * v00 + u11 * v01) * u10 + (u10 * v01 + u11 * v11) * u11
            tc[p, 0, 0] = c00
            tc[p, 0, 1] = c01
            tc[p, 1, 0] = c01
            tc[p, 1, 1] = c11


def _warmup() -> None:
    from ._simplex_cubature import _rule_table

    tri = np.array([[[-0.5, -0.5], [1.0, -0.4], [0.2, 1.1]],
                    [[-0.5, -0.5], [0.2, 1.1], [-1.0, 0.6]]])
    tri_start = np.array([0, 2], dtype=np.intp)
    mean = np.zeros((1, 1, 2))
    chol = np.eye(2)[None, None].copy()
    idx = np.zeros(1, dtype=np.intp)
    for moments in (True, False):
        pair_cubature_s2(tri, tri_start, mean, chol, idx, idx, np.array([64], dtype=np.intp),
                         *_rule_table(2), moments)
