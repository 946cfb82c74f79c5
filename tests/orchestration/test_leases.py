"""Invariants 2 to 5: claims need met prerequisites, one live lease, fencing, expiry on read."""

import pytest
from django.db import IntegrityError, transaction

from orchestration.errors import (
    ArtifactRequired,
    DependenciesUnmet,
    InvalidTransition,
    LeaseExpired,
    LeaseStale,
    TaskAlreadyClaimed,
    TaskReserved,
)
from orchestration.models import Artifact, Event, Lease, LeaseStatus, Task, TaskState
from orchestration.services import leases, operations
from orchestration.services.sweep import holds_expire_due
from tascade.errors import Forbidden
from tests.conftest import OPERATOR, PLANNER, agent
from tests.orchestration.helpers import claim, implement, later

pytestmark = pytest.mark.django_db
A, B = agent("agent-a"), agent("agent-b")


# --- invariant 2 ---------------------------------------------------------------------------
def test_task_with_unmet_prerequisite_cannot_be_claimed(make_task, edge):
    prerequisite, dependent = make_task("p"), make_task("d")
    edge(prerequisite, dependent)
    with pytest.raises(DependenciesUnmet) as refused:
        claim(dependent, A)
    assert refused.value.details["unmet"][0]["prerequisite_ref"] == prerequisite.ref
    assert not Lease.objects.exists()


def test_claim_checks_the_real_edges_not_only_the_counter(make_task, edge):
    """Guards against a claim trusting a drifted readiness counter."""
    prerequisite, dependent = make_task("p"), make_task("d")
    edge(prerequisite, dependent)
    # Corrupt the counter behind the services' back, as a bug elsewhere might.
    Task.objects.filter(pk=dependent.pk).update(unmet_prerequisites=0, state=TaskState.READY)
    with pytest.raises(DependenciesUnmet):
        claim(dependent, A)
    assert (
        leases.task_claim_next(actor=A, project_id=dependent.project_id).task_id == prerequisite.pk
    )
    assert not Lease.objects.filter(task=dependent).exists()


def test_integrated_edge_is_not_unlocked_by_implemented(make_task, edge):
    prerequisite, dependent = make_task("p"), make_task("d")
    edge(prerequisite, dependent, unlock_on="integrated")
    implement(prerequisite, A)
    dependent.refresh_from_db()
    assert dependent.state == TaskState.BACKLOG
    with pytest.raises(DependenciesUnmet):
        claim(dependent, B)


# --- invariant 3 ---------------------------------------------------------------------------
def test_second_claim_is_refused(make_task):
    task = make_task()
    claim(task, A)
    with pytest.raises(TaskAlreadyClaimed):
        claim(task, B)
    assert Lease.objects.filter(task=task).count() == 1


def test_database_refuses_a_second_active_lease(make_task):
    """Guards against any code path (even a buggy one) storing two live leases."""
    task = make_task()
    lease = claim(task, A)
    with pytest.raises(IntegrityError), transaction.atomic():
        Lease.objects.create(
            project_id=task.project_id, task=task, agent="x", token=99, expires_at=lease.expires_at
        )


def test_claim_next_takes_most_urgent_then_oldest_and_never_twice(make_task):
    low, urgent = make_task("low", priority=50), make_task("u1", priority=1)
    urgent_later = make_task("u2", priority=1)
    got = [
        leases.task_claim_next(actor=agent(f"n{i}"), project_id=low.project_id) for i in range(4)
    ]
    assert [lease.task_id for lease in got[:3]] == [urgent.pk, urgent_later.pk, low.pk]
    assert got[3] is None


def test_claim_next_filters_by_capabilities(make_task):
    python_task = make_task("py", capability_tags=["python"])
    rust_task = make_task("rs", capability_tags=["rust", "unsafe"])
    lease = leases.task_claim_next(
        actor=A, project_id=python_task.project_id, capabilities=["python", "docs"]
    )
    assert lease.task_id == python_task.pk
    assert (
        leases.task_claim_next(actor=A, project_id=rust_task.project_id, capabilities=["rust"])
        is None
    )
    assert leases.task_claim_next(actor=B, project_id=rust_task.project_id).task_id == rust_task.pk


