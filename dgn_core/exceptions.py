"""The exception and warning types of the project, defined once for both backends.

Every error the library raises on purpose derives from :class:`DGNError`, so a caller (the
command line among them) can catch the project's own errors without also catching a bug that
surfaces as a bare ``ValueError`` deep inside numpy. Each type also keeps the built-in base it
has always had (``ValueError``, ``RuntimeError``, ``ArithmeticError``), so code written
against those still works.
"""

from __future__ import annotations

__all__ = [
    "DGNError",
    "ModelFileError",
    "DataError",
    "RegionLimitError",
    "GeometryError",
    "QuadratureError",
    "PrecisionError",
    "TorchConversionError",
    "CheckpointError",
    "UnsupportedLayerError",
    "ConvergenceWarning",
]


class DGNError(Exception):
    """Base class of the errors raised on purpose by ``dgn_core``, the backends and the tools."""


class ModelFileError(DGNError, ValueError):
    """A file that is not a readable saved :class:`~dgn_core.model.DGN`."""


class DataError(DGNError, ValueError):
    """Data that cannot be used: wrong shape, NaN or infinite values, unreadable file."""


class RegionLimitError(DGNError, RuntimeError):
    """The partition has more regions than the ``max_regions`` limit allows."""


class GeometryError(DGNError, RuntimeError):
    """A polyhedron whose geometry cannot be resolved in floating point."""


class QuadratureError(DGNError, ArithmeticError):
    """A high-precision integral that did not reach its requested accuracy."""


class PrecisionError(DGNError, ArithmeticError):
    """An exact-path result that could not be confirmed to the requested digits."""


class TorchConversionError(DGNError, ValueError):
    """A torch module that cannot be converted to (or from) a :class:`~dgn_core.model.DGN`."""


class CheckpointError(DGNError, ValueError):
    """An EM checkpoint that cannot be resumed: unreadable, of a newer format, or written for
    other data or with other options."""


class UnsupportedLayerError(DGNError, NotImplementedError):
    """A computation that does not support a layer of the net (e.g. the M-step and
    max-pooling); the message names the computation and the layers."""


class ConvergenceWarning(UserWarning):
    """EM stopped at ``max_iter`` before the convergence criterion was met."""
