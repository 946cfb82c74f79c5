"""Every row lock orchestration takes, in one place (see docs/concurrency.md).

Lock order, always: project (graph lock) → tasks in ascending id → leases/reservations of
those tasks. ``no_key=True`` (FOR NO KEY UPDATE) lets inserts referencing the row (events,
artifacts, leases) proceed while it is held.
"""

from collections.abc import Iterable

from governance.actors import Actor
from orchestration.models import Project, Task
from tascade.errors import NotFound


def lock_project(project_id: int) -> Project:
    """The graph lock: serialises edge inserts (cycle checks) and task-number allocation."""
    return Project.objects.select_for_update(no_key=True).get(pk=project_id)


def lock_task(task_id: int, *, actor: Actor | None = None) -> Task:
    """Lock one task (its project comes along, unlocked). With ``actor``, a task the actor
    may not see is reported as missing, exactly like one that does not exist."""
    task = (
        Task.objects.select_for_update(no_key=True, of=("self",))
        .select_related("project")
        .filter(pk=task_id)
        .first()
    )
    if task is None or (actor is not None and not actor.can_see_project(task.project_id)):
        raise NotFound("No such task.", task_id=task_id)
    return task


def lock_tasks(task_ids: Iterable[int]) -> list[Task]:
    """Lock several tasks in ascending id order, so two writers can never deadlock."""
    ids = sorted(set(task_ids))
    if not ids:
        return []
    return list(
        Task.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=ids).order_by("pk")
    )
