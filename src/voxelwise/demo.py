"""`voxelwise demo`: the whole path on built-in phantom data, ending in one HTML report.

Each step is a function that takes the run folder and the report, does its work through the
library (the same calls a user makes), and adds a section. Later stages of the project add their
steps to `STEPS`. Every step is safe to re-run: the phantom resumes, outputs are replaced
atomically.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voxelwise import __version__
from voxelwise.fileio import write_text_atomic
from voxelwise.reports.html import Report, Table

LABEL_NAMES = {1: "haematoma", 2: "oedema"}


@dataclass
class DemoConfig:
    """What the demo runs on; every field is a `voxelwise demo` option."""

    out: Path = Path("voxelwise-demo")
    size: str = "full"
    centers: int = 3
    patients: int = 4
    followups: int = 2
    seed: int = 0


@dataclass
class DemoState:
    """What the steps hand to each other, and what ends up in ``demo.json``."""

    config: DemoConfig
    report: Report
    phantom_root: Path | None = None
    studies: list[dict[str, Any]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    findings: dict[str, Any] = field(default_factory=dict)


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


def step_ingest(state: DemoState) -> None:
    """Ingest every center into a de-identified repository; import clinical data and labels."""
    from voxelwise.deid import verify_no_phi
    from voxelwise.ingest.annotations import import_label_map_table
    from voxelwise.ingest.clinical import import_clinical
    from voxelwise.ingest.pipeline import ingest_folder
    from voxelwise.store import SUMMARY_COLUMNS, Repository, summary

    assert state.phantom_root is not None
    root, out = state.phantom_root, state.config.out
    key = out / "secrets" / "deid.key"  # the study key lives outside the repository
    section = state.report.section("Study repository: what was collected per center")
    with Repository.open(out / "repository") as repository:
        clinical_rows = 0
        for center_dir in sorted((root / "dicom").iterdir()):
            center = center_dir.name
            report = ingest_folder(center_dir, repository, center, key_path=key)
            print("\n".join(report.summary_lines()))
            clinical = import_clinical(root / "clinical" / f"{center}.csv", repository, center,
                                       key_path=key)
            clinical_rows += clinical.imported
        labels = len(import_label_map_table(root / "labels.csv", repository, key_path=key,
                                            author="phantom", source="phantom ground truth"))
        with repository.session() as session:
            rows = summary(session)
        stored = b"".join(p.read_bytes() for p in sorted(repository.root.rglob("*"))
                          if p.is_file())
    identifiers = json.loads((root / "phantom.json").read_text())["phi"]
    leaked = verify_no_phi(stored, identifiers)
    columns = [c for c in SUMMARY_COLUMNS if c != "name"]
    section.tables.append(Table(columns, [[row[c] for c in columns] for row in rows],
                                caption="Patients and series per center (QC-passed: passed "
                                "checks or accepted by a reviewer)"))
    section.paragraphs.append(
        f"{clinical_rows} clinical records and {labels} ground-truth label maps attached by "
        "pseudonym and geometry. Privacy check: every stored byte "
        f"({len(stored) / 1e6:.1f} MB) searched for the {len(identifiers)} fake identifiers the "
        f"phantom wrote: {len(leaked)} found.")
    if leaked:
        section.notes.append("identifiers found in the repository: " + ", ".join(leaked))
    state.findings["repository_summary"] = rows
    state.findings["identifiers_leaked"] = leaked


STEPS: list[tuple[str, Callable[[DemoState], None]]] = [
    ("phantom", step_phantom),
    ("read back and show", step_read_back),
    ("ingest, de-identify and QC", step_ingest),
]


def run_demo(config: DemoConfig) -> Path:
    """Run every demo step and write ``report.html`` and ``demo.json`` into ``config.out``."""
    config.out.mkdir(parents=True, exist_ok=True)
    state = DemoState(config, Report("voxelwise demo: head CT from DICOM to numbers"))
    for number, (name, step) in enumerate(STEPS, start=1):
        print(f"[{number}/{len(STEPS)}] {name}", flush=True)
        started = time.perf_counter()
        step(state)
        state.timings_s[name] = round(time.perf_counter() - started, 2)
    report_path = state.report.write(config.out / "report.html")
    manifest = {
        "command": "voxelwise demo", "version": __version__,
        "config": {k: str(v) for k, v in asdict(config).items()},
        "timings_s": state.timings_s, "findings": state.findings,
        "outputs": {"report": str(report_path), "phantom": str(state.phantom_root)},
    }
    write_text_atomic(config.out / "demo.json", json.dumps(manifest, indent=2))
    return report_path
