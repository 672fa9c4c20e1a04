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

Parallel kernels split the elements of one call over numba's threads; the count is set
by :func:`fastpath._threads.threads` (``n_jobs``), applied here when numba is first imported.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numba

from ._threads import _apply, requested_threads

__all__ = ["jit", "jit_inline", "pjit", "warmup", "KERNEL_MODULES", "cache_dir"]

_OPTIONS: dict[str, Any] = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)

#: modules whose kernels :func:`warmup` compiles, in dependency order; each defines
#: ``_warmup()`` that calls its kernels once on small float64 inputs of every signature the
#: library uses
KERNEL_MODULES: tuple[str, ...] = (
    "fastpath._jit_special",
    "fastpath._jit_owens",
    "fastpath._jit_bvn",
    "fastpath._jit_tvn",
    "fastpath._jit_cubature",
    "fastpath._jit_cones",
    "fastpath._jit_one_shot_base",
    "fastpath._jit_one_shot_cubature",
    "fastpath._jit_pair_cubature",
    "fastpath._jit_one_shot_geometry",
    "fastpath._jit_geometry_batch",
    "fastpath._jit_estep",
    "fastpath._jit_one_shot",
    "fastpath._jit_one_shot3_cubature",
    "fastpath._jit_one_shot3_cones",
    "fastpath._jit_one_shot3",
)


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
    in node loops, which LLVM vectorises only when it sees the whole loop body."""
    _notice_if_uncompiled(fn)
    return numba.njit(inline="always", **_OPTIONS)(fn)


def pjit(fn: Callable[..., Any]) -> Any:
    """:func:`jit` for kernels with a ``prange`` loop over independent elements."""
    _notice_if_uncompiled(fn)
    return numba.njit(parallel=True, **_OPTIONS)(fn)


def warmup(progress: Callable[[str, float], None] | None = None) -> float:
    """Compile (or load from the cache) every kernel; returns the seconds it took.

    ``progress(module, seconds)`` is called after each module. A first run compiles
    (tens of seconds, once per installation); later runs load the cache.
    """
    _NOTICE_DONE[0] = True  # the caller reports progress itself
    t_all = time.perf_counter()
    for name in KERNEL_MODULES:
        t0 = time.perf_counter()
        importlib.import_module(name)._warmup()
        if progress is not None:
            progress(name, time.perf_counter() - t0)
    return time.perf_counter() - t_all


def cache_dir() -> str:
    """Where the compiled kernels are cached (NUMBA_CACHE_DIR, else beside the sources)."""
    return os.environ.get("NUMBA_CACHE_DIR") or _CACHE
