"""The float64 partition of the latent space of a DGN into its linear regions.

:func:`partition` is the fast counterpart of :func:`verified_dgn.partition`: the same
regions, sign patterns, facets, vertices, rays and neighbours (cross-validated in
``tests/test_partition_cross.py``), in float64. It does not walk region by region: the
regions come out of a vectorised layer-wise subdivision of the latent space (see
:mod:`fastpath._arrangement`), and this module turns the pieces into :class:`Region`
objects with batched numpy operations. It never imports pycddlib.
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import breadth_first_order

from verified_dgn.model import DGN
from verified_dgn.regions import Partition, Region

from . import _arrangement
from ._arrangement import Arrangement, apply_layer, subdivide

__all__ = ["partition"]


def partition(net: DGN, *, max_regions: int = 100_000, start: ArrayLike | None = None,
              progress: bool = False) -> Partition:
    """All linear regions of ``net`` in float64.

    Parameters
    ----------
    net : DGN
        Any depth (0 to many hidden layers), latent dimension S >= 1 (S = 1 to 4 are
        tested), activation relu, leaky_relu or abs.
    max_regions : int, default 100_000
        Stop with :class:`~verified_dgn.regions.RegionLimitError` as soon as more regions
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

    Notes
    -----
    Conventions (shared with :func:`verified_dgn.partition`): a sign is +1 where the unit's
    pre-activation is ``>= 0`` at an interior point; a unit whose pre-activation is
    constant on the region gets the sign of the constant, 0 -> +1. Only full-dimensional
    regions are kept. ``facet_units[j]`` lists every unit whose constraint row is a positive
    multiple of facet ``j``; ``neighbors[j]`` is the region across facet ``j``.

    Every region contains the lineality space ``ker W1`` (the same for all regions). When
    it is not ``{0}``, ``lines`` is a basis of it, and ``vertices`` and ``rays`` are taken
    in the orthogonal complement (the row space of ``W1``): ``vertices`` are then points of
    the minimal faces. A net without hidden layers has one region, R^S, with ``lines`` the
    identity and the origin as its one vertex.

    Floating-point tolerance: a vertex (ray) whose side of a hyperplane ``a . z + c`` is
    ``|a . v + c| <= 1e-10 (|a| . |v| + |c|)`` (``|a . r| <= 1e-10 |a| . |r|``) is taken to
    lie on it. So duplicate or proportional hyperplanes, and hyperplanes through a vertex,
    give no sliver regions; a genuine region thinner than about 1e-10 relative to the size
    of its vertex coordinates is merged into a neighbour. ``W1`` counts as rank deficient
    when a singular value is below ``1e-13 * max(W1.shape) * sigma_max``.
    """
    if not isinstance(net, DGN):
        raise TypeError(f"net must be a verified_dgn.DGN, got {type(net).__name__}")
    if (isinstance(max_regions, bool) or not isinstance(max_regions, numbers.Integral)
            or max_regions < 1):
        raise ValueError(f"max_regions must be a positive integer, got {max_regions!r}")
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
    return _partition(net, int(max_regions), z0, bool(progress))


# --------------------------------------------------------------------------- kernel
def _partition(net: DGN, max_regions: int, z0: NDArray[np.float64], progress: bool,
               rtol: float = _arrangement.RTOL) -> Partition:
    if net.n_hidden_units == 0:
        return Partition(net, [_whole_space(net)], exact=False)
    with _single_threaded_blas():
        arr = subdivide(net, max_regions=max_regions, progress=progress, rtol=rtol)
        return _assemble(net, arr, z0, rtol)


_BLAS_CONTROLLER: Any = None


def _single_threaded_blas() -> Any:
    """Limit BLAS to one thread while partitioning, when threadpoolctl is installed.

    The matrix products here are small (widths x widths); with a multi-threaded BLAS on a
    busy machine each call can cost 10x more in thread hand-off than in arithmetic
    (measured: 7 ms instead of 0.5 ms for a (7500, 32) x (32, 32) product on 2 cores).
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS_CONTROLLER = False
        else:
            _BLAS_CONTROLLER = ThreadpoolController()
    if _BLAS_CONTROLLER is False:
        return contextlib.nullcontext()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


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
    """Batched :func:`verified_dgn.regions.layer_maps` over the rows of ``signs``.

    Returns
    -------
    M : ndarray, shape (P, n_units, S)
    c : ndarray, shape (P, n_units)
        Pre-activation of every hidden unit, ``h = M z + c``, on every region.
    A : ndarray, shape (P, D, S)
    b : ndarray, shape (P, D)
    """
    P = signs.shape[0]
    W1, v1 = net.weights[0], net.biases[0]
    M = np.broadcast_to(W1, (P,) + W1.shape)
    c = np.broadcast_to(v1, (P, v1.size))
    Ms, cs, off = [], [], 0
    for l in range(1, net.n_layers):
        Ms.append(M)
        cs.append(c)
        w = net.hidden_widths[l - 1]
        dl = np.where(signs[:, off:off + w] > 0, 1.0, net.slope)
        off += w
        W, v = net.weights[l], net.biases[l]
        M = apply_layer(W, dl[:, :, None] * M)
        c = (dl * c) @ W.T + v
    return np.concatenate(Ms, axis=1), np.concatenate(cs, axis=1), M, c


