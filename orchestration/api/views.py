"""The agent and planner API. Each view parses input, calls one service or selector, and
renders the result; every rule lives in ``orchestration.services``."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestration import scheduling, selectors
from orchestration.api import serializers as s
from orchestration.api.pagination import ReadyListPagination
from orchestration.models import (
    Artifact,
    Changeset,
    Dependency,
    ExecutionSnapshot,
    IntegrationAttempt,
    Lease,
    Milestone,
    Phase,
    Reservation,
    Task,
)
from orchestration.plan_formats import parse_plan_document
from orchestration.services import changesets, delegation, integration, leases, operations, plan
from tascade.api import MAX_ID, error_responses


def _input(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _query(serializer_class, request):
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# --- generic list / detail building blocks -------------------------------------------------
class ProjectChildList(generics.ListAPIView):
    """Objects of one project (404 if the project is not visible), cursor-paginated by id."""

    model = None
    filterset_fields: list[str] = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return selectors.project_children(self.model, self.request.user, self.kwargs["project_id"])


class ScopedDetail(generics.RetrieveAPIView):
    model = None

    @extend_schema(responses={200: None, **error_responses()})
    def get(self, request, *args, **kwargs):
        obj = selectors.object_visible_or_404(self.model, request.user, kwargs["pk"])
        return Response(self.get_serializer(obj).data)


def _detail(model, serializer_class, tag):
    view = type(
        f"{model.__name__}Detail",
        (ScopedDetail,),
        {"model": model, "serializer_class": serializer_class, "queryset": model.objects.none()},
    )
    return extend_schema(tags=[tag], responses={200: serializer_class, **error_responses()})(view)


def _list(model, serializer_class, tag, filters=()):
    view = type(
        f"{model.__name__}List",
        (ProjectChildList,),
        {"model": model, "serializer_class": serializer_class, "filterset_fields": list(filters)},
    )
    return extend_schema(
        tags=[tag], responses={200: serializer_class(many=True), **error_responses()}
    )(view)


# --- projects ---------------------------------------------------------------------------
@extend_schema(tags=["projects"])
class ProjectListCreate(generics.ListAPIView):
    serializer_class = s.ProjectSerializer
    filterset_fields = ["slug"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return selectors.Project.objects.none()
        return selectors.projects_visible(self.request.user)

    @extend_schema(responses={200: s.ProjectSerializer(many=True), **error_responses()})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ProjectCreateSerializer,
        responses={201: s.ProjectSerializer, **error_responses(409)},
    )
    def post(self, request):
        project = plan.project_create(
            actor=request.user, **_input(s.ProjectCreateSerializer, request)
        )
        return Response(s.ProjectSerializer(project).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["projects"], responses={200: s.ProjectSerializer, **error_responses()})
class ProjectDetail(APIView):
    def get(self, request, project_id):
        project = selectors.project_visible_or_404(request.user, project_id)
        return Response(s.ProjectSerializer(project).data)


def _child_create(create, input_serializer, output_serializer):
    """POST on a project's collection: one service call, 201 with the new object.

    409 is documented for all of them: besides the rules (cycle, duplicate edge), every
    writing service answers CONCURRENT_UPDATE when it keeps losing a race.
    """

    @extend_schema(
        request=input_serializer, responses={201: output_serializer, **error_responses(409)}
    )
    def post(self, request, project_id):
        data = dict(_input(input_serializer, request))
        obj = create(actor=request.user, project_id=project_id, **data)
        return Response(output_serializer(obj).data, status=status.HTTP_201_CREATED)

    return post


class PhaseListCreate(_list(Phase, s.PhaseSerializer, "plan")):
    post = _child_create(plan.phase_create, s.PhaseCreateSerializer, s.PhaseSerializer)


def _milestone_create(*, actor, project_id, phase, **data):
    return plan.milestone_create(actor=actor, project_id=project_id, phase_id=phase, **data)


class MilestoneListCreate(_list(Milestone, s.MilestoneSerializer, "plan", ["phase"])):
    post = _child_create(_milestone_create, s.MilestoneCreateSerializer, s.MilestoneSerializer)


def _task_create(*, actor, project_id, milestone=None, parent=None, **data):
    return plan.task_create(
        actor=actor, project_id=project_id, milestone_id=milestone, parent_id=parent, **data
    )


class TaskListCreate(
    _list(
        Task,
        s.TaskSerializer,
        "tasks",
        ["state", "milestone", "milestone__phase", "task_class", "parent", "holder", "number"],
    )
):
    post = _child_create(_task_create, s.TaskCreateSerializer, s.TaskSerializer)


def _dependency_create(*, actor, project_id, prerequisite, dependent, **data):
    return plan.dependency_add(
        actor=actor,
        project_id=project_id,
        prerequisite_id=prerequisite,
        dependent_id=dependent,
        **data,
    )


class DependencyListCreate(
    _list(Dependency, s.DependencySerializer, "plan", ["prerequisite", "dependent", "unlock_on"])
):
    post = _child_create(_dependency_create, s.DependencyCreateSerializer, s.DependencySerializer)


LeaseList = _list(Lease, s.LeaseSerializer, "leases", ["status", "task", "agent"])
ReservationList = _list(
    Reservation, s.ReservationSerializer, "leases", ["status", "task", "assignee"]
)
ArtifactList = _list(Artifact, s.ArtifactSerializer, "artifacts", ["task", "agent", "check_status"])
SnapshotList = _list(ExecutionSnapshot, s.SnapshotSerializer, "tasks", ["task"])

PhaseDetail = _detail(Phase, s.PhaseSerializer, "plan")
MilestoneDetail = _detail(Milestone, s.MilestoneSerializer, "plan")
TaskDetail = _detail(Task, s.TaskSerializer, "tasks")
DependencyDetail = _detail(Dependency, s.DependencySerializer, "plan")
LeaseDetail = _detail(Lease, s.LeaseSerializer, "leases")
ReservationDetail = _detail(Reservation, s.ReservationSerializer, "leases")
ArtifactDetail = _detail(Artifact, s.ArtifactSerializer, "artifacts")
SnapshotDetail = _detail(ExecutionSnapshot, s.SnapshotSerializer, "tasks")


# --- reading the plan -------------------------------------------------------------------
class ReadyQuerySerializer(serializers.Serializer):
    capabilities = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text=(
            "Comma-separated. Omit to list every ready task; otherwise only tasks whose "
            "capability tags are all listed (empty: untagged tasks only), as in claim-next."
        ),
    )


def _comma_list(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [c.strip() for c in raw.split(",") if c.strip()]


@extend_schema(
    tags=["tasks"],
    parameters=[ReadyQuerySerializer],
    responses={200: s.ReadyTaskSerializer(many=True), **error_responses()},
)
class ReadyList(generics.ListAPIView):
    """Tasks an agent may claim now (reserved ones only for their assignee), each with its
    path score and the in-flight tasks it collides with. Pages follow (priority, created_at,
    id); within a page, items are ordered as claim-next ranks them: priority, offered before
    blocked, fewer collisions first, then age. Lapsed leases and reservations in the project
    are expired first, exactly as claim-next does."""

    serializer_class = s.ReadyTaskSerializer
    filter_backends = []
    pagination_class = ReadyListPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Task.objects.none()
        query = _query(ReadyQuerySerializer, self.request)
        return leases.ready_list(
            actor=self.request.user,
            project_id=self.kwargs["project_id"],
            capabilities=_comma_list(query.get("capabilities")),
        )

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        ranked = scheduling.ranked_page(self.kwargs["project_id"], page)
        return self.get_paginated_response(self.get_serializer(ranked, many=True).data)


@extend_schema(tags=["tasks"], responses={200: s.TaskCollisionsSerializer, **error_responses()})
class TaskCollisions(APIView):
    """Which in-flight tasks (claimed, in progress, implemented) touch this task's paths,
    with the overlapping patterns, and whether any holds them exclusively. Ask before you
    start: it is what claim-next scores the task by now."""

    def get(self, request, pk):
        return Response(
            s.TaskCollisionsSerializer(selectors.task_collisions(request.user, pk)).data
        )


@extend_schema(
    tags=["plan"],
    parameters=[OpenApiParameter("milestone", OpenApiTypes.INT, required=False)],
    responses={200: s.GraphSerializer, **error_responses()},
)
class ProjectGraph(APIView):
    class Query(serializers.Serializer):
        milestone = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)

    def get(self, request, project_id):
        query = _query(self.Query, request)
        graph = selectors.project_graph(request.user, project_id, query.get("milestone"))
        return Response(s.GraphSerializer(graph).data)


class EventQuerySerializer(serializers.Serializer):
    after = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        help_text="The id of the last event you have; returns the events that follow it.",
    )
    task = serializers.IntegerField(min_value=1, max_value=MAX_ID, required=False)
    kind = serializers.CharField(max_length=500, required=False, help_text="Comma-separated.")
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False, default=100)


@extend_schema(
    tags=["events"],
    parameters=[EventQuerySerializer],
    responses={200: s.EventPageSerializer, **error_responses()},
)
class EventList(APIView):
    """The project's audit trail in commit order. Follow it with ``after``."""

    def get(self, request, project_id):
        query = _query(EventQuerySerializer, request)
        events = selectors.events_after(
            request.user,
            project_id,
            after=query.get("after"),
            task_id=query.get("task"),
            kinds=_comma_list(query.get("kind")),
            limit=query["limit"],
        )
        return Response(s.event_page(events))


