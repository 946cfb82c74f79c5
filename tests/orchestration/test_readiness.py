"""Readiness kept on write: backlog→ready with the last prerequisite, and back on regression."""

import pytest

from orchestration.models import Event, Lease, LeaseStatus, Task, TaskState
from orchestration.services import leases, operations
from orchestration.services.lifecycle import unmet_incoming_edges
from tests.conftest import OPERATOR, agent
from tests.orchestration.helpers import claim, implement

pytestmark = pytest.mark.django_db
A, B = agent("agent-a"), agent("agent-b")


def _state(task):
    return Task.objects.get(pk=task.pk).state


def test_dependent_becomes_ready_with_its_last_prerequisite(make_task, edge):
    first, second, dependent = make_task("1"), make_task("2"), make_task("d")
    edge(first, dependent)
    edge(second, dependent)
    implement(first, A)
    assert _state(dependent) == TaskState.BACKLOG
    implement(second, A)
    assert _state(dependent) == TaskState.READY
    ready_event = Event.objects.get(task=dependent, kind="task.ready")
    implemented_event = Event.objects.get(task=second, kind="task.implemented")
    assert ready_event.pk > implemented_event.pk


def test_every_dependent_of_a_hub_becomes_ready(make_task, edge):
    hub = make_task("hub")
    dependents = [make_task(f"d{i}") for i in range(30)]
    for dependent in dependents:
        edge(hub, dependent)
    implement(hub, A)
    states = set(
        Task.objects.filter(pk__in=[d.pk for d in dependents]).values_list("state", flat=True)
    )
    assert states == {TaskState.READY}


def test_regression_sends_unstarted_dependents_back_and_revokes_their_claims(make_task, edge):
    """Guards against a claimed dependent keeping its lease after its prerequisite regressed."""
    prerequisite = make_task("p")
    ready_one, claimed_one, started_one = make_task("r"), make_task("c"), make_task("s")
    for dependent in (ready_one, claimed_one, started_one):
        edge(prerequisite, dependent)
    implement(prerequisite, A)
    claimed_lease = claim(claimed_one, B)
    started_lease = claim(started_one, agent("agent-c"))
    leases.task_start(
        actor=agent("agent-c"), task_id=started_one.pk, lease_token=started_lease.token
    )

    operations.task_override(
        actor=OPERATOR, task_id=prerequisite.pk, to_state="backlog", rationale="bad merge"
    )

    assert _state(ready_one) == TaskState.BACKLOG
    assert _state(claimed_one) == TaskState.BACKLOG
    assert Lease.objects.get(pk=claimed_lease.pk).status == LeaseStatus.REVOKED
    # In-progress work is sacred: it keeps going.
    assert _state(started_one) == TaskState.IN_PROGRESS
    assert Lease.objects.get(pk=started_lease.pk).status == LeaseStatus.ACTIVE
    assert Task.objects.get(pk=started_one.pk).unmet_prerequisites == 1


def test_reserved_dependent_keeps_its_assignment_through_a_regression(make_task, edge):
    prerequisite, dependent = make_task("p"), make_task("d")
    edge(prerequisite, dependent)
    operations.task_assign(actor=OPERATOR, task_id=dependent.pk, assignee=B.name)
    assert _state(dependent) == TaskState.BACKLOG
    implement(prerequisite, A)
    assert _state(dependent) == TaskState.RESERVED
    operations.task_override(
        actor=OPERATOR, task_id=prerequisite.pk, to_state="blocked", rationale="hold on"
    )
    assert _state(dependent) == TaskState.BACKLOG
    assert Task.objects.get(pk=dependent.pk).holder == B.name


def test_counter_matches_the_edges_after_a_mixed_history(make_task, edge):
    tasks = [make_task(f"t{i}") for i in range(6)]
    edge(tasks[0], tasks[2])
    edge(tasks[1], tasks[2])
    edge(tasks[2], tasks[3], unlock_on="integrated")
    edge(tasks[0], tasks[4])
    implement(tasks[0], A)
    edge(tasks[5], tasks[4])
    operations.task_override(
        actor=OPERATOR, task_id=tasks[0].pk, to_state="ready", rationale="redo"
    )
    implement(tasks[1], A)
    for task in Task.objects.all():
        assert task.unmet_prerequisites == len(unmet_incoming_edges(task)), task.ref
        expected_pool = TaskState.BACKLOG if task.unmet_prerequisites else TaskState.READY
        if task.state in (TaskState.BACKLOG, TaskState.READY):
            assert task.state == expected_pool, task.ref


def test_revoking_a_dependents_claim_is_recorded(make_task, edge):
    """Guards against a lease ended by propagation without its own event."""
    prerequisite, dependent = make_task("p"), make_task("d")
    edge(prerequisite, dependent)
    implement(prerequisite, A)
    lease = claim(dependent, B)
    touched_before = Task.objects.get(pk=dependent.pk).updated_at
    operations.task_override(
        actor=OPERATOR, task_id=prerequisite.pk, to_state="blocked", rationale="reverted"
    )
    revoked = Event.objects.get(task=dependent, kind="lease.revoked")
    assert revoked.payload["lease_token"] == lease.token
    assert Task.objects.get(pk=dependent.pk).updated_at > touched_before
