"""The reading worklist in the repository: put studies on it, score them, list it, mark reads.

Every function takes the session of the caller's transaction (`Repository.session()`); the
caller decides when the unit of work commits. The ordered queue is stat first, then by arrival
time (first come, first read). Scoring is idempotent: the same score, source and threshold
change nothing, and a change of final priority is recorded with its reason
(`voxelwise.store.worklist.PriorityChange`)::

    from voxelwise.store import Repository
    from voxelwise.triage.worklist import add_studies, apply_scores, list_worklist, requests_for

    with Repository.open("repo") as repository, repository.session() as session:
        add_studies(session, requests_for(session, None, arrival, "routine"))
        apply_scores(session, {"1.2.3": 0.93}, threshold=0.3, source="scores.csv")
        rows = list_worklist(session)
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session, joinedload

from voxelwise.errors import InputError
from voxelwise.store.models import Study, utcnow
from voxelwise.store.worklist import Priority, PriorityChange, WorklistEntry
from voxelwise.triage.policy import check_threshold, decide

LIST_COLUMNS = ("position", "study_instance_uid", "patient", "arrival", "requested", "score",
                "final", "reason", "read")


@dataclass(frozen=True)
class WorklistRequest:
    """A study to put on the worklist: when it arrived and the priority the requester asked."""

    study_instance_uid: str
    arrival_at: dt.datetime
    requested_priority: Priority = Priority.ROUTINE


@dataclass
class AddResult:
    added: list[str] = field(default_factory=list)
    already_listed: list[str] = field(default_factory=list)


@dataclass
class ScoreResult:
    """What one scoring pass did (counts, and every change of priority it made)."""

    scored: int = 0  # waiting studies that got a score (new or unchanged)
    unchanged: int = 0  # of those, same score, source and threshold as before
    changes: list[dict[str, Any]] = field(default_factory=list)
    not_scored: list[str] = field(default_factory=list)  # waiting studies without a score
    not_waiting: list[str] = field(default_factory=list)  # scores for studies not waiting

    def merge(self, other: ScoreResult) -> None:
        self.scored += other.scored
        self.unchanged += other.unchanged
        self.changes += other.changes
        self.not_scored += other.not_scored
        self.not_waiting += other.not_waiting

    def as_dict(self) -> dict[str, Any]:
        return {"scored": self.scored, "unchanged": self.unchanged,
                "moved_to_stat": sum(c["to"] == Priority.STAT for c in self.changes),
                "moved_to_routine": sum(c["to"] == Priority.ROUTINE for c in self.changes),
                "changes": self.changes, "not_scored": self.not_scored,
                "not_waiting": self.not_waiting}


# ---------------------------------------------------------------------------------------------
# input: times, priorities, CSV files


def parse_time(text: str, source: str | Path | None = None) -> dt.datetime:
    """An ISO 8601 time with its zone (``2026-01-05T08:00:00Z``) as a UTC datetime."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(source, f"{text!r} is not an ISO 8601 time "
                         "(e.g. 2026-01-05T08:00:00Z)") from None
    if value.tzinfo is None:
        raise InputError(source, f"time {text!r} has no time zone; add one, e.g. "
                         f"{text.strip()}Z for UTC")
    return value.astimezone(dt.UTC)


def parse_priority(text: str, source: str | Path | None = None) -> Priority:
    try:
        return Priority(text.strip().lower())
    except ValueError:
        raise InputError(source, f"priority {text!r} is neither routine nor stat") from None


