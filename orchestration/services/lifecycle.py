"""The building blocks every task-changing service shares.

Callers hold the task's row lock (``orchestration.locks``) and an open transaction. These
helpers apply one transition, end the holds it invalidates, record the event, and keep the
dependents' readiness in step, all inside that transaction.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from orchestration.locks import lock_tasks
from orchestration.models import (
    LEASED_STATES,
    SATISFYING_STATES,
    Dependency,
    Event,
    IntegrationAttempt,
    IntegrationState,
    Lease,
    LeaseStatus,
    Reservation,
    ReservationStatus,
    Task,
    TaskState,
    UnlockOn,
)
from orchestration.services.events import (
    event_build,
    event_record,
    events_save,
    state_change_payload,
)

S = TaskState


def pool_state(task: Task) -> str:
    """Where a task waits when nobody holds it: backlog until its prerequisites are met."""
    if task.unmet_prerequisites > 0:
        return S.BACKLOG
    return S.RESERVED if task.holder else S.READY


def live_reservation(task: Task) -> Reservation | None:
    return Reservation.objects.filter(task=task, status=ReservationStatus.ACTIVE).first()


def live_lease(task: Task) -> Lease | None:
    return Lease.objects.filter(task=task, status=LeaseStatus.ACTIVE).first()


def lease_end(
    task: Task, *, status: str, reason: str, now: datetime, lease: Lease | None = None
) -> Lease | None:
    """End the task's active lease (if any; pass it if already read) and clear the hold."""
    lease = lease or live_lease(task)
    if lease is not None:
        lease.status = status
        lease.ended_at = now
        lease.end_reason = reason
        lease.save(update_fields=["status", "ended_at", "end_reason"])
    task.holder = ""
    task.hold_expires_at = None
    return lease


def reservation_end(task: Task, *, status: str, reason: str, now: datetime) -> Reservation | None:
    reservation = live_reservation(task)
    if reservation is not None:
        reservation.status = status
        reservation.ended_at = now
        reservation.end_reason = reason
        reservation.save(update_fields=["status", "ended_at", "end_reason"])
    task.holder = ""
    task.hold_expires_at = None
    return reservation


def holds_end(task: Task, *, reason: str, now: datetime, actor: str) -> None:
    """Revoke whatever holds the task (lease or reservation), with an event for each."""
    lease = lease_end(task, status=LeaseStatus.REVOKED, reason=reason, now=now)
    if lease is not None:
        event_record(
            project=task.project_id,
            task=task,
            kind="lease.revoked",
            actor=actor,
            ref=task.ref,
            agent=lease.agent,
            lease_token=lease.token,
            reason=reason,
        )
    reservation = reservation_end(task, status=ReservationStatus.RELEASED, reason=reason, now=now)
    if reservation is not None:
        event_record(
            project=task.project_id,
            task=task,
            kind="reservation.released",
            actor=actor,
            ref=task.ref,
            assignee=reservation.assignee,
            reason=reason,
        )


def transition_apply(
    task: Task,
    transition: Callable[..., Any],
    *args: Any,
    actor: str,
    kind: str,
    now: datetime,
    reason: str | None = None,
    extra_fields: tuple[str, ...] = (),
    **payload: Any,
) -> Event:
    """Run one FSM transition on a locked task, save it, record it, update its dependents."""
    old_state = task.state
    transition(*args)
    task.state_changed_at = now
    if reason is not None:
        task.state_reason = reason
    if task.state == S.IMPLEMENTED:
        task.implementation_count += 1
    task.save(
        update_fields=[
            "state",
            "state_changed_at",
            "state_reason",
            "holder",
            "hold_expires_at",
            "implementation_count",
            "updated_at",
            *extra_fields,
        ]
    )
    if old_state == S.IMPLEMENTED and task.state != S.INTEGRATED:
        integrations_withdraw(task, actor=actor, now=now)
    event = event_record(
        project=task.project_id,
        task=task,
        kind=kind,
        actor=actor,
        **state_change_payload(
            task, old_state, **({"reason": reason} if reason else {}), **payload
        ),
    )
    readiness_propagate(task, old_state=old_state, actor=actor, now=now)
    parent_follow(task, old_state=old_state, actor=actor, now=now)
    return event


# A child moving into or out of these states can change its delegated parent's level.
_COMPLETION_STATES = frozenset({S.IMPLEMENTED, S.INTEGRATED, S.CANCELLED})


