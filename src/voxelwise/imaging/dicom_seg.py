"""DICOM Segmentation objects: label maps out to a SEG that references its series, and back.

Writing (`write_segmentation`): one frame per source slice and segment, each placed where its
source slice is. A label map on a grid other than the acquired stack (a gantry-tilted or gapped
series that the reader resampled onto an orthogonal grid, or any other grid) is sampled at the
centre of every source pixel (nearest neighbour), so the frames copy the source images' Image
Position and Orientation (Patient) exactly and every frame names its source instance.
The object itself is built by highdicom from the standard's modules.

Reading (`read_segmentation`, `segmentation_on_grid`): frames are put onto an image's voxel grid
by their own plane positions (per-frame Image Position, shared or per-frame orientation and pixel
spacing), which works for tilted stacks too, where a SEG's frames form no regular volume.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelwise.errors import InputError
from voxelwise.fileio import atomic_path
from voxelwise.imaging.volume import Volume

if TYPE_CHECKING:
    import pydicom

LOCAL_SCHEME = "99VOXELWISE"
"""Coding scheme of segment types that no standard code is known for here (a private scheme)."""


@dataclass(frozen=True)
class SliceGeometry:
    """Where one source image lies: Image Position (Patient) and its pixel axes in LPS mm."""

    position: np.ndarray
    row_step: np.ndarray
    """LPS step from one column to the next (row cosine x column spacing)."""
    column_step: np.ndarray
    """LPS step from one row to the next (column cosine x row spacing)."""
    rows: int
    columns: int

    @classmethod
    def from_dataset(cls, dataset: Any, orientation: Sequence[float] | None = None,
                     spacing: Sequence[float] | None = None,
                     position: Sequence[float] | None = None) -> SliceGeometry:
        iop = np.asarray(orientation if orientation is not None
                         else dataset.ImageOrientationPatient, dtype=np.float64)
        pixel = np.asarray(spacing if spacing is not None else dataset.PixelSpacing, np.float64)
        ipp = np.asarray(position if position is not None else dataset.ImagePositionPatient,
                         dtype=np.float64)
        return cls(ipp, iop[:3] * pixel[1], iop[3:] * pixel[0], int(dataset.Rows),
                   int(dataset.Columns))

    def pixel_indices_in(self, volume: Volume, pixels: np.ndarray) -> np.ndarray:
        """Continuous array indices in ``volume`` of (N, 2) (row, column) pixels."""
        points = (self.position + pixels[:, :1] * self.column_step
                  + pixels[:, 1:] * self.row_step)
        return volume.lps_to_index(points)


# ---------------------------------------------------------------------------------- writing
def segment_codes(name: str) -> tuple[Any, Any]:
    """(segmented property category, type) codes for a class name, SNOMED CT where known."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    abnormal = codes.SCT.MorphologicallyAbnormalStructure
    known = {"haematoma": codes.SCT.Hematoma, "hematoma": codes.SCT.Hematoma,
             "haemorrhage": codes.SCT.Hemorrhage, "hemorrhage": codes.SCT.Hemorrhage,
             "oedema": codes.SCT.Edema, "edema": codes.SCT.Edema, "lesion": codes.SCT.Lesion}
    key = name.strip().lower()
    if key in known:
        return abnormal, known[key]
    value = re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-")[:16] or "segment"
    return abnormal, hd.sr.CodedConcept(value, LOCAL_SCHEME, name)


def read_source_headers(files: Sequence[str | Path]) -> list[pydicom.Dataset]:
    """Headers (no pixel data) of the source images, in the order given."""
    import pydicom

    datasets = []
    for path in files:
        try:
            datasets.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception as error:  # pydicom raises many types for damaged files
            raise InputError(path, f"source image unreadable ({error})") from error
    return datasets


