"""Conversion between a :class:`~dgn_core.model.DGN` and a PyTorch ``nn.Sequential``.

A DGN's generator g(z) = W^L a(W^{L-1} ... a(W^1 z + v^1) ... ) + v^L is exactly an
``nn.Sequential`` of ``nn.Linear`` layers with one kind of piecewise-affine activation
between them:

=====================  ==========================================================
DGN activation         torch module
=====================  ==========================================================
``relu``               ``nn.ReLU()`` (also accepted: ``nn.LeakyReLU(0.0)``)
``leaky_relu`` (eta)   ``nn.LeakyReLU(negative_slope=eta)``, 0 < eta < 1
``abs``                :class:`Abs` (this module; also accepted: ``nn.LeakyReLU(-1.0)``)
=====================  ==========================================================

:func:`to_torch` builds the module (float64 by default, so the weights are the DGN's
bit for bit); :func:`from_torch` reads one back, so that a decoder trained elsewhere can be
audited with the exact distributions of :mod:`fastpath` (log p(x), the posterior, the KL of
an encoder's q to the true posterior). Float32 weights convert to float64 exactly.

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
        ``act`` = ``nn.ReLU()``, ``nn.LeakyReLU(net.slope)`` or :class:`Abs`. Input
        ``(N, S)``, output ``(N, D)``: ``module(z)`` equals ``net.forward(z)`` (to rounding
        for float32). The noise variance and the prior are not part of the module.
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
            layers.append(_activation_module(net.activation, net.slope))
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


def _classify_activation(name: str, layer: Any) -> tuple[str, float]:
    """(DGN activation, slope) of a torch activation module; a clear error otherwise."""
    torch = _torch()
    if isinstance(layer, torch.nn.ReLU):
        return "relu", 0.0
    if isinstance(layer, _abs_class()):
        return "abs", -1.0
    if isinstance(layer, torch.nn.LeakyReLU):
        eta = float(layer.negative_slope)
        if eta == 0.0:
            return "relu", 0.0
        if eta == -1.0:
            return "abs", -1.0
        if 0.0 < eta < 1.0:
            return "leaky_relu", eta
        raise TorchConversionError(
            f"layer {name!r}: LeakyReLU(negative_slope={eta}) is not a DGN activation "
            "(supported slopes: 0 (relu), 0 < slope < 1 (leaky_relu), -1 (abs))")
    raise TorchConversionError(
        f"layer {name!r} is {type(layer).__name__}, which is not a continuous "
        "piecewise-affine activation of a DGN; supported: nn.ReLU, nn.LeakyReLU and "
        "fastpath.torch_interop.Abs")


def from_torch(module: Any, noise_var: float | ArrayLike,
               prior_cov: ArrayLike | None = None) -> DGN:
    """A :class:`DGN` with the generator of a torch ``nn.Sequential``.

    Parameters
    ----------
    module : torch.nn.Sequential or torch.nn.Linear
        ``Linear, act, Linear, act, ..., Linear``: Linear layers (with or without bias;
        nested Sequentials are flattened) alternating with one kind of activation,
        ``nn.ReLU``, ``nn.LeakyReLU`` (one slope throughout) or :class:`Abs`. A single
        Linear is a DGN without hidden layers.
    noise_var : float or array_like of shape (D,)
        The observation noise variance of the model (not part of the module).
    prior_cov : array_like of shape (S, S), optional
        Prior covariance of z (default identity).

    Returns
    -------
    DGN
        Weights and biases copied to float64 (exact for float32 and float64 parameters).

    Raises
    ------
    TorchConversionError
        A layer that is neither Linear nor a supported activation (Tanh, Conv2d,
        BatchNorm1d, Dropout, ...), a mix of activations or slopes, two Linear layers or
        two activations in a row, a module that starts or ends with an activation, Linear
        shapes that do not chain, or non-finite parameters.
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
    Ws: list[np.ndarray] = []
    vs: list[np.ndarray] = []
    kinds: list[tuple[str, tuple[str, float]]] = []
    expect_linear = True
    for name, layer in leaves:
        if isinstance(layer, torch.nn.Linear):
            if not expect_linear:
                raise TorchConversionError(
                    f"layer {name!r}: two Linear layers in a row; a DGN has an activation "
                    "between consecutive Linear layers (compose them into one Linear first)")
            W = layer.weight.detach().cpu()
            if W.dtype not in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
                raise TorchConversionError(f"layer {name!r}: unsupported dtype {W.dtype}")
            Wn = W.to(torch.float64).numpy().copy()   # float32/16 -> float64 is exact
            if layer.bias is None:
                vn = np.zeros(Wn.shape[0])
            else:
                vn = layer.bias.detach().cpu().to(torch.float64).numpy().copy()
            if not (np.all(np.isfinite(Wn)) and np.all(np.isfinite(vn))):
                raise TorchConversionError(f"layer {name!r} has NaN or infinite parameters")
            if Ws and Wn.shape[1] != Ws[-1].shape[0]:
                raise TorchConversionError(
                    f"layer {name!r}: Linear({Wn.shape[1]}, {Wn.shape[0]}) does not chain with "
                    f"the previous Linear, which outputs {Ws[-1].shape[0]} features")
            Ws.append(Wn)
            vs.append(vn)
            expect_linear = False
        else:
            kind = _classify_activation(name, layer)
            if expect_linear:
                where = "starts with" if not Ws else "has two activations in a row at"
                raise TorchConversionError(
                    f"the module {where} layer {name!r} ({type(layer).__name__}); a DGN "
                    "alternates Linear layers and activations, starting with a Linear")
            kinds.append((name, kind))
            expect_linear = True
    if expect_linear:
        raise TorchConversionError(
            "the module ends with an activation; a DGN's generator ends with a Linear layer "
            "(its output is the mean of x)")
    distinct = {k for _, k in kinds}
    if len(distinct) > 1:
        desc = ", ".join(f"{n}: {k[0]}" + (f"({k[1]})" if k[0] == "leaky_relu" else "")
                         for n, k in kinds)
        raise TorchConversionError(
            f"the activations differ between layers ({desc}); a DGN uses one activation "
            "and one slope for every hidden layer")
    activation, slope = distinct.pop() if distinct else ("relu", 0.0)
    return DGN(Ws, vs, activation=activation, slope=slope, noise_var=noise_var,
               prior_cov=prior_cov)

