"""NIfTI-1/2 reading and writing with the LPS/RAS conversion done once.

NIfTI stores arrays with the first axis first in the file's (i, j, k) order and an index-to-RAS
affine. voxelwise arrays for DICOM data are (slice, row, column); to keep NIfTI files natural for
viewers (i = column, j = row, k = slice) the array axes are reversed on write and on read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxelwise.errors import InputError
from voxelwise.fileio import atomic_path
from voxelwise.imaging.orientation import lps_to_ras_affine, ras_to_lps_affine
from voxelwise.imaging.volume import GeometryError, Volume

_REVERSE_AXES = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
"""Maps a voxelwise index (a0, a1, a2) to the NIfTI index (i, j, k) = (a2, a1, a0)."""


def _volume_from_affine(array: np.ndarray, affine_lps: np.ndarray, path: Path) -> Volume:
    linear = affine_lps[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if abs(np.linalg.det(linear)) < 1e-9 or np.any(spacing < 1e-9):
        raise InputError(path, "the NIfTI affine is not invertible (zero or degenerate voxel axes)")
    try:
        return Volume(array, tuple(spacing), tuple(affine_lps[:3, 3]), linear / spacing)
    except GeometryError as error:
        raise InputError(path, f"invalid NIfTI geometry: {error}") from error


def _load_without_extension(path: Path):
    """A NIfTI file stored under a name without extension (e.g. in the content store)."""
    import gzip

    import nibabel as nib

    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    for kind in (nib.Nifti1Image, nib.Nifti2Image):
        try:
            return kind.from_bytes(data)
        except Exception:  # wrong header size or magic: try the next format
            continue
    raise ValueError("neither a NIfTI-1 nor a NIfTI-2 header")


def read_nifti(path: str | Path, **meta: object) -> Volume:
    """Read a ``.nii`` or ``.nii.gz`` file as a Volume (geometry from the sform, else qform)."""
    import nibabel as nib

    path = Path(path)
    try:
        image = nib.load(str(path)) if path.name.endswith((".nii", ".nii.gz")) else \
            _load_without_extension(path)
        array = np.asarray(image.dataobj)
    except FileNotFoundError as error:
        raise InputError(path, "file not found") from error
    except Exception as error:  # nibabel raises several types for corrupt files
        raise InputError(path, f"not a readable NIfTI file ({error})") from error
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(path, f"expected a 3-D image; the file holds shape {array.shape}")
    affine_ras = np.asarray(image.affine, dtype=np.float64)
    affine_lps = ras_to_lps_affine(affine_ras) @ _REVERSE_AXES
    volume = _volume_from_affine(np.ascontiguousarray(array.transpose(2, 1, 0)), affine_lps, path)
    return Volume(volume.array, volume.spacing, volume.origin, volume.direction,
                  meta={"source": str(path), **meta})


def write_nifti(volume: Volume, path: str | Path) -> Path:
    """Write ``volume`` to ``path`` (``.nii`` or ``.nii.gz``), atomically, sform and qform set."""
    import nibabel as nib

    path = Path(path)
    affine_ras = lps_to_ras_affine(volume.affine) @ _REVERSE_AXES
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    image = nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), affine_ras)
    image.header.set_xyzt_units("mm", "sec")
    image.set_sform(affine_ras, code="scanner")
    image.set_qform(affine_ras, code="scanner")
    with atomic_path(path) as temporary:
        nib.save(image, str(temporary))
    return path
