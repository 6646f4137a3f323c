"""What the ICH detector trains on: study volumes or 2-D images, with their 0/1 findings.

Three sources, one result (`DetectionData`):
- a folder of DICOM series with a labels CSV whose ``dicom_dir`` column names each series folder
  (a head-CT phantom folder is one);
- a study repository with a labels CSV naming series by ``series_instance_uid`` (original UIDs
  are mapped with the de-identification key); patients are the repository's pseudonyms;
- a folder of 2-D images (PNG, JPEG, DICOM) with a labels CSV naming each ``file``.
A volume becomes (3, slices, size, size): brain, subdural and bone windows, area-averaged onto a
fixed grid (in-plane aspect ratio kept).

A series folder's row may also name a ``label_map`` (NIfTI on the series' grid, label 1 =
haematoma, as the phantom and the segmentation tasks write): then each input slice gets a 0/1
label, haemorrhage in it or not (`DetectionData.slice_labels`), which the per-slice network
learns from besides the study's findings. Rows without one get no slice labels (``nan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.data.images2d import (
    LabelTable,
    file_column,
    load_images,
    patient_ids,
    problems_error,
    read_label_table,
)
from voxelwise.errors import InputError
from voxelwise.imaging.volume import Volume

ICH_SUBTYPES = ("intraparenchymal", "intraventricular", "subdural", "extradural",
                "subarachnoid")
ICH_FINDINGS = ("any_ich", *ICH_SUBTYPES, "midline_shift", "mass_effect")
WINDOW_NAMES = ("brain", "subdural", "bone")


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes network input; stored in the run's identity."""

    kind: str = "volume"         # "volume" (3-D studies) | "image" (2-D images)
    size: int = 64               # in-plane pixels (square, aspect kept by padding)
    slices: int = 16             # volumes: slices after resampling along the slice axis
    windows: tuple[str, ...] = WINDOW_NAMES

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "slices": self.slices,
                "windows": list(self.windows)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(data["kind"], int(data["size"]), int(data["slices"]),
                   tuple(data["windows"]))


