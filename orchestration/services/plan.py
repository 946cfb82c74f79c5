"""Writing the plan: projects, phases, milestones, tasks and dependency edges.

Structure changes take the project's graph lock (its row), which serialises cycle checks
and task-number allocation, and bump the project's plan version.
"""

from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils.text import slugify

from governance.actors import Actor, Role
from orchestration.errors import DependencyCycle, DependencyExists
from orchestration.locks import lock_project, lock_tasks
from orchestration.models import (
    SATISFYING_STATES,
    Dependency,
    Milestone,
    Phase,
    Project,
    Task,
    TaskState,
    UnlockOn,
)
from orchestration.paths import PathError, normalise_list
from orchestration.selectors import project_visible_or_404
from orchestration.services.events import event_record
from orchestration.services.lifecycle import holds_end, pool_state, transition_apply, utcnow
from tascade.errors import Forbidden, InvalidInput
from tascade.transactions import retry_on_conflict

S = TaskState


def bump_plan_version(project: Project) -> None:
    project.plan_version += 1
    project.save(update_fields=["plan_version"])


@retry_on_conflict
def project_create(
    *,
    actor: Actor,
    name: str,
    slug: str = "",
    description: str = "",
    lease_ttl_seconds: int | None = None,
    reservation_ttl_seconds: int | None = None,
) -> Project:
    actor.require(Role.PLANNER)
    if actor.project_id is not None:
        raise Forbidden("A key scoped to one project cannot create projects.")
    slug = slug or slugify(name)[:100]
    if not slug:
        raise InvalidInput("Give the project a slug.", fields={"slug": ["Must not be blank."]})
    with transaction.atomic():
        if Project.objects.filter(slug=slug).exists():
            raise InvalidInput(
                "A project with this slug exists.", fields={"slug": ["Already taken."]}
            )
        project = Project(name=name, slug=slug, description=description, created_by=actor.name)
        if lease_ttl_seconds is not None:
            project.lease_ttl_seconds = lease_ttl_seconds
        if reservation_ttl_seconds is not None:
            project.reservation_ttl_seconds = reservation_ttl_seconds
        project.save()
        event_record(project=project, kind="project.created", actor=actor.name, slug=slug)
    return project


@retry_on_conflict
def phase_create(
    *, actor: Actor, project_id: int, name: str, description: str = "", position: int = 0
) -> Phase:
    actor.require(Role.PLANNER)
    project_visible_or_404(actor, project_id)
    with transaction.atomic():
        project = lock_project(project_id)
        phase = Phase.objects.create(
            project=project, name=name, description=description, position=position
        )
        bump_plan_version(project)
        event_record(
            project=project, kind="phase.created", actor=actor.name, phase_id=phase.pk, name=name
        )
    return phase


@retry_on_conflict
def milestone_create(
    *,
    actor: Actor,
    project_id: int,
    phase_id: int,
    name: str,
    description: str = "",
    position: int = 0,
) -> Milestone:
    actor.require(Role.PLANNER)
    project_visible_or_404(actor, project_id)
    with transaction.atomic():
        project = lock_project(project_id)
        phase = in_project(Phase, phase_id, project, "phase")
        milestone = Milestone.objects.create(
            project=project, phase=phase, name=name, description=description, position=position
        )
        bump_plan_version(project)
        event_record(
            project=project,
            kind="milestone.created",
            actor=actor.name,
            milestone_id=milestone.pk,
            phase_id=phase.pk,
            name=name,
        )
    return milestone


def in_project(model, pk: int | None, project: Project, field: str):
    """Fetch a referenced object, refusing one from another project (or none at all)."""
    if pk is None:
        return None
    obj = model.objects.filter(pk=pk, project=project).first()
    if obj is None:
        raise InvalidInput(
            f"{field} {pk} is not part of this project.",
            fields={field: [f"No {field} {pk} in project {project.pk}."]},
        )
    return obj


