"""Read-side queries. Every one is scoped to what the actor may see: a project-scoped key
gets 404 (never 403) for anything outside its project, so nothing leaks by status code."""

from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

from governance.actors import Actor
from governance.models import Review
from orchestration.models import (
    POOL_ORDER,
    Artifact,
    Dependency,
    Event,
    ExecutionSnapshot,
    Lease,
    LeaseStatus,
    PathOverlap,
    Project,
    Reservation,
    ReservationStatus,
    Task,
    claimable_by,
)
from orchestration.scheduling import in_flight, paths_of
from tascade.errors import NotFound


def projects_visible(actor: Actor) -> QuerySet[Project]:
    projects = Project.objects.all()
    if actor.project_id is not None:
        projects = projects.filter(pk=actor.project_id)
    return projects


def project_visible_or_404(actor: Actor, project_id: int) -> Project:
    project = projects_visible(actor).filter(pk=project_id).first()
    if project is None:
        raise NotFound("No such project.", project_id=project_id)
    return project


def _scoped(queryset: QuerySet, actor: Actor) -> QuerySet:
    if actor.project_id is not None:
        queryset = queryset.filter(project_id=actor.project_id)
    return queryset


def tasks_visible(actor: Actor) -> QuerySet[Task]:
    return _scoped(Task.objects.all(), actor)


def task_visible_or_404(actor: Actor, task_id: int) -> Task:
    task = tasks_visible(actor).filter(pk=task_id).first()
    if task is None:
        raise NotFound("No such task.", task_id=task_id)
    return task


def object_visible_or_404(model, actor: Actor, pk: int):
    """Any project-owned object (phase, milestone, edge, lease, …) the actor may see."""
    obj = _scoped(model.objects.all(), actor).filter(pk=pk).first()
    if obj is None:
        raise NotFound(f"No such {model._meta.verbose_name}.", id=pk)
    return obj


def project_children(model, actor: Actor, project_id: int) -> QuerySet:
    project = project_visible_or_404(actor, project_id)
    return model.objects.filter(project=project)


def ready_tasks(actor: Actor, project_id: int, capabilities: list[str] | None = None):
    """What claim-next would offer this agent, in the order it would offer it.

    Ready tasks plus those reserved for this agent. Index lookup on ``task_pool_order``.
    """
    project = project_visible_or_404(actor, project_id)
    tasks = Task.objects.filter(project=project).filter(claimable_by(actor.name))
    if capabilities is not None:
        if connection.vendor == "postgresql":
            tasks = tasks.filter(capability_tags__contained_by=capabilities)
        else:
            fitting = [
                t.pk
                for t in tasks.only("pk", "capability_tags")
                if set(t.capability_tags) <= set(capabilities)
            ]
            tasks = tasks.filter(pk__in=fitting)
    return tasks.order_by(*POOL_ORDER)


def path_overlaps_of(task: Task) -> list[PathOverlap]:
    """Unpredicted overlaps flagged on ``task``, from either side, newest first."""
    return list(
        PathOverlap.objects.filter(Q(task=task) | Q(other_task=task))
        .select_related("task", "other_task")
        .order_by("-id")[:50]
    )


def task_collisions(actor: Actor, task_id: int) -> dict[str, Any]:
    """Which tasks in flight touch the paths of ``task`` (itself excluded), and whether they
    hold any of them exclusively: what claim-next and the ready list score it by now."""
    task = task_visible_or_404(actor, task_id)
    schedule = in_flight(task.project_id, exclude=[task.pk]).schedule(task)
    return {
        "task": task,
        "paths": [path for path, _literal in paths_of(task)],
        "score": schedule.score,
        "offered": schedule.offered,
        "collisions": [c.as_dict() for c in schedule.collisions],
        "blocked_by": [c.as_dict() for c in schedule.blocked_by],
    }


