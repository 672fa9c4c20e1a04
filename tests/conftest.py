"""Shared fixtures and the --runslow switch.

Tests marked ``slow`` (long exact / high-precision checks) are skipped unless ``--runslow``
is given; CI runs the default selection, which includes a quick subset of every exact check.
"""

from __future__ import annotations

import importlib.util

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (long exact checks)")


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
