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
``identity``           :class:`IdentityActivation` (this module; also accepted:
                       ``nn.LeakyReLU(1.0)``)
=====================  ==========================================================

An identity hidden layer (a linear bottleneck) is written as :class:`IdentityActivation`, a
no-op module that marks the layer boundary, so that :func:`from_torch` reads it back as a
layer instead of composing the two Linear modules around it (``nn.Identity`` between two
Linear modules stays an affine no-op: the two compose into one layer).

``nn.PReLU()`` with its one learned slope reads as the activation of that slope (a PReLU
with one slope per channel is refused); :func:`to_torch` writes it back as ``nn.LeakyReLU``.

A DGN max-pooling layer (``"max"``, :mod:`dgn_core.activations`) is ``nn.Linear`` followed by
:class:`GroupMax` (this module: the maximum of consecutive groups of features).

:func:`to_torch` builds the module (float64 by default, so the weights are the DGN's
bit for bit); :func:`from_torch` reads one back, so that a decoder trained elsewhere can be
audited with the exact distributions of :mod:`fastpath` (log p(x), the posterior, the KL of
an encoder's q to the true posterior). Float32 weights convert to float64 exactly.

:func:`from_torch` also reads convolutional decoders: between two activations any run of
Linear, Conv1d/2d, ConvTranspose1d/2d, AvgPool1d/2d, eval-mode BatchNorm1d/2d, Flatten,
Unflatten, Identity and (eval-mode) Dropout modules is one affine map of the flattened
tensor, and becomes one dense DGN layer (:mod:`fastpath._torch_layers`). Each activation
module becomes that hidden layer's activation, so the layers may differ (``relu`` then
``abs``, leaky-ReLUs of different slopes).

``nn.MaxPool1d`` / ``nn.MaxPool2d`` (any kernel_size, stride, padding, dilation, ceil_mode;
not return_indices) become DGN max layers: the affine block before the pool (the identity
when the pool follows an activation or starts the module) with its rows gathered per pooling
window, in torch's output order (channel, then spatial, row-major), so that the next
layer's columns line up with torch's flattened output; overlapping windows repeat rows.
``pool_sizes[l]`` lists the windows' sizes (smaller at a padded border). A pool may also be
followed directly by an activation, another pool or the end of the module (an identity
layer in between). :func:`to_torch` exports ``nn.Linear`` layers, so a
converted conv decoder comes back as its dense equivalent, whose forward pass agrees with the
original to rounding (not bit for bit: the summation order differs); DGN -> torch -> DGN stays
bit-exact. ``to_torch(net, template=decoder)`` instead exports into a copy of ``decoder``
(same modules; parameters read back from the dense layers, :mod:`fastpath._torch_export`), so
decoder -> DGN -> torch gives the decoder's parameters and forward pass bit for bit.

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

# ``Abs``, ``IdentityActivation`` and ``GroupMax`` (torch modules) are created on first
# access, see __getattr__
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


def _modules() -> Any:
    """:mod:`fastpath._torch_modules` (the torch module classes), imported on first use so
    that torch stays optional."""
    _torch()  # the install hint when torch is missing
    from . import _torch_modules

    return _torch_modules


def __getattr__(name: str) -> Any:
    # ``Abs``, ``IdentityActivation`` and ``GroupMax`` subclass torch.nn.Module: created when
    # first asked for
    if name in ("Abs", "IdentityActivation", "GroupMax"):
        return getattr(_modules(), name)
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


