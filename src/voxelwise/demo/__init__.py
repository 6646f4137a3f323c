"""`voxelwise demo`: the whole path on built-in phantom data, ending in one HTML report.

Each step is a function in a module of this package that takes the `DemoState`, does its work
through the library (the same calls a user makes), and adds a section to the report. A new stage
of the project adds its step to `STEPS`. Every step is safe to re-run: the phantom resumes,
outputs are replaced atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from voxelwise import __version__
from voxelwise.demo.biomarkers import step_biomarkers
from voxelwise.demo.detection import step_detection
from voxelwise.demo.ingest import step_ingest
from voxelwise.demo.phantom import step_phantom, step_read_back
from voxelwise.demo.prognosis import step_prognosis
from voxelwise.demo.segmentation import step_segmentation
from voxelwise.demo.state import DemoConfig, DemoState
from voxelwise.demo.triage import step_triage
from voxelwise.fileio import write_text_atomic
from voxelwise.reports.html import Report

__all__ = ["STEPS", "DemoConfig", "DemoState", "run_demo"]

STEPS: list[tuple[str, Callable[[DemoState], None]]] = [
    ("phantom", step_phantom),
    ("read back and show", step_read_back),
    ("ingest, de-identify and QC", step_ingest),
    ("segmentation: train, infer, evaluate", step_segmentation),
    ("biomarkers: volumes, lesions, midline shift, follow-up", step_biomarkers),
    ("ICH detection: findings, ROC, heatmaps", step_detection),
    ("prognosis: clinical vs clinical + imaging", step_prognosis),
    ("triage: worklist and time to diagnosis", step_triage),
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
        "outputs": {"report": str(report_path), "phantom": str(state.phantom_root),
                    **{name: str(path) for name, path in state.outputs.items()}},
    }
    write_text_atomic(config.out / "demo.json", json.dumps(manifest, indent=2))
    return report_path
