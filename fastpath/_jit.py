"""Compiled kernels: the one numba decorator, thread control, and ahead-of-time warm-up.

Every compiled kernel of the fast path is defined with :func:`jit` (or :func:`jit_inline`),
serial and without the GIL, or, for one kernel, :func:`pjit`, with ``cache=True``:
the machine code is written beside the source (``__pycache__``, or numba's per-user cache
directory where that is read-only) on the first call and loaded in milliseconds by later
processes. No kernel calls into scipy through ctypes (such a kernel cannot be cached);
the special functions they need are compiled here as well (:mod:`fastpath._jit_special`).

Modules holding compiled kernels import numba at their top and are themselves imported
lazily by the numpy-facing functions that use them, so ``import fastpath`` and the S = 1
paths never import numba (0.35 s).

A kernel over many independent elements is compiled for a range [lo, hi) of them and
driven by :func:`parallel_for`, which splits the elements of one call over a shared pool of
Python threads (the kernels release the GIL). numba's own ``parallel=True`` (``prange``)
would do the same, but its parfor lowering made those kernels the slowest of the cold
compilation (the S = 2 E-step chain 99 s against 61 s compiled serially). The thread count
is numba's (``numba.get_num_threads()``), which :func:`fastpath._threads.threads`
(``n_jobs``) sets, applied here when numba is first imported.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numba

from ._threads import _apply, max_threads, requested_threads

__all__ = ["jit", "jit_inline", "pjit", "parallel_for", "warmup", "KERNEL_MODULES", "cache_dir"]

_OPTIONS: dict[str, Any] = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)

#: modules whose kernels :func:`warmup` compiles, as chains: each chain in dependency order
#: (a module's kernels call those of the modules before it in its chain, or of the first
#: chain); each module defines ``_warmup()`` that calls its kernels once on small float64
#: inputs of every signature the library uses. A parallel warm-up compiles whole chains
#: per process, so that two processes do not compile the same callees at once; the chains
#: are listed longest first (cold compilation, benchmarks/jit_startup.py), so that the last
#: one to start is the shortest.
KERNEL_CHAINS: tuple[tuple[str, ...], ...] = (
    (  # the S = 2 E-step (the batched geometry compiles polygon_geometry, its only kernel
       # of _jit_one_shot_geometry)
        "fastpath._jit_special",
        "fastpath._jit_owens",
        "fastpath._jit_bvn",
        "fastpath._jit_cubature",
        "fastpath._jit_cone_geometry",
        "fastpath._jit_cones",
        "fastpath._jit_pair_cubature",
        "fastpath._jit_geometry_batch",
        "fastpath._jit_estep",
    ),
    (  # the k = 3 orthant kernel, the S = 3 one-call lane and the batched S = 3 cone sums
        "fastpath._jit_lnd",
        "fastpath._jit_tvn",
        "fastpath._jit_one_shot3_cubature",
        "fastpath._jit_one_shot3_cones",
        "fastpath._jit_one_shot3",
        "fastpath._jit_cones3",
    ),
    (  # the tail slices of far pairs (S = 2, 3)
        "fastpath._jit_tail_slices",
        "fastpath._jit_tail",
    ),
    (  # the S = 2 one-call lane (its geometry, whose warm-up is the lane's)
        "fastpath._jit_one_shot_geometry",
        "fastpath._jit_one_shot_base",
        "fastpath._jit_one_shot_cubature",
        "fastpath._jit_one_shot",
    ),
    (  # the S = 2 polygons of the max-pooling walk
        "fastpath._jit_walk",
    ),
)

#: every kernel module, in an order that compiles each callee before its callers
KERNEL_MODULES: tuple[str, ...] = tuple(m for chain in KERNEL_CHAINS for m in chain)


_apply(requested_threads())

#: the package folder and numba's default cache beside it
_HERE = os.path.dirname(os.path.abspath(__file__))
_CACHE = os.path.join(_HERE, "__pycache__")


def _drop_stale_cache() -> None:
    """Delete the cached kernels when any source of the fast path has changed.

    numba checks a cached kernel only against its own source file, but a kernel also
    bakes in the kernels it calls and the constant tables it reads from other modules
    (rules, thresholds): after an edit anywhere in the package a cached caller could run
    old code. The stamp is a hash of every fastpath source and numba's version (~1 ms).
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return  # a cache of the user's choosing: theirs to manage
    digest = hashlib.sha256(numba.__version__.encode())
    for src in sorted(glob.glob(os.path.join(glob.escape(_HERE), "*.py"))):
        with open(src, "rb") as fh:
            digest.update(os.path.basename(src).encode() + b"\0" + fh.read())
    stamp = os.path.join(_CACHE, "dgn_kernels.stamp")
    try:
        with open(stamp, encoding="ascii") as fh:
            if fh.read() == digest.hexdigest():
                return
    except OSError:
        pass
    try:
        os.makedirs(_CACHE, exist_ok=True)
        for pattern in ("*.nbi", "*.nbc"):
            for f in glob.glob(os.path.join(glob.escape(_CACHE), pattern)):
                os.remove(f)
        tmp = f"{stamp}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(digest.hexdigest())
        os.replace(tmp, stamp)
    except OSError:
        pass  # read-only package folder: numba caches in its per-user folder instead


