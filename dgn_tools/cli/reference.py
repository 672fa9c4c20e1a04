"""``dgn reference``: write a reference bundle (certified values of a model at some points)
for checking other implementations (docs/reference_bundles.md)."""

from __future__ import annotations

import argparse
import sys
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

__all__ = ["REFERENCE_WIDTHS", "add_parser", "run"]

#: the net of ``dgn reference`` with no model
REFERENCE_WIDTHS = (2, 4, 2)
#: the certified path's latent dimensions
MAX_REFERENCE_LATENT = 3


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "reference", help="write a certified reference bundle for other implementations",
        description="Write a reference bundle (JSON, schema dgn_tools/schemas/"
        "reference.schema.json): the model, the points, the exact regions, and per point "
        "log p(x), the posterior region weights, mean and covariance (certified digits), and "
        "one exact EM step's updated parameters (estimated digits). Latent dimension S <= 3. "
        "Read another implementation's numbers against it with `dgn compare`.")
    add_model_args(p, f"a random {','.join(map(str, REFERENCE_WIDTHS))} ReLU net, seed 0, "
                   "noise variance 0.05 (a .json model file is read with DGN.from_json)")
    p.add_argument("--points", type=Path, metavar="FILE",
                   help="the points, (N, D) in .npy or .csv (default: --n samples of the model)")
    p.add_argument("--n", type=int, default=3, help="number of points sampled from the model "
                   "when --points is not given (default 3)")
    p.add_argument("--points-seed", type=int, default=1,
                   help="seed of the sampled points (default 1)")
    p.add_argument("--noise-var", type=float, default=None,
                   help="noise variance of the --random net (default 0.01, as DGN.random)")
    p.add_argument("--digits", type=int, default=30,
                   help="decimal digits asked of the certified values (default 30)")
    p.add_argument("--no-em", action="store_true", help="leave out the EM step")
    p.add_argument("--out", type=Path, default=None,
                   help="the bundle to write (.json; default dgn_reference.json)")
    p.add_argument("--npz", type=Path, default=None,
                   help="also write the bundle's content as .npz (float64 and digit arrays)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_force_arg(p)
    p.set_defaults(func=run)


def _points(args: argparse.Namespace, net: DGN) -> np.ndarray:
    if args.points is not None:
        from dgn_core.data import load_data

        X = load_data(args.points)
        if X.ndim != 2 or X.shape[1] != net.data_dim:
            raise CLIError(f"--points {args.points}: the model's data dimension is "
                           f"{net.data_dim}, the file has shape {X.shape}")
        return X
    n = check_option(check_int, args.n, "--n", 1)
    return net.sample(n, seed=args.points_seed)[0]


def run(args: argparse.Namespace) -> int:
    from ..reference import build_bundle, write_bundle, write_bundle_npz

    check_exact_available()
    digits = check_option(check_int, args.digits, "--digits", 1)
    if digits > 1000:
        raise CLIError(f"--digits must be at most 1000, got {digits}")
    out = args.out or Path("dgn_reference.json")
    inputs = [p for p in (args.model, args.points) if p is not None]
    check_output_file(out, force=args.force, inputs=inputs)
    if args.npz is not None:
        check_output_file(args.npz, force=args.force, option="--npz", inputs=inputs)
        if args.npz.resolve() == out.resolve():
            raise CLIError("--npz and --out name the same file")
    if args.model is not None and args.model.suffix == ".json":
        if args.random is not None:
            raise CLIError("give either a model file or --random WIDTHS, not both")
        net: DGN | None = DGN.from_json(args.model)
        what = str(args.model)
    else:
        if args.random is not None and args.noise_var is not None:
            net = check_option(lambda: DGN.random(args.random, activation=args.activation,
                                                  slope=args.slope, seed=args.seed,
                                                  noise_var=args.noise_var))
            what = f"random net {args.random} (seed {args.seed}, {args.activation})"
        else:
            net, what = load_model(args, lambda: DGN.random(REFERENCE_WIDTHS, seed=0,
                                                            noise_var=0.05))
    assert net is not None
    if net.latent_dim > MAX_REFERENCE_LATENT:
        raise CLIError(f"the certified path handles latent dimension S <= "
                       f"{MAX_REFERENCE_LATENT}; this model has S = {net.latent_dim}")
    X = _points(args, net)
    print(f"model: {what}: {net!r}; {X.shape[0]} point(s); {digits} digits")
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"  [{time.perf_counter() - t0:7.1f} s] {msg}", file=sys.stderr, flush=True)

    bundle = build_bundle(net, X, digits=digits, em=not args.no_em, progress=progress)
    write_bundle(out, bundle)
    if args.npz is not None:
        write_bundle_npz(args.npz, bundle)
    dt = time.perf_counter() - t0
    for name, q in bundle["quantities"].items():
        kind = "certified" if all(q["certified"]) else "estimated"
        print(f"  {name:<16} {len(q['values']):>5} values, >= {min(q['digits'])} digits "
              f"({kind})")
    print(f"wrote {out}" + (f" and {args.npz}" if args.npz else "") + f" [{dt:.1f} s, "
          f"{len(bundle['regions'])} regions]")
    return 0