def _unpack_bits(inc: NDArray[np.uint64], n: int) -> NDArray[np.bool_]:
    """Incidence bitsets (G, n_words) -> boolean matrix (G, n)."""
    u8 = np.ascontiguousarray(inc).view(np.uint8)
    return np.unpackbits(u8, axis=1, bitorder="little")[:, :n].view(bool)


def _tight_sets(arr: Arrangement, n: int) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """Tight sets as bitmasks over the generators of each piece.

    Returns
    -------
    keys : ndarray of uint64, shape (P, n + 1, n_gwords)
        Bit ``i`` of ``keys[p, c]`` (word ``i // 64``) is set when the ``i``-th generator of
        piece ``p`` lies on constraint ``c`` (``c = n``: the face at infinity).
    vmask : ndarray of uint64, shape (P, n_gwords)
        The vertices (finite generators) of each piece.
    """
    T = _unpack_bits(arr.inc, n + 1)
    gp = arr.piece_of
    st = arr.start[:-1]
    loc = np.arange(gp.size) - arr.start[gp]
    nwords = (int(np.diff(arr.start).max()) + 63) // 64
    bit = np.left_shift(np.uint64(1), (loc & 63).astype(np.uint64))
    isv = arr.gen[:, -1] > 0
    keys = np.empty((arr.n_pieces, n + 1, nwords), dtype=np.uint64)
    vmask = np.empty((arr.n_pieces, nwords), dtype=np.uint64)
    for w in range(nwords):
        bw = np.where((loc >> 6) == w, bit, np.uint64(0))
        # bits of distinct generators are disjoint, so the sum is the bitwise or
        keys[:, :, w] = np.add.reduceat(T * bw[:, None], st, axis=0)
        vmask[:, w] = np.add.reduceat(np.where(isv, bw, np.uint64(0)), st)
    return keys, vmask


def _facet_mask(r: int, n: int, keys: NDArray[np.uint64], vmask: NDArray[np.uint64]
                ) -> NDArray[np.bool_]:
    """(P, n): whether unit k's constraint defines a facet of piece p."""
    cnt = np.bitwise_count(keys).sum(axis=2, dtype=np.int64)
    vcnt = np.bitwise_count(keys[:, :n] & vmask[:, None, :]).sum(axis=2, dtype=np.int64)
    # A unit must touch a vertex: one tight only at rays defines (a subset of) the face at
    # infinity t = 0, never a facet of the region. Units zero on a whole piece have no bits.
    fmask = (cnt[:, :n] >= max(r, 1)) & (vcnt >= 1)
    if r <= 3:
        # In a pointed cone of dimension r + 1 <= 4, faces of dimension <= 2 have at most
        # two extreme rays, so a constraint tight at >= r generators is a facet.
        return fmask
    # r >= 4: a facet is a constraint whose tight set is maximal among all constraints
    for p in np.flatnonzero(fmask.any(axis=1)):
        ca = np.flatnonzero(fmask[p])
        cb = np.flatnonzero(cnt[p] >= r)
        Ka, Kb = keys[p, ca][:, None, :], keys[p, cb][None, :, :]
        sub = np.all((Ka & ~Kb) == 0, axis=2)
        eq = np.all(Ka == Kb, axis=2)
        fmask[p, ca] = ~np.any(sub & ~eq, axis=1)
    return fmask