@retry_on_conflict
def task_create(
    *,
    actor: Actor,
    project_id: int,
    milestone_id: int | None = None,
    parent_id: int | None = None,
    **fields: Any,
) -> Task:
    """Add one task (``fields`` as in ``task_insert``) as its own plan version."""
    actor.require(Role.PLANNER)
    project_visible_or_404(actor, project_id)
    with transaction.atomic():
        project = lock_project(project_id)
        task = task_insert(
            project,
            actor=actor.name,
            milestone=in_project(Milestone, milestone_id, project, "milestone"),
            parent=in_project(Task, parent_id, project, "parent"),
            **fields,
        )
        bump_plan_version(project)
    return task


PATH_FIELDS = ("expected_paths", "exclusive_paths")


def clean_paths(name: str, value: Any) -> list[str]:
    """A task's path globs, validated and normalised (``orchestration/paths.py``), or 400."""
    try:
        return normalise_list(value if value is not None else [])
    except PathError as exc:
        raise InvalidInput(str(exc), field=name, fields={name: [str(exc)]}) from None


def task_insert(
    project: Project,
    *,
    actor: str,
    title: str,
    description: str = "",
    work_spec: dict[str, Any] | None = None,
    task_class: str = "feature",
    priority: int = 100,
    capability_tags: list[str] | None = None,
    expected_paths: list[str] | None = None,
    exclusive_paths: list[str] | None = None,
    max_attempts: int | None = None,
    milestone: Milestone | None = None,
    parent: Task | None = None,
) -> Task:
    """Add a task to a locked project (the caller bumps the plan version once)."""
    project.task_number_seq += 1
    project.save(update_fields=["task_number_seq"])
    task = Task(
        project=project,
        milestone=milestone,
        parent=parent,
        number=project.task_number_seq,
        title=title,
        description=description,
        work_spec=work_spec or {},
        task_class=task_class,
        priority=priority,
        capability_tags=sorted(set(capability_tags or [])),
        expected_paths=clean_paths("expected_paths", expected_paths),
        exclusive_paths=clean_paths("exclusive_paths", exclusive_paths),
        created_by=actor,
        state_changed_at=utcnow(),
    )
    if max_attempts is not None:
        task.max_attempts = max_attempts
    task.become_ready()  # no edges yet: a new task is ready until one is added
    task.save()
    event_record(
        project=project,
        task=task,
        kind="task.created",
        actor=actor,
        ref=task.ref,
        title=title,
        state=task.state,
    )
    return task