def _csv_rows(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row of a CSV file that has the ``required`` columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(path, f"lacks the column(s) {', '.join(missing)} "
                                 f"(found: {', '.join(reader.fieldnames or []) or 'none'})")
            return [(reader.line_num, row) for row in reader]
    except OSError as error:
        raise InputError(path, f"cannot be read: {error.strerror or error}") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputError(path, f"is not a readable CSV file: {error}") from None


def read_worklist_csv(path: str | Path) -> list[WorklistRequest]:
    """Requests from a CSV: ``study_instance_uid, arrival_time[, requested_priority]``."""
    path = Path(path)
    requests = []
    for line, row in _csv_rows(path, ("study_instance_uid", "arrival_time")):
        where = f"{path}, line {line}"
        uid = (row["study_instance_uid"] or "").strip()
        if not uid:
            raise InputError(where, "empty study_instance_uid")
        priority = parse_priority(row.get("requested_priority") or "routine", where)
        requests.append(WorklistRequest(uid, parse_time(row["arrival_time"] or "", where),
                                        priority))
    return requests


def read_scores_csv(path: str | Path) -> dict[str, float]:
    """Scores from a CSV: ``study_instance_uid, score`` (one finite number per study)."""
    path = Path(path)
    scores: dict[str, float] = {}
    for line, row in _csv_rows(path, ("study_instance_uid", "score")):
        where = f"{path}, line {line}"
        uid = (row["study_instance_uid"] or "").strip()
        if not uid:
            raise InputError(where, "empty study_instance_uid")
        try:
            score = float(row["score"])
        except (TypeError, ValueError):
            raise InputError(where, f"score {row['score']!r} is not a number") from None
        if not math.isfinite(score):
            raise InputError(where, f"score {row['score']!r} is not a finite number")
        if uid in scores and scores[uid] != score:
            raise InputError(where, f"study {uid} has two different scores")
        scores[uid] = score
    if not scores:
        raise InputError(path, "holds no scores")
    return scores


# ---------------------------------------------------------------------------------------------
# putting studies on the worklist


def find_study(session: Session, study_instance_uid: str) -> Study:
    """The stored study with this (de-identified) Study Instance UID."""
    study = session.scalar(select(Study).where(Study.study_instance_uid == study_instance_uid))
    if study is None:
        raise InputError(None, f"no study {study_instance_uid} in the repository")
    return study


def requests_for(session: Session, study_uids: Sequence[str] | None, arrival_at: dt.datetime,
                 priority: Priority | str = Priority.ROUTINE,
                 interval: dt.timedelta = dt.timedelta(0)) -> list[WorklistRequest]:
    """Requests for ``study_uids`` (None: every stored study not yet listed), in order.

    The first arrives at ``arrival_at``, each next one ``interval`` later.
    """
    if study_uids is None:
        listed = select(WorklistEntry.study_id)
        study_uids = list(session.scalars(select(Study.study_instance_uid)
                                          .where(Study.id.not_in(listed)).order_by(Study.id)))
    return [WorklistRequest(uid, arrival_at + i * interval, Priority(priority))
            for i, uid in enumerate(study_uids)]


def add_studies(session: Session, requests: Iterable[WorklistRequest]) -> AddResult:
    """Put each requested study on the worklist; a study already on it is left as it is."""
    result = AddResult()
    for request in requests:
        study = find_study(session, request.study_instance_uid)
        if session.scalar(select(WorklistEntry.id).where(WorklistEntry.study_id == study.id)):
            result.already_listed.append(request.study_instance_uid)
            continue
        priority = Priority(request.requested_priority)
        entry = WorklistEntry(study=study, arrival_at=request.arrival_at,
                              requested_priority=priority.value, final_priority=priority.value)
        entry.changes.append(PriorityChange(
            from_priority=None, to_priority=priority.value,
            reason=f"put on the worklist as requested: {priority.value}"))
        session.add(entry)
        result.added.append(request.study_instance_uid)
    session.flush()
    return result


# ---------------------------------------------------------------------------------------------
# scoring and the policy


def waiting_entries(session: Session) -> list[WorklistEntry]:
    """The entries not yet read, in queue order, with their studies loaded."""
    return list(session.scalars(_queue_query(include_read=False, by="final")).unique())


def apply_scores(session: Session, scores: Mapping[str, float], threshold: float,
                 source: str) -> ScoreResult:
    """Record each waiting study's score and set its final priority by the policy.

    ``source`` names where the scores come from (a model run folder, a score file); it is kept
    with the score and in every change of priority. Scores for studies that are not waiting
    (unknown, or already read) are listed in the result, not applied.
    """
    threshold = check_threshold(threshold)
    result = ScoreResult()
    waiting = {entry.study.study_instance_uid: entry for entry in waiting_entries(session)}
    result.not_waiting = sorted(set(scores) - set(waiting))
    for uid, entry in waiting.items():
        if uid not in scores:
            result.not_scored.append(uid)
            continue
        score = float(scores[uid])
        result.scored += 1
        if (entry.score, entry.score_source, entry.threshold) == (score, source, threshold):
            result.unchanged += 1
        else:
            entry.score, entry.score_source, entry.threshold = score, source, threshold
            entry.scored_at = utcnow()
        change = _apply_policy(entry, source)
        if change is not None:
            result.changes.append({"study_instance_uid": uid, **change})
    session.flush()
    return result


def _apply_policy(entry: WorklistEntry, source: str) -> dict[str, Any] | None:
    """Set the entry's final priority by the policy; record and return the change, if any."""
    decision = decide(entry.requested_priority, entry.score, entry.threshold)
    if decision.priority.value == entry.final_priority:
        return None
    reason = f"{decision.reason} (scores from {source})"
    entry.changes.append(PriorityChange(
        from_priority=entry.final_priority, to_priority=decision.priority.value,
        score=entry.score, threshold=entry.threshold, source=source, reason=reason))
    change = {"from": entry.final_priority, "to": decision.priority.value, "score": entry.score,
              "threshold": entry.threshold, "reason": reason}
    entry.final_priority = decision.priority.value
    return change


# ---------------------------------------------------------------------------------------------
# the queue and reads


def _queue_query(include_read: bool, by: str):
    if by not in ("final", "requested"):
        raise ValueError(f"order by 'final' or 'requested', not {by!r}")
    column = WorklistEntry.final_priority if by == "final" else WorklistEntry.requested_priority
    query = (select(WorklistEntry)
             .options(joinedload(WorklistEntry.study).joinedload(Study.patient),
                      joinedload(WorklistEntry.changes))
             .order_by(case((column == Priority.STAT.value, 0), else_=1),
                       WorklistEntry.arrival_at, WorklistEntry.id))
    return query if include_read else query.where(WorklistEntry.read_at.is_(None))


def _minute(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def list_worklist(session: Session, include_read: bool = False,
                  by: str = "final") -> list[dict[str, Any]]:
    """The queue as rows (`LIST_COLUMNS`): stat first, then by arrival.

    ``by="requested"`` orders by the requested priority instead: the queue as it would be
    without the model.
    """
    rows = []
    entries = session.scalars(_queue_query(include_read, by)).unique()
    for position, entry in enumerate(entries, start=1):
        rows.append({
            "position": position, "study_instance_uid": entry.study.study_instance_uid,
            "patient": entry.study.patient.pseudonym, "arrival": _minute(entry.arrival_at),
            "requested": entry.requested_priority,
            "score": None if entry.score is None else round(entry.score, 3),
            "final": entry.final_priority,
            "reason": entry.changes[-1].reason if entry.changes else "",
            "read": _minute(entry.read_at)})
    return rows


def find_entry(session: Session, study_instance_uid: str) -> WorklistEntry:
    study = find_study(session, study_instance_uid)
    entry = session.scalar(select(WorklistEntry).where(WorklistEntry.study_id == study.id))
    if entry is None:
        raise InputError(None, f"study {study_instance_uid} is not on the worklist; "
                         "add it with `voxelwise triage add`")
    return entry


def record_read(session: Session, study_instance_uid: str,
                read_at: dt.datetime | None = None) -> tuple[WorklistEntry, bool]:
    """Mark the study read at ``read_at`` (default now); returns (entry, newly read).

    A study already read keeps its first read time (re-running is safe).
    """
    entry = find_entry(session, study_instance_uid)
    if entry.read_at is not None:
        return entry, False
    read_at = utcnow() if read_at is None else read_at
    if read_at < entry.arrival_at:
        raise InputError(None, f"read time {_minute(read_at)} is before the study's arrival "
                         f"{_minute(entry.arrival_at)}")
    entry.read_at = read_at
    session.flush()
    return entry, True


def priority_history(session: Session, study_instance_uid: str) -> list[dict[str, Any]]:
    """Every change of the study's final priority, oldest first, with its reason."""
    entry = find_entry(session, study_instance_uid)
    return [{"changed_at": _minute(c.changed_at), "from": c.from_priority, "to": c.to_priority,
             "score": c.score, "threshold": c.threshold, "source": c.source,
             "reason": c.reason} for c in entry.changes]
