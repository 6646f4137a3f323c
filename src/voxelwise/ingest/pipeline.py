"""`voxelwise ingest`: DICOM from a center's folder into the de-identified study repository.

For each series found by content under the source folder: every instance is de-identified
(`voxelwise.deid`, keyed with the study's secret) in memory, checked (no identifier left in the
header, pixel data unchanged), written to the content-addressed store (or to ``quarantine/`` when
a person must check its pixels for burned-in text); the stored series is read back as a volume
(its pixel data from the stored files) and quality-controlled; then the center, patient, study,
series and instances are recorded in one transaction per series. Re-running on the same folder
stores nothing twice.

Instances are de-identified by worker processes, one per CPU, when a series has enough of them
(`PARALLEL_MIN_INSTANCES`). Each source file is read and parsed once (besides the scan's header
read); its de-identified file is encoded once in memory, hashed once and written once, and is on
disk before the database refers to it. QC takes the header values of the scan (geometry, sizes,
image type: the profile keeps them unchanged) with the de-identified UIDs, and the pixel data
from the stored file, without parsing it again.

What the repository keeps about a run holds no source file names or paths below the folder the
user gave (they often contain names or IDs); the full report with file names is returned to the
caller and written only where the user asks (``--report``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import warnings
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from sqlalchemy import func, insert, select
from tqdm import tqdm

from voxelwise.deid import (
    DeidOptions,
    Pseudonymizer,
    deidentify_bytes,
    load_or_create_key,
    pixel_data_sha256,
)
from voxelwise.errors import InputError, VoxelwiseError
from voxelwise.imaging.dicom import (
    DicomInstance,
    DicomSeriesInfo,
    Problem,
    file_names_text,
    header_number,
    read_dicom_series,
    scan_dicom_folder,
    select_images,
    series_from_header,
    stack_decoded,
)
from voxelwise.imaging.volume import Volume
from voxelwise.ingest.qc import QCThresholds, series_qc
from voxelwise.store import (
    IngestRun,
    Instance,
    ObjectStore,
    Patient,
    QCStatus,
    Repository,
    Series,
    StoreError,
    Study,
    get_or_create_center,
    get_or_create_patient,
    get_or_create_series,
    get_or_create_study,
)
from voxelwise.store.models import utcnow

KEY_FILE_NAME = "deid.key"
PARALLEL_MIN_INSTANCES = 32
"""Series with fewer new instances are de-identified in the ingesting process itself."""
MAX_DEFAULT_WORKERS = 8
"""Beyond this the ingesting process (scan, QC, database) is the bottleneck, not the workers."""
_QUERY_CHUNK = 500  # UIDs per IN (...) query, well under every database's parameter limit


def default_key_path(repository: Repository) -> Path:
    """Where the de-identification key lives unless ``--key`` says otherwise."""
    return repository.root / KEY_FILE_NAME


def open_pseudonymizer(repository: Repository, key_path: Path | None = None) -> Pseudonymizer:
    """The study's keyed pseudonymizer; the key file is created on first use (mode 0600).

    Every center of a study must use the same key so that a patient seen at two centers gets one
    pseudonym; keep a copy of it outside the repository and never share it with data users.
    """
    return Pseudonymizer(load_or_create_key(key_path or default_key_path(repository)))


@dataclass
class SeriesOutcome:
    """What happened to one source series (UIDs are the de-identified ones)."""

    series_instance_uid: str
    status: str  # "stored", "already stored", "quarantined", "conflict", "failed"
    instances: int = 0
    qc_flags: list[dict[str, str]] = field(default_factory=list)
    reason: str = ""


@dataclass
class IngestReport:
    """The account of one ingest run: counts, per series outcome and skipped files."""

    center: str
    source: str
    files_seen: int = 0
    series: list[SeriesOutcome] = field(default_factory=list)
    skipped_files: list[dict[str, Any]] = field(default_factory=list)
    """Files not stored, with the problem; names the source files, so it stays with the user."""

    def counts(self) -> dict[str, int]:
        by_status = Counter(outcome.status for outcome in self.series)
        return {"files_seen": self.files_seen, "files_skipped": len(self.skipped_files),
                "series_seen": len(self.series),
                "series_stored": by_status["stored"],
                "series_already_stored": by_status["already stored"],
                "series_quarantined": by_status["quarantined"],
                "series_failed": by_status["failed"],
                "instance_conflicts": sum(1 for f in self.skipped_files
                                          if f["kind"] == "conflict"),
                "series_flagged": sum(1 for o in self.series if o.qc_flags),
                "instances_stored": sum(o.instances for o in self.series
                                        if o.status in ("stored", "quarantined"))}

    def as_dict(self) -> dict[str, Any]:
        """The full report, with source file names (for the user, not for the repository)."""
        return {"center": self.center, "source": self.source, "counts": self.counts(),
                "series": [vars(outcome) for outcome in self.series],
                "skipped_files": self.skipped_files}

    def repository_record(self) -> dict[str, Any]:
        """What the repository keeps: counts, outcomes and skip reasons by kind, no file names."""
        reasons = Counter(item["kind"] for item in self.skipped_files)
        return {"counts": self.counts(), "series": [vars(outcome) for outcome in self.series],
                "skipped_by_kind": dict(reasons)}

    def summary_lines(self) -> list[str]:
        counts = self.counts()
        lines = [f"center {self.center}: {counts['files_seen']} files seen, "
                 f"{counts['series_stored']} series stored "
                 f"({counts['instances_stored']} instances), "
                 f"{counts['series_already_stored']} already stored, "
                 f"{counts['series_quarantined']} quarantined, {counts['series_failed']} failed, "
                 f"{counts['series_flagged']} flagged by QC, "
                 f"{counts['files_skipped']} files skipped"]
        lines += [f"  skipped {item['file']}: [{item['kind']}] {item['problem']}"
                  for item in self.skipped_files]
        lines += [f"  series {o.series_instance_uid}: {o.status}"
                  + (f" ({o.reason})" if o.reason else "")
                  + "".join(f"\n    QC {f['flag']}: {f['detail']}" for f in o.qc_flags)
                  for o in self.series if o.status != "stored" or o.qc_flags]
        return lines


def _parse_date(study_date: str | None) -> dt.date | None:
    if not study_date:
        return None
    try:
        return dt.datetime.strptime(str(study_date)[:8], "%Y%m%d").date()
    except ValueError:
        return None


@dataclass(frozen=True)
class _PixelLocation:
    """Where the native pixel data of a stored instance lie in its file, and how to read them."""

    offset: int
    dtype: str
    rows: int
    columns: int
    bits_stored: int
    bits_allocated: int


@dataclass
class _StoredInstance:
    sop_instance_uid: str
    instance_number: int | None
    file_sha256: str
    pixel_sha256: str | None
    path: Path
    quarantine_reason: str = ""
    qc: DicomInstance | None = None
    """Header values of the de-identified instance that QC reads (clean instances only)."""
    pixels: _PixelLocation | None = None
    rescale: tuple[float, float] = (1.0, 0.0)
    decoded: tuple[np.ndarray, float, float] | Exception | None = None
    """Its pixel values and rescale, read back by the ingesting process (or why not)."""


@dataclass(frozen=True)
class _Failed:
    """A source file that could not be de-identified, and why."""

    file: str
    problem: str


@dataclass
class _SeriesHeader:
    """De-identified values of a series' first instance that the database records."""

    patient_pseudonym: str
    patient_sex: str | None
    study_instance_uid: str
    study_date: dt.date | None
    study_description: str | None
    series_instance_uid: str
    series_description: str | None
    modality: str | None
    manufacturer: str | None
    convolution_kernel: str | None
    slice_thickness_mm: float | None


