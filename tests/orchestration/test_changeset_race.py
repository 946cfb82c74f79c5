"""A changeset applied while agents claim, start and heartbeat never corrupts work in flight."""

import contextlib
import random
import threading
import time

import pytest
from django.db import connection

from orchestration.models import (
    Event,
    ExecutionSnapshot,
    Lease,
    LeaseStatus,
    Project,
    Task,
    TaskState,
)
from orchestration.services import leases, plan
from orchestration.services.changesets import changeset_apply, changeset_create
from tascade.errors import DomainError
from tests.conftest import PLANNER, agent


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
def test_changesets_racing_agents_never_leave_a_claim_without_its_lease():
    """Guards against a task claimed against a released lease, or started without snapshot."""
    project = plan.project_create(actor=PLANNER, name="Race", slug="race")
    tasks = [
        plan.task_create(actor=PLANNER, project_id=project.pk, title=f"t{i}") for i in range(24)
    ]
    stop = time.monotonic() + 6
    crashes: list[BaseException] = []

    def work(name):
        actor = agent(name)
        rng = random.Random(name)
        try:
            while time.monotonic() < stop:
                try:
                    lease = leases.task_claim_next(actor=actor, project_id=project.pk)
                    if lease is None:
                        continue
                    if rng.random() < 0.7:
                        leases.task_start(
                            actor=actor, task_id=lease.task_id, lease_token=lease.token
                        )
                    for _ in range(rng.randint(0, 3)):
                        leases.lease_heartbeat(
                            actor=actor, task_id=lease.task_id, lease_token=lease.token
                        )
                    leases.task_release(actor=actor, task_id=lease.task_id, lease_token=lease.token)
                except DomainError:
                    pass  # a 409 is a fair answer; anything else is a crash
        except BaseException as exc:
            crashes.append(exc)
        finally:
            connection.close()

    def replan():
        rng = random.Random(0)
        try:
            round_ = 0
            while time.monotonic() < stop:
                round_ += 1
                chosen = rng.sample(tasks, 8)
                operations = [
                    {
                        "op": "update_task",
                        "task": t.ref,
                        "work_spec": {"objective": f"round {round_}"},
                    }
                    for t in chosen
                ]
                changeset = changeset_create(
                    actor=PLANNER,
                    project_id=project.pk,
                    base_version=Project.objects.get(pk=project.pk).plan_version,
                    operations=operations,
                )
                with contextlib.suppress(DomainError):  # a 409 is a fair answer
                    changeset_apply(actor=PLANNER, changeset_id=changeset.pk, rebase=True)
        except BaseException as exc:
            crashes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(f"agent-{i}",)) for i in range(8)]
    threads.append(threading.Thread(target=replan))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert crashes == []
    for task in Task.objects.filter(project=project):
        live = list(Lease.objects.filter(task=task, status=LeaseStatus.ACTIVE))
        if task.state in (TaskState.CLAIMED, TaskState.IN_PROGRESS):
            assert len(live) == 1 and live[0].agent == task.holder, task.ref
            if task.state == TaskState.IN_PROGRESS:
                assert ExecutionSnapshot.objects.filter(lease=live[0]).exists(), task.ref
        else:
            assert live == [], task.ref
    # The race really happened: plan changes released claims and reached started work.
    released = Event.objects.filter(
        project=project, kind="task.released", payload__reason__startswith="plan changed"
    )
    assert released.exists()
    assert Lease.objects.filter(task__project=project, snapshot__isnull=False).exists()
