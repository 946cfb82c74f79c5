"""Changesets: validated, previewed, applied atomically once against their base version."""

import pytest

from orchestration.errors import ChangesetApplied, DependencyCycle, PlanVersionStale
from orchestration.models import (
    Dependency,
    Event,
    Lease,
    Milestone,
    Phase,
    Project,
    Reservation,
    Task,
    TaskState,
)
from orchestration.services import leases, operations, plan
from orchestration.services.changesets import (
    changeset_apply,
    changeset_create,
    changeset_preview,
)
from tascade.errors import Forbidden, InvalidInput
from tests.conftest import OPERATOR, PLANNER, agent
from tests.orchestration.helpers import claim

pytestmark = pytest.mark.django_db
A = agent("agent-a")


def _version(project):
    return Project.objects.get(pk=project.pk).plan_version


def _changeset(project, *operations, base=None):
    return changeset_create(
        actor=PLANNER,
        project_id=project.pk,
        base_version=_version(project) if base is None else base,
        operations=list(operations),
    )


def _apply(project, *operations, **kwargs):
    return changeset_apply(
        actor=PLANNER, changeset_id=_changeset(project, *operations).pk, **kwargs
    )


def _fresh(task):
    return Task.objects.get(pk=task.pk)


def test_a_whole_plan_is_a_changeset_against_the_empty_project(project):
    version = _version(project)
    applied = _apply(
        project,
        {"op": "add_phase", "key": "new:build", "name": "Build"},
        {"op": "add_milestone", "key": "new:m1", "phase": "new:build", "name": "M1"},
        {
            "op": "add_task",
            "key": "new:api",
            "title": "API",
            "milestone": "new:m1",
            "work_spec": {"objective": "serve"},
        },
        {"op": "add_task", "key": "new:docs", "title": "Docs", "milestone": "new:m1"},
        {"op": "add_dependency", "prerequisite": "new:api", "dependent": "new:docs"},
    )
    assert applied.applied_version == version + 1 == _version(project)
    assert Phase.objects.filter(project=project).count() == 1
    assert Milestone.objects.get(project=project).name == "M1"
    api, docs = Task.objects.filter(project=project).order_by("number")
    assert (api.state, docs.state) == (TaskState.READY, TaskState.BACKLOG)
    assert applied.impact["created"] == ["T1", "T2"]


def test_material_update_releases_an_unstarted_claim_and_tells_started_work(make_task):
    claimed, started, idle = make_task("c"), make_task("s"), make_task("i")
    lease = claim(claimed, A)
    other = agent("agent-b")
    started_lease = claim(started, other)
    leases.task_start(actor=other, task_id=started.pk, lease_token=started_lease.token)
    project = claimed.project
    applied = _apply(
        project,
        *[
            {"op": "update_task", "task": t.ref, "work_spec": {"objective": "new scope"}}
            for t in (claimed, started, idle)
        ],
    )
    assert Lease.objects.get(pk=lease.pk).status == "revoked"
    assert _fresh(claimed).state == TaskState.READY
    assert _fresh(started).state == TaskState.IN_PROGRESS  # sacred
    beat = leases.lease_heartbeat(actor=other, task_id=started.pk, lease_token=started_lease.token)
    assert beat.plan_changed is True
    assert applied.impact["claims_released"] == [claimed.ref]
    assert applied.impact["protected_told"] == [started.ref]
    assert set(applied.impact["material"]) == {claimed.ref, started.ref, idle.ref}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "reprioritise", "priority": 1},
        {"op": "update_task", "title": "better title"},
        {"op": "update_task", "priority": 3},
    ],
)
def test_reordering_retitling_and_reprioritising_are_not_material(make_task, operation):
    task = make_task()
    lease = claim(task, A)
    applied = _apply(task.project, {**operation, "task": task.ref})
    assert Lease.objects.get(pk=lease.pk).status == "active"
    assert _fresh(task).material_revision == task.material_revision
    assert applied.impact["material"] == []
    assert applied.impact["not_material"] == [task.ref]


def test_move_is_not_material(project, make_task):
    phase = plan.phase_create(actor=PLANNER, project_id=project.pk, name="P")
    milestone = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=phase.pk, name="M"
    )
    task = make_task()
    lease = claim(task, A)
    _apply(project, {"op": "move_task", "task": task.ref, "milestone": milestone.pk})
    assert _fresh(task).milestone_id == milestone.pk
    assert Lease.objects.get(pk=lease.pk).status == "active"


def test_a_new_dependency_and_its_removal(project, make_task):
    first, second = make_task("1"), make_task("2")
    _apply(project, {"op": "add_dependency", "prerequisite": first.ref, "dependent": second.ref})
    assert _fresh(second).state == TaskState.BACKLOG
    applied = _apply(
        project, {"op": "remove_dependency", "prerequisite": first.ref, "dependent": second.ref}
    )
    assert _fresh(second).state == TaskState.READY
    assert applied.impact["became_ready"] == [second.ref]
    assert not Dependency.objects.exists()


def test_cancel_and_remove(project, make_task, edge):
    gone, kept, dependent = make_task("gone"), make_task("kept"), make_task("dep")
    edge(gone, dependent)
    operations.task_assign(actor=OPERATOR, task_id=kept.pk, assignee=A.name)
    applied = _apply(
        project,
        {"op": "remove_task", "task": gone.ref},
        {"op": "cancel_task", "task": kept.ref, "reason": "not needed"},
    )
    assert _fresh(gone).state == _fresh(kept).state == TaskState.CANCELLED
    assert _fresh(dependent).state == TaskState.READY  # its only prerequisite was removed
    assert Reservation.objects.get(task=kept).status == "released"
    assert set(applied.impact["cancelled"]) == {gone.ref, kept.ref}


