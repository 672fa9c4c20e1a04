"""Exact log p(x) of every converted torch decoder against integrating torch's own forward
pass: S = 1 by piecewise quadrature, S = 2 by a midpoint grid.

The reference never uses the DGN: p(x) = int N(x; f(z), sigma^2 I) N(z; 0, I) dz with f the
torch module. For S = 1 the kinks of f are located from torch itself (the inputs of its
activation modules, captured with forward hooks, change sign on a fine grid and are refined
with brentq on the same hooked values; for a max-pooling module, MaxPool1d/2d or GroupMax,
the differences of every two inputs of one pooling window, which change sign where the
window's argmax can switch: a superset of its kinks, the extra breakpoints only split smooth
pieces), so quad integrates smooth pieces. The windows come from torch too (the pool applied
to one-hot inputs), not from the DGN. Tolerances are stated where they are used, with the
measured errors beside them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.special import logsumexp

from tests.conftest import needs_torch
from tests.test_torch_conv_import import DECODERS, _build, _torch_forward

pytestmark = needs_torch

SIGMA2 = 0.1
#: the S = 2 grids: N_COARSE^2 and (2 N_COARSE)^2 midpoints
N_COARSE = 200


def _pool_pairs(m, x):
    """(i, j) index arrays of every two inputs of one window of the max-pool ``m`` on the
    per-sample input shape of ``x``, flattened in C order; windows from torch itself."""
    import itertools

    import torch

    from fastpath.torch_interop import GroupMax
    if isinstance(m, GroupMax):
        starts = np.cumsum([0, *m.sizes[:-1]])
        windows = [np.arange(s, s + k) for s, k in zip(starts, m.sizes)]
    else:
        shape = tuple(x.shape[1:])
        n = math.prod(shape)
        with torch.no_grad():       # forward(), not m(...): no hook; one-hot e_j -> 1 where j is
            member = m.forward(torch.eye(n, dtype=x.dtype).reshape(n, *shape))   # in a window
        windows = [np.flatnonzero(row) for row in member.reshape(n, -1).T.numpy()]
    pairs = [p for w in windows for p in itertools.combinations(w, 2)]
    return np.array([p[0] for p in pairs], dtype=np.intp), np.array([p[1] for p in pairs],
                                                                     dtype=np.intp)


class _Hooked:
    """torch's forward pass of ``mod`` at latent points, and the inputs of its activation
    modules (the pre-activations, whose sign changes are the kinks of f) and, for its
    max-pooling modules, the differences of two inputs of one window."""

    def __init__(self, mod, input_shape):
        import torch

        from fastpath.torch_interop import Abs, GroupMax
        self.mod, self.shape = mod, input_shape
        self.captured: list = []
        acts = (torch.nn.ReLU, torch.nn.LeakyReLU, Abs)
        pools = (torch.nn.MaxPool1d, torch.nn.MaxPool2d, GroupMax)
        pairs: dict = {}

        def pool_hook(m, inp, _out):
            x = inp[0]
            if id(m) not in pairs:
                pairs[id(m)] = _pool_pairs(m, x)
            i, j = pairs[id(m)]
            flat = x.reshape(len(x), -1)
            self.captured.append(flat[:, i] - flat[:, j])

        for m in mod.modules():
            if isinstance(m, acts):
                m.register_forward_hook(lambda _m, inp, _out: self.captured.append(inp[0]))
            elif isinstance(m, pools):
                m.register_forward_hook(pool_hook)

    def __call__(self, Z):
        self.captured = []
        out = _torch_forward(self.mod, Z, self.shape)
        pre = (np.concatenate([c.reshape(len(Z), -1).numpy() for c in self.captured], axis=1)
               if self.captured else np.zeros((len(Z), 0)))
        return out, pre


def _kinks(f: _Hooked, lo: float, hi: float) -> list[float]:
    grid = np.linspace(lo, hi, 20001)
    _, pre = f(grid[:, None])
    out = []
    for k in range(pre.shape[1]):
        s = np.sign(pre[:, k])
        for i in np.flatnonzero(s[:-1] * s[1:] < 0):
            g = lambda t, k=k: float(f(np.array([[t]]))[1][0, k])  # noqa: E731
            out.append(optimize.brentq(g, grid[i], grid[i + 1], xtol=1e-15))
    return sorted(out)


def _log_joint(out: np.ndarray, Z: np.ndarray, x: np.ndarray) -> np.ndarray:
    D, S = out.shape[1], Z.shape[1]
    return (-0.5 * np.sum((x - out) ** 2, axis=1) / SIGMA2 - 0.5 * D * math.log(2 * math.pi * SIGMA2)
            - 0.5 * np.sum(Z ** 2, axis=1) - 0.5 * S * math.log(2 * math.pi))


def _points(f: _Hooked, S: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(2, S))
    out, _ = f(Z)
    X = out + rng.normal(size=out.shape) * math.sqrt(SIGMA2)
    return np.vstack([X, X[0] + 0.2])          # and a point off the manifold


def _setup(name, builder, shape_of, S):
    import fastpath
    mod = _build(builder, S, seed=7)
    input_shape = shape_of(S) if shape_of is not None else (S,)
    kw = {"input_shape": input_shape} if shape_of is not None else {}
    net = fastpath.from_torch(mod, SIGMA2, **kw)
    return net, _Hooked(mod, input_shape)


@pytest.mark.parametrize("name, builder, shape_of", DECODERS, ids=[d[0] for d in DECODERS])
def test_s1_log_marginal_equals_quadrature_of_torch(name, builder, shape_of):
    import torch

    import fastpath
    net, f = _setup(name, builder, shape_of, 1)
    X = _points(f, 1, seed=11)
    lp = fastpath.log_marginal(net, X)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)         # thousands of one-sample calls: threads only cost here
    try:
        kinks = _kinks(f, -10.0, 10.0)
        for x, got in zip(X, lp):
            grid = np.linspace(-10.0, 10.0, 20001)
            lg = _log_joint(f(grid[:, None])[0], grid[:, None], x)
            ref = lg.max()
            keep = grid[lg > ref - 80]     # outside, below e^-80 of the peak
            a, b = keep[0] - 2e-3, keep[-1] + 2e-3
            edges = np.unique(np.concatenate([[a, b], [k for k in kinks if a < k < b],
                                              np.linspace(a, b, 21)]))
            total = 0.0
            for lo, hi in zip(edges[:-1], edges[1:]):
                total += integrate.quad(
                    lambda t, x=x, ref=ref: float(np.exp(
                        _log_joint(f(np.array([[t]]))[0], np.array([[t]]), x)[0] - ref)),
                    lo, hi, epsabs=0.0, epsrel=1e-12, limit=100)[0]
            # quad at epsrel 1e-12 on smooth pieces; measured <= 2.1e-14 over the decoders
            # (the three max-pool decoders, with h21's fast partition: <= 8.9e-16)
            assert abs(got - (ref + math.log(total))) <= 1e-10, (name, got, ref + math.log(total))
    finally:
        torch.set_num_threads(threads)


def _box(f: _Hooked, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box where the log joint on a coarse grid of [-8, 8]^2 is within 60 nats of its
    maximum, padded by two coarse cells (outside it the integrand is below e^-60 of its peak
    up to the coarse grid's resolution)."""
    t = np.linspace(-8.0, 8.0, 241)
    Zc = np.stack(np.meshgrid(t, t, indexing="ij"), axis=-1).reshape(-1, 2)
    lc = _log_joint(f(Zc)[0], Zc, x)
    inside = Zc[lc > lc.max() - 60]
    pad = 2 * (t[1] - t[0])
    return inside.min(axis=0) - pad, inside.max(axis=0) + pad