_drop_stale_cache()


#: set once the first-compilation notice has been printed (or warm-up is running)
_NOTICE_DONE = [False]


def _notice_if_uncompiled(fn: Callable[..., Any]) -> None:
    """Say once per process, on stderr, when a kernel module has nothing in the cache: its
    first call will compile (seconds to tens of seconds), which a user should not take for
    a hang."""
    if _NOTICE_DONE[0] or os.environ.get("NUMBA_CACHE_DIR"):
        return
    stem = os.path.splitext(os.path.basename(fn.__code__.co_filename))[0]
    if not os.access(_HERE, os.W_OK):
        return  # numba caches elsewhere (its per-user directory); nothing to check here
    if glob.glob(os.path.join(glob.escape(_CACHE), f"{stem}.*.nbi")):
        return
    _NOTICE_DONE[0] = True
    print("fastpath: compiling the fast path's kernels for their first use (tens of seconds, "
          "once per installation; `dgn warmup` does it ahead of time)", file=sys.stderr)


def jit(fn: Callable[..., Any]) -> Any:
    """numba.njit with the project's options (cached, no GIL, numpy's error model)."""
    _notice_if_uncompiled(fn)
    return numba.njit(**_OPTIONS)(fn)


def jit_inline(fn: Callable[..., Any]) -> Any:
    """:func:`jit` inlined into its callers at numba's level: for small functions called
    in node loops, which LLVM vectorises only when it sees the whole loop body, and for
    large functions called from one place in a deep call chain (numba generates a callee's
    machine code again in every caller's library; inlined, it is generated once there)."""
    _notice_if_uncompiled(fn)
    return numba.njit(inline="always", **_OPTIONS)(fn)


def pjit(fn: Callable[..., Any]) -> Any:
    """:func:`jit` with numba's ``prange`` threads, for the one kernel whose serial range
    form ran slower: the S = 2 cone sum (:func:`fastpath._jit_cones.evaluate_s2`) took
    0.54-0.62 s on one thread over the inputs of one E-step against 0.45-0.52 s as a
    ``prange`` kernel (same machine code for the pairs; the parfor's loop compiles better),
    for ~10 s more of cold compilation."""
    _notice_if_uncompiled(fn)
    return numba.njit(parallel=True, **_OPTIONS)(fn)


#: ranges per thread that :func:`parallel_for` cuts a call into: threads take them in turn,
#: so that one thread's slow elements (more pieces, a larger cubature) do not hold the others
_CHUNKS_PER_THREAD = 4
#: the shared pool of :func:`parallel_for` (created on first use), and the marker of its
#: threads
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()
_LOCAL = threading.local()


def _mark_worker() -> None:
    _LOCAL.worker = True


