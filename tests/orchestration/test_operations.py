"""Operator actions: assignments, block/unblock, cancel, abandon, override with a rationale."""

import pytest

from orchestration.errors import InvalidTransition, LeaseStale, OverrideNotAllowed
from orchestration.models import Event, LeaseStatus, Reservation, ReservationStatus, TaskState
from orchestration.services import leases, operations
from tascade.errors import DomainError, Forbidden, InvalidInput
from tests.conftest import OPERATOR, agent
from tests.orchestration.helpers import claim, implement

pytestmark = pytest.mark.django_db
A, B = agent("agent-a"), agent("agent-b")


def test_agent_can_never_force_a_transition(make_task):
    task = make_task()
    for call in (
        lambda: operations.task_override(
            actor=A, task_id=task.pk, to_state="implemented", rationale="trust me"
        ),
        lambda: operations.task_block(actor=A, task_id=task.pk, reason="x"),
        lambda: operations.task_assign(actor=A, task_id=task.pk, assignee=A.name),
    ):
        with pytest.raises(Forbidden):
            call()
    task.refresh_from_db()
    assert task.state == TaskState.READY


def test_override_needs_a_rationale_and_is_recorded(make_task):
    task = make_task()
    with pytest.raises(InvalidInput):
        operations.task_override(
            actor=OPERATOR, task_id=task.pk, to_state="blocked", rationale="  "
        )
    operations.task_override(
        actor=OPERATOR, task_id=task.pk, to_state="blocked", rationale="waiting on legal"
    )
    event = Event.objects.get(task=task, kind="task.overridden")
    assert event.actor == OPERATOR.name
    assert event.payload["reason"] == "waiting on legal"
    assert event.payload["override"] is True


def test_override_can_never_integrate(make_task):
    task = make_task()
    implement(task, A)
    with pytest.raises(OverrideNotAllowed):
        operations.task_override(
            actor=OPERATOR, task_id=task.pk, to_state="integrated", rationale="ship it"
        )


def test_override_revokes_the_lease_and_fences_the_old_holder(make_task):
    task = make_task()
    lease = claim(task, A)
    operations.task_override(
        actor=OPERATOR, task_id=task.pk, to_state="ready", rationale="reassigning"
    )
    lease.refresh_from_db()
    assert lease.status == LeaseStatus.REVOKED
    with pytest.raises(LeaseStale):
        leases.lease_heartbeat(actor=A, task_id=task.pk, lease_token=lease.token)


def test_block_and_unblock_round_trip(make_task):
    task = make_task(max_attempts=1)
    lease = claim(task, A)
    leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token)
    leases.task_release(actor=A, task_id=task.pk, lease_token=lease.token, reason="flaky")
    task.refresh_from_db()
    assert task.state == TaskState.BLOCKED
    with pytest.raises(InvalidTransition):
        operations.task_block(actor=OPERATOR, task_id=task.pk, reason="again")
    unblocked = operations.task_unblock(actor=OPERATOR, task_id=task.pk, reason="fixed CI")
    assert (unblocked.state, unblocked.attempt_count) == (TaskState.READY, 0)


def test_cancel_is_final(make_task):
    task = make_task()
    operations.task_cancel(actor=OPERATOR, task_id=task.pk, reason="out of scope")
    for call in (
        lambda: operations.task_block(actor=OPERATOR, task_id=task.pk, reason="x"),
        lambda: operations.task_override(
            actor=OPERATOR, task_id=task.pk, to_state="ready", rationale="x"
        ),
        lambda: claim(task, A),
    ):
        with pytest.raises(DomainError) as refused:
            call()
        assert getattr(refused.value, "http_status", None) == 409


def test_abandon_then_reopen_by_override(make_task):
    task = make_task()
    claim(task, A)
    operations.task_abandon(actor=OPERATOR, task_id=task.pk, reason="agent gave up")
    reopened = operations.task_override(
        actor=OPERATOR, task_id=task.pk, to_state="ready", rationale="try again"
    )
    assert reopened.state == TaskState.READY


def test_reassignment_replaces_the_reservation(make_task):
    task = make_task()
    operations.task_assign(actor=OPERATOR, task_id=task.pk, assignee=A.name)
    operations.task_assign(actor=OPERATOR, task_id=task.pk, assignee=B.name)
    statuses = dict(Reservation.objects.filter(task=task).values_list("assignee", "status"))
    assert statuses == {A.name: ReservationStatus.RELEASED, B.name: ReservationStatus.ACTIVE}
    task.refresh_from_db()
    assert (task.state, task.holder) == (TaskState.RESERVED, B.name)


def test_unassign_returns_the_task_to_everyone(make_task):
    task = make_task()
    operations.task_assign(actor=OPERATOR, task_id=task.pk, assignee=A.name)
    operations.task_unassign(actor=OPERATOR, task_id=task.pk)
    assert leases.task_claim_next(actor=B, project_id=task.project_id).task_id == task.pk


def test_claimed_task_cannot_be_assigned(make_task):
    task = make_task()
    claim(task, A)
    with pytest.raises(InvalidTransition):
        operations.task_assign(actor=OPERATOR, task_id=task.pk, assignee=B.name)


def test_override_to_implemented_records_who_made_it_so(make_task):
    """Guards against a forced completion with no implementer, which anyone could review."""
    held, unheld = make_task("held"), make_task("unheld")
    lease = claim(held, A)
    leases.task_start(actor=A, task_id=held.pk, lease_token=lease.token)
    operations.task_assign(actor=OPERATOR, task_id=unheld.pk, assignee=B.name)
    forced_held = operations.task_override(
        actor=OPERATOR, task_id=held.pk, to_state="implemented", rationale="merged by hand"
    )
    forced_unheld = operations.task_override(
        actor=OPERATOR, task_id=unheld.pk, to_state="implemented", rationale="done elsewhere"
    )
    assert forced_held.implemented_by == A.name
    assert forced_unheld.implemented_by == OPERATOR.name
