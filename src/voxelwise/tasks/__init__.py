"""One module per task kind (segmentation, classification...).

A task's configuration is a tree of dataclasses read with `voxelwise.config` (re-exported here).
"""

from voxelwise.config import dataclass_from_mapping, load_config_mapping

__all__ = ["dataclass_from_mapping", "load_config_mapping"]