def test_reserved_task_is_offered_only_to_its_assignee(make_task):
    task = make_task()
    operations.task_assign(actor=OPERATOR, task_id=task.pk, assignee=B.name)
    assert leases.task_claim_next(actor=A, project_id=task.project_id) is None
    with pytest.raises(TaskReserved):
        claim(task, A)
    assert leases.task_claim_next(actor=B, project_id=task.project_id).task_id == task.pk


def test_expired_reservation_frees_the_task_for_everyone(make_task):
    task = make_task()
    operations.task_assign(actor=OPERATOR, task_id=task.pk, assignee=B.name, ttl_seconds=60)
    lease = leases.task_claim_next(actor=A, project_id=task.project_id, now=later(61))
    assert lease.task_id == task.pk
    assert Event.objects.filter(task=task, kind="reservation.expired").exists()


def test_only_agents_claim(make_task):
    with pytest.raises(Forbidden):
        claim(make_task(), PLANNER)


# --- invariant 4 ---------------------------------------------------------------------------
def test_fencing_token_grows_with_every_new_lease(make_task):
    task = make_task()
    first = claim(task, A)
    leases.task_release(actor=A, task_id=task.pk, lease_token=first.token)
    second = claim(task, B)
    third = claim(task, A, now=later(10_000))  # B's lease expired: expiry on read
    assert first.token < second.token < third.token


def test_heartbeat_extends_the_lease(make_task):
    task = make_task()
    lease = claim(task, A)
    beat = leases.lease_heartbeat(actor=A, task_id=task.pk, lease_token=lease.token, now=later(100))
    assert beat.lease.expires_at > lease.expires_at
    assert beat.ttl_seconds == task.project.lease_ttl_seconds
    task.refresh_from_db()
    assert task.hold_expires_at == beat.lease.expires_at


@pytest.mark.parametrize("write", ["heartbeat", "start", "artifact", "implemented", "release"])
def test_every_agent_write_needs_the_live_token(make_task, write):
    """Guards against a write on a held task that skips the fencing check."""
    task = make_task()
    lease = claim(task, A)
    if write in ("artifact", "implemented"):
        leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token)
    before = (Event.objects.count(), Artifact.objects.count())
    calls = {
        "heartbeat": leases.lease_heartbeat,
        "start": leases.task_start,
        "artifact": leases.artifact_publish,
        "implemented": leases.task_mark_implemented,
        "release": leases.task_release,
    }
    with pytest.raises(LeaseStale):
        calls[write](actor=A, task_id=task.pk, lease_token=lease.token + 1)
    with pytest.raises(LeaseStale):  # the right token, presented by someone else
        calls[write](actor=B, task_id=task.pk, lease_token=lease.token)
    with pytest.raises(LeaseExpired):
        calls[write](actor=A, task_id=task.pk, lease_token=lease.token, now=later(10_000))
    assert (Event.objects.count(), Artifact.objects.count()) == before


def test_stale_holder_is_refused_after_the_task_was_reclaimed(make_task):
    task = make_task()
    old = claim(task, A)
    leases.task_start(actor=A, task_id=task.pk, lease_token=old.token)
    claim(task, B, now=later(10_000))
    with pytest.raises(LeaseStale):
        leases.artifact_publish(actor=A, task_id=task.pk, lease_token=old.token)
    with pytest.raises(LeaseStale):
        leases.task_mark_implemented(actor=A, task_id=task.pk, lease_token=old.token)
    assert not Artifact.objects.exists()
    task.refresh_from_db()
    assert (task.state, task.holder) == (TaskState.CLAIMED, B.name)


def test_implemented_needs_an_artifact_from_this_lease(make_task):
    """Guards against completing on an artifact made under an earlier, lost lease."""
    task = make_task()
    first = claim(task, A)
    leases.task_start(actor=A, task_id=task.pk, lease_token=first.token)
    leases.artifact_publish(actor=A, task_id=task.pk, lease_token=first.token)
    second = claim(task, A, now=later(10_000))
    leases.task_start(actor=A, task_id=task.pk, lease_token=second.token, now=later(10_001))
    with pytest.raises(ArtifactRequired):
        leases.task_mark_implemented(
            actor=A, task_id=task.pk, lease_token=second.token, now=later(10_002)
        )


