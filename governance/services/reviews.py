"""Reviews: a reviewer's verdict on an implemented task, never by its implementer.

Approve leaves the task implemented and integrable; request changes sends it back to work
with the reviewer's note; reject gives the work up (abandoned; an override can reopen it).
"""

from datetime import datetime

from django.db import transaction

from governance.actors import Actor, Role
from governance.errors import SelfReview
from governance.models import Review, Verdict
from orchestration.errors import InvalidTransition
from orchestration.locks import lock_task
from orchestration.models import TaskState
from orchestration.services.events import event_record
from orchestration.services.lifecycle import pool_state, transition_apply, utcnow
from tascade.errors import InvalidInput
from tascade.transactions import retry_on_conflict


@retry_on_conflict
def review_record(
    *,
    actor: Actor,
    task_id: int,
    verdict: str,
    rationale: str,
    now: datetime | None = None,
) -> Review:
    actor.require(Role.REVIEWER)
    rationale = (rationale or "").strip()
    if not rationale:
        raise InvalidInput(
            "A review needs a rationale.", fields={"rationale": ["This field is required."]}
        )
    if verdict not in Verdict.values:
        raise InvalidInput(
            "Unknown verdict.", fields={"verdict": [f"One of: {', '.join(Verdict.values)}."]}
        )
    now = now or utcnow()
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        if task.state != TaskState.IMPLEMENTED:
            raise InvalidTransition(
                "Only implemented work can be reviewed.", task_id=task.pk, state=task.state
            )
        if task.delegated_at is not None:
            raise InvalidTransition(
                "A delegated task is reviewed through its children.",
                task_id=task.pk,
                state=task.state,
            )
        # Identity comes from authentication: the actor is who the key or login says.
        if actor.name == task.implemented_by:
            raise SelfReview(task_id=task.pk, implemented_by=task.implemented_by)
        review = review_apply(
            task, reviewer=actor.name, verdict=verdict, rationale=rationale, now=now
        )
    return review


def review_apply(
    task, *, reviewer: str, verdict: str, rationale: str, now: datetime, **context
) -> Review:
    """Record a verdict on a locked, implemented task and do what it means to the task.

    The callers have checked the rules (role, state, never the implementer); this is the one
    place a verdict takes effect, for a single review and for a gate decision's batch alike.
    """
    review = Review.objects.create(
        project_id=task.project_id,
        task=task,
        implementation=task.implementation_count,
        implemented_by=task.implemented_by,
        reviewer=reviewer,
        verdict=verdict,
        rationale=rationale,
    )
    event_record(
        project=task.project_id,
        task=task,
        kind="review.recorded",
        actor=reviewer,
        ref=task.ref,
        review_id=review.pk,
        verdict=verdict,
        implementation=review.implementation,
        rationale=rationale,
        **context,
    )
    if verdict == Verdict.CHANGES_REQUESTED:
        transition_apply(
            task,
            task.rework,
            pool_state(task),
            actor=reviewer,
            kind="task.changes_requested",
            now=now,
            reason=f"changes requested by {reviewer}: {rationale}",
            review_id=review.pk,
        )
    elif verdict == Verdict.REJECTED:
        transition_apply(
            task,
            task.abandon,
            actor=reviewer,
            kind="task.rejected",
            now=now,
            reason=f"rejected by {reviewer}: {rationale}",
            review_id=review.pk,
        )
    return review
