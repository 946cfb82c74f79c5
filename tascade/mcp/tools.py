"""The MCP tools: each parses its arguments with the REST twin's input serializer, calls the
same service or selector with the key's Actor, and renders the answer with the same output
serializer. Roles are enforced by the services (``actor.require``), as for REST.

A tool is a ``ToolSpec``: its name, its description (shown to the agent: every backticked
word in it is checked by ``tests/mcp/test_descriptions.py`` against the tool's arguments, its
answer's fields, the models' enum values and the real error codes), the serializer that
validates its arguments (and yields its JSON Schema), the function that runs it, and the
serializer of its answer.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from governance.actors import Actor
from governance.api import serializers as gs
from governance.models import Checkpoint
from governance.selectors import review_queue
from governance.services.gates import gate_decide
from governance.services.reviews import review_record
from orchestration import scheduling, selectors
from orchestration.api import serializers as s
from orchestration.api.views import EventQuerySerializer
from orchestration.services import changesets, delegation, leases, plan
from tascade.api import MAX_ID
from tascade.mcp.protocol import PROTOCOL

# Keys the changeset service reads from every operation object (besides each operation's own
# fields): named in create_changeset's description, exercised by the MCP planner test.
CHANGESET_OPERATION_KEYS = ("op", "key")


def _id(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def _limit(default: int) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=100, default=default, required=False)


def _on(base: type[serializers.Serializer], name: str, **ids: serializers.Field):
    """The REST input serializer ``base`` plus the ids REST takes from the URL."""
    return type(name, (base,), ids)


class Empty(serializers.Serializer):
    pass


class ProjectArg(serializers.Serializer):
    project_id = _id()


class TaskArg(serializers.Serializer):
    task_id = _id()


class LimitedProjectArg(ProjectArg):
    limit = _limit(20)


class ReadyArgs(s.ClaimNextSerializer):
    project_id = _id()
    limit = _limit(20)


class ClaimArgs(s.ClaimNextSerializer):
    task_id = _id(required=False)
    project_id = _id(required=False)

    def validate(self, attrs):
        if ("task_id" in attrs) == ("project_id" in attrs):
            raise serializers.ValidationError("Give exactly one of task_id and project_id.")
        if "task_id" in attrs and "capabilities" in attrs:
            raise serializers.ValidationError("capabilities go with project_id (claim-next).")
        return attrs


class CheckpointsArgs(ProjectArg):
    open_only = serializers.BooleanField(default=True, required=False)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    arguments: type[serializers.Serializer]
    run: Callable[..., Any]  # (actor, **validated arguments) -> JSON-able answer
    answer: type[serializers.Serializer] | None = None
    read_only: bool = False


def _page(results: list) -> dict:
    return {"results": results}


# --- agents ----------------------------------------------------------------------------------
def _instructions(actor: Actor) -> str:
    return PROTOCOL


def _projects(actor: Actor) -> dict:
    projects = selectors.projects_visible(actor).order_by("id")[:100]
    return _page(s.ProjectSerializer(projects, many=True).data)


def _ready(actor: Actor, project_id: int, limit: int, capabilities=None) -> dict:
    tasks = leases.ready_list(actor=actor, project_id=project_id, capabilities=capabilities)
    ranked = scheduling.ranked_page(project_id, list(tasks[:limit]))
    return _page(s.ReadyTaskSerializer(ranked, many=True).data)


def _claim(actor: Actor, task_id=None, project_id=None, capabilities=None) -> dict:
    if task_id is not None:
        lease = leases.task_claim(actor=actor, task_id=task_id)
    else:
        lease = leases.task_claim_next(
            actor=actor, project_id=project_id, capabilities=capabilities
        )
    if lease is None:
        return {"task": None, "lease": None}
    return s.claim_result(lease)


def _context(actor: Actor, task_id: int) -> dict:
    return s.TaskContextSerializer(selectors.task_context(actor, task_id)).data


def _collisions(actor: Actor, task_id: int) -> dict:
    return s.TaskCollisionsSerializer(selectors.task_collisions(actor, task_id)).data


def _start(actor: Actor, task_id: int, lease_token: int) -> dict:
    snapshot = leases.task_start(actor=actor, task_id=task_id, lease_token=lease_token)
    return s.SnapshotSerializer(snapshot).data


def _heartbeat(actor: Actor, task_id: int, lease_token: int) -> dict:
    beat = leases.lease_heartbeat(actor=actor, task_id=task_id, lease_token=lease_token)
    return s.heartbeat_result(beat)


def _publish(actor: Actor, task_id: int, **data) -> dict:
    artifact = leases.artifact_publish(actor=actor, task_id=task_id, **data)
    return s.ArtifactSerializer(artifact).data


def _implemented(actor: Actor, task_id: int, lease_token: int) -> dict:
    task = leases.task_mark_implemented(actor=actor, task_id=task_id, lease_token=lease_token)
    return s.TaskSerializer(task).data


def _release(actor: Actor, task_id: int, **data) -> dict:
    return s.TaskSerializer(leases.task_release(actor=actor, task_id=task_id, **data)).data


def _split(actor: Actor, task_id: int, **data) -> dict:
    result = delegation.task_delegate(actor=actor, task_id=task_id, **data)
    return s.DelegationSerializer(result).data


def _events(actor: Actor, project_id: int, limit: int, after=None, task=None, kind=None) -> dict:
    kinds = [k.strip() for k in kind.split(",") if k.strip()] if kind else None
    events = selectors.events_after(
        actor, project_id, after=after, task_id=task, kinds=kinds, limit=limit
    )
    return s.event_page(events)


# --- planners --------------------------------------------------------------------------------
def _create_project(actor: Actor, **data) -> dict:
    return s.ProjectSerializer(plan.project_create(actor=actor, **data)).data


def _create_changeset(actor: Actor, project_id: int, **data) -> dict:
    changeset = changesets.changeset_create(actor=actor, project_id=project_id, **data)
    return s.ChangesetSerializer(changeset).data


def _preview_changeset(actor: Actor, changeset_id: int, rebase: bool) -> dict:
    return changesets.changeset_preview(actor=actor, changeset_id=changeset_id, rebase=rebase)


def _apply_changeset(actor: Actor, changeset_id: int, rebase: bool) -> dict:
    changeset = changesets.changeset_apply(actor=actor, changeset_id=changeset_id, rebase=rebase)
    return s.ChangesetSerializer(changeset).data


# --- reviewers -------------------------------------------------------------------------------
def _review_queue(actor: Actor, project_id: int, limit: int) -> dict:
    return _page(s.TaskSerializer(review_queue(actor, project_id)[:limit], many=True).data)


def _record_review(actor: Actor, task_id: int, **data) -> dict:
    return gs.ReviewSerializer(review_record(actor=actor, task_id=task_id, **data)).data


def _checkpoints(actor: Actor, project_id: int, open_only: bool) -> dict:
    checkpoints = selectors.project_children(Checkpoint, actor, project_id)
    if open_only:
        checkpoints = checkpoints.filter(decided_at__isnull=True)
    checkpoints = checkpoints.prefetch_related("candidates").order_by("id")[:100]
    return _page(gs.CheckpointSerializer(checkpoints, many=True).data)


def _decide(actor: Actor, checkpoint_id: int, **data) -> dict:
    decision = gate_decide(actor=actor, checkpoint_id=checkpoint_id, **data)
    return gs.GateDecisionSerializer(decision).data


class _Tasks(serializers.Serializer):
    results = s.TaskSerializer(many=True)


class _ReadyTasks(serializers.Serializer):
    results = s.ReadyTaskSerializer(many=True)


class _Projects(serializers.Serializer):
    results = s.ProjectSerializer(many=True)


class _Checkpoints(serializers.Serializer):
    results = gs.CheckpointSerializer(many=True)


_LEASED = "Needs `lease_token` of your live lease."

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "get_instructions",
        "The agent protocol: lifecycle, lease rules, every error code and what to do about "
        "it. Read it first.",
        Empty,
        _instructions,
        read_only=True,
    ),
    ToolSpec(
        "list_projects",
        "Projects this key can see, with their `plan_version`.",
        Empty,
        _projects,
        _Projects,
        read_only=True,
    ),
    ToolSpec(
        "list_ready",
        "Tasks you may claim now, in the order `claim` by `project_id` takes them: priority, "
        "then fewest collisions with work in flight (`path_score`, `collides_with`); "
        "`offered` is false while in-flight work holds their paths. With `capabilities`, "
        "only tasks whose capability tags are all in it.",
        _on(ReadyArgs, "ReadyArgs"),
        _ready,
        _ReadyTasks,
        read_only=True,
    ),
    ToolSpec(
        "claim",
        "Claim `task_id`, or with `project_id` the most urgent ready task whose capability "
        "tags are all in `capabilities` (omit to take any). Answers `task` and `lease` (both "
        "null when nothing fits); `lease.token` is the lease token every later write on the "
        "task presents. Refusals: `TASK_ALREADY_CLAIMED`, `DEPENDENCIES_UNMET`.",
        ClaimArgs,
        _claim,
        s.ClaimResultSerializer,
    ),
    ToolSpec(
        "task_context",
        "Everything about a task: the task, its `lease`, its `snapshot` (the spec you work "
        "against once started), `plan_changed`, prerequisites with their latest artifact, "
        "dependents, artifacts, `reviews`.",
        TaskArg,
        _context,
        s.TaskContextSerializer,
        read_only=True,
    ),
    ToolSpec(
        "collisions",
        "Which tasks in flight (claimed, in progress, implemented) touch the paths of "
        "`task_id`, with the overlapping patterns; `blocked_by` those holding them "
        "exclusively. Ask before you `start`.",
        TaskArg,
        _collisions,
        s.TaskCollisionsSerializer,
        read_only=True,
    ),
    ToolSpec(
        "start",
        f"Start a `claimed` task; answers the execution snapshot. {_LEASED} "
        "Refusal: `LEASE_STALE`.",
        _on(s.LeaseTokenSerializer, "StartArgs", task_id=_id()),
        _start,
        s.SnapshotSerializer,
    ),
    ToolSpec(
        "heartbeat",
        f"Renew your lease (well within `ttl_seconds`). {_LEASED} If `plan_changed`, re-read "
        "`task_context`. Refusal: `LEASE_EXPIRED`.",
        _on(s.LeaseTokenSerializer, "HeartbeatArgs", task_id=_id()),
        _heartbeat,
        s.HeartbeatResultSerializer,
    ),
    ToolSpec(
        "publish_artifact",
        f"Record your work on an `in_progress` task (branch, commit, files, checks). {_LEASED}",
        _on(s.ArtifactCreateSerializer, "ArtifactArgs", task_id=_id()),
        _publish,
        s.ArtifactSerializer,
    ),
    ToolSpec(
        "mark_implemented",
        f"Finish: the task becomes `implemented` and your lease ends. {_LEASED} "
        "Refusal: `ARTIFACT_REQUIRED`.",
        _on(s.LeaseTokenSerializer, "ImplementedArgs", task_id=_id()),
        _implemented,
        s.TaskSerializer,
    ),
    ToolSpec(
        "release",
        f"Give the task back, with a `reason`; releasing started work counts as a failed "
        f"attempt. {_LEASED}",
        _on(s.ReleaseSerializer, "ReleaseArgs", task_id=_id()),
        _release,
        s.TaskSerializer,
    ),
    ToolSpec(
        "split_task",
        "Split your task into `children` and let go of it: it becomes `delegated` and "
        "completes when they do. Each child: `key`, `title`, `depends_on` (sibling keys), any "
        f"task field (left out: inherited). {_LEASED} Refusal: `DEPENDENCY_CYCLE`.",
        _on(s.DelegateSerializer, "SplitArgs", task_id=_id()),
        _split,
        s.DelegationSerializer,
    ),
    ToolSpec(
        "events",
        "The project's audit trail in commit order. Pass the answer's `next_after` as `after` "
        "to read on. `kind`: comma-separated event kinds.",
        _on(EventQuerySerializer, "EventArgs", project_id=_id()),
        _events,
        s.EventPageSerializer,
        read_only=True,
    ),
    ToolSpec(
        "create_project",
        "Planner: create a project.",
        s.ProjectCreateSerializer,
        _create_project,
        s.ProjectSerializer,
    ),
    ToolSpec(
        "create_changeset",
        "Planner: propose plan changes against `base_version` (the plan version "
        "`list_projects` shows). "
        "Each operation has `op` (`add_phase`, `add_milestone`, `add_task`, `update_task`, "
        "`move_task`, `reprioritise`, `cancel_task`, `remove_task`, `add_dependency`, "
        "`remove_dependency`) and its fields; name what it creates with `key` (new:x) to refer "
        "to it later. Changes nothing until applied.",
        _on(s.ChangesetCreateSerializer, "ChangesetArgs", project_id=_id()),
        _create_changeset,
        s.ChangesetSerializer,
    ),
    ToolSpec(
        "preview_changeset",
        "Planner: what applying would do (`valid`, `impact`) or the `error` it would meet. "
        "Changes nothing.",
        _on(s.ChangesetApplySerializer, "PreviewArgs", changeset_id=_id()),
        _preview_changeset,
        s.ChangesetPreviewSerializer,
        read_only=True,
    ),
    ToolSpec(
        "apply_changeset",
        "Planner: apply every operation or none, as one new plan version. Refusals: "
        "`PLAN_VERSION_STALE` (preview again, or `rebase`), `CHANGESET_ALREADY_APPLIED`.",
        _on(s.ChangesetApplySerializer, "ApplyArgs", changeset_id=_id()),
        _apply_changeset,
        s.ChangesetSerializer,
    ),
    ToolSpec(
        "review_queue",
        "Reviewer: `implemented` tasks awaiting approval, riskiest then oldest first.",
        LimitedProjectArg,
        _review_queue,
        _Tasks,
        read_only=True,
    ),
    ToolSpec(
        "record_review",
        "Reviewer: `approved` lets the task integrate, `changes_requested` sends it back to "
        "work, `rejected` abandons it. Never your own work: `SELF_REVIEW`.",
        _on(gs.ReviewCreateSerializer, "ReviewArgs", task_id=_id()),
        _record_review,
        gs.ReviewSerializer,
    ),
    ToolSpec(
        "list_checkpoints",
        "Reviewer: a project's gate checkpoints (undecided ones unless `open_only` is false).",
        CheckpointsArgs,
        _checkpoints,
        _Checkpoints,
        read_only=True,
    ),
    ToolSpec(
        "decide_checkpoint",
        "Reviewer: settle a checkpoint (see `list_checkpoints`) for its whole batch: a pass "
        "approves every candidate, `rejected` sends every one back to work.",
        _on(gs.GateDecisionCreateSerializer, "DecisionArgs", checkpoint_id=_id()),
        _decide,
        gs.GateDecisionSerializer,
    ),
)

TOOLS_BY_NAME = {spec.name: spec for spec in TOOLS}
