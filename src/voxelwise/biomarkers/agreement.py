"""Automated against ground-truth volumes per class: Bland-Altman, ICC, Pearson, Spearman."""

from __future__ import annotations

from typing import Any

from voxelwise.errors import InputError
from voxelwise.metrics.agreement import bland_altman, bland_altman_plot, icc, pearson, spearman


def paired_volumes(auto: list[dict[str, Any]], truth: list[dict[str, Any]], name: str
                   ) -> tuple[list[float], list[float]]:
    """Volumes of class ``name`` (mL) of the cases present in both tables (matched by case)."""
    reference = {str(r["case"]): float(r[f"{name}_ml"]) for r in truth}
    pairs = [(float(r[f"{name}_ml"]), reference[str(r["case"])]) for r in auto
             if str(r["case"]) in reference]
    if len(pairs) < 2:
        raise InputError(None, f"{name}: fewer than 2 cases in both tables; agreement needs "
                         "matching 'case' values")
    return [a for a, _ in pairs], [t for _, t in pairs]


def agreement_rows(auto: list[dict[str, Any]], truth: list[dict[str, Any]],
                   classes: list[str]) -> list[dict[str, Any]]:
    """One row per class: n, bias and 95% limits of agreement (mL), ICC(2,1) with CI, r, rho."""
    rows = []
    for name in classes:
        a, t = paired_volumes(auto, truth, name)
        ba = bland_altman(a, t)
        agreement = icc(list(zip(a, t, strict=True)))
        r, rho = pearson(a, t), spearman(a, t)
        rows.append({
            "class": name, "n": ba.n, "bias_ml": round(ba.bias.value, 4),
            "bias_ci_ml": f"{ba.bias.lower:.3f} to {ba.bias.upper:.3f}",
            "lower_loa_ml": round(ba.lower_limit.value, 4),
            "upper_loa_ml": round(ba.upper_limit.value, 4),
            "icc": round(agreement.value, 4),
            "icc_ci": f"{agreement.lower:.3f} to {agreement.upper:.3f}",
            "pearson_r": round(r.value, 4), "spearman_rho": round(rho.value, 4)})
    return rows


def agreement_plot(auto: list[dict[str, Any]], truth: list[dict[str, Any]], name: str):
    """Bland-Altman plot of one class's volumes (automated - ground truth, mL)."""
    a, t = paired_volumes(auto, truth, name)
    return bland_altman_plot(a, t, units="mL", labels=("automated", "ground truth"),
                             title=f"{name} volume: automated vs ground truth (n = {len(a)})")
