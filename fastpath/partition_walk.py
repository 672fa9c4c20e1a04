"""The float64 partition of the latent space of a DGN into its linear regions.

(Nets with max-pooling layers are walked region by region instead:
:mod:`fastpath._walk_regions`; identity layers are multiplied into the next layer first:
:mod:`fastpath._identity_fold`; the rest of this docstring is about element-wise nets.)

:func:`partition` is the fast counterpart of :func:`verified_dgn.partition`: the same
regions, sign patterns, facets, vertices, rays and neighbours (cross-validated in
``tests/test_partition_cross.py``), in float64. It does not walk region by region: the
regions come out of a vectorised layer-wise subdivision of the latent space (see
:mod:`fastpath._arrangement`), and this module turns the pieces into :class:`Region`
objects with batched numpy operations. It never imports pycddlib.
"""

from __future__ import annotations

import gc
import warnings
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

from dgn_core.activations import winners_batch
from dgn_core.model import DGN
from dgn_core.regions import Partition, Region
from dgn_core.validation import check_max_regions, check_net

from . import _arrangement
from ._arrangement import _ONE, Arrangement, _ragged_arange, next_layer_maps, subdivide
from ._identity_fold import fold_identity, has_identity_layer, unfold_partition
from ._threads import blas_limit

__all__ = ["partition"]


def partition(net: DGN, *, max_regions: int = 100_000, start: ArrayLike | None = None,
              progress: bool = False) -> Partition:
    """All linear regions of ``net`` in float64.

    Parameters
    ----------
    net : DGN
        Any depth (0 to many hidden layers), latent dimension S >= 1 (S = 1 to 4 are
        tested), activations relu, leaky_relu, abs and max-pooling (``"max"``, per layer).
    max_regions : int, default 100_000
        Stop with :class:`~dgn_core.regions.RegionLimitError` as soon as more regions
        than this are certain to exist (checked after every hidden unit, so memory stays
        bounded by about twice the limit).
    start : array_like, shape (S,), optional
        Region 0 is the region containing ``start`` (default: the origin) and the others
        follow in breadth-first order over facet adjacency, as in a walk started there.
    progress : bool, default False
        Print a progress line to stderr about every second.

    Returns
    -------
    Partition
        ``Partition(net, regions, exact=False)``. Every :class:`Region` has float64
        fields: ``signs`` (tuple of +-1, length ``n_hidden_units``), ``A`` (D, S), ``b``
        (D,), facets ``C`` (m, S), ``d`` (m,) normalised to ``max_i |C_ji| = 1``,
        ``vertices`` (k, S), ``rays`` (q, S) normalised to ``max_i |r_i| = 1``, ``lines``
        (l, S), ``facet_units`` (m tuples of unit indices, sorted), ``neighbors`` (m,) and
        ``interior_point`` (S,).

    Raises
    ------
    TypeError
        ``net`` is not a DGN, ``max_regions`` not an integer (booleans and floats such as
        2.5 included), ``start`` not a real array, ``progress`` not a bool.
    ValueError
        ``max_regions`` below 1; ``start`` of the wrong shape or not finite.
    RegionLimitError
        More than ``max_regions`` regions.

    Notes
    -----
    Conventions (shared with :func:`verified_dgn.partition`): a sign is +1 where the unit's
    pre-activation is ``>= 0`` at an interior point; a unit whose pre-activation is
    constant on the region gets the sign of the constant, 0 -> +1. Only full-dimensional
    regions are kept. ``facet_units[j]`` lists every unit whose constraint row is a positive
    multiple of facet ``j``; ``neighbors[j]`` is the region across facet ``j``.

    Nets with a max-pooling layer are partitioned by a breadth-first walk over facets in
    float64 (:mod:`fastpath._walk_regions`; S <= 4): in a max layer the pattern has +1 at
    the first maximum of every group, a region's facets are rows ``h_j - h_i >= 0``, and
    value ties are broken as in :mod:`dgn_core.activations`. Their regions' lineality
    spaces can differ from region to region (an argmax cell can contain lines that ``ker W1``
    does not); ``lines`` is each region's own.

    Every region of an element-wise net contains the lineality space ``ker W1`` (the same
    for all regions). When it is not ``{0}``, ``lines`` is a basis of it, and ``vertices``
    and ``rays`` are taken in the orthogonal complement (the row space of ``W1``):
    ``vertices`` are then points of the minimal faces. A net without hidden layers has one
    region, R^S, with ``lines`` the identity and the origin as its one vertex.

    Floating-point tolerance: a vertex ``v`` (a ray ``r``) is taken to lie on the
    hyperplane ``a . z + c = 0`` of a unit when ``|a . v + c| <= 1e-10 (|a|_1 m_v + |c|)``
    (``|a . r| <= 1e-10 |a|_1 m_r``), where ``|a|`` and ``|c|`` are the row's magnitudes
    (the layer products that form it, taken with absolute values) and ``m_v >= |v|_inf`` the
    magnitude of the points the vertex was computed from (coordinates in the row space of
    ``W1``; see :mod:`fastpath._arrangement`). So duplicate or proportional hyperplanes, and
    hyperplanes through a vertex, give no sliver regions; a genuine region thinner than
    about 1e-10 relative to the size of its vertex coordinates is merged into a neighbour
    (the exact path keeps it; hyperplanes that coincide only up to float rounding, e.g.
    ``2.5 * w`` rounded, are such a case). ``W1`` counts as rank deficient when a singular value is below
    ``1e-13 * max(W1.shape) * sigma_max``. While it runs, BLAS is limited to one thread
    (threadpoolctl): its matrix products are small.
    """
    net = check_net(net)
    max_regions = check_max_regions(max_regions)
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    S = net.latent_dim
    if start is None:
        z0 = np.zeros(S)
    else:
        try:
            z0 = np.asarray(start, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"start must be a real array of shape ({S},)") from None
        if z0.shape != (S,):
            raise ValueError(f"start must have shape ({S},), got {z0.shape}")
        if not np.all(np.isfinite(z0)):
            raise ValueError("start contains NaN or infinite values")
    return _partition(net, max_regions, z0, bool(progress))


