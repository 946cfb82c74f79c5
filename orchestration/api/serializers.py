"""Output shapes (model serializers, all read-only) and input shapes (plain serializers)."""

import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance.api.serializers import ReviewSerializer
from orchestration.models import (
    INTEGRATION_RESULTS,
    OVERRIDE_TARGETS,
    Artifact,
    Changeset,
    CheckStatus,
    Dependency,
    Event,
    ExecutionSnapshot,
    IntegrationAttempt,
    Lease,
    LeaseStatus,
    Milestone,
    PathOverlap,
    Phase,
    Project,
    Reservation,
    ReservationStatus,
    Task,
    TaskClass,
    UnlockOn,
)
from orchestration.services.delegation import MAX_CHILDREN
from tascade.api import OutputModelSerializer

MAX_TEXT = 20_000
MAX_LIST = 10_000
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")


def _read_only(model, fields):
    """A ModelSerializer whose every field is read-only: output only, never a write path."""
    meta = type("Meta", (), {"model": model, "fields": fields, "read_only_fields": fields})
    return type(f"{model.__name__}Serializer", (OutputModelSerializer,), {"Meta": meta})


ProjectSerializer = _read_only(
    Project,
    [
        "id",
        "name",
        "slug",
        "description",
        "lease_ttl_seconds",
        "reservation_ttl_seconds",
        "plan_version",
        "created_by",
        "created_at",
    ],
)
PhaseSerializer = _read_only(
    Phase, ["id", "project", "name", "description", "position", "created_at"]
)
MilestoneSerializer = _read_only(
    Milestone, ["id", "project", "phase", "name", "description", "position", "created_at"]
)
DependencySerializer = _read_only(
    Dependency,
    ["id", "project", "prerequisite", "dependent", "unlock_on", "created_by", "created_at"],
)
_LeaseFields = _read_only(
    Lease,
    [
        "id",
        "project",
        "task",
        "agent",
        "token",
        "status",
        "expires_at",
        "created_at",
        "heartbeat_at",
        "ended_at",
        "end_reason",
    ],
)
_ReservationFields = _read_only(
    Reservation,
    [
        "id",
        "project",
        "task",
        "assignee",
        "status",
        "expires_at",
        "created_by",
        "created_at",
        "ended_at",
        "end_reason",
    ],
)


_EFFECTIVE_STATUS_HELP = (
    "`expired` as soon as `expires_at` has passed, whether or not the expiry has been "
    "recorded yet: expiry is enforced on every read."
)


class LeaseSerializer(_LeaseFields):
    status = serializers.ChoiceField(
        source="effective_status",
        choices=LeaseStatus.choices,
        read_only=True,
        help_text=_EFFECTIVE_STATUS_HELP,
    )

    class Meta(_LeaseFields.Meta):
        ref_name = "Lease"


class ReservationSerializer(_ReservationFields):
    status = serializers.ChoiceField(
        source="effective_status",
        choices=ReservationStatus.choices,
        read_only=True,
        help_text=_EFFECTIVE_STATUS_HELP,
    )

    class Meta(_ReservationFields.Meta):
        ref_name = "Reservation"


SnapshotSerializer = _read_only(
    ExecutionSnapshot,
    [
        "id",
        "project",
        "task",
        "lease",
        "plan_version",
        "material_revision",
        "spec_hash",
        "spec",
        "created_at",
    ],
)
ArtifactSerializer = _read_only(
    Artifact,
    [
        "id",
        "project",
        "task",
        "lease",
        "lease_token",
        "agent",
        "branch",
        "commit_sha",
        "touched_files",
        "check_status",
        "check_ref",
        "summary",
        "created_at",
    ],
)
EventSerializer = _read_only(
    Event, ["id", "project", "task", "kind", "actor", "payload", "created_at"]
)


class TaskSerializer(OutputModelSerializer):
    ref = serializers.CharField(read_only=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "ref",
            "project",
            "milestone",
            "parent",
            "title",
            "description",
            "work_spec",
            "task_class",
            "priority",
            "capability_tags",
            "expected_paths",
            "exclusive_paths",
            "touched_paths",
            "max_attempts",
            "attempt_count",
            "state",
            "state_changed_at",
            "state_reason",
            "unmet_prerequisites",
            "holder",
            "hold_expires_at",
            "material_revision",
            "implemented_by",
            "implementation_count",
            "delegated_at",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# --- input ------------------------------------------------------------------------------
def _string_list(max_length: int = 1000, **kwargs):
    return serializers.ListField(
        child=serializers.CharField(max_length=max_length), max_length=MAX_LIST, **kwargs
    )


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100, required=False, allow_blank=True)
    description = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    lease_ttl_seconds = serializers.IntegerField(min_value=5, max_value=86_400, required=False)
    reservation_ttl_seconds = serializers.IntegerField(
        min_value=5, max_value=30 * 86_400, required=False
    )


class PhaseCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    position = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)


class MilestoneCreateSerializer(PhaseCreateSerializer):
    phase = serializers.IntegerField(min_value=1, max_value=2**62)


class WorkSpecSerializer(serializers.Serializer):
    objective = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    acceptance_criteria = _string_list(max_length=MAX_TEXT, required=False)
    constraints = _string_list(max_length=MAX_TEXT, required=False)


class _TaskFieldsSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=300)
    description = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    work_spec = WorkSpecSerializer(required=False)
    task_class = serializers.ChoiceField(choices=TaskClass.choices, required=False)
    priority = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    capability_tags = _string_list(max_length=100, required=False)
    expected_paths = _string_list(
        required=False,
        help_text="Globs of the paths the task expects to touch, e.g. docs/**, */migrations/*.",
    )
    exclusive_paths = _string_list(
        required=False,
        help_text=(
            "Globs the task needs to itself: it is not offered while work in flight touches "
            "them, and work touching them is not offered while it is in flight."
        ),
    )
    max_attempts = serializers.IntegerField(min_value=1, max_value=100, required=False)


class TaskCreateSerializer(_TaskFieldsSerializer):
    milestone = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    parent = serializers.IntegerField(min_value=1, max_value=2**62, required=False)


class DependencyCreateSerializer(serializers.Serializer):
    prerequisite = serializers.IntegerField(min_value=1, max_value=2**62)
    dependent = serializers.IntegerField(min_value=1, max_value=2**62)
    unlock_on = serializers.ChoiceField(choices=UnlockOn.choices, required=False)


class ClaimNextSerializer(serializers.Serializer):
    capabilities = _string_list(
        max_length=100,
        required=False,
        help_text="Omit to take any task; otherwise a task's capability tags must all be listed.",
    )


class LeaseTokenSerializer(serializers.Serializer):
    lease_token = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, help_text="The fencing token of your live lease."
    )


class ReleaseSerializer(LeaseTokenSerializer):
    reason = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)


class DelegateChildSerializer(_TaskFieldsSerializer):
    key = serializers.CharField(
        max_length=50, help_text="Names this child within the request, for `depends_on`."
    )
    depends_on = _string_list(
        max_length=50,
        required=False,
        help_text="Keys of sibling children this one waits for (until they are implemented).",
    )


class DelegateSerializer(LeaseTokenSerializer):
    children = DelegateChildSerializer(many=True, min_length=1, max_length=MAX_CHILDREN)
    reason = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)


class ArtifactCreateSerializer(LeaseTokenSerializer):
    branch = serializers.CharField(max_length=255, required=False, allow_blank=True)
    commit_sha = serializers.CharField(max_length=64, required=False, allow_blank=True)
    touched_files = _string_list(required=False)
    check_status = serializers.ChoiceField(choices=CheckStatus.choices, required=False)
    check_ref = serializers.CharField(max_length=500, required=False, allow_blank=True)
    summary = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)

    def validate_commit_sha(self, value: str) -> str:
        if value and not _SHA.match(value):
            raise serializers.ValidationError("A commit sha is 7 to 64 hexadecimal characters.")
        return value.lower()


class AssignSerializer(serializers.Serializer):
    agent = serializers.CharField(max_length=100)
    ttl_seconds = serializers.IntegerField(min_value=5, max_value=30 * 86_400, required=False)


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=MAX_TEXT)


class OptionalReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)


class OverrideSerializer(serializers.Serializer):
    to_state = serializers.ChoiceField(choices=[(s, s) for s in OVERRIDE_TARGETS])
    rationale = serializers.CharField(max_length=MAX_TEXT)


# --- composite answers --------------------------------------------------------------------
class DelegationSerializer(serializers.Serializer):
    parent = TaskSerializer()
    children = TaskSerializer(many=True)


