"""fastpath.to_torch(net, template=decoder): export into the decoder's own modules.

Everything here is exact (no tolerance): decoder -> from_torch -> to_torch(template=...)
must give parameters and buffers equal to the decoder's (``torch.equal``) and a forward pass
equal bit for bit (``torch.equal``) on random inputs, for float32 and float64 decoders. With a
template of the same architecture but other weights, the parameters of every lone Linear /
convolution are read back from the dense layers and must again equal the original decoder's.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import needs_torch
from tests.test_torch_conv_import import DECODERS, _abs, _build, _group_max

pytestmark = needs_torch

# (name, builder(nn, S) -> Sequential, input_shape(S) or None): every run has ONE Linear or
# convolution (plus reshapes), so its parameters can be read back from the dense layer
READ_BACK = [
    ("convT2d_stride_outpad_conv2d_dilation_groups_nobias",
     lambda nn, S: nn.Sequential(
         nn.ConvTranspose2d(1, 4, 3, stride=2, output_padding=1),   # (4, 4, 2S + 2)
         nn.ReLU(),
         nn.Conv2d(4, 2, 3, padding=2, dilation=2, groups=2, bias=False),      # (2, 4, 2S + 2)
         nn.Flatten()),
     lambda S: (1, 1, S)),
    ("convT1d_groups_nobias_conv1d_stride_padding",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 12), nn.Unflatten(1, (4, 3)), nn.ReLU(),
         nn.ConvTranspose1d(4, 2, 3, stride=2, padding=1, output_padding=1, groups=2,
                            bias=False),                                         # (2, 6)
         nn.LeakyReLU(0.1), nn.Conv1d(2, 3, 2, stride=2, padding=1),             # (3, 4)
         _abs()(), nn.Flatten(), nn.Dropout(0.2), nn.Linear(12, 4)),
     None),
    ("conv2d_circular_maxpool2d",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 32), nn.Unflatten(1, (2, 4, 4)), nn.ReLU(),
         nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),                # (3, 4, 4)
         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 5)),
     None),
    # reflect padding 2 with dilation 2: output 0 meets input 2 through two taps (a shared
    # entry, skipped when reading the kernel); overlapping windows at a padded border
    ("conv1d_reflect_dilation_groups_maxpool1d_overlap",
     lambda nn, S: nn.Sequential(
         nn.Linear(S, 16), nn.Unflatten(1, (2, 8)), _abs()(),
         nn.Conv1d(2, 4, 3, padding=2, dilation=2, groups=2, padding_mode="reflect"),
         nn.MaxPool1d(3, stride=2, padding=1), nn.Identity(), nn.Flatten(),      # (4, 4)
         nn.Linear(16, 3, bias=False)),
     None),
    ("convT2d_dilation_groups_first_linear_last",
     lambda nn, S: nn.Sequential(
         nn.Unflatten(1, (2, 1, S)),
         nn.ConvTranspose2d(2, 4, 2, stride=(1, 2), dilation=2, groups=2),      # (4, 3, 2S+1)
         nn.Flatten(), _group_max()([3] * (4 * (2 * S + 1))), nn.Linear(4 * (2 * S + 1), 3)),
     lambda S: (2 * S,)),
]
# the decoders of test_torch_conv_import.py whose runs all qualify
QUALIFYING = ("conv_first_input_shape", "maxpool2d_overlap_padding_relu",
              "groupmax_leaky_maxpool1d_last")
READ_BACK += [d for d in DECODERS if d[0] in QUALIFYING]


def _decoder(builder, S, seed, dtype):
    import torch
    mod = _build(builder, S, seed=seed)
    return mod.to(dtype=torch.float32) if dtype == "float32" else mod


def _import(mod, shape_of, S):
    import fastpath
    shape = shape_of(S) if shape_of is not None else None
    net = fastpath.from_torch(mod, 0.1, input_shape=shape)
    return net, shape


def _assert_same_module(got, want, S, input_shape):
    """Same module classes, parameters and buffers (torch.equal, same dtype) and forward."""
    import torch
    assert [type(m) for m in got.modules()] == [type(m) for m in want.modules()]
    gs, ws = got.state_dict(), want.state_dict()
    assert list(gs) == list(ws)
    for key in ws:
        assert gs[key].dtype == ws[key].dtype, key
        assert torch.equal(gs[key], ws[key]), key
    dtype = next(want.parameters()).dtype
    z = torch.from_numpy(np.random.default_rng(7).normal(size=(64, S)) * 2).to(dtype)
    z = z.reshape(64, *(input_shape or (S,)))
    with torch.no_grad():
        assert torch.equal(got(z), want(z))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, builder, shape_of", DECODERS + READ_BACK[:5],
                         ids=[d[0] for d in DECODERS + READ_BACK[:5]])
def test_round_trip_with_own_template(name, builder, shape_of, dtype):
    """decoder -> DGN -> to_torch(template=decoder): the decoder, bit for bit (every supported
    module: runs that cannot be read back are kept, their dense map being the net's)."""
    import fastpath
    S = 2
    mod = _decoder(builder, S, 0, dtype)
    net, shape = _import(mod, shape_of, S)
    out = fastpath.to_torch(net, template=mod, input_shape=shape)
    assert out is not mod
    _assert_same_module(out, mod, net.latent_dim, shape)
    assert all(p.requires_grad for p in out.parameters())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("S", [1, 2])
@pytest.mark.parametrize("name, builder, shape_of", READ_BACK, ids=[d[0] for d in READ_BACK])
def test_parameters_read_back_from_dense_layers(name, builder, shape_of, S, dtype):
    """A template with other weights: every Linear / conv gets the imported decoder's
    parameters back from the dense matrices, bit for bit, and the same forward pass."""
    import torch

    import fastpath
    mod = _decoder(builder, S, 0, dtype)
    other = _decoder(builder, S, 1, dtype)
    assert not all(torch.equal(p, q) for p, q in zip(mod.parameters(), other.parameters()))
    net, shape = _import(mod, shape_of, S)
    out = fastpath.to_torch(net, template=other, input_shape=shape)
    _assert_same_module(out, mod, net.latent_dim, shape)
    # and back: the same DGN, bit for bit
    assert fastpath.from_torch(out, 0.1, input_shape=shape) == net


def test_dtype_and_requires_grad():
    """The template's dtype by default; dtype= converts (float32 -> float64 exactly)."""
    import torch

    import fastpath
    name, builder, shape_of = READ_BACK[1]
    mod = _decoder(builder, 2, 0, "float32")
    net, _ = _import(mod, shape_of, 2)
    out = fastpath.to_torch(net, "float64", template=mod, requires_grad=False)
    assert all(p.dtype == torch.float64 and not p.requires_grad for p in out.parameters())
    for p, q in zip(out.parameters(), mod.parameters()):
        assert torch.equal(p, q.double())
    # a float64 decoder exported as float32: each parameter rounded once
    mod64 = _decoder(builder, 2, 0, "float64")
    out32 = fastpath.to_torch(_import(mod64, shape_of, 2)[0], "float32", template=mod64)
    for p, q in zip(out32.parameters(), mod64.parameters()):
        assert p.dtype == torch.float32 and torch.equal(p, q.float())


@pytest.mark.parametrize("name", ["convT2d_relu_conv2d", "avgpool2d_abs_avgpool1d_reflect",
                                  "batchnorm1d_2d_replicate", "consecutive_linear_layers"])
def test_runs_that_cannot_be_read_back_are_refused_for_another_template(name):
    """Two parametrised modules, an AvgPool or a BatchNorm in a run: kept only when the
    template's dense map is the net's; a template with other weights is refused, naming
    the layer and why."""
    import fastpath
    from dgn_core.exceptions import TorchConversionError
    _, builder, shape_of = next(d for d in DECODERS if d[0] == name)
    net, shape = _import(_decoder(builder, 2, 0, "float64"), shape_of, 2)
    why = {"convT2d_relu_conv2d": "it has 2 parametrised modules",
           "avgpool2d_abs_avgpool1d_reflect": "it folds AvgPool2d into",
           "batchnorm1d_2d_replicate": "it folds BatchNorm1d into",
           "consecutive_linear_layers": "it has 2 parametrised modules"}[name]
    with pytest.raises(TorchConversionError,
                       match=rf"DGN layer 0 \(the run '0' .*cannot be read back.*{why}"):
        fastpath.to_torch(net, template=_decoder(builder, 2, 1, "float64"), input_shape=shape)


@pytest.mark.filterwarnings("ignore:fit_em did not converge")
def test_em_trained_net_is_refused():
    """fit_em updates the dense layers freely: the conv's weights are no longer tied."""
    import fastpath
    from dgn_core.exceptions import TorchConversionError
    name, builder, shape_of = READ_BACK[1]
    mod = _decoder(builder, 1, 0, "float64")
    net, _ = _import(mod, shape_of, 1)
    X, _ = net.sample(40, seed=3)
    trained = fastpath.fit_em(net, X, max_iter=2).model
    assert not np.array_equal(trained.weights[1], net.weights[1])
    with pytest.raises(TorchConversionError,
                       match=r"DGN layer 1 \(the run '3' \(ConvTranspose1d\)\): the net's "
                             r"weight matrix is not the dense map of any ConvTranspose1d.*"
                             r"no longer tied.*to_torch\(net\)"):
        fastpath.to_torch(trained, template=mod)
    # the untemplated export still works
    assert fastpath.from_torch(fastpath.to_torch(trained), trained.noise_var) == trained


def _seq(nn, *layers):
    return nn.Sequential(*layers).double().eval()


def _variant(nn, convT=(), slope=0.1, conv=(), act=None, before_last=()):
    """The architecture of READ_BACK[1] with the changes given: keyword overrides of the
    ConvTranspose1d and the Conv1d, the LeakyReLU's slope, the last activation (Abs by
    default) and modules inserted before the last Linear."""
    return _seq(nn, nn.Linear(2, 12), nn.Unflatten(1, (4, 3)), nn.ReLU(),
                nn.ConvTranspose1d(4, 2, 3, **{"stride": 2, "padding": 1, "output_padding": 1,
                                               "groups": 2, "bias": False, **dict(convT)}),
                nn.LeakyReLU(slope),
                nn.Conv1d(2, 3, **{"kernel_size": 2, "stride": 2, "padding": 1, **dict(conv)}),
                act(nn) if act is not None else _abs()(),
                nn.Flatten(), *before_last, nn.Linear(12, 4))


@pytest.mark.parametrize("template, match", [
    (lambda nn: _variant(nn, convT={"padding": 0, "output_padding": 0}),
     r"another architecture: its layers have widths \(2, 12, 14, 12, 4\).*\(2, 12, 12, 12, 4\)"),
    (lambda nn: _variant(nn, act=lambda nn: nn.ReLU()),
     r"template layer '6' \(ReLU\) is the activation 'relu', but the net's hidden layer 3 "
     r"has activation 'abs'"),
    (lambda nn: _variant(nn, slope=0.3),
     r"'4' \(LeakyReLU\) is the activation 'leaky_relu' \(slope 0.3\), but the net's hidden "
     r"layer 2 has activation 'leaky_relu' \(slope 0.1\)"),
    # same widths, another kernel: not the dense map of any such Conv1d
    (lambda nn: _variant(nn, conv={"kernel_size": 1}),
     r"DGN layer 2 \(the run '5' \(Conv1d\)\): the net's weight matrix is not the dense "
     r"map of any Conv1d"),
    # the net's ConvTranspose1d has no bias but this one does: fine (bias read as 0); the
    # net's Conv1d has a bias, this one does not: refused
    (lambda nn: _variant(nn, convT={"bias": True}, conv={"bias": False}),
     r"DGN layer 2 .*the net's offset is not the bias of Conv1d '5': the template's module "
     r"has no bias but the net's layer has a non-zero offset"),
    (lambda nn: _variant(nn, before_last=(nn.Tanh(),)),
     r"'8' is Tanh, which is not a continuous piecewise-affine"),
])
def test_template_of_another_architecture_is_refused(template, match):
    import torch

    import fastpath
    from dgn_core.exceptions import TorchConversionError
    name, builder, shape_of = READ_BACK[1]
    net, _ = _import(_decoder(builder, 2, 0, "float64"), shape_of, 2)
    with pytest.raises(TorchConversionError, match=match):
        fastpath.to_torch(net, template=template(torch.nn))


def test_template_bias_where_the_net_has_none_reads_zero():
    """A template module with a bias where the imported one had none: the bias comes back 0."""
    import torch

    import fastpath
    nn = torch.nn
    torch.manual_seed(0)
    mod = _seq(nn, nn.Linear(2, 8), nn.Unflatten(1, (2, 4)), nn.ReLU(),
               nn.Conv1d(2, 2, 3, bias=False), nn.Flatten())
    net = fastpath.from_torch(mod, 0.1)
    tmpl = _seq(nn, nn.Linear(2, 8), nn.Unflatten(1, (2, 4)), nn.ReLU(),
                nn.Conv1d(2, 2, 3), nn.Flatten())
    out = fastpath.to_torch(net, template=tmpl)
    assert torch.equal(out[3].weight, mod[3].weight)
    assert torch.equal(out[3].bias, torch.zeros(2, dtype=torch.float64))


def test_max_layer_mismatch_and_bad_arguments():
    import torch

    import fastpath
    from dgn_core.exceptions import TorchConversionError
    nn = torch.nn
    name, builder, shape_of = next(d for d in READ_BACK if d[0] == "conv2d_circular_maxpool2d")
    net, _ = _import(_decoder(builder, 2, 0, "float64"), shape_of, 2)
    # groups of 3 over the same 48 units (same widths): other pool sizes
    tmpl = _seq(nn, nn.Linear(2, 32), nn.Unflatten(1, (2, 4, 4)), nn.ReLU(),
                nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), nn.Flatten(),
                _group_max()([3] * 16), nn.Linear(16, 5))
    with pytest.raises(TorchConversionError, match=r"template layer '5' \(GroupMax\) is a "
                       r"max-pool with groups of sizes \[3, 3, .*but the net's hidden layer 2 "
                       r"has groups of sizes \[4, 4, "):
        fastpath.to_torch(net, template=tmpl)
    # groups of 4 consecutive units: the pool sizes agree but not the windows (the 2 x 2
    # squares of MaxPool2d), so the gathered rows are not this conv's
    tmpl = _seq(nn, nn.Linear(2, 32), nn.Unflatten(1, (2, 4, 4)), nn.ReLU(),
                nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), nn.Flatten(),
                _group_max()([4] * 12), nn.Linear(12, 5))
    with pytest.raises(TorchConversionError, match=r"DGN layer 1 .*not the dense map of any "
                       r"Conv2d"):
        fastpath.to_torch(net, template=tmpl)
    with pytest.raises(TypeError, match="template must be a torch.nn.Sequential"):
        fastpath.to_torch(net, template=nn.ReLU())
    with pytest.raises(ValueError, match="input_shape is only used with template="):
        fastpath.to_torch(net, input_shape=(2,))


