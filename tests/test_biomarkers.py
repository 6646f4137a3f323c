"""Biomarkers: volumes, ABC/2, lesions, diameters, hemisphere, follow-up, agreement, CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from voxelwise.biomarkers import abc2_ml, find_lesions, followup_table, measure_series
from voxelwise.biomarkers.agreement import agreement_rows
from voxelwise.cli.main import main
from voxelwise.data.phantoms.head_ct import PhantomParameters, render_phantom_study
from voxelwise.errors import InputError
from voxelwise.imaging import Volume, write_nifti

SPACING = (2.0, 0.5, 0.5)


def _labels(array: np.ndarray) -> Volume:
    return Volume(array.astype(np.uint8), SPACING, (-10.0, -20.0, -30.0))


def _ball(shape, centre, radius_mm) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    distance = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, SPACING, strict=True))
    return distance <= radius_mm**2


def test_volume_count_diameter_and_side() -> None:
    shape = (20, 80, 80)
    array = np.zeros(shape, np.uint8)
    array[_ball(shape, (10, 40, 60), 8.0)] = 1      # left (column towards +x)
    array[_ball(shape, (10, 40, 16), 6.0)] = 1      # right
    array[0, 0, 0] = 1                               # 0.5 uL speck, below the minimum
    result = measure_series(_labels(array), None, {1: "haematoma"}, min_lesion_ml=0.01)
    row = result.row()
    assert row["haematoma_ml"] == pytest.approx((array == 1).sum() * 0.5 / 1000, rel=1e-6)
    assert row["haematoma_lesions"] == 2
    big = result.lesions[0]
    assert big["volume_ml"] == pytest.approx(4 / 3 * np.pi * 8**3 / 1000, rel=0.08)
    assert 14.0 <= big["diameter_mm"] <= 16.5     # voxel centres of a 16 mm ball
    assert big["hemisphere"] == "left" and result.lesions[1]["hemisphere"] == "right"
    assert row["haematoma_hemisphere"] == "bilateral"
    centre = _labels(array).index_to_lps(np.array([10, 40, 60]))[0]
    assert big["centroid_x_mm"] == pytest.approx(centre[0], abs=0.3)
    assert row["midline_shift_mm"] == ""


def test_abc2_close_to_ellipsoid_volume() -> None:
    shape = (30, 100, 100)
    mask = _ball(shape, (15, 50, 50), 12.0)
    true_ml = mask.sum() * np.prod(SPACING) / 1000
    assert abc2_ml(mask, SPACING) == pytest.approx(true_ml, rel=0.2)


def test_min_lesion_volume_is_a_parameter() -> None:
    array = np.zeros((10, 20, 20), np.uint8)
    array[2:4, 2:6, 2:6] = 1  # 32 voxels = 0.016 mL
    assert len(find_lesions(_labels(array), 1, 0.01)) == 1
    assert len(find_lesions(_labels(array), 1, 0.02)) == 0


def test_label_map_without_geometry_is_refused() -> None:
    with pytest.raises(InputError, match="no geometry"):
        measure_series(Volume(np.zeros((4, 4, 4), np.uint8)))


def test_followup_growth_and_expansion() -> None:
    rows = [{"case": "a0", "patient": "P", "days_since_admission": 0, "haematoma_ml": 10.0},
            {"case": "a1", "patient": "P", "days_since_admission": 2, "haematoma_ml": 14.0},
            {"case": "a2", "patient": "P", "days_since_admission": 7, "haematoma_ml": 12.0},
            {"case": "b0", "patient": "Q", "days_since_admission": 0, "haematoma_ml": 30.0},
            {"case": "b1", "patient": "Q", "days_since_admission": 1, "haematoma_ml": 35.0}]
    table = {r["patient"]: r for r in followup_table(rows, ["haematoma"])}
    assert table["P"]["expansion"] is True          # +40 %
    assert table["Q"]["expansion"] is False         # +5 mL, +17 %
    assert table["P"]["growth_ml_per_day"] == pytest.approx(2.0 / 7, abs=1e-4)
    with pytest.raises(InputError, match="patient"):
        followup_table([{"case": "x", "patient": "", "days_since_admission": 0}], ["h"])


def test_agreement_rows() -> None:
    rng = np.random.default_rng(0)
    truth = [{"case": str(i), "haematoma_ml": v} for i, v in enumerate(rng.uniform(1, 50, 20))]
    auto = [{"case": r["case"], "haematoma_ml": r["haematoma_ml"] + 1.0 + rng.normal(0, 0.5)}
            for r in truth]
    row = agreement_rows(auto, truth, ["haematoma"])[0]
    assert row["n"] == 20 and row["bias_ml"] == pytest.approx(1.0, abs=0.4)
    assert row["icc"] > 0.95


@pytest.mark.parametrize("patient", range(8))
def test_midline_shift_within_2_mm_small_phantom(patient: int) -> None:
    parameters = PhantomParameters(centers=1, patients=8, followups=1, size="small", seed=0)
    for timepoint in (0, 1):
        study = render_phantom_study(parameters, patient, timepoint)
        result = measure_series(study.label, study.image)
        sign = {None: 0, "left": 1, "right": -1}[study.truth["shift_towards"]]
        true = sign * study.truth["midline_shift_mm"]
        assert result.midline.signed_shift_mm == pytest.approx(true, abs=2.0)


def test_cli_folder_mode_and_agreement(tmp_path) -> None:
    parameters = PhantomParameters(centers=1, patients=2, followups=1, size="small", seed=0)
    labels, cases = tmp_path / "labels", []
    for patient in range(2):
        for timepoint in range(2):
            study = render_phantom_study(parameters, patient, timepoint)
            write_nifti(study.label, labels / f"p{patient}_t{timepoint}.nii.gz")
            cases.append((f"p{patient}_t{timepoint}", f"P{patient}",
                          study.truth["days_since_admission"]))
    with (tmp_path / "cases.csv").open("w") as handle:
        handle.write("case,patient,days_since_admission\n")
        handle.writelines(f"{c},{p},{d}\n" for c, p, d in cases)
    out = tmp_path / "out"
    assert main(["biomarkers", str(labels), "--cases", str(tmp_path / "cases.csv"),
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "biomarkers.csv").open()))
    assert len(rows) == 4 and rows[0]["patient"] == "P0"
    assert len(list(csv.DictReader((out / "followup.csv").open()))) == 4
    assert (out / "biomarkers.json").is_file() and (out / "lesions.csv").is_file()
    assert main(["biomarkers", "agreement", "--auto", str(out / "biomarkers.csv"),
                 "--truth", str(out / "biomarkers.csv"), "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "bland_altman_haematoma.png").is_file()


def test_cli_bad_input(tmp_path, capsys) -> None:
    assert main(["biomarkers", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    raw = tmp_path / "raw.nii.gz"
    write_nifti(Volume(np.ones((3, 4, 4), np.uint8)), raw)
    assert main(["biomarkers", str(raw), "--out", str(tmp_path / "o")]) == 2
    assert "no geometry" in capsys.readouterr().err


def test_repository_mode_stores_once_per_series_and_source(tmp_path) -> None:
    from sqlalchemy import func, select

    from voxelwise.biomarkers.batch import measure_repository
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study
    from voxelwise.ingest.annotations import import_label_map_table
    from voxelwise.ingest.pipeline import ingest_folder
    from voxelwise.store import BiomarkerRecord, Repository

    study = generate_head_ct_study(tmp_path / "phantom", centers=1, patients=1, followups=1,
                                   size="small", progress=False, workers=1)
    key = tmp_path / "deid.key"
    with Repository.open(tmp_path / "repo") as repository:
        center = next((study.root / "dicom").iterdir())
        ingest_folder(center, repository, center.name, key_path=key)
        import_label_map_table(study.root / "labels.csv", repository, key_path=key)
        first = measure_repository(repository, progress=False)
        measure_repository(repository, progress=False)
        with repository.session() as session:
            assert session.scalar(select(func.count(BiomarkerRecord.id))) == 2
        assert first[0].row()["patient"].startswith("VW-")
        assert first[1].row()["days_since_admission"] != ""
        with pytest.raises(InputError, match="model run"):
            measure_repository(repository, run="no-such-run", progress=False)


def test_midline_shift_within_2_mm_full_size_phantom() -> None:
    parameters = PhantomParameters(centers=1, patients=3, followups=1, size="full", seed=0)
    study = render_phantom_study(parameters, 2, 0)  # subdural + intraparenchymal, ~8 mm shift
    result = measure_series(study.label, study.image)
    sign = {None: 0, "left": 1, "right": -1}[study.truth["shift_towards"]]
    assert study.truth["midline_shift_mm"] > 5.0
    assert result.midline.signed_shift_mm == pytest.approx(
        sign * study.truth["midline_shift_mm"], abs=2.0)


def test_unknown_case_is_reported(tmp_path) -> None:
    from voxelwise.biomarkers.batch import measure_folder

    write_nifti(_labels(np.zeros((4, 8, 8))), tmp_path / "labels" / "x.nii.gz")
    (tmp_path / "cases.csv").write_text("case,patient,days_since_admission\ny,P,0\n")
    with pytest.raises(InputError, match="no row for case x"):
        measure_folder(tmp_path / "labels", cases_csv=tmp_path / "cases.csv", progress=False)


def test_expansion_flag_is_for_haematoma_only() -> None:
    rows = [{"case": "a0", "patient": "P", "days_since_admission": 0, "haematoma_ml": 10.0,
             "oedema_ml": 5.0},
            {"case": "a1", "patient": "P", "days_since_admission": 2, "haematoma_ml": 20.0,
             "oedema_ml": 15.0}]
    table = {r["class"]: r for r in followup_table(rows, ["haematoma", "oedema"])}
    assert table["haematoma"]["expansion"] is True
    assert table["oedema"]["expansion"] == ""       # oedema growth is not haematoma expansion
    assert table["oedema"]["change_ml"] == pytest.approx(10.0)