def labels_on_source_slices(labels: Volume, datasets: Sequence[Any]) -> np.ndarray:
    """The label map sampled at every source pixel: (slices, rows, columns), nearest voxel.

    When a slice lies exactly on a slice of the label grid with the same pixel axes (the usual
    case), it is copied; otherwise each pixel centre is looked up in the label grid.
    """
    from scipy import ndimage

    frames = np.zeros((len(datasets), int(datasets[0].Rows), int(datasets[0].Columns)),
                      dtype=labels.array.dtype)
    for k, dataset in enumerate(datasets):
        geometry = SliceGeometry.from_dataset(dataset)
        corners = geometry.pixel_indices_in(labels, np.array([[0, 0], [1, 0], [0, 1]], float))
        origin, down, right = corners[0], corners[1] - corners[0], corners[2] - corners[0]
        aligned = (np.allclose(down, [0, 1, 0], atol=1e-3) and np.allclose(right, [0, 0, 1],
                   atol=1e-3) and np.allclose(origin, np.round(origin), atol=1e-2))
        rows, columns = geometry.rows, geometry.columns
        if aligned and _inside(origin, (rows, columns), labels.shape):
            s, r, c = np.round(origin).astype(int)
            frames[k] = labels.array[s, r:r + rows, c:c + columns]
            continue
        grid = np.mgrid[0:rows, 0:columns].reshape(2, -1).T.astype(np.float64)
        index = geometry.pixel_indices_in(labels, grid).T.reshape(3, rows, columns)
        frames[k] = ndimage.map_coordinates(labels.array, index, order=0, mode="constant",
                                            cval=0)
    return frames


def _inside(origin: np.ndarray, size: tuple[int, int], shape: tuple[int, ...]) -> bool:
    s, r, c = np.round(origin).astype(int)
    return 0 <= s < shape[0] and r >= 0 and c >= 0 and r + size[0] <= shape[1] \
        and c + size[1] <= shape[2]


def _segment_descriptions(classes: Mapping[int, str], algorithm_name: str,
                          algorithm_version: str) -> list[Any]:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name, version=algorithm_version,
        family=codes.cid7162.ArtificialIntelligence)
    descriptions = []
    for number, name in sorted(classes.items()):
        category, kind = segment_codes(name)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=int(number), segment_label=name, segmented_property_category=category,
            segmented_property_type=kind,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm))
    return descriptions


def write_segmentation(labels: Volume, source_files: Sequence[str | Path], path: str | Path,
                       classes: Mapping[int, str], *, algorithm_name: str = "voxelwise",
                       algorithm_version: str | None = None,
                       series_description: str = "voxelwise segmentation",
                       series_number: int = 900) -> Path:
    """Write ``labels`` (integer label map) as a DICOM SEG referencing ``source_files``.

    ``classes`` maps label values to segment names (background, 0, is never a segment);
    segment numbers are the label values, so they must be 1, 2, ... without gaps. One frame per
    source slice and segment that holds any voxel, each at its source slice's position.
    """
    import highdicom as hd

    from voxelwise import __version__

    classes = {int(k): str(v) for k, v in classes.items() if int(k) != 0}
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise ValueError(f"segment numbers must be 1..n without gaps; got {sorted(classes)}")
    if not source_files:
        raise InputError(None, "a DICOM Segmentation needs the source series' files")
    datasets = read_source_headers(source_files)
    frames = labels_on_source_slices(labels, datasets)
    unknown = sorted(set(np.unique(frames).tolist()) - {0, *classes})
    if unknown:
        raise ValueError(f"label values {unknown} have no segment name in classes")
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=frames.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(classes, algorithm_name,
                                                   algorithm_version or __version__),
        series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="voxelwise", manufacturer_model_name=algorithm_name,
        software_versions=__version__, device_serial_number="0",
        series_description=series_description, content_label="SEGMENTATION",
        content_description=series_description[:64], omit_empty_frames=True)
    path = Path(path)
    with atomic_path(path) as temporary:
        seg.save_as(temporary)
    return path


