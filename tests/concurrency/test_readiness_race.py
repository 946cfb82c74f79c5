"""Invariant 2: a task is claimed only if every incoming edge is satisfied at that moment."""

import threading
import time

import pytest

from orchestration.errors import DependenciesUnmet
from orchestration.models import Dependency, Event, Lease, Task, TaskState
from orchestration.services import leases, plan
from tests.concurrency.harness import (
    PLANNER,
    agent,
    errors_by_type,
    run_concurrently,
    stored_unmet,
    unmet_from_edges,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]

DEPENDENTS = 50


def _keep_claiming(task_id: int, name: str, *, attempts: int, refused_once):
    """Claim until it works (or ``attempts`` refusals): returns (lease or None, refusals)."""

    def call():
        actor = agent(name)
        refusals = 0
        while True:
            try:
                return leases.task_claim(actor=actor, task_id=task_id), refusals
            except DependenciesUnmet:
                refusals += 1
                if refusals == 1:
                    refused_once()
                if refusals >= attempts:
                    return None, refusals
                time.sleep(0.002)

    return call


def test_dependents_are_claimed_only_after_their_prerequisite_is_implemented(
    conc_project, new_task
):
    """A dependent claimed while its prerequisite is still in progress (check outside the lock)."""
    prerequisite = new_task("P")
    dependents = [new_task(f"D{i}") for i in range(DEPENDENTS)]
    for dependent in dependents:
        plan.dependency_add(
            actor=PLANNER,
            project_id=conc_project.pk,
            prerequisite_id=prerequisite.pk,
            dependent_id=dependent.pk,
        )
    p_agent = agent("p-agent")
    lease = leases.task_claim(actor=p_agent, task_id=prerequisite.pk)
    leases.task_start(actor=p_agent, task_id=prerequisite.pk, lease_token=lease.token)
    leases.artifact_publish(actor=p_agent, task_id=prerequisite.pk, lease_token=lease.token)

    # P completes only once every claimer has been turned away at least once, so each
    # dependent is contested across P's change however the threads get scheduled.
    refused, all_refused, count_lock = [0], threading.Event(), threading.Lock()

    def refused_once():
        with count_lock:
            refused[0] += 1
            if refused[0] == DEPENDENTS:
                all_refused.set()

    def implement():
        assert all_refused.wait(20), "some claimer never reached the backlog task"
        return leases.task_mark_implemented(
            actor=p_agent, task_id=prerequisite.pk, lease_token=lease.token
        )

    # Even claimers keep trying until they win; odd ones give up after a few refusals,
    # so some dependents may still be waiting, ready, at the end.
    claimers = [
        _keep_claiming(
            d.pk,
            f"claimer-{i}",
            attempts=10_000 if i % 2 == 0 else 5,
            refused_once=refused_once,
        )
        for i, d in enumerate(dependents)
    ]
    outcomes = run_concurrently([implement, *claimers])

    assert all(o.ok for o in outcomes), errors_by_type(outcomes)
    implemented = Event.objects.get(task=prerequisite, kind="task.implemented")
    claimed = {lease.task_id: lease for lease, _ in (o.value for o in outcomes[1:]) if lease}
    for i, dependent in enumerate(dependents):
        dependent.refresh_from_db()
        if dependent.pk in claimed:
            event = Event.objects.get(task=dependent, kind="task.claimed")
            assert event.pk > implemented.pk, f"D{i} claimed before P was implemented"
            assert event.txid > implemented.txid
            assert claimed[dependent.pk].created_at >= implemented.created_at
            assert dependent.state == TaskState.CLAIMED
        else:
            assert i % 2 == 1, f"D{i}'s claimer kept trying but never won"
            assert dependent.state == TaskState.READY
            assert not Lease.objects.filter(task=dependent).exists()
    assert Dependency.objects.filter(prerequisite=prerequisite).count() == DEPENDENTS
    assert stored_unmet(conc_project.pk) == unmet_from_edges(conc_project.pk)
    assert set(
        Task.objects.filter(pk__in=[d.pk for d in dependents]).values_list("state", flat=True)
    ) <= {
        TaskState.READY,
        TaskState.CLAIMED,
    }
