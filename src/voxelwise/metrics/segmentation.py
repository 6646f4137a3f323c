"""Segmentation metrics per case and per class, and their summary per split.

Per case, on masks (any array, read as bool) in array axis order with ``spacing`` in mm along
the same axes: `dice`, `iou`, `hausdorff95` and `assd` (mm, MONAI's definitions), `surface_dice`
(DeepMind's definition) and volumes in mL; `case_metrics` computes them all for every class of
a label map in one pass over the bounding box. `summarise` aggregates rows per split and class;
`format_split_table` prints them as the seed's tables.

Conventions for empty masks (documented in the README and tested):

=====================  =====  =====  ===========  ============  ====================
case                   Dice   IoU    HD95, ASSD   surface Dice  relative volume err.
=====================  =====  =====  ===========  ============  ====================
both empty             1      1      0 mm         1             0
only one empty         0      0      inf          0             inf if GT empty, else -1
=====================  =====  =====  ===========  ============  ====================

MONAI returns nan for HD95/ASSD when both masks are empty and DeepMind nan for surface Dice; we
count the pair as a perfect match instead, so a correctly empty prediction is not dropped.
`summarise` never averages an infinite value: it reports the mean, sd and median of the finite
values with ``n_infinite`` (and ``n_nan``) beside them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from voxelwise.metrics.surface import (
    SurfaceDistances,
    bounding_box,
    check_spacing,
    edge_distances,
    surfel_distances,
)

# (row key, printed name, unit) of every metric `summarise` aggregates, in print order.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("dice", "Dice coefficient", ""),
    ("iou", "IoU", ""),
    ("hd95_mm", "HD95", "mm"),
    ("assd_mm", "ASSD", "mm"),
    ("surface_dice", "Surface Dice", ""),
    ("volume_error_ml", "Volume error (prediction - truth)", "mL"),
    ("abs_volume_error_ml", "Absolute volume error", "mL"),
    ("relative_volume_error", "Relative volume error", "%"),
)
SPLIT_NAMES = {"train": "Training", "training": "Training", "validation": "Validation",
               "val": "Validation", "test": "Test", "all": "All"}


def _masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction and ground truth differ in shape: {pred.shape}, {gt.shape}")
    return pred, gt


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient 2|P & G| / (|P| + |G|); 1.0 when both masks are empty."""
    pred, gt = _masks(pred, gt)
    total = int(pred.sum()) + int(gt.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(pred & gt)) / total


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union (Jaccard); 1.0 when both masks are empty."""
    pred, gt = _masks(pred, gt)
    union = int(np.count_nonzero(pred | gt))
    return 1.0 if union == 0 else int(np.count_nonzero(pred & gt)) / union


def _hd95(distances: SurfaceDistances, percentile: float = 95.0) -> float:
    directions = [d for d in (distances.pred_to_gt, distances.gt_to_pred) if d.size]
    if not directions:
        return 0.0
    if any(np.isinf(d).any() for d in directions):
        return math.inf
    return float(max(np.percentile(d, percentile) for d in directions))


def _assd(distances: SurfaceDistances) -> float:
    both = np.concatenate([distances.pred_to_gt, distances.gt_to_pred])
    return 0.0 if both.size == 0 else float(both.mean())


def _surface_dice(distances: SurfaceDistances, tolerance_mm: float) -> float:
    total = distances.pred_areas.sum() + distances.gt_areas.sum()
    if total == 0:
        return 1.0
    close = (distances.pred_areas[distances.pred_to_gt <= tolerance_mm].sum()
             + distances.gt_areas[distances.gt_to_pred <= tolerance_mm].sum())
    return float(close / total)


def hausdorff95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance (mm), as MONAI's
    ``compute_hausdorff_distance(percentile=95)``: the larger of the two directed 95th
    percentiles (linear interpolation) of edge-voxel distances."""
    return _hd95(edge_distances(*_masks(pred, gt), spacing))


