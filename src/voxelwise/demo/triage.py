"""Demo step: the phantom studies on a reading worklist, re-prioritised by the ICH detector, and a
queue simulation of what that does to the time to diagnosis."""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.demo.state import DemoState
from voxelwise.reports.html import Section, Table

ARRIVAL_START = dt.datetime(2026, 1, 5, 7, 0, tzinfo=dt.UTC)
ARRIVAL_INTERVAL = dt.timedelta(minutes=6)
STAT_FRACTION = 0.3


def step_triage(state: DemoState) -> None:
    """Worklist, detector scores and policy on the repository's studies; then the simulation."""
    from voxelwise.store import Repository
    from voxelwise.triage.worklist import add_studies, list_worklist

    section = state.report.section("Triage: the worklist re-prioritised by the detector")
    findings: dict[str, Any] = {}
    with Repository.open(state.outputs["repository"]) as repository:
        with repository.session() as session:
            added = add_studies(session, _synthetic_requests(session, state.config.seed))
            before = list_worklist(session, include_read=True, by="requested")
        findings["studies_on_worklist"] = len(before)
        findings["added"] = len(added.added)
        findings.update(_score(repository, state, section))
        with repository.session() as session:
            after = list_worklist(session, include_read=True)
    truth = _truth_by_study(state)
    _queue_table(section, before, after, truth)
    moved = [r for r in after if r["requested"] == "routine" and r["final"] == "stat"]
    findings["moved_to_stat"] = len(moved)
    if truth:
        findings["moved_with_haemorrhage"] = sum(truth.get(r["study_instance_uid"]) == 1
                                                 for r in moved)
    findings["simulation"] = _simulation(state, section)
    state.findings["triage"] = findings


def _synthetic_requests(session, seed: int) -> list:
    """Every stored study not yet listed, arriving 6 minutes apart, about 30% requested stat."""
    from voxelwise.triage.worklist import WorklistRequest, requests_for

    requests = requests_for(session, None, ARRIVAL_START, "routine", ARRIVAL_INTERVAL)
    rng = np.random.default_rng([seed, 5])
    stat = rng.random(len(requests)) < STAT_FRACTION
    return [WorklistRequest(r.study_instance_uid, r.arrival_at, "stat" if s else "routine")
            for r, s in zip(requests, stat, strict=True)]


def _score(repository, state: DemoState, section: Section) -> dict[str, Any]:
    """Scores from the detector run when the detection step left one; else say they are missing."""
    from voxelwise.errors import InputError
    from voxelwise.triage.score import score_from_run

    run = state.outputs.get("detector_run")
    if run is None or not Path(run).is_dir():
        section.notes.append("No detector run (the detection step did not run): the studies "
                             "are not scored and keep their requested priority.")
        return {"scores": "missing"}
    try:
        result = score_from_run(repository, run, progress=False)
    except InputError as error:
        section.notes.append(f"The detector's scores are missing: {error}")
        return {"scores": "missing", "scores_error": str(error)}
    summary = result.as_dict()
    section.paragraphs.append(
        f"{summary['scored']} waiting studies scored by the detector ({run}); a routine study "
        "whose any-ICH probability reaches the high-sensitivity threshold (chosen on validation "
        f"data) moves to stat: {summary['moved_to_stat']} moved in this pass. Every change is "
        "recorded in the repository with its score, threshold and model run.")
    return {"scores": "detector", "scored": summary["scored"],
            "not_scored": len(summary["not_scored"])}


def _truth_by_study(state: DemoState) -> dict[str, int]:
    """Ground-truth any-ICH by the repository's (de-identified) Study Instance UID."""
    from voxelwise.deid.pseudonym import Pseudonymizer, load_or_create_key

    key, root = state.outputs.get("deid_key"), state.phantom_root
    if key is None or root is None or not (root / "labels.csv").is_file():
        return {}
    pseudonymizer = Pseudonymizer(load_or_create_key(key))
    with (root / "labels.csv").open(newline="") as handle:
        return {pseudonymizer.uid(row["study_instance_uid"]): int(row["any_ich"])
                for row in csv.DictReader(handle)}


