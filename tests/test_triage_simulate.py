"""The triage queue simulation: reproducible, conserving, and the model's effect where expected."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from voxelwise.errors import InputError
from voxelwise.triage.simulate import (
    MINUTES_PER_DAY,
    SimulationConfig,
    read_queue,
    simulate,
    summary_rows,
)

SHORT = SimulationConfig(duration_days=6, warmup_days=1, replications=2)


def _capacity_respected(config: SimulationConfig, start: np.ndarray, end: np.ndarray) -> bool:
    """At every start of a read, no more reads run than radiologists are on shift."""
    for t in start:
        running = int(((start <= t) & (end > t)).sum())
        hour = (t % MINUTES_PER_DAY) / 60
        day = config.day_start_hour <= hour < config.day_end_hour
        # a read started by day may run on into the night: compare with the day staff
        if running > config.radiologists or (not day and running > max(
                config.night_radiologists, config.radiologists)):
            return False
    return True


def test_same_seed_same_result_other_seed_other_result() -> None:
    a, b = simulate(SHORT), simulate(SHORT)
    for name, values in a.studies.columns().items():
        np.testing.assert_array_equal(values, b.studies.columns()[name], err_msg=name)
    assert a.summary == b.summary
    other = simulate(replace(SHORT, seed=1))
    assert other.studies.arrival.size != a.studies.arrival.size or not np.array_equal(
        other.studies.arrival, a.studies.arrival)


def test_every_study_is_read_exactly_once_within_capacity() -> None:
    result = simulate(SHORT)
    s = result.studies
    assert result.summary["all_read_once"]
    for start, end in ((s.start_without, s.end_without), (s.start_with, s.end_with)):
        assert np.isfinite(start).all() and np.isfinite(end).all()
        assert (start >= s.arrival - 1e-9).all()
        np.testing.assert_allclose(end - start, s.read_minutes)
        first = s.replication == 0
        assert _capacity_respected(SHORT, start[first], end[first])
    # by default routine reads start only during the day shift
    routine = ~s.stat & ~s.flagged
    hours = (s.start_without[routine] % MINUTES_PER_DAY) / 60
    assert ((hours >= SHORT.day_start_hour) & (hours < SHORT.day_end_hour)).all()


def test_without_flags_the_model_changes_nothing() -> None:
    result = simulate(replace(SHORT, sensitivity=0.0, specificity=1.0))
    s = result.studies
    assert not s.flagged.any()
    np.testing.assert_array_equal(s.end_with, s.end_without)
    assert result.summary["positive_routine"]["read_earlier"] == 0
    assert result.summary["stat_queue"]["false_positives"] == 0


def test_sensitivity_zero_never_brings_a_positive_forward() -> None:
    """With one reading capacity around the clock, false positives only jump the queue."""
    config = replace(SHORT, sensitivity=0.0, specificity=0.8, radiologists=1,
                     night_radiologists=1, night_reads_routine=True, arrivals_per_hour=4.0)
    result = simulate(config)
    s, positive = result.studies, result.summary["positive_routine"]
    assert not (s.flagged & s.positive).any() and positive["flagged"] == 0
    assert (s.flagged & ~s.positive & ~s.stat).any()
    assert positive["with_model_min"]["median"] >= positive["without_model_min"]["median"]
    assert positive["with_model_min"]["mean"] > positive["without_model_min"]["mean"]
    assert positive["read_earlier"] == 0 and positive["read_later"] > 0  # one reader: per study


def test_false_positives_read_at_night_free_the_day_shift() -> None:
    """With a night shift that reads only stat, flagged studies use its idle time (by design)."""
    result = simulate(replace(SHORT, sensitivity=0.0, specificity=0.8))
    s = result.studies
    fp = s.measured & s.flagged
    hours = (s.start_with[fp] % MINUTES_PER_DAY) / 60
    assert ((hours < SHORT.day_start_hour) | (hours >= SHORT.day_end_hour)).any()
    unflagged = result.summary["unflagged_routine"]
    assert unflagged["with_model_min"]["mean"] <= unflagged["without_model_min"]["mean"]


def test_perfect_model_has_no_false_positives_and_flags_every_positive() -> None:
    result = simulate(replace(SHORT, sensitivity=1.0, specificity=1.0))
    s, stat = result.studies, result.summary["stat_queue"]
    assert stat["false_positives"] == 0 and stat["false_positives_per_hour"] == 0
    np.testing.assert_array_equal(s.flagged, s.positive)
    hours = result.summary["measured_hours"]
    added = (s.measured & s.positive).sum() / hours
    assert stat["arrivals_per_hour_with"] == pytest.approx(stat["arrivals_per_hour_without"]
                                                          + added)


def test_positive_routine_studies_are_read_much_earlier_with_the_model() -> None:
    result = simulate(SHORT)
    positive = result.summary["positive_routine"]
    without, with_model = positive["without_model_min"], positive["with_model_min"]
    assert without["n"] == with_model["n"] > 20
    assert with_model["mean"] < without["mean"] / 3
    assert with_model["median"] < without["median"] / 3
    assert positive["read_earlier"] > positive["read_later"]
    reduction = positive["median_reduction_min"]
    assert reduction["n"] == 2 and reduction["mean"] > 0
    # false positives cost the stat queue something, never less than nothing
    stat = result.summary["stat_queue"]
    assert stat["false_positives"] > 0
    assert stat["stat_wait_with_min"]["mean"] >= stat["stat_wait_without_min"]["mean"]
    rows = summary_rows(result.summary)
    assert rows[0][0].startswith("time to diagnosis")
    assert "IQR" in rows[0][1] and "min" in rows[0][2]


def test_queue_order_stat_first_then_arrival() -> None:
    config = SimulationConfig(radiologists=1, night_radiologists=1, night_reads_routine=True)
    arrival = np.array([0.0, 1.0, 2.0, 3.0])
    read = np.full(4, 10.0)
    urgent = np.array([False, False, True, False])
    start, end = read_queue(config, arrival, read, urgent)
    # study 0 is read first (nothing waits), then the urgent study 2, then 1 and 3 by arrival
    np.testing.assert_allclose(start, [0.0, 20.0, 10.0, 30.0])
    np.testing.assert_allclose(end, start + 10)


def test_routine_waits_for_the_day_shift() -> None:
    config = SimulationConfig(radiologists=1, night_radiologists=1, day_start_hour=8,
                              day_end_hour=18)
    arrival = np.array([60.0, 120.0])  # 01:00 and 02:00
    start, _ = read_queue(config, arrival, np.full(2, 10.0), np.array([False, True]))
    np.testing.assert_allclose(start, [8 * 60, 120.0])


@pytest.mark.parametrize("change", [
    {"sensitivity": 1.5}, {"specificity": -0.1}, {"radiologists": 0}, {"arrivals_per_hour": 0},
    {"warmup_days": 30}, {"day_start_hour": 20, "day_end_hour": 8}, {"replications": 0},
])
def test_parameters_out_of_range_are_refused(change: dict) -> None:
    with pytest.raises(InputError, match=next(iter(change))):
        simulate(replace(SHORT, **change))


def test_default_parameters_show_a_long_routine_backlog_cut_to_minutes() -> None:
    """The published effect: routine head CTs with haemorrhage, 512 -> 19 minutes (median)."""
    result = simulate(SimulationConfig(replications=2))
    positive = result.summary["positive_routine"]
    assert positive["without_model_min"]["median"] > 300
    assert positive["with_model_min"]["median"] < 40
    assert result.summary["stable"]
