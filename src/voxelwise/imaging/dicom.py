"""Reading DICOM image series as `Volume`s, robust to what clinical folders really hold.

Three steps, each usable on its own:

1. `scan_dicom_folder` reads headers only and groups files into series (`DicomScan`), noting
   every `Problem` found: files that are not DICOM, images without pixel data or cut short,
   localizers, images of another size, missing slices, uneven spacing, gantry tilt...
2. `read_dicom_slices` decodes one series into a `DicomStack`: the slices in HU, sorted by their
   position along the slice normal (never by file name or Instance Number), with a
   `DicomSeriesReport` of the geometry checks.
3. `DicomStack.to_volume` (or `read_dicom_series`, which does 2 and 3) returns a `Volume`; when
   the slices do not sit on a regular grid (gantry tilt, a missing slice, uneven spacing) it is
   resampled onto an orthogonal regular grid, and ``meta["resampled"]`` says so.

Geometry follows `voxelwise.imaging.volume`: axes (slice, row, column); axis 1 runs along the
column cosine ``IOP[3:6]`` with spacing ``PixelSpacing[0]``, axis 2 along the row cosine
``IOP[0:3]`` with spacing ``PixelSpacing[1]``; the slice normal is ``cross(row, column)``.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from voxelwise.errors import InputError
from voxelwise.imaging.volume import GeometryError, Volume

TILT_TOLERANCE_DEG = 0.05
"""A stack whose slice step leans more than this from the slice normal is gantry tilted."""
GAP_FACTOR = 1.5
"""A gap larger than this many median spacings is a missing slice."""
SPACING_TOLERANCE = 0.01
SPACING_TOLERANCE_MM = 0.01
"""A gap is uneven when it differs from the median by more than 1% and more than 0.01 mm."""
DUPLICATE_TOLERANCE_MM = 0.01
"""Slices closer than this along the normal share one position."""
ORIENTATION_TOLERANCE = 1e-3

_PIXEL_DATA = (0x7FE0, 0x0010)
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT"}
_NAMES_SHOWN = 4

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------------- records
@dataclass
class Problem:
    """Something wrong with the input, the files involved, and the series it belongs to."""

    kind: str
    message: str
    files: list[str] = field(default_factory=list)
    series_instance_uid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "files": list(self.files),
                "series_instance_uid": self.series_instance_uid}


@dataclass
class DicomInstance:
    """The header values of one file that reading and checking a series need."""

    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    instance_number: int | None
    image_position_patient: tuple[float, float, float] | None
    image_orientation_patient: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    rows: int
    columns: int
    image_type: tuple[str, ...]
    has_pixel_data: bool
    pixel_bytes: int | None
    """Bytes of native pixel data present in the file (None when encapsulated or absent)."""
    expected_pixel_bytes: int
    number_of_frames: int
    samples_per_pixel: int
    slice_thickness: float | None
    spacing_between_slices: float | None
    gantry_detector_tilt: float | None


@dataclass
class DicomSeriesInfo:
    """One series found by a scan: its identity, key header values and files."""

    series_instance_uid: str
    study_instance_uid: str
    modality: str
    series_description: str
    series_number: int | None
    instances: list[DicomInstance]
    attributes: dict[str, Any] = field(default_factory=dict)
    n_images: int = 0
    """Image slices usable after the header checks (localizers, odd sizes... excluded)."""

    @property
    def files(self) -> list[Path]:
        return sorted(instance.path for instance in self.instances)

    def summary(self) -> str:
        """One line for a person: number, modality, description, slices and UID."""
        return (f"series {self.series_number if self.series_number is not None else '-'} "
                f"{self.modality} '{self.series_description}': {self.n_images} image slices "
                f"in {len(self.instances)} files, UID {self.series_instance_uid}")

    def as_dict(self) -> dict[str, Any]:
        return {"series_instance_uid": self.series_instance_uid,
                "study_instance_uid": self.study_instance_uid, "modality": self.modality,
                "series_description": self.series_description,
                "series_number": self.series_number, "n_images": self.n_images,
                "n_files": len(self.instances), "files": [str(f) for f in self.files]}


@dataclass
class DicomScan:
    """What a folder holds: its series (most image slices first) and every problem found."""

    series: list[DicomSeriesInfo]
    problems: list[Problem]

    def get(self, series_instance_uid: str) -> DicomSeriesInfo | None:
        return next((s for s in self.series if s.series_instance_uid == series_instance_uid),
                    None)

    def as_dict(self) -> dict[str, Any]:
        return {"series": [s.as_dict() for s in self.series],
                "problems": [p.as_dict() for p in self.problems]}


@dataclass
class DicomSeriesReport:
    """Geometry of a sorted slice stack and the problems the checks found."""

    series_instance_uid: str
    files: list[Path]
    image_position_patient: np.ndarray
    """(N, 3) Image Position (Patient) of the slices, in stack order."""
    row_cosine: np.ndarray
    column_cosine: np.ndarray
    normal: np.ndarray
    pixel_spacing: tuple[float, float]
    positions_mm: np.ndarray
    """Position of each slice along the normal, ascending."""
    slice_spacing_mm: float
    gantry_tilt_deg: float
    missing_slices: int
    uneven_spacing: bool
    problems: list[Problem]

    @property
    def regular(self) -> bool:
        """True when the slices sit on a regular grid that is orthogonal to them."""
        tilted = len(self.files) > 1 and self.gantry_tilt_deg > TILT_TOLERANCE_DEG
        return not (tilted or self.missing_slices or self.uneven_spacing)

    def as_dict(self) -> dict[str, Any]:
        return {"series_instance_uid": self.series_instance_uid, "n_slices": len(self.files),
                "slice_spacing_mm": self.slice_spacing_mm,
                "pixel_spacing_mm": list(self.pixel_spacing),
                "gantry_tilt_deg": self.gantry_tilt_deg, "missing_slices": self.missing_slices,
                "uneven_spacing": self.uneven_spacing,
                "problems": [p.as_dict() for p in self.problems]}


# ---------------------------------------------------------------------------------- helpers
def file_names_text(paths: Sequence[PathLike]) -> str:
    """The first few file names of ``paths`` and how many more, for a problem message."""
    names = [Path(p).name for p in paths]
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown if len(names) <= _NAMES_SHOWN else f"{shown} and {len(names) - _NAMES_SHOWN} more"


def _files(paths: Sequence[PathLike]) -> list[str]:
    return [str(p) for p in paths]


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count and np.all(np.isfinite(numbers)) else None


def header_number(dataset: pydicom.Dataset, keyword: str, kind: type = float) -> Any:
    """``kind(dataset.keyword)``, or ``None`` when the element is missing, empty or invalid."""
    try:
        value = dataset.get(keyword)
        return None if value in (None, "") else kind(value)
    except (TypeError, ValueError):
        return None


def _strings(value: Any) -> tuple[str, ...]:
    """A multi-valued CS element as upper-case strings (a single value comes back as a str)."""
    values = [value] if isinstance(value, str) else list(value or ())
    return tuple(str(v).upper() for v in values)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


# ---------------------------------------------------------------------------------- scanning
def _looks_like_raw_dataset(fp: Any) -> bool:
    """A DICOM dataset without the 128-byte preamble starts with a group 0002 or 0008 tag."""
    fp.seek(0)
    start = fp.read(2)
    fp.seek(0)
    return start in (b"\x02\x00", b"\x08\x00")


def _read_header_dataset(fp: Any) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True)
    except InvalidDicomError:
        if not _looks_like_raw_dataset(fp):
            raise
    try:
        dataset = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    except Exception as error:  # garbage parsed as DICOM fails in many ways
        raise InvalidDicomError(str(error)) from error
    if "SOPClassUID" not in dataset:
        raise InvalidDicomError("no SOP Class UID")
    return dataset


def _pixel_element(fp: Any, dataset: pydicom.Dataset) -> tuple[bool, int | None]:
    """(has Pixel Data, native bytes present) from the element where the header read stopped."""
    start, size = fp.tell(), os.fstat(fp.fileno()).st_size
    head = fp.read(12)
    if len(head) < 8 or struct.unpack("<HH", head[:4]) != _PIXEL_DATA:
        return False, None
    syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    implicit = syntax is not None and syntax.is_implicit_VR
    if implicit:
        length, header = struct.unpack("<I", head[4:8])[0], 8
    elif head[4:6] in _LONG_VRS:
        length, header = struct.unpack("<I", head[8:12])[0], 12
    else:
        length, header = struct.unpack("<H", head[6:8])[0], 8
    if length == 0xFFFFFFFF:  # encapsulated: checked when decoded
        return True, None
    return True, max(0, min(length, size - start - header))


def instance_from_header(path: Path, dataset: pydicom.Dataset, has_pixels: bool,
                         pixel_bytes: int | None) -> DicomInstance:
    """The `DicomInstance` of the file ``path`` whose header is ``dataset``.

    ``has_pixels``: it has a pixel data element; ``pixel_bytes``: the native pixel bytes present
    (``None`` when encapsulated or unknown).
    """
    rows = header_number(dataset, "Rows", int) or 0
    columns = header_number(dataset, "Columns", int) or 0
    frames = header_number(dataset, "NumberOfFrames", int) or 1
    samples = header_number(dataset, "SamplesPerPixel", int) or 1
    bits = header_number(dataset, "BitsAllocated", int) or 16
    return DicomInstance(
        path=path, sop_instance_uid=str(dataset.get("SOPInstanceUID", "")),
        series_instance_uid=str(dataset.get("SeriesInstanceUID", "")),
        instance_number=header_number(dataset, "InstanceNumber", int),
        image_position_patient=_floats(dataset.get("ImagePositionPatient"), 3),
        image_orientation_patient=_floats(dataset.get("ImageOrientationPatient"), 6),
        pixel_spacing=_floats(dataset.get("PixelSpacing"), 2),
        rows=rows, columns=columns,
        image_type=_strings(dataset.get("ImageType")),
        has_pixel_data=has_pixels, pixel_bytes=pixel_bytes,
        expected_pixel_bytes=rows * columns * frames * samples * bits // 8,
        number_of_frames=frames, samples_per_pixel=samples,
        slice_thickness=header_number(dataset, "SliceThickness"),
        spacing_between_slices=header_number(dataset, "SpacingBetweenSlices"),
        gantry_detector_tilt=header_number(dataset, "GantryDetectorTilt"),
    )


def _scan_file(path: Path) -> tuple[DicomInstance | None, pydicom.Dataset | None,
                                    Problem | None]:
    try:
        with open(path, "rb") as fp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = _read_header_dataset(fp)
            has_pixels, pixel_bytes = _pixel_element(fp, dataset)
    except InvalidDicomError:
        return None, None, Problem("not-dicom", f"{path.name}: not a DICOM file; skipped",
                                   [str(path)])
    except Exception as error:  # a DICOM file that breaks off inside its header
        return None, None, Problem("truncated", f"{path.name}: unreadable DICOM header "
                                   f"({error}); skipped", [str(path)])
    if not dataset.get("SeriesInstanceUID"):
        return None, None, Problem("not-image", f"{path.name}: DICOM file without a Series "
                                   "Instance UID (e.g. a DICOMDIR); skipped", [str(path)])
    return instance_from_header(path, dataset, has_pixels, pixel_bytes), dataset, None


def _series_attributes(dataset: pydicom.Dataset) -> dict[str, Any]:
    keywords = ("PatientID", "StudyDate", "SeriesDate", "Manufacturer", "ManufacturerModelName",
                "BodyPartExamined", "ConvolutionKernel", "KVP", "SliceThickness",
                "PixelSpacing", "Rows", "Columns", "ImageOrientationPatient",
                "GantryDetectorTilt", "InstitutionName")
    values = {}
    for keyword in keywords:
        value = dataset.get(keyword)
        if value not in (None, ""):
            values[keyword] = [str(v) for v in value] if isinstance(value, Sequence) and \
                not isinstance(value, str) else str(value)
    return values


def series_from_header(dataset: pydicom.Dataset) -> DicomSeriesInfo:
    """A `DicomSeriesInfo` (no instances yet) from the header of one of its instances."""
    return DicomSeriesInfo(
        series_instance_uid=str(dataset.SeriesInstanceUID),
        study_instance_uid=str(dataset.get("StudyInstanceUID", "")),
        modality=str(dataset.get("Modality", "")),
        series_description=str(dataset.get("SeriesDescription", "")),
        series_number=header_number(dataset, "SeriesNumber", int), instances=[],
        attributes=_series_attributes(dataset),
    )


def _input_files(source: PathLike | Sequence[PathLike]) -> tuple[Path, list[Path]]:
    """(the path to name in errors, every file under ``source``) in a stable order."""
    if isinstance(source, str | os.PathLike):
        root = Path(source)
        if root.is_dir():
            return root, sorted(p for p in root.rglob("*") if p.is_file())
        if root.is_file():
            return root, [root]
        raise InputError(root, "no such file or folder")
    paths = [Path(p) for p in source]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(missing[0], "no such file")
    if not paths:
        raise InputError(None, "no DICOM files given")
    return Path(os.path.commonpath([p.parent for p in paths])), sorted(paths)


def scan_dicom_folder(source: PathLike | Sequence[PathLike]) -> DicomScan:
    """Find the DICOM series under a folder (recursively), a single file or a list of files.

    Headers only are read. Files are recognised by content, not by extension; the series are
    sorted with the one holding the most usable image slices first.
    """
    _, paths = _input_files(source)
    series: dict[str, DicomSeriesInfo] = {}
    problems: list[Problem] = []
    for path in paths:
        instance, dataset, problem = _scan_file(path)
        if problem is not None:
            problems.append(problem)
            continue
        info = series.get(instance.series_instance_uid) or series_from_header(dataset)
        series[info.series_instance_uid] = info
        info.instances.append(instance)
    ordered = sorted(series.values(), key=lambda s: s.series_instance_uid)
    for info in ordered:
        images, selection = select_images(info.instances)
        info.n_images = len(images)
        problems += [*selection, *_scan_geometry(info, images)]
    ordered.sort(key=lambda s: (-s.n_images, -len(s.instances)))
    return DicomScan(ordered, problems)


def _scan_geometry(info: DicomSeriesInfo, images: list[DicomInstance]) -> list[Problem]:
    if not images:
        return [Problem("no-images", f"series {info.series_instance_uid} "
                        f"({info.series_description!r}) holds no readable image slice",
                        _files(info.files), info.series_instance_uid)]
    return check_slice_geometry(images).problems


# ---------------------------------------------------------------------------------- selection
def _majority(values: list[Any]) -> Any:
    return Counter(values).most_common(1)[0][0]


def _split(instances: list[DicomInstance], rejected: Any, kind: str, why: str,
           problems: list[Problem]) -> list[DicomInstance]:
    """Keep instances for which ``rejected`` is false; report the others as one problem."""
    bad = [i for i in instances if rejected(i)]
    if bad:
        uid = bad[0].series_instance_uid
        paths = [i.path for i in bad]
        problems.append(Problem(kind, f"{len(bad)} file(s) {why}; skipped: "
                                f"{file_names_text(paths)}", _files(paths), uid))
    return [i for i in instances if not rejected(i)]


def _orientation_key(instance: DicomInstance) -> tuple[float, ...]:
    return tuple(np.round(instance.image_orientation_patient, 3))


def select_images(instances: list[DicomInstance]) -> tuple[list[DicomInstance], list[Problem]]:
    """The instances of one series that form its image stack, and why the others do not."""
    problems: list[Problem] = []
    keep = _split(instances, lambda i: not i.has_pixel_data, "no-pixel-data",
                  "hold no Pixel Data", problems)
    keep = _split(keep, lambda i: i.pixel_bytes is not None
                  and i.pixel_bytes < i.expected_pixel_bytes, "truncated",
                  "hold less pixel data than Rows x Columns x Bits Allocated need", problems)
    keep = _split(keep, lambda i: i.number_of_frames > 1 or i.samples_per_pixel != 1,
                  "unsupported", "are multi-frame or colour images", problems)
    keep = _split(keep, lambda i: None in (i.image_position_patient,
                                           i.image_orientation_patient, i.pixel_spacing),
                  "no-geometry", "lack Image Position/Orientation (Patient) or Pixel Spacing",
                  problems)
    keep = _split(keep, lambda i: "LOCALIZER" in i.image_type, "localizer",
                  "are localizer (scout) images", problems)
    if keep:
        common = _majority([_orientation_key(i) for i in keep])
        keep = _split(keep, lambda i: np.max(np.abs(np.subtract(
            i.image_orientation_patient, common))) > ORIENTATION_TOLERANCE, "localizer",
            f"have an orientation other than the series' {list(common)} (localizer?)", problems)
    if keep:
        size = _majority([(i.rows, i.columns) for i in keep])
        keep = _split(keep, lambda i: (i.rows, i.columns) != size, "mixed-size",
                      f"have a size other than the series' {size[0]} x {size[1]}", problems)
    return keep, problems


# ---------------------------------------------------------------------------------- geometry
def _deduplicate(instances: list[DicomInstance], positions: np.ndarray,
                 problems: list[Problem]) -> list[int]:
    """Indices (into the sorted order) of the slices kept: the first file at each position."""
    kept, dropped, pairs = [0], [], []
    for k in range(1, len(positions)):
        if positions[k] - positions[kept[-1]] < DUPLICATE_TOLERANCE_MM:
            dropped.append(k)
            pairs.append((instances[kept[-1]].path, instances[k].path))
        else:
            kept.append(k)
    if dropped:
        first = pairs[0]
        files = sorted({str(p) for pair in pairs for p in pair})
        problems.append(Problem(
            "duplicate-position",
            f"{len(dropped)} slice(s) share a position with another slice (e.g. "
            f"{first[1].name} and {first[0].name} at {positions[dropped[0]]:.3f} mm); kept the "
            f"first file of each, skipped {file_names_text([instances[k].path for k in dropped])}",
            files, instances[0].series_instance_uid))
    return kept


def _gap_problems(positions: np.ndarray, paths: list[Path], uid: str
                  ) -> tuple[float, int, bool, list[Problem]]:
    """(median spacing, missing slices, uneven?, problems) of positions along the normal."""
    gaps = np.diff(positions)
    median = float(np.median(gaps))
    problems = []
    missing_at = np.flatnonzero(gaps > GAP_FACTOR * median)
    missing = int(sum(round(gaps[k] / median) - 1 for k in missing_at))
    if missing_at.size:
        where = "; ".join(f"{gaps[k]:.3f} mm between {paths[k].name} and {paths[k + 1].name}"
                          for k in missing_at[:_NAMES_SHOWN])
        problems.append(Problem(
            "missing-slice", f"{max(missing, 1)} missing slice(s): gap(s) of {where} "
            f"(median spacing {median:.3f} mm)",
            _files(sorted({str(paths[j]) for k in missing_at for j in (k, k + 1)})), uid))
    deviation = np.abs(gaps - median)
    uneven_at = np.flatnonzero((deviation > SPACING_TOLERANCE * median)
                               & (deviation > SPACING_TOLERANCE_MM)
                               & (gaps <= GAP_FACTOR * median))
    if uneven_at.size:
        worst = uneven_at[np.argmax(deviation[uneven_at])]
        problems.append(Problem(
            "uneven-spacing", f"{uneven_at.size} uneven gap(s) between slices (median "
            f"{median:.3f} mm; e.g. {gaps[worst]:.3f} mm between {paths[worst].name} and "
            f"{paths[worst + 1].name})",
            _files(sorted({str(paths[j]) for k in uneven_at for j in (k, k + 1)})), uid))
    return median, missing, bool(uneven_at.size), problems


def _stack_tilt_deg(positions: np.ndarray, normal: np.ndarray) -> float:
    """Angle between the step from the first to the last slice and the slice normal."""
    step = positions[-1] - positions[0]
    cosine = abs(float(np.dot(_unit(step), normal)))
    return float(np.degrees(np.arccos(min(cosine, 1.0))))


def _single_slice_tilt_deg(instance: DicomInstance, normal: np.ndarray) -> float:
    """GantryDetectorTilt if set, else how far the slice leans from the nearest patient axis."""
    if instance.gantry_detector_tilt:
        return abs(instance.gantry_detector_tilt)
    return float(np.degrees(np.arccos(min(float(np.max(np.abs(normal))), 1.0))))


def _tilt_problem(tilt: float, report_files: list[Path], header_tilt: float | None,
                  normal: np.ndarray, uid: str) -> Problem:
    header = "" if header_tilt is None else f", Gantry/Detector Tilt {header_tilt:g} deg"
    shape = ("the slice stack is sheared" if len(report_files) > 1
             else f"{report_files[0].name} is a single tilted slice")
    return Problem("gantry-tilt", f"gantry tilt {tilt:.2f} deg (slice normal "
                   f"{(np.round(normal, 3) + 0.0).tolist()}{header}): {shape}",
                   _files(report_files), uid)


def _one_orientation(instances: list[DicomInstance]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    iop = np.median(np.array([i.image_orientation_patient for i in instances]), axis=0)
    row, column = _unit(iop[:3]), _unit(iop[3:])
    return row, column, _unit(np.cross(row, column))


def check_slice_geometry(instances: list[DicomInstance]) -> DicomSeriesReport:
    """Sort slices along their normal and check spacing, gaps, duplicates and gantry tilt.

    ``instances`` must share one orientation and size (see `select_images`). Duplicates are
    dropped from the report's files (the first file at a position is kept).
    """
    uid = instances[0].series_instance_uid
    row, column, normal = _one_orientation(instances)
    along = [float(np.dot(i.image_position_patient, normal)) for i in instances]
    order = sorted(range(len(instances)), key=lambda k: (along[k], str(instances[k].path)))
    instances = [instances[k] for k in order]
    positions = np.array([along[k] for k in order])
    problems: list[Problem] = []
    kept = _deduplicate(instances, positions, problems)
    instances, positions = [instances[k] for k in kept], positions[kept]
    paths = [i.path for i in instances]
    ipp = np.array([i.image_position_patient for i in instances])
    header_tilt = instances[0].gantry_detector_tilt
    if len(instances) > 1:
        spacing, missing, uneven, gap_problems = _gap_problems(positions, paths, uid)
        problems += gap_problems
        tilt = _stack_tilt_deg(ipp, normal)
    else:
        spacing = (instances[0].spacing_between_slices or instances[0].slice_thickness or 1.0)
        missing, uneven = 0, False
        tilt = _single_slice_tilt_deg(instances[0], normal)
    if tilt > TILT_TOLERANCE_DEG:
        problems.insert(0, _tilt_problem(tilt, paths, header_tilt, normal, uid))
    return DicomSeriesReport(
        series_instance_uid=uid, files=paths, image_position_patient=ipp, row_cosine=row,
        column_cosine=column, normal=normal, pixel_spacing=instances[0].pixel_spacing,
        positions_mm=positions, slice_spacing_mm=float(spacing), gantry_tilt_deg=tilt,
        missing_slices=missing, uneven_spacing=uneven, problems=problems)


# ---------------------------------------------------------------------------------- reading
@dataclass
class DicomStack:
    """The decoded slices of one series, sorted along the normal, and what was found on the way.

    ``array`` has shape (slices, rows, columns) in rescaled units (HU for CT); ``problems``
    holds the folder's problems that concern this read and the series' own.
    """

    array: np.ndarray
    report: DicomSeriesReport
    series: DicomSeriesInfo
    problems: list[Problem]
    source: Path
    scan: DicomScan | None = None

    def to_volume(self, *, correct_geometry: bool = True) -> Volume:
        """The stack as a Volume; resampled onto an orthogonal regular grid when it is not one
        and ``correct_geometry`` is true, else on the scanner's (possibly sheared) grid."""
        report, problems, extra = self.report, list(self.problems), {}
        if correct_geometry and not report.regular:
            array, spacing, origin, direction = resample_orthogonal(self.array, report)
            extra["resampled"] = _resample_note(report)
            problems.append(Problem("resampled", extra["resampled"], _files(report.files),
                                    report.series_instance_uid))
        else:
            array, (spacing, origin, direction) = self.array, _stack_grid(report)
        meta = {**self._meta(problems), **extra}
        try:
            return Volume(array, spacing, origin, direction, meta=meta)
        except GeometryError as error:
            raise InputError(self.source, f"series {report.series_instance_uid}: the slices do "
                             f"not form a valid grid ({error})") from error

    def _meta(self, problems: list[Problem]) -> dict[str, Any]:
        series = self.series
        return {
            "source": str(self.source), "series_instance_uid": series.series_instance_uid,
            "study_instance_uid": series.study_instance_uid, "modality": series.modality,
            "series_description": series.series_description,
            "units": "HU" if series.modality == "CT" else None,
            "files": _files(self.report.files), "gantry_tilt_deg": self.report.gantry_tilt_deg,
            "problems": [p.as_dict() for p in problems], "report": self.report.as_dict(),
        }


