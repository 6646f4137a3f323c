"""A discrete-event simulation of a reading worklist, with and without model triage.

Studies arrive as a Poisson process; a fraction is requested stat, the rest routine, and a
fraction of the routine ones (the prevalence) holds a haemorrhage. Radiologists (more during
the day shift than at night) read the stat queue first, then the routine queue, each in order
of arrival, one study at a time without interruption. With the model, a routine study that it
flags (a positive with probability = sensitivity, a negative with probability = 1 -
specificity) joins the stat queue at arrival. Both arms see the same studies, the same reading
times and the same flags (common random numbers), so their difference is the model's effect.

Time to diagnosis is arrival to the end of the read, in minutes. Studies arriving during the
warm-up are simulated but not counted; arrivals stop at ``duration_days`` and the queue is then
read to the end, so every study is read exactly once. Independent replications (seeds
``[seed, r]``) give a confidence interval of the reduction of the median.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from voxelwise.errors import InputError

MINUTES_PER_DAY = 24 * 60


@dataclass
class SimulationConfig:
    """Every parameter of the simulation (times in minutes, hours of day 0-24)."""

    arrivals_per_hour: float = 6.0
    stat_fraction: float = 0.3  # of all studies, requested stat
    prevalence: float = 0.1  # haemorrhage among routine studies
    radiologists: int = 3  # reading during the day shift
    night_radiologists: int = 1  # reading outside it
    night_reads_routine: bool = False  # False: at night only stat studies are read
    day_start_hour: float = 8.0
    day_end_hour: float = 18.0
    stat_read_minutes: float = 12.0  # mean reading time of a stat study
    routine_read_minutes: float = 15.0  # mean reading time of a routine study
    read_time_cv: float = 0.5  # coefficient of variation (lognormal); 0: fixed times
    sensitivity: float = 0.95  # the model's, at its operating point
    specificity: float = 0.85
    duration_days: float = 28.0
    warmup_days: float = 3.0
    replications: int = 5
    seed: int = 0

    def check(self) -> SimulationConfig:
        """Raise `InputError` naming the first parameter out of its range."""
        problems = [
            (self.arrivals_per_hour > 0, "arrivals_per_hour must be > 0"),
            (0 <= self.stat_fraction <= 1, "stat_fraction must lie in [0, 1]"),
            (0 <= self.prevalence <= 1, "prevalence must lie in [0, 1]"),
            (0 <= self.sensitivity <= 1, "sensitivity must lie in [0, 1]"),
            (0 <= self.specificity <= 1, "specificity must lie in [0, 1]"),
            (self.radiologists >= 1, "radiologists must be >= 1"),
            (self.night_radiologists >= 0, "night_radiologists must be >= 0"),
            (0 <= self.day_start_hour < self.day_end_hour <= 24,
             "need 0 <= day_start_hour < day_end_hour <= 24"),
            (self.stat_read_minutes > 0 and self.routine_read_minutes > 0,
             "reading times must be > 0 minutes"),
            (self.read_time_cv >= 0, "read_time_cv must be >= 0"),
            (0 <= self.warmup_days < self.duration_days,
             "need 0 <= warmup_days < duration_days"),
            (self.replications >= 1, "replications must be >= 1"),
        ]
        for ok, problem in problems:
            if not ok:
                raise InputError(None, f"simulation parameters: {problem}")
        return self

    def utilisation(self) -> float:
        """Reading work offered over reading capacity, for the binding shift (>= 1: unstable).

        All work over all capacity per day; when routine studies are read only by day, also
        routine work plus the stat work arriving by day over the day shift's capacity.
        """
        stat_work = self.arrivals_per_hour * self.stat_fraction * self.stat_read_minutes
        routine_work = self.arrivals_per_hour * (1 - self.stat_fraction) * (
            self.routine_read_minutes)
        day_hours = self.day_end_hour - self.day_start_hour
        capacity = 60 * (self.radiologists * day_hours + self.night_radiologists * (
            24 - day_hours))
        overall = 24 * (stat_work + routine_work) / capacity
        if self.night_reads_routine:
            return overall
        by_day = (24 * routine_work + day_hours * stat_work) / (60 * self.radiologists * (
            day_hours))
        return max(overall, by_day)


@dataclass
class Studies:
    """Per simulated study, both arms (times in minutes from the start)."""

    replication: np.ndarray
    arrival: np.ndarray
    stat: np.ndarray  # requested stat
    positive: np.ndarray  # haemorrhage (routine studies only; False for stat)
    flagged: np.ndarray  # the model's flag (routine studies only)
    read_minutes: np.ndarray
    start_without: np.ndarray
    end_without: np.ndarray
    start_with: np.ndarray
    end_with: np.ndarray
    measured: np.ndarray  # arrived after the warm-up

    def columns(self) -> dict[str, np.ndarray]:
        return asdict(self)


@dataclass
class SimulationResult:
    config: SimulationConfig
    studies: Studies
    summary: dict[str, Any] = field(default_factory=dict)


def _read_times(rng: np.random.Generator, mean: np.ndarray, cv: float) -> np.ndarray:
    if cv == 0:
        return mean.astype(float)
    sigma2 = math.log1p(cv * cv)
    return rng.lognormal(np.log(mean) - sigma2 / 2, math.sqrt(sigma2))


def _draw_studies(config: SimulationConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Arrivals, requested priorities, truth, reading times and flags of one replication."""
    horizon = config.duration_days * MINUTES_PER_DAY
    rate = config.arrivals_per_hour / 60
    expected = int(horizon * rate + 10 * math.sqrt(horizon * rate) + 10)
    arrival = np.cumsum(rng.exponential(1 / rate, expected))
    while arrival[-1] < horizon:  # (practically never) more than expected
        arrival = np.concatenate([arrival, arrival[-1] + np.cumsum(
            rng.exponential(1 / rate, expected))])
    arrival = arrival[arrival < horizon]
    n = arrival.size
    stat = rng.random(n) < config.stat_fraction
    positive = ~stat & (rng.random(n) < config.prevalence)
    u = rng.random(n)
    flagged = ~stat & np.where(positive, u < config.sensitivity, u < 1 - config.specificity)
    mean = np.where(stat, config.stat_read_minutes, config.routine_read_minutes)
    return {"arrival": arrival, "stat": stat, "positive": positive, "flagged": flagged,
            "read_minutes": _read_times(rng, mean, config.read_time_cv)}


