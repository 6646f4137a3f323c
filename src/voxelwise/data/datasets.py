"""Segmentation datasets: a Medical Segmentation Decathlon / nnU-Net folder, or the repository.

A `SegmentationDataset` lists `Case`s (one image, one or more channels, and its label map) with
the patient each belongs to, so splits stay patient-level, and the dataset's declared channels
and classes. `load_case` reads one case and checks it: every channel and the label map on the
same grid, no label outside the declared classes; each problem an `InputError` naming the file.

Folder layout (nnU-Net v2; MSD v1's ``"training"`` list of image/label pairs is read too)::

    DATASET/
      dataset.json     {"channel_names": {"0": "CT"}, "labels": {"background": 0, "haematoma": 1,
                        "oedema": 2}, "numTraining": 8, "file_ending": ".nii.gz",
                        "patients": {"CASE": "PATIENT", ...}}      (patients: voxelwise's own key;
                        without it every case is its own patient)
      imagesTr/CASE_0000.nii.gz   channel 0 of CASE (CASE_0001... for more channels)
      labelsTr/CASE.nii.gz        integer label map on the image's grid

`export_msd_folder` writes the head-CT phantom in this layout; `repository_dataset` lists the
QC-passed series of a study repository that carry a label-map annotation.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxelwise.errors import InputError
from voxelwise.imaging.volume import Volume

DATASET_JSON = "dataset.json"
PHANTOM_CLASSES = {0: "background", 1: "haematoma", 2: "oedema"}


@dataclass(frozen=True)
class Case:
    """One image (its channel files, or a repository series) and its label map."""

    case_id: str
    patient: str
    images: tuple[str, ...]          # file paths, or the series UID in a repository dataset
    label: str | None                # file path, or the annotation id in a repository dataset
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class SegmentationDataset:
    """Cases with their patients, the channel names and the declared classes (0 = background)."""

    name: str
    root: Path
    kind: str                        # "folder" | "repository"
    channels: list[str]
    classes: dict[int, str]
    cases: list[Case]
    db: str | None = None            # database URL of a repository dataset

    def describe(self) -> dict[str, Any]:
        """What plan.json records as its ``dataset``."""
        return {"name": self.name, "path": str(self.root), "kind": self.kind,
                "cases": len(self.cases), "patients": len({c.patient for c in self.cases})}

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise InputError(self.root, f"no case {case_id!r} in the dataset")


@dataclass
class LoadedCase:
    case: Case
    images: list[Volume]
    label: Volume | None


# ------------------------------------------------------------------------------ folder datasets
def _read_dataset_json(root: Path) -> dict[str, Any]:
    path = root / DATASET_JSON
    if not path.is_file():
        raise InputError(root, f"not a dataset folder: no {DATASET_JSON} (expected imagesTr/, "
                         "labelsTr/ and dataset.json, the MSD / nnU-Net layout)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise InputError(path, f"is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise InputError(path, "must hold a JSON object")
    return data


def _declared_classes(data: dict[str, Any], path: Path) -> dict[int, str]:
    labels = data.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise InputError(path, "declares no 'labels' (e.g. {\"background\": 0, \"lesion\": 1})")
    try:
        if all(str(key).lstrip("-").isdigit() for key in labels):   # MSD v1: {"0": "name"}
            classes = {int(key): str(name) for key, name in labels.items()}
        else:                                                      # nnU-Net v2: {"name": 0}
            classes = {int(value): str(name) for name, value in labels.items()}
    except (TypeError, ValueError) as error:
        raise InputError(path, f"'labels' must map names to integers: {error}") from error
    if 0 not in classes:
        raise InputError(path, "'labels' must declare the background as 0")
    return dict(sorted(classes.items()))


def _channel_names(data: dict[str, Any], path: Path) -> list[str]:
    names = data.get("channel_names") or data.get("modality")
    if not isinstance(names, dict) or not names:
        raise InputError(path, "declares no 'channel_names' (e.g. {\"0\": \"CT\"})")
    return [str(names[key]) for key in sorted(names, key=lambda k: int(k))]


def _folder_cases(root: Path, data: dict[str, Any], channels: int) -> list[Case]:
    ending = str(data.get("file_ending", ".nii.gz"))
    patients = data.get("patients") or {}
    metas = data.get("case_meta") or {}
    if isinstance(data.get("training"), list) and data["training"]:   # MSD v1
        if channels != 1:
            raise InputError(root / DATASET_JSON, "multi-channel MSD v1 images (4-D files) are "
                             "not read; split them into CASE_0000, CASE_0001... files")
        pairs = [(root / item["image"], root / item["label"]) for item in data["training"]]
        cases = [(p[1].name.removesuffix(ending), (str(p[0]),), str(p[1])) for p in pairs]
    else:
        labels = sorted((root / "labelsTr").glob(f"*{ending}"))
        cases = []
        for label in labels:
            case_id = label.name.removesuffix(ending)
            images = tuple(str(root / "imagesTr" / f"{case_id}_{k:04d}{ending}")
                           for k in range(channels))
            cases.append((case_id, images, str(label)))
    return [Case(case_id, str(patients.get(case_id, case_id)), images, label,
                 dict(metas.get(case_id, {}))) for case_id, images, label in cases]


def open_folder_dataset(root: str | Path) -> SegmentationDataset:
    """The MSD / nnU-Net folder ``root`` (layout: module docstring); files are checked on load."""
    root = Path(root).absolute()
    data = _read_dataset_json(root)
    path = root / DATASET_JSON
    channels = _channel_names(data, path)
    classes = _declared_classes(data, path)
    cases = _folder_cases(root, data, len(channels))
    if not cases:
        raise InputError(root, "empty dataset: no label maps in labelsTr/")
    for case in cases:
        for image in case.images:
            if not Path(image).is_file():
                raise InputError(image, f"image of case {case.case_id} not found")
    return SegmentationDataset(str(data.get("name") or root.name), root, "folder", channels,
                               classes, cases)


# ------------------------------------------------------------------------------ repository
def repository_dataset(repository_root: str | Path, db: str | None = None,
                       channel: str = "CT") -> SegmentationDataset:
    """Series of a study repository that passed QC (or were accepted) and carry a label map."""
    from sqlalchemy import select

    from voxelwise.store import QC_OK, Annotation, AnnotationKind, Repository, Series

    root = Path(repository_root).absolute()
    cases: list[Case] = []
    classes: dict[int, str] = {0: "background"}
    with Repository.open(root, db) as repository, repository.session() as session:
        annotations = session.scalars(
            select(Annotation).join(Series).where(
                Annotation.kind.in_([AnnotationKind.LABEL_MAP.value, AnnotationKind.SEG.value]),
                Series.qc_status.in_([s.value for s in QC_OK]), Series.quarantined.is_(False))
            .order_by(Series.series_instance_uid, Annotation.id)).all()
        seen: set[str] = set()
        for annotation in annotations:
            series = annotation.series
            if series.series_instance_uid in seen:  # the first label map of a series
                continue
            seen.add(series.series_instance_uid)
            classes |= {int(k): str(v) for k, v in (annotation.label_names or {}).items()}
            study = series.study
            cases.append(Case(
                f"S{series.id:06d}", study.patient.pseudonym, (series.series_instance_uid,),
                str(annotation.id),
                {"center": study.patient.center.code,
                 "days_since_admission": study.days_since_first_study}))
    if not cases:
        raise InputError(root, "empty dataset: no QC-passed series with a label-map annotation")
    return SegmentationDataset(root.name, root, "repository", [channel], classes, cases, db)


def open_dataset(source: str | Path | SegmentationDataset,
                 db: str | None = None) -> SegmentationDataset:
    """A dataset folder (has dataset.json) or a study repository (has repository.db or --db)."""
    if isinstance(source, SegmentationDataset):
        return source
    root = Path(source)
    if (root / DATASET_JSON).is_file():
        return open_folder_dataset(root)
    if (root / "repository.db").is_file() or (db and root.is_dir()):
        return repository_dataset(root, db)
    if not root.exists():
        raise InputError(root, "dataset not found")
    raise InputError(root, "neither a dataset folder (dataset.json, imagesTr/, labelsTr/) nor a "
                     "study repository (repository.db)")


# ------------------------------------------------------------------------------ loading cases
def _geometry(volume: Volume) -> str:
    spacing = ", ".join(f"{s:.3g}" for s in volume.spacing)
    origin = ", ".join(f"{o:.1f}" for o in volume.origin)
    return f"shape {volume.shape}, spacing ({spacing}) mm, origin ({origin}) mm"


def check_case(dataset: SegmentationDataset, loaded: LoadedCase) -> None:
    """Every channel and the label map on one grid; no label outside the declared classes."""
    reference = loaded.images[0]
    names = [*loaded.case.images, loaded.case.label]
    for name, image in zip(names[1:], loaded.images[1:], strict=False):
        if not image.same_grid(reference, tolerance_mm=0.01 + 0.01 * min(reference.spacing)):
            raise InputError(name, f"channel grid ({_geometry(image)}) differs from channel 0 "
                             f"({_geometry(reference)})")
    label = loaded.label
    if label is None:
        return
    where = loaded.case.label if dataset.kind == "folder" else \
        f"{dataset.root} (annotation {loaded.case.label}, series {loaded.case.images[0]})"
    if not label.same_grid(reference, tolerance_mm=0.01 + 0.01 * min(reference.spacing)):
        raise InputError(where, f"label map geometry ({_geometry(label)}) differs from its image "
                         f"{Path(loaded.case.images[0]).name} ({_geometry(reference)})")
    if not np.issubdtype(label.array.dtype, np.integer):
        if not np.all(np.mod(label.array, 1) == 0):
            raise InputError(where, "label map holds non-integer values")
    values = set(np.unique(label.array).astype(int).tolist())
    unknown = sorted(values - set(dataset.classes))
    if unknown:
        raise InputError(where, f"labels {unknown} are not among the dataset's declared classes "
                         f"{sorted(dataset.classes)} ({dataset.root / DATASET_JSON})")


def load_case(dataset: SegmentationDataset, case: Case, *, check: bool = True) -> LoadedCase:
    """Read a case's channels and label map (as stored; callers reorient and resample)."""
    if dataset.kind == "repository":
        loaded = _load_repository_case(dataset, case)
    else:
        from voxelwise.imaging.nifti import read_nifti

        images = [read_nifti(path) for path in case.images]
        label = None if case.label is None else read_nifti(case.label)
        loaded = LoadedCase(case, images, label)
    if check:
        check_case(dataset, loaded)
    return loaded


