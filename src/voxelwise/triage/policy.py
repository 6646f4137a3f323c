"""The re-prioritisation policy: a routine study whose score reaches the threshold becomes stat.

The threshold is the detector's high-sensitivity operating point for ``any_ich``, chosen on
validation data and stored in the run's ``operating_points.json`` (or one the user gives). As in
`voxelwise.metrics.classification`, a study is called positive when ``score >= threshold``.
A study requested as stat stays stat whatever its score: the model only ever moves studies up.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from voxelwise.errors import InputError
from voxelwise.store.worklist import Priority

OPERATING_POINTS_FILE = "operating_points.json"
DEFAULT_FINDING = "any_ich"
DEFAULT_OPERATING_POINT = "high_sensitivity"


@dataclass(frozen=True)
class Decision:
    """The final priority of one study and why."""

    priority: Priority
    reason: str


def check_threshold(threshold: float, source: str | Path | None = None) -> float:
    """``threshold`` as a float; refused unless it is a finite number."""
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        raise InputError(source, f"threshold {threshold!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(source, f"threshold {threshold!r} is not a finite number")
    return value


def decide(requested: Priority | str, score: float | None, threshold: float | None) -> Decision:
    """The final priority of a study requested as ``requested`` with model ``score``."""
    requested = Priority(requested)
    if requested is Priority.STAT:
        return Decision(Priority.STAT, "requested stat")
    if score is None or threshold is None:
        return Decision(Priority.ROUTINE, "requested routine; not scored")
    if score >= threshold:
        return Decision(Priority.STAT, f"score {score:.3f} >= threshold {threshold:.3f}: "
                        "moved from routine to stat")
    return Decision(Priority.ROUTINE, f"score {score:.3f} < threshold {threshold:.3f}: "
                    "stays routine")


def operating_point(run_dir: str | Path, finding: str = DEFAULT_FINDING,
                    point: str = DEFAULT_OPERATING_POINT) -> dict[str, float]:
    """The operating point ``point`` of ``finding`` in ``run_dir/operating_points.json``.

    Returns its dictionary (``threshold`` and the measured ``sensitivity`` / ``specificity``).
    """
    path = Path(run_dir) / OPERATING_POINTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "not found: the detector run has no operating points; "
                         "give --threshold") from None
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot be read as JSON: {error}") from None
    entry = data.get(finding, {}).get(point) if isinstance(data, dict) else None
    if not isinstance(entry, dict) or "threshold" not in entry:
        raise InputError(path, f"has no {finding} {point} threshold")
    if entry["threshold"] is None:
        raise InputError(path, f"the {finding} {point} threshold is null (the run's validation "
                         "data could not choose one); give --threshold")
    entry = dict(entry)
    entry["threshold"] = check_threshold(entry["threshold"], path)
    return entry
