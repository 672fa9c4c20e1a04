"""Compatibility alias: the model type lives in :mod:`dgn_core.model`, shared by both paths."""

from dgn_core.exceptions import ModelFileError
from dgn_core.io import atomic_write_npz
from dgn_core.model import ACTIVATIONS, DGN

__all__ = ["DGN", "ACTIVATIONS", "ModelFileError", "atomic_write_npz"]
