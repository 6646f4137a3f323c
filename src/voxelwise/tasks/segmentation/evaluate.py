"""Evaluate predicted label maps against ground truth: two folders of NIfTI files matched by name.

`evaluate_folders` scores every case and class with `voxelwise.metrics.segmentation`
(Dice, IoU, HD95, ASSD, surface Dice, volume errors), summarises per split (mean, sd, median,
95% CI, with infinite values counted, never averaged) and writes

* ``OUT.csv``: one row per case and class;
* ``OUT_summary.csv``: one row per split, class and metric;
* ``OUT.json``: the manifest (inputs, parameters, versions, counts, timings, outputs).

`add_evaluation_section` puts the summary and overlays of the best, median and worst cases into
a `voxelwise.reports.html.Report`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic
from voxelwise.metrics.segmentation import case_metrics, format_split_table, summarise

if TYPE_CHECKING:
    from voxelwise.imaging import Volume
    from voxelwise.reports.html import Report, Section

NIFTI_SUFFIXES = (".nii.gz", ".nii")
ROW_COLUMNS = ("case", "split", "class", "label", "empty", "dice", "iou", "hd95_mm",
               "assd_mm", "surface_dice", "tolerance_mm", "volume_pred_ml", "volume_gt_ml",
               "volume_error_ml", "abs_volume_error_ml", "relative_volume_error")
SUMMARY_COLUMNS = ("split", "class", "metric", "n", "n_both_empty", "n_used", "n_infinite",
                   "n_nan", "mean", "sd", "median", "ci95_low", "ci95_high")
UNASSIGNED = "unassigned"


# ---------------------------------------------------------------------------- inputs
def case_id(path: Path) -> str | None:
    """The case name of a NIfTI file (its name without ``.nii.gz``/``.nii``), else None."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    return None


