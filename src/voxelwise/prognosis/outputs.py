"""What a prognosis run leaves on disk, and its section of the HTML report.

``OUT/comparison.csv`` and ``comparison.json`` (one row per model: AUC or C-index of
clinical-only and clinical + imaging with CIs, the paired difference and its p-value, n,
events), ``OUT/predictions.csv`` (out-of-fold predictions per patient), ``OUT/calibration_<model>
.png``, ``OUT/kaplan_meier_<model>.png``, ``OUT/report.html`` and the manifest
``OUT/prognosis.json`` (inputs, parameters, versions, timings, the join account, outputs).
Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

from voxelwise.fileio import atomic_path, write_text_atomic
from voxelwise.prognosis.evaluate import PrognosisResult


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def comparison_rows(result: PrognosisResult) -> list[dict[str, Any]]:
    """One flat row per model (the rows of comparison.csv)."""
    return [{k: _json_value(v) for k, v in c.row(result.config.outcome).items()}
            for c in result.comparisons]


def _save_figure(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def _figures(result: PrognosisResult) -> list[tuple[str, Any, str]]:
    """(file name, figure, caption) of every figure the result has."""
    from voxelwise.prognosis.plots import calibration_figure, kaplan_meier_figure

    out = []
    for model in result.config.model_names:
        calibration = calibration_figure(result, model)
        if calibration is not None:
            out.append((f"calibration_{model}.png", calibration,
                        f"Calibration of the out-of-fold predicted risk ({model}); groups are "
                        "quantiles of predicted risk"))
        km = kaplan_meier_figure(result, model)
        if km is not None:
            out.append((f"kaplan_meier_{model}.png", km[0],
                        f"Kaplan-Meier survival by tertile of out-of-fold predicted risk "
                        f"({model}); log-rank p: clinical {km[1][0]:.2g}, clinical + imaging "
                        f"{km[1][1]:.2g}"))
    return out


def write_outputs(result: PrognosisResult, out_dir: str | Path,
                  inputs: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write every output of ``result`` into ``out_dir`` (a refusal writes the manifest only)."""
    from voxelwise.reports.html import Report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    if not result.refusal:
        rows = comparison_rows(result)
        import pandas as pd

        buffer = io.StringIO()
        pd.DataFrame(rows).to_csv(buffer, index=False)
        written["comparison_csv"] = write_text_atomic(out / "comparison.csv", buffer.getvalue())
        written["comparison_json"] = write_text_atomic(
            out / "comparison.json", json.dumps(rows, indent=2))
        buffer = io.StringIO()
        result.predictions.to_csv(buffer, index=False)
        written["predictions"] = write_text_atomic(out / "predictions.csv", buffer.getvalue())
        for name, figure, _ in _figures(result):
            written[name.removesuffix(".png")] = _save_figure(figure, out / name)
    report = Report(f"voxelwise prognosis: {result.config.outcome}")
    add_prognosis_section(report, result)
    written["report"] = report.write(out / "report.html")
    written["manifest"] = write_text_atomic(out / "prognosis.json",
                                            json.dumps(manifest(result, inputs, written),
                                                       indent=2, default=str))
    return written


def manifest(result: PrognosisResult, inputs: dict[str, Any] | None,
             outputs: dict[str, Path]) -> dict[str, Any]:
    """The JSON record of a run: what went in, with what settings, what came out."""
    import lifelines
    import sklearn
    import statsmodels

    from voxelwise import __version__

    return {
        "command": "voxelwise prognosis", "version": __version__,
        "versions": {"scikit-learn": sklearn.__version__, "lifelines": lifelines.__version__,
                     "statsmodels": statsmodels.__version__},
        "inputs": inputs or {}, "config": result.config.as_dict(),
        "account": result.data.account.as_dict(), "refusal": result.refusal,
        "n": result.data.n, "events": result.events, "outer_folds": result.folds,
        "features": {"clinical": list(result.data.clinical.columns),
                     "imaging": list(result.data.imaging.columns)},
        "hyper_parameters": {f"{r.model} {r.feature_set}": r.chosen for r in result.runs},
        "warnings": result.warnings, "comparison": comparison_rows(result),
        "seconds": result.seconds, "outputs": {k: str(v) for k, v in outputs.items()},
    }


def add_prognosis_section(report: Any, result: PrognosisResult) -> Any:
    """Add the comparison (table, calibration and Kaplan-Meier figures, account of dropped
    rows, warnings, or the reason for a refusal) to a `voxelwise.reports.html.Report`."""
    from voxelwise.reports.html import Table

    config = result.config
    section = report.section(f"Prognosis: clinical vs clinical + imaging ({config.outcome})")
    account = result.data.account
    if result.refusal:
        section.paragraphs.append(f"Not analysed: {result.refusal}.")
        section.notes += account.lines()
        return section
    imaging = ", ".join(result.data.imaging.columns) or "none"
    section.paragraphs.append(
        f"{result.data.n} patients, {result.events} {result.event_name}; {result.folds}-fold "
        f"nested cross-validation (outer folds stratified, one row per patient; inner "
        f"{config.inner_folds}-fold search of hyper-parameters), seed {config.seed}. Clinical "
        f"features: {', '.join(result.data.clinical.columns)}. Imaging features (admission; "
        f"_change = last follow-up minus admission; {', '.join(config.log_features)} as "
        f"log(1 + mL)): {imaging}. Both models see the same patients in the same folds, so the "
        "difference is paired.")
    level = f"{100 * (1 - config.alpha):g}% CI"
    rows = [[c.model, c.metric, c.clinical.format(), c.combined.format(),
             c.difference.format(), f"{c.p_value:.3g}", c.test, c.n, c.events]
            for c in result.comparisons]
    section.tables.append(Table(
        ["model", "metric", f"clinical only ({level})", f"clinical + imaging ({level})",
         f"difference ({level})", "p", "test", "n", "events"], rows,
        caption="Out-of-fold discrimination of each model; difference = clinical + imaging "
                "minus clinical only"))
    for _, figure, caption in _figures(result):
        section.add_figure(figure, caption)
    section.notes += [f"warning: {w}" for w in result.warnings] + account.lines()
    return section
