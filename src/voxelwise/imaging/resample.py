"""Resampling onto a new spacing or another grid, and reorientation to a canonical axis order.

Interpolation is SimpleITK's: linear for images, nearest neighbour for label maps (so labels stay
labels). Resampling keeps the physical extent: the outer faces of the first and last voxels stay
where they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from voxelwise.imaging.orientation import axis_codes
from voxelwise.imaging.volume import Volume

CANONICAL = "SPL"
"""Canonical axis order: axis 0 towards Superior, 1 towards Posterior, 2 towards Left.

In ITK's (x, y, z) naming this is the usual "LPS" orientation of an axial DICOM series, so a
standard axial CT is already canonical and `reorient` returns it unchanged.
"""

_INTERPOLATORS = ("linear", "nearest", "bspline")


def _interpolator(name: str) -> int:
    import SimpleITK as sitk

    if name not in _INTERPOLATORS:
        raise ValueError(f"unknown interpolation {name!r}; choose one of {_INTERPOLATORS}")
    return {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor,
            "bspline": sitk.sitkBSpline}[name]


def _default_fill(volume: Volume, interpolation: str) -> float:
    if interpolation == "nearest" or volume.array.size == 0:
        return 0.0
    return float(volume.array.min())


def resample_to(volume: Volume, reference: Volume, interpolation: str = "linear",
                fill_value: float | None = None) -> Volume:
    """Resample ``volume`` onto the grid of ``reference`` (shape, spacing, origin, direction)."""
    import SimpleITK as sitk

    fill = _default_fill(volume, interpolation) if fill_value is None else fill_value
    image = volume.to_sitk()
    if interpolation != "nearest" and image.GetPixelID() not in (sitk.sitkFloat32,
                                                                  sitk.sitkFloat64):
        image = sitk.Cast(image, sitk.sitkFloat32)
    reference_image = sitk.Image(list(reference.shape[::-1]), sitk.sitkUInt8)
    reference_image.SetSpacing(reference.spacing[::-1])
    reference_image.SetOrigin(reference.origin)
    reference_image.SetDirection(reference.direction[:, ::-1].flatten().tolist())
    resampled = sitk.Resample(image, reference_image, sitk.Transform(),
                              _interpolator(interpolation), fill, image.GetPixelID())
    result = Volume.from_sitk(resampled, **volume.meta)
    array = result.array
    if interpolation == "nearest" or np.issubdtype(volume.array.dtype, np.floating):
        array = array.astype(volume.array.dtype, copy=False)
    return Volume(array, reference.spacing, reference.origin, reference.direction, volume.meta)


def resample(volume: Volume, spacing: Sequence[float], interpolation: str = "linear",
             fill_value: float | None = None) -> Volume:
    """Resample to ``spacing`` (mm, array axis order) keeping the physical extent.

    Use ``interpolation="nearest"`` for label maps.
    """
    new_spacing = np.asarray(spacing, dtype=np.float64)
    old_spacing = np.asarray(volume.spacing)
    if new_spacing.shape != (3,) or np.any(new_spacing <= 0):
        raise ValueError(f"target spacing must be three positive values in mm; got {spacing}")
    extent = np.asarray(volume.shape) * old_spacing
    shape = np.maximum(1, np.round(extent / new_spacing)).astype(int)
    # keep the outer face of voxel 0 fixed: centres move by half the change of spacing
    origin = np.asarray(volume.origin) + volume.direction @ ((new_spacing - old_spacing) / 2.0)
    grid = Volume(np.zeros(tuple(shape), dtype=np.uint8), tuple(new_spacing), tuple(origin),
                  volume.direction)
    return resample_to(volume, grid, interpolation, fill_value)


def reorient(volume: Volume, codes: str = CANONICAL) -> Volume:
    """Permute and flip axes (no interpolation) so that the axes point as ``codes`` says.

    ``codes`` names, per array axis, the direction it increases towards, using one letter of each
    pair L/R, P/A, S/I; the default `CANONICAL` is ``"SPL"``.
    """
    codes = codes.upper()
    pairs = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}
    anatomical_axis = {"L": 0, "R": 0, "P": 1, "A": 1, "S": 2, "I": 2}
    if len(codes) != 3 or {anatomical_axis.get(c) for c in codes} != {0, 1, 2}:
        raise ValueError(f"orientation codes must name three different axes; got {codes!r}")
    current = axis_codes(volume.direction)
    permutation, flips = [], []
    for target in codes:
        for axis, code in enumerate(current):
            if code == target or code == pairs[target]:
                permutation.append(axis)
                flips.append(code != target)
                break
    array = np.transpose(volume.array, permutation)
    spacing = np.asarray(volume.spacing)[permutation]
    direction = volume.direction[:, permutation].copy()
    origin = np.asarray(volume.origin, dtype=np.float64)
    for new_axis, flip in enumerate(flips):
        if flip:
            array = np.flip(array, axis=new_axis)
            last = array.shape[new_axis] - 1
            origin = origin + direction[:, new_axis] * spacing[new_axis] * last
            direction[:, new_axis] *= -1
    return Volume(np.ascontiguousarray(array), tuple(spacing), tuple(origin), direction,
                  volume.meta)
