"""The triage simulation's figure: time to diagnosis with and without the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from voxelwise.triage.simulate import SimulationResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def time_to_diagnosis_figure(result: SimulationResult) -> Figure:
    """Left: share of haemorrhage-positive routine studies diagnosed by time (hours), both arms.

    Right: waiting time of the requested-stat studies (minutes), both arms (the false
    positives' cost).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.studies
    target = s.measured & s.positive
    stat = s.measured & s.stat
    figure, (left, right) = plt.subplots(1, 2, figsize=(8.4, 3.2),
                                         gridspec_kw={"width_ratios": [2, 1]})
    for end, label, colour in ((s.end_without, "without model", "#888888"),
                               (s.end_with, "with model", "#d03030")):
        hours = np.sort((end - s.arrival)[target]) / 60
        share = np.arange(1, hours.size + 1) / max(hours.size, 1)
        median = np.median(hours) * 60 if hours.size else float("nan")
        left.step(hours, share, where="post", color=colour,
                  label=f"{label} (median {median:.0f} min)")
    left.set_xlabel("time from arrival to diagnosis (h)")
    left.set_ylabel("share diagnosed")
    left.set_title(f"haemorrhage-positive routine studies (n = {int(target.sum())})",
                   fontsize=9)
    left.legend(fontsize=7, loc="lower right")
    left.grid(alpha=0.3)
    waits = [(s.start_without - s.arrival)[stat], (s.start_with - s.arrival)[stat]]
    right.boxplot(waits, showfliers=False)
    right.set_xticks([1, 2], ["without", "with"])
    right.set_ylabel("wait before reading (min)")
    right.set_title(f"requested-stat studies (n = {int(stat.sum())})", fontsize=9)
    right.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return figure
