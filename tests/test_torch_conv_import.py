"""fastpath.from_torch on convolutional decoders: conv, transposed conv, average pooling,
eval-mode batch norm, Flatten / Unflatten / Identity / Dropout, composed into dense layers,
and max-pooling (MaxPool1d/2d, GroupMax: DGN max layers).

Tolerances: a converted decoder's forward pass equals torch's to 1e-12 relative to the
largest output (measured: <= 6.3e-16; composition only changes the summation order); the exact
log p(x) of an S = 1 conv decoder equals 1-D quadrature of torch's own forward pass to 1e-10
absolute in log p (measured <= 7e-15)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import needs_torch

pytestmark = needs_torch


def _randomise_bn(nn, mod, gen):
    """Non-trivial running statistics and affine parameters for every BatchNorm in mod."""
    import torch
    for m in mod.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(n, generator=gen, dtype=torch.float64))
                m.running_var.copy_(torch.rand(n, generator=gen, dtype=torch.float64) * 2 + 0.2)
                m.weight.copy_(torch.randn(n, generator=gen, dtype=torch.float64))
                m.bias.copy_(torch.randn(n, generator=gen, dtype=torch.float64))


# (name, builder(nn, S) -> Sequential, input_shape(S) or None): every supported module kind
DECODERS = [
    ("convT2d_relu_conv2d",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 18), nn.Unflatten(1, (2, 3, 3)),
         nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),   # (3, 6, 6)
         nn.ReLU(), nn.Conv2d(3, 2, 3, padding=1), nn.Flatten()),
     None),
    ("conv1d_circular_dilation_groups_convT1d",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 12), nn.Unflatten(1, (4, 3)),
         nn.Conv1d(4, 4, 3, padding=2, dilation=2, groups=2, padding_mode="circular"),
         nn.LeakyReLU(0.1),
         nn.ConvTranspose1d(4, 2, 4, stride=2, groups=2, bias=False),           # (2, 8)
         nn.Flatten(), nn.Linear(16, 5)),
     None),
    ("avgpool2d_abs_avgpool1d_reflect",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 32), nn.Unflatten(1, (2, 4, 4)), nn.AvgPool2d(2),          # (2, 2, 2)
         _abs()(), nn.Flatten(), nn.Unflatten(1, (2, 4)),
         nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False),
         nn.Conv1d(2, 3, 2, padding=1, padding_mode="reflect"), nn.Flatten()),   # (3, 5)
     None),
    ("batchnorm1d_2d_replicate",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 18),
         nn.Unflatten(1, (2, 3, 3)), nn.Conv2d(2, 3, 3, padding=1, padding_mode="replicate"),
         nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 4)),
     None),
    ("identity_dropout",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 5), nn.Dropout(0.3), nn.Identity(), nn.Linear(5, 6), nn.ReLU(),
         nn.Linear(6, 8), nn.Unflatten(-1, (2, 4)), nn.Dropout1d(0.2),
         nn.ConvTranspose1d(2, 1, 3), nn.Flatten()),
     None),
    ("mixed_activations_relu_abs_leaky",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 18), nn.Unflatten(1, (2, 3, 3)), nn.Conv2d(2, 2, 3, padding=1),
         nn.ReLU(), nn.Flatten(), nn.Linear(18, 6), _abs()(), nn.Linear(6, 4),
         nn.LeakyReLU(0.2), nn.Linear(4, 3)),
     None),
    ("consecutive_linear_layers",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 6), nn.Linear(6, 5), nn.LeakyReLU(0.3), nn.Linear(5, 7, bias=False),
         nn.Linear(7, 4)),
     None),
    ("conv_first_input_shape",
     lambda nn, S: nn.Sequential(
         nn.ConvTranspose2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 2, stride=1),
         nn.Flatten()),
     lambda S: (1, 1, S)),
    # max-pooling: overlapping windows clipped at the padded border, then an activation
    ("maxpool2d_overlap_padding_relu",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 32), nn.Unflatten(1, (2, 4, 4)), nn.MaxPool2d(3, stride=2, padding=1),
         nn.ReLU(), nn.Flatten(), nn.Linear(8, 5)),                                # (2, 2, 2)
     None),
    ("conv1d_relu_maxpool1d_dilation_ceil",        # the pool of the ReLU (an identity block)
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 12), nn.Unflatten(1, (2, 6)), nn.Conv1d(2, 2, 3, padding=1), nn.ReLU(),
         nn.MaxPool1d(2, stride=2, padding=1, dilation=2, ceil_mode=True),        # (2, 4)
         nn.Flatten(), nn.Linear(8, 4)),
     None),
    ("groupmax_leaky_maxpool1d_last",              # a pool right before the output
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 6), _group_max()([2, 3, 1]), nn.Linear(3, 4), nn.LeakyReLU(0.2),
         nn.Linear(4, 6), nn.Unflatten(1, (2, 3)), nn.MaxPool1d(2, stride=1)),     # (2, 2)
     None),
]


def _abs():
    from fastpath.torch_interop import Abs
    return Abs


def _group_max():
    from fastpath.torch_interop import GroupMax
    return GroupMax


def _build(builder, S, seed=0):
    import torch
    nn = torch.nn
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mod = builder(nn, S).double()
    _randomise_bn(nn, mod, gen)
    return mod.eval()


def _torch_forward(mod, Z, input_shape):
    import torch
    with torch.no_grad():
        out = mod(torch.from_numpy(Z.reshape(len(Z), *input_shape)))
    return out.reshape(len(Z), -1).numpy()


@pytest.mark.parametrize("S", [1, 2])
@pytest.mark.parametrize("name, builder, shape_of", DECODERS, ids=[d[0] for d in DECODERS])
def test_forward_equals_torch(name, builder, shape_of, S):
    import fastpath
    mod = _build(builder, S)
    input_shape = shape_of(S) if shape_of is not None else (S,)
    kw = {"input_shape": input_shape} if shape_of is not None else {}
    net = fastpath.from_torch(mod, 0.1, **kw)
    assert net.latent_dim == S == math.prod(input_shape)
    Z = np.random.default_rng(1).normal(size=(300, S)) * 2
    ref = _torch_forward(mod, Z, input_shape)
    assert net.data_dim == ref.shape[1]
    out = net.forward(Z)
    err = np.abs(out - ref).max() / np.abs(ref).max()
    assert err <= 1e-12, (name, err)
    # the hidden units change sign over these z: the kinks are exercised, not only one region
    if net.n_layers > 1:
        h = Z @ net.weights[0].T + net.biases[0]
        assert np.any((h > 0).any(axis=0) & (h < 0).any(axis=0))


@pytest.mark.parametrize("name, builder, shape_of", DECODERS[:4], ids=[d[0] for d in DECODERS[:4]])
def test_float32_module(name, builder, shape_of):
    """A float32 module converts through float64 (exact): it equals its own parameters run in
    float64 to rounding."""
    import torch

    import fastpath
    mod32 = _build(builder, 2).float()
    assert all(p.dtype == torch.float32 for p in mod32.parameters())
    net = fastpath.from_torch(mod32, 0.1)
    # the exact reference: the float32 parameters themselves, run in float64
    ref = _torch_forward(mod32.double(), np.random.default_rng(2).normal(size=(100, 2)), (2,))
    out = net.forward(np.random.default_rng(2).normal(size=(100, 2)))
    assert np.abs(out - ref).max() <= 1e-12 * np.abs(ref).max()


def test_log_marginal_matches_quadrature_of_torch_forward():
    """S = 1: exact log p(x) of a converted conv decoder = quadrature of torch's forward.

    p(x) = int N(x; f(z), sigma^2 I) N(z; 0, 1) dz with f the torch module itself, by
    scipy.integrate.quad on pieces split at the kinks of f (located from torch's own hidden
    pre-activations, which are affine in z for the first block), so every piece is smooth.
    """
    import torch
    from scipy import integrate

    import fastpath
    sigma2 = 0.05
    mod = _build(DECODERS[0][1], 1, seed=4)
    net = fastpath.from_torch(mod, sigma2)
    rng = np.random.default_rng(5)
    X = np.vstack([_torch_forward(mod, np.array([[z0]]), (1,))[0]
                   + rng.normal(size=net.data_dim) * np.sqrt(sigma2) for z0 in (-1.3, 0.4)])
    X = np.vstack([X, X[0] + 0.3])   # a point off the manifold too
    lp = fastpath.log_marginal(net, X)
    D = net.data_dim
    hidden = mod[:3]                 # Linear, Unflatten, ConvTranspose2d: before the ReLU
    with torch.no_grad():
        h0, h1 = (hidden(torch.tensor([[t]], dtype=torch.float64)).reshape(-1).numpy()
                  for t in (0.0, 1.0))
    slope = h1 - h0
    kinks = -h0[slope != 0] / slope[slope != 0]

    def log_integrand(z, x):
        with torch.no_grad():
            f = mod(torch.as_tensor(np.reshape(z, (-1, 1)), dtype=torch.float64)).numpy()
        return (-0.5 * np.sum((x - f) ** 2, axis=1) / sigma2
                - 0.5 * D * np.log(2 * np.pi * sigma2) - 0.5 * z ** 2 - 0.5 * np.log(2 * np.pi))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)         # thousands of one-sample calls: threads only cost here
    try:
        for x, got in zip(X, lp):
            grid = np.linspace(-10.0, 10.0, 20001)
            lg = log_integrand(grid, x)
            ref = lg.max()
            # outside [a, b] the integrand is below exp(-80) of its peak (grid step 1e-3)
            keep = grid[lg > ref - 80]
            a, b = keep[0] - 2e-3, keep[-1] + 2e-3
            inside = kinks[(kinks > a) & (kinks < b)]
            edges = np.unique(np.concatenate([[a, b], inside, np.linspace(a, b, 21)]))
            total = 0.0
            for lo, hi in zip(edges[:-1], edges[1:]):
                val, _ = integrate.quad(
                    lambda t, x=x, ref=ref: float(np.exp(log_integrand(np.array([t]), x)[0]
                                                         - ref)),
                    lo, hi, epsabs=0.0, epsrel=1e-12, limit=100)
                total += val
            quad_lp = ref + np.log(total)
            assert abs(got - quad_lp) <= 1e-10, (got, quad_lp)
    finally:
        torch.set_num_threads(threads)


def test_batchnorm_folding_exact():
    import torch

    import fastpath
    nn = torch.nn
    torch.manual_seed(0)
    mod = nn.Sequential(nn.Linear(2, 5), nn.BatchNorm1d(5, eps=1e-3), nn.ReLU(),
                        nn.Linear(5, 3)).double()
    _randomise_bn(nn, mod, torch.Generator().manual_seed(1))
    mod.eval()
    net = fastpath.from_torch(mod, 0.1)
    lin, bn = mod[0], mod[1]
    W, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    scale = bn.weight.detach().numpy() / np.sqrt(bn.running_var.numpy() + bn.eps)
    W_ref = scale[:, None] * W
    v_ref = scale * (b - bn.running_mean.numpy()) + bn.bias.detach().numpy()
    np.testing.assert_allclose(net.weights[0], W_ref, rtol=1e-14, atol=0)
    np.testing.assert_allclose(net.biases[0], v_ref, rtol=1e-13, atol=1e-15)
    Z = np.random.default_rng(0).normal(size=(200, 2)) * 2
    ref = _torch_forward(mod, Z, (2,))
    assert np.abs(net.forward(Z) - ref).max() <= 1e-12 * np.abs(ref).max()
    # the last layer is a plain Linear: copied bit for bit
    assert net.weights[1].tobytes() == mod[3].weight.detach().numpy().tobytes()


def test_round_trip_of_converted_conv_decoder():
    """DGN -> torch -> DGN stays bit-exact; the exported dense module agrees to rounding."""
    import torch

    import fastpath
    mod = _build(DECODERS[0][1], 2)
    net = fastpath.from_torch(mod, 0.1)
    dense = fastpath.to_torch(net)
    assert all(isinstance(m, (torch.nn.Linear, torch.nn.ReLU)) for m in dense)
    assert fastpath.from_torch(dense, 0.1) == net
    Z = np.random.default_rng(3).normal(size=(100, 2))
    ref = _torch_forward(mod, Z, (2,))
    assert np.abs(_torch_forward(dense, Z, (2,)) - ref).max() <= 1e-12 * np.abs(ref).max()


def _seq(*layers):
    import torch
    return torch.nn.Sequential(*layers).double().eval()


@pytest.mark.parametrize("build, kw, match", [
    # MaxPool1d/2d are read now (tests/test_torch_maxpool.py); these max-pools are not
    (lambda nn: _seq(nn.Linear(1, 16), nn.Unflatten(1, (1, 4, 4)),
                     nn.MaxPool2d(2, return_indices=True), nn.ReLU(), nn.Flatten(),
                     nn.Linear(4, 2)), {},
     r"'2': MaxPool2d\(return_indices=True\) returns a tuple"),
    (lambda nn: _seq(nn.Linear(1, 8), nn.Unflatten(1, (2, 2, 2)), nn.AdaptiveMaxPool2d(1)), {},
     "AdaptiveMaxPool2d, which is not supported: the max-pooling modules"),
    (lambda nn: _seq(nn.Linear(1, 18), nn.Unflatten(1, (2, 3, 3)), nn.Conv2d(2, 2, 3),
                     nn.Tanh(), nn.Flatten(), nn.Linear(2, 4)), {},
     r"'3' is Tanh, which is not a continuous piecewise-affine"),
    (lambda nn: _seq(nn.Linear(1, 4), nn.ReLU6(), nn.Linear(4, 2)), {}, "not supported yet"),
    (lambda nn: _seq(nn.Linear(1, 4), nn.ReLU(), nn.Upsample(scale_factor=2),
                     nn.Linear(8, 2)), {}, "Upsample, which from_torch does not support"),
    (lambda nn: _seq(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.ReLU(),
                     nn.Linear(4, 2)).train(), {}, r"BatchNorm1d\) is in training mode"),
    (lambda nn: _seq(nn.Linear(1, 4), nn.BatchNorm1d(4, track_running_stats=False),
                     nn.ReLU(), nn.Linear(4, 2)), {}, "track_running_stats=False"),
    (lambda nn: _seq(nn.Linear(1, 4), nn.ReLU(), nn.Dropout(0.5),
                     nn.Linear(4, 2)).train(), {}, r"Dropout\) is in training mode"),
    (lambda nn: _seq(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten()), {},
     r"input shape of layer '0' \(Conv2d\) is not known: pass input_shape"),
    (lambda nn: _seq(nn.Linear(1, 18), nn.ReLU(), nn.Conv2d(2, 2, 3)), {},
     r"Conv2d\) reads a 3-D tensor per sample.*shape \(18,\)"),
    (lambda nn: _seq(nn.Linear(1, 18), nn.Unflatten(1, (2, 3, 3)), nn.Conv2d(3, 2, 3)), {},
     r"Conv2d\) cannot be applied to the per-sample shape \(2, 3, 3\)"),
    (lambda nn: _seq(nn.Linear(1, 6), nn.Unflatten(1, (2, 3)), nn.ReLU(), nn.Linear(4, 2)),
     {}, r"Linear\(4, 2\) does not chain with the layers before it, which give shape \(2, 3\)"),
    (lambda nn: _seq(nn.Linear(2, 6), nn.Flatten(0)), {}, "merges the batch dimension"),
    (lambda nn: _seq(nn.Linear(1, 40), nn.ReLU(), nn.Unflatten(1, (1, 40)),
                     nn.ConvTranspose1d(1, 2, 3)), {"max_entries": 2000},
     r"84 x 40 = 3,360 entries, above max_entries=2,000"),
])
def test_refusals(build, kw, match):
    import torch

    import fastpath
    from dgn_core.exceptions import TorchConversionError
    with pytest.raises(TorchConversionError, match=match):
        fastpath.from_torch(build(torch.nn), 0.1, **kw)


def test_bad_input_shape():
    import torch

    import fastpath
    with pytest.raises(ValueError, match="input_shape"):
        fastpath.from_torch(torch.nn.Linear(2, 3), 0.1, input_shape=(0, 2))


def test_readme_conv_example():
    """The README's conv-decoder snippet converts to the widths its comment states."""
    import re
    from pathlib import Path

    import torch

    import fastpath
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
                 if "ConvTranspose2d" in b)
    ns: dict = {"nn": torch.nn, "fastpath": fastpath}
    exec(compile(block, "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert ns["net"].widths == (2, 108, 36)


def test_linear_behind_identity_is_copied_exactly():
    """Identity / eval Dropout before a Linear: the Linear is still copied bit for bit."""
    import torch

    import fastpath
    nn = torch.nn
    torch.manual_seed(0)
    mod = _seq(nn.Identity(), nn.Linear(2, 4), nn.ReLU(), nn.Dropout(0.2), nn.Linear(4, 3))
    with torch.no_grad():
        mod[4].weight[0, 0] = -0.0
    net = fastpath.from_torch(mod, 0.1)
    assert net.weights[0].tobytes() == mod[1].weight.detach().numpy().tobytes()
    assert net.weights[1].tobytes() == mod[4].weight.detach().numpy().tobytes()   # -0.0 too
    # an explicit input_shape that does not match the first Linear
    from dgn_core.exceptions import TorchConversionError
    with pytest.raises(TorchConversionError, match=r"before it, which give shape \(3,\)"):
        fastpath.from_torch(mod, 0.1, input_shape=(3,))
