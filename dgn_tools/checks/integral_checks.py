"""Checks of the Gaussian integrals: Lemma 4, the triangulation, orthant closed forms, moments
(docs/DESIGN.md §2.4).

* "Lemma 4": for every piece of the triangulation of a suite of polyhedra (or of the regions
  of a net), ``1_piece(z)`` equals the signed sum of indicators of intersections of at most
  ``S`` half-spaces, exactly, at rational points: random ones (on no boundary, almost
  surely), the piece's vertices, edge midpoints and points on its facet hyperplanes (on
  boundaries). The complement form, the expansion anchored at each half-space (both used
  by the integrals) and the paper's half-space form are checked; for the whole polyhedron, the merged terms of
  :func:`verified_dgn.integrals.signed_orthant_terms` reproduce ``1_P`` at random points.
* "Triangulation": bounded polytopes: the pieces' exact volumes add up to the volume of the
  barycentric subdivision (flags of faces: an independent triangulation); every random
  rational point of ``P`` lies in the interior of exactly one piece and points outside in
  none; unbounded polyhedra: the same membership test on random rational points of a box.
* "Orthant closed forms": ``Phi_2(0, 0; rho) = 1/4 + asin(rho)/(2 pi)`` and
  ``Phi_3(0; R) = 1/8 + (asin r12 + asin r13 + asin r23)/(4 pi)`` (and ``1/(k+1)`` for the
  exchangeable correlation 1/2, k = 3, 4, when thorough), digits measured and confirmed by
  recomputing at ``dps + 15``.
* "Moments": ``gaussian_moments`` against independent computations: the truncated-normal
  closed forms for S = 1 (intervals, half-lines, far tails), and the tiling identity on the
  regions of a net: ``sum_w (m0, m1, M2)_w = (1, 0, I)`` for the prior ``N(0, I)``.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np

from dgn_core.model import DGN

from . import CheckResult, digits_from_residual, register

__all__ = ["check_lemma4", "check_triangulation", "check_orthant_closed_forms", "check_moments",
           "builtin_polyhedra", "barycentric_volume"]


# --------------------------------------------------------------------------- suites
def builtin_polyhedra(quick: bool = True) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, C, d) polyhedra exercising simple and non-simple vertices, unbounded pieces
    with one or several finite vertices, lines, redundant and duplicate rows, S = 1..4."""
    out: list[tuple[str, Any, Any]] = []
    out.append(("interval", np.array([[1.0], [-1.0]]), np.array([2.0, 1.0])))
    out.append(("half-line", np.array([[-1.0]]), np.array([0.5])))
    out.append(("triangle", np.array([[-1.0, 0], [0, -1], [1, 1]]), np.array([0.0, 0, 1])))
    th = np.arange(6) * np.pi / 3
    out.append(("hexagon", np.c_[np.round(np.cos(th), 3), np.round(np.sin(th), 3)], np.ones(6)))
    out.append(("wedge", np.array([[-1.0, 0.5], [0.25, -1]]), np.array([0.0, 1.0])))
    out.append(("half-strip", np.array([[1.0, 0], [-1, 0], [0, -1]]), np.array([1.0, 0, 0])))
    out.append(("unbounded polygon", np.array([[-1.0, 0], [0, -1], [-1, -1], [1, -2]]),
                np.array([0.0, 0, -1, 2])))
    out.append(("square with duplicate and redundant rows",
                np.array([[1.0, 0], [1, 0], [2, 0], [-1, 0], [0, 1], [0, -1], [1, 1]]),
                np.array([1.0, 1, 2, 1, 1, 1, 5])))
    out.append(("slab (lines)", np.array([[1.0, 1], [-1, -1]]), np.array([1.0, 1])))
    out.append(("cube", np.vstack([np.eye(3), -np.eye(3)]), np.ones(6)))
    out.append(("octahedron (non-simple vertices)",
                np.array(list(itertools.product([-1.0, 1.0], repeat=3))), np.ones(8)))
    out.append(("square pyramid (apex on 4 facets)",
                np.array([[0, 0, -1.0], [1, 0, 1], [-1, 0, 1], [0, 1, 1], [0, -1, 1]]),
                np.array([0, 1.0, 1, 1, 1])))
    out.append(("unbounded prism", np.array([[-1.0, 0, 0], [0, -1, 0], [1, 1, 0], [0, 0, -1]]),
                np.array([0.0, 0, 1, 0])))
    out.append(("octant cone", -np.eye(3), np.zeros(3)))
    if not quick:
        out.append(("4-simplex", np.vstack([-np.eye(4), np.ones((1, 4))]), np.array([0, 0, 0, 0, 1.0])))
        out.append(("tesseract", np.vstack([np.eye(4), -np.eye(4)]), np.ones(8)))
        out.append(("4-D wedge", np.array([[-1.0, 0, 0, 0], [0, -1, 0, 0], [1, 1, 1, 0], [0, 0, 0, -1]]),
                    np.array([0.0, 0, 2, 0])))
    return out