def _load_repository_case(dataset: SegmentationDataset, case: Case) -> LoadedCase:
    from voxelwise.data.repository import find_series, load_label_map, load_series_volume
    from voxelwise.store import Annotation, Repository

    with Repository.open(dataset.root, dataset.db) as repository, \
            repository.session() as session:
        series = find_series(session, case.images[0])
        image = load_series_volume(repository, series)
        annotation = session.get(Annotation, int(case.label)) if case.label else None
        label = None if annotation is None else load_label_map(repository, annotation)
    return LoadedCase(case, [image], label)


def has_foreground(loaded: LoadedCase) -> bool:
    return loaded.label is not None and bool(np.any(loaded.label.array > 0))


# ------------------------------------------------------------------------------ phantom export
def export_msd_folder(phantom_root: str | Path, out_dir: str | Path, *,
                      overwrite: bool = False) -> SegmentationDataset:
    """Write a head-CT phantom as an nnU-Net folder (one case per study, patients recorded).

    Images are the DICOM series as voxelwise reads them; labels are the phantom's label maps.
    The folder is written to a staging folder and moved into place at the end.
    """
    from voxelwise.fileio import replace_directory, write_text_atomic
    from voxelwise.imaging.dicom import read_dicom_series
    from voxelwise.imaging.nifti import write_nifti

    phantom_root, out = Path(phantom_root), Path(out_dir)
    table = phantom_root / "labels.csv"
    if not table.is_file():
        raise InputError(phantom_root, "not a head-CT phantom (no labels.csv)")
    if (out / DATASET_JSON).is_file() and not overwrite:
        return open_folder_dataset(out)
    rows = list(csv.DictReader(table.open(encoding="utf-8")))
    if not rows:
        raise InputError(table, "lists no studies")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "imagesTr").mkdir(parents=True)
    (staging / "labelsTr").mkdir()
    patients, metas = {}, {}
    for row in rows:
        case_id = f"{row['patient_id']}_t{row['timepoint']}"
        write_nifti(read_dicom_series(phantom_root / row["dicom_dir"]),
                    staging / "imagesTr" / f"{case_id}_0000.nii.gz")
        shutil.copyfile(phantom_root / row["label_map"], staging / "labelsTr" / f"{case_id}.nii.gz")
        patients[case_id] = row["patient_id"]
        metas[case_id] = {"center": row["center"], "timepoint": int(row["timepoint"]),
                          "days_since_admission": int(row["days_since_admission"]),
                          "series_instance_uid": row["series_instance_uid"]}
    description = {
        "name": f"head-ct-phantom-{phantom_root.name}", "channel_names": {"0": "CT"},
        "labels": {name: value for value, name in PHANTOM_CLASSES.items()},
        "numTraining": len(rows), "file_ending": ".nii.gz", "patients": patients,
        "case_meta": metas, "source": str(phantom_root),
    }
    write_text_atomic(staging / DATASET_JSON, json.dumps(description, indent=1))
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_directory(staging, out)
    return open_folder_dataset(out)