@extend_schema(tags=["tasks"], responses={200: s.TaskContextSerializer, **error_responses()})
class TaskContext(APIView):
    """The task, its snapshot, its prerequisites (with their latest artifacts), its dependents."""

    def get(self, request, pk):
        return Response(s.TaskContextSerializer(selectors.task_context(request.user, pk)).data)


@extend_schema(tags=["tasks"], responses={200: s.SnapshotSerializer, **error_responses()})
class TaskSnapshot(APIView):
    """The execution snapshot the task's current (or last) work runs against."""

    def get(self, request, pk):
        return Response(s.SnapshotSerializer(selectors.snapshot_for_task(request.user, pk)).data)


# --- the agent's lifecycle ------------------------------------------------------------------
@extend_schema(
    tags=["agent"], request=None, responses={201: s.ClaimResultSerializer, **error_responses(409)}
)
class TaskClaim(APIView):
    """Claim this task. Of many concurrent claims exactly one wins; the rest get 409."""

    def post(self, request, pk):
        lease = leases.task_claim(actor=request.user, task_id=pk)
        return Response(s.claim_result(lease), status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["agent"],
    request=s.ClaimNextSerializer,
    responses={
        201: s.ClaimResultSerializer,
        204: OpenApiResponse(description="No ready task fits: nothing was claimed."),
        **error_responses(409),
    },
)
class ClaimNext(APIView):
    """Claim the most urgent ready task you can do; 204 when there is none."""

    def post(self, request, project_id):
        data = _input(s.ClaimNextSerializer, request)
        lease = leases.task_claim_next(
            actor=request.user, project_id=project_id, capabilities=data.get("capabilities")
        )
        if lease is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(s.claim_result(lease), status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["agent"],
    request=s.LeaseTokenSerializer,
    responses={200: s.SnapshotSerializer, **error_responses(409)},
)
class TaskStart(APIView):
    """Start work: the answer is the execution snapshot you finish against."""

    def post(self, request, pk):
        data = _input(s.LeaseTokenSerializer, request)
        snapshot = leases.task_start(actor=request.user, task_id=pk, **data)
        return Response(s.SnapshotSerializer(snapshot).data)