def _net_polyhedra(net: DGN, quick: bool) -> list[tuple[str, Any, Any]]:
    from verified_dgn.exact_partition import partition

    P = partition(net)
    regions = list(P)
    if quick:
        regions = regions[:12]
    return [(f"region {i}", r.C, r.d) for i, r in enumerate(regions)]


# --------------------------------------------------------------------------- exact helpers
def _dot(a: Sequence[Any], b: Sequence[Any]) -> Any:
    return sum(x * y for x, y in zip(a, b))


def _rand_point(rng: random.Random, lo: Sequence[Fraction], hi: Sequence[Fraction], den: int = 997
                ) -> list[Fraction]:
    return [l + (h - l) * Fraction(rng.randrange(den + 1), den) for l, h in zip(lo, hi)]


def _in_P(C: Any, d: Any, z: Sequence[Fraction]) -> bool:
    return all(_dot(row, z) <= e for row, e in zip(C, d))


def _box(poly: Any, S: int, pad: Fraction = Fraction(1)) -> tuple[list[Fraction], list[Fraction]]:
    pts = [list(v) for v in poly.vertices]
    if not pts:
        pts = [[Fraction(0)] * S]
    lo = [min(p[i] for p in pts) - pad for i in range(S)]
    hi = [max(p[i] for p in pts) + pad for i in range(S)]
    for r in poly.rays:
        for i in range(S):
            if r[i] > 0:
                hi[i] += 3
            elif r[i] < 0:
                lo[i] -= 3
    return lo, hi


def _special_points(piece: Any, gens: Sequence[Sequence[Fraction]], S: int) -> list[list[Fraction]]:
    """Points on the boundary of a piece: vertices, edge midpoints, points on facets,
    points on the facet hyperplanes outside the piece."""
    verts = [list(gens[g][:S]) for g, fin in zip(piece.generators, piece.finite) if fin]
    rays = [list(gens[g][:S]) for g, fin in zip(piece.generators, piece.finite) if not fin]
    pts = [list(v) for v in verts]
    for a, b in itertools.combinations(verts, 2):
        pts.append([(x + y) / 2 for x, y in zip(a, b)])
        pts.append([2 * x - y for x, y in zip(a, b)])  # on the line, outside the edge
    for v in verts:
        for r in rays:
            pts.append([x + y for x, y in zip(v, r)])
            pts.append([x - y for x, y in zip(v, r)])
    # a point on each facet: the generators on it (all but the opposite one), vertices
    # averaged and rays added; and that point pushed along the facet outside the piece
    for j in range(len(piece.generators)):
        vs = [list(gens[g][:S]) for p, (g, fin) in enumerate(zip(piece.generators, piece.finite))
              if fin and p != j]
        rs = [list(gens[g][:S]) for p, (g, fin) in enumerate(zip(piece.generators, piece.finite))
              if not fin and p != j]
        if not vs:
            continue
        c = [sum(v[i] for v in vs) / len(vs) + sum(r[i] for r in rs) for i in range(S)]
        pts.append(c)
        if len(vs) >= 2:
            pts.append([3 * x - 2 * y for x, y in zip(vs[0], c)])
    return pts


