"""Versioned plan changesets: validated operations, applied atomically against a base version.

In-progress work is sacred, pre-start work is expendable: a material change (scope, spec,
constraints, dependencies, expected paths) releases claims and reservations on tasks not yet
started, while started tasks keep their snapshot and learn of it on their next heartbeat.
Reordering, reprioritising and retitling are not material.

The impact preview runs exactly the apply code inside a transaction that is then rolled
back, and reads the impact off a before/after comparison: it cannot disagree with apply.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Q

from governance.actors import Actor, Role
from orchestration.errors import (
    ChangesetApplied,
    InvalidTransition,
    PlanVersionStale,
)
from orchestration.locks import lock_project, lock_task
from orchestration.models import (
    Changeset,
    ChangesetStatus,
    Dependency,
    Milestone,
    Phase,
    Project,
    Task,
    TaskClass,
    TaskState,
    UnlockOn,
)
from orchestration.selectors import object_visible_or_404, project_visible_or_404
from orchestration.services.events import event_record
from orchestration.services.lifecycle import holds_end, transition_apply, utcnow
from orchestration.services.plan import (
    PATH_FIELDS,
    clean_paths,
    edge_delete,
    edge_insert,
    task_insert,
    task_material_change,
)
from tascade.errors import DomainError, InvalidInput
from tascade.transactions import retry_on_conflict

S = TaskState
# What a task means: changing any of these is material.
# Paths are material too: the claim was granted on them (docs/scheduling.md).
MATERIAL_FIELDS = frozenset(
    {"description", "work_spec", "task_class", "expected_paths", "exclusive_paths"}
)
UPDATABLE_FIELDS = MATERIAL_FIELDS | {"title", "priority", "capability_tags", "max_attempts"}
STARTED_STATES = (S.IN_PROGRESS, S.DELEGATED, S.IMPLEMENTED, S.INTEGRATED, S.CONFLICT)
OPERATIONS = (
    "add_phase",
    "add_milestone",
    "add_task",
    "update_task",
    "move_task",
    "reprioritise",
    "cancel_task",
    "remove_task",
    "add_dependency",
    "remove_dependency",
)


@dataclass
class _Run:
    project: Project
    actor: str
    now: datetime
    # "new:<key>" names given by the changeset to what it creates, for later operations.
    created: dict[str, Any] = field(default_factory=dict)


def _invalid(message: str, **details) -> InvalidInput:
    return InvalidInput(message, **details)


# Bounds every value must keep before it reaches the database.
_MAX_LENGTH = {"title": 300, "name": 200, "description": 20_000, "reason": 20_000, "key": 100}
_INT_RANGE = {"priority": (0, 1_000_000), "position": (0, 1_000_000), "max_attempts": (1, 100)}
MAX_ID = 2**62


def _field(op: dict, name: str, kind=None, required=True):
    if name not in op:
        if required:
            raise _invalid(f"'{name}' is required.", field=name)
        return None
    value = op[name]
    wrong_type = kind is not None and not isinstance(value, kind)
    if wrong_type or (kind is int and isinstance(value, bool)):
        raise _invalid(f"'{name}' has the wrong type.", field=name)
    if isinstance(value, str) and len(value) > _MAX_LENGTH.get(name, 20_000):
        raise _invalid(f"'{name}' is too long.", field=name)
    low, high = _INT_RANGE.get(name, (None, None))
    if isinstance(value, int) and low is not None and not low <= value <= high:
        raise _invalid(f"'{name}' must be between {low} and {high}.", field=name)
    return value


def _resolve(run: _Run, model, ref, name: str):
    """A reference to something in this project: an id, a task ref ``T7``, or ``new:key``."""
    if isinstance(ref, str) and ref.startswith("new:"):
        obj = run.created.get(ref)
        if not isinstance(obj, model):
            raise _invalid(f"'{ref}' is not created earlier in this changeset.", field=name)
        return obj
    lookup = None
    if isinstance(ref, int) and not isinstance(ref, bool) and 0 < ref < MAX_ID:
        lookup = {"pk": ref}
    elif model is Task and isinstance(ref, str) and re.fullmatch(r"T[0-9]+", ref):
        if len(ref) > 10:
            raise _invalid(f"No task {ref} in this project.", field=name)
        lookup = {"number": int(ref[1:])}
    if lookup is None:
        raise _invalid(
            f"'{name}' must be an id{', a ref like T7' if model is Task else ''} or new:<key>.",
            field=name,
        )
    obj = model.objects.filter(project=run.project, **lookup).first()
    if obj is None:
        # Another project's object is simply not part of this plan.
        raise _invalid(f"'{name}' {ref!r} is not part of this project.", field=name)
    return obj


def _name_new(run: _Run, op: dict, obj) -> None:
    key = op.get("key")
    if key is None:
        return
    if (
        not isinstance(key, str)
        or not key.startswith("new:")
        or len(key) > _MAX_LENGTH["key"]
        or key in run.created
    ):
        raise _invalid("'key' must be a fresh name like new:login.", field="key")
    run.created[key] = obj


# --- the operations ------------------------------------------------------------------------
def _add_phase(run: _Run, op: dict) -> None:
    phase = Phase.objects.create(
        project=run.project,
        name=_field(op, "name", str),
        description=_field(op, "description", str, required=False) or "",
        position=_field(op, "position", int, required=False) or 0,
    )
    _name_new(run, op, phase)


def _add_milestone(run: _Run, op: dict) -> None:
    milestone = Milestone.objects.create(
        project=run.project,
        phase=_resolve(run, Phase, _field(op, "phase"), "phase"),
        name=_field(op, "name", str),
        description=_field(op, "description", str, required=False) or "",
        position=_field(op, "position", int, required=False) or 0,
    )
    _name_new(run, op, milestone)


def _task_fields(op: dict) -> dict:
    fields = {}
    for name, kind in (
        ("description", str),
        ("work_spec", dict),
        ("task_class", str),
        ("priority", int),
        ("capability_tags", list),
        ("expected_paths", list),
        ("exclusive_paths", list),
        ("max_attempts", int),
        ("title", str),
    ):
        value = _field(op, name, kind, required=False)
        if value is not None:
            fields[name] = value
    if "task_class" in fields and fields["task_class"] not in TaskClass.values:
        raise _invalid("Unknown task_class.", field="task_class")
    tags = fields.get("capability_tags")
    if tags is not None and not all(isinstance(v, str) and len(v) <= 1000 for v in tags):
        raise _invalid("'capability_tags' must be a list of strings.", field="capability_tags")
    if "capability_tags" in fields:
        fields["capability_tags"] = sorted(set(fields["capability_tags"]))  # as on insert
    for name in PATH_FIELDS:
        if name in fields:
            fields[name] = clean_paths(name, fields[name])  # as on insert
    return fields


def _add_task(run: _Run, op: dict) -> None:
    fields = _task_fields(op)
    if "title" not in fields:
        raise _invalid("'title' is required.", field="title")
    milestone = op.get("milestone")
    task = task_insert(
        run.project,
        actor=run.actor,
        milestone=_resolve(run, Milestone, milestone, "milestone") if milestone else None,
        **fields,
    )
    _name_new(run, op, task)


def _locked(run: _Run, ref, name: str = "task") -> Task:
    return lock_task(_resolve(run, Task, ref, name).pk)


def _update_task(run: _Run, op: dict) -> None:
    task = _locked(run, _field(op, "task"))
    fields = _task_fields(op)
    unknown = set(op) - {"op", "task"} - UPDATABLE_FIELDS
    if unknown or not fields:
        raise _invalid(
            f"update_task changes any of: {', '.join(sorted(UPDATABLE_FIELDS))}.",
            unknown=sorted(unknown),
        )
    changed = [name for name, value in fields.items() if getattr(task, name) != value]
    for name in changed:
        setattr(task, name, fields[name])
    if changed:
        task.save(update_fields=[*changed, "updated_at"])
    if MATERIAL_FIELDS & set(changed):
        task_material_change(
            task,
            actor=run.actor,
            now=run.now,
            reason=f"changed {', '.join(sorted(MATERIAL_FIELDS & set(changed)))}",
        )


def _move_task(run: _Run, op: dict) -> None:
    task = _locked(run, _field(op, "task"))
    task.milestone = _resolve(run, Milestone, _field(op, "milestone"), "milestone")
    task.save(update_fields=["milestone", "updated_at"])


def _reprioritise(run: _Run, op: dict) -> None:
    task = _locked(run, _field(op, "task"))
    task.priority = _field(op, "priority", int)
    task.save(update_fields=["priority", "updated_at"])


def _cancel(run: _Run, task: Task, reason: str) -> None:
    if task.state in STARTED_STATES:
        raise InvalidTransition(
            "Started work is not cancelled by a plan change; an operator can cancel it.",
            task_id=task.pk,
            state=task.state,
        )
    if task.state == S.CANCELLED:
        return
    holds_end(task, reason=f"cancelled by a changeset: {reason}", now=run.now, actor=run.actor)
    transition_apply(
        task, task.cancel, actor=run.actor, kind="task.cancelled", now=run.now, reason=reason
    )


def _cancel_task(run: _Run, op: dict) -> None:
    _cancel(
        run,
        _locked(run, _field(op, "task")),
        _field(op, "reason", str, required=False) or "cancelled by a changeset",
    )


def _remove_task(run: _Run, op: dict) -> None:
    """Cancel the task and detach it from the graph (its dependents may become ready)."""
    task = _locked(run, _field(op, "task"))
    _cancel(run, task, _field(op, "reason", str, required=False) or "removed by a changeset")
    edges = Dependency.objects.filter(Q(prerequisite=task) | Q(dependent=task))
    for edge in edges.order_by("id"):
        edge_delete(run.project, actor=run.actor, edge=edge, now=run.now)


def _add_dependency(run: _Run, op: dict) -> None:
    unlock_on = op.get("unlock_on", UnlockOn.IMPLEMENTED)
    if unlock_on not in UnlockOn.values:
        raise _invalid("unlock_on is implemented or integrated.", field="unlock_on")
    edge_insert(
        run.project,
        actor=run.actor,
        prerequisite=_resolve(run, Task, _field(op, "prerequisite"), "prerequisite"),
        dependent=_resolve(run, Task, _field(op, "dependent"), "dependent"),
        unlock_on=unlock_on,
        now=run.now,
    )


def _remove_dependency(run: _Run, op: dict) -> None:
    prerequisite = _resolve(run, Task, _field(op, "prerequisite"), "prerequisite")
    dependent = _resolve(run, Task, _field(op, "dependent"), "dependent")
    edge = Dependency.objects.filter(prerequisite=prerequisite, dependent=dependent).first()
    if edge is None:
        raise _invalid(f"There is no edge {prerequisite.ref} -> {dependent.ref}.")
    edge_delete(run.project, actor=run.actor, edge=edge, now=run.now)


_HANDLERS = {
    "add_phase": _add_phase,
    "add_milestone": _add_milestone,
    "add_task": _add_task,
    "update_task": _update_task,
    "move_task": _move_task,
    "reprioritise": _reprioritise,
    "cancel_task": _cancel_task,
    "remove_task": _remove_task,
    "add_dependency": _add_dependency,
    "remove_dependency": _remove_dependency,
}


MAX_OPERATIONS = 10_000


def _check_shape(operations: Any) -> None:
    if not isinstance(operations, list) or not operations or len(operations) > MAX_OPERATIONS:
        raise _invalid(
            f"operations must be a list of 1 to {MAX_OPERATIONS} operations.", field="operations"
        )
    for index, op in enumerate(operations):
        if not isinstance(op, dict) or op.get("op") not in _HANDLERS:
            raise _invalid(
                f"Operation {index}: 'op' must be one of {', '.join(OPERATIONS)}.",
                operation_index=index,
            )


# --- impact ----------------------------------------------------------------------------------
def _task_states(project: Project) -> dict[int, tuple]:
    return {
        row[0]: row[1:]
        for row in Task.objects.filter(project=project).values_list(
            "pk",
            "number",
            "state",
            "holder",
            "material_revision",
            "title",
            "priority",
            "milestone_id",
            "capability_tags",
            "max_attempts",
        )
    }


def _impact(before: dict, after: dict) -> dict[str, list[str]]:
    impact: dict[str, list[str]] = {
        key: []
        for key in (
            "created",
            "material",
            "not_material",
            "claims_released",
            "reservations_released",
            "protected_told",
            "became_ready",
            "fell_back",
            "cancelled",
        )
    }
    pool = (S.READY, S.RESERVED)
    for pk, (number, state, holder, revision, *details) in sorted(after.items()):
        ref = f"T{number}"
        if pk not in before:
            impact["created"].append(ref)
            continue
        _, old_state, old_holder, old_revision, *old_details = before[pk]
        if revision != old_revision:
            impact["material"].append(ref)
            if state in STARTED_STATES:
                impact["protected_told"].append(ref)
        elif details != old_details:
            # Retitled, reprioritised, moved, re-tagged: nobody's work is disturbed.
            impact["not_material"].append(ref)
        if old_state == S.CLAIMED and state != S.CLAIMED:
            impact["claims_released"].append(ref)
        if old_holder and old_state in (S.RESERVED, S.BACKLOG) and not holder:
            impact["reservations_released"].append(ref)
        if state in pool and old_state not in pool:
            impact["became_ready"].append(ref)
        if state == S.BACKLOG and old_state in (*pool, S.CLAIMED):
            impact["fell_back"].append(ref)
        if state == S.CANCELLED and old_state != S.CANCELLED:
            impact["cancelled"].append(ref)
    return impact


class _Preview(Exception):
    """Raised to roll a dry run back, carrying what it found."""

    def __init__(self, impact: dict) -> None:
        self.impact = impact


def _run(actor: Actor, changeset_id: int, *, rebase: bool, dry_run: bool) -> Changeset:
    now = utcnow()
    changeset = object_visible_or_404(Changeset, actor, changeset_id)
    with transaction.atomic():
        project = lock_project(changeset.project_id)
        changeset = Changeset.objects.select_for_update().get(pk=changeset.pk)
        if changeset.status == ChangesetStatus.APPLIED:
            raise ChangesetApplied(
                changeset_id=changeset.pk, applied_version=changeset.applied_version
            )
        if changeset.base_version != project.plan_version and not rebase:
            raise PlanVersionStale(
                base_version=changeset.base_version, current_version=project.plan_version
            )
        run = _Run(project=project, actor=actor.name, now=now)
        before = _task_states(project)
        for index, op in enumerate(changeset.operations):
            try:
                _HANDLERS[op["op"]](run, op)
            except DomainError as refusal:
                refusal.details.update(operation_index=index, operation=op["op"])
                raise
        impact = _impact(before, _task_states(project))
        if dry_run:
            raise _Preview(impact)
        rebased = changeset.base_version != project.plan_version
        project.plan_version += 1
        project.save(update_fields=["plan_version"])
        changeset.status = ChangesetStatus.APPLIED
        changeset.applied_by, changeset.applied_at = actor.name, now
        changeset.applied_version, changeset.impact = project.plan_version, impact
        changeset.save(
            update_fields=["status", "applied_by", "applied_at", "applied_version", "impact"]
        )
        event_record(
            project=project,
            kind="changeset.applied",
            actor=actor.name,
            changeset_id=changeset.pk,
            base_version=changeset.base_version,
            plan_version=project.plan_version,
            rebased=rebased,
            impact=impact,
        )
    return changeset


# --- the services --------------------------------------------------------------------------
@retry_on_conflict
def changeset_create(
    *, actor: Actor, project_id: int, base_version: int, operations: list, title: str = ""
) -> Changeset:
    actor.require(Role.PLANNER)
    project = project_visible_or_404(actor, project_id)
    _check_shape(operations)
    changeset = Changeset.objects.create(
        project=project,
        base_version=base_version,
        operations=operations,
        title=title,
        created_by=actor.name,
    )
    event_record(
        project=project,
        kind="changeset.created",
        actor=actor.name,
        changeset_id=changeset.pk,
        base_version=base_version,
        operations=len(operations),
    )
    return changeset


@retry_on_conflict
def changeset_preview(*, actor: Actor, changeset_id: int, rebase: bool = False) -> dict:
    """What applying would do, or the first refusal it would meet. Changes nothing."""
    actor.require(Role.PLANNER)
    try:
        _run(actor, changeset_id, rebase=rebase, dry_run=True)
    except _Preview as preview:
        return {"valid": True, "impact": preview.impact}
    except DomainError as refusal:
        if refusal.http_status == 404:
            raise
        return {"valid": False, "error": refusal.as_dict()}
    raise AssertionError("a dry run always rolls back")


@retry_on_conflict
def changeset_apply(*, actor: Actor, changeset_id: int, rebase: bool = False) -> Changeset:
    """Apply every operation or none, making one new plan version."""
    actor.require(Role.PLANNER)
    return _run(actor, changeset_id, rebase=rebase, dry_run=False)
