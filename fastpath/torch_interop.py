"""Conversion between a :class:`~dgn_core.model.DGN` and a PyTorch ``nn.Sequential``.

A DGN's generator g(z) = W^L a_{L-1}(W^{L-1} ... a_1(W^1 z + v^1) ... ) + v^L is exactly an
``nn.Sequential`` of ``nn.Linear`` layers with a piecewise-affine activation between them
(one kind throughout, or one per hidden layer):

=====================  ==========================================================
DGN activation         torch module
=====================  ==========================================================
``relu``               ``nn.ReLU()`` (also accepted: ``nn.LeakyReLU(0.0)``)
``leaky_relu`` (eta)   ``nn.LeakyReLU(negative_slope=eta)``, 0 < eta < 1
``abs``                :class:`Abs` (this module; also accepted: ``nn.LeakyReLU(-1.0)``)
=====================  ==========================================================

``nn.PReLU()`` with its one learned slope reads as the activation of that slope (a PReLU
with one slope per channel is refused); :func:`to_torch` writes it back as ``nn.LeakyReLU``.

:func:`to_torch` builds the module (float64 by default, so the weights are the DGN's
bit for bit); :func:`from_torch` reads one back, so that a decoder trained elsewhere can be
audited with the exact distributions of :mod:`fastpath` (log p(x), the posterior, the KL of
an encoder's q to the true posterior). Float32 weights convert to float64 exactly.

:func:`from_torch` also reads convolutional decoders: between two activations any run of
Linear, Conv1d/2d, ConvTranspose1d/2d, AvgPool1d/2d, eval-mode BatchNorm1d/2d, Flatten,
Unflatten, Identity and (eval-mode) Dropout modules is one affine map of the flattened
tensor, and becomes one dense DGN layer (:mod:`fastpath._torch_layers`). Each activation
module becomes that hidden layer's activation, so the layers may differ (``relu`` then
``abs``, leaky-ReLUs of different slopes). Not supported yet: max-pooling (piecewise-affine,
but its regions are argmax patterns). :func:`to_torch` always exports ``nn.Linear`` layers, so a
converted conv decoder comes back as its dense equivalent, whose forward pass agrees with the
original to rounding (not bit for bit: the summation order differs); DGN -> torch -> DGN stays
bit-exact.

torch is imported only when these functions are called (it is the optional ``torch``
extra); without it they raise an :class:`ImportError` that says how to install it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dgn_core.exceptions import TorchConversionError
from dgn_core.model import DGN
from dgn_core.validation import check_net
from fastpath import _torch_layers

# ``Abs`` (a torch module) is created on first access, see __getattr__
__all__ = ["TorchConversionError", "from_torch", "to_torch"]


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            "this function needs PyTorch, which is an optional dependency of fastpath: "
            "install it with `pip install 'verified-dgn[torch]'` (or `pip install torch`)"
        ) from exc
    return torch


_ABS_CLASS: Any = None


def _abs_class() -> Any:
    """The :class:`Abs` module class (created on first use so that torch stays optional)."""
    global _ABS_CLASS
    if _ABS_CLASS is None:
        torch = _torch()

        class Abs(torch.nn.Module):  # type: ignore[name-defined,misc]
            """Element-wise absolute value, the DGN activation with slope -1."""

            def forward(self, x: Any) -> Any:
                return torch.abs(x)

            def extra_repr(self) -> str:
                return ""

        Abs.__module__ = __name__
        Abs.__qualname__ = "Abs"
        _ABS_CLASS = Abs
    return _ABS_CLASS


def __getattr__(name: str) -> Any:
    # ``fastpath.torch_interop.Abs`` is created lazily (it subclasses torch.nn.Module)
    if name == "Abs":
        return _abs_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _resolve_dtype(dtype: Any) -> Any:
    torch = _torch()
    table = {"float64": torch.float64, "double": torch.float64,
             "float32": torch.float32, "float": torch.float32}
    if isinstance(dtype, str):
        if dtype not in table:
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        return table[dtype]
    if dtype in (torch.float64, torch.float32):
        return dtype
    raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype!r}")


def to_torch(net: DGN, dtype: Any = "float64", *, requires_grad: bool = True) -> Any:
    """The generator of ``net`` as a ``torch.nn.Sequential``.

    Parameters
    ----------
    net : DGN
    dtype : {"float64", "float32"} or torch dtype, default "float64"
        Parameter dtype. float64 keeps the DGN's weights bit for bit (so that
        ``from_torch(to_torch(net), net.noise_var) == net``); float32 rounds them.
    requires_grad : bool, default True
        Whether the parameters are trainable.

    Returns
    -------
    torch.nn.Sequential
        ``Linear(S, D_1), act, Linear(D_1, D_2), act, ..., Linear(D_{L-1}, D)`` with
        ``act`` = ``nn.ReLU()``, ``nn.LeakyReLU(eta)`` or :class:`Abs`, each hidden layer's
        own (``net.activations``, ``net.slopes``). Input
        ``(N, S)``, output ``(N, D)``: ``module(z)`` equals ``net.forward(z)`` (to rounding
        for float32). The noise variance and the prior are not part of the module.

    Notes
    -----
    A DGN converted from a convolutional decoder (:func:`from_torch`) is exported as its
    dense equivalent: Linear layers holding the composed matrices, not the convolutions. Its
    forward pass agrees with the original module to rounding (about 1e-15 relative), not bit
    for bit, because the summation order differs; ``from_torch(to_torch(net))`` is still
    bit-exact.
    """
    net = check_net(net)
    torch = _torch()
    dt = _resolve_dtype(dtype)
    layers: list[Any] = []
    for i, (W, v) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=True, dtype=dt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.array(W, dtype=np.float64)))
            lin.bias.copy_(torch.from_numpy(np.array(v, dtype=np.float64)))
        lin.weight.requires_grad_(requires_grad)
        lin.bias.requires_grad_(requires_grad)
        layers.append(lin)
        if i < net.n_layers - 1:
            layers.append(_activation_module(net.activations[i], net.slopes[i]))
    return torch.nn.Sequential(*layers)


def _activation_module(activation: str, slope: float) -> Any:
    torch = _torch()
    if activation == "relu":
        return torch.nn.ReLU()
    if activation == "leaky_relu":
        return torch.nn.LeakyReLU(negative_slope=slope)
    if activation == "abs":
        return _abs_class()()
    raise ValueError(f"unknown activation {activation!r}")  # pragma: no cover - DGN checks


def _flatten(module: Any) -> list[tuple[str, Any]]:
    torch = _torch()
    if isinstance(module, torch.nn.Sequential):
        out: list[tuple[str, Any]] = []
        for name, child in module.named_children():
            for sub, leaf in _flatten(child):
                out.append((f"{name}.{sub}" if sub else name, leaf))
        return out
    return [("", module)]


def _prelu_slope(name: str, layer: Any) -> float:
    """The one learned slope of an ``nn.PReLU`` (float64, exact from float32)."""
    w = layer.weight.detach().cpu().to(dtype=_torch().float64).reshape(-1)
    if w.numel() != 1:
        raise TorchConversionError(
            f"layer {name!r}: PReLU(num_parameters={w.numel()}) learns one slope per channel; "
            "a DGN has one slope per hidden layer (supported: PReLU() with one parameter)")
    return float(w[0])


def _classify_activation(name: str, layer: Any) -> tuple[str, float]:
    """(DGN activation, slope) of a torch activation module; a clear error otherwise."""
    torch = _torch()
    if isinstance(layer, torch.nn.ReLU):
        return "relu", 0.0
    if isinstance(layer, _abs_class()):
        return "abs", -1.0
    if isinstance(layer, (torch.nn.LeakyReLU, torch.nn.PReLU)):
        leaky = isinstance(layer, torch.nn.LeakyReLU)
        eta = float(layer.negative_slope) if leaky else _prelu_slope(name, layer)
        if eta == 0.0:
            return "relu", 0.0
        if eta == -1.0:
            return "abs", -1.0
        if 0.0 < eta < 1.0:
            return "leaky_relu", eta
        raise TorchConversionError(
            f"layer {name!r}: "
            f"{f'LeakyReLU(negative_slope={eta})' if leaky else f'PReLU with learned slope {eta}'}"
            " is not a DGN activation (supported slopes: 0 (relu), 0 < slope < 1 (leaky_relu), "
            "-1 (abs))")
    raise TorchConversionError(
        f"layer {name!r} is {type(layer).__name__}, which is not a continuous "
        "piecewise-affine activation of a DGN; supported: nn.ReLU, nn.LeakyReLU and "
        "fastpath.torch_interop.Abs")


def _activation_kind(name: str, layer: Any) -> tuple[str, float] | None:
    """(DGN activation, slope) of an activation module, None for any other module."""
    torch = _torch()
    if isinstance(layer, (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.PReLU, _abs_class())):
        return _classify_activation(name, layer)
    return None


def from_torch(module: Any, noise_var: float | ArrayLike,
               prior_cov: ArrayLike | None = None, *,
               input_shape: tuple[int, ...] | None = None,
               max_entries: int = _torch_layers.MAX_ENTRIES) -> DGN:
    """A :class:`DGN` with the generator of a torch ``nn.Sequential``.

    Parameters
    ----------
    module : torch.nn.Sequential or torch.nn.Linear
        Affine blocks alternating with activations, ``nn.ReLU``, ``nn.LeakyReLU``,
        ``nn.PReLU()`` (one slope) or :class:`Abs` (each may differ: the DGN gets per-layer
        activations), starting and
        ending with a block (nested Sequentials are flattened). A block is a run of affine modules:
        ``nn.Linear`` (with or without bias), ``nn.Conv1d``, ``nn.Conv2d``,
        ``nn.ConvTranspose1d``, ``nn.ConvTranspose2d`` (any stride, padding, padding mode,
        dilation, groups, output_padding), ``nn.AvgPool1d``, ``nn.AvgPool2d``,
        ``nn.BatchNorm1d``, ``nn.BatchNorm2d`` (eval mode, running statistics: folded into
        the block), ``nn.Flatten``, ``nn.Unflatten``, ``nn.Identity`` and the dropout modules
        (eval mode: the identity). Each block becomes one dense DGN layer, its exact matrix on
        the flattened (C order) tensors; see :mod:`fastpath._torch_layers` for exactness.
        Several ``nn.Linear`` in a row (no activation between) are one affine map too and
        compose into one layer (to rounding, like any block of several modules). A single
        Linear is a DGN without hidden layers.
    noise_var : float or array_like of shape (D,)
        The observation noise variance of the model (not part of the module). D is the
        number of entries of one output sample (its flattened shape).
    prior_cov : array_like of shape (S, S), optional
        Prior covariance of z (default identity).
    input_shape : tuple of int, optional
        Shape of one latent sample as the module reads it, for example ``(C, H, W)`` when
        the module starts with a ``Conv2d``; S = prod(input_shape) and the DGN's z is that
        tensor flattened in C order. Inferred when the module starts with a Linear,
        a BatchNorm1d or an ``Unflatten(1, ...)``.
    max_entries : int, default 50_000_000
        Refuse (TorchConversionError) a dense layer matrix with more entries (400 MB).

    Returns
    -------
    DGN
        Weights and biases in float64. A module with one Linear between activations converts
        exactly (float32 and float64 parameters, bit for bit); with other modules (several
        Linear layers in a row included), ``net.forward(z)`` equals
        ``module(z.reshape(N, *input_shape)).reshape(N, -1)`` to rounding.

    Raises
    ------
    TorchConversionError
        A module that is neither a supported affine module nor a supported activation
        (Tanh: not piecewise-affine; MaxPool: piecewise-affine but not supported yet),
        BatchNorm or Dropout in training mode, two activations in a
        row, a module that starts or ends with an activation, shapes that do not chain, an
        unknown input shape, a dense matrix above ``max_entries`` or non-finite parameters.
    """
    torch = _torch()
    if isinstance(module, torch.nn.Linear):
        leaves = [("0", module)]
    elif isinstance(module, torch.nn.Sequential):
        leaves = _flatten(module)
    else:
        raise TypeError(f"module must be a torch.nn.Sequential (or one nn.Linear), got "
                        f"{type(module).__name__}")
    if not leaves:
        raise TorchConversionError("the Sequential is empty: a DGN needs at least one Linear layer")
    # split into affine blocks and the activations between them
    blocks: list[list[tuple[str, Any]]] = []
    kinds: list[tuple[str, tuple[str, float]]] = []
    current: list[tuple[str, Any]] = []
    for name, layer in leaves:
        kind = _activation_kind(name, layer)
        if kind is None:
            if not _torch_layers.is_affine(layer):
                raise _torch_layers.unsupported_error(name, layer)
            current.append((name, layer))
            continue
        if not current:
            where = "starts with" if not blocks else "has two activations in a row at"
            raise TorchConversionError(
                f"the module {where} layer {name!r} ({type(layer).__name__}); a DGN "
                "alternates Linear layers and activations, starting with a Linear")
        blocks.append(current)
        current = []
        kinds.append((name, kind))
    if not current:
        raise TorchConversionError(
            "the module ends with an activation; a DGN's generator ends with a Linear layer "
            "(its output is the mean of x)")
    blocks.append(current)
    # one activation per hidden layer (a DGN with one kind throughout when they agree)
    activations = [k[0] for _, k in kinds]
    slopes = [k[1] for _, k in kinds]
    if input_shape is None:
        shape = _torch_layers.infer_input_shape(blocks[0])
    else:
        shape = tuple(int(s) for s in np.atleast_1d(np.asarray(input_shape)))
        if not shape or min(shape) < 1:
            raise ValueError(f"input_shape must be positive integers, got {input_shape!r}")
    Ws: list[np.ndarray] = []
    vs: list[np.ndarray] = []
    for i, block in enumerate(blocks):
        after_linear = i > 0 and isinstance(blocks[i - 1][-1][1], torch.nn.Linear)
        W, v, shape = _torch_layers.affine_block(block, shape, max_entries,
                                                 after_linear=after_linear)
        Ws.append(W)
        vs.append(v)
    if not kinds:
        return DGN(Ws, vs, noise_var=noise_var, prior_cov=prior_cov)
    return DGN(Ws, vs, activation=activations, slope=slopes, noise_var=noise_var,
               prior_cov=prior_cov)