def label_files(folder: str | Path) -> dict[str, Path]:
    """Case name -> NIfTI file in ``folder`` (not recursive)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        case = case_id(path)
        if case is None or not path.is_file():
            continue
        if case in files:
            raise InputError(path, f"two files for case {case!r} ({files[case].name} too)")
        files[case] = path
    if not files:
        raise InputError(folder, "holds no NIfTI label maps (*.nii.gz, *.nii)")
    return files


def match_cases(pred_dir: str | Path, gt_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """(case, prediction, ground truth) for every case; an unmatched file is an error."""
    predictions, truths = label_files(pred_dir), label_files(gt_dir)
    for case, path in predictions.items():
        if case not in truths:
            raise InputError(path, f"no ground truth of the same name in {gt_dir}")
    for case, path in truths.items():
        if case not in predictions:
            raise InputError(path, f"no prediction of the same name in {pred_dir}")
    return [(case, predictions[case], truths[case]) for case in sorted(truths)]


def parse_classes(text: str) -> dict[int, str]:
    """``"1=haematoma,2=oedema"`` -> {1: "haematoma", 2: "oedema"}."""
    classes: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        value, sep, name = item.partition("=")
        if not sep or not value.strip().isdigit() or not name.strip():
            raise InputError(None, f"--classes: {item!r} is not LABEL=NAME (e.g. 1=haematoma)")
        classes[int(value)] = name.strip()
    if not classes:
        raise InputError(None, "--classes names no class (e.g. 1=haematoma,2=oedema)")
    return classes


def classes_from_dataset_json(gt_dir: str | Path) -> dict[int, str] | None:
    """Classes of a ``dataset.json`` in ``gt_dir`` or its parent (MSD or nnU-Net v2 style)."""
    for path in (Path(gt_dir) / "dataset.json", Path(gt_dir).parent / "dataset.json"):
        if not path.is_file():
            continue
        try:
            labels = json.loads(path.read_text(encoding="utf-8"))["labels"]
            pairs = [(int(k), str(v)) if str(k).isdigit() else (int(v), str(k))
                     for k, v in labels.items()]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InputError(path, f"no readable 'labels' mapping ({error})") from error
        return {value: name for value, name in sorted(pairs) if value != 0}
    return None


def load_splits(source: str | Path | Mapping[str, Any], fold: int = 0) -> dict[str, str]:
    """Case -> split from a mapping, a JSON file or a CSV file (columns ``case``, ``split``).

    JSON may map cases to split names, split names to lists of cases, or be a run's
    ``splits.json`` ({"0": {"train": [...], "validation": [...]}, "test": [...]}), of which
    fold ``fold`` is used.
    """
    path = None
    if not isinstance(source, Mapping):
        path = Path(source)
        if not path.is_file():
            raise InputError(path, "splits file not found")
        source = _read_splits_file(path)
    mapping: dict[str, str] = {}

    def assign(case: Any, split: str) -> None:
        case = str(case)
        if mapping.get(case, split) != split:
            raise InputError(path, f"case {case!r} is in two splits: {mapping[case]}, {split}")
        mapping[case] = split

    folds = [key for key, value in source.items() if isinstance(value, Mapping)]
    if folds and str(fold) not in folds:
        raise InputError(path, f"no fold {fold} in the splits (folds: {', '.join(folds)})")
    for key, value in source.items():
        if isinstance(value, str):
            assign(key, value)
        elif isinstance(value, list):
            for case in value:
                assign(case, str(key))
        elif isinstance(value, Mapping) and str(key) == str(fold):
            for split, cases in value.items():
                for case in cases if isinstance(cases, list) else []:
                    assign(case, str(split))
    return mapping


def _read_splits_file(path: Path) -> Mapping[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        if not rows or "split" not in rows[0] or not ({"case", "case_id"} & rows[0].keys()):
            raise InputError(path, "a splits CSV needs the columns case and split")
        return {row.get("case") or row["case_id"]: row["split"] for row in rows}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(path, f"not valid JSON ({error})") from error
    if not isinstance(data, Mapping):
        raise InputError(path, "splits JSON must be an object")
    return data


def _labels_in(array: np.ndarray, path: Path) -> tuple[np.ndarray, list[int]]:
    """The label map as integers and the labels (> 0) it holds; non-integer maps are errors."""
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    elif array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise InputError(path, "label map holds non-integer values")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iu":
        raise InputError(path, f"label map has data type {array.dtype}, not integers")
    if array.size and array.min() < 0:
        raise InputError(path, f"label map holds negative labels ({int(array.min())})")
    if array.size and int(array.max()) < 65536:
        found = np.flatnonzero(np.bincount(array.ravel()))
    else:
        found = np.unique(array)
    return array, [int(v) for v in found if v > 0]


def _read_pair(pred_path: Path, gt_path: Path, classes: Mapping[int, str] | None
               ) -> tuple[Volume, Volume, list[int]]:
    from voxelwise.imaging import read_nifti

    pred, gt = read_nifti(pred_path), read_nifti(gt_path)
    if not pred.same_grid(gt):
        raise InputError(pred_path, f"not on the grid of its ground truth {gt_path}: shape "
                         f"{pred.shape} vs {gt.shape}, spacing {_mm(pred.spacing)} vs "
                         f"{_mm(gt.spacing)} mm, origin {_mm(pred.origin)} vs "
                         f"{_mm(gt.origin)} mm (resample it with voxelwise.imaging.resample_to)")
    found = []
    for volume, path in ((pred, pred_path), (gt, gt_path)):
        array, labels = _labels_in(volume.array, path)
        extra = sorted(set(labels) - set(classes)) if classes is not None else []
        if extra:
            declared = ", ".join(f"{k}={v}" for k, v in classes.items())
            raise InputError(path, f"labels {extra} are not among the declared classes "
                             f"({declared})")
        found.append((volume.with_array(array), labels))
    return found[0][0], found[1][0], sorted(set(found[0][1]) | set(found[1][1]))


def _mm(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


# ---------------------------------------------------------------------------- evaluation
@dataclass
class EvaluationResult:
    """Per case/class rows, their summary, and where everything was written."""

    rows: list[dict]
    summary: list[dict]
    classes: dict[int, str]
    tolerance_mm: float
    files: dict[str, tuple[Path, Path]]          # case -> (prediction, ground truth)
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def table(self, metrics: list[str] | None = None) -> str:
        """The seed-style lines: ``Dice coefficient, haematoma: Training (n scans): ...``."""
        return format_split_table(self.summary, metrics=metrics)

    def case_scores(self, metric: str = "dice") -> dict[str, float]:
        """Per case: the mean of ``metric`` over the classes present in truth or prediction."""
        scores: dict[str, list[float]] = {case: [] for case in self.files}
        for row in self.rows:
            if row["volume_gt_ml"] > 0 or row["volume_pred_ml"] > 0:
                scores[row["case"]].append(float(row[metric]))
        return {case: float(np.mean(values)) if values else 1.0
                for case, values in scores.items()}

    def representative_cases(self, metric: str = "dice") -> dict[str, str]:
        """{"best", "median", "worst"} -> case, by `case_scores` (higher is better)."""
        ranked = sorted(self.case_scores(metric).items(), key=lambda item: (item[1], item[0]))
        if not ranked:
            return {}
        return {"best": ranked[-1][0], "median": ranked[(len(ranked) - 1) // 2][0],
                "worst": ranked[0][0]}


def evaluate_folders(pred_dir: str | Path, gt_dir: str | Path, out_csv: str | Path,
                     classes: Mapping[int, str] | None = None,
                     splits: str | Path | Mapping[str, Any] | None = None, *,
                     tolerance_mm: float = 2.0, fold: int = 0,
                     progress: bool = True) -> EvaluationResult:
    """Score every prediction in ``pred_dir`` against the same-named file in ``gt_dir``.

    ``classes`` (label -> name) defaults to a ``dataset.json`` next to ``gt_dir``, else to the
    labels found (named ``label_K``). ``splits`` maps cases to splits (or is a file, see
    `load_splits`); without it every case is in split "all".
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    if tolerance_mm < 0 or not math.isfinite(tolerance_mm):
        raise InputError(None, f"the surface-Dice tolerance must be >= 0 mm; got {tolerance_mm}")
    pairs = match_cases(pred_dir, gt_dir)
    declared = dict(classes) if classes is not None else classes_from_dataset_json(gt_dir)
    split_of = load_splits(splits, fold) if splits is not None else {}
    unassigned = [case for case, _, _ in pairs if split_of and case not in split_of]
    if unassigned:
        shown = ", ".join(unassigned[:5]) + (" ..." if len(unassigned) > 5 else "")
        print(f"note: {len(unassigned)} cases are in no split of {splits}, so in split "
              f"'{UNASSIGNED}': {shown}")
    rows, found_by_case, spacing_by_case = [], {}, {}
    for case, pred_path, gt_path in tqdm(pairs, desc="evaluate", unit="case",
                                         disable=not progress):
        pred, gt, found = _read_pair(pred_path, gt_path, declared)
        scored = declared if declared is not None else {k: f"label_{k}" for k in found}
        split = split_of.get(case, UNASSIGNED) if split_of else "all"
        rows += [{"case": case, "split": split, **row} for row in
                 case_metrics(pred.array, gt.array, gt.spacing, scored, tolerance_mm)]
        found_by_case[case], spacing_by_case[case] = found, gt.spacing
    if declared is None:  # labels found in some cases only: both-empty rows for the others
        declared = {k: f"label_{k}" for k in sorted(set().union(*found_by_case.values()))}
        rows += _missing_rows(rows, declared, spacing_by_case, split_of, tolerance_mm)
    order = {name: index for index, name in enumerate(declared.values())}
    rows.sort(key=lambda row: (row["case"], order[row["class"]]))
    result = EvaluationResult(rows, summarise(rows), declared, float(tolerance_mm),
                              {case: (p, g) for case, p, g in pairs})
    result.seconds = time.perf_counter() - started
    _write_outputs(result, Path(pred_dir), Path(gt_dir), Path(out_csv), splits, fold)
    return result