@extend_schema(
    tags=["agent"],
    request=s.LeaseTokenSerializer,
    responses={200: s.HeartbeatResultSerializer, **error_responses(409)},
)
class TaskHeartbeat(APIView):
    """Renew your lease. The answer says how long it lasts and whether the plan moved."""

    def post(self, request, pk):
        data = _input(s.LeaseTokenSerializer, request)
        beat = leases.lease_heartbeat(actor=request.user, task_id=pk, **data)
        return Response(s.heartbeat_result(beat))


@extend_schema(
    tags=["agent"],
    request=s.ReleaseSerializer,
    responses={200: s.TaskSerializer, **error_responses(409)},
)
class TaskRelease(APIView):
    def post(self, request, pk):
        task = leases.task_release(
            actor=request.user, task_id=pk, **_input(s.ReleaseSerializer, request)
        )
        return Response(s.TaskSerializer(task).data)


@extend_schema(
    tags=["agent"],
    request=s.LeaseTokenSerializer,
    responses={200: s.TaskSerializer, **error_responses(409)},
)
class TaskImplemented(APIView):
    """Mark your work done; needs an artifact published under this lease."""

    def post(self, request, pk):
        task = leases.task_mark_implemented(
            actor=request.user, task_id=pk, **_input(s.LeaseTokenSerializer, request)
        )
        return Response(s.TaskSerializer(task).data)


