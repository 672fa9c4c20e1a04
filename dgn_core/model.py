"""The continuous piecewise-affine (CPA) deep generative network, shared by both paths.

    z ~ N(0, Sigma_z),   x = g(z) + eps,   eps ~ N(0, Sigma_x)
    g(z) = W^L a(W^{L-1} ... a(W^1 z + v^1) ... + v^{L-1}) + v^L

with a(t) = t for t > 0 and ``slope * t`` otherwise: ReLU (slope 0), leaky-ReLU
(0 < slope < 1) and absolute value (slope -1), or max-pooling over groups of units
(:mod:`dgn_core.activations`). Each hidden layer may have its own activation and slope
(``DGN.activations``, ``DGN.slopes``, ``DGN.pool_sizes``).

Part of the shared specification (:mod:`dgn_core`): numpy only, imported by both backends.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .activations import (
    ACTIVATIONS,
    IDENTITY,
    MAX,
    MIXED,
    check_activation,
    check_pool_sizes,
    group_max,
    layer_activations,
    max_pattern,
)
from .exceptions import ModelFileError, UnsupportedLayerError
from .validation import check_int, make_rng, real_array

__all__ = ["DGN", "ACTIVATIONS", "MIXED", "MAX", "ModelFileError"]

_check_activation = check_activation  # the model file reader's name for it

_FORMAT = "verified_dgn.DGN"
#: the newest model-file format: 2 stores one activation and slope per hidden layer, 3 adds
#: max-pooling layers and their group sizes; a net is written in the oldest format that holds
#: it (1: one activation throughout), so that older readers take it
_FORMAT_VERSION = 3


def _ascii_array(text: str) -> NDArray[np.uint8]:
    """``text`` as a 1-d uint8 array of its ASCII bytes (the model file's string encoding)."""
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8).copy()


def _as_float_array(value: ArrayLike, name: str, ndim: int) -> NDArray[np.float64]:
    arr = real_array(value, name)  # a copy: the model owns its parameters
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = "NaN" if np.isnan(arr).any() else "infinite"
        raise ValueError(f"{name} contains {bad} values")
    arr.setflags(write=False)
    return arr


