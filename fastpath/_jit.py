"""Compiled kernels: the one numba decorator, thread control, and ahead-of-time warm-up.

Every compiled kernel of the fast path is defined with :func:`jit` (serial) or
:func:`pjit` (a ``prange`` loop over independent elements), both with ``cache=True``:
the machine code is written beside the source (``__pycache__``, or numba's per-user cache
directory where that is read-only) on the first call and loaded in milliseconds by later
processes. No kernel calls into scipy through ctypes (such a kernel cannot be cached);
the special functions they need are compiled here as well (:mod:`fastpath._jit_special`).

Modules holding compiled kernels import numba at their top and are themselves imported
lazily by the numpy-facing functions that use them, so ``import fastpath`` and the S = 1
paths never import numba (0.35 s).

Parallel kernels split the elements of one call over numba's threads; each element is
computed by the same code whatever thread runs it, so results are identical for any
thread count. :func:`threads` sets that count for a block (``n_jobs``) and keeps BLAS at
one thread inside it (threadpoolctl): OpenBLAS's own threads on a machine that is also
running our kernels cost up to 8x on the small matmuls of the cubature.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numba
import numpy as np

__all__ = ["jit", "pjit", "threads", "resolve_n_jobs", "warmup", "KERNEL_MODULES"]

_OPTIONS: dict[str, Any] = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)

#: modules whose kernels :func:`warmup` compiles, in dependency order; each defines
#: ``_warmup()`` that calls its kernels once on small float64 inputs of every signature the
#: library uses
KERNEL_MODULES: tuple[str, ...] = (
    "fastpath._jit_special",
)


def jit(fn: Callable[..., Any]) -> Any:
    """numba.njit with the project's options (cached, no GIL, numpy's error model)."""
    return numba.njit(**_OPTIONS)(fn)


def pjit(fn: Callable[..., Any]) -> Any:
    """:func:`jit` for kernels with a ``prange`` loop over independent elements."""
    return numba.njit(parallel=True, **_OPTIONS)(fn)


def resolve_n_jobs(n_jobs: int | None) -> int:
    """Threads for ``n_jobs``: None or -1 = all cores, -k = all but k - 1, k >= 1 = k.

    Raises
    ------
    ValueError
        ``n_jobs`` is 0, not an integer, or below -(cores).
    """
    cores = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if n_jobs is None:
        return cores
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)):
        raise ValueError(f"n_jobs must be an integer or None, got {n_jobs!r}")
    n = int(n_jobs)
    if n == 0 or n < -cores:
        raise ValueError(f"n_jobs must be >= 1, or -1..-{cores} (counting back from all "
                         f"{cores} cores), or None; got {n}")
    return min(n, cores) if n > 0 else cores + 1 + n


@contextlib.contextmanager
def threads(n_jobs: int | None = None) -> Iterator[int]:
    """Run the block with ``n_jobs`` kernel threads and one BLAS thread; yields the count."""
    from threadpoolctl import threadpool_limits

    n = resolve_n_jobs(n_jobs)
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield n
    finally:
        numba.set_num_threads(before)


def warmup(progress: Callable[[str, float], None] | None = None) -> float:
    """Compile (or load from the cache) every kernel; returns the seconds it took.

    ``progress(module, seconds)`` is called after each module. A first run compiles
    (tens of seconds, once per installation); later runs load the cache.
    """
    t_all = time.perf_counter()
    for name in KERNEL_MODULES:
        t0 = time.perf_counter()
        importlib.import_module(name)._warmup()
        if progress is not None:
            progress(name, time.perf_counter() - t0)
    return time.perf_counter() - t_all


def cache_dir() -> str:
    """Where the compiled kernels are cached (NUMBA_CACHE_DIR, else beside the sources)."""
    return os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(__file__),
                                                             "__pycache__")
