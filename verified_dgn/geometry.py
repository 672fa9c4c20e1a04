"""Exact polyhedra on the rationals: H- and V-representations with cddlib's GMP backend.

A polyhedron ``P = {z in R^S : C z <= d}`` is described exactly by

* its non-redundant facets (and, when ``P`` is not full-dimensional, its implicit
  equalities), rows normalised so that ``max_i |C_ji| = 1``;
* its V-representation ``P = conv(vertices) + cone(rays) + span(lines)``;
* the vertex/ray-facet incidence, its affine dimension, and an exact interior point.

Everything is computed in exact rational arithmetic. Internally a row ``c z <= d`` is kept
in cddlib's homogenised form ``[d, -c]`` scaled to integers (a positive scaling, so the
inequality is unchanged), and a generator as an integer vector ``[t, x]`` with ``t > 0`` for
the point ``x / t`` and ``t = 0`` for a ray or a line. The slack of a row at a generator is
then the integer dot product ``[d, -c] . [t, x] = t d - c.x``: ``>= 0`` when valid and ``0``
when the generator lies on the row's hyperplane. :mod:`verified_dgn.exact_partition` uses
these private kernels directly.

cddlib traps handled here (each pinned down by a test):

* homogeneous systems (every ``d = 0``): cdd returns rays and lines but no point; the origin
  is added as the vertex (or as the point of the minimal face when there are lines);
* zero rows ``0 z <= d``: dropped when ``d >= 0``, the set is empty when ``d < 0``;
* duplicate rows and positive multiples: one facet, all the input rows listed in
  ``facet_rows``;
* empty sets (cdd returns no generators, or only directions) and lower-dimensional sets
  (implicit equalities, reported separately in ``eq_C, eq_d``).

Only this module and the partition import pycddlib.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dgn_core.regions import normalize_rows

__all__ = ["ExactPolyhedron", "exact_polyhedron", "to_fraction_array"]

IntRow = list  # a list of Python ints (homogenised row or generator)


# --------------------------------------------------------------------------- conversion
def _to_fraction(x: Any, name: str) -> Fraction:
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name} must hold numbers, got a boolean")
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    if isinstance(x, (float, np.floating)):
        xf = float(x)
        if not math.isfinite(xf):
            raise ValueError(f"{name} contains NaN or infinite values")
        return Fraction(xf)  # exact: every finite float is a dyadic rational
    if isinstance(x, numbers.Rational):
        return Fraction(int(x.numerator), int(x.denominator))
    raise TypeError(
        f"{name} must hold ints, floats or rationals (fractions.Fraction), "
        f"got {type(x).__name__}"
    )


def to_fraction_array(a: ArrayLike, name: str = "array") -> NDArray[Any]:
    """Convert an array of ints, floats or rationals exactly to a ``Fraction`` object array.

    Floats convert without rounding. Raises ``ValueError`` for NaN / infinite values and
    ``TypeError`` for anything that is not a real rational or float.
    """
    arr = np.asarray(a, dtype=object) if not isinstance(a, np.ndarray) else a
    if arr.dtype.kind == "c" or (arr.dtype != object and arr.dtype.kind not in "iuf"):
        raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
    out = np.empty(arr.shape, dtype=object)
    flat_in, flat_out = arr.reshape(-1), out.reshape(-1)
    for i in range(flat_in.size):
        flat_out[i] = _to_fraction(flat_in[i], name)
    return out


def _int_row(fracs: Sequence[Fraction]) -> IntRow:
    """Scale a row of Fractions by the (positive) lcm of its denominators."""
    den = math.lcm(*(f.denominator for f in fracs)) if len(fracs) else 1
    return [f.numerator * (den // f.denominator) for f in fracs]


def _reduce_row(v: IntRow) -> IntRow:
    """Divide an integer vector by the gcd of its entries (a positive scaling)."""
    g = math.gcd(*v)
    return [t // g for t in v] if g > 1 else list(v)


# --------------------------------------------------------------------------- kernels
def _rank(vectors: Sequence[IntRow]) -> int:
    """Exact rank of a list of integer vectors (fraction-free Gaussian elimination)."""
    rows = [list(v) for v in vectors if any(v)]
    if not rows:
        return 0
    n = len(rows[0])
    rank = 0
    for col in range(n):
        piv = next((i for i in range(rank, len(rows)) if rows[i][col] != 0), None)
        if piv is None:
            continue
        rows[rank], rows[piv] = rows[piv], rows[rank]
        p = rows[rank]
        pc = p[col]
        for i in range(rank + 1, len(rows)):
            r = rows[i]
            rc = r[col]
            if rc:
                rows[i] = _reduce_row([pc * a - rc * b for a, b in zip(r, p)])
        rank += 1
        if rank == len(rows):
            break
    return rank


def _independent_subset(vectors: Sequence[IntRow]) -> list[int]:
    """Indices of a maximal linearly independent subset, chosen greedily in order."""
    chosen: list[int] = []
    basis: list[IntRow] = []
    for i, v in enumerate(vectors):
        if _rank(basis + [v]) > len(basis):
            basis.append(v)
            chosen.append(i)
    return chosen


def _cdd_generators(H: Sequence[IntRow]) -> tuple[list[IntRow], list[IntRow], list[IntRow]]:
    """V-representation of ``{x : H[:, 0] + H[:, 1:] x >= 0}`` from cdd.gmp, homogenised.

    Parameters
    ----------
    H : list of integer rows, each of length S + 1, no zero rows in ``H[:, 1:]``.

    Returns
    -------
    points, rays, lines : lists of integer vectors ``[t, x]`` (length S + 1), reduced by
        their gcd; ``t > 0`` for points, ``t = 0`` for rays and lines. ``points`` is empty
        iff the polyhedron is empty. For a homogeneous system the origin ``[1, 0, ...]`` is
        added (cdd omits it).
    """
    import cdd
    import cdd.gmp

    S = len(H[0]) - 1
    mat = cdd.gmp.matrix_from_array(H, rep_type=cdd.RepType.INEQUALITY)
    poly = cdd.gmp.polyhedron_from_matrix(mat)
    gen = cdd.gmp.copy_generators(poly)
    lin = gen.lin_set
    points: list[IntRow] = []
    rays: list[IntRow] = []
    lines: list[IntRow] = []
    for i, row in enumerate(gen.array):
        v = _reduce_row(_int_row(row))
        if i in lin:
            lines.append(v)
        elif v[0] > 0:
            points.append(v)
        elif v[0] == 0:
            rays.append(v)
        else:  # pragma: no cover - cdd normalises t >= 0
            raise RuntimeError(f"cdd returned a generator with t < 0: {row}")
    if not points and all(h[0] == 0 for h in H):
        # homogeneous system: the origin is feasible, but cdd reports only directions
        points.append([1] + [0] * S)
    if not points:
        return [], [], []
    return points, rays, lines


def _centroid_hom(points: Sequence[IntRow], rays: Sequence[IntRow]) -> IntRow:
    """``[T, X]`` with ``X / T`` = average of the points + sum of the rays scaled to max 1.

    A strictly positive combination of every point (convex weights) and every ray, so it lies
    in the relative interior of ``conv(points) + cone(rays)`` (+ any lines). The plain
    average, rather than the sum of the homogenised vectors, keeps it away from the
    boundary when the points' denominators differ by orders of magnitude.
    """
    k = len(points)
    T = math.lcm(*(p[0] for p in points))
    ms = [max(abs(x) for x in r[1:]) for r in rays]
    M = math.lcm(*ms) if ms else 1
    S = len(points[0]) - 1
    num = [0] * S
    for p in points:
        f = (T // p[0]) * M
        for i in range(S):
            num[i] += p[i + 1] * f
    for r, m in zip(rays, ms):
        f = k * T * (M // m)
        for i in range(S):
            num[i] += r[i + 1] * f
    return _reduce_row([k * T * M] + num)


def _dot(a: IntRow, b: IntRow) -> int:
    return sum(x * y for x, y in zip(a, b))


def _check_generators(H: Sequence[IntRow], points: Sequence[IntRow], rays: Sequence[IntRow],
                      lines: Sequence[IntRow]) -> None:
    """Raise if a generator violates a row (cdd must never do that; cheap exact guard)."""
    for h in H:
        for g in points:
            if _dot(h, g) < 0:
                raise RuntimeError("cdd returned a vertex that violates an inequality")
        for g in rays:
            if _dot(h, g) < 0:
                raise RuntimeError("cdd returned a ray that violates an inequality")
        for g in lines:
            if _dot(h, g) != 0:
                raise RuntimeError("cdd returned a line that violates an inequality")


def _frac_point(g: IntRow) -> list[Fraction]:
    return [Fraction(x, g[0]) for x in g[1:]]


def _normalized_direction(g: IntRow, canonical_sign: bool = False) -> list[Fraction]:
    x = g[1:]
    m = max(abs(t) for t in x)
    if canonical_sign:
        first = next(t for t in x if t != 0)
        if first < 0:
            m = -m
    return [Fraction(t, m) for t in x]


def _obj_vec(vals: Sequence[Fraction]) -> NDArray[Any]:
    out = np.empty(len(vals), dtype=object)
    for i, t in enumerate(vals):
        out[i] = t
    return out


def _obj_array(rows: Sequence[Sequence[Fraction]], ncols: int) -> NDArray[Any]:
    out = np.empty((len(rows), ncols), dtype=object)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            out[i, j] = t
    return out


# --------------------------------------------------------------------------- public type
@dataclass(frozen=True, eq=False)
class ExactPolyhedron:
    """An exact polyhedron ``{z in R^S : C z <= d}`` with its H- and V-representation.

    All arrays are ``Fraction`` object arrays.

    Attributes
    ----------
    C : ndarray, shape (m, S)
    d : ndarray, shape (m,)
        The non-redundant facet inequalities, one row per facet, normalised so that
        ``max_i |C_ji| = 1`` (:func:`dgn_core.regions.normalize_rows`). For a set that
        is not full-dimensional these are the facets relative to its affine hull
        (``eq_C z = eq_d``); the row given for such a facet is one of the input rows
        defining it, normalised.
    eq_C : ndarray, shape (S - dim, S)
    eq_d : ndarray, shape (S - dim,)
        A basis of the implicit equalities (input rows that hold with equality on the whole
        set), normalised; empty (``(0, S)``) when the set is full-dimensional or empty.
    vertices : ndarray, shape (k, S)
        The vertices. When ``lines`` is non-empty the set has no vertex, and these are one
        point of each minimal face instead (as cdd reports them). A nonempty homogeneous
        system (every ``d = 0``) always has the origin here.
    rays : ndarray, shape (r, S)
        Extreme rays of the recession cone (modulo the lines), scaled so ``max_i |r_i| = 1``.
    lines : ndarray, shape (l, S)
        A basis of the lineality space, scaled so ``max_i |l_i| = 1`` with the first nonzero
        entry positive; empty unless the set contains a line.
    incidence : tuple of frozenset of int, length k + r
        ``incidence[i]`` for ``i < k``: the facets (indices into ``C``) vertex ``i`` lies on;
        ``incidence[k + j]``: the facets ray ``j`` lies on (``C_f r_j = 0``). Lines lie on
        every facet and are not listed.
    facet_rows : tuple of tuple of int, length m
        For every facet, the sorted indices of all input rows that define it (duplicates and
        positive multiples of one facet are listed together). For a set that is not
        full-dimensional, input rows that cut the same face are grouped.
    is_empty : bool
    dim : int
        Affine dimension (-1 for the empty set).
    interior_point : ndarray, shape (S,), or None
        An exact point in the interior (``C z < d`` strictly) when ``dim == S``, else None.
    relative_interior_point : ndarray, shape (S,), or None
        An exact point in the relative interior; None only for the empty set.
    n_input_rows : int
        Number of input rows (for ``facet_rows``).

    Notes
    -----
    The (relative) interior point is the average of the vertices plus the sum of the rays
    (each scaled to ``max_i |r_i| = 1``): a strictly positive combination of every vertex and
    every ray, so no facet is tight at it.
    """

    C: NDArray[Any]
    d: NDArray[Any]
    eq_C: NDArray[Any]
    eq_d: NDArray[Any]
    vertices: NDArray[Any]
    rays: NDArray[Any]
    lines: NDArray[Any]
    incidence: tuple[frozenset[int], ...]
    facet_rows: tuple[tuple[int, ...], ...]
    is_empty: bool
    dim: int
    interior_point: NDArray[Any] | None
    relative_interior_point: NDArray[Any] | None
    n_input_rows: int

    @property
    def ambient_dim(self) -> int:
        """S, the dimension of the space the polyhedron lives in."""
        return int(self.C.shape[1])

    @property
    def n_facets(self) -> int:
        return int(self.C.shape[0])

    @property
    def full_dimensional(self) -> bool:
        return self.dim == self.ambient_dim

    @property
    def bounded(self) -> bool:
        return not self.is_empty and len(self.rays) == 0 and len(self.lines) == 0

    @property
    def pointed(self) -> bool:
        """Whether the set has vertices (contains no line)."""
        return not self.is_empty and len(self.lines) == 0

    @property
    def vertex_incidence(self) -> tuple[frozenset[int], ...]:
        """Facets each vertex lies on, length k."""
        return self.incidence[: len(self.vertices)]

    @property
    def ray_incidence(self) -> tuple[frozenset[int], ...]:
        """Facets each ray lies on, length r."""
        return self.incidence[len(self.vertices):]

    def contains(self, z: ArrayLike) -> bool:
        """Exactly whether ``z`` (ints, floats or Fractions, shape (S,)) lies in the set."""
        zz = to_fraction_array(z, "z").reshape(-1)
        if zz.shape != (self.ambient_dim,):
            raise ValueError(f"z must have shape ({self.ambient_dim},), got {np.shape(z)}")
        if self.is_empty:
            return False
        if any(sum(c * t for c, t in zip(row, zz)) > dd for row, dd in zip(self.C, self.d)):
            return False
        return all(sum(c * t for c, t in zip(row, zz)) == dd
                   for row, dd in zip(self.eq_C, self.eq_d))

    def __repr__(self) -> str:
        if self.is_empty:
            return f"ExactPolyhedron(empty, S={self.ambient_dim})"
        kind = "bounded" if self.bounded else "unbounded"
        return (f"ExactPolyhedron({kind}, dim={self.dim}, S={self.ambient_dim}, "
                f"{self.n_facets} facets, {len(self.vertices)} vertices, "
                f"{len(self.rays)} rays, {len(self.lines)} lines)")


def _validate_hrep(C: ArrayLike, d: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    Cf = to_fraction_array(C, "C")
    df = to_fraction_array(d, "d")
    if Cf.ndim != 2:
        raise ValueError(f"C must be 2-dimensional (m, S), got shape {Cf.shape}")
    if Cf.shape[1] == 0:
        raise ValueError("C must have at least one column (S >= 1)")
    if df.ndim != 1 or df.shape[0] != Cf.shape[0]:
        raise ValueError(f"d must have shape ({Cf.shape[0]},) to match C of shape {Cf.shape}, "
                         f"got {df.shape}")
    return Cf, df


def exact_polyhedron(C: ArrayLike, d: ArrayLike) -> ExactPolyhedron:
    """The exact H- and V-representation of ``{z in R^S : C z <= d}``.

    Parameters
    ----------
    C : array_like, shape (m, S)
    d : array_like, shape (m,)
        Entries may be ints, floats (converted exactly) or ``fractions.Fraction``; ``m``
        may be 0 (the whole space). Rows may be duplicated, positive or negative multiples
        of each other, or zero (``0 <= d_j``: dropped when ``d_j >= 0``, the set is empty
        when ``d_j < 0``).

    Returns
    -------
    ExactPolyhedron
        Non-redundant facets (normalised), implicit equalities, vertices, rays, lines,
        incidence, dimension, emptiness and an exact interior point; see
        :class:`ExactPolyhedron` for the conventions.

    Raises
    ------
    ValueError
        Wrong shapes, NaN or infinite entries.
    TypeError
        Entries that are not real numbers.

    Notes
    -----
    The V-representation comes from cddlib's exact (GMP) double description. Facets,
    dimension and implicit equalities are then derived exactly from the slacks of every
    input row at every generator: row ``j`` cuts a face whose generators are those on its
    hyperplane; the face's dimension is the rank of their homogenised vectors minus one, and
    the row is a facet when that dimension is ``dim - 1``. Every generator is checked
    exactly against every input row.
    """
    Cf, df = _validate_hrep(C, d)
    return _exact_polyhedron(Cf, df)


def _empty(S: int, m: int) -> ExactPolyhedron:
    z2 = np.zeros((0, S), dtype=object)
    z1 = np.zeros(0, dtype=object)
    return ExactPolyhedron(C=z2, d=z1, eq_C=z2.copy(), eq_d=z1.copy(), vertices=z2.copy(),
                           rays=z2.copy(), lines=z2.copy(), incidence=(), facet_rows=(),
                           is_empty=True, dim=-1, interior_point=None,
                           relative_interior_point=None, n_input_rows=m)


def _exact_polyhedron(Cf: NDArray[Any], df: NDArray[Any]) -> ExactPolyhedron:
    m, S = Cf.shape
    H: list[IntRow] = []
    H_index: list[int] = []  # input row of every kept row
    for j in range(m):
        c = list(Cf[j])
        if all(t == 0 for t in c):
            if df[j] < 0:
                return _empty(S, m)
            continue  # 0 <= d: always true
        H.append(_reduce_row(_int_row([df[j]] + [-t for t in c])))
        H_index.append(j)
    if H:
        points, rays, lines = _cdd_generators(H)
        if not points:
            return _empty(S, m)
        _check_generators(H, points, rays, lines)
    else:
        points, rays, lines = [[1] + [0] * S], [], [
            [0] + [1 if i == k else 0 for i in range(S)] for k in range(S)]
    return _assemble(S, m, H, H_index, points, rays, lines)


def _face_groups(H: Sequence[IntRow], points: Sequence[IntRow], rays: Sequence[IntRow],
                 lines: Sequence[IntRow], dim: int
                 ) -> tuple[list[int], list[tuple[frozenset[int], list[int]]]]:
    """Implicit equalities and facets from the exact slacks.

    Returns
    -------
    equalities : indices into H of rows tight on every generator.
    facets : list of (tight generator set, rows of H cutting that facet), generator indices
        numbering points then rays; in order of each facet's first row.
    """
    gens = list(points) + list(rays)
    npts = len(points)
    all_idx = frozenset(range(len(gens)))
    equalities: list[int] = []
    groups: dict[frozenset[int], list[int]] = {}
    order: list[frozenset[int]] = []
    for i, h in enumerate(H):
        tight = frozenset(g for g, v in enumerate(gens) if _dot(h, v) == 0)
        if tight == all_idx:
            equalities.append(i)
            continue
        if not any(g < npts for g in tight):
            continue  # meets no point of the set: a redundant row
        if tight in groups:
            groups[tight].append(i)
            continue
        if _rank([gens[g] for g in tight] + list(lines)) - 1 == dim - 1:
            groups[tight] = [i]
            order.append(tight)
    return equalities, [(t, groups[t]) for t in order]


def _assemble(S: int, m: int, H: Sequence[IntRow], H_index: Sequence[int],
              points: list[IntRow], rays: list[IntRow], lines: list[IntRow]) -> ExactPolyhedron:
    dim = _rank(points + rays + lines) - 1
    eq_rows, facets = _face_groups(H, points, rays, lines, dim)

    def hrow_to_cd(h: IntRow) -> tuple[list[Fraction], Fraction]:
        return [Fraction(-t) for t in h[1:]], Fraction(h[0])

    C_rows, d_vals = [], []
    for _, rows in facets:
        c, dd = hrow_to_cd(H[rows[0]])
        C_rows.append(c)
        d_vals.append(dd)
    Cn, dn = normalize_rows(_obj_array(C_rows, S), _obj_vec(d_vals))
    # a basis of the implicit equalities, as rows [d, -c]; independent as affine equations
    eq_basis = [eq_rows[i] for i in _independent_subset([H[i] for i in eq_rows])]
    eC_rows, ed_vals = [], []
    for i in eq_basis:
        c, dd = hrow_to_cd(H[i])
        eC_rows.append(c)
        ed_vals.append(dd)
    eCn, edn = normalize_rows(_obj_array(eC_rows, S), _obj_vec(ed_vals))

    npts = len(points)
    incidence = tuple(
        frozenset(f for f, (tight, _) in enumerate(facets) if g in tight)
        for g in range(npts + len(rays))
    )
    facet_rows = tuple(tuple(sorted(H_index[i] for i in rows)) for _, rows in facets)

    c = _centroid_hom(points, rays)
    rel_arr = _obj_vec([Fraction(x, c[0]) for x in c[1:]])
    return ExactPolyhedron(
        C=Cn, d=dn, eq_C=eCn, eq_d=edn,
        vertices=_obj_array([_frac_point(g) for g in points], S),
        rays=_obj_array([_normalized_direction(g) for g in rays], S),
        lines=_obj_array([_normalized_direction(g, canonical_sign=True) for g in lines], S),
        incidence=incidence, facet_rows=facet_rows, is_empty=False, dim=dim,
        interior_point=rel_arr.copy() if dim == S else None,
        relative_interior_point=rel_arr, n_input_rows=m,
    )
