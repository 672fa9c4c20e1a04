"""S = 2 polygons of the max-pooling walk by clipping, in one compiled call over many regions.

:func:`clip_polygons` gives, for every region ``{x : Cu x <= du}`` of a batch (unit rows),
the rows whose line comes within a small margin of the polygon, in time linear in the
number of rows m (the pairwise test it replaces, :func:`fastpath._walk_batch._touching_rows`,
costs m^2 per region). It starts from a box of half-width ``box`` and cuts it by every row
in turn (a convex polygon kept as the cyclic list of its edge lines, every vertex solved
from its two lines, so that no vertex inherits the rounding of a box corner). A region is
declined (status != 0; the caller then uses the pairwise test) unless the result is
certified as the region's polygon:

* bounded (no box side left): consecutive edge normals turn counter-clockwise by an angle
  whose sine is at least ``det_min`` and the turns add up to one full turn (a convex
  polygon traced once: it is the intersection of its edges' half-planes, hence contains
  the region);
* unbounded (box sides left): they form one run, the other edges a chain turning
  counter-clockwise by less than pi - ``det_min`` in all (each turn's sine at least
  ``det_min``), and the chain's two end directions (out along its last edge, in along its
  first) satisfy ``C_i r <= ray_tol`` for every live row i: the region is then the chain's
  vertices plus the cone of those two rays, every vertex inside the box (a row that cuts
  an end ray beyond the box gives :data:`UNBOUNDED`: a vertex there comes from two rows
  with |det| < 2 / box relative, which the caller's construction sends to the general
  tools);
* in both cases every live row holds at every vertex between two row edges within
  ``tight`` (relative to 1 + the largest such vertex coordinate): the polygon lies in the
  region, so the two are equal within that tolerance.

A row is then a candidate when its smallest slack over those vertices is at most ``margin``
(relative alike): every row whose line touches the region passes (the region is pointed,
so its slack is 0 at one of those vertices, up to their rounding, which the ``det_min``
bound keeps ~1e-10 relative). A doubtful cut (a non-contiguous run of cut vertices, an empty
polygon, parallel consecutive lines) declines the region (:data:`DOUBT`).

:func:`largest_residual` and :func:`tight_rows` are the all-row tests of the few vertex
candidates that pass against the candidate rows, without copying a region's rows per point.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from ._jit import jit

__all__ = ["clip_polygons", "largest_residual", "tight_rows", "OK", "UNBOUNDED", "DOUBT"]

#: status of a certified polygon
OK = 0
#: an end ray of an unbounded polygon is cut by a row (a vertex beyond the box)
UNBOUNDED = 1
#: a clipping step or a final check failed (empty in float, degenerate, rounding)
DOUBT = 2

#: a vertex counts as cut by a row when its slack is below -_CUT (relative to 1 + |vertex|)
_CUT = 1e-12


@jit
def _solve(a1: float, b1: float, c1: float, a2: float, b2: float, c2: float
           ) -> tuple[float, float, float]:
    det = a1 * b2 - a2 * b1
    if det == 0.0:
        return 0.0, 0.0, 0.0
    return (c1 * b2 - c2 * b1) / det, (a1 * c2 - a2 * c1) / det, det


@jit
def _turning(ea: NDArray[np.float64], eb: NDArray[np.float64], f: int, count: int, n: int,
             det_min: float) -> float:
    """The total counter-clockwise turn between ``count`` consecutive pairs of edge
    directions (ea, eb) of a cyclic list of ``n``, from edge ``f``; NaN when one turn has a
    sine below ``det_min`` (a reflex, straight or nearly straight corner)."""
    turn = 0.0
    for t in range(count):
        j = (f + t) % n
        j2 = (j + 1) % n
        cr = ea[j] * eb[j2] - eb[j] * ea[j2]
        if cr < det_min:
            return math.nan
        turn += math.atan2(cr, ea[j] * ea[j2] + eb[j] * eb[j2])
    return turn


@jit
def clip_polygons(Cu: NDArray[np.float64], du: NDArray[np.float64], live: NDArray[np.bool_],
                  box: NDArray[np.float64], tight: float, margin: float, det_min: float,
                  ray_tol: float
                  ) -> tuple[NDArray[np.int64], NDArray[np.bool_], NDArray[np.bool_]]:
    """Certified polygons of K regions and their candidate rows.

    Parameters
    ----------
    Cu : ndarray, shape (K, m, 2)
        Unit rows (a dead row is ignored).
    du : ndarray, shape (K, m)
        Offsets.
    live : ndarray of bool, shape (K, m)
        The rows that are constraints.
    box : ndarray, shape (K,)
        Half-width of the starting box of every region (about the origin).
    tight, margin, det_min, ray_tol : float
        Tolerances (see the module docstring).

    Returns
    -------
    status : ndarray of int64, shape (K,)
        :data:`OK`, :data:`UNBOUNDED` or :data:`DOUBT` per region.
    cand : ndarray of bool, shape (K, m)
        The candidate rows of every region with status OK (all False otherwise).
    edge : ndarray of bool, shape (K, m)
        The rows on the edges of the polygon of every region with status OK.
    """
    K, m = du.shape
    cap = m + 5
    status = np.zeros(K, dtype=np.int64)
    cand = np.zeros((K, m), dtype=np.bool_)
    edge = np.zeros((K, m), dtype=np.bool_)
    inner = np.empty(cap, dtype=np.bool_)
    ea = np.empty(cap)
    eb = np.empty(cap)
    ec = np.empty(cap)
    eid = np.empty(cap, dtype=np.int64)
    na = np.empty(cap)
    nb = np.empty(cap)
    nc = np.empty(cap)
    nid = np.empty(cap, dtype=np.int64)
    vx = np.empty(cap)
    vy = np.empty(cap)
    cut = np.empty(cap, dtype=np.bool_)
    for k in range(K):
        B = box[k]
        # the box: outward normals counter-clockwise, vertex j between edges j and j + 1
        ea[0], eb[0], ea[1], eb[1] = 1.0, 0.0, 0.0, 1.0
        ea[2], eb[2], ea[3], eb[3] = -1.0, 0.0, 0.0, -1.0
        for j in range(4):
            ec[j] = B
            eid[j] = m + j
        n = 4
        vx[0], vy[0], vx[1], vy[1] = B, B, -B, B
        vx[2], vy[2], vx[3], vy[3] = -B, -B, B, -B
        st = OK
        for i in range(m):
            if not live[k, i]:
                continue
            a, b, c = Cu[k, i, 0], Cu[k, i, 1], du[k, i]
            ncut = 0
            for j in range(n):
                s = c - a * vx[j] - b * vy[j]
                cut[j] = s < -_CUT * (1.0 + max(abs(vx[j]), abs(vy[j])))
                if cut[j]:
                    ncut += 1
            if ncut == 0:
                continue
            if ncut == n:
                st = DOUBT
                break
            # the run of cut vertices j0 + 1 .. j0 + L (cyclic) must be contiguous
            j0 = 0
            while cut[j0] or not cut[(j0 + 1) % n]:
                j0 += 1
            L = 0
            while cut[(j0 + 1 + L) % n]:
                L += 1
            if L != ncut:
                st = DOUBT
                break
            # edges j0 + 2 .. j0 + L lose both ends: the new cycle is edge j1 = j0 + L + 1
            # around to edge j0 + 1, then the row
            j1 = (j0 + L + 1) % n
            nn = 0
            for t in range(n - L + 1):
                e = (j1 + t) % n
                na[nn], nb[nn], nc[nn], nid[nn] = ea[e], eb[e], ec[e], eid[e]
                nn += 1
            na[nn], nb[nn], nc[nn], nid[nn] = a, b, c, i
            nn += 1
            n = nn
            for j in range(n):
                ea[j], eb[j], ec[j], eid[j] = na[j], nb[j], nc[j], nid[j]
            for j in range(n):
                j2 = (j + 1) % n
                x, y, det = _solve(ea[j], eb[j], ec[j], ea[j2], eb[j2], ec[j2])
                if det == 0.0:
                    st = DOUBT
                    break
                vx[j], vy[j] = x, y
            if st != OK:
                break
        nbox = 0
        for j in range(n):
            if eid[j] >= m:
                nbox += 1
        if st == OK and nbox == 0:
            # bounded: convex, traced once (every turn in (0, pi) with sine >= det_min, one
            # full turn)
            turn = _turning(ea, eb, np.intp(0), n, n, det_min)  # np.intp: not a literal
            if not abs(turn - 2.0 * math.pi) <= 1e-6:
                st = DOUBT
        elif st == OK:
            # unbounded: one run of box sides; the rest a chain of row edges f .. l turning
            # counter-clockwise by less than pi in all, whose end directions (out along
            # edge l, in along edge f) are in the recession cone of every row: then the
            # region is the chain's vertices plus the cone of those two rays, every vertex
            # inside the box
            f = np.intp(-1)  # not a literal: one specialisation of _turning
            runs = 0
            for j in range(n):
                if eid[j] < m and eid[(j + n - 1) % n] >= m:
                    runs += 1
                    f = np.intp(j)
            if runs != 1 or n - nbox < 2:
                st = DOUBT
            else:
                turn = _turning(ea, eb, f, n - nbox - 1, n, det_min)
                if not turn <= math.pi - det_min:
                    st = DOUBT
                if st == OK:
                    last = (f + n - nbox - 1) % n
                    rox, roy = -eb[last], ea[last]
                    rix, riy = eb[f], -ea[f]
                    for i in range(m):
                        if live[k, i] and (Cu[k, i, 0] * rox + Cu[k, i, 1] * roy > ray_tol
                                           or Cu[k, i, 0] * rix + Cu[k, i, 1] * riy > ray_tol):
                            st = UNBOUNDED
                            break
        if st == OK:
            # the vertices between two row edges: every live row holds there; candidates
            xs = 1.0
            for j in range(n):
                inner[j] = eid[j] < m and eid[(j + 1) % n] < m
                if inner[j]:
                    xs = max(xs, 1.0 + max(abs(vx[j]), abs(vy[j])))
            for i in range(m):
                if not live[k, i]:
                    continue
                a, b, c = Cu[k, i, 0], Cu[k, i, 1], du[k, i]
                smin = np.inf
                for j in range(n):
                    if inner[j]:
                        smin = min(smin, c - a * vx[j] - b * vy[j])
                if smin < -tight * xs:
                    st = DOUBT
                    break
                cand[k, i] = smin <= margin * xs
            if st != OK:
                for i in range(m):
                    cand[k, i] = False
            else:
                for j in range(n):
                    if eid[j] < m:
                        edge[k, eid[j]] = True
        status[k] = st
    return status, cand, edge


@jit
def largest_residual(X: NDArray[np.float64], kk: NDArray[np.intp], Cu: NDArray[np.float64],
                     du: NDArray[np.float64]) -> NDArray[np.float64]:
    """``max_i (Cu[k, i] . x - du[k, i])`` of every point x = X[f] (F, 2) over the rows of
    its region k = kk[f] (Cu (K, m, 2), du (K, m)), shape (F,)."""
    F = X.shape[0]
    m = du.shape[1]
    out = np.empty(F)
    for f in range(F):
        k = kk[f]
        x, y = X[f, 0], X[f, 1]
        g = -np.inf
        for i in range(m):
            g = max(g, x * Cu[k, i, 0] + y * Cu[k, i, 1] - du[k, i])
        out[f] = g
    return out


@jit
def tight_rows(X: NDArray[np.float64], kk: NDArray[np.intp], Cu: NDArray[np.float64],
               du: NDArray[np.float64], tol: NDArray[np.float64]) -> NDArray[np.bool_]:
    """``|Cu[k, i] . x - du[k, i]| <= tol[f]`` for every point x = X[f] (F, 2) and row i of
    its region k = kk[f], shape (F, m)."""
    F = X.shape[0]
    m = du.shape[1]
    out = np.empty((F, m), dtype=np.bool_)
    for f in range(F):
        k = kk[f]
        x, y = X[f, 0], X[f, 1]
        for i in range(m):
            out[f, i] = abs(x * Cu[k, i, 0] + y * Cu[k, i, 1] - du[k, i]) <= tol[f]
    return out


def _warmup() -> None:
    Cu = np.array([[[1.0, 0.0], [0.0, 1.0], [-0.6, -0.8]]])
    du = np.ones((1, 3))
    clip_polygons(Cu, du, np.ones((1, 3), dtype=np.bool_), np.full(1, 1e8), 1e-9, 1e-7, 1e-6, 1e-13)
    X = np.zeros((1, 2))
    kk = np.zeros(1, dtype=np.intp)
    largest_residual(X, kk, Cu, du)
    tight_rows(X, kk, Cu, du, np.ones(1))