@extend_schema(
    tags=["agent"],
    request=s.DelegateSerializer,
    responses={201: s.DelegationSerializer, **error_responses(409)},
)
class TaskDelegate(APIView):
    """Split your task into child tasks and let go of it: it becomes `delegated` and completes
    by itself when its children do."""

    def post(self, request, pk):
        result = delegation.task_delegate(
            actor=request.user, task_id=pk, **_input(s.DelegateSerializer, request)
        )
        return Response(s.DelegationSerializer(result).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["artifacts"])
class TaskArtifacts(APIView):
    @extend_schema(responses={200: s.ArtifactSerializer(many=True), **error_responses()})
    def get(self, request, pk):
        task = selectors.task_visible_or_404(request.user, pk)
        artifacts = Artifact.objects.filter(task=task).order_by("id")
        return Response(s.ArtifactSerializer(artifacts, many=True).data)

    @extend_schema(
        request=s.ArtifactCreateSerializer,
        responses={201: s.ArtifactSerializer, **error_responses(409)},
    )
    def post(self, request, pk):
        artifact = leases.artifact_publish(
            actor=request.user, task_id=pk, **_input(s.ArtifactCreateSerializer, request)
        )
        return Response(s.ArtifactSerializer(artifact).data, status=status.HTTP_201_CREATED)


# --- the operator's actions -------------------------------------------------------------------
@extend_schema(
    tags=["operator"],
    request=s.AssignSerializer,
    responses={201: s.ReservationSerializer, **error_responses(409)},
)
class TaskAssign(APIView):
    """Reserve the task for one agent for a while (operator)."""

    def post(self, request, pk):
        data = _input(s.AssignSerializer, request)
        reservation = operations.task_assign(
            actor=request.user,
            task_id=pk,
            assignee=data["agent"],
            ttl_seconds=data.get("ttl_seconds"),
        )
        return Response(s.ReservationSerializer(reservation).data, status=status.HTTP_201_CREATED)


def _operator_action(service, input_serializer, doc):
    """A POST on a task that calls one operator service and answers with the task."""

    @extend_schema(
        tags=["operator"],
        request=input_serializer,
        description=doc,
        responses={200: s.TaskSerializer, **error_responses(409)},
    )
    def post(self, request, pk):
        data = _input(input_serializer, request) if input_serializer else {}
        task = service(actor=request.user, task_id=pk, **data)
        return Response(s.TaskSerializer(task).data)

    return type(f"{service.__name__}_view", (APIView,), {"post": post, "__doc__": doc})


class _Empty(serializers.Serializer):
    pass


TaskUnassign = _operator_action(operations.task_unassign, _Empty, "End the task's assignment.")
TaskBlock = _operator_action(
    operations.task_block,
    s.ReasonSerializer,
    "Block the task; any lease or reservation is revoked.",
)
TaskUnblock = _operator_action(
    operations.task_unblock,
    s.OptionalReasonSerializer,
    "Return a blocked task to the pool with a fresh attempt count.",
)
TaskCancel = _operator_action(
    operations.task_cancel, s.ReasonSerializer, "Cancel the task for good."
)
TaskAbandon = _operator_action(
    operations.task_abandon, s.ReasonSerializer, "Give the work up; an override can reopen it."
)
TaskOverride = _operator_action(
    operations.task_override,
    s.OverrideSerializer,
    "Force the task's state with a rationale, recorded as an override. "
    "`backlog` and `ready` mean back to the pool; `integrated` is never a target.",
)


# --- the integration queue (operators and integrator processes) -------------------------------
IntegrationAttemptList = _list(
    IntegrationAttempt, s.IntegrationAttemptSerializer, "integration", ["state", "task"]
)
IntegrationAttemptDetail = _detail(
    IntegrationAttempt, s.IntegrationAttemptSerializer, "integration"
)


@extend_schema(
    tags=["integration"],
    request=None,
    responses={201: s.IntegrationAttemptSerializer, **error_responses(409)},
)
class TaskIntegrationEnqueue(APIView):
    """Queue an approved, implemented task for integration (operator)."""

    def post(self, request, pk):
        attempt = integration.integration_enqueue(actor=request.user, task_id=pk)
        return Response(
            s.IntegrationAttemptSerializer(attempt).data, status=status.HTTP_201_CREATED
        )


