"""Orientation conventions: the one place where LPS (DICOM, ITK, voxelwise) meets RAS (NIfTI).

DICOM and ITK place points in LPS (x to the patient's left, y to posterior, z to head); NIfTI's
qform/sform place them in RAS (x to the right, y to anterior, z to head). The two differ by a sign
on x and y. Every conversion between them in the project calls these functions.
"""

from __future__ import annotations

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""4 x 4 matrix that maps an LPS point to RAS (it is its own inverse)."""


def lps_to_ras_affine(affine_lps: np.ndarray) -> np.ndarray:
    """Turn an index-to-LPS affine into the index-to-RAS affine that NIfTI stores."""
    return LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64)


def ras_to_lps_affine(affine_ras: np.ndarray) -> np.ndarray:
    """Turn a NIfTI index-to-RAS affine into the index-to-LPS affine voxelwise uses."""
    return LPS_TO_RAS @ np.asarray(affine_ras, dtype=np.float64)


def axis_codes(direction: np.ndarray) -> str:
    """Three-letter code naming where each array axis points, e.g. ``"SPL"`` for DICOM axial.

    Letters are the LPS end each axis points towards (L/R, P/A, S/I), taken from the dominant
    component of the axis' direction cosine.
    """
    positive, negative = "LPS", "RAI"
    codes = []
    for column in np.asarray(direction).T:
        dominant = int(np.argmax(np.abs(column)))
        codes.append(positive[dominant] if column[dominant] > 0 else negative[dominant])
    return "".join(codes)
