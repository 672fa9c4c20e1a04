"""verified_dgn: the exact, high-precision path.

Geometry in rational arithmetic (cddlib's GMP backend through pycddlib), integrals in mpmath.
It is the correctness oracle for :mod:`fastpath`. The model type :class:`DGN` is shared by
both paths and is importable without pycddlib; the functions that need cddlib import it when
they are called.
"""

from __future__ import annotations

import importlib
from typing import Any

from dgn_core.model import ACTIVATIONS, DGN, ModelFileError
from dgn_core.regions import Partition, Region, RegionLimitError

__version__ = "0.1.0"

# public name -> submodule that defines it (imported on first use, so that importing the
# package never needs cddlib)
_LAZY = {
    "partition": "exact_partition",
    "gaussian_moments": "integrals",
    "log_gaussian_mass": "integrals",
    "orthant_probability": "orthant",
    "log_orthant_probability": "orthant",
    "orthant_moments": "orthant",
    "log_marginal": "distributions",
    "posterior": "distributions",
    "em_step": "em",
}

__all__ = [
    "DGN", "ACTIVATIONS", "ModelFileError", "Partition", "Region", "RegionLimitError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(mod, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
