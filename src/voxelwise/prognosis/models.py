"""Nested cross-validation of the outcome models: out-of-fold predictions for every patient.

The outer folds (stratified, one row per patient, so a patient's scans never sit on both sides
of a split) give the estimate; inside each outer training set an inner stratified k-fold picks
the hyper-parameters (scikit-learn's ``GridSearchCV`` for the binary models, the same loop by
hand for the Cox model). Every preprocessing step (median imputation, standardisation) is fitted
on training rows only. Models:

- ``logistic``: L2 logistic regression (scikit-learn), C chosen inside;
- ``gradient_boosting``: scikit-learn gradient-boosted trees, depth and trees chosen inside;
- ``ordinal``: cumulative-logit (proportional odds) model of GOS-E, statsmodels
  ``OrderedModel``; it has no hyper-parameter, so no inner loop;
- ``cox``: Cox proportional hazards (lifelines ``CoxPHFitter``), ridge penalty chosen inside by
  Harrell's C.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GRIDS: dict[str, dict[str, list[Any]]] = {
    "logistic": {"model__C": [0.01, 0.1, 1.0, 10.0]},
    "gradient_boosting": {"model__max_depth": [1, 2], "model__n_estimators": [50, 150]},
    "cox": {"penalizer": [0.01, 0.1, 1.0]},
    "ordinal": {},
}
"""Hyper-parameters searched by the inner loop, per model."""


@dataclass
class Target:
    """What a model learns: ``y`` (0/1 or GOS-E 1-8), or ``time`` and ``event`` (survival)."""

    y: np.ndarray | None = None
    time: np.ndarray | None = None
    event: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> Target:
        def pick(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[rows]

        return Target(pick(self.y), pick(self.time), pick(self.event))

    @property
    def strata(self) -> np.ndarray:
        """Labels the folds are stratified on (the outcome, or the event)."""
        return np.asarray(self.event if self.y is None else self.y).astype(int)


@dataclass
class CrossValidated:
    """Out-of-fold predictions of one model on one feature set."""

    model: str
    features: list[str]
    risk: np.ndarray                 # higher = worse outcome
    probability: np.ndarray | None   # P(bad outcome) where the model gives one
    chosen: list[dict[str, Any]] = field(default_factory=list)  # hyper-parameters per fold
    feature_set: str = ""            # a name for ``features`` ("clinical", ...)


def outer_folds(strata: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold number (0..n_folds-1) of each row, stratified on ``strata``."""
    from sklearn.model_selection import StratifiedKFold

    folds = np.full(len(strata), -1)
    splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(strata)), strata)):
        folds[test] = k
    return folds


def usable_folds(strata: np.ndarray, wanted: int) -> int:
    """At most ``wanted`` folds, and no more than the rarer class has rows (0 or 1: none)."""
    _, counts = np.unique(strata, return_counts=True)
    return int(min(wanted, counts.min())) if counts.size > 1 else 0


def _preprocess():
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])


def _binary_pipeline(model: str, seed: int):
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "logistic":
        return Pipeline([("impute", SimpleImputer(strategy="median")),
                         ("scale", StandardScaler()),
                         ("model", LogisticRegression(max_iter=2000))])
    return Pipeline([("impute", SimpleImputer(strategy="median")),
                     ("model", GradientBoostingClassifier(learning_rate=0.05, subsample=0.8,
                                                          random_state=seed))])


