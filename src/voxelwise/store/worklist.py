"""The reading worklist's tables: studies waiting to be read, their priority and its history.

One `WorklistEntry` per study: when it arrived, the priority the requester asked for (routine
or stat), the latest model score, the final priority the triage policy gave it and when it was
read. Every change of final priority is a `PriorityChange` row that says why (the score, the
threshold, the model run or score file, in words), so a reader can audit each re-prioritisation.
The rules that set these columns live in `voxelwise.triage`; these are only the tables.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import CheckConstraint, Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voxelwise.store.models import Base, Study, utcnow


class Priority(StrEnum):
    ROUTINE = "routine"
    STAT = "stat"


def _priority_in(column: str) -> str:
    return f"{column} IN ({', '.join(repr(p.value) for p in Priority)})"


class WorklistEntry(Base):
    """A study on the reading worklist (one entry per study)."""

    __tablename__ = "worklist_entries"
    __table_args__ = (
        CheckConstraint(_priority_in("requested_priority"), name="requested_priority"),
        CheckConstraint(_priority_in("final_priority"), name="final_priority"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), unique=True)
    arrival_at: Mapped[dt.datetime] = mapped_column(index=True)
    requested_priority: Mapped[str] = mapped_column(String(16))
    final_priority: Mapped[str] = mapped_column(String(16), index=True)
    score: Mapped[float | None] = mapped_column(Float)  # latest model score (probability)
    score_source: Mapped[str | None] = mapped_column(Text)  # model run folder or score file
    threshold: Mapped[float | None] = mapped_column(Float)  # threshold the policy applied
    scored_at: Mapped[dt.datetime | None]
    read_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship()
    changes: Mapped[list[PriorityChange]] = relationship(
        back_populates="entry", cascade="all, delete-orphan", passive_deletes=True,
        order_by="PriorityChange.id")

    def __repr__(self) -> str:
        return f"WorklistEntry(study_id={self.study_id}, final_priority={self.final_priority!r})"


class PriorityChange(Base):
    """One change of a worklist entry's final priority, with why it was made."""

    __tablename__ = "worklist_priority_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("worklist_entries.id", ondelete="CASCADE"), index=True)
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    from_priority: Mapped[str | None] = mapped_column(String(16))  # None: put on the worklist
    to_priority: Mapped[str] = mapped_column(String(16))
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(Text)  # model run folder or score file
    reason: Mapped[str] = mapped_column(Text)

    entry: Mapped[WorklistEntry] = relationship(back_populates="changes")
