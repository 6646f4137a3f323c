"""Agreement statistics (Bland-Altman, ICC, correlations) and Harrell's C-index."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from voxelwise.metrics.agreement import bland_altman, bland_altman_plot, icc, pearson, spearman
from voxelwise.metrics.classification import MetricInputError
from voxelwise.metrics.survival import harrell_c_index

# Shrout & Fleiss 1979, Psychol Bull 86:420-428, Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array([[9, 2, 5, 8],
                          [6, 1, 3, 2],
                          [8, 4, 6, 8],
                          [7, 1, 2, 6],
                          [10, 5, 6, 9],
                          [6, 2, 4, 7]], dtype=float)

# Bland & Altman 1986, Lancet i:307-310, Table 1: PEFR (l/min), first reading of each meter.
WRIGHT = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
MINI_WRIGHT = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350,
               451]


# --- Bland-Altman ----------------------------------------------------------------------------

def test_bland_altman_hand_computed():
    b = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    a = b + np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # differences 1..5: mean 3, SD sqrt(2.5)
    r = bland_altman(a, b)
    sd, t4, z = math.sqrt(2.5), 2.7764451051977987, 1.959963984540054  # t(0.975, 4), z(0.975)
    assert r.n == 5 and r.bias.value == 3.0 and r.sd == pytest.approx(sd, abs=1e-12)
    assert (r.bias.lower, r.bias.upper) == pytest.approx(
        (3 - t4 * sd / math.sqrt(5), 3 + t4 * sd / math.sqrt(5)), abs=1e-9)
    assert r.lower_limit.value == pytest.approx(3 - z * sd, abs=1e-12)
    assert r.upper_limit.value == pytest.approx(3 + z * sd, abs=1e-12)
    half = t4 * sd * math.sqrt(1 / 5 + z * z / 8)
    assert (r.upper_limit.lower, r.upper_limit.upper) == pytest.approx(
        (3 + z * sd - half, 3 + z * sd + half), abs=1e-9)
    assert r.bias.format(2) == "3.00 (1.04, 4.96)"


def test_bland_altman_reproduces_lancet_1986_pefr_example():
    # published: mean difference -2.1 l/min, SD 38.8, limits (mean -+ 2 SD) -79.7 and 75.5,
    # 95% CI of the bias -22.0 to 17.8
    r = bland_altman(WRIGHT, MINI_WRIGHT, coverage=2 * stats.norm.cdf(2.0) - 1)
    assert round(r.bias.value, 1) == -2.1 and round(r.sd, 1) == 38.8
    # the paper computed the limits from the rounded -2.1 and 38.8, hence 0.1 tolerance
    assert r.lower_limit.value == pytest.approx(-79.7, abs=0.1)
    assert r.upper_limit.value == pytest.approx(75.5, abs=0.1)
    assert round(r.bias.lower, 1) == -22.0 and round(r.bias.upper, 1) == 17.8
    # limits' CI: ours (Bland & Altman 1999) is within 5% of the 1986 sqrt(3 s^2 / n) one
    half_1986 = stats.t.ppf(0.975, 16) * math.sqrt(3 * r.sd**2 / 17)
    ours = (r.upper_limit.upper - r.upper_limit.lower) / 2
    assert ours == pytest.approx(half_1986, rel=0.05)


def test_bland_altman_bad_input():
    with pytest.raises(MetricInputError):
        bland_altman([1.0, 2.0], [1.0])
    with pytest.raises(MetricInputError):
        bland_altman([1.0], [1.0])
    with pytest.raises(MetricInputError):
        bland_altman([1.0, np.nan], [1.0, 2.0])


def test_bland_altman_plot_returns_figure(tmp_path):
    from matplotlib.figure import Figure

    figure = bland_altman_plot(WRIGHT, MINI_WRIGHT, units="l/min", labels=("Wright", "Mini"))
    assert isinstance(figure, Figure)
    ax = figure.axes[0]
    assert ax.get_xlabel() == "Mean of Wright and Mini (l/min)"
    assert ax.get_ylabel() == "Wright - Mini (l/min)"
    assert "n = 17" in ax.get_title()
    figure.savefig(tmp_path / "ba.png")
    assert (tmp_path / "ba.png").stat().st_size > 1000


# --- ICC -------------------------------------------------------------------------------------

def test_icc_shrout_fleiss_table():
    agreement = icc(SHROUT_FLEISS, "agreement")
    consistency = icc(SHROUT_FLEISS, "consistency")
    # Shrout & Fleiss 1979, Table 4: ICC(2,1) = .29, ICC(3,1) = .71
    assert round(agreement.value, 2) == 0.29 and agreement.kind == "ICC(2,1)"
    assert round(consistency.value, 2) == 0.71 and consistency.kind == "ICC(3,1)"
    # hand-computed from the ANOVA table: BMS = 11.24, JMS = 32.49, EMS = 1.02
    bms, jms, ems = 56.2083333 / 5, 97.4583333 / 3, 15.2916667 / 15
    assert consistency.value == pytest.approx((bms - ems) / (bms + 3 * ems), abs=1e-7)
    assert agreement.value == pytest.approx(
        (bms - ems) / (bms + 3 * ems + 4 * (jms - ems) / 6), abs=1e-7)
    # F-test and CIs as R's psych::ICC prints them for this table:
    # ICC2 0.29 F 11 df 5, 15 p 0.00013 [0.019, 0.76]; ICC3 0.71 [0.342, 0.95]
    for r in (agreement, consistency):
        assert r.f_value == pytest.approx(bms / ems, rel=1e-6)
        assert (r.df1, r.df2) == (5, 15)
        assert r.p_value == pytest.approx(0.00013, abs=5e-6)
        assert (r.n_targets, r.n_raters) == (6, 4)
    assert agreement.lower == pytest.approx(0.019, abs=5e-4)
    assert agreement.upper == pytest.approx(0.76, abs=5e-3)
    assert consistency.lower == pytest.approx(0.342, abs=5e-4)
    assert consistency.upper == pytest.approx(0.95, abs=5e-3)
    assert consistency.estimate.n == 6


def test_icc_consistency_ignores_rater_offsets_agreement_does_not():
    rng = np.random.default_rng(0)
    truth = rng.normal(50, 10, size=(40, 1))
    ratings = truth + rng.normal(0, 2, size=(40, 3))
    shifted = ratings + np.array([0.0, 5.0, -5.0])
    assert icc(shifted, "consistency").value == pytest.approx(
        icc(ratings, "consistency").value, abs=1e-12)
    assert icc(shifted, "agreement").value < icc(ratings, "agreement").value - 0.05
    r = icc(ratings, "agreement")
    assert r.lower < r.value < r.upper


def test_icc_perfect_agreement_and_bad_input():
    perfect = icc(np.repeat(np.arange(5.0)[:, None], 3, axis=1), "agreement")
    assert perfect.value == 1.0 and perfect.lower == perfect.upper == 1.0
    assert perfect.p_value == 0.0
    with pytest.raises(MetricInputError):
        icc([[1.0, 2.0]], "agreement")
    with pytest.raises(MetricInputError):
        icc([[1.0, np.nan], [2.0, 3.0]])
    with pytest.raises(MetricInputError):
        icc(SHROUT_FLEISS, "icc1")


# --- correlations ----------------------------------------------------------------------------

def test_pearson_matches_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    y = 0.6 * x + rng.normal(size=50)
    r = pearson(x, y)
    reference = stats.pearsonr(x, y)
    ci = reference.confidence_interval(0.95)
    assert r.value == pytest.approx(reference.statistic, abs=1e-12)
    assert r.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert (r.lower, r.upper) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert r.n == 50 and r.estimate.method == "pearson-fisher-z"


def test_spearman_matches_scipy_with_bonett_wright_ci():
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    y = np.exp(x) + rng.normal(scale=0.5, size=40)
    r = spearman(x, y)
    reference = stats.spearmanr(x, y)
    assert r.value == pytest.approx(reference.statistic, abs=1e-12)
    assert r.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    se = math.sqrt((1 + r.value**2 / 2) / 37)
    z = stats.norm.ppf(0.975)
    assert r.lower == pytest.approx(math.tanh(math.atanh(r.value) - z * se), abs=1e-12)
    assert r.upper == pytest.approx(math.tanh(math.atanh(r.value) + z * se), abs=1e-12)


def test_correlation_degenerate_cases():
    constant = pearson([1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert math.isnan(constant.value) and math.isnan(constant.p_value) and constant.n == 5
    tiny = spearman([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert tiny.value == pytest.approx(0.5) and math.isnan(tiny.lower)
    exact = pearson([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 4.0, 6.0, 8.0, 10.0])
    assert exact.value == pytest.approx(1.0) and exact.lower == exact.upper == exact.value


# --- Harrell's C-index (metrics/survival.py) -------------------------------------------------

def _brute_force_c(time, event, risk):
    """Harrell's C by its definition, pair by pair (event-before-censoring at tied times)."""
    score = pairs = 0.0
    for i in range(len(time)):
        for j in range(len(time)):
            if i == j or not event[i]:
                continue
            if time[i] < time[j] or (time[i] == time[j] and not event[j]):
                pairs += 1
                score += 1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0
    return score / pairs