def task_context(actor: Actor, task_id: int) -> dict[str, Any]:
    """Everything an agent needs to work on a task, in one read."""
    task = task_visible_or_404(actor, task_id)
    lease = Lease.objects.filter(task=task, status=LeaseStatus.ACTIVE).first()
    reservation = Reservation.objects.filter(task=task, status=ReservationStatus.ACTIVE).first()
    snapshot = ExecutionSnapshot.objects.filter(task=task).order_by("-id").first()
    incoming = list(
        Dependency.objects.filter(dependent=task).select_related("prerequisite").order_by("id")
    )
    latest_artifacts = _latest_artifacts([edge.prerequisite_id for edge in incoming])
    outgoing = list(
        Dependency.objects.filter(prerequisite=task).select_related("dependent").order_by("id")
    )
    return {
        "task": task,
        "lease": lease,
        "reservation": reservation,
        "snapshot": snapshot,
        "plan_changed": bool(snapshot and snapshot.material_revision != task.material_revision),
        "prerequisites": [
            {
                "edge": edge,
                "task": edge.prerequisite,
                "latest_artifact": latest_artifacts.get(edge.prerequisite_id),
            }
            for edge in incoming
        ],
        "dependents": [{"edge": edge, "task": edge.dependent} for edge in outgoing],
        "artifacts": list(Artifact.objects.filter(task=task).order_by("-id")[:20]),
        # A reviewer's note (changes requested, rejection) is part of what the agent reads.
        "reviews": list(Review.objects.filter(task=task).order_by("-id")[:20]),
        # Files its artifacts (or another in-flight task's) touched that the plan did not
        # predict would meet.
        "path_overlaps": path_overlaps_of(task),
    }


def _latest_artifacts(task_ids: list[int]) -> dict[int, Artifact]:
    latest: dict[int, Artifact] = {}
    for artifact in Artifact.objects.filter(task_id__in=task_ids).order_by("task_id", "-id"):
        latest.setdefault(artifact.task_id, artifact)
    return latest


def project_graph(actor: Actor, project_id: int, milestone_id: int | None = None) -> dict:
    """Nodes and edges, as plain values (it has to stay cheap at 100,000 tasks)."""
    project = project_visible_or_404(actor, project_id)
    tasks = Task.objects.filter(project=project)
    edges = Dependency.objects.filter(project=project)
    if milestone_id is not None:
        tasks = tasks.filter(milestone_id=milestone_id)
        edges = edges.filter(
            Q(prerequisite__milestone_id=milestone_id) | Q(dependent__milestone_id=milestone_id)
        )
    nodes = [
        {**row, "ref": f"T{row.pop('number')}"}
        for row in tasks.order_by("id").values(
            "id",
            "number",
            "title",
            "state",
            "priority",
            "task_class",
            "milestone_id",
            "parent_id",
            "unmet_prerequisites",
        )
    ]
    return {
        "project_id": project.pk,
        "plan_version": project.plan_version,
        "nodes": nodes,
        "edges": list(
            edges.order_by("id").values("id", "prerequisite_id", "dependent_id", "unlock_on")
        ),
    }


def snapshot_for_task(actor: Actor, task_id: int) -> ExecutionSnapshot:
    task = task_visible_or_404(actor, task_id)
    snapshot = ExecutionSnapshot.objects.filter(task=task).order_by("-id").first()
    if snapshot is None:
        raise NotFound("This task has not been started, so it has no snapshot.", task_id=task_id)
    return snapshot


# --- the event log ---------------------------------------------------------------------
# Events are read in commit order. On PostgreSQL each event carries its transaction id
# (txid); ordering by (txid, id) and returning only events of transactions older than the
# oldest one still running means a reader following ``after`` never skips an event that
# commits late. SQLite serialises writers, so id order is commit order there.
_PG_FINISHED = RawSQL("pg_snapshot_xmin(pg_current_snapshot())::text::bigint", [])
_PG_OWN_TX = RawSQL("pg_current_xact_id_if_assigned()::text::bigint", [])


def events_after(
    actor: Actor,
    project_id: int,
    *,
    after: int | None = None,
    task_id: int | None = None,
    kinds: list[str] | None = None,
    limit: int = 100,
) -> list[Event]:
    project = project_visible_or_404(actor, project_id)
    events = Event.objects.filter(project=project)
    if connection.vendor == "postgresql":
        events = events.filter(Q(txid__lt=_PG_FINISHED) | Q(txid=_PG_OWN_TX))
    if after is not None:
        anchor = Event.objects.filter(project=project, pk=after).values("txid").first()
        if anchor is None:
            raise NotFound("No such event in this project.", after=after)
        if anchor["txid"] is None:
            events = events.filter(pk__gt=after)
        else:
            events = events.filter(
                Q(txid__gt=anchor["txid"]) | Q(txid=anchor["txid"], pk__gt=after)
            )
    if task_id is not None:
        events = events.filter(task_id=task_id)
    if kinds:
        events = events.filter(kind__in=kinds)
    return list(events.order_by("txid", "id")[:limit])
