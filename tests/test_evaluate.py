"""`voxelwise evaluate`: folders of label maps scored per case, class and split; bad input."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from voxelwise.cli.main import main
from voxelwise.errors import InputError
from voxelwise.imaging import Volume, read_nifti, write_nifti
from voxelwise.metrics.segmentation import case_metrics
from voxelwise.reports.html import Report
from voxelwise.tasks.segmentation.evaluate import (
    add_evaluation_section,
    evaluate_folders,
    load_splits,
    parse_classes,
)

SPACING = (5.0, 0.45, 0.45)
CLASSES = {1: "haematoma", 2: "oedema"}


def _labels(shift: int = 0, oedema: bool = True) -> np.ndarray:
    array = np.zeros((6, 32, 32), np.uint8)
    if oedema:
        array[1:5, 6 + shift:22 + shift, 6:22] = 2
    array[2:4, 10 + shift:18 + shift, 10:18] = 1
    return array


def _write(folder: Path, case: str, array: np.ndarray, spacing=SPACING) -> Path:
    return write_nifti(Volume(array, spacing, meta={"units": "label"}),
                       folder / f"{case}.nii.gz")


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for index, case in enumerate(["a", "b", "c", "d"]):
        _write(gt, case, _labels())
        _write(pred, case, _labels(shift=index, oedema=case != "d"))
    return pred, gt


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study

    root = tmp_path_factory.mktemp("phantom") / "phantom"
    generate_head_ct_study(root, centers=1, patients=2, followups=1, size="small", seed=0)
    return root


def test_phantom_end_to_end_with_run_splits(phantom: Path, tmp_path: Path) -> None:
    from scipy import ndimage

    gt_dir, pred_dir = phantom / "labels", tmp_path / "pred"
    cases = sorted(p.name[:-7] for p in gt_dir.glob("*.nii.gz"))
    assert len(cases) == 4
    for index, case in enumerate(cases):      # a model that grows lesions by one voxel
        truth = read_nifti(gt_dir / f"{case}.nii.gz")
        grown = ndimage.grey_dilation(truth.array, size=(1, 3, 3)) if index % 2 else truth.array
        write_nifti(truth.with_array(grown), pred_dir / f"{case}.nii.gz")
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"0": {"train": cases[:2], "validation": cases[2:3]},
                                  "1": {"train": cases[1:3], "validation": cases[:1]},
                                  "test": cases[3:]}))
    result = evaluate_folders(pred_dir, gt_dir, tmp_path / "out" / "metrics.csv", CLASSES,
                              splits, tolerance_mm=1.0, progress=False)

    assert len(result.rows) == 8 and {r["split"] for r in result.rows} == {
        "train", "validation", "test"}
    first = read_nifti(gt_dir / f"{cases[1]}.nii.gz")
    direct = case_metrics(read_nifti(pred_dir / f"{cases[1]}.nii.gz").array, first.array,
                          first.spacing, CLASSES, 1.0)
    row = next(r for r in result.rows if r["case"] == cases[1] and r["class"] == "haematoma")
    assert row["dice"] == pytest.approx(direct[0]["dice"]) and row["dice"] < 1.0
    assert row["volume_error_ml"] > 0
    text = result.table(["dice"])
    assert text.startswith("Dice coefficient, haematoma: Training (2 scans): mean ")
    assert "/ Validation (1 scans): mean 1.00 std n/a median 1.00 / Test (1 scans)" in text

    written = _read_csv(result.outputs["metrics_csv"])
    assert len(written) == 8 and written[0]["case"] == cases[0]
    assert float(written[2]["dice"]) == pytest.approx(row["dice"], abs=1e-5)
    summary = _read_csv(result.outputs["summary_csv"])
    assert {s["split"] for s in summary} == {"train", "validation", "test"}
    manifest = json.loads(result.outputs["manifest"].read_text())
    assert manifest["counts"] == {"cases": 4, "rows": 8,
                                  "splits": {"train": 2, "validation": 1, "test": 1}}
    assert manifest["parameters"]["tolerance_mm"] == 1.0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "metrics.csv", "metrics.json", "metrics_summary.csv"]


def test_infinite_cases_are_counted_not_averaged(folders, tmp_path: Path) -> None:
    pred, gt = folders
    result = evaluate_folders(pred, gt, tmp_path / "m.csv", CLASSES, progress=False)
    oedema_hd = next(s for s in result.summary
                     if s["class"] == "oedema" and s["metric"] == "hd95_mm")
    assert oedema_hd["n"] == 4 and oedema_hd["n_infinite"] == 1 and oedema_hd["n_used"] == 3
    assert math.isfinite(oedema_hd["mean"])
    row = next(r for r in _read_csv(tmp_path / "m.csv")
               if r["case"] == "d" and r["class"] == "oedema")
    assert row["hd95_mm"] == "inf" and row["dice"] == "0" and row["empty"] == "prediction"
    assert result.representative_cases() == {"best": "a", "median": "c", "worst": "d"}


def test_classes_from_dataset_json_or_from_the_labels_found(folders, tmp_path: Path) -> None:
    pred, gt = folders
    (gt / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "blood": 1,
                                                            "swelling": 2}}))
    result = evaluate_folders(pred, gt, tmp_path / "m.csv", progress=False)
    assert result.classes == {1: "blood", 2: "swelling"}
    (gt / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "bleed"}}))
    with pytest.raises(InputError, match=r"labels \[2\] are not among the declared classes"):
        evaluate_folders(pred, gt, tmp_path / "m.csv", progress=False)

    (gt / "dataset.json").unlink()
    _write(gt, "e", np.zeros((6, 32, 32), np.uint8) + (_labels() == 1))
    _write(pred, "e", np.zeros((6, 32, 32), np.uint8) + (_labels() == 1))
    result = evaluate_folders(pred, gt, tmp_path / "m.csv", progress=False)
    assert result.classes == {1: "label_1", 2: "label_2"}
    missing = [r for r in result.rows if r["case"] == "e" and r["class"] == "label_2"]
    assert len(missing) == 1 and missing[0]["dice"] == 1.0 and missing[0]["hd95_mm"] == 0.0
    assert missing[0]["empty"] == "both"
    assert "Dice coefficient, label_2: All (5 scans, 1 both empty): mean" in result.table()
    assert len(result.rows) == 10


def test_splits_sources(tmp_path: Path) -> None:
    assert load_splits({"a": "train", "b": "test"}) == {"a": "train", "b": "test"}
    table = tmp_path / "splits.csv"
    table.write_text("case,split\na,train\nb,validation\n")
    assert load_splits(table) == {"a": "train", "b": "validation"}
    run = {"0": {"train": ["a"], "validation": ["b"]}, "1": {"train": ["b"],
                                                          "validation": ["a"]}, "test": ["c"]}
    assert load_splits(run, fold=1) == {"b": "train", "a": "validation", "c": "test"}
    with pytest.raises(InputError, match="no fold 3"):
        load_splits(run, fold=3)
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"train": ["a"], "test": ["a"]}))
    with pytest.raises(InputError, match="'a' is in two splits") as error:
        load_splits(twice)
    assert error.value.path == twice
    bad = tmp_path / "bad.csv"
    bad.write_text("id,fold\na,1\n")
    with pytest.raises(InputError, match="columns case and split"):
        load_splits(bad)
    assert parse_classes("1=haematoma, 2=oedema") == CLASSES
    with pytest.raises(InputError, match="LABEL=NAME"):
        parse_classes("haematoma")


def test_bad_input_names_the_file_and_writes_nothing(folders, tmp_path: Path) -> None:
    pred, gt = folders
    out = tmp_path / "out" / "metrics.csv"

    other_grid = _write(pred, "b", _labels(), spacing=(5.0, 0.5, 0.5))
    with pytest.raises(InputError, match="not on the grid of its ground truth") as error:
        evaluate_folders(pred, gt, out, CLASSES, progress=False)
    assert error.value.path == other_grid and "spacing" in str(error.value)
    _write(pred, "b", _labels())

    _write(pred, "b", _labels() * 2)                              # labels 2 and 4
    with pytest.raises(InputError, match=r"labels \[4\] are not among") as error:
        evaluate_folders(pred, gt, out, CLASSES, progress=False)
    assert error.value.path == pred / "b.nii.gz"
    _write(pred, "b", _labels().astype(np.float32) + 0.5)
    with pytest.raises(InputError, match="non-integer"):
        evaluate_folders(pred, gt, out, CLASSES, progress=False)
    _write(pred, "b", _labels())

    extra = _write(pred, "zz", _labels())
    with pytest.raises(InputError, match="no ground truth of the same name") as error:
        evaluate_folders(pred, gt, out, CLASSES, progress=False)
    assert error.value.path == extra
    extra.unlink()
    (pred / "c.nii.gz").unlink()
    with pytest.raises(InputError, match="no prediction of the same name") as error:
        evaluate_folders(pred, gt, out, CLASSES, progress=False)
    assert error.value.path == gt / "c.nii.gz"
    with pytest.raises(InputError, match="not a folder"):
        evaluate_folders(tmp_path / "missing", gt, out, CLASSES, progress=False)
    assert not out.parent.exists()


def test_cli_writes_outputs_and_reports_bad_input(folders, tmp_path: Path, capsys) -> None:
    pred, gt = folders
    out = tmp_path / "metrics.csv"
    splits = tmp_path / "splits.csv"
    splits.write_text("case,split\na,train\nb,train\nc,test\nd,test\n")
    status = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(out),
                   "--classes", "1=haematoma,2=oedema", "--splits", str(splits),
                   "--tolerance-mm", "1.5", "--images", str(gt),
                   "--report", str(tmp_path / "report.html")])
    printed = capsys.readouterr().out
    assert status == 0
    assert "Dice coefficient, haematoma: Training (2 scans): mean" in printed
    assert "HD95, oedema: Training (2 scans)" in printed and " mm " in printed
    assert "[1 infinite (one mask empty) excluded]" in printed
    assert out.exists() and (tmp_path / "metrics_summary.csv").exists()
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text()

    shutil.copy(gt / "a.nii.gz", pred / "extra.nii.gz")
    status = main(["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(out)])
    error = capsys.readouterr().err
    assert status == 2 and "extra.nii.gz" in error and "no ground truth" in error


def test_report_section_with_best_median_worst_overlays(folders, tmp_path: Path) -> None:
    pred, gt = folders
    images = tmp_path / "images"
    for case in "abcd":   # a CT-like image: brain at 35 HU, lesion brighter
        labels = read_nifti(gt / f"{case}.nii.gz")
        write_nifti(labels.with_array(np.where(labels.array == 1, 70, 35).astype(np.int16)),
                    images / f"{case}.nii.gz")
    result = evaluate_folders(pred, gt, tmp_path / "m.csv", CLASSES, progress=False)
    report = Report("evaluation")
    section = add_evaluation_section(report, result,
                                     {c: images / f"{c}.nii.gz" for c in "abcd"})
    assert len(section.figures) == 6        # best, median, worst: truth and prediction each
    assert section.figures[0].caption.startswith("best case a")
    assert any(p.startswith("Dice coefficient, haematoma: All (4 scans)")
               for p in section.paragraphs)
    assert section.tables[0].rows[0][:4] == ["all", "haematoma", "dice", 4]
    bare = add_evaluation_section(Report("x"), result)
    assert not bare.figures and "no overlays" in bare.notes[0]
