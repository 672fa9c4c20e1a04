"""Export a DGN into the modules of a torch template: ``to_torch(net, template=decoder)``.

:func:`fastpath.torch_interop.from_torch` turns every run of affine modules between two
nonlinearities into one dense DGN layer. :func:`export_to_template` goes back: the exported
module is a deep copy of a template ``nn.Sequential`` of the same architecture (typically the
decoder ``net`` was imported from) whose parameters are read off ``net``'s dense layers.

Reading a run back. A run with exactly ONE parametrised module P (``nn.Linear``,
``nn.Conv1d/2d``, ``nn.ConvTranspose1d/2d``, any stride / padding / padding mode / dilation /
groups / output_padding, with or without bias) and otherwise only parameter-free reshapes
(``Flatten``, ``Unflatten``, ``Identity``, eval-mode dropout) has the dense map
W = sum_k theta_k B_k, linear in P's weight entries theta_k. The index pattern of the B_k is
read by applying the run itself (float64) with P's weight set to all ones (C = how many
kernel entries meet each (output, input) pair, exact small integers) and to 1, 2, ..., K
(the sum of the indices, exact); where C = 1 the pair holds exactly one theta_k, the weight
itself (a zero-padded convolution of a one-hot input is one weight times 1 plus exact zeros),
so theta_k is copied from there. The bias is read likewise, with the weight zero and the
bias set to 1, 2, ..., C_out: each output row's channel. Entries of P that touch no row of
the layer (possible when a max-pool's windows skip rows) keep the template's values; they do
not change the map. Then the run is rebuilt with the recovered parameters and its dense map
(computed exactly as ``from_torch`` computes it, rows gathered per pooling window for a max
layer) must equal ``net``'s layer, W and v, value for value; otherwise the layer is refused
(``TorchConversionError``): the net's layer is not such a module (e.g. EM untied the
convolution's weights, or the bias is not constant per output channel).

Runs that cannot be read back (no parametrised module: AvgPool, the identity layer next to a
max-pool; or several, or a BatchNorm folded into the run) keep the template's modules as they
are, and only when the template's own dense map of the run equals ``net``'s layer value for
value (the net was imported from this template and that layer not changed); otherwise they
are refused. There is no fallback to ``nn.Linear`` for a refused run: ``to_torch(net)``
without a template exports the whole net densely.

Activations and max-pools are kept from the template; they must be the net's (the same
activation and slope, the same pooling groups), and every layer must have the net's shape.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from dgn_core.exceptions import TorchConversionError
from dgn_core.model import DGN
from fastpath import _torch_layers


def _parametrised(layer: Any) -> bool:
    """Whether ``layer`` is a module whose parameters are read back (Linear or a conv)."""
    types = _torch_layers._leaf_types()
    return isinstance(layer, types["linear"] + types["conv"])


def _free(layer: Any) -> bool:
    """Whether ``layer`` is a parameter-free reshape (its dense map is a copy of entries)."""
    types = _torch_layers._leaf_types()
    return isinstance(layer, types["reshape"] + types["identity"])


def _describe(block: list[tuple[str, Any]]) -> str:
    if not block:
        return "the identity layer (no module)"
    return "the run " + ", ".join(f"{n!r} ({type(m).__name__})" for n, m in block)


class _Run:
    """One DGN layer of the template: its affine modules and the rows a max-pool gathers."""

    def __init__(self, index: int, block: list[tuple[str, Any]], shape: tuple[int, ...],
                 rows: np.ndarray | None, max_entries: int) -> None:
        self.index = index
        self.block = block
        self.shape = shape            # per-sample input shape of the run
        self.rows = rows              # gathered rows (max layer), None for element-wise
        self.max_entries = max_entries

    def dense(self, replace: dict[int, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The layer's (W, v) as ``from_torch`` builds it, modules ``replace``-d by position.

        Returns W of shape (n_units, prod(shape)) and v of shape (n_units,), float64.
        """
        if not self.block:
            n = math.prod(self.shape)
            W, v = np.eye(n), np.zeros(n)
        else:
            block = [(n, (replace or {}).get(j, m)) for j, (n, m) in enumerate(self.block)]
            W, v, _ = _torch_layers.affine_block(block, self.shape, self.max_entries)
        if self.rows is not None:
            W, v = W[self.rows], v[self.rows]
        return W, v