def _grid_s2(f: _Hooked, x: np.ndarray, box: tuple[np.ndarray, np.ndarray], n: int) -> float:
    """log p(x) by the midpoint rule on an n x n grid of ``box``."""
    lo, hi = box
    h = (hi - lo) / n
    axes = [lo[i] + h[i] * (np.arange(n) + 0.5) for i in range(2)]
    Z = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    return float(logsumexp(_log_joint(f(Z)[0], Z, x)) + math.log(h[0] * h[1]))


# the grids of the two largest decoders (~15 s each, torch's forward pass) run with
# --runslow; their modules (Conv1d/2d, ConvTranspose1d/2d) are in the quick decoders too
_SLOW_GRIDS = {"convT2d_relu_conv2d", "conv1d_circular_dilation_groups_convT1d"}


@pytest.mark.parametrize("name, builder, shape_of", [
    pytest.param(*d, marks=pytest.mark.slow) if d[0] in _SLOW_GRIDS else d for d in DECODERS],
    ids=[d[0] for d in DECODERS])
def test_s2_log_marginal_equals_a_grid_over_torch(name, builder, shape_of):
    import torch

    import fastpath
    net, f = _setup(name, builder, shape_of, 2)
    X = _points(f, 2, seed=12)
    lp = fastpath.log_marginal(net, X)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)         # the same cost on any machine
    try:
        grids = [(_grid_s2(f, x, box, N_COARSE), _grid_s2(f, x, box, 2 * N_COARSE))
                 for x, box in ((x, _box(f, x)) for x in X)]
    finally:
        torch.set_num_threads(threads)
    for got, (coarse, fine) in zip(lp, grids):
        # the midpoint rule's error is O(h^2) away from kinks and O(h) on the cells a kink
        # crosses; 3 |fine - coarse| bounds it, with a floor of 1e-7 where the two grids agree
        # by chance. Measured (n = 200 / 400, 8 decoders x 3 points): |fine - coarse| 2e-9 to
        # 1.8e-5, |exact - fine| 9e-10 to 1.1e-5, at most 2.1 |fine - coarse| where it
        # exceeds 1e-7; a wrong region or map moves log p by far more than 1e-4. The three
        # max-pool decoders (with h21's fast partition merged): |exact - fine| 1.4e-8 to
        # 1.1e-5, at most 1.6 |fine - coarse| where it exceeds 1e-7
        assert abs(got - fine) <= max(3 * abs(fine - coarse), 1e-7), (name, got, fine, coarse)
        assert abs(got - fine) <= 1e-4, (name, got, fine)


