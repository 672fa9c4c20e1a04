"""Peak memory of the streamed E-step against the in-memory one.

Usage: python benchmarks/stream_memory.py [--n 1000000] [--dim 8] [--latent 1]
                                          [--shard-size 2048]

Case: a random leaky-ReLU net (latent, 8, 8, dim) with seed 0, data drawn from a random
net of the same shape (seed 1) plus noise of sd 0.1, written to a temporary ``.npy`` file.
The E-step statistics of all the data (one call of fastpath._sharded.SerialEStep) are
computed (a) from the memory-mapped file (NpySource: shard by shard) and (b) from the array
loaded into memory; the peak of Python-allocated memory during each (tracemalloc, which
sees numpy's buffers but not the pages of the memory map) is printed with the bound

    peak <= 8 N                        (log p(x) of every point: (N,) float64)
          + 24 shard_size D            (a shard read, its float64 copy, and a product)
          + 8 c 2^20                   (one chunk's per-pair arrays: about 2^20 floats each)
          + 8 R (1 + S + S^2 + D + D S) (the statistics, twice while they are added)

with the constant c measured here (printed as "chunk arrays"). The in-memory run holds
the data too: 8 N D more.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from dgn_core.data_source import ArraySource, NpySource
from fastpath import DGN, partition
from fastpath._sharded import DEFAULT_SHARD_SIZE, SerialEStep
from fastpath._threads import blas_limit


def _peak(make: Callable[[], SerialEStep], net: DGN, P: object) -> tuple[float, float]:
    """Peak traced MiB and seconds of building the engine (loading in-memory data) and one
    E-step."""
    tracemalloc.start()
    t = time.perf_counter()
    make().statistics(net, P)  # type: ignore[arg-type]
    seconds = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--latent", type=int, default=1)
    ap.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE)
    args = ap.parse_args()
    N, D, S, shard = args.n, args.dim, args.latent, args.shard_size
    widths = (S, 8, 8, D)
    truth = DGN.random(widths, seed=1)
    net = DGN.random(widths, seed=0, noise_var=0.05)
    P = partition(net)
    R = len(P)
    print(f"stream_memory: N = {N}, D = {D}, S = {S}, R = {R} regions, shard_size = {shard}, "
          f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp, blas_limit(1):
        path = Path(tmp) / "x.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(N, D))
        rng = np.random.default_rng(2)
        for a in range(0, N, 100_000):
            b = min(N, a + 100_000)
            out[a:b] = truth.forward(rng.normal(size=(b - a, S))) + 0.1 * rng.normal(size=(b - a, D))
        out.flush()
        del out
        # warm the kernels and the partition's caches outside the measurement
        SerialEStep(ArraySource(np.load(path)[:100]), shard).statistics(net, P)
        streamed, t_s = _peak(lambda: SerialEStep(NpySource(path), shard), net, P)
        in_memory, t_m = _peak(lambda: SerialEStep(ArraySource(np.load(path)), shard), net, P)
    stats = 8 * R * (1 + S + S * S + D + D * S) * 2 / 2**20
    fixed = (8 * N + 24 * shard * D) / 2**20
    c = (streamed - fixed - stats) * 2**20 / (8 * 2**20)
    print(f"  streamed from the .npy: peak {streamed:8.1f} MiB  ({t_s:.1f} s)")
    print(f"  in memory             : peak {in_memory:8.1f} MiB  ({t_m:.1f} s; np.load "
          f"and the E-step: the data are {8 * N * D / 2**20:.1f} MiB of it)")
    print(f"  bound terms: 8 N = {8 * N / 2**20:.1f} MiB, 24 shard D = "
          f"{24 * shard * D / 2**20:.2f} MiB, statistics {stats:.2f} MiB; chunk arrays "
          f"c = {c:.1f} (x 8 MiB)")


if __name__ == "__main__":
    main()
