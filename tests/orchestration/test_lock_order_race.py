"""Readiness propagation locks a task, then its dependents: two such chains can cross."""

import threading

import pytest
from django.db import connection

from orchestration.models import Task, TaskState
from orchestration.services import leases, lifecycle, operations, plan
from orchestration.services.lifecycle import unmet_incoming_edges
from tests.conftest import OPERATOR, PLANNER, agent
from tests.orchestration.helpers import claim, implement


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
def test_crossing_propagations_both_succeed(monkeypatch):
    """Guards against a deadlock between two propagations surfacing as a 500.

    X→D1, X→D2, D2→D1 with D1's id below D2's. Marking D2 implemented locks D2 and then D1;
    blocking X locks X and then D1 before D2. The agent's transaction is held after it has
    locked D2 until the operator's is waiting on it, so the two cross for certain.
    """
    project = plan.project_create(actor=PLANNER, name="Race", slug="race")

    def task(title):
        return plan.task_create(actor=PLANNER, project_id=project.pk, title=title)

    def edge(a, b):
        plan.dependency_add(
            actor=PLANNER, project_id=project.pk, prerequisite_id=a.pk, dependent_id=b.pk
        )

    x, d1, d2 = task("x"), task("d1"), task("d2")
    assert d1.pk < d2.pk
    edge(x, d1)
    edge(x, d2)
    edge(d2, d1)
    implement(x, agent("builder"))
    worker = agent("worker")
    lease = claim(Task.objects.get(pk=d2.pk), worker)
    leases.task_start(actor=worker, task_id=d2.pk, lease_token=lease.token)
    leases.artifact_publish(actor=worker, task_id=d2.pk, lease_token=lease.token)

    d2_locked, operator_waiting = threading.Event(), threading.Event()
    real_propagate = lifecycle.readiness_propagate

    def propagate_after_the_operator_queued(task, **kwargs):
        if task.pk == d2.pk and not d2_locked.is_set():
            d2_locked.set()
            operator_waiting.wait(timeout=5)
        return real_propagate(task, **kwargs)

    monkeypatch.setattr(lifecycle, "readiness_propagate", propagate_after_the_operator_queued)
    errors = []

    def run(call):
        try:
            call()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    agent_thread = threading.Thread(
        target=run,
        args=(
            lambda: leases.task_mark_implemented(
                actor=worker, task_id=d2.pk, lease_token=lease.token
            ),
        ),
    )
    operator_thread = threading.Thread(
        target=run,
        args=(lambda: operations.task_block(actor=OPERATOR, task_id=x.pk, reason="revert"),),
    )
    agent_thread.start()
    assert d2_locked.wait(timeout=5)
    operator_thread.start()
    threading.Timer(0.5, operator_waiting.set).start()
    agent_thread.join()
    operator_thread.join()

    assert errors == []
    assert Task.objects.get(pk=x.pk).state == TaskState.BLOCKED
    assert Task.objects.get(pk=d2.pk).state == TaskState.IMPLEMENTED
    for t in Task.objects.filter(project=project):
        assert t.unmet_prerequisites == len(unmet_incoming_edges(t)), t.ref
