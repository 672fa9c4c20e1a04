"""The compiled S = 2 geometry of a whole partition (fastpath._geometry_batch) against the
Python geometry it replaces (fastpath._polyhedron.polyhedron_geometry with the region's
interior point and prune=False, what PolyhedronCones.from_region computes).

Real partitions of several nets (activations, depths, widths; bounded and unbounded
regions), hand-made regions the kernel must decline (non-simple vertex, lines, a zero row,
an interior point on the boundary) or take (redundant rows, thin polygons), and the E-step
statistics with the batch on and off.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import switched

from dgn_core.model import DGN
from fastpath import _geometry_batch as GB
from fastpath._estep_statistics import estep_statistics
from fastpath._geometry_batch import region_rows as _region_rows
from fastpath._jit_one_shot_base import LINES, NONSIMPLE, OK, THIN
from fastpath.partition_walk import partition

#: both geometries solve the same rows from the same interior point with the same
#: tolerances; only the slacks at that point (numpy's matmul against the kernel's two
#: products) and the generic direction's sums (BLAS against a loop) round differently.
#: A vertex then moves by ~eps times the condition number of its two rows (measured on
#: the nets below: up to 6e-14 of 1 + |v|); 1e-11 leaves room for nearly parallel rows
#: and is far below the geometry's own coincidence tolerance (_TOL = 1e-9)
_TOL = 1e-11
_FIELDS = ("vertices", "edge_start", "edge_dir", "edge_len", "C", "d", "piece_L",
           "piece_orient", "c_generic", "interior_point", "rays")


def _python(rows):
    with switched(GB.ENABLED, False):
        return GB.region_geometries(rows)


def _assert_same(a, b):
    assert a.empty == b.empty and a.dim == b.dim and a.ambient_dim == b.ambient_dim
    if a.empty:
        return
    for f in _FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.shape == y.shape, f
        fin = np.isfinite(y)
        assert np.array_equal(np.isfinite(x), fin), f
        scale = 1 + np.max(np.abs(y[fin]), initial=0)
        np.testing.assert_allclose(x[fin], y[fin], rtol=0, atol=_TOL * scale, err_msg=f)
    for f in ("piece_edge", "piece_vertex"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    assert len(a.active) == len(b.active)
    assert all(np.array_equal(u, v) for u, v in zip(a.active, b.active))
    assert abs(a.inradius - b.inradius) <= _TOL * (1 + b.inradius)
    assert a.bounded == b.bounded and a.simple == b.simple
    # the batch gives the triangulation of a bounded region with its geometry; the
    # Python one builds it on first use (fan_triangulation)
    assert ("simplices" in a.__dict__) <= a.bounded
    np.testing.assert_allclose(a.simplices, b.simplices, rtol=0,
                               atol=_TOL * (1 + np.max(np.abs(b.vertices), initial=0)))


def _batch_status(rows):
    """The kernel's verdict on each region (0: taken)."""
    from fastpath._jit_geometry_batch import geometry_s2_batch
    from fastpath._one_shot import _constants, _unbounded_draws

    ms = np.array([len(d) for _, d, _ in rows])
    offs = np.concatenate([[0], np.cumsum(ms)]).astype(np.intp)
    out = geometry_s2_batch(np.concatenate([C for C, _, _ in rows]),
                            np.concatenate([d for _, d, _ in rows]), offs,
                            np.array([ip for _, _, ip in rows]), _constants()[0],
                            _unbounded_draws(int(ms.max())))
    return out[0]


NETS = [
    ((2, 16, 16, 3), "leaky_relu", 0.1, 0),
    ((2, 16, 16, 3), "relu", 0.0, 1),
    ((2, 8, 8, 8, 3), "leaky_relu", 0.1, 3),
    ((2, 24, 3), "relu", 0.0, 4),
    ((2, 5, 4), "leaky_relu", 0.3, 5),
]


@pytest.mark.parametrize("widths,act,slope,seed", NETS)
def test_partition_geometry_matches_python(widths, act, slope, seed):
    net = DGN.random(widths, activation=act, slope=slope, seed=seed, noise_var=0.05)
    rows = [_region_rows(r) for r in partition(net)]
    fast = GB.region_geometries(rows)
    slow = _python(rows)
    status = _batch_status(rows)
    assert all("simplices" in g.__dict__ for g, st in zip(fast, status) if st == OK and g.bounded)
    for a, b in zip(fast, slow):
        _assert_same(a, b)
    # the batch takes nearly every region (else it would not be worth having), bounded
    # and unbounded ones
    assert np.mean(status == OK) > 0.95
    taken = [g for g, s in zip(slow, status) if s == OK]
    assert any(g.bounded for g in taken) and any(not g.bounded for g in taken)


def _region(C, d, ip):
    return (np.asarray(C, dtype=np.float64), np.asarray(d, dtype=np.float64),
            np.asarray(ip, dtype=np.float64))