def barycentric_volume(poly: Any) -> Fraction:
    """Exact volume of a full-dimensional polytope by its barycentric subdivision.

    The simplices ``conv(b(F_0), ..., b(F_S))`` over all flags of faces
    ``F_0 < F_1 < ... < F_S = P`` (``b`` = vertex average) triangulate ``P``; faces come from
    the vertex-facet incidence. Independent of the pulling triangulation.
    """
    V = [list(v) for v in poly.vertices]
    S = len(V[0])
    nf = poly.n_facets
    inc = poly.vertex_incidence
    facet_verts = [frozenset(i for i in range(len(V)) if f in inc[i]) for f in range(nf)]

    def rank(face: frozenset[int]) -> int:
        pts = [V[i] for i in sorted(face)]
        rows = [[x - y for x, y in zip(p, pts[0])] for p in pts[1:]]
        r = 0
        rows = [list(map(Fraction, row)) for row in rows]
        ncol = S
        for c in range(ncol):
            piv = next((i for i in range(r, len(rows)) if rows[i][c] != 0), None)
            if piv is None:
                continue
            rows[r], rows[piv] = rows[piv], rows[r]
            for i in range(r + 1, len(rows)):
                f = rows[i][c] / rows[r][c]
                rows[i] = [a - f * b for a, b in zip(rows[i], rows[r])]
            r += 1
        return r

    def subfaces(face: frozenset[int], k: int) -> list[frozenset[int]]:
        out = set()
        for fv in facet_verts:
            F = face & fv
            if F != face and F and rank(F) == k - 1:
                out.add(F)
        return list(out)

    def bary(face: frozenset[int]) -> list[Fraction]:
        return [sum(V[i][c] for i in face) / len(face) for c in range(S)]

    total = Fraction(0)
    fact = math.factorial(S)

    def walk(face: frozenset[int], k: int, chain: list[list[Fraction]]) -> None:
        nonlocal total
        chain = chain + [bary(face)]
        if k == 0:
            b0 = chain[-1]
            M = [[x - y for x, y in zip(p, b0)] for p in chain[:-1]]
            total += abs(_det(M)) / fact
            return
        for F in subfaces(face, k):
            walk(F, k - 1, chain)

    walk(frozenset(range(len(V))), S, [])
    return total


def _det(M: list[list[Fraction]]) -> Fraction:
    n = len(M)
    A = [list(r) for r in M]
    det = Fraction(1)
    for c in range(n):
        p = next((i for i in range(c, n) if A[i][c] != 0), None)
        if p is None:
            return Fraction(0)
        if p != c:
            A[c], A[p] = A[p], A[c]
            det = -det
        det *= A[c][c]
        for i in range(c + 1, n):
            f = A[i][c] / A[c][c]
            A[i] = [x - f * y for x, y in zip(A[i], A[c])]
    return det


def _pointed(C: Any, d: Any) -> list[Any]:
    from verified_dgn.integrals import _fraction_array, _pointed_parts

    return [p for p in _pointed_parts(_fraction_array(C, "C", 2), _fraction_array(d, "d", 1))
            if p is not None]


def _homog(poly: Any) -> list[list[Fraction]]:
    return ([list(v) + [Fraction(1)] for v in poly.vertices]
            + [list(r) + [Fraction(0)] for r in poly.rays])


# --------------------------------------------------------------------------- checks
@register("Lemma 4", "1_piece = signed sum of indicators of intersections of at most S half-spaces, "
          "exactly at rational points (on and off boundaries)")
