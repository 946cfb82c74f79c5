"""Writing the plan: task refs, plan versions, and material changes on held tasks."""

import threading

import pytest
from django.db import connection

from orchestration.models import Project, Reservation, ReservationStatus, Task, TaskState
from orchestration.services import leases, operations, plan
from tascade.errors import Forbidden, InvalidInput
from tests.conftest import OPERATOR, PLANNER, agent
from tests.orchestration.helpers import claim

A = agent("agent-a")


@pytest.mark.django_db
def test_refs_are_sequential_per_project(project, make_task):
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    assert [make_task(str(i)).ref for i in range(3)] == ["T1", "T2", "T3"]
    assert plan.task_create(actor=PLANNER, project_id=other.pk, title="x").ref == "T1"


@pytest.mark.django_db(transaction=True)
@pytest.mark.concurrency
def test_concurrent_task_creation_never_reuses_a_ref():
    """Guards against two tasks created at once getting the same T-number."""
    project = plan.project_create(actor=PLANNER, name="Race", slug="race")
    barrier = threading.Barrier(12)
    errors = []

    def create(i):
        try:
            barrier.wait()
            plan.task_create(actor=PLANNER, project_id=project.pk, title=f"t{i}")
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = sorted(Task.objects.filter(project=project).values_list("number", flat=True))
    assert numbers == list(range(1, 13))


@pytest.mark.django_db
def test_every_structure_change_bumps_the_plan_version(project, make_task, edge):
    start = Project.objects.get(pk=project.pk).plan_version
    phase = plan.phase_create(actor=PLANNER, project_id=project.pk, name="Build")
    plan.milestone_create(actor=PLANNER, project_id=project.pk, phase_id=phase.pk, name="M1")
    a, b = make_task("a"), make_task("b")
    edge(a, b)
    assert Project.objects.get(pk=project.pk).plan_version == start + 5


@pytest.mark.django_db
def test_milestone_of_another_project_is_refused(project):
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    phase = plan.phase_create(actor=PLANNER, project_id=other.pk, name="P")
    milestone = plan.milestone_create(
        actor=PLANNER, project_id=other.pk, phase_id=phase.pk, name="M"
    )
    with pytest.raises(InvalidInput):
        plan.task_create(actor=PLANNER, project_id=project.pk, title="x", milestone_id=milestone.pk)
    assert not Task.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_scoped_key_cannot_create_projects(project):
    from governance.actors import Actor

    scoped = Actor(name="p", roles=frozenset({"planner"}), project_id=project.pk)
    with pytest.raises(Forbidden):
        plan.project_create(actor=scoped, name="New")


@pytest.mark.django_db
def test_new_dependency_releases_an_unstarted_claim(make_task):
    """Invariant 7: pre-start work is expendable when its dependencies change."""
    done, task = make_task("done"), make_task("task")
    from tests.orchestration.helpers import implement

    implement(done, agent("other"))
    lease = claim(task, A)
    plan.dependency_add(
        actor=PLANNER, project_id=task.project_id, prerequisite_id=done.pk, dependent_id=task.pk
    )
    task.refresh_from_db()
    lease.refresh_from_db()
    assert task.state == TaskState.READY  # the new edge is already satisfied
    assert lease.status == "revoked"


@pytest.mark.django_db
def test_new_dependency_releases_a_reservation(make_task):
    before, task = make_task("before"), make_task("task")
    operations.task_assign(actor=OPERATOR, task_id=task.pk, assignee=A.name)
    plan.dependency_add(
        actor=PLANNER, project_id=task.project_id, prerequisite_id=before.pk, dependent_id=task.pk
    )
    assert Reservation.objects.get(task=task).status == ReservationStatus.RELEASED
    task.refresh_from_db()
    assert (task.state, task.holder) == (TaskState.BACKLOG, "")


@pytest.mark.django_db
def test_started_work_keeps_going_and_hears_of_the_change_on_heartbeat(make_task):
    """Invariant 7: in-progress work is sacred; it is told, not stopped."""
    before, task = make_task("before"), make_task("task")
    lease = claim(task, A)
    snapshot = leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token)
    beat = leases.lease_heartbeat(actor=A, task_id=task.pk, lease_token=lease.token)
    assert beat.plan_changed is False
    plan.dependency_add(
        actor=PLANNER, project_id=task.project_id, prerequisite_id=before.pk, dependent_id=task.pk
    )
    beat = leases.lease_heartbeat(actor=A, task_id=task.pk, lease_token=lease.token)
    task.refresh_from_db()
    assert task.state == TaskState.IN_PROGRESS
    assert beat.plan_changed is True
    assert beat.snapshot.pk == snapshot.pk
    assert beat.plan_version > snapshot.plan_version