def _header(dataset: Any) -> _SeriesHeader:
    kernel = dataset.get("ConvolutionKernel")
    if kernel is not None and not isinstance(kernel, str):
        kernel = "\\".join(str(k) for k in kernel)
    thickness = dataset.get("SliceThickness")
    return _SeriesHeader(
        patient_pseudonym=str(dataset.PatientID), patient_sex=dataset.get("PatientSex") or None,
        study_instance_uid=str(dataset.StudyInstanceUID),
        study_date=_parse_date(dataset.get("StudyDate")),
        study_description=dataset.get("StudyDescription") or None,
        series_instance_uid=str(dataset.SeriesInstanceUID),
        series_description=dataset.get("SeriesDescription") or None,
        modality=dataset.get("Modality") or None, manufacturer=dataset.get("Manufacturer") or None,
        convolution_kernel=kernel or None,
        slice_thickness_mm=float(thickness) if thickness not in (None, "") else None,
    )


class _InstanceWriter:
    """De-identifies source files and stores the results.

    Runs in the ingesting process or in a worker process (it is sent there once, at start-up);
    it returns small records, never the files' bytes. What QC needs of a clean instance is taken
    without parsing the stored file again: the header values from the scan (the profile keeps
    them unchanged) with the de-identified UIDs, and where its native pixel data lie in the
    stored file from the dataset that was just encoded.
    """

    def __init__(self, pseudonymizer: Pseudonymizer, options: DeidOptions, objects: ObjectStore,
                 quarantine: Path) -> None:
        self.pseudonymizer = pseudonymizer
        self.options = options
        self.objects = objects
        self.quarantine = quarantine

    def __call__(self, instances: list[DicomInstance]) -> list[_StoredInstance | _Failed]:
        """De-identify and store the files of these scanned instances; one record each, in order.

        Storing a file (hashing it, writing it, flushing it to disk: work done outside the GIL)
        runs in a thread while the next file is de-identified. Returns once every file is
        stored.
        """
        results: list[_StoredInstance | _Failed] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxelwise-store") as storage:
            pending: deque[Future[None]] = deque()
            for instance in instances:
                prepared = self._deidentify(instance)
                if isinstance(prepared, _Failed):
                    results.append(prepared)
                    continue
                record = prepared[0]
                results.append(record)
                pending.append(storage.submit(self._store, *prepared))
                while len(pending) > _STORE_BACKLOG:
                    pending.popleft().result()
            for future in pending:
                future.result()
        return results

    def _deidentify(self, scanned: DicomInstance) -> tuple[_StoredInstance, bytes, Any] | _Failed:
        path = Path(scanned.path)
        try:
            data = path.read_bytes()
        except OSError as error:
            return _Failed(str(path), str(InputError(path, f"cannot be read: {error.strerror}")))
        try:
            # the pixel data are hashed by the storage thread, outside the GIL
            result = deidentify_bytes(data, self.pseudonymizer, self.options, source=path,
                                      hash_pixels=False)
        except VoxelwiseError as error:
            return _Failed(str(path), str(error))
        dataset = result.dataset
        record = _StoredInstance(str(dataset.SOPInstanceUID), scanned.instance_number, "", None,
                                 path, "; ".join(result.quarantine_reasons))
        if not record.quarantine_reason:
            # What QC reads of the header (geometry, sizes, image type, instance number) the
            # profile keeps unchanged, so the scan's values are those of the stored file; only
            # the UIDs are the de-identified ones (the path is set when the file is stored).
            record.qc = replace(scanned, sop_instance_uid=record.sop_instance_uid,
                                series_instance_uid=str(dataset.SeriesInstanceUID))
            record.pixels = _pixel_location(dataset, result.pixel_offset)
            record.rescale = (header_number(dataset, "RescaleSlope") or 1.0,
                              header_number(dataset, "RescaleIntercept") or 0.0)
        return record, result.encoded or b"", dataset

    def _store(self, record: _StoredInstance, encoded: bytes, dataset: Any) -> None:
        """Into the clean store, or into quarantine when a person must look at the pixels.

        Also hashes the pixel data (which `deidentify_bytes` checked are those written).
        """
        record.pixel_sha256 = pixel_data_sha256(dataset)
        if record.quarantine_reason:
            record.file_sha256 = _put_quarantine(self.quarantine, encoded)
            record.path = self.quarantine / f"{record.file_sha256}.dcm"
        else:
            record.file_sha256 = self.objects.put_bytes(encoded)
            record.path = self.objects.path_of(record.file_sha256)
        if record.qc is not None:
            record.qc.path = record.path


