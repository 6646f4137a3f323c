"""The synthetic head-CT phantom: files, geometry, HU, labels, clinical data, determinism."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from voxelwise.data.phantoms import head_ct
from voxelwise.data.phantoms.anatomy import Tissue
from voxelwise.data.phantoms.clinical import sample_clinical
from voxelwise.data.phantoms.head_ct import (
    CLINICAL_COLUMNS,
    STUDY_COLUMNS,
    PhantomParameters,
    generate_head_ct_study,
    render_phantom_study,
    studies,
)
from voxelwise.data.phantoms.lesions import SUBTYPES
from voxelwise.errors import InputError
from voxelwise.imaging.nifti import read_nifti

SMALL = {"centers": 2, "patients": 3, "followups": 2, "size": "small", "seed": 0}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> head_ct.PhantomStudy:
    out = tmp_path_factory.mktemp("phantom") / "study"
    return generate_head_ct_study(out, **SMALL, progress=False, workers=1)


def _manifest(phantom: head_ct.PhantomStudy) -> dict:
    return json.loads(phantom.manifest_path.read_text(encoding="utf-8"))


def _read_series(folder: Path) -> tuple[list[pydicom.Dataset], np.ndarray]:
    """Slices sorted along their normal and the HU array, with pydicom only."""
    datasets = [pydicom.dcmread(path) for path in sorted(folder.glob("IM*.dcm"))]
    datasets.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
    pixels = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
                       for ds in datasets])
    return datasets, pixels


def _files(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


# ----------------------------------------------------------------------------- layout and tables


def test_layout_and_tables(phantom: head_ct.PhantomStudy) -> None:
    root = phantom.root
    assert not root.with_name(root.name + ".partial").exists()
    assert {p.name for p in root.iterdir()} == {"dicom", "labels", "labels.csv", "clinical",
                                                "phantom.json"}
    with (root / "labels.csv").open(newline="") as handle:
        assert tuple(csv.DictReader(handle).fieldnames) == STUDY_COLUMNS
    rows = studies(root)
    assert rows == phantom.studies
    assert len(rows) == SMALL["centers"] * SMALL["patients"] * (SMALL["followups"] + 1)
    for row in rows:
        series = root / row["dicom_dir"]
        center, patient_id, name = Path(row["dicom_dir"]).parts[1:]
        assert (center, patient_id) == (row["center"], row["patient_id"])
        datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in series.glob("IM*.dcm")]
        assert len(datasets) == 16
        first = datasets[0]
        assert name == f"{first.StudyDate}_{first.AccessionNumber}"
        assert first.PatientID == row["patient_id"]
        assert first.StudyInstanceUID == row["study_instance_uid"]
        assert first.SeriesInstanceUID == row["series_instance_uid"]
        assert first.AccessionNumber == row["accession_number"]
        assert (root / row["label_map"]).is_file()
    by_patient: dict[str, list[dict]] = {}
    for row in rows:
        by_patient.setdefault(row["patient_id"], []).append(row)
    for visits in by_patient.values():
        days = [v["days_since_admission"] for v in sorted(visits, key=lambda v: v["timepoint"])]
        assert days[0] == 0 and 1 <= days[1] <= 3 and 6 <= days[2] <= 10


def test_clinical_tables(phantom: head_ct.PhantomStudy) -> None:
    root = phantom.root
    files = sorted((root / "clinical").glob("*.csv"))
    assert [f.stem for f in files] == sorted({row["center"] for row in phantom.studies})
    for path in files:
        with path.open(newline="") as handle:
            assert tuple(csv.DictReader(handle).fieldnames) == CLINICAL_COLUMNS
    dicom_ids = {row["patient_id"] for row in phantom.studies}
    assert {row["patient_id"] for row in phantom.clinical} == dicom_ids
    for row in phantom.clinical:
        assert 3 <= row["gcs"] <= 15 and 1 <= row["gose"] <= 8 and 18 <= row["age"] <= 92
        assert row["sex"] in ("M", "F") and row["pupils"] in ("both", "one", "none")
        assert row["death"] == row["event"] and (row["gose"] == 1) == bool(row["death"])
        assert 1 <= row["survival_days"] <= 180
        assert row["event"] == 1 or row["survival_days"] == 180


# ----------------------------------------------------------------------------- geometry and labels


def test_label_map_is_on_the_dicom_grid(phantom: head_ct.PhantomStudy) -> None:
    row = phantom.studies[1]
    datasets, pixels = _read_series(phantom.root / row["dicom_dir"])
    label = read_nifti(phantom.root / row["label_map"])
    assert label.shape == pixels.shape == (16, 128, 128)
    first = datasets[0]
    assert [float(x) for x in first.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    row_step, column_step = (float(x) for x in first.PixelSpacing)
    for k, ds in enumerate(datasets):
        # LPS of pixel (r, c) = IPP + c * column_step * row_cosine + r * row_step * column_cosine
        corner = np.asarray(ds.ImagePositionPatient, float)
        far = corner + np.array([127 * column_step, 127 * row_step, 0.0])
        expected = label.index_to_lps(np.array([[k, 0, 0], [k, 127, 127]]))
        np.testing.assert_allclose(expected, [corner, far], atol=1e-3)
    assert float(first.SliceThickness) == pytest.approx(10.0)


def test_label_volumes_match_the_table(phantom: head_ct.PhantomStudy) -> None:
    manifest = _manifest(phantom)
    truths = {(t["patient_id"], t["timepoint"]): t for t in manifest["studies"]}
    for row in phantom.studies:
        label = read_nifti(phantom.root / row["label_map"])
        assert label.array.dtype == np.uint8 and set(np.unique(label.array)) <= {0, 1, 2}
        voxel_ml = label.voxel_volume_ml
        assert row["haematoma_ml"] == pytest.approx((label.array == 1).sum() * voxel_ml, abs=1e-4)
        assert row["oedema_ml"] == pytest.approx((label.array == 2).sum() * voxel_ml, abs=1e-4)
        assert row["any_ich"] == int(row["haematoma_ml"] > 0)
        truth = truths[(row["patient_id"], row["timepoint"])]
        subtypes = {lesion["subtype"] for lesion in truth["lesions"]}
        assert {s for s in SUBTYPES if row[s]} == subtypes
        assert row["lesion_count"] == len(truth["lesions"])
        assert row["midline_shift"] == int(row["midline_shift_mm"] >= 5)
        assert row["mass_effect"] == int(row["midline_shift_mm"] >= 2)
        assert row["midline_shift_mm"] == pytest.approx(truth["midline_shift_mm"])


def test_case_mix_covers_subtypes_and_sizes(phantom: head_ct.PhantomStudy) -> None:
    admissions = [row for row in phantom.studies if row["timepoint"] == 0]
    assert sum(row["any_ich"] == 0 for row in admissions) == 1  # 20% of 6
    for subtype in SUBTYPES:
        assert any(row[subtype] for row in admissions), subtype
    volumes = [lesion["haematoma_ml"] for truth in _manifest(phantom)["studies"]
               for lesion in truth["lesions"]]
    assert min(volumes) < 2.0 and max(volumes) > 20.0

    # over a larger study the planned admission volumes run from under 1 mL to over 60 mL
    parameters = PhantomParameters(centers=2, patients=20, size="small")
    targets = [lesion.target_ml for plan in head_ct._plan_study(parameters)
               for lesion in head_ct._patient_model(parameters, plan).lesions
               if lesion.target_ml > 0]
    assert min(targets) < 1.0 and max(targets) > 60.0


def test_course_over_follow_ups(phantom: head_ct.PhantomStudy) -> None:
    manifest = _manifest(phantom)
    for patient in manifest["patients"]:
        for lesion in patient["lesions"]:
            hu = lesion["hu"]
            assert 50 <= hu[0] <= 90
            assert all(later < earlier for earlier, later in zip(hu, hu[1:], strict=False))
            if lesion["subtype"] == "intraparenchymal":
                rim = lesion["oedema_mm"]
                assert rim[1] > rim[0] and all(10 <= h <= 20 for h in lesion["oedema_hu"])


# ----------------------------------------------------------------------------- HU


def _median(image: np.ndarray, mask: np.ndarray, erode: bool = True) -> float:
    if erode:  # away from the edges blurred by the point-spread function
        mask = ndimage.binary_erosion(mask, np.ones((1, 3, 3), bool))
    assert mask.sum() > 20
    return float(np.median(image[mask]))


@pytest.mark.parametrize("size", ["small", "full"])
def test_tissue_and_lesion_hu(size: str) -> None:
    parameters = PhantomParameters(centers=1, patients=3, followups=1, size=size, seed=1)
    rendered = render_phantom_study(parameters, patient=0, timepoint=0)
    assert [lesion["subtype"] for lesion in rendered.truth["lesions"]] == ["intraparenchymal"]
    image, tissue, label = rendered.image.array, rendered.anatomy.tissue, rendered.label.array
    assert image.dtype == np.int16
    assert _median(image, tissue == Tissue.BONE) > 700
    assert 32 <= _median(image, tissue == Tissue.GREY_MATTER) <= 46
    assert 20 <= _median(image, tissue == Tissue.WHITE_MATTER) <= 30
    ventricles = np.isin(tissue, [Tissue.VENTRICLE_LEFT, Tissue.VENTRICLE_RIGHT])
    assert -2 <= _median(image, ventricles) <= 12
    assert 50 <= _median(image, label == 1) <= 90
    assert 8 <= _median(image, label == 2, erode=False) <= 24
    # the noise-free image holds the nominal values
    clean = rendered.anatomy.hu
    assert 10 <= np.median(clean[label == 2]) <= 20
    assert 50 <= np.median(clean[label == 1]) <= 90
    assert image[0, 0, 0] < -900  # air
    white = ndimage.binary_erosion(tissue == Tissue.WHITE_MATTER, np.ones((1, 9, 9), bool))
    assert 3 <= image[white & (label == 0)].std() <= 10  # scanner noise


# ----------------------------------------------------------------------------- clinical formula


def test_control_outcome_does_not_depend_on_imaging() -> None:
    def record(effect: float, haematoma_ml: float, shift_mm: float):  # same random draws
        return sample_clinical(np.random.default_rng(5), "P1", 60, "F", haematoma_ml, shift_mm,
                               8, effect)

    assert record(0.0, 0.0, 0.0) == record(0.0, 80.0, 12.0)
    small, large = record(1.0, 0.0, 0.0), record(1.0, 80.0, 12.0)
    assert large.linear_predictor > small.linear_predictor and large.gcs <= small.gcs


def test_control_phantom_is_recorded(tmp_path: Path) -> None:
    study = generate_head_ct_study(tmp_path / "control", centers=1, patients=1, followups=0,
                                   imaging_effect=0.0, progress=False, workers=1)
    manifest = json.loads(study.manifest_path.read_text())
    assert manifest["parameters"]["imaging_effect"] == 0.0
    assert manifest["outcome_model"]["imaging_effect"] == 0.0


# ----------------------------------------------------------------------------- PHI


def test_phi_is_listed(phantom: head_ct.PhantomStudy) -> None:
    manifest = _manifest(phantom)
    phi = set(manifest["phi"])
    datasets, _ = _read_series(phantom.root / phantom.studies[0]["dicom_dir"])
    ds = datasets[0]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                    "InstitutionName", "StationName", "ReferringPhysicianName", "StudyDate",
                    "PatientAddress"):
        assert str(ds.data_element(keyword).value) in phi, keyword
    assert ds.Manufacturer and ds.ConvolutionKernel and float(ds.KVP) > 0
    centers = {center["code"]: center for center in manifest["centers"]}
    assert len({c["pixel_spacing_mm"] for c in centers.values()}) == 2  # varies per centre


# ----------------------------------------------------------------------------- determinism


def _pixels_and_labels(root: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for row in studies(root):
        arrays[row["dicom_dir"]] = _read_series(root / row["dicom_dir"])[1]
        arrays[row["label_map"]] = read_nifti(root / row["label_map"]).array
    return arrays


def test_same_seed_same_phantom(tmp_path: Path) -> None:
    parameters = {"centers": 2, "patients": 1, "followups": 1, "progress": False}
    first = generate_head_ct_study(tmp_path / "a", seed=3, workers=1, **parameters)
    second = generate_head_ct_study(tmp_path / "b", seed=3, workers=2, **parameters)
    other = generate_head_ct_study(tmp_path / "c", seed=4, workers=1, **parameters)
    a, b, c = (_pixels_and_labels(s.root) for s in (first, second, other))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    for name in ("labels.csv", "phantom.json", "clinical/AVGH.csv", "clinical/RNMC.csv"):
        assert (first.root / name).read_bytes() == (second.root / name).read_bytes()
    labels = sorted(f for f in _files(first.root) if f.endswith(".nii.gz"))
    for name in labels:
        assert (first.root / name).read_bytes() == (second.root / name).read_bytes()
    for ours, theirs in zip(a.values(), c.values(), strict=True):  # same order, other seed
        assert ours.shape == theirs.shape and not np.array_equal(ours, theirs)
    assert first.studies[0]["patient_id"] != other.studies[0]["patient_id"]
    ds_a = pydicom.dcmread(next((first.root / first.studies[0]["dicom_dir"]).glob("*.dcm")))
    ds_b = pydicom.dcmread(next((second.root / second.studies[0]["dicom_dir"]).glob("*.dcm")))
    assert ds_a == ds_b  # every attribute, UIDs and pixel data included
    dicom_files = sorted(f for f in _files(first.root) if f.endswith(".dcm"))
    assert dicom_files and all((first.root / f).read_bytes() == (second.root / f).read_bytes()
                               for f in dicom_files)


# ----------------------------------------------------------------------------- overwrite, resume


def test_existing_folder_is_refused_without_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="pass overwrite=True"):
        generate_head_ct_study(out, centers=1, patients=1, followups=0, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"
    study = generate_head_ct_study(out, centers=1, patients=1, followups=0, progress=False,
                                   overwrite=True)
    assert not (out / "notes.txt").exists() and len(study.studies) == 1


def test_same_parameters_reuse_the_finished_phantom(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "done"
    first = generate_head_ct_study(out, centers=1, patients=1, followups=0, progress=False)

    def fail(job: object) -> int:
        raise AssertionError("a finished phantom was generated again")

    monkeypatch.setattr(head_ct, "_generate_patient", fail)
    again = generate_head_ct_study(out, centers=1, patients=1, followups=0, progress=False)
    assert again.studies == first.studies
    again = generate_head_ct_study(out, centers=1, patients=1, followups=0, progress=False,
                                   overwrite=True)
    assert again.studies == first.studies
    with pytest.raises(InputError):  # other parameters: not the same phantom
        generate_head_ct_study(out, centers=1, patients=1, followups=0, seed=9, progress=False)


def test_interrupted_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, options = tmp_path / "resumed", {"centers": 1, "patients": 3, "followups": 1,
                                          "progress": False, "workers": 1}
    generate = head_ct._generate_patient
    calls: list[int] = []

    def interrupted(job: head_ct._PatientJob) -> int:
        if calls:
            raise KeyboardInterrupt  # stopped after the first patient
        calls.append(job.plan.identity.index)
        return generate(job)

    monkeypatch.setattr(head_ct, "_generate_patient", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_head_ct_study(out, **options)
    staging = tmp_path / "resumed.partial"
    assert not out.exists() and len(list((staging / ".done").glob("*.json"))) == 1

    def counted(job: head_ct._PatientJob) -> int:
        calls.append(job.plan.identity.index)
        return generate(job)

    monkeypatch.setattr(head_ct, "_generate_patient", counted)
    resumed = generate_head_ct_study(out, **options)
    assert calls == [0, 1, 2] and not staging.exists()  # patient 0 was not made twice
    fresh = generate_head_ct_study(tmp_path / "fresh", **options)
    assert (out / "labels.csv").read_text() == (fresh.root / "labels.csv").read_text()
    assert (out / "phantom.json").read_text() == (fresh.root / "phantom.json").read_text()
    assert len(resumed.studies) == 6


def test_staging_of_other_parameters_is_discarded(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "study"
    staging = tmp_path / "study.partial"
    (staging / ".done").mkdir(parents=True)
    (staging / ".parameters.json").write_text(json.dumps({"seed": 123}))
    (staging / ".done" / "00000.json").write_text("{}")  # would break the tables if reused
    study = generate_head_ct_study(out, centers=1, patients=2, followups=0, progress=False,
                                   workers=1)
    assert len(study.studies) == 2 and not staging.exists()


def test_bad_parameters() -> None:
    for bad in ({"size": "huge"}, {"centers": 0}, {"patients": 0},
                {"followups": -1}, {"imaging_effect": -1.0}, {"imaging_effect": math.nan}):
        with pytest.raises(ValueError):
            PhantomParameters(**bad)
