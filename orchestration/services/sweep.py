"""Making expiry visible: return lapsed leases and reservations to the pool.

Correctness never depends on this running (every read of a hold checks expiry itself);
the sweep only makes expiry show up in the state and the event log without waiting for a read.
"""

from datetime import datetime

from django.db import transaction

from orchestration.models import Task
from orchestration.services.lifecycle import hold_expire_if_due, utcnow
from tascade.transactions import retry_on_conflict

# How many lapsed holds a read of the pool (claim-next, the ready list) expires before it
# looks; the periodic sweep does the rest.
EXPIRE_ON_READ_LIMIT = 20


@retry_on_conflict
def holds_expire_due(
    *, project_id: int | None = None, now: datetime | None = None, limit: int = 100
) -> int:
    """Expire up to ``limit`` lapsed holds; each in its own short transaction. Returns a count.

    Rows another transaction has locked are skipped: that transaction is already reading
    (and so expiring) the hold, or renewing it.
    """
    now = now or utcnow()
    due = Task.objects.filter(hold_expires_at__lte=now).order_by("hold_expires_at")
    if project_id is not None:
        due = due.filter(project_id=project_id)
    expired = 0
    for task_id in list(due.values_list("pk", flat=True)[:limit]):
        with transaction.atomic():
            task = (
                Task.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
                .filter(pk=task_id)
                .first()
            )
            if task is not None and hold_expire_if_due(task, now=now):
                expired += 1
    return expired
