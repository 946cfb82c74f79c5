"""Invariant 1: the dependency graph is acyclic, edges stay inside one project, no duplicates."""

import itertools

import pytest

from orchestration.errors import DependencyCycle, DependencyExists
from orchestration.models import Dependency, Event, TaskState
from orchestration.services import plan
from tascade.errors import Forbidden, InvalidInput
from tests.conftest import PLANNER, agent

pytestmark = pytest.mark.django_db


def test_direct_cycle_is_refused(make_task, edge):
    """Guards against storing A->B and B->A."""
    a, b = make_task("a"), make_task("b")
    edge(a, b)
    with pytest.raises(DependencyCycle):
        edge(b, a)
    assert Dependency.objects.count() == 1


def test_cycle_through_a_long_path_is_refused(make_task, edge):
    """Guards against a cycle check that only looks one edge deep."""
    chain = [make_task(f"t{i}") for i in range(6)]
    for left, right in itertools.pairwise(chain):
        edge(left, right)
    with pytest.raises(DependencyCycle) as refused:
        edge(chain[-1], chain[0])
    assert refused.value.details == {"prerequisite_id": chain[-1].pk, "dependent_id": chain[0].pk}
    assert Dependency.objects.count() == 5


def test_diamond_is_allowed(make_task, edge):
    """Guards against a cycle check that mistakes shared descendants for a cycle."""
    top, left, right, bottom = (make_task(n) for n in "tlrb")
    edge(top, left)
    edge(top, right)
    edge(left, bottom)
    edge(right, bottom)
    assert Dependency.objects.count() == 4


def test_self_loop_is_refused(make_task, edge):
    task = make_task()
    with pytest.raises(DependencyCycle):
        edge(task, task)


def test_duplicate_edge_is_refused(make_task, edge):
    a, b = make_task("a"), make_task("b")
    edge(a, b)
    with pytest.raises(DependencyExists):
        edge(a, b, unlock_on="integrated")


def test_edge_across_projects_is_refused(project, make_task):
    """Guards against an edge whose end lives in another project."""
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    foreign = plan.task_create(actor=PLANNER, project_id=other.pk, title="foreign")
    local = make_task()
    events_before = Event.objects.count()
    with pytest.raises(InvalidInput) as refused:
        plan.dependency_add(
            actor=PLANNER, project_id=project.pk, prerequisite_id=foreign.pk, dependent_id=local.pk
        )
    assert "prerequisite" in refused.value.details["fields"]
    assert Dependency.objects.count() == 0
    assert Event.objects.count() == events_before


def test_adding_an_unmet_edge_sends_a_ready_task_back_to_backlog(make_task, edge):
    a, b = make_task("a"), make_task("b")
    assert b.state == TaskState.READY
    edge(a, b)
    b.refresh_from_db()
    assert (b.state, b.unmet_prerequisites) == (TaskState.BACKLOG, 1)


def test_agents_cannot_change_the_graph(make_task):
    a, b = make_task("a"), make_task("b")
    with pytest.raises(Forbidden):
        plan.dependency_add(
            actor=agent(), project_id=a.project_id, prerequisite_id=a.pk, dependent_id=b.pk
        )
