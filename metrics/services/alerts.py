"""Alerts: thresholds and sudden changes, each firing recorded as a ``metric.alert`` event.

An alert is an event of the project, so it is in the audit trail, reaches the webhooks that
deliver events, and shows on the metrics page. The same rule does not fire again within the
project's dedupe window; evaluations of one project are serialised (a transaction-scoped
advisory lock), so two concurrent runs cannot both fire it.
"""

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from metrics import compute
from metrics.selectors import (
    ALERT_KIND,
    alert_settings_for,
    days_figures,
    lease_expiries_since,
    live_state,
    utc_today,
)
from orchestration.models import Event, Project
from orchestration.services.events import event_record
from tascade.db_locks import lock_key


def _serialise_evaluations(project_id: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [lock_key(f"metrics.alerts:{project_id}")]
            )


def alert_candidates(project_id: int, now: datetime) -> list[dict]:
    """The rules that hold now, each as the payload its event would carry."""
    settings = alert_settings_for(project_id)
    found = []
    state = live_state(project_id, now)
    ratio = state["blocked_ratio"]
    if ratio is not None and ratio > settings.blocked_ratio_max:
        found.append(
            {
                "rule": "blocked_ratio",
                "value": round(ratio, 4),
                "threshold": settings.blocked_ratio_max,
                "message": f"{state['blocked']} of {state['open']} open tasks are blocked.",
            }
        )
    expiries = lease_expiries_since(project_id, now - timedelta(hours=1))
    if expiries > settings.lease_expiries_per_hour_max:
        found.append(
            {
                "rule": "lease_expiries_per_hour",
                "value": expiries,
                "threshold": settings.lease_expiries_per_hour_max,
                "message": f"{expiries} leases expired in the last hour.",
            }
        )
    oldest = state["wip_age_seconds"]["max"]
    if oldest is not None and oldest / 3600 > settings.wip_age_hours_max:
        found.append(
            {
                "rule": "wip_age",
                "value": round(oldest / 3600, 2),
                "threshold": settings.wip_age_hours_max,
                "message": f"A task has been in progress for {oldest / 3600:.1f} hours.",
            }
        )
    # Sudden changes: the last closed day against the trailing days before it.
    yesterday = utc_today(now) - timedelta(days=1)
    first = yesterday - timedelta(days=settings.trailing_days)
    days = days_figures(project_id, first, yesterday, now)
    if len(days) > 1:
        *trailing, last = days
        for figure, directions in (
            ("integrated", ("spike", "drop")),
            ("lease_expiries", ("spike",)),
        ):
            change = compute.sudden_change(
                last[figure],
                [d[figure] for d in trailing],
                factor=settings.change_factor,
                min_baseline=settings.min_baseline,
            )
            if change in directions:
                baseline = sum(d[figure] for d in trailing) / len(trailing)
                found.append(
                    {
                        "rule": f"{figure}_{change}",
                        "value": last[figure],
                        "threshold": round(baseline, 4),
                        "day": last["day"],
                        "message": (
                            f"{figure.replace('_', ' ')} on {last['day']}: {last[figure]}, "
                            f"against a trailing average of {baseline:.1f}/day."
                        ),
                    }
                )
    return found


def alerts_evaluate(*, project_id: int, now: datetime | None = None) -> list[Event]:
    """Record a ``metric.alert`` event for every rule that holds and has not fired within
    the dedupe window. Returns the events recorded."""
    now = now or timezone.now()
    settings = alert_settings_for(project_id)
    if not settings.enabled:
        return []
    fired = []
    with transaction.atomic():
        _serialise_evaluations(project_id)
        since = now - timedelta(minutes=settings.dedupe_minutes)
        recent = set(
            Event.objects.filter(
                project_id=project_id, kind=ALERT_KIND, created_at__gte=since
            ).values_list("payload__rule", flat=True)
        )
        for payload in alert_candidates(project_id, now):
            if payload["rule"] in recent:
                continue
            fired.append(
                event_record(project=project_id, kind=ALERT_KIND, actor="system", **payload)
            )
    return fired


def alerts_evaluate_all(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return sum(
        len(alerts_evaluate(project_id=pk, now=now))
        for pk in Project.objects.order_by("pk").values_list("pk", flat=True)
    )
