"""Celery tasks of orchestration. Thin: each calls one service."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from orchestration.services import webhooks
from orchestration.services.sweep import holds_expire_due
from tascade.db_locks import exclusively

SWEEP_LOCK = "orchestration.sweep_expired_holds"
WEBHOOKS_LOCK = "orchestration.webhooks_dispatch"


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


@shared_task(name="orchestration.webhooks_fan_out")
def webhooks_fan_out(project_id: int | None = None) -> dict:
    """Make (and queue) the deliveries for a project's new events; queued when they commit."""
    return {"deliveries": webhooks.webhook_deliveries_fan_out(project_id=project_id)}


@shared_task(
    name="orchestration.webhooks_dispatch",
    soft_time_limit=settings.TASCADE["SWEEP_SOFT_TIME_LIMIT"],
    time_limit=settings.TASCADE["SWEEP_SOFT_TIME_LIMIT"] + 10,
)
def webhooks_dispatch() -> dict:
    """Beat's safety net: fan out whatever is left, queue every delivery that is due."""
    with exclusively(WEBHOOKS_LOCK) as alone:
        if not alone:
            return {"skipped": "another dispatch is running"}
        return {
            "deliveries": webhooks.webhook_deliveries_fan_out(),
            "queued": webhooks.webhook_deliveries_queue_due(),
        }


@shared_task(
    name="orchestration.webhook_deliver",
    soft_time_limit=settings.TASCADE["WEBHOOK_CONNECT_TIMEOUT_SECONDS"]
    + 2 * settings.TASCADE["WEBHOOK_READ_TIMEOUT_SECONDS"]
    + 20,
)
def webhook_deliver(delivery_id: int) -> dict:
    """Send one delivery once (retries are queued by the service with their backoff)."""
    delivery = webhooks.webhook_delivery_attempt(delivery_id=delivery_id)
    if delivery is None:
        return {"delivery": delivery_id, "status": "skipped"}
    return {"delivery": delivery_id, "status": delivery.status, "attempts": delivery.attempts}
