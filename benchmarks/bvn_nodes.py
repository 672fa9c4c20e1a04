"""The k = 2 orthant's Plackett rules: accuracy and compiled cost against their node count.

    python benchmarks/bvn_nodes.py            # ~3 min

Two questions behind the choice of nodes in fastpath._bvn (24 / 32 / 48 in u, 32-48 in
v = asinh(u / 2 sqrt q)), per band of q = |h^2 - k^2| / 8:

1. Accuracy: max |error| / tolerance of the rule with n nodes against the conditioning
   kernel (``fastpath.orthant._log_bvn_cond``, validated against mpmath in
   tests/test_orthant_fast_bvn.py), tolerance 1e-13 + 1e-14 |log P| where P >= 1e-20 (else
   1e-10 + ...); <= 1 passes, ~0.1 is the reference's own rounding. On random elements and
   on the bivariate orthants of an S = 2 E-step (``bvn_small_q.estep_elements``).
2. Cost: ns per element of the compiled rule (``fastpath._jit_bvn._plackett``: the
   Plackett integral plus its base term, log Phi(h) + log Phi(k) or log(Phi(h) - Phi(-k)),
   and the log-sum), one thread, min of 3.

Measured 2026-12-07 (load ~1): the node loop is not where the time goes. u16 185 ns,
u24 206 ns, u48 263 ns per element: ~160 ns are fixed (two log Phi at 27-38 ns each, the
logs and the window set-up), ~2.2 ns per node; the rules in v cost 440-560 ns. A rule with
fewer nodes would save at most ~25% of the k = 2 kernel, and only u20 for q >= 2.4 passes
with a margin (0.15-0.19 of the tolerance); the lever for the S = 2 E-step is the fixed
per-orthant cost (log Phi) instead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

BANDS = ((0.03, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.2), (1.2, 2.4), (2.4, 5.0), (5.0, 20.0),
         (20.0, np.inf))
RULES = ((False, (16, 20, 24, 32, 48)), (True, (20, 24, 32)))


def _elements(rng, n):
    h = rng.uniform(-12, 8, n)
    k = np.sign(rng.normal(size=n)) * h + rng.normal(size=n) * np.exp(rng.uniform(-6, 2.5, n))
    rho = np.tanh(rng.uniform(-9, 9, n))
    return h, k, rho


def accuracy() -> None:
    from bvn_small_q import banded, estep_elements, plackett

    rng = np.random.default_rng(7)
    sets = {"random": _elements(rng, 300000), "E-step": estep_elements()}
    for name, (h, k, rho) in sets.items():
        print(f"== accuracy, {name} elements (max error / tolerance)")
        for lo, hi, a, b, c, ref, tol, _ in banded(h, k, rho, BANDS):
            cols = []
            for sinh, nodes in RULES:
                for n in nodes:
                    got = plackett(a, b, c, n, sinh)
                    cols.append(f"{'v' if sinh else 'u'}{n} {np.max(np.abs(got - ref) / tol):7.2g}")
            print(f"q [{lo:g}, {hi:g}) n={a.size:6d} | " + " | ".join(cols), flush=True)


def cost() -> None:
    from numba import njit

    from fastpath._jit_bvn import BUF_SIZE, _plackett
    from fastpath._jit_special import gl_rule

    @njit
    def run(h, k, rho, x, w, sinh, buf, out):
        for i in range(h.size):
            out[i] = _plackett(h[i], k[i], rho[i], x, w, sinh[0], buf)

    rng = np.random.default_rng(1)
    print("== compiled cost, ns per element (min of 3)")
    for lo, hi in BANDS[:6]:
        h, k, _ = _elements(rng, 2_000_000)
        q = np.abs(h - k) * np.abs(h + k) / 8
        m = (q >= lo) & (q < hi)
        h, k = h[m][:100000], k[m][:100000]
        rho = np.tanh(rng.uniform(-3, 3, h.size))
        out = np.empty(h.size)
        buf = np.empty(BUF_SIZE)
        cols = []
        for sinh, nodes in RULES:
            for n in nodes:
                x, w = gl_rule(n)
                s = np.array([sinh])
                run(h[:10], k[:10], rho[:10], x, w, s, buf, out)
                best = np.inf
                for _ in range(3):
                    t = time.perf_counter()
                    run(h, k, rho, x, w, s, buf, out)
                    best = min(best, time.perf_counter() - t)
                cols.append(f"{'v' if sinh else 'u'}{n} {best / h.size * 1e9:4.0f}")
        print(f"q [{lo:g}, {hi:g}) n={h.size:6d} | " + " | ".join(cols), flush=True)


if __name__ == "__main__":
    accuracy()
    cost()
