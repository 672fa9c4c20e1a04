"""Bivariate orthants with |h| close to |k| (q = |h^2 - k^2|/8 < 0.3): rules compared.

    python benchmarks/bvn_small_q.py            # ~1 min

These elements are half of an S = 2 E-step's bivariate orthants (thin cones near the
Gaussian's mean). Plackett's integrand has a knee of width sqrt(q) at u = 0 there, so the
24-node rule of fastpath._bvn fails; fastpath._bvn uses Owen's T where accurate, then the
Plackett rules of _Q_TIERS, then (q < 1e-7) the conditioning integral. This script
measures, against the conditioning kernel (validated against mpmath in
tests/test_orthant_fast_bvn.py), per q band, on random elements and on the elements of a
real E-step, the speed and accuracy of

* the Plackett rule in u with n nodes (_Q_TIERS above q = 0.03), and
* the rule in v, u = 2 sqrt(q) sinh v, which turns g(u) du into sech(v - v0) dv / 2 and
  removes the knee (_Q_TIERS below q = 0.03).

It is the measurement behind the choice of _Q_TIERS.

Printed: max |error| / tolerance (tolerance 1e-13 + 1e-14 |log P| where P >= 1e-20, else
1e-10 + ...; <= 1 passes) and elements per second.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import fastpath
import fastpath.orthant as fo
from fastpath.distributions import _estep_chunks
from verified_dgn import DGN


def plackett(h, k, rho, nodes, sinh):
    return fo._log_bvn_plackett(h, k, rho, rule=fo._gl01(nodes), sinh=sinh)


def estep_elements():
    """The q < 0.3 bivariate orthants of an S = 2 E-step (2000 points, (2, 8, 8, 2))."""
    got = []
    orig = fo._log_bvn

    def spy(h, k, rho):
        got.append(tuple(np.asarray(v, float).ravel().copy()
                         for v in np.broadcast_arrays(h, k, rho)))
        return orig(h, k, rho)

    # the callers of the k = 2 kernel: the dispatcher of the orthant kernels and the cones
    # (the S = 2 cone sums run the numpy cone algebra here: the compiled kernel calls the
    # compiled k = 2 kernel directly)
    import fastpath._cone_algebra as fc
    import fastpath._tvn as ft
    from fastpath import _cones
    saved = ft._log_bvn, fc._log_bvn
    ft._log_bvn = fc._log_bvn = spy
    _cones.COMPILED[0] = False
    try:
        net = DGN.random((2, 8, 8, 2), activation="leaky_relu", seed=0, noise_var=0.05)
        P = fastpath.partition(net)
        X, _ = net.sample(2000, seed=1)
        for _ in _estep_chunks(net, P, X):
            pass
    finally:
        ft._log_bvn, fc._log_bvn = saved
        _cones.COMPILED[0] = True
    h, k, rho = (np.concatenate([g[i] for g in got]) for i in range(3))
    ok = np.isfinite(h) & np.isfinite(k) & (np.abs(rho) < 1) & (rho != 0)
    return h[ok], k[ok], rho[ok]


def banded(h, k, rho, bands):
    """Per band (lo, hi) of q holding at least 50 of the elements: (lo, hi, h, k, rho, the
    conditioning kernel's reference log P, the tolerance, the reference's seconds)."""
    q = np.abs(h - k) * np.abs(h + k) / 8
    for lo, hi in bands:
        sel = (q >= lo) & (q < hi)
        if sel.sum() < 50:
            continue
        a, b, c = h[sel], k[sel], rho[sel]
        t = time.perf_counter()
        ref = fo._log_bvn_cond(a, b, c)
        dt = time.perf_counter() - t
        tol = np.where(np.abs(ref) <= 46, 1e-13, 1e-10) + 1e-14 * np.abs(ref)
        yield lo, hi, a, b, c, ref, tol, dt


def main() -> None:
    rng = np.random.default_rng(6)
    n = 200000
    h = rng.uniform(-12, 8, n)
    k = np.sign(rng.normal(size=n)) * h + rng.normal(size=n) * np.exp(rng.uniform(-10, 1, n))
    rho = np.tanh(rng.uniform(-9, 9, n))
    sets = {"random": (h, k, rho), "E-step": estep_elements()}
    bands = ((0.1, 0.3), (0.03, 0.1), (0.01, 0.03), (1e-3, 1e-2), (1e-5, 1e-3), (1e-7, 1e-5),
             (1e-9, 1e-7))
    for name, (h, k, rho) in sets.items():
        print(f"== {name} elements")
        for lo, hi, a, b, c, ref, tol, dt in banded(h, k, rho, bands):
            rate_c = a.size / dt
            cols = []
            for sinh, node_list in ((False, (48, 64, 96)), (True, (32, 40, 48))):
                for nodes in node_list:
                    t = time.perf_counter()
                    got = plackett(a, b, c, nodes, sinh)
                    rate = a.size / (time.perf_counter() - t)
                    cols.append(f"{'sinh' if sinh else 'u'}{nodes} {np.max(np.abs(got - ref) / tol):8.2g}"
                                f" {rate / 1e6:4.2f}M/s")
            print(f"q in [{lo:g}, {hi:g}) n={a.size:6d} cond {rate_c / 1e6:4.2f}M/s | " + " | ".join(cols))


if __name__ == "__main__":
    main()