def check_lemma4(net: DGN | None = None, quick: bool = True, seed: int = 0,
                 n_points: int | None = None) -> CheckResult:
    """Lemma 4 as an identity of indicator functions in exact rational arithmetic."""
    from verified_dgn.integrals import signed_orthant_terms
    from verified_dgn.triangulation import triangulate_polyhedron

    rng = random.Random(seed)
    n_points = n_points or (40 if quick else 300)
    polys = builtin_polyhedra(quick) if net is None else _net_polyhedra(net, quick)
    n_pieces = n_checked = n_boundary = failures = 0
    bad: list[str] = []
    for name, C, d in polys:
        for poly in _pointed(C, d):
            S = poly.ambient_dim
            gens = _homog(poly)
            lo, hi = _box(poly, S)
            for piece in triangulate_polyhedron(poly.vertices, poly.rays, poly.incidence):
                n_pieces += 1
                pts = [_rand_point(rng, lo, hi) for _ in range(n_points)]
                special = _special_points(piece, gens, S)
                n_boundary += len(special)
                for z in pts + special:
                    lhs = int(piece.contains(z))
                    rhs = piece.indicator_sum(z, "complement")
                    ok = lhs == rhs
                    if len(piece.C) == S + 1:
                        ok = ok and lhs == piece.indicator_sum(z, "halfspace")
                        # the expansion anchored at each half-space (used in the tails)
                        ok = ok and all(lhs == piece.indicator_sum(z, "anchored", a)
                                        for a in range(S + 1))
                    n_checked += 1
                    if not ok:
                        failures += 1
                        if len(bad) < 5:
                            bad.append(f"{name}: piece {piece.generators} at {[str(x) for x in z]}")
        # the merged terms of the whole polyhedron at random points (identity a.e.)
        terms = signed_orthant_terms(C, d)
        Cf = np.array([[Fraction(float(x)) for x in row] for row in np.asarray(C, float)], dtype=object)
        df = [Fraction(float(x)) for x in np.asarray(d, float)]
        S = Cf.shape[1]
        lo = [Fraction(-4)] * S
        hi = [Fraction(4)] * S
        for _ in range(n_points):
            z = _rand_point(rng, lo, hi, den=104729)
            val = sum(c * int(all(_dot(r[:-1], z) <= r[-1] for r in rows)) for c, rows in terms)
            n_checked += 1
            if val != int(_in_P(Cf, df, z)):
                failures += 1
                if len(bad) < 5:
                    bad.append(f"{name}: merged terms at {[str(x) for x in z]}")
    passed = failures == 0 and n_checked > 0
    return CheckResult(
        name="Lemma 4", statement="1_piece = sum_J (-1)^{|J|} 1[cap_J H_j^c] (and the paper's "
        "half-space form), exactly", passed=passed,
        measured=f"{n_checked} exact indicator evaluations ({n_boundary} on boundaries) over "
                 f"{n_pieces} pieces of {len(polys)} polyhedra",
        residual=float(failures), digits=math.inf if passed else 0.0,
        details={"failures": failures, **({"examples": bad} if bad else {})})


@register("Triangulation", "the exact triangulation covers P with pairwise disjoint interiors")
def check_triangulation(net: DGN | None = None, quick: bool = True, seed: int = 0,
                        n_points: int | None = None) -> CheckResult:
    """Exact volumes (bounded) and exact membership at rational points (all)."""
    from verified_dgn.triangulation import triangulate_polyhedron

    rng = random.Random(seed)
    n_points = n_points or (60 if quick else 400)
    polys = builtin_polyhedra(quick) if net is None else _net_polyhedra(net, quick)
    n_vol = n_pts = 0
    failures = 0
    bad: list[str] = []
    for name, C, d in polys:
        for poly in _pointed(C, d):
            S = poly.ambient_dim
            pieces = triangulate_polyhedron(poly.vertices, poly.rays, poly.incidence)
            if poly.bounded:
                n_vol += 1
                v_pieces = sum(p.volume() for p in pieces)
                v_ref = barycentric_volume(poly)
                if v_pieces != v_ref:
                    failures += 1
                    bad.append(f"{name}: volumes {v_pieces} != {v_ref}")
            lo, hi = _box(poly, S)
            for _ in range(n_points):
                z = _rand_point(rng, lo, hi, den=104729)
                inside = poly.contains(z)
                n_int = sum(all(_dot(r, z) < e for r, e in zip(p.C, p.d)) for p in pieces)
                n_closed = sum(p.contains(z) for p in pieces)
                n_pts += 1
                ok = ((n_int <= 1) and ((n_closed >= 1) == inside)
                      and (n_int == 1 or not inside or n_closed >= 2))
                if not ok:
                    failures += 1
                    if len(bad) < 5:
                        bad.append(f"{name}: point {[str(x) for x in z]} in {n_int} interiors, "
                                   f"{n_closed} closed pieces, inside={inside}")
    passed = failures == 0 and n_pts > 0
    return CheckResult(
        name="Triangulation", statement="pieces cover P, interiors pairwise disjoint (exact)",
        passed=passed,
        measured=f"{n_vol} exact volume sums vs barycentric subdivision, {n_pts} exact "
                 f"membership tests at rational points",
        residual=float(failures), digits=math.inf if passed else 0.0,
        details={"failures": failures, **({"examples": bad} if bad else {})})


@register("Orthant closed forms", "Phi_2(0,0;rho) = 1/4 + asin(rho)/(2pi), "
          "Phi_3(0;R) = 1/8 + (asin r12 + asin r13 + asin r23)/(4pi)")