_MAX_DECODERS = [d for d in DECODERS if any(
    k in d[0] for k in ("maxpool", "groupmax"))]


@pytest.mark.parametrize("name, builder, shape_of", _MAX_DECODERS,
                         ids=[d[0] for d in _MAX_DECODERS])
def test_s1_kinks_of_max_pool_decoders_split_torch_into_affine_pieces(name, builder,
                                                                       shape_of):
    """The kink finder (DGN-free) is complete for the max-pool decoders: between two
    consecutive breakpoints torch's f is affine (its midpoint value is the mean of the end
    values to 1e-9 relative; a missed kink inside a piece of length >= 1e-6 breaks that by
    far more), and f is not affine on [-4, 4]. Without the pool breakpoints the first check
    fails for two of these three decoders (checked by hand; in the third the pool's argmax
    only switches where a ReLU kink already is, or outside [-4, 4])."""
    import torch
    _, f = _setup(name, builder, shape_of, 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        kinks = _kinks(f, -4.0, 4.0)
    finally:
        torch.set_num_threads(threads)
    edges = np.unique(np.concatenate([[-4.0, 4.0], kinks]))
    lo, hi = edges[:-1], edges[1:]
    keep = hi - lo > 1e-6
    lo, hi = lo[keep], hi[keep]
    f_lo, f_hi, f_mid = (f(t[:, None])[0] for t in (lo, hi, (lo + hi) / 2))
    scale = np.abs(f(np.linspace(-4, 4, 101)[:, None])[0]).max()
    assert np.abs(f_mid - (f_lo + f_hi) / 2).max() <= 1e-9 * scale, name
    # kinks inside the interval: the check above is not vacuous
    grid = np.linspace(-4.0, 4.0, 801)[:, None]
    out = f(grid)[0]
    second = np.diff(out, n=2, axis=0)
    assert np.abs(second).max() > 1e-6 * scale