# --------------------------------------------------------------------------- kernel
def _partition(net: DGN, max_regions: int, z0: NDArray[np.float64], progress: bool,
               rtol: float = _arrangement.RTOL) -> Partition:
    if net.n_hidden_units == 0:
        return Partition(net, [_whole_space(net)], exact=False)
    if has_identity_layer(net):
        # identity layers have no kink: partition the net with them multiplied out
        folded = fold_identity(net)
        return unfold_partition(net, _partition(folded, max_regions, z0, progress, rtol),
                                layer_maps_batch)
    if net.has_max_pooling:
        # argmax cells are not a hyperplane arrangement: walk region by region
        from ._walk_regions import walk_partition
        with blas_limit(1):
            return walk_partition(net, max_regions, z0, progress)
    with blas_limit(1):  # small products: more BLAS threads only add hand-over cost
        arr = subdivide(net, max_regions=max_regions, progress=progress, rtol=rtol)
        return _assemble(net, arr, z0, rtol)


def _ro(a: NDArray[Any]) -> NDArray[Any]:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _whole_space(net: DGN) -> Region:
    S = net.latent_dim
    return Region(
        signs=(), A=_ro(net.weights[0].copy()), b=_ro(net.biases[0].copy()),
        C=_ro(np.zeros((0, S))), d=_ro(np.zeros(0)), vertices=_ro(np.zeros((1, S))),
        rays=_ro(np.zeros((0, S))), lines=_ro(np.eye(S)), facet_units=(), neighbors=(),
        interior_point=_ro(np.zeros(S)))