def _queue_table(section: Section, before: list[dict], after: list[dict],
                 truth: dict[str, int]) -> None:
    position_before = {r["study_instance_uid"]: r["position"] for r in before}
    rows = []
    for r in after:
        uid = r["study_instance_uid"]
        haemorrhage = {1: "yes", 0: "no"}.get(truth.get(uid), "?")
        score = "not scored" if r["score"] is None else f"{r['score']:.3f}"
        rows.append([r["position"], position_before[uid], "..." + uid[-10:], r["arrival"],
                     r["requested"], score, r["final"], haemorrhage, r["reason"]])
    section.tables.append(Table(
        ["position with model", "position without", "study", "arrival", "requested",
         "any-ICH score", "final priority", "haemorrhage (truth)", "why"], rows,
        caption="The reading queue (stat first, then by arrival) with the model, and each "
        "study's place without it (by requested priority). Arrival times are synthetic."))


def _operating_point(state: DemoState) -> tuple[float | None, float | None, str]:
    """(sensitivity, specificity, where from) of the detector on its test data."""
    detection = state.findings.get("detection")
    for candidate in _candidates(detection):
        sensitivity, specificity = _number(candidate, "sensitivity"), _number(
            candidate, "specificity")
        if sensitivity is not None and specificity is not None:
            return sensitivity, specificity, "the detection step's measured test values"
    run = state.outputs.get("detector_run")
    if run is not None:
        from voxelwise.errors import InputError
        from voxelwise.triage.policy import operating_point

        try:
            point = operating_point(run)
        except InputError:
            point = {}
        sensitivity, specificity = _number(point, "sensitivity"), _number(point, "specificity")
        if sensitivity is not None and specificity is not None:
            return sensitivity, specificity, f"{run}/operating_points.json"
    return None, None, "stated defaults: no measured detector"


def _candidates(detection: Any) -> list[dict]:
    """Places where the detection findings may hold the any-ICH high-sensitivity point."""
    if not isinstance(detection, dict):
        return []
    paths = (("any_ich", "high_sensitivity"), ("operating_points", "any_ich",
                                               "high_sensitivity"),
             ("high_sensitivity",), ("any_ich",), ())
    found = []
    for path in paths:
        node: Any = detection
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            found.append(node)
    return found


def _number(entry: Any, key: str) -> float | None:
    value = entry.get(key) if isinstance(entry, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and 0 <= value <= 1 else None


def _simulation(state: DemoState, section: Section) -> dict[str, Any]:
    from voxelwise.triage.outputs import run_simulation, time_to_diagnosis_figure
    from voxelwise.triage.simulate import SimulationConfig

    sensitivity, specificity, source = _operating_point(state)
    defaults = SimulationConfig()
    config = SimulationConfig(
        sensitivity=defaults.sensitivity if sensitivity is None else sensitivity,
        specificity=defaults.specificity if specificity is None else specificity,
        seed=state.config.seed)
    out = state.config.out / "triage"
    result, manifest = run_simulation(config, out)
    state.outputs["triage_simulation"] = out
    c = config
    section.paragraphs.append(
        f"Queue simulation (discrete events, {c.replications} replications of "
        f"{c.duration_days:.0f} days after a {c.warmup_days:.0f}-day warm-up): "
        f"{c.arrivals_per_hour:.1f} head CTs per hour, {c.stat_fraction:.0%} requested stat, "
        f"haemorrhage in {c.prevalence:.0%} of routine studies; {c.radiologists} radiologists "
        f"from {c.day_start_hour:.0f}:00 to {c.day_end_hour:.0f}:00 and "
        f"{c.night_radiologists} at night reading stat studies only; reading times "
        f"{c.stat_read_minutes:.0f} min (stat) and {c.routine_read_minutes:.0f} min (routine) on "
        f"average. Model: sensitivity {c.sensitivity:.2f}, specificity {c.specificity:.2f} "
        f"({source}).")
    if sensitivity is None:
        section.notes.append("The detector's measured sensitivity and specificity are missing; "
                             "the simulation uses the stated defaults.")
    section.tables.append(Table(["measure", "without model", "with model"], manifest["table"],
                                caption="Time to diagnosis (arrival to the end of the read) "
                                "and the stat queue, with and without the model"))
    section.add_figure(time_to_diagnosis_figure(result),
                       "Time to diagnosis of haemorrhage-positive routine studies (left) and "
                       "the wait of requested-stat studies (right), with and without the model")
    positive = manifest["summary"]["positive_routine"]
    return {"sensitivity": c.sensitivity, "specificity": c.specificity, "source": source,
            "median_without_min": positive["without_model_min"]["median"],
            "median_with_min": positive["with_model_min"]["median"],
            "read_earlier": positive["read_earlier"], "n": positive["without_model_min"]["n"],
            "false_positives_per_hour": manifest["summary"]["stat_queue"][
                "false_positives_per_hour"]}