def test_cannot_publish_before_start(make_task):
    task = make_task()
    lease = claim(task, A)
    with pytest.raises(InvalidTransition):
        leases.artifact_publish(actor=A, task_id=task.pk, lease_token=lease.token)


def test_start_captures_the_snapshot(make_task):
    task = make_task(work_spec={"objective": "do it", "acceptance_criteria": ["works"]})
    lease = claim(task, A)
    snapshot = leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token)
    assert snapshot.spec["work_spec"]["objective"] == "do it"
    assert snapshot.plan_version == task.project.plan_version
    assert len(snapshot.spec_hash) == 64


# --- invariant 5 ---------------------------------------------------------------------------
def test_expired_lease_is_claimable_by_id_without_the_sweep(make_task):
    task = make_task()
    claim(task, A)
    lease = claim(task, B, now=later(10_000))
    task.refresh_from_db()
    assert (task.holder, task.attempt_count) == (B.name, 1)
    assert Lease.objects.get(task=task, agent=A.name).status == LeaseStatus.EXPIRED
    assert lease.agent == B.name


def test_claim_next_returns_expired_work_to_the_pool_without_the_sweep(make_task):
    task = make_task()
    held = claim(task, A)
    leases.task_start(actor=A, task_id=task.pk, lease_token=held.token)
    lease = leases.task_claim_next(actor=B, project_id=task.project_id, now=later(10_000))
    assert lease is not None and lease.task_id == task.pk


def test_expired_lease_is_refused_even_before_anyone_reads_it(make_task):
    task = make_task()
    lease = claim(task, A)
    with pytest.raises(LeaseExpired):
        leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token, now=later(10_000))
    task.refresh_from_db()
    assert task.state == TaskState.CLAIMED  # nothing changed by the refusal


def test_task_is_blocked_after_max_attempts(make_task):
    task = make_task(max_attempts=2)
    claim(task, A)
    claim(task, B, now=later(1_000))
    expired = holds_expire_due(project_id=task.project_id, now=later(5_000))
    task.refresh_from_db()
    assert expired == 1
    assert (task.state, task.attempt_count) == (TaskState.BLOCKED, 2)
    assert "2 failed attempts" in task.state_reason


def test_releasing_started_work_counts_as_an_attempt(make_task):
    task = make_task(max_attempts=1)
    lease = claim(task, A)
    leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token)
    leases.task_release(actor=A, task_id=task.pk, lease_token=lease.token, reason="tests red")
    task.refresh_from_db()
    assert task.state == TaskState.BLOCKED


def test_releasing_an_unstarted_claim_is_free(make_task):
    task = make_task(max_attempts=1)
    lease = claim(task, A)
    released = leases.task_release(actor=A, task_id=task.pk, lease_token=lease.token)
    assert (released.state, released.attempt_count) == (TaskState.READY, 0)


def test_sweep_is_idempotent(make_task):
    task = make_task()
    claim(task, A)
    assert holds_expire_due(now=later(10_000)) == 1
    assert holds_expire_due(now=later(10_000)) == 0
    assert Event.objects.filter(task=task, kind="lease.expired").count() == 1


def test_implemented_completes_the_lease_and_records_the_implementer(make_task):
    task = make_task()
    lease = implement(task, A)
    lease.refresh_from_db()
    assert task.state == TaskState.IMPLEMENTED
    assert task.implemented_by == A.name
    assert lease.status == LeaseStatus.COMPLETED
    assert task.holder == ""


def test_claim_next_capability_filter_looks_past_the_first_candidates(make_task):
    """Guards against a filter applied to a fixed-size batch of the most urgent tasks."""
    for i in range(25):
        make_task(f"go{i}", priority=1, capability_tags=["go"])
    python_task = make_task("py", priority=50, capability_tags=["python"])
    lease = leases.task_claim_next(
        actor=A, project_id=python_task.project_id, capabilities=["python"]
    )
    assert lease is not None and lease.task_id == python_task.pk