class ClaimResultSerializer(serializers.Serializer):
    task = TaskSerializer()
    lease = LeaseSerializer()


class HeartbeatResultSerializer(serializers.Serializer):
    lease = LeaseSerializer()
    ttl_seconds = serializers.IntegerField()
    plan_version = serializers.IntegerField(help_text="The project's plan version now.")
    snapshot_plan_version = serializers.IntegerField(allow_null=True)
    plan_changed = serializers.BooleanField(
        help_text="True when the task changed materially since your snapshot was taken."
    )


def claim_result(lease: Lease) -> dict:
    """The answer to a claim, over REST and MCP alike."""
    return {"task": TaskSerializer(lease.task).data, "lease": LeaseSerializer(lease).data}


def heartbeat_result(beat) -> dict:
    """The answer to a heartbeat (a ``leases.HeartbeatResult``), over REST and MCP alike."""
    return {
        "lease": LeaseSerializer(beat.lease).data,
        "ttl_seconds": beat.ttl_seconds,
        "plan_version": beat.plan_version,
        "snapshot_plan_version": beat.snapshot.plan_version if beat.snapshot else None,
        "plan_changed": beat.plan_changed,
    }


class EdgeTaskSerializer(serializers.Serializer):
    dependency = DependencySerializer(source="edge")
    task = TaskSerializer()


class PrerequisiteSerializer(EdgeTaskSerializer):
    latest_artifact = ArtifactSerializer(allow_null=True)


class PathOverlapSerializer(OutputModelSerializer):
    task_ref = serializers.CharField(source="task.ref", read_only=True)
    other_task_ref = serializers.CharField(source="other_task.ref", read_only=True)

    class Meta:
        model = PathOverlap
        fields = [
            "id",
            "project",
            "task",
            "task_ref",
            "other_task",
            "other_task_ref",
            "artifact",
            "overlaps",
            "created_at",
        ]
        read_only_fields = fields


class PathPairSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="This task's path (glob or touched file).")
    # "with" is a Python keyword: declared below.


PathPairSerializer._declared_fields["with"] = serializers.CharField(
    help_text="The in-flight task's path it overlaps."
)


class CollisionSerializer(serializers.Serializer):
    task_id = serializers.IntegerField()
    ref = serializers.CharField()
    state = serializers.CharField()
    holder = serializers.CharField()
    overlaps = PathPairSerializer(many=True, help_text="At most 20 pairs.")
    overlap_count = serializers.IntegerField(help_text="All overlapping pairs.")


class TaskCollisionsSerializer(serializers.Serializer):
    task = TaskSerializer()
    paths = serializers.ListField(child=serializers.CharField())
    score = serializers.IntegerField(help_text="How many in-flight tasks it collides with.")
    offered = serializers.BooleanField(
        help_text="False while in-flight work holds its paths exclusively (or it holds theirs)."
    )
    collisions = CollisionSerializer(many=True)
    blocked_by = CollisionSerializer(many=True)


class ReadyTaskSerializer(TaskSerializer):
    """A ready-list item: the task, and why it is ranked where it is."""

    path_score = serializers.IntegerField(
        source="schedule.score",
        read_only=True,
        help_text="How many in-flight tasks its paths collide with (0: none).",
    )
    offered = serializers.BooleanField(
        source="schedule.offered",
        read_only=True,
        help_text="False while in-flight work holds its paths exclusively: not offered.",
    )
    collides_with = serializers.SerializerMethodField()
    blocked_by = serializers.SerializerMethodField()

    class Meta(TaskSerializer.Meta):
        fields = [
            *TaskSerializer.Meta.fields,
            "path_score",
            "offered",
            "collides_with",
            "blocked_by",
        ]
        read_only_fields = fields

    @extend_schema_field(CollisionSerializer(many=True))
    def get_collides_with(self, task) -> list:
        return [c.as_dict() for c in task.schedule.collisions]

    @extend_schema_field(CollisionSerializer(many=True))
    def get_blocked_by(self, task) -> list:
        return [c.as_dict() for c in task.schedule.blocked_by]