def test_kernel_entries_that_touch_no_output_keep_the_template_values():
    """ConvTranspose2d(padding=1) of a 1 x 1 input: the kernel's first row and column land in
    the cropped border and touch no output, so the dense layer does not determine them; they
    keep the template's values, every other entry is read back, and the dense map (hence
    the DGN) is the imported one exactly."""
    import torch

    import fastpath
    nn = torch.nn

    def build(seed):
        torch.manual_seed(seed)
        return _seq(nn, nn.ConvTranspose2d(1, 2, 3, stride=2, padding=1, output_padding=1),
                    nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))

    mod, other = build(0), build(1)
    net = fastpath.from_torch(mod, 0.1, input_shape=(1, 1, 1))
    out = fastpath.to_torch(net, template=other, input_shape=(1, 1, 1))
    got, want, kept = out[0].weight, mod[0].weight, other[0].weight
    assert torch.equal(got[:, :, 1:, 1:], want[:, :, 1:, 1:])
    assert torch.equal(got[:, :, 0, :], kept[:, :, 0, :])
    assert torch.equal(got[:, :, :, 0], kept[:, :, :, 0])
    assert torch.equal(out[0].bias, mod[0].bias) and torch.equal(out[3].weight, mod[3].weight)
    assert fastpath.from_torch(out, 0.1, input_shape=(1, 1, 1)) == net