def to_torch(net: DGN, dtype: Any = None, *, requires_grad: bool = True,
             template: Any = None, input_shape: tuple[int, ...] | None = None,
             max_entries: int = _torch_layers.MAX_ENTRIES) -> Any:
    """The generator of ``net`` as a ``torch.nn.Sequential``.

    Parameters
    ----------
    net : DGN
    dtype : {"float64", "float32"} or torch dtype, optional
        Parameter dtype; default float64, or the template's dtype when ``template`` is
        given. float64 keeps the DGN's weights bit for bit (so that
        ``from_torch(to_torch(net), net.noise_var) == net``); float32 rounds them.
    requires_grad : bool, default True
        Whether the parameters are trainable.
    template : torch.nn.Sequential or torch.nn.Linear, optional
        A decoder of the net's architecture that :func:`from_torch` reads (typically the
        module ``net`` was imported from). The result is then a deep copy of it whose
        parameters are read off ``net``'s dense layers (:mod:`fastpath._torch_export`): a
        Linear or convolution (plain or transposed, 1-D or 2-D, any stride, padding,
        dilation, groups, output_padding, with or without bias) that is alone with
        reshapes (Flatten, Unflatten, Identity, Dropout) between two nonlinearities gets
        the weight and bias whose dense map is exactly the net's layer; other runs (with a
        BatchNorm, an AvgPool or several parametrised modules) are kept as they are when
        their dense map is exactly the net's layer. Activations and max-pools are the
        template's and must be the net's. So ``to_torch(from_torch(decoder, s2),
        template=decoder)`` has the decoder's parameters bit for bit and the same forward
        pass bit for bit.
    input_shape : tuple of int, optional
        Only with ``template``: the per-sample input shape it reads, as for
        :func:`from_torch` (needed when it starts with a convolution).
    max_entries : int, default 50_000_000
        Only with ``template``: the limit on the dense matrices built to check each layer.

    Returns
    -------
    torch.nn.Sequential
        ``Linear(S, D_1), act, Linear(D_1, D_2), act, ..., Linear(D_{L-1}, D)`` with
        ``act`` = ``nn.ReLU()``, ``nn.LeakyReLU(eta)``, :class:`Abs` or
        :class:`IdentityActivation`, each hidden layer's
        own (``net.activations``, ``net.slopes``); a max-pooling layer is
        ``GroupMax(net.pool_sizes[l])`` after its Linear (which has ``D_l`` outputs, the
        units before pooling), and the next Linear reads its ``len(pool_sizes[l])`` outputs.
        Input
        ``(N, S)``, output ``(N, D)``: ``module(z)`` equals ``net.forward(z)`` (to rounding
        for float32). The noise variance and the prior are not part of the module.

        With ``template``: a module of the template's class and modules.

    Raises
    ------
    TorchConversionError
        With ``template``: a template that ``from_torch`` refuses, of another architecture
        (layer widths), with another activation or max-pool than the net's at some layer,
        or a layer whose weights are not (or no longer, e.g. after EM) tied as the
        template's module ties them; the message names the layer and says why. There is no
        partial dense fallback: ``to_torch(net)`` exports the whole net densely.

    Notes
    -----
    Without ``template``, a DGN converted from a convolutional decoder (:func:`from_torch`) is
    exported as its dense equivalent: Linear layers holding the composed matrices, not the
    convolutions. Its forward pass agrees with the original module to rounding (about 1e-15
    relative), not bit for bit, because the summation order differs;
    ``from_torch(to_torch(net))`` is still bit-exact.
    """
    net = check_net(net)
    torch = _torch()
    if template is not None:
        from fastpath import _torch_export
        return _torch_export.export_to_template(
            net, template, None if dtype is None else _resolve_dtype(dtype), requires_grad,
            input_shape, max_entries)
    if input_shape is not None:
        raise ValueError("input_shape is only used with template=")
    dt = _resolve_dtype("float64" if dtype is None else dtype)
    layers: list[Any] = []
    for i, (W, v) in enumerate(zip(net.weights, net.biases)):
        lin = torch.nn.Linear(W.shape[1], W.shape[0], bias=True, dtype=dt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.array(W, dtype=np.float64)))
            lin.bias.copy_(torch.from_numpy(np.array(v, dtype=np.float64)))
        lin.weight.requires_grad_(requires_grad)
        lin.bias.requires_grad_(requires_grad)
        layers.append(lin)
        if i < net.n_layers - 1 and net.pool_sizes[i]:
            layers.append(_modules().GroupMax(net.pool_sizes[i]))
        elif i < net.n_layers - 1:
            layers.append(_activation_module(net.activations[i], net.slopes[i]))
    return torch.nn.Sequential(*layers)


