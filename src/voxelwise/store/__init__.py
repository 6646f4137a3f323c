"""The study repository: centers, patients, studies, series, QC, annotations, clinical records.

A repository is a folder with a database (SQLite ``repository.db`` by default, PostgreSQL or
another server by URL or ``VOXELWISE_DB``) and a content-addressed file store (``objects/``)::

    from voxelwise.store import Repository, get_or_create_center, summary

    with Repository.open("my-repository") as repository:
        with repository.session() as session:        # one transaction
            center = get_or_create_center(session, "C01", "City Hospital")
        sha256 = repository.objects.put_file("image.dcm")
        with repository.session() as session:
            for row in summary(session):
                print(row)
"""

from voxelwise.store.biomarkers import BiomarkerRecord, store_biomarkers  # noqa: F401 (table)
from voxelwise.store.errors import MissingObjectError, SchemaVersionError, StoreError
from voxelwise.store.models import (
    QC_OK,
    SCHEMA_VERSION,
    Annotation,
    AnnotationKind,
    Base,
    Center,
    ClinicalRecord,
    IngestRun,
    Instance,
    Meta,
    Patient,
    QCStatus,
    Series,
    Study,
)
from voxelwise.store.objects import ObjectStore
from voxelwise.store.queries import (
    SUMMARY_COLUMNS,
    TOTAL,
    get_or_create_center,
    get_or_create_instance,
    get_or_create_patient,
    get_or_create_series,
    get_or_create_study,
    set_clinical_record,
    summary,
)
from voxelwise.store.repository import DATABASE_ENV, Repository
from voxelwise.store.worklist import Priority, PriorityChange, WorklistEntry  # noqa: F401

__all__ = [
    "DATABASE_ENV",
    "QC_OK",
    "SCHEMA_VERSION",
    "SUMMARY_COLUMNS",
    "TOTAL",
    "Annotation",
    "AnnotationKind",
    "Base",
    "Center",
    "ClinicalRecord",
    "IngestRun",
    "Instance",
    "Meta",
    "MissingObjectError",
    "ObjectStore",
    "Patient",
    "QCStatus",
    "Repository",
    "SchemaVersionError",
    "Series",
    "StoreError",
    "Study",
    "get_or_create_center",
    "get_or_create_instance",
    "get_or_create_patient",
    "get_or_create_series",
    "get_or_create_study",
    "set_clinical_record",
    "summary",
]