def _missing_rows(rows: list[dict], classes: Mapping[int, str], spacing_by_case: dict,
                  split_of: Mapping[str, str], tolerance_mm: float) -> list[dict]:
    present = {(row["case"], row["label"]) for row in rows}
    missing = []
    for case, spacing in spacing_by_case.items():
        absent = {k: v for k, v in classes.items() if (case, k) not in present}
        if absent:
            empty = np.zeros((1, 1, 1), np.uint8)
            split = split_of.get(case, UNASSIGNED) if split_of else "all"
            missing += [{"case": case, "split": split, **row}
                        for row in case_metrics(empty, empty, spacing, absent, tolerance_mm)]
    return missing


def _csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    def cell(value: Any) -> Any:
        return f"{value:.6g}" if isinstance(value, float) else value

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: cell(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def _write_outputs(result: EvaluationResult, pred_dir: Path, gt_dir: Path, out_csv: Path,
                   splits: Any, fold: int) -> None:
    import scipy

    from voxelwise import __version__

    stem = out_csv.name[: -len(out_csv.suffix)] if out_csv.suffix else out_csv.name
    outputs = {"metrics_csv": out_csv, "summary_csv": out_csv.with_name(f"{stem}_summary.csv"),
               "manifest": out_csv.with_name(f"{stem}.json")}
    write_text_atomic(outputs["metrics_csv"], _csv_text(result.rows, ROW_COLUMNS))
    write_text_atomic(outputs["summary_csv"], _csv_text(result.summary, SUMMARY_COLUMNS))
    splits_text = None if splits is None else (
        str(splits) if not isinstance(splits, Mapping) else "mapping given in Python")
    manifest = {
        "command": "voxelwise evaluate",
        "inputs": {"predictions": str(pred_dir), "ground_truth": str(gt_dir),
                   "splits": splits_text, "fold": fold if splits is not None else None},
        "parameters": {"classes": {str(k): v for k, v in result.classes.items()},
                       "tolerance_mm": result.tolerance_mm,
                       "definitions": {"hd95_mm, assd_mm": "MONAI edge voxels",
                                       "surface_dice": "DeepMind surface-distance surfels"}},
        "versions": {"voxelwise": __version__, "numpy": np.__version__,
                     "scipy": scipy.__version__},
        "counts": {"cases": len(result.files), "rows": len(result.rows),
                   "splits": _split_counts(result.rows)},
        "timings_s": {"total": round(result.seconds, 3),
                      "per_case": round(result.seconds / max(len(result.files), 1), 4)},
        "summary": result.table().splitlines(),
        "outputs": {name: str(path) for name, path in outputs.items()},
    }
    write_text_atomic(outputs["manifest"], json.dumps(manifest, indent=2))
    result.outputs = outputs


def _split_counts(rows: list[dict]) -> dict[str, int]:
    cases: dict[str, set[str]] = {}
    for row in rows:
        cases.setdefault(row["split"], set()).add(row["case"])
    return {split: len(names) for split, names in cases.items()}


# ---------------------------------------------------------------------------- report
def _summary_table_rows(summary: list[dict]) -> list[list[str]]:
    from voxelwise.metrics.segmentation import METRICS

    units = {key: unit for key, _, unit in METRICS}
    rows = []
    for entry in summary:
        unit = units.get(entry["metric"], "")
        scale, shown = (100.0, "%") if unit == "%" else (1.0, unit)

        def value(key: str, entry=entry, scale=scale) -> str:
            number = entry[key]
            return "-" if math.isnan(number) else f"{scale * number:.2f}"

        ci = "-" if math.isnan(entry["ci95_low"]) else \
            f"{value('ci95_low')} to {value('ci95_high')}"
        name = entry["metric"] + (f" ({shown})" if shown else "")
        rows.append([entry["split"], entry["class"], name, entry["n"], entry["n_both_empty"],
                     value("mean"), value("sd"), value("median"), ci, entry["n_infinite"]])
    return rows


def add_evaluation_section(report: Report, result: EvaluationResult,
                           images: Mapping[str, str | Path] | None = None, *,
                           title: str = "Segmentation: evaluation",
                           window_name: str = "brain") -> Section:
    """Add the summary (seed-style lines and a table) and, where ``images`` gives the image of
    a case (case -> NIfTI path), overlays of the best, median and worst cases by Dice."""
    from voxelwise.reports.html import Table

    section = report.section(title)
    names = ", ".join(f"{k} {v}" for k, v in result.classes.items())
    section.paragraphs.append(
        f"{len(result.files)} cases, classes {names}. HD95 and ASSD (mm) follow MONAI "
        f"(edge voxels), surface Dice DeepMind's surface-distance at {result.tolerance_mm:g} mm; "
        "volumes in mL. Both masks empty counts as a perfect match (Dice 1, distances 0 mm); "
        "one mask empty gives Dice 0 and infinite distances, which the summary counts and "
        "leaves out of mean, sd and median.")
    wanted = ["dice", "hd95_mm", "assd_mm", "surface_dice", "abs_volume_error_ml"]
    section.paragraphs += result.table(wanted).splitlines()
    section.tables.append(Table(
        ["split", "class", "metric", "n", "both empty", "mean", "sd", "median",
         "95% CI of mean", "infinite (excluded)"], _summary_table_rows(result.summary),
        caption="Per split and class; n counts scans."))
    _add_overlays(section, result, images, window_name)
    return section


def _add_overlays(section: Section, result: EvaluationResult,
                  images: Mapping[str, str | Path] | None, window_name: str) -> None:
    from voxelwise.imaging import read_nifti
    from voxelwise.reports.figures import largest_label_slice, slice_overlay

    if not images:
        section.notes.append("No images were given, so no overlays are shown.")
        return
    scores = result.case_scores()
    shown: set[str] = set()
    for rank, case in result.representative_cases().items():
        if case in shown or case not in images:
            continue
        shown.add(case)
        pred_path, gt_path = result.files[case]
        image, pred, gt = read_nifti(images[case]), read_nifti(pred_path), read_nifti(gt_path)
        if image.shape != gt.shape:
            raise InputError(images[case], f"image shape {image.shape} differs from its label "
                             f"map {gt_path} ({gt.shape})")
        index = largest_label_slice(gt if gt.array.any() else pred)
        for labels, what in ((gt, "ground truth"), (pred, "prediction")):
            title = f"{rank}: {case}, mean Dice {scores[case]:.2f}, {what}"
            figure = slice_overlay(image, labels, index, window_name, title, result.classes)
            section.add_figure(figure, f"{rank} case {case} (slice {index}): {what}")
