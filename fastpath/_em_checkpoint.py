"""Checkpoints of :func:`fastpath.fit_em`: the state of a run, written and read back.

A checkpoint is an ``.npz`` file (no pickle) holding :class:`_State`, everything the next
iteration depends on, so that a resumed run gives bit for bit the result of an uninterrupted
one. It also holds two fingerprints that a resumption must match: the SHA-256 of the data
and the options that determine the result (:meth:`fastpath._em_options.EMOptions.record`).
Files are written atomically (``dgn_core.io.atomic_write_npz``): an interrupted write leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from dgn_core.exceptions import CheckpointError
from dgn_core.io import atomic_write_npz
from dgn_core.model import DGN

Arr = NDArray[np.float64]

_CHECKPOINT_FORMAT = "fastpath.EMCheckpoint"
_CHECKPOINT_VERSION = 1


@dataclass
class _State:
    """Everything an iteration depends on (what a checkpoint stores).

    The lists are the history: one entry for the initial model and one per completed
    iteration (``step_sizes`` and ``ecm_gain``: one per iteration).
    """

    model: DGN
    pnet: DGN                      # the net whose partition the current E-step used
    log_likelihood: list[float]
    objective: list[float]
    noise_var: list[Any]
    step_sizes: list[Arr]
    times: list[float]
    floor_hit: list[int]
    ecm_gain: list[float]
    ecm_rejected: list[int]
    n_regions: list[int]
    t_next: Arr                    # starting step of every inner layer
    converged: bool = False
    # with held-out data: log p(X_val) of the initial model and after every iteration, and
    # the model of its (first) maximum
    val_log_likelihood: list[float] = field(default_factory=list)
    best_model: DGN | None = None
    early_stopped: bool = False

    @property
    def best_iteration(self) -> int | None:
        """The (first) iteration of the largest held-out log-likelihood (None without)."""
        v = self.val_log_likelihood
        return int(np.argmax(v)) if v else None


def _consistent(state: _State) -> bool:
    """Whether the history lists all end at the same iteration."""
    n = len(state.log_likelihood)
    return (n == len(state.objective) == len(state.noise_var) == len(state.times)
            == len(state.n_regions) == len(state.step_sizes) + 1 == len(state.ecm_gain) + 1
            and len(state.val_log_likelihood) in (0, n))


def _net_arrays(net: DGN, prefix: str) -> dict[str, Any]:
    """The arrays of ``net`` under names starting with ``prefix`` (no object arrays)."""
    activation, slope = net.activation_entries()   # as the model file stores them
    out: dict[str, Any] = {
        f"{prefix}n_layers": np.array(net.n_layers),
        f"{prefix}activation": np.array(activation),
        f"{prefix}slope": np.array(slope),
        f"{prefix}noise_var": np.asarray(net.noise_var, dtype=np.float64),
    }
    if not net.has_identity_prior:
        out[f"{prefix}prior_cov"] = np.asarray(net.prior_cov)
    if net.has_max_pooling:  # groups per hidden layer (0: element-wise) and their sizes
        out[f"{prefix}pool_counts"] = np.array([len(p) for p in net.pool_sizes], dtype=np.int64)
        out[f"{prefix}pool_sizes"] = np.array([k for p in net.pool_sizes for k in p],
                                              dtype=np.int64)
    for i, (W, v) in enumerate(zip(net.weights, net.biases)):
        out[f"{prefix}W{i}"] = W
        out[f"{prefix}v{i}"] = v
    return out


def _net_from_arrays(data: dict[str, Any], prefix: str) -> DGN:
    """The net that :func:`_net_arrays` stored under ``prefix``."""
    L = int(data[f"{prefix}n_layers"])
    nv = data[f"{prefix}noise_var"]
    act, slope = str(data[f"{prefix}activation"]), data[f"{prefix}slope"]
    pools: list[list[int] | None] | None = None
    if f"{prefix}pool_counts" in data:
        sizes = data[f"{prefix}pool_sizes"].tolist()
        pools, start = [], 0
        for count in data[f"{prefix}pool_counts"].tolist():
            pools.append(sizes[start:start + count] if count else None)
            start += count
    return DGN([data[f"{prefix}W{i}"] for i in range(L)], [data[f"{prefix}v{i}"] for i in range(L)],
               activation=act.split(",") if slope.ndim else act,
               slope=slope.tolist() if slope.ndim else float(slope),
               noise_var=float(nv) if nv.ndim == 0 else nv,
               prior_cov=data.get(f"{prefix}prior_cov"), pool_sizes=pools)


def _write_checkpoint(path: Path, state: _State, fingerprint: str, options: dict[str, Any]) -> None:
    """Write ``state`` with the data's ``fingerprint`` and the recorded ``options`` to
    ``path``, atomically."""
    D = state.model.data_dim
    arrays: dict[str, Any] = {
        "format": np.array(_CHECKPOINT_FORMAT),
        "format_version": np.array(_CHECKPOINT_VERSION),
        "data_sha256": np.array(fingerprint),
        "options": np.array(json.dumps(options, sort_keys=True)),
        "log_likelihood": np.asarray(state.log_likelihood, dtype=np.float64),
        "objective": np.asarray(state.objective, dtype=np.float64),
        "noise_var": np.array([np.broadcast_to(np.asarray(v, dtype=np.float64), (D,))
                               for v in state.noise_var]),
        "noise_isotropic": np.array([np.ndim(v) == 0 for v in state.noise_var]),
        "step_sizes": np.array(state.step_sizes, dtype=np.float64).reshape(
            len(state.step_sizes), state.model.n_layers - 1),
        "times": np.asarray(state.times, dtype=np.float64),
        "floor_hit": np.asarray(state.floor_hit, dtype=np.int64),
        "ecm_gain": np.asarray(state.ecm_gain, dtype=np.float64),
        "ecm_rejected": np.asarray(state.ecm_rejected, dtype=np.int64),
        "n_regions": np.asarray(state.n_regions, dtype=np.int64),
        "t_next": np.asarray(state.t_next, dtype=np.float64),
        "converged": np.array(state.converged),
        "val_log_likelihood": np.asarray(state.val_log_likelihood, dtype=np.float64),
        "early_stopped": np.array(state.early_stopped),
    }
    if state.best_model is not None:
        arrays.update(_net_arrays(state.best_model, "best_"))
    arrays.update(_net_arrays(state.model, "model_"))
    arrays.update(_net_arrays(state.pnet, "pnet_"))
    atomic_write_npz(path, arrays)


#: the shard size of checkpoints that record none
_SHARD_SIZE_BEFORE = 2048


def _read_checkpoint(path: Path, fingerprint: str, options: dict[str, Any]) -> _State:
    """The state stored in ``path``.

    Raises :class:`~dgn_core.exceptions.CheckpointError` when the file is not a readable
    checkpoint of this or an earlier format version (missing or malformed entries included),
    or was written for other data or with other options.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets one clear message
        raise CheckpointError(f"{path} is not a readable EM checkpoint: {exc}") from None
    if str(data.get("format", "")) != _CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an EM checkpoint (no {_CHECKPOINT_FORMAT!r} marker)")
    try:
        return _state_from_arrays(path, data, fingerprint, options)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path} is a damaged EM checkpoint ({type(exc).__name__}: {exc}); "
                              "start a new run or restore the file") from None