# ---------------------------------------------------------------------------------- reading
@dataclass
class SegmentationFrames:
    """A DICOM SEG's frames as masks, with where each frame lies and which segment it holds."""

    path: Path
    referenced_series_uid: str
    segment_names: dict[int, str]
    masks: np.ndarray
    """(frames, rows, columns) bool."""
    segment_numbers: list[int]
    geometry: list[SliceGeometry]
    source_sop_instance_uids: list[str | None]


def _functional(dataset: Any, frame: Any, sequence: str) -> Any:
    """A functional group's first item: the frame's own, else the shared one."""
    for groups in (frame, dataset.get("SharedFunctionalGroupsSequence", [None])[0]):
        if groups is not None and sequence in groups:
            return groups[sequence][0]
    raise KeyError(sequence)


def _source_uid(frame: Any) -> str | None:
    try:
        return str(frame.DerivationImageSequence[0].SourceImageSequence[0]
                   .ReferencedSOPInstanceUID)
    except (AttributeError, IndexError, KeyError):
        return None


def _masks(seg: Any) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = np.asarray(seg.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[None]
    if str(seg.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL":
        return pixels >= (int(seg.get("MaximumFractionalValue", 255)) + 1) // 2
    return pixels > 0


def read_segmentation(path: str | Path) -> SegmentationFrames:
    """Read a DICOM SEG file: its referenced series, segment names and placed frames."""
    import highdicom as hd

    path = Path(path)
    try:
        seg = hd.seg.segread(path)
        masks = _masks(seg)
    except Exception as error:  # pydicom/highdicom raise many types for bad files
        raise InputError(path, f"not a readable DICOM Segmentation ({error})") from error
    referenced = seg.get("ReferencedSeriesSequence")
    if not referenced:
        raise InputError(path, "the Segmentation names no referenced series")
    numbers, geometry, sources = [], [], []
    try:
        for frame in seg.PerFrameFunctionalGroupsSequence:
            numbers.append(int(_functional(seg, frame, "SegmentIdentificationSequence")
                               .ReferencedSegmentNumber))
            position = _functional(seg, frame, "PlanePositionSequence").ImagePositionPatient
            orientation = _functional(seg, frame,
                                      "PlaneOrientationSequence").ImageOrientationPatient
            spacing = _functional(seg, frame, "PixelMeasuresSequence").PixelSpacing
            geometry.append(SliceGeometry.from_dataset(seg, orientation, spacing, position))
            sources.append(_source_uid(frame))
    except (AttributeError, KeyError, ValueError) as error:
        raise InputError(path, f"a frame of the Segmentation lacks its position ({error})"
                         ) from error
    names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    return SegmentationFrames(path, str(referenced[0].SeriesInstanceUID), names, masks, numbers,
                              geometry, sources)


def segmentation_on_grid(segmentation: SegmentationFrames | str | Path,
                         image: Volume) -> Volume:
    """The SEG as a label map (segment numbers as labels) on ``image``'s voxel grid.

    Every segmented pixel goes to the voxel nearest its centre; a segmented pixel outside the
    image is an `InputError`.
    """
    if not isinstance(segmentation, SegmentationFrames):
        segmentation = read_segmentation(segmentation)
    array = np.zeros(image.shape, dtype=np.uint8 if max(segmentation.segment_names, default=0)
                     < 256 else np.uint16)
    limit = np.asarray(image.shape) - 0.5
    for mask, number, geometry in zip(segmentation.masks, segmentation.segment_numbers,
                                      segmentation.geometry, strict=True):
        pixels = np.argwhere(mask).astype(np.float64)
        if not len(pixels):
            continue
        index = geometry.pixel_indices_in(image, pixels)
        if np.any(index < -0.5) or np.any(index > limit):
            raise InputError(segmentation.path, "segmented voxels fall outside the referenced "
                             "series' volume")
        voxel = np.round(index).astype(int)
        array[voxel[:, 0], voxel[:, 1], voxel[:, 2]] = number
    return image.with_array(array, modality="SEG", units="label")
