"""Agreement between two measurements or several raters: Bland-Altman, ICC, correlations.

- ``bland_altman``: bias, SD of the differences, limits of agreement, each with its CI;
  ``bland_altman_plot``: the plot, as a matplotlib ``Figure`` (Agg canvas, no pyplot state).
- ``icc``: ICC(2,1) absolute agreement and ICC(3,1) consistency (two-way models, single rater;
  Shrout & Fleiss 1979, McGraw & Wong 1996) with their F-test and F-distribution CIs.
- ``pearson`` / ``spearman``: correlation with Fisher-z CI and scipy's p-value.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

from voxelwise.metrics.classification import (
    Estimate,
    MetricInputError,
    check_alpha,
    two_sided_z,
)


def _paired(a, b, minimum: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise MetricInputError(f"{what} needs two 1-D arrays of equal length, got shapes "
                               f"{x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise MetricInputError(f"{what}: measurements hold nan/inf values")
    if x.size < minimum:
        raise MetricInputError(f"{what} needs at least {minimum} pairs, got {x.size}")
    return x, y


# ---------------------------------------------------------------------------------------------
# Bland-Altman


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman analysis of ``a - b``.

    ``bias``: mean difference with a t interval. Limits of agreement ``bias -+ z sd`` with
    ``z = Phi^-1((1 + coverage) / 2)`` (1.96 for 95% limits), each with the approximate CI of
    Bland & Altman 1999: ``limit -+ t(1 - alpha/2, n - 1) sd sqrt(1/n + z^2 / (2 (n - 1)))``.
    """

    n: int
    bias: Estimate
    sd: float  # SD of the differences, ddof = 1
    lower_limit: Estimate
    upper_limit: Estimate
    coverage: float
    alpha: float


def bland_altman(a, b, alpha: float = 0.05, coverage: float = 0.95) -> BlandAltman:
    """Bias and limits of agreement of paired measurements ``a`` and ``b`` (differences a - b)."""
    check_alpha(alpha)
    if not 0.0 < coverage < 1.0:
        raise MetricInputError(f"coverage must lie in (0, 1), got {coverage}")
    x, y = _paired(a, b, 2, "Bland-Altman")
    d = x - y
    n = d.size
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    t = float(stats.t.ppf(1.0 - alpha / 2.0, n - 1))
    z = float(stats.norm.ppf((1.0 + coverage) / 2.0))
    se_bias = sd / math.sqrt(n)
    se_limit = sd * math.sqrt(1.0 / n + z * z / (2.0 * (n - 1)))
    limits = []
    for sign in (-1.0, 1.0):
        limit = bias + sign * z * sd
        limits.append(Estimate(limit, limit - t * se_limit, limit + t * se_limit, n, alpha,
                               "bland-altman-1999"))
    return BlandAltman(n, Estimate(bias, bias - t * se_bias, bias + t * se_bias, n, alpha, "t"),
                       sd, limits[0], limits[1], float(coverage), alpha)


