"""The operator's side: assignments (reservations), block/unblock, cancel, abandon, override.

An agent key can never force a transition: all of these need the operator role, and an
override also needs a rationale, recorded in its event.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django_fsm import can_proceed

from governance.actors import Actor, Role
from orchestration.errors import DependenciesUnmet, InvalidTransition, OverrideNotAllowed
from orchestration.locks import lock_task
from orchestration.models import (
    LEASED_STATES,
    OVERRIDE_TARGETS,
    Reservation,
    ReservationStatus,
    Task,
    TaskState,
)
from orchestration.services.events import event_record
from orchestration.services.lifecycle import (
    delegation_level,
    hold_expire_if_due,
    holds_end,
    pool_state,
    reservation_end,
    transition_apply,
    utcnow,
)
from tascade.errors import InvalidInput
from tascade.transactions import retry_on_conflict

S = TaskState


def _require_text(value: str, field: str) -> str:
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{field} is required.", fields={field: ["This field is required."]})
    return value


@retry_on_conflict
def task_assign(
    *,
    actor: Actor,
    task_id: int,
    assignee: str,
    ttl_seconds: int | None = None,
    now: datetime | None = None,
) -> Reservation:
    """Reserve a waiting task for one agent: only it may claim the task until the TTL ends.

    A backlog task may be assigned too; it becomes ``reserved`` instead of ``ready`` the
    moment its prerequisites are met. Assigning again replaces the previous reservation.
    """
    actor.require(Role.OPERATOR)
    assignee = _require_text(assignee, "agent")
    now = now or utcnow()
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        hold_expire_if_due(task, now=now, actor=actor.name)
        if task.state not in (S.BACKLOG, S.READY, S.RESERVED):
            raise InvalidTransition(
                "Only a task nobody has claimed yet can be assigned.",
                task_id=task.pk,
                state=task.state,
            )
        previous = reservation_end(
            task, status=ReservationStatus.RELEASED, reason=f"reassigned to {assignee}", now=now
        )
        ttl = ttl_seconds or task.project.reservation_ttl_seconds
        reservation = Reservation.objects.create(
            project_id=task.project_id,
            task=task,
            assignee=assignee,
            expires_at=now + timedelta(seconds=ttl),
            created_by=actor.name,
        )
        task.holder = assignee
        task.hold_expires_at = reservation.expires_at
        payload = {
            "assignee": assignee,
            "expires_at": reservation.expires_at.isoformat(),
            "replaced": previous.assignee if previous else None,
        }
        if task.state == S.READY:
            transition_apply(
                task, task.reserve, actor=actor.name, kind="task.assigned", now=now, **payload
            )
        else:
            task.save(update_fields=["holder", "hold_expires_at", "updated_at"])
            event_record(
                project=task.project_id,
                task=task,
                kind="task.assigned",
                actor=actor.name,
                ref=task.ref,
                **payload,
            )
    return reservation


@retry_on_conflict
def task_unassign(*, actor: Actor, task_id: int, now: datetime | None = None) -> Task:
    actor.require(Role.OPERATOR)
    now = now or utcnow()
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        reservation = reservation_end(
            task, status=ReservationStatus.RELEASED, reason="unassigned", now=now
        )
        if reservation is None:
            raise InvalidTransition("The task has no active assignment.", task_id=task.pk)
        if task.state == S.RESERVED:
            transition_apply(
                task,
                task.drop_reservation,
                pool_state(task),
                actor=actor.name,
                kind="task.unassigned",
                now=now,
                assignee=reservation.assignee,
            )
        else:
            task.save(update_fields=["holder", "hold_expires_at", "updated_at"])
            event_record(
                project=task.project_id,
                task=task,
                kind="task.unassigned",
                actor=actor.name,
                ref=task.ref,
                assignee=reservation.assignee,
            )
    return task


def _end_holds_and_apply(
    actor: Actor, task_id: int, transition_name: str, kind: str, reason: str, now: datetime
) -> Task:
    """Shared by block/cancel/abandon: revoke any lease or reservation, then transition."""
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        transition = getattr(task, transition_name)
        if not _can(transition):
            raise InvalidTransition(task_id=task.pk, state=task.state, action=transition_name)
        holds_end(task, reason=f"{kind}: {reason}", now=now, actor=actor.name)
        transition_apply(task, transition, actor=actor.name, kind=kind, now=now, reason=reason)
    return task


def _can(bound_transition) -> bool:
    return can_proceed(bound_transition)


@retry_on_conflict
def task_block(*, actor: Actor, task_id: int, reason: str, now: datetime | None = None) -> Task:
    actor.require(Role.OPERATOR)
    reason = _require_text(reason, "reason")
    return _end_holds_and_apply(actor, task_id, "block", "task.blocked", reason, now or utcnow())


@retry_on_conflict
def task_cancel(*, actor: Actor, task_id: int, reason: str, now: datetime | None = None) -> Task:
    actor.require(Role.OPERATOR)
    reason = _require_text(reason, "reason")
    return _end_holds_and_apply(actor, task_id, "cancel", "task.cancelled", reason, now or utcnow())


@retry_on_conflict
def task_abandon(*, actor: Actor, task_id: int, reason: str, now: datetime | None = None) -> Task:
    actor.require(Role.OPERATOR)
    reason = _require_text(reason, "reason")
    return _end_holds_and_apply(
        actor, task_id, "abandon", "task.abandoned", reason, now or utcnow()
    )


@retry_on_conflict
def task_unblock(*, actor: Actor, task_id: int, reason: str = "", now: datetime | None = None):
    actor.require(Role.OPERATOR)
    now = now or utcnow()
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        if task.state != S.BLOCKED:
            raise InvalidTransition(task_id=task.pk, state=task.state, action="unblock")
        # A task blocked for exhausting its attempts gets a fresh allowance.
        task.attempt_count = 0
        transition_apply(
            task,
            task.unblock,
            delegation_level(task) if task.delegated_at else pool_state(task),
            actor=actor.name,
            kind="task.unblocked",
            now=now,
            reason=reason,
            extra_fields=("attempt_count",),
        )
    return task


@retry_on_conflict
def task_override(
    *,
    actor: Actor,
    task_id: int,
    to_state: str,
    rationale: str,
    now: datetime | None = None,
) -> Task:
    """Force a task's state, with a rationale recorded as an override.

    ``backlog`` and ``ready`` both mean "back to the pool": the task lands where its
    prerequisites put it, and asking for ``ready`` with unmet prerequisites is refused.
    ``integrated`` is never a target: it needs a review by someone else.
    """
    actor.require(Role.OPERATOR)
    rationale = _require_text(rationale, "rationale")
    if to_state not in OVERRIDE_TARGETS:
        raise OverrideNotAllowed(
            f"Override targets are: {', '.join(OVERRIDE_TARGETS)}.",
            to_state=to_state,
            allowed=list(OVERRIDE_TARGETS),
        )
    now = now or utcnow()
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        if to_state == S.READY and task.unmet_prerequisites > 0:
            raise DependenciesUnmet(task_id=task.pk, unmet_prerequisites=task.unmet_prerequisites)
        if not _can(task.override):
            raise OverrideNotAllowed(
                f"A task in state {task.state} is final.", task_id=task.pk, state=task.state
            )
        lease_holder = task.holder if task.state in LEASED_STATES else ""
        holds_end(task, reason=f"override: {rationale}", now=now, actor=actor.name)
        target = pool_state(task) if to_state in (S.BACKLOG, S.READY) else to_state
        # An operator who forces a delegated task's state takes it over from its children.
        task.delegated_at = None
        if target == S.IMPLEMENTED:
            # Whoever made it implemented may not review it: the agent whose work it was,
            # or, when nobody held it, the operator who forced it.
            task.implemented_by = lease_holder or actor.name
            task.implementation_lease = None  # forced: no artifact belongs to it
        transition_apply(
            task,
            task.override,
            target,
            actor=actor.name,
            kind="task.overridden",
            now=now,
            reason=rationale,
            extra_fields=("implemented_by", "implementation_lease", "delegated_at"),
            override=True,
            requested_state=to_state,
        )
    return task
