"""One evaluation of any binary or multi-label classifier of the project: the clinical table.

Built on `voxelwise.metrics.classification`: per finding, test AUC with its 95% CI (DeLong, or a
bootstrap on request), operating points chosen on validation data for a target sensitivity and a
target specificity and applied unchanged to the test data, the whole confusion-matrix family at
each of them with Wilson CIs, and ROC curves for the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelwise.fileio import write_text_atomic
from voxelwise.metrics.classification import (
    confusion_at,
    finding_table,
    format_finding_table,
    roc_curve,
    write_finding_table_csv,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

POINTS = ("high_sensitivity", "high_specificity")


@dataclass
class ClassifierEvaluation:
    """Rows of the finding table, the confusion family per operating point, and notes."""

    findings: list[str]
    rows: list[dict[str, Any]]
    confusion: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    y_test: np.ndarray | None = None
    score_test: np.ndarray | None = None

    def table(self) -> str:
        return format_finding_table(self.rows) + "".join(f"{n}\n" for n in self.notes)

    def operating_points(self) -> dict[str, dict[str, dict[str, float]]]:
        """{finding: {high_sensitivity: {threshold, sensitivity, specificity, ...}, ...}}."""
        points: dict[str, dict[str, dict[str, float]]] = {}
        for row in self.rows:
            points[row["finding"]] = {p: {
                "threshold": row[f"{p}_threshold"],
                "target": row["sensitivity_target" if p == POINTS[0] else "specificity_target"],
                "validation_sensitivity": row[f"{p}_validation_sensitivity"],
                "validation_specificity": row[f"{p}_validation_specificity"],
                "sensitivity": row[f"{p}_sensitivity"],
                "sensitivity_lower": row[f"{p}_sensitivity_lower"],
                "sensitivity_upper": row[f"{p}_sensitivity_upper"],
                "specificity": row[f"{p}_specificity"],
                "specificity_lower": row[f"{p}_specificity_lower"],
                "specificity_upper": row[f"{p}_specificity_upper"]} for p in POINTS}
        return points

    def write(self, folder: Path) -> dict[str, Path]:
        """``findings.csv`` (Table-4 layout, full precision), ``confusion.csv``,
        ``findings_table.txt`` and ``operating_points.json`` in ``folder``."""
        from voxelwise.cli.common import rows_to_csv

        paths = {"findings_csv": write_finding_table_csv(self.rows, folder / "findings.csv"),
                 "table": write_text_atomic(folder / "findings_table.txt", self.table())}
        columns = list(self.confusion[0]) if self.confusion else ["finding"]
        paths["confusion_csv"] = write_text_atomic(folder / "confusion.csv",
                                                   rows_to_csv(self.confusion, columns))
        paths["operating_points"] = write_text_atomic(
            folder / "operating_points.json",
            json.dumps(_json_safe(self.operating_points()), indent=1))
        return paths


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _confusion_rows(finding: str, row: dict, y: np.ndarray, s: np.ndarray) -> list[dict]:
    out = []
    for point in POINTS:
        threshold = float(row[f"{point}_threshold"])
        if math.isnan(threshold):
            continue
        stats = confusion_at(y, s, threshold)
        out.append({"finding": finding, "operating_point": point, **stats.as_dict()})
    return out


def _notes(rows: list[dict], split: str) -> list[str]:
    notes = []
    for row in rows:
        n, k = row[f"n_{split}"], row[f"n_positive_{split}"]
        if k == 0 or k == n:
            what = "no positive" if k == 0 else "no negative"
            effect = ("AUC undefined, not reported" if split == "test" else
                      "no operating point can be chosen")
            notes.append(f"{row['finding']}: {what} case in the {split} split ({k} of {n}): "
                         f"{effect}.")
    return notes


def evaluate_classifier(findings: Sequence[str], y_validation, score_validation, y_test,
                        score_test, *, sensitivity_target: float = 0.90,
                        specificity_target: float = 0.90, auc_method: str = "delong",
                        n_bootstrap: int = 2000, seed: int = 0) -> ClassifierEvaluation:
    """The clinical evaluation of (cases, findings) labels and scores; see the module docstring.

    A finding whose test split lacks a class gets no AUC (``nan``, printed ``n/a``) and a note
    saying why; one whose validation split lacks a class gets no operating point.
    """
    rows = finding_table(list(findings), y_validation, score_validation, y_test, score_test,
                         sensitivity_target=sensitivity_target,
                         specificity_target=specificity_target, auc_method=auc_method,
                         n_bootstrap=n_bootstrap, seed=seed)
    yt = np.asarray(y_test, float).reshape(-1, len(rows))
    st = np.asarray(score_test, float).reshape(yt.shape)
    confusion = [c for j, row in enumerate(rows)
                 for c in _confusion_rows(row["finding"], row, yt[:, j], st[:, j])]
    notes = _notes(rows, "validation") + _notes(rows, "test")
    return ClassifierEvaluation(list(findings), rows, confusion, notes, yt, st)


def roc_figure(evaluation: ClassifierEvaluation, findings: Sequence[str] | None = None,
               title: str = "ROC curves, test split") -> Figure:
    """ROC curves of the test split, one per finding with a defined AUC, the operating points
    chosen on validation marked on them."""
    from voxelwise.reports.figures import _matplotlib

    plt = _matplotlib()
    figure, axes = plt.subplots(figsize=(4.4, 4.2))
    wanted = list(findings or evaluation.findings)
    for j, row in enumerate(evaluation.rows):
        if row["finding"] not in wanted or not np.isfinite(row["auc"]):
            continue
        fpr, tpr, _ = roc_curve(evaluation.y_test[:, j], evaluation.score_test[:, j])
        line, = axes.plot(fpr, tpr, lw=1.4,
                          label=f"{row['finding']}: AUC {row['auc']:.2f} "
                          f"({row['auc_lower']:.2f}-{row['auc_upper']:.2f}), n={row['n_test']}")
        for point, marker in zip(POINTS, ("o", "s"), strict=True):
            if np.isfinite(row[f"{point}_specificity"]):
                axes.plot(1 - row[f"{point}_specificity"], row[f"{point}_sensitivity"], marker,
                          color=line.get_color(), ms=5)
    axes.plot([0, 1], [0, 1], ":", color="grey", lw=0.8)
    axes.set_xlabel("1 - specificity")
    axes.set_ylabel("sensitivity")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=6, loc="lower right")
    return figure