def _choose_series(source: PathLike | Sequence[PathLike] | DicomSeriesInfo,
                   series_instance_uid: str | None
                   ) -> tuple[Path, DicomSeriesInfo, list[Problem], DicomScan | None]:
    if isinstance(source, DicomSeriesInfo):
        return Path(os.path.commonpath(source.files)), source, [], None
    root, _ = _input_files(source)
    scan = scan_dicom_folder(source)
    problems = [p for p in scan.problems if p.series_instance_uid is None]
    if not scan.series:
        raise InputError(root, f"no DICOM image series found ({len(problems)} file(s) skipped: "
                         f"{'; '.join(p.message for p in problems[:_NAMES_SHOWN])})")
    if series_instance_uid is not None:
        chosen = scan.get(series_instance_uid)
        if chosen is None:
            found = ", ".join(s.series_instance_uid for s in scan.series)
            raise InputError(root, f"no series {series_instance_uid}; found: {found}")
        return root, chosen, problems, scan
    chosen, others = scan.series[0], scan.series[1:]
    if others:
        problems.append(_multiple_series_problem(chosen, others))
    return root, chosen, problems, scan


def _describe(series: DicomSeriesInfo) -> str:
    return (f"{series.series_instance_uid} ({series.series_description!r}, "
            f"{series.n_images} image(s))")


