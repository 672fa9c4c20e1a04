"""Exact rational triangulation of pointed polyhedra (docs/DESIGN.md §2.4, paper eq. 9 and Lemma 4).

A pointed polyhedron ``P = conv(V) + cone(R)`` in ``R^S`` is triangulated through its
homogenisation, the pointed cone ``K = cone{(v, 1) : v in V} + cone{(r, 0) : r in R}`` in
``R^{S+1}`` (``P`` is the slice ``t = 1`` of ``K``). The triangulation of ``K`` is the
*pulling* triangulation for the global generator order: for every face ``F`` (a set of
generators, of linear dimension ``k``) with smallest generator ``g``,

    T(F) = { {g} + s : s in T(G), G a facet of F with g not in G },  T(ray) = {ray}.

Faces and their facets are found combinatorially from the generator/facet incidence
(a facet of ``F`` is a maximal ``F cap H`` of rank ``k - 1`` over the facets ``H`` of
``K``); ranks are computed exactly. Pulling with one global order triangulates every
face consistently, so the result is a triangulation (pieces cover ``K``, interiors
disjoint) with no new vertices, for any polytope, simple or not, in any position.

Each piece is a simplicial cone of ``R^{S+1}`` spanned by ``S + 1`` generators. Its slice
``t = 1`` is a piece of ``P``:

* one finite generator ``(v, 1)`` and ``S`` rays: the simplicial cone ``v + cone(r_i)``,
  ``S`` half-spaces;
* ``k >= 2`` finite generators: a simplex (``k = S + 1``) or a "simplex with ideal
  vertices" ``conv(v_1..v_k) + cone(r_i)``, ``S + 1`` half-spaces.

Pieces are described by the half-spaces ``c_j z <= e_j`` opposite each generator: with
``G`` the matrix of the generators as columns and ``a_j`` the rows of ``G^{-1}``,
``a_j . (z, 1) >= 0``, i.e. ``c_j = -a_j[:S]``, ``e_j = a_j[S]`` (row ``j`` is dropped
when ``c_j = 0``: the face at infinity ``t >= 0``).

Lemma 4 (inclusion-exclusion into orthants): with ``H_j`` the closed half-spaces of a
piece and ``H_j^c`` their open complements,

    1_piece = sum_{J subset of rows, J not containing all rows opposite finite generators}
              (-1)^{|J|} 1[ cap_{j in J} H_j^c ]          ("complement form")

exactly at every point: expand ``prod_j (1 - 1[H_j^c])``; for ``J`` containing every row
``f`` opposite a finite generator the intersection is empty, because
``sum_f a_f = e_{S+1}`` (dual basis) gives ``sum_f a_f . (z, 1) = 1 > 0``. The rows of
every remaining ``J`` are linearly independent (a dependency among the ``c_j`` forces
``J`` to contain all those rows), so each term is an orthant of a ``|J|``-dimensional
Gaussian. For a bounded simplex this is the paper's identity
``1_Delta = sum_{|J| <= S} (-1)^{S - |J|} 1[cap_J H_j]`` written with complements; that
"half-space form" also holds for pieces with ideal vertices (``cap_j H_j^c`` is empty), but
there its terms with all finite rows are not orthants (their normals are dependent), so
the integrals use the complement form. Both are checked as exact identities of indicator
functions in :mod:`dgn_tools.checks.integral_checks`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import gcd
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Piece",
    "triangulate_cone",
    "triangulate_polyhedron",
    "triangulate_vrep",
    "cone_facets_bruteforce",
    "piece_from_generators",
    "normalize_halfspace",
]

Row = tuple[Fraction, ...]


# --------------------------------------------------------------------------- exact algebra
def _frac_vec(v: Iterable[Any]) -> list[Fraction]:
    out = []
    for x in v:
        if isinstance(x, Fraction):
            out.append(x)
        elif isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
            out.append(Fraction(int(x)))
        elif isinstance(x, (float, np.floating)):
            if not np.isfinite(x):
                raise ValueError("generators must be finite")
            out.append(Fraction(float(x)))
        else:
            raise TypeError(f"generator entries must be ints, floats or Fractions, got {type(x).__name__}")
    return out


def _int_vec(v: Sequence[Fraction]) -> tuple[int, ...]:
    """Positive integer multiple of a rational vector (same direction), primitive."""
    den = 1
    for x in v:
        den = den * x.denominator // gcd(den, x.denominator)
    iv = [int(x * den) for x in v]
    g = 0
    for n in iv:
        g = gcd(g, abs(n))
    if g > 1:
        iv = [n // g for n in iv]
    return tuple(iv)


def _rank(vectors: Sequence[Sequence[int]]) -> int:
    """Exact rank of integer vectors (fraction-free elimination)."""
    rows = [list(v) for v in vectors]
    if not rows:
        return 0
    n = len(rows[0])
    r = 0
    for c in range(n):
        p = next((i for i in range(r, len(rows)) if rows[i][c] != 0), None)
        if p is None:
            continue
        rows[r], rows[p] = rows[p], rows[r]
        for i in range(r + 1, len(rows)):
            if rows[i][c] != 0:
                a, b = rows[r][c], rows[i][c]
                rows[i] = [a * x - b * y for x, y in zip(rows[i], rows[r])]
        r += 1
        if r == len(rows):
            break
    return r


def _inverse(M: Sequence[Sequence[Fraction]]) -> list[list[Fraction]]:
    """Exact inverse of a square Fraction matrix (raises ZeroDivisionError if singular)."""
    n = len(M)
    A = [list(M[i]) + [Fraction(int(i == j)) for j in range(n)] for i in range(n)]
    for c in range(n):
        p = next((i for i in range(c, n) if A[i][c] != 0), None)
        if p is None:
            raise ZeroDivisionError("singular matrix")
        A[c], A[p] = A[p], A[c]
        piv = A[c][c]
        A[c] = [x / piv for x in A[c]]
        for i in range(n):
            if i != c and A[i][c] != 0:
                f = A[i][c]
                A[i] = [x - f * y for x, y in zip(A[i], A[c])]
    return [row[n:] for row in A]


def _det(M: Sequence[Sequence[Fraction]]) -> Fraction:
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
            if A[i][c] != 0:
                f = A[i][c] / A[c][c]
                A[i] = [x - f * y for x, y in zip(A[i], A[c])]
    return det


def normalize_halfspace(c: Sequence[Fraction], e: Fraction) -> Row:
    """The half-space ``c z <= e`` scaled (positively) so that ``max_i |c_i| = 1``.

    Used as the key that identifies equal half-spaces of different pieces.
    """
    s = max(abs(x) for x in c)
    if s == 0:
        raise ValueError("a half-space needs a nonzero normal")
    return tuple(Fraction(x) / s for x in c) + (Fraction(e) / s,)


# --------------------------------------------------------------------------- pieces
@dataclass(frozen=True)
class Piece:
    """One piece of the triangulation of a pointed polyhedron.

    Attributes
    ----------
    generators : tuple of int
        Indices of the ``S + 1`` generators spanning the piece (into ``vertices`` followed
        by ``rays``, as passed to :func:`triangulate_polyhedron`).
    finite : tuple of bool
        For every generator, whether it is a vertex (``t = 1``) rather than a ray.
    C : ndarray of Fraction, shape (n, S)
    d : ndarray of Fraction, shape (n,)
        The piece as ``{z : C z <= d}``, ``n = S + 1`` (or ``S`` for a simplicial cone
        with one vertex); rows normalised so that ``max_i |C_ji| = 1``.
    opposite : tuple of int
        For every row, the position (in ``generators``) of the generator not on it.
    volume_numerator : Fraction
        ``|det G|`` of the homogenised generators (``S! vol`` for a bounded simplex).
    """

    generators: tuple[int, ...]
    finite: tuple[bool, ...]
    C: NDArray[Any]
    d: NDArray[Any]
    opposite: tuple[int, ...]
    volume_numerator: Fraction

    @property
    def dim(self) -> int:
        return int(self.C.shape[1])

    @property
    def bounded(self) -> bool:
        return all(self.finite)

    @property
    def n_finite(self) -> int:
        return sum(self.finite)

    @property
    def finite_rows(self) -> frozenset[int]:
        """Rows opposite a finite generator (all of them: the complement form's excluded J)."""
        return frozenset(j for j, g in enumerate(self.opposite) if self.finite[g])

    def rows(self) -> list[Row]:
        return [tuple(self.C[j]) + (self.d[j],) for j in range(self.C.shape[0])]

    def volume(self) -> Fraction:
        """Exact volume of a bounded simplex (``|det G| / S!``); raises for unbounded pieces."""
        if not self.bounded:
            raise ValueError("an unbounded piece has infinite volume")
        f = 1
        for i in range(2, self.dim + 1):
            f *= i
        return self.volume_numerator / f

    def contains(self, z: Sequence[Fraction]) -> bool:
        """Exact membership of a rational point in the closed piece."""
        return all(sum(c * x for c, x in zip(row, z)) <= e for row, e in zip(self.C, self.d))

    def signed_terms(self, form: str = "complement") -> list[tuple[int, tuple[Row, ...]]]:
        """Lemma 4: ``1_piece`` as a signed sum of indicators of half-space intersections.

        Parameters
        ----------
        form : {"complement", "halfspace"}
            ``"complement"``: terms ``(-1)^{|J|} cap_{j in J} H_j^c`` over ``J`` not
            containing every row opposite a finite generator; each term is returned as the
            tuple of the *closed* complements ``-c_j z <= -e_j`` (the boundary has measure
            zero, but :meth:`indicator_sum` treats them as open). Every term is an orthant.
            A simplicial cone with one vertex gives the single term (its own rows).
            ``"halfspace"``: the paper's form ``(-1)^{S - |J|} cap_{j in J} H_j`` over
            ``|J| <= S`` (only for pieces with ``S + 1`` rows).

        Returns
        -------
        list of (sign, rows)
            ``sign`` is +1 or -1, ``rows`` a tuple of normalised rows ``(c..., e)``.
        """
        rows = self.rows()
        n, S = len(rows), self.dim
        if form == "complement":
            if n == S:
                return [(1, tuple(rows))]
            fin = self.finite_rows
            comp = [normalize_halfspace([-x for x in r[:-1]], -r[-1]) for r in rows]
            out = []
            for k in range(n + 1):
                for J in itertools.combinations(range(n), k):
                    if fin <= set(J):
                        continue
                    out.append(((-1) ** k, tuple(comp[j] for j in J)))
            return out
        if form == "halfspace":
            if n != S + 1:
                raise ValueError("the half-space form needs a piece with S + 1 half-spaces")
            out = []
            for k in range(S + 1):
                for J in itertools.combinations(range(n), k):
                    out.append(((-1) ** (S - k), tuple(rows[j] for j in J)))
            return out
        raise ValueError(f"form must be 'complement' or 'halfspace', got {form!r}")

    def _anchored_index_sets(self, anchor: int) -> list[tuple[int, bool, tuple[int, ...]]]:
        """(sign, keep_anchor, J) of the anchored expansion (see :meth:`anchored_terms`)."""
        n = len(self.C)
        fin = self.finite_rows
        others = [j for j in range(n) if j != anchor]
        out = []
        for k in range(len(others) + 1):
            for J in itertools.combinations(others, k):
                Js = set(J)
                if anchor in fin:
                    keep = not (fin - {anchor}) <= Js  # else H_anchor is implied: drop it
                else:
                    if fin <= Js:
                        continue  # the complements alone are empty
                    keep = True
                out.append(((-1) ** k, keep, J))
        return out

    def anchored_terms(self, anchor: int) -> list[tuple[int, tuple[Row, ...]]]:
        """Lemma 4 anchored at one half-space: every term inside ``H_anchor``.

        ``1_piece = 1[H_a] prod_{j != a} (1 - 1[H_j^c])
        = sum_{J subset of rows - {a}} (-1)^{|J|} 1[H_a cap_{j in J} H_j^c]``, exactly.
        Terms whose complements already force ``H_a`` (``J`` containing every other row
        opposite a finite generator, when ``a`` is one: then ``sum_f a_f . (z, 1) = 1``
        gives ``a_a . (z, 1) > 1``) drop the ``H_a`` row; when ``a`` is opposite a ray, ``J``
        containing all rows opposite finite generators gives an empty term, omitted. Every
        term is an orthant of at most ``S`` independent rows. Anchored at the half-space the
        Gaussian's mean violates most, every term is bounded by ``P(H_a)``, so the signed
        sum cannot cancel catastrophically in the tails (the complement form subtracts
        terms of size 1 there). A simplicial cone (``S`` rows) gives its own rows.
        """
        rows = self.rows()
        if len(rows) == self.dim:
            return [(1, tuple(rows))]
        comp = [normalize_halfspace([-x for x in r[:-1]], -r[-1]) for r in rows]
        return [(sign, ((rows[anchor],) if keep else ()) + tuple(comp[j] for j in J))
                for sign, keep, J in self._anchored_index_sets(anchor)]

    def indicator_sum(self, z: Sequence[Fraction], form: str = "complement",
                      anchor: int | None = None) -> int:
        """The right-hand side of Lemma 4 at a rational point, exactly.

        Complement-form terms are open half-spaces (``c z > e`` for the original row),
        half-space-form terms closed ones, anchored terms the closed anchor half-space and
        open complements; compare with ``int(self.contains(z))``.
        """
        if form == "anchored":
            if len(self.C) == self.dim:
                return int(self.contains(z))
            vals = [sum(c * x for c, x in zip(row, z)) - e for row, e in zip(self.C, self.d)]
            total = 0
            a = anchor if anchor is not None else 0
            for sign, keep, J in self._anchored_index_sets(a):
                ok = (not keep or vals[a] <= 0) and all(vals[j] > 0 for j in J)
                total += sign * int(ok)
            return total
        total = 0
        is_cone = len(self.C) == self.dim
        for sign, rows in self.signed_terms(form):
            if form == "complement" and not is_cone:
                # rows are the closed complements -c z <= -e; open: -c z < -e
                ok = all(sum(c * x for c, x in zip(r[:-1], z)) < r[-1] for r in rows)
            else:
                ok = all(sum(c * x for c, x in zip(r[:-1], z)) <= r[-1] for r in rows)
            total += sign * int(ok)
        return total


def piece_from_generators(gens: Sequence[Sequence[Fraction]], idx: tuple[int, ...]) -> Piece:
    """The :class:`Piece` spanned by homogenised generators ``gens`` (each ``(x, t)``)."""
    G = [list(gens[i]) for i in idx]
    S = len(G[0]) - 1
    Gt = [[G[j][i] for j in range(S + 1)] for i in range(S + 1)]  # columns = generators
    A = _inverse(Gt)  # rows a_j with a_j . g_i = delta_ij
    C, d, opp = [], [], []
    for j, a in enumerate(A):
        c = [-x for x in a[:S]]
        if all(x == 0 for x in c):
            continue  # the face at infinity t >= 0
        row = normalize_halfspace(c, a[S])
        C.append(row[:S])
        d.append(row[S])
        opp.append(j)
    Ca = np.empty((len(C), S), dtype=object)
    for i, r in enumerate(C):
        for k in range(S):
            Ca[i, k] = r[k]
    da = np.empty(len(d), dtype=object)
    for i, x in enumerate(d):
        da[i] = x
    return Piece(generators=tuple(idx), finite=tuple(G[j][S] != 0 for j in range(S + 1)),
                 C=Ca, d=da, opposite=tuple(opp), volume_numerator=abs(_det(Gt)))


# --------------------------------------------------------------------------- pulling triangulation
def triangulate_cone(generators: Sequence[Sequence[Any]], facets: Sequence[Iterable[int]]
                     ) -> list[tuple[int, ...]]:
    """Pulling triangulation of a full-dimensional pointed cone, exactly.

    Parameters
    ----------
    generators : sequence of n vectors in R^N
        Extreme generators of the cone (pairwise non-parallel); ints, floats or Fractions.
    facets : sequence of iterables of int
        For every facet (or any valid inequality: extra faces that are not facets are
        harmless), the indices of the generators on it.

    Returns
    -------
    list of tuple of int
        The maximal cones of the triangulation, each ``N`` generator indices (increasing
        order of pulling), spanning a full-dimensional simplicial cone.
    """
    gens = [_int_vec(_frac_vec(g)) for g in generators]
    if not gens:
        return []
    N = len(gens[0])
    facet_sets = [frozenset(f) for f in facets]
    rank_cache: dict[frozenset[int], int] = {}

    def rank(face: frozenset[int]) -> int:
        if face not in rank_cache:
            rank_cache[face] = _rank([gens[i] for i in sorted(face)])
        return rank_cache[face]

    allf = frozenset(range(len(gens)))
    if rank(allf) != N:
        raise ValueError(f"the cone is not full-dimensional (rank {rank(allf)} < {N})")
    memo: dict[frozenset[int], list[tuple[int, ...]]] = {}

    def pull(face: frozenset[int], k: int) -> list[tuple[int, ...]]:
        if face in memo:
            return memo[face]
        if k == 1:
            if len(face) != 1:
                raise ValueError("parallel generators: generators must be extreme and distinct")
            out = [tuple(face)]
        else:
            g = min(face)
            subfaces = set()
            for H in facet_sets:
                F = face & H
                if F != face and g not in F and len(F) >= k - 1 and F not in subfaces:
                    if rank(F) == k - 1:
                        subfaces.add(F)
            out = []
            for F in sorted(subfaces, key=lambda s: sorted(s)):
                for s in pull(F, k - 1):
                    out.append((g,) + s)
        memo[face] = out
        return out

    return pull(allf, N)


def cone_facets_bruteforce(generators: Sequence[Sequence[Any]]) -> list[frozenset[int]]:
    """Facets of a full-dimensional pointed cone from its generators, by enumeration.

    Every ``(N-1)``-subset of generators of rank ``N-1`` defines a hyperplane; it is a facet
    when every generator lies on one side. Slow (``O(C(n, N-1) n)``) but obviously correct;
    used for V-representations without incidence and as an independent test oracle.
    """
    gens = [_int_vec(_frac_vec(g)) for g in generators]
    n = len(gens)
    N = len(gens[0])
    found: set[frozenset[int]] = set()
    for sub in itertools.combinations(range(n), N - 1):
        if _rank([gens[i] for i in sub]) != N - 1:
            continue
        # normal: cofactor expansion (generalised cross product), exact
        M = [list(map(Fraction, gens[i])) for i in sub]
        normal = []
        for col in range(N):
            minor = [[r[c] for c in range(N) if c != col] for r in M]
            normal.append((-1) ** col * _det(minor))
        vals = [sum(a * b for a, b in zip(normal, g)) for g in gens]
        if all(v >= 0 for v in vals) or all(v <= 0 for v in vals):
            found.add(frozenset(i for i, v in enumerate(vals) if v == 0))
    return sorted(found, key=lambda s: sorted(s))


def _homogenise(vertices: ArrayLike, rays: ArrayLike, S: int) -> list[list[Fraction]]:
    V = [list(_frac_vec(v)) + [Fraction(1)] for v in np.asarray(vertices, dtype=object).reshape(-1, S)]
    R = [list(_frac_vec(r)) + [Fraction(0)] for r in np.asarray(rays, dtype=object).reshape(-1, S)]
    return V + R


def triangulate_polyhedron(vertices: ArrayLike, rays: ArrayLike,
                           incidence: Sequence[Iterable[int]] | None = None) -> list[Piece]:
    """Exact triangulation of a full-dimensional pointed polyhedron ``conv(V) + cone(R)``.

    Parameters
    ----------
    vertices : array_like, shape (k, S)
        The vertices (extreme points), ``k >= 1``.
    rays : array_like, shape (r, S)
        Extreme rays, pairwise non-parallel (may be empty).
    incidence : sequence of length k + r, optional
        For every vertex then every ray, the facets it lies on (as in
        :class:`verified_dgn.geometry.ExactPolyhedron`). When omitted, the facets are
        found by :func:`cone_facets_bruteforce`.

    Returns
    -------
    list of Piece
        Pieces covering ``P`` with pairwise disjoint interiors.
    """
    V = np.asarray(vertices, dtype=object)
    S = V.shape[1] if V.ndim == 2 else np.asarray(rays, dtype=object).shape[1]
    gens = _homogenise(vertices, rays, S)
    if incidence is None:
        facets = cone_facets_bruteforce(gens)
    else:
        if len(incidence) != len(gens):
            raise ValueError("incidence must list the facets of every vertex and ray")
        nf = 1 + max((max(s) for s in incidence if s), default=-1)
        facets = [frozenset(i for i, s in enumerate(incidence) if f in s) for f in range(nf)]
        # the face at infinity (t >= 0): a facet of the homogenised cone when the rays
        # span R^S; listing it when it is not a facet is harmless
        nv = len(V) if V.size else 0
        facets.append(frozenset(range(nv, len(gens))))
    cones = triangulate_cone(gens, facets)
    return [piece_from_generators(gens, c) for c in cones]


def triangulate_vrep(vertices: ArrayLike, rays: ArrayLike | None = None) -> list[Piece]:
    """Triangulation from a V-representation alone (extreme points and rays).

    Convenience wrapper of :func:`triangulate_polyhedron` with the facets found by
    enumeration; the generators must be extreme (use
    :func:`verified_dgn.geometry.exact_polyhedron` to reduce a redundant description).
    """
    V = np.asarray(vertices, dtype=object)
    S = V.shape[1]
    if rays is None:
        rays = np.zeros((0, S), dtype=object)
    return triangulate_polyhedron(V, rays, None)
