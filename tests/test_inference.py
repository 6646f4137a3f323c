"""Inference: windows and blending, flip TTA, fold ensembles, resampling back, small components,
DICOM SEG frames at their source slices, inputs and their errors, the command end to end."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from torch import nn

from voxelwise.errors import InputError
from voxelwise.imaging import Volume, read_dicom_series, write_dicom_series, write_nifti
from voxelwise.imaging.dicom_seg import (
    read_segmentation,
    segmentation_on_grid,
    write_segmentation,
)
from voxelwise.inference import (
    Ensemble,
    WindowSettings,
    labels_on_grid,
    mirror_combinations,
    read_input,
    remove_small_components,
    sliding_window_probabilities,
)

CLASSES = {0: "background", 1: "haematoma", 2: "oedema"}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


class Pointwise(nn.Module):
    """Logits that depend on each voxel's value only: windows and blending must not show."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([-x, 0 * x, x], dim=1)


class Lopsided(nn.Module):
    """Logits from a one-sided neighbour difference: flipping the input changes the answer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = torch.roll(x, 1, dims=-1)
        return torch.cat([x - shifted, 0 * x, shifted - x], dim=1)


def _image(shape=(11, 19, 23), seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(1, 1, *shape))
                            .astype(np.float32))


# ---------------------------------------------------------------------------------- windows
@pytest.mark.parametrize("patch", [(8, 8, 8), (8, 8)])
def test_gaussian_windows_reproduce_a_pointwise_network(patch) -> None:
    image = _image()
    settings = WindowSettings(patch_size=patch, overlap=0.5, batch_size=3)
    probabilities = sliding_window_probabilities(Pointwise(), image, settings)
    expected = torch.softmax(Pointwise()(image), dim=1)
    assert probabilities.shape == (1, 3, 11, 19, 23)
    torch.testing.assert_close(probabilities, expected, atol=1e-5, rtol=1e-5)
    tta = sliding_window_probabilities(Pointwise(), image, settings, tta=True)
    torch.testing.assert_close(tta, expected, atol=1e-5, rtol=1e-5)  # flips commute


def test_flip_tta_is_the_mean_over_every_mirror_combination() -> None:
    assert mirror_combinations((0, 1, 2)) == [(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2),
                                              (0, 1, 2)]
    image = _image((6, 7, 9))
    settings = WindowSettings(patch_size=(6, 7, 9), overlap=0.0, batch_size=1,
                              mirror_axes=(2,))
    plain = sliding_window_probabilities(Lopsided(), image, settings)
    tta = sliding_window_probabilities(Lopsided(), image, settings, tta=True)
    flipped = torch.flip(torch.softmax(Lopsided()(torch.flip(image, [4])), 1), [4])
    torch.testing.assert_close(tta, (plain + flipped) / 2, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(tta, plain, atol=1e-3)


def test_ensemble_averages_fold_probabilities() -> None:
    image = _image((6, 8, 8))

    class Scaled(nn.Module):
        def __init__(self, factor: float) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return Pointwise()(x) * self.factor

    plan = type("Plan", (), {"classes": CLASSES, "patch_size": [4, 8, 8], "batch_size": 2})()
    ensemble = Ensemble(Path("run"), plan, [Scaled(1.0), Scaled(3.0)], [0, 1], [],
                        torch.device("cpu"))
    settings = ensemble.window_settings(overlap=0.5)
    assert settings.patch_size == (4, 8, 8) and settings.batch_size == 2
    mean = ensemble.probabilities(image, settings)
    expected = (torch.softmax(Pointwise()(image), 1) + torch.softmax(3 * Pointwise()(image), 1)) / 2
    torch.testing.assert_close(mean, expected, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------- back to native
def test_probabilities_are_resampled_onto_the_native_grid() -> None:
    # origins are LPS (x, y, z); axis 0 runs along z, axis 1 along y, axis 2 along x
    native = Volume(np.zeros((8, 40, 40), np.int16), (5.0, 0.5, 0.5), (-10.0, -10.0, -10.0))
    grid = Volume(np.zeros((8, 10, 10), np.float32), (5.0, 2.0, 2.0),
                  (-9.25, -9.25, -10.0))  # same extent, 4x coarser in plane
    probabilities = np.zeros((3, 8, 10, 10), np.float32)
    probabilities[0] = 1.0
    probabilities[:, 3, 4:7, 2:5] = np.array([0.1, 0.7, 0.2])[:, None, None]
    labels = labels_on_grid(probabilities, grid, native)
    assert labels.shape == native.shape and labels.dtype == np.uint8
    # the coarse block covers native voxels 16..27 (rows) and 8..19 (columns), up to interpolation
    rows, columns = np.nonzero(labels[3] == 1)
    assert abs(rows.min() - 16) <= 2 and abs(rows.max() - 27) <= 2
    assert abs(columns.min() - 8) <= 2 and abs(columns.max() - 19) <= 2
    assert not labels[2].any() and set(np.unique(labels)) == {0, 1}
    same = labels_on_grid(probabilities, grid, grid)
    np.testing.assert_array_equal(same, np.argmax(probabilities, 0))


def test_components_below_the_minimum_volume_are_removed() -> None:
    labels = np.zeros((10, 20, 20), np.uint8)
    labels[1:4, 1:4, 1:4] = 1        # 27 voxels = 0.027 mL at 1 mm
    labels[5:9, 10:15, 10:15] = 1    # 100 voxels
    labels[5:9, 2:4, 2:4] = 2        # 16 voxels of class 2
    labels[0, 19, 19] = 2            # 1 voxel
    cleaned, removed = remove_small_components(labels, (1.0, 1.0, 1.0), min_volume_ml=0.02)
    assert removed == 2
    assert cleaned[2, 2, 2] == 1 and cleaned[6, 12, 12] == 1 and not cleaned[5:9, 2:4, 2:4].any()
    assert cleaned[0, 19, 19] == 0
    # thresholds are in mL: at 2 mm voxels (8 uL each) the 16-voxel oedema is 0.128 mL
    kept, removed = remove_small_components(labels, (2.0, 2.0, 2.0), min_volume_ml=0.1)
    assert removed == 1 and kept[6, 3, 3] == 2 and kept[0, 19, 19] == 0
    assert remove_small_components(labels, (1, 1, 1), 0.0) == (labels, 0)
    # one minimum per class: only class 2's components are held to 0.02 mL
    per_class, removed = remove_small_components(labels, (1.0, 1.0, 1.0), {2: 0.02})
    assert removed == 2 and per_class[2, 2, 2] == 1 and not (per_class == 2).any()


def test_minimum_volumes_are_chosen_on_validation_cases() -> None:
    from voxelwise.inference.postprocess import choose_min_volumes

    spacing = (1.0, 1.0, 1.0)  # 1 uL voxels: 0.05 mL = 50 voxels
    empty = np.zeros((10, 20, 20), np.uint8)
    lesion = empty.copy()
    lesion[2:7, 5:15, 5:15] = 1                 # 500 voxels of class 1
    speck = lesion.copy()
    speck[0, 0, 0:3] = 1                        # a 3-voxel false positive of class 1
    oedema = empty.copy()
    oedema[2:5, 2:6, 2:6] = 2                   # 48 voxels (0.048 mL) of class 2
    specks_only = empty.copy()
    specks_only[8, 18, 10:14] = 1               # 4 voxels of class 1 on a lesion-free case
    cases = [(speck, lesion, spacing), (specks_only, empty, spacing), (oedema, oedema, spacing)]
    choice = choose_min_volumes(cases, {0: "background", 1: "blood", 2: "oedema"},
                                candidates=(0.0, 0.005, 0.05, 1.0))
    # blood: removing the specks (< 5 voxels) gives 1, 1, 1; 1 mL would also drop the lesion
    assert choice["min_volume_ml"]["blood"] == 0.005
    assert choice["mean_dice"]["blood"][0.0] == pytest.approx((1000 / 1003 + 0 + 1) / 3, abs=1e-4)
    assert choice["mean_dice"]["blood"][1.0] == pytest.approx((0 + 1 + 1) / 3, abs=1e-4)
    # oedema: nothing to gain, and 0.05 mL would remove the true 0.048 mL: the smallest is kept
    assert choice["min_volume_ml"]["oedema"] == 0.0
    assert choice["mean_dice"]["oedema"][0.05] == pytest.approx(2 / 3, abs=1e-4)
    assert choice["cases"] == 3


# ---------------------------------------------------------------------------------- DICOM SEG
def _series(folder: Path, direction=None, shape=(12, 24, 28)) -> Volume:
    rng = np.random.default_rng(0)
    kwargs = {} if direction is None else {"direction": direction}
    volume = Volume(rng.integers(0, 80, shape).astype(np.int16), (2.5, 0.7, 0.6),
                    (-12.0, -20.0, 30.0), **kwargs)
    write_dicom_series(volume, folder, {"PatientID": "P1", "PatientName": "Test^Patient"})
    return read_dicom_series(folder)


def _frames(path: Path) -> list[tuple[str, np.ndarray, int, np.ndarray]]:
    """(source SOP Instance UID, Image Position, segment number, mask) of each SEG frame."""
    seg = pydicom.dcmread(path)
    pixels = seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)
    shared = seg.SharedFunctionalGroupsSequence[0]
    rows = []
    for frame, mask in zip(seg.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        segment = (frame if "SegmentIdentificationSequence" in frame else shared)
        rows.append((str(source.ReferencedSOPInstanceUID),
                     np.array(frame.PlanePositionSequence[0].ImagePositionPatient, float),
                     int(segment.SegmentIdentificationSequence[0].ReferencedSegmentNumber), mask))
    return rows


def _check_frames_on_source(path: Path, image: Volume, expected: np.ndarray) -> int:
    """Every frame at its source slice's position, its mask equal to that slice's labels."""
    sources = {}
    for k, file in enumerate(image.meta["files"]):
        header = pydicom.dcmread(file, stop_before_pixels=True)
        sources[str(header.SOPInstanceUID)] = (k, np.array(header.ImagePositionPatient, float))
    frames = _frames(path)
    for uid, position, segment, mask in frames:
        k, source_position = sources[uid]
        np.testing.assert_allclose(position, source_position, atol=1e-4)
        np.testing.assert_array_equal(mask > 0, expected[k] == segment)
    return len(frames)


def test_seg_frames_sit_on_their_source_slices(tmp_path: Path) -> None:
    image = _series(tmp_path / "ct")
    labels = np.zeros(image.shape, np.uint8)
    labels[3:6, 5:12, 6:14] = 2
    labels[4, 7:10, 8:11] = 1
    path = write_segmentation(image.with_array(labels), image.meta["files"],
                              tmp_path / "out" / "case.seg.dcm", {1: "haematoma", 2: "oedema"})
    assert _check_frames_on_source(path, image, labels) == 4  # 3 oedema slices + 1 haematoma
    seg = pydicom.dcmread(path)
    assert seg.Modality == "SEG" and seg.PatientID == "P1"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == image.meta["series_instance_uid"]
    assert seg.FrameOfReferenceUID == pydicom.dcmread(image.meta["files"][0]).FrameOfReferenceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["haematoma", "oedema"]
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "35566002"
    back = segmentation_on_grid(read_segmentation(path), image)
    np.testing.assert_array_equal(back.array, labels)
    assert read_segmentation(path).segment_names == {1: "haematoma", 2: "oedema"}


def test_seg_of_a_tilted_series_follows_the_acquired_slices(tmp_path: Path) -> None:
    angle = np.deg2rad(12.0)
    direction = np.column_stack([[0, 0, 1], [0, np.cos(angle), -np.sin(angle)], [1, 0, 0]])
    image = _series(tmp_path / "ct", direction, shape=(14, 24, 28))
    assert "gantry tilt" in image.meta["resampled"]  # the reader put it on an orthogonal grid
    labels = np.zeros(image.shape, np.uint8)
    labels[4:10, 6:16, 8:20] = 1
    path = write_segmentation(image.with_array(labels), image.meta["files"],
                              tmp_path / "tilted.seg.dcm", {1: "haematoma"})
    raw = read_dicom_series(tmp_path / "ct", correct_geometry=False)  # the acquired stack
    # expected frames: the label map sampled at every source pixel centre
    index = np.stack(np.meshgrid(*[np.arange(s) for s in raw.shape], indexing="ij"), -1)
    at = np.rint(image.lps_to_index(raw.index_to_lps(index.reshape(-1, 3)))).astype(int)
    inside = np.all((at >= 0) & (at < image.shape), axis=1)
    expected = np.zeros(raw.array.size, np.uint8)
    expected[inside] = labels[tuple(at[inside].T)]
    assert _check_frames_on_source(path, raw, expected.reshape(raw.shape)) > 0
    # read back onto the corrected grid: the same voxels, up to nearest-neighbour round trips
    back = segmentation_on_grid(path, image).array
    assert not ((back == 1) & (labels == 0)).any()
    assert ((back == 1) & (labels == 1)).sum() / labels.sum() > 0.8


def test_seg_reader_names_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM" * 10)
    with pytest.raises(InputError, match="broken.dcm"):
        read_segmentation(broken)


# ---------------------------------------------------------------------------------- inputs
def test_inputs_and_their_errors(tmp_path: Path) -> None:
    first = _series(tmp_path / "two" / "a")
    write_dicom_series(Volume(np.zeros((3, 8, 8), np.int16)), tmp_path / "two" / "b")
    with pytest.raises(InputError, match=r"two: 2 series found; choose one with --series-uid"
                       rf".*{first.meta['series_instance_uid']}"):
        read_input(tmp_path / "two")
    chosen = read_input(tmp_path / "two", series_uid=first.meta["series_instance_uid"])
    assert chosen.image.shape == first.shape and len(chosen.source_files) == 12
    with pytest.raises(InputError, match="no series 1.2.3"):
        read_input(tmp_path / "two", series_uid="1.2.3")
    single = read_input(tmp_path / "two" / "a")
    assert single.name == "a" and single.kind == "dicom"
    nifti = read_input(write_nifti(first, tmp_path / "ct.nii.gz"))
    assert nifti.name == "ct" and nifti.source_files == [] and nifti.image.same_grid(first)
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)),
             str(tmp_path / "four.nii.gz"))
    with pytest.raises(InputError, match=r"four.nii.gz: expected a 3-D image"):
        read_input(tmp_path / "four.nii.gz")
    with pytest.raises(InputError, match="missing.nii.gz: no such file"):
        read_input(tmp_path / "missing.nii.gz")


def _shared_data() -> Path:
    root = os.environ.get("VOXELWISE_SHARED_DATA")
    return Path(root) if root else Path("/work/shared/data")


# ---------------------------------------------------------------------------------- run folders
def _plan(dims: int = 2, spacing=(5.0, 2.0, 2.0), patch=(16, 16), model_kwargs=None):
    from voxelwise.data.plan import Plan

    kwargs = model_kwargs or {"channels": [4, 8], "strides": [[2, 2]], "num_res_units": 0}
    return Plan(dataset={"name": "test"}, fingerprint={}, dims=dims, spacing_mm=list(spacing),
                patch_size=list(patch), batch_size=2,
                normalization=[{"scheme": "ct", "clip": [-100.0, 200.0], "mean": 40.0,
                                "std": 20.0}],
                channels=["CT"], classes={str(k): v for k, v in CLASSES.items()},
                model={"name": "unet", "kwargs": kwargs})


def _run_folder(root: Path, folds=(0, 1), plan=None, out_channels: int | None = None) -> Path:
    from voxelwise.models import build_model, model_spec
    from voxelwise.models.checkpoint import save_checkpoint

    plan = plan or _plan()
    plan.save(root / "plan.json")
    spec = plan.model_spec()
    for fold in folds:
        torch.manual_seed(fold)
        model = build_model(spec["name"], spatial_dims=spec["spatial_dims"],
                            in_channels=spec["in_channels"],
                            out_channels=out_channels or spec["out_channels"], **spec["kwargs"])
        identity = {"task": "segmentation", "model": model_spec(model), "plan": plan.identity()}
        save_checkpoint(root / f"fold_{fold}" / "checkpoint_best.pt",
                        {"identity": identity, "model_state": model.state_dict()})
    return root


def _ct(shape=(10, 40, 36), flip: bool = False) -> Volume:
    """A CT-like volume: 0 HU background with a 100 HU block, optionally stored flipped."""
    array = np.zeros(shape, np.int16)
    array[3:7, 10:30, 8:20] = 100
    volume = Volume(array, (4.0, 0.8, 0.9), (-15.0, -16.0, -20.0), meta={"units": "HU"})
    if flip:  # axis 2 towards the right: not canonical, the plan's grid is reoriented
        direction = volume.direction.copy()
        direction[:, 2] *= -1
        origin = volume.index_to_lps([[0, 0, shape[2] - 1]])[0]
        volume = Volume(array[:, :, ::-1].copy(), volume.spacing, tuple(origin), direction,
                        meta={"units": "HU"})
    return volume


@pytest.mark.parametrize("flip", [False, True])
def test_labels_come_back_on_the_native_grid_where_the_network_put_them(flip: bool) -> None:
    from voxelwise.inference import predict_volume

    plan = _plan(spacing=(4.0, 1.6, 1.8))  # coarser in plane than the image
    ensemble = Ensemble(Path("run"), plan, [Pointwise()], [0], [], torch.device("cpu"))
    image = _ct(flip=flip)
    labels = predict_volume(ensemble, image)
    assert labels.same_grid(image) and labels.array.dtype == np.uint8
    # logits (-x, 0, x) of the normalised CT: class 2 above 40 HU, class 0 below
    from scipy import ndimage

    truth = image.array > 40
    inner = ndimage.binary_erosion(truth, iterations=2)
    outer = ~ndimage.binary_dilation(truth, iterations=2)
    assert np.all(labels.array[inner] == 2) and np.all(labels.array[outer] == 0)
    assert labels.meta["inference"]["network_spacing_mm"] == pytest.approx([4.0, 1.6, 1.8])


def test_predict_volume_with_a_run_folder_folds_and_tta(tmp_path: Path) -> None:
    from voxelwise.inference import load_ensemble, predict_volume

    run = _run_folder(tmp_path / "run")
    image = _ct()
    labels = predict_volume(run, image, tta=True, min_volume_ml=0.01)
    assert labels.same_grid(image) and set(np.unique(labels.array)) <= {0, 1, 2}
    record = labels.meta["inference"]
    assert record["folds"] == [0, 1] and record["tta"] is True
    ensemble = load_ensemble(run, [1])
    assert ensemble.folds == [1] and len(ensemble.models) == 1
    with pytest.raises(InputError, match=r"no checkpoint_best.pt for fold\(s\) 3; trained "
                       "folds: 0, 1"):
        load_ensemble(run, [3])


def test_a_checkpoint_from_another_configuration_is_refused(tmp_path: Path) -> None:
    from voxelwise.inference import load_ensemble

    run = _run_folder(tmp_path / "run", folds=(0,), out_channels=2)
    with pytest.raises(InputError, match=r"fold_0/checkpoint_best.pt: checkpoint from another "
                       r"configuration: 2 output classes vs the plan's 3"):
        load_ensemble(run)
    other = _run_folder(tmp_path / "other", folds=(0,), plan=_plan(spacing=(5.0, 1.0, 1.0)))
    _plan().save(other / "plan.json")  # the plan changed after training
    with pytest.raises(InputError, match=r"checkpoint from another configuration: spacing_mm"):
        load_ensemble(other)
    with pytest.raises(InputError, match="no plan.json"):
        load_ensemble(tmp_path)


def test_infer_command_writes_labels_seg_and_manifest(tmp_path: Path) -> None:
    import json

    from voxelwise.cli.main import main
    from voxelwise.imaging import read_nifti

    run = _run_folder(tmp_path / "run")
    image = _ct()
    write_dicom_series(image, tmp_path / "series", {"PatientID": "P7"})
    out = tmp_path / "out"
    assert main(["infer", str(run), str(tmp_path / "series"), "--out", str(out), "--folds",
                 "0", "--min-volume-ml", "0.05", "--threads", "1"]) == 0
    manifest = json.loads((out / "series.json").read_text())
    assert manifest["inference"]["folds"] == [0] and manifest["input"]["kind"] == "dicom"
    assert set(manifest["outputs"]) == {"labels", "seg", "manifest"}
    labels = read_nifti(out / "series.nii.gz")
    source = read_dicom_series(tmp_path / "series")
    assert labels.same_grid(source)
    if labels.array.any():
        back = segmentation_on_grid(out / "series.seg.dcm", source)
        np.testing.assert_array_equal(back.array, labels.array)
    # a NIfTI input gets a label map and no SEG; a 4-D NIfTI is refused by name
    write_nifti(image, tmp_path / "ct.nii.gz")
    assert main(["infer", str(run), str(tmp_path / "ct.nii.gz"), "--out", str(out)]) == 0
    assert (out / "ct.nii.gz").is_file() and not (out / "ct.seg.dcm").exists()
    write_dicom_series(image, tmp_path / "series" / "other")
    assert main(["infer", str(run), str(tmp_path / "series"), "--out", str(out)]) == 2
    assert main(["infer", str(run), "--out", str(out)]) == 2
    assert main(["infer", str(tmp_path / "series"), str(tmp_path / "ct.nii.gz"), "--out",
                 str(out)]) == 2  # not a run folder


def test_real_head_ct_comes_back_on_its_own_geometry(tmp_path: Path) -> None:
    folder = _shared_data() / "cq500-ct-0"
    if not folder.is_dir():
        pytest.skip(f"real data not present at {folder}")
    from voxelwise.imaging import scan_dicom_folder
    from voxelwise.inference import predict_volume
    from voxelwise.inference.inputs import read_dicom_input

    # the folder also holds one slice of another patient: choosing the series is required
    with pytest.raises(InputError, match="2 series found"):
        read_dicom_input(folder)
    source = read_dicom_input(folder, scan_dicom_folder(folder).series[0].series_instance_uid)
    assert "gantry tilt" in source.image.meta["resampled"]
    run = _run_folder(tmp_path / "run", folds=(0,), plan=_plan(spacing=(5.0, 1.5, 1.5),
                                                                patch=(64, 64)))
    labels = predict_volume(run, source.image)
    assert labels.same_grid(source.image, tolerance_mm=1e-6)
    assert labels.shape == source.image.shape and labels.array.dtype == np.uint8
