"""The driver of the threaded kernels (fastpath._jit.parallel_for).

- the ranges it hands out cover [0, n) once, in any thread count and grain;
- one thread, a small call, or a call from a thread of its pool runs ``body(0, n)`` inline;
- an error in a range reaches the caller;
- a kernel driven by it gives the same bits on one thread and on all of them.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("numba")

from fastpath import _jit  # noqa: E402
from fastpath._threads import max_threads, threads  # noqa: E402


def _ranges(n: int, grain: int, n_jobs: int, pause: float = 0.0
            ) -> tuple[list[tuple[int, int]], set[str]]:
    got: list[tuple[int, int]] = []
    names: set[str] = set()
    lock = threading.Lock()

    def body(lo: int, hi: int) -> None:
        with lock:
            got.append((lo, hi))
            names.add(threading.current_thread().name)
        time.sleep(pause)

    with threads(n_jobs, blas=False):
        _jit.parallel_for(body, n, grain)
    return sorted(got), names


@pytest.mark.parametrize("n", [0, 1, 7, 100, 1001])
@pytest.mark.parametrize("grain", [1, 3, 64])
@pytest.mark.parametrize("n_jobs", [1, -1])
def test_ranges_cover_every_element_once(n, grain, n_jobs):
    got, _ = _ranges(n, grain, n_jobs)
    covered = [i for lo, hi in got for i in range(lo, hi)]
    assert covered == list(range(n))
    assert all(lo < hi for lo, hi in got)


def test_one_thread_or_a_small_call_runs_inline():
    assert _ranges(1000, 1, 1)[0] == [(0, 1000)]
    assert _ranges(100, 64, -1)[0] == [(0, 100)]  # fewer than two grains


@pytest.mark.skipif(max_threads() < 2, reason="needs two cores")
def test_ranges_run_on_the_pool_threads_too():
    got, names = _ranges(64, 1, 2, pause=0.01)
    assert len(got) > 1
    assert len(names) == 2


def test_a_call_from_a_pool_thread_runs_inline():
    pool = _jit._pool()
    assert pool.submit(_ranges, 1000, 1, -1).result()[0] == [(0, 1000)]


def test_an_error_in_a_range_reaches_the_caller():
    def body(lo: int, hi: int) -> None:
        if lo <= 500 < hi:
            raise RuntimeError("range failed")

    with threads(-1, blas=False), pytest.raises(RuntimeError, match="range failed"):
        _jit.parallel_for(body, 1000, 1)


def test_owens_t_identical_for_any_thread_count():
    from fastpath._jit_owens import owens_t_vec

    rng = np.random.default_rng(5)
    h = rng.normal(size=20000) * 3.0
    a = rng.normal(size=20000) * 2.0
    with threads(1, blas=False):
        one = owens_t_vec(h, a)
    with threads(-1, blas=False):
        many = owens_t_vec(h, a)
    np.testing.assert_array_equal(one, many)
