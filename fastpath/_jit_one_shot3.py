"""Compiled standardisation and geometry of one call at S = 3 (one polytope, one Gaussian).

At S = 3 one call of :func:`fastpath.integrals.gaussian_moments` spent ~0.7 ms before its
cones: the input checks, :func:`fastpath._standardise.standardise` and
:func:`fastpath._polyhedron.polyhedron_geometry` (enumerated interior point, facet rows,
the vectorised simple-polytope construction), as dozens of small numpy calls.
:func:`standardise_geometry_s3` does them in one compiled call, with the same formulas,
tolerances and orders, for a simple pointed polytope; the caller assembles the
:class:`fastpath._polyhedron.PolyhedronGeometry` (rays, generic direction: the general
path's own ``_assemble``) and evaluates its cones as the general path does.

Declined by status (the general path then takes the call, with its own checks and error
messages): a covariance not clearly accepted by the shared rule (the fast accept needs
trace(cov) trace(cov^-1) < 1e12, which bounds the condition number that the rule caps at
1e13), non-finite input, zero or overflowing rows, rows to be dropped as far (the general
path decides them about a point found by linear programming), a polytope 20 or more
standard deviations away, lines, more than 30 rows, no interior point clearly inside,
non-simple vertices or duplicate rows.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit
from ._jit_one_shot_base import EMPTY, FAR, INVALID, LINES, NONSIMPLE, OK, THIN, round_half_even
from ._jit_special import sorted_head

__all__ = ["standardise_geometry_s3"]

_TOL = 1e-9          # _polyhedron._TOL
_DET_TOL = 1e-14     # _polyhedron._DET_TOL
_EMPTY_TOL = 1e-12   # _polyhedron._EMPTY_TOL


@jit
def _lu_solve(M: NDArray[np.float64], b: NDArray[np.float64], x: NDArray[np.float64]) -> float:
    """Solve the small system M x = b by LU with partial pivoting (M, b overwritten);
    returns det M (0 where a pivot vanishes, x then undefined)."""
    n = M.shape[0]
    det = 1.0
    for j in range(n):
        p = j
        big = abs(M[j, j])
        for i in range(j + 1, n):
            if abs(M[i, j]) > big:
                big = abs(M[i, j])
                p = i
        if big == 0.0:
            return 0.0
        if p != j:
            det = -det
            for c in range(n):
                t = M[j, c]
                M[j, c] = M[p, c]
                M[p, c] = t
            t = b[j]
            b[j] = b[p]
            b[p] = t
        piv = M[j, j]
        det *= piv
        r = 1.0 / piv
        for i in range(j + 1, n):
            f = M[i, j] * r
            M[i, j] = f
            for c in range(j + 1, n):
                M[i, c] -= f * M[j, c]
            b[i] -= f * b[j]
    for i in range(n - 1, -1, -1):
        s = b[i]
        for c in range(i + 1, n):
            s -= M[i, c] * x[c]
        x[i] = s / M[i, i]
    return det


@jit
def _vertices3(C: NDArray[np.float64], d: NDArray[np.float64], m: int,
               X: NDArray[np.float64], ci: NDArray[np.intp]) -> int:
    """Solutions of the non-singular triples of rows (lexicographic, as solve_subsets)."""
    M = np.empty((3, 3))
    b = np.empty(3)
    x = np.empty(3)
    k = 0
    for i in range(m):
        for j in range(i + 1, m):
            for l in range(j + 1, m):
                for c in range(3):
                    M[0, c] = C[i, c]
                    M[1, c] = C[j, c]
                    M[2, c] = C[l, c]
                b[0] = d[i]
                b[1] = d[j]
                b[2] = d[l]
                det = _lu_solve(M, b, x)
                if not abs(det) > _DET_TOL:
                    continue
                for c in range(3):
                    X[k, c] = x[c]
                ci[k, 0] = i
                ci[k, 1] = j
                ci[k, 2] = l
                k += 1
    return k


@jit
def _viol(C: NDArray[np.float64], d: NDArray[np.float64], m: int, X: NDArray[np.float64],
          i: int) -> float:
    v = -math.inf
    for r in range(m):
        v = max(v, C[r, 0] * X[i, 0] + C[r, 1] * X[i, 1] + C[r, 2] * X[i, 2] - d[r])
    return v


@jit
def _norm3(X: NDArray[np.float64], i: int) -> float:
    return math.sqrt(X[i, 0] * X[i, 0] + X[i, 1] * X[i, 1] + X[i, 2] * X[i, 2])


@jit
def _chol3(cov: NDArray[np.float64], A: NDArray[np.float64]) -> bool:
    """Lower Cholesky factor of the symmetrised cov, if the fast accept holds (module
    docstring): finite, symmetric within 1e-10 of the largest entry, and
    trace(cov) trace(cov^-1) < 1e12 (from the factor of the matrix scaled to unit size)."""
    scale = 0.0
    for i in range(3):
        for j in range(3):
            if not math.isfinite(cov[i, j]):
                return False
            scale = max(scale, abs(cov[i, j]))
    if not scale > 0.0:
        return False
    for i in range(3):
        for j in range(i + 1, 3):
            if abs(cov[i, j] - cov[j, i]) > 1e-10 * scale:
                return False
    S = np.empty((3, 3))
    for i in range(3):
        for j in range(3):
            S[i, j] = 0.5 * (cov[i, j] + cov[j, i])
    # Cholesky of the unit-scaled matrix (for the test) and of S itself (the factor)
    U = np.zeros((3, 3))
    for j in range(3):
        s = S[j, j] / scale
        for c in range(j):
            s -= U[j, c] * U[j, c]
        if not s > 0.0:
            return False
        U[j, j] = math.sqrt(s)
        for i in range(j + 1, 3):
            t = S[i, j] / scale
            for c in range(j):
                t -= U[i, c] * U[j, c]
            U[i, j] = t / U[j, j]
    # trace(S^-1) = |U^-1|_F^2 (unit scale), by forward substitution of the unit vectors
    tinv = 0.0
    for e in range(3):
        y = np.zeros(3)
        for i in range(3):
            t = 1.0 if i == e else 0.0
            for c in range(i):
                t -= U[i, c] * y[c]
            y[i] = t / U[i, i]
            tinv += y[i] * y[i]
    tr = (S[0, 0] + S[1, 1] + S[2, 2]) / scale
    if not tr * tinv < 1e12:
        return False
    for j in range(3):
        s = S[j, j]
        for c in range(j):
            s -= A[j, c] * A[j, c]
        if not s > 0.0:
            return False
        A[j, j] = math.sqrt(s)
        for i in range(j + 1, 3):
            t = S[i, j]
            for c in range(j):
                t -= A[i, c] * A[j, c]
            A[i, j] = t / A[j, j]
        for i in range(j):
            A[i, j] = 0.0
    return True


@jit
def _rows_s3(C: NDArray[np.float64], d: NDArray[np.float64], mu: NDArray[np.float64],
             A: NDArray[np.float64], Cw: NDArray[np.float64], dw: NDArray[np.float64]) -> int:
    """standardise's rows (unit_rows, then C A / |C A|, offsets about mu); their number, or
    -EMPTY / -FAR where the general path has its own case."""
    m = 0
    u = np.empty(3)
    ca = np.empty(3)
    for j in range(C.shape[0]):
        amax = max(abs(C[j, 0]), max(abs(C[j, 1]), abs(C[j, 2])))
        if amax <= 0.0:
            if d[j] < 0.0:
                return -EMPTY
            continue
        nn = 0.0
        for c in range(3):
            u[c] = C[j, c] / amax
            nn += u[c] * u[c]
        nn = math.sqrt(nn)
        for c in range(3):
            u[c] /= nn
        du = (d[j] / amax) / nn
        if not math.isfinite(du):
            if d[j] < 0.0:
                return -EMPTY
            continue
        am = 0.0
        for c in range(3):
            ca[c] = u[0] * A[0, c] + u[1] * A[1, c] + u[2] * A[2, c]
            am = max(am, abs(ca[c]))
        if not am > 0.0:
            return -FAR
        rn = 0.0
        for c in range(3):
            rn += (ca[c] / am) * (ca[c] / am)
        rn = am * math.sqrt(rn)
        dv = (du - (u[0] * mu[0] + u[1] * mu[1] + u[2] * mu[2])) / rn
        if not math.isfinite(dv):
            return -FAR
        for c in range(3):
            Cw[m, c] = ca[c] / rn
        dw[m] = dv
        m += 1
    return m


@jit
def _simple_s3(A, Cw, dw, far, L, Cr, dr, dt, y0, r, V, tv, R, bad):
    """Facet rows (facet_rows), then simple_polyhedron's vertex data; the tuple of
    :func:`standardise_geometry_s3`."""
    m = Cr.shape[0]
    k = V.shape[0]
    nr_e = R.shape[0]
    keep = np.ones(m, dtype=np.bool_)
    if m > 4:                        # late pruning (m > S' + 1)
        for j in range(m):
            c = 0
            for i in range(k):
                if abs(dt[j] - (V[i, 0] * Cr[j, 0] + V[i, 1] * Cr[j, 1]
                                + V[i, 2] * Cr[j, 2])) <= tv[i]:
                    c += 1
            rc = 0
            for i in range(nr_e):
                if abs(R[i, 0] * Cr[j, 0] + R[i, 1] * Cr[j, 1] + R[i, 2] * Cr[j, 2]) <= _TOL:
                    rc += 1
            keep[j] = c >= 1 and c + rc >= 3
        for b in range(m):
            if not keep[b]:
                continue
            for a in range(b):
                if (keep[a] and max(abs(Cr[a, 0] - Cr[b, 0]), max(abs(Cr[a, 1] - Cr[b, 1]),
                                                                  abs(Cr[a, 2] - Cr[b, 2])))
                        <= _TOL and abs(dt[a] - dt[b]) <= _TOL * (1.0 + abs(dt[a]))):
                    keep[b] = False
                    break
    mf = 0
    for j in range(m):
        if keep[j]:
            mf += 1
    Cf = np.empty((mf, 3))
    df = np.empty(mf)
    dtf = np.empty(mf)
    i = 0
    for j in range(m):
        if keep[j]:
            for c in range(3):
                Cf[i, c] = Cr[j, c]
            df[i] = dr[j]
            dtf[i] = dt[j]
            i += 1
    m = mf
    # exactly S' tight rows at every vertex
    act = np.empty((k, 3), dtype=np.intp)
    T = np.zeros((k, m), dtype=np.bool_)
    for i in range(k):
        c = 0
        for j in range(m):
            if abs(dtf[j] - (V[i, 0] * Cf[j, 0] + V[i, 1] * Cf[j, 1]
                             + V[i, 2] * Cf[j, 2])) <= tv[i]:
                if c < 3:
                    act[i, c] = j
                c += 1
                T[i, j] = True
        if c != 3:
            return (NONSIMPLE,) + bad
    CA = np.empty((k, 3, 3))
    G = np.empty((k, 3, 3))          # G[i, q]: unit generator q (opposite row q)
    M = np.empty((3, 3))
    b = np.empty(3)
    x = np.empty(3)
    for i in range(k):
        for q in range(3):
            for c in range(3):
                CA[i, q, c] = Cf[act[i, q], c]
        # polished vertex
        for q in range(3):
            for c in range(3):
                M[q, c] = CA[i, q, c]
            b[q] = dtf[act[i, q]]
        det = _lu_solve(M, b, x)
        if not abs(det) > _DET_TOL:
            return (NONSIMPLE,) + bad
        for c in range(3):
            V[i, c] = x[c]
        # generators: the columns of -CA^{-1}, normalised
        for q in range(3):
            for a in range(3):
                for c in range(3):
                    M[a, c] = CA[i, a, c]
                b[a] = -1.0 if a == q else 0.0
            _lu_solve(M, b, x)
            nn = math.sqrt(x[0] * x[0] + x[1] * x[1] + x[2] * x[2])
            for c in range(3):
                G[i, q, c] = x[c] / nn
    other = np.empty((k, 3), dtype=np.intp)
    isray = np.zeros((k, 3), dtype=np.bool_)
    for i in range(k):
        for q in range(3):
            tstar = math.inf
            for j in range(m):
                dot = G[i, q, 0] * Cf[j, 0] + G[i, q, 1] * Cf[j, 1] + G[i, q, 2] * Cf[j, 2]
                if dot > 1e-12 and not T[i, j]:
                    sl = dtf[j] - (V[i, 0] * Cf[j, 0] + V[i, 1] * Cf[j, 1] + V[i, 2] * Cf[j, 2])
                    tstar = min(tstar, sl / dot)
            if not math.isfinite(tstar):
                isray[i, q] = True
                other[i, q] = -1
                continue
            e0 = V[i, 0] + tstar * G[i, q, 0]
            e1 = V[i, 1] + tstar * G[i, q, 1]
            e2 = V[i, 2] + tstar * G[i, q, 2]
            best = math.inf
            jb = -1
            for j in range(k):
                if j == i:
                    continue
                dd = math.sqrt((e0 - V[j, 0]) ** 2 + (e1 - V[j, 1]) ** 2 + (e2 - V[j, 2]) ** 2)
                if dd < best:
                    best = dd
                    jb = j
            if jb < 0 or best > 1e-6 * (r + math.sqrt(e0 * e0 + e1 * e1 + e2 * e2)):
                return (NONSIMPLE,) + bad
            other[i, q] = jb
    nb = np.intp(0)  # not a literal: one specialisation of sorted_head
    key = np.empty(3 * k, dtype=np.int64)
    for i in range(k):
        for q in range(3):
            if not isray[i, q]:
                key[nb] = min(i, other[i, q]) * k + max(i, other[i, q])
                nb += 1
    ks = sorted_head(key, nb)
    ukeys = np.empty(nb, dtype=np.int64)
    nu = 0
    i = 0
    while i < nb:
        j = i
        while j < nb and ks[j] == ks[i]:
            j += 1
        if j - i != 2:
            return (NONSIMPLE,) + bad
        ukeys[nu] = ks[i]
        nu += 1
        i = j
    nr = 0
    for i in range(k):
        for q in range(3):
            if isray[i, q]:
                nr += 1
    E = nu + nr
    E_start = np.empty((E, 3))
    E_dir = np.empty((E, 3))
    E_len = np.empty(E)
    edge_id = np.empty((k, 3), dtype=np.intp)
    orient = np.ones((k, 3))
    ir = nu
    for i in range(k):
        for q in range(3):
            if isray[i, q]:
                edge_id[i, q] = ir
                for c in range(3):
                    E_start[ir, c] = V[i, c]
                    E_dir[ir, c] = G[i, q, c]
                E_len[ir] = math.inf
                ir += 1
                continue
            lo = min(i, other[i, q])
            hi = max(i, other[i, q])
            e = np.searchsorted(ukeys[:nu], lo * k + hi)
            edge_id[i, q] = e
            if i == lo:
                for c in range(3):
                    E_dir[e, c] = G[i, q, c]
                    E_start[e, c] = V[lo, c]
                E_len[e] = math.sqrt((V[hi, 0] - V[lo, 0]) ** 2 + (V[hi, 1] - V[lo, 1]) ** 2
                                     + (V[hi, 2] - V[lo, 2]) ** 2)
            else:
                orient[i, q] = -1.0
    return (OK, A, Cw, dw, far, L, Cf, df, y0, r, V, act, E_start, E_dir, E_len, CA, edge_id,
            orient)


@jit
def standardise_geometry_s3(C: NDArray[np.float64], d: NDArray[np.float64],
                            mu: NDArray[np.float64], cov: NDArray[np.float64]):
    """The standardised rows and the geometry of one simple pointed polytope (S = 3).

    Returns (status, A (3, 3), Cw (m, 3), dw (m,), far, L, Cr (mf, 3), dr (mf,), y0 (3,), r,
    X (k, 3), act (k, 3), E_start (E, 3), E_dir (E, 3), E_len (E,), CA (k, 3, 3),
    edge_id (k, 3), orient (k, 3)): the Cholesky factor, the standardised rows and the
    lower bound ``far`` of :func:`fastpath._standardise.standardise`, and, at unit scale L
    (a power of two), what ``_geometry_unit`` passes to ``_assemble`` for a simple
    polytope (facet rows, interior point y0 and inradius r, vertices and edges relative to
    y0, the one cone of each vertex). Non-zero status: the general path takes the call.
    """
    e3 = np.empty((0, 3))
    ei = np.empty((0, 3), dtype=np.intp)
    A = np.zeros((3, 3))
    bad = (A, e3, np.empty(0), 0.0, 1.0, e3, np.empty(0), np.empty(3), 0.0, e3, ei, e3, e3,
           np.empty(0), np.empty((0, 3, 3)), ei, e3)
    m_in = C.shape[0]
    for j in range(m_in):
        if not (math.isfinite(C[j, 0]) and math.isfinite(C[j, 1]) and math.isfinite(C[j, 2])
                and math.isfinite(d[j])):
            return (INVALID,) + bad
    if not (math.isfinite(mu[0]) and math.isfinite(mu[1]) and math.isfinite(mu[2])):
        return (INVALID,) + bad
    if not _chol3(cov, A):
        return (INVALID,) + bad
    Cw = np.empty((max(m_in, 1), 3))
    dw = np.empty(max(m_in, 1))
    m = _rows_s3(C, d, mu, A, Cw, dw)
    if m < 0:
        return (-m,) + bad
    if m < 3 or m > 30:                  # lines for certain / too many triples (MAX_SUBSETS)
        return (LINES,) + bad
    Cw = Cw[:m].copy()
    dw = dw[:m].copy()
    far = -math.inf
    tmax = -math.inf
    t = np.empty(m)
    for j in range(m):
        t[j] = dw[j] / math.sqrt(Cw[j, 0] ** 2 + Cw[j, 1] ** 2 + Cw[j, 2] ** 2)
        far = max(far, -t[j])
        tmax = max(tmax, t[j])
    if not far < 20.0:                   # DROP_SIGMAS: the general path translates
        return (FAR,) + bad
    rows_in = np.ones(m, dtype=np.bool_)
    if tmax >= 20.0:
        # far rows: dropped about the origin when it is verified inside P; otherwise the
        # general path's linear program finds the point
        for j in range(m):
            if not dw[j] > 16.0 * 2.220446049250313e-16 * abs(dw[j]):
                return (FAR,) + bad
        for j in range(m):
            rows_in[j] = not (t[j] >= 20.0 * (1.0 + 1e-9))
    mk = 0
    for j in range(m):
        if rows_in[j]:
            mk += 1
    if mk < 3:
        return (LINES,) + bad
    # ---- geometry at unit scale (polyhedron_geometry -> _geometry_unit)
    Cr = np.empty((mk, 3))
    dr = np.empty(mk)
    i = 0
    dmax = 0.0
    for j in range(m):
        if not rows_in[j]:
            continue
        amax = max(abs(Cw[j, 0]), max(abs(Cw[j, 1]), abs(Cw[j, 2])))
        nn = 0.0
        for c in range(3):
            Cr[i, c] = Cw[j, c] / amax
            nn += Cr[i, c] * Cr[i, c]
        nn = math.sqrt(nn)
        for c in range(3):
            Cr[i, c] /= nn
        dr[i] = (dw[j] / amax) / nn
        dmax = max(dmax, abs(dr[i]))
        i += 1
    m = mk
    L = 2.0 ** round_half_even(math.log2(dmax)) if dmax > 0.0 else 1.0
    scale_d = 1.0
    for j in range(m):
        dr[j] = dr[j] / L
        nn = math.sqrt(Cr[j, 0] ** 2 + Cr[j, 1] ** 2 + Cr[j, 2] ** 2)
        for c in range(3):
            Cr[j, c] /= nn
        dr[j] = dr[j] / nn
        scale_d = max(scale_d, 1.0 + abs(dr[j]))
    nmax = m * (m - 1) * (m - 2) // 6
    X = np.empty((nmax, 3))
    ci = np.empty((nmax, 3), dtype=np.intp)
    # rank 3 for certain: a triple of unit rows with |det| > 1e-6 (its smallest singular
    # value is then above 1e-7, far above _null_basis's threshold)
    M = np.empty((3, 3))
    bb = np.empty(3)
    xx = np.empty(3)
    big = 0.0
    for a in range(m):
        for b in range(a + 1, m):
            for c in range(b + 1, m):
                for q in range(3):
                    M[0, q] = Cr[a, q]
                    M[1, q] = Cr[b, q]
                    M[2, q] = Cr[c, q]
                    bb[q] = 0.0
                big = max(big, abs(_lu_solve(M, bb, xx)))
    if not big > 1e-6:
        return (LINES,) + bad
    # extreme rays of the recession cone (extreme_rays: null directions of row pairs)
    npair = m * (m - 1) // 2
    nv = np.empty((npair, 3))
    nk = 0
    for a in range(m):
        for b in range(a + 1, m):
            n0 = Cr[a, 1] * Cr[b, 2] - Cr[a, 2] * Cr[b, 1]
            n1 = Cr[a, 2] * Cr[b, 0] - Cr[a, 0] * Cr[b, 2]
            n2 = Cr[a, 0] * Cr[b, 1] - Cr[a, 1] * Cr[b, 0]
            nn = math.sqrt(n0 * n0 + n1 * n1 + n2 * n2)
            if not nn > 1e-11:
                continue
            nv[nk, 0] = n0 / nn
            nv[nk, 1] = n1 / nn
            nv[nk, 2] = n2 / nn
            nk += 1
    R = np.empty((2 * nk, 3))
    nr_e = 0
    for sgn in (1.0, -1.0):
        for q in range(nk):
            mx = -math.inf
            for j in range(m):
                mx = max(mx, sgn * (Cr[j, 0] * nv[q, 0] + Cr[j, 1] * nv[q, 1]
                                    + Cr[j, 2] * nv[q, 2]))
            if mx <= _TOL:
                for c in range(3):
                    R[nr_e, c] = sgn * nv[q, c]
                nr_e += 1
    # interior point (_small_polytope.interior_point)
    n = _vertices3(Cr, dr, np.intp(m), X, ci)  # np.intp: no literal specialisation
    y0 = np.zeros(3)
    feas = np.zeros(n, dtype=np.bool_)
    cnt = 0
    for i in range(n):
        if _viol(Cr, dr, np.intp(m), X, i) <= _TOL * (1.0 + _norm3(X, i)):
            feas[i] = True
            cnt += 1
            for c in range(3):
                y0[c] += X[i, c]
    if cnt == 0:
        return (THIN,) + bad
    for c in range(3):
        y0[c] /= cnt
    if nr_e > 0:
        spread = 0.0
        if cnt > 1:
            for i in range(n):
                if feas[i]:
                    for c in range(3):
                        spread = max(spread, abs(X[i, c] - y0[c]))
        f = max(1.0, spread)
        for c in range(3):
            s = 0.0
            for q in range(nr_e):
                s += R[q, c]
            y0[c] += f * (s / nr_e)
    r = math.inf
    dt = np.empty(m)
    for j in range(m):
        dt[j] = dr[j] - (Cr[j, 0] * y0[0] + Cr[j, 1] * y0[1] + Cr[j, 2] * y0[2])
        r = min(r, dt[j])
    if not r > 1e3 * _EMPTY_TOL * scale_d:
        return (THIN,) + bad
    # vertices relative to y0, feasible, none merged
    n = _vertices3(Cr, dt, np.intp(m), X, ci)
    V = np.empty((n, 3))
    tv = np.empty(n)
    k = 0
    for i in range(n):
        tx = _TOL * (r + _norm3(X, i))
        if _viol(Cr, dt, np.intp(m), X, i) <= tx:
            for c in range(3):
                V[k, c] = X[i, c]
            tv[k] = tx
            k += 1
    if k == 0:
        return (NONSIMPLE,) + bad
    for i in range(k):
        for j in range(i + 1, k):
            dd = math.sqrt((V[i, 0] - V[j, 0]) ** 2 + (V[i, 1] - V[j, 1]) ** 2
                           + (V[i, 2] - V[j, 2]) ** 2)
            if dd <= max(tv[i], tv[j]):
                return (NONSIMPLE,) + bad
    Ck = np.empty((int(np.sum(rows_in)), 3))
    dk = np.empty(Ck.shape[0])
    i = 0
    for j in range(rows_in.size):
        if rows_in[j]:
            for c in range(3):
                Ck[i, c] = Cw[j, c]
            dk[i] = dw[j]
            i += 1
    return _simple_s3(A, Ck, dk, far, L, Cr, dr, dt, y0, r, V[:k].copy(), tv[:k].copy(),
                      R[:nr_e].copy(), bad)


def _warmup() -> None:
    """Compile the S = 3 lane through its entry points: a cube (cones, and its cubature
    route once far out), an unbounded orthant, with and without moments."""
    from .integrals import gaussian_moments, log_gaussian_mass

    cov = np.array([[1.0, 0.2, 0.0], [0.2, 0.8, 0.1], [0.0, 0.1, 0.6]])
    cube = np.vstack([np.eye(3), -np.eye(3)])
    cases = ((cube, np.ones(6)), (cube, np.array([4.1, 0.1, 0.1, -4.0, 0.0, 0.0])),
             (-np.eye(3), np.array([0.5, 0.5, 0.5])))
    for C, d in cases:
        gaussian_moments(C, d, np.array([0.1, 0.0, -0.2]), cov)
        log_gaussian_mass(C, d, np.array([0.1, 0.0, -0.2]), cov)
