"""The pure figures against hand-written event streams with known answers."""

import random
from datetime import UTC, date, datetime, timedelta

from metrics import compute
from metrics.compute import Ev

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_percentile_interpolates_between_closest_ranks():
    assert compute.percentile([], 50) is None
    assert compute.percentile([7], 90) == 7
    assert compute.percentile([1, 2, 3, 4], 50) == 2.5
    assert compute.percentile([10, 20, 30, 40, 50], 90) == 46.0
    assert compute.percentile([3, 1, 2], 0) == 1 and compute.percentile([3, 1, 2], 100) == 3


def test_ratio_of_nothing_is_no_figure():
    assert compute.ratio(0, 0) is None
    assert compute.ratio(1, 4) == 0.25


def test_a_straight_run_splits_lead_time_into_its_four_phases():
    stream = [
        Ev(h(0), "task.created", to="ready"),
        Ev(h(1), "task.claimed", to="claimed", actor="a"),
        Ev(h(1.5), "task.started", to="in_progress", actor="a"),
        Ev(h(3), "task.implemented", to="implemented", actor="a"),
        Ev(h(5), "review.recorded", verdict="approved"),
        Ev(h(6), "task.integrated", to="integrated"),
    ]
    times = compute.task_times(stream)
    assert times.lead == 6 * 3600 and times.cycle == 5 * 3600
    assert (times.waiting, times.working, times.review, times.integrating) == (
        3600,
        2 * 3600,
        2 * 3600,
        3600,
    )
    assert times.implementer == "a"


def test_rework_and_backlog_time_land_in_the_phases_they_pass_through():
    stream = [
        Ev(h(0), "task.created", to="ready"),
        Ev(h(0), "task.fell_back", to="backlog"),  # a prerequisite arrived at once
        Ev(h(2), "task.ready", to="ready"),
        Ev(h(3), "task.claimed", to="claimed", actor="a"),
        Ev(h(3), "task.started", to="in_progress", actor="a"),
        Ev(h(4), "task.implemented", to="implemented", actor="a"),
        Ev(h(5), "review.recorded", verdict="changes_requested"),
        Ev(h(5), "task.changes_requested", to="ready"),
        Ev(h(6), "task.claimed", to="claimed", actor="b"),
        Ev(h(6), "task.started", to="in_progress", actor="b"),
        Ev(h(8), "task.implemented", to="implemented", actor="b"),
        Ev(h(9), "review.recorded", verdict="approved"),
        Ev(h(9.5), "review.recorded", verdict="approved"),  # a second approval changes nothing
        Ev(h(10), "task.integrated", to="integrated"),
    ]
    times = compute.task_times(stream)
    assert times.lead == 10 * 3600 and times.cycle == 7 * 3600
    # waiting: 0-3 and 5-6; working: 3-4 and 6-8; review: 4-5 and 8-9; integrating: 9-10
    assert times.waiting == 4 * 3600 and times.working == 3 * 3600
    assert times.review == 2 * 3600 and times.integrating == 3600
    assert times.implementer == "b"
    assert sum(times.row()[2:]) == times.lead


def test_unfinished_work_has_no_lead_time():
    assert compute.task_times([Ev(h(0), "task.created", to="ready")]) is None
    assert compute.task_times([]) is None


def test_review_latency_counts_the_first_review_of_each_implementation():
    stream = [
        Ev(h(0), "task.implemented", to="implemented"),
        Ev(h(2), "review.recorded", verdict="changes_requested"),
        Ev(h(2), "task.changes_requested", to="ready"),
        Ev(h(3), "task.claimed", to="claimed"),
        Ev(h(4), "task.implemented", to="implemented"),
        Ev(h(4.5), "review.recorded", verdict="approved"),
        Ev(h(5), "review.recorded", verdict="approved"),
    ]
    assert [s for _, s in compute.review_latencies(stream)] == [7200, 1800]


def test_forecast_with_a_seeded_rng_is_reproducible_and_ordered():
    history = [2, 3, 0, 4, 1, 2, 3]
    one = compute.forecast(
        remaining=20, daily_throughput=history, today=date(2025, 3, 10), rng=random.Random(7)
    )
    two = compute.forecast(
        remaining=20, daily_throughput=history, today=date(2025, 3, 10), rng=random.Random(7)
    )
    assert one == two and one["status"] == "forecast"
    assert one["p50"] <= one["p85"] <= one["p95"]
    # 20 tasks at a mean of 15/7 a day: about 9-10 days, never fewer than 5 (4 is the most
    # a day has done) and, for the median, not more than a fortnight.
    assert "2025-03-15" <= one["p50"] <= "2025-03-24"


def test_a_constant_throughput_forecasts_an_exact_day():
    result = compute.forecast(
        remaining=10, daily_throughput=[2] * 6, today=date(2025, 3, 10), rng=random.Random(1)
    )
    assert result["p50"] == result["p95"] == "2025-03-15"


def test_forecast_answers_honestly_without_enough_history():
    today = date(2025, 3, 10)
    short = compute.forecast(remaining=5, daily_throughput=[1, 2], today=today)
    idle = compute.forecast(remaining=5, daily_throughput=[0] * 10, today=today)
    done = compute.forecast(remaining=0, daily_throughput=[], today=today)
    far = compute.forecast(remaining=10_000, daily_throughput=[0, 0, 0, 0, 1], today=today)
    assert short["status"] == idle["status"] == "insufficient_history"
    assert short["p50"] is None and done["status"] == "done"
    assert far["status"] == "beyond_horizon"


def test_sudden_change_needs_a_baseline_and_a_factor():
    assert compute.sudden_change(10, [2, 2, 2], factor=2, min_baseline=1) == "spike"
    assert compute.sudden_change(0, [4, 4, 4], factor=2, min_baseline=1) == "drop"
    assert compute.sudden_change(5, [4, 4, 4], factor=2, min_baseline=1) is None
    assert compute.sudden_change(10, [0.5, 0.5], factor=2, min_baseline=1) is None
    assert compute.sudden_change(10, [], factor=2, min_baseline=1) is None
