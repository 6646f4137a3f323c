"""Writing a `Volume` in Hounsfield units as a DICOM CT Image Storage series.

One file per axis-0 slice. The geometry comes from the Volume: ``direction[:, 2]`` is the row
cosine and ``direction[:, 1]`` the column cosine of Image Orientation (Patient), axis 0 is the
stacking direction (it need not be orthogonal to the image plane: a gantry-tilted stack is
written as the scanner would write it). Pixels are stored as signed 16-bit integers with a
Rescale Slope/Intercept chosen so that the values fit:

* integer-valued HU whose range fits 16 bits: slope 1 (intercept -1024 as most scanners use, or
  another integer offset), so values come back exactly;
* anything else (fractional HU, or a range wider than 65,535): the finest slope that fits, so
  values come back within half a slope.

The CT Image IOD is not among highdicom's constructors (it builds SEG, SR, SC and legacy
enhanced objects), so the datasets are assembled here from the standard's modules.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from pydicom.datadict import dictionary_has_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    JPEG2000,
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    generate_uid,
)

from voxelwise.fileio import atomic_path
from voxelwise.imaging.volume import Volume

_NATIVE_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)

_COMPUTED = frozenset({
    "SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient",
    "PixelSpacing", "SliceLocation", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
    "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation", "PixelData",
    "RescaleSlope", "RescaleIntercept",
})
"""Keywords computed from the Volume; ``attributes`` may not override them."""

_INT16 = (-32768, 32767)
_J2K_MIN_SIZE = 32


def rescale_for_int16(array: np.ndarray) -> tuple[float, float]:
    """(RescaleSlope, RescaleIntercept) so that ``(array - intercept) / slope`` fits int16."""
    array = np.asarray(array)
    low, high = float(np.min(array)), float(np.max(array))
    span = high - low
    integral = np.issubdtype(array.dtype, np.integer) or bool(np.all(np.mod(array, 1) == 0))
    if integral and span <= _INT16[1] - _INT16[0]:
        for intercept in (-1024.0, 0.0):
            if low - intercept >= _INT16[0] and high - intercept <= _INT16[1]:
                return 1.0, intercept
        return 1.0, low - _INT16[0]
    if span == 0:
        return 1.0, float(_ds(low))
    # the finest slope that fits, rounded up to the 6 digits the file keeps
    slope = float(f"{span / (_INT16[1] - _INT16[0] - 1) * (1 + 1e-5):.6g}")
    return slope, float(_ds(low + slope * _INT16[1]))  # stored values from -32767 up


def _stored_values(array: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    if slope == 1 and np.issubdtype(array.dtype, np.integer):  # exact and 3x faster
        return (array.astype(np.int64) - int(intercept)).astype(np.int16)
    stored = np.rint((np.asarray(array, dtype=np.float64) - intercept) / slope)
    return np.clip(stored, *_INT16).astype(np.int16)


def _value(value: object) -> object:
    """Python dates and times as DICOM DA/TM/DT strings; anything else unchanged."""
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y%m%d%H%M%S")
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, datetime.time):
        return value.strftime("%H%M%S")
    return value


def _check_attributes(attributes: Mapping[str, object]) -> None:
    for keyword in attributes:
        if not dictionary_has_tag(keyword):
            raise ValueError(f"{keyword!r} is not a DICOM keyword")
        if keyword in _COMPUTED:
            raise ValueError(f"{keyword} is computed from the Volume and cannot be overridden")


def _series_attributes(volume: Volume, series_number: int, slope: float,
                       intercept: float) -> dict[str, object]:
    """Attributes shared by every slice (before ``attributes`` overrides)."""
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    return {
        "SpecificCharacterSet": "ISO_IR 192",
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "SOPClassUID": CTImageStorage,
        "StudyDate": date, "SeriesDate": date, "ContentDate": date, "AcquisitionDate": date,
        "StudyTime": time, "SeriesTime": time, "ContentTime": time, "AcquisitionTime": time,
        "AccessionNumber": "", "Modality": "CT", "Manufacturer": "voxelwise",
        "ReferringPhysicianName": "", "SeriesDescription": "",
        "PatientName": "", "PatientID": "", "PatientBirthDate": "", "PatientSex": "",
        "BodyPartExamined": "HEAD", "KVP": "120", "SliceThickness": _slice_thickness(volume),
        "SpacingBetweenSlices": _slice_thickness(volume),
        "GantryDetectorTilt": _ds(round(_tilt_deg(volume), 2)),
        "PatientPosition": "HFS", "StudyInstanceUID": generate_uid(),
        "SeriesInstanceUID": generate_uid(), "StudyID": "", "SeriesNumber": series_number,
        "AcquisitionNumber": 1, "FrameOfReferenceUID": generate_uid(),
        "PositionReferenceIndicator": "",
        "ImageOrientationPatient": _ds_list([*volume.direction[:, 2], *volume.direction[:, 1]]),
        "PixelSpacing": _ds_list([volume.spacing[1], volume.spacing[2]]),
        "SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2",
        "Rows": volume.shape[1], "Columns": volume.shape[2], "BitsAllocated": 16,
        "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 1,
        "WindowCenter": "40", "WindowWidth": "400",
        "RescaleIntercept": _ds(intercept), "RescaleSlope": _ds(slope), "RescaleType": "HU",
    }


def _ds(value: float) -> str:
    """A decimal string of at most 16 characters (the DS limit)."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6g}"


