"""Demo step: the ICH detector trained on the phantom, its clinical table, ROC curves and
Grad-CAM heatmaps of positive test studies.

The detector gets its own small-size phantom cohort (`detection_cohort`): four centres, half of
the patients free of haemorrhage, so that the validation and test splits hold ICH-negative
studies and the operating points are defined; the demo's main phantom has too few patients
(and 20% of them ICH-free) for that. Its label maps give the per-slice network slice labels.
"""

from __future__ import annotations

import math
from typing import Any

from voxelwise.demo.state import DemoState
from voxelwise.reports.html import Table

TABLE_COLUMNS = ["finding", "n (positive)", "AUC (95% CI)", "high-sens.: sensitivity",
                 "high-sens.: specificity", "high-spec.: sensitivity", "high-spec.: specificity"]


def _cell(row: dict, key: str) -> str:
    from voxelwise.metrics.classification import Estimate

    return Estimate(float(row[key]), float(row[f"{key}_lower"]), float(row[f"{key}_upper"]),
                    0).format(2)


def _table(rows: list[dict]) -> Table:
    body = [[r["finding"], f"{r['n_test']} ({r['n_positive_test']})", _cell(r, "auc"),
             *(_cell(r, f"{p}_{m}") for p in ("high_sensitivity", "high_specificity")
               for m in ("sensitivity", "specificity"))] for r in rows]
    return Table(TABLE_COLUMNS, body, caption="Test split, per finding: AUC with DeLong 95% CI; "
                 "operating points chosen on validation (target 0.90) and applied unchanged, "
                 "sensitivity and specificity with Wilson 95% CIs; n/a where undefined")


def _finding_summary(row: dict) -> dict[str, Any]:
    """{n_test, n_positive_test, auc: {value, lower, upper} or None, high_sensitivity:
    {threshold, sensitivity, specificity (+ _lower/_upper)}, high_specificity: {...}}."""
    def value(key: str) -> float | None:
        number = float(row[key])
        return None if math.isnan(number) else number

    auc = None if value("auc") is None else {
        "value": value("auc"), "lower": value("auc_lower"), "upper": value("auc_upper"),
        "method": row["auc_method"]}
    points = {p: {"threshold": value(f"{p}_threshold"),
                  **{f"{m}{end}": value(f"{p}_{m}{end}") for m in ("sensitivity", "specificity")
                     for end in ("", "_lower", "_upper")}}
              for p in ("high_sensitivity", "high_specificity")}
    return {"n_test": row["n_test"], "n_positive_test": row["n_positive_test"], "auc": auc,
            **points}


def _heatmaps(section, data, result) -> int:
    from voxelwise.tasks.classification.gradcam import heatmap_figure, study_heatmap
    from voxelwise.tasks.classification.model import load_detector

    model, _ = load_detector(result.run_dir / "fold_0" / "checkpoint_best.pt")
    x_test, y_test = data.subset(result.splits.test)
    shown = 0
    for case, x, y in zip(result.splits.test, x_test, y_test, strict=True):
        if not y[0] or shown >= 3:
            continue
        index, heat = study_heatmap(model, x, finding=0)
        section.add_figure(heatmap_figure(x, index, heat, f"{case[-12:]}: slice {index}"),
                           caption=f"Grad-CAM for any ICH, test study ...{case[-12:]}, "
                           f"slice {index} (brain window)")
        shown += 1
    return shown


COHORT_CENTERS = 4
COHORT_ICH_FREE = 0.5


def detection_cohort(state: DemoState):
    """The detector's phantom (``OUT/detection-phantom``): small size, 4 centres, 6 patients per
    centre (3 with ``--size small``), the demo's follow-ups and seed, half the patients ICH-free."""
    from voxelwise.data.phantoms.head_ct import generate_head_ct_study

    config = state.config
    return generate_head_ct_study(
        config.out / "detection-phantom", centers=COHORT_CENTERS,
        patients=3 if config.size == "small" else 6, followups=config.followups, size="small",
        seed=config.seed, progress=False, overwrite=True, ich_free_fraction=COHORT_ICH_FREE)


def step_detection(state: DemoState) -> None:
    """Train the detector on the phantom's studies; table, ROC curves and heatmaps."""
    from voxelwise.errors import InputError
    from voxelwise.tasks.classification.data import InputSpec, load_detection_data
    from voxelwise.tasks.classification.evaluate import roc_figure
    from voxelwise.tasks.classification.train import DetectionConfig, train_detector
    from voxelwise.training import TrainingConfig

    small = state.config.size == "small"
    section = state.report.section("ICH detection: findings per study")
    cohort = detection_cohort(state)
    data = load_detection_data(cohort.root, spec=InputSpec(size=64, slices=16))
    config = DetectionConfig(
        model="vgg", dims=2, test_fraction=0.25, slice_batches=True,
        training=TrainingConfig(epochs=4 if small else 10, batch_size=4, learning_rate=1e-3,
                                optimizer="adamw", schedule="cosine", weight_decay=1e-4,
                                seed=state.config.seed, threads=2))
    run_dir = state.config.out / "detector"
    try:
        result = train_detector(data, run_dir, config)
    except InputError as error:  # too few patients for patient-level splits
        section.paragraphs.append(f"Not trained: {error}")
        state.findings["detection"] = {"trained": False, "reason": str(error)}
        return
    print(result.evaluation.table(), end="")
    evaluation = result.evaluation
    section.paragraphs.append(
        f"A per-slice VGG-style network on brain, subdural and bone windows (16 slices of "
        f"64 x 64 px), slice logits pooled per study, class-weighted binary cross-entropy on "
        f"the study findings plus the slices' haemorrhage labels (from the label maps), study "
        f"batches alternating with balanced batches of single slices, "
        f"{config.training.epochs} epochs, on a phantom cohort of its own "
        f"({COHORT_CENTERS} centres, {COHORT_ICH_FREE:.0%} of patients ICH-free, "
        f"{cohort.root}); {len(data.case_ids)} studies split by patient: "
        f"{len(result.splits.folds[0]['train'])} train, "
        f"{len(result.splits.folds[0]['validation'])} validation, {len(result.splits.test)} "
        f"test ({result.seconds:.0f} s).")
    section.tables.append(_table(evaluation.rows))
    section.notes.extend(evaluation.notes)
    if any(math.isfinite(r["auc"]) for r in evaluation.rows):
        section.add_figure(roc_figure(evaluation), caption="ROC curves on the test split; "
                           "dots: high-sensitivity, squares: high-specificity operating points")
    shown = _heatmaps(section, data, result)
    state.outputs["detector_run"] = run_dir
    summaries = {r["finding"]: _finding_summary(r) for r in evaluation.rows}
    state.findings["detection"] = {
        "trained": True, "any_ich": summaries.get("any_ich"), "studies": len(data.case_ids),
        "test_studies": len(result.splits.test),
        "heatmaps": shown, "notes": evaluation.notes,
        "findings": summaries}