def _reachable(start_id: int, target_id: int) -> bool:
    """Is ``target`` reachable from ``start`` along dependency edges? (recursive CTE)"""
    table = Dependency._meta.db_table
    sql = f"""
        WITH RECURSIVE reach(task_id) AS (
            SELECT dependent_id FROM {table} WHERE prerequisite_id = %s
            UNION
            SELECT d.dependent_id FROM {table} d JOIN reach r ON d.prerequisite_id = r.task_id
        )
        SELECT 1 FROM reach WHERE task_id = %s LIMIT 1
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [start_id, target_id])
        return cursor.fetchone() is not None


@retry_on_conflict
def dependency_add(
    *,
    actor: Actor,
    project_id: int,
    prerequisite_id: int,
    dependent_id: int,
    unlock_on: str = UnlockOn.IMPLEMENTED,
    now: datetime | None = None,
) -> Dependency:
    """Add an edge. Refuses cycles even against concurrent inserts (the graph lock)."""
    actor.require(Role.PLANNER)
    project_visible_or_404(actor, project_id)
    now = now or utcnow()
    with transaction.atomic():
        project = lock_project(project_id)
        edge = edge_insert(
            project,
            actor=actor.name,
            prerequisite=in_project(Task, prerequisite_id, project, "prerequisite"),
            dependent=in_project(Task, dependent_id, project, "dependent"),
            unlock_on=unlock_on,
            now=now,
        )
        bump_plan_version(project)
    return edge


def edge_insert(
    project: Project,
    *,
    actor: str,
    prerequisite: Task,
    dependent: Task,
    unlock_on: str,
    now: datetime,
) -> Dependency:
    """Add an edge in a locked project: no self-loop, no duplicate, no cycle.

    The project lock serialises every edge insert of the project, so the cycle check cannot
    race another insert.
    """
    if prerequisite.pk == dependent.pk:
        raise DependencyCycle("A task cannot depend on itself.", task_id=dependent.pk)
    if Dependency.objects.filter(prerequisite=prerequisite, dependent=dependent).exists():
        raise DependencyExists(prerequisite_id=prerequisite.pk, dependent_id=dependent.pk)
    if _reachable(dependent.pk, prerequisite.pk):
        raise DependencyCycle(
            f"{dependent.ref} already leads to {prerequisite.ref}; "
            f"{prerequisite.ref} -> {dependent.ref} would close a cycle.",
            prerequisite_id=prerequisite.pk,
            dependent_id=dependent.pk,
        )
    edge = Dependency.objects.create(
        project=project,
        prerequisite=prerequisite,
        dependent=dependent,
        unlock_on=unlock_on,
        created_by=actor,
    )
    event_record(
        project=project,
        task=dependent,
        kind="dependency.added",
        actor=actor,
        dependency_id=edge.pk,
        prerequisite=prerequisite.ref,
        dependent=dependent.ref,
        unlock_on=unlock_on,
    )
    # Lock both ends (id order) so the prerequisite's state cannot move between this read
    # and the commit: its own transition would miss the new edge otherwise.
    locked = {t.pk: t for t in lock_tasks([prerequisite.pk, dependent.pk])}
    prerequisite, dependent = locked[prerequisite.pk], locked[dependent.pk]
    if prerequisite.state not in SATISFYING_STATES[UnlockOn(unlock_on)]:
        dependent.unmet_prerequisites += 1
    task_material_change(
        dependent, actor=actor, now=now, reason=f"new prerequisite {prerequisite.ref}"
    )
    return edge


def edge_delete(project: Project, *, actor: str, edge: Dependency, now: datetime) -> None:
    """Remove an edge in a locked project; the dependent may become ready."""
    locked = {t.pk: t for t in lock_tasks([edge.prerequisite_id, edge.dependent_id])}
    prerequisite, dependent = locked[edge.prerequisite_id], locked[edge.dependent_id]
    if prerequisite.state not in SATISFYING_STATES[UnlockOn(edge.unlock_on)]:
        dependent.unmet_prerequisites -= 1
    event_record(
        project=project,
        task=dependent,
        kind="dependency.removed",
        actor=actor,
        dependency_id=edge.pk,
        prerequisite=prerequisite.ref,
        dependent=dependent.ref,
    )
    edge.delete()
    task_material_change(
        dependent, actor=actor, now=now, reason=f"prerequisite {prerequisite.ref} removed"
    )
    if dependent.state == S.BACKLOG and dependent.unmet_prerequisites == 0:
        transition_apply(
            dependent,
            dependent.become_ready_reserved if dependent.holder else dependent.become_ready,
            actor=actor,
            kind="task.ready",
            now=now,
            reason=f"prerequisite {prerequisite.ref} removed",
        )


def task_material_change(task: Task, *, actor: str, now: datetime, reason: str) -> None:
    """A change to what the task means (scope, spec, dependencies, constraints).

    Pre-start work is expendable: a claim or reservation is released and the task goes back
    to the pool. Started work is sacred: it keeps its snapshot and learns of the change on
    its next heartbeat through ``material_revision``. The task row must be locked.
    """
    task.material_revision += 1
    if task.state in (S.CLAIMED, S.RESERVED):
        holds_end(task, reason=f"plan changed: {reason}", now=now, actor=actor)
        target = pool_state(task)
        transition = task.return_to_pool if task.state == S.CLAIMED else task.drop_reservation
        transition_apply(
            task,
            transition,
            target,
            actor=actor,
            kind="task.released",
            now=now,
            reason=f"plan changed: {reason}",
            extra_fields=("material_revision", "unmet_prerequisites"),
        )
    elif task.state == S.READY and task.unmet_prerequisites > 0:
        transition_apply(
            task,
            task.fall_back,
            actor=actor,
            kind="task.fell_back",
            now=now,
            reason=reason,
            extra_fields=("material_revision", "unmet_prerequisites"),
        )
    elif task.state == S.BACKLOG and task.holder:
        holds_end(task, reason=f"plan changed: {reason}", now=now, actor=actor)
        task.save(
            update_fields=[
                "material_revision",
                "unmet_prerequisites",
                "holder",
                "hold_expires_at",
                "updated_at",
            ]
        )
    else:
        task.save(update_fields=["material_revision", "unmet_prerequisites", "updated_at"])
