"""Reads that feed the figures: SQL over the event log (by project and time, on the
``event_project_time`` index), the live task states, and the stored daily roll-ups.

Days are UTC days. A day's figures come from its roll-up once the day is closed and rolled
up; otherwise (today, or a day the beat has not reached) they are computed live here, so no
figure depends on the beat having run.
"""

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from django.db.models import Count, F, Min, Q
from django.db.models.fields.json import KT
from django.utils import timezone

from governance.actors import Actor
from governance.models import Checkpoint
from metrics import compute
from metrics.compute import WIP_STATES, Ev
from metrics.models import AlertSettings, ClaimRefusal, DailyRollup
from orchestration.models import (
    GATE_CLASSES,
    OPEN_STATES,
    Event,
    Milestone,
    Task,
    TaskState,
)
from orchestration.selectors import project_visible_or_404

S = TaskState
ALERT_KIND = "metric.alert"
# Events that are part of a task's history for the flow figures besides state changes.
_STREAM_KINDS = ("review.recorded",)
_CHUNK = 2000
DEFAULT_WINDOW_DAYS = 30
MAX_WINDOW_DAYS = 366


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def utc_today(now: datetime) -> date:
    return now.astimezone(UTC).date()


def _to(kind: str, to: str | None, created_state: str | None) -> str | None:
    # A task's creation records the state it was created in rather than a transition.
    return created_state if kind == "task.created" else to


def task_streams(task_ids: Iterable[int], *, before: datetime) -> dict[int, list[Ev]]:
    """The state changes and reviews of these tasks up to ``before``, in time order."""
    streams: dict[int, list[Ev]] = defaultdict(list)
    ids = sorted(set(task_ids))
    for offset in range(0, len(ids), _CHUNK):
        rows = (
            Event.objects.filter(task_id__in=ids[offset : offset + _CHUNK], created_at__lt=before)
            .filter(Q(payload__has_key="to") | Q(kind__in=(*_STREAM_KINDS, "task.created")))
            .order_by("task_id", "created_at", "id")
            .values_list(
                "task_id",
                "created_at",
                "kind",
                "actor",
                KT("payload__to"),
                KT("payload__state"),
                KT("payload__verdict"),
            )
        )
        for task_id, at, kind, actor, to, state, verdict in rows.iterator(chunk_size=5000):
            streams[task_id].append(
                Ev(at=at, kind=kind, to=_to(kind, to, state), actor=actor, verdict=verdict)
            )
    return streams


def _agent_row() -> dict[str, int]:
    return {"claimed": 0, "implemented": 0, "integrated": 0, "expired": 0, "released": 0}