def delegation_level(parent: Task) -> str:
    """The state a delegated task takes from its children: ``integrated`` when every child
    is, ``implemented`` when every child is at least implemented, else ``delegated``.
    Cancelled children are left out (cancelling says the work is not needed); a task whose
    children are all cancelled stays delegated for an operator to settle."""
    states = set(
        Task.objects.filter(parent=parent)
        .exclude(state=S.CANCELLED)
        .values_list("state", flat=True)
    )
    if not states:
        return S.DELEGATED
    if states == {S.INTEGRATED}:
        return S.INTEGRATED
    if states <= {S.IMPLEMENTED, S.INTEGRATED}:
        return S.IMPLEMENTED
    return S.DELEGATED


def parent_follow(child: Task, *, old_state: str, actor: str, now: datetime) -> None:
    """Move a delegated parent to its children's level after ``child`` changed state.

    The parent's row lock is taken before its children are read, so two children finishing
    at once are counted one after the other: the second sees the first one's commit.
    Nested delegation follows upwards through ``transition_apply``.
    """
    if child.parent_id is None or old_state == child.state:
        return
    if old_state not in _COMPLETION_STATES and child.state not in _COMPLETION_STATES:
        return
    (parent,) = lock_tasks([child.parent_id])
    if parent.delegated_at is None or parent.state not in (S.DELEGATED, S.IMPLEMENTED):
        return
    target = delegation_level(parent)
    if target == parent.state:
        return
    transition_apply(
        parent,
        parent.follow_children,
        target,
        actor=actor,
        kind="task.delegation_followed",
        now=now,
        reason=f"child {child.ref} is {child.state}",
        because_of=child.ref,
    )


def integrations_withdraw(task: Task, *, actor: str, now: datetime) -> None:
    """Work that leaves ``implemented`` (other than by merging) leaves the integration queue."""
    open_attempts = IntegrationAttempt.objects.filter(
        task=task, state__in=[IntegrationState.QUEUED, IntegrationState.RUNNING]
    )
    for attempt in open_attempts:
        event_record(
            project=task.project_id,
            task=task,
            kind="integration.cancelled",
            actor=actor,
            ref=task.ref,
            attempt_id=attempt.pk,
            was=attempt.state,
            reason=f"the task moved to {task.state}",
        )
    open_attempts.update(
        state=IntegrationState.CANCELLED,
        finished_at=now,
        diagnostics=f"withdrawn: the task moved to {task.state}",
    )


def readiness_propagate(task: Task, *, old_state: str, actor: str, now: datetime) -> None:
    """Keep dependents' unmet-prerequisite counts (and backlog/ready) in step with ``task``.

    Runs in the caller's transaction, so a dependent becomes ready (or falls back) atomically
    with its prerequisite's change. Dependents are locked in id order after ``task``.
    """
    delta_by_level: dict[str, int] = {}
    for level, satisfying in SATISFYING_STATES.items():
        was, now_met = old_state in satisfying, task.state in satisfying
        if was != now_met:
            delta_by_level[level] = -1 if now_met else +1
    if not delta_by_level:
        return

    edges = Dependency.objects.filter(prerequisite=task, unlock_on__in=list(delta_by_level))
    delta_by_dependent: dict[int, int] = {}
    for dependent_id, unlock_on in edges.values_list("dependent_id", "unlock_on"):
        delta_by_dependent[dependent_id] = (
            delta_by_dependent.get(dependent_id, 0) + delta_by_level[unlock_on]
        )
    if not delta_by_dependent:
        return

    dependents = lock_tasks(delta_by_dependent)
    events: list[Event] = []
    revoked_lease_task_ids: list[int] = []
    for dependent in dependents:
        before = dependent.state
        dependent.updated_at = now
        dependent.unmet_prerequisites += delta_by_dependent[dependent.pk]
        if dependent.unmet_prerequisites == 0 and before == S.BACKLOG:
            if dependent.holder:
                dependent.become_ready_reserved()
            else:
                dependent.become_ready()
            kind = "task.ready"
        elif dependent.unmet_prerequisites > 0 and before in (S.READY, S.RESERVED, S.CLAIMED):
            # Not started yet: the work is expendable, the claim goes back to the pool.
            if before == S.CLAIMED:
                revoked_lease_task_ids.append(dependent.pk)
                dependent.holder = ""
                dependent.hold_expires_at = None
            dependent.fall_back()
            kind = "task.fell_back"
        else:
            continue
        dependent.state_changed_at = now
        dependent.state_reason = f"prerequisite {task.ref} is {task.state}"
        events.append(
            event_build(
                task=dependent,
                kind=kind,
                actor=actor,
                **state_change_payload(dependent, before, because_of=task.ref),
            )
        )
    if revoked_lease_task_ids:
        reason = f"prerequisite {task.ref} regressed before work started"
        revoked = Lease.objects.filter(
            task_id__in=revoked_lease_task_ids, status=LeaseStatus.ACTIVE
        ).select_related("task")
        for lease in revoked:
            events.append(
                event_build(
                    task=lease.task,
                    kind="lease.revoked",
                    actor=actor,
                    ref=lease.task.ref,
                    agent=lease.agent,
                    lease_token=lease.token,
                    reason=reason,
                )
            )
        revoked.update(status=LeaseStatus.REVOKED, ended_at=now, end_reason=reason)
    _write_dependents(dependents)
    events_save(events)


