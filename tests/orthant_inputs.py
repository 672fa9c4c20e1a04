"""Random standardised orthant problems over all magnitudes, shared by the compiled-kernel
tests and their benchmarks (benchmarks/bvn_jit.py, benchmarks/tvn_jit.py)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Arr = NDArray[np.float64]


def random_bvn(n: int, seed: int, tiny_rho: bool = False) -> tuple[Arr, Arr, Arr]:
    """(h, k, rho): h, k in +-40 (half in +-4), a fifth with |k| ~ |h| (q down to
    ~1e-12 h^2), correlations tanh(1.5 z), a tenth within 1e-12..1e-2 of +-1; with
    ``tiny_rho`` also a tenth within 1e-300..1e-3 of 0 (drawn last: the rest is the same)."""
    rng = np.random.default_rng(seed)
    h = np.where(rng.random(n) < 0.5, rng.uniform(-40, 40, n), rng.uniform(-4, 4, n))
    k = np.where(rng.random(n) < 0.5, rng.uniform(-40, 40, n), rng.uniform(-4, 4, n))
    close = rng.random(n) < 0.2
    k[close] = np.sign(rng.normal(size=close.sum())) * h[close] * (
        1 + 10 ** rng.uniform(-12, -1, close.sum()))
    rho = np.tanh(1.5 * rng.normal(size=n))
    near = rng.random(n) < 0.1
    rho[near] = np.sign(rho[near]) * (1 - 10 ** rng.uniform(-12, -2, near.sum()))
    if tiny_rho:
        zero = rng.random(n) < 0.1
        rho[zero] = np.sign(rho[zero]) * 10 ** rng.uniform(-300, -3, zero.sum())
    return h, k, rho


def random_tvn(n: int, seed: int) -> tuple[Arr, Arr]:
    """(h (m, 3), r (m, 3) = (r01, r02, r12)), m <= n: bounds in +-3 or +-30; correlations
    uniform on the elliptope, 10% with one within 1e-8..1e-1 of +-1, 10% with one tiny
    (1e-13..1e-10) beside larger ones."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(-1, 1, (3 * n, 3))
    det = 1 + 2 * r[:, 0] * r[:, 1] * r[:, 2] - (r ** 2).sum(1)
    r = r[det > 0][:n]
    m = rng.random(r.shape[0])
    sel = m < 0.1
    r[sel, 0] = np.sign(r[sel, 0]) * (1 - 10 ** rng.uniform(-8, -1, sel.sum()))
    sel = (m > 0.1) & (m < 0.2)
    r[sel, 1] = r[sel, 1] * 10 ** rng.uniform(-13, -10, sel.sum())
    det = 1 + 2 * r[:, 0] * r[:, 1] * r[:, 2] - (r ** 2).sum(1)
    r = r[det > 0]
    scale = np.where(rng.random(r.shape[0]) < 0.5, 3.0, 30.0)
    h = rng.uniform(-1, 1, (r.shape[0], 3)) * scale[:, None]
    return h, r
