"""Binary-classification statistics a clinical paper prints, written once for every classifier.

- ``roc_auc_ci``: AUC with its CI, DeLong's variance (fast midrank algorithm of Sun & Xu 2014) or a
  stratified percentile bootstrap; ``delong_test``: paired test of two correlated AUCs;
  ``roc_curve``: ROC points (scikit-learn's, unchanged).
- Operating points: ``threshold_for_sensitivity`` / ``threshold_for_specificity`` choose a
  threshold on validation data; ``confusion_at`` applies it, unchanged, to test data.
- ``confusion_statistics`` / ``confusion_from_counts``: the confusion-matrix family, proportions
  with Wilson CIs (``wilson_interval``).
- ``finding_row`` (one finding) and ``finding_table`` (many findings of a multi-label model), with
  ``format_finding_table`` (a clinical paper's table) and ``write_finding_table_csv``.

Conventions, everywhere in this module:
- a case is called positive when ``score >= threshold``; labels are 0/1 (or bool), 1 = positive;
- a proportion whose denominator is zero is ``nan`` with a ``nan`` CI; a ratio ``x / 0`` is
  ``inf`` when ``x > 0`` and ``nan`` when ``x == 0``; anything computed from a ``nan`` is ``nan``.
  Degenerate data never raise; malformed input (wrong shape, labels other than 0/1, non-finite
  scores, an AUC asked of one class only) raises ``MetricInputError`` (a ``ValueError``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import stats

from voxelwise.errors import InputError
from voxelwise.fileio import write_text_atomic

# Bootstrap replicates are ranked in chunks of at most this many values, to bound memory.
_CHUNK_VALUES = 1_000_000
# Slack when comparing an achieved proportion (k / n, a float) with a target such as 0.9.
_TARGET_SLACK = 1e-12


class MetricInputError(InputError, ValueError):
    """Input a metric cannot be computed from; the message says what is wrong."""

    def __init__(self, problem: str) -> None:
        super().__init__(None, problem)


@dataclass(frozen=True)
class Estimate:
    """A statistic with its two-sided ``1 - alpha`` confidence interval and its sample size."""

    value: float
    lower: float
    upper: float
    n: int
    alpha: float = 0.05
    method: str = ""

    def format(self, digits: int = 2) -> str:
        """``0.91 (0.88, 0.94)``; ``n/a`` when the value is undefined."""
        if not np.isfinite(self.value):
            return "n/a" if math.isnan(self.value) else f"{self.value}"
        if math.isnan(self.lower) or math.isnan(self.upper):
            return f"{self.value:.{digits}f} (n/a)"
        return f"{self.value:.{digits}f} ({self.lower:.{digits}f}, {self.upper:.{digits}f})"

    def as_dict(self, prefix: str) -> dict[str, float]:
        """``{prefix: value, prefix_lower: lower, prefix_upper: upper}``."""
        return {prefix: self.value, f"{prefix}_lower": self.lower, f"{prefix}_upper": self.upper}


# ---------------------------------------------------------------------------------------------
# input checks


def binary_labels(y_true, name: str = "y_true") -> np.ndarray:
    """``y_true`` as a 1-D bool array; raises unless it holds only 0/1 (or bool) values."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise MetricInputError(f"{name} must be 1-D, got shape {y.shape}")
    if y.dtype == bool:
        return y
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise MetricInputError(f"{name} must hold 0/1 labels, got dtype {y.dtype}")
    bad = ~np.isin(y, (0, 1))
    if bad.any():
        raise MetricInputError(f"{name} must hold 0/1 labels; found {np.unique(y[bad])[:5]}")
    return y == 1


