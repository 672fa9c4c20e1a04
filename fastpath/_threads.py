"""Thread counts of the compiled kernels (``n_jobs``), without importing numba.

The compiled kernels (:mod:`fastpath._jit`) split the elements of one call over the kernel
threads (:func:`fastpath._jit.parallel_for`: the calling thread and a shared pool, as many
as numba's thread count, which is what this module sets; one kernel uses numba's own
threads, :func:`fastpath._jit.pjit`); each element is computed by the
same code whatever thread runs it, so results are identical for any thread count.
:func:`threads` sets that count for a block and keeps BLAS at one thread inside it
(threadpoolctl): the kernels' threads and OpenBLAS's compete for the same cores, and
OpenBLAS's threads cost up to 8x on the small matrix products of the cubature on a busy
machine.

This module does not import numba, so that the S = 1 paths, which use no compiled kernel,
do not pay its import: the requested count is recorded here and applied by
:mod:`fastpath._jit` when it is first imported (and directly afterwards).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import numpy as np

__all__ = ["threads", "serial_below", "blas_limit", "resolve_n_jobs", "max_threads", "requested_threads"]

#: kernel threads requested by the innermost :func:`threads` block (None: numba's default)
_REQUESTED: list[int] = []


def max_threads() -> int:
    """The most kernel threads available: NUMBA_NUM_THREADS, else the usable cores."""
    numba = sys.modules.get("numba")
    if numba is not None:
        return int(numba.config.NUMBA_NUM_THREADS)
    env = os.environ.get("NUMBA_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def resolve_n_jobs(n_jobs: object) -> int:
    """Threads for ``n_jobs``: None or -1 = all cores, -k = all but k - 1, k >= 1 = k
    (at most the cores available).

    Raises
    ------
    TypeError
        ``n_jobs`` is not an integer or None.
    ValueError
        ``n_jobs`` is 0 or below -(cores).
    """
    cores = max_threads()
    if n_jobs is None:
        return cores
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)):
        raise TypeError(f"n_jobs must be an integer or None, got {n_jobs!r}")
    n = int(n_jobs)
    if n == 0 or n < -cores:
        raise ValueError(f"n_jobs must be >= 1, -1..-{cores} (counting back from all "
                         f"{cores} cores) or None; got {n}")
    return min(n, cores) if n > 0 else cores + 1 + n


def requested_threads() -> int | None:
    """The count set by the innermost :func:`threads` block, or None outside any."""
    return _REQUESTED[-1] if _REQUESTED else None


def _apply(n: int | None) -> None:
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(max_threads() if n is None else n)


#: threadpoolctl's controller, built once (scanning the loaded libraries costs ~0.1 ms;
#: limiting through a built controller ~7 us)
_CONTROLLER: list[object] = []


def blas_limit(n: int | None = 1) -> contextlib.AbstractContextManager[object]:
    """A block with BLAS at ``n`` threads (None: the setting is left alone)."""
    if n is None:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=n, user_api="blas")  # type: ignore[attr-defined, no-any-return]


@contextlib.contextmanager
def threads(n_jobs: object = None, *, blas: bool = True) -> Iterator[int]:
    """Run the block with ``n_jobs`` kernel threads (see :func:`resolve_n_jobs`; None inside
    another block keeps that block's count) and, with ``blas``, one BLAS thread; yields the
    thread count."""
    n = _REQUESTED[-1] if n_jobs is None and _REQUESTED else resolve_n_jobs(n_jobs)
    _REQUESTED.append(n)
    _apply(n)
    try:
        with blas_limit(1) if blas else contextlib.nullcontext():
            yield n
    finally:
        _REQUESTED.pop()
        _apply(requested_threads())


def serial_below(work: float, threshold: float) -> contextlib.AbstractContextManager[object]:
    """One kernel thread for a call whose ``work`` is below ``threshold`` (both in the
    caller's unit, sized to ~3 ms on one thread), else the current count.

    Waking the kernel threads costs tens of microseconds on an idle machine and up to
    milliseconds on a busy one (measured: 4.4 ms for a 4-element bivariate call at load 5
    against 3 us on one thread); the results are the same either way.
    """
    return threads(1, blas=False) if work < threshold else contextlib.nullcontext()
