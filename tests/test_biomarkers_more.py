"""Biomarkers: several classes in one cc3d pass; the demo step feeding prognosis (interface E)."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from voxelwise.biomarkers import biomarker_columns, find_lesions, measure_series
from voxelwise.imaging import Volume

SPACING = (2.0, 0.5, 0.5)


def _labels(array: np.ndarray) -> Volume:
    return Volume(array, SPACING, (-10.0, -20.0, -30.0))


def test_touching_classes_are_separate_lesions_and_other_values_ignored() -> None:
    array = np.zeros((6, 30, 30), np.uint8)
    array[1:4, 5:15, 5:15] = 1
    array[1:4, 15:25, 5:15] = 2          # touches class 1 face to face
    array[1:4, 5:15, 20:25] = 3          # a class not asked for
    array[5, 29, 29] = 1                 # 0.5 uL speck: not a lesion, still class volume
    result = measure_series(_labels(array), None, {1: "haematoma", 2: "oedema"})
    row = result.row()
    assert row["haematoma_lesions"] == 1 and row["oedema_lesions"] == 1
    assert row["haematoma_ml"] == pytest.approx((array == 1).sum() * 0.5e-3)
    assert row["haematoma_largest_ml"] == pytest.approx(300 * 0.5e-3)
    assert {lesion["class"] for lesion in result.lesions} == {"haematoma", "oedema"}
    assert list(row) == biomarker_columns()


def test_float_label_map_counts_like_integers() -> None:
    array = np.zeros((6, 20, 20), np.float32)
    array[1:3, 2:6, 2:6] = 1.0
    array[1:3, 10:14, 10:14] = 1.0
    assert len(find_lesions(_labels(array), 1)) == 2


def test_diagonal_voxels_are_one_lesion_with_26_connectivity() -> None:
    array = np.zeros((6, 20, 20), np.uint8)
    for k in range(4):
        array[1 + k, 2 + k, 2 + k] = 1   # corner to corner only
    lesions = find_lesions(_labels(array), 1, 0.0)
    assert len(lesions) == 1 and lesions[0].voxels == 4
    first_to_last = np.sqrt((3 * 2.0) ** 2 + 2 * (3 * 0.5) ** 2)  # voxel centres, mm
    assert lesions[0].diameter_mm == pytest.approx(first_to_last, abs=0.01)


def test_demo_step_writes_biomarkers_for_prognosis(tmp_path) -> None:
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study
    from voxelwise.demo.biomarkers import step_biomarkers
    from voxelwise.demo.state import DemoConfig, DemoState
    from voxelwise.prognosis.features import read_biomarkers
    from voxelwise.reports.html import Report

    study = generate_head_ct_study(tmp_path / "phantom", centers=1, patients=2, followups=1,
                                   size="small", progress=False, workers=1)
    state = DemoState(DemoConfig(out=tmp_path / "demo", size="small"), Report("test"))
    state.phantom_root, state.studies = study.root, study.studies
    predicted = tmp_path / "predicted"
    shutil.copytree(study.root / "labels", predicted)
    state.outputs["predicted_labels"] = predicted
    step_biomarkers(state)
    findings = state.findings["biomarkers"]
    assert findings["series"] == 4 and findings["midline_not_found"] == 0
    assert findings["midline_shift_error_max_mm"] <= 2.0
    assert findings["icc_haematoma"] == pytest.approx(1.0)   # the "model" is the ground truth
    rows = list(csv.DictReader(state.outputs["biomarkers_csv"].open()))
    patients = {row["patient_id"] for row in study.studies}
    assert {row["patient"] for row in rows} == patients and len(rows) == 4
    table = read_biomarkers(state.outputs["biomarkers_csv"])
    assert set(table["patient"]) == patients


@pytest.mark.parametrize(("size", "seed", "patients", "patient"),
                         [("full", 3, 8, 5), ("full", 7, 6, 3), ("small", 5, 12, 9)])
def test_midline_where_the_falx_or_the_skull_alone_misled(size, seed, patients, patient) -> None:
    """Scans once > 2 mm off: unconstrained falx ridges (full 3/5), a 1 mm anchor (full 7/3),
    an anchor tighter than the small scan's 1.7 mm pixels (small 5/9)."""
    from voxelwise.biomarkers import estimate_midline
    from voxelwise.data.phantoms.head_ct import PhantomParameters, render_phantom_study

    parameters = PhantomParameters(centers=1, patients=patients, followups=1, size=size,
                                   seed=seed)
    study = render_phantom_study(parameters, patient, 0)
    sign = {None: 0, "left": 1, "right": -1}[study.truth["shift_towards"]]
    assert estimate_midline(study.image).signed_shift_mm == pytest.approx(
        sign * study.truth["midline_shift_mm"], abs=2.0)


@pytest.mark.parametrize(("patient", "timepoint"), [(4, 0), (5, 1)])
def test_ideal_midline_follows_the_falx_where_the_skull_is_asymmetric(patient, timepoint) -> None:
    """Full seed 3: skulls whose outline is turned 2-6 degrees from the falx (odd shape
    harmonics) once put the shift 2.86 mm (patient 4, no shift) and 3.09 mm off (patient 5)."""
    from voxelwise.biomarkers import estimate_midline
    from voxelwise.data.phantoms.head_ct import PhantomParameters, render_phantom_study

    parameters = PhantomParameters(centers=1, patients=8, followups=1, size="full", seed=3)
    study = render_phantom_study(parameters, patient, timepoint)
    estimate = estimate_midline(study.image)
    cx, cy, cz = study.truth["head_center_lps"]
    yaw = np.deg2rad(study.truth["head_yaw_deg"])
    # the phantom's midline plane u = 0: through the head's centre along its AP axis v
    plane = np.array([[cx - np.sin(yaw) * v, cy + np.cos(yaw) * v, cz] for v in (-60, -12, 40)])
    assert np.abs(estimate.lateral_mm(plane)).max() < 0.6
    sign = {None: 0, "left": 1, "right": -1}[study.truth["shift_towards"]]
    assert estimate.signed_shift_mm == pytest.approx(
        sign * study.truth["midline_shift_mm"], abs=1.0)
