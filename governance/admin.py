from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from governance.actors import Actor, Role
from governance.models import (
    ApiKey,
    Checkpoint,
    CheckpointCandidate,
    GateDecision,
    GateRule,
    Review,
    ReviewQueueItem,
)
from governance.selectors import REVIEW_QUEUE_ORDER, review_queue
from governance.services.api_keys import api_key_create, api_key_revoke
from orchestration.admin import ReadOnlyAdmin
from tascade.errors import DomainError


class ApiKeyCreateForm(forms.ModelForm):
    roles = forms.MultipleChoiceField(choices=Role.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["actor", "label", "roles", "project"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created here (the raw key is shown once) and revoked; never edited."""

    list_display = ["prefix", "actor", "roles", "project", "created_at", "revoked_at"]
    list_filter = ["project"]
    search_fields = ["actor", "prefix", "label"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f.name for f in ApiKey._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        issued = api_key_create(
            actor=Actor.for_user(request.user),
            key_actor=form.cleaned_data["actor"],
            roles=form.cleaned_data["roles"],
            project=form.cleaned_data["project"],
            label=form.cleaned_data["label"],
        )
        # The admin keeps using ``obj`` after this (log entry, redirect): make it the new key.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued.api_key, field.attname))
        obj._state.adding = False
        self.message_user(
            request,
            f"Key for {obj.actor}: {issued.raw_key} (shown this once only; copy it now).",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            try:
                api_key_revoke(actor=Actor.for_user(request.user), api_key=key)
            except DomainError as exc:
                self.message_user(request, f"{key}: {exc.message}", messages.ERROR)


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    list_display = ["id", "task", "verdict", "reviewer", "implemented_by", "created_at"]
    list_filter = ["verdict", "project"]
    search_fields = ["reviewer", "rationale"]


@admin.register(ReviewQueueItem)
class ReviewQueueAdmin(ReadOnlyAdmin):
    """Implemented work awaiting approval, riskiest then oldest first; decide on its page."""

    list_display = [
        "ref",
        "title",
        "project",
        "task_class",
        "implemented_by",
        "waiting_since",
        "review_link",
    ]
    list_filter = ["project", "task_class"]

    def get_ordering(self, request):
        return REVIEW_QUEUE_ORDER  # orders on the selector's risk annotation

    def get_queryset(self, request):
        return review_queue(Actor.for_user(request.user), model=ReviewQueueItem)

    @admin.display(description="waiting since")
    def waiting_since(self, task):
        return task.state_changed_at

    @admin.display(description="review")
    def review_link(self, task):
        return format_html('<a href="{}">Review</a>', reverse("review:task", args=[task.pk]))


@admin.register(GateRule)
class GateRuleAdmin(ReadOnlyAdmin):
    list_display = ["name", "project", "trigger", "threshold", "sla_hours", "enabled"]
    list_filter = ["project", "trigger", "enabled"]


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["id", "rule", "gate_task", "due_at", "sla_breached_at", "decided_at"]
    list_filter = ["project", "rule__trigger"]


@admin.register(CheckpointCandidate)
class CheckpointCandidateAdmin(ReadOnlyAdmin):
    list_display = ["checkpoint", "task", "rule"]


@admin.register(GateDecision)
class GateDecisionAdmin(ReadOnlyAdmin):
    list_display = ["checkpoint", "verdict", "reviewer", "created_at"]
    list_filter = ["verdict"]
