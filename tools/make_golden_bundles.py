"""Regenerate the golden reference bundles shipped in dgn_tools/reference_bundles/.

    python tools/make_golden_bundles.py            # all of them, into the package
    python tools/make_golden_bundles.py --only S2_relu --out /tmp/golden

One small net per latent dimension S = 1, 2, 3 and activation (relu, leaky_relu, abs),
two points sampled from it, 30 digits (certified log p(x); posterior and EM step as
dgn reference writes them). tests/test_reference_bundles.py checks the shipped files
against the schema and the fast path, and (slow) regenerates one and compares it with the
shipped file. The output is deterministic: no time stamps, sorted keys.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dgn_core.model import DGN
from dgn_tools.reference import build_bundle, write_bundle

#: name -> (widths, activation, slope, seed of the net, noise variance)
GOLDEN = {
    f"S{S}_{act}": (widths, act, 0.2 if act == "leaky_relu" else None, seed, 0.05)
    for S, widths, seed in ((1, (1, 3, 2), 0), (2, (2, 3, 2), 1), (3, (3, 3, 3), 2))
    for act in ("relu", "leaky_relu", "abs")
}
N_POINTS = 4
POINTS_SEED = 7
DIGITS = 30
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "dgn_tools" / "reference_bundles"


def golden_net(name: str) -> DGN:
    """The net of the golden bundle ``name``."""
    widths, act, slope, seed, nv = GOLDEN[name]
    return DGN.random(widths, activation=act, slope=slope, seed=seed, noise_var=nv)


def make(name: str, out_dir: Path, *, quiet: bool = False) -> tuple[Path, float]:
    """Write the bundle ``name`` into ``out_dir``; returns the path and the seconds taken."""
    net = golden_net(name)
    X = net.sample(N_POINTS, seed=POINTS_SEED)[0]
    t0 = time.perf_counter()
    say = None if quiet else (lambda m: print(f"  {name}: {m}", file=sys.stderr, flush=True))
    bundle = build_bundle(net, X, digits=DIGITS, progress=say)
    dt = time.perf_counter() - t0
    path = out_dir / f"{name}.json"
    write_bundle(path, bundle)
    return path, dt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=PACKAGE_DIR, help="folder (default: the package)")
    p.add_argument("--only", nargs="*", choices=sorted(GOLDEN), help="bundles to write")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()}")
    for name in args.only or list(GOLDEN):
        path, dt = make(name, args.out, quiet=args.quiet)
        print(f"{name}: {path} [{dt:.1f} s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
