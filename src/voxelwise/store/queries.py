"""Small queries over the repository: get-or-create by natural key, clinical import, summary.

Each function takes the session of the caller's transaction (`Repository.session()`) and only
flushes, so the caller decides when the unit of work is committed. A natural key that exists
under another parent (a study UID already filed under another patient) is a `StoreError`, not a
silent move.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from voxelwise.store.errors import StoreError
from voxelwise.store.models import (
    QC_OK,
    Center,
    ClinicalRecord,
    Instance,
    Patient,
    QCStatus,
    Series,
    Study,
    utcnow,
)

TOTAL = "TOTAL"  # the `center` of the last row of `summary`


def get_or_create_center(session: Session, code: str, name: str | None = None) -> Center:
    """The center with ``code``, created if new; ``name`` fills in a missing name."""
    center = session.scalar(select(Center).where(Center.code == code))
    if center is None:
        center = Center(code=code, name=name)
        session.add(center)
        session.flush()
    elif name is not None and center.name is None:
        center.name = name
    return center


def get_or_create_patient(session: Session, center: Center, pseudonym: str,
                          sex: str | None = None) -> Patient:
    """The patient with ``pseudonym`` at ``center``, created if new."""
    patient = session.scalar(select(Patient).where(Patient.pseudonym == pseudonym))
    if patient is None:
        patient = Patient(center=center, pseudonym=pseudonym, sex=sex)
        session.add(patient)
        session.flush()
    elif patient.center_id != center.id:
        raise StoreError(f"patient {pseudonym} is already filed under center "
                         f"{patient.center.code}, not {center.code}")
    elif sex is not None and patient.sex is None:
        patient.sex = sex
    return patient


def _get_or_create_child(session: Session, model: type[Any], uid_keyword: str, uid: str,
                         parent_keyword: str, parent: Any, describe: Any,
                         fields: dict[str, Any]) -> Any:
    """The row of ``model`` with this UID, created under ``parent`` if new.

    A UID already filed under another parent is an error, never silently moved.
    """
    row = session.scalar(select(model).where(getattr(model, uid_keyword) == uid))
    if row is None:
        row = model(**{parent_keyword: parent, uid_keyword: uid}, **fields)
        session.add(row)
        session.flush()
    elif getattr(row, f"{parent_keyword}_id") != parent.id:
        raise StoreError(f"{model.__name__.lower()} {uid} is already filed under "
                         f"{parent_keyword} {describe(getattr(row, parent_keyword))}, "
                         f"not {describe(parent)}")
    return row


def get_or_create_study(session: Session, patient: Patient, study_instance_uid: str,
                        **fields: Any) -> Study:
    """The study with this (de-identified) UID, created with ``fields`` if new."""
    return _get_or_create_child(session, Study, "study_instance_uid", study_instance_uid,
                                "patient", patient, lambda p: p.pseudonym, fields)


def get_or_create_series(session: Session, study: Study, series_instance_uid: str,
                         **fields: Any) -> Series:
    """The series with this (de-identified) UID, created with ``fields`` if new."""
    return _get_or_create_child(session, Series, "series_instance_uid", series_instance_uid,
                                "study", study, lambda s: s.study_instance_uid, fields)


def get_or_create_instance(session: Session, series: Series, sop_instance_uid: str,
                           **fields: Any) -> Instance:
    """The instance with this (de-identified) UID, created with ``fields`` if new."""
    return _get_or_create_child(session, Instance, "sop_instance_uid", sop_instance_uid,
                                "series", series, lambda s: s.series_instance_uid, fields)


def set_clinical_record(session: Session, patient: Patient, variables: dict[str, Any],
                        source_file_name: str | None = None) -> ClinicalRecord:
    """Make ``variables`` the patient's current clinical record, replacing any earlier one."""
    record = session.scalar(select(ClinicalRecord).where(ClinicalRecord.patient_id == patient.id))
    if record is None:
        record = ClinicalRecord(patient=patient)
        session.add(record)
    record.variables = dict(variables)
    record.source_file_name = source_file_name
    record.imported_at = utcnow()
    session.flush()
    return record


SUMMARY_COLUMNS = ("center", "name", "patients", "studies", "series", "series_qc_passed",
                   "series_flagged", "series_excluded", "series_pending", "series_quarantined",
                   "instances", "instances_quarantined")


def summary(session: Session) -> list[dict[str, Any]]:
    """One row per center (by code), then a total row whose ``center`` is ``"TOTAL"``.

    Columns (`SUMMARY_COLUMNS`): patients, studies, series; series QC-passed (status passed or
    accepted), flagged, excluded and pending; quarantined series; instances and quarantined
    instances.
    """
    counts: dict[int, dict[str, int]] = {}
    for query in (_patient_counts(), _study_counts(), _series_counts(), _instance_counts()):
        for row in session.execute(query).mappings():
            counts.setdefault(row["center_id"], {}).update(
                {key: int(value or 0) for key, value in row.items() if key != "center_id"})
    numbers = SUMMARY_COLUMNS[2:]
    rows = []
    for center in session.scalars(select(Center).order_by(Center.code)):
        found = counts.get(center.id, {})
        rows.append({"center": center.code, "name": center.name,
                     **{key: found.get(key, 0) for key in numbers}})
    total = {key: sum(row[key] for row in rows) for key in numbers}
    rows.append({"center": TOTAL, "name": "all centers", **total})
    return rows


def _count_if(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _patient_counts() -> Select[Any]:
    return (select(Patient.center_id, func.count(Patient.id).label("patients"))
            .group_by(Patient.center_id))


def _study_counts() -> Select[Any]:
    return (select(Patient.center_id, func.count(Study.id).label("studies"))
            .join(Study.patient).group_by(Patient.center_id))


def _series_counts() -> Select[Any]:
    status = Series.qc_status
    return (select(Patient.center_id,
                   func.count(Series.id).label("series"),
                   _count_if(status.in_([s.value for s in QC_OK])).label("series_qc_passed"),
                   _count_if(status == QCStatus.FLAGGED.value).label("series_flagged"),
                   _count_if(status == QCStatus.EXCLUDED.value).label("series_excluded"),
                   _count_if(status == QCStatus.PENDING.value).label("series_pending"),
                   _count_if(Series.quarantined.is_(True)).label("series_quarantined"))
            .join(Series.study).join(Study.patient).group_by(Patient.center_id))


def _instance_counts() -> Select[Any]:
    return (select(Patient.center_id,
                   func.count(Instance.id).label("instances"),
                   _count_if(Instance.quarantined.is_(True)).label("instances_quarantined"))
            .join(Instance.series).join(Series.study).join(Study.patient)
            .group_by(Patient.center_id))
