"""Clinical-only against clinical + imaging, on the same patients and the same outer folds.

`analyse` cross-validates every configured model on both feature sets and compares their
out-of-fold predictions, paired patient by patient:

- binary outcomes (mortality, unfavourable): AUC of each with its DeLong 95% CI and the paired
  DeLong test of the difference (`voxelwise.metrics.classification.delong_test`); Brier score;
- GOS-E (ordinal model): the same on the predicted P(GOS-E <= 4), plus the ordinal C-index of
  each (pairs of patients with different GOS-E; Harrell's C with all "events");
- survival (Cox): Harrell's C of each with its CI (`voxelwise.metrics.survival`), and a paired
  percentile bootstrap of the difference (patients resampled, both scores kept together).

It refuses, with the reason, data too small for the requested model: fewer than ``min_events``
events (or non-events) after every drop the `JoinAccount` lists.
"""

from __future__ import annotations

import math
import time as clock
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from voxelwise.errors import InputError
from voxelwise.metrics.classification import Estimate
from voxelwise.prognosis.config import PrognosisConfig
from voxelwise.prognosis.features import PrognosisData
from voxelwise.prognosis.models import (
    CrossValidated,
    ModelDidNotConverge,
    Target,
    cross_validate,
    outer_folds,
    usable_folds,
)

FEATURE_SETS = ("clinical", "clinical+imaging")
EVENT_NAMES = {"mortality": "deaths", "unfavourable": "unfavourable outcomes (GOS-E <= {m})",
               "gose": "unfavourable outcomes (GOS-E <= {m})", "survival": "deaths"}


class InsufficientData(InputError):
    """The data are too few for the requested analysis; the message says why."""

    def __init__(self, problem: str) -> None:
        super().__init__(None, problem)


@dataclass
class Comparison:
    """One model: clinical-only against clinical + imaging, paired on the same patients."""

    model: str
    metric: str                  # "AUC" or "C-index"
    clinical: Estimate
    combined: Estimate
    difference: Estimate         # combined - clinical
    p_value: float
    test: str
    n: int
    events: int
    extra: dict[str, float] = field(default_factory=dict)

    def row(self, outcome: str) -> dict[str, Any]:
        """A flat row of comparison.csv."""
        return {"outcome": outcome, "model": self.model, "metric": self.metric,
                **self.clinical.as_dict("clinical"), **self.combined.as_dict("clinical_imaging"),
                **self.difference.as_dict("difference"), "p_value": self.p_value,
                "test": self.test, "n": self.n, "events": self.events, **self.extra}


@dataclass
class PrognosisResult:
    """What `analyse` found; ``refusal`` is set (and nothing else computed) when it refused."""

    config: PrognosisConfig
    data: PrognosisData
    folds: int = 0
    comparisons: list[Comparison] = field(default_factory=list)
    predictions: pd.DataFrame | None = None
    runs: list[CrossValidated] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refusal: str | None = None
    seconds: float = 0.0

    @property
    def events(self) -> int:
        return count_events(self.data, self.config)

    @property
    def event_name(self) -> str:
        return EVENT_NAMES[self.config.outcome].format(m=self.config.unfavourable_max_gose)

    def check(self) -> PrognosisResult:
        """Raise `InsufficientData` if the analysis refused; otherwise return self."""
        if self.refusal:
            raise InsufficientData(self.refusal)
        return self

    def run(self, model: str, feature_set: str) -> CrossValidated:
        """The out-of-fold predictions of ``model`` on ``feature_set``."""
        return next(r for r in self.runs if r.model == model and r.feature_set == feature_set)

    def summary_lines(self) -> list[str]:
        if self.refusal:
            return [f"refused: {self.refusal}"]
        lines = [f"{self.config.outcome}: {self.data.n} patients, {self.events} "
                 f"{self.event_name}, {self.folds}-fold nested cross-validation"]
        for c in self.comparisons:
            lines.append(f"{c.model}: {c.metric} clinical {c.clinical.format()}, clinical + "
                         f"imaging {c.combined.format()}, difference {c.difference.format()}, "
                         f"p = {c.p_value:.3g} ({c.test})")
        return lines + [f"warning: {w}" for w in self.warnings]