def check_orthant_closed_forms(net: DGN | None = None, quick: bool = True, seed: int = 0,
                               dps: int = 30) -> CheckResult:
    """Closed forms of orthant probabilities at the origin; digits confirmed at dps + 15."""
    from verified_dgn.orthant import orthant_probability

    rng = np.random.default_rng(seed)
    cases: list[tuple[str, Any, Any]] = []
    rhos = ([-0.9, -0.3, 0.5, 0.99] if quick
            else [-0.999999, -0.9, -0.5, -0.1, 0.2, 0.7, 0.99, 0.9999999])
    for rho in rhos:
        with mpmath.workdps(dps + 30):
            ref = mpmath.mpf(1) / 4 + mpmath.asin(rho) / (2 * mpmath.pi)
        cases.append((f"Phi_2 rho={rho}", ([0, 0], [[1, rho], [rho, 1]]), ref))
    for _ in range(2 if quick else 6):
        A = rng.standard_normal((3, 5))
        K = A @ A.T
        s = np.sqrt(np.diag(K))
        R = K / np.outer(s, s)
        R = (R + R.T) / 2
        np.fill_diagonal(R, 1.0)
        with mpmath.workdps(dps + 30):
            asins = mpmath.asin(R[0, 1]) + mpmath.asin(R[0, 2]) + mpmath.asin(R[1, 2])
            ref = mpmath.mpf(1) / 8 + asins / (4 * mpmath.pi)
        cases.append(("Phi_3 random R", ([0, 0, 0], R), ref))
    if not quick:
        for k in (3, 4):
            R = np.full((k, k), 0.5) + 0.5 * np.eye(k)
            with mpmath.workdps(dps + 30):
                ref = mpmath.mpf(1) / (k + 1)
            cases.append((f"Phi_{k} exchangeable 1/2 = 1/{k + 1}", ([0] * k, R), ref))
    worst = 0.0
    worst_confirm = 0.0
    for _, (b, R), ref in cases:
        v = orthant_probability(b, R, dps=dps)
        v2 = orthant_probability(b, R, dps=dps + 15)
        with mpmath.workdps(dps + 30):
            worst = max(worst, float(abs(v - ref) / ref))
            worst_confirm = max(worst_confirm, float(abs(v - v2) / v2))
    passed = worst <= 10.0 ** (-dps) and worst_confirm <= 10.0 ** (-dps)
    return CheckResult(
        name="Orthant closed forms", statement="Phi_2 and Phi_3 at the origin (and 1/(k+1))",
        passed=passed, measured=f"{len(cases)} orthant probabilities at dps={dps} vs closed forms",
        residual=worst, digits=digits_from_residual(worst),
        details={"largest change at dps+15": f"{worst_confirm:.3g}"})


def _truncnorm_moments(a: Any, b: Any, mu: Any, s2: Any) -> tuple[Any, Any, Any]:
    """Closed forms of int_a^b (1, z, z^2) N(z; mu, s2) dz (a, b may be -+inf)."""
    s = mpmath.sqrt(s2)
    al = (a - mu) / s if a != -mpmath.inf else -mpmath.inf
    be = (b - mu) / s if b != mpmath.inf else mpmath.inf
    pa = mpmath.npdf(al) if mpmath.isfinite(al) else 0
    pb = mpmath.npdf(be) if mpmath.isfinite(be) else 0
    apa = al * pa if mpmath.isfinite(al) else 0
    bpb = be * pb if mpmath.isfinite(be) else 0
    if mpmath.isfinite(al) and al > 0:
        Z = mpmath.ncdf(-al) - (mpmath.ncdf(-be) if mpmath.isfinite(be) else 0)
    else:
        Z = (mpmath.ncdf(be) if mpmath.isfinite(be) else 1) - (mpmath.ncdf(al) if mpmath.isfinite(al) else 0)
    m1 = mu * Z + s * (pa - pb)
    m2 = mu * mu * Z + 2 * mu * s * (pa - pb) + s2 * (Z + apa - bpb)
    return Z, m1, m2


@register("Moments", "gaussian_moments agrees with independent computations "
          "(1-D closed forms; regions of a net integrate the prior to (1, 0, I))")