def _ds_list(values: list[float]) -> list[str]:
    return [_ds(round(float(v), 8)) for v in values]


def _normal(volume: Volume) -> np.ndarray:
    normal = np.cross(volume.direction[:, 2], volume.direction[:, 1])
    return normal / np.linalg.norm(normal)


def _tilt_deg(volume: Volume) -> float:
    """Angle between the stacking axis and the image normal: the gantry tilt, in degrees."""
    cosine = abs(float(np.dot(volume.direction[:, 0], _normal(volume))))
    return float(np.degrees(np.arccos(min(cosine, 1.0))))


def _slice_thickness(volume: Volume) -> str:
    """Distance between slices along the image normal (equal to spacing[0] without tilt)."""
    return _ds(abs(float(np.dot(volume.direction[:, 0], _normal(volume)))) * volume.spacing[0])


def _file_meta(dataset: Dataset, transfer_syntax_uid: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax_uid
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def _slice_dataset(shared: Mapping[str, object], volume: Volume, index: int,
                   stored: np.ndarray) -> Dataset:
    dataset = Dataset()
    for keyword, value in shared.items():
        setattr(dataset, keyword, value)
    position = (np.asarray(volume.origin)
                + index * volume.spacing[0] * volume.direction[:, 0])
    # derived from the series and the slice, so writing the same series twice gives the same
    # files (a phantom with a seed is reproducible byte for byte)
    dataset.SOPInstanceUID = generate_uid(entropy_srcs=[str(shared["SeriesInstanceUID"]),
                                                        str(index)])
    dataset.InstanceNumber = index + 1
    dataset.ImagePositionPatient = _ds_list(list(position))
    dataset.SliceLocation = _ds(round(float(np.dot(position, _normal(volume))), 6))
    dataset.PixelData = stored.tobytes()
    dataset["PixelData"].VR = "OW"
    return dataset


def _check_transfer_syntax(transfer_syntax_uid: str, volume: Volume) -> UID:
    from pydicom.pixels import get_encoder

    uid = UID(transfer_syntax_uid)
    if uid in _NATIVE_SYNTAXES:
        return uid
    if uid in (JPEG2000Lossless, JPEG2000) and min(volume.shape[1:]) < _J2K_MIN_SIZE:
        raise ValueError(f"{uid.name}: openjpeg encodes images of at least {_J2K_MIN_SIZE} x "
                         f"{_J2K_MIN_SIZE} pixels (six wavelet levels); got "
                         f"{volume.shape[1]} x {volume.shape[2]}")
    try:
        encoder = get_encoder(uid)
    except NotImplementedError as error:
        raise ValueError(f"pydicom cannot encode {uid.name or uid}") from error
    if not encoder.is_available:
        raise ValueError(f"no installed plugin can encode {uid.name}; "
                         f"install one of {encoder.missing_dependencies}")
    return uid


def write_dicom_series(
    volume: Volume,
    folder: str | Path,
    attributes: dict[str, object] | None = None,
    *,
    transfer_syntax_uid: str = ExplicitVRLittleEndian,
    file_prefix: str = "IM",
    series_number: int = 1,
) -> list[Path]:
    """Write ``volume`` (HU) as a CT series, one file per axis-0 slice; return the paths.

    ``attributes`` sets or overrides any DICOM keyword on every slice (PatientName, PatientID,
    StudyDate, StudyInstanceUID, SeriesDescription, InstitutionName...). Compressed transfer
    syntaxes that pydicom can encode (RLE Lossless, JPEG-LS Lossless, JPEG 2000 Lossless) go
    through ``Dataset.compress``. Each file is written atomically.
    """
    attributes = dict(attributes or {})
    _check_attributes(attributes)
    uid = _check_transfer_syntax(transfer_syntax_uid, volume)
    if volume.array.size == 0:
        raise ValueError("cannot write an empty volume")
    slope, intercept = rescale_for_int16(volume.array)
    stored = _stored_values(volume.array, slope, intercept)
    shared = _series_attributes(volume, series_number, slope, intercept)
    shared.update({keyword: _value(value) for keyword, value in attributes.items()})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(4, len(str(volume.shape[0])))
    paths = []
    for index in range(volume.shape[0]):
        dataset = _slice_dataset(shared, volume, index, stored[index])
        dataset.file_meta = _file_meta(dataset, ExplicitVRLittleEndian)
        if uid not in _NATIVE_SYNTAXES:
            dataset.compress(uid, stored[index], generate_instance_uid=False)
        else:
            dataset.file_meta.TransferSyntaxUID = uid
        path = folder / f"{file_prefix}{index + 1:0{digits}d}.dcm"
        with atomic_path(path) as temporary:
            dataset.save_as(temporary, enforce_file_format=True)
        paths.append(path)
    return paths
