"""Partition properties written once and run against both backends.

The exact backend's regions hold Fractions, the fast backend's float64; each property is
stated for both, with exact equality where the exact backend makes it possible and the fast
backend's stated tolerance otherwise (affine maps: rtol 1e-12, the same products summed in
another order; facet normals: 1e-12 relative, the rows are normalised to max |C_ij| = 1).
Nets are small so that the exact walk takes well under a second each.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dgn_core.exceptions import RegionLimitError
from dgn_core.model import DGN
from dgn_core.regions import layer_maps

NETS = {
    "relu-S1": lambda: DGN.random((1, 6, 5, 1), seed=11),
    "abs-S1-depth3": lambda: DGN.random((1, 4, 4, 4, 1), activation="abs", seed=12),
    "relu-S2": lambda: DGN.random((2, 6, 5, 2), seed=13),
    "leaky-S2": lambda: DGN.random((2, 5, 4, 3), activation="leaky_relu", slope=0.2, seed=14),
    "biasfree-S2": lambda: DGN.random((2, 5, 5, 2), init="he", seed=18),
    "width1": lambda: DGN.random((2, 1, 3, 2), seed=20),
    "relu-S3": lambda: DGN.random((3, 4, 3, 2), seed=17),
}


@functools.cache
def _cached(backend_name: str, net_name: str):
    from tests.contract.conftest import _case
    return _case(backend_name).partition(NETS[net_name]())


def _as_float(a) -> np.ndarray:
    return np.array([[float(x) for x in row] for row in np.atleast_2d(np.asarray(a, dtype=object))])


def _close(backend, got, ref, rtol: float = 1e-12) -> bool:
    if backend.exact:
        return bool(np.array_equal(np.asarray(got, dtype=object), np.asarray(ref, dtype=object)))
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return bool(np.allclose(got, ref, rtol=rtol, atol=rtol * max(1.0, float(np.abs(ref).max(
        initial=0.0)))))


@pytest.mark.parametrize("name", sorted(NETS))
def test_region_fields_and_affine_maps(backend, name):
    P = _cached(backend.name, name)
    net = P.net
    S, D, n = net.latent_dim, net.data_dim, net.n_hidden_units
    assert P.exact == backend.exact and len(P) >= 1
    for r in P:
        assert isinstance(r.signs, tuple) and len(r.signs) == n and set(r.signs) <= {-1, 1}
        m = r.n_facets
        assert r.A.shape == (D, S) and r.b.shape == (D,)
        assert r.C.shape == (m, S) and r.d.shape == (m,) and r.interior_point.shape == (S,)
        assert len(r.facet_units) == m and len(r.neighbors) == m
        assert r.bounded == (len(r.rays) == 0 and len(r.lines) == 0)
        _, A, b = layer_maps(net, r.signs, exact=backend.exact)
        assert _close(backend, r.A, A) and _close(backend, r.b, b)
        if m:  # rows normalised to max |C_ij| = 1
            assert _close(backend, np.abs(_as_float(r.C)).max(axis=1), np.ones(m), rtol=1e-15)


@pytest.mark.parametrize("name", sorted(NETS))
def test_interior_points_have_their_pattern_and_locate(backend, name):
    P = _cached(backend.name, name)
    for i, r in enumerate(P):
        z = r.interior_point
        # strictly inside every facet, in the backend's own arithmetic
        assert all(sum(c * x for c, x in zip(row, z, strict=True)) < d
                   for row, d in zip(r.C, r.d, strict=True))
        assert P.index_of(r.signs) == i
    IP = _as_float([r.interior_point for r in P]).reshape(len(P), -1)
    Q = P.net.sign_patterns(IP)
    loc = P.locate(IP)
    for i, r in enumerate(P):
        # the rounded interior point can leave a region only if the region is thinner than
        # ~1e-15; then it must lie in the region it is located in
        if loc[i] != i:
            assert P[int(loc[i])].contains(IP[i])
        else:
            assert tuple(Q[i].tolist()) == r.signs


@pytest.mark.parametrize("name", sorted(NETS))
def test_neighbours_are_symmetric_across_each_facet(backend, name):
    P = _cached(backend.name, name)
    for i, r in enumerate(P):
        for j, nb in enumerate(r.neighbors):
            o = P[nb]
            back = [f for f in range(o.n_facets) if o.neighbors[f] == i]
            assert len(back) == 1, (i, j, nb)
            f = back[0]
            assert _close(backend, -np.asarray(o.C[f], dtype=object if backend.exact else float),
                          r.C[j])
            assert _close(backend, [-o.d[f]], [r.d[j]])
            # the two regions differ exactly in the units of that facet
            flipped = {k for k, (a, c) in enumerate(zip(r.signs, o.signs, strict=True)) if a != c}
            assert flipped == set(r.facet_units[j])


def test_the_start_region_contains_the_start_point_and_the_regions_do_not_depend_on_it(backend):
    net = NETS["relu-S2"]()
    P0 = _cached(backend.name, "relu-S2")
    z = np.array([3.25, -7.5])
    P1 = backend.partition(net, start=z)
    assert P1[0].contains([Fraction(3.25), Fraction(-7.5)] if backend.exact else z)
    assert {r.signs for r in P0} == {r.signs for r in P1}


def test_no_hidden_layer_and_dead_units_give_one_region(backend):
    net0 = DGN([np.array([[1.0, -2.0], [0.5, 1.0]])], [np.array([0.1, 0.2])])
    P = backend.partition(net0)
    assert len(P) == 1 and P[0].n_facets == 0
    dead = DGN([np.zeros((3, 2)), np.ones((2, 3))], [-np.ones(3), np.zeros(2)])
    P = backend.partition(dead)
    assert len(P) == 1 and P[0].signs == (-1, -1, -1)


def _arrangement_count(n: int, S: int) -> int:
    """Regions of n hyperplanes in general position in R^S (Zaslavsky / Buck)."""
    return sum(math.comb(n, i) for i in range(S + 1))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(S=st.integers(1, 3), n=st.integers(1, 6), seed=st.integers(0, 2**16),
       act=st.sampled_from(["relu", "leaky_relu", "abs"]))
def test_one_hidden_layer_counts_match_the_arrangement_formula(backend, S, n, seed, act):
    # random Gaussian rows and biases are in general position with probability 1
    net = DGN.random((S, n, 2), activation=act, seed=seed)
    assert len(backend.partition(net)) == _arrangement_count(n, S)


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(widths=st.lists(st.integers(1, 4), min_size=1, max_size=2), S=st.integers(1, 2),
       seed=st.integers(0, 2**16), act=st.sampled_from(["relu", "leaky_relu", "abs"]))
def test_regions_tile_sampled_points(backend, widths, S, seed, act):
    """Every sampled latent point lies in exactly the region of its sign pattern."""
    net = DGN.random((S, *widths, 2), activation=act, seed=seed)
    P = backend.partition(net)
    Z = np.random.default_rng(seed).normal(scale=3.0, size=(64, S))
    Q = net.sign_patterns(Z)
    loc = P.locate(Z)
    for q, i in zip(Q, loc, strict=True):
        # a point on a hyperplane (probability 0 here) has no unique pattern
        assert i >= 0 and P[int(i)].signs == tuple(q.tolist())


def test_max_regions_stops_the_walk(backend):
    net = NETS["relu-S2"]()
    n = len(_cached(backend.name, "relu-S2"))
    assert len(backend.partition(net, max_regions=n)) == n
    with pytest.raises(RegionLimitError, match=r"max_regions=3\b.*raise max_regions"):
        backend.partition(net, max_regions=3)


def test_progress_goes_to_stderr(backend, capsys):
    backend.partition(NETS["relu-S2"](), progress=True)
    captured = capsys.readouterr()
    assert "regions" in captured.err and captured.out == ""
