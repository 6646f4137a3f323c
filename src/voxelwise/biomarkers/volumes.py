"""Per series biomarkers: class volumes, ABC/2, lesions, position and midline shift.

    from voxelwise.biomarkers import measure_series
    result = measure_series(labels, image)      # labels and CT as Volumes on the same grid
    print(result.row()["haematoma_ml"], result.lesions[0]["diameter_mm"])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voxelwise.biomarkers.lesions import Lesion, lesions_by_class
from voxelwise.biomarkers.midline import MidlineEstimate, estimate_midline
from voxelwise.errors import InputError
from voxelwise.imaging.resample import reorient
from voxelwise.imaging.volume import Volume

DEFAULT_CLASSES = {1: "haematoma", 2: "oedema"}
BILATERAL_FRACTION = 0.1
"""A lesion (or class) with at least this fraction of its volume on each side is bilateral."""
CLASS_FIELDS = ("ml", "abc2_ml", "lesions", "largest_ml", "largest_diameter_mm", "hemisphere",
                "location", "midline_distance_mm")
LESION_COLUMNS = ("case", "patient", "class", "lesion", "volume_ml", "centroid_x_mm",
                  "centroid_y_mm", "centroid_z_mm", "diameter_mm", "hemisphere", "location",
                  "midline_distance_mm")


def biomarker_columns(classes: dict[int, str] = DEFAULT_CLASSES) -> list[str]:
    """The columns of biomarkers.csv for these classes (interface E)."""
    return (["case", "patient", "series_instance_uid", "days_since_admission", "source"]
            + [f"{name}_{f}" for name in classes.values() for f in CLASS_FIELDS]
            + ["midline_shift_mm"])


def check_geometry(labels: Volume, what: str = "label map") -> None:
    """Refuse a volume whose geometry is the identity placeholder of a raw array."""
    axes = np.abs(labels.direction)
    identity = (np.allclose(labels.spacing, 1.0) and np.allclose(labels.origin, 0.0)
                and np.allclose(axes, np.round(axes)))
    if identity and not labels.meta.get("geometry_confirmed"):
        raise InputError(labels.meta.get("source"), f"the {what} has no geometry (1 mm "
                         "spacing, origin 0 and identity axes: a raw array or a NIfTI without "
                         "an affine); volumes in mL and positions in mm need the real voxel "
                         "size and position (set meta['geometry_confirmed'] if it is real)")


@dataclass
class SeriesBiomarkers:
    """What `measure_series` found on one series."""

    classes: dict[int, str]
    per_class: dict[str, dict[str, Any]]
    lesions: list[dict[str, Any]]
    midline: MidlineEstimate | None
    info: dict[str, Any] = field(default_factory=dict)  # case, patient, uid, days, source

    def row(self) -> dict[str, Any]:
        """One biomarkers.csv row (interface E); missing values are empty strings."""
        row: dict[str, Any] = {c: self.info.get(c, "") for c in
                               ("case", "patient", "series_instance_uid",
                                "days_since_admission", "source")}
        for name, values in self.per_class.items():
            row.update({f"{name}_{f}": values[f] for f in CLASS_FIELDS})
        shift = None if self.midline is None else self.midline.shift_mm
        row["midline_shift_mm"] = "" if shift is None else shift
        return row

    def lesion_rows(self) -> list[dict[str, Any]]:
        """lesions.csv rows, with case and patient filled in."""
        return [{"case": self.info.get("case", ""), "patient": self.info.get("patient", ""),
                 **lesion} for lesion in self.lesions]


def _side(lateral: np.ndarray) -> str:
    if lateral.size == 0:
        return ""
    left = float((lateral > 0).mean())
    if min(left, 1 - left) >= BILATERAL_FRACTION:
        return "bilateral"
    return "left" if left > 0.5 else "right"


def _location(midline: MidlineEstimate | None, point: np.ndarray) -> str:
    """Supra- or infratentorial, from the tentorium relative to the septum (needs the image).

    The tentorium is modelled as a tent over the posterior fossa: below a plane that falls
    0.33 mm per mm towards posterior from about 14 mm below the septum's reference point.
    """
    if midline is None or midline.septum_slice is None:
        return ""
    frame = midline.canonical
    local = frame.lps_to_index(point[None])[0] * np.asarray(frame.spacing)
    along = np.array([np.cos(np.deg2rad(midline.angle_deg)), np.sin(np.deg2rad(midline.angle_deg))])
    v = float(local[1:] @ along) - (midline.septum_row_mm or 0.0) - 12.0
    w = float(local[0] - midline.septum_slice * frame.spacing[0]) + 12.0
    u = float(midline.lateral_mm(point[None])[0])
    return "infratentorial" if v > 10.0 and w < -2.0 - 0.33 * v - 0.006 * u * u \
        else "supratentorial"


def _lateral(midline: MidlineEstimate | None, labels: Volume, points: np.ndarray) -> np.ndarray:
    """Signed mm to the patient's left of the ideal midline (the grid's centre without one)."""
    lps = labels.index_to_lps(points)
    if midline is not None:
        return midline.lateral_mm(lps)
    centre = labels.index_to_lps((np.asarray(labels.shape) - 1) / 2.0)[0]
    return lps[:, 0] - centre[0]


def _lesion_record(lesion: Lesion, name: str, number: int, labels: Volume,
                   midline: MidlineEstimate | None) -> dict[str, Any]:
    points = lesion.points
    centroid = np.asarray(lesion.centroid_lps)
    distance = float(abs(_lateral(midline, labels, labels.lps_to_index(centroid[None]))[0]))
    return {"class": name, "lesion": number, "volume_ml": round(lesion.volume_ml, 4),
            "centroid_x_mm": round(centroid[0], 2), "centroid_y_mm": round(centroid[1], 2),
            "centroid_z_mm": round(centroid[2], 2), "diameter_mm": round(lesion.diameter_mm, 2),
            "hemisphere": _side(_lateral(midline, labels, points)),
            "location": _location(midline, centroid),
            "midline_distance_mm": round(distance, 2),
            "abc2_ml": round(lesion.abc2_ml, 4)}


def _class_summary(records: list[dict[str, Any]], voxels: np.ndarray, labels: Volume,
                   midline: MidlineEstimate | None) -> dict[str, Any]:
    total = voxels.shape[0] * labels.voxel_volume_ml
    largest = records[0] if records else None
    return {
        "ml": round(total, 4),
        "abc2_ml": round(sum(r["abc2_ml"] for r in records), 4),
        "lesions": len(records),
        "largest_ml": largest["volume_ml"] if largest else 0.0,
        "largest_diameter_mm": largest["diameter_mm"] if largest else "",
        "hemisphere": _side(_lateral(midline, labels, voxels)) if voxels.size else "",
        "location": largest["location"] if largest else "",
        "midline_distance_mm": largest["midline_distance_mm"] if largest else "",
    }


def measure_series(labels: Volume, image: Volume | None = None,
                   classes: dict[int, str] | None = None, min_lesion_ml: float = 0.01,
                   midline: MidlineEstimate | None = None, **info: Any) -> SeriesBiomarkers:
    """Biomarkers of one label map (with its CT ``image`` on the same grid, if given).

    Per class: volume (voxels x voxel volume, mL), the ABC/2 estimate summed over lesions,
    lesion count (26-connected components of at least ``min_lesion_ml``), the largest lesion's
    volume and Feret diameter, hemisphere (left/right/bilateral), location (supra- or
    infratentorial; needs the image) and distance of the largest lesion's centroid from the
    ideal midline. With the image the midline shift is estimated (`estimate_midline`);
    without it hemispheres are taken relative to the grid's centre and the shift is empty.
    ``midline`` reuses an estimate made earlier on the same image (no ``image`` needed then).
    ``info`` (case, patient, series_instance_uid, days_since_admission, source) goes into the
    row as it is.
    """
    classes = dict(DEFAULT_CLASSES if classes is None else classes)
    check_geometry(labels)
    if not math.isfinite(min_lesion_ml) or min_lesion_ml < 0:
        raise InputError(None, f"the minimum lesion volume must be 0 mL or more; got "
                         f"{min_lesion_ml}")
    if image is not None and midline is None:
        if not labels.same_grid(image, tolerance_mm=0.1 * min(image.spacing)):
            raise InputError(labels.meta.get("source"), "the label map does not lie on the "
                             f"image's grid (shape {labels.shape} vs {image.shape})")
        midline = estimate_midline(image)
    axial = reorient(labels)
    per_class, lesions = {}, []
    by_class = lesions_by_class(axial, list(classes), min_lesion_ml)
    for value, name in classes.items():
        found, voxels = by_class[value]
        records = [_lesion_record(lesion, name, i + 1, axial, midline)
                   for i, lesion in enumerate(found)]
        per_class[name] = _class_summary(records, voxels, axial, midline)
        lesions += records
    return SeriesBiomarkers(classes, per_class, lesions, midline, dict(info))
