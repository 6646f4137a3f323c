"""The demo's triage step on a small phantom: without a detector, and with a (fake) one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from voxelwise.demo.ingest import step_ingest
from voxelwise.demo.phantom import step_phantom
from voxelwise.demo.state import DemoConfig, DemoState
from voxelwise.demo.triage import step_triage
from voxelwise.reports.html import Report


def _fake_predictor(run_dir: Path, images: list) -> np.ndarray:
    """The share of voxels in the acute-blood range, as a stand-in any-ICH probability."""
    return np.array([[float(((i.array >= 50) & (i.array <= 90)).mean())] for i in images])


@pytest.fixture(scope="module")
def ingested_state(tmp_path_factory: pytest.TempPathFactory) -> DemoState:
    out = tmp_path_factory.mktemp("demo")
    state = DemoState(DemoConfig(out=out, size="small", centers=1, patients=3, followups=1),
                      Report("test"))
    step_phantom(state)
    step_ingest(state)
    return state


def _section(state: DemoState):
    (section,) = [s for s in state.report.sections if s.title.startswith("Triage")]
    return section


def test_without_a_detector_the_report_says_scores_are_missing(ingested_state) -> None:
    state = ingested_state
    state.report = Report("test")
    step_triage(state)
    findings = state.findings["triage"]
    assert findings["scores"] == "missing" and findings["moved_to_stat"] == 0
    assert findings["studies_on_worklist"] == 6
    simulation = findings["simulation"]
    assert simulation["source"].startswith("stated defaults")
    assert simulation["median_with_min"] < simulation["median_without_min"]
    section = _section(state)
    assert any("not scored" in note for note in section.notes)
    assert any("stated defaults" in note for note in section.notes)
    assert len(section.tables) == 2 and len(section.figures) == 1
    assert (state.outputs["triage_simulation"] / "simulation.json").is_file()


def test_with_a_detector_routine_studies_move_to_stat(ingested_state, tmp_path,
                                                       monkeypatch) -> None:
    import voxelwise.triage.score as score

    state = ingested_state
    run = tmp_path / "run"
    run.mkdir()
    (run / "operating_points.json").write_text(json.dumps({"any_ich": {"high_sensitivity": {
        "threshold": 0.001, "sensitivity": 0.9, "specificity": 0.7}}}))
    monkeypatch.setattr(score, "_default_predictor", lambda run_dir: (_fake_predictor, 0))
    state.outputs["detector_run"] = run
    state.findings["detection"] = {"any_ich": {"high_sensitivity": {
        "threshold": 0.001, "sensitivity": {"value": 0.93}, "specificity": 0.8}}}
    for _ in range(2):  # a re-run changes nothing
        state.report = Report("test")
        step_triage(state)
        findings = state.findings["triage"]
        assert findings["scores"] == "detector" and findings["scored"] == 6
        assert findings["moved_to_stat"] >= 1 and "moved_with_haemorrhage" in findings
        assert findings["added"] == 0 and findings["studies_on_worklist"] == 6
        simulation = findings["simulation"]
        assert (simulation["sensitivity"], simulation["specificity"]) == (0.93, 0.8)
        table = _section(state).tables[0]
        finals = [row[6] for row in table.rows]
        assert finals == sorted(finals, key=lambda f: f != "stat")  # stat first
        assert all(row[5] != "not scored" for row in table.rows)
        assert {row[7] for row in table.rows} <= {"yes", "no"}  # truth known for every study
    del state.findings["detection"]
    state.report = Report("test")
    step_triage(state)
    assert state.findings["triage"]["simulation"]["source"].endswith("operating_points.json")
    assert state.findings["triage"]["simulation"]["sensitivity"] == 0.9