def layer_maps_batch(net: DGN, signs: NDArray[np.int8]
                     ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                NDArray[np.float64], NDArray[np.float64]]:
    """Batched :func:`dgn_core.regions.layer_maps` over the rows of ``signs``.

    Returns
    -------
    M : ndarray, shape (P, n_units, S)
    c : ndarray, shape (P, n_units)
        Pre-activation of every hidden unit, ``h = M z + c``, on every region.
    A : ndarray, shape (P, D, S)
    b : ndarray, shape (P, D)
    """
    P, S = signs.shape[0], net.latent_dim
    Ms, cs = [], []

    def visit(l: int, MT: NDArray[np.float64], c: NDArray[np.float64]) -> None:
        Ms.append(np.broadcast_to(MT.T, (P,) + MT.T.shape) if MT.ndim == 2
                  else MT.transpose(0, 2, 1))
        cs.append(np.broadcast_to(c, (P, c.size)) if c.ndim == 1 else c)

    A, b = _layer_maps(net, signs, visit)
    if not Ms:
        return np.zeros((P, 0, S)), np.zeros((P, 0)), A, b
    return np.concatenate(Ms, axis=1), np.concatenate(cs, axis=1), A, b


def _layer_maps(net: DGN, signs: NDArray[np.int8], visit: Any
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Call ``visit(l, MT_l, c_l)`` for every hidden layer l (from 0) and return ``(A (P, D, S),
    b (P, D))``, one layer's maps in memory at a time.

    ``MT_l`` is the transposed map of the pre-activation ``h^l = M_l z + c_l``: shape
    (S, D_l) for the first layer (shared by all regions), (P, S, D_l) after; ``c_l`` is (D_l,)
    or (P, D_l).
    """
    P = signs.shape[0]
    MT: NDArray[np.float64] = net.weights[0].T
    c: NDArray[np.float64] = net.biases[0]
    off = 0
    for l in range(1, net.n_layers):
        visit(l - 1, MT, c)
        w = net.hidden_widths[l - 1]
        W, v = net.weights[l], net.biases[l]
        if net.pool_sizes[l - 1]:
            # max-pooling passes on the winner (the +1 unit) of every group
            win = winners_batch(signs[:, off:off + w], net.pool_sizes[l - 1])
            off += w
            MT = MT[:, win].transpose(1, 0, 2) if MT.ndim == 2 \
                else np.take_along_axis(MT, win[:, None, :], axis=2)
            c = c[win] if c.ndim == 1 else np.take_along_axis(c, win, axis=1)
            MT = np.matmul(MT, W.T)
            c = c @ W.T + v
            continue
        dl = np.where(signs[:, off:off + w] > 0, 1.0, net.slopes[l - 1])
        off += w
        MT = next_layer_maps(W, dl, MT)
        c = (dl * c) @ W.T + v
    if MT.ndim == 2:  # no hidden layer
        return np.broadcast_to(MT.T, (P,) + MT.T.shape).copy(), np.broadcast_to(c, (P, c.size)).copy()
    return np.ascontiguousarray(MT.transpose(0, 2, 1)), c


def _set_bits(inc: NDArray[np.uint64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``(rows, cols)`` of every set bit of the bitsets ``inc`` (G, n_words), in time
    proportional to the number of set bits (no dense (G, n) matrix)."""
    rows, cols = [], []
    for w in range(inc.shape[1]):
        idx = np.flatnonzero(inc[:, w])
        x = inc[idx, w]
        while idx.size:
            low = x & (~x + _ONE)                       # lowest set bit
            rows.append(idx)
            cols.append(64 * w + np.bitwise_count(low - _ONE).astype(np.intp))
            x = x ^ low
            keep = x != 0
            idx, x = idx[keep], x[keep]
    if not rows:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    return np.concatenate(rows), np.concatenate(cols)


def _facets(arr: Arrangement, n: int
            ) -> tuple[NDArray[np.intp], NDArray[np.intp], list[tuple[int, ...]],
                       NDArray[np.intp], NDArray[np.intp]]:
    """Facets of every piece, from the incidence bits alone.

    A unit's constraint is a facet when its tight generators span a facet of the piece's
    homogenised cone; units with the same tight set define the same facet (their rows are
    positive multiples of each other).

    Returns
    -------
    fpiece, frep : ndarray, shape (F,)
        Piece and representative (smallest) unit of every facet, sorted by (piece, frep).
    units : list of F tuples
        The units of every facet (sorted).
    fid, funit : ndarray
        Pairs (facet index, unit) of every unit on every facet.
    """
    r = arr.r
    nc = n + 1
    rows, cols = _set_bits(arr.inc)
    gp = arr.piece_of
    key = gp[rows] * nc + cols
    order = np.argsort(key, kind="stable")
    rows, key = rows[order], key[order]
    new = np.ones(key.size, dtype=bool)
    new[1:] = key[1:] != key[:-1]
    gs = np.flatnonzero(new)                            # groups: (piece, constraint)
    gkey = key[gs]
    gpc, gcon = gkey // nc, gkey % nc
    cnt = np.diff(np.append(gs, key.size))
    isv = arr.gen[:, -1] > 0
    vcnt = np.add.reduceat(isv[rows].astype(np.intp), gs) if gs.size else cnt
    # a facet of the cone touches a vertex (else it is, or lies in, the face at infinity
    # t = 0) and has at least r generators
    cand = (cnt >= max(r, 1)) & (gcon < n)
    fsel = cand & (vcnt >= 1)
    # tight sets as bitmasks over the generators of the piece (exact set comparisons)
    loc = rows - arr.start[gp[rows]]
    nwords = (int(np.diff(arr.start).max()) + 63) // 64
    bit = np.left_shift(_ONE, (loc & 63).astype(np.uint64))
    K = np.empty((gs.size, nwords), dtype=np.uint64)
    for w in range(nwords):
        K[:, w] = np.bitwise_or.reduceat(np.where((loc >> 6) == w, bit, np.uint64(0)), gs) \
            if gs.size else 0
    if r >= 4:
        # faces of dimension < r can have >= r generators: a facet is a constraint whose
        # tight set is maximal among all constraints (face at infinity included)
        fsel &= ~_strictly_contained(np.flatnonzero(fsel), np.flatnonzero(cnt >= r), gpc, cnt, K)
    # group facet constraints of a piece by tight set
    pe, ce, ke = gpc[fsel], gcon[fsel], K[fsel]
    order = np.lexsort((ce,) + tuple(ke[:, j] for j in range(nwords - 1, -1, -1)) + (pe,))
    pe, ce, ke = pe[order], ce[order], ke[order]
    new = np.ones(pe.size, dtype=bool)
    new[1:] = (pe[1:] != pe[:-1]) | np.any(ke[1:] != ke[:-1], axis=1)
    fstart = np.flatnonzero(new)
    fpiece, frep = pe[fstart], ce[fstart]               # representative = smallest unit
    forder = np.lexsort((frep, fpiece))                 # facets of a piece by smallest unit
    rank = np.empty_like(forder)
    rank[forder] = np.arange(forder.size)
    bounds = np.append(fstart, pe.size)
    ce_l = ce.tolist()
    units = [(ce_l[i],) if j - i == 1 else tuple(ce_l[i:j])
             for i, j in zip(bounds[forder].tolist(), bounds[forder + 1].tolist())]
    return fpiece[forder], frep[forder], units, rank[np.cumsum(new) - 1], ce


def _strictly_contained(cand: NDArray[np.intp], big: NDArray[np.intp], gpc: NDArray[np.intp],
                        cnt: NDArray[np.intp], K: NDArray[np.uint64],
                        max_pairs: int = 1 << 22) -> NDArray[np.bool_]:
    """Mask over all groups: True for the groups in ``cand`` whose tight set ``K`` is a strict
    subset of the tight set of some group in ``big`` of the same piece (``big``, ``cand``
    sorted by piece). Vectorised over ragged (candidate, big) pairs, in chunks."""
    out = np.zeros(gpc.size, dtype=bool)
    P = int(gpc.max()) + 1 if gpc.size else 0
    nb = np.bincount(gpc[big], minlength=P)
    bstart = np.cumsum(nb) - nb
    rep = nb[gpc[cand]]
    ends = np.cumsum(rep)
    a = 0
    while a < cand.size:
        b = max(a + 1, int(np.searchsorted(ends, ends[a] - rep[a] + max_pairs)))
        c, rc = cand[a:b], rep[a:b]
        row = np.repeat(np.arange(c.size), rc)
        other = big[np.repeat(bstart[gpc[c]], rc) + _ragged_arange(rc)]
        ca = c[row]
        # subset with more generators = strict subset
        sub = np.all((K[ca] & ~K[other]) == 0, axis=1) & (cnt[other] > cnt[ca])
        out[c[np.unique(row[sub])]] = True
        a = b
    return out


def _facet_rows(net: DGN, signs: NDArray[np.int8], fpiece: NDArray[np.intp],
                frep: NDArray[np.intp]) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                                 NDArray[np.float64], NDArray[np.float64]]:
    """Normalised facet rows ``C (F, S)``, ``d (F,)`` from the representative units, and the
    maps ``A (P, D, S)``, ``b (P, D)``; one layer's maps in memory at a time."""
    C = np.empty((fpiece.size, net.latent_dim))
    d = np.empty(fpiece.size)
    offsets = np.concatenate([[0], np.cumsum(net.hidden_widths)])

    def visit(l: int, MT: NDArray[np.float64], c: NDArray[np.float64]) -> None:
        sel = np.flatnonzero((frep >= offsets[l]) & (frep < offsets[l + 1]))
        p, u = fpiece[sel], frep[sel]
        q = signs[p, u].astype(np.float64)
        j = u - offsets[l]
        C[sel] = -q[:, None] * (MT[:, j].T if MT.ndim == 2 else MT[p, :, j])
        d[sel] = q * (c[j] if c.ndim == 1 else c[p, j])

    A, b = _layer_maps(net, signs, visit)
    s = np.abs(C).max(axis=1)
    return C / s[:, None], d / s, A, b


