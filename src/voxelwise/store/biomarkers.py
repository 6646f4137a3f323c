"""Biomarkers stored per series and source (ground truth or a model run's name).

One row per (series, source): re-measuring replaces the row, never adds a second one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from voxelwise.store.models import Base, JSONDict, JSONList, utcnow


class BiomarkerRecord(Base):
    """The biomarkers.csv row, the lesions and the midline estimate of one series and source."""

    __tablename__ = "biomarkers"
    __table_args__ = (UniqueConstraint("series_id", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(128))  # "ground truth" or a model run's name
    values: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    lesions: Mapped[list[dict[str, Any]]] = mapped_column(JSONList, default=list)
    midline: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
    measured_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def store_biomarkers(session: Session, series_id: int, source: str, values: dict[str, Any],
                     lesions: list[dict[str, Any]], midline: dict[str, Any] | None
                     ) -> BiomarkerRecord:
    """Insert or replace the record of (series, source) in the caller's transaction."""
    record = session.scalar(select(BiomarkerRecord).where(
        BiomarkerRecord.series_id == series_id, BiomarkerRecord.source == source))
    if record is None:
        record = BiomarkerRecord(series_id=series_id, source=source)
        session.add(record)
    record.values, record.lesions, record.midline = dict(values), list(lesions), midline
    record.measured_at = utcnow()
    session.flush()
    return record


def biomarker_rows(session: Session) -> list[dict[str, Any]]:
    """Every stored record as a biomarkers.csv row, keyed as ``voxelwise biomarkers --repo``
    writes it: ``patient`` = pseudonym, ``case`` = series UID, ``source`` = "ground truth" or
    the model run, ``days_since_admission`` from the study (as stored at ingest)."""
    from voxelwise.store.models import Patient, Series, Study

    query = (select(BiomarkerRecord, Series.series_instance_uid, Patient.pseudonym,
                    Study.days_since_first_study)
             .join(Series, BiomarkerRecord.series_id == Series.id)
             .join(Study, Series.study_id == Study.id)
             .join(Patient, Study.patient_id == Patient.id)
             .order_by(Patient.pseudonym, Study.days_since_first_study, BiomarkerRecord.source))
    return [{**(record.values or {}), "case": uid, "patient": pseudonym,
             "series_instance_uid": uid, "source": record.source,
             "days_since_admission": "" if days is None else days}
            for record, uid, pseudonym, days in session.execute(query)]
