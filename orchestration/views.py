"""The planner's pages: upload a plan document, see its impact, then apply it.

Thin: parsing lives in ``plan_formats``, every rule in the changeset services, and the
signed-in user is the actor.
"""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import redirect, render

from governance.actors import Actor
from orchestration.forms import ChangesetApplyForm, PlanUploadForm
from orchestration.models import Changeset
from orchestration.plan_formats import parse_plan_document
from orchestration.selectors import object_visible_or_404, project_visible_or_404
from orchestration.services.changesets import (
    changeset_apply,
    changeset_create,
    changeset_preview,
)
from tascade.errors import DomainError


@staff_member_required
def upload(request, project_id: int):
    actor = Actor.for_user(request.user)
    project = project_visible_or_404(actor, project_id)
    form = PlanUploadForm(
        request.POST or None, request.FILES or None, initial={"base_version": project.plan_version}
    )
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            document = form.cleaned_data["document"]
            try:
                operations = parse_plan_document(document.name, document.read())
                changeset = changeset_create(
                    actor=actor,
                    project_id=project.pk,
                    base_version=form.cleaned_data["base_version"],
                    operations=operations,
                    title=document.name,
                )
            except DomainError as refusal:
                messages.error(request, _explain(refusal))
            else:
                return redirect("plan:changeset", changeset_id=changeset.pk)
    changesets = Changeset.objects.filter(project=project).order_by("-id")[:20]
    return render(
        request,
        "plan/upload.html",
        {"project": project, "form": form, "changesets": changesets},
        status=status,
    )


@staff_member_required
def changeset_page(request, changeset_id: int):
    actor = Actor.for_user(request.user)
    changeset = object_visible_or_404(Changeset, actor, changeset_id)
    form = ChangesetApplyForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            changeset_apply(actor=actor, changeset_id=changeset.pk, **form.cleaned_data)
        except DomainError as refusal:
            messages.error(request, _explain(refusal))
            status = 409 if refusal.http_status == 409 else 400
        else:
            messages.success(
                request,
                f"Applied: the plan is now at version "
                f"{Changeset.objects.get(pk=changeset.pk).applied_version}.",
            )
            return redirect("plan:upload", project_id=changeset.project_id)
    changeset.refresh_from_db()
    preview = None
    if changeset.status == "draft":
        try:
            preview = changeset_preview(
                actor=actor, changeset_id=changeset.pk, rebase=form.data.get("rebase") == "on"
            )
        except DomainError as refusal:
            messages.error(request, _explain(refusal))
    return render(
        request,
        "plan/changeset.html",
        {"changeset": changeset, "preview": preview, "form": form},
        status=status,
    )


def _explain(refusal: DomainError) -> str:
    where = {
        k: v
        for k, v in refusal.details.items()
        if k in ("operation_index", "operation", "field", "line", "where", "current_version")
    }
    return f"{refusal.message} {where}" if where else refusal.message