def binary_target(data: PrognosisData, config: PrognosisConfig) -> np.ndarray:
    """The 0/1 target the folds are stratified on and AUCs are computed for."""
    if config.outcome == "gose":
        return (data.outcome <= config.unfavourable_max_gose).astype(int)
    if config.outcome == "survival":
        return np.asarray(data.event, dtype=int)
    return data.outcome.astype(int)


def count_events(data: PrognosisData, config: PrognosisConfig) -> int:
    """Deaths (mortality, survival) or unfavourable outcomes (unfavourable, gose)."""
    if config.outcome == "survival" and data.event is None:
        return 0
    return int(binary_target(data, config).sum()) if data.n else 0


def _refusal(data: PrognosisData, config: PrognosisConfig) -> str | None:
    events = count_events(data, config)
    others = data.n - events
    name = EVENT_NAMES[config.outcome].format(m=config.unfavourable_max_gose)
    if config.outcome == "survival":
        if events < config.min_events:
            return (f"{events} {name} among {data.n} analysed patients; the Cox model needs at "
                    f"least {config.min_events} (min_events)")
        return None
    if min(events, others) < config.min_events:
        return (f"{events} {name} and {others} others among {data.n} analysed patients; "
                f"{config.outcome} needs at least {config.min_events} of each (min_events)")
    return None


def analyse(data: PrognosisData, config: PrognosisConfig) -> PrognosisResult:
    """Cross-validate every model on both feature sets and compare them (see module doc)."""
    started = clock.perf_counter()
    result = PrognosisResult(config, data, refusal=_refusal(data, config))
    if result.refusal:
        return result
    strata = binary_target(data, config)
    result.folds = usable_folds(strata, config.outer_folds)
    if result.folds < config.outer_folds:
        result.warnings.append(f"{result.folds} outer folds instead of {config.outer_folds}: "
                               "the rarer class has too few patients")
    folds = outer_folds(strata, result.folds, config.seed)
    target = Target(time=data.outcome, event=data.event) if config.outcome == "survival" \
        else Target(y=data.outcome)
    result.warnings += _power_warnings(data, config)
    sets = {"clinical": data.clinical,
            "clinical+imaging": pd.concat([data.clinical, data.imaging], axis=1)}
    try:
        for model in config.model_names:
            for name in FEATURE_SETS:
                frame = sets[name]
                result.runs.append(cross_validate(
                    model, frame.to_numpy(dtype=float), target, folds, list(frame.columns),
                    inner_folds=config.inner_folds, seed=config.seed,
                    unfavourable_max=config.unfavourable_max_gose, feature_set=name))
            result.comparisons.append(_compare(result, model, strata))
    except ModelDidNotConverge as error:
        result.runs, result.comparisons = [], []
        result.refusal = str(error)
        return result
    result.predictions = _predictions(result, folds)
    result.seconds = round(clock.perf_counter() - started, 2)
    return result


def _power_warnings(data: PrognosisData, config: PrognosisConfig) -> list[str]:
    events = count_events(data, config)
    rarer = events if config.outcome == "survival" else min(events, data.n - events)
    parameters = data.clinical.shape[1] + data.imaging.shape[1]
    out = [] if data.imaging.shape[1] else ["no imaging feature has a value: the two models "
                                            "are the same"]
    if rarer < 10 * parameters:
        out.append(f"{rarer / max(parameters, 1):.1f} events per candidate variable "
                   f"({rarer} in the rarer outcome class, {parameters} variables), below the "
                   "usual 10: the "
                   "comparison is underpowered and the estimates unstable")
    return out + list(data.notes)


