"""Pure functions over event streams: no database, so each one is checked against
hand-built histories with known answers (``tests/metrics/test_compute.py``).

The definitions are written down in ``docs/metrics.md``; this module is their one home.
"""

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from orchestration.models import TaskState

S = TaskState

# Where the time of a task goes, by the state it is in (``implemented`` splits in two on
# the approving review of the current implementation: waiting for review, then integrating).
WORKING_STATES = frozenset({S.CLAIMED, S.IN_PROGRESS, S.DELEGATED})
# Work begun and not yet integrated: held under a lease, waiting for review or integration,
# or sent back by a merge conflict.
WIP_STATES = (S.CLAIMED, S.IN_PROGRESS, S.IMPLEMENTED, S.CONFLICT)
PHASES = ("waiting", "working", "review", "integrating")


@dataclass(frozen=True)
class Ev:
    """One event of a task's history, reduced to what the figures need."""

    at: datetime
    kind: str
    to: str | None = None  # the state the task entered (state changes only)
    actor: str = ""
    verdict: str | None = None  # review.recorded only


@dataclass(frozen=True)
class TaskTimes:
    """Durations (seconds) of one integrated task; the four phases add up to ``lead``."""

    lead: float
    cycle: float | None  # None when it was never claimed (forced to implemented)
    waiting: float
    working: float
    review: float
    integrating: float
    integrated_at: datetime
    implementer: str

    def row(self) -> list[float | None]:
        return [self.lead, self.cycle, self.waiting, self.working, self.review, self.integrating]


def _phase(state: str | None, approved: bool) -> str:
    if state in WORKING_STATES:
        return "working"
    if state == S.IMPLEMENTED:
        return "integrating" if approved else "review"
    return "waiting"


def task_times(events: Iterable[Ev]) -> TaskTimes | None:
    """Lead time, cycle time and the four phases of a task that reached ``integrated``.

    Lead time runs from the task's first event (its creation) to integration; cycle time from
    its first claim. Every second in between is counted once, in the phase of the state the
    task was in: rework loops add to the phases they pass through again. None if the history
    has no integration.
    """
    spent = dict.fromkeys(PHASES, 0.0)
    start: datetime | None = None
    segment: datetime | None = None
    state: str | None = None
    approved = False
    first_claim: datetime | None = None
    implementer = ""
    for ev in events:
        if start is None:
            start = segment = ev.at
        if ev.kind == "review.recorded":
            if ev.verdict == "approved" and state == S.IMPLEMENTED and not approved:
                spent["review"] += (ev.at - segment).total_seconds()
                segment, approved = ev.at, True
            continue
        if ev.to is None:
            continue
        spent[_phase(state, approved)] += (ev.at - segment).total_seconds()
        segment, state, approved = ev.at, ev.to, False
        if state == S.CLAIMED and first_claim is None:
            first_claim = ev.at
        if state == S.IMPLEMENTED:
            implementer = ev.actor
        if state == S.INTEGRATED:
            return TaskTimes(
                lead=(ev.at - start).total_seconds(),
                cycle=(ev.at - first_claim).total_seconds() if first_claim else None,
                integrated_at=ev.at,
                implementer=implementer,
                **spent,
            )
    return None


def review_latencies(events: Iterable[Ev]) -> list[tuple[datetime, float]]:
    """(review time, seconds since the work became implemented) for the first review of
    each implementation; later reviews of the same implementation are not latency."""
    latencies = []
    waiting_since: datetime | None = None
    for ev in events:
        if ev.to is not None:
            waiting_since = ev.at if ev.to == S.IMPLEMENTED else None
        elif ev.kind == "review.recorded" and waiting_since is not None:
            latencies.append((ev.at, (ev.at - waiting_since).total_seconds()))
            waiting_since = None
    return latencies


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) by linear interpolation between closest ranks (the same
    as PostgreSQL's ``percentile_cont`` and NumPy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(part: float, whole: float) -> float | None:
    """part / whole, or None when there is nothing to divide (an honest 'no figure')."""
    return part / whole if whole else None


def distribution(values: Sequence[float]) -> dict:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "mean": sum(values) / len(values) if values else None,
    }


# --- forecast -----------------------------------------------------------------------------
MIN_HISTORY_DAYS = 5
MAX_FORECAST_DAYS = 3650


def forecast(
    *,
    remaining: int,
    daily_throughput: Sequence[int],
    today: date,
    runs: int = 1000,
    rng: random.Random | None = None,
) -> dict:
    """When ``remaining`` tasks will likely be done, by Monte Carlo over past days.

    Each run replays the future as days drawn at random (with replacement) from the measured
    daily throughput until the remaining work is done; the answer is the 50th, 85th and 95th
    percentile of the runs' finishing days. Not enough history (fewer than
    ``MIN_HISTORY_DAYS`` days, or nothing finished in them) is said so, never guessed.
    """
    base = {"remaining": remaining, "history_days": len(daily_throughput), "runs": 0}
    if remaining <= 0:
        return {**base, "status": "done", "p50": None, "p85": None, "p95": None}
    if len(daily_throughput) < MIN_HISTORY_DAYS or not any(daily_throughput):
        return {**base, "status": "insufficient_history", "p50": None, "p85": None, "p95": None}
    mean = sum(daily_throughput) / len(daily_throughput)
    if remaining / mean > MAX_FORECAST_DAYS:
        return {**base, "status": "beyond_horizon", "p50": None, "p85": None, "p95": None}
    rng = rng or random.Random()
    samples = list(daily_throughput)
    finish_days = []
    for _ in range(runs):
        done = days = 0
        while done < remaining and days < MAX_FORECAST_DAYS:
            done += rng.choice(samples)
            days += 1
        finish_days.append(days)
    finish_days.sort()

    def day_at(p: float) -> str:
        # A finishing day is a whole day: the smallest run length covering p% of the runs.
        index = max(0, math.ceil(len(finish_days) * p / 100) - 1)
        return (today + timedelta(days=finish_days[index])).isoformat()

    return {
        **base,
        "runs": runs,
        "status": "forecast",
        "p50": day_at(50),
        "p85": day_at(85),
        "p95": day_at(95),
    }


# --- alerts -------------------------------------------------------------------------------
def sudden_change(
    current: float, trailing: Sequence[float], *, factor: float, min_baseline: float
) -> str | None:
    """'spike' or 'drop' when ``current`` is ``factor`` times above or below the trailing
    average, judged only on a baseline of at least ``min_baseline`` (quiet days are noise)."""
    if not trailing:
        return None
    baseline = sum(trailing) / len(trailing)
    if baseline < min_baseline:
        return None
    if current >= baseline * factor:
        return "spike"
    if current <= baseline / factor:
        return "drop"
    return None
