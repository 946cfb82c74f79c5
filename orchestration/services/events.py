"""Writing the audit trail. Every service calls this inside its own transaction."""

from typing import Any

from orchestration.models import Event, Project, Task


def event_record(
    *,
    project: Project | int,
    kind: str,
    actor: str,
    task: Task | None = None,
    **payload: Any,
) -> Event:
    project_id = project if isinstance(project, int) else project.pk
    return Event.objects.create(
        project_id=project_id, task=task, kind=kind, actor=actor, payload=payload
    )


def event_build(*, task: Task, kind: str, actor: str, **payload: Any) -> Event:
    """An unsaved event, for services that write many at once with ``bulk_create``."""
    return Event(project_id=task.project_id, task=task, kind=kind, actor=actor, payload=payload)


def state_change_payload(task: Task, old_state: str, **extra: Any) -> dict[str, Any]:
    return {"ref": task.ref, "from": old_state, "to": task.state, **extra}
