"""Fast (float64 walk) against exact (rational walk) partitions of max-pooling nets.

    python benchmarks/maxpool_partition.py            # every net, 3 repeats each
    python benchmarks/maxpool_partition.py --repeat 5 --only S2-relu-max-relu
    python benchmarks/maxpool_partition.py --wide 2000   # the wide decoder, 2000 regions

A fixed set of max-pooling nets, S = 1 .. 4 (``DGN.random`` with fixed seeds). For every net
the fast path (:func:`fastpath.partition`) and the exact path (:func:`verified_dgn.partition`)
run alternately (fast, exact, fast, exact, ...) after warm-up calls, so that load from
other jobs on a shared machine hits both alike. Printed: regions, min / median wall seconds of
each, and exact / fast (medians). Both must find the same set of patterns, else the script
stops. BLAS runs on one thread (set before numpy is imported).

``--wide N``: the wide decoder of :func:`wide_decoder` (torch: Linear(2, 32), ReLU,
ConvTranspose2d(2, 4, 3, stride 2), ReLU, MaxPool2d(2, stride=1), Conv2d(4, 1, 3); 1,072
hidden units, S = 2, tens of thousands of regions) instead: both walks run with
``max_regions=N`` (each stops with RegionLimitError once it has found N regions: the exact
walk its first N breadth-first, the fast walk the regions of its sample points first, then
breadth first; each region found has had its whole geometry computed), alternately as
above, and the script prints N / wall seconds of each (regions/s) and their ratio.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import fastpath  # noqa: E402
import verified_dgn  # noqa: E402
from dgn_core.model import DGN  # noqa: E402
from dgn_core.regions import RegionLimitError  # noqa: E402

#: name -> net; the S = 2, 3, 4 nets of the task statement (366, 468, 893 regions) included
NETS: dict[str, Callable[[], DGN]] = {
    "S1-max": lambda: DGN.random((1, 12, 3), activation="max", pool_sizes=[[3, 3, 3, 3]],
                                 seed=1),
    "S1-relu-max-relu": lambda: DGN.random((1, 16, 12, 8, 2),
                                           activation=["relu", "max", "relu"],
                                           pool_sizes=[None, [3, 3, 3, 3], None], seed=4),
    "S1-relu-max-abs": lambda: DGN.random((1, 32, 24, 16, 2),
                                          activation=["relu", "max", "abs"],
                                          pool_sizes=[None, [2] * 12, None], seed=3),
    "S2-max": lambda: DGN.random((2, 12, 3), activation="max", pool_sizes=[[1, 2, 3, 6]],
                                 seed=2),
    "S2-relu-max-relu": lambda: DGN.random((2, 12, 16, 8, 2),
                                           activation=["relu", "max", "relu"],
                                           pool_sizes=[None, [2] * 8, None], seed=0),
    "S3-max-abs": lambda: DGN.random((3, 12, 8, 2), activation=["max", "abs"],
                                     pool_sizes=[[3] * 4, None], seed=0),
    "S3-relu-max": lambda: DGN.random((3, 10, 12, 2), activation=["relu", "max"],
                                      pool_sizes=[None, [3] * 4], seed=1),
    "S4-relu-max": lambda: DGN.random((4, 8, 8, 2), activation=["relu", "max"],
                                      pool_sizes=[None, [2] * 4], seed=0),
}


def _alternate(fast: Callable[[], object], exact: Callable[[], object], repeat: int
               ) -> tuple[list[float], list[float], object, object]:
    tf, te, pf, pe = [], [], None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        pf = fast()
        tf.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pe = exact()
        te.append(time.perf_counter() - t0)
    return tf, te, pf, pe


def wide_decoder(seed: int = 0) -> DGN:
    """The wide conv + max-pooling decoder (1,072 hidden units, S = 2) of ``--wide``."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    dec = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Unflatten(1, (2, 4, 4)),
                        nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1),
                        nn.ReLU(), nn.MaxPool2d(2, stride=1), nn.Conv2d(4, 1, 3, padding=1),
                        nn.Flatten()).double()
    return fastpath.from_torch(dec, noise_var=0.1)


def _prefix(part: Callable[..., object], net: DGN, n: int) -> Callable[[], int]:
    """A call of ``part(net, max_regions=n)`` that returns the regions found (n when the
    limit stopped it)."""
    def run() -> int:
        try:
            return len(part(net, max_regions=n))  # type: ignore[arg-type]
        except RegionLimitError:
            return n
    return run


def _wide(n: int, repeat: int) -> int:
    net = wide_decoder()
    print(f"wide decoder: {sum(w.shape[0] for w in net.weights[:-1])} hidden units, "
          f"S = {net.latent_dim}, prefix of {n} regions")
    _prefix(fastpath.partition, net, 50)()  # warm-up (imports, compiled kernels)
    _prefix(verified_dgn.partition, net, 20)()
    tf, te, nf, ne = _alternate(_prefix(fastpath.partition, net, n),
                                _prefix(verified_dgn.partition, net, n), repeat)
    if nf != ne:
        print(f"fast and exact found {nf} and {ne} regions")
        return 1
    mf, me = statistics.median(tf), statistics.median(te)
    print(f"{'path':<8}{'min s':>10}{'median s':>10}{'regions/s':>12}")
    print(f"{'fast':<8}{min(tf):>10.2f}{mf:>10.2f}{n / mf:>12.1f}")
    print(f"{'exact':<8}{min(te):>10.2f}{me:>10.2f}{n / me:>12.1f}")
    print(f"exact / fast (medians): {me / mf:.1f}")
    print(f"load average at end: {os.getloadavg()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, help="net names (default: all)")
    ap.add_argument("--wide", type=int, default=0, metavar="N",
                    help="time the first N regions of the wide decoder instead")
    args = ap.parse_args(argv)
    names = args.only or list(NETS)
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}")
    if args.wide:
        return _wide(args.wide, args.repeat)
    print(f"{'net':<20}{'regions':>8}{'fast min':>10}{'fast med':>10}{'exact min':>11}"
          f"{'exact med':>11}{'exact/fast':>12}")
    # warm-up of both paths (imports, caches) on a small net, so the first net's times are
    # not its
    tiny = DGN.random((2, 6, 2), activation="max", pool_sizes=[[3, 3]], seed=9)
    fastpath.partition(tiny)
    verified_dgn.partition(tiny)
    for name in names:
        net = NETS[name]()
        fastpath.partition(net)  # warm-up on this net
        tf, te, pf, pe = _alternate(lambda net=net: fastpath.partition(net),
                                    lambda net=net: verified_dgn.partition(net), args.repeat)
        sf = {r.signs for r in pf}  # type: ignore[attr-defined]
        se = {r.signs for r in pe}  # type: ignore[attr-defined]
        if sf != se:
            print(f"{name}: fast and exact patterns differ ({len(sf)} vs {len(se)})")
            return 1
        mf, me = statistics.median(tf), statistics.median(te)
        print(f"{name:<20}{len(se):>8}{min(tf):>10.3f}{mf:>10.3f}{min(te):>11.3f}"
              f"{me:>11.3f}{me / mf:>12.1f}", flush=True)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