def _pool() -> ThreadPoolExecutor:
    """The shared pool: max_threads() - 1 threads, the caller being the last one."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(max_workers=max(1, max_threads() - 1),
                                            thread_name_prefix="fastpath-kernel",
                                            initializer=_mark_worker))
        return _POOL[0]


# a forked child has the pool object but not its threads: it starts its own
os.register_at_fork(after_in_child=_POOL.clear)


def parallel_for(body: Callable[[int, int], object], n: int, grain: int = 1) -> None:
    """Call ``body(lo, hi)`` on consecutive ranges that cover [0, n) once, over the kernel
    threads (``numba.get_num_threads()``, see :func:`fastpath._threads.threads`).

    ``body`` computes each element of its range by the same code wherever the range starts
    and writes only that element's output slots, so the results do not depend on the
    thread count or on the cut; it should be a :func:`jit` kernel (which runs without the
    GIL). With one thread, fewer than 2 ``grain`` elements, or from a thread of the pool
    itself, the call is ``body(0, n)`` on the calling thread, with no pool involved.

    Parameters
    ----------
    body : callable
        body(lo, hi) for 0 <= lo < hi <= n.
    n : int
        Number of elements.
    grain : int
        Fewest elements per range (sized so that a range's work outweighs handing it to
        another thread, ~50 us).
    """
    if n <= 0:
        return
    nt = int(numba.get_num_threads())
    n_chunks = min(_CHUNKS_PER_THREAD * nt, n // max(1, grain))
    if nt <= 1 or n_chunks < 2 or getattr(_LOCAL, "worker", False):
        body(0, n)
        return
    counter = itertools.count()  # next() on it is atomic under the GIL

    def work() -> None:
        for c in counter:
            if c >= n_chunks:
                return
            body(c * n // n_chunks, (c + 1) * n // n_chunks)

    pool = _pool()
    futures: list[Future[None]] = [pool.submit(work) for _ in range(min(nt, n_chunks) - 1)]
    try:
        work()
    finally:
        for f in futures:
            f.result()


def _load_modules(names: Sequence[str]) -> list[tuple[str, float]]:
    """Run each module's ``_warmup()`` in this process; (module, seconds) per module."""
    _NOTICE_DONE[0] = True
    done = []
    for name in names:
        t0 = time.perf_counter()
        importlib.import_module(name)._warmup()
        done.append((name, time.perf_counter() - t0))
    return done


def _cached(module: str) -> bool:
    """Whether the cache holds an index for ``module``'s kernels (it has been compiled)."""
    stem = module.rsplit(".", 1)[-1]
    return bool(glob.glob(os.path.join(glob.escape(cache_dir()), "**", f"{stem}.*.nbi"),
                          recursive=True))


def warmup(progress: Callable[[str, float], None] | None = None, jobs: int | None = None) -> float:
    """Compile (or load from the cache) every kernel; returns the seconds it took.

    ``progress(module, seconds)`` is called after each module. A first run compiles
    (tens of seconds, once per installation); later runs load the cache (under a second).

    Parameters
    ----------
    jobs : int, optional
        Processes compiling at once when some module is not cached yet (default: the usable
        cores). numba compiles in one thread per process, so separate processes (each
        writing its kernels to the shared on-disk cache, atomically) divide the cold
        compilation by up to the core count; a module whose callees another process has
        already cached loads them instead of compiling them again. This process then
        loads every kernel from the cache.
    """
    t_all = time.perf_counter()
    jobs = max_threads() if jobs is None else int(jobs)
    if jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs}")
    # what is left to compile of each chain, in KERNEL_CHAINS' order (longest first)
    chains = [left for left in ([m for m in chain if not _cached(m)] for chain in KERNEL_CHAINS)
              if left]
    if jobs > 1 and len(chains) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # spawn, not fork: a forked child would inherit numba's threading layer mid-state
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(chains)), mp_context=ctx) as pool:
            futures = [pool.submit(_load_modules, tuple(chain)) for chain in chains]
            compiled = set()
            for fut in as_completed(futures):
                for name, seconds in fut.result():
                    compiled.add(name)
                    if progress is not None:
                        progress(name, seconds)
        # from the cache now (well under a second); the modules that were cached before
        # are reported from here
        for name, seconds in _load_modules(KERNEL_MODULES):
            if progress is not None and name not in compiled:
                progress(name, seconds)
    else:
        for name, seconds in _load_modules(KERNEL_MODULES):
            if progress is not None:
                progress(name, seconds)
    return time.perf_counter() - t_all


def cache_dir() -> str:
    """Where the compiled kernels are cached (NUMBA_CACHE_DIR, else beside the sources)."""
    return os.environ.get("NUMBA_CACHE_DIR") or _CACHE
