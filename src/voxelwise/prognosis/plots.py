"""Figures of a prognosis comparison: calibration of the predicted risk, Kaplan-Meier by risk group.

Both draw the clinical-only and the clinical + imaging model of one model kind side by side, from
the out-of-fold predictions (each patient predicted by a model that never saw them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from voxelwise.prognosis.evaluate import (
    FEATURE_SETS,
    PrognosisResult,
    binary_target,
    risk_groups,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOURS = {"clinical": "#1f77b4", "clinical+imaging": "#d62728"}
GROUP_NAMES = {2: ("lower", "higher"), 3: ("low", "middle", "high")}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def calibration_bins(y: np.ndarray, probability: np.ndarray, bins: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean predicted and observed frequency in ``bins`` quantile groups, and their sizes."""
    order = np.argsort(probability, kind="stable")
    groups = np.array_split(order, bins)
    predicted = np.array([probability[g].mean() for g in groups if g.size])
    observed = np.array([y[g].mean() for g in groups if g.size])
    sizes = np.array([g.size for g in groups if g.size])
    return predicted, observed, sizes


def calibration_figure(result: PrognosisResult, model: str) -> Figure | None:
    """Observed against predicted risk in quantile groups (None when the model gives no
    probability, e.g. Cox)."""
    runs = [result.run(model, s) for s in FEATURE_SETS]
    if any(run.probability is None for run in runs):
        return None
    y = binary_target(result.data, result.config)
    bins = int(np.clip(result.data.n // 15, 3, 10))
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(4.2, 4.0))
    axes.plot([0, 1], [0, 1], color="#888", linestyle="--", linewidth=0.8, label="ideal")
    for run in runs:
        predicted, observed, _ = calibration_bins(y, run.probability, bins)
        axes.plot(predicted, observed, marker="o", color=COLOURS[run.feature_set],
                  label=run.feature_set)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel(f"predicted probability ({result.config.outcome})")
    axes.set_ylabel("observed proportion")
    axes.set_title(f"Calibration, {model} ({bins} groups of ~{result.data.n // bins} patients)",
                   fontsize=9)
    axes.legend(fontsize=8, loc="upper left")
    return figure


def kaplan_meier_figure(result: PrognosisResult, model: str) -> tuple[Figure, list[float]] | None:
    """Kaplan-Meier survival per predicted-risk group, one panel per feature set, with the
    log-rank p-value across groups (None when the clinical table has no survival columns)."""
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    data = result.data
    if data.time is None or data.event is None:
        return None
    groups_n = result.config.risk_groups
    names = GROUP_NAMES.get(groups_n, tuple(f"group {i + 1}" for i in range(groups_n)))
    plt = _pyplot()
    figure, panels = plt.subplots(1, 2, figsize=(8.4, 3.6), sharey=True)
    p_values = []
    for axes, feature_set in zip(panels, FEATURE_SETS, strict=True):
        groups = risk_groups(result.run(model, feature_set).risk, groups_n)
        for g in range(groups_n):
            mask = groups == g
            fitter = KaplanMeierFitter(label=f"{names[g]} risk (n={int(mask.sum())})")
            fitter.fit(data.time[mask], data.event[mask])
            fitter.plot_survival_function(ax=axes, ci_show=False)
        p = float(multivariate_logrank_test(data.time, groups, data.event).p_value)
        p_values.append(p)
        axes.set_title(f"{feature_set} ({model}); log-rank p = {p:.2g}", fontsize=9)
        axes.set_xlabel("days since admission")
        axes.legend(fontsize=7, loc="lower left")
    panels[0].set_ylabel("survival probability")
    panels[0].set_ylim(0, 1.02)
    return figure, p_values
