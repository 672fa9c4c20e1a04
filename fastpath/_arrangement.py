"""Float64 subdivision of the latent space by the (bent) hyperplanes of a DGN.

Private kernel of :func:`fastpath.partition`. No input validation here.

Algorithm (layer-wise subdivision, one double-description step per hidden unit)
-------------------------------------------------------------------------------
Every region of a DGN is a pointed polyhedron once the lineality space ``ker W1`` is
factored out (every constraint row of every region lies in the row space of ``W1``, and
all rows of ``W1`` are constraints of every region). So we work in coordinates ``y`` of the
row space (``z = U y``, ``U`` of shape ``(S, r)``, ``r = rank W1``) where each piece is a
pointed polyhedron, stored by its V-representation in homogeneous coordinates: a generator
``(y, t)`` with ``t = 1`` is a vertex, ``t = 0`` a ray. The homogenised cone
``K = cone{(v, 1), (ray, 0)}`` is pointed, and cutting a piece by a hyperplane
``a . y + c = 0`` is one step of the double description method on ``K``: generators on the
positive side go to the ``+`` child, those on the negative side to the ``-`` child, those
on the hyperplane to both, and every *adjacent* pair (positive, negative) of generators
gives a new generator on the hyperplane, shared by both children.

Adjacency is decided combinatorially from incidence bitsets (which constraints each
generator lies on; bit ``n_units`` is the face at infinity ``t = 0``): the incidence of a
new generator is inherited, ``Z(g+) & Z(g-) | {unit}``, never re-measured. Floating point
enters only in the side tests ``a . g``, and every piece keeps a consistent combinatorial
structure whatever the rounding.

Pieces start as the ``2^r`` simplicial cones of ``r`` independent first-layer units, then
every remaining unit cuts every piece, layer by layer; the hyperplane of a layer-``l`` unit
is affine on each piece because the piece fixes the signs of layers ``< l``. All pieces are
cut by one unit at a time in a handful of vectorised numpy operations over flat arrays of
generators (in no particular order; a cut relabels and appends, it does not copy), so the
cost is ``n_units`` vectorised steps, not a Python loop over regions.

Side tests use a relative tolerance: a generator ``g = (y, t)`` is on the hyperplane of the
row ``(a, c)`` when ``|a . y + c t| <= rtol * (|a|_1 m_g + |c| t)``. Here ``|a|`` and ``|c|``
are the row's *magnitudes*: the same layer products computed with absolute values
(``|W_l| |D| ... |W_1|``), which bound its rounding error also where it cancels to nearly
zero; and ``m_g >= |y|_inf`` is the generator's magnitude, propagated through the
combinations that created it (``m = (v+ m- + |v-| m+) / norm``), which bounds the error of
every coordinate also where they cancelled (a vertex at (1e-17, 4e-17, 1e-17) made from
points of size 1/3 is the origin; a ray (1e-17, 0, 1) is (0, 0, 1)). Duplicate and
proportional hyperplanes, and hyperplanes through an existing vertex, therefore produce no
sliver pieces; the price is that a genuine region thinner than about ``rtol`` relative to
the size of its vertex coordinates is merged into its neighbour.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import qr

from dgn_core.model import DGN
from dgn_core.regions import RegionLimitError

#: relative tolerance of the side tests (see the module docstring)
RTOL = 1e-10
#: singular values below RANK_RTOL * max(shape) * sigma_max count as zero in rank(W1)
RANK_RTOL = 1e-13

_ONE = np.uint64(1)


@dataclass
class Arrangement:
    """The pieces at the end of the subdivision (flat arrays, generators sorted by piece).

    Attributes
    ----------
    r : int
        Rank of ``W1``: dimension of the coordinates ``y``.
    U : ndarray, shape (S, r)
        Orthonormal basis of the row space of ``W1``; ``z = U y``. ``None`` when ``r = S``
        (then ``y = z``).
    lines : ndarray, shape (S - r, S)
        Basis of ``ker W1``, the lineality space of every region.
    gen : ndarray, shape (G, r + 1)
        Homogeneous generators ``(y, t)``: vertices have ``t = 1``, rays ``t = 0`` and
        ``max |y_i| = 1``.
    inc : ndarray of uint64, shape (G, n_words)
        Incidence bitsets: bit ``k`` set when generator lies on the hyperplane of unit ``k``
        (bit ``n_units``: the face at infinity). Units identically zero on a piece have no
        bits there (see ``zero``).
    start : ndarray, shape (P + 1,)
        Generators of piece ``p`` are rows ``start[p]:start[p + 1]``.
    signs : ndarray of int8, shape (P, n_units)
    zero : ndarray of bool, shape (P, n_units)
        Units whose pre-activation is identically zero on the piece.
    """

    r: int
    U: NDArray[np.float64] | None
    lines: NDArray[np.float64]
    gen: NDArray[np.float64]
    inc: NDArray[np.uint64]
    start: NDArray[np.intp]
    signs: NDArray[np.int8]
    zero: NDArray[np.bool_]

    @property
    def n_pieces(self) -> int:
        return int(self.signs.shape[0])

    @property
    def piece_of(self) -> NDArray[np.intp]:
        """Piece index of every generator, shape ``(G,)``."""
        counts = np.diff(self.start)
        return np.repeat(np.arange(counts.size), counts)


def row_space(W1: NDArray[np.float64]) -> tuple[int, NDArray[np.float64] | None, NDArray[np.float64]]:
    """``(r, U, lines)``: rank of ``W1``, a basis ``U`` (S, r) of its row space (``None`` if
    ``r = S``) and a basis (S - r, S) of its kernel, rows scaled to ``max |.| = 1``."""
    S = W1.shape[1]
    _, sv, Vt = np.linalg.svd(W1)
    smax = sv[0] if sv.size else 0.0
    r = int(np.sum(sv > RANK_RTOL * max(W1.shape) * smax)) if smax > 0 else 0
    if r == S:
        return r, None, np.zeros((0, S))
    lines = Vt[r:].copy()
    lines /= np.abs(lines).max(axis=1, keepdims=True)
    return r, Vt[:r].T.copy(), lines


def next_layer_maps(W: NDArray[np.float64], dl: NDArray[np.float64],
                    MT: NDArray[np.float64]) -> NDArray[np.float64]:
    """``W diag(dl_p) M_p`` for every piece p, in transposed layout.

    Parameters
    ----------
    W : ndarray, shape (m, n)
    dl : ndarray, shape (P, n)
        The slopes (1 or eta) of this layer's units on every piece.
    MT : ndarray, shape (k, n) or (P, k, n)
        ``M_p^T``: this layer's map, shared by all pieces (first layer) or per piece.

    Returns
    -------
    ndarray, shape (P, k, m)
        The next layer's maps, transposed. One matrix product, no (P, n, k) temporary
        when the map is shared.
    """
    m = W.shape[0]
    if MT.ndim == 2:
        k, n = MT.shape
        Z = (MT.T[:, :, None] * W.T[:, None, :]).reshape(n, k * m)  # Z[j, a, i] = M[j, a] W[i, j]
        return (dl @ Z).reshape(-1, k, m)
    P, k, n = MT.shape
    return ((MT * dl[:, None, :]).reshape(P * k, n) @ W.T).reshape(P, k, m)


def _ragged_arange(counts: NDArray[np.intp]) -> NDArray[np.intp]:
    """Concatenation of ``arange(c)`` for every ``c`` in ``counts``."""
    total = int(counts.sum())
    return np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)


class _Buffer:
    """A growable array (amortised O(1) appends along axis 0)."""

    def __init__(self, init: NDArray) -> None:
        self.n = init.shape[0]
        self.data = np.empty((max(16, 2 * self.n),) + init.shape[1:], dtype=init.dtype)
        self.data[:self.n] = init

    @property
    def view(self) -> NDArray:
        return self.data[:self.n]

    def append(self, rows: NDArray) -> None:
        m = self.n + rows.shape[0]
        if m > self.data.shape[0]:
            new = np.empty((2 * m,) + self.data.shape[1:], dtype=self.data.dtype)
            new[:self.n] = self.data[:self.n]
            self.data = new
        self.data[self.n:m] = rows
        self.n = m


class _Subdivision:
    """Mutable state of the subdivision.

    Generators live in flat growable arrays, in no particular order (``gp`` gives each one's
    piece): a cut only relabels the generators that move to a new piece and appends the new
    ones, so its cost does not include copying every generator. Per-piece arrays (signs,
    zero, cell) are growable too.
    """

    def __init__(self, r: int, n_units: int, rtol: float) -> None:
        self.r = r
        self.n = n_units
        self.n_words = (n_units + 1 + 63) // 64
        self.rtol = rtol

    def _init(self, gen: NDArray[np.float64], gmag: NDArray[np.float64], inc: NDArray[np.uint64],
              gp: NDArray[np.intp], signs: NDArray[np.int8]) -> None:
        P = signs.shape[0]
        self._gen, self._inc, self._gp = _Buffer(gen), _Buffer(inc), _Buffer(gp)
        self._gmag = _Buffer(gmag)
        self._signs = _Buffer(signs)
        self._zero = _Buffer(np.zeros((P, self.n), dtype=bool))
        self._cell = _Buffer(np.arange(P))

    # views of the current state
    gen = property(lambda self: self._gen.view)
    gmag = property(lambda self: self._gmag.view)
    inc = property(lambda self: self._inc.view)
    gp = property(lambda self: self._gp.view)
    signs = property(lambda self: self._signs.view)
    zero = property(lambda self: self._zero.view)
    cell = property(lambda self: self._cell.view)

    @property
    def n_pieces(self) -> int:
        return self._signs.n

    def new_cells(self) -> None:
        """Every piece becomes its own cell (at the start of a layer)."""
        self._cell = _Buffer(np.arange(self.n_pieces))

    # ------------------------------------------------------------------ seeding
    def seed(self, M1: NDArray[np.float64], c1: NDArray[np.float64]) -> list[int]:
        """Start from the 2^r simplicial cones of r independent first-layer units.

        Returns the seed units (they need no cut)."""
        r, n, nw = self.r, self.n, self.n_words
        if r == 0:
            # R^0: a single point; every unit is constant
            self._init(np.ones((1, 1)), np.zeros(1), np.zeros((1, nw), dtype=np.uint64),
                       np.zeros(1, dtype=np.intp), np.ones((1, n), dtype=np.int8))
            return []
        _, _, piv = qr(M1.T, pivoting=True, mode="economic")
        seeds = sorted(int(k) for k in piv[:r])
        As, cs = M1[seeds], c1[seeds]
        B = np.linalg.inv(As)  # a_{s_j} . B[:, i] = delta_ij
        apex = np.linalg.solve(As, -cs)
        apex_mag = max(float(np.max(np.abs(B) @ np.abs(cs))), float(np.abs(apex).max()))
        B = B / np.abs(B).max(axis=0, keepdims=True)
        inf_w, inf_m = n >> 6, _ONE << np.uint64(n & 63)
        seed_bits = np.zeros(nw, dtype=np.uint64)
        for s in seeds:
            seed_bits[s >> 6] |= _ONE << np.uint64(s & 63)
        npieces = 2 ** r
        sig = ((np.arange(npieces)[:, None] >> np.arange(r)[None, :]) & 1) * -2 + 1  # (P, r)
        gen = np.zeros((npieces, r + 1, r + 1))
        inc = np.zeros((npieces, r + 1, nw), dtype=np.uint64)
        gen[:, 0, :r] = apex
        gen[:, 0, r] = 1.0
        inc[:, 0] = seed_bits
        for i in range(r):
            gen[:, i + 1, :r] = sig[:, i:i + 1] * B[:, i]
            bits = seed_bits.copy()
            bits[seeds[i] >> 6] &= ~(_ONE << np.uint64(seeds[i] & 63))
            bits[inf_w] |= inf_m
            inc[:, i + 1] = bits
        signs = np.ones((npieces, n), dtype=np.int8)
        signs[:, seeds] = sig
        gmag = np.ones((npieces, r + 1))  # rays: max |y_i| = 1
        gmag[:, 0] = apex_mag
        self._init(gen.reshape(-1, r + 1), gmag.ravel(), inc.reshape(-1, nw),
                   np.repeat(np.arange(npieces), r + 1), signs)
        return seeds

    # ------------------------------------------------------------------ one cut
    def cut(self, a: NDArray[np.float64], amag: NDArray[np.float64], k: int) -> None:
        """Cut every piece by unit ``k``.

        ``a`` is the unit's homogeneous row ``(M_k, c_k)`` and ``amag`` its magnitude
        (the same products with absolute values, see :func:`subdivide`), both of shape
        ``(r + 1,)`` (same for all pieces) or ``(n_cells, r + 1)`` (per cell)."""
        gen, inc, gp = self.gen, self.inc, self.gp
        P, r = self.n_pieces, self.r
        # side tests relative to |row| |generator|: the rounding error of a . g is about
        # eps (|M|_1 gmag + |c| t), gmag >= |y|_inf the magnitude of the generator (every
        # coordinate of g carries an error of order eps gmag, also where the coordinates
        # cancelled to ~0), |M|, |c| the magnitudes of the products that formed the row
        gmax = self.gmag
        if a.ndim == 1:
            val = gen @ a
            scale = amag[:r].sum() * gmax + amag[r] * gen[:, r]
        else:
            cg = self.cell[gp]
            val = np.einsum("gj,gj->g", a[cg], gen)
            scale = amag[:, :r].sum(axis=1)[cg] * gmax + amag[cg, r] * gen[:, r]
        scale *= self.rtol
        pos = val > scale
        neg = val < -scale
        haspos = np.zeros(P, dtype=bool)
        haspos[gp[pos]] = True
        hasneg = np.zeros(P, dtype=bool)
        hasneg[gp[neg]] = True
        split = haspos & hasneg
        zero_piece = ~(haspos | hasneg)
        # not split: the side of the piece; identically zero: 0 -> +1; split: parent is +
        self.signs[:, k] = np.where(hasneg & ~haspos, -1, 1)
        self.zero[:, k] = zero_piece
        w, m = k >> 6, _ONE << np.uint64(k & 63)
        on = ~(pos | neg)
        # A unit zero on all of a piece carries no information: no bits. Setting bit k in
        # place is safe for the adjacency test below: it only involves generators off the
        # plane, and bit k is in no common set.
        inc[on & ~zero_piece[gp], w] |= m
        if not split.any():
            return

        sp = np.flatnonzero(split)
        gsplit = split[gp]
        pos_i = np.flatnonzero(gsplit & pos)
        neg_i = np.flatnonzero(gsplit & neg)
        neg_i = neg_i[np.argsort(gp[neg_i], kind="stable")]  # grouped by piece
        # all (positive, negative) pairs of generators of each split piece
        nneg = np.bincount(gp[neg_i], minlength=P)
        neg_off = np.cumsum(nneg) - nneg
        rep = nneg[gp[pos_i]]
        I = np.repeat(pos_i, rep)
        J = neg_i[np.repeat(neg_off[gp[pos_i]], rep) + _ragged_arange(rep)]
        common = inc[I] & inc[J]
        adj = self._adjacent(I, J, common, gsplit)
        I, J, common = I[adj], J[adj], common[adj]
        # new generators on the hyperplane: positive combination with a . g = 0
        g = val[I, None] * gen[J] - val[J, None] * gen[I]
        # running error magnitude of the combination (>= |y|_inf, and not reduced by
        # cancellation between the two generators)
        gm = val[I] * gmax[J] - val[J] * gmax[I]
        t = g[:, -1]
        fin = t > 0
        norm = np.where(fin, t, np.abs(g).max(axis=1))
        g /= norm[:, None]
        gm /= norm
        g[fin, -1] = 1.0
        common[:, w] |= m

        child = np.full(P, -1, dtype=np.intp)
        child[sp] = P + np.arange(sp.size)
        zi = np.flatnonzero(gsplit & on)  # on the plane: in both children
        gpI = gp[I]
        gp[neg_i] = child[gp[neg_i]]      # negative side: to the - child, in place
        self._gen.append(np.concatenate([gen[zi], g, g]))
        self._gmag.append(np.concatenate([gmax[zi], gm, gm]))
        self._inc.append(np.concatenate([inc[zi], common, common]))
        self._gp.append(np.concatenate([child[gp[zi]], gpI, child[gpI]]))
        signs = self.signs[sp]
        signs[:, k] = -1
        self._signs.append(signs)
        self._zero.append(self.zero[sp])
        self._cell.append(self.cell[sp])

    def _adjacent(self, I: NDArray[np.intp], J: NDArray[np.intp], common: NDArray[np.uint64],
                  gsplit: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Whether generators I[i], J[i] (same piece) span a 2-face of the piece's cone."""
        r = self.r
        if I.size == 0 or r <= 1:
            # r = 1: a piece is a segment or half-line, its two generators are adjacent
            return np.ones(I.size, dtype=bool)
        cnt = np.bitwise_count(common).sum(axis=1)
        if r == 2:
            # a pointed polygon: two extreme points that share a supporting line are the
            # two ends of one edge (units zero on the whole piece carry no bits)
            return cnt >= 1
        # combinatorial test of the double description method: the common face contains
        # no third generator of the piece
        adj = cnt >= r - 1
        cand = np.flatnonzero(adj)
        if cand.size == 0:
            return adj
        gp, inc = self.gp, self.inc
        members = np.flatnonzero(gsplit)
        members = members[np.argsort(gp[members], kind="stable")]
        counts = np.bincount(gp[members], minlength=self.n_pieces)
        starts = np.cumsum(counts) - counts
        p = gp[I[cand]]
        kp = counts[p]
        row = np.repeat(np.arange(cand.size), kp)
        M = members[np.repeat(starts[p], kp) + _ragged_arange(kp)]
        inside = np.all((common[cand][row] & ~inc[M]) == 0, axis=1)
        inside &= (M != I[cand][row]) & (M != J[cand][row])
        bad = np.zeros(cand.size, dtype=bool)
        bad[row[inside]] = True
        adj[cand[bad]] = False
        return adj

    def finish(self) -> tuple[NDArray[np.float64], NDArray[np.uint64], NDArray[np.intp]]:
        """Generators sorted by piece, and the piece offsets ``start`` (P + 1,)."""
        order = np.argsort(self.gp, kind="stable")
        counts = np.bincount(self.gp, minlength=self.n_pieces)
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.intp)
        return self.gen[order], self.inc[order], start


