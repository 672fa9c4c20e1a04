"""The fast max-pooling walk on WIDE nets (hundreds of hidden units) at S = 2: the clipped
polygons of :mod:`fastpath._jit_walk` that make a region's cost linear in its rows.

Oracles: the exact walk (:func:`verified_dgn.partition`, rationals) for the region sets and
neighbour graphs; the pairwise construction the kernel replaces (all rows,
``fastpath._walk_batch._chunks_all_rows``) for every region's geometry; hand-made polygons
for the kernel's verdicts.

Tolerances: geometry of the two fast constructions 1e-12 relative to max(1, |value|) (they
solve the same 2x2 systems; only the rows' rounding, which depends on the batch shape,
differs: measured <= 3e-14); the kernel's candidate rows are exact sets.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastpath
import verified_dgn
from dgn_core.model import DGN
from fastpath import _walk_batch, _walk_regions
from fastpath._jit_walk import DOUBT, OK, UNBOUNDED, clip_polygons

#: wide max nets at S = 2 with 80-230 regions (the exact walk takes ~0.5-2 s on each)
WIDE = {
    "relu4-max300": lambda: DGN.random((2, 4, 300, 2), activation=["relu", "max"],
                                       pool_sizes=[None, [100] * 3], seed=2),
    "relu3-max240": lambda: DGN.random((2, 3, 240, 2), activation=["relu", "max"],
                                       pool_sizes=[None, [80] * 3], seed=1),
    "max200": lambda: DGN.random((2, 200, 2), activation="max", pool_sizes=[[100, 100]],
                                 seed=1),
}


def _graph(P) -> dict[tuple[int, ...], set[tuple[int, ...]]]:
    return {r.signs: {P[j].signs for j in r.neighbors} for r in P}


@pytest.mark.parametrize("name", list(WIDE))
def test_wide_max_net_regions_and_neighbours_equal_the_exact_walk(name):
    net = WIDE[name]()
    assert sum(w.shape[0] for w in net.weights[:-1]) >= 200
    fast = fastpath.partition(net)
    exact = verified_dgn.partition(net)
    assert len(fast) == len(exact) >= 80
    assert _graph(fast) == _graph(exact)
    assert {(r.signs, r.facet_units) for r in fast} == {(r.signs, r.facet_units) for r in exact}
    # unbounded regions are among them (the kernel's second case)
    assert sum(len(r.rays) > 0 for r in fast) >= 10


def _wide_decoder() -> DGN:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    dec = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Unflatten(1, (2, 2, 2)),
                        nn.ConvTranspose2d(2, 6, 3, stride=2, padding=1, output_padding=1),
                        nn.ReLU(), nn.MaxPool2d(2, stride=1), nn.Conv2d(6, 1, 3, padding=1),
                        nn.Flatten()).double()
    return fastpath.from_torch(dec, noise_var=0.1)


def test_clipped_geometry_equals_the_pairwise_construction():
    """A conv + MaxPool2d(2, stride=1) decoder (320 hidden units; overlapping windows repeat
    rows): the geometry of 180 regions (the walk's proposals, bounded and unbounded) by
    the clipped polygons equals that of the pairwise test over all rows."""
    net = _wide_decoder()
    Q = np.array(_walk_regions._proposals(net, np.zeros(2)))
    Q = np.concatenate([Q[:120], Q[-60:]])      # the last proposals: far points, rays
    args = (_walk_regions.RTOL, _walk_regions._TIGHT, _walk_regions.FACET_TOL)
    new = _walk_batch.batch_cells(net, Q, *args)
    old = _walk_batch._chunks_all_rows(net, Q, *args)
    n_rays = 0
    for a, b in zip(new, old):
        assert isinstance(a, tuple) and isinstance(b, tuple)
        assert a[4] == b[4]                                      # facet units
        for x, y in zip(a[:4] + a[5:], b[:4] + b[5:]):
            assert x.shape == y.shape
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12)
        n_rays += len(a[6]) > 0
    assert n_rays >= 15
    # the kernel certified (almost) all of them: the pairwise test ran for few
    C, d, mag = _walk_batch.batch_rows(net, Q)[:3]
    live, Cu, du = _walk_batch._unit_rows(C, d, mag, _walk_regions.RTOL)
    box = _walk_batch._BOX * (1.0 + np.where(live, np.abs(du), 0.0).max(axis=1))
    status = clip_polygons(Cu, du, live, box, _walk_regions._TIGHT, _walk_batch._MISS,
                           _walk_batch._CLIP_DET, 1e-13)[0]
    assert np.mean(status == OK) >= 0.95


def _clip(rows: list[tuple[float, float, float]]):
    C = np.array([[a, b] for a, b, _ in rows], dtype=np.float64)
    d = np.array([c for _, _, c in rows], dtype=np.float64)
    n = np.linalg.norm(C, axis=1)
    Cu, du = (C / n[:, None])[None], (d / n)[None]
    st, cand, edge = clip_polygons(Cu, du, np.ones(du.shape, dtype=np.bool_),
                                   np.array([1e8 * (1 + np.abs(du).max())]), 1e-9, 1e-7, 1e-6,
                                   1e-13)
    return int(st[0]), set(np.flatnonzero(cand[0]).tolist()), set(np.flatnonzero(edge[0]).tolist())


def test_kernel_verdicts_on_hand_made_polygons():
    # the unit square, a redundant row, a row through a corner, a duplicate of an edge
    st, cand, edge = _clip([(1, 0, 1), (0, 1, 1), (-1, 0, 1), (0, -1, 1), (1, 1, 5),
                            (1, 1, 2), (1, 0, 1)])
    assert st == OK and edge <= {0, 1, 2, 3, 6} and {1, 2, 3} <= edge
    assert cand == {0, 1, 2, 3, 5, 6}
    # a wedge (x >= 0, y >= 0) cut at the apex: unbounded, certified
    st, cand, edge = _clip([(-1, 0, 0), (0, -1, 0), (-1, -1, -1), (-1, -2, 3)])
    assert st == OK and cand == edge == {0, 1, 2}
    # the same wedge cut far out (a vertex beyond the box): declined
    st, cand, _ = _clip([(-1, 0, 0), (0, -1, 0), (-1, -1, -1), (1e-10, -1, 1)])
    assert st == UNBOUNDED and not cand
    # a half-plane, a strip (lines), an empty set: declined
    assert _clip([(1, 1, 1)])[0] == DOUBT
    assert _clip([(1, 0, 1), (-1, 0, 1)])[0] == DOUBT
    assert _clip([(1, 0, -1), (-1, 0, -1), (0, 1, 1), (0, -1, 1)])[0] == DOUBT


def test_s3_regions_too_large_for_the_enumeration_go_to_the_general_tools(monkeypatch):
    """S = 3 has no clipping kernel: a region whose enumeration would not fit in memory
    (here: every region, by a zero limit) takes the general polyhedron tools, with the
    same regions and neighbours."""
    net = DGN.random((3, 8, 2), activation="max", pool_sizes=[4], seed=6)
    ref = fastpath.partition(net)
    monkeypatch.setattr(_walk_batch, "_MAX_S3_FLOATS", 0)
    assert _walk_batch.batch_cells(net, np.array([r.signs for r in ref[:3]], dtype=np.int8),
                                   _walk_regions.RTOL, _walk_regions._TIGHT,
                                   _walk_regions.FACET_TOL) == [_walk_batch.FALLBACK] * 3
    assert _graph(fastpath.partition(net)) == _graph(ref)
