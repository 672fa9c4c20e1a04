"""The sharded E-step (fastpath._sharded) in one process vs on a 2-worker Dask LocalCluster,
its per-iteration overhead, and a projection to k machines (issue 17's "Done when").

Usage: python benchmarks/scale.py [--n 20000] [--shard-size 2048] [--workers 2]
                                  [--repeats 3] [--bandwidth-gbps 1.0] [--quick]

Case: S = 2, the fitted net DGN.random((2, 16, 16, 3), seed=5) and data from another random
net of the same shape, DGN.random((2, 16, 16, 3), seed=3), at z ~ N(0, I) plus N(0, 0.1^2 I)
noise (tests/test_scale.py's ``_data`` with widths 16, 16), N points (``--quick``: N = 4000,
one repeat). The partition is computed once, before the timing; every timed call is
``engine.statistics(net, P)`` (the full E-step of all N points), seconds min / median of
``--repeats``.

Printed, in one run, with the load average (os.getloadavg()) beside each measurement:

1. the single-process E-step, ``SerialEStep`` with one BLAS thread, with ``n_jobs=1`` (one
   compiled-kernel thread) and with ``n_jobs=None`` (all cores' numba threads);
2. ``DaskEStep`` on ``LocalCluster(n_workers=--workers, threads_per_worker=1,
   processes=True)`` (one warm-up call first: it also loads the kernels on the workers),
   the same shards; speed-up vs both single-process runs, parallel efficiency (speed-up vs
   n_jobs=1 / workers), and a bit-for-bit check (np.array_equal on every field) of the
   cluster's statistics against the serial ones;
3. the engine's per-iteration overhead: (a) a DaskEStep call on a tiny data set (shards of
   16 points: 2 shards, and 32 shards for the per-task slope) minus the serial call on the
   same, and minus the serial call / busy workers (the ideal parallel time); (b) the bytes
   moved per E-step: pickled (net, partition) x workers (broadcast) + the pickled per-shard
   results + the per-task arguments (future keys and row bounds); the data shards
   themselves are scattered once, when the engine starts (also printed);
4. a projection for k machines of 2 cores each (c = 2k workers), k = 1, 2, 4, 8, 16, 32:

       T(k) = ceil(n_shards / c) * t_shard + (o_0 + o_1 * n_shards) + bytes(k) / B
       t_shard = (T_1 / N) * shard_size        (per-point time of the n_jobs=1 run, 1 core)
       bytes(k) = c * |pickle(net, P)| + n_shards * (|result of a shard| + |task args|)

   with T_1 the measured single-process n_jobs=1 time, o_0 + o_1 * n_tasks the measured
   fixed + per-task overhead (3a: Dask time - serial time / busy workers, fitted on 2 and
   32 tiny tasks), and B the assumed network bandwidth (``--bandwidth-gbps``, default
   1 Gb/s; all bytes assumed to cross the driver's link one after the other, with no
   overlap with compute: a pessimistic model). Speed-up is vs one process at one core,
   (T_1 / N_measured) N. For N = 20,000 and N = 1,000,000, shards of ``--shard-size``.

The target: the 2-worker E-step >= 1.6x the single-process one (n_jobs=1, one BLAS thread)
on N = 20,000, S = 2.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_core.data_source import as_source
from fastpath import DGN, partition
from fastpath._sharded import DEFAULT_SHARD_SIZE, DaskEStep, SerialEStep
from fastpath._threads import blas_limit

ROOT = Path(__file__).resolve().parents[1]

FIELDS = ("s0", "s1", "S2", "x0", "x1", "xx", "resid2", "log_px")
WIDTHS = (2, 16, 16, 3)


def _data(n: int, seed: int = 0) -> tuple[DGN, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = DGN.random(WIDTHS, seed=3)
    X = truth.forward(rng.normal(size=(n, 2))) + 0.1 * rng.normal(size=(n, 3))
    return DGN.random(WIDTHS, seed=5), X


def _load() -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + ")"


def _times(fn, repeats: int) -> tuple[list[float], object]:  # type: ignore[no-untyped-def]
    ts, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return ts, out


def _fmt(ts: list[float]) -> str:
    return f"min {min(ts):.3f} s, median {statistics.median(ts):.3f} s"


def _identical(a, b) -> list[str]:  # type: ignore[no-untyped-def]
    """The fields where the statistics differ (empty: bit-identical)."""
    bad = [f for f in FIELDS if not np.array_equal(getattr(a, f), getattr(b, f))]
    return bad + (["n"] if a.n != b.n else [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bandwidth-gbps", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="N = 4000, 1 repeat (smoke test)")
    a = ap.parse_args(argv)
    if a.quick:
        a.n, a.repeats = 4000, 1
    # the spawned workers import fastpath from this checkout
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

    from distributed import Client, LocalCluster

    net, X = _data(a.n)
    P = partition(net)
    src = as_source(X)
    n_shards = math.ceil(a.n / a.shard_size)
    print(f"scale benchmark: S = 2, widths {WIDTHS}, N = {a.n}, R = {len(P)} regions, "
          f"shard_size {a.shard_size} ({n_shards} shards), repeats {a.repeats}, "
          f"one BLAS thread per task; {os.cpu_count()} CPUs, load {_load()}")

    # ---- 1. single process
    serial1 = SerialEStep(src, a.shard_size, blas_threads=1, n_jobs=1)
    serialN = SerialEStep(src, a.shard_size, blas_threads=1, n_jobs=None)
    with blas_limit(1):
        for n_jobs in (1, None):  # warm-up: kernels loaded, numba's thread pool started
            SerialEStep(as_source(X[:64]), 64, 1, n_jobs).statistics(net, P)
        t1, st1 = _times(lambda: serial1.statistics(net, P), a.repeats)
        print(f"[1] single process, n_jobs=1:    {_fmt(t1)}; load {_load()}")
        tN, stN = _times(lambda: serialN.statistics(net, P), a.repeats)
        print(f"[1] single process, n_jobs=None: {_fmt(tN)}; load {_load()}")
    T1, TN = min(t1), min(tN)
    bad = _identical(st1, stN)
    print(f"    n_jobs=None vs n_jobs=1 statistics: "
          f"{'bit-identical' if not bad else 'DIFFER in ' + ', '.join(bad)}")

    # ---- 2. the LocalCluster
    load_before = _load()
    with LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with DaskEStep(src, client, a.shard_size, blas_threads=1, n_jobs=1) as eng:
            t = time.perf_counter()
            eng.statistics(net, P)
            warm = time.perf_counter() - t
            tD, stD = _times(lambda: eng.statistics(net, P), a.repeats)
        load_after = _load()
        TD = min(tD)
        print(f"[2] DaskEStep, {a.workers} workers x 1 thread: {_fmt(tD)} (warm-up call "
              f"{warm:.3f} s); load before {load_before}, after {load_after}")
        print(f"    speed-up vs single process n_jobs=1:    {T1 / TD:.2f}x (median "
              f"{statistics.median(t1) / statistics.median(tD):.2f}x); parallel efficiency "
              f"{T1 / TD / a.workers:.0%}")
        print(f"    speed-up vs single process n_jobs=None: {TN / TD:.2f}x (median "
              f"{statistics.median(tN) / statistics.median(tD):.2f}x)")
        bad = _identical(st1, stD)
        print(f"    DaskEStep vs SerialEStep statistics (every field): "
              f"{'bit-identical' if not bad else 'DIFFER in ' + ', '.join(bad)}")

        # ---- 3. overhead
        tiny_size, reps = 16, max(5, a.repeats)
        overhead = {}
        for k in (2, 32):
            tsrc = as_source(X[: k * tiny_size])
            ts_ser = SerialEStep(tsrc, tiny_size, blas_threads=1, n_jobs=1)
            with blas_limit(1):
                ts_ser.statistics(net, P)
                tts, _ = _times(lambda: ts_ser.statistics(net, P), reps)  # noqa: B023
            with DaskEStep(tsrc, client, tiny_size, blas_threads=1, n_jobs=1) as teng:
                teng.statistics(net, P)
                ttd, _ = _times(lambda: teng.statistics(net, P), reps)  # noqa: B023
                keys = (teng._shards[0].key,)
            md, ms = statistics.median(ttd), statistics.median(tts)
            # beyond the ideal parallel compute time (serial / workers busy)
            overhead[k] = md - ms / min(a.workers, k)
            print(f"[3a] tiny E-step, {k} shards of {tiny_size} points: Dask median "
                  f"{md * 1e3:.1f} ms, serial median {ms * 1e3:.1f} ms -> Dask - serial = "
                  f"{(md - ms) * 1e3:.1f} ms; Dask - serial / {min(a.workers, k)} workers = "
                  f"{overhead[k] * 1e3:.1f} ms per E-step")
        o1 = max(0.0, (overhead[32] - overhead[2]) / 30)
        o0 = max(0.0, overhead[2] - 2 * o1)
        print(f"     overhead model (fitted to the 2 and 32 shard rows, Dask - serial / workers): "
              f"o_0 = {o0 * 1e3:.1f} ms + o_1 = {o1 * 1e3:.2f} ms per task")
    model_bytes = len(pickle.dumps((net, P), protocol=pickle.HIGHEST_PROTOCOL))
    # per-shard results: the statistics of each shard as a worker sends them back
    with blas_limit(1):
        res_bytes = [len(pickle.dumps(SerialEStep(as_source(X[s:e]), e - s, 1, 1)
                                      .statistics(net, P), protocol=pickle.HIGHEST_PROTOCOL))
                     for s, e in serial1.bounds]
    key = keys[0]
    task_bytes = len(pickle.dumps((key, key, key, 0, a.shard_size, 1, 1),
                                  protocol=pickle.HIGHEST_PROTOCOL))
    total = model_bytes * a.workers + sum(res_bytes) + task_bytes * n_shards
    data_bytes = X.nbytes
    print(f"[3b] bytes per E-step: (net, P) {model_bytes:,} B x {a.workers} workers = "
          f"{model_bytes * a.workers:,} B; results {sum(res_bytes):,} B over {n_shards} shards "
          f"({statistics.mean(res_bytes):,.0f} B each, of which log p(x) 8 B/point); task "
          f"arguments ~{task_bytes} B x {n_shards} = {task_bytes * n_shards:,} B; total "
          f"{total:,} B ({total / 1e6:.2f} MB). Once per engine: data shards {data_bytes:,} B")

    # ---- 4. projection
    bw = a.bandwidth_gbps * 1e9 / 8  # bytes / s
    t_pt = T1 / a.n
    res_fixed = statistics.mean([r - 8 * (e - s) for r, (s, e) in zip(res_bytes, serial1.bounds)])
    print(f"[4] projection, k machines x 2 cores (c = 2k workers), assumed bandwidth "
          f"{a.bandwidth_gbps:g} Gb/s:")
    print("    T(k) = ceil(n_shards / c) * t_shard + (o_0 + o_1 n_shards) + bytes(k) / B,  "
          "t_shard = (T_1 / N) shard_size,")
    print("    bytes(k) = c |pickle(net, P)| + n_shards (|shard result| + |task args|); "
          f"T_1 / N = {t_pt * 1e6:.2f} us/point (n_jobs=1, 1 core)")
    for N in (20000, 1_000_000):
        ns = math.ceil(N / a.shard_size)
        t_shard = t_pt * a.shard_size
        base = t_pt * N
        row = []
        for k in (1, 2, 4, 8, 16, 32):
            c = 2 * k
            nbytes = c * model_bytes + ns * (res_fixed + task_bytes) + 8 * N
            T = math.ceil(ns / c) * min(t_shard, t_pt * N) + o0 + o1 * ns + nbytes / bw
            row.append(f"k={k}: {T:.3f} s ({base / T:.1f}x)")
        print(f"    N = {N:,} ({ns} shards, single process {base:.2f} s): " + "; ".join(row))

    ok = T1 / TD >= 1.6
    print(f"baseline: single-process SerialEStep, n_jobs=1, one BLAS thread (min {T1:.3f} s)")
    print(f"{a.workers}-worker E-step >= 1.6x the single-process one (n_jobs=1) on N = {a.n:,}, S = 2: "
          f"{'MET' if ok else 'NOT MET'} (measured {T1 / TD:.2f}x)")
    print(f"    (min over min; median over median: {statistics.median(t1) / statistics.median(tD):.2f}x"
          f" -> {'MET' if statistics.median(t1) / statistics.median(tD) >= 1.6 else 'NOT MET'}"
          f" by medians; the load averages above show how busy the machine was)")
    print(f"load at the end {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
