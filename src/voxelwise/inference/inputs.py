"""What `voxelwise infer` reads: a DICOM series folder, a NIfTI file or a repository series."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voxelwise.errors import InputError
from voxelwise.imaging.volume import Volume

if TYPE_CHECKING:
    from voxelwise.store import Repository

_NIFTI = (".nii", ".nii.gz")


@dataclass
class InferenceInput:
    """An image to segment, the name its outputs get, and its DICOM files (slice order)."""

    image: Volume
    name: str
    kind: str
    """"dicom", "nifti" or "repository"."""
    source: str
    source_files: list[Path] = field(default_factory=list)
    read_seconds: float | None = None

    @property
    def series_instance_uid(self) -> str | None:
        return self.image.meta.get("series_instance_uid")


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "image"


def read_dicom_input(folder: Path, series_uid: str | None = None) -> InferenceInput:
    """One series of a DICOM folder; a folder holding several needs ``series_uid``."""
    from voxelwise.imaging.dicom import read_dicom_series, scan_dicom_folder

    scan = scan_dicom_folder(folder)
    if not scan.series:
        raise InputError(folder, "no DICOM image series found")
    if series_uid is None and len(scan.series) > 1:
        listed = "; ".join(s.summary() for s in scan.series)
        raise InputError(folder, f"{len(scan.series)} series found; choose one with "
                         f"--series-uid: {listed}")
    chosen = scan.series[0] if series_uid is None else scan.get(series_uid)
    if chosen is None:
        found = ", ".join(s.series_instance_uid for s in scan.series)
        raise InputError(folder, f"no series {series_uid}; found: {found}")
    image = read_dicom_series(chosen)
    name = folder.name if series_uid is None else series_uid
    return InferenceInput(image, _safe_name(name), "dicom", str(folder),
                          [Path(f) for f in image.meta["files"]])


def read_nifti_input(path: Path) -> InferenceInput:
    """A 3-D NIfTI image (anything else is an `InputError` naming the file)."""
    from voxelwise.imaging.nifti import read_nifti

    image = read_nifti(path)
    name = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem
    return InferenceInput(image, _safe_name(name), "nifti", str(path))


def read_repository_input(repository: Repository, series_uid: str) -> InferenceInput:
    """A stored series (by its de-identified Series Instance UID) as voxelwise reads it."""
    from voxelwise.data.repository import find_series, load_series_volume

    with repository.session() as session:
        series = find_series(session, series_uid)
        image = load_series_volume(repository, series)
    return InferenceInput(image, _safe_name(series_uid), "repository",
                          f"repository {repository.root} series {series_uid}",
                          [Path(f) for f in image.meta["files"]])


def read_input(path: str | Path | None = None, *, series_uid: str | None = None,
               repository: Repository | None = None) -> InferenceInput:
    """A DICOM folder, a NIfTI file, or (``path=None``) a repository series."""
    started = time.perf_counter()
    if path is None:
        if repository is None or not series_uid:
            raise InputError(None, "give an input (DICOM folder or NIfTI file) or --repo with "
                             "--series-uid")
        source = read_repository_input(repository, series_uid)
    elif Path(path).is_dir():
        source = read_dicom_input(Path(path), series_uid)
    elif not Path(path).exists():
        raise InputError(path, "no such file or folder")
    elif Path(path).name.endswith(_NIFTI):
        source = read_nifti_input(Path(path))
    else:
        raise InputError(path, "expected a DICOM series folder or a .nii/.nii.gz file")
    source.read_seconds = round(time.perf_counter() - started, 3)
    return source
