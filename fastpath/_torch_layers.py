"""Affine torch modules (convolutions, pooling, batch norm, reshapes) as dense matrices.

Used by :func:`fastpath.torch_interop.from_torch`. Between two activations of a decoder,
every module is an affine map of the flattened per-sample tensor, y = M x + c, so a run of
them ("block") composes into one dense DGN layer. The matrix is built by applying the
modules themselves, in float64, to the identity basis (with their bias-like tensors set to
zero) and the offset by applying them, biases included, to zero. Applying the module itself
handles stride, padding (every padding mode: zero, reflect, replicate and circular padding
copy entries, so they are linear), dilation, groups, output_padding, ceil_mode,
count_include_pad, ... without re-deriving any index arithmetic.

Exactness. For the first module of a block the columns are exact: an ``nn.Linear`` is copied
bit for bit; for a zero-padded convolution (plain or transposed) every output entry of a
one-hot input is one weight times 1 plus exact zeros, i.e. the weight itself. With reflect /
replicate / circular padding one input entry can meet the same output through several taps;
that entry is then the sum of those weights, rounded as torch rounds it. Average pooling gives
1/k (rounded once) and eval-mode batch norm gamma / sqrt(running_var + eps) as torch computes
them. Composing several modules of one block rounds like any matrix product, so the DGN's
g(z) equals the torch forward pass to rounding (about 1e-15 relative, not bit for bit: the
summation order differs).

Max-pooling (:func:`pool_windows`): ``nn.MaxPool1d`` / ``nn.MaxPool2d`` are not affine, but
which input entries each output takes the maximum of is read off the module the same way,
by applying it to one-hot inputs (padding is -inf in torch, so a padded window just has
fewer entries). The importer turns a pool into a DGN max layer whose weight rows are the
previous block's rows gathered per window; gathering copies rows, so it adds no rounding.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from dgn_core.exceptions import TorchConversionError

#: Default limit on the entries of one dense layer matrix (and of the intermediate tensors
#: that build it): 5e7 float64 entries are 400 MB.
MAX_ENTRIES = 50_000_000


def _nn() -> Any:
    import torch
    return torch.nn


def _leaf_types() -> dict[str, tuple[Any, ...]]:
    nn = _nn()
    from torch.nn.modules.dropout import _DropoutNd
    return {
        "linear": (nn.Linear,),
        "conv": (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d),
        "pool": (nn.AvgPool1d, nn.AvgPool2d),
        "bn": (nn.BatchNorm1d, nn.BatchNorm2d),
        "reshape": (nn.Flatten, nn.Unflatten),
        "identity": (nn.Identity, _DropoutNd),
    }


def is_affine(layer: Any) -> bool:
    """Whether ``layer`` is one of the affine module kinds that :func:`affine_block` takes."""
    return any(isinstance(layer, t) for t in _leaf_types().values())


def unsupported_error(name: str, layer: Any) -> TorchConversionError:
    """The error for a module that is neither a supported affine module nor a DGN activation.

    Says why: max-pooling modules other than MaxPool1d/2d are not supported; smooth
    activations are not
    piecewise-affine; other CPA activations have kinks a DGN does not represent.
    """
    nn = _nn()
    kind = type(layer).__name__
    max_pools = (nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
                 nn.AdaptiveMaxPool3d, nn.FractionalMaxPool2d, nn.FractionalMaxPool3d)
    if isinstance(layer, max_pools):
        return TorchConversionError(
            f"layer {name!r} is {kind}, which is not supported: the max-pooling modules "
            "from_torch reads are nn.MaxPool1d, nn.MaxPool2d and "
            "fastpath.torch_interop.GroupMax")
    cpa_other = (nn.Hardtanh, nn.ReLU6, nn.RReLU, nn.Hardshrink, nn.Softshrink,
                 nn.Threshold)
    if isinstance(layer, cpa_other):
        return TorchConversionError(
            f"layer {name!r} is {kind}, which is not supported yet: a DGN activation has one "
            "kink at 0 and a fixed slope (supported: nn.ReLU, nn.LeakyReLU, nn.PReLU, "
            "fastpath.torch_interop.Abs and fastpath.torch_interop.IdentityActivation)")
    smooth = (nn.Tanh, nn.Sigmoid, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
              nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid, nn.Hardsigmoid,
              nn.Hardswish, nn.Softmax, nn.LogSoftmax)
    if isinstance(layer, smooth):
        # the wording of the Linear-only converter, kept
        return TorchConversionError(
            f"layer {name!r} is {kind}, which is not a continuous piecewise-affine "
            "activation of a DGN; supported: nn.ReLU, nn.LeakyReLU and "
            "fastpath.torch_interop.Abs")
    return TorchConversionError(
        f"layer {name!r} is {kind}, which from_torch does not support (it is not known to be "
        "an affine map or a DGN activation); supported: Linear, Conv1d, Conv2d, "
        "ConvTranspose1d, ConvTranspose2d, AvgPool1d, AvgPool2d, BatchNorm1d, BatchNorm2d "
        "(eval mode), Flatten, Unflatten, Identity, Dropout (eval mode), the activations "
        "nn.ReLU, nn.LeakyReLU, fastpath.torch_interop.Abs, "
        "fastpath.torch_interop.IdentityActivation and the max-pooling modules "
        "nn.MaxPool1d, nn.MaxPool2d, fastpath.torch_interop.GroupMax")


def infer_input_shape(leaves: list[tuple[str, Any]]) -> tuple[int, ...]:
    """The per-sample input shape implied by the first shape-determining module.

    ``Linear(S, .)`` -> (S,); ``BatchNorm1d(S)`` -> (S,); ``Unflatten(1, sizes)`` ->
    (prod(sizes),). Identity and Dropout before it are skipped. Anything else (a
    convolution, a pooling, a Flatten) needs the explicit ``input_shape`` argument.
    """
    types = _leaf_types()
    nn = _nn()
    for name, layer in leaves:
        if isinstance(layer, types["identity"]):
            continue
        if isinstance(layer, nn.Linear):
            return (int(layer.in_features),)
        if isinstance(layer, nn.BatchNorm1d):
            return (int(layer.num_features),)
        if isinstance(layer, nn.Unflatten) and layer.dim in (1, -1):
            return (math.prod(int(s) for s in layer.unflattened_size),)
        raise TorchConversionError(
            f"the input shape of layer {name!r} ({type(layer).__name__}) is not known: pass "
            "input_shape, the shape of one latent sample as the module expects it (for "
            "example (C, H, W) for a Conv2d); the DGN's latent z is that tensor flattened "
            "in C order")
    raise TorchConversionError(   # e.g. Identity, ReLU, Linear: the first block fixes nothing
        "the layers before the first activation do not fix the input shape: pass input_shape")


def _ndim_needed(layer: Any) -> tuple[int, ...] | None:
    """Allowed per-sample ranks: conv / pool / BN read (C, spatial...) from each sample."""
    nn = _nn()
    if isinstance(layer, (nn.Conv1d, nn.ConvTranspose1d, nn.AvgPool1d)):
        return (2,)
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.AvgPool2d, nn.BatchNorm2d)):
        return (3,)
    if isinstance(layer, nn.BatchNorm1d):
        return (1, 2)
    return None


def _check_leaf(name: str, layer: Any, shape: tuple[int, ...]) -> None:
    """Training-mode modules, non-float or non-finite parameters, bad ranks: clear errors."""
    import torch
    nn = _nn()
    kind = type(layer).__name__
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if layer.training:
            raise TorchConversionError(
                f"layer {name!r} ({kind}) is in training mode, where it normalises with the "
                "statistics of the batch (not an affine map of one sample); call "
                "module.eval() first, so that it uses its running statistics")
        if layer.running_mean is None or layer.running_var is None:
            raise TorchConversionError(
                f"layer {name!r} ({kind}) has track_running_stats=False, so it normalises "
                "with the statistics of the batch even in eval mode (not an affine map)")
    if isinstance(layer, _leaf_types()["identity"][1:]) and layer.training and layer.p > 0:
        raise TorchConversionError(
            f"layer {name!r} ({kind}) is in training mode, where it zeroes random entries; "
            "call module.eval() first (in eval mode it is the identity)")
    if isinstance(layer, nn.Flatten):
        start = layer.start_dim if layer.start_dim >= 0 else layer.start_dim + len(shape) + 1
        if start < 1:
            raise TorchConversionError(
                f"layer {name!r}: Flatten(start_dim={layer.start_dim}) merges the batch "
                "dimension; only per-sample flattening (start_dim >= 1) is affine per sample")
    if isinstance(layer, nn.Unflatten) and isinstance(layer.dim, int):
        dim = layer.dim if layer.dim >= 0 else layer.dim + len(shape) + 1
        if dim < 1:
            raise TorchConversionError(
                f"layer {name!r}: Unflatten(dim={layer.dim}) splits the batch dimension")
    ranks = _ndim_needed(layer)
    if ranks is not None and len(shape) not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise TorchConversionError(
            f"layer {name!r} ({kind}) reads a {want} tensor per sample (channels first), but "
            f"the layers before it give shape {shape}; add an nn.Unflatten (or pass "
            "input_shape if it is the first layer)")
    for t in list(layer.parameters()) + list(layer.buffers()):
        if t.is_complex():
            raise TorchConversionError(f"layer {name!r}: unsupported dtype {t.dtype} (a DGN "
                                       "is real)")
        if not t.is_floating_point():
            continue            # e.g. BatchNorm's num_batches_tracked
        if t.dtype not in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
            raise TorchConversionError(f"layer {name!r}: unsupported dtype {t.dtype}")
        if not bool(torch.isfinite(t.detach()).all()):
            raise TorchConversionError(f"layer {name!r} has NaN or infinite parameters")


def _bias_overrides(layer: Any) -> dict[str, Any]:
    """Tensors to set to zero so that the module computes its linear part only."""
    import torch
    nn = _nn()
    out: dict[str, Any] = {}
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        out["running_mean"] = torch.zeros_like(layer.running_mean)
    bias = getattr(layer, "bias", None)
    if isinstance(bias, torch.Tensor):
        out["bias"] = torch.zeros_like(bias)
    return out


def _check_size(name: str, layer: Any, rows: int, cols: int, max_entries: int) -> None:
    if rows * cols > max_entries:
        raise TorchConversionError(
            f"layer {name!r} ({type(layer).__name__}): the dense matrix of its affine block "
            f"would have {rows} x {cols} = {rows * cols:,} entries, above max_entries="
            f"{max_entries:,} ({8 * rows * cols / 1e9:.1f} GB in float64); pass a larger "
            "max_entries if this is intended (the DGN's partition of such a net is unlikely "
            "to be tractable anyway)")


def affine_block(block: list[tuple[str, Any]], shape: tuple[int, ...],
                 max_entries: int = MAX_ENTRIES, *, after_linear: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """One DGN layer from a run of affine torch modules.

    Parameters
    ----------
    block : list of (name, module)
        Consecutive supported affine modules (see :func:`is_affine`), in order.
    shape : tuple of int
        Per-sample shape of the block's input tensor (no batch dimension).
    max_entries : int
        Refuse a dense matrix (or intermediate tensor) with more entries than this.
    after_linear : bool
        Whether the block before (the previous activation's input) ends with a Linear; only
        words the error for a Linear whose input size does not match.

    Returns
    -------
    W : ndarray of shape (D_out, D_in)
        D_in = prod(shape), D_out = prod(out_shape); both tensors flattened in C order.
    v : ndarray of shape (D_out,)
    out_shape : tuple of int
        Per-sample shape of the block's output.
    """
    import torch
    nn = _nn()
    n_in = math.prod(shape)
    # leading Identity / eval-mode Dropout change nothing: drop them (after their checks) so
    # that a Linear behind them still takes the exact copy path below
    lead = 0
    while lead < len(block) - 1 and isinstance(block[lead][1], _leaf_types()["identity"]):
        _check_leaf(*block[lead], shape)
        lead += 1
    block = block[lead:]
    first_name, first = block[0]
    cols: Any
    c: Any
    with torch.no_grad():
        if isinstance(first, nn.Linear) and len(shape) == 1:
            # copied, not computed: a Linear-only net converts bit for bit (signs of zero too)
            _check_leaf(first_name, first, shape)
            if first.in_features != shape[0]:
                before = (f"the previous Linear, which outputs {shape[0]} features"
                          if after_linear else f"the layers before it, which give shape {shape}")
                raise TorchConversionError(
                    f"layer {first_name!r}: Linear({first.in_features}, {first.out_features}) "
                    f"does not chain with {before}")
            _check_size(first_name, first, first.out_features, n_in, max_entries)
            W = first.weight.detach().cpu().to(torch.float64)
            cols = W.T.clone()                          # (n_in, D_1): row j = image of e_j
            c = (first.bias.detach().cpu().to(torch.float64).clone() if first.bias is not None
                 else torch.zeros(first.out_features, dtype=torch.float64))
            rest = block[1:]
        else:
            _check_size(first_name, first, n_in, n_in, max_entries)
            cols = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *shape)
            c = torch.zeros(shape, dtype=torch.float64)
            rest = block
        for name, layer in rest:
            cols, c = _apply(name, layer, cols, c, max_entries)
    out_shape = tuple(int(s) for s in c.shape)
    Wn = np.ascontiguousarray(cols.reshape(n_in, -1).T.numpy())
    vn = np.ascontiguousarray(c.reshape(-1).numpy())
    return Wn, vn, out_shape


def _apply(name: str, layer: Any, cols: Any, c: Any, max_entries: int) -> tuple[Any, Any]:
    """Push the block's columns (linear part only) and its offset (full map) through ``layer``.

    cols : tensor of shape (n_in, *shape); c : tensor of shape shape.
    """
    import torch
    nn = _nn()
    shape = tuple(int(s) for s in c.shape)
    _check_leaf(name, layer, shape)
    if isinstance(layer, _leaf_types()["identity"]):
        return cols, c                      # Identity, and Dropout in eval mode
    m64 = copy.deepcopy(layer).to(device="cpu", dtype=torch.float64)   # float32 -> 64: exact
    m64.eval()
    try:
        c_out = m64(c.unsqueeze(0))         # the full affine map: gives the offset
    except RuntimeError as exc:
        if isinstance(layer, nn.Linear):
            raise TorchConversionError(
                f"layer {name!r}: Linear({layer.in_features}, {layer.out_features}) does not "
                f"chain with the layers before it, which give shape {shape}") from exc
        raise TorchConversionError(
            f"layer {name!r} ({type(layer).__name__}) cannot be applied to the per-sample "
            f"shape {shape} that the layers before it give: {exc}") from exc
    if c_out.shape[0] != 1:                 # pragma: no cover - Flatten/Unflatten checked
        raise TorchConversionError(f"layer {name!r} does not keep the batch dimension")
    c_out = c_out[0]
    n_in = cols.shape[0]
    _check_size(name, layer, c_out.numel(), n_in, max_entries)
    overrides = _bias_overrides(m64)
    if overrides:
        cols_out = torch.func.functional_call(m64, overrides, (cols,))
    else:
        cols_out = m64(cols)                # pooling, reshapes: already linear
    return cols_out, c_out


def is_max_pool(layer: Any) -> bool:
    """Whether ``layer`` is a torch max-pooling module that :func:`pool_windows` reads."""
    nn = _nn()
    return isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d))


def pool_windows(name: str, layer: Any, shape: tuple[int, ...], max_entries: int = MAX_ENTRIES
                 ) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """The windows of an ``nn.MaxPool1d`` / ``nn.MaxPool2d`` on a per-sample input ``shape``.

    Parameters
    ----------
    name : str
        The module's name in the Sequential (for the messages).
    layer : torch.nn.MaxPool1d or torch.nn.MaxPool2d
    shape : tuple of int
        Per-sample input shape, ``(C, L)`` for MaxPool1d and ``(C, H, W)`` for MaxPool2d.
    max_entries : int
        Refuse when the one-hot inputs that find the windows of one channel (spatial size
        squared) have more entries than this.

    Returns
    -------
    windows : list of ndarray of int
        One per output entry, in torch's flattened output order (channel, then spatial,
        row-major): the flattened (C order) input indices the output is the maximum of,
        ascending. Overlapping windows share indices.
    out_shape : tuple of int
        Per-sample output shape.
    """
    import torch
    nn = _nn()
    kind = type(layer).__name__
    if getattr(layer, "return_indices", False):
        raise TorchConversionError(
            f"layer {name!r}: {kind}(return_indices=True) returns a tuple (values, indices), "
            "not a tensor a next layer can read; use return_indices=False (the default)")
    rank = 2 if isinstance(layer, nn.MaxPool1d) else 3
    if len(shape) != rank:
        raise TorchConversionError(
            f"layer {name!r} ({kind}) reads a {rank}-D tensor per sample (channels first), "
            f"but the layers before it give shape {shape}; add an nn.Unflatten (or pass "
            "input_shape if it is the first layer)")
    with torch.no_grad():
        try:
            out_shape = tuple(int(s) for s in
                              layer(torch.zeros((1, *shape), dtype=torch.float64)).shape[1:])
        except RuntimeError as exc:
            raise TorchConversionError(
                f"layer {name!r} ({kind}) cannot be applied to the per-sample shape {shape} "
                f"that the layers before it give: {exc}") from exc
        # every channel is pooled alike: the windows of one channel, offset per channel.
        # Output o of the one-hot input e_j is 1 iff j is in o's window (0 elsewhere: every
        # window holds at least one real entry, padding is -inf)
        n_sp = math.prod(shape[1:])
        if n_sp * n_sp > max_entries:
            raise TorchConversionError(
                f"layer {name!r} ({kind}): finding its windows takes {n_sp} one-hot inputs of "
                f"{n_sp} entries ({n_sp * n_sp:,}), above max_entries={max_entries:,}; pass a "
                "larger max_entries if this is intended")
        onehot = torch.eye(n_sp, dtype=torch.float64).reshape(n_sp, 1, *shape[1:])
        member = layer(onehot).reshape(n_sp, -1).T.numpy()
    if not np.all((member == 0.0) | (member == 1.0)) or not np.all(member.any(axis=1)):
        raise TorchConversionError(       # pragma: no cover - torch's pools never do this
            f"layer {name!r} ({kind}) is not a max over fixed windows of its input")
    one = [np.flatnonzero(row) for row in member]
    return [w + c * n_sp for c in range(shape[0]) for w in one], out_shape
