"""Celery tasks of orchestration. Thin: each calls one service."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from orchestration.services.sweep import holds_expire_due
from tascade.db_locks import exclusively

SWEEP_LOCK = "orchestration.sweep_expired_holds"


@shared_task(
    name="orchestration.sweep_expired_holds",
    soft_time_limit=settings.TASCADE["SWEEP_SOFT_TIME_LIMIT"],
    time_limit=settings.TASCADE["SWEEP_SOFT_TIME_LIMIT"] + 10,
)
def sweep_expired_holds(limit: int = 1000) -> dict:
    """Return lapsed leases and reservations to the pool, one sweep at a time.

    Each expiry commits on its own, so a sweep stopped by its time limit keeps what it did
    and the next one carries on. The answer is stored as the task result for operators.
    """
    with exclusively(SWEEP_LOCK) as alone:
        if not alone:
            return {"expired": 0, "skipped": "another sweep is running"}
        try:
            return {"expired": holds_expire_due(limit=limit)}
        except SoftTimeLimitExceeded:
            return {"expired": None, "stopped": "soft time limit; the next sweep carries on"}
