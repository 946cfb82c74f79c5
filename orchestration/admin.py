"""The admin is read-mostly: state is never editable by hand. State changes go through
admin actions that call the same services as the API."""

from django.contrib import admin, messages

from governance.actors import Actor
from orchestration.models import (
    Artifact,
    Changeset,
    Dependency,
    Event,
    ExecutionSnapshot,
    IntegrationAttempt,
    Lease,
    Milestone,
    PathOverlap,
    Phase,
    Project,
    Reservation,
    Task,
    WebhookDelivery,
    WebhookSubscription,
)
from orchestration.services import operations, webhooks
from tascade.errors import DomainError


class ReadOnlyAdmin(admin.ModelAdmin):
    """Everything visible, nothing editable or deletable from the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "plan_version", "lease_ttl_seconds", "created_at"]
    search_fields = ["slug", "name"]


@admin.register(Phase)
class PhaseAdmin(ReadOnlyAdmin):
    list_display = ["name", "project", "position"]
    list_filter = ["project"]


@admin.register(Milestone)
class MilestoneAdmin(ReadOnlyAdmin):
    list_display = ["name", "phase", "project", "position"]
    list_filter = ["project"]


def _service_action(service, description, **fixed):
    """An admin action that runs a service per task, as the signed-in user."""

    def action(modeladmin, request, queryset):
        actor = Actor.for_user(request.user)
        done = 0
        for task in queryset.order_by("pk"):
            try:
                service(actor=actor, task_id=task.pk, **fixed)
                done += 1
            except DomainError as exc:
                modeladmin.message_user(request, f"{task.ref}: {exc.message}", messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{description}: {done} task(s).", messages.SUCCESS)

    action.short_description = description
    action.__name__ = service.__name__
    return action


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["ref", "title", "project", "state", "priority", "holder", "attempt_count"]
    list_filter = ["project", "state", "task_class"]
    search_fields = ["title", "number"]
    actions = [
        _service_action(operations.task_block, "Block", reason="blocked from the admin"),
        _service_action(operations.task_unblock, "Unblock", reason="unblocked from the admin"),
        _service_action(operations.task_cancel, "Cancel", reason="cancelled from the admin"),
    ]

    def has_change_permission(self, request, obj=None):
        # Needed for actions to show; the form itself stays read-only (every field is).
        return request.user.is_superuser

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]


@admin.register(Dependency)
class DependencyAdmin(ReadOnlyAdmin):
    list_display = ["id", "prerequisite", "dependent", "unlock_on", "project"]
    list_filter = ["project", "unlock_on"]


@admin.register(Lease)
class LeaseAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "agent", "token", "status", "expires_at"]
    list_filter = ["status", "project"]


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "assignee", "status", "expires_at"]
    list_filter = ["status", "project"]


@admin.register(ExecutionSnapshot)
class ExecutionSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "plan_version", "spec_hash", "created_at"]


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "agent", "branch", "commit_sha", "check_status", "created_at"]
    list_filter = ["check_status", "project"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "project", "task", "actor", "created_at"]
    list_filter = ["kind", "project"]


@admin.register(PathOverlap)
class PathOverlapAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "other_task", "artifact", "created_at"]
    list_filter = ["project"]


@admin.register(IntegrationAttempt)
class IntegrationAttemptAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "state", "enqueued_by", "taken_by", "created_at", "finished_at"]
    list_filter = ["state", "project"]


@admin.register(Changeset)
class ChangesetAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "project",
        "title",
        "base_version",
        "status",
        "applied_version",
        "created_by",
        "created_at",
    ]
    list_filter = ["status", "project"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ReadOnlyAdmin):
    """Subscriptions are made through the API (which shows the secret once); here an
    operator sees them and switches them off or on. The secret is never shown."""

    list_display = ["id", "project", "url", "event_kinds", "active", "created_by", "created_at"]
    list_filter = ["active", "project"]
    search_fields = ["url", "description"]
    exclude = ["secret"]
    actions = ["deactivate", "activate"]

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser  # for the actions; every field stays read-only

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "secret"]

    def _set_active(self, request, queryset, active: bool) -> None:
        actor = Actor.for_user(request.user)
        done = 0
        for subscription in queryset.order_by("pk"):
            try:
                webhooks.webhook_update(actor=actor, webhook_id=subscription.pk, active=active)
                done += 1
            except DomainError as exc:
                self.message_user(
                    request, f"webhook {subscription.pk}: {exc.message}", messages.ERROR
                )
        if done:
            word = "Activated" if active else "Deactivated"
            self.message_user(request, f"{word} {done} subscription(s).", messages.SUCCESS)

    @admin.action(description="Deactivate")
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)

    @admin.action(description="Activate (receives the events that follow)")
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The delivery log: read-only, with a redeliver action calling the same service as the
    API."""

    list_display = [
        "id",
        "subscription",
        "event",
        "event_kind",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "project", "subscription"]
    list_select_related = ["event", "subscription"]
    actions = ["redeliver"]

    @admin.display(description="kind")
    def event_kind(self, delivery):
        return delivery.event.kind

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser  # for the action; every field stays read-only

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    @admin.action(description="Redeliver")
    def redeliver(self, request, queryset):
        actor = Actor.for_user(request.user)
        done = 0
        for delivery in queryset.order_by("pk"):
            try:
                webhooks.webhook_redeliver(actor=actor, delivery_id=delivery.pk)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"delivery {delivery.pk}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(
                request, f"Redelivery queued: {done} delivery(ies).", messages.SUCCESS
            )
