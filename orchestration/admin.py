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
)
from orchestration.services import operations
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
