"""Volume geometry: conversions, NIfTI round trips, resampling, reorientation, windows."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from voxelwise.errors import InputError
from voxelwise.imaging import (
    GeometryError,
    Volume,
    read_nifti,
    reorient,
    resample,
    resample_to,
    window,
    write_nifti,
)


def _rotation(angle_deg: float) -> np.ndarray:
    """Direction cosines of an oblique grid: a rotation about the LPS x axis."""
    a = np.deg2rad(angle_deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


@pytest.fixture
def oblique() -> Volume:
    rng = np.random.default_rng(0)
    array = rng.normal(40, 10, size=(6, 9, 11)).astype(np.float32)
    return Volume(array, (5.0, 0.45, 0.5), (-12.5, 30.0, 7.25), _rotation(17.0)[:, ::-1],
                  meta={"modality": "CT", "units": "HU"})


def test_geometry_is_validated() -> None:
    with pytest.raises(GeometryError):
        Volume(np.zeros((2, 2)))
    with pytest.raises(GeometryError):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(GeometryError):
        Volume(np.zeros((2, 2, 2)), direction=np.zeros((3, 3)))


def test_affine_maps_indices_to_lps(oblique: Volume) -> None:
    index = np.array([[2.0, 3.0, 4.0]])
    expected = np.asarray(oblique.origin) + oblique.direction @ (index[0] * oblique.spacing)
    assert np.allclose(oblique.index_to_lps(index)[0], expected)
    assert np.allclose(oblique.lps_to_index(oblique.index_to_lps(index)), index)


def test_sitk_round_trip(oblique: Volume) -> None:
    image = oblique.to_sitk()
    # ITK's x axis is our last axis
    assert image.GetSize() == oblique.shape[::-1]
    assert np.allclose(image.GetSpacing(), oblique.spacing[::-1])
    point = image.TransformIndexToPhysicalPoint((4, 3, 2))
    assert np.allclose(point, oblique.index_to_lps([2, 3, 4])[0])
    back = Volume.from_sitk(image)
    assert back.same_grid(oblique) and np.array_equal(back.array, oblique.array)


def test_nifti_round_trip_and_ras_affine(oblique: Volume, tmp_path) -> None:
    path = write_nifti(oblique, tmp_path / "image.nii.gz")
    back = read_nifti(path)
    assert back.same_grid(oblique)
    assert np.array_equal(back.array, oblique.array)
    # NIfTI stores RAS: x and y change sign, and i runs along our last axis
    stored = nib.load(str(path))
    ras = stored.affine @ np.array([4, 3, 2, 1.0])
    lps = oblique.index_to_lps([2, 3, 4])[0]
    assert np.allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)
    # and SimpleITK, an independent reader, agrees on every voxel's position
    from_sitk = Volume.from_sitk(sitk.ReadImage(str(path)))
    assert from_sitk.same_grid(oblique, tolerance_mm=1e-3)
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_nifti_with_singular_affine_is_refused(tmp_path) -> None:
    path = tmp_path / "flat.nii.gz"
    image = nib.Nifti1Image(np.zeros((3, 3, 3), np.int16), np.eye(4))
    header = image.header
    header["srow_z"] = [0.0, 0.0, 0.0, 0.0]  # the third voxel axis has no extent
    header["sform_code"], header["qform_code"] = 1, 0
    nib.save(nib.Nifti1Image(image.dataobj, None, header), str(path))
    with pytest.raises(InputError, match="flat.nii.gz.*not invertible"):
        read_nifti(path)


def test_unreadable_nifti_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="broken.nii.gz"):
        read_nifti(path)


def test_torch_round_trip(oblique: Volume) -> None:
    tensor = oblique.to_torch()
    assert tensor.shape == (1, *oblique.shape) and tensor.dtype == torch.float32
    back = oblique.from_torch(tensor * 2, units="HU x2")
    assert back.same_grid(oblique) and np.allclose(back.array, oblique.array * 2)
    assert back.meta["units"] == "HU x2"


def _extent(volume: Volume) -> np.ndarray:
    """LPS positions of the outer corner faces of the grid."""
    low = volume.index_to_lps([[-0.5, -0.5, -0.5]])[0]
    high = volume.index_to_lps([[s - 0.5 for s in volume.shape]])[0]
    return np.stack([low, high])


def test_resampling_keeps_physical_extent(oblique: Volume) -> None:
    resampled = resample(oblique, (2.5, 1.35, 1.1))
    assert resampled.shape == (12, 3, 5)
    assert np.allclose(_extent(resampled), _extent(oblique), atol=1e-6)
    assert resampled.spacing == (2.5, 1.35, 1.1)
    assert np.allclose(resampled.direction, oblique.direction)


def test_linear_resampling_of_a_ramp_is_exact() -> None:
    z = np.arange(8, dtype=np.float32)[:, None, None] * np.ones((1, 4, 4), np.float32)
    ramp = Volume(z * 10.0, spacing=(4.0, 1.0, 1.0))
    fine = resample(ramp, (2.0, 1.0, 1.0))
    centres = fine.index_to_lps(np.c_[np.arange(16), np.ones(16), np.ones(16)])[:, 2]
    inside = (centres >= 0) & (centres <= 28)
    assert np.allclose(fine.array[inside, 1, 1], centres[inside] / 4.0 * 10.0, atol=1e-4)


def test_nearest_resampling_keeps_labels() -> None:
    labels = np.zeros((6, 10, 10), np.uint8)
    labels[2:4, 3:7, 3:7] = 1
    labels[2:4, 5:7, 5:7] = 2
    volume = Volume(labels, (5.0, 0.5, 0.5))
    resampled = resample(volume, (5.0 / 3, 0.5 / 3, 0.5 / 3), interpolation="nearest")
    assert resampled.array.dtype == np.uint8
    assert set(np.unique(resampled.array)) == {0, 1, 2}
    back = resample_to(resampled, volume, interpolation="nearest")
    mask = resample(volume.with_array(labels > 0), (2.5, 1.0, 1.0), interpolation="nearest")
    assert mask.array.dtype == np.bool_ and mask.array.any()
    assert back.same_grid(volume)
    assert np.array_equal(back.array, labels)  # each coarse centre is a fine centre


def test_reorient_to_canonical_is_a_permutation(oblique: Volume) -> None:
    flipped = Volume(oblique.array, oblique.spacing, oblique.origin,
                     np.array([[0, 0, -1], [1, 0, 0], [0, -1, 0.0]]))
    canonical = reorient(flipped)
    assert np.allclose(canonical.direction, np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0.0]]))
    # every voxel keeps its value at its physical position
    for index in ([0, 0, 0], [5, 8, 10], [2, 3, 4]):
        point = flipped.index_to_lps([index])[0]
        new_index = np.round(canonical.lps_to_index([point])[0]).astype(int)
        assert canonical.array[tuple(new_index)] == flipped.array[tuple(index)]
    assert reorient(canonical).same_grid(canonical)
    with pytest.raises(ValueError):
        reorient(oblique, "LLS")


def test_named_windows() -> None:
    hu = np.array([-1000, 0, 40, 80, 1000], dtype=np.int16)
    assert np.allclose(window(hu, "brain"), [0, 0, 0.5, 1, 1])
    assert np.allclose(window(hu, "subdural")[2], (40 - (80 - 100)) / 200)
    assert window(hu, "bone")[-1] == pytest.approx((1000 - (600 - 1400)) / 2800)
    with pytest.raises(ValueError):
        window(hu, "lung-typo")