_DEPENDENT_COLUMNS = (
    "unmet_prerequisites",
    "state",
    "state_changed_at",
    "state_reason",
    "holder",
    "hold_expires_at",
    "updated_at",
)


def _write_dependents(dependents: list[Task]) -> None:
    """Write the locked dependents back in one statement.

    ``bulk_update`` builds a CASE arm per row and column, which costs about a second of
    Python for a thousand dependents; on PostgreSQL one ``UPDATE … FROM unnest(…)`` of
    column arrays does the same in a few milliseconds.
    """
    if connection.vendor != "postgresql":
        Task.objects.bulk_update(dependents, list(_DEPENDENT_COLUMNS), batch_size=500)
        return
    table = Task._meta.db_table
    assignments = ", ".join(f"{column} = v.{column}" for column in _DEPENDENT_COLUMNS)
    sql = f"""
        UPDATE {table} AS t SET {assignments}
        FROM unnest(%s::bigint[], %s::integer[], %s::text[], %s::timestamptz[], %s::text[],
                    %s::text[], %s::timestamptz[], %s::timestamptz[])
             AS v(id, {", ".join(_DEPENDENT_COLUMNS)})
        WHERE t.id = v.id
    """
    columns = [[d.pk for d in dependents]] + [
        [getattr(d, column) for d in dependents] for column in _DEPENDENT_COLUMNS
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, columns)


def unmet_incoming_edges(task: Task) -> list[dict[str, Any]]:
    """Read the real edges (not the counter): the rule a claim is checked against."""
    unmet = []
    edges = Dependency.objects.filter(dependent=task).values(
        "prerequisite_id", "prerequisite__number", "prerequisite__state", "unlock_on"
    )
    for edge in edges:
        if edge["prerequisite__state"] not in SATISFYING_STATES[UnlockOn(edge["unlock_on"])]:
            unmet.append(
                {
                    "prerequisite_id": edge["prerequisite_id"],
                    "prerequisite_ref": f"T{edge['prerequisite__number']}",
                    "prerequisite_state": edge["prerequisite__state"],
                    "unlock_on": edge["unlock_on"],
                }
            )
    return unmet


def hold_expire_if_due(task: Task, *, now: datetime, actor: str = "system") -> bool:
    """Enforce expiry on read: end a lapsed lease or reservation of a locked task.

    Every path that reads a hold calls this first, so correctness never waits for the sweep.
    Returns whether anything expired.
    """
    if task.hold_expires_at is None or task.hold_expires_at > now:
        return False
    if task.state in LEASED_STATES:
        lease = lease_end(task, status=LeaseStatus.EXPIRED, reason="lease expired", now=now)
        task.attempt_count += 1  # the row is locked: a plain increment is safe
        exhausted = task.attempt_count >= task.max_attempts
        target = S.BLOCKED if exhausted else pool_state(task)
        reason = (
            f"blocked after {task.attempt_count} failed attempts (max {task.max_attempts})"
            if exhausted
            else "lease expired"
        )
        transition_apply(
            task,
            task.return_to_pool,
            target,
            actor=actor,
            kind="lease.expired",
            now=now,
            reason=reason,
            extra_fields=("attempt_count",),
            agent=lease.agent if lease else "",
            lease_token=lease.token if lease else None,
            attempt_count=task.attempt_count,
        )
        return True
    reservation = reservation_end(
        task, status=ReservationStatus.EXPIRED, reason="reservation expired", now=now
    )
    payload = {"assignee": reservation.assignee if reservation else ""}
    if task.state == S.RESERVED:
        transition_apply(
            task,
            task.drop_reservation,
            pool_state(task),
            actor=actor,
            kind="reservation.expired",
            now=now,
            **payload,
        )
    else:  # a reservation waiting on a backlog task
        task.save(update_fields=["holder", "hold_expires_at", "updated_at"])
        event_record(
            project=task.project_id,
            task=task,
            kind="reservation.expired",
            actor=actor,
            ref=task.ref,
            **payload,
        )
    return True


def utcnow() -> datetime:
    return timezone.now()
