"""fastpath: the production float64 path.

Vectorized numpy/scipy implementations of the latent-space partition, Gaussian integrals
on polyhedra, the exact marginal and posterior of a DGN, and exact monotone EM. Every
quantity is cross-validated against :mod:`verified_dgn` in the test suite. Runs without
pycddlib.
"""

from __future__ import annotations

import importlib
from typing import Any

from dgn_core.model import DGN, ModelFileError
from dgn_core.regions import Partition, Region, RegionLimitError

__version__ = "0.1.0"

# public name -> submodule that defines it (imported on first use: keeps `import fastpath`
# and the command line quick)
_LAZY = {
    "partition": "partition_walk",
    "gaussian_moments": "integrals",
    "log_gaussian_mass": "integrals",
    "truncated_normal_moments": "integrals",
    "PolyhedronCones": "integrals",
    "ConeBatch": "integrals",
    "orthant_probability": "orthant",
    "log_orthant_probability": "orthant",
    "log_marginal": "distributions",
    "posterior": "distributions",
    "posterior_density": "distributions",
    "log_posterior_density": "distributions",
    "sample_posterior": "distributions",
    "map_latent": "distributions",
    "log_marginal_observed": "missing",
    "posterior_observed": "missing",
    "impute": "missing",
    "observed_mask": "missing",
    "fit_em": "em",
    "em_step": "em",
    "select_widths": "selection",
    "select_models": "selection",
    "anomaly_scores": "selection",
    "kl_to_posterior": "kl",
    "to_torch": "torch_interop",
    "from_torch": "torch_interop",
}

__all__ = ["DGN", "ModelFileError", "Partition", "Region", "RegionLimitError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(mod, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
