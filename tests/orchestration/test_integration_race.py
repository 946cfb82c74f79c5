"""Integrators racing for the queue: merges in one project still run one at a time."""

import threading

import pytest
from django.db import connection

from governance.actors import Actor
from governance.services.reviews import review_record
from orchestration.models import IntegrationAttempt
from orchestration.services import integration, plan
from tests.conftest import PLANNER, agent
from tests.orchestration.helpers import implement


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
def test_racing_integrators_never_run_two_merges_at_once():
    """Guards against two integrators merging into one branch at the same time."""
    project = plan.project_create(actor=PLANNER, name="Merge", slug="merge")
    reviewer = Actor(name="rita", roles=frozenset({"reviewer"}))
    integrators = [Actor(name=f"op-{i}", roles=frozenset({"operator"})) for i in range(12)]
    for i in range(5):
        task = plan.task_create(actor=PLANNER, project_id=project.pk, title=f"t{i}")
        implement(task, agent("builder"))
        review_record(actor=reviewer, task_id=task.pk, verdict="approved", rationale="ok")
        integration.integration_enqueue(actor=integrators[0], task_id=task.pk)

    barrier = threading.Barrier(len(integrators))
    taken, errors = [], []

    def take(actor):
        try:
            barrier.wait()
            attempt = integration.integration_take_next(actor=actor, project_id=project.pk)
            if attempt is not None:
                taken.append(attempt.pk)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(actor,)) for actor in integrators]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    first = IntegrationAttempt.objects.filter(project=project).order_by("id").first()
    assert taken == [first.pk]  # exactly one, and the oldest
    assert IntegrationAttempt.objects.filter(project=project, state="running").count() == 1