class DGN:
    """A deep generative network with a continuous piecewise-affine activation.

    Parameters
    ----------
    weights : sequence of array_like
        ``[W1, ..., WL]`` with ``W_l`` of shape ``(D_l, D_{l-1})``; ``D_0 = S`` is the
        latent dimension and ``D_L = D`` the data dimension. ``L >= 1``; ``L - 1`` hidden
        layers carry the activation.
    biases : sequence of array_like
        ``[v1, ..., vL]`` with ``v_l`` of shape ``(D_l,)``.
    activation : {"relu", "leaky_relu", "abs", "identity", "max"} or sequence of them
        One activation for every hidden layer, or one per hidden layer (``L - 1`` names).
        ``"max"`` is max-pooling over groups of the layer's units (see ``pool_sizes``);
        ``"identity"`` (slope 1) is a linear layer: no kink, pattern entries always +1.
    slope : float or sequence of float, optional
        The negative-side slope eta: 0 for relu, in (0, 1) for leaky_relu (default 0.01),
        -1 for abs, 1 for identity. One number (applied to every leaky_relu layer) or one per hidden layer
        (None entries take the activation's default).
    noise_var : float or array_like of shape (D,)
        Variance of the Gaussian observation noise: isotropic (a float) or diagonal.
    prior_cov : array_like of shape (S, S), optional
        Covariance of the Gaussian prior on z (default identity).
    pool_sizes : sequence, optional
        Needed when a layer is ``"max"``: one entry per hidden layer, None for an
        element-wise layer and, for a max layer, the sizes of its consecutive groups of units
        (adding up to ``D_l``) or one size k (groups of k). The max layer outputs one value
        per group, so the next weight matrix has one column per group. See
        :mod:`dgn_core.activations` for the pattern of a max layer.

    Notes
    -----
    Parameters are stored as read-only float64 arrays. The exact path converts them to
    rationals without rounding (every float64 is a dyadic rational).
    """

    def __init__(
        self,
        weights: Sequence[ArrayLike],
        biases: Sequence[ArrayLike],
        activation: str | Sequence[str] = "relu",
        slope: float | Sequence[float | None] | None = None,
        noise_var: float | ArrayLike = 0.01,
        prior_cov: ArrayLike | None = None,
        pool_sizes: Sequence[Sequence[int] | int | None] | None = None,
    ) -> None:
        if isinstance(weights, np.ndarray) or not isinstance(weights, Sequence):
            raise TypeError("weights must be a list of 2-D arrays [W1, ..., WL]")
        if isinstance(biases, np.ndarray) or not isinstance(biases, Sequence):
            raise TypeError("biases must be a list of 1-D arrays [v1, ..., vL]")
        if len(weights) == 0:
            raise ValueError("a DGN needs at least one layer (weights is empty)")
        if len(weights) != len(biases):
            raise ValueError(
                f"got {len(weights)} weight matrices but {len(biases)} bias vectors"
            )
        Ws = [_as_float_array(W, f"weights[{i}]", 2) for i, W in enumerate(weights)]
        vs = [_as_float_array(v, f"biases[{i}]", 1) for i, v in enumerate(biases)]
        # _slope: the one slope of a net with one activation throughout (None when mixed)
        self._activation, self._slope, self._activations, self._slopes = layer_activations(
            activation, slope, len(Ws) - 1)
        self._pool_sizes = check_pool_sizes(pool_sizes, self._activations,
                                            [W.shape[0] for W in Ws[:-1]])
        for i, W in enumerate(Ws):
            if 0 in W.shape:
                raise ValueError(f"weights[{i}] has an empty dimension: shape {W.shape}")
            if i > 0:
                pooled = bool(self._pool_sizes[i - 1])
                n_out = len(self._pool_sizes[i - 1]) if pooled else Ws[i - 1].shape[0]
                if W.shape[1] != n_out:
                    what = (f"max-pools its {Ws[i - 1].shape[0]} units to {n_out} outputs"
                            if pooled else f"outputs {n_out}")
                    raise ValueError(
                        f"layer shapes do not chain: weights[{i - 1}] has shape "
                        f"{Ws[i - 1].shape} ({what}) but weights[{i}] "
                        f"has shape {W.shape} (expects {W.shape[1]} inputs)"
                    )
            if vs[i].shape != (W.shape[0],):
                raise ValueError(
                    f"biases[{i}] must have shape ({W.shape[0]},) to match weights[{i}] "
                    f"of shape {W.shape}, got {vs[i].shape}"
                )
        self._weights = tuple(Ws)
        self._biases = tuple(vs)

        D = Ws[-1].shape[0]
        nv = real_array(noise_var, "noise_var") if noise_var is not None else None
        if nv is None or nv.ndim > 1 or (nv.ndim == 1 and nv.shape != (D,)):
            raise ValueError(
                f"noise_var must be a positive float or an array of shape ({D},), "
                f"got {noise_var!r}"
            )
        if not np.all(np.isfinite(nv)):
            raise ValueError("noise_var contains NaN or infinite values")
        if np.any(nv <= 0):
            raise ValueError(f"noise_var must be positive, got {noise_var!r}")
        self._noise_var: float | NDArray[np.float64]
        if nv.ndim == 0:
            self._noise_var = float(nv)
        else:
            nv.setflags(write=False)
            self._noise_var = nv

        S = Ws[0].shape[1]
        if prior_cov is None:
            self._prior_cov = None
        else:
            pc = _as_float_array(prior_cov, "prior_cov", 2)
            if pc.shape != (S, S):
                raise ValueError(f"prior_cov must have shape ({S}, {S}), got {pc.shape}")
            if not np.allclose(pc, pc.T, rtol=1e-12, atol=0.0):
                raise ValueError("prior_cov must be symmetric")
            if np.linalg.eigvalsh(pc).min() <= 0:
                raise ValueError("prior_cov must be positive definite")
            self._prior_cov = pc

    # ------------------------------------------------------------------ attributes
    @property
    def weights(self) -> tuple[NDArray[np.float64], ...]:
        """``(W1, ..., WL)``, ``W_l`` of shape ``(D_l, D_{l-1})``."""
        return self._weights

    @property
    def biases(self) -> tuple[NDArray[np.float64], ...]:
        """``(v1, ..., vL)``, ``v_l`` of shape ``(D_l,)``."""
        return self._biases

    @property
    def activation(self) -> str:
        """The activation of every hidden layer, or ``"mixed"`` when the layers differ in
        activation or slope (then see :attr:`activations` and :attr:`slopes`)."""
        return self._activation

    @property
    def slope(self) -> float:
        """The negative-side slope eta of the activation.

        Raises
        ------
        ValueError
            The hidden layers have different activations or slopes (use :attr:`slopes`).
        """
        if self._activation == MAX:
            raise ValueError("max-pooling has no slope")
        if self._slope is None:
            raise ValueError(
                f"this DGN has per-layer activations {list(self._activations)} with slopes "
                f"{list(self._slopes)}: it has no single slope (use net.slopes)")
        return self._slope

    @property
    def activations(self) -> tuple[str, ...]:
        """The activation of each hidden layer, ``(a_1, ..., a_{L-1})``."""
        return self._activations

    @property
    def slopes(self) -> tuple[float, ...]:
        """The negative-side slope of each hidden layer, ``(eta_1, ..., eta_{L-1})``."""
        return self._slopes

    @property
    def pool_sizes(self) -> tuple[tuple[int, ...], ...]:
        """Per hidden layer, the sizes of its max-pooling groups (``()`` for an element-wise
        layer)."""
        return self._pool_sizes

    @property
    def has_max_pooling(self) -> bool:
        """Whether some hidden layer is max-pooling."""
        return MAX in self._activations

    def require_elementwise(self, what: str) -> None:
        """:class:`~dgn_core.exceptions.UnsupportedLayerError` (a NotImplementedError) naming
        ``what`` when the net has a max-pooling layer."""
        if self.has_max_pooling:
            layers = [l + 1 for l, a in enumerate(self._activations) if a == MAX]
            raise UnsupportedLayerError(
                f"{what} supports element-wise activations only (relu, leaky_relu, abs); "
                f"this net max-pools in hidden layer(s) {layers}")

    @property
    def kink_units(self) -> NDArray[np.bool_]:
        """Whether every hidden unit (in sign-pattern order) has a kink, shape
        ``(n_hidden_units,)``: False for the units of an identity layer, which contribute no
        hyperplane and whose pattern entry is always +1."""
        return np.repeat(np.asarray([a != IDENTITY for a in self._activations], dtype=bool),
                         np.asarray(self.hidden_widths, dtype=np.intp))

    @property
    def mixed_activations(self) -> bool:
        """Whether the hidden layers differ in activation or slope."""
        return self._activation == MIXED

    def unit_slopes(self) -> NDArray[np.float64]:
        """The negative-side slope of every hidden unit, in sign-pattern order,
        shape ``(n_hidden_units,)``.

        Raises NotImplementedError for a net with a max-pooling layer (no slopes)."""
        self.require_elementwise("unit_slopes")
        return np.repeat(np.asarray(self._slopes, dtype=np.float64),
                         np.asarray(self.hidden_widths, dtype=np.intp))

    def activation_kwargs(self) -> dict[str, Any]:
        """``activation`` and ``slope`` arguments that rebuild this net's activations (for
        :meth:`random`, :meth:`replace` and the constructor)."""
        if self.has_max_pooling:
            return {"activation": list(self._activations),
                    "slope": [None if a == MAX else s
                              for a, s in zip(self._activations, self._slopes)],
                    "pool_sizes": [list(p) if p else None for p in self._pool_sizes]}
        if self._activation == MIXED:
            return {"activation": list(self._activations), "slope": list(self._slopes)}
        return {"activation": self._activation, "slope": self._slope}

    def activation_entries(self) -> tuple[str, float | list[float]]:
        """(activation, slope) as the model file stores them: one name and one slope, or per
        hidden layer the names joined by ``","`` and the list of slopes (format 2; NaN for a
        max layer). Also the ``--activation`` / ``--slope`` settings of ``dgn fit``."""
        if self._activation in (MIXED, MAX):
            return ",".join(self._activations), [float(s) for s in self._slopes]
        return self._activation, float(self.slope)

    def _pool_sizes_short(self) -> list[int | list[int] | None]:
        """``pool_sizes`` as the constructor takes it, one size k for groups of k."""
        return [None if not p else p[0] if len(set(p)) == 1 else list(p)
                for p in self._pool_sizes]

    def describe_activations(self) -> str:
        """The activations in words: ``"relu"``, ``"leaky_relu(0.2)"`` or, per layer,
        ``"relu, abs, leaky_relu(0.1)"``."""
        def one(a: str, s: float, p: tuple[int, ...] = ()) -> str:
            if a == MAX:
                ks = sorted(set(p))
                return f"max({ks[0]})" if len(ks) == 1 else f"max({min(ks)}-{max(ks)})"
            return f"{a}({s:g})" if a == "leaky_relu" else a
        if self._activation in (MIXED, MAX):
            return ", ".join(one(a, s, p) for a, s, p in
                             zip(self._activations, self._slopes, self._pool_sizes))
        return one(self._activation, self.slope)

    @property
    def noise_var(self) -> float | NDArray[np.float64]:
        """Observation noise variance: a float (isotropic) or a ``(D,)`` array (diagonal)."""
        return self._noise_var

    @property
    def prior_cov(self) -> NDArray[np.float64]:
        """Prior covariance Sigma_z, ``(S, S)`` (identity unless given)."""
        if self._prior_cov is None:
            eye = np.eye(self.latent_dim)
            eye.setflags(write=False)
            return eye
        return self._prior_cov

    @property
    def has_identity_prior(self) -> bool:
        return self._prior_cov is None or bool(np.array_equal(self._prior_cov, np.eye(self.latent_dim)))

    @property
    def noise_var_vector(self) -> NDArray[np.float64]:
        """The noise variance as a ``(D,)`` array whatever was given."""
        return np.broadcast_to(np.asarray(self._noise_var, dtype=np.float64), (self.data_dim,))

    @property
    def isotropic_noise(self) -> bool:
        return np.ndim(self._noise_var) == 0

    @property
    def latent_dim(self) -> int:
        """S, the dimension of z."""
        return int(self._weights[0].shape[1])

    @property
    def data_dim(self) -> int:
        """D, the dimension of x."""
        return int(self._weights[-1].shape[0])

    @property
    def widths(self) -> tuple[int, ...]:
        """``(S, D_1, ..., D_{L-1}, D)``."""
        return (self.latent_dim,) + tuple(int(W.shape[0]) for W in self._weights)

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        """Widths of the hidden (activated) layers, ``(D_1, ..., D_{L-1})``: their
        pre-activation units (a max-pooling layer outputs fewer values)."""
        return self.widths[1:-1]

    @property
    def hidden_output_widths(self) -> tuple[int, ...]:
        """The number of values each hidden layer passes on: ``D_l``, or the number of
        groups of a max-pooling layer."""
        return tuple(len(p) if p else w for w, p in zip(self.hidden_widths, self._pool_sizes))

    @property
    def n_layers(self) -> int:
        """L, the number of affine layers (hidden layers + output layer)."""
        return len(self._weights)

    @property
    def n_hidden_units(self) -> int:
        """Total number of activated units; the length of a sign pattern."""
        return int(sum(self.hidden_widths))

    @property
    def n_params(self) -> int:
        """Number of free parameters of the generator and noise (for AIC / BIC)."""
        k = sum(W.size + v.size for W, v in zip(self._weights, self._biases))
        return int(k + np.size(self._noise_var))

    def unit_index(self) -> list[tuple[int, int]]:
        """``(layer, k)`` for every hidden unit, in sign-pattern order (layer from 1)."""
        return [(l + 1, k) for l, w in enumerate(self.hidden_widths) for k in range(w)]

    # ------------------------------------------------------------------ evaluation
    def _check_latent(self, Z: ArrayLike, name: str = "Z") -> NDArray[np.float64]:
        Z = real_array(Z, name)
        if Z.ndim == 1:
            if self.latent_dim == 1 and Z.shape[0] != 1:
                Z = Z[:, None]
            else:
                Z = Z[None, :]
        if Z.ndim != 2 or Z.shape[1] != self.latent_dim:
            raise ValueError(
                f"{name} must have shape (N, {self.latent_dim}) for latent dimension "
                f"{self.latent_dim}, got shape {np.shape(Z)}"
            )
        if not np.all(np.isfinite(Z)):
            raise ValueError(f"{name} contains NaN or infinite values")
        return Z

    def _activate(self, H: NDArray[np.float64], l: int) -> NDArray[np.float64]:
        """The activation of hidden layer ``l + 1`` (counted from 0 here)."""
        act = self._activations[l]
        if act == MAX:
            return group_max(H, self._pool_sizes[l])
        if act == "relu":
            return np.maximum(H, 0.0)
        if act == "abs":
            return np.abs(H)
        return np.where(H > 0, H, self._slopes[l] * H)

    def _forward(self, Z: NDArray[np.float64]) -> tuple[NDArray[np.float64], list[NDArray[np.float64]]]:
        pre = []
        h = Z
        for l, (W, v) in enumerate(zip(self._weights[:-1], self._biases[:-1])):
            a = h @ W.T + v
            pre.append(a)
            h = self._activate(a, l)
        return h @ self._weights[-1].T + self._biases[-1], pre

    def forward(self, Z: ArrayLike) -> NDArray[np.float64]:
        """g(Z): the noiseless generator.

        Parameters
        ----------
        Z : array_like, shape (N, S) or (S,)

        Returns
        -------
        X : ndarray, shape (N, D)
        """
        return self._forward(self._check_latent(Z))[0]

    __call__ = forward

    def pre_activations(self, Z: ArrayLike) -> list[NDArray[np.float64]]:
        """Hidden pre-activations ``[h^1(Z), ..., h^{L-1}(Z)]``, each ``(N, D_l)``."""
        return self._forward(self._check_latent(Z))[1]

    def sign_patterns(self, Z: ArrayLike) -> NDArray[np.int8]:
        """Sign pattern q(z) of every row of Z, shape ``(N, n_hidden_units)``.

        ``+1`` where the pre-activation is ``>= 0`` and ``-1`` where it is ``< 0``; points on
        a region boundary (pre-activation exactly 0) get ``+1``. In a max-pooling layer, +1
        marks the first unit of each group that attains the group's maximum. An identity
        layer's entries are always +1. Returns shape ``(N, 0)`` for a network without hidden
        layers.
        """
        pre = self.pre_activations(Z)
        N = np.shape(self._check_latent(Z))[0]
        if not pre:
            return np.zeros((N, 0), dtype=np.int8)
        return np.concatenate([max_pattern(H, self._pool_sizes[l]) if self._pool_sizes[l]
                               else np.ones(H.shape, dtype=np.int8)
                               if self._activations[l] == IDENTITY
                               else np.where(H >= 0, 1, -1).astype(np.int8)
                               for l, H in enumerate(pre)], axis=1)

    def forward_exact(self, z: Sequence[Any]) -> list[Fraction]:
        """g(z) at one point in exact rational arithmetic (z entries: int, Fraction, float)."""
        zz = [Fraction(t) for t in z]
        if len(zz) != self.latent_dim:
            raise ValueError(f"z must have {self.latent_dim} entries, got {len(zz)}")
        slopes = [Fraction(0) if a == MAX else Fraction(s)
                  for a, s in zip(self._activations, self._slopes)]
        h = zz
        for i, (W, v) in enumerate(zip(self._weights, self._biases)):
            out = [
                sum((Fraction(float(W[r, c])) * h[c] for c in range(W.shape[1])), Fraction(0))
                + Fraction(float(v[r]))
                for r in range(W.shape[0])
            ]
            if i < self.n_layers - 1 and self._pool_sizes[i]:
                groups, start = [], 0
                for k in self._pool_sizes[i]:
                    groups.append(max(out[start:start + k]))
                    start += k
                out = groups
            elif i < self.n_layers - 1:
                out = [t if t > 0 else slopes[i] * t for t in out]
            h = out
        return h

    def sample(self, n: int, seed: int | np.random.Generator | None = None
               ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Draw ``n`` samples from the generative model.

        Returns
        -------
        X : ndarray, shape (n, D)
        Z : ndarray, shape (n, S)
        """
        n = check_int(n, "n", 0)
        rng = make_rng(seed)
        Z = rng.standard_normal((int(n), self.latent_dim))
        if self._prior_cov is not None:
            Z = Z @ np.linalg.cholesky(self._prior_cov).T
        X = self._forward(Z)[0] + rng.standard_normal((int(n), self.data_dim)) * np.sqrt(
            self.noise_var_vector
        )
        return X, Z

    # ------------------------------------------------------------------ construction
    @classmethod
    def random(
        cls,
        widths: Sequence[int],
        activation: str | Sequence[str] = "relu",
        seed: int | np.random.Generator | None = 0,
        noise_var: float | ArrayLike = 0.01,
        init: str = "torch",
        slope: float | Sequence[float | None] | None = None,
        prior_cov: ArrayLike | None = None,
        pool_sizes: Sequence[Sequence[int] | int | None] | None = None,
    ) -> DGN:
        """A random network with widths ``(S, D_1, ..., D_{L-1}, D)``.

        Parameters
        ----------
        init : {"torch", "he"}
            ``"torch"``: PyTorch's default ``nn.Linear`` initialisation, weights and biases
            uniform on ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``. ``"he"``: weights normal with
            variance ``2 / fan_in``, biases zero (a bias-free net: every hyperplane of the
            first layer passes through the origin).
        pool_sizes : sequence, optional
            As in the constructor; a max layer's width in ``widths`` counts its units
            before pooling.
        """
        if isinstance(widths, (str, bytes)):
            raise TypeError(f"widths must be a sequence of integers, got {widths!r}")
        widths = tuple(widths)
        if len(widths) < 2:
            raise ValueError(f"widths must be at least two positive integers (latent, ..., "
                             f"data), got {widths!r}")
        widths = tuple(check_int(w, f"each entry of widths {widths!r}", 1) for w in widths)
        if init not in ("torch", "he"):
            raise ValueError(f"init must be 'torch' or 'he', got {init!r}")
        rng = make_rng(seed)
        Ws, vs = [], []
        fan_ins = list(widths[:-1])
        if pool_sizes is not None:
            acts = layer_activations(activation, slope, len(widths) - 2)[2]
            pools = check_pool_sizes(pool_sizes, acts, widths[1:-1])
            fan_ins[1:] = [len(p) if p else w for w, p in zip(widths[1:-1], pools)]
        for fan_in, fan_out in zip(fan_ins, widths[1:]):
            if init == "torch":
                bound = 1.0 / np.sqrt(fan_in)
                Ws.append(rng.uniform(-bound, bound, size=(fan_out, fan_in)))
                vs.append(rng.uniform(-bound, bound, size=fan_out))
            else:
                Ws.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(fan_out, fan_in)))
                vs.append(np.zeros(fan_out))
        return cls(Ws, vs, activation=activation, slope=slope, noise_var=noise_var,
                   prior_cov=prior_cov, pool_sizes=pool_sizes)

    def replace(self, **changes: Any) -> DGN:
        """A copy with some constructor arguments replaced."""
        kw: dict[str, Any] = dict(
            weights=list(self._weights), biases=list(self._biases),
            noise_var=self._noise_var, prior_cov=self._prior_cov, **self.activation_kwargs(),
        )
        kw.update(changes)
        return DGN(**kw)

    # ------------------------------------------------------------------ comparison
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DGN):
            return NotImplemented
        return (
            self._activation == other._activation
            # a net that max-pools in every hidden layer has the slope NaN (NO_SLOPE)
            and (self._slope == other._slope
                 or self._activation == other._activation == MAX)
            and self._activations == other._activations
            and self._slopes == other._slopes
            and self._pool_sizes == other._pool_sizes
            and self.n_layers == other.n_layers
            and all(np.array_equal(a, b) for a, b in zip(self._weights, other._weights))
            and all(np.array_equal(a, b) for a, b in zip(self._biases, other._biases))
            and np.array_equal(np.asarray(self._noise_var), np.asarray(other._noise_var))
            and np.array_equal(self.prior_cov, other.prior_cov)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        nv = self._noise_var if self.isotropic_noise else f"array({self.data_dim})"
        if self.has_max_pooling:
            acts = (f"activation={list(self._activations)!r}, "
                    f"pool_sizes={self._pool_sizes_short()!r}")
        elif self._activation == MIXED:
            acts = f"activation={list(self._activations)!r}, slope={list(self._slopes)!r}"
        else:
            slope = f", slope={self._slope}" if self._activation == "leaky_relu" else ""
            acts = f"activation={self._activation!r}{slope}"
        return f"DGN(widths={self.widths}, {acts}, noise_var={nv})"

    # ------------------------------------------------------------------ persistence
    @property
    def format_version(self) -> int:
        """The model-file format this net is written in (docs/model_format.md): 3 with a
        max-pooling layer, 2 with per-layer activations, 1 otherwise."""
        return 3 if self.has_max_pooling else 2 if self.mixed_activations else 1

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to an ``.npz`` file atomically (no pickled objects).

        The format is specified in docs/model_format.md (keys, dtypes, shapes, conventions);
        :meth:`to_json` writes the same model as language-neutral JSON.

        The file is written to a temporary file in the same folder and renamed over the
        target, so an interrupted save never leaves a truncated model behind. An existing
        file at ``path`` is replaced (the command line refuses that without ``--force``).
        ``.npz`` is appended to a name with another suffix; the path written is returned.
        """
        from ._model_file import write_model  # the file format, kept apart

        return write_model(self, Path(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DGN:
        """Read a model written by :meth:`save`. Never unpickles anything.

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ModelFileError
            ``path`` is a directory, unreadable, a pickle, not an ``.npz`` archive, not a
            saved DGN, written by a newer format, or damaged: an entry missing, of the wrong
            dtype or shape, out of range (non-finite, ``noise_var <= 0``, a slope its
            activation does not allow), layers that do not chain or disagree with
            ``n_layers``, or an unknown entry. The message names the file and the entry.
        """
        from ._model_file import read_model  # the file format's checks, kept apart

        path = Path(path)
        kw = read_model(path)
        try:
            return cls(**kw)
        except (ValueError, TypeError) as exc:
            # left to the constructor: prior_cov's shape, symmetry and definiteness, whose
            # messages name prior_cov
            raise ModelFileError(f"{path} holds an invalid DGN model: {exc}") from None

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the model as JSON (docs/model_format.md), atomically; returns the path.

        Numbers are JSON numbers printed with ``repr``, so every float64 reads back
        bit-exactly. ``.json`` is appended to a name with another suffix.
        """
        from .model_json import save_json

        return save_json(self, path)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> DGN:
        """Read a model written by :meth:`to_json` (every entry checked).

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ModelFileError
            Not valid JSON, not a DGN model, a newer format, or an entry missing, of the
            wrong type or shape, or out of range; the message names the file and the entry.
        """
        from .model_json import load_json

        return load_json(path)
