"""`voxelwise demo` end to end on a small phantom: every step runs and the report holds them."""

from __future__ import annotations

import json

from voxelwise.cli.main import main


def test_demo_runs_end_to_end_and_reruns_safely(tmp_path) -> None:
    out = tmp_path / "demo"
    arguments = ["demo", "--out", str(out), "--size", "small", "--centers", "2",
                 "--patients", "2", "--followups", "1"]
    assert main(arguments) == 0
    html = (out / "report.html").read_text()
    for section in ("Phantom study", "Windowed slices", "Study repository", "Segmentation",
                    "Imaging biomarkers", "ICH detection", "Prognosis", "Triage"):
        assert section in html
    assert html.count("data:image/png;base64,") >= 2
    manifest = json.loads((out / "demo.json").read_text())
    findings = manifest["findings"]
    assert findings["series_read"] == 8 and findings["label_maps_off_grid"] == []
    assert findings["identifiers_leaked"] == []
    assert findings["segmentation"]["series_segmented"] == 8
    assert findings["biomarkers"]["series"] == 8
    assert findings["biomarkers"]["midline_shift_error_max_mm"] <= 2.0
    # the model's biomarkers are stored under its run's name, and prognosis reads those
    assert findings["biomarkers"]["source"] == "segmentation/run"
    assert findings["prognosis"]["biomarkers"] == "repository (segmentation/run)"
    detection = findings["detection"]
    assert detection["trained"] and detection["studies"] == 24  # its own cohort: 4 x 3 x 2
    assert detection["any_ich"]["auc"] is not None  # ICH-negative studies in the test split
    assert detection["any_ich"]["high_sensitivity"]["threshold"] is not None  # and validation
    assert {"mortality", "survival"} <= set(findings["prognosis"])
    assert findings["triage"]["studies_on_worklist"] == 8
    total = findings["repository_summary"][-1]
    assert total["center"] == "TOTAL" and total["patients"] == 4 and total["series"] == 8
    # a second run stores nothing twice
    assert main(arguments) == 0
    again = json.loads((out / "demo.json").read_text())["findings"]["repository_summary"][-1]
    assert again == total