def _activation_module(activation: str, slope: float) -> Any:
    torch = _torch()
    if activation == "relu":
        return torch.nn.ReLU()
    if activation == "leaky_relu":
        return torch.nn.LeakyReLU(negative_slope=slope)
    if activation == "abs":
        return _modules().Abs()
    if activation == "identity":
        return _modules().IdentityActivation()
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
    if isinstance(layer, _modules().Abs):
        return "abs", -1.0
    if isinstance(layer, _modules().IdentityActivation):
        return "identity", 1.0
    if isinstance(layer, (torch.nn.LeakyReLU, torch.nn.PReLU)):
        leaky = isinstance(layer, torch.nn.LeakyReLU)
        eta = float(layer.negative_slope) if leaky else _prelu_slope(name, layer)
        if eta == 0.0:
            return "relu", 0.0
        if eta == -1.0:
            return "abs", -1.0
        if eta == 1.0:  # a(t) = t: a layer without a kink
            return "identity", 1.0
        if 0.0 < eta < 1.0:
            return "leaky_relu", eta
        raise TorchConversionError(
            f"layer {name!r}: "
            f"{f'LeakyReLU(negative_slope={eta})' if leaky else f'PReLU with learned slope {eta}'}"
            " is not a DGN activation (supported slopes: 0 (relu), 0 < slope < 1 (leaky_relu), "
            "-1 (abs), 1 (identity))")
    raise TorchConversionError(
        f"layer {name!r} is {type(layer).__name__}, which is not a continuous "
        "piecewise-affine activation of a DGN; supported: nn.ReLU, nn.LeakyReLU, "
        "fastpath.torch_interop.Abs and fastpath.torch_interop.IdentityActivation")


def _activation_kind(name: str, layer: Any) -> tuple[str, float] | None:
    """(DGN activation, slope) of an activation module, None for any other module."""
    torch = _torch()
    if isinstance(layer, (torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.PReLU, _modules().Abs,
                          _modules().IdentityActivation)):
        return _classify_activation(name, layer)
    return None


def _is_pool(layer: Any) -> bool:
    """Whether ``layer`` is a max-pooling module that becomes a DGN max layer."""
    return bool(_torch_layers.is_max_pool(layer)) or isinstance(layer, _modules().GroupMax)


def _pool_windows(name: str, layer: Any, shape: tuple[int, ...], max_entries: int
                  ) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """The windows (flattened input indices per output) and output shape of a pool."""
    if isinstance(layer, _modules().GroupMax):
        if len(shape) != 1 or shape[0] != sum(layer.sizes):
            raise TorchConversionError(
                f"layer {name!r}: GroupMax over {sum(layer.sizes)} features does not chain "
                f"with the layers before it, which give shape {shape}")
        starts = np.concatenate([[0], np.cumsum(layer.sizes)[:-1]]).astype(np.intp)
        return ([np.arange(s, s + k) for s, k in zip(starts, layer.sizes)],
                (len(layer.sizes),))
    return _torch_layers.pool_windows(name, layer, shape, max_entries)


