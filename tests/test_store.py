"""The study repository on SQLite and PostgreSQL: records, constraints, transactions, file store."""

from __future__ import annotations

import datetime as dt
import hashlib
import stat
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, update
from sqlalchemy.exc import IntegrityError

from voxelwise.errors import InputError
from voxelwise.store import (
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    TOTAL,
    Annotation,
    Center,
    ClinicalRecord,
    IngestRun,
    Instance,
    Meta,
    MissingObjectError,
    ObjectStore,
    Patient,
    QCStatus,
    Repository,
    SchemaVersionError,
    Series,
    StoreError,
    Study,
    get_or_create_center,
    get_or_create_instance,
    get_or_create_patient,
    get_or_create_series,
    get_or_create_study,
    set_clinical_record,
    summary,
)


def _file_one_series(repository: Repository, center_code: str = "C01", pseudonym: str = "P-1",
                     uid: str = "2.25.1", instances: int = 2) -> int:
    """File center > patient > study > series > instances; return the series id."""
    with repository.session() as session:
        center = get_or_create_center(session, center_code, "City Hospital")
        patient = get_or_create_patient(session, center, pseudonym, sex="F")
        study = get_or_create_study(session, patient, uid, study_date=dt.date(2001, 3, 4),
                                    description="CT HEAD", days_since_first_study=0)
        series = get_or_create_series(
            session, study, f"{uid}.1", modality="CT", rows=512, columns=512, slice_count=32,
            instance_count=instances, pixel_spacing_mm=(0.45, 0.5), slice_thickness_mm=5.0,
            slice_spacing_mm=5.0, convolution_kernel="H30s", gantry_tilt_deg=0.0,
            manufacturer="SIEMENS")
        for number in range(1, instances + 1):
            get_or_create_instance(session, series, f"{uid}.1.{number}",
                                   instance_number=number, file_sha256="a" * 64,
                                   position_along_normal_mm=5.0 * number)
        return series.id