def bland_altman_plot(a, b, *, units: str = "", labels: tuple[str, str] = ("A", "B"),
                      title: str | None = None, alpha: float = 0.05, coverage: float = 0.95):
    """Bland-Altman plot (differences against means) as a matplotlib ``Figure``.

    Draws the bias and the limits of agreement with their CIs as shaded bands. The figure is
    built on an Agg canvas without pyplot, so it never opens a window or changes the backend;
    save it with ``figure.savefig(path)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    result = bland_altman(a, b, alpha, coverage)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    unit = f" ({units})" if units else ""
    figure = Figure(figsize=(6.0, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.scatter((x + y) / 2.0, x - y, s=14, color="0.2", alpha=0.8)
    level = f"{100 * (1 - alpha):g}% CI"
    for estimate, name, colour in ((result.upper_limit, "upper LoA", "tab:red"),
                                   (result.bias, "bias", "tab:blue"),
                                   (result.lower_limit, "lower LoA", "tab:red")):
        ax.axhline(estimate.value, color=colour, linestyle="--" if "LoA" in name else "-",
                   label=f"{name} {estimate.value:.3g} ({level} {estimate.lower:.3g}, "
                         f"{estimate.upper:.3g})")
        ax.axhspan(estimate.lower, estimate.upper, color=colour, alpha=0.12, linewidth=0)
    ax.set_xlabel(f"Mean of {labels[0]} and {labels[1]}{unit}")
    ax.set_ylabel(f"{labels[0]} - {labels[1]}{unit}")
    ax.set_title(title or f"Bland-Altman, n = {result.n}")
    ax.legend(fontsize="small", loc="best")
    return figure


# ---------------------------------------------------------------------------------------------
# ICC


@dataclass(frozen=True)
class ICC:
    """An intraclass correlation with its CI and the F-test of H0: ICC = 0."""

    kind: str  # "ICC(2,1)" (absolute agreement) or "ICC(3,1)" (consistency)
    value: float
    lower: float
    upper: float
    n_targets: int
    n_raters: int
    f_value: float
    df1: int
    df2: int
    p_value: float
    alpha: float

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.value, self.lower, self.upper, self.n_targets, self.alpha, self.kind)


def _two_way_anova(r: np.ndarray) -> tuple[float, float, float]:
    """Mean squares of rows (targets), columns (raters) and residual of a complete table."""
    n, k = r.shape
    grand = r.mean()
    ss_rows = k * float(((r.mean(axis=1) - grand) ** 2).sum())
    ss_cols = n * float(((r.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((r - grand) ** 2).sum()) - ss_rows - ss_cols
    return ss_rows / (n - 1), ss_cols / (k - 1), max(ss_error, 0.0) / ((n - 1) * (k - 1))


def _safe_divide(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return math.nan if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def icc(ratings, model: str = "agreement", alpha: float = 0.05) -> ICC:
    """Single-rater intraclass correlation of a complete (targets, raters) table.

    ``model="agreement"``: ICC(2,1), two-way random effects, absolute agreement (McGraw & Wong
    ICC(A,1)); ``model="consistency"``: ICC(3,1), two-way mixed, consistency (ICC(C,1)).
    CIs from the F distribution: for ICC(3,1) with ``F = MSR / MSE``; for ICC(2,1) with the
    Satterthwaite-type degrees of freedom of McGraw & Wong 1996 (Table 7), the formulas R's
    ``psych::ICC`` and pingouin use. The F-test (``MSR / MSE`` on ``n - 1``, ``(n-1)(k-1)`` df)
    is the same for both models. Missing ratings are not supported (complete table needed).
    When the residual mean square is 0 the CI collapses onto the point.
    """
    check_alpha(alpha)
    r = np.asarray(ratings, dtype=float)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 2:
        raise MetricInputError(f"ratings must be (targets, raters) with at least 2 of each, got "
                               f"shape {r.shape}")
    if not np.isfinite(r).all():
        raise MetricInputError("ratings hold nan/inf values; the ICC needs a complete table")
    if model not in ("agreement", "consistency"):
        raise MetricInputError(f"model must be 'agreement' or 'consistency', got {model!r}")
    n, k = r.shape
    msr, msc, mse = _two_way_anova(r)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    f_value = _safe_divide(msr, mse)
    p_value = float(stats.f.sf(f_value, df1, df2)) if not math.isnan(f_value) else math.nan
    q = 1.0 - alpha / 2.0
    if model == "consistency":
        kind = "ICC(3,1)"
        value = _safe_divide(msr - mse, msr + (k - 1) * mse)
        if mse > 0:
            f_low = f_value / stats.f.ppf(q, df1, df2)
            f_high = f_value * stats.f.ppf(q, df2, df1)
            lower, upper = (f_low - 1) / (f_low + k - 1), (f_high - 1) / (f_high + k - 1)
        else:
            lower = upper = value
    else:
        kind = "ICC(2,1)"
        value = _safe_divide(msr - mse, msr + (k - 1) * mse + k * (msc - mse) / n)
        if mse > 0 and np.isfinite(value) and value < 1.0:
            a = k * value / (n * (1.0 - value))
            b = 1.0 + k * value * (n - 1) / (n * (1.0 - value))
            v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / df2)
            f_star = stats.f.ppf(q, n - 1, v)
            f_star_inverse = stats.f.ppf(q, v, n - 1)
            spread = k * msc + (k * n - k - n) * mse
            lower = n * (msr - f_star * mse) / (f_star * spread + n * msr)
            upper = n * (f_star_inverse * msr - mse) / (spread + n * f_star_inverse * msr)
        else:
            lower = upper = value
    return ICC(kind, float(value), float(lower), float(upper), n, k, float(f_value), df1, df2,
               p_value, alpha)


# ---------------------------------------------------------------------------------------------
# correlations


@dataclass(frozen=True)
class Correlation:
    """A correlation coefficient with its CI, n and two-sided p-value (H0: no correlation)."""

    method: str  # "pearson" or "spearman"
    value: float
    lower: float
    upper: float
    n: int
    p_value: float
    alpha: float

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.value, self.lower, self.upper, self.n, self.alpha,
                        f"{self.method}-fisher-z")


def _fisher_ci(r: float, se: float, alpha: float) -> tuple[float, float]:
    if abs(r) >= 1.0:
        return r, r
    if not np.isfinite(se):
        return math.nan, math.nan
    centre, half = math.atanh(r), two_sided_z(alpha) * se
    return math.tanh(centre - half), math.tanh(centre + half)


def _correlation(x, y, method: str, alpha: float) -> Correlation:
    check_alpha(alpha)
    a, b = _paired(x, y, 2, f"{method} correlation")
    n = a.size
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return Correlation(method, math.nan, math.nan, math.nan, n, math.nan, alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.pearsonr(a, b) if method == "pearson" else stats.spearmanr(a, b)
    r, p = float(result[0]), float(result[1])
    if n <= 3:
        se = math.nan
    elif method == "pearson":
        se = 1.0 / math.sqrt(n - 3)
    else:
        se = math.sqrt((1.0 + r * r / 2.0) / (n - 3))
    return Correlation(method, r, *_fisher_ci(r, se, alpha), n, p, alpha)


def pearson(x, y, alpha: float = 0.05) -> Correlation:
    """Pearson's r, its Fisher-z CI (``tanh(atanh r -+ z / sqrt(n - 3))``, the interval scipy's
    ``pearsonr(...).confidence_interval()`` gives) and scipy's p-value. CI nan for n <= 3;
    everything nan when either variable is constant."""
    return _correlation(x, y, "pearson", alpha)


def spearman(x, y, alpha: float = 0.05) -> Correlation:
    """Spearman's rho, its Fisher-z CI with the Bonett & Wright 2000 standard error
    ``sqrt((1 + rho^2 / 2) / (n - 3))`` (better coverage for rank correlations than
    ``1 / sqrt(n - 3)``), and scipy's p-value. CI nan for n <= 3."""
    return _correlation(x, y, "spearman", alpha)