def _fit_binary(model: str, x: np.ndarray, y: np.ndarray, inner: int, seed: int):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    pipeline = _binary_pipeline(model, seed)
    folds = usable_folds(y, inner)
    if folds < 2:
        return pipeline.fit(x, y), {}
    search = GridSearchCV(pipeline, GRIDS[model], scoring="roc_auc", refit=True,
                          cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    search.fit(x, y)
    return search.best_estimator_, {k.removeprefix("model__"): v
                                    for k, v in search.best_params_.items()}


def _informative(x: np.ndarray) -> np.ndarray:
    """Columns that vary among the (non-missing) training rows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanmax(x, axis=0) - np.nanmin(x, axis=0)
    return np.isfinite(spread) & (spread > 0)


def _fit_ordinal(x: np.ndarray, y: np.ndarray):
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    keep = _informative(x)
    prep = _preprocess().fit(x[:, keep])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = OrderedModel(y.astype(int), prep.transform(x[:, keep]),
                              distr="logit").fit(method="bfgs", disp=False, maxiter=1000)
    return keep, prep, result


def _predict_ordinal(fitted, x: np.ndarray, unfavourable_max: int):
    keep, prep, result = fitted
    z = prep.transform(x[:, keep])
    beta = np.asarray(result.params)[:z.shape[1]]
    probabilities = result.model.predict(result.params, exog=z)
    levels = np.asarray(result.model.labels, dtype=float)
    return -(z @ beta), probabilities[:, levels <= unfavourable_max].sum(axis=1)


def _cox_frame(z: np.ndarray, time: np.ndarray | None = None, event: np.ndarray | None = None):
    import pandas as pd

    frame = pd.DataFrame(z, columns=[f"x{i}" for i in range(z.shape[1])])
    if time is not None:
        frame["time"], frame["event"] = time, event
    return frame


class ModelDidNotConverge(RuntimeError):
    """A model's fit did not converge even with the strongest penalty tried."""


def _fit_cox_once(z: np.ndarray, time: np.ndarray, event: np.ndarray, penalizer: float):
    """Cox fit; when Newton-Raphson diverges (small or separable data), retry with a 10x and a
    100x stronger ridge penalty before giving up with `ModelDidNotConverge`."""
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError

    for attempt in (penalizer, penalizer * 10, penalizer * 100):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return CoxPHFitter(penalizer=attempt).fit(_cox_frame(z, time, event),
                                                          "time", "event")
        except ConvergenceError:
            continue
    raise ModelDidNotConverge(f"the Cox model did not converge on {len(time)} patients with "
                              f"{int(np.sum(event))} events, even with ridge penalty "
                              f"{penalizer * 100:g}")


def _cox_risk(fitter, z: np.ndarray) -> np.ndarray:
    return np.asarray(fitter.predict_log_partial_hazard(_cox_frame(z)), dtype=float)


def _fit_cox(x: np.ndarray, time: np.ndarray, event: np.ndarray, inner: int, seed: int):
    from voxelwise.metrics.survival import harrell_c_index

    keep = _informative(x)
    prep = _preprocess().fit(x[:, keep])
    z = prep.transform(x[:, keep])
    penalties = GRIDS["cox"]["penalizer"]
    folds_n = usable_folds(event, inner)
    best = penalties[len(penalties) // 2]
    if folds_n >= 2:
        folds = outer_folds(event, folds_n, seed)
        scores = []
        for penalty in penalties:
            risk = np.zeros(len(time))
            try:
                for k in range(folds_n):
                    train, test = folds != k, folds == k
                    risk[test] = _cox_risk(_fit_cox_once(z[train], time[train], event[train],
                                                         penalty), z[test])
            except ModelDidNotConverge:
                scores.append(np.nan)
                continue
            scores.append(harrell_c_index(time, event, risk).value)
        if not np.all(np.isnan(scores)):
            best = penalties[int(np.nanargmax(scores))]
    return (keep, prep, _fit_cox_once(z, time, event, best)), {"penalizer": best}


def cross_validate(model: str, x: np.ndarray, target: Target, folds: np.ndarray,
                   features: list[str], *, inner_folds: int = 3, seed: int = 0,
                   unfavourable_max: int = 4, feature_set: str = "") -> CrossValidated:
    """Out-of-fold risk (and probability) of ``model`` on ``x`` for the given outer folds."""
    n = x.shape[0]
    risk = np.full(n, np.nan)
    probability = None if model == "cox" else np.full(n, np.nan)
    chosen = []
    for k in range(int(folds.max()) + 1):
        train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        part = target.take(train)
        if model in ("logistic", "gradient_boosting"):
            fitted, params = _fit_binary(model, x[train], part.y.astype(int), inner_folds,
                                         seed)
            probability[test] = fitted.predict_proba(x[test])[:, 1]
            risk[test] = probability[test]
        elif model == "ordinal":
            fitted, params = _fit_ordinal(x[train], part.y), {}
            risk[test], probability[test] = _predict_ordinal(fitted, x[test], unfavourable_max)
        elif model == "cox":
            (keep, prep, fitter), params = _fit_cox(x[train], part.time, part.event,
                                                    inner_folds, seed)
            risk[test] = _cox_risk(fitter, prep.transform(x[test][:, keep]))
        else:
            raise ValueError(f"unknown model {model!r}")
        chosen.append({"fold": k, **params})
    return CrossValidated(model, features, risk, probability, chosen, feature_set)
