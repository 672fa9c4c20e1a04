"""``dgn sample``: draws x = g(z) + eps from a saved model (``DGN.sample``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.model import DGN
from dgn_core.validation import check_int

from ._common import (
    CLIError,
    add_force_arg,
    check_option,
    check_output_file,
    write_array,
    write_array_csv,
)

__all__ = ["add_parser", "run", "draw", "SAMPLE_FORMATS", "MAX_SAMPLES"]

#: the file formats of --out, by suffix
SAMPLE_FORMATS = (".npy", ".csv")
#: the most samples one call draws (8 bytes per entry: 1e8 x D floats is already 0.8 GB per
#: data dimension)
MAX_SAMPLES = 100_000_000


def draw(net: DGN, n: int, seed: int, *, noise: bool = True
         ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``n`` draws of the model: z ~ N(0, Sigma_z), x = g(z) + eps (``noise=False``: x = g(z)
    of the same z, so the noisy and noiseless draws of one seed differ by eps alone).

    Returns
    -------
    X : ndarray, shape (n, D)
    Z : ndarray, shape (n, S)
    """
    X, Z = net.sample(n, seed=seed)
    if not noise:
        X = net.forward(Z)
    return X, Z


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sample", help="draw samples x = g(z) + eps from a model",
        description="Draw N samples from MODEL: z from the latent prior N(0, Sigma_z), "
        "x = g(z) + eps with eps ~ N(0, Sigma_x) (without the noise: --no-noise). Written to "
        "--out (.npy, or .csv with a header x1,...,xD) or, without --out, to standard output "
        "as CSV.")
    p.add_argument("model", type=Path, help="a model saved with DGN.save or dgn fit (.npz)")
    p.add_argument("-n", "--n", type=int, required=True, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    p.add_argument("--out", type=Path, default=None, metavar="FILE.npy|FILE.csv",
                   help="file to write (default: CSV on standard output)")
    p.add_argument("--no-noise", dest="noise", action="store_false",
                   help="write g(z) without the observation noise eps (the same z as with noise)")
    add_force_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    n = check_option(check_int, args.n, "-n", 1)
    if n > MAX_SAMPLES:
        raise CLIError(f"-n must be at most {MAX_SAMPLES} per call, got {n}; draw in batches "
                       f"with different --seed")
    seed = check_option(check_int, args.seed, "--seed", 0)
    if args.out is not None:
        if args.out.suffix.lower() not in SAMPLE_FORMATS:
            raise CLIError(f"--out {args.out}: the format follows the suffix, one of "
                           f"{', '.join(SAMPLE_FORMATS)}; got {args.out.suffix or 'none'!r}")
        check_output_file(args.out, force=args.force, inputs=[args.model])
    if not args.model.is_file():
        raise CLIError(f"MODEL: no model file {str(args.model)!r}; give a .npz saved by "
                       f"DGN.save or dgn fit")
    net = DGN.load(args.model)
    X, _ = draw(net, n, seed, noise=args.noise)
    what = "g(z)" if not args.noise else "g(z) + eps"
    # without --out the samples are the standard output: the report goes to stderr
    report = sys.stdout if args.out is not None else sys.stderr
    print(f"dgn sample: {n} draws of {what} from {args.model}: {net!r} (seed {seed})",
          file=report)
    if args.out is None:
        write_array_csv(sys.stdout, X, header=True)
        return 0
    write_array(args.out, X, header=True)
    print(f"wrote {args.out}: {n} x {X.shape[1]} "
          f"({'npy' if args.out.suffix.lower() == '.npy' else 'csv'})", file=report)
    return 0
