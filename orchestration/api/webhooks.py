"""Webhook subscriptions and their delivery log (operators and admins). Thin views: each
parses input, calls one service or selector, and renders the result."""

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestration import selectors
from orchestration.models import WebhookDelivery, WebhookSubscription
from orchestration.services import webhooks
from tascade.api import OutputModelSerializer, error_responses

_FIELDS = [
    "id",
    "project",
    "url",
    "event_kinds",
    "description",
    "active",
    "cursor",
    "created_by",
    "created_at",
    "updated_at",
]


class WebhookSerializer(OutputModelSerializer):
    event_kinds = serializers.ListField(child=serializers.CharField(), read_only=True)
    cursor = serializers.IntegerField(
        source="cursor_id",
        read_only=True,
        allow_null=True,
        help_text="The last event fanned out to this subscription (commit order).",
    )

    class Meta:
        model = WebhookSubscription
        fields = _FIELDS
        read_only_fields = _FIELDS


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The signing secret. Shown in this answer only: keep it with the receiver.",
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*_FIELDS, "secret"]
        read_only_fields = fields


class WebhookCreateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, help_text="http:// or https:// only.")
    event_kinds = serializers.ListField(
        child=serializers.CharField(max_length=60),
        max_length=webhooks.MAX_KINDS,
        required=False,
        help_text="Event kinds (task.ready) or families (task.*); empty: every kind.",
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    event_kinds = serializers.ListField(
        child=serializers.CharField(max_length=60),
        max_length=webhooks.MAX_KINDS,
        required=False,
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    active = serializers.BooleanField(
        required=False, help_text="false deactivates (nothing is sent); true reactivates."
    )


class WebhookDeliverySerializer(OutputModelSerializer):
    event_kind = serializers.CharField(source="event.kind", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "project",
            "subscription",
            "event",
            "event_kind",
            "status",
            "attempts",
            "attempts_left",
            "redeliveries",
            "next_attempt_at",
            "last_attempt_at",
            "last_duration_ms",
            "last_status_code",
            "last_error",
            "response_excerpt",
            "delivered_at",
            "created_at",
        ]
        read_only_fields = fields


def _input(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@extend_schema(tags=["webhooks"])
class WebhookListCreate(generics.ListAPIView):
    serializer_class = WebhookSerializer
    filterset_fields = ["active"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WebhookSubscription.objects.none()
        return selectors.webhooks_of_project(self.request.user, self.kwargs["project_id"])

    @extend_schema(responses={200: WebhookSerializer(many=True), **error_responses()})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=WebhookCreateSerializer,
        responses={201: WebhookCreatedSerializer, **error_responses(409)},
    )
    def post(self, request, project_id):
        """Subscribe a receiver (operator). The answer holds the signing secret, once."""
        subscription = webhooks.webhook_create(
            actor=request.user, project_id=project_id, **_input(WebhookCreateSerializer, request)
        )
        return Response(WebhookCreatedSerializer(subscription).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["webhooks"])
class WebhookDetail(APIView):
    @extend_schema(responses={200: WebhookSerializer, **error_responses()})
    def get(self, request, pk):
        subscription = selectors.webhook_visible_or_404(request.user, pk)
        return Response(WebhookSerializer(subscription).data)

    @extend_schema(
        request=WebhookUpdateSerializer,
        responses={200: WebhookSerializer, **error_responses(409)},
    )
    def patch(self, request, pk):
        """Change the target, filter or description; ``active: false`` deactivates."""
        subscription = webhooks.webhook_update(
            actor=request.user, webhook_id=pk, **_input(WebhookUpdateSerializer, request)
        )
        return Response(WebhookSerializer(subscription).data)


@extend_schema(
    tags=["webhooks"],
    responses={200: WebhookDeliverySerializer(many=True), **error_responses()},
)
class WebhookDeliveryList(generics.ListAPIView):
    """The delivery log of a project, oldest first (filter by status, subscription, event)."""

    serializer_class = WebhookDeliverySerializer
    filterset_fields = ["status", "subscription", "event"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return WebhookDelivery.objects.none()
        return selectors.webhook_deliveries_of_project(
            self.request.user, self.kwargs["project_id"]
        ).select_related("event")


@extend_schema(tags=["webhooks"], responses={200: WebhookDeliverySerializer, **error_responses()})
class WebhookDeliveryDetail(APIView):
    def get(self, request, pk):
        delivery = selectors.webhook_delivery_visible_or_404(request.user, pk)
        return Response(WebhookDeliverySerializer(delivery).data)


@extend_schema(
    tags=["webhooks"],
    request=None,
    responses={200: WebhookDeliverySerializer, **error_responses(409)},
)
class WebhookRedeliver(APIView):
    """Send a delivery again, whatever its outcome was: a new round of attempts, due now."""

    def post(self, request, pk):
        delivery = webhooks.webhook_redeliver(actor=request.user, delivery_id=pk)
        return Response(WebhookDeliverySerializer(delivery).data)
