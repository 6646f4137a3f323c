"""The demo's segmentation step on the small phantom the demo test uses (8 studies, 4 patients):
a run is trained, every series is segmented back on its own grid, Dice and HD95 are reported
per split, one test series gets a DICOM SEG, and a re-run reuses the trained run."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from voxelwise.demo.phantom import step_phantom
from voxelwise.demo.segmentation import step_segmentation
from voxelwise.demo.state import DemoConfig, DemoState
from voxelwise.reports.html import Report


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoState, float]:
    out = tmp_path_factory.mktemp("demo")
    state = DemoState(DemoConfig(out=out, size="small", centers=2, patients=2, followups=1),
                      Report("test"))
    step_phantom(state)
    started = time.perf_counter()
    step_segmentation(state)
    return state, time.perf_counter() - started


def test_every_series_is_segmented_on_the_grid_of_its_label_map(segmented) -> None:
    from voxelwise.imaging import read_nifti

    state, _ = segmented
    predicted = state.outputs["predicted_labels"]
    assert state.phantom_root is not None
    for row in state.studies:
        truth = read_nifti(state.phantom_root / row["label_map"])
        labels = read_nifti(predicted / Path(row["label_map"]).name)
        assert labels.same_grid(truth, tolerance_mm=1e-3)
        assert set(labels.array.reshape(-1).tolist()) <= {0, 1, 2}
    assert not list(predicted.parent.glob(".*partial"))
    run = state.outputs["segmentation_run"]
    assert (run / "plan.json").is_file() and (run / "fold_0" / "checkpoint_best.pt").is_file()


def test_dice_and_hd95_are_reported_per_split_and_class(segmented) -> None:
    state, _ = segmented
    findings = state.findings["segmentation"]
    assert findings["series_segmented"] == len(state.studies) == 8
    dice = findings["mean_dice"]
    assert {"train", "test"} <= set(dice)
    for split, per_class in dice.items():
        assert set(per_class) == {"haematoma", "oedema"}, split
        for value in per_class.values():
            assert value is None or 0.0 <= value <= 1.0
    assert any(v is not None for c in dice.values() for v in c.values())
    hd95 = findings["mean_hd95_mm"]
    assert set(hd95) == set(dice)
    assert all(v is None or (math.isfinite(v) and v >= 0) for c in hd95.values()
               for v in c.values())
    (section,) = [s for s in state.report.sections if s.title.startswith("Segmentation")]
    assert section.tables and section.figures


def test_the_seg_of_a_test_series_reads_back_onto_its_source(segmented) -> None:
    from voxelwise.data.splits import Splits
    from voxelwise.imaging.dicom_seg import read_segmentation

    state, _ = segmented
    seg_path = state.outputs["segmentation_seg"]
    test = Splits.load(state.outputs["segmentation_run"] / "splits.json").test
    assert seg_path.name.removesuffix(".seg.dcm") in test
    frames = read_segmentation(seg_path)
    assert {name for name in frames.segment_names.values()} == {"haematoma", "oedema"}


def test_a_rerun_reuses_the_trained_run(segmented) -> None:
    state, first_seconds = segmented
    checkpoint = state.outputs["segmentation_run"] / "fold_0" / "checkpoint_best.pt"
    stamp = checkpoint.stat().st_mtime_ns
    before = state.findings["segmentation"]
    state.report = Report("test")
    started = time.perf_counter()
    step_segmentation(state)
    assert checkpoint.stat().st_mtime_ns == stamp
    after = state.findings["segmentation"]
    assert after["mean_dice"] == before["mean_dice"] and after["epochs"] == before["epochs"]
    assert time.perf_counter() - started < first_seconds
