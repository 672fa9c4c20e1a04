"""fastpath.to_torch / fastpath.from_torch: exact round trips, equal forward passes, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from dgn_core.model import DGN
from tests.conftest import needs_torch

pytestmark = needs_torch

NETS = [
    {"widths": (1, 8, 8, 2), "activation": "relu"},
    {"widths": (2, 5, 3), "activation": "leaky_relu", "slope": 0.1},
    {"widths": (3, 4, 6, 5, 7), "activation": "abs"},
    {"widths": (2, 4), "activation": "relu"},     # no hidden layer
    # per-layer activations and slopes
    {"widths": (2, 5, 4, 6, 3), "activation": ["abs", "relu", "leaky_relu"], "slope": 0.3},
    {"widths": (1, 4, 4, 2), "activation": ["leaky_relu", "leaky_relu"], "slope": [0.05, 0.5]},
]


def _net(kw, seed=0, noise_var=0.02):
    return DGN.random(kw["widths"], activation=kw["activation"], slope=kw.get("slope"),
                      seed=seed, noise_var=noise_var)


@pytest.mark.parametrize("kw", NETS)
def test_round_trip_bitwise_float64(kw):
    import fastpath
    net = _net(kw)
    mod = fastpath.to_torch(net)
    back = fastpath.from_torch(mod, net.noise_var)
    assert back == net                      # DGN.__eq__ compares arrays with array_equal
    for W, W2 in zip(net.weights, back.weights):
        assert W.tobytes() == W2.tobytes()  # bitwise, signs of zeros included
    # and the other way: torch -> DGN -> torch keeps every parameter bit
    mod2 = fastpath.to_torch(back)
    for p, p2 in zip(mod.parameters(), mod2.parameters()):
        assert p.dtype == p2.dtype
        assert p.detach().numpy().tobytes() == p2.detach().numpy().tobytes()


@pytest.mark.parametrize("kw", NETS)
def test_forward_equal(kw):
    import torch

    import fastpath
    net = _net(kw, seed=3)
    Z = np.random.default_rng(1).normal(size=(200, net.latent_dim)) * 3
    with torch.no_grad():
        out = fastpath.to_torch(net)(torch.from_numpy(Z)).numpy()
        out32 = fastpath.to_torch(net, dtype="float32")(torch.from_numpy(Z).float()).numpy()
    # float64: same operations in the same order up to BLAS summation order -> a few ulps
    ref = net.forward(Z)
    np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())
    # float32: rounding of weights and inputs (~6e-8 relative) accumulated over <= 4 layers
    np.testing.assert_allclose(out32, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_float32_module_converts_exactly():
    import torch

    import fastpath
    net = _net(NETS[0])
    mod = fastpath.to_torch(net, dtype=torch.float32)
    assert all(p.dtype == torch.float32 for p in mod.parameters())
    back = fastpath.from_torch(mod, 0.1)
    for W, lin in zip(back.weights, [m for m in mod if isinstance(m, torch.nn.Linear)]):
        # float32 -> float64 is exact: the DGN holds the float32 values themselves
        assert np.array_equal(W, lin.weight.detach().double().numpy())
        assert np.array_equal(W.astype(np.float32), lin.weight.detach().numpy())


def test_module_structure_and_activations():
    import torch

    import fastpath
    from fastpath.torch_interop import Abs
    mod = fastpath.to_torch(_net(NETS[2]))
    kinds = [type(m) for m in mod]
    assert kinds == [torch.nn.Linear, Abs, torch.nn.Linear, Abs, torch.nn.Linear, Abs,
                     torch.nn.Linear]
    mod = fastpath.to_torch(_net(NETS[1]))
    assert isinstance(mod[1], torch.nn.LeakyReLU) and mod[1].negative_slope == 0.1
    assert all(p.requires_grad for p in mod.parameters())
    mod = fastpath.to_torch(_net(NETS[1]), requires_grad=False)
    assert not any(p.requires_grad for p in mod.parameters())


def test_from_torch_user_module():
    """A module built by a user: bias-free layers, nested Sequential, LeakyReLU(0) = ReLU."""
    import torch

    import fastpath
    torch.manual_seed(0)
    mod = torch.nn.Sequential(
        torch.nn.Sequential(torch.nn.Linear(2, 6, bias=False), torch.nn.LeakyReLU(0.0)),
        torch.nn.Linear(6, 5), torch.nn.ReLU(inplace=True), torch.nn.Linear(5, 3),
    ).double()
    net = fastpath.from_torch(mod, noise_var=[0.1, 0.2, 0.3])
    assert net.activation == "relu" and net.widths == (2, 6, 5, 3)
    assert np.array_equal(net.biases[0], np.zeros(6))
    np.testing.assert_array_equal(net.noise_var, [0.1, 0.2, 0.3])
    Z = np.random.default_rng(0).normal(size=(50, 2))
    with torch.no_grad():
        np.testing.assert_allclose(mod(torch.from_numpy(Z)).numpy(), net.forward(Z),
                                   rtol=1e-13, atol=1e-14)
    # LeakyReLU(-1) is the absolute value; a single Linear is a net without hidden layers
    m2 = torch.nn.Sequential(torch.nn.Linear(1, 3), torch.nn.LeakyReLU(-1.0), torch.nn.Linear(3, 2))
    assert fastpath.from_torch(m2, 0.1).activation == "abs"
    lin = torch.nn.Linear(2, 3)
    n1 = fastpath.from_torch(lin, 0.5, prior_cov=np.diag([1.0, 2.0]))
    assert n1.n_layers == 1 and n1.n_hidden_units == 0
    np.testing.assert_array_equal(n1.prior_cov, np.diag([1.0, 2.0]))


def test_abs_module_pickles():
    import fastpath
    mod = fastpath.to_torch(_net(NETS[2]))
    mod2 = pickle.loads(pickle.dumps(mod))
    assert fastpath.from_torch(mod2, 0.02) == _net(NETS[2])


@pytest.mark.parametrize("build, match", [
    (lambda nn: nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 2)), "Tanh"),
    (lambda nn: nn.Sequential(nn.Linear(1, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)),
     "BatchNorm1d"),
    (lambda nn: nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Linear(4, 2)), "Conv2d"),
    (lambda nn: nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.1), nn.Linear(4, 2)), "Dropout"),
    (lambda nn: nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU()),
     "ends with an activation"),
    (lambda nn: nn.Sequential(nn.ReLU(), nn.Linear(1, 2)), "starts with"),
    (lambda nn: nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.ReLU(), nn.Linear(4, 2)),
     "two activations"),
    (lambda nn: nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(3, 2)), "chain"),
    (lambda nn: nn.Sequential(nn.Linear(1, 4), nn.LeakyReLU(1.5), nn.Linear(4, 2)),
     "negative_slope"),
    (lambda nn: nn.Sequential(), "empty"),
])
def test_from_torch_rejects(build, match):
    import torch

    import fastpath
    from fastpath.torch_interop import TorchConversionError
    with pytest.raises(TorchConversionError, match=match):
        fastpath.from_torch(build(torch.nn), 0.1)


def test_from_torch_bad_arguments():
    import torch

    import fastpath
    from fastpath.torch_interop import TorchConversionError
    with pytest.raises(TypeError, match="Sequential"):
        fastpath.from_torch(torch.nn.ReLU(), 0.1)
    mod = torch.nn.Sequential(torch.nn.Linear(1, 2))
    with torch.no_grad():
        mod[0].weight[0, 0] = float("nan")
    with pytest.raises(TorchConversionError, match="NaN"):
        fastpath.from_torch(mod, 0.1)
    good = torch.nn.Sequential(torch.nn.Linear(1, 2))
    with pytest.raises(ValueError, match="noise_var"):
        fastpath.from_torch(good, -1.0)
    with pytest.raises(TypeError, match="DGN"):
        fastpath.to_torch(good)
    with pytest.raises(ValueError, match="dtype"):
        fastpath.to_torch(_net(NETS[0]), dtype="float16")


def test_clear_error_without_torch(monkeypatch):
    """torch is optional: without it the functions say how to install it."""
    import sys

    import fastpath.torch_interop as ti
    net = _net(NETS[0])
    monkeypatch.setitem(sys.modules, "torch", None)     # `import torch` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install"):
        ti.to_torch(net)
    with pytest.raises(ImportError, match=r"optional dependency"):
        ti.from_torch(object(), 0.1)


def test_from_torch_reads_per_layer_activations():
    """Each activation module becomes its hidden layer's activation: the DGN's forward pass
    is the module's, and the round trip restores the same modules."""
    import torch

    import fastpath
    from fastpath.torch_interop import Abs
    nn = torch.nn
    torch.manual_seed(0)
    mod = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 4), Abs(), nn.Linear(4, 4),
                        nn.LeakyReLU(0.2), nn.Linear(4, 3), nn.LeakyReLU(0.05),
                        nn.Linear(3, 2)).double()
    net = fastpath.from_torch(mod, 0.1)
    assert net.activation == "mixed"
    assert net.activations == ("relu", "abs", "leaky_relu", "leaky_relu")
    assert net.slopes == (0.0, -1.0, 0.2, 0.05)
    Z = np.random.default_rng(2).normal(size=(300, 2)) * 2
    with torch.no_grad():
        out = mod(torch.from_numpy(Z)).numpy()
    # the same float64 operations in the same order: equal to a few ulps (BLAS order)
    np.testing.assert_allclose(net.forward(Z), out, rtol=1e-13, atol=1e-13 * np.abs(out).max())
    back = fastpath.to_torch(net)
    kinds = [type(m).__name__ for m in back]
    assert kinds == [type(m).__name__ for m in mod]
    slopes = [m.negative_slope for m in back if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2, 0.05]
    # same activations throughout: an ordinary one-activation DGN
    same = nn.Sequential(nn.Linear(1, 3), nn.LeakyReLU(0.1), nn.Linear(3, 3), nn.LeakyReLU(0.1),
                         nn.Linear(3, 2))
    assert fastpath.from_torch(same, 0.1).activation == "leaky_relu"


