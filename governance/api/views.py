from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.actors import Role
from governance.api import serializers as s
from governance.models import ApiKey, Checkpoint, GateRule, Review
from governance.selectors import review_queue
from governance.services.api_keys import api_key_create, api_key_revoke
from governance.services.gates import gate_decide, gate_rule_create, gate_rule_update
from governance.services.reviews import review_record
from orchestration.api.serializers import TaskSerializer
from orchestration.selectors import (
    object_visible_or_404,
    project_children,
    project_visible_or_404,
    task_visible_or_404,
)
from tascade.api import error_responses


@extend_schema(tags=["auth"], responses={200: s.WhoAmISerializer, **error_responses()})
class WhoAmI(APIView):
    """Who this key acts as: the identity every write is recorded under."""

    def get(self, request):
        actor = request.user
        return Response(
            {"actor": actor.name, "roles": sorted(actor.roles), "project": actor.project_id}
        )


@extend_schema(tags=["auth"])
class ApiKeyListCreate(generics.ListAPIView):
    serializer_class = s.ApiKeySerializer
    filterset_fields = ["actor", "project"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ApiKey.objects.none()
        self.request.user.require(Role.ADMIN)
        keys = ApiKey.objects.all()
        if self.request.user.project_id is not None:
            keys = keys.filter(project_id=self.request.user.project_id)
        return keys

    @extend_schema(responses={200: s.ApiKeySerializer(many=True), **error_responses()})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.ApiKeyCreateSerializer,
        responses={201: s.IssuedKeySerializer, **error_responses()},
    )
    def post(self, request):
        serializer = s.ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        project = None
        if "project" in data:
            project = project_visible_or_404(request.user, data["project"])
        elif request.user.project_id is not None:
            project = project_visible_or_404(request.user, request.user.project_id)
        issued = api_key_create(
            actor=request.user,
            key_actor=data["actor"],
            roles=data["roles"],
            project=project,
            label=data.get("label", ""),
        )
        body = s.ApiKeySerializer(issued.api_key).data | {"key": issued.raw_key}
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["auth"], request=None, responses={200: s.ApiKeySerializer, **error_responses(409)}
)
class ApiKeyRevoke(APIView):
    def post(self, request, pk):
        request.user.require(Role.ADMIN)
        api_key = object_visible_or_404(ApiKey, request.user, pk)
        return Response(
            s.ApiKeySerializer(api_key_revoke(actor=request.user, api_key=api_key)).data
        )


# --- reviews ---------------------------------------------------------------------------------
@extend_schema(tags=["reviews"])
class TaskReviews(APIView):
    @extend_schema(responses={200: s.ReviewSerializer(many=True), **error_responses()})
    def get(self, request, pk):
        task = task_visible_or_404(request.user, pk)
        return Response(s.ReviewSerializer(Review.objects.filter(task=task), many=True).data)

    @extend_schema(
        request=s.ReviewCreateSerializer,
        responses={201: s.ReviewSerializer, **error_responses(409)},
    )
    def post(self, request, pk):
        """Approve, request changes or reject an implemented task (reviewer; never your own)."""
        serializer = s.ReviewCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        review = review_record(actor=request.user, task_id=pk, **serializer.validated_data)
        return Response(s.ReviewSerializer(review).data, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["reviews"], responses={200: s.ReviewSerializer(many=True), **error_responses()}
)
class ProjectReviews(generics.ListAPIView):
    serializer_class = s.ReviewSerializer
    filterset_fields = ["task", "reviewer", "verdict"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Review.objects.none()
        return project_children(Review, self.request.user, self.kwargs["project_id"])


@extend_schema(tags=["reviews"], responses={200: s.ReviewSerializer, **error_responses()})
class ReviewDetail(APIView):
    def get(self, request, pk):
        return Response(s.ReviewSerializer(object_visible_or_404(Review, request.user, pk)).data)


class ReviewQueueTaskSerializer(TaskSerializer):
    unpredicted_overlaps = serializers.IntegerField(
        read_only=True,
        help_text=(
            "Unpredicted path overlaps flagged on the task (see its context's path_overlaps)."
        ),
    )

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "unpredicted_overlaps"]
        read_only_fields = fields


@extend_schema(
    tags=["reviews"],
    responses={200: ReviewQueueTaskSerializer(many=True), **error_responses()},
)
class ReviewQueue(generics.ListAPIView):
    """Implemented work awaiting an approval: riskiest first, then longest waiting. Each
    task says how many unpredicted path overlaps are flagged on it."""

    serializer_class = ReviewQueueTaskSerializer
    filter_backends = []
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Review.objects.none()
        return review_queue(self.request.user, self.kwargs["project_id"])[:500]


# --- gates -------------------------------------------------------------------------------------
@extend_schema(tags=["gates"])
class GateRuleListCreate(generics.ListAPIView):
    serializer_class = s.GateRuleSerializer
    filterset_fields = ["trigger", "enabled"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return GateRule.objects.none()
        return project_children(GateRule, self.request.user, self.kwargs["project_id"])

    @extend_schema(responses={200: s.GateRuleSerializer(many=True), **error_responses()})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=s.GateRuleCreateSerializer,
        responses={201: s.GateRuleSerializer, **error_responses(409)},
    )
    def post(self, request, project_id):
        """Write a gate rule (planner): when to batch implemented work for a reviewer."""
        serializer = s.GateRuleCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        rule = gate_rule_create(
            actor=request.user,
            project_id=project_id,
            phase_id=data.pop("phase", None),
            milestone_id=data.pop("milestone", None),
            **data,
        )
        return Response(s.GateRuleSerializer(rule).data, status=status.HTTP_201_CREATED)


@extend_schema(
    tags=["gates"], responses={200: s.CheckpointSerializer(many=True), **error_responses()}
)
class CheckpointList(generics.ListAPIView):
    serializer_class = s.CheckpointSerializer
    filterset_fields = ["rule"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Checkpoint.objects.none()
        return project_children(
            Checkpoint, self.request.user, self.kwargs["project_id"]
        ).prefetch_related("candidates")


@extend_schema(tags=["gates"], responses={200: s.CheckpointSerializer, **error_responses()})
class CheckpointDetail(APIView):
    def get(self, request, pk):
        checkpoint = object_visible_or_404(Checkpoint, request.user, pk)
        return Response(s.CheckpointSerializer(checkpoint).data)


@extend_schema(
    tags=["gates"],
    request=s.GateDecisionCreateSerializer,
    responses={201: s.GateDecisionSerializer, **error_responses(409)},
)
class CheckpointDecide(APIView):
    """Settle a checkpoint's whole batch (reviewer who implemented none of its candidates)."""

    def post(self, request, pk):
        serializer = s.GateDecisionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decision = gate_decide(actor=request.user, checkpoint_id=pk, **serializer.validated_data)
        return Response(s.GateDecisionSerializer(decision).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["gates"])
class GateRuleDetail(APIView):
    @extend_schema(responses={200: s.GateRuleSerializer, **error_responses()})
    def get(self, request, pk):
        return Response(
            s.GateRuleSerializer(object_visible_or_404(GateRule, request.user, pk)).data
        )

    @extend_schema(
        request=s.GateRuleUpdateSerializer,
        responses={200: s.GateRuleSerializer, **error_responses(409)},
    )
    def patch(self, request, pk):
        """Pause, resume or re-tune a rule (planner)."""
        serializer = s.GateRuleUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = gate_rule_update(actor=request.user, rule_id=pk, **serializer.validated_data)
        return Response(s.GateRuleSerializer(rule).data)