def _interior_points(arr: Arrangement) -> NDArray[np.float64]:
    """A point inside every piece, (P, r): the centroid of its vertices plus a positive
    combination of its rays, scaled by the spread of the vertices (relint of conv(V) plus
    relint of cone(R) is the relative interior of the piece)."""
    P, r = arr.n_pieces, arr.r
    gp = arr.piece_of
    isv = arr.gen[:, -1] > 0
    Y = arr.gen[:, :r]
    nv = np.bincount(gp[isv], minlength=P)
    vbar = np.zeros((P, r))
    np.add.at(vbar, gp[isv], Y[isv])
    vbar /= np.maximum(nv, 1)[:, None]
    spread = np.zeros(P)
    if r:
        np.maximum.at(spread, gp[isv], np.abs(Y[isv] - vbar[gp[isv]]).max(axis=1))
    nr = np.bincount(gp[~isv], minlength=P)
    if not nr.any():
        return vbar
    rs = np.zeros((P, r))
    np.add.at(rs, gp[~isv], Y[~isv])  # rays have max |y_i| = 1
    return vbar + ((1.0 + spread) / np.maximum(nr, 1))[:, None] * rs


def _assemble(net: DGN, arr: Arrangement, z0: NDArray[np.float64], rtol: float) -> Partition:
    n = net.n_hidden_units
    P = arr.n_pieces
    signs = arr.signs
    gp = arr.piece_of

    # ---- vertices and rays, in z coordinates
    isv = arr.gen[:, -1] > 0
    Z = arr.gen[:, :arr.r] if arr.U is None else arr.gen[:, :arr.r] @ arr.U.T
    V, R = Z[isv], Z[~isv]
    if R.size:
        R = R / np.abs(R).max(axis=1, keepdims=True)
    voff = np.concatenate([[0], np.cumsum(np.bincount(gp[isv], minlength=P))])
    roff = np.concatenate([[0], np.cumsum(np.bincount(gp[~isv], minlength=P))])

    # ---- facets (units with identical tight sets share one) and their rows
    fpiece, frep, units, fid, funit = _facets(arr, n)
    foff = np.concatenate([[0], np.cumsum(np.bincount(fpiece, minlength=P))])
    Cf, df, A, b = _facet_rows(net, signs, fpiece, frep)

    # ---- neighbours: the pattern across each facet, from directional derivatives
    nbr = _neighbours(net, arr, fpiece, fid, funit, Cf, rtol)
    missing = np.flatnonzero(nbr < 0)
    if missing.size:
        nbr[missing] = _neighbours_by_points(net, signs, V, R, voff, roff, fpiece[missing],
                                             Cf[missing], df[missing])
    bad = np.flatnonzero(nbr < 0)
    if bad.size:
        warnings.warn(
            f"fastpath.partition: no neighbour found across {bad.size} facet(s) (float "
            f"degeneracy); their neighbors entry is -1. verified_dgn.partition is exact.",
            RuntimeWarning, stacklevel=3)

    ip = _interior_points(arr)
    ipz = ip if arr.U is None else ip @ arr.U.T

    # ---- order: breadth first from the region of z0
    first = _region_of_point(net, signs, z0, Cf, df, foff)
    src, dst = fpiece[nbr >= 0], nbr[nbr >= 0]
    adj = csr_matrix((np.ones(src.size), (src, dst)), shape=(P, P))
    bfs = breadth_first_order(adj, first, directed=False, return_predecessors=False)
    if bfs.size < P:  # cannot happen for a consistent partition; keep every region anyway
        bfs = np.concatenate([bfs, np.setdiff1d(np.arange(P), bfs)])
    inv = np.empty(P, dtype=np.intp)
    inv[bfs] = np.arange(P)
    nbr_new = np.where(nbr >= 0, inv[np.maximum(nbr, 0)], -1).tolist()

    lines = _ro(arr.lines)
    A, b, Cf, df, V, R, ipz = (_ro(x) for x in (A, b, Cf, df, V, R, ipz))
    sign_rows = signs.tolist()
    foff_l, voff_l, roff_l = foff.tolist(), voff.tolist(), roff.tolist()
    regions = []
    # Bulk creation of small objects: the cyclic garbage collector would rescan them all
    # repeatedly, at a cost that grows with the number of regions.
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        for p in bfs.tolist():
            f0, f1 = foff_l[p], foff_l[p + 1]
            regions.append(Region(
                signs=tuple(sign_rows[p]), A=A[p], b=b[p], C=Cf[f0:f1], d=df[f0:f1],
                vertices=V[voff_l[p]:voff_l[p + 1]], rays=R[roff_l[p]:roff_l[p + 1]],
                lines=lines, facet_units=tuple(units[f0:f1]),
                neighbors=tuple(nbr_new[f0:f1]), interior_point=ipz[p]))
        return Partition(net, regions, exact=False)
    finally:
        if gc_enabled:
            gc.enable()