def test_from_torch_reads_prelu_with_one_slope():
    """nn.PReLU() is leaky-ReLU with a learned slope: its (float32) weight becomes the layer's
    slope exactly; per-channel PReLU and slopes outside the DGN's range are refused."""
    import torch

    import fastpath
    from fastpath.torch_interop import TorchConversionError
    nn = torch.nn
    torch.manual_seed(1)
    p1, p2 = nn.PReLU(init=0.3), nn.PReLU(init=-1.0)
    mod = nn.Sequential(nn.Linear(2, 5), p1, nn.Linear(5, 4), p2, nn.Linear(4, 3))
    net = fastpath.from_torch(mod, 0.1)
    assert net.activations == ("leaky_relu", "abs")
    assert net.slopes[0] == float(np.float32(0.3))     # the float32 weight, exactly
    Z = np.random.default_rng(3).normal(size=(200, 2)) * 2
    with torch.no_grad():
        ref = mod.double()(torch.from_numpy(Z)).numpy()
    np.testing.assert_allclose(net.forward(Z), ref, rtol=1e-13, atol=1e-13 * np.abs(ref).max())
    # exported as LeakyReLU / Abs, and back to the same DGN bit for bit
    assert fastpath.from_torch(fastpath.to_torch(net), 0.1) == net
    with pytest.raises(TorchConversionError, match="one slope per channel"):
        fastpath.from_torch(nn.Sequential(nn.Linear(1, 4), nn.PReLU(4), nn.Linear(4, 2)), 0.1)
    with pytest.raises(TorchConversionError, match="PReLU with learned slope 1.5"):
        fastpath.from_torch(nn.Sequential(nn.Linear(1, 4), nn.PReLU(init=1.5),
                                          nn.Linear(4, 2)), 0.1)