def finite_scores(score, n: int, name: str = "score") -> np.ndarray:
    """``score`` as a 1-D float array of length ``n``; raises on a wrong length or nan/inf."""
    s = np.asarray(score, dtype=float)
    if s.ndim != 1 or s.shape[0] != n:
        raise MetricInputError(f"{name} must be 1-D with {n} values (one per label), "
                               f"got shape {s.shape}")
    if not np.isfinite(s).all():
        raise MetricInputError(f"{name} holds {int((~np.isfinite(s)).sum())} nan/inf values")
    return s


def _labels_and_scores(y_true, *scores) -> tuple[np.ndarray, list[np.ndarray]]:
    y = binary_labels(y_true)
    names = ["score"] if len(scores) == 1 else [f"score_{c}" for c in "ab"]
    return y, [finite_scores(s, y.size, name) for s, name in zip(scores, names, strict=True)]


def _require_both_classes(y: np.ndarray, what: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise MetricInputError(f"{what} needs positive and negative cases; got {n_pos} positive "
                               f"of {y.size}")


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float; raises unless 0 < alpha < 1."""
    if not 0.0 < alpha < 1.0:
        raise MetricInputError(f"alpha must lie in (0, 1), got {alpha}")
    return float(alpha)


def two_sided_z(alpha: float) -> float:
    """The standard-normal quantile ``1 - alpha / 2`` (1.96 for alpha = 0.05)."""
    return float(stats.norm.ppf(1.0 - check_alpha(alpha) / 2.0))


# ---------------------------------------------------------------------------------------------
# AUC, DeLong


def _delong_components(positive: np.ndarray, negative: np.ndarray):
    """AUCs and structural components of DeLong et al. 1988 by midranks (Sun & Xu 2014).

    ``positive`` is (k, m): the k classifiers' scores of the m positive cases; ``negative`` is
    (k, n). Returns ``aucs`` (k,), ``v10`` (k, m): for each positive the fraction of negatives
    scored below it (ties count 1/2), and ``v01`` (k, n): for each negative the fraction of
    positives scored above it. O((m + n) log(m + n)) per classifier instead of O(m n).
    """
    m, n = positive.shape[1], negative.shape[1]
    tx = stats.rankdata(positive, axis=1)
    ty = stats.rankdata(negative, axis=1)
    tz = stats.rankdata(np.concatenate([positive, negative], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def _delong_covariance(v10: np.ndarray, v01: np.ndarray) -> np.ndarray:
    """DeLong's (k, k) covariance of the AUCs: S10 / m + S01 / n; nan when m < 2 or n < 2."""
    k, m = v10.shape
    n = v01.shape[1]
    if m < 2 or n < 2:
        return np.full((k, k), np.nan)
    return np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


def _normal_ci(value: float, se: float, z: float, logit: bool) -> tuple[float, float]:
    """``value +- z se`` clipped to [0, 1], or the same on the logit scale, mapped back."""
    if not np.isfinite(se):
        return math.nan, math.nan
    if not logit:
        return max(0.0, value - z * se), min(1.0, value + z * se)
    if value <= 0.0 or value >= 1.0:
        return value, value
    centre = math.log(value / (1.0 - value))
    half = z * se / (value * (1.0 - value))
    return 1.0 / (1.0 + math.exp(-(centre - half))), 1.0 / (1.0 + math.exp(-(centre + half)))


def _auc_rows(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC of each row of (b, m) positive and (b, n) negative scores."""
    m, n = positive.shape[1], negative.shape[1]
    ranks = stats.rankdata(np.concatenate([positive, negative], axis=1), axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)


def bootstrap_aucs(positive: np.ndarray, negative: np.ndarray, n_bootstrap: int = 2000,
                   seed: int = 0) -> np.ndarray:
    """AUCs of ``n_bootstrap`` stratified resamples (positives and negatives resampled apart,
    so every replicate keeps the observed m and n, as pROC's default ``stratified=TRUE``)."""
    if n_bootstrap < 1:
        raise MetricInputError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    rng = np.random.default_rng(seed)
    m, n = positive.size, negative.size
    chunk = max(1, _CHUNK_VALUES // (m + n))
    out = []
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        out.append(_auc_rows(positive[rng.integers(0, m, size=(b, m))],
                             negative[rng.integers(0, n, size=(b, n))]))
    return np.concatenate(out)


def roc_auc_ci(y_true, score, alpha: float = 0.05, method: str = "delong",
               n_bootstrap: int = 2000, seed: int = 0, logit: bool = False) -> Estimate:
    """Area under the ROC curve with its ``1 - alpha`` confidence interval.

    ``method="delong"`` (default): DeLong et al. 1988 variance computed by the midrank algorithm
    of Sun & Xu 2014, and a Wald interval ``AUC +- z SE`` on the AUC scale clipped to [0, 1]
    (the interval pROC's ``ci.auc`` prints); ``logit=True`` builds it on the logit scale instead
    (better coverage near 0 or 1, never outside (0, 1)). With fewer than 2 positives or 2
    negatives the variance is undefined and the CI is nan; at AUC = 0 or 1 DeLong's variance is 0
    and the CI collapses onto the point.

    ``method="bootstrap"``: percentile interval of ``n_bootstrap`` stratified resamples drawn
    with ``seed`` (``logit`` is ignored).

    The AUC itself is the Mann-Whitney statistic (ties count 1/2), equal to scikit-learn's
    ``roc_auc_score``. Raises ``MetricInputError`` unless both classes are present.
    """
    z = two_sided_z(alpha)
    y, (s,) = _labels_and_scores(y_true, score)
    _require_both_classes(y, "an AUC")
    positive, negative = s[y], s[~y]
    if method == "delong":
        aucs, v10, v01 = _delong_components(positive[None, :], negative[None, :])
        auc = float(aucs[0])
        se = math.sqrt(max(float(_delong_covariance(v10, v01)[0, 0]), 0.0)) \
            if positive.size > 1 and negative.size > 1 else math.nan
        lower, upper = _normal_ci(auc, se, z, logit)
        return Estimate(auc, lower, upper, int(y.size), alpha,
                        "delong-logit" if logit else "delong")
    if method == "bootstrap":
        auc = float(_auc_rows(positive[None, :], negative[None, :])[0])
        replicates = bootstrap_aucs(positive, negative, n_bootstrap, seed)
        lower, upper = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
        return Estimate(auc, float(lower), float(upper), int(y.size), alpha,
                        "bootstrap-percentile")
    raise MetricInputError(f"method must be 'delong' or 'bootstrap', got {method!r}")


@dataclass(frozen=True)
class DeLongTest:
    """Paired DeLong test of two AUCs measured on the same cases."""

    auc_a: Estimate
    auc_b: Estimate
    difference: Estimate  # auc_a - auc_b, Wald CI clipped to [-1, 1]
    z: float
    p_value: float  # two-sided
    n: int


def delong_test(y_true, score_a, score_b, alpha: float = 0.05) -> DeLongTest:
    """DeLong et al. 1988 test of H0: AUC_a = AUC_b for two scores of the same cases.

    ``z = (AUC_a - AUC_b) / SE`` with ``SE^2 = var_a + var_b - 2 cov_ab`` from the structural
    components; two-sided normal p-value. When the SE is 0 (e.g. identical scores) the
    difference is 0 and p = 1, or, for a non-zero difference, z = +-inf and p = 0.
    """
    z_crit = two_sided_z(alpha)
    y, (a, b) = _labels_and_scores(y_true, score_a, score_b)
    _require_both_classes(y, "a DeLong test")
    scores = np.vstack([a, b])
    aucs, v10, v01 = _delong_components(scores[:, y], scores[:, ~y])
    cov = _delong_covariance(v10, v01)
    n = int(y.size)
    per_auc = []
    for i in range(2):
        se_i = math.sqrt(max(cov[i, i], 0.0)) if np.isfinite(cov[i, i]) else math.nan
        per_auc.append(Estimate(float(aucs[i]), *_normal_ci(float(aucs[i]), se_i, z_crit, False),
                                n, alpha, "delong"))
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1])
    se = math.sqrt(max(var, 0.0)) if np.isfinite(var) else math.nan
    if math.isnan(se):
        z, p = math.nan, math.nan
    elif se > 0.0:
        z = diff / se
        p = float(2.0 * stats.norm.sf(abs(z)))
    elif diff == 0.0:
        z, p = 0.0, 1.0
    else:
        z, p = math.copysign(math.inf, diff), 0.0
    lower = max(-1.0, diff - z_crit * se) if np.isfinite(se) else math.nan
    upper = min(1.0, diff + z_crit * se) if np.isfinite(se) else math.nan
    return DeLongTest(per_auc[0], per_auc[1], Estimate(diff, lower, upper, n, alpha, "delong"),
                      z, p, n)


def roc_curve(y_true, score, drop_intermediate: bool = True):
    """``(fpr, tpr, thresholds)`` of scikit-learn's ``roc_curve``; thresholds decrease, the first
    is ``inf`` (nothing called positive); a case is positive when ``score >= threshold``."""
    from sklearn.metrics import roc_curve as sk_roc_curve

    y, (s,) = _labels_and_scores(y_true, score)
    _require_both_classes(y, "a ROC curve")
    return sk_roc_curve(y, s, drop_intermediate=drop_intermediate)


# ---------------------------------------------------------------------------------------------
# operating points


def _check_target(target: float) -> float:
    if not 0.0 <= target <= 1.0:
        raise MetricInputError(f"target must lie in [0, 1], got {target}")
    return float(target)


def threshold_for_sensitivity(y_true, score, target: float) -> float:
    """The highest threshold whose sensitivity on (``y_true``, ``score``) is >= ``target``.

    Highest, so that among the thresholds reaching the target it keeps the best specificity.
    The threshold is one of the observed scores (a vertex of the ROC curve), or ``inf`` for
    ``target = 0``. Choose it on validation data; apply it with ``confusion_at`` to test data.
    """
    target = _check_target(target)
    _, tpr, thresholds = roc_curve(y_true, score, drop_intermediate=False)
    return float(thresholds[np.flatnonzero(tpr >= target - _TARGET_SLACK)[0]])


def threshold_for_specificity(y_true, score, target: float) -> float:
    """The lowest threshold whose specificity on (``y_true``, ``score``) is >= ``target``.

    Lowest, so that among the thresholds reaching the target it keeps the best sensitivity.
    The threshold is one of the observed scores, or ``inf`` when only calling every case
    negative reaches the target.
    """
    target = _check_target(target)
    fpr, _, thresholds = roc_curve(y_true, score, drop_intermediate=False)
    return float(thresholds[np.flatnonzero(1.0 - fpr >= target - _TARGET_SLACK)[-1]])


# ---------------------------------------------------------------------------------------------
# confusion-matrix family


def wilson_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval (Wilson 1927) of the proportion ``successes / n``; (nan, nan) at n=0.

    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``; the lower end is exactly 0 at
    0 successes and the upper exactly 1 at n successes.
    """
    z = two_sided_z(alpha)
    if int(successes) != successes or int(n) != n or not 0 <= successes <= n:
        raise MetricInputError(f"need integers 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denominator
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return lower, upper


def proportion(successes: int, n: int, alpha: float = 0.05) -> Estimate:
    """``successes / n`` with its Wilson interval; nan with a nan CI when ``n == 0``."""
    lower, upper = wilson_interval(successes, n, alpha)
    value = successes / n if n else math.nan
    return Estimate(value, lower, upper, int(n), alpha, "wilson")


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; ``x / 0`` is inf for x > 0 and nan for x = 0."""
    if math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    if denominator == 0:
        return math.inf if numerator > 0 else math.nan
    return numerator / denominator


@dataclass(frozen=True)
class ConfusionStatistics:
    """A 2x2 confusion matrix and every statistic a diagnostic-accuracy paper reports from it.

    Proportions carry Wilson CIs and their own denominators as ``n``. Zero denominators: see the
    module docstring (proportions nan; ``x / 0`` inf for x > 0, nan for 0 / 0). F1 is nan when
    there are neither positives nor positive calls, MCC when any margin of the matrix is 0 (where
    scikit-learn returns 0). No continuity correction is applied to LR+, LR- or the DOR.
    """

    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: Estimate  # TP / (TP + FN)
    specificity: Estimate  # TN / (TN + FP)
    ppv: Estimate  # TP / (TP + FP)
    npv: Estimate  # TN / (TN + FN)
    accuracy: Estimate  # (TP + TN) / n
    prevalence: Estimate  # (TP + FN) / n
    f1: float  # 2 TP / (2 TP + FP + FN)
    mcc: float  # Matthews correlation coefficient
    balanced_accuracy: float  # (sensitivity + specificity) / 2
    lr_positive: float  # sensitivity / (1 - specificity)
    lr_negative: float  # (1 - sensitivity) / specificity
    diagnostic_odds_ratio: float  # (TP TN) / (FP FN)
    alpha: float = 0.05
    threshold: float | None = None  # set by confusion_at

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def as_dict(self) -> dict[str, float | int | None]:
        """Flat dict: counts, each proportion with ``_lower`` / ``_upper``, the other figures."""
        row: dict[str, float | int | None] = {"threshold": self.threshold, "n": self.n,
                                              "tp": self.tp, "fp": self.fp, "tn": self.tn,
                                              "fn": self.fn}
        for name in ("sensitivity", "specificity", "ppv", "npv", "accuracy", "prevalence"):
            row.update(getattr(self, name).as_dict(name))
        for name in ("f1", "mcc", "balanced_accuracy", "lr_positive", "lr_negative",
                     "diagnostic_odds_ratio"):
            row[name] = getattr(self, name)
        return row


def confusion_from_counts(tp: int, fp: int, tn: int, fn: int,
                          alpha: float = 0.05) -> ConfusionStatistics:
    """All the statistics of the confusion matrix with the given counts."""
    counts = (tp, fp, tn, fn)
    if any(int(c) != c or c < 0 for c in counts):
        raise MetricInputError(f"confusion counts must be integers >= 0, got {counts}")
    tp, fp, tn, fn = (int(c) for c in counts)
    n = tp + fp + tn + fn
    sensitivity = proportion(tp, tp + fn, alpha)
    specificity = proportion(tn, tn + fp, alpha)
    margins = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    mcc = (tp * tn - fp * fn) / math.sqrt(margins) if margins else math.nan
    return ConfusionStatistics(
        tp=tp, fp=fp, tn=tn, fn=fn,
        sensitivity=sensitivity,
        specificity=specificity,
        ppv=proportion(tp, tp + fp, alpha),
        npv=proportion(tn, tn + fn, alpha),
        accuracy=proportion(tp + tn, n, alpha),
        prevalence=proportion(tp + fn, n, alpha),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        mcc=mcc,
        balanced_accuracy=(sensitivity.value + specificity.value) / 2.0,
        lr_positive=_ratio(sensitivity.value, 1.0 - specificity.value),
        lr_negative=_ratio(1.0 - sensitivity.value, specificity.value),
        diagnostic_odds_ratio=_ratio(tp * tn, fp * fn),
        alpha=alpha,
    )


def confusion_statistics(y_true, y_pred, alpha: float = 0.05) -> ConfusionStatistics:
    """Confusion-matrix statistics of 0/1 predictions ``y_pred`` against 0/1 labels ``y_true``."""
    y = binary_labels(y_true)
    p = binary_labels(y_pred, "y_pred")
    if p.size != y.size:
        raise MetricInputError(f"y_pred has {p.size} values but y_true has {y.size}")
    return confusion_from_counts(int((y & p).sum()), int((~y & p).sum()),
                                 int((~y & ~p).sum()), int((y & ~p).sum()), alpha)


def confusion_at(y_true, score, threshold: float, alpha: float = 0.05) -> ConfusionStatistics:
    """Confusion-matrix statistics when cases with ``score >= threshold`` are called positive."""
    y, (s,) = _labels_and_scores(y_true, score)
    if math.isnan(threshold):
        raise MetricInputError("threshold is nan")
    return replace(confusion_statistics(y, s >= threshold, alpha), threshold=float(threshold))


# ---------------------------------------------------------------------------------------------
# per-finding table of a multi-label model


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def _operating_point_row(prefix: str, threshold: float, y_val, s_val, y_test, s_test,
                         alpha: float) -> dict[str, float]:
    row: dict[str, float] = {f"{prefix}_threshold": threshold}
    if math.isnan(threshold):
        validation = test = confusion_from_counts(0, 0, 0, 0, alpha)
    else:
        validation = confusion_at(y_val, s_val, threshold, alpha)
        test = confusion_at(y_test, s_test, threshold, alpha)
    row[f"{prefix}_validation_sensitivity"] = validation.sensitivity.value
    row[f"{prefix}_validation_specificity"] = validation.specificity.value
    row.update(test.sensitivity.as_dict(f"{prefix}_sensitivity"))
    row.update(test.specificity.as_dict(f"{prefix}_specificity"))
    return row


def finding_row(finding: str, y_validation, score_validation, y_test, score_test, *,
                sensitivity_target: float = 0.90, specificity_target: float = 0.90,
                alpha: float = 0.05, auc_method: str = "delong", n_bootstrap: int = 2000,
                seed: int = 0) -> dict[str, float | int | str]:
    """One finding's row: test n, prevalence and AUC (CI), and two operating points.

    The high-sensitivity threshold (sensitivity >= ``sensitivity_target``) and the
    high-specificity threshold (specificity >= ``specificity_target``) are chosen on the
    validation cases and applied unchanged to the test cases, whose sensitivity and specificity
    are reported with Wilson CIs (the validation ones too, without CI, to show the target was
    met). A set lacking a class gives nan for what needs both classes instead of raising.
    """
    y_val, (s_val,) = _labels_and_scores(y_validation, score_validation)
    y_test, (s_test,) = _labels_and_scores(y_test, score_test)
    n_pos = int(y_test.sum())
    row: dict[str, float | int | str] = {
        "finding": finding, "n_test": int(y_test.size), "n_positive_test": n_pos}
    row.update(proportion(n_pos, int(y_test.size), alpha).as_dict("prevalence_test"))
    if _both_classes(y_test):
        auc = roc_auc_ci(y_test, s_test, alpha, auc_method, n_bootstrap, seed)
    else:
        auc = Estimate(math.nan, math.nan, math.nan, int(y_test.size), alpha, auc_method)
    row.update(auc.as_dict("auc"))
    row["auc_method"] = auc.method
    row["n_validation"] = int(y_val.size)
    row["n_positive_validation"] = int(y_val.sum())
    row["sensitivity_target"] = float(sensitivity_target)
    row["specificity_target"] = float(specificity_target)
    chosen = _both_classes(y_val)
    high_sens = threshold_for_sensitivity(y_val, s_val, sensitivity_target) if chosen else math.nan
    high_spec = threshold_for_specificity(y_val, s_val, specificity_target) if chosen else math.nan
    row.update(_operating_point_row("high_sensitivity", high_sens, y_val, s_val, y_test, s_test,
                                    alpha))
    row.update(_operating_point_row("high_specificity", high_spec, y_val, s_val, y_test, s_test,
                                    alpha))
    row["alpha"] = float(alpha)
    return row


def _columns(values, n_findings: int, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] != n_findings:
        raise MetricInputError(f"{name} must be (cases, {n_findings} findings), got {a.shape}")
    return a


def finding_table(findings: Sequence[str], y_validation, score_validation, y_test, score_test,
                  *, sensitivity_target: float = 0.90, specificity_target: float = 0.90,
                  alpha: float = 0.05, auc_method: str = "delong", n_bootstrap: int = 2000,
                  seed: int = 0) -> list[dict[str, float | int | str]]:
    """``finding_row`` for every column of multi-label (cases, findings) labels and scores.

    A nan label means "not labelled for this finding": that case is left out of that finding
    only (so n varies per finding). Validation and test arrays have one column per name in
    ``findings``; 1-D arrays are one finding.
    """
    names = list(findings)
    k = len(names)
    yv, sv = _columns(y_validation, k, "y_validation"), _columns(score_validation, k,
                                                                 "score_validation")
    yt, st = _columns(y_test, k, "y_test"), _columns(score_test, k, "score_test")
    if yv.shape != sv.shape or yt.shape != st.shape:
        raise MetricInputError(f"labels and scores differ in shape: validation {yv.shape} vs "
                               f"{sv.shape}, test {yt.shape} vs {st.shape}")
    rows = []
    for j, name in enumerate(names):
        kept_val, kept_test = ~np.isnan(yv[:, j]), ~np.isnan(yt[:, j])
        rows.append(finding_row(
            name, yv[kept_val, j], sv[kept_val, j], yt[kept_test, j], st[kept_test, j],
            sensitivity_target=sensitivity_target, specificity_target=specificity_target,
            alpha=alpha, auc_method=auc_method, n_bootstrap=n_bootstrap, seed=seed))
    return rows


def _cell(row, key: str, digits: int) -> str:
    return Estimate(float(row[key]), float(row[f"{key}_lower"]), float(row[f"{key}_upper"]),
                    0).format(digits)


def format_finding_table(rows: Sequence[dict], digits: int = 2) -> str:
    """The table of a clinical paper: one line per finding, pipe-separated columns.

    ``Finding | n (positive) | AUC (95% CI) | High-sensitivity: sensitivity (95% CI) |
    specificity (95% CI) | High-specificity: sensitivity (95% CI) | specificity (95% CI)``,
    with a note of the targets and that thresholds were chosen on validation data.
    """
    if not rows:
        return "(no findings)\n"
    level = f"{100 * (1 - float(rows[0]['alpha'])):g}% CI"
    header = ["Finding", "n (positive)", f"AUC ({level})",
              f"High-sens.: sensitivity ({level})", f"specificity ({level})",
              f"High-spec.: sensitivity ({level})", f"specificity ({level})"]
    body = [[str(r["finding"]), f"{r['n_test']} ({r['n_positive_test']})",
             _cell(r, "auc", digits),
             _cell(r, "high_sensitivity_sensitivity", digits),
             _cell(r, "high_sensitivity_specificity", digits),
             _cell(r, "high_specificity_sensitivity", digits),
             _cell(r, "high_specificity_specificity", digits)] for r in rows]
    widths = [max(len(line[c]) for line in [header, *body]) for c in range(len(header))]

    def render(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    note = (f"Operating points chosen on validation data (sensitivity >= "
            f"{float(rows[0]['sensitivity_target']):g}; specificity >= "
            f"{float(rows[0]['specificity_target']):g}) and applied unchanged to the test data; "
            f"AUC CI: {rows[0]['auc_method']}; sensitivity/specificity CI: Wilson.")
    return "\n".join([render(header), rule, *(render(b) for b in body), "", note]) + "\n"


def write_finding_table_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """Write ``rows`` (from ``finding_table``) as CSV, atomically; floats at full precision."""
    fieldnames: list[str] = []
    for row in rows:
        fieldnames.extend(k for k in row if k not in fieldnames)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())