def _out_shape(block: list[tuple[str, Any]], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-sample output shape of a run (one zero sample through float64 copies)."""
    import torch
    x = torch.zeros((1, *shape), dtype=torch.float64)
    with torch.no_grad():
        for _, layer in block:
            x = copy.deepcopy(layer).to(device="cpu", dtype=torch.float64).eval()(x)
    return tuple(int(s) for s in x.shape[1:])


def _mismatch(what: str, got: np.ndarray, want: np.ndarray) -> str:
    if got.shape != want.shape:
        return f"{what} has shape {got.shape}, the net's {want.shape}"
    bad = got != want
    return (f"{int(bad.sum())} of {bad.size} entries of {what} differ from the net's "
            f"(largest difference {float(np.abs(got - want).max()):.3g})")


def _read_back(run: _Run, W: np.ndarray, v: np.ndarray, label: str) -> tuple[Any, Any, Any]:
    """Recover the one parametrised module's weight and bias of ``run`` from (W, v).

    Returns the module (of the export copy), its weight (float64 tensor of the weight's
    shape) and bias (float64 tensor or None); raises when they do not reproduce (W, v).
    """
    import torch
    j, module = next((j, m) for j, (_, m) in enumerate(run.block) if _parametrised(m))
    name = run.block[j][0]
    weight = module.weight.detach().cpu().to(torch.float64)
    has_bias = module.bias is not None
    K = weight.numel()

    def variant(wvals: Any, bvals: Any) -> Any:
        m64 = copy.deepcopy(module).to(device="cpu", dtype=torch.float64)
        with torch.no_grad():
            m64.weight.copy_(wvals.reshape(weight.shape))
            if has_bias:
                m64.bias.copy_(bvals)
        return m64

    n_bias = module.bias.numel() if has_bias else 0
    zeros_b = torch.zeros(n_bias, dtype=torch.float64)
    # the index pattern: counts (weights 1) and index sums (weights 1..K), exact integers
    count, _ = run.dense({j: variant(torch.ones(K, dtype=torch.float64), zeros_b)})
    index, _ = run.dense({j: variant(torch.arange(1, K + 1, dtype=torch.float64), zeros_b)})
    theta = weight.reshape(-1).clone().numpy()   # entries that touch no row keep these
    single = count == 1.0
    theta[(index[single] - 1).astype(np.int64)] = W[single]
    bias = None
    if has_bias:
        _, channel = run.dense({j: variant(torch.zeros(K, dtype=torch.float64),
                                           torch.arange(1, n_bias + 1, dtype=torch.float64))})
        b = module.bias.detach().cpu().to(torch.float64).clone().numpy()
        b[(channel - 1).astype(np.int64)] = v
        bias = torch.from_numpy(b)
    theta_t = torch.from_numpy(theta).reshape(weight.shape)
    Wr, vr = run.dense({j: variant(theta_t, bias if has_bias else zeros_b)})
    kind = type(module).__name__
    if not np.array_equal(Wr, W):
        raise TorchConversionError(
            f"{label}: the net's weight matrix is not the dense map of any {kind} with the "
            f"configuration of the template's layer {name!r} (kernel size, stride, padding, "
            f"dilation, groups: {_mismatch('the recovered module`s matrix', Wr, W)}); its "
            "weights are no longer tied as the module ties them (e.g. after fastpath.fit_em), "
            "so it cannot be exported as this module; export it densely with to_torch(net)")
    if not np.array_equal(vr, v):
        why = ("the template's module has no bias but the net's layer has a non-zero offset"
               if not has_bias else "the offset is not one constant per output channel")
        raise TorchConversionError(
            f"{label}: the net's offset is not the bias of {kind} {name!r}: {why} "
            f"({_mismatch('the recovered offset', vr, v)}); export it densely with "
            "to_torch(net)")
    return module, theta_t, bias


def _check_nonlinearity(i: int, name: str, layer: Any, kind: tuple[str, float] | None,
                        net: DGN, tnet: DGN) -> None:
    """The template's activation / max-pool must be the net's hidden layer ``i``'s."""
    what = type(layer).__name__
    if kind is None:
        if net.pool_sizes[i] != tnet.pool_sizes[i]:
            have = (f"groups of sizes {list(net.pool_sizes[i])}" if net.pool_sizes[i]
                    else f"the element-wise activation {net.activations[i]!r}")
            raise TorchConversionError(
                f"template layer {name!r} ({what}) is a max-pool with groups of sizes "
                f"{list(tnet.pool_sizes[i])}, but the net's hidden layer {i + 1} has {have}")
        return
    act, slope = kind
    if net.pool_sizes[i] or act != net.activations[i] or (
            act == "leaky_relu" and slope != net.slopes[i]):
        have = ("a max-pooling layer" if net.pool_sizes[i] else
                f"activation {net.activations[i]!r}" + (
                    f" (slope {net.slopes[i]})" if net.activations[i] == "leaky_relu" else ""))
        raise TorchConversionError(
            f"template layer {name!r} ({what}) is the activation {act!r}"
            + (f" (slope {slope})" if act == "leaky_relu" else "")
            + f", but the net's hidden layer {i + 1} has {have}")


def export_to_template(net: DGN, template: Any, dtype: Any, requires_grad: bool,
                       input_shape: tuple[int, ...] | None, max_entries: int) -> Any:
    """A deep copy of ``template`` with the parameters of ``net`` (module notes).

    Parameters
    ----------
    net : DGN
        Checked already.
    template : torch.nn.Sequential or torch.nn.Linear
        A decoder that :func:`~fastpath.torch_interop.from_torch` reads, with ``net``'s
        architecture.
    dtype : torch dtype or None
        Parameter (and buffer) dtype of the result; None keeps the template's.
    requires_grad : bool
    input_shape : tuple of int or None
        Per-sample input shape of the template (as for ``from_torch``).
    max_entries : int
        Limit on the dense matrices built to check each layer.

    Returns
    -------
    torch.nn.Module
        Same class and modules as ``template``.
    """
    import torch

    from fastpath import torch_interop as ti
    if not isinstance(template, (torch.nn.Sequential, torch.nn.Linear)):
        raise TypeError(f"template must be a torch.nn.Sequential (or one nn.Linear), got "
                        f"{type(template).__name__}")
    # the template's own DGN: every check of from_torch (supported modules, shapes, modes)
    tnet = ti.from_torch(template, 1.0, input_shape=input_shape, max_entries=max_entries)
    if tnet.widths != net.widths or tnet.n_layers != net.n_layers:
        raise TorchConversionError(
            f"the template has another architecture: its layers have widths {tnet.widths} "
            f"(latent, units per layer, output), the net's {net.widths}")
    out = copy.deepcopy(template)
    leaves = [("0", out)] if isinstance(out, torch.nn.Linear) else ti._flatten(out)
    # split as from_torch does (the template passed its checks above)
    blocks: list[list[tuple[str, Any]]] = []
    kinds: list[tuple[str, Any, tuple[str, float] | None]] = []
    current: list[tuple[str, Any]] = []
    for name, layer in leaves:
        kind = ti._activation_kind(name, layer)
        if kind is None and not ti._is_pool(layer):
            current.append((name, layer))
            continue
        blocks.append(current)
        current = []
        kinds.append((name, layer, kind))
    blocks.append(current)
    for i, (name, layer, kind) in enumerate(kinds):
        _check_nonlinearity(i, name, layer, kind, net, tnet)
    if input_shape is not None:
        shape = tuple(int(s) for s in np.atleast_1d(np.asarray(input_shape)))
    elif not blocks[0]:            # a GroupMax first (from_torch refused any other pool)
        shape = (sum(kinds[0][1].sizes),)
    else:
        shape = _torch_layers.infer_input_shape(blocks[0])
    updates: list[tuple[Any, Any, Any]] = []
    for i, block in enumerate(blocks):
        out_shape = _out_shape(block, shape)
        rows = None
        next_shape = out_shape
        if i < len(kinds) and kinds[i][2] is None:
            windows, next_shape = ti._pool_windows(kinds[i][0], kinds[i][1], out_shape,
                                                   max_entries)
            rows = np.concatenate(windows)
        run = _Run(i, block, shape, rows, max_entries)
        W = np.asarray(net.weights[i], dtype=np.float64)
        v = np.asarray(net.biases[i], dtype=np.float64)
        label = f"DGN layer {i} ({_describe(block)})"
        params = [m for _, m in block if _parametrised(m)]
        fixed = [m for _, m in block if not _parametrised(m) and not _free(m)]
        if len(params) == 1 and not fixed:
            updates.append(_read_back(run, W, v, label))
        else:
            Wt, vt = run.dense()
            if not (np.array_equal(Wt, W) and np.array_equal(vt, v)):
                why = ("it has no parametrised module, so its map is fixed by the template"
                       if not params else
                       f"it has {len(params)} parametrised modules" if len(params) > 1 else
                       "it folds " + ", ".join(type(m).__name__ for m in fixed)
                       + " into the module's map")
                diff = (_mismatch("the template's matrix", Wt, W)
                        if not np.array_equal(Wt, W) else
                        _mismatch("the template's offset", vt, v))
                raise TorchConversionError(
                    f"{label} cannot be read back from the net's dense layer: {why}, and one "
                    "dense matrix does not determine its parameters; such a run is kept from "
                    f"the template only when the template's dense map equals the net's layer "
                    f"exactly, and here {diff}. Export the net densely with to_torch(net)")
        shape = next_shape
    with torch.no_grad():
        for module, weight, bias in updates:
            module.weight.copy_(weight)      # cast to the module's dtype (float32: rounds)
            if bias is not None:
                module.bias.copy_(bias)
    if dtype is not None:
        out = out.to(dtype=dtype)
    for p in out.parameters():
        p.requires_grad_(requires_grad)
    return out