def _survival_data(n, seed):
    rng = np.random.default_rng(seed)
    risk = rng.integers(0, 6, n).astype(float)  # tied risks
    time = np.ceil(rng.exponential(10.0 / (1 + risk)))  # tied times
    event = rng.random(n) < 0.6  # censoring
    return time, event, risk


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c_index_matches_lifelines_and_brute_force(seed):
    lifelines = pytest.importorskip("lifelines.utils")
    time, event, risk = _survival_data(80, seed)
    result = harrell_c_index(time, event, risk)
    assert result.value == pytest.approx(_brute_force_c(time, event, risk), abs=1e-12)
    assert result.value == pytest.approx(
        lifelines.concordance_index(time, -risk, event), abs=1e-12)
    assert result.tied_risk_pairs > 0
    assert result.n == 80 and result.n_events == int(event.sum())
    assert result.lower < result.value < result.upper
    survival_prediction = harrell_c_index(time, event, -risk, risk_is_hazard=False)
    assert survival_prediction.value == result.value


def test_c_index_standard_error_matches_delete_one_jackknife():
    time, event, risk = _survival_data(150, 5)
    result = harrell_c_index(time, event, risk)
    n = time.size
    keep = ~np.eye(n, dtype=bool)
    leave_one_out = np.array([harrell_c_index(time[k], event[k], risk[k], alpha=0.05).value
                              for k in keep])
    jackknife_se = math.sqrt((n - 1) / n * ((leave_one_out - leave_one_out.mean()) ** 2).sum())
    assert result.standard_error == pytest.approx(jackknife_se, rel=0.05)
    z = stats.norm.ppf(0.975)
    assert result.upper == pytest.approx(result.value + z * result.standard_error, abs=1e-12)