@extend_schema(
    tags=["integration"],
    request=None,
    responses={
        201: s.IntegrationAttemptSerializer,
        204: OpenApiResponse(description="Nothing queued, or an attempt is still running."),
        **error_responses(409),
    },
)
class IntegrationTakeNext(APIView):
    """Start the oldest queued attempt of the project; merges run one at a time."""

    def post(self, request, project_id):
        attempt = integration.integration_take_next(actor=request.user, project_id=project_id)
        if attempt is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(
            s.IntegrationAttemptSerializer(attempt).data, status=status.HTTP_201_CREATED
        )


@extend_schema(
    tags=["integration"],
    request=s.IntegrationResultSerializer,
    responses={200: s.IntegrationAttemptSerializer, **error_responses(409)},
)
class IntegrationResult(APIView):
    """Record the result of the attempt you took: it drives the task."""

    def post(self, request, pk):
        attempt = integration.integration_record_result(
            actor=request.user, attempt_id=pk, **_input(s.IntegrationResultSerializer, request)
        )
        return Response(s.IntegrationAttemptSerializer(attempt).data)


# --- plan changesets (planners) ---------------------------------------------------------------
class ChangesetListCreate(_list(Changeset, s.ChangesetSerializer, "changesets", ["status"])):
    @extend_schema(
        request=s.ChangesetCreateSerializer,
        responses={201: s.ChangesetSerializer, **error_responses(409)},
    )
    def post(self, request, project_id):
        """Propose a changeset against the plan version you saw (planner)."""
        data = _input(s.ChangesetCreateSerializer, request)
        changeset = changesets.changeset_create(actor=request.user, project_id=project_id, **data)
        return Response(s.ChangesetSerializer(changeset).data, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["changesets"],
    request=s.PlanDocumentSerializer,
    responses={201: s.ChangesetSerializer, **error_responses(409)},
)
class ChangesetImport(APIView):
    """Propose a changeset from a plan document, as the planner's upload form does: an
    unreadable document is 400 ``PLAN_DOCUMENT_INVALID`` with the line or item at fault."""

    def post(self, request, project_id):
        data = _input(s.PlanDocumentSerializer, request)
        operations = parse_plan_document(data["filename"], data["content"].encode())
        changeset = changesets.changeset_create(
            actor=request.user,
            project_id=project_id,
            base_version=data["base_version"],
            operations=operations,
            title=data.get("title") or data["filename"],
        )
        return Response(s.ChangesetSerializer(changeset).data, status=status.HTTP_201_CREATED)


ChangesetDetail = _detail(Changeset, s.ChangesetSerializer, "changesets")


@extend_schema(
    tags=["changesets"],
    request=s.ChangesetApplySerializer,
    responses={200: s.ChangesetPreviewSerializer, **error_responses(409)},
)
class ChangesetPreview(APIView):
    """What applying would do (claims released, started work told, readiness changes), or
    the first refusal it would meet. Changes nothing."""

    def post(self, request, pk):
        data = _input(s.ChangesetApplySerializer, request)
        return Response(changesets.changeset_preview(actor=request.user, changeset_id=pk, **data))


@extend_schema(
    tags=["changesets"],
    request=s.ChangesetApplySerializer,
    responses={200: s.ChangesetSerializer, **error_responses(409)},
)
class ChangesetApply(APIView):
    """Apply every operation or none, as one new plan version (planner)."""

    def post(self, request, pk):
        data = _input(s.ChangesetApplySerializer, request)
        changeset = changesets.changeset_apply(actor=request.user, changeset_id=pk, **data)
        return Response(s.ChangesetSerializer(changeset).data)


class VersionQuerySerializer(serializers.Serializer):
    from_version = serializers.IntegerField(min_value=0, max_value=2**31 - 1)
    to_version = serializers.IntegerField(min_value=0, max_value=2**31 - 1)


@extend_schema(
    tags=["changesets"],
    parameters=[VersionQuerySerializer],
    responses={200: s.VersionCompareSerializer, **error_responses()},
)
class VersionCompare(APIView):
    """The changesets that took the plan from one version to another, in order."""

    def get(self, request, project_id):
        query = _query(VersionQuerySerializer, request)
        low, high = sorted((query["from_version"], query["to_version"]))
        applied = (
            selectors.project_children(Changeset, request.user, project_id)
            .filter(applied_version__gt=low, applied_version__lte=high)
            .order_by("applied_version")
        )
        return Response(
            {
                "from_version": low,
                "to_version": high,
                "changesets": s.ChangesetSerializer(applied, many=True).data,
            }
        )
