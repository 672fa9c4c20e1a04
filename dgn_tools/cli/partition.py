"""``dgn partition``: the linear regions of a net's latent space, counted and drawn."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from dgn_core.model import DGN
from dgn_core.validation import check_int

from ._common import (
    CLIError,
    add_force_arg,
    add_model_args,
    check_exact_available,
    check_option,
    check_output_file,
    load_model,
)

__all__ = ["EXAMPLE_WIDTHS", "add_parser", "run"]

#: the built-in example net of `dgn partition` with no model
EXAMPLE_WIDTHS = (2, 16, 16, 2)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("partition", help="compute the latent-space partition of a net",
                       description="Compute the linear regions of a net's latent space, print "
                       "their number, and draw them (S = 2) or the curve g(z) (S = 1).")
    add_model_args(p, f"a random {','.join(map(str, EXAMPLE_WIDTHS))} ReLU net, seed 0")
    p.add_argument("--exact", action="store_true",
                   help="use the exact path (rational arithmetic, needs pycddlib)")
    p.add_argument("--out", type=Path, help="picture to write (default dgn_partition.png)")
    p.add_argument("--window", type=float, default=4.0,
                   help="half-width of the latent window drawn (default 4)")
    p.add_argument("--max-regions", type=int, default=100_000,
                   help="stop with an error beyond this many regions (default 100000)")
    p.add_argument("--progress", action="store_true", help="print progress while walking")
    add_force_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..plotting import plot_curve, plot_partition, save_figure, subplots

    max_regions = check_option(check_int, args.max_regions, "--max-regions", 1)
    if args.exact:
        check_exact_available()
    if not (np.isfinite(args.window) and args.window > 0):
        raise CLIError(f"--window must be a positive number, got {args.window}")
    net, what = load_model(args, lambda: DGN.random(EXAMPLE_WIDTHS, seed=0))
    assert net is not None
    out = args.out or Path("dgn_partition.png")
    if net.latent_dim in (1, 2):  # refused before the walk, not after it
        check_output_file(out, force=args.force,
                          inputs=[args.model] if args.model is not None else [])
    part_fn: Any
    if args.exact:
        import verified_dgn

        part_fn = verified_dgn.partition
    else:
        import fastpath

        part_fn = fastpath.partition
    print(f"model: {what}: {net!r}")
    t0 = time.perf_counter()
    P = part_fn(net, max_regions=max_regions, progress=args.progress)
    dt = time.perf_counter() - t0
    path = "exact (rational, cddlib GMP)" if args.exact else "fast (float64)"
    print(f"{len(P)} regions: {P.n_bounded} bounded, {P.n_unbounded} unbounded "
          f"[{path}, {dt:.3f} s, {len(P) / max(dt, 1e-9):,.0f} regions/s]")
    S = net.latent_dim
    if S in (1, 2):
        if S == 2:
            fig, ax = subplots(figsize=(6, 6))
            plot_partition(P, ax=ax, window=args.window)
        else:
            fig, ax = subplots(figsize=(6, 5))
            plot_curve(P, ax=ax, window=args.window)
        save_figure(fig, out)
        print(f"wrote {out}")
    else:
        print(f"(no picture for latent dimension {S}; pictures are drawn for S = 1 and 2)")
    return 0