_STORE_BACKLOG = 4  # encoded files waiting for the storage thread, at most
_WORKER: _InstanceWriter | None = None


def _start_worker(writer: _InstanceWriter) -> None:
    global _WORKER
    _WORKER = writer


def _run_in_worker(instances: list[DicomInstance]) -> list[_StoredInstance | _Failed]:
    assert _WORKER is not None, "worker process not started"
    return _WORKER(instances)


def _default_workers() -> int:
    """One per CPU this process may use, at most `MAX_DEFAULT_WORKERS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_DEFAULT_WORKERS)


class Ingester:
    """Ingests the series of one center into a repository with one key and one QC policy.

    ``workers``: processes that de-identify and store instances in parallel (default: one per
    CPU, at most `MAX_DEFAULT_WORKERS`; 1 does everything in this process). They are started,
    the platform's default way, when a series first has `PARALLEL_MIN_INSTANCES` new instances,
    and stopped at the end of `ingest`.
    """

    def __init__(self, repository: Repository, center: str, *, key_path: Path | None = None,
                 center_name: str | None = None, options: DeidOptions = DeidOptions(),
                 thresholds: QCThresholds = QCThresholds(), progress: bool = True,
                 workers: int | None = None) -> None:
        self.repository = repository
        self.center = center
        self.center_name = center_name
        self.pseudonymizer = open_pseudonymizer(repository, key_path)
        self.options = options
        self.thresholds = thresholds
        self.progress = progress
        self.quarantine = repository.root / "quarantine"
        self.workers = max(1, workers if workers is not None else _default_workers())
        self._writer = _InstanceWriter(self.pseudonymizer, options, repository.objects,
                                       self.quarantine)
        self._pool: Executor | None = None

    # ---------------------------------------------------------------- one series
    def _stored_pixel_hashes(self, sop_instance_uids: list[str]) -> dict[str, str | None]:
        """Pixel hash of each of these (de-identified) SOP Instance UIDs already stored."""
        found: dict[str, str | None] = {}
        with self.repository.session() as session:
            for chunk in _chunks(sop_instance_uids):
                rows = session.execute(select(Instance.sop_instance_uid, Instance.pixel_sha256)
                                       .where(Instance.sop_instance_uid.in_(chunk)))
                found.update({uid: sha for uid, sha in rows})
        return found

    def _new_instances(self, info: DicomSeriesInfo, report: IngestReport
                       ) -> tuple[list[DicomInstance], int]:
        """Instances not stored yet; stored ones with other pixel data are reported conflicts."""
        mapped: dict[str, DicomInstance] = {}
        for instance in (i for i in info.instances if i.has_pixel_data):
            uid = self.pseudonymizer.uid(instance.sop_instance_uid)
            first = mapped.setdefault(uid, instance)
            if first is not instance:  # two files of one instance: the first one counts
                report.skipped_files.append({
                    "file": str(instance.path), "kind": "duplicate-instance",
                    "problem": f"{first.path.name} has the same SOP Instance UID; only that "
                               "file is stored"})
        stored = self._stored_pixel_hashes(list(mapped))
        conflicts = 0
        for uid, pixel_sha256 in stored.items():
            instance = mapped[uid]
            try:
                source_sha256 = pixel_data_sha256(pydicom.dcmread(instance.path))
            except Exception as error:  # unreadable now: reported like any corrupt file
                source_sha256 = f"unreadable ({error})"
            if source_sha256 != pixel_sha256:
                conflicts += 1
                report.skipped_files.append({
                    "file": str(instance.path), "kind": "conflict",
                    "problem": "this SOP Instance UID is already stored with different pixel "
                               "data; nothing was overwritten"})
        return [i for uid, i in mapped.items() if uid not in stored], conflicts

    def _deidentify(self, instances: list[DicomInstance], report: IngestReport
                    ) -> list[_StoredInstance]:
        """De-identify and store these instances (in worker processes when there are many)."""
        if self.workers < 2 or len(instances) < PARALLEL_MIN_INSTANCES:
            results: Iterable[_StoredInstance | _Failed] = self._writer(instances)
        else:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, initializer=_start_worker,
                                                 initargs=(self._writer,))
            size = max(1, min(16, len(instances) // (4 * self.workers)))
            chunks = [instances[start:start + size]
                      for start in range(0, len(instances), size)]
            results = chain.from_iterable(self._pool.map(_run_in_worker, chunks))
        stored = []
        for result in results:  # in order, as the workers finish them
            if isinstance(result, _Failed):
                report.skipped_files.append({"file": result.file, "kind": "deid-failed",
                                             "problem": result.problem})
                continue
            if result.qc is not None:  # read back for QC now, while the workers go on
                try:
                    result.decoded = _decode_stored(result)
                except Exception as error:  # damaged data fail in many ways
                    result.decoded = error
            stored.append(result)
        return stored

    def ingest_series(self, info: DicomSeriesInfo, report: IngestReport) -> SeriesOutcome:
        """De-identify, store, QC and record the instances of one series not stored yet."""
        series_uid = self.pseudonymizer.uid(info.series_instance_uid)
        new, conflicts = self._new_instances(info, report)
        if not new:
            return SeriesOutcome(series_uid, "conflict" if conflicts else "already stored", 0,
                                 reason=f"{conflicts} instance(s) conflict" if conflicts else "")
        stored = self._deidentify(new, report)
        if not stored:
            return SeriesOutcome(series_uid, "failed", 0, reason="no instance could be stored")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pydicom.dcmread(stored[0].path, stop_before_pixels=True)
        fields = _header(header)
        quarantined = [s for s in stored if s.quarantine_reason]
        outcome = SeriesOutcome(series_uid, "quarantined" if quarantined else "stored",
                                len(stored))
        geometry: dict[str, Any] = {}
        if quarantined:
            outcome.reason = quarantined[0].quarantine_reason
        else:
            geometry, outcome.qc_flags = self._qc(series_uid, stored, header)
        if conflicts:
            outcome.reason = f"{conflicts} instance(s) conflict with stored ones; not overwritten"
        self._record(fields, stored, geometry, outcome)
        return outcome

    def _stored_paths(self, series_uid: str) -> list[Path]:
        """Files of the clean instances of this series stored by earlier runs."""
        with self.repository.session() as session:
            shas = session.scalars(select(Instance.file_sha256).join(Series).where(
                Series.series_instance_uid == series_uid, Instance.quarantined.is_(False)))
            return [self.repository.objects.path_of(sha) for sha in shas if sha]

    def _qc(self, series_uid: str, stored: list[_StoredInstance], header: Any
            ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """The stored (de-identified) series as a volume, and the QC checks on it.

        A series some of whose instances earlier runs stored is read back from the store whole;
        otherwise from what the writers recorded (`_stored_volume`).
        """
        earlier = self._stored_paths(series_uid)
        try:
            if earlier:
                volume = read_dicom_series([s.path for s in stored] + earlier)
            else:
                volume = _stored_volume(stored, header)
        except VoxelwiseError as error:
            return {}, [{"flag": "unreadable", "detail": str(error).split(": ", 1)[-1]}]
        report = volume.meta.get("report", {})
        spacing = report.get("pixel_spacing_mm") or [None, None]
        geometry = {"rows": volume.shape[1], "columns": volume.shape[2],
                    "slice_count": report.get("n_slices", volume.shape[0]),
                    "pixel_spacing_row_mm": spacing[0], "pixel_spacing_col_mm": spacing[1],
                    "slice_spacing_mm": report.get("slice_spacing_mm"),
                    "gantry_tilt_deg": report.get("gantry_tilt_deg")}
        return geometry, [flag.as_dict() for flag in series_qc(volume, self.thresholds)]

    def _record(self, fields: _SeriesHeader, stored: list[_StoredInstance],
                geometry: dict[str, Any], outcome: SeriesOutcome) -> None:
        """One transaction: center, patient, study, series, instances (inserted together)."""
        with self.repository.session() as session:
            center = get_or_create_center(session, self.center, self.center_name)
            # a patient seen at several centers stays filed under the first one
            patient = session.scalar(select(Patient).where(
                Patient.pseudonym == fields.patient_pseudonym)) or get_or_create_patient(
                session, center, fields.patient_pseudonym, fields.patient_sex)
            study = get_or_create_study(session, patient, fields.study_instance_uid,
                                        study_date=fields.study_date,
                                        description=fields.study_description)
            series = get_or_create_series(
                session, study, fields.series_instance_uid, modality=fields.modality,
                series_description=fields.series_description, manufacturer=fields.manufacturer,
                convolution_kernel=fields.convolution_kernel,
                slice_thickness_mm=fields.slice_thickness_mm, **geometry)
            _insert_instances(session, series, stored)
            series.instance_count = session.scalar(
                select(func.count()).select_from(Instance).where(Instance.series_id == series.id))
            series.quarantined = outcome.status == "quarantined"
            series.quarantine_reason = outcome.reason or None
            series.qc_flags = list(outcome.qc_flags)
            if series.qc_status in (QCStatus.PENDING.value, QCStatus.PASSED.value,
                                    QCStatus.FLAGGED.value):
                series.qc_status = (QCStatus.FLAGGED if outcome.qc_flags or series.quarantined
                                    else QCStatus.PASSED).value
            _update_days_since_first_study(patient.studies)

    # ---------------------------------------------------------------- a folder
    def ingest(self, source: Path) -> IngestReport:
        """Ingest every series under ``source``; returns the full report."""
        source = Path(source)
        if not source.exists():
            raise InputError(source, "the source folder does not exist")
        scan = scan_dicom_folder(source)
        report = IngestReport(self.center, str(source))
        report.files_seen = sum(len(s.instances) for s in scan.series) + sum(
            len(p.files) for p in scan.problems if p.kind in ("not-dicom", "not-image"))
        report.skipped_files += _skipped_by_scan(scan)
        started = utcnow()
        bar = tqdm(scan.series, desc=f"ingest {self.center}", unit="series",
                   disable=not self.progress)
        try:
            for info in bar:
                try:
                    report.series.append(self.ingest_series(info, report))
                except VoxelwiseError as error:
                    report.series.append(SeriesOutcome(
                        self.pseudonymizer.uid(info.series_instance_uid), "failed",
                        reason=str(error)))
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
                self._pool = None
        self._record_run(report, started)
        return report

    def _record_run(self, report: IngestReport, started: dt.datetime) -> None:
        with self.repository.session() as session:
            center = get_or_create_center(session, self.center, self.center_name)
            session.add(IngestRun(center=center, source_path=_source_label(report.source),
                                  started_at=started, finished_at=utcnow(),
                                  counts=report.counts(), report=report.repository_record()))


def _skipped_by_scan(scan: Any) -> list[dict[str, Any]]:
    """The files the scan's problems name that ingest will not store, with the problem.

    Instances with pixel data are de-identified and stored even when the scan found a problem
    with them (multi-frame or colour images, pixel data cut short): QC of their series then says
    what is wrong, so they are not reported as skipped.
    """
    stored = {str(instance.path) for series in scan.series for instance in series.instances
              if instance.has_pixel_data}
    return [{"file": name, "kind": problem.kind, "problem": problem.message}
            for problem in scan.problems
            if problem.kind in ("not-dicom", "not-image", "truncated", "no-pixel-data",
                                "unsupported")
            for name in (problem.files or ["-"]) if name not in stored]


def _source_label(source: str) -> str:
    """The source folder as recorded: its last component and a hash of the full path.

    Full paths at a hospital often contain patient names or IDs, so they are not stored.
    """
    path = Path(source).resolve()
    return f"{path.name} (path sha256 {hashlib.sha256(str(path).encode()).hexdigest()[:12]})"


def _put_quarantine(folder: Path, data: bytes) -> str:
    """Keep a de-identified instance that needs review apart from the clean store."""
    from voxelwise.fileio import atomic_path

    sha = hashlib.sha256(data).hexdigest()
    target = folder / f"{sha}.dcm"
    if not target.exists():
        with atomic_path(target) as temporary:
            temporary.write_bytes(data)
    return sha


def _chunks(values: list[str], size: int = _QUERY_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert_instances(session: Any, series: Series, stored: list[_StoredInstance]) -> None:
    """Insert the instances not in the database yet, in one statement.

    An instance UID already filed under another series is a `StoreError`, as in
    `voxelwise.store.get_or_create_instance`; under this series it is left as it is.
    """
    uids = [item.sop_instance_uid for item in stored]
    existing: dict[str, int] = {}
    for chunk in _chunks(uids):
        existing.update(session.execute(select(Instance.sop_instance_uid, Instance.series_id)
                                        .where(Instance.sop_instance_uid.in_(chunk))).all())
    for uid, series_id in existing.items():
        if series_id != series.id:
            other = session.get(Series, series_id)
            raise StoreError(f"instance {uid} is already filed under series "
                             f"{other.series_instance_uid if other else series_id}, "
                             f"not {series.series_instance_uid}")
    rows = [{"series_id": series.id, "sop_instance_uid": item.sop_instance_uid,
             "instance_number": item.instance_number, "file_sha256": item.file_sha256,
             "pixel_sha256": item.pixel_sha256, "quarantined": bool(item.quarantine_reason),
             "quarantine_reason": item.quarantine_reason or None}
            for item in stored if item.sop_instance_uid not in existing]
    if rows:
        session.execute(insert(Instance), rows)


def _pixel_location(dataset: Any, offset: int | None) -> _PixelLocation | None:
    """Where and how to read native single-frame grey-level Pixel Data in the encoded file.

    ``None`` (pydicom then decodes the stored file) for encapsulated, multi-frame, colour or
    otherwise unusual pixel data.
    """
    if offset is None or "PixelData" not in dataset:
        return None
    syntax = dataset.file_meta.TransferSyntaxUID
    rows = header_number(dataset, "Rows", int) or 0
    columns = header_number(dataset, "Columns", int) or 0
    allocated = header_number(dataset, "BitsAllocated", int)
    stored = header_number(dataset, "BitsStored", int)
    representation = header_number(dataset, "PixelRepresentation", int)
    if (syntax.is_compressed or (header_number(dataset, "SamplesPerPixel", int) or 1) != 1
            or (header_number(dataset, "NumberOfFrames", int) or 1) != 1
            or allocated not in (8, 16, 32) or not stored or not 0 < stored <= allocated
            or representation not in (0, 1) or rows <= 0 or columns <= 0
            or len(dataset.get_item(0x7FE00010).value or b"") < rows * columns * allocated // 8):
        return None
    dtype = f"{'<' if syntax.is_little_endian else '>'}{'iu'[representation == 0]}{allocated // 8}"
    return _PixelLocation(offset, dtype, rows, columns, stored, allocated)


def _decode_stored(item: _StoredInstance) -> tuple[np.ndarray, float, float]:
    """Stored pixel values of one clean instance and its Rescale Slope and Intercept.

    Native pixel data are read from the stored file at their place, as pydicom decodes them
    (unused high bits cleared, sign extended); anything else is decoded by pydicom.
    """
    location, expected = item.pixels, (item.qc.rows, item.qc.columns)  # type: ignore[union-attr]
    if location is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(item.path)
            pixels = dataset.pixel_array
        rescale = (header_number(dataset, "RescaleSlope") or 1.0,
                   header_number(dataset, "RescaleIntercept") or 0.0)
    else:
        count = location.rows * location.columns
        pixels = np.fromfile(item.path, dtype=location.dtype, count=count, offset=location.offset)
        if pixels.size != count:
            raise ValueError(f"{pixels.size} of {count} pixel values in the stored file")
        pixels = pixels.reshape(location.rows, location.columns)
        unused = location.bits_allocated - location.bits_stored
        if unused:
            pixels = np.right_shift(np.left_shift(pixels, unused), unused)
        rescale = item.rescale
    if pixels.shape != expected:
        raise ValueError(f"decoded {pixels.shape}, the header says {expected[0]} x {expected[1]}")
    return pixels, *rescale


def _stored_volume(stored: list[_StoredInstance], header: Any) -> Volume:
    """The stored series as `read_dicom_series` reads it from the stored files.

    The same steps (image selection, decoding, slice geometry, rescaling, grid correction) on
    the header values each writer took from the de-identified dataset it encoded and on pixel
    data read from the stored bytes, instead of parsing every stored file again.
    """
    by_path = {item.path: item for item in stored}
    instances = sorted((item.qc for item in stored if item.qc is not None),
                       key=lambda instance: instance.path)
    series = series_from_header(header)
    series.instances = instances
    root = Path(os.path.commonpath([instance.path.parent for instance in instances]))
    images, problems = select_images(instances)
    decoded: dict[Path, tuple[np.ndarray, float, float]] = {}
    failed = []
    for instance in images:
        result = by_path[instance.path].decoded
        if isinstance(result, Exception):
            failed.append((instance.path, result))
        elif result is not None:
            decoded[instance.path] = result
    if failed:
        paths = [path for path, _ in failed]
        problems.append(Problem(
            "truncated", f"{len(failed)} file(s) could not be decoded (truncated or damaged; "
            f"{failed[0][0].name}: {failed[0][1]}); skipped: {file_names_text(paths)}",
            [str(path) for path in paths], images[0].series_instance_uid))
    return stack_decoded(root, series, images, decoded, problems).to_volume()


def _update_days_since_first_study(studies: list[Study]) -> None:
    dates = [study.study_date for study in studies if study.study_date is not None]
    if not dates:
        return
    first = min(dates)
    for study in studies:
        if study.study_date is not None:
            study.days_since_first_study = (study.study_date - first).days


def ingest_folder(source: str | Path, repository: Repository, center: str, *,
                  key_path: Path | None = None, center_name: str | None = None,
                  options: DeidOptions = DeidOptions(),
                  thresholds: QCThresholds = QCThresholds(),
                  progress: bool = True, workers: int | None = None) -> IngestReport:
    """De-identify and store every DICOM series under ``source`` for ``center``.

    ``workers``: processes de-identifying in parallel (default one per CPU; see `Ingester`).
    """
    ingester = Ingester(repository, center, key_path=key_path, center_name=center_name,
                        options=options, thresholds=thresholds, progress=progress,
                        workers=workers)
    return ingester.ingest(Path(source))
