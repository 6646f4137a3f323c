"""`voxelwise qc`: list series that QC flagged, and record a person's accept/exclude decision."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from voxelwise.errors import InputError
from voxelwise.store import Center, Patient, QCStatus, Repository, Series, Study

DECISIONS = (QCStatus.ACCEPTED.value, QCStatus.EXCLUDED.value)


def list_series(repository: Repository, *, only_flagged: bool = True) -> list[dict[str, Any]]:
    """One row per series (flagged and quarantined ones only, unless ``only_flagged=False``)."""
    rows = []
    with repository.session() as session:
        query = (select(Series, Study, Patient, Center)
                 .join(Study, Series.study_id == Study.id)
                 .join(Patient, Study.patient_id == Patient.id)
                 .join(Center, Patient.center_id == Center.id)
                 .order_by(Center.code, Patient.pseudonym, Study.study_date))
        for series, _study, patient, center in session.execute(query):
            if only_flagged and series.qc_status != QCStatus.FLAGGED.value:
                continue
            rows.append({
                "center": center.code, "patient": patient.pseudonym,
                "series_instance_uid": series.series_instance_uid,
                "description": series.series_description or "",
                "slices": series.slice_count, "qc_status": series.qc_status,
                "flags": "; ".join(f"{f['flag']}: {f['detail']}" for f in series.qc_flags)
                         or (series.quarantine_reason or ""),
                "decision_reason": series.qc_decision_reason or ""})
    return rows


def decide(repository: Repository, series_instance_uid: str, decision: str, reason: str) -> None:
    """Accept or exclude a series, with the reason recorded and the time stamped."""
    if decision not in DECISIONS:
        raise InputError(None, f"decision must be one of {', '.join(DECISIONS)}")
    if not reason.strip():
        raise InputError(None, "a reason is required for a QC decision")
    with repository.session() as session:
        series = session.scalar(select(Series).where(
            Series.series_instance_uid == series_instance_uid))
        if series is None:
            raise InputError(None, f"no series {series_instance_uid} in the repository")
        if series.quarantined and decision == QCStatus.ACCEPTED.value:
            raise InputError(None, f"series {series_instance_uid} is quarantined for burned-in "
                             "text; it cannot be accepted as clean")
        series.decide_qc(decision, reason.strip())
