"""Celery tasks of governance. Thin: each calls one service."""

from celery import shared_task
from django.conf import settings

from governance.services.gates import gates_evaluate
from tascade.db_locks import exclusively

EVALUATION_LOCK = "governance.evaluate_gates"


@shared_task(
    name="governance.evaluate_gates",
    soft_time_limit=settings.TASCADE["SWEEP_SOFT_TIME_LIMIT"],
    time_limit=settings.TASCADE["SWEEP_SOFT_TIME_LIMIT"] + 10,
)
def evaluate_gates() -> dict:
    """Create the checkpoints the gate rules call for and flag SLA breaches, one run at a time.

    Safe to run any number of times: a checkpoint is unique per rule and occurrence.
    """
    with exclusively(EVALUATION_LOCK) as alone:
        if not alone:
            return {"created": [], "skipped": "another evaluation is running"}
        return {"created": [c.pk for c in gates_evaluate()]}
