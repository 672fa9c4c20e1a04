"""Compatibility alias: regions and partitions live in :mod:`dgn_core.regions`."""

from dgn_core.exceptions import RegionLimitError
from dgn_core.regions import (
                              Partition,
                              Region,
                              layer_maps,
                              normalize_rows,
                              region_affine_map,
                              region_inequalities,
)

__all__ = ["Region", "Partition", "RegionLimitError", "layer_maps", "region_inequalities",
           "region_affine_map", "normalize_rows"]
