"""The experimental compiled k = 3 kernel (fastpath/_jit_tvn.py) against the numpy kernel
(``fastpath._tvn._log_mvn_cdf_std``) and verified_dgn's exact orthant probability.

The compiled rule declines (NaN, then the numpy fallback) the elements whose 16- and
20-node rules disagree by more than ``CHECK_TOL`` = 1e-12. Tolerances on the accepted
elements are what the rule was measured to reach (benchmarks/tvn_jit.py), not the 1e-13 of
the numpy kernel: |d log P| <= 2e-11 for log P > -100 (measured max 3.5e-12 on random
inputs; the numpy kernel's own two routes, Plackett and the conditioning integral, differ
by up to 4e-13 there), and |d log P| <= 1e-11 |log P| below (rounding of the bounds enters
log P multiplied by about |h|^2, and the reference carries it too).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba")

from orthant_inputs import random_tvn  # noqa: E402

from fastpath._jit_tvn import log_tvn, log_tvn_vec  # noqa: E402
from fastpath._tvn import _log_mvn_cdf_std  # noqa: E402


def _full(r: np.ndarray) -> np.ndarray:
    R = np.empty((r.shape[0], 3, 3))
    R[:] = np.eye(3)
    R[:, 0, 1] = R[:, 1, 0] = r[:, 0]
    R[:, 0, 2] = R[:, 2, 0] = r[:, 1]
    R[:, 1, 2] = R[:, 2, 1] = r[:, 2]
    return R


def _assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    assert np.array_equal(np.isfinite(out), np.isfinite(ref))
    fin = np.isfinite(ref)
    d = np.abs(out[fin] - ref[fin])
    tol = np.where(ref[fin] > -100.0, 2e-11, 1e-11 * np.abs(ref[fin]))
    worst = np.argmax(d / tol)
    assert np.all(d <= tol), (d[worst], ref[fin][worst])


def test_random_accepted_match_numpy_kernel() -> None:
    h, r = random_tvn(112_000, 0)
    assert h.shape[0] >= 100_000
    ref = _log_mvn_cdf_std(h, _full(r))
    out, _, bad, _ = log_tvn_vec(h, r, fallback=False, stats=True)
    assert np.all(np.isnan(out) == bad)
    _assert_close(out[~bad], ref[~bad])
    # the rule must take part: it accepts ~16% of these random elements (measured)
    assert bad.mean() < 0.95


def test_fallback_fills_declined_from_numpy_kernel() -> None:
    h, r = random_tvn(3000, 1)
    R = _full(r)
    ref = _log_mvn_cdf_std(h, R)
    out, _, bad, _ = log_tvn_vec(h, R, stats=True)
    assert bad.any()
    assert np.array_equal(out[bad], ref[bad])
    _assert_close(out, ref)


def test_scalar_same_bits_as_vector() -> None:
    h, r = random_tvn(300, 2)
    out = log_tvn_vec(h, r, fallback=False)
    sc = np.array([log_tvn(*h[i], *r[i]) for i in range(h.shape[0])])
    assert np.array_equal(np.isnan(sc), np.isnan(out))
    ok = ~np.isnan(out)
    assert np.array_equal(sc[ok], out[ok])


def test_thread_count_does_not_change_results() -> None:
    import numba

    h, r = random_tvn(2000, 3)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = log_tvn_vec(h, r, fallback=False)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        two = log_tvn_vec(h, r, fallback=False)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, two, equal_nan=True)


@pytest.mark.parametrize("case", [
    "quick",
    pytest.param("full", marks=pytest.mark.slow),
])
def test_far_tail_vs_exact(case: str) -> None:
    """Far-tail elements (log P from -30 to below -1000) against verified_dgn's exact
    orthant probability at 20 digits; with the fallback every element counts."""
    from verified_dgn.orthant import log_orthant_probability

    rng = np.random.default_rng(4)
    n = 4 if case == "quick" else 30
    hs: list[np.ndarray] = []
    rs: list[np.ndarray] = []
    while len(hs) < n:
        r = rng.uniform(-0.95, 0.95, 3)
        if 1 + 2 * r[0] * r[1] * r[2] - (r ** 2).sum() < 0.02:
            continue
        h = -rng.uniform(3.0, 30.0, 3) * (rng.random(3) < 0.8) + rng.uniform(-1, 1, 3)
        hs.append(h)
        rs.append(r)
    h, r = np.array(hs), np.array(rs)
    R = _full(r)
    exact = np.array([float(log_orthant_probability(h[i], R[i], dps=20)) for i in range(n)])
    assert exact.min() < -100.0
    out, _, bad, _ = log_tvn_vec(h, R, stats=True)
    _assert_close(out, exact)


def test_bad_input_refused() -> None:
    h = np.zeros((2, 3))
    r = np.full((2, 3), 0.2)
    with pytest.raises(ValueError, match="h"):
        log_tvn_vec(np.zeros((2, 2)), r)
    with pytest.raises(ValueError, match="R"):
        log_tvn_vec(h, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="h"):
        log_tvn_vec(np.array([[0.0, np.nan, 1.0], [0.0, 0.0, 0.0]]), r)
    with pytest.raises(ValueError, match="R"):
        log_tvn_vec(h, np.array([[0.2, 1.5, 0.0], [0.1, 0.1, 0.1]]))
