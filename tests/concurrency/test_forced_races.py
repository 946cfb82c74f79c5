"""Races forced at an exact point: a hook holds one transaction where the race happens
(Saleor's ``race_condition`` habit) instead of sleeping and hoping it lines up."""

import threading
import time

import pytest
from django.db import OperationalError, connection

from orchestration.models import Lease, Task, TaskState
from orchestration.services import leases, lifecycle, operations, plan
from tests.concurrency.harness import OPERATOR, PLANNER, agent, in_thread

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]

HOOK_TIMEOUT = 20.0


def _backend_pid() -> int:
    connection.ensure_connection()
    return connection.connection.info.backend_pid


def _wait_until_blocked_on_a_lock(pid: int) -> None:
    deadline = time.monotonic() + HOOK_TIMEOUT
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            row = cursor.fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited on a row lock")


def _implemented_by(name: str, task_id: int) -> int:
    actor = agent(name)
    lease = leases.task_claim(actor=actor, task_id=task_id)
    leases.task_start(actor=actor, task_id=task_id, lease_token=lease.token)
    leases.artifact_publish(actor=actor, task_id=task_id, lease_token=lease.token)
    return lease.token


def test_propagations_deadlocking_on_shared_dependents_are_retried_not_a_500(
    conc_project, new_task, monkeypatch
):
    """Regressing X (locks X, D1, D2) while D2 completes (locks D2, D1): a deadlock 500."""
    x, d1, d2 = new_task("X"), new_task("D1"), new_task("D2")
    assert d1.pk < d2.pk
    for prerequisite, dependent in ((x, d1), (x, d2), (d2, d1)):
        plan.dependency_add(
            actor=PLANNER,
            project_id=conc_project.pk,
            prerequisite_id=prerequisite.pk,
            dependent_id=dependent.pk,
        )
    x_token = _implemented_by("x-agent", x.pk)
    leases.task_mark_implemented(actor=agent("x-agent"), task_id=x.pk, lease_token=x_token)
    d2_token = _implemented_by("d2-agent", d2.pk)

    # Hold D2's completion after it locked D2, just before it locks its dependent D1.
    at_hook, go_on = threading.Event(), threading.Event()
    real_lock_tasks = lifecycle.lock_tasks
    deadlocks: list[OperationalError] = []

    def lock_tasks(task_ids):
        if threading.current_thread().name == "complete-d2":
            at_hook.set()
            assert go_on.wait(HOOK_TIMEOUT)
        try:
            return real_lock_tasks(task_ids)
        except OperationalError as exc:
            deadlocks.append(exc)
            raise

    monkeypatch.setattr(lifecycle, "lock_tasks", lock_tasks)
    block_pid: list[int] = []

    def complete_d2():
        threading.current_thread().name = "complete-d2"
        return leases.task_mark_implemented(
            actor=agent("d2-agent"), task_id=d2.pk, lease_token=d2_token
        )

    def block_x():
        block_pid.append(_backend_pid())
        return operations.task_block(actor=OPERATOR, task_id=x.pk, reason="regress it")

    join_complete = in_thread(complete_d2)
    assert at_hook.wait(HOOK_TIMEOUT)
    join_block = in_thread(block_x)
    while not block_pid:
        time.sleep(0.005)
    _wait_until_blocked_on_a_lock(block_pid[0])  # X's block holds D1 and waits for D2
    go_on.set()
    completed, blocked = join_complete(), join_block()

    # The race happened: PostgreSQL broke a real deadlock (propagation departs from the
    # ascending-id lock order, see docs/concurrency.md), and the loser was run again.
    assert [getattr(e.__cause__, "sqlstate", None) for e in deadlocks] == ["40P01"]
    assert completed.ok and blocked.ok, (completed.error, blocked.error)
    d1.refresh_from_db()
    assert (d1.unmet_prerequisites, d1.state) == (1, TaskState.BACKLOG)


def test_claim_next_finds_a_ready_task_while_a_rival_is_claiming_another(
    conc_project, new_task, monkeypatch
):
    """Claim-next locking a batch of candidates, so a rival is told 'nothing ready' (204)."""
    pool = [new_task(f"small pool {i}").pk for i in range(5)]
    rival_locked, rival_may_commit = threading.Event(), threading.Event()
    real_grant = leases._grant_lease

    def grant(task, project, *, actor, now, **kwargs):
        if actor.name == "rival":  # the rival holds its candidates' locks here
            rival_locked.set()
            assert rival_may_commit.wait(HOOK_TIMEOUT)
        return real_grant(task, project, actor=actor, now=now, **kwargs)

    monkeypatch.setattr(leases, "_grant_lease", grant)
    join_rival = in_thread(
        lambda: leases.task_claim_next(actor=agent("rival"), project_id=conc_project.pk)
    )
    assert rival_locked.wait(HOOK_TIMEOUT)
    try:
        mine = in_thread(
            lambda: leases.task_claim_next(actor=agent("me"), project_id=conc_project.pk)
        )()
    finally:
        rival_may_commit.set()
    rival = join_rival()

    assert rival.ok and mine.ok, (rival.error, mine.error)
    ready_left = Task.objects.filter(pk__in=pool, state=TaskState.READY).count()
    assert mine.value is not None, f"claim-next said nothing is ready; {ready_left} tasks are"
    assert mine.value.task_id != rival.value.task_id
    assert Lease.objects.filter(task_id__in=pool).count() == 2
