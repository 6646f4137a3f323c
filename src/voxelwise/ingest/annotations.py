"""`voxelwise annotations import`: label maps (NIfTI or DICOM SEG) and fiducial points.

An annotation is attached to a stored series only when it fits it: a label map must lie on the
series' voxel grid (as voxelwise reads the series, gantry tilt corrected), and a fiducial point
must fall inside the series' volume. Series are named by their Series Instance UID, either the
de-identified one from the repository or the original one from the site, which is mapped with the
study key. Label maps are stored as NIfTI in the content store; DICOM SEG objects are converted
to a label map first, so no patient header from a SEG file reaches the repository.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from voxelwise.data.repository import load_series_volume
from voxelwise.errors import InputError
from voxelwise.imaging.dicom_seg import read_segmentation, segmentation_on_grid
from voxelwise.imaging.nifti import read_nifti, write_nifti
from voxelwise.imaging.volume import Volume
from voxelwise.ingest.pipeline import open_pseudonymizer
from voxelwise.store import Annotation, Repository, Series

DEFAULT_LABEL_NAMES = {"1": "haematoma", "2": "oedema"}


@dataclass
class AnnotationImport:
    """One annotation attached: which file, which series, what it holds."""

    source: str
    series_instance_uid: str
    kind: str
    detail: str

    def line(self) -> str:
        return f"{self.source} -> series {self.series_instance_uid}: {self.kind}, {self.detail}"


def resolve_series(session: Session, repository: Repository, uid: str,
                   key_path: Path | None = None) -> Series:
    """The stored series for a de-identified UID, or for an original UID mapped with the key."""
    for candidate in (uid, open_pseudonymizer(repository, key_path).uid(uid)):
        series = session.scalar(select(Series).where(Series.series_instance_uid == candidate))
        if series is not None:
            return series
    raise InputError(None, f"no series with Series Instance UID {uid} (original or "
                     "de-identified) in the repository")


def _grid_mismatch(labels: Volume, image: Volume) -> str:
    return (f"shape {labels.shape} vs {image.shape}, spacing "
            f"{tuple(round(s, 3) for s in labels.spacing)} vs "
            f"{tuple(round(s, 3) for s in image.spacing)} mm, origin "
            f"{tuple(round(o, 2) for o in labels.origin)} vs "
            f"{tuple(round(o, 2) for o in image.origin)} mm")


def _check_label_values(path: Path, labels: Volume) -> np.ndarray:
    array = labels.array
    if not np.all(np.isfinite(array)) or not np.all(np.equal(np.mod(array, 1), 0)):
        raise InputError(path, "a label map must hold whole numbers (0 background, 1, 2...)")
    if array.min() < 0:
        raise InputError(path, "a label map must not hold negative labels")
    return array.astype(np.uint8 if array.max() < 256 else np.uint16)


def _store_label_map(repository: Repository, session: Session, series: Series, labels: Volume,
                     kind: str, label_names: dict[str, str], author: str | None,
                     source: str | None) -> Annotation:
    with tempfile.TemporaryDirectory(prefix="voxelwise-annotation-") as folder:
        sha = repository.objects.put_file(write_nifti(labels, Path(folder) / "labels.nii.gz"))
    existing = session.scalar(select(Annotation).where(
        Annotation.series_id == series.id, Annotation.kind == kind,
        Annotation.file_sha256 == sha))
    if existing is not None:  # importing the same label map again changes nothing
        return existing
    annotation = Annotation(series=series, kind=kind, file_sha256=sha,
                            label_names=dict(label_names), author=author, source=source)
    session.add(annotation)
    session.flush()
    return annotation


def _attach_label_volume(repository: Repository, path: Path, labels: Volume, series_uid: str,
                         kind: str, key_path: Path | None, label_names: dict[str, str],
                         author: str | None, source: str | None) -> AnnotationImport:
    with repository.session() as session:
        series = resolve_series(session, repository, series_uid, key_path)
        image = load_series_volume(repository, series)
        tolerance = 0.1 * min(image.spacing)
        if not labels.same_grid(image, tolerance_mm=tolerance):
            raise InputError(path, "the label map does not lie on the grid of series "
                             f"{series.series_instance_uid}: {_grid_mismatch(labels, image)}")
        array = _check_label_values(path, labels)
        on_grid = image.with_array(array, modality="SEG", units="label")
        _store_label_map(repository, session, series, on_grid, kind, label_names, author, source)
        present = ", ".join(f"{label_names.get(str(v), v)}: {int((array == v).sum())} voxels"
                            for v in np.unique(array) if v)
        return AnnotationImport(path.name, series.series_instance_uid, kind,
                                present or "empty label map")


def import_label_map(path: str | Path, repository: Repository, series_uid: str, *,
                     key_path: Path | None = None, label_names: dict[str, str] | None = None,
                     author: str | None = None, source: str | None = None) -> AnnotationImport:
    """Attach a NIfTI label map to a stored series after checking that the grids match."""
    path = Path(path)
    labels = read_nifti(path)
    return _attach_label_volume(repository, path, labels, series_uid, "label-map", key_path,
                                label_names or DEFAULT_LABEL_NAMES, author, source)


def import_label_map_table(path: str | Path, repository: Repository, *,
                           key_path: Path | None = None,
                           label_names: dict[str, str] | None = None, author: str | None = None,
                           source: str | None = None) -> list[AnnotationImport]:
    """Attach many label maps listed in a CSV with columns ``series_instance_uid, label_map``.

    ``label_map`` paths are relative to the CSV's folder (the phantom's ``labels.csv`` is such a
    table). Each map is checked and stored in its own transaction; the first that does not fit
    stops the import with its error, and re-running skips those already attached.
    """
    path = Path(path)
    rows = _read_csv(path, {"series_instance_uid", "label_map"})
    return [import_label_map(path.parent / row["label_map"], repository,
                             row["series_instance_uid"].strip(), key_path=key_path,
                             label_names=label_names, author=author, source=source)
            for _, row in rows]


def _read_csv(path: Path, required: set[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a CSV that must have the ``required`` columns."""
    if not path.is_file():
        raise InputError(path, "file not found")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = list(enumerate(reader, start=2))
        missing = required - set(reader.fieldnames or [])
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(sorted(missing))}")
    return rows