def assd(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance (mm), as MONAI's
    ``compute_average_surface_distance(symmetric=True)``: the mean of both directions'
    edge-voxel distances pooled."""
    return _assd(edge_distances(*_masks(pred, gt), spacing))


def hausdorff95_and_assd(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]
                         ) -> tuple[float, float]:
    """`hausdorff95` and `assd` from one computation of the edge distances (half the work of
    calling both)."""
    distances = edge_distances(*_masks(pred, gt), spacing)
    return _hd95(distances), _assd(distances)


def surface_dice(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float],
                 tolerance_mm: float) -> float:
    """Surface Dice at ``tolerance_mm`` (normalised surface distance), as DeepMind's
    ``compute_surface_dice_at_tolerance``: the area of both surfaces within the tolerance of
    the other, over the total area."""
    return _surface_dice(surfel_distances(*_masks(pred, gt), spacing), tolerance_mm)


def _volume_errors(pred_ml: float, gt_ml: float) -> dict[str, float]:
    error = pred_ml - gt_ml
    if gt_ml > 0:
        relative = error / gt_ml
    else:
        relative = 0.0 if pred_ml == 0 else math.inf
    return {"volume_pred_ml": pred_ml, "volume_gt_ml": gt_ml, "volume_error_ml": error,
            "abs_volume_error_ml": abs(error), "relative_volume_error": relative}


def class_metrics(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float],
                  tolerance_mm: float = 2.0) -> dict[str, float]:
    """Every metric of one class (bool masks): overlap, distances, surface Dice, volumes, and
    ``empty``: "" (both masks hold voxels), "both", "prediction" or "ground truth"."""
    pred, gt = _masks(pred, gt)
    spacing = check_spacing(spacing, pred.ndim)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    edges = edge_distances(pred, gt, spacing)  # shared by HD95 and ASSD
    surfels = surfel_distances(pred, gt, spacing)
    empty = {(False, False): "", (True, True): "both", (True, False): "prediction",
             (False, True): "ground truth"}[(not pred.any(), not gt.any())]
    return {
        "dice": dice(pred, gt), "iou": iou(pred, gt), "empty": empty,
        "hd95_mm": _hd95(edges), "assd_mm": _assd(edges),
        "surface_dice": _surface_dice(surfels, tolerance_mm), "tolerance_mm": float(tolerance_mm),
        **_volume_errors(int(pred.sum()) * voxel_ml, int(gt.sum()) * voxel_ml),
    }


def case_metrics(pred_labels: np.ndarray, gt_labels: np.ndarray, spacing: Sequence[float],
                 classes: Mapping[int, str], tolerance_mm: float = 2.0) -> list[dict]:
    """One row per class of ``classes`` (label value -> name; 0 is background, never scored).

    Both label maps are first cropped to the bounding box of all their foreground, so the work
    per class scales with the lesions, not with the image.
    """
    pred_labels, gt_labels = np.asarray(pred_labels), np.asarray(gt_labels)
    if pred_labels.shape != gt_labels.shape:
        raise ValueError(f"label maps differ in shape: {pred_labels.shape}, {gt_labels.shape}")
    box = bounding_box((pred_labels != 0) | (gt_labels != 0))
    if box is not None:
        pred_labels, gt_labels = pred_labels[box], gt_labels[box]
    rows = []
    for label, name in classes.items():
        if int(label) == 0:
            continue
        if box is None:
            pred = gt = np.zeros((1,) * pred_labels.ndim, bool)
        else:
            pred, gt = pred_labels == int(label), gt_labels == int(label)
        rows.append({"class": name, "label": int(label),
                     **class_metrics(pred, gt, spacing, tolerance_mm)})
    return rows


# ---------------------------------------------------------------------------- aggregation
def _describe(values: Sequence[float]) -> dict[str, float | int]:
    """n, mean, sd (n - 1), median and the t-based 95% CI of the mean of finite ``values``."""
    from scipy import stats

    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    n = int(finite.size)
    result: dict[str, float | int] = {"n_used": n, "mean": math.nan, "sd": math.nan,
                                      "median": math.nan, "ci95_low": math.nan,
                                      "ci95_high": math.nan}
    if n == 0:
        return result
    result.update(mean=float(finite.mean()), median=float(np.median(finite)))
    if n > 1:
        sd = float(finite.std(ddof=1))
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        result.update(sd=sd, ci95_low=result["mean"] - half, ci95_high=result["mean"] + half)
    return result


def _split_order(name: str) -> tuple[int, str]:
    order = ["train", "training", "validation", "val", "test", "all"]
    return (order.index(name) if name in order else len(order), name)


def summarise(rows: Iterable[Mapping[str, Any]], by: str = "split") -> list[dict]:
    """Per value of ``by`` (rows without it count as "all"), class and metric: n (cases),
    n_both_empty (cases scored by the both-empty convention), n_used (finite values),
    n_infinite, n_nan, mean, sd, median and 95% CI of the mean."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row.get(by) or "all"), str(row["class"])), []).append(row)
    classes = list(dict.fromkeys(c for _, c in groups))
    keys = sorted(groups, key=lambda k: (classes.index(k[1]), _split_order(k[0])))
    summary = []
    for split, name in keys:
        group = groups[(split, name)]
        for metric, _, _ in METRICS:
            values = [float(row[metric]) for row in group if metric in row]
            if not values:
                continue
            summary.append({by: split, "class": name, "metric": metric, "n": len(values),
                            "n_both_empty": sum(row.get("empty") == "both" for row in group),
                            "n_infinite": sum(math.isinf(v) for v in values),
                            "n_nan": sum(math.isnan(v) for v in values), **_describe(values)})
    return summary


def _number(value: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * value:.1f}%"
    return f"{value:.2f}" + (f" {unit}" if unit else "")


def _split_cell(entry: Mapping[str, Any], unit: str, by: str) -> str:
    split = str(entry[by])
    both = f", {entry['n_both_empty']} both empty" if entry.get("n_both_empty") else ""
    text = f"{SPLIT_NAMES.get(split, split)} ({entry['n']} scans{both}): "
    if entry["n_used"] == 0:
        text += "no finite value"
    else:
        text += f"mean {_number(entry['mean'], unit)} std "
        text += "n/a" if math.isnan(entry["sd"]) else _number(entry["sd"], unit)
        text += f" median {_number(entry['median'], unit)}"
    excluded = [f"{entry['n_infinite']} infinite (one mask empty)"] if entry["n_infinite"] else []
    excluded += [f"{entry['n_nan']} undefined"] if entry["n_nan"] else []
    return text + (f" [{', '.join(excluded)} excluded]" if excluded else "")


def format_split_table(summary: Sequence[Mapping[str, Any]], by: str = "split",
                       metrics: Sequence[str] | None = None) -> str:
    """One line per class and metric, the splits side by side, as the seed's tables:
    ``Dice coefficient, haematoma: Training (368 scans): mean 0.67 std 0.23 median 0.70 / ...``.
    """
    lines = []
    wanted = [m for m, _, _ in METRICS] if metrics is None else list(metrics)
    classes = list(dict.fromkeys(str(entry["class"]) for entry in summary))
    for name in classes:
        for metric, label, unit in METRICS:
            if metric not in wanted:
                continue
            entries = [e for e in summary if e["class"] == name and e["metric"] == metric]
            if entries:
                cells = " / ".join(_split_cell(entry, unit, by) for entry in entries)
                lines.append(f"{label}, {name}: {cells}")
    return "\n".join(lines)
