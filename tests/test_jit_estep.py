"""The compiled assembly of the E-step's posterior moments (fastpath._jit_estep.assemble)
against the numpy form of fastpath._estep._assemble, on real chunks (S = 2 and S = 3, with
pruned pairs), and the E-step statistics with either."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import switched

from dgn_core.model import DGN
from fastpath import _estep as E
from fastpath import _estep_statistics as ES
from fastpath.partition_walk import partition

FIELDS = ("log_px", "log_e0", "e0", "e1", "E2", "cmean", "ccov", "mean", "cov")


def _chunk(widths, seed, n):
    net = DGN.random(widths, activation="leaky_relu", slope=0.1, seed=seed, noise_var=0.05)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, widths[-1]))
    model = E._model(net, partition(net))
    return E._chunk(model, X, True, 60.0)


@pytest.mark.parametrize("widths,seed", [((2, 10, 10, 3), 0), ((3, 5, 4, 3), 1)])
def test_assembly_matches_numpy(widths, seed):
    res = _chunk(widths, seed, 50)
    fast = E._assemble(slice(0, 50), res)
    with switched(E.COMPILED_ASSEMBLY, False):
        slow = E._assemble(slice(0, 50), res)
    assert np.any(slow.e0 == 0) or np.all(np.isfinite(slow.log_e0))
    for f in FIELDS:
        a, b = getattr(fast, f), getattr(slow, f)
        if f == "cov":
            # a sum over regions in another order than einsum's: rounding of the sum
            scale = np.max(np.abs(b), axis=(1, 2), keepdims=True)
            assert np.all(np.abs(a - b) <= 1e-14 * scale), np.max(np.abs(a - b) / scale)
        else:
            # element by element the same expressions, sums in numpy's order: bit for bit
            assert np.array_equal(a, b, equal_nan=True), f


@pytest.mark.parametrize("widths,seed", [((2, 10, 10, 3), 0), ((3, 5, 4, 3), 1)])
def test_residual_sums_match_numpy(widths, seed):
    """_residual_sums with the compiled terms (fastpath._jit_estep.residual_terms) against
    its numpy form: the residuals bit for bit and summed alike over the pairs; the
    per-region covariance sums in another order than einsum's (rounding: 1e-14)."""
    net = DGN.random(widths, activation="leaky_relu", slope=0.1, seed=seed, noise_var=0.05)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(50, widths[-1]))
    model = E._model(net, partition(net))
    ch = E._assemble(slice(0, 50), E._chunk(model, X, True, 60.0))
    fast = ES._residual_sums(model.A, model.b, X, ch)
    with switched(E.COMPILED_ASSEMBLY, False):
        slow = ES._residual_sums(model.A, model.b, X, ch)
    np.testing.assert_allclose(fast, slow, rtol=1e-14, atol=0)


@pytest.mark.parametrize("S", [2, 3])
def test_far_pair_screen_matches_numpy(S):
    """The compiled screen of _fix_tails (fastpath._jit_estep.far_pairs) against its numpy
    form on pairs at every weight and distance: log e0 from -80 to 0 (the cut at -46) and
    whitened offsets from 0 to ~300 (the cuts at d = 8 and e0 d^5 = 100), some -inf."""
    from fastpath._jit_estep import far_pairs

    rng = np.random.default_rng(S)
    n, R = 400, 30
    log_w = rng.uniform(-80.0, 0.0, (n, R))
    log_w[rng.random((n, R)) < 0.05] = -np.inf                     # pruned pairs
    log_px = np.zeros(n)
    dm = rng.normal(size=(n, R, S)) * np.exp(rng.uniform(0.0, 5.0, (n, R, 1)))
    A = rng.normal(size=(R, S, S))
    Lc = np.linalg.cholesky(A @ np.swapaxes(A, 1, 2) + 0.3 * np.eye(S))
    res = E._ChunkResult(log_px, log_w, None, dm, None, None)
    want = E._far_pairs_numpy(res, Lc)
    got = far_pairs(log_w, log_px, dm, Lc, E._TAIL_NATS, E.TAIL_DISTANCE ** 2, E._TAIL_WEIGHT)
    assert 50 < want.sum() < want.size - 50
    # a screen: a decision may only differ where the numpy exp and libm's differ in the
    # last bit at the weight cut; none did on these pairs
    np.testing.assert_array_equal(got, want)
