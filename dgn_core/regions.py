"""Regions of the latent-space partition and the partition container, shared by both paths.

A region omega is identified by its sign pattern q (Lemma 3): one +-1 per hidden unit,
layer by layer. On omega the generator is affine, g(z) = A_w z + b_w, and omega is the
polyhedron {z : q_k h_k(z) >= 0 for every hidden unit k} (Corollary 1), of which only some
rows are facets. The exact path fills these containers with ``Fraction`` object arrays, the
fast path with float64 arrays.

Part of the shared specification (:mod:`dgn_core`): numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .activations import winners
from .exceptions import RegionLimitError
from .model import DGN

__all__ = [
    "Region",
    "Partition",
    "RegionLimitError",
    "layer_maps",
    "region_inequalities",
    "region_affine_map",
    "normalize_rows",
]


# --------------------------------------------------------------------------- algebra
def _ring(exact: bool) -> tuple[Any, Any]:
    """(converter of a float array, dtype) for the exact (Fraction) or float ring."""
    if exact:
        def conv(a: NDArray[np.float64]) -> NDArray[Any]:
            out = np.empty(a.shape, dtype=object)
            flat_in, flat_out = a.ravel(), out.reshape(-1)
            for i in range(flat_in.size):
                flat_out[i] = Fraction(float(flat_in[i]))
            return out
        return conv, object
    return (lambda a: np.asarray(a, dtype=np.float64)), np.float64


def _split_signs(net: DGN, signs: Sequence[int]) -> list[NDArray[Any]]:
    arr = np.asarray(signs)
    if arr.shape != (net.n_hidden_units,):
        raise ValueError(
            f"a sign pattern of this net has {net.n_hidden_units} entries, got shape {arr.shape}"
        )
    if not np.all(np.isin(arr, (-1, 1))):
        raise ValueError("sign pattern entries must be +1 or -1")
    out, start = [], 0
    for l, w in enumerate(net.hidden_widths):
        out.append(arr[start:start + w])
        if net.pool_sizes[l]:
            try:
                winners(out[-1], net.pool_sizes[l])
            except ValueError as exc:
                raise ValueError(f"hidden layer {l + 1}: {exc}") from None
        if net.activations[l] == "identity" and np.any(out[-1] != 1):
            raise ValueError(f"hidden layer {l + 1} is identity (no kink): its pattern entries "
                             "must all be +1")
        start += w
    return out


def layer_maps(net: DGN, signs: Sequence[int], exact: bool = False
               ) -> tuple[list[tuple[NDArray[Any], NDArray[Any]]], NDArray[Any], NDArray[Any]]:
    """Affine maps of every layer on the region with sign pattern ``signs``.

    Returns
    -------
    pre : list of (M_l, c_l)
        For every hidden layer l, the pre-activation h^l(z) = M_l z + c_l on the region,
        ``M_l`` of shape ``(D_l, S)`` and ``c_l`` of shape ``(D_l,)`` (A^{1->l}, b^{1->l}).
    A : ndarray, shape (D, S)
    b : ndarray, shape (D,)
        The generator on the region, g(z) = A z + b.

    With ``exact=True`` every entry is a ``fractions.Fraction`` (object arrays) and the
    result is exact; otherwise float64.
    """
    conv, _ = _ring(exact)
    q = _split_signs(net, signs)
    slopes = [0 if net.pool_sizes[l] else Fraction(s) if exact else s
              for l, s in enumerate(net.slopes)]
    M = conv(np.eye(net.latent_dim))
    c = conv(np.zeros(net.latent_dim))
    pre = []
    for l, (W, v) in enumerate(zip(net.weights, net.biases)):
        Wc, vc = conv(W), conv(v)
        M, c = Wc @ M, Wc @ c + vc
        if l == net.n_layers - 1:
            break
        pre.append((M, c))
        if net.pool_sizes[l]:  # max-pooling passes on the argmax unit of every group
            win = winners(q[l], net.pool_sizes[l])
            M, c = M[win], c[win]
            continue
        dl = np.array([1 if s > 0 else slopes[l] for s in q[l]],
                      dtype=object if exact else np.float64)
        M, c = dl[:, None] * M, dl * c
    return pre, M, c


def region_affine_map(net: DGN, signs: Sequence[int], exact: bool = False
                      ) -> tuple[NDArray[Any], NDArray[Any]]:
    """``(A_w, b_w)`` with g(z) = A_w z + b_w on the region of ``signs``."""
    _, A, b = layer_maps(net, signs, exact)
    return A, b


def region_inequalities(net: DGN, signs: Sequence[int], exact: bool = False
                        ) -> tuple[NDArray[Any], NDArray[Any]]:
    """All hidden-unit constraints of a region as ``C z <= d`` (eq. 8, Corollary 1).

    Row k is ``-q_k M_k z <= q_k c_k``, i.e. ``q_k h_k(z) >= 0``, in sign-pattern order;
    shape ``(n_hidden_units, S)`` and ``(n_hidden_units,)``. Most rows are redundant. A unit
    whose pre-activation is constant on the region gives a zero row. In a max-pooling layer
    the row of a unit i that is not its group's argmax j is ``h_j(z) - h_i(z) >= 0`` and the
    argmax's own row is zero. The rows of an identity layer's units are zero (no kink, no
    constraint: ``0 <= 0``).
    """
    pre, _, _ = layer_maps(net, signs, exact)
    S = net.latent_dim
    if not pre:
        dt = object if exact else np.float64
        return np.zeros((0, S), dtype=dt), np.zeros(0, dtype=dt)
    qs = _split_signs(net, signs)
    q = np.concatenate(qs).astype(np.int64)
    pre = [_max_rows(m, cc, qs[l], net.pool_sizes[l]) if net.pool_sizes[l] else (m, cc)
           for l, (m, cc) in enumerate(pre)]
    q[np.concatenate([np.full(len(ql), bool(net.pool_sizes[l])) for l, ql in enumerate(qs)])] = 1
    M = np.concatenate([m for m, _ in pre], axis=0)
    c = np.concatenate([cc for _, cc in pre], axis=0)
    kink = net.kink_units
    if not kink.all():
        M, c = M.copy(), c.copy()
        M[~kink] = Fraction(0) if exact else 0.0
        c[~kink] = Fraction(0) if exact else 0.0
    if exact:
        qq = np.array([int(t) for t in q], dtype=object)
        return -qq[:, None] * M, qq * c
    return -q[:, None] * M, q * c


def _max_rows(M: NDArray[Any], c: NDArray[Any], q: NDArray[Any], sizes: Sequence[int]
              ) -> tuple[NDArray[Any], NDArray[Any]]:
    """``h_winner - h_i`` of every unit of a max layer (zero for the winners), as a map."""
    win = np.repeat(np.asarray(winners(q, sizes), dtype=np.intp), np.asarray(sizes))
    return M[win] - M, c[win] - c


def normalize_rows(C: ArrayLike, d: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """Scale every row of ``C z <= d`` so that ``max_i |C_ji| = 1`` (exact for Fractions).

    This is the normalisation both paths use for facets, so that facets of the two paths
    can be compared row by row.
    """
    C = np.asarray(C)
    d = np.asarray(d)
    if C.shape[0] == 0:
        return C.copy(), d.copy()
    if C.dtype == object:
        s = np.array([max(abs(t) for t in row) for row in C], dtype=object)
    else:
        s = np.max(np.abs(C), axis=1)
    if any(t == 0 for t in s):
        raise ValueError("cannot normalise a zero row")
    return C / s[:, None], d / s


# --------------------------------------------------------------------------- containers
def _frozen(a: ArrayLike, dtype: Any, shape_tail: tuple[int, ...]) -> NDArray[Any]:
    arr = np.asarray(a, dtype=dtype)
    if arr.size == 0:
        arr = np.zeros((0,) + shape_tail, dtype=dtype)
    arr = arr.copy()
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Region:
    """One linear region omega of the generator.

    Attributes
    ----------
    signs : tuple of int
        The sign pattern q(omega), +-1 for every hidden unit, layer by layer.
    A : ndarray, shape (D, S)
    b : ndarray, shape (D,)
        g(z) = A z + b on the region.
    C : ndarray, shape (m, S)
    d : ndarray, shape (m,)
        Non-redundant facets: omega = {z : C z <= d}. Rows are normalised so that
        ``max_i |C_ji| = 1``.
    vertices : ndarray, shape (k, S)
    rays : ndarray, shape (r, S)
        Extreme rays of the recession cone (normalised so that ``max_i |r_i| = 1``).
    lines : ndarray, shape (l, S)
        A basis of the lineality space; empty unless the region contains a line
        (then ``vertices`` hold points of a minimal face).
    facet_units : tuple of tuple of int
        For every facet, the hidden units (indices into ``signs``) whose hyperplane is that
        facet; several units can share one hyperplane.
    neighbors : tuple of int
        For every facet, the index of the region across it.
    interior_point : ndarray, shape (S,)
        A point in the interior of the region.
    """

    signs: tuple[int, ...]
    A: NDArray[Any]
    b: NDArray[Any]
    C: NDArray[Any]
    d: NDArray[Any]
    vertices: NDArray[Any]
    rays: NDArray[Any]
    lines: NDArray[Any] = field(default_factory=lambda: np.zeros((0, 0)))
    facet_units: tuple[tuple[int, ...], ...] = ()
    neighbors: tuple[int, ...] = ()
    interior_point: NDArray[Any] | None = None

    @property
    def latent_dim(self) -> int:
        return int(self.A.shape[1])

    @property
    def bounded(self) -> bool:
        return len(self.rays) == 0 and len(self.lines) == 0

    @property
    def n_facets(self) -> int:
        return int(self.C.shape[0])

    @property
    def exact(self) -> bool:
        return self.A.dtype == object

    def contains(self, z: ArrayLike, tol: float = 0.0) -> bool:
        """Whether ``C z <= d + tol * (1 + |d|)``; exact for Fraction regions and ``tol=0``."""
        z = np.asarray(z)
        if z.shape != (self.latent_dim,):
            raise ValueError(f"z must have shape ({self.latent_dim},) (one latent point), "
                             f"got shape {z.shape}")
        if z.dtype.kind not in "iufO":
            raise TypeError(f"z must hold real numbers, got dtype {z.dtype}")
        if self.C.shape[0] == 0:
            return True
        if self.exact and tol == 0:
            zz = np.array([Fraction(t) for t in z.tolist()], dtype=object)  # Python ints, not int64
            return bool(all(r <= s for r, s in zip(self.C @ zz, self.d)))
        C = self.C.astype(np.float64)
        d = self.d.astype(np.float64)
        return bool(np.all(C @ z.astype(np.float64) <= d + tol * (1.0 + np.abs(d))))

    def __repr__(self) -> str:
        kind = "bounded" if self.bounded else "unbounded"
        return (f"Region({kind}, {self.n_facets} facets, {len(self.vertices)} vertices, "
                f"{len(self.rays)} rays, signs={''.join('+' if s > 0 else '-' for s in self.signs)})")


class Partition(Sequence[Region]):
    """The partition of the latent space of a DGN into its linear regions.

    Behaves as a sequence of :class:`Region`. ``P.locate(Z)`` maps latent points to the index
    of their region.
    """

    def __init__(self, net: DGN, regions: Sequence[Region], exact: bool) -> None:
        self.net = net
        self.exact = bool(exact)
        self._regions = list(regions)
        self._index = {r.signs: i for i, r in enumerate(self._regions)}
        if len(self._index) != len(self._regions):
            raise ValueError("two regions share one sign pattern (Lemma 3 violated)")
        self._stacked: dict[str, NDArray[np.float64]] = {}

    # sequence protocol
    def __len__(self) -> int:
        return len(self._regions)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self._regions[i]
        return self._regions[i]

    def __iter__(self) -> Iterator[Region]:
        return iter(self._regions)

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "float64"
        return (f"Partition({len(self)} regions: {self.n_bounded} bounded, "
                f"{self.n_unbounded} unbounded; {kind}; {self.net!r})")

    @property
    def n_bounded(self) -> int:
        return sum(1 for r in self._regions if r.bounded)

    @property
    def n_unbounded(self) -> int:
        return len(self) - self.n_bounded

    def index_of(self, signs: Sequence[int]) -> int:
        """Index of the region with this sign pattern (``KeyError`` if none)."""
        return self._index[tuple(int(s) for s in signs)]

    @property
    def sign_matrix(self) -> NDArray[np.int8]:
        """Sign patterns of all regions, shape ``(R, n_hidden_units)``."""
        return np.array([r.signs for r in self._regions], dtype=np.int8).reshape(
            len(self), self.net.n_hidden_units)

    def _stack(self, name: str) -> NDArray[np.float64]:
        if name not in self._stacked:
            arr = np.array([np.asarray(getattr(r, name), dtype=np.float64)
                            for r in self._regions])
            arr.setflags(write=False)
            self._stacked[name] = arr
        return self._stacked[name]

    @property
    def A_stack(self) -> NDArray[np.float64]:
        """All A_w as float64, shape ``(R, D, S)``."""
        return self._stack("A")

    @property
    def b_stack(self) -> NDArray[np.float64]:
        """All b_w as float64, shape ``(R, D)``."""
        return self._stack("b")

    def adjacency(self) -> list[tuple[int, int]]:
        """Pairs ``(i, j)``, ``i < j``, of regions that share a facet."""
        pairs = set()
        for i, r in enumerate(self._regions):
            for j in r.neighbors:
                if j >= 0:
                    pairs.add((min(i, j), max(i, j)))
        return sorted(pairs)

    def locate(self, Z: ArrayLike) -> NDArray[np.intp]:
        """Index of the region containing each row of Z, shape ``(N,)``.

        Points on a boundary belong to several closed regions; one of them is returned.
        """
        Z = self.net._check_latent(Z)
        if self.net.n_hidden_units == 0:
            return np.zeros(Z.shape[0], dtype=np.intp)
        Q = self.net.sign_patterns(Z)
        out = np.empty(Z.shape[0], dtype=np.intp)
        for n, q in enumerate(map(tuple, Q.tolist())):
            i = self._index.get(q)
            if i is None:
                i = self._locate_slow(Z[n])
            out[n] = i
        return out

    def _locate_slow(self, z: NDArray[np.float64]) -> int:
        # Boundary point whose +1-on-zero pattern is not a full-dimensional region:
        # take the closed region it satisfies best.
        best, best_viol = -1, np.inf
        for i, r in enumerate(self._regions):
            if r.C.shape[0] == 0:
                return i
            C = np.asarray(r.C, dtype=np.float64)
            d = np.asarray(r.d, dtype=np.float64)
            viol = float(np.max((C @ z - d) / (1.0 + np.abs(d))))
            if viol < best_viol:
                best, best_viol = i, viol
        if best_viol > 1e-9:
            raise RuntimeError(f"point {z} lies in no region (violation {best_viol:.3g})")
        return best

    def summary(self) -> str:
        S = self.net.latent_dim
        return (f"{len(self)} regions ({self.n_bounded} bounded, {self.n_unbounded} unbounded) "
                f"of a DGN with widths {self.net.widths}, {self.net.describe_activations()}, "
                f"latent dimension {S}")
