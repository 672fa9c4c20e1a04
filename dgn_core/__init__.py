"""dgn_core: the shared specification of a piecewise-affine deep generative network.

Everything both backends agree on, defined once and importable with numpy alone:

- :mod:`dgn_core.model`: the :class:`DGN` model and its file format;
- :mod:`dgn_core.regions`: :class:`Region` and :class:`Partition` (filled with ``Fraction``
  entries by the exact path, float64 by the fast path) and the per-region affine maps;
- :mod:`dgn_core.priors`: the weight priors of MAP-EM;
- :mod:`dgn_core.data`: the built-in data sets and the data loaders;
- :mod:`dgn_core.data_source`: data read by row range without loading it (``.npy``
  memory maps, zarr, folders of shards) and its one-pass summary;
- :mod:`dgn_core.exceptions`: every exception and warning type;
- :mod:`dgn_core.validation`: the input checks shared by the public functions;
- :mod:`dgn_core.io`: atomic file writing;
- :mod:`dgn_core.api`: the backend contract (the functions both backends provide).

``verified_dgn`` (exact) and ``fastpath`` (float64) import from here and never from each
other; ``dgn_tools`` (command line, lemma checks, plotting) sits above both. See
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

from .exceptions import (
                         CheckpointError,
                         ConvergenceWarning,
                         DataError,
                         DGNError,
                         GeometryError,
                         ModelFileError,
                         PrecisionError,
                         QuadratureError,
                         RegionLimitError,
                         TorchConversionError,
                         UnsupportedLayerError,
)
from .model import ACTIVATIONS, DGN
from .priors import BoxPrior, GaussianPrior, LaplacePrior
from .regions import Partition, Region

__version__ = "0.1.0"

__all__ = [
    "DGN", "ACTIVATIONS", "Partition", "Region",
    "GaussianPrior", "LaplacePrior", "BoxPrior",
    "DGNError", "ModelFileError", "DataError", "RegionLimitError", "GeometryError",
    "QuadratureError", "PrecisionError", "TorchConversionError", "CheckpointError",
    "UnsupportedLayerError",
    "ConvergenceWarning",
]
