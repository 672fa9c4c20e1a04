"""The E-step as a map-reduce over shards of the data, in one process or on a Dask cluster.

Theorem 1's per-point quantities are independent across points, and the E-step statistics
are sums over points (:class:`fastpath._estep_statistics.EStepStatistics`). The data are cut into
shards of ``shard_size`` consecutive rows (the last one shorter); each shard's statistics
are computed on their own (the shard is cut into memory-bounded chunks inside
:func:`fastpath._estep_statistics._estep_statistics`), and the driver adds them in shard order,
left to right from the first. The result is therefore a function of (model, partition,
data, ``shard_size``) only: the same bits whether the shards run one after the other in
this process (:class:`SerialEStep`) or on any number of Dask workers in any order
(:class:`DaskEStep`). With N <= ``shard_size`` there is one shard and the sum is the
single-process E-step itself.

Per iteration the driver computes the partition, sends the model and the partition to the
workers once (``scatter(..., broadcast=True)``), and gets back per shard the statistics
(R (1 + S + S^2 + D + D S) + 2 D floats) and log p(x) of its points (8 bytes per point).
In-memory data are scattered to the workers once, when the engine starts; data in files
(:mod:`dgn_core.data_source`) are read by each task from the path, so the workers need the
same file system and no worker holds more than the shards it is working on.

Faults: a shard task whose worker dies is rescheduled by Dask when its inputs survive; when
they do not (an in-memory shard lived only on that worker) the engine sends the shard again
and resubmits the task (``max_retries`` times per E-step). Errors raised by the computation
itself (a ValueError for a model float64 cannot represent, say) are re-raised unchanged.
"""

from __future__ import annotations

import concurrent.futures
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.data_source import ArraySource, DataSource
from dgn_core.model import DGN
from dgn_core.regions import Partition

from ._estep_statistics import EStepStatistics, estep_statistics

__all__ = ["DEFAULT_SHARD_SIZE", "shard_bounds", "reduce_statistics", "ShardedEStep",
           "SerialEStep", "DaskEStep", "make_estep"]

Arr = NDArray[np.float64]

#: rows per shard: the unit of distribution and of the fixed-order reduction. Small enough
#: that N = 20,000 points make 10 shards (even load on 2 workers), large enough that the
#: per-task overhead of a Dask cluster (~1 ms) stays below 1% of a shard's S >= 2 E-step
DEFAULT_SHARD_SIZE = 2048


def shard_bounds(n_points: int, shard_size: int) -> list[tuple[int, int]]:
    """Row ranges [start, stop) of the shards of ``n_points`` rows, in order."""
    return [(a, min(n_points, a + shard_size)) for a in range(0, n_points, shard_size)]


def reduce_statistics(parts: Sequence[EStepStatistics]) -> EStepStatistics:
    """The statistics of the union of ``parts`` (shards in row order): sums taken left to
    right from the first part, log p(x) concatenated. One part is returned as it is."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    acc = {name: np.array(getattr(first, name), copy=True)
           for name in ("s0", "s1", "S2", "x0", "x1", "xx", "resid2")}
    for part in parts[1:]:
        for name, total in acc.items():
            total += getattr(part, name)
    return EStepStatistics(sum(p.n for p in parts), np.concatenate([p.log_px for p in parts]),
                           **acc)


# ------------------------------------------------------------------------- the shard task
def on_shard(compute: Callable[..., Any], net: DGN, partition: Partition, data: Any,
             start: int, stop: int, blas_threads: int | None, n_jobs: int | None,
             **kw: Any) -> Any:
    """``compute(net, X, partition=..., n_jobs=..., **kw)`` on rows [start, stop): ``compute``
    is :func:`fastpath.estep_statistics`, :func:`fastpath.log_marginal` or
    :func:`fastpath.posterior`; ``data`` is the shard itself (in-memory data) or its source."""
    from ._threads import blas_limit

    X = data.read(start, stop) if isinstance(data, DataSource) else data
    with blas_limit(blas_threads):
        return compute(net, X, partition=partition, n_jobs=n_jobs, **kw)


# ------------------------------------------------------------------------- the engines
class ShardedEStep:
    """The E-step of a fixed data set, shard by shard (module notes).

    Parameters
    ----------
    source : DataSource
        The data, validated (:func:`dgn_core.data_source.summarise`).
    shard_size : int
        Rows per shard.
    blas_threads, n_jobs : int or None
        BLAS threads and compiled-kernel threads of each shard task.
    """

    def __init__(self, source: DataSource, shard_size: int = DEFAULT_SHARD_SIZE,
                 blas_threads: int | None = 1, n_jobs: int | None = None) -> None:
        self.source = source
        self.shard_size = int(shard_size)
        self.bounds = shard_bounds(source.n_points, self.shard_size)
        self.blas_threads = blas_threads
        self.n_jobs = n_jobs

    @property
    def n_points(self) -> int:
        return self.source.n_points

    def _map(self, compute: Callable[..., Any], net: DGN, partition: Partition, **kw: Any
             ) -> list[Any]:
        """:func:`on_shard` of ``compute`` for every shard, in shard order."""
        raise NotImplementedError

    def statistics(self, net: DGN, partition: Partition) -> EStepStatistics:
        """The E-step statistics of all the data (shards reduced in order)."""
        return reduce_statistics(self._map(estep_statistics, net, partition))

    def log_marginal(self, net: DGN, partition: Partition, **kw: Any) -> Arr:
        """log p(x_n) for every point, (N,); ``kw`` as :func:`fastpath.log_marginal`'s."""
        from .distributions import log_marginal

        parts = self._map(log_marginal, net, partition, **kw)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def posterior(self, net: DGN, partition: Partition, **kw: Any) -> Any:
        """The posterior of every point (:class:`fastpath.distributions.Posterior`, the
        shards' arrays joined)."""
        from .distributions import Posterior, posterior

        parts = self._map(posterior, net, partition, **kw)
        if len(parts) == 1:
            return parts[0]

        def join(name: str) -> Arr:
            return np.concatenate([getattr(p, name) for p in parts])

        return Posterior(join("log_px"), join("log_e0"), join("e0"), join("e1"), join("E2"),
                         join("mean"), join("cov"), join("region_mean"), join("region_cov"),
                         partition, net, join("X"))

    def log_likelihood(self, net: DGN, partition: Partition) -> float:
        """sum_n log p(x_n)."""
        return float(np.sum(self.log_marginal(net, partition)))

    def close(self) -> None:
        """Release what the engine holds on workers (nothing for the serial engine)."""

    def __enter__(self) -> ShardedEStep:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialEStep(ShardedEStep):
    """The shards one after the other in this process (the kernels' own threads inside)."""

    def _map(self, compute: Callable[..., Any], net: DGN, partition: Partition, **kw: Any
             ) -> list[Any]:
        return [on_shard(compute, net, partition, self.source, a, b, self.blas_threads,
                         self.n_jobs, **kw) for a, b in self.bounds]