def check_moments(net: DGN | None = None, quick: bool = True, seed: int = 0,
                  dps: int = 30) -> CheckResult:
    """gaussian_moments vs truncated-normal closed forms (S = 1) and the tiling identity."""
    from verified_dgn.integrals import gaussian_moments, moment_discrepancy

    rng = np.random.default_rng(seed)
    worst = 0.0
    n = 0
    parts = []
    if net is None:
        # S = 1: intervals and half-lines, near and far (1e-300 and below) from the mean
        cases = [(-1.0, 2.0, 0.3, 2.25), (3.0, 4.0, 0.0, 1.0), (-40.0, -39.0, 0.0, 1.0),
                 (-mpmath.inf, -35.0, 1.0, 0.5), (2.0, mpmath.inf, -1.0, 3.0)]
        if not quick:
            cases += [(float(a), float(a + w), float(m), float(v)) for a, w, m, v in
                      zip(rng.normal(0, 5, 8), rng.uniform(0.01, 4, 8), rng.normal(0, 2, 8),
                          rng.uniform(0.1, 3, 8))]
        for a, b, mu, v in cases:
            rows, rhs = [], []
            if b != mpmath.inf:
                rows.append([1.0])
                rhs.append(float(b))
            if a != -mpmath.inf:
                rows.append([-1.0])
                rhs.append(-float(a))
            res = gaussian_moments(np.array(rows), np.array(rhs), [mu], [[v]], dps=dps)
            with mpmath.workdps(dps + 30):
                ref = _truncnorm_moments(mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(mu), mpmath.mpf(v))
                ref_arr = (ref[0], np.array([ref[1]], dtype=object), np.array([[ref[2]]], dtype=object))
            worst = max(worst, moment_discrepancy(res, ref_arr))
            n += 1
        parts.append(f"{len(cases)} one-dimensional truncated normals vs closed forms")
        tnet = DGN.random((2, 4, 2) if quick else (2, 6, 6, 2), activation="relu", seed=seed)
    else:
        tnet = net
    # the digit claim confirmed by recomputing at dps + 15 (a 2-D polygon whose Lemma 4 sum
    # cancels ~10 digits, and an unbounded one)
    confirm = 0.0
    for C, d, mean in [(np.array([[-1.0, 0], [0, -1], [1, 1]]), np.array([0.0, 0, 1]), [4.0, -3.0]),
                       (np.array([[-1.0, 0.5], [0.25, -1]]), np.array([0.0, 1.0]), [-0.5, 0.2])]:
        cov = [[1.0, 0.3], [0.3, 0.6]]
        lo = gaussian_moments(C, d, mean, cov, dps=dps)
        hi = gaussian_moments(C, d, mean, cov, dps=dps + 15)
        confirm = max(confirm, moment_discrepancy(lo, hi))
        n += 1
    worst = max(worst, confirm)
    parts.append("2 polygons recomputed at dps + 15")

    # tiling identity: the regions of a net integrate N(0, I) to (1, 0, I)
    from verified_dgn.exact_partition import partition

    if tnet.latent_dim <= (2 if quick else 3):
        P = partition(tnet)
        S = tnet.latent_dim
        with mpmath.workdps(dps + 20):
            tot0 = mpmath.mpf(0)
            tot1 = [mpmath.mpf(0)] * S
            tot2 = [[mpmath.mpf(0)] * S for _ in range(S)]
        dps_r = dps + 2 + int(math.ceil(math.log10(max(2, len(P)))))
        for r in P:
            m0, m1, M2 = gaussian_moments(r.C, r.d, np.zeros(S), np.eye(S), dps=dps_r)
            with mpmath.workdps(dps + 20):
                tot0 += m0
                for i in range(S):
                    tot1[i] += m1[i]
                    for j in range(S):
                        tot2[i][j] += M2[i, j]
        with mpmath.workdps(dps + 20):
            res = abs(tot0 - 1)
            for i in range(S):
                res = max(res, abs(tot1[i]))
                for j in range(S):
                    res = max(res, abs(tot2[i][j] - (1 if i == j else 0)))
            worst = max(worst, float(res))
        n += len(P)
        parts.append(f"tiling identity over the {len(P)} regions of a DGN with widths {tnet.widths}")
    passed = worst <= 10.0 ** (-dps) and n > 0
    return CheckResult(
        name="Moments", statement="gaussian_moments vs closed forms and the tiling identity",
        passed=passed, measured="; ".join(parts) + f" (dps={dps})",
        residual=worst, digits=digits_from_residual(worst),
        details={"largest change at dps+15": f"{confirm:.3g}"})
