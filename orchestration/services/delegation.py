"""Delegation: an agent splits the task it holds into child tasks and lets go of it.

The parent becomes ``delegated``; from then on its completion level follows its children's
(``lifecycle.parent_follow``): ``implemented`` when every child is at least implemented,
``integrated`` when every child is integrated. Children are ordinary tasks: claimed, reviewed
and merged on their own, and they may be split in turn.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction

from governance.actors import Actor, Role
from orchestration.locks import lock_project
from orchestration.models import LeaseStatus, Task, TaskState, UnlockOn
from orchestration.services.leases import fenced_write
from orchestration.services.lifecycle import lease_end, transition_apply, utcnow
from orchestration.services.plan import bump_plan_version, edge_insert, task_insert
from tascade.errors import InvalidInput, NotFound
from tascade.transactions import retry_on_conflict

S = TaskState

# Enough for any honest split; a runaway agent cannot flood the plan in one call.
MAX_CHILDREN = 50


@dataclass(frozen=True)
class Delegation:
    parent: Task
    children: list[Task]


def _check_children(children: list[dict[str, Any]]) -> None:
    """Keys unique, ``depends_on`` naming only siblings of this same request."""
    if not children:
        raise InvalidInput("Name at least one child task.", fields={"children": ["Empty."]})
    if len(children) > MAX_CHILDREN:
        raise InvalidInput(
            f"At most {MAX_CHILDREN} children per delegation.",
            fields={"children": [f"{len(children)} given."]},
        )
    keys = [child["key"] for child in children]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise InvalidInput(
            "Each child needs its own key.", fields={"children": [f"Repeated: {duplicates}."]}
        )
    for index, child in enumerate(children):
        unknown = sorted(set(child.get("depends_on", [])) - set(keys))
        if unknown:
            raise InvalidInput(
                f"Child {child['key']!r} depends on keys that are not siblings: {unknown}.",
                fields={"children": {index: {"depends_on": [f"Unknown keys: {unknown}."]}}},
            )


@retry_on_conflict
def task_delegate(
    *,
    actor: Actor,
    task_id: int,
    lease_token: int,
    children: list[dict[str, Any]],
    reason: str = "",
    now: datetime | None = None,
) -> Delegation:
    """Split a held task into children (with edges among them) and release it as delegated.

    Each child is ``{"key", "title", "depends_on": [sibling keys], …task fields}``; a field
    left out is inherited from the parent (milestone, priority, task class, capability tags,
    expected paths). Fenced like every agent write: a stale token changes nothing.
    """
    actor.require(Role.AGENT)
    _check_children(children)
    now = now or utcnow()
    project_id = Task.objects.filter(pk=task_id).values_list("project_id", flat=True).first()
    if project_id is None or not actor.can_see_project(project_id):
        raise NotFound("No such task.", task_id=task_id)
    with transaction.atomic():
        # Lock order: the project (graph lock, for numbers and edges), then the task.
        project = lock_project(project_id)
        with fenced_write(actor, task_id, lease_token, now) as (parent, lease):
            created: dict[str, Task] = {}
            for child in children:
                fields = {k: v for k, v in child.items() if k not in ("key", "depends_on")}
                fields.setdefault("priority", parent.priority)
                fields.setdefault("task_class", parent.task_class)
                fields.setdefault("capability_tags", parent.capability_tags)
                fields.setdefault("expected_paths", parent.expected_paths)
                created[child["key"]] = task_insert(
                    project, actor=actor.name, milestone=parent.milestone, parent=parent, **fields
                )
            for child in children:
                for key in child.get("depends_on", []):
                    edge_insert(
                        project,
                        actor=actor.name,
                        prerequisite=created[key],
                        dependent=created[child["key"]],
                        unlock_on=UnlockOn.IMPLEMENTED,
                        now=now,
                    )
            lease_end(
                parent, status=LeaseStatus.COMPLETED, reason="delegated", now=now, lease=lease
            )
            parent.delegated_at = now
            refs = [task.ref for task in created.values()]
            transition_apply(
                parent,
                parent.delegate,
                actor=actor.name,
                kind="task.delegated",
                now=now,
                reason=reason or f"split into {', '.join(refs)}",
                extra_fields=("delegated_at",),
                lease_token=lease.token,
                children=refs,
            )
            bump_plan_version(project)
    children_tasks = list(Task.objects.filter(pk__in=[t.pk for t in created.values()]))
    return Delegation(parent=parent, children=children_tasks)