#: facets per chunk in _neighbours times n_units: bounds its (facets, n_units) work arrays
NEIGHBOUR_CHUNK_CELLS = 1 << 22


def _neighbours(net: DGN, arr: Arrangement, fpiece: NDArray[np.intp], fid: NDArray[np.intp],
                funit: NDArray[np.intp], normal: NDArray[np.float64], rtol: float
                ) -> NDArray[np.intp]:
    """Index of the piece across every facet (-1 where the pattern is not a piece), in
    chunks of facets so that the (facets, n_units) work arrays stay small."""
    n = net.n_hidden_units
    index = {k: i for i, k in enumerate(_keys(arr.signs))}
    F = fpiece.size
    out = np.empty(F, dtype=np.intp)
    step = max(1, NEIGHBOUR_CHUNK_CELLS // max(n, 1))
    order = np.argsort(fid, kind="stable")
    fid, funit = fid[order], funit[order]
    for a in range(0, F, step):
        b = min(F, a + step)
        lo, hi = np.searchsorted(fid, [a, b])
        tight = np.zeros((b - a, n), dtype=bool)
        tight[fid[lo:hi] - a, funit[lo:hi]] = True
        p = fpiece[a:b]
        across = _across(net, arr.signs[p], tight, arr.zero[p], normal[a:b], rtol)
        out[a:b] = [index.get(k, -1) for k in _keys(across)]
    return out


def _across(net: DGN, signs: NDArray[np.int8], tight: NDArray[np.bool_],
            zero: NDArray[np.bool_], normal: NDArray[np.float64], rtol: float
            ) -> NDArray[np.int8]:
    """Sign patterns just across facets, shape ``(F, n_units)``.

    ``tight[f]``: units whose hyperplane is facet f; ``zero[f]``: units identically zero
    on the region; ``normal[f]``: outward normal. A unit not zero on the facet keeps its
    sign (continuity). A unit zero on the facet takes, on the far side, the sign of its
    directional derivative along the normal there; while no lower layer has changed, that
    derivative is the near side's, so tight units flip and zero units stay +1. Below a
    changed layer the derivative is recomputed with the far side's slopes; a zero
    derivative means the unit is constant 0 there: sign +1.
    """
    out = signs.copy()
    onf = tight | zero
    changed = np.zeros(signs.shape[0], dtype=bool)
    off = 0
    hidden = net.hidden_widths
    for l, w in enumerate(hidden):
        sl = slice(off, off + w)
        flip = tight[:, sl] & ~changed[:, None]
        out[:, sl] = np.where(flip, -out[:, sl], out[:, sl])
        hard = np.flatnonzero(changed & onf[:, sl].any(axis=1))
        if hard.size:
            u = normal[hard] @ net.weights[0].T
            us = np.abs(normal[hard]) @ np.abs(net.weights[0]).T
            o2 = 0
            for l2 in range(l):
                w2 = hidden[l2]
                dl = np.where(out[hard, o2:o2 + w2] > 0, 1.0, net.slopes[l2])
                W = net.weights[l2 + 1]
                u, us = (dl * u) @ W.T, np.abs(dl * u) @ np.abs(W).T
                o2 += w2
            far = np.where(u < -rtol * us, -1, 1).astype(np.int8)
            out[hard, sl] = np.where(onf[hard, sl], far, out[hard, sl])
        changed |= np.any(out[:, sl] != signs[:, sl], axis=1)
        off += w
    return out


def _keys(signs: NDArray[np.int8]) -> list[bytes]:
    """Hashable keys of the rows of a sign matrix (P, n): the packed bits as bytes."""
    packed = np.packbits(signs > 0, axis=1)
    # tolist() of a void array gives bytes (numpy's stubs type it as bytes or tuple)
    return cast(list[bytes], packed.view(np.dtype((np.void, packed.shape[1]))).ravel().tolist())


def _neighbours_by_points(net: DGN, signs: NDArray[np.int8], V: NDArray[np.float64],
                          R: NDArray[np.float64], voff: NDArray[np.intp], roff: NDArray[np.intp],
                          piece: NDArray[np.intp], C: NDArray[np.float64],
                          d: NDArray[np.float64]) -> NDArray[np.intp]:
    """Fallback where the derivative rule found no region (a float degeneracy): step off the
    facet's centre along its normal by increasing distances and take the first region other
    than the piece itself that the forward pass lands in (-1 if none)."""
    index = {k: i for i, k in enumerate(_keys(signs))}
    out = np.full(piece.size, -1, dtype=np.intp)
    steps = 10.0 ** -np.arange(12, 2, -1)
    for i, p in enumerate(piece.tolist()):
        Vp, Rp = V[voff[p]:voff[p + 1]], R[roff[p]:roff[p + 1]]
        scale = 1.0 + np.abs(Vp).max() if Vp.size else 1.0
        on = np.abs(Vp @ C[i] - d[i]) <= 1e-9 * scale
        if not on.any():
            continue
        zf = Vp[on].mean(axis=0)
        ron = np.abs(Rp @ C[i]) <= 1e-9
        if ron.any():
            zf = zf + Rp[ron].mean(axis=0)
        Q = net.sign_patterns(zf + (steps * scale)[:, None] * C[i])
        for k in _keys(Q):
            j = index.get(k, -1)
            if j >= 0 and j != p:
                out[i] = j
                break
    return out


def _region_of_point(net: DGN, signs: NDArray[np.int8], z: NDArray[np.float64],
                     C: NDArray[np.float64], d: NDArray[np.float64],
                     foff: NDArray[np.intp]) -> int:
    """Index of the piece containing z (the least violated one if z is on a boundary)."""
    q = _keys(net.sign_patterns(z))[0]
    for j, k in enumerate(_keys(signs)):
        if k == q:
            return j
    viol = (C @ z - d) / (1.0 + np.abs(d))
    worst = np.full(signs.shape[0], -np.inf)
    np.maximum.at(worst, np.repeat(np.arange(signs.shape[0]), np.diff(foff)), viol)
    return int(np.argmin(worst))