def test_hierarchy_round_trip(repository: Repository) -> None:
    series_id = _file_one_series(repository)
    with repository.session() as session:
        series = session.get_one(Series, series_id)
        assert series.pixel_spacing_mm == (0.45, 0.5)
        assert (series.rows, series.slice_thickness_mm, series.qc_status) == (512, 5.0, "pending")
        assert series.qc_flags == [] and series.quarantined is False
        assert [i.instance_number for i in series.instances] == [1, 2]
        assert series.instances[1].position_along_normal_mm == 10.0
        study = series.study
        assert (study.study_date, study.description) == (dt.date(2001, 3, 4), "CT HEAD")
        assert study.patient.pseudonym == "P-1" and study.patient.center.code == "C01"
        assert series.created_at.tzinfo is not None
        assert abs(series.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
        session.add(Annotation(series=series, kind="fiducials", points=[{"label": "ICH",
                               "x": 1.5, "y": -2.0, "z": 30.0}], label_names={"1": "IPH"},
                               author="reader 1"))
        session.add(IngestRun(center=study.patient.center, source_path="/data/site1",
                              counts={"files": 2}, report={"problems": []}))
    with repository.session() as session:  # a second get_or_create finds the same rows
        center = get_or_create_center(session, "C01")
        patient = get_or_create_patient(session, center, "P-1")
        assert patient.studies[0].series[0].id == series_id
        assert session.scalar(select(func.count(Instance.id))) == 2
        annotation = session.scalars(select(Annotation)).one()
        assert annotation.points[0]["x"] == 1.5 and annotation.file_sha256 is None
        run = session.scalars(select(IngestRun)).one()
        assert run.counts == {"files": 2} and run.finished_at is None


@pytest.mark.parametrize("duplicate", [
    lambda c, p, st, se: Center(code="C01"),
    lambda c, p, st, se: Patient(center=c, pseudonym="P-1"),
    lambda c, p, st, se: Study(patient=p, study_instance_uid="2.25.1"),
    lambda c, p, st, se: Series(study=st, series_instance_uid="2.25.1.1"),
    lambda c, p, st, se: Instance(series=se, sop_instance_uid="2.25.1.1.1"),
], ids=["center-code", "pseudonym", "study-uid", "series-uid", "sop-uid"])
def test_unique_keys(repository: Repository, duplicate) -> None:
    series_id = _file_one_series(repository)
    with pytest.raises(IntegrityError), repository.session() as session:
        series = session.get_one(Series, series_id)
        study = series.study
        session.add(duplicate(study.patient.center, study.patient, study, series))
    with repository.session() as session:
        assert session.scalar(select(func.count(Instance.id))) == 2  # nothing lost or added


@pytest.mark.parametrize("bad", [
    lambda se: Series(study_id=se.study_id, series_instance_uid="9", qc_status="good"),
    lambda se: Annotation(series=se, kind="polygon", points=[]),
    lambda se: Annotation(series=se, kind="seg"),  # neither a file nor points
    lambda se: Instance(series_id=987654, sop_instance_uid="9"),  # no such series
    lambda se: Patient(center_id=se.study.patient.center_id, pseudonym="P-2", sex="X"),
], ids=["qc-status", "annotation-kind", "annotation-empty", "foreign-key", "sex"])
def test_check_and_foreign_key_constraints(repository: Repository, bad) -> None:
    series_id = _file_one_series(repository)
    with pytest.raises(IntegrityError), repository.session() as session:
        session.add(bad(session.get_one(Series, series_id)))


def test_get_or_create_refuses_another_parent(repository: Repository) -> None:
    _file_one_series(repository)
    with pytest.raises(StoreError, match="P-1 is already filed under center C01, not C02"), \
            repository.session() as session:
        get_or_create_patient(session, get_or_create_center(session, "C02"), "P-1")
    with pytest.raises(StoreError, match="study 2.25.1 is already filed under patient P-1"), \
            repository.session() as session:
        center = get_or_create_center(session, "C01")
        get_or_create_study(session, get_or_create_patient(session, center, "P-9"), "2.25.1")
    with repository.session() as session:  # the failed transactions left nothing
        assert session.scalars(select(Center.code)).all() == ["C01"]
        assert session.scalars(select(Patient.pseudonym)).all() == ["P-1"]


def test_exception_inside_session_rolls_back(repository: Repository) -> None:
    with pytest.raises(RuntimeError, match="disk full"), repository.session() as session:
        center = get_or_create_center(session, "C01")
        patient = get_or_create_patient(session, center, "P-1")
        get_or_create_study(session, patient, "2.25.1")  # flushed, not committed
        raise RuntimeError("disk full")
    with repository.session() as session:
        for model in (Center, Patient, Study):
            assert session.scalar(select(func.count()).select_from(model)) == 0


def test_deleting_a_patient_deletes_their_records(repository: Repository) -> None:
    """Withdrawal of consent: the database cascades the delete down to every instance."""
    series_id = _file_one_series(repository)
    _file_one_series(repository, pseudonym="P-2", uid="2.25.2")
    with repository.session() as session:
        patient = session.get_one(Series, series_id).study.patient
        set_clinical_record(session, patient, {"age": 71})
    with repository.session() as session:
        session.execute(Patient.__table__.delete().where(Patient.pseudonym == "P-1"))
    with repository.session() as session:
        assert session.scalars(select(Study.study_instance_uid)).all() == ["2.25.2"]
        assert session.scalar(select(func.count(Instance.id))) == 2
        assert session.scalar(select(func.count(ClinicalRecord.id))) == 0


def test_json_changes_in_place_are_saved(repository: Repository) -> None:
    series_id = _file_one_series(repository)
    with repository.session() as session:
        series = session.get_one(Series, series_id)  # hold it: the list refers back weakly
        series.qc_flags.append({"flag": "tilt", "detail": "12 deg"})
    with repository.session() as session:
        assert session.get_one(Series, series_id).qc_flags == [
            {"flag": "tilt", "detail": "12 deg"}]


def test_naive_timestamps_are_refused(repository: Repository) -> None:
    series_id = _file_one_series(repository)
    with pytest.raises(Exception, match="has no time zone"), repository.session() as session:
        session.get_one(Series, series_id).qc_decided_at = dt.datetime(2024, 1, 1, 12)


def test_summary_counts_per_center(repository: Repository) -> None:
    ids = [_file_one_series(repository, "C01", "P-1", "2.25.1"),
           _file_one_series(repository, "C01", "P-1", "2.25.2"),
           _file_one_series(repository, "C01", "P-2", "2.25.3"),
           _file_one_series(repository, "C02", "P-3", "2.25.4", instances=3),
           _file_one_series(repository, "C02", "P-4", "2.25.5")]
    with repository.session() as session:
        get_or_create_center(session, "C03", "No studies yet")
        one, two, three, four, five = (session.get_one(Series, i) for i in ids)
        one.qc_status = QCStatus.PASSED
        two.add_qc_flag("slice-gap", "missing slice 12")
        three.add_qc_flag("tilt", "gantry tilt 20 deg")
        three.decide_qc(QCStatus.ACCEPTED, "tilt corrected at reconstruction")
        four.decide_qc("excluded", "motion")
        four.quarantined, four.quarantine_reason = True, "PHI burnt into pixels"
        five.instances[0].quarantined = True
    with repository.session() as session:
        rows = summary(session)
        accepted = session.get_one(Series, ids[2])
        assert accepted.qc_decided_at is not None and accepted.qc_flags[0]["flag"] == "tilt"
    assert [tuple(row) for row in rows] == [SUMMARY_COLUMNS] * 4
    table = {row["center"]: [row[key] for key in SUMMARY_COLUMNS[2:]] for row in rows}
    #                 pat stu ser pass flag excl pend q-ser inst q-inst
    assert table == {"C01": [2, 3, 3, 2, 1, 0, 0, 0, 6, 0],
                     "C02": [2, 2, 2, 0, 0, 1, 1, 1, 5, 1],
                     "C03": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                     TOTAL: [4, 5, 5, 2, 1, 1, 1, 1, 11, 1]}
    assert [row["center"] for row in rows] == ["C01", "C02", "C03", TOTAL]
    assert rows[2]["name"] == "No studies yet"


def test_clinical_record_reimport_replaces(repository: Repository) -> None:
    with repository.session() as session:
        patient = get_or_create_patient(session, get_or_create_center(session, "C01"), "P-1")
        set_clinical_record(session, patient, {"age": 64, "sex": "M", "gcs": 13, "mrs_90d": None},
                            "clinical-2023.csv")
    with repository.session() as session:
        patient = session.scalars(select(Patient)).one()
        set_clinical_record(session, patient, {"age": 64, "gcs": 9, "outcome": [1, 2.5]},
                            "clinical-2024.csv")
    with repository.session() as session:
        record = session.scalars(select(ClinicalRecord)).one()
        assert record.variables == {"age": 64, "gcs": 9, "outcome": [1, 2.5]}
        assert record.source_file_name == "clinical-2024.csv"
        assert record.patient.clinical_record is record
    with pytest.raises(IntegrityError), repository.session() as session:  # one per patient
        session.add(ClinicalRecord(patient=session.scalars(select(Patient)).one()))


def test_newer_schema_is_refused(repository: Repository, database_url) -> None:
    _file_one_series(repository)
    with repository.session() as session:
        assert session.get_one(Meta, "schema_version").value == str(SCHEMA_VERSION)
    repository.close()
    with Repository.open(repository.root, url=database_url) as again:  # same version: opens
        with again.session() as session:
            assert session.scalar(select(func.count(Series.id))) == 1
            session.execute(update(Meta).where(Meta.key == "schema_version")
                            .values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        Repository.open(repository.root, url=database_url)


def test_patient_table_cannot_hold_an_original_id(repository: Repository) -> None:
    """The original patient ID is never stored: Patient has no column it could go into.

    The only free-text column is `pseudonym`, which holds the keyed pseudonym from
    voxelwise.deid. A new column on `patients` must be added here on purpose, after review.
    """
    tables = inspect(repository.engine)
    columns = {column["name"] for column in tables.get_columns("patients")}
    assert columns == {"id", "pseudonym", "center_id", "sex", "created_at"}
    for table in tables.get_table_names():
        for column in tables.get_columns(table):
            name = column["name"].lower()
            assert not any(word in name for word in ("birth", "original", "mrn", "patient_name",
                                                     "accession_number", "patient_id_")), name


def test_content_store_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    data = b"\x00DICM" + bytes(range(256)) * 5000  # > 1 MiB: several chunks
    sha = store.put_bytes(data)
    assert sha == hashlib.sha256(data).hexdigest()
    path = store.path_of(sha)
    assert path == tmp_path / "objects" / sha[:2] / sha[2:]
    assert path.read_bytes() == data and not path.stat().st_mode & stat.S_IWUSR
    source = tmp_path / "image.dcm"
    source.write_bytes(data)
    assert store.put_file(source) == sha and store.put_bytes(data) == sha  # idempotent
    other = store.put_bytes(b"another image")
    assert other != sha and other in store and "0" * 64 not in store
    stored = sorted(p.relative_to(store.root).as_posix() for p in store.root.rglob("*")
                    if p.is_file())
    assert stored == sorted([f"{sha[:2]}/{sha[2:]}", f"{other[:2]}/{other[2:]}"])  # no temp
    with pytest.raises(MissingObjectError, match="0{64}"):
        store.path_of("0" * 64)
    with pytest.raises(ValueError, match="not a sha256"):
        store.path_of("../../etc/passwd")
    with pytest.raises(InputError, match="missing.dcm: cannot be read"):
        store.put_file(tmp_path / "missing.dcm")
    assert list(store.root.glob(".incoming-*")) == []


def test_repository_folder_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXELWISE_DB", raising=False)
    with Repository.open(tmp_path / "repo") as repository:
        sha = repository.objects.put_bytes(b"x")
        assert repository.root == (tmp_path / "repo").resolve()
        assert repository.url.get_backend_name() == "sqlite"
    assert (tmp_path / "repo" / "repository.db").is_file()
    assert (tmp_path / "repo" / "objects" / sha[:2] / sha[2:]).is_file()


def test_voxelwise_db_environment_variable(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("VOXELWISE_DB", f"sqlite:///{elsewhere}")
    with Repository.open(tmp_path / "repo") as repository, repository.session() as session:
        get_or_create_center(session, "C01")
    assert elsewhere.is_file() and not (tmp_path / "repo" / "repository.db").exists()


def test_unusable_locations_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(InputError, match="a-file: is a file, not a repository folder"):
        Repository.open(tmp_path / "a-file")
    with pytest.raises(StoreError, match="not a usable database URL"):
        Repository.open(tmp_path / "repo", url="nosuchdb://x/y")
    secret = "postgresql+psycopg://someone:s3cret@127.0.0.1:1/db?connect_timeout=2"
    with pytest.raises(StoreError, match="cannot open the database") as error:
        Repository.open(tmp_path / "repo", url=secret)
    assert "s3cret" not in str(error.value) and "someone:***@127.0.0.1:1/db" in str(error.value)
