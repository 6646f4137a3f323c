"""Folder mode: measure a label map, a folder of them or a phantom; write the CSV tables."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from voxelwise.biomarkers.followup import FOLLOWUP_COLUMNS, followup_table
from voxelwise.biomarkers.volumes import (
    DEFAULT_CLASSES,
    LESION_COLUMNS,
    SeriesBiomarkers,
    biomarker_columns,
    measure_series,
)
from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic

_NIFTI = (".nii", ".nii.gz")


def case_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def label_files(path: Path) -> list[Path]:
    """The NIfTI label maps of a file or folder."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(path, "no such file or folder")
    files = sorted(p for p in path.iterdir() if p.name.endswith(_NIFTI))
    if not files:
        raise InputError(path, "holds no .nii or .nii.gz label map")
    return files


def read_cases(path: Path) -> dict[str, dict[str, Any]]:
    """case -> {patient, days_since_admission, ...} from a --cases CSV or a phantom labels.csv."""
    if not path.is_file():
        raise InputError(path, "file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    cases = {}
    for number, row in enumerate(rows, start=2):
        if "label_map" in row:  # a phantom's labels.csv
            cases[case_name(Path(row["label_map"]))] = {
                "patient": row["patient_id"], "days_since_admission": row["days_since_admission"],
                "series_instance_uid": row["series_instance_uid"], "dicom_dir": row["dicom_dir"]}
        elif {"case", "patient", "days_since_admission"} <= set(row):
            cases[row["case"]] = row
        else:
            raise InputError(path, f"line {number}: needs columns case, patient, "
                             "days_since_admission (or be a phantom's labels.csv)")
    return cases


def _image_for(case: str, images: Path | None, phantom: Path | None,
               cases: dict[str, dict[str, Any]]):
    from voxelwise.imaging import read_dicom_series, read_nifti

    if phantom is not None and case in cases and cases[case].get("dicom_dir"):
        return read_dicom_series(phantom / cases[case]["dicom_dir"])
    if images is not None:
        for suffix in (".nii.gz", ".nii", ""):
            candidate = images / f"{case}{suffix}"
            if candidate.is_file():
                return read_nifti(candidate)
            if suffix == "" and candidate.is_dir():
                return read_dicom_series(candidate)
        raise InputError(images, f"no image for case {case} (expected {case}.nii.gz or a "
                         f"DICOM folder {case}/)")
    return None


def measure_folder(labels: Path, *, images: Path | None = None, phantom: Path | None = None,
                   cases_csv: Path | None = None, classes: dict[int, str] | None = None,
                   min_lesion_ml: float = 0.01, source: str = "ground truth",
                   progress: bool = True) -> list[SeriesBiomarkers]:
    """Measure every label map of ``labels`` (file or folder), with images where given."""
    from tqdm.auto import tqdm

    from voxelwise.imaging import read_nifti

    cases = read_cases(cases_csv) if cases_csv else (
        read_cases(phantom / "labels.csv") if phantom else {})
    results = []
    for path in tqdm(label_files(labels), desc="biomarkers", unit="series", disable=not progress):
        case = case_name(path)
        if cases and case not in cases:
            raise InputError(cases_csv or phantom / "labels.csv", f"no row for case {case} "
                             f"(label map {path.name}): unknown patient and days")
        info = {"case": case, "source": source, **{k: cases.get(case, {}).get(k, "") for k in
                ("patient", "days_since_admission", "series_instance_uid")}}
        label_map = read_nifti(path)
        image = _image_for(case, images, phantom, cases)
        results.append(measure_series(label_map, image, classes, min_lesion_ml, **info))
    return results


def write_csv(path: Path, columns: list[str] | tuple[str, ...], rows: list[dict[str, Any]]
              ) -> Path:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())


