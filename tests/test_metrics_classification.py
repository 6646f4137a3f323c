"""AUC with DeLong/bootstrap CIs, operating points, confusion-matrix family, finding tables."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, f1_score, matthews_corrcoef, roc_auc_score

from voxelwise.metrics.classification import (
    MetricInputError,
    confusion_at,
    confusion_from_counts,
    confusion_statistics,
    delong_test,
    finding_table,
    format_finding_table,
    roc_auc_ci,
    roc_curve,
    threshold_for_sensitivity,
    threshold_for_specificity,
    wilson_interval,
    write_finding_table_csv,
)

Z95 = stats.norm.ppf(0.975)


def _data(n=200, shift=1.0, seed=0, rounded=True):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    score = shift * y + rng.normal(size=n)
    return y, (np.round(score, 1) if rounded else score)  # rounding makes ties


def _delong_reference(y, scores):
    """Textbook O(m n) DeLong: psi kernel, structural components V10 / V01, covariance."""
    y = np.asarray(y, dtype=bool)
    out_aucs, v10s, v01s = [], [], []
    for s in scores:
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        out_aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    v10, v01 = np.array(v10s), np.array(v01s)
    m, n = v10.shape[1], v01.shape[1]
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return np.array(out_aucs), cov


# --- AUC -------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_sklearn(seed):
    y, s = _data(seed=seed)
    assert roc_auc_ci(y, s).value == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert roc_auc_ci(y, s, method="bootstrap", n_bootstrap=50).value == pytest.approx(
        roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_delong_ci_matches_quadratic_reference(seed):
    y, s = _data(n=150, seed=seed)
    aucs, cov = _delong_reference(y, [s])
    result = roc_auc_ci(y, s)
    se = math.sqrt(cov[0, 0])
    assert result.value == pytest.approx(aucs[0], abs=1e-12)
    assert result.lower == pytest.approx(aucs[0] - Z95 * se, abs=1e-12)
    assert result.upper == pytest.approx(aucs[0] + Z95 * se, abs=1e-12)
    assert result.n == 150 and result.method == "delong"


def test_delong_hand_example():
    # positives 0.35, 0.8; negatives 0.1, 0.4: V10 = (0.5, 1), V01 = (1, 0.5),
    # var = var(V10)/2 + var(V01)/2 = 0.125/2 + 0.125/2 = 0.125
    result = roc_auc_ci([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert result.value == 0.75
    assert result.lower == pytest.approx(0.75 - Z95 * math.sqrt(0.125), abs=1e-12)
    assert result.upper == 1.0  # clipped


def test_logit_ci_inside_unit_interval():
    y, s = _data(n=80, shift=3.0)
    plain, logit = roc_auc_ci(y, s), roc_auc_ci(y, s, logit=True)
    assert logit.method == "delong-logit"
    assert 0.0 < logit.lower < logit.value < logit.upper < 1.0
    assert logit.upper < plain.upper or plain.upper == 1.0


def test_perfect_separation_collapses_ci_and_tiny_class_gives_nan():
    perfect = roc_auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert (perfect.value, perfect.lower, perfect.upper) == (1.0, 1.0, 1.0)
    one_positive = roc_auc_ci([0, 0, 0, 1], [0.1, 0.5, 0.2, 0.4])
    assert one_positive.value == pytest.approx(2 / 3)
    assert math.isnan(one_positive.lower) and math.isnan(one_positive.upper)


def test_bootstrap_ci_close_to_delong():
    y, s = _data(n=400, seed=5, rounded=False)
    delong = roc_auc_ci(y, s)
    boot = roc_auc_ci(y, s, method="bootstrap", n_bootstrap=2000, seed=1)
    assert boot.method == "bootstrap-percentile"
    assert boot.lower == pytest.approx(delong.lower, abs=0.015)
    assert boot.upper == pytest.approx(delong.upper, abs=0.015)
    again = roc_auc_ci(y, s, method="bootstrap", n_bootstrap=2000, seed=1)
    assert (again.lower, again.upper) == (boot.lower, boot.upper)  # seeded


@pytest.mark.parametrize("bad", [
    dict(y=[0, 0, 0], s=[0.1, 0.2, 0.3]),  # one class
    dict(y=[0, 1, 2], s=[0.1, 0.2, 0.3]),  # not binary
    dict(y=[0, 1, 1], s=[0.1, np.nan, 0.3]),  # nan score
    dict(y=[0, 1, 1], s=[0.1, 0.2]),  # lengths differ
])
def test_bad_input_raises_clear_error(bad):
    with pytest.raises(MetricInputError):
        roc_auc_ci(bad["y"], bad["s"])


def test_bad_method_raises():
    with pytest.raises(ValueError, match="method"):
        roc_auc_ci([0, 1], [0.1, 0.2], method="hanley")


# --- paired DeLong test ---------------------------------------------------------------------

def test_paired_delong_identical_scores():
    y, s = _data()
    result = delong_test(y, s, s.copy())
    assert result.difference.value == 0.0
    assert result.z == 0.0 and result.p_value == 1.0


def test_paired_delong_matches_reference_and_detects_difference():
    y, a = _data(n=300, shift=2.0, seed=7)
    b = np.random.default_rng(8).normal(size=300)
    result = delong_test(y, a, b)
    aucs, cov = _delong_reference(y, [a, b])
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert result.auc_a.value == pytest.approx(aucs[0], abs=1e-12)
    assert result.auc_b.value == pytest.approx(aucs[1], abs=1e-12)
    assert result.z == pytest.approx((aucs[0] - aucs[1]) / se, rel=1e-10)
    assert result.difference.lower == pytest.approx(aucs[0] - aucs[1] - Z95 * se, abs=1e-12)
    assert result.p_value < 1e-6


def test_paired_delong_correlated_scores_not_significant():
    y, a = _data(n=200, seed=11, rounded=False)
    b = a + np.random.default_rng(12).normal(scale=0.05, size=a.size)
    result = delong_test(y, a, b)
    assert abs(result.difference.value) < 0.02
    assert result.p_value > 0.05
    assert result.difference.lower < 0 < result.difference.upper


# --- ROC curve and operating points ---------------------------------------------------------

def test_roc_curve_is_sklearns():
    from sklearn.metrics import roc_curve as sk

    y, s = _data()
    for ours, theirs in zip(roc_curve(y, s), sk(y, s), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("target", [0.0, 0.5, 0.8, 0.9, 0.95, 1.0])
def test_threshold_for_sensitivity_reaches_target_with_best_specificity(target):
    y, s = _data(n=120, seed=3)
    threshold = threshold_for_sensitivity(y, s, target)
    stats_at = confusion_at(y, s, threshold)
    assert stats_at.sensitivity.value >= target
    higher = np.unique(s[s > threshold])
    if higher.size:  # the next higher observed score misses the target
        assert confusion_at(y, s, higher[0]).sensitivity.value < target


@pytest.mark.parametrize("target", [0.0, 0.5, 0.8, 0.9, 0.95, 1.0])
def test_threshold_for_specificity_reaches_target_with_best_sensitivity(target):
    y, s = _data(n=120, seed=4)
    threshold = threshold_for_specificity(y, s, target)
    assert confusion_at(y, s, threshold).specificity.value >= target
    lower = np.unique(s[s < threshold])
    if lower.size:  # the next lower observed score misses the target
        assert confusion_at(y, s, lower[-1]).specificity.value < target


def test_exact_target_is_reached_without_float_trouble():
    y = np.array([1] * 10 + [0] * 10)
    s = np.arange(20, dtype=float)[::-1]  # positives score 19..10
    assert threshold_for_sensitivity(y, s, 0.7) == 13.0  # 7 of 10 positives >= 13
    assert threshold_for_specificity(y, s, 0.7) == 7.0  # 7 of 10 negatives < 7


def test_threshold_chosen_on_validation_applied_unchanged_to_test():
    y_val, s_val = _data(n=200, seed=20)
    y_test, s_test = _data(n=150, seed=21)
    threshold = threshold_for_sensitivity(y_val, s_val, 0.9)
    result = confusion_at(y_test, s_test, threshold)
    called = s_test >= threshold
    assert result.threshold == threshold
    assert result.tp == int((called & (y_test == 1)).sum())
    assert result.fp == int((called & (y_test == 0)).sum())
    assert result.n == 150


# --- Wilson and the confusion-matrix family -------------------------------------------------

def test_wilson_closed_forms():
    z2 = Z95**2
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z2 / (10 + z2), abs=1e-12))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + z2), abs=1e-12), 1.0)
    half = Z95 * math.sqrt(0.25 / 10 + z2 / 400) / (1 + z2 / 10)
    assert wilson_interval(5, 10) == (pytest.approx(0.5 - half, abs=1e-12),
                                      pytest.approx(0.5 + half, abs=1e-12))
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_wilson_matches_newcombe_1998_table():
    # Newcombe, Stat Med 1998;17:857-872, Table I, method 3 (score interval without CC)
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)
    assert wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=1e-4)


def test_wilson_edge_cases():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(MetricInputError):
        wilson_interval(11, 10)
    lo90, hi90 = wilson_interval(5, 10, alpha=0.10)
    lo95, hi95 = wilson_interval(5, 10)
    assert lo95 < lo90 < hi90 < hi95


def test_confusion_statistics_hand_made_matrix():
    tp, fp, tn, fn = 40, 10, 45, 5
    r = confusion_from_counts(tp, fp, tn, fn)
    assert r.n == 100
    assert r.sensitivity.value == 40 / 45 and r.sensitivity.n == 45
    assert r.specificity.value == 45 / 55 and r.specificity.n == 55
    assert r.ppv.value == 0.8 and r.npv.value == 0.9
    assert r.accuracy.value == 0.85 and r.prevalence.value == 0.45
    assert (r.sensitivity.lower, r.sensitivity.upper) == wilson_interval(40, 45)
    assert (r.npv.lower, r.npv.upper) == wilson_interval(45, 50)
    assert r.f1 == pytest.approx(80 / 95, abs=1e-15)
    assert r.mcc == pytest.approx(1750 / math.sqrt(50 * 45 * 55 * 50), abs=1e-15)
    assert r.balanced_accuracy == pytest.approx((40 / 45 + 45 / 55) / 2, abs=1e-15)
    assert r.lr_positive == pytest.approx((40 / 45) / (10 / 55), abs=1e-12)
    assert r.lr_negative == pytest.approx((5 / 45) / (45 / 55), abs=1e-12)
    assert r.diagnostic_odds_ratio == 36.0


def test_confusion_statistics_from_predictions_agrees_with_sklearn():
    y = np.array([1] * 45 + [0] * 55)
    p = np.array([1] * 40 + [0] * 5 + [1] * 10 + [0] * 45)
    r = confusion_statistics(y, p)
    assert (r.tp, r.fp, r.tn, r.fn) == (40, 10, 45, 5)
    assert r.f1 == pytest.approx(f1_score(y, p), abs=1e-12)
    assert r.mcc == pytest.approx(matthews_corrcoef(y, p), abs=1e-12)
    assert r.balanced_accuracy == pytest.approx(balanced_accuracy_score(y, p), abs=1e-12)
    row = r.as_dict()
    assert row["sensitivity_lower"] == r.sensitivity.lower and row["tp"] == 40


def test_zero_denominator_conventions():
    no_positives = confusion_from_counts(0, 0, 10, 0)
    assert math.isnan(no_positives.sensitivity.value)
    assert math.isnan(no_positives.sensitivity.lower)
    assert math.isnan(no_positives.ppv.value)
    assert no_positives.specificity.value == 1.0 and no_positives.npv.value == 1.0
    assert math.isnan(no_positives.f1) and math.isnan(no_positives.mcc)
    assert math.isnan(no_positives.balanced_accuracy)
    assert math.isnan(no_positives.lr_positive) and math.isnan(no_positives.lr_negative)
    assert math.isnan(no_positives.diagnostic_odds_ratio)

    perfect = confusion_from_counts(10, 0, 10, 0)
    assert perfect.lr_positive == math.inf and perfect.lr_negative == 0.0
    assert perfect.diagnostic_odds_ratio == math.inf and perfect.mcc == 1.0

    all_wrong = confusion_from_counts(0, 10, 0, 10)
    assert all_wrong.lr_positive == 0.0 and all_wrong.lr_negative == math.inf
    assert all_wrong.diagnostic_odds_ratio == 0.0 and all_wrong.mcc == -1.0

    empty = confusion_from_counts(0, 0, 0, 0)
    assert empty.n == 0
    assert all(math.isnan(v) for k, v in empty.as_dict().items()
               if k not in ("threshold", "n", "tp", "fp", "tn", "fn"))

    with pytest.raises(MetricInputError):
        confusion_from_counts(-1, 0, 0, 0)


# --- finding table ---------------------------------------------------------------------------

def _multilabel(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=(n, 3)).astype(float)
    scores = y * np.array([2.0, 1.0, 0.0]) + rng.normal(size=(n, 3))
    y[rng.random((n, 3)) < 0.1] = np.nan  # unlabelled for that finding
    return y, scores


def test_finding_table_rows(tmp_path):
    y_val, s_val = _multilabel(300, 30)
    y_test, s_test = _multilabel(250, 31)
    names = ["haemorrhage", "oedema", "noise"]
    rows = finding_table(names, y_val, s_val, y_test, s_test,
                         sensitivity_target=0.9, specificity_target=0.85)
    assert [r["finding"] for r in rows] == names
    for j, row in enumerate(rows):
        kept = ~np.isnan(y_test[:, j])
        assert row["n_test"] == int(kept.sum())
        assert row["n_positive_test"] == int(np.nansum(y_test[:, j]))
        assert row["auc"] == pytest.approx(roc_auc_score(y_test[kept, j], s_test[kept, j]))
        assert row["auc_lower"] < row["auc"] < row["auc_upper"]
        assert row["high_sensitivity_validation_sensitivity"] >= 0.9
        assert row["high_specificity_validation_specificity"] >= 0.85
        test_point = confusion_at(y_test[kept, j], s_test[kept, j],
                                  row["high_specificity_threshold"])
        assert row["high_specificity_specificity"] == test_point.specificity.value
        assert row["high_specificity_sensitivity_upper"] == test_point.sensitivity.upper
    assert rows[0]["auc"] > rows[1]["auc"] > rows[2]["auc"] - 0.1

    text = format_finding_table(rows)
    lines = text.splitlines()
    assert lines[0].startswith("| Finding") and "AUC (95% CI)" in lines[0]
    assert "High-sens.: sensitivity (95% CI)" in lines[0]
    assert sum(line.startswith("| haemorrhage") for line in lines) == 1
    assert f"{rows[0]['auc']:.2f} ({rows[0]['auc_lower']:.2f}, {rows[0]['auc_upper']:.2f})" \
        in text
    assert "chosen on validation data" in text

    path = write_finding_table_csv(rows, tmp_path / "table" / "findings.csv")
    with path.open(newline="") as handle:
        read = list(csv.DictReader(handle))
    assert [r["finding"] for r in read] == names
    assert float(read[1]["auc_upper"]) == rows[1]["auc_upper"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["findings.csv"]


def test_finding_table_degenerate_finding_gives_nan_not_crash():
    rng = np.random.default_rng(40)
    y_val = rng.integers(0, 2, 60)
    y_test = np.zeros(40)  # no positive test case
    rows = finding_table(["rare"], y_val, rng.normal(size=60), y_test, rng.normal(size=40))
    row = rows[0]
    assert row["n_positive_test"] == 0 and math.isnan(row["auc"])
    assert math.isnan(row["high_sensitivity_sensitivity"])
    assert not math.isnan(row["high_sensitivity_specificity"])
    assert "rare" in format_finding_table(rows) and "n/a" in format_finding_table(rows)


def test_finding_table_shape_mismatch_raises():
    with pytest.raises(MetricInputError, match="findings"):
        finding_table(["a", "b"], np.zeros((5, 3)), np.zeros((5, 3)), np.zeros((5, 2)),
                      np.zeros((5, 2)))
