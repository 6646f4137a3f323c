"""The study repository's tables, as typed SQLAlchemy 2 declarative models.

Only portable types are used (``sqlalchemy.JSON``, which becomes JSONB on PostgreSQL, and
timestamps stored in UTC) so that the same code runs on the embedded SQLite file and on
PostgreSQL.

What is never stored: the original patient ID, names, birth dates, original UIDs or accession
numbers. A patient is known only by the keyed pseudonym that ``voxelwise.deid`` computes; a study
by its de-identified (remapped) UID and its shifted date.

Room is left for the tables that later steps add (model runs, predictions, biomarkers): they
subclass the same ``Base``, so ``Base.metadata.create_all`` creates them with the others, and a
change of an existing table bumps ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Version of the table layout below. A database whose `meta` table records a higher number was
# written by a newer voxelwise and is refused (see `repository.py`).
SCHEMA_VERSION = 1

UID_LENGTH = 64  # DICOM UIDs are at most 64 characters (PS3.5 9.1)
SHA256_LENGTH = 64  # hex digest


class QCStatus(StrEnum):
    """Quality-control state of a series: set by the QC step, or by a person's decision."""

    PENDING = "pending"
    PASSED = "passed"
    FLAGGED = "flagged"
    EXCLUDED = "excluded"
    ACCEPTED = "accepted"  # flagged, then accepted by a person (with a reason)


class AnnotationKind(StrEnum):
    LABEL_MAP = "label-map"  # a label volume in the file store
    SEG = "seg"  # a DICOM SEG object in the file store
    FIDUCIALS = "fiducials"  # points, stored as JSON


QC_OK = (QCStatus.PASSED, QCStatus.ACCEPTED)  # usable for datasets


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone; we restore it)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value.isoformat()} has no time zone; give it in UTC")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _json() -> Any:
    """JSON on every backend, JSONB on PostgreSQL (comparable, indexable); SQL NULL for None."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


# In-place changes (list append/remove, top-level dict keys) are seen by the session as long as
# the owning object is referenced: the list or dict refers back to it weakly (SQLAlchemy Mutable).
JSONList = MutableList.as_mutable(_json())
JSONDict = MutableDict.as_mutable(_json())

# Named constraints, so that a later migration tool can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


class Meta(Base):
    """Key/value facts about the database itself (``schema_version``)."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Center(Base):
    """A site that sends studies (hospital, scanner park, public data set)."""

    __tablename__ = "centers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patients: Mapped[list[Patient]] = relationship(
        back_populates="center", cascade="all, delete-orphan", passive_deletes=True)
    ingest_runs: Mapped[list[IngestRun]] = relationship(
        back_populates="center", cascade="all, delete-orphan", passive_deletes=True)

    def __repr__(self) -> str:
        return f"Center(code={self.code!r})"