def _multiple_series_problem(chosen: DicomSeriesInfo, others: list[DicomSeriesInfo]) -> Problem:
    files = [f for s in others for f in s.files]
    listed = "; ".join(f"{_describe(s)}: {file_names_text(s.files)}" for s in others[:_NAMES_SHOWN])
    return Problem("multiple-series", f"{len(others) + 1} series found; read the largest, "
                   f"{_describe(chosen)}; not read: {listed}", _files(files))


def _decode(instance: DicomInstance) -> tuple[np.ndarray, float, float]:
    """Stored pixel values of one slice and its Rescale Slope and Intercept."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = pydicom.dcmread(instance.path)
        pixels = dataset.pixel_array
    if pixels.shape != (instance.rows, instance.columns):
        raise ValueError(f"decoded {pixels.shape}, the header says {instance.rows} x "
                         f"{instance.columns}")
    slope = header_number(dataset, "RescaleSlope") or 1.0
    intercept = header_number(dataset, "RescaleIntercept") or 0.0
    return pixels, slope, intercept


def _decode_all(images: list[DicomInstance], problems: list[Problem]
                ) -> dict[Path, tuple[np.ndarray, float, float]]:
    decoded, failed = {}, []
    for instance in images:
        try:
            decoded[instance.path] = _decode(instance)
        except Exception as error:  # decoders raise many types on damaged data
            failed.append((instance.path, error))
    if failed:
        paths = [p for p, _ in failed]
        problems.append(Problem(
            "truncated", f"{len(failed)} file(s) could not be decoded (truncated or damaged; "
            f"{failed[0][0].name}: {failed[0][1]}); skipped: {file_names_text(paths)}",
            _files(paths), images[0].series_instance_uid))
    return decoded


def _output_dtype(raws: list[np.ndarray], rescales: list[tuple[float, float]]) -> np.dtype:
    """int16 or int32 when every slope and intercept is an integer and the values fit; else
    float32."""
    if not all(float(s).is_integer() and float(b).is_integer() for s, b in rescales):
        return np.dtype(np.float32)
    ends = [v * s + b for raw, (s, b) in zip(raws, rescales, strict=True)
            for v in (int(raw.min()), int(raw.max()))]
    for dtype in (np.int16, np.int32):
        if np.iinfo(dtype).min <= min(ends) and max(ends) <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.float32)


def apply_rescale(raws: list[np.ndarray], rescales: list[tuple[float, float]]) -> np.ndarray:
    """Stack slices as ``stored * RescaleSlope + RescaleIntercept``, slope and intercept per
    slice, in the smallest type that holds the result exactly (see `_output_dtype`)."""
    dtype = _output_dtype(raws, rescales)
    work = np.float32 if dtype.kind == "f" else np.int32
    stack = np.empty((len(raws), *raws[0].shape), dtype=dtype)
    for k, (raw, (slope, intercept)) in enumerate(zip(raws, rescales, strict=True)):
        if slope == 1 and intercept == 0:
            stack[k] = raw
        else:
            stack[k] = raw.astype(work) * work(slope) + work(intercept)
    return stack


def read_dicom_slices(source: PathLike | Sequence[PathLike] | DicomSeriesInfo,
                      series_instance_uid: str | None = None) -> DicomStack:
    """Decode one series into a sorted `DicomStack` of rescaled slices (HU for CT).

    Without ``series_instance_uid`` the series with the most image slices is read and the
    others are reported as a "multiple-series" problem. Bad files are skipped and reported;
    `InputError` is raised only when no slice of the series can be read.
    """
    root, series, problems, scan = _choose_series(source, series_instance_uid)
    images, selection = select_images(series.instances)
    problems += selection
    decoded = _decode_all(images, problems) if images else {}
    return stack_decoded(root, series, images, decoded, problems, scan)


def stack_decoded(root: Path, series: DicomSeriesInfo, images: list[DicomInstance],
                  decoded: dict[Path, tuple[np.ndarray, float, float]], problems: list[Problem],
                  scan: DicomScan | None = None) -> DicomStack:
    """Sort decoded slices along the normal, check their geometry and rescale them to a stack.

    ``decoded`` maps each readable file to (stored pixels, slope, intercept); `InputError` when
    no slice of the series could be decoded.
    """
    if not decoded:
        reasons = "; ".join(p.message for p in problems if p.series_instance_uid)
        raise InputError(root, f"series {series.series_instance_uid} has no readable image "
                         f"slice ({reasons or 'no image files'})")
    report = check_slice_geometry([i for i in images if i.path in decoded])
    problems += report.problems
    raws = [decoded[path][0] for path in report.files]
    rescales = [decoded[path][1:] for path in report.files]
    return DicomStack(apply_rescale(raws, rescales), report, series, problems, root, scan)


def read_dicom_series(source: PathLike | Sequence[PathLike] | DicomSeriesInfo,
                      series_instance_uid: str | None = None, *,
                      correct_geometry: bool = True) -> Volume:
    """Read a DICOM series (folder, file, list of files or scanned series) as a `Volume`.

    ``meta`` holds ``problems`` (list of dicts), ``series_instance_uid``,
    ``study_instance_uid``, ``modality``, ``units``, ``files`` (in slice order),
    ``gantry_tilt_deg``, ``report`` and, when the grid was corrected, ``resampled``.
    """
    stack = read_dicom_slices(source, series_instance_uid)
    return stack.to_volume(correct_geometry=correct_geometry)


# ---------------------------------------------------------------------------------- grids
def _stack_grid(report: DicomSeriesReport) -> tuple[tuple[float, ...], np.ndarray, np.ndarray]:
    """(spacing, origin, direction) of the slices as the scanner placed them.

    Axis 0 follows the median step between Image Positions, which leans away from the normal
    under gantry tilt (a sheared grid).
    """
    ipp = report.image_position_patient
    if len(ipp) > 1:
        step = np.median(np.diff(ipp, axis=0), axis=0)
        axis0, spacing0 = _unit(step), float(np.linalg.norm(step))
    else:
        axis0, spacing0 = report.normal, report.slice_spacing_mm
    direction = np.column_stack([axis0, report.column_cosine, report.row_cosine])
    return (spacing0, *report.pixel_spacing), ipp[0], direction


def _resample_note(report: DicomSeriesReport) -> str:
    parts = []
    if report.gantry_tilt_deg > TILT_TOLERANCE_DEG:
        parts.append(f"gantry tilt {report.gantry_tilt_deg:.2f} deg")
    if report.missing_slices:
        plural = "s" if report.missing_slices > 1 else ""
        parts.append(f"{report.missing_slices} missing slice{plural}")
    if report.uneven_spacing:
        parts.append("uneven slice spacing")
    return (f"{' and '.join(parts)}: resampled onto an orthogonal "
            f"{report.slice_spacing_mm:.3f} mm grid (slices along the normal, in-plane "
            f"{report.pixel_spacing[0]:.3f} x {report.pixel_spacing[1]:.3f} mm)")


def resample_orthogonal(array: np.ndarray, report: DicomSeriesReport
                        ) -> tuple[np.ndarray, tuple[float, ...], np.ndarray, np.ndarray]:
    """Resample a sorted stack onto a regular grid with axes (normal, column, row).

    Every slice lies in a plane normal to ``report.normal``; under gantry tilt its in-plane
    origin drifts from slice to slice. Each slice is shifted in-plane (linear interpolation)
    onto the in-plane grid of the middle slice, then output slices are interpolated linearly
    along the normal between their two neighbouring input slices, at the median spacing. Pixels
    with no input take the stack's minimum. Returns (array, spacing, origin, direction).
    """
    from scipy import ndimage

    positions, ipp, normal = report.positions_mm, report.image_position_patient, report.normal
    spacing = report.slice_spacing_mm
    middle = len(positions) // 2
    origin = ipp[middle] + (positions[0] - positions[middle]) * normal
    in_plane = np.column_stack([report.column_cosine, report.row_cosine])
    offsets = (ipp - origin) @ in_plane / np.asarray(report.pixel_spacing)
    count = int(round((positions[-1] - positions[0]) / spacing)) + 1
    targets = positions[0] + spacing * np.arange(count)
    upper = np.clip(np.searchsorted(positions, targets, side="right"), 1, len(positions) - 1)
    lower = upper - 1
    weight = np.clip((targets - positions[lower]) / (positions[upper] - positions[lower]), 0, 1)
    fill = float(array.min())
    shifted: dict[int, np.ndarray] = {}

    def slice_on_grid(k: int) -> np.ndarray:
        if k not in shifted:
            image = array[k].astype(np.float32)
            if np.any(np.abs(offsets[k]) > 1e-3):
                image = ndimage.shift(image, offsets[k], order=1, mode="constant", cval=fill)
            shifted[k] = image
        return shifted[k]

    output = np.empty((count, *array.shape[1:]), dtype=np.float32)
    for t in range(count):
        for k in [k for k in shifted if k < lower[t]]:
            del shifted[k]
        w = np.float32(weight[t])
        output[t] = (1 - w) * slice_on_grid(lower[t]) + w * slice_on_grid(upper[t])
    direction = np.column_stack([normal, report.column_cosine, report.row_cosine])
    return output, (spacing, *report.pixel_spacing), origin, direction
