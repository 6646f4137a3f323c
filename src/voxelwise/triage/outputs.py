"""The triage simulation's outputs: summary JSON (the manifest), per-study CSV and a figure.

``run_simulation(config, out)`` writes into ``out``:

- ``simulation.json``: parameters, summary (median, IQR, counts, stat-queue load), the table,
  versions, seconds and the output paths;
- ``studies.csv``: one row per simulated study, both arms (times in minutes from the start);
- ``time_to_diagnosis.png``: the figure of `time_to_diagnosis_figure`.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxelwise.fileio import atomic_path, write_text_atomic
from voxelwise.triage.simulate import SimulationConfig, SimulationResult, simulate, summary_rows

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


def _finite(value: Any) -> Any:
    """JSON-safe: nan becomes None, numpy scalars plain numbers, recursively."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_studies_csv(result: SimulationResult, path: str | Path) -> Path:
    """One row per simulated study (both arms), written atomically."""
    columns = result.studies.columns()
    with atomic_path(path) as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in zip(*columns.values(), strict=True):
            writer.writerow([f"{v:.3f}" if isinstance(v, float | np.floating) else int(v)
                             for v in row])
    return Path(path)


def run_simulation(config: SimulationConfig, out: str | Path) -> tuple[SimulationResult, dict]:
    """Simulate with ``config`` and write the outputs into ``out``; returns (result, manifest)."""
    from voxelwise import __version__

    out = Path(out)
    started = time.perf_counter()
    result = simulate(config)
    seconds = time.perf_counter() - started
    figure_path = out / "time_to_diagnosis.png"
    figure = time_to_diagnosis_figure(result)
    with atomic_path(figure_path) as temporary:
        figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    outputs = {"summary": out / "simulation.json", "studies": out / "studies.csv",
               "figure": figure_path}
    write_studies_csv(result, outputs["studies"])
    manifest = {"command": "voxelwise triage simulate", "version": __version__,
                "versions": {"numpy": np.__version__}, "parameters": asdict(config),
                "summary": _finite(result.summary), "table": summary_rows(result.summary),
                "seconds": round(seconds, 3),
                "outputs": {k: str(v) for k, v in outputs.items()}}
    write_text_atomic(outputs["summary"], json.dumps(manifest, indent=2))
    return result, manifest
