"""Follow-up: each patient's class volumes over time, growth and haematoma expansion."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from voxelwise.errors import InputError

EXPANSION_ML = 6.0
EXPANSION_RELATIVE = 0.33
"""Haematoma expansion: growth of >= 6 mL or >= 33% from admission to the first follow-up."""
EXPANSION_CLASS = "haematoma"
"""The only class the expansion flag is judged for (a clinical definition for haematoma)."""
FOLLOWUP_COLUMNS = ("patient", "class", "admission_ml", "first_followup_ml", "last_ml",
                    "days_to_first_followup", "days_to_last", "change_ml", "growth_ml_per_day",
                    "expansion")


def _number(value: Any, what: str, patient: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(None, f"patient {patient!r}: {what} {value!r} is not a number") \
            from None


def followup_table(rows: Iterable[dict[str, Any]], classes: Iterable[str]
                   ) -> list[dict[str, Any]]:
    """followup.csv rows (one per patient and class) from biomarkers.csv rows.

    Every row needs ``patient`` and ``days_since_admission``; a row without them is refused
    (naming its case). Growth rate = (last - admission) / days; expansion is judged between
    admission (the earliest scan) and the first follow-up, for the haematoma class only: it is
    empty on every other class (oedema growth is not haematoma expansion) and with one scan only.
    """
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        patient = str(row.get("patient") or "")
        if not patient or row.get("days_since_admission") in (None, ""):
            raise InputError(None, f"case {row.get('case')!r}: follow-up needs its patient and "
                             "days_since_admission (from labels.csv or --cases)")
        series[patient].append(row)
    table = []
    for patient, scans in sorted(series.items()):
        scans = sorted(scans, key=lambda r: _number(r["days_since_admission"], "days", patient))
        days = [_number(r["days_since_admission"], "days", patient) for r in scans]
        for name in classes:
            volumes = [_number(r[f"{name}_ml"], f"{name}_ml", patient) for r in scans]
            table.append(_patient_class(patient, name, days, volumes))
    return table


def _patient_class(patient: str, name: str, days: list[float], volumes: list[float]
                   ) -> dict[str, Any]:
    first = volumes[1] if len(volumes) > 1 else None
    span = days[-1] - days[0]
    change = volumes[-1] - volumes[0]
    expansion: bool | str = ""
    if first is not None and name == EXPANSION_CLASS:
        growth = first - volumes[0]
        expansion = bool(growth >= EXPANSION_ML
                         or (volumes[0] > 0 and growth >= EXPANSION_RELATIVE * volumes[0]))
    return {
        "patient": patient, "class": name, "admission_ml": round(volumes[0], 4),
        "first_followup_ml": "" if first is None else round(first, 4),
        "last_ml": round(volumes[-1], 4),
        "days_to_first_followup": "" if first is None else days[1] - days[0],
        "days_to_last": span, "change_ml": round(change, 4),
        "growth_ml_per_day": round(change / span, 4) if span > 0 else "",
        "expansion": expansion,
    }


def volume_plot(rows: list[dict[str, Any]], name: str, truth: list[dict[str, Any]] | None = None,
                title: str = ""):
    """Volume over time per patient (solid: ``rows``; dashed: ``truth``), a matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    colours = {}
    for style, table, label in (("-o", rows, "automated"), ("--x", truth or [], "ground truth")):
        by_patient: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for row in table:
            by_patient[str(row["patient"])].append((float(row["days_since_admission"]),
                                                    float(row[f"{name}_ml"])))
        for patient, points in sorted(by_patient.items()):
            points.sort()
            line = ax.plot(*zip(*points, strict=True), style, color=colours.get(patient),
                           label=f"{patient} ({label})" if truth else patient)[0]
            colours.setdefault(patient, line.get_color())
    ax.set_xlabel("Days since admission")
    ax.set_ylabel(f"{name} volume (mL)")
    ax.set_title(title or f"{name} volume over time")
    if colours:
        ax.legend(fontsize="x-small", ncol=2)
    return figure