def _is_day(config: SimulationConfig, minute: float) -> bool:
    hour = (minute % MINUTES_PER_DAY) / 60
    return config.day_start_hour <= hour < config.day_end_hour


def _next_study(config: SimulationConfig, minute: float,
                queues: tuple[deque[int], deque[int]]) -> int | None:
    """The study a free radiologist reads next at ``minute`` (None: none may be read now)."""
    if queues[0]:
        return queues[0].popleft()
    if queues[1] and (config.night_reads_routine or _is_day(config, minute)):
        return queues[1].popleft()
    return None


def _next_shift_change(config: SimulationConfig, minute: float) -> float:
    day = math.floor(minute / MINUTES_PER_DAY) * MINUTES_PER_DAY
    for offset in (0, MINUTES_PER_DAY):
        for hour in (config.day_start_hour, config.day_end_hour):
            moment = day + offset + hour * 60
            if moment > minute:
                return moment
    raise AssertionError("unreachable")  # pragma: no cover


def read_queue(config: SimulationConfig, arrival: np.ndarray, read_minutes: np.ndarray,
               urgent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every read: urgent studies first, each queue in order of arrival.

    Events are arrivals, ends of reads and shift changes, taken from a heap in time order; a
    radiologist whose shift ends finishes the study in hand. At night routine studies wait for
    the day shift unless ``config.night_reads_routine``.
    """
    n = arrival.size
    start, end = np.full(n, np.nan), np.full(n, np.nan)
    queues: tuple[deque[int], deque[int]] = (deque(), deque())  # (stat, routine)
    events: list[tuple[float, int, int]] = [(float(t), 1, i) for i, t in enumerate(arrival)]
    events.append((_next_shift_change(config, 0.0), 0, -1))
    heapq.heapify(events)  # (time, kind: 0 shift / 1 arrival / 2 end, study)
    busy, pending = 0, n
    while events:
        now, kind, study = heapq.heappop(events)
        if kind == 1:
            queues[0 if urgent[study] else 1].append(study)
            pending -= 1
        elif kind == 2:
            busy -= 1
        elif pending or busy or queues[0] or queues[1]:
            heapq.heappush(events, (_next_shift_change(config, now), 0, -1))
        capacity = config.radiologists if _is_day(config, now) else config.night_radiologists
        while busy < capacity and (chosen := _next_study(config, now, queues)) is not None:
            start[chosen], end[chosen] = now, now + read_minutes[chosen]
            heapq.heappush(events, (float(end[chosen]), 2, chosen))
            busy += 1
    return start, end


def simulate(config: SimulationConfig | None = None) -> SimulationResult:
    """Run ``config.replications`` replications of both arms and summarise them."""
    config = (config or SimulationConfig()).check()
    parts = []
    for replication in range(config.replications):
        rng = np.random.default_rng([config.seed, replication])
        drawn = _draw_studies(config, rng)
        start_without, end_without = read_queue(config, drawn["arrival"], drawn["read_minutes"],
                                                drawn["stat"])
        start_with, end_with = read_queue(config, drawn["arrival"], drawn["read_minutes"],
                                          drawn["stat"] | drawn["flagged"])
        parts.append({**drawn, "replication": np.full(drawn["arrival"].size, replication),
                      "start_without": start_without, "end_without": end_without,
                      "start_with": start_with, "end_with": end_with,
                      "measured": drawn["arrival"] >= config.warmup_days * MINUTES_PER_DAY})
    studies = Studies(**{name: np.concatenate([p[name] for p in parts])
                         for name in Studies.__dataclass_fields__})
    return SimulationResult(config, studies, summarise(config, studies))


# ---------------------------------------------------------------------------------------------
# summary


def _describe(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"n": 0, "median": math.nan, "q1": math.nan, "q3": math.nan, "mean": math.nan}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"n": int(values.size), "median": float(median), "q1": float(q1), "q3": float(q3),
            "mean": float(values.mean())}


def _mean_ci(values: list[float], alpha: float = 0.05) -> dict[str, float]:
    """Mean over replications with its t-interval (nan with one replication)."""
    array = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if array.size == 0:
        return {"mean": math.nan, "lower": math.nan, "upper": math.nan, "n": 0}
    mean = float(array.mean())
    if array.size < 2:
        return {"mean": mean, "lower": math.nan, "upper": math.nan, "n": int(array.size)}
    from scipy import stats

    half = stats.t.ppf(1 - alpha / 2, array.size - 1) * array.std(ddof=1) / math.sqrt(
        array.size)
    return {"mean": mean, "lower": mean - half, "upper": mean + half, "n": int(array.size)}


def summarise(config: SimulationConfig, studies: Studies) -> dict[str, Any]:
    """Time to diagnosis of positive routine studies with and without the model, stat load."""
    s = studies
    measured_hours = (config.duration_days - config.warmup_days) * 24 * config.replications
    target = s.measured & s.positive
    tat_without = s.end_without - s.arrival
    tat_with = s.end_with - s.arrival
    wait_without, wait_with = s.start_without - s.arrival, s.start_with - s.arrival
    false_positive = s.measured & ~s.stat & ~s.positive & s.flagged
    stat = s.measured & s.stat
    reductions = []
    for r in range(config.replications):
        mask = target & (s.replication == r)
        if mask.any():
            reductions.append(float(np.median(tat_without[mask]) - np.median(tat_with[mask])))
    unflagged = s.measured & ~s.stat & ~s.flagged  # the studies the model's flags delay
    return {
        "studies": int(s.measured.sum()), "replications": config.replications,
        "measured_hours": measured_hours, "utilisation": config.utilisation(),
        "stable": config.utilisation() < 1,
        "positive_routine": {
            "without_model_min": _describe(tat_without[target]),
            "with_model_min": _describe(tat_with[target]),
            "read_earlier": int((tat_with[target] < tat_without[target] - 1e-9).sum()),
            "read_later": int((tat_with[target] > tat_without[target] + 1e-9).sum()),
            "flagged": int((target & s.flagged).sum()),
            "median_reduction_min": _mean_ci(reductions),
        },
        "unflagged_routine": {
            "without_model_min": _describe(tat_without[unflagged]),
            "with_model_min": _describe(tat_with[unflagged]),
        },
        "stat_queue": {
            "false_positives": int(false_positive.sum()),
            "false_positives_per_hour": float(false_positive.sum() / measured_hours),
            "arrivals_per_hour_without": float(stat.sum() / measured_hours),
            "arrivals_per_hour_with": float((stat | (s.measured & s.flagged)).sum()
                                            / measured_hours),
            "stat_wait_without_min": _describe(wait_without[stat]),
            "stat_wait_with_min": _describe(wait_with[stat]),
        },
        "all_read_once": bool(np.isfinite(s.end_without).all() and np.isfinite(s.end_with).all()),
    }


def _iqr(entry: dict[str, float]) -> str:
    if entry["n"] == 0:
        return "n/a (n = 0)"
    return (f"{entry['median']:.0f} min (IQR {entry['q1']:.0f}-{entry['q3']:.0f} min, "
            f"n = {entry['n']})")


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, without the model, with the model) rows for a report or the terminal."""
    positive, unflagged, stat = (summary["positive_routine"], summary["unflagged_routine"],
                                summary["stat_queue"])
    reduction = positive["median_reduction_min"]
    ci = ("" if not math.isfinite(reduction["lower"]) else
          f" (95% CI {reduction['lower']:.0f} to {reduction['upper']:.0f} min, "
          f"{reduction['n']} replications)")
    n = positive["without_model_min"]["n"]
    return [
        ("time to diagnosis, haemorrhage-positive routine studies",
         _iqr(positive["without_model_min"]), _iqr(positive["with_model_min"])),
        ("reduction of the median, mean over replications", "",
         f"{reduction['mean']:.0f} min{ci}" if math.isfinite(reduction["mean"]) else "n/a"),
        ("positive routine studies read earlier / later", "",
         f"{positive['read_earlier']} / {positive['read_later']} of {n} "
         f"({positive['flagged']} flagged)"),
        ("time to diagnosis, routine studies the model did not flag",
         _iqr(unflagged["without_model_min"]), _iqr(unflagged["with_model_min"])),
        ("stat queue arrivals", f"{stat['arrivals_per_hour_without']:.2f} per hour",
         f"{stat['arrivals_per_hour_with']:.2f} per hour (false positives "
         f"{stat['false_positives_per_hour']:.2f} per hour, n = {stat['false_positives']})"),
        ("waiting time of requested-stat studies", _iqr(stat["stat_wait_without_min"]),
         _iqr(stat["stat_wait_with_min"])),
    ]
