"""Every row lock orchestration takes, in one place (see docs/concurrency.md).

Lock order, always: project (graph lock) → tasks in ascending id → leases/reservations of
those tasks. ``no_key=True`` (FOR NO KEY UPDATE) lets inserts referencing the row (events,
artifacts, leases) proceed while it is held.
"""

from collections.abc import Iterable

from orchestration.models import Project, Task


def lock_project(project_id: int) -> Project:
    """The graph lock: serialises edge inserts (cycle checks) and task-number allocation."""
    return Project.objects.select_for_update(no_key=True).get(pk=project_id)


def lock_task(task_id: int) -> Task:
    return Task.objects.select_for_update(no_key=True, of=("self",)).get(pk=task_id)


def lock_tasks(task_ids: Iterable[int]) -> list[Task]:
    """Lock several tasks in ascending id order, so two writers can never deadlock."""
    ids = sorted(set(task_ids))
    if not ids:
        return []
    return list(
        Task.objects.select_for_update(no_key=True, of=("self",)).filter(pk__in=ids).order_by("pk")
    )