def subdivide(net: DGN, *, max_regions: int, progress: bool = False,
              rtol: float = RTOL) -> Arrangement:
    """Subdivide the latent space of ``net`` (which has at least one hidden layer).

    Raises
    ------
    RegionLimitError
        As soon as the number of pieces (a lower bound on the number of regions) would
        exceed ``max_regions``.
    """
    W1, v1 = net.weights[0], net.biases[0]
    r, U, lines = row_space(W1)
    M1 = W1 if U is None else W1 @ U
    n = net.n_hidden_units
    hidden = net.hidden_widths
    offsets = np.concatenate([[0], np.cumsum(hidden)]).astype(int)
    sub = _Subdivision(r, n, rtol)
    seeds = set(sub.seed(M1, v1))
    if sub.n_pieces > max_regions:
        _limit(max_regions, sub.n_pieces, net)
    # HT: pre-activations of the current layer in homogeneous coordinates, transposed:
    # h_k(y, t) = HT[:, k] . (y, t), shared (r + 1, n_1) in layer 1, per cell (P, r + 1, n_l)
    HT: NDArray[np.float64] = np.concatenate([M1, v1[:, None]], axis=1).T
    # magnitudes: the same products with |W|, |slopes|, |v|; they bound the rounding error
    # of HT, also where a row cancels to (nearly) zero
    HA: NDArray[np.float64] = np.abs(HT)
    t0 = last = time.monotonic()
    for l, width in enumerate(hidden):
        if l > 0:
            # pre-activation of layer l + 1 on every piece (= cell of layers <= l)
            sl = slice(offsets[l - 1], offsets[l])
            D = np.where(sub.signs[:, sl] > 0, 1.0, net.slopes[l - 1])
            HT = next_layer_maps(net.weights[l], D, HT if HT.ndim == 2 else HT[sub.cell])
            HT[:, -1, :] += net.biases[l]
            HA = next_layer_maps(np.abs(net.weights[l]), np.abs(D),
                                 HA if HA.ndim == 2 else HA[sub.cell])
            HA[:, -1, :] += np.abs(net.biases[l])
            sub.new_cells()
        for i in range(width):
            k = offsets[l] + i
            if l == 0 and k in seeds:
                continue
            if HT.ndim == 2:
                sub.cut(HT[:, i], HA[:, i], k)
            else:
                sub.cut(HT[:, :, i], HA[:, :, i], k)
            if sub.n_pieces > max_regions:
                _limit(max_regions, sub.n_pieces, net)
            if progress:
                now = time.monotonic()
                if now - last >= 1.0:
                    last = now
                    print(f"fastpath.partition: layer {l + 1}/{len(hidden)}, unit {i + 1}/"
                          f"{width}: {sub.n_pieces} regions so far, {now - t0:.1f} s",
                          file=sys.stderr, flush=True)
    gen, inc, start = sub.finish()
    if progress:
        print(f"fastpath.partition: {sub.n_pieces} regions, {time.monotonic() - t0:.2f} s",
              file=sys.stderr, flush=True)
    return Arrangement(r=r, U=U, lines=lines, gen=gen, inc=inc, start=start,
                       signs=sub.signs.copy(), zero=sub.zero.copy())


def _limit(max_regions: int, count: int, net: DGN) -> None:
    raise RegionLimitError(
        f"the partition of {net!r} has more than max_regions={max_regions} regions "
        f"(at least {count} found so far); raise max_regions or use a smaller net")
