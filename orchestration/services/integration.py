"""The integration queue: approved work is merged one attempt at a time, in order, per project.

An operator (or an integrator process with an operator key) enqueues an approved task, takes
the next attempt, merges, and records the result: succeeded integrates the task (its
``integrated`` dependents unlock), conflict puts it in ``conflict`` for an agent to resolve,
failed checks send it back to work.
"""

from datetime import datetime

from django.db import transaction

from governance.actors import Actor, Role
from governance.selectors import current_approval
from orchestration.errors import (
    ApprovalRequired,
    IntegrationNotRunning,
    IntegrationQueued,
    InvalidTransition,
)
from orchestration.locks import lock_task
from orchestration.models import (
    INTEGRATION_RESULTS,
    Artifact,
    IntegrationAttempt,
    IntegrationState,
    TaskState,
)
from orchestration.selectors import object_visible_or_404, project_visible_or_404
from orchestration.services.events import event_record
from orchestration.services.lifecycle import pool_state, transition_apply, utcnow
from tascade.errors import InvalidInput
from tascade.transactions import retry_on_conflict


@retry_on_conflict
def integration_enqueue(
    *, actor: Actor, task_id: int, now: datetime | None = None
) -> IntegrationAttempt:
    actor.require(Role.OPERATOR)
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        if task.state != TaskState.IMPLEMENTED:
            raise InvalidTransition(
                "Only implemented work can be integrated.", task_id=task.pk, state=task.state
            )
        if task.delegated_at is not None:
            raise InvalidTransition(
                "A delegated task is integrated through its children.",
                task_id=task.pk,
                state=task.state,
            )
        if current_approval(task) is None:
            raise ApprovalRequired(task_id=task.pk, implemented_by=task.implemented_by)
        if IntegrationAttempt.objects.filter(
            task=task, state__in=[IntegrationState.QUEUED, IntegrationState.RUNNING]
        ).exists():
            raise IntegrationQueued(task_id=task.pk)
        artifact = (
            Artifact.objects.filter(lease_id=task.implementation_lease_id).order_by("-id").first()
            if task.implementation_lease_id
            else None
        )
        if artifact is None:
            raise InvalidTransition(
                "The current implementation has no artifact to merge (it was forced by an "
                "override); merge it by hand or send it back to work.",
                task_id=task.pk,
            )
        attempt = IntegrationAttempt.objects.create(
            project_id=task.project_id, task=task, artifact=artifact, enqueued_by=actor.name
        )
        event_record(
            project=task.project_id,
            task=task,
            kind="integration.queued",
            actor=actor.name,
            ref=task.ref,
            attempt_id=attempt.pk,
            branch=artifact.branch,
            commit_sha=artifact.commit_sha,
        )
    return attempt


@retry_on_conflict
def integration_take_next(
    *, actor: Actor, project_id: int, now: datetime | None = None
) -> IntegrationAttempt | None:
    """Start the oldest queued attempt, or None while one runs (merges go one at a time)."""
    actor.require(Role.OPERATOR)
    project = project_visible_or_404(actor, project_id)
    now = now or utcnow()
    with transaction.atomic():
        if IntegrationAttempt.objects.filter(
            project=project, state=IntegrationState.RUNNING
        ).exists():
            return None
        # The head of the queue is waited for, never skipped: skipping it would let a rival
        # start the second attempt first. After the wait the head is no longer queued, the
        # rival moves on to the next row, and the one-running index turns it away.
        attempt = (
            IntegrationAttempt.objects.filter(project=project, state=IntegrationState.QUEUED)
            .select_related("task")
            .order_by("id")
            .select_for_update(no_key=True, of=("self",))
            .first()
        )
        if attempt is None:
            return None
        attempt.state = IntegrationState.RUNNING
        attempt.taken_by = actor.name
        attempt.started_at = now
        # The partial unique index refuses a second running attempt in the project: a
        # concurrent taker loses with an IntegrityError, is retried, and then sees this one.
        attempt.save(update_fields=["state", "taken_by", "started_at"])
        event_record(
            project=project,
            task=attempt.task,
            kind="integration.started",
            actor=actor.name,
            ref=attempt.task.ref,
            attempt_id=attempt.pk,
        )
    return attempt


@retry_on_conflict
def integration_record_result(
    *,
    actor: Actor,
    attempt_id: int,
    result: str,
    base_sha: str = "",
    head_sha: str = "",
    diagnostics: str = "",
    now: datetime | None = None,
) -> IntegrationAttempt:
    actor.require(Role.OPERATOR)
    if result not in INTEGRATION_RESULTS:
        raise InvalidInput(
            "Unknown result.", fields={"result": [f"One of: {', '.join(INTEGRATION_RESULTS)}."]}
        )
    now = now or utcnow()
    visible = object_visible_or_404(IntegrationAttempt, actor, attempt_id)
    with transaction.atomic():
        task = lock_task(visible.task_id, actor=actor)
        attempt = IntegrationAttempt.objects.select_for_update(no_key=True).get(pk=attempt_id)
        if attempt.state != IntegrationState.RUNNING or (
            attempt.taken_by != actor.name and not actor.has_role(Role.ADMIN)
        ):
            raise IntegrationNotRunning(
                attempt_id=attempt.pk, state=attempt.state, taken_by=attempt.taken_by
            )
        if result == IntegrationState.SUCCEEDED and current_approval(task) is None:
            raise ApprovalRequired(task_id=task.pk)
        attempt.state = result
        attempt.base_sha, attempt.head_sha = base_sha, head_sha
        attempt.diagnostics = diagnostics
        attempt.finished_at = now
        attempt.save(update_fields=["state", "base_sha", "head_sha", "diagnostics", "finished_at"])
        payload = {"attempt_id": attempt.pk, "base_sha": base_sha, "head_sha": head_sha}
        if result == IntegrationState.SUCCEEDED:
            transition_apply(
                task,
                task.integrate,
                actor=actor.name,
                kind="task.integrated",
                now=now,
                reason="",
                **payload,
            )
        elif result == IntegrationState.CONFLICT:
            transition_apply(
                task,
                task.mark_conflict,
                actor=actor.name,
                kind="task.conflict",
                now=now,
                reason=diagnostics or "merge conflict",
                **payload,
            )
        else:
            transition_apply(
                task,
                task.rework,
                pool_state(task),
                actor=actor.name,
                kind="task.checks_failed",
                now=now,
                reason=diagnostics or "integration checks failed",
                **payload,
            )
    return attempt
