"""The torch modules this package defines: :class:`Abs`, :class:`IdentityActivation` and
:class:`GroupMax`.

They subclass ``torch.nn.Module``, so this module imports torch at import time; torch is an
optional dependency, and :mod:`fastpath.torch_interop` imports this module only when one of
the classes is first used (its module ``__getattr__``). Their ``__module__`` is
``fastpath.torch_interop``, the public home of the names, so their repr and pickles do not
depend on this file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["Abs", "GroupMax", "IdentityActivation"]

_PUBLIC_MODULE = "fastpath.torch_interop"


class Abs(torch.nn.Module):
    """Element-wise absolute value, the DGN activation with slope -1."""

    def forward(self, x: Any) -> Any:
        return torch.abs(x)

    def extra_repr(self) -> str:
        return ""


class IdentityActivation(torch.nn.Module):
    """The identity activation a(t) = t: a DGN hidden layer without a kink.

    Its forward pass returns its input. Unlike ``nn.Identity`` (an affine no-op that
    :func:`~fastpath.torch_interop.from_torch` composes with the modules around it), it marks
    a hidden-layer boundary: :func:`~fastpath.torch_interop.to_torch` writes a DGN
    ``"identity"`` layer as ``nn.Linear`` followed by ``IdentityActivation()`` and
    :func:`~fastpath.torch_interop.from_torch` reads it back as one.
    """

    def forward(self, x: Any) -> Any:
        return x

    def extra_repr(self) -> str:
        return ""


class GroupMax(torch.nn.Module):
    """The maximum of consecutive groups of features: a DGN max-pooling layer.

    ``GroupMax(sizes)`` maps ``(..., sum(sizes))`` to ``(..., len(sizes))``; output ``g`` is
    the maximum of the ``sizes[g]`` features after the first ``sizes[0] + ... +
    sizes[g-1]``. :func:`~fastpath.torch_interop.to_torch` writes a DGN max layer as
    ``nn.Linear`` followed by ``GroupMax(net.pool_sizes[l])``;
    :func:`~fastpath.torch_interop.from_torch` reads it back.
    """

    def __init__(self, sizes: Any) -> None:
        super().__init__()
        ks = [int(k) for k in sizes]
        if not ks or min(ks) < 1:
            raise ValueError(f"GroupMax needs positive group sizes, got {sizes!r}")
        self.sizes = tuple(ks)
        starts = np.concatenate([[0], np.cumsum(ks)[:-1]])
        # (groups, max size): a group's indices, padded with its first index (a repeated
        # entry does not change a max), so one gather + amax does it all
        idx = np.array([[s + min(j, k - 1) for j in range(max(ks))]
                        for s, k in zip(starts, ks)], dtype=np.int64)
        self.register_buffer("index", torch.from_numpy(idx), persistent=False)

    def forward(self, x: Any) -> Any:
        if x.shape[-1] != sum(self.sizes):
            raise ValueError(f"GroupMax over {sum(self.sizes)} features got an "
                             f"input of shape {tuple(x.shape)}")
        return x[..., self.index].amax(dim=-1)

    def extra_repr(self) -> str:
        ks = sorted(set(self.sizes))
        each = f"{ks[0]}" if len(ks) == 1 else f"{ks[0]}..{ks[-1]}"
        return f"groups={len(self.sizes)}, size={each}"


for _cls in (Abs, IdentityActivation, GroupMax):
    _cls.__module__ = _PUBLIC_MODULE