class TaskContextSerializer(serializers.Serializer):
    task = TaskSerializer()
    lease = LeaseSerializer(allow_null=True)
    reservation = ReservationSerializer(allow_null=True)
    snapshot = SnapshotSerializer(allow_null=True)
    plan_changed = serializers.BooleanField()
    prerequisites = PrerequisiteSerializer(many=True)
    dependents = EdgeTaskSerializer(many=True)
    artifacts = ArtifactSerializer(many=True)
    reviews = ReviewSerializer(many=True)
    path_overlaps = PathOverlapSerializer(
        many=True, help_text="Unpredicted overlaps flagged on this task, from either side."
    )


class GraphNodeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ref = serializers.CharField()
    title = serializers.CharField()
    state = serializers.CharField()
    priority = serializers.IntegerField()
    task_class = serializers.CharField()
    milestone_id = serializers.IntegerField(allow_null=True)
    parent_id = serializers.IntegerField(allow_null=True)
    unmet_prerequisites = serializers.IntegerField()


class GraphEdgeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prerequisite_id = serializers.IntegerField()
    dependent_id = serializers.IntegerField()
    unlock_on = serializers.CharField()


class GraphSerializer(serializers.Serializer):
    project_id = serializers.IntegerField()
    plan_version = serializers.IntegerField()
    nodes = GraphNodeSerializer(many=True)
    edges = GraphEdgeSerializer(many=True)


class EventPageSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    next_after = serializers.IntegerField(
        allow_null=True, help_text="Pass as `after` to read on; null when nothing was returned."
    )


def event_page(events: list[Event]) -> dict:
    """A page of the event log and the cursor to read on from, over REST and MCP alike."""
    return {
        "results": EventSerializer(events, many=True).data,
        "next_after": events[-1].pk if events else None,
    }


IntegrationAttemptSerializer = _read_only(
    IntegrationAttempt,
    [
        "id",
        "project",
        "task",
        "artifact",
        "state",
        "base_sha",
        "head_sha",
        "diagnostics",
        "enqueued_by",
        "taken_by",
        "created_at",
        "started_at",
        "finished_at",
    ],
)


class IntegrationResultSerializer(serializers.Serializer):
    result = serializers.ChoiceField(choices=[(r, r) for r in INTEGRATION_RESULTS])
    base_sha = serializers.CharField(max_length=64, required=False, allow_blank=True)
    head_sha = serializers.CharField(max_length=64, required=False, allow_blank=True)
    diagnostics = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)

    def validate_base_sha(self, value: str) -> str:
        return _valid_sha(value)

    def validate_head_sha(self, value: str) -> str:
        return _valid_sha(value)


def _valid_sha(value: str) -> str:
    if value and not _SHA.match(value):
        raise serializers.ValidationError("A commit sha is 7 to 64 hexadecimal characters.")
    return value.lower()


ChangesetSerializer = _read_only(
    Changeset,
    [
        "id",
        "project",
        "title",
        "base_version",
        "operations",
        "status",
        "created_by",
        "created_at",
        "applied_by",
        "applied_at",
        "applied_version",
        "impact",
    ],
)


class ChangesetCreateSerializer(serializers.Serializer):
    base_version = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, help_text="The plan version you made this against."
    )
    title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    operations = serializers.ListField(
        child=serializers.DictField(),
        min_length=1,
        max_length=10_000,
        help_text=(
            "Each is an object with `op`: add_phase, add_milestone, add_task, update_task, "
            "move_task, reprioritise, cancel_task, remove_task, add_dependency, "
            "remove_dependency. Refer to tasks by id or ref (T7), and to what this changeset "
            "creates by the `key` it gave it (new:login)."
        ),
    )


class PlanDocumentSerializer(serializers.Serializer):
    filename = serializers.CharField(
        max_length=255,
        help_text="Its extension picks the format: .json, .yaml/.yml, or .md/.markdown.",
    )
    content = serializers.CharField(
        trim_whitespace=False,
        help_text=(
            'The document\'s text: a list of operations, {"operations": [...]}, or a '
            "phases/milestones/tasks outline (JSON, YAML or Markdown)."
        ),
    )
    base_version = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, help_text="The plan version you made this against."
    )
    title = serializers.CharField(
        max_length=300, required=False, allow_blank=True, help_text="Default: the filename."
    )


class ChangesetApplySerializer(serializers.Serializer):
    rebase = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Apply even though the plan moved since base_version, if it still validates.",
    )


class ChangesetPreviewSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    impact = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )
    error = serializers.DictField(required=False)


class VersionCompareSerializer(serializers.Serializer):
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    changesets = ChangesetSerializer(many=True)