def csv_columns(path: Path) -> set[str]:
    """The header of a CSV file, to tell a fiducial table from a label-map table."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        return set(next(csv.reader(handle), []))


def import_seg(path: str | Path, repository: Repository, *, key_path: Path | None = None,
               author: str | None = None, source: str | None = None) -> AnnotationImport:
    """Attach a DICOM SEG to the series it references, as a label map on that series' grid."""
    path = Path(path)
    segmentation = read_segmentation(path)
    with repository.session() as session:
        series = resolve_series(session, repository, segmentation.referenced_series_uid,
                                key_path)
        image = load_series_volume(repository, series)
    labels = segmentation_on_grid(segmentation, image)
    names = {str(k): v for k, v in segmentation.segment_names.items()}
    return _attach_label_volume(repository, path, labels, series.series_instance_uid, "seg",
                                key_path, names, author, source)


def import_fiducials(path: str | Path, repository: Repository, *,
                     key_path: Path | None = None, author: str | None = None,
                     source: str | None = None) -> list[AnnotationImport]:
    """Attach fiducial points from a CSV (series_instance_uid, x, y, z in LPS mm, label).

    Every point must fall inside its series' volume; otherwise nothing is imported and the error
    lists each offending line.
    """
    path = Path(path)
    rows = _read_csv(path, {"series_instance_uid", "x", "y", "z", "label"})
    by_series: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, row in rows:
        by_series.setdefault(row["series_instance_uid"].strip(), []).append((line, row))
    imports, errors = [], []
    with repository.session() as session:
        for uid, entries in by_series.items():
            series = resolve_series(session, repository, uid, key_path)
            image = load_series_volume(repository, series)
            points = []
            for line, row in entries:
                try:
                    point = np.array([float(row["x"]), float(row["y"]), float(row["z"])])
                except ValueError:
                    errors.append(f"line {line}: x, y, z must be numbers in mm")
                    continue
                index = image.lps_to_index(point)[0]
                if np.any(index < -0.5) or np.any(index > np.asarray(image.shape) - 0.5):
                    errors.append(f"line {line}: point {tuple(point)} mm lies outside series "
                                  f"{series.series_instance_uid}")
                    continue
                points.append({"label": row["label"].strip(), "x": point[0], "y": point[1],
                               "z": point[2]})
            session.add(Annotation(series=series, kind="fiducials", points=points,
                                   author=author, source=source))
            imports.append(AnnotationImport(path.name, series.series_instance_uid, "fiducials",
                                            f"{len(points)} points"))
        if errors:
            raise InputError(path, "nothing imported: " + "; ".join(errors))
    return imports
