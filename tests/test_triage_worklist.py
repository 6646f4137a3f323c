"""The reading worklist: add, score (policy with reasons, idempotent), list in order, read."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from voxelwise.cli.main import main
from voxelwise.errors import InputError
from voxelwise.store import Repository, get_or_create_center, get_or_create_patient
from voxelwise.store.queries import get_or_create_study
from voxelwise.triage.policy import decide, operating_point
from voxelwise.triage.score import resolve_threshold, score_from_csv
from voxelwise.triage.worklist import (
    WorklistRequest,
    add_studies,
    apply_scores,
    list_worklist,
    priority_history,
    read_scores_csv,
    read_worklist_csv,
    record_read,
    requests_for,
)

T0 = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
UIDS = [f"2.25.{i}" for i in range(1, 6)]


def _file_studies(repository: Repository, uids=UIDS) -> None:
    with repository.session() as session:
        center = get_or_create_center(session, "C01")
        patient = get_or_create_patient(session, center, "P-1")
        for uid in uids:
            get_or_create_study(session, patient, uid)


def _on_worklist(repository: Repository, stat: tuple[str, ...] = ()) -> None:
    """The five studies, 10 minutes apart; ``stat`` ones requested stat."""
    _file_studies(repository)
    with repository.session() as session:
        requests = [WorklistRequest(uid, T0 + dt.timedelta(minutes=10 * i),
                                    "stat" if uid in stat else "routine")
                    for i, uid in enumerate(UIDS)]
        add_studies(session, requests)


def _order(repository: Repository, **kwargs) -> list[str]:
    with repository.session() as session:
        return [row["study_instance_uid"] for row in list_worklist(session, **kwargs)]


def test_policy_moves_only_routine_studies_up() -> None:
    assert decide("routine", 0.5, 0.3).priority == "stat"
    assert decide("routine", 0.3, 0.3).priority == "stat"  # at the threshold: positive
    assert decide("routine", 0.29, 0.3).priority == "routine"
    assert decide("stat", 0.0, 0.3).priority == "stat"
    assert decide("routine", None, None).priority == "routine"
    assert "0.500 >= threshold 0.300" in decide("routine", 0.5, 0.3).reason


def test_add_and_list_stat_first_then_by_arrival(repository: Repository) -> None:
    _on_worklist(repository, stat=(UIDS[3],))
    assert _order(repository) == [UIDS[3], UIDS[0], UIDS[1], UIDS[2], UIDS[4]]
    with repository.session() as session:  # adding again changes nothing
        result = add_studies(session, requests_for(session, UIDS[:2], T0, "stat"))
        assert result.added == [] and result.already_listed == UIDS[:2]
        assert requests_for(session, None, T0) == []  # every stored study is listed
        history = priority_history(session, UIDS[3])
    assert [(h["from"], h["to"]) for h in history] == [(None, "stat")]
    assert _order(repository) == [UIDS[3], UIDS[0], UIDS[1], UIDS[2], UIDS[4]]


def test_an_unknown_study_adds_nothing(repository: Repository) -> None:
    _file_studies(repository)
    with pytest.raises(InputError, match="no study 9.9.9"), repository.session() as session:
        add_studies(session, requests_for(session, [UIDS[0], "9.9.9"], T0))
    assert _order(repository) == []  # the transaction was rolled back


def test_scores_move_routine_to_stat_with_reasons_and_rescoring_is_idempotent(
        repository: Repository) -> None:
    _on_worklist(repository, stat=(UIDS[4],))
    scores = {UIDS[0]: 0.1, UIDS[1]: 0.8, UIDS[2]: 0.35, UIDS[4]: 0.0}
    with repository.session() as session:
        first = apply_scores(session, scores, 0.3, "model run R1")
    assert first.scored == 4 and first.unchanged == 0 and first.not_scored == [UIDS[3]]
    assert {c["study_instance_uid"] for c in first.changes} == {UIDS[1], UIDS[2]}
    assert _order(repository) == [UIDS[1], UIDS[2], UIDS[4], UIDS[0], UIDS[3]]
    assert _order(repository, by="requested") == [UIDS[4], *UIDS[:4]]  # without the model
    with repository.session() as session:
        again = apply_scores(session, scores, 0.3, "model run R1")
        history = priority_history(session, UIDS[1])
    assert again.changes == [] and again.unchanged == again.scored == 4
    assert [(h["from"], h["to"]) for h in history] == [(None, "routine"), ("routine", "stat")]
    change = history[-1]
    assert change["score"] == 0.8 and change["threshold"] == 0.3
    assert change["source"] == "model run R1" and "R1" in change["reason"]
    # a stricter threshold moves a study back, and says why
    with repository.session() as session:
        stricter = apply_scores(session, scores, 0.5, "model run R1")
        rows = {r["study_instance_uid"]: r for r in list_worklist(session)}
    assert [(c["study_instance_uid"], c["to"]) for c in stricter.changes] == [(UIDS[2], "routine")]
    assert rows[UIDS[2]]["final"] == "routine" and "< threshold 0.500" in rows[UIDS[2]]["reason"]
    assert rows[UIDS[4]]["final"] == "stat"  # requested stat stays stat


def test_read_studies_leave_the_queue_and_are_not_rescored(repository: Repository) -> None:
    _on_worklist(repository)
    later = T0 + dt.timedelta(hours=2)
    with repository.session() as session:
        entry, new = record_read(session, UIDS[0], later)
        assert new and entry.read_at == later
        entry, new = record_read(session, UIDS[0], later + dt.timedelta(hours=1))
        assert not new and entry.read_at == later  # the first read time is kept
        result = apply_scores(session, {UIDS[0]: 0.9}, 0.3, "x")
    assert result.not_waiting == [UIDS[0]] and result.scored == 0
    assert UIDS[0] not in _order(repository)
    assert _order(repository, include_read=True)[0] == UIDS[0]
    with pytest.raises(InputError, match="before the study's arrival"), \
            repository.session() as session:
        record_read(session, UIDS[1], T0 - dt.timedelta(minutes=1))
    with pytest.raises(InputError, match="not on the worklist"), \
            repository.session() as session:
        _file_studies(repository, ["2.25.99"])
        record_read(session, "2.25.99")


@pytest.mark.parametrize(("text", "problem"), [
    ("uid,value\n1,0.5\n", "lacks the column"),
    ("study_instance_uid,score\n1,high\n", "line 2: score 'high' is not a number"),
    ("study_instance_uid,score\n1,nan\n", "line 2: score 'nan' is not a finite"),
    ("study_instance_uid,score\n1,0.5\n1,0.6\n", "line 3: study 1 has two different"),
    ("study_instance_uid,score\n", "holds no scores"),
    ("study_instance_uid,score\n,0.5\n", "line 2: empty study_instance_uid"),
])
def test_bad_score_files_name_the_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as error:
        read_scores_csv(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(("row", "problem"), [
    ("1,2026-01-05T08:00:00,routine", "has no time zone"),
    ("1,yesterday,routine", "not an ISO 8601 time"),
    ("1,2026-01-05T08:00:00Z,urgent", "neither routine nor stat"),
])
def test_bad_worklist_files_name_the_line(tmp_path: Path, row: str, problem: str) -> None:
    path = tmp_path / "worklist.csv"
    path.write_text(f"study_instance_uid,arrival_time,requested_priority\n{row}\n")
    with pytest.raises(InputError, match=f"line 2: .*{problem}"):
        read_worklist_csv(path)


def test_threshold_from_the_run_or_given(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(InputError, match="operating_points.json: not found"):
        resolve_threshold(run, None)
    assert resolve_threshold(run, 0.25) == 0.25
    (run / "operating_points.json").write_text(json.dumps({"any_ich": {
        "high_sensitivity": {"threshold": 0.12, "sensitivity": 0.97, "specificity": 0.6},
        "high_specificity": {"threshold": 0.8}}}))
    assert resolve_threshold(run, None) == 0.12
    assert operating_point(run)["sensitivity"] == 0.97
    (run / "operating_points.json").write_text(json.dumps(
        {"any_ich": {"high_sensitivity": {"threshold": None}}}))
    with pytest.raises(InputError, match="threshold is null .*give --threshold"):
        resolve_threshold(run, None)
    (run / "operating_points.json").write_text(json.dumps({"sdh": {}}))
    with pytest.raises(InputError, match="no any_ich high_sensitivity threshold"):
        resolve_threshold(run, None)
    with pytest.raises(InputError, match="--threshold"):
        resolve_threshold(None, None)


def test_score_file_applied_in_one_transaction(repository: Repository, tmp_path: Path) -> None:
    _on_worklist(repository)
    path = tmp_path / "scores.csv"
    path.write_text(f"study_instance_uid,score\n{UIDS[2]},0.9\n9.9.9,0.4\n")
    result = score_from_csv(repository, path, 0.5)
    assert result.scored == 1 and result.not_waiting == ["9.9.9"]
    assert _order(repository)[0] == UIDS[2]


def _cli(repository: Repository, *arguments: str) -> int:
    url = repository.url.render_as_string(hide_password=False)
    action, *rest = arguments
    return main(["triage", action, *rest, "--repo", str(repository.root), "--db", url])


def test_command_line(repository: Repository, tmp_path: Path, capsys) -> None:
    _file_studies(repository)
    assert _cli(repository, "add", "--all", "--arrival", "2026-01-05T08:00:00Z",
                "--interval-min", "5") == 0
    assert "added 5 studies" in capsys.readouterr().out
    scores = tmp_path / "scores.csv"
    scores.write_text("study_instance_uid,score\n" + "".join(
        f"{uid},{0.2 * i:.1f}\n" for i, uid in enumerate(UIDS)))
    assert _cli(repository, "score", "--scores", str(scores)) == 2  # no threshold
    assert "--threshold" in capsys.readouterr().err
    assert _cli(repository, "score", "--scores", str(scores), "--threshold", "0.5") == 0
    out = capsys.readouterr().out
    assert "2 moved to stat" in out and f"{UIDS[4]}: score 0.800 >= threshold 0.500" in out
    assert _cli(repository, "score", "--scores", str(scores), "--threshold", "0.5") == 0
    assert "(5 unchanged): 0 moved to stat" in capsys.readouterr().out
    queue = tmp_path / "queue.csv"
    assert _cli(repository, "list", "--csv", str(queue)) == 0
    lines = queue.read_text().splitlines()
    assert [line.split(",")[1] for line in lines[1:]] == [UIDS[3], UIDS[4], *UIDS[:3]]
    assert _cli(repository, "read", UIDS[3], "--at", "2026-01-05T08:45:00Z") == 0
    assert "30 min after arrival" in capsys.readouterr().out
    assert _cli(repository, "list", "--study", UIDS[3]) == 0
    assert "routine  stat" in capsys.readouterr().out
    assert _cli(repository, "read", "9.9.9") == 2
    assert "no study 9.9.9" in capsys.readouterr().err
    manifests = sorted(p.name.split("-")[0] for p in (repository.root / "triage").iterdir())
    assert manifests == ["add", "read", "score", "score"]


def test_simulate_command_writes_its_outputs(tmp_path: Path, capsys) -> None:
    config = tmp_path / "sim.toml"
    config.write_text("duration_days = 4\nwarmup_days = 1\nreplications = 1\nsensitivity = 0.9\n")
    out = tmp_path / "sim"
    assert main(["triage", "simulate", "--config", str(config), "--specificity", "0.7",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "time to diagnosis, haemorrhage-positive routine studies" in printed
    manifest = json.loads((out / "simulation.json").read_text())
    assert manifest["parameters"]["sensitivity"] == 0.9
    assert manifest["parameters"]["specificity"] == 0.7
    assert manifest["parameters"]["duration_days"] == 4
    assert manifest["summary"]["all_read_once"]
    rows = (out / "studies.csv").read_text().splitlines()
    assert len(rows) - 1 == manifest["summary"]["studies"] + int(
        sum(1 for r in rows[1:] if r.split(",")[-1] == "0"))
    assert (out / "time_to_diagnosis.png").stat().st_size > 1000
    config.write_text("sensitivty = 0.9\n")
    assert main(["triage", "simulate", "--config", str(config), "--out", str(out)]) == 2
    assert "unknown setting(s) sensitivty" in capsys.readouterr().err