class Patient(Base):
    """A patient, known only by a keyed pseudonym.

    By design there is no column for the original patient ID, name, birth date or any other
    identifier: the only free-text column is ``pseudonym``, which holds the output of the keyed
    pseudonymisation in ``voxelwise.deid`` (the key lives in ``secret.key`` outside the
    database). ``tests/test_store.py`` checks that the table keeps exactly these columns.
    """

    __tablename__ = "patients"
    __table_args__ = (CheckConstraint("sex IS NULL OR sex IN ('M', 'F', 'O')", name="sex"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(128), unique=True)
    center_id: Mapped[int] = mapped_column(
        ForeignKey("centers.id", ondelete="CASCADE"), index=True)
    sex: Mapped[str | None] = mapped_column(String(1))  # DICOM PatientSex: M, F, O
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    center: Mapped[Center] = relationship(back_populates="patients")
    studies: Mapped[list[Study]] = relationship(
        back_populates="patient", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Study.study_date")
    clinical_record: Mapped[ClinicalRecord | None] = relationship(
        back_populates="patient", cascade="all, delete-orphan", passive_deletes=True)

    def __repr__(self) -> str:
        return f"Patient(pseudonym={self.pseudonym!r})"


class Study(Base):
    """An imaging study (one visit), under its de-identified UID and shifted date."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH), unique=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    study_date: Mapped[dt.date | None] = mapped_column(Date)  # shifted by the patient's offset
    accession_pseudonym: Mapped[str | None] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    days_since_first_study: Mapped[int | None] = mapped_column(Integer)  # set at ingest
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(
        back_populates="study", cascade="all, delete-orphan", passive_deletes=True)

    def __repr__(self) -> str:
        return f"Study(study_instance_uid={self.study_instance_uid!r})"


class Series(Base):
    """An image series with its geometry, acquisition facts and QC state."""

    __tablename__ = "series"
    __table_args__ = (CheckConstraint(_in("qc_status", QCStatus), name="qc_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH), unique=True)
    study_id: Mapped[int] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    modality: Mapped[str | None] = mapped_column(String(16))
    series_description: Mapped[str | None] = mapped_column(Text)
    instance_count: Mapped[int | None]
    rows: Mapped[int | None]
    columns: Mapped[int | None]
    slice_count: Mapped[int | None]
    pixel_spacing_row_mm: Mapped[float | None] = mapped_column(Float)
    pixel_spacing_col_mm: Mapped[float | None] = mapped_column(Float)
    slice_thickness_mm: Mapped[float | None] = mapped_column(Float)
    slice_spacing_mm: Mapped[float | None] = mapped_column(Float)
    convolution_kernel: Mapped[str | None] = mapped_column(String(64))
    gantry_tilt_deg: Mapped[float | None] = mapped_column(Float)
    manufacturer: Mapped[str | None] = mapped_column(Text)
    qc_status: Mapped[str] = mapped_column(String(16), default=QCStatus.PENDING.value, index=True)
    qc_flags: Mapped[list[dict[str, Any]]] = mapped_column(JSONList, default=list)
    qc_decision_reason: Mapped[str | None] = mapped_column(Text)
    qc_decided_at: Mapped[dt.datetime | None]
    quarantined: Mapped[bool] = mapped_column(default=False)
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(
        back_populates="series", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Instance.instance_number")
    annotations: Mapped[list[Annotation]] = relationship(
        back_populates="series", cascade="all, delete-orphan", passive_deletes=True)

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        """(row, column) spacing in mm, as DICOM PixelSpacing orders it; None when unknown."""
        if self.pixel_spacing_row_mm is None or self.pixel_spacing_col_mm is None:
            return None
        return (self.pixel_spacing_row_mm, self.pixel_spacing_col_mm)

    @pixel_spacing_mm.setter
    def pixel_spacing_mm(self, value: tuple[float, float] | None) -> None:
        row, col = (None, None) if value is None else (float(value[0]), float(value[1]))
        self.pixel_spacing_row_mm, self.pixel_spacing_col_mm = row, col

    def add_qc_flag(self, flag: str, detail: str = "") -> None:
        """Record a QC finding and mark the series flagged (unless a person already decided)."""
        self.qc_flags = [*(self.qc_flags or []), {"flag": flag, "detail": detail}]
        if self.qc_status in (QCStatus.PENDING, QCStatus.PASSED):
            self.qc_status = QCStatus.FLAGGED.value

    def decide_qc(self, status: QCStatus | str, reason: str | None = None) -> None:
        """Set the QC status by decision, with its reason and the time it was taken."""
        self.qc_status = QCStatus(status).value
        self.qc_decision_reason = reason
        self.qc_decided_at = utcnow()

    def __repr__(self) -> str:
        return f"Series(series_instance_uid={self.series_instance_uid!r})"


class Instance(Base):
    """One DICOM instance (image), by its de-identified UID and content addresses."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(UID_LENGTH), unique=True)
    series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), index=True)
    instance_number: Mapped[int | None]
    file_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH))  # de-identified file
    pixel_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH))  # pixel data only
    position_along_normal_mm: Mapped[float | None] = mapped_column(Float)
    quarantined: Mapped[bool] = mapped_column(default=False)
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    series: Mapped[Series] = relationship(back_populates="instances")

    def __repr__(self) -> str:
        return f"Instance(sop_instance_uid={self.sop_instance_uid!r})"


class ClinicalRecord(Base):
    """The current clinical variables of a patient (one row per patient; a re-import replaces)."""

    __tablename__ = "clinical_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), unique=True)
    variables: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    source_file_name: Mapped[str | None] = mapped_column(Text)
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="clinical_record")


class Annotation(Base):
    """Labels drawn on a series: a label map or DICOM SEG in the file store, or fiducial points."""

    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint(_in("kind", AnnotationKind), name="kind"),
        CheckConstraint("file_sha256 IS NOT NULL OR points IS NOT NULL", name="content"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    file_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH))
    points: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONList)  # [{label, x, y, z}]
    label_names: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)  # {"1": "IPH"}
    author: Mapped[str | None] = mapped_column(Text)  # a person, or the tool or model
    source: Mapped[str | None] = mapped_column(Text)  # e.g. "phantom ground truth"
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    series: Mapped[Series] = relationship(back_populates="annotations")


class IngestRun(Base):
    """One `voxelwise ingest` of a folder for a center, with its counts and report."""

    __tablename__ = "ingest_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    center_id: Mapped[int] = mapped_column(
        ForeignKey("centers.id", ondelete="CASCADE"), index=True)
    source_path: Mapped[str] = mapped_column(Text)  # the folder the user gave; no PHI
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)

    center: Mapped[Center] = relationship(back_populates="ingest_runs")