def _state_from_arrays(path: Path, data: dict[str, Any], fingerprint: str,
                       options: dict[str, Any]) -> _State:
    if int(data["format_version"]) > _CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} was written by a newer version of fit_em")
    if str(data["data_sha256"]) != fingerprint:
        raise CheckpointError(f"{path} was written for different data (the data's SHA-256 differs); "
                              "resume with the same X or start a new checkpoint")
    saved = json.loads(str(data["options"]))
    # checkpoints written before the sharded E-step: one shard of the default size, which is
    # that E-step itself bit for bit up to 2048 points (and a rounding-level change beyond)
    saved.setdefault("shard_size", _SHARD_SIZE_BEFORE)
    # and before held-out data and early stopping
    saved.setdefault("n_iter_no_change", None)
    saved.setdefault("val_sha256", None)
    # ... and before bias priors: none
    saved.setdefault("bias_prior", None)
    diff = {k: (saved.get(k), v) for k, v in options.items() if saved.get(k) != v}
    if diff:
        raise CheckpointError(f"{path} was written with other options; differing (saved, now): "
                              f"{diff}")
    iso = data["noise_isotropic"]
    nvs = [float(row[0]) if i else row.copy() for row, i in zip(data["noise_var"], iso)]
    return _State(
        model=_net_from_arrays(data, "model_"), pnet=_net_from_arrays(data, "pnet_"),
        log_likelihood=data["log_likelihood"].tolist(), objective=data["objective"].tolist(),
        noise_var=nvs, step_sizes=[r.copy() for r in data["step_sizes"]],
        times=data["times"].tolist(), floor_hit=data["floor_hit"].tolist(),
        ecm_gain=data["ecm_gain"].tolist(), ecm_rejected=data["ecm_rejected"].tolist(),
        n_regions=data["n_regions"].tolist(), t_next=data["t_next"].copy(),
        converged=bool(data["converged"]),
        val_log_likelihood=data.get("val_log_likelihood", np.zeros(0)).tolist(),
        best_model=_net_from_arrays(data, "best_") if "best_n_layers" in data else None,
        early_stopped=bool(data.get("early_stopped", False)))

