"""fastpath.integrals' batched evaluation (ConeBatch: shapes, loops, sparse pairs, the mass
bound, a partition's regions), its independence from pycddlib, and input validation.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from integrals_fast_refs import (
    _orthant_available,
    random_cov,
    random_polytope,
)

from fastpath.integrals import (
    ConeBatch,
    PolyhedronCones,
    gaussian_moments,
)


# --------------------------------------------------------------------------- batching
def test_batch_shapes_and_loop_equivalence():
    rng = np.random.default_rng(94)
    C, d = random_polytope(rng, 2, bounded=False)
    pc = PolyhedronCones.from_halfspaces(C, d)
    mu = rng.normal(size=(3, 4, 2)) * 3
    cov = np.stack([random_cov(rng, 2) for _ in range(4)])          # (4, 2, 2), broadcast
    lm, mP, M2P = pc.truncated_moments(mu, cov)
    assert lm.shape == (3, 4) and mP.shape == (3, 4, 2) and M2P.shape == (3, 4, 2, 2)
    for i, j in itertools.product(range(3), range(4)):
        one = pc.truncated_moments(mu[i, j], cov[j])
        assert one[0].shape == ()
        # same arithmetic up to the order of batched operations
        assert abs(one[0] - lm[i, j]) <= 1e-14 * max(1, abs(lm[i, j]))
        np.testing.assert_allclose(one[1], mP[i, j], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(one[2], M2P[i, j], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("S", [1, 2])
def test_cone_batch_equals_per_region_loop(S):
    """ConeBatch over a real partition (pointed, unbounded, all groups) = one region at a time."""
    import fastpath
    from verified_dgn import DGN

    net = DGN.random((S, 6, 5, 2), activation="leaky_relu", seed=3)
    P = fastpath.partition(net)
    rng = np.random.default_rng(95)
    cones = [PolyhedronCones.from_region(r) for r in P]
    # add special groups: an empty set and the whole space
    cones.append(PolyhedronCones.from_halfspaces(np.zeros((1, S)), np.array([-1.0])))
    cones.append(PolyhedronCones.from_halfspaces(np.zeros((0, S)), np.zeros(0)))
    batch = ConeBatch(cones)
    R = len(cones)
    mu = rng.normal(size=(5, R, S)) * 2
    cov = np.stack([random_cov(rng, S, 0.3) for _ in range(R)])
    lm, mP, M2P = batch.truncated_moments(mu, cov)
    assert lm.shape == (5, R)
    assert lm[0, -2] == -np.inf and lm[0, -1] == 0.0
    for r in range(R):
        one = cones[r].truncated_moments(mu[:, r], cov[r])
        # the two evaluations see inputs equal to rounding (other GEMM blockings), which can
        # pick different k = 2 formulas of ~1e-15 relative accuracy (orthant: Owen's T /
        # Plackett / conditioning); the signed cone sum multiplies their difference by its
        # cancellation factor (measured up to e^8.8 on this partition)
        lc = np.zeros(mu.shape[0])
        pc = cones[r]
        if pc._table is not None and pc.geometry.dim == S:
            lc = pc._table.evaluate(mu[:, r][:, None], np.linalg.cholesky(cov[r])[None, None],
                                    moments=False)[3][:, 0]
        amp = 1e-15 * np.exp(np.max(lc))
        np.testing.assert_allclose(one[0], lm[:, r], rtol=1e-13, atol=1e-13 + amp)
        np.testing.assert_allclose(one[1], mP[:, r], rtol=1e-12 + amp, atol=1e-13)
        np.testing.assert_allclose(one[2], M2P[:, r], rtol=1e-12 + amp, atol=1e-13)
    # one Gaussian for all regions: the regions tile the latent space, the masses sum to 1
    lm1 = batch.log_mass(np.broadcast_to(mu[:, :1], mu.shape), cov[0])
    np.testing.assert_allclose(np.exp(lm1[:, :-2]).sum(axis=1), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("S", [1, 2, 3])
def test_log_mass_bound(S):
    """log Phi(-dist) bounds log m0 from above, tightly (within (S-1) log dist + O(1))."""
    if S == 3 and not _orthant_available(3):
        pytest.skip("fastpath.orthant has no k = 3 kernel")
    rng = np.random.default_rng(98 + S)
    cones = [PolyhedronCones.from_halfspaces(*random_polytope(rng, S, b)) for b in (True, False)]
    cones.append(PolyhedronCones.from_halfspaces(np.eye(S)[:1], np.ones(1)))    # a half-space
    batch = ConeBatch(cones)
    R = len(cones)
    mu = rng.normal(size=(30, R, S)) * rng.uniform(0, 15, size=(30, 1, 1))
    cov = np.stack([random_cov(rng, S) for _ in range(R)])
    bound = batch.log_mass_bound(mu, cov)
    lm = batch.log_mass(mu, cov)
    assert bound.shape == lm.shape == (30, R)
    assert np.all(lm <= bound + 1e-12 * (1 + np.abs(bound)))
    far = bound < -20
    d = np.sqrt(-2 * bound[far])
    assert np.all(bound[far] - lm[far] <= (S - 1) * np.log(d) + 8)


def test_sparse_pairs_equal_dense_batch():
    """truncated_moments_pairs on a random subset of (point, region) pairs = the dense batch."""
    import fastpath
    from verified_dgn import DGN

    rng = np.random.default_rng(99)
    net = DGN.random((2, 6, 6, 2), activation="relu", seed=2)
    cones = [PolyhedronCones.from_region(r) for r in fastpath.partition(net)]
    cones.append(PolyhedronCones.from_halfspaces(np.array([[1.0, 0.0]]), np.array([0.2])))
    cones.append(PolyhedronCones.from_halfspaces(np.zeros((1, 2)), np.array([-1.0])))
    batch = ConeBatch(cones)
    R = len(cones)
    mu = rng.normal(size=(6, R, 2)) * 2
    cov = np.stack([random_cov(rng, 2, 0.4) for _ in range(R)])
    dense = batch.truncated_moments(mu, cov)
    n_idx, r_idx = np.nonzero(rng.random((6, R)) < 0.5)
    perm = rng.permutation(len(n_idx))                      # any order of pairs
    n_idx, r_idx = n_idx[perm], r_idx[perm]
    sp = batch.truncated_moments_pairs(r_idx, mu[n_idx, r_idx], cov[r_idx])
    np.testing.assert_allclose(sp[0], dense[0][n_idx, r_idx], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(sp[1], dense[1][n_idx, r_idx], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(sp[2], dense[2][n_idx, r_idx], rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="region_index"):
        batch.truncated_moments_pairs(np.array([R]), mu[0, :1], cov[:1])


def test_partition_regions_tile_the_latent_space():
    """Sum over all regions of a partition: (1, mean, cov + mean mean^T)."""
    import fastpath
    from verified_dgn import DGN

    rng = np.random.default_rng(96)
    net = DGN.random((2, 8, 8, 2), activation="relu", seed=1)
    P = fastpath.partition(net)
    batch = ConeBatch.from_partition(P)
    mu = rng.normal(size=(3, 2))
    cov = random_cov(rng, 2, 0.5)
    R = len(P)
    lm, m1, M2 = batch.truncated_moments(np.repeat(mu[:, None], R, 1), cov)
    m0 = np.exp(lm)
    s0 = m0.sum(axis=1)
    s1 = np.einsum("nr,nri->ni", m0, m1)
    s2 = np.einsum("nr,nrij->nij", m0, M2)
    np.testing.assert_allclose(s0, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s1, mu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s2, cov + mu[:, :, None] * mu[:, None, :], rtol=0, atol=1e-11)


def test_integrals_run_without_cddlib():
    """fastpath.integrals never imports pycddlib (a user who only trains needs no cddlib)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'cdd' or name.startswith('cdd.'):\n"
        "            raise ImportError('cddlib blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np, fastpath\n"
        "m0, m1, M2 = fastpath.gaussian_moments([[1.0, 0], [0, 1.0], [-1, -1.0]],\n"
        "                                       [1.0, 1, 1], [0.1, 0.2], np.eye(2))\n"
        "P = fastpath.partition(fastpath.DGN.random((2, 5, 2), seed=0))\n"
        "lm = fastpath.ConeBatch.from_partition(P).log_mass(np.zeros((len(P), 2)), np.eye(2))\n"
        "assert abs(np.exp(lm).sum() - 1) < 1e-12 and 0 < m0 < 1\n"
        "assert 'cdd' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# --------------------------------------------------------------------------- validation
