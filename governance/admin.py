from django import forms
from django.contrib import admin, messages

from governance.actors import Actor, Role
from governance.models import ApiKey, Review
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