def _compare(result: PrognosisResult, model: str, strata: np.ndarray) -> Comparison:
    from voxelwise.metrics.classification import delong_test
    from voxelwise.metrics.survival import harrell_c_index

    config, data = result.config, result.data
    clinical, combined = (result.run(model, s) for s in FEATURE_SETS)
    events = int(strata.sum())
    if config.outcome == "survival":
        c_a = harrell_c_index(data.outcome, data.event, clinical.risk, alpha=config.alpha)
        c_b = harrell_c_index(data.outcome, data.event, combined.risk, alpha=config.alpha)
        difference, p = paired_c_difference(data.outcome, data.event, combined.risk,
                                            clinical.risk, config.n_bootstrap, config.seed,
                                            config.alpha)
        return Comparison(model, "C-index", c_a.estimate, c_b.estimate, difference, p,
                          f"paired bootstrap ({config.n_bootstrap} resamples)", data.n, events)
    test = delong_test(strata, combined.probability, clinical.probability, config.alpha)
    extra = {f"brier_{s}": float(np.mean((run.probability - strata) ** 2))
             for s, run in (("clinical", clinical), ("clinical_imaging", combined))}
    if config.outcome == "gose":
        ones = np.ones(data.n, dtype=int)
        for s, run in (("clinical", clinical), ("clinical_imaging", combined)):
            c = harrell_c_index(data.outcome, ones, run.risk, alpha=config.alpha)
            extra.update(c.estimate.as_dict(f"ordinal_c_{s}"))
    return Comparison(model, "AUC" if config.outcome != "gose" else "AUC of GOS-E <= "
                      f"{config.unfavourable_max_gose}", test.auc_b, test.auc_a,
                      test.difference, test.p_value, "paired DeLong", data.n, events, extra)


def paired_c_difference(time, event, risk_a, risk_b, n_bootstrap: int = 1000, seed: int = 0,
                        alpha: float = 0.05) -> tuple[Estimate, float]:
    """C(risk_a) - C(risk_b) with a paired percentile-bootstrap CI and two-sided p-value.

    Patients are resampled with replacement, both scores together; p is twice the smaller
    share of replicates on either side of 0 (at least 1 / n_bootstrap).
    """
    from voxelwise.metrics.survival import harrell_c_index

    time, event = np.asarray(time, float), np.asarray(event, int)
    a, b = np.asarray(risk_a, float), np.asarray(risk_b, float)
    observed = harrell_c_index(time, event, a).value - harrell_c_index(time, event, b).value
    rng = np.random.default_rng(seed)
    n = time.size
    replicates = []
    for _ in range(n_bootstrap):
        k = rng.integers(0, n, n)
        if event[k].sum() == 0:
            continue
        replicates.append(harrell_c_index(time[k], event[k], a[k]).value
                          - harrell_c_index(time[k], event[k], b[k]).value)
    values = np.asarray([r for r in replicates if math.isfinite(r)])
    if values.size == 0:
        return Estimate(observed, math.nan, math.nan, n, alpha, "paired bootstrap"), math.nan
    lower, upper = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * max(min((values <= 0).mean(), (values >= 0).mean()), 1 / values.size))
    return Estimate(float(observed), float(lower), float(upper), n, alpha,
                    "paired bootstrap"), float(p)


def _predictions(result: PrognosisResult, folds: np.ndarray) -> pd.DataFrame:
    data = result.data
    table = pd.DataFrame({"patient": data.patients, "fold": folds, "outcome": data.outcome})
    if data.time is not None:
        table["survival_days"], table["event"] = data.time, data.event
    for run in result.runs:
        name = f"{run.model}_{run.feature_set.replace('+', '_')}"
        table[f"{name}_risk"] = run.risk
        if run.probability is not None and result.config.outcome == "gose":
            table[f"{name}_p_unfavourable"] = run.probability
    return table


def risk_groups(risk: np.ndarray, groups: int = 3) -> np.ndarray:
    """Group 0 (lowest predicted risk) .. groups-1 (highest), by quantiles of ``risk``."""
    order = pd.Series(risk).rank(method="first")
    return pd.qcut(order, groups, labels=False).to_numpy(dtype=int)