def test_input_validation():
    C, d = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, 1.0])
    mu, cov = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match="shape"):
        gaussian_moments(C, d[:1], mu, cov)
    with pytest.raises(ValueError, match=r"\(m, S\)"):
        gaussian_moments(C.ravel(), d, mu, cov)
    with pytest.raises(ValueError, match="1 to 4"):
        gaussian_moments(np.ones((2, 5)), d, np.zeros(5), np.eye(5))
    with pytest.raises(ValueError, match="NaN"):
        gaussian_moments(C, np.array([np.nan, 1.0]), mu, cov)
    with pytest.raises(ValueError, match="infinite"):
        gaussian_moments(C, d, np.array([np.inf, 0.0]), cov)
    with pytest.raises(ValueError, match="mean must have shape"):
        gaussian_moments(C, d, np.zeros(3), cov)
    with pytest.raises(ValueError, match="cov must have shape"):
        gaussian_moments(C, d, mu, np.eye(3))
    with pytest.raises(ValueError, match="not symmetric"):
        gaussian_moments(C, d, mu, np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="broadcast"):
        gaussian_moments(C, d, np.zeros((3, 2)), np.broadcast_to(np.eye(2), (4, 2, 2)))
    with pytest.raises(TypeError):
        gaussian_moments(C, d, "a", cov)
    batch = ConeBatch([PolyhedronCones.from_halfspaces(C, d)] * 2)
    with pytest.raises(ValueError, match="mean must have shape"):
        batch.truncated_moments(np.zeros((4, 3, 2)), np.eye(2))