def _lost(exc: BaseException | None) -> bool:
    """Whether a task failed because a worker or its data went away (worth resubmitting),
    not because the computation raised."""
    if exc is None or isinstance(exc, concurrent.futures.CancelledError):
        return True
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return isinstance(exc, (KilledWorker, CommClosedError))


class DaskEStep(ShardedEStep):
    """The shards as tasks of a ``dask.distributed.Client``, reduced in shard order.

    Parameters
    ----------
    source, shard_size, blas_threads
        As in :class:`ShardedEStep`.
    client : dask.distributed.Client
    n_jobs : int, default 1
        Compiled-kernel threads per task: the cluster's worker threads are the parallelism.
    max_retries : int, default 3
        Resubmissions of a shard whose worker died, per E-step.
    """

    def __init__(self, source: DataSource, client: Any, shard_size: int = DEFAULT_SHARD_SIZE,
                 blas_threads: int | None = 1, n_jobs: int | None = 1, max_retries: int = 3
                 ) -> None:
        super().__init__(source, shard_size, blas_threads, n_jobs)
        self.client = client
        self.max_retries = int(max_retries)
        self.in_memory = isinstance(source, ArraySource)
        self.resubmitted = 0                 # shard tasks sent again after a lost worker
        self.seconds_waiting = 0.0           # driver time spent in scatter/submit/gather
        self._shards: list[Any] = [self._place(i) for i in range(len(self.bounds))]

    def _place(self, i: int) -> Any:
        """Shard ``i``'s data argument: a future of its rows on a worker (in-memory data,
        sent once) or the source itself (read by the task)."""
        if not self.in_memory:
            return self.source
        a, b = self.bounds[i]
        return self.client.scatter(np.ascontiguousarray(self.source.read(a, b)), hash=False)

    def _submit(self, compute: Callable[..., Any], i: int, net_f: Any, part_f: Any,
                kw: dict[str, Any]) -> Any:
        a, b = self.bounds[i]
        return self.client.submit(on_shard, compute, net_f, part_f, self._shards[i], a, b,
                                  self.blas_threads, self.n_jobs, pure=False, **kw)

    def _map(self, compute: Callable[..., Any], net: DGN, partition: Partition, **kw: Any
             ) -> list[Any]:
        from distributed import wait

        t0 = time.perf_counter()
        net_f, part_f = self.client.scatter([net, partition], broadcast=True, hash=False)
        pending = {i: self._submit(compute, i, net_f, part_f, kw)
                   for i in range(len(self.bounds))}
        results: list[Any] = [None] * len(self.bounds)
        for attempt in range(self.max_retries + 1):
            try:
                wait(list(pending.values()))
            except Exception:  # noqa: BLE001 - cancelled futures: each is inspected below
                pass
            failed = []
            for i, fut in pending.items():
                if fut.status == "finished":
                    try:
                        results[i] = fut.result()
                        continue
                    except Exception as exc:  # lost between wait() and result()
                        if not _lost(exc):
                            raise
                else:
                    error = fut.exception() if fut.status == "error" else None
                    if error is not None and not _lost(error):
                        raise error
                failed.append(i)
            if not failed:
                break
            if attempt == self.max_retries:
                raise RuntimeError(f"dgn: {len(failed)} shard(s) of the E-step failed "
                                   f"{self.max_retries + 1} times (workers lost); see the "
                                   f"Dask scheduler's log")
            print(f"dgn: resubmitting {len(failed)} shard(s) of the E-step after a lost "
                  f"worker", file=sys.stderr, flush=True)
            self.resubmitted += len(failed)
            net_f, part_f = self.client.scatter([net, partition], broadcast=True, hash=False)
            for i in failed:
                if self.in_memory and self._shards[i].status != "finished":
                    self._shards[i] = self._place(i)
            pending = {i: self._submit(compute, i, net_f, part_f, kw) for i in failed}
        self.seconds_waiting += time.perf_counter() - t0
        return results

    def close(self) -> None:
        if self.in_memory:
            self.client.cancel(self._shards)
        self._shards = []


def make_estep(source: DataSource, *, client: Any = None, shard_size: int = DEFAULT_SHARD_SIZE,
               blas_threads: int | None = 1, n_jobs: int | None = None) -> ShardedEStep:
    """The engine for ``client`` (None: this process)."""
    if client is None:
        return SerialEStep(source, shard_size, blas_threads, n_jobs)
    return DaskEStep(source, client, shard_size, blas_threads, 1 if n_jobs is None else n_jobs)
