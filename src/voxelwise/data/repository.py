"""Reading images and annotations back out of the study repository as `Volume`s."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from voxelwise.errors import InputError
from voxelwise.imaging.dicom import read_dicom_series
from voxelwise.imaging.nifti import read_nifti
from voxelwise.imaging.volume import Volume
from voxelwise.store import Annotation, Repository, Series


def find_series(session: Session, series_instance_uid: str) -> Series:
    """The stored series with this (de-identified) Series Instance UID."""
    series = session.scalar(select(Series).where(
        Series.series_instance_uid == series_instance_uid))
    if series is None:
        raise InputError(None, f"no series {series_instance_uid} in the repository")
    return series


def load_series_volume(repository: Repository, series: Series) -> Volume:
    """The series as voxelwise reads it (sorted, in HU, geometry corrected) from stored files."""
    paths = [repository.objects.path_of(i.file_sha256) for i in series.instances
             if i.file_sha256 and not i.quarantined]
    if not paths:
        raise InputError(None, f"series {series.series_instance_uid} has no stored instance "
                         "that passed de-identification")
    return read_dicom_series(paths)


def load_label_map(repository: Repository, annotation: Annotation) -> Volume:
    """A stored label-map annotation (kind ``label-map`` or ``seg``) as an integer Volume."""
    if annotation.file_sha256 is None:
        raise InputError(None, f"annotation {annotation.id} holds points, not a label map")
    return read_nifti(repository.objects.path_of(annotation.file_sha256))
