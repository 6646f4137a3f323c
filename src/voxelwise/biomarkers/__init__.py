"""Imaging biomarkers from label maps: volumes, ABC/2, lesions, position, midline shift, follow-up.

    from voxelwise.biomarkers import measure_series
    result = measure_series(labels, image)   # Volumes; image (CT in HU) optional
    result.row()                             # one biomarkers.csv row
"""

from voxelwise.biomarkers.followup import EXPANSION_ML, EXPANSION_RELATIVE, followup_table
from voxelwise.biomarkers.lesions import Lesion, abc2_ml, find_lesions
from voxelwise.biomarkers.midline import MidlineEstimate, estimate_midline
from voxelwise.biomarkers.volumes import (
    DEFAULT_CLASSES,
    LESION_COLUMNS,
    SeriesBiomarkers,
    biomarker_columns,
    check_geometry,
    measure_series,
)

__all__ = [
    "DEFAULT_CLASSES", "EXPANSION_ML", "EXPANSION_RELATIVE", "LESION_COLUMNS", "Lesion",
    "MidlineEstimate", "SeriesBiomarkers", "abc2_ml", "biomarker_columns", "check_geometry",
    "estimate_midline", "find_lesions", "followup_table", "measure_series",
]
