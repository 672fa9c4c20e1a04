"""Compatibility alias: data sets and loaders live in :mod:`dgn_core.data`."""

from dgn_core.data import (
                           BUILTIN_DATASETS,
                           DataError,
                           check_data,
                           cosine,
                           digits,
                           load_data,
                           noisy_circle,
                           read_idx,
)

__all__ = ["noisy_circle", "cosine", "digits", "load_data", "read_idx", "check_data",
           "BUILTIN_DATASETS", "DataError"]
