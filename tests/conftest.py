"""Shared fixtures and the --runslow switch.

Tests marked ``slow`` (long exact / high-precision checks) are skipped unless ``--runslow``
is given; CI runs the default selection, which includes a quick subset of every exact check.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (long exact checks)")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per usable core, at most 4 (each worker
    imports numpy, numba, torch and Dask; more workers cost memory for little gain)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow exact check: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


HAVE_CDD = importlib.util.find_spec("cdd") is not None
HAVE_TORCH = importlib.util.find_spec("torch") is not None

needs_cdd = pytest.mark.skipif(not HAVE_CDD, reason="pycddlib is not installed")
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")


def damaged_model_file(tmp: Path, name: str = "damaged.npz", **changes: Any) -> Path:
    """A saved (2, 8, 8, 2) model written to ``tmp / name`` with entries replaced (a value of
    None removes the entry): the model-file tests' damaged inputs."""
    from dgn_core.model import DGN

    good = DGN.random((2, 8, 8, 2), seed=0).save(tmp / "good.npz")
    with np.load(good) as f:
        arrays = {k: f[k] for k in f.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    path = tmp / name
    np.savez(path, **arrays)
    return path


@contextlib.contextmanager
def switched(flag: list[bool], value: bool) -> Iterator[None]:
    """A module's one-element switch (``fastpath._cones.COMPILED``,
    ``fastpath._estep.COMPILED_ASSEMBLY``, ...) set to ``value`` for the block and restored
    after: the compiled and the numpy path of one computation side by side.
    ``monkeypatch.setitem`` cannot do it (it looks the old value up with ``.get``)."""
    old = flag[0]
    flag[0] = value
    try:
        yield
    finally:
        flag[0] = old