def from_torch(module: Any, noise_var: float | ArrayLike,
               prior_cov: ArrayLike | None = None, *,
               input_shape: tuple[int, ...] | None = None,
               max_entries: int = _torch_layers.MAX_ENTRIES) -> DGN:
    """A :class:`DGN` with the generator of a torch ``nn.Sequential``.

    Parameters
    ----------
    module : torch.nn.Sequential or torch.nn.Linear
        Affine blocks alternating with activations, ``nn.ReLU``, ``nn.LeakyReLU``,
        ``nn.PReLU()`` (one slope), :class:`Abs` or :class:`IdentityActivation` (a linear
        hidden layer) (each may differ: the DGN gets per-layer
        activations), or max-pooling modules ``nn.MaxPool1d``, ``nn.MaxPool2d``,
        :class:`GroupMax` (each a DGN max layer; module notes), starting and
        ending with a block (nested Sequentials are flattened; next to a max-pool a block
        may be empty: the identity). A block is a run of affine modules:
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
        (Tanh: not piecewise-affine; MaxPool3d, adaptive and fractional max-pooling: not
        supported), MaxPool with return_indices=True, BatchNorm or Dropout in training mode,
        two activations in a row, a module that starts or ends with an activation (a
        max-pool may start or end it), shapes that do not chain, an
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
    # split into affine blocks and the nonlinear modules between them: an activation
    # ((name, slope)) or a max-pooling module (None)
    blocks: list[list[tuple[str, Any]]] = []
    kinds: list[tuple[str, Any, tuple[str, float] | None]] = []
    current: list[tuple[str, Any]] = []
    for name, layer in leaves:
        kind = _activation_kind(name, layer)
        pool = kind is None and _is_pool(layer)
        if kind is None and not pool:
            if not _torch_layers.is_affine(layer):
                raise _torch_layers.unsupported_error(name, layer)
            current.append((name, layer))
            continue
        # an empty block next to a max-pool is the identity (Conv -> ReLU -> MaxPool, a pool
        # of z, MaxPool -> ReLU); between activations it is refused as before
        if not current and not pool and not (kinds and kinds[-1][2] is None):
            where = "starts with" if not blocks else "has two activations in a row at"
            raise TorchConversionError(
                f"the module {where} layer {name!r} ({type(layer).__name__}); a DGN "
                "alternates Linear layers and activations, starting with a Linear")
        blocks.append(current)
        current = []
        kinds.append((name, layer, kind))
    if not current and not (kinds and kinds[-1][2] is None):
        raise TorchConversionError(
            "the module ends with an activation; a DGN's generator ends with a Linear layer "
            "(its output is the mean of x)")
    blocks.append(current)
    # one activation per hidden layer (a DGN with one kind throughout when they agree)
    activations = ["max" if k is None else k[0] for _, _, k in kinds]
    slopes: list[float | None] = [None if k is None else k[1] for _, _, k in kinds]
    if input_shape is not None:
        shape = tuple(int(s) for s in np.atleast_1d(np.asarray(input_shape)))
        if not shape or min(shape) < 1:
            raise ValueError(f"input_shape must be positive integers, got {input_shape!r}")
    elif not blocks[0] and isinstance(kinds[0][1], _modules().GroupMax):
        shape = (sum(kinds[0][1].sizes),)
    elif not blocks[0]:
        raise TorchConversionError(
            f"the module starts with the max-pooling layer {kinds[0][0]!r} "
            f"({type(kinds[0][1]).__name__}), whose input shape is not known: pass "
            "input_shape, the shape of one latent sample (e.g. (C, H, W) for a MaxPool2d)")
    else:
        shape = _torch_layers.infer_input_shape(blocks[0])
    Ws: list[np.ndarray] = []
    vs: list[np.ndarray] = []
    pool_sizes: list[list[int] | None] = []
    for i, block in enumerate(blocks):
        if block:
            after_linear = i > 0 and bool(blocks[i - 1]) and isinstance(
                blocks[i - 1][-1][1], torch.nn.Linear)
            W, v, shape = _torch_layers.affine_block(block, shape, max_entries,
                                                     after_linear=after_linear)
        else:   # the identity, next to a max-pool
            n = int(np.prod(shape))
            if n * n > max_entries:
                pool_name = next(k[0] for k in kinds[max(i - 1, 0):i + 1] if k[2] is None)
                raise TorchConversionError(
                    f"the identity layer next to the max-pooling layer {pool_name!r} would have "
                    f"{n} x {n} = {n * n:,} entries, above max_entries={max_entries:,}")
            W, v = np.eye(n), np.zeros(n)
        if i < len(kinds) and kinds[i][2] is None:
            windows, shape = _pool_windows(kinds[i][0], kinds[i][1], shape, max_entries)
            rows = np.concatenate(windows)
            if rows.size * W.shape[1] > max_entries:
                raise TorchConversionError(
                    f"layer {kinds[i][0]!r} ({type(kinds[i][1]).__name__}): its max layer "
                    f"would have {rows.size} x {W.shape[1]} = {rows.size * W.shape[1]:,} "
                    f"entries, above max_entries={max_entries:,}")
            # the pool's units: the block's rows gathered per window (copies, no rounding)
            W, v = W[rows], v[rows]
            pool_sizes.append([len(w) for w in windows])
        elif i < len(kinds):
            pool_sizes.append(None)
        Ws.append(W)
        vs.append(v)
    if not kinds:
        return DGN(Ws, vs, noise_var=noise_var, prior_cov=prior_cov)
    if any(p is not None for p in pool_sizes):
        return DGN(Ws, vs, activation=activations, slope=slopes, noise_var=noise_var,
                   prior_cov=prior_cov, pool_sizes=pool_sizes)
    return DGN(Ws, vs, activation=activations, slope=slopes, noise_var=noise_var,
               prior_cov=prior_cov)