def day_figures(project_id: int, day: date) -> dict:
    """Every figure of one project and one UTC day, from the events of that day.

    Gate tasks (checkpoints) are not work: they count only in the checkpoint figures.
    """
    start, end = day_bounds(day)
    events = (
        Event.objects.filter(project_id=project_id, created_at__gte=start, created_at__lt=end)
        .exclude(task__task_class__in=GATE_CLASSES)
        .values_list(
            "task_id",
            "kind",
            "actor",
            KT("payload__to"),
            KT("payload__agent"),
            KT("payload__lease_token"),
        )
    )
    counts: Counter[str] = Counter()
    agents: dict[str, dict[str, int]] = defaultdict(_agent_row)
    integrated_ids: set[int] = set()
    reviewed_ids: set[int] = set()
    for task_id, kind, actor, to, lease_agent, lease_token in events.iterator(chunk_size=5000):
        counts[kind] += 1
        if kind == "task.claimed":
            agents[actor]["claimed"] += 1
        elif kind == "task.implemented":
            agents[actor]["implemented"] += 1
        elif kind == "lease.expired":
            agents[lease_agent or "?"]["expired"] += 1
        elif kind == "task.released" and lease_token is not None:
            # Released by its agent (a plan change releases without a token: not a failure).
            agents[actor]["released"] += 1
        elif kind == "review.recorded":
            reviewed_ids.add(task_id)
        if to == S.INTEGRATED and task_id is not None:
            integrated_ids.add(task_id)

    streams = task_streams(integrated_ids | reviewed_ids, before=end)
    flow = []
    for task_id in sorted(integrated_ids):
        times = compute.task_times(streams.get(task_id, []))
        if times is not None and times.integrated_at >= start:
            flow.append(times.row())
            agents[times.implementer or "?"]["integrated"] += 1
    review_latencies = [
        seconds
        for task_id in sorted(reviewed_ids)
        for at, seconds in compute.review_latencies(streams.get(task_id, []))
        if start <= at < end
    ]
    decided = Checkpoint.objects.filter(
        project_id=project_id, decided_at__gte=start, decided_at__lt=end
    )
    return {
        "created": counts["task.created"],
        "claimed": counts["task.claimed"],
        "implemented": counts["task.implemented"],
        "integrated": len(flow),
        "lease_expiries": counts["lease.expired"],
        "claim_conflicts": ClaimRefusal.objects.filter(
            project_id=project_id, created_at__gte=start, created_at__lt=end
        ).count(),
        "reviews": counts["review.recorded"],
        "integration": {
            "succeeded": counts["task.integrated"],
            "conflict": counts["task.conflict"],
            "failed_checks": counts["task.checks_failed"],
        },
        "checkpoints": {
            "decided": decided.count(),
            "within_sla": decided.filter(decided_at__lte=F("due_at")).count(),
        },
        "flow": flow,
        "review_latencies": review_latencies,
        "agents": {name: dict(row) for name, row in sorted(agents.items())},
    }


