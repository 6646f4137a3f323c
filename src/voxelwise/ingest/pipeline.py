"""`voxelwise ingest`: DICOM from a center's folder into the de-identified study repository.

For each series found by content under the source folder: every instance is de-identified
(`voxelwise.deid`, keyed with the study's secret), written to the content-addressed store (or to
``quarantine/`` when a person must check its pixels for burned-in text), read back as a volume
and quality-controlled; then the center, patient, study, series and instances are recorded in one
transaction per series. Re-running on the same folder stores nothing twice.

What the repository keeps about a run holds no source file names or paths below the folder the
user gave (they often contain names or IDs); the full report with file names is returned to the
caller and written only where the user asks (``--report``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from sqlalchemy import select
from tqdm import tqdm

from voxelwise.deid import (
    DeidOptions,
    Pseudonymizer,
    deidentify_file,
    load_or_create_key,
    pixel_data_sha256,
)
from voxelwise.errors import InputError, VoxelwiseError
from voxelwise.imaging.dicom import (
    DicomInstance,
    DicomSeriesInfo,
    read_dicom_series,
    scan_dicom_folder,
)
from voxelwise.ingest.qc import QCThresholds, series_qc
from voxelwise.store import (
    IngestRun,
    Instance,
    Patient,
    QCStatus,
    Repository,
    Series,
    Study,
    get_or_create_center,
    get_or_create_instance,
    get_or_create_patient,
    get_or_create_series,
    get_or_create_study,
)
from voxelwise.store.models import utcnow

KEY_FILE_NAME = "deid.key"


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


@dataclass
class _StoredInstance:
    sop_instance_uid: str
    instance_number: int | None
    file_sha256: str
    pixel_sha256: str | None
    path: Path
    quarantine_reason: str = ""


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


class Ingester:
    """Ingests the series of one center into a repository with one key and one QC policy."""

    def __init__(self, repository: Repository, center: str, *, key_path: Path | None = None,
                 center_name: str | None = None, options: DeidOptions = DeidOptions(),
                 thresholds: QCThresholds = QCThresholds(), progress: bool = True) -> None:
        self.repository = repository
        self.center = center
        self.center_name = center_name
        self.pseudonymizer = open_pseudonymizer(repository, key_path)
        self.options = options
        self.thresholds = thresholds
        self.progress = progress
        self.quarantine = repository.root / "quarantine"

    # ---------------------------------------------------------------- one series
    def _stored_pixel_hashes(self, sop_instance_uids: list[str]) -> dict[str, str | None]:
        """Pixel hash of each of these (de-identified) SOP Instance UIDs already stored."""
        with self.repository.session() as session:
            rows = session.execute(select(Instance.sop_instance_uid, Instance.pixel_sha256)
                                   .where(Instance.sop_instance_uid.in_(sop_instance_uids)))
            return {uid: sha for uid, sha in rows}

    def _new_instances(self, info: DicomSeriesInfo, report: IngestReport
                       ) -> tuple[list[DicomInstance], int]:
        """Instances not stored yet; stored ones with other pixel data are reported conflicts."""
        images = [i for i in info.instances if i.has_pixel_data]
        mapped = {self.pseudonymizer.uid(i.sop_instance_uid): i for i in images}
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

    def _deidentify(self, instances: list[DicomInstance], workdir: Path, report: IngestReport
                    ) -> tuple[list[_StoredInstance], Any]:
        """De-identify and store these instances; returns them and one output header."""
        stored, header = [], None
        for index, instance in enumerate(instances):
            target = workdir / f"{index:06d}.dcm"
            try:
                result = deidentify_file(instance.path, target, self.pseudonymizer, self.options)
            except VoxelwiseError as error:
                report.skipped_files.append({"file": str(instance.path), "kind": "deid-failed",
                                             "problem": str(error)})
                continue
            header = header or result.dataset
            reason = "; ".join(result.quarantine_reasons)
            if reason:
                sha = _put_quarantine(self.quarantine, target)
            else:
                sha = self.repository.objects.put_file(target)
            path = (self.quarantine / f"{sha}.dcm") if reason else \
                self.repository.objects.path_of(sha)
            number = result.dataset.get("InstanceNumber")
            stored.append(_StoredInstance(str(result.dataset.SOPInstanceUID),
                                          int(number) if number not in (None, "") else None,
                                          sha, result.pixel_sha256_after, path, reason))
            target.unlink()
        return stored, header

    def ingest_series(self, info: DicomSeriesInfo, report: IngestReport) -> SeriesOutcome:
        """De-identify, store, QC and record the instances of one series not stored yet."""
        series_uid = self.pseudonymizer.uid(info.series_instance_uid)
        new, conflicts = self._new_instances(info, report)
        if not new:
            return SeriesOutcome(series_uid, "conflict" if conflicts else "already stored", 0,
                                 reason=f"{conflicts} instance(s) conflict" if conflicts else "")
        with tempfile.TemporaryDirectory(prefix="voxelwise-ingest-") as workdir:
            stored, header = self._deidentify(new, Path(workdir), report)
        if header is None:
            return SeriesOutcome(series_uid, "failed", 0, reason="no instance could be stored")
        fields = _header(header)
        quarantined = [s for s in stored if s.quarantine_reason]
        outcome = SeriesOutcome(series_uid, "quarantined" if quarantined else "stored",
                                len(stored))
        geometry: dict[str, Any] = {}
        if quarantined:
            outcome.reason = quarantined[0].quarantine_reason
        else:
            paths = [s.path for s in stored] + self._stored_paths(series_uid)
            geometry, outcome.qc_flags = self._qc(paths)
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

    def _qc(self, paths: list[Path]) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """Read the stored (de-identified) files back as a volume and run the QC checks."""
        try:
            volume = read_dicom_series(paths)
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
        """One transaction: center, patient, study, series, instances."""
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
            for item in stored:
                get_or_create_instance(
                    session, series, item.sop_instance_uid, instance_number=item.instance_number,
                    file_sha256=item.file_sha256, pixel_sha256=item.pixel_sha256,
                    quarantined=bool(item.quarantine_reason),
                    quarantine_reason=item.quarantine_reason or None)
            series.instance_count = len(series.instances)
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
        report.skipped_files += [{"file": name, "kind": problem.kind, "problem": problem.message}
                                 for problem in scan.problems
                                 if problem.kind in ("not-dicom", "not-image", "truncated",
                                                     "no-pixel-data", "unsupported")
                                 for name in (problem.files or ["-"])]
        started = utcnow()
        bar = tqdm(scan.series, desc=f"ingest {self.center}", unit="series",
                   disable=not self.progress)
        for info in bar:
            try:
                report.series.append(self.ingest_series(info, report))
            except VoxelwiseError as error:
                report.series.append(SeriesOutcome(
                    self.pseudonymizer.uid(info.series_instance_uid), "failed",
                    reason=str(error)))
        self._record_run(report, started)
        return report

    def _record_run(self, report: IngestReport, started: dt.datetime) -> None:
        with self.repository.session() as session:
            center = get_or_create_center(session, self.center, self.center_name)
            session.add(IngestRun(center=center, source_path=_source_label(report.source),
                                  started_at=started, finished_at=utcnow(),
                                  counts=report.counts(), report=report.repository_record()))


def _source_label(source: str) -> str:
    """The source folder as recorded: its last component and a hash of the full path.

    Full paths at a hospital often contain patient names or IDs, so they are not stored.
    """
    path = Path(source).resolve()
    return f"{path.name} (path sha256 {hashlib.sha256(str(path).encode()).hexdigest()[:12]})"


def _put_quarantine(folder: Path, file: Path) -> str:
    """Keep a de-identified instance that needs review apart from the clean store."""
    from voxelwise.fileio import atomic_path

    data = file.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    target = folder / f"{sha}.dcm"
    if not target.exists():
        with atomic_path(target) as temporary:
            temporary.write_bytes(data)
    return sha


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
                  progress: bool = True) -> IngestReport:
    """De-identify and store every DICOM series under ``source`` for ``center``."""
    ingester = Ingester(repository, center, key_path=key_path, center_name=center_name,
                        options=options, thresholds=thresholds, progress=progress)
    return ingester.ingest(Path(source))