@dataclass
class DetectionData:
    """Cases (ids, patients), their network inputs ``x`` and 0/1 labels ``y`` (cases, findings)."""

    case_ids: list[str]
    patients: list[str]
    x: np.ndarray
    y: np.ndarray
    findings: list[str]
    spec: InputSpec
    source: Path
    slice_labels: np.ndarray | None = None  # (cases, slices) 0/1 haemorrhage per slice, nan

    def subset(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        index = {c: i for i, c in enumerate(self.case_ids)}
        rows = [index[c] for c in ids]
        return self.x[rows], self.y[rows]

    def subset_slice_labels(self, ids: list[str]) -> np.ndarray | None:
        """Slice labels of ``ids``, or None when no case has any."""
        if self.slice_labels is None:
            return None
        index = {c: i for i, c in enumerate(self.case_ids)}
        return self.slice_labels[[index[c] for c in ids]]


def volume_input(volume: Volume, spec: InputSpec) -> np.ndarray:
    """(channels, slices, size, size) float32: canonical orientation, HU area-averaged onto the
    grid, then each window of ``spec.windows`` mapped to [0, 1]."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    from voxelwise.imaging.resample import reorient
    from voxelwise.imaging.windows import WINDOWS, apply_window

    canonical = reorient(volume)
    z, h, w = canonical.shape
    scale = spec.size / max(h, w)
    new = (spec.slices, max(1, round(h * scale)), max(1, round(w * scale)))
    tensor = torch.from_numpy(np.ascontiguousarray(canonical.array, dtype=np.float32))[None, None]
    mode = "area" if z >= spec.slices and scale <= 1 else "trilinear"
    hu = F.interpolate(tensor, size=new, mode=mode,
                       **({} if mode == "area" else {"align_corners": False}))[0, 0].numpy()
    out = np.zeros((len(spec.windows), spec.slices, spec.size, spec.size), np.float32)
    top, left = (spec.size - new[1]) // 2, (spec.size - new[2]) // 2
    for c, name in enumerate(spec.windows):
        out[c, :, top:top + new[1], left:left + new[2]] = apply_window(hu, *WINDOWS[name])
    return out


def slice_labels(label_map: Volume, slices: int, label: int = 1) -> np.ndarray:
    """(slices,) 0/1: does each input slice of `volume_input` (canonical orientation, the slice
    axis divided into ``slices`` equal slabs) hold ``label``."""
    from voxelwise.imaging.resample import reorient

    present = (np.asarray(reorient(label_map).array) == label).any(axis=(1, 2))
    z = len(present)
    if z >= slices:  # each output slice averages a slab: positive if any of its slices is
        edges = np.linspace(0, z, slices + 1)
        return np.array([present[int(np.floor(a)):max(int(np.ceil(b)), int(np.floor(a)) + 1)]
                         .any() for a, b in zip(edges[:-1], edges[1:], strict=True)], np.float32)
    centres = np.minimum(((np.arange(slices) + 0.5) * z / slices).astype(int), z - 1)
    return present[centres].astype(np.float32)


def _read_series(path: Path) -> Volume:
    from voxelwise.imaging.dicom import read_dicom_series

    return read_dicom_series(path)


def _load_volumes(table: LabelTable, spec: InputSpec, folder: Path
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs, slice labels or None) of every row's series folder (and label map)."""
    problems, arrays, labels = [], [], []
    maps = table.column("label_map") if "label_map" in table.rows[0] else [""] * len(table.lines)
    for line, name, label_map in zip(table.lines, table.column("dicom_dir"), maps, strict=True):
        path = folder / name
        if not name or not path.is_dir():
            problems.append(f"line {line}: series folder {name!r} not found")
            continue
        try:
            arrays.append(volume_input(_read_series(path), spec))
        except InputError as error:
            problems.append(f"line {line}: {name} cannot be read ({error.problem})")
            continue
        labels.append(np.full(spec.slices, np.nan, np.float32))
        if label_map:
            try:
                labels[-1] = _slice_labels_of(folder / label_map, arrays[-1].shape[1])
            except InputError as error:
                problems.append(f"line {line}: label map {label_map} ({error.problem})")
    if problems:
        raise problems_error(table.path, problems)
    stacked = np.stack(labels)
    return np.stack(arrays), None if np.isnan(stacked).all() else stacked


def _slice_labels_of(path: Path, slices: int) -> np.ndarray:
    from voxelwise.imaging.nifti import read_nifti

    if not path.is_file():
        raise InputError(path, "not found")
    return slice_labels(read_nifti(path), slices)


def _labels_path(data: Path, labels: Path | None) -> Path:
    if labels is not None:
        return labels
    if data.is_file():
        return data
    return data / "labels.csv"


def load_detection_data(data: str | Path, *, labels: str | Path | None = None,
                        findings: list[str] | None = None, ignore: tuple[str, ...] = (),
                        spec: InputSpec | None = None, key_path: Path | None = None,
                        db: str | None = None) -> DetectionData:
    """Load a folder of DICOM series, a repository or a folder of 2-D images (module docstring).

    ``data`` is a folder (or the labels CSV itself); ``labels`` defaults to ``DATA/labels.csv``.
    ``spec.kind`` is set from the source: ``image`` when the CSV has a file column.
    """
    data = Path(data)
    csv_path = _labels_path(data, None if labels is None else Path(labels))
    table = read_label_table(csv_path, known=ICH_FINDINGS, findings=findings, ignore=ignore)
    spec = spec or InputSpec()
    if (data / "repository.db").is_file() or db:
        return _from_repository(data, table, spec, key_path, db)
    folder = data if data.is_dir() else csv_path.parent
    if "dicom_dir" in table.rows[0]:
        spec = InputSpec("volume", spec.size, spec.slices, spec.windows)
        x, per_slice = _load_volumes(table, spec, folder)
        ids = table.column("series_instance_uid") if "series_instance_uid" in table.rows[0] \
            else table.column("dicom_dir")
        _check_unique(table, ids)
        return DetectionData(list(ids), patient_ids(table), x, table.labels, table.findings,
                             spec, csv_path, per_slice)
    else:
        spec = InputSpec("image", spec.size, 1, spec.windows)
        x = load_images(table, spec.size, folder)
        ids = table.column(file_column(table))
    _check_unique(table, ids)
    return DetectionData(list(ids), patient_ids(table), x, table.labels, table.findings, spec,
                         csv_path)


def _check_unique(table: LabelTable, ids: list[str]) -> None:
    seen: dict[str, int] = {}
    problems = []
    for line, case in zip(table.lines, ids, strict=True):
        if case in seen:
            problems.append(f"line {line}: {case} already listed on line {seen[case]}")
        seen.setdefault(case, line)
    if problems:
        raise problems_error(table.path, problems)


def _from_repository(root: Path, table: LabelTable, spec: InputSpec, key_path: Path | None,
                     db: str | None) -> DetectionData:
    from voxelwise.data.repository import load_series_volume
    from voxelwise.ingest.annotations import resolve_series
    from voxelwise.store import Repository

    if "series_instance_uid" not in table.rows[0]:
        raise InputError(table.path, "a repository's labels CSV needs a series_instance_uid "
                         "column (original or de-identified UIDs)")
    spec = InputSpec("volume", spec.size, spec.slices, spec.windows)
    ids, patients, arrays, problems = [], [], [], []
    with Repository.open(root, db) as repository, repository.session() as session:
        for line, uid in zip(table.lines, table.column("series_instance_uid"), strict=True):
            try:
                series = resolve_series(session, repository, uid, key_path)
                arrays.append(volume_input(load_series_volume(repository, series), spec))
            except InputError as error:
                problems.append(f"line {line}: {error.problem}")
                continue
            ids.append(series.series_instance_uid)
            patients.append(series.study.patient.pseudonym)
    if problems:
        raise problems_error(table.path, problems)
    return DetectionData(ids, patients, np.stack(arrays), table.labels, table.findings, spec,
                         table.path)