def live_state(project_id: int, now: datetime) -> dict:
    """The project as it stands: WIP and its age, blocked ratio, open counts."""
    by_state = dict(
        Task.objects.filter(project_id=project_id)
        .exclude(task_class__in=GATE_CLASSES)
        .values_list("state")
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    open_count = sum(by_state.get(s, 0) for s in OPEN_STATES)
    blocked = by_state.get(S.BLOCKED, 0)
    first_claims = (
        Event.objects.filter(
            project_id=project_id,
            kind="task.claimed",
            task__state__in=WIP_STATES,
            task__project_id=project_id,
        )
        .exclude(task__task_class__in=GATE_CLASSES)
        .values("task_id")
        .annotate(first=Min("created_at"))
        .values_list("first", flat=True)
    )
    ages = [(now - first).total_seconds() for first in first_claims]
    return {
        "by_state": {s: by_state.get(s, 0) for s in S.values},
        "total": sum(by_state.values()),
        "open": open_count,
        "wip": sum(by_state.get(s, 0) for s in WIP_STATES),
        "blocked": blocked,
        "blocked_ratio": compute.ratio(blocked, open_count),
        "wip_age_seconds": {**compute.distribution(ages), "max": max(ages) if ages else None},
        "checkpoints_open_overdue": Checkpoint.objects.filter(
            project_id=project_id, decided_at__isnull=True, due_at__lte=now
        ).count(),
    }


def days_figures(project_id: int, first: date, last: date, now: datetime) -> list[dict]:
    """Figures for each day from ``first`` to ``last`` (inclusive): the stored roll-up of a
    closed day, computed live for today and for any closed day not rolled up yet."""
    today = utc_today(now)
    stored = {
        r.day: r
        for r in DailyRollup.objects.filter(project_id=project_id, day__gte=first, day__lte=last)
    }
    out = []
    day = first
    while day <= last:
        rollup = stored.get(day)
        if rollup is not None and (rollup.final or day > today):
            figures, state = rollup.figures, rollup.state
        else:
            figures = day_figures(project_id, day) if day <= today else _empty_figures()
            state = rollup.state if rollup is not None else None
        out.append({"day": day.isoformat(), **figures, "state": state})
        day += timedelta(days=1)
    return out


def _empty_figures() -> dict:
    return {
        "created": 0,
        "claimed": 0,
        "implemented": 0,
        "integrated": 0,
        "lease_expiries": 0,
        "claim_conflicts": 0,
        "reviews": 0,
        "integration": {"succeeded": 0, "conflict": 0, "failed_checks": 0},
        "checkpoints": {"decided": 0, "within_sla": 0},
        "flow": [],
        "review_latencies": [],
        "agents": {},
    }


def window(first: date | None, last: date | None, now: datetime) -> tuple[date, date]:
    last = last or utc_today(now)
    first = first or last - timedelta(days=DEFAULT_WINDOW_DAYS - 1)
    return first, last


# --- what the API and the pages show --------------------------------------------------------
def _flow_summary(days: list[dict]) -> dict:
    rows = [row for d in days for row in d["flow"]]
    column = {name: i for i, name in enumerate(("lead", "cycle", *compute.PHASES))}

    def values(name):
        return [r[column[name]] for r in rows if r[column[name]] is not None]

    return {
        "lead_time_seconds": compute.distribution(values("lead")),
        "cycle_time_seconds": compute.distribution(values("cycle")),
        "phases_seconds": {p: compute.distribution(values(p)) for p in compute.PHASES},
    }


def _agents(days: list[dict]) -> list[dict]:
    totals: dict[str, Counter] = defaultdict(Counter)
    for d in days:
        for name, row in d["agents"].items():
            totals[name].update(row)
    out = []
    for name, row in sorted(totals.items()):
        failures = row["expired"] + row["released"]
        out.append(
            {
                "agent": name,
                **{k: row[k] for k in _agent_row()},
                "failure_rate": compute.ratio(failures, row["claimed"]),
            }
        )
    return out


def project_summary(actor: Actor, project_id: int, *, now: datetime | None = None, **kw) -> dict:
    """The summary: flow over the window, and the project's state now."""
    now = now or timezone.now()
    project = project_visible_or_404(actor, project_id)
    first, last = window(kw.get("first"), kw.get("last"), now)
    days = days_figures(project.pk, first, last, now)
    integration = Counter()
    for d in days:
        integration.update(d["integration"])
    attempts = sum(integration.values())
    decided = sum(d["checkpoints"]["decided"] for d in days)
    within = sum(d["checkpoints"]["within_sla"] for d in days)
    state = live_state(project.pk, now)
    integrated = [d["integrated"] for d in days]
    return {
        "project_id": project.pk,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "days": len(days),
        "generated_at": now.isoformat(),
        "throughput": {
            "integrated": sum(integrated),
            "per_day_mean": sum(integrated) / len(days) if days else None,
            "per_day_p50": compute.percentile(integrated, 50),
            "implemented": sum(d["implemented"] for d in days),
        },
        **_flow_summary(days),
        "wip": {
            "count": state["wip"],
            "age_seconds": state["wip_age_seconds"],
        },
        "blocked": {
            "count": state["blocked"],
            "open": state["open"],
            "ratio": state["blocked_ratio"],
        },
        "tasks_by_state": state["by_state"],
        "lease_expiries": {
            "count": sum(d["lease_expiries"] for d in days),
            "last_hour": lease_expiries_since(project.pk, now - timedelta(hours=1)),
        },
        "claim_conflicts": sum(d["claim_conflicts"] for d in days),
        "review_latency_seconds": compute.distribution(
            [s for d in days for s in d["review_latencies"]]
        ),
        "checkpoint_sla": {
            "decided": decided,
            "within_sla": within,
            "open_overdue": state["checkpoints_open_overdue"],
            "compliance": compute.ratio(within, decided + state["checkpoints_open_overdue"]),
        },
        "integration": {
            **{k: integration[k] for k in ("succeeded", "conflict", "failed_checks")},
            "attempts": attempts,
            "success_rate": compute.ratio(integration["succeeded"], attempts),
        },
        "agents": _agents(days),
    }


def lease_expiries_since(project_id: int, since: datetime) -> int:
    return Event.objects.filter(
        project_id=project_id, kind="lease.expired", created_at__gte=since
    ).count()


def daily_series(actor: Actor, project_id: int, *, first=None, last=None, now=None) -> dict:
    """One row per day: counts and that day's medians (the chart and CSV rows)."""
    now = now or timezone.now()
    project = project_visible_or_404(actor, project_id)
    first, last = window(first, last, now)
    rows = []
    for d in days_figures(project.pk, first, last, now):
        flow = _flow_summary([d])
        state = d["state"] or {}
        rows.append(
            {
                "day": d["day"],
                "integrated": d["integrated"],
                "implemented": d["implemented"],
                "claimed": d["claimed"],
                "created": d["created"],
                "lease_expiries": d["lease_expiries"],
                "claim_conflicts": d["claim_conflicts"],
                "reviews": d["reviews"],
                "integration_attempts": sum(d["integration"].values()),
                "integration_succeeded": d["integration"]["succeeded"],
                "lead_time_p50_seconds": flow["lead_time_seconds"]["p50"],
                "cycle_time_p50_seconds": flow["cycle_time_seconds"]["p50"],
                "review_latency_p50_seconds": compute.percentile(d["review_latencies"], 50),
                "wip": state.get("wip"),
                "blocked": state.get("blocked"),
                "open": state.get("open"),
            }
        )
    return {
        "project_id": project.pk,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "days": rows,
    }


def agent_figures(actor: Actor, project_id: int, *, first=None, last=None, now=None) -> dict:
    now = now or timezone.now()
    project = project_visible_or_404(actor, project_id)
    first, last = window(first, last, now)
    return {
        "project_id": project.pk,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "agents": _agents(days_figures(project.pk, first, last, now)),
    }


FORECAST_HISTORY_DAYS = 30


def milestone_forecasts(
    actor: Actor, project_id: int, *, now=None, rng: random.Random | None = None, runs=1000
) -> dict:
    """A forecast per milestone from the project's daily throughput of the last closed days
    (not before the project existed) and each milestone's unfinished tasks."""
    now = now or timezone.now()
    project = project_visible_or_404(actor, project_id)
    today = utc_today(now)
    first_day = max(today - timedelta(days=FORECAST_HISTORY_DAYS), utc_today(project.created_at))
    history_days = days_figures(project.pk, first_day, today - timedelta(days=1), now)
    throughput = [d["integrated"] for d in history_days]
    remaining = dict(
        Task.objects.filter(project=project, milestone__isnull=False)
        .exclude(task_class__in=GATE_CLASSES)
        .exclude(state__in=[S.INTEGRATED, S.CANCELLED, S.ABANDONED])
        .values_list("milestone_id")
        .annotate(n=Count("id"))
        .values_list("milestone_id", "n")
    )
    rng = rng or random.Random()
    milestones = []
    for milestone in Milestone.objects.filter(project=project).order_by("position", "id"):
        milestones.append(
            {
                "milestone_id": milestone.pk,
                "name": milestone.name,
                **compute.forecast(
                    remaining=remaining.get(milestone.pk, 0),
                    daily_throughput=throughput,
                    today=today,
                    runs=runs,
                    rng=rng,
                ),
            }
        )
    return {
        "project_id": project.pk,
        "history_from": first_day.isoformat(),
        "history_days": len(throughput),
        "throughput_mean": sum(throughput) / len(throughput) if throughput else None,
        "milestones": milestones,
    }


def alerts_recent(
    actor: Actor, project_id: int, *, limit: int = 50, since: datetime | None = None
) -> dict:
    project = project_visible_or_404(actor, project_id)
    events = Event.objects.filter(project=project, kind=ALERT_KIND)
    if since is not None:
        events = events.filter(created_at__gte=since)
    events = events.order_by("-id")[:limit]
    return {
        "project_id": project.pk,
        "alerts": [
            {"event_id": e.pk, "created_at": e.created_at.isoformat(), **e.payload} for e in events
        ],
    }


def alert_settings_for(project_id: int) -> AlertSettings:
    """The project's thresholds, or the defaults (unsaved) when it has none."""
    return AlertSettings.objects.filter(project_id=project_id).first() or AlertSettings(
        project_id=project_id
    )