SQUARE = [[1, 0], [0, 1], [-1, 0], [0, -1]]
CASES = {
    # taken: a triangle, a wedge (two rays), a half-strip, a redundant row, a weakly
    # redundant row through a vertex is not simple (declined below), a thin box, a far box
    "triangle": (_region([[1, 0], [0, 1], [-1, -1]], [1, 1, 1], [0, 0]), OK),
    "wedge": (_region([[1, -2], [-1, -2]], [0, 0], [0, 1]), OK),
    "half_strip": (_region([[0, 1], [0, -1], [-1, 0]], [1, 1, 3], [0, 0]), OK),
    "redundant": (_region(SQUARE + [[1, 1]], [1, 1, 1, 1, 5], [0.1, 0.2]), OK),
    "thin": (_region(SQUARE, [1, 1e-8, 1, 1e-8], [0.3, 0]), OK),
    "far": (_region(SQUARE, [1e3 + 1, 1e3 + 1, -1e3 + 1, -1e3 + 1], [1e3, 1e3]), OK),
    "huge": (_region(np.array(SQUARE) * 1e-200, [1e-100] * 4, [0, 0]), OK),
    # declined: the Python geometry takes them
    "nonsimple": (_region(SQUARE + [[1, 1]], [1, 1, 1, 1, 2], [0, 0]), NONSIMPLE),
    "strip": (_region([[0, 1], [0, -1]], [1, 1], [0, 0]), LINES),
    "one_row": (_region([[0, 1]], [1], [0, 0]), LINES),
    "zero_row": (_region(SQUARE + [[0, 0]], [1, 1, 1, 1, 1], [0, 0]), 11),
    "point_on_boundary": (_region(SQUARE, [1, 1, 1, 1], [1, 0]), THIN),
    # width 2e-3 at 1e6 from the origin: the slack is below polyhedron_geometry's
    # threshold for trusting a given point (1e-9 of the offsets), so it takes the LP
    "far_thin": (_region(SQUARE, [1e6 + 1e-3, 1e6 + 1e-3, -1e6 + 1e-3, -1e6 + 1e-3],
                         [1e6, 1e6]), THIN),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_made_regions(name):
    region, expected = CASES[name]
    # batched among real-looking neighbours so that the packing offsets are exercised
    rows = [CASES["triangle"][0], region, CASES["wedge"][0]]
    assert list(_batch_status(rows)) == [OK, expected, OK]
    fast = GB.region_geometries(rows)
    slow = _python(rows)
    for a, b in zip(fast, slow):
        _assert_same(a, b)


def test_region_without_interior_point():
    C, d, _ = CASES["triangle"][0]
    rows = [(C, d, None), CASES["wedge"][0]]
    for a, b in zip(GB.region_geometries(rows), _python(rows)):
        _assert_same(a, b)


def test_estep_unchanged():
    """The E-step's statistics with the batched geometry equal those with the Python one
    to 1e-10 relative (measured ~1e-14: vertices move by ~1e-14, see _TOL)."""
    from fastpath import _region_maps

    rng = np.random.default_rng(0)
    net = DGN.random((2, 12, 12, 3), activation="leaky_relu", slope=0.1, seed=7,
                     noise_var=0.05)
    X = rng.normal(size=(60, 3))
    P = partition(net)
    fast = estep_statistics(net, X, partition=P)
    _region_maps._CONES.pop(P, None)
    with switched(GB.ENABLED, False):
        slow = estep_statistics(net, X, partition=P)
        _region_maps._CONES.pop(P, None)
    for f in ("log_px", "s0", "s1", "S2", "x0", "x1", "xx", "resid2"):
        x, y = np.asarray(getattr(fast, f)), np.asarray(getattr(slow, f))
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-10 * np.max(np.abs(y)), err_msg=f)


def test_compiled_mass_bound_matches_numpy():
    """ConeTable.log_mass_bound at S = 2: the compiled kernel (fastpath._jit_cones.bound_s2)
    against the numpy nearest points (U^-1 by LAPACK there, written out in the kernel:
    rounding only; 1e-12 relative to 1 + |bound|)."""
    from fastpath import _cones
    from fastpath.integrals import ConeBatch

    net = DGN.random((2, 10, 10, 3), activation="leaky_relu", slope=0.1, seed=11,
                     noise_var=0.05)
    cb = ConeBatch.from_partition(partition(net))
    R = len(cb)
    rng = np.random.default_rng(1)
    mean = 3.0 * rng.normal(size=(40, R, 2))
    F = rng.normal(size=(R, 2, 2))
    cov = F @ np.swapaxes(F, -1, -2) + 0.1 * np.eye(2)
    fast = cb.log_mass_bound(mean, cov)
    with switched(_cones.COMPILED, False):
        slow = cb.log_mass_bound(mean, cov)
    assert np.any(fast == 0.0) and np.any(fast < -5.0)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shared", [True, False])
def test_deferred_moments_change_nothing(shared):
    """The S = 2 cone kernel leaves out the moments of the pairs the cubature takes
    (fastpath._cones.DEFER) and evaluates again those it declines: every output is the
    same, bit for bit, as with every pair's moments computed."""
    from fastpath import _cones
    from fastpath._cone_tail import cone_sum_only
    from tests.integrals_fast_refs import estep_like_pairs

    table, mean, _, chol = estep_like_pairs(2, 3, 30, 4.0, shared)
    with cone_sum_only():
        fast = table.evaluate(mean, chol, True)
        with switched(_cones.DEFER, False):
            slow = table.evaluate(mean, chol, True)
    lc = slow[3]
    # the case is one where the deferral acts: many pairs cancel, most go to the cubature
    assert np.mean(lc == 0.0) > 0.1
    for a, b in zip(fast, slow):
        assert np.array_equal(a, b, equal_nan=True)