def _assemble(net: DGN, arr: Arrangement, z0: NDArray[np.float64], rtol: float) -> Partition:
    S, r, n = net.latent_dim, arr.r, net.n_hidden_units
    P = arr.n_pieces
    signs = arr.signs
    gp = arr.piece_of
    counts = np.diff(arr.start)
    Mall, call, A, b = layer_maps_batch(net, signs)

    # ---- vertices and rays, in z coordinates
    isv = arr.gen[:, -1] > 0
    Y = arr.gen[:, :r]
    Z = Y if arr.U is None else Y @ arr.U.T
    V = Z[isv]
    R = Z[~isv]
    if R.size:
        R = R / np.abs(R).max(axis=1, keepdims=True)
    nv = np.bincount(gp[isv], minlength=P)
    nr = counts - nv
    voff = np.concatenate([[0], np.cumsum(nv)])
    roff = np.concatenate([[0], np.cumsum(nr)])

    # ---- facets: group units with identical tight sets (positive multiples of one row)
    keys, vmask = _tight_sets(arr, n)
    fmask = _facet_mask(r, n, keys, vmask)
    pe, ce = np.nonzero(fmask)                      # facet constraints
    ke = keys[pe, ce]                               # (E, n_gwords)
    order = np.lexsort((ce,) + tuple(ke[:, j] for j in range(ke.shape[1] - 1, -1, -1))
                       + (pe,))
    pe, ce, ke = pe[order], ce[order], ke[order]
    new = np.ones(pe.size, dtype=bool)
    new[1:] = (pe[1:] != pe[:-1]) | np.any(ke[1:] != ke[:-1], axis=1)
    gstart = np.flatnonzero(new)                    # groups: (piece, tight set)
    gid = np.cumsum(new) - 1
    gpiece, grep = pe[gstart], ce[gstart]           # representative = smallest unit
    gorder = np.lexsort((grep, gpiece))             # facets of a region by smallest unit
    rank = np.empty_like(gorder)
    rank[gorder] = np.arange(gorder.size)
    gbounds = np.append(gstart, pe.size)
    ce_l = ce.tolist()
    units_of_group = [(ce_l[i],) if j - i == 1 else tuple(ce_l[i:j])
                      for i, j in zip(gbounds[gorder].tolist(), gbounds[gorder + 1].tolist())]
    gpiece, grep = gpiece[gorder], grep[gorder]
    nf = np.bincount(gpiece, minlength=P)
    foff = np.concatenate([[0], np.cumsum(nf)])
    q = signs[gpiece, grep].astype(np.float64)
    Cf = -q[:, None] * Mall[gpiece, grep]
    df = q * call[gpiece, grep]
    s = np.abs(Cf).max(axis=1)
    Cf, df = Cf / s[:, None], df / s

    # ---- neighbours: the pattern across each facet, from directional derivatives
    tight = np.zeros((gpiece.size, n), dtype=bool)
    tight[rank[gid], ce] = True
    nb_signs = _across(net, signs[gpiece], tight, arr.zero[gpiece], Cf, rtol)
    nbr = _lookup(signs, nb_signs)
    missing = np.flatnonzero(nbr < 0)
    if missing.size:
        nbr[missing] = _neighbours_by_points(net, signs, V, R, voff, roff, gpiece[missing],
                                             Cf[missing], df[missing])
    bad = np.flatnonzero(nbr < 0)
    if bad.size:
        warnings.warn(
            f"fastpath.partition: no neighbour found across {bad.size} facet(s) (float "
            f"degeneracy); their neighbors entry is -1. verified_dgn.partition is exact.",
            RuntimeWarning, stacklevel=3)

    # ---- interior points: vertex centroid plus a positive combination of the rays
    Yv, Yr = Y[isv], Y[~isv]
    vbar = np.add.reduceat(Yv, voff[:-1], axis=0) / nv[:, None] if Yv.size else np.zeros((P, r))
    vbar[nv == 0] = 0.0
    spread = np.zeros(P)
    if Yv.size:
        dev = np.abs(Yv - vbar[gp[isv]]).max(axis=1) if r else np.zeros(len(Yv))
        np.maximum.at(spread, gp[isv], dev)
    ip = vbar
    if Yr.size:
        rs = np.zeros((P, r))
        np.add.at(rs, gp[~isv], Yr / np.abs(Yr).max(axis=1, keepdims=True))
        ip = vbar + ((1.0 + spread) / np.maximum(nr, 1))[:, None] * rs
    ipz = ip if arr.U is None else ip @ arr.U.T

    # ---- order: breadth first from the region of z0
    first = _region_of_point(net, signs, z0, Cf, df, foff)
    src, dst = gpiece[nbr >= 0], nbr[nbr >= 0]
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
    for p in bfs.tolist():
        f0, f1 = foff_l[p], foff_l[p + 1]
        regions.append(Region(
            signs=tuple(sign_rows[p]), A=A[p], b=b[p], C=Cf[f0:f1], d=df[f0:f1],
            vertices=V[voff_l[p]:voff_l[p + 1]], rays=R[roff_l[p]:roff_l[p + 1]],
            lines=lines, facet_units=tuple(units_of_group[f0:f1]),
            neighbors=tuple(nbr_new[f0:f1]), interior_point=ipz[p]))
    return Partition(net, regions, exact=False)


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
                dl = np.where(out[hard, o2:o2 + w2] > 0, 1.0, net.slope)
                W = net.weights[l2 + 1]
                u, us = (dl * u) @ W.T, np.abs(dl * u) @ np.abs(W).T
                o2 += w2
            far = np.where(u < -rtol * us, -1, 1).astype(np.int8)
            out[hard, sl] = np.where(onf[hard, sl], far, out[hard, sl])
        changed |= np.any(out[:, sl] != signs[:, sl], axis=1)
        off += w
    return out


