"""Server-rendered reviewer pages: the queue, and one task with everything needed to judge it.

Thin: they read through selectors and decide through ``review_record``, as the signed-in
user (the identity the self-review rule is checked against).
"""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import redirect, render
from django.utils import timezone

from governance.actors import Actor
from governance.forms import GateDecisionForm, ReviewForm
from governance.models import Checkpoint, GateDecision, Review
from governance.selectors import RISKY_CLASSES, current_approval, review_queue
from governance.services.gates import gate_decide
from governance.services.reviews import review_record
from orchestration.models import Artifact, Event
from orchestration.selectors import (
    object_visible_or_404,
    path_overlaps_of,
    project_visible_or_404,
    projects_visible,
    task_visible_or_404,
)
from tascade.errors import DomainError


@staff_member_required
def queue(request, project_id: int | None = None):
    actor = Actor.for_user(request.user)
    projects = list(projects_visible(actor))
    project = project_visible_or_404(actor, project_id) if project_id else None
    tasks = list(review_queue(actor, project.pk)[:200]) if project else []
    checkpoints = (
        Checkpoint.objects.filter(project=project, decided_at__isnull=True)
        .select_related("rule", "gate_task")
        .order_by("due_at")
        if project
        else []
    )
    return render(
        request,
        "review/queue.html",
        {
            "projects": projects,
            "project": project,
            "tasks": tasks,
            "checkpoints": checkpoints,
            "risky": RISKY_CLASSES,
            "now": timezone.now(),
        },
    )


@staff_member_required
def task_review(request, task_id: int):
    actor = Actor.for_user(request.user)
    task = task_visible_or_404(actor, task_id)
    form = ReviewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            review_record(actor=actor, task_id=task.pk, **form.cleaned_data)
        except DomainError as refusal:
            messages.error(request, refusal.message)
        else:
            messages.success(request, f"{task.ref}: {form.cleaned_data['verdict']} recorded.")
            return redirect("review:queue-project", project_id=task.project_id)
    task.refresh_from_db()
    return render(
        request,
        "review/task.html",
        {
            "task": task,
            "form": form,
            "own_work": task.implemented_by == actor.name,
            "approval": current_approval(task),
            "artifacts": Artifact.objects.filter(task=task).order_by("-id")[:20],
            "reviews": Review.objects.filter(task=task).order_by("-id"),
            "events": Event.objects.filter(task=task).order_by("-id")[:100],
            "path_overlaps": path_overlaps_of(task),
        },
        status=400 if request.method == "POST" else 200,
    )


@staff_member_required
def checkpoint_review(request, checkpoint_id: int):
    actor = Actor.for_user(request.user)
    checkpoint = object_visible_or_404(Checkpoint, actor, checkpoint_id)
    form = GateDecisionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            gate_decide(actor=actor, checkpoint_id=checkpoint.pk, **form.cleaned_data)
        except DomainError as refusal:
            messages.error(request, refusal.message)
        else:
            messages.success(request, f"Checkpoint {checkpoint.pk}: decision recorded.")
            return redirect("review:queue-project", project_id=checkpoint.project_id)
    candidates = list(checkpoint.candidates.order_by("id"))
    return render(
        request,
        "review/checkpoint.html",
        {
            "checkpoint": checkpoint,
            "candidates": candidates,
            "implementers": sorted({t.implemented_by for t in candidates if t.implemented_by}),
            "form": form,
            "decision": GateDecision.objects.filter(checkpoint=checkpoint).first(),
            "now": timezone.now(),
        },
        status=400 if request.method == "POST" else 200,
    )
