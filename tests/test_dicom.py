"""DICOM series: writing, reading, and every kind of bad input a clinical folder holds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid
from scipy import ndimage

from voxelwise.errors import InputError
from voxelwise.imaging.dicom import (
    Problem,
    read_dicom_series,
    read_dicom_slices,
    scan_dicom_folder,
)
from voxelwise.imaging.dicom_write import rescale_for_int16, write_dicom_series
from voxelwise.imaging.volume import Volume

AXIAL = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
"""Direction of an axial DICOM series, axes (slice, row, column): z, y, x in LPS."""


def _rotation(axis: list[float], angle_deg: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.deg2rad(angle_deg)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def _volume(shape: tuple[int, int, int] = (8, 16, 20), direction: np.ndarray = AXIAL,
            seed: int = 0) -> Volume:
    values = np.random.default_rng(seed).integers(-1000, 2000, shape).astype(np.int16)
    return Volume(values, (2.0, 0.7, 0.6), (-5.0, -6.0, -7.0), direction)


def _kinds(problems: list) -> dict[str, list[dict]]:
    """Problems (Problem objects or their dicts) grouped by kind, as dicts."""
    grouped: dict[str, list[dict]] = {}
    for problem in problems:
        entry = problem.as_dict() if isinstance(problem, Problem) else problem
        grouped.setdefault(entry["kind"], []).append(entry)
    return grouped


def _names(problem: dict) -> set[str]:
    return {Path(f).name for f in problem["files"]}


def _edit(path: Path, **values: object) -> None:
    dataset = pydicom.dcmread(path)
    for keyword, value in values.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    dataset.save_as(path)


@pytest.fixture
def series(tmp_path: Path) -> tuple[Volume, list[Path]]:
    volume = _volume()
    return volume, write_dicom_series(volume, tmp_path / "ct", {"PatientID": "P1"})


# ---------------------------------------------------------------------------------- writing
def test_written_files_carry_the_mandatory_ct_attributes(tmp_path: Path) -> None:
    volume = _volume()
    attributes = {"PatientName": "Doe^Jane", "PatientID": "P7", "StudyDate": "20240131",
                  "InstitutionName": "General", "AccessionNumber": "A1"}
    paths = write_dicom_series(volume, tmp_path, attributes, series_number=3)
    assert [p.name for p in paths[:2]] == ["IM0001.dcm", "IM0002.dcm"]
    dataset = pydicom.dcmread(paths[1])
    assert dataset.SOPClassUID == pydicom.uid.CTImageStorage
    assert dataset.Modality == "CT" and list(dataset.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert (dataset.Rows, dataset.Columns, dataset.BitsAllocated, dataset.BitsStored,
            dataset.HighBit, dataset.PixelRepresentation) == (16, 20, 16, 16, 15, 1)
    assert dataset.PhotometricInterpretation == "MONOCHROME2" and dataset.SamplesPerPixel == 1
    assert dataset.InstanceNumber == 2 and dataset.SeriesNumber == 3
    assert [float(v) for v in dataset.PixelSpacing] == [0.7, 0.6]
    assert [float(v) for v in dataset.ImagePositionPatient] == [-5.0, -6.0, -5.0]
    assert float(dataset.SliceThickness) == 2.0 and float(dataset.SliceLocation) == -5.0
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "KVP",
                    "WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope"):
        assert keyword in dataset
    assert str(dataset.PatientName) == "Doe^Jane" and dataset.InstitutionName == "General"
    uids = {pydicom.dcmread(p).SOPInstanceUID for p in paths}
    assert len(uids) == len(paths)


def test_writer_rejects_unknown_or_computed_keywords(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a DICOM keyword"):
        write_dicom_series(_volume(), tmp_path, {"PatientNmae": "x"})
    with pytest.raises(ValueError, match="computed"):
        write_dicom_series(_volume(), tmp_path, {"Rows": 3})
    with pytest.raises(ValueError, match="at least 32 x 32"):
        write_dicom_series(_volume(), tmp_path, transfer_syntax_uid=JPEG2000Lossless)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("values", [np.array([-1024.0, 3071.0]), np.array([-2e5, 7e4]),
                                    np.array([-10.25, 12.5, 0.125]), np.array([40000.0, 40002])])
def test_rescale_keeps_values_within_half_a_slope(values: np.ndarray) -> None:
    slope, intercept = rescale_for_int16(values)
    stored = np.rint((values - intercept) / slope)
    assert stored.min() >= -32768 and stored.max() <= 32767
    assert np.abs(stored * slope + intercept - values).max() <= slope / 2 + 1e-6


# ---------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("direction", [AXIAL, _rotation([1, 2, 0.5], 25) @ AXIAL],
                         ids=["axial", "oblique"])
def test_round_trip_keeps_values_and_geometry(tmp_path: Path, direction: np.ndarray) -> None:
    volume = _volume(direction=direction)
    write_dicom_series(volume, tmp_path)
    read = read_dicom_series(tmp_path)
    assert read.array.dtype == np.int16
    np.testing.assert_array_equal(read.array, volume.array)
    np.testing.assert_allclose(read.spacing, volume.spacing, atol=1e-6)
    np.testing.assert_allclose(read.origin, volume.origin, atol=1e-5)
    np.testing.assert_allclose(read.direction, volume.direction, atol=1e-6)
    assert read.meta["problems"] == [] and "resampled" not in read.meta
    assert read.meta["modality"] == "CT" and read.meta["units"] == "HU"
    assert read.meta["gantry_tilt_deg"] < 1e-3
    assert [Path(f).name for f in read.meta["files"]] == [f"IM{k:04d}.dcm" for k in range(1, 9)]


def test_fractional_values_round_trip_within_the_slope(tmp_path: Path) -> None:
    volume = _volume()
    volume = volume.with_array(volume.array / 3.0)
    write_dicom_series(volume, tmp_path)
    read = read_dicom_series(tmp_path)
    assert read.array.dtype == np.float32
    np.testing.assert_allclose(read.array, volume.array, atol=0.01)


def test_sorting_ignores_file_names_and_instance_numbers(series: tuple, tmp_path: Path) -> None:
    volume, paths = series
    rng = np.random.default_rng(1)
    shuffled = tmp_path / "shuffled" / "nested"
    shuffled.mkdir(parents=True)
    for new_number, path in zip(rng.permutation(len(paths)) + 1, paths, strict=True):
        _edit(path, InstanceNumber=int(new_number))
        path.rename(shuffled / f"{rng.integers(1e9)}")  # no extension, random names
    read = read_dicom_series(tmp_path / "shuffled")
    np.testing.assert_array_equal(read.array, volume.array)
    np.testing.assert_allclose(read.origin, volume.origin, atol=1e-5)


def test_stack_written_against_the_normal_is_read_in_normal_order(tmp_path: Path) -> None:
    flipped = _volume(direction=AXIAL * [-1, 1, 1])  # axis 0 towards the feet
    write_dicom_series(flipped, tmp_path)
    read = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(read.array, flipped.array[::-1])
    np.testing.assert_allclose(read.index_to_lps([[0, 3, 4]]),
                               flipped.index_to_lps([[7, 3, 4]]), atol=1e-5)


def test_rescale_slope_and_intercept_may_vary_per_slice(series: tuple, tmp_path: Path) -> None:
    volume, paths = series
    expected = []
    for k, path in enumerate(paths):
        stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
        slope, intercept = 0.5 + 0.25 * k, -1000.0 + 3.5 * k
        _edit(path, RescaleSlope=f"{slope}", RescaleIntercept=f"{intercept}")
        expected.append(stored * slope + intercept)
    read = read_dicom_series(paths[0].parent)
    assert read.array.dtype == np.float32
    np.testing.assert_allclose(read.array, np.stack(expected), atol=1e-3)


def test_integer_rescale_stays_integer_and_widens_when_needed(series: tuple) -> None:
    volume, paths = series
    _edit(paths[3], RescaleSlope="20", RescaleIntercept="-1024")
    read = read_dicom_series(paths[0].parent)
    assert read.array.dtype == np.int32
    stored = volume.array[3].astype(np.int32) + 1024
    np.testing.assert_array_equal(read.array[3], stored * 20 - 1024)
    np.testing.assert_array_equal(read.array[4], volume.array[4])


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless],
                         ids=["rle", "jpeg-ls", "jpeg2000"])
def test_lossless_compressed_series_decode_equal(tmp_path: Path, syntax: str) -> None:
    volume = _volume(shape=(3, 32, 36))  # openjpeg needs 32 x 32 pixels at least
    paths = write_dicom_series(volume, tmp_path, transfer_syntax_uid=syntax)
    assert pydicom.dcmread(paths[0], stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    read = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(read.array, volume.array)


# ---------------------------------------------------------------------------------- bad input
def test_non_dicom_files_are_reported_not_raised(series: tuple) -> None:
    volume, paths = series
    folder = paths[0].parent
    (folder / "notes.txt").write_text("not an image")
    (folder / "IM9999.dcm").write_bytes(os.urandom(3000))
    read = read_dicom_series(folder)
    np.testing.assert_array_equal(read.array, volume.array)
    names = {n for p in _kinds(read.meta["problems"])["not-dicom"] for n in _names(p)}
    assert names == {"notes.txt", "IM9999.dcm"}


@pytest.mark.parametrize("syntax", [pydicom.uid.ExplicitVRLittleEndian, RLELossless],
                         ids=["native", "rle"])
def test_truncated_file_is_skipped_and_the_rest_read(tmp_path: Path, syntax: str) -> None:
    volume = _volume()
    paths = write_dicom_series(volume, tmp_path, transfer_syntax_uid=syntax)
    data = paths[-1].read_bytes()
    paths[-1].write_bytes(data[: len(data) - 200])
    read = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(read.array, volume.array[:-1])
    (problem,) = _kinds(read.meta["problems"])["truncated"]
    assert _names(problem) == {paths[-1].name} and paths[-1].name in problem["message"]


def test_file_without_pixel_data_is_skipped(series: tuple) -> None:
    volume, paths = series
    _edit(paths[-1], PixelData=None)
    scan = scan_dicom_folder(paths[0].parent)
    assert _names(_kinds(scan.problems)["no-pixel-data"][0]) == {paths[-1].name}
    read = read_dicom_series(paths[0].parent)
    np.testing.assert_array_equal(read.array, volume.array[:-1])
    assert _names(_kinds(read.meta["problems"])["no-pixel-data"][0]) == {paths[-1].name}


def test_missing_slice_is_reported_and_filled_by_interpolation(series: tuple) -> None:
    volume, paths = series
    paths[4].unlink()
    read = read_dicom_series(paths[0].parent)
    (problem,) = _kinds(read.meta["problems"])["missing-slice"]
    assert _names(problem) == {"IM0004.dcm", "IM0006.dcm"}
    assert problem["message"].startswith("1 missing slice")
    assert read.shape == volume.shape and "1 missing slice" in read.meta["resampled"]
    assert "resampled" in _kinds(read.meta["problems"])
    np.testing.assert_allclose(read.spacing, volume.spacing, atol=1e-6)
    np.testing.assert_allclose(read.origin, volume.origin, atol=1e-5)
    keep = [0, 1, 2, 3, 5, 6, 7]
    np.testing.assert_allclose(read.array[keep], volume.array[keep], atol=1e-3)
    middle = (volume.array[3].astype(float) + volume.array[5]) / 2
    np.testing.assert_allclose(read.array[4], middle, atol=1e-3)
    raw = read_dicom_series(paths[0].parent, correct_geometry=False)
    np.testing.assert_array_equal(raw.array, volume.array[keep])


def test_uneven_spacing_is_reported_and_resampled(series: tuple) -> None:
    volume, paths = series
    position = [float(v) for v in pydicom.dcmread(paths[2]).ImagePositionPatient]
    _edit(paths[2], ImagePositionPatient=[f"{v}" for v in (*position[:2], position[2] + 0.4)])
    read = read_dicom_series(paths[0].parent)
    (problem,) = _kinds(read.meta["problems"])["uneven-spacing"]
    assert {"IM0002.dcm", "IM0003.dcm", "IM0004.dcm"} == _names(problem)
    assert "uneven slice spacing" in read.meta["resampled"]
    assert read.shape == volume.shape
    np.testing.assert_allclose(read.array[0], volume.array[0], atol=1e-3)
    # slice 2 now sits 2.4 mm above slice 1: the grid point 2 mm above takes 2/2.4 of it
    expected = volume.array[1] / 6.0 + volume.array[2] * 5.0 / 6.0
    np.testing.assert_allclose(read.array[2], expected, atol=1e-2)


def test_images_of_another_size_are_excluded(series: tuple) -> None:
    volume, paths = series
    uid = pydicom.dcmread(paths[0]).SeriesInstanceUID
    odd = Volume(np.zeros((1, 12, 12), np.int16), (2.0, 0.7, 0.6), (-5.0, -6.0, 9.0), AXIAL)
    (odd_path,) = write_dicom_series(odd, paths[0].parent, {"SeriesInstanceUID": uid},
                                     file_prefix="ODD")
    read = read_dicom_series(paths[0].parent)
    np.testing.assert_array_equal(read.array, volume.array)
    (problem,) = _kinds(read.meta["problems"])["mixed-size"]
    assert _names(problem) == {odd_path.name} and odd_path.name in problem["message"]


def test_localizers_are_excluded(series: tuple) -> None:
    volume, paths = series
    uid = pydicom.dcmread(paths[0]).SeriesInstanceUID
    scout = Volume(np.zeros((1, 16, 20), np.int16), (2.0, 0.7, 0.6), (0.0, -6.0, -7.0),
                   np.eye(3))  # a sagittal image: rows along z, columns along y
    (typed,) = write_dicom_series(scout, paths[0].parent, {
        "SeriesInstanceUID": uid, "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]},
        file_prefix="SCOUT")
    (oblique,) = write_dicom_series(scout, paths[0].parent, {"SeriesInstanceUID": uid},
                                    file_prefix="TURNED")
    read = read_dicom_series(paths[0].parent)
    np.testing.assert_array_equal(read.array, volume.array)
    names = {n for p in _kinds(read.meta["problems"])["localizer"] for n in _names(p)}
    assert names == {typed.name, oblique.name}


def test_two_series_in_one_folder_read_the_largest(series: tuple) -> None:
    volume, paths = series
    small = _volume(shape=(3, 10, 10), seed=5)
    small_paths = write_dicom_series(small, paths[0].parent, {"SeriesDescription": "small"},
                                     file_prefix="B")
    read = read_dicom_series(paths[0].parent)
    np.testing.assert_array_equal(read.array, volume.array)
    (problem,) = _kinds(read.meta["problems"])["multiple-series"]
    assert _names(problem) == {p.name for p in small_paths} and "'small'" in problem["message"]
    scan = scan_dicom_folder(paths[0].parent)
    assert [s.n_images for s in scan.series] == [8, 3]
    other = read_dicom_series(paths[0].parent, scan.series[1].series_instance_uid)
    np.testing.assert_array_equal(other.array, small.array)
    assert "multiple-series" not in _kinds(other.meta["problems"])
    np.testing.assert_array_equal(read_dicom_series(scan.series[1]).array, small.array)


def test_duplicate_positions_are_reported_and_one_kept(series: tuple) -> None:
    volume, paths = series
    copy = paths[0].parent / "copy_of_3"
    shutil.copy(paths[2], copy)
    _edit(copy, SOPInstanceUID=generate_uid())
    read = read_dicom_series(paths[0].parent)
    np.testing.assert_array_equal(read.array, volume.array)
    (problem,) = _kinds(read.meta["problems"])["duplicate-position"]
    assert _names(problem) == {paths[2].name, copy.name}


def test_unreadable_input_raises_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_dicom_series(tmp_path / "absent")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no DICOM image series") as caught:
        read_dicom_series(tmp_path)
    assert caught.value.path == tmp_path
    write_dicom_series(_volume(), tmp_path / "ct")
    with pytest.raises(InputError, match="no series 1.2.3"):
        read_dicom_series(tmp_path, "1.2.3")


def test_series_with_no_readable_slice_raises_naming_its_files(tmp_path: Path) -> None:
    paths = write_dicom_series(_volume(shape=(2, 8, 8)), tmp_path)
    for path in paths:
        _edit(path, PixelData=None)
    with pytest.raises(InputError, match="no readable image") as caught:
        read_dicom_series(tmp_path)
    assert all(p.name in str(caught.value) for p in paths)


def test_scan_accepts_a_single_file_and_a_list(series: tuple) -> None:
    _, paths = series
    assert len(scan_dicom_folder(paths[0]).series[0].instances) == 1
    scan = scan_dicom_folder(paths[:3])
    assert scan.series[0].n_images == 3 and scan.series[0].files == sorted(paths[:3])
    assert read_dicom_series(paths[:3]).shape == (3, 16, 20)


# ---------------------------------------------------------------------------------- gantry tilt
TILT_DEG = 15.0


def _tilted_series(folder: Path) -> tuple[Volume, tuple[int, int, int]]:
    """Slices stepping 1 mm straight along z with an image plane tilted by 15 deg about x.

    Values are a linear ramp in patient space plus a bright 5-voxel cube at a known voxel.
    """
    a = np.deg2rad(TILT_DEG)
    direction = np.column_stack([[0, 0, 1], [0, np.cos(a), -np.sin(a)], [1, 0, 0]])
    grid = Volume(np.zeros((24, 20, 22), np.int16), (1.0, 0.8, 0.7), (-7.0, -8.0, -10.0),
                  direction)
    index = np.stack(np.meshgrid(*[np.arange(s) for s in grid.shape], indexing="ij"), -1)
    world = grid.index_to_lps(index.reshape(-1, 3)).reshape(*grid.shape, 3)
    values = np.rint(world @ [3.0, 5.0, 7.0] + 100.0)
    bright = (12, 9, 11)
    values[tuple(slice(c - 2, c + 3) for c in bright)] = 3000
    volume = grid.with_array(values.astype(np.int16))
    write_dicom_series(volume, folder)
    return volume, bright


def test_gantry_tilt_is_detected_with_its_angle(tmp_path: Path) -> None:
    volume, _ = _tilted_series(tmp_path)
    raw = read_dicom_series(tmp_path, correct_geometry=False)
    assert raw.meta["gantry_tilt_deg"] == pytest.approx(TILT_DEG, abs=0.01)
    (problem,) = _kinds(raw.meta["problems"])["gantry-tilt"]
    assert "15.00 deg" in problem["message"] and len(problem["files"]) == 24
    np.testing.assert_array_equal(raw.array, volume.array)
    np.testing.assert_allclose(raw.direction, volume.direction, atol=1e-6)  # sheared grid
    assert raw.spacing[0] == pytest.approx(1.0)


def test_gantry_tilt_correction_puts_voxels_where_the_scanner_did(tmp_path: Path) -> None:
    volume, bright = _tilted_series(tmp_path)
    read = read_dicom_series(tmp_path)
    assert read.meta["resampled"].startswith("gantry tilt 15.00 deg")
    np.testing.assert_allclose(read.direction.T @ read.direction, np.eye(3), atol=1e-9)
    assert read.spacing[0] == pytest.approx(np.cos(np.deg2rad(TILT_DEG)), abs=1e-4)
    centre = read.lps_to_index(volume.index_to_lps(np.array(bright, float)))[0]
    assert read.array[tuple(np.rint(centre).astype(int))] == pytest.approx(3000, abs=1e-3)
    assert ndimage.map_coordinates(read.array, centre[:, None], order=1)[0] == \
        pytest.approx(3000, abs=1e-3)
    # away from the cube the ramp is linear in space, so interpolation reproduces it exactly
    index = np.stack(np.meshgrid(*[np.arange(s) for s in read.shape], indexing="ij"), -1)
    world = read.index_to_lps(index.reshape(-1, 3))
    source = volume.lps_to_index(world)
    inside = np.all((source >= 1) & (source <= np.array(volume.shape) - 2), axis=1)
    far = np.abs(source - bright).max(axis=1) > 4
    expected = world @ [3.0, 5.0, 7.0] + 100.0
    error = np.abs(read.array.reshape(-1) - expected)[inside & far]
    assert error.size > 1000 and error.max() < 1.0


def test_single_tilted_slice_reports_its_tilt(tmp_path: Path) -> None:
    a = np.deg2rad(TILT_DEG)
    normal = [0, np.sin(a), np.cos(a)]
    direction = np.column_stack([normal, [0, np.cos(a), -np.sin(a)], [1, 0, 0]])
    one = Volume(np.zeros((1, 8, 8), np.int16), direction=direction)
    write_dicom_series(one, tmp_path / "a", {"GantryDetectorTilt": "15"})
    write_dicom_series(one, tmp_path / "b")  # no tilt in the header: seen from the orientation
    for folder in ("a", "b"):
        (problem,) = _kinds(scan_dicom_folder(tmp_path / folder).problems)["gantry-tilt"]
        assert "15.00 deg" in problem["message"]


# ---------------------------------------------------------------------------------- real data
def _cq500() -> Path:
    root = os.environ.get("VOXELWISE_SHARED_DATA")
    shared = Path(root) if root else Path(__file__).resolve().parents[2] / "shared/data"
    folder = shared / "cq500-ct-0"
    if not folder.is_dir():
        pytest.skip(f"real data not present at {folder}")
    return folder


def test_cq500_series_with_tilt_and_missing_slice(tmp_path: Path) -> None:
    import SimpleITK as sitk

    folder = _cq500()
    stack = read_dicom_slices(folder)
    assert stack.array.shape == (238, 512, 512)
    # raw HU slices equal SimpleITK's, slice by slice (matched through the file names)
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder), stack.series.series_instance_uid)
    reader.SetFileNames(names)
    reference = sitk.GetArrayFromImage(reader.Execute())
    order = {Path(p).name: k for k, p in enumerate(stack.report.files)}
    np.testing.assert_array_equal(stack.array[[order[Path(n).name] for n in names]], reference)
    # the checks
    report = stack.report
    assert report.gantry_tilt_deg == pytest.approx(8.5, abs=0.05)
    assert report.missing_slices == 1 and report.slice_spacing_mm == pytest.approx(0.618, abs=1e-3)
    kinds = _kinds(stack.problems)
    assert {"gantry-tilt", "missing-slice", "multiple-series"} <= set(kinds)
    assert "1.236 mm" in kinds["missing-slice"][0]["message"]
    assert _names(kinds["multiple-series"][0]) == {"CT000000.dcm"}
    other = [p for p in _kinds(stack.scan.problems)["gantry-tilt"]
             if _names(p) == {"CT000000.dcm"}]
    assert len(other) == 1 and "15.00 deg" in other[0]["message"]
    # the corrected volume: orthogonal, regular, and voxels where the scanner put the pixels
    volume = stack.to_volume()
    assert volume.shape[0] == 239 and "gantry tilt 8.50 deg" in volume.meta["resampled"]
    np.testing.assert_allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-6)
    assert volume.spacing == pytest.approx((0.618, 0.443, 0.443), abs=1e-3)
    rng = np.random.default_rng(0)
    k, i, j = rng.integers(5, 230, 500), rng.integers(40, 470, 500), rng.integers(40, 470, 500)
    world = (report.image_position_patient[k]
             + (i * report.pixel_spacing[0])[:, None] * report.column_cosine
             + (j * report.pixel_spacing[1])[:, None] * report.row_cosine)
    sampled = ndimage.map_coordinates(volume.array, volume.lps_to_index(world).T, order=1)
    near = [stack.array[a - 1:a + 2, b - 2:b + 3, c - 2:c + 3] for a, b, c in zip(k, i, j,
                                                                                   strict=True)]
    low, high = np.array([n.min() for n in near]), np.array([n.max() for n in near])
    assert np.all((sampled >= low - 1) & (sampled <= high + 1))
    assert np.median(np.abs(sampled - stack.array[k, i, j])) < 2.0


def test_dicom_to_volume_to_nifti_round_trip(tmp_path: Path) -> None:
    """DICOM -> Volume -> NIfTI -> Volume keeps spacing, origin, direction and values."""
    from voxelwise.imaging import read_nifti, write_nifti

    rng = np.random.default_rng(7)
    sine, cosine = np.sin(np.deg2rad(12.0)), np.cos(np.deg2rad(12.0))
    direction = np.array([[0, 0, 1], [sine, cosine, 0], [cosine, -sine, 0]], dtype=float).T
    source = Volume(rng.integers(-1000, 2000, (7, 20, 24)).astype(np.int16), (2.5, 0.6, 0.55),
                    (-30.0, 12.5, 40.0), direction)
    write_dicom_series(source, tmp_path / "series")
    from_dicom = read_dicom_series(tmp_path / "series")
    back = read_nifti(write_nifti(from_dicom, tmp_path / "series.nii.gz"))
    for volume in (from_dicom, back):
        assert volume.same_grid(source, tolerance_mm=1e-3)
        assert np.array_equal(volume.array, source.array)
