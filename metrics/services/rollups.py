"""Daily roll-ups: each project's figures per UTC day, stored so pages stay fast.

Recomputing is idempotent (one row per project and day, replaced whole), so a repeated or
concurrent run changes nothing it should not. A closed day is computed once after it ends
and marked final; today's row is partial and refreshed on every run, together with a
snapshot of the live state (WIP, blocked, open), which the row keeps once the day closes.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from metrics.models import DailyRollup
from metrics.selectors import day_figures, live_state, utc_today
from orchestration.models import Project
from tascade.transactions import retry_on_conflict

# A run backfills at most this many closed days per project; the next run carries on.
BACKFILL_DAYS_PER_RUN = 62


@retry_on_conflict
def rollup_day(*, project_id: int, day, now: datetime | None = None) -> DailyRollup:
    """(Re)compute one project's figures for one day, from the events."""
    now = now or timezone.now()
    final = day < utc_today(now)
    figures = day_figures(project_id, day)
    defaults = {"figures": figures, "final": final, "computed_at": now}
    if not final:
        state = live_state(project_id, now)
        defaults["state"] = {
            key: state[key] for key in ("wip", "blocked", "open", "blocked_ratio", "total")
        }
    with transaction.atomic():
        rollup, _ = DailyRollup.objects.update_or_create(
            project_id=project_id, day=day, defaults=defaults
        )
    return rollup


def rollups_refresh(*, now: datetime | None = None, project_ids=None) -> int:
    """Close every day not yet final (from the project's first day or its last final day)
    up to yesterday, then refresh today's partial row. Returns the rows written."""
    now = now or timezone.now()
    today = utc_today(now)
    projects = Project.objects.all()
    if project_ids is not None:
        projects = projects.filter(pk__in=project_ids)
    written = 0
    for project in projects.only("pk", "created_at").order_by("pk"):
        last_final = (
            DailyRollup.objects.filter(project=project, final=True)
            .order_by("-day")
            .values_list("day", flat=True)
            .first()
        )
        day = last_final + timedelta(days=1) if last_final else utc_today(project.created_at)
        day = max(day, today - timedelta(days=BACKFILL_DAYS_PER_RUN))
        while day < today:
            rollup_day(project_id=project.pk, day=day, now=now)
            written += 1
            day += timedelta(days=1)
        rollup_day(project_id=project.pk, day=today, now=now)
        written += 1
    return written
