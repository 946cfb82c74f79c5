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
    event = Event.objects.create(
        project_id=project_id, task=task, kind=kind, actor=actor, payload=payload
    )
    events_announce(project_id)
    return event


def events_save(events: list[Event]) -> None:
    """Write many events at once (built with ``event_build``)."""
    Event.objects.bulk_create(events, batch_size=1000)
    for project_id in sorted({event.project_id for event in events}):
        events_announce(project_id)


def events_announce(project_id: int) -> None:
    """Tell the webhooks that the project has new events, once the writing transaction
    commits (nothing happens inside it but a cached lookup)."""
    from orchestration.services.webhooks import webhooks_announce

    webhooks_announce(project_id)


def event_build(*, task: Task, kind: str, actor: str, **payload: Any) -> Event:
    """An unsaved event, for services that write many at once with ``events_save``."""
    return Event(project_id=task.project_id, task=task, kind=kind, actor=actor, payload=payload)


def state_change_payload(task: Task, old_state: str, **extra: Any) -> dict[str, Any]:
    return {"ref": task.ref, "from": old_state, "to": task.state, **extra}
