"""Celery tasks of metrics. Thin: each calls services."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from metrics.services.alerts import alerts_evaluate_all
from metrics.services.rollups import rollups_refresh
from tascade.db_locks import exclusively

REFRESH_LOCK = "metrics.refresh"


@shared_task(
    name="metrics.refresh",
    soft_time_limit=settings.TASCADE["METRICS_SOFT_TIME_LIMIT"],
    time_limit=settings.TASCADE["METRICS_SOFT_TIME_LIMIT"] + 10,
)
def refresh_metrics() -> dict:
    """Roll up closed days and today's partial, then evaluate the alert rules.

    One run at a time; each roll-up row and each project's alerts commit on their own, so a
    run stopped by its time limit keeps what it did and the next one carries on.
    """
    with exclusively(REFRESH_LOCK) as alone:
        if not alone:
            return {"rollups": 0, "alerts": 0, "skipped": "another refresh is running"}
        try:
            rollups = rollups_refresh()
            return {"rollups": rollups, "alerts": alerts_evaluate_all()}
        except SoftTimeLimitExceeded:
            return {"rollups": None, "stopped": "soft time limit; the next run carries on"}