def test_started_work_is_not_cancelled_by_a_plan_change(make_task):
    task = make_task()
    lease = claim(task, A)
    leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token)
    preview = changeset_preview(
        actor=PLANNER,
        changeset_id=_changeset(task.project, {"op": "cancel_task", "task": task.ref}).pk,
    )
    assert preview["valid"] is False
    assert preview["error"]["code"] == "INVALID_TRANSITION"


def test_the_preview_matches_what_apply_does_and_changes_nothing(project, make_task, edge):
    a, b, c = make_task("a"), make_task("b"), make_task("c")
    edge(a, b)
    claim(c, A)
    changeset = _changeset(
        project,
        {"op": "remove_dependency", "prerequisite": a.ref, "dependent": b.ref},
        {"op": "add_dependency", "prerequisite": b.ref, "dependent": c.ref},
        {"op": "add_task", "title": "new"},
    )
    events_before, version_before = Event.objects.count(), _version(project)
    preview = changeset_preview(actor=PLANNER, changeset_id=changeset.pk)
    assert (Event.objects.count(), _version(project)) == (events_before, version_before)
    assert _fresh(c).state == TaskState.CLAIMED and Task.objects.count() == 3
    applied = changeset_apply(actor=PLANNER, changeset_id=changeset.pk)
    assert preview == {"valid": True, "impact": applied.impact}
    assert applied.impact["fell_back"] == [c.ref] and applied.impact["became_ready"] == [b.ref]


def test_a_cycle_is_reported_by_the_preview_and_refused_by_apply(project, make_task, edge):
    a, b = make_task("a"), make_task("b")
    edge(a, b)
    changeset = _changeset(
        project, {"op": "add_dependency", "prerequisite": b.ref, "dependent": a.ref}
    )
    preview = changeset_preview(actor=PLANNER, changeset_id=changeset.pk)
    assert preview["error"]["code"] == "DEPENDENCY_CYCLE"
    assert preview["error"]["details"]["operation_index"] == 0
    with pytest.raises(DependencyCycle):
        changeset_apply(actor=PLANNER, changeset_id=changeset.pk)


def test_a_failing_operation_in_the_middle_leaves_nothing_changed(project, make_task):
    """Guards against half-applied changesets."""
    task = make_task()
    version, events = _version(project), Event.objects.count()
    changeset = _changeset(
        project,
        {"op": "add_task", "title": "first"},
        {"op": "update_task", "task": task.ref, "work_spec": {"objective": "x"}},
        {"op": "add_dependency", "prerequisite": task.ref, "dependent": "T999"},
        {"op": "add_task", "title": "never"},
    )
    with pytest.raises(InvalidInput) as refused:
        changeset_apply(actor=PLANNER, changeset_id=changeset.pk)
    assert refused.value.details["operation_index"] == 2
    assert Task.objects.filter(project=project).count() == 1
    assert _fresh(task).work_spec == {} and _version(project) == version
    assert Event.objects.count() == events + 1  # only changeset.created


def test_a_stale_base_is_refused_with_the_current_version_unless_rebased(project, make_task):
    task = make_task()
    changeset = _changeset(project, {"op": "reprioritise", "task": task.ref, "priority": 5})
    make_task("meanwhile")  # the plan moves on
    with pytest.raises(PlanVersionStale) as refused:
        changeset_apply(actor=PLANNER, changeset_id=changeset.pk)
    assert refused.value.details == {
        "base_version": changeset.base_version,
        "current_version": _version(project),
    }
    applied = changeset_apply(actor=PLANNER, changeset_id=changeset.pk, rebase=True)
    assert applied.status == "applied" and _fresh(task).priority == 5


def test_an_applied_changeset_cannot_be_applied_again(project, make_task):
    task = make_task()
    changeset = _changeset(project, {"op": "reprioritise", "task": task.ref, "priority": 5})
    changeset_apply(actor=PLANNER, changeset_id=changeset.pk)
    with pytest.raises(ChangesetApplied):
        changeset_apply(actor=PLANNER, changeset_id=changeset.pk, rebase=True)


def test_another_projects_objects_are_refused(project, make_task):
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    foreign = plan.task_create(actor=PLANNER, project_id=other.pk, title="foreign")
    local = make_task()
    changeset = _changeset(
        project, {"op": "add_dependency", "prerequisite": foreign.pk, "dependent": local.ref}
    )
    with pytest.raises(InvalidInput):
        changeset_apply(actor=PLANNER, changeset_id=changeset.pk)
    assert not Dependency.objects.exists()


@pytest.mark.parametrize("operations", [[], [{"op": "teleport"}], ["add_task"], None])
def test_unknown_or_malformed_operations_are_errors(project, operations):
    with pytest.raises(InvalidInput):
        changeset_create(
            actor=PLANNER, project_id=project.pk, base_version=1, operations=operations
        )


def test_agents_cannot_change_the_plan(project):
    with pytest.raises(Forbidden):
        changeset_create(
            actor=A,
            project_id=project.pk,
            base_version=1,
            operations=[{"op": "add_task", "title": "x"}],
        )


@pytest.mark.parametrize("ref", ["T²", "T٣", "T" + "9" * 30, "t1", "T-1", ""])
def test_odd_task_refs_are_refused_cleanly(project, make_task, ref):
    """Guards against a ref that looks numeric to Python but not to int() (a 500)."""
    make_task()
    changeset = _changeset(project, {"op": "reprioritise", "task": ref, "priority": 1})
    preview = changeset_preview(actor=PLANNER, changeset_id=changeset.pk)
    assert preview["valid"] is False and preview["error"]["code"] == "VALIDATION_ERROR"