def write_tables(results: list[SeriesBiomarkers], out: Path,
                 classes: dict[int, str] | None = None, manifest: dict[str, Any] | None = None
                 ) -> dict[str, Path]:
    """biomarkers.csv, lesions.csv, followup.csv (when every row has patient and days)."""
    classes = dict(DEFAULT_CLASSES if classes is None else classes)
    rows = [r.row() for r in results]
    outputs = {"biomarkers": write_csv(out / "biomarkers.csv", biomarker_columns(classes), rows),
               "lesions": write_csv(out / "lesions.csv", LESION_COLUMNS,
                                    [x for r in results for x in r.lesion_rows()])}
    if rows and all(r["patient"] != "" and r["days_since_admission"] != "" for r in rows):
        outputs["followup"] = write_csv(out / "followup.csv", FOLLOWUP_COLUMNS,
                                        followup_table(rows, classes.values()))
    from voxelwise import __version__

    record = {"command": "voxelwise biomarkers", "version": __version__,
              "series": len(results), "outputs": {k: str(v) for k, v in outputs.items()},
              "midline": {r.info.get("case", ""): (r.midline.as_dict() if r.midline else None)
                          for r in results}, **(manifest or {})}
    outputs["manifest"] = write_text_atomic(out / "biomarkers.json",
                                            json.dumps(record, indent=1, default=str))
    return outputs


def timed(function, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    return function(*args, **kwargs), time.perf_counter() - started


def measure_repository(repository: Any, run: str | None = None,
                       classes: dict[int, str] | None = None, min_lesion_ml: float = 0.01,
                       progress: bool = True) -> list[SeriesBiomarkers]:
    """Measure every series with a label-map annotation and store the results.

    Without ``run``: the newest label-map (or SEG) annotation of each series, as ground truth.
    With ``run``: the annotations whose author is that model run, stored under its name. Each
    series is measured with its CT (for the midline) and stored in its own transaction;
    re-running replaces the stored record of (series, source).
    """
    from sqlalchemy import select
    from tqdm.auto import tqdm

    from voxelwise.data.repository import load_label_map, load_series_volume
    from voxelwise.store import Annotation, Series, store_biomarkers

    source = run or "ground truth"
    with repository.session() as session:
        query = select(Annotation).where(Annotation.kind.in_(("label-map", "seg")),
                                         Annotation.file_sha256.is_not(None))
        if run:
            query = query.where(Annotation.author == run)
        newest: dict[int, int] = {}
        for annotation in session.scalars(query.order_by(Annotation.created_at)):
            newest[annotation.series_id] = annotation.id
    if not newest:
        raise InputError(repository.root, "no series with a label-map annotation"
                         + (f" by model run {run!r}" if run else ""))
    results = []
    for series_id, annotation_id in tqdm(sorted(newest.items()), desc="biomarkers",
                                         unit="series", disable=not progress):
        with repository.session() as session:
            series = session.get(Series, series_id)
            labels = load_label_map(repository, session.get(Annotation, annotation_id))
            image = load_series_volume(repository, series)
            result = measure_series(labels, image, classes, min_lesion_ml,
                                    **_repository_info(series, source))
            store_biomarkers(session, series_id, source, result.row(), result.lesions,
                             result.midline.as_dict() if result.midline else None)
        results.append(result)
    return results


def _repository_info(series: Any, source: str) -> dict[str, Any]:
    """A result's keys as the repository knows the series: pseudonym and stored UID only."""
    days = series.study.days_since_first_study
    return {"case": series.series_instance_uid, "patient": series.study.patient.pseudonym,
            "series_instance_uid": series.series_instance_uid,
            "days_since_admission": "" if days is None else days, "source": source}


def store_results(repository: Any, results: list[SeriesBiomarkers],
                  key_path: Path | None = None) -> int:
    """Store folder-mode results in the repository's biomarkers table; the number stored.

    Each result is matched to its stored series by ``info["series_instance_uid"]``, original
    (mapped with the study key, as a phantom's labels.csv or a --cases CSV gives it) or
    de-identified, and stored under its ``info["source"]``. The stored row is keyed by the
    repository's pseudonym and UID: the original patient ID and case name are not kept, so
    `voxelwise prognosis --repo` reads these rows as it reads those of ``biomarkers --repo``.
    One transaction for all: a result whose series is not in the repository stores nothing.
    """
    from voxelwise.ingest.annotations import resolve_series
    from voxelwise.store import store_biomarkers

    with repository.session() as session:
        for result in results:
            uid = str(result.info.get("series_instance_uid", "")).strip()
            if not uid:
                raise InputError(result.info.get("case") or None, "no series_instance_uid: "
                                 "cannot tell which stored series these biomarkers belong to")
            series = resolve_series(session, repository, uid, key_path)
            source = str(result.info.get("source") or "ground truth")
            row = {**result.row(), **_repository_info(series, source)}
            store_biomarkers(session, series.id, source, row, result.lesions,
                             result.midline.as_dict() if result.midline else None)
    return len(results)
