"""Demo steps: the head-CT phantom, and every series read back and shown with its truth."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from voxelwise.demo.state import LABEL_NAMES, DemoState
from voxelwise.reports.html import Table


def step_phantom(state: DemoState) -> None:
    """Write the multi-center head-CT phantom (DICOM, label maps, labels and clinical CSVs)."""
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study

    config = state.config
    study = generate_head_ct_study(
        config.out / "phantom", centers=config.centers, patients=config.patients,
        followups=config.followups, size=config.size, seed=config.seed, overwrite=True,
    )
    state.phantom_root = study.root
    state.studies = study.studies
    section = state.report.section("Phantom study")
    section.paragraphs.append(
        f"{len(study.studies)} head-CT studies ({config.size} size) from {config.centers} centers, "
        f"{config.patients} patients per center, admission and {config.followups} follow-up "
        f"scans each; seed {config.seed}. Written as DICOM with fake PHI, ground-truth label maps "
        f"(1 haematoma, 2 oedema) and clinical records.")
    section.tables.append(_per_center_table(study.studies))


def _per_center_table(studies: list[dict[str, Any]]) -> Table:
    by_center: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in studies:
        by_center[row["center"]].append(row)
    rows = []
    for center, rows_of_center in sorted(by_center.items()):
        patients = {row["patient_id"] for row in rows_of_center}
        with_ich = [row for row in rows_of_center if int(row["any_ich"])]
        volumes = sorted(float(row["haematoma_ml"]) for row in with_ich)
        median = f"{volumes[len(volumes) // 2]:.1f}" if volumes else "-"
        span = f"{volumes[0]:.1f} - {volumes[-1]:.1f}" if volumes else "-"
        rows.append([center, len(patients), len(rows_of_center), len(with_ich), median, span])
    return Table(["center", "patients", "studies", "studies with ICH",
                  "median haematoma (mL)", "haematoma range (mL)"], rows,
                 caption="What the phantom holds, per center")


def step_read_back(state: DemoState) -> None:
    """Read every series back with the DICOM reader and show slices with the truth outlined."""
    from voxelwise.imaging.dicom import read_dicom_series
    from voxelwise.imaging.nifti import read_nifti
    from voxelwise.reports.figures import largest_label_slice, slice_overlay

    assert state.phantom_root is not None
    section = state.report.section("Windowed slices with ground truth, per center")
    section.paragraphs.append(
        "Each series was read back from its DICOM files (sorted along the slice normal, rescaled "
        "to HU, geometry checked) and its ground-truth label map placed on it by geometry. "
        "Red: haematoma; blue: perihaematomal oedema. Brain window 40/80 HU, subdural 80/200 HU.")
    mismatched, problems, shown = [], 0, defaultdict(int)
    for row in state.studies:
        image = read_dicom_series(state.phantom_root / row["dicom_dir"])
        labels = read_nifti(state.phantom_root / row["label_map"])
        problems += len(image.meta.get("problems", []))
        if not labels.same_grid(image, tolerance_mm=0.01):
            mismatched.append(row["label_map"])
            continue
        center = row["center"]
        if shown[center] >= 3 or not int(row["any_ich"]):
            continue
        shown[center] += 1
        index = largest_label_slice(labels)
        window = "subdural" if int(row.get("subdural", 0)) else "brain"
        title = (f"{center} {row['patient_id']} day {row['days_since_admission']}: "
                 f"{float(row['haematoma_ml']):.1f} mL haematoma, {window} window")
        section.add_figure(slice_overlay(image, labels, index, window, title, LABEL_NAMES),
                           caption=title)
    state.findings["series_read"] = len(state.studies)
    state.findings["label_maps_off_grid"] = mismatched
    state.findings["reader_problems"] = problems
    if mismatched:
        section.notes.append(f"{len(mismatched)} label maps did not match their series' grid: "
                             + ", ".join(mismatched))