def test_c_index_bootstrap_ci_close_to_influence_ci():
    time, event, risk = _survival_data(300, 6)
    influence = harrell_c_index(time, event, risk)
    boot = harrell_c_index(time, event, risk, ci="bootstrap", n_bootstrap=300, seed=1)
    assert boot.method == "bootstrap-percentile" and boot.value == influence.value
    assert boot.lower == pytest.approx(influence.lower, abs=0.025)
    assert boot.upper == pytest.approx(influence.upper, abs=0.025)


def test_c_index_degenerate_and_bad_input():
    all_censored = harrell_c_index([1.0, 2.0, 3.0], [0, 0, 0], [0.1, 0.2, 0.3])
    assert math.isnan(all_censored.value) and all_censored.comparable_pairs == 0
    perfect = harrell_c_index([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1], [4.0, 3.0, 2.0, 1.0])
    assert perfect.value == 1.0 and perfect.concordant_pairs == 6
    with pytest.raises(MetricInputError):
        harrell_c_index([1.0, 2.0], [1, 2], [0.1, 0.2])
    with pytest.raises(MetricInputError):
        harrell_c_index([1.0, 2.0], [1, 1], [0.1])
    with pytest.raises(MetricInputError):
        harrell_c_index([1.0, 2.0], [1, 1], [0.1, 0.2], ci="noether")