def _keys(signs: NDArray[np.int8]) -> list[bytes]:
    packed = np.packbits(signs > 0, axis=1)
    return packed.view(np.dtype((np.void, packed.shape[1]))).ravel().tolist()


def _lookup(signs: NDArray[np.int8], query: NDArray[np.int8]) -> NDArray[np.intp]:
    """Index of each row of ``query`` among the rows of ``signs`` (-1 if absent)."""
    index = {k: i for i, k in enumerate(_keys(signs))}
    return np.array([index.get(k, -1) for k in _keys(query)], dtype=np.intp)


def _neighbours_by_points(net: DGN, signs: NDArray[np.int8], V: NDArray[np.float64], R: NDArray[np.float64],
                          voff: NDArray[np.intp], roff: NDArray[np.intp],
                          piece: NDArray[np.intp], C: NDArray[np.float64],
                          d: NDArray[np.float64]) -> NDArray[np.intp]:
    """Fallback: step off the facet's vertex centroid by decreasing distances and look
    the sign pattern up (used only where the derivative rule found no region)."""
    out = np.full(piece.size, -1, dtype=np.intp)
    for i, p in enumerate(piece.tolist()):
        Vp, Rp = V[voff[p]:voff[p + 1]], R[roff[p]:roff[p + 1]]
        scale = 1.0 + np.abs(Vp).max() if Vp.size else 1.0
        on = np.abs(Vp @ C[i] - d[i]) <= 1e-9 * scale
        pts = Vp[on]
        if pts.size == 0:
            continue
        zf = pts.mean(axis=0)
        ron = np.abs(Rp @ C[i]) <= 1e-9
        if ron.any():
            zf = zf + Rp[ron].mean(axis=0)
        for step in 10.0 ** -np.arange(3, 12):
            q = net.sign_patterns(zf + step * scale * C[i])
            j = _lookup(signs, q)[0]
            if j >= 0 and j != p:
                out[i] = j
                break
    return out


def _region_of_point(net: DGN, signs: NDArray[np.int8], z: NDArray[np.float64],
                     C: NDArray[np.float64], d: NDArray[np.float64],
                     foff: NDArray[np.intp]) -> int:
    """Index of the piece containing z (the least violated one if z is on a boundary)."""
    j = int(_lookup(signs, net.sign_patterns(z))[0])
    if j >= 0:
        return j
    viol = (C @ z - d) / (1.0 + np.abs(d))
    worst = np.full(signs.shape[0], -np.inf)
    np.maximum.at(worst, np.repeat(np.arange(signs.shape[0]), np.diff(foff)), viol)
    return int(np.argmin(worst))
