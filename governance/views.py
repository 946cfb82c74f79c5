"""Server-rendered reviewer pages: the queue, and one task with everything needed to judge it.

Thin: they read through selectors and decide through ``review_record``, as the signed-in
user (the identity the self-review rule is checked against).
"""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.shortcuts import redirect, render

from governance.actors import Actor
from governance.forms import ReviewForm
from governance.models import Review
from governance.selectors import RISKY_CLASSES, current_approval, review_queue
from governance.services.reviews import review_record
from orchestration.models import Artifact, Event
from orchestration.selectors import project_visible_or_404, projects_visible, task_visible_or_404
from tascade.errors import DomainError


@staff_member_required
def queue(request, project_id: int | None = None):
    actor = Actor.for_user(request.user)
    projects = list(projects_visible(actor))
    project = project_visible_or_404(actor, project_id) if project_id else None
    tasks = list(review_queue(actor, project.pk)[:200]) if project else []
    return render(
        request,
        "review/queue.html",
        {"projects": projects, "project": project, "tasks": tasks, "risky": RISKY_CLASSES},
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
        },
        status=400 if request.method == "POST" else 200,
    )
