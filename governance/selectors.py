"""Governance reads: the approval that lets a task integrate, and the review queue."""

from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from governance.actors import Actor
from governance.models import Checkpoint, Review, Verdict
from orchestration.models import PathOverlap, Task, TaskClass, TaskState
from orchestration.selectors import project_visible_or_404, projects_visible

# Classes whose mistakes propagate furthest: reviewed first.
RISKY_CLASSES = (TaskClass.ARCHITECTURE, TaskClass.MIGRATION, TaskClass.SECURITY, TaskClass.INFRA)


def current_approval(task: Task) -> Review | None:
    """An approval of the task's current implementation by someone other than its implementer.

    Reviews are refused from the implementer when they are recorded; the check is repeated
    here so that the rule does not rest on a single place that could be bypassed.
    """
    if task.state != TaskState.IMPLEMENTED:
        return None
    return (
        Review.objects.filter(
            task=task, implementation=task.implementation_count, verdict=Verdict.APPROVED
        )
        .exclude(reviewer=task.implemented_by)
        .order_by("id")
        .first()
    )


def review_queue(actor: Actor, project_id: int | None = None, *, model=Task) -> QuerySet:
    """Implemented work that nobody has approved yet: riskiest first, then longest waiting,
    each with its count of unpredicted path overlaps (``unpredicted_overlaps``).

    One project, or every project the actor may see. ``model`` lets the admin list the same
    rows through its proxy model.
    """
    if project_id is not None:
        scope = {"project": project_visible_or_404(actor, project_id)}
    else:
        scope = {"project__in": projects_visible(actor)}
    approved = Review.objects.filter(
        task=OuterRef("pk"),
        implementation=OuterRef("implementation_count"),
        verdict=Verdict.APPROVED,
    )
    # Unpredicted path overlaps flagged on the task, from either side: the reviewer checks
    # that the two changes agree where the plan did not expect them to meet.
    overlaps = (
        PathOverlap.objects.filter(Q(task=OuterRef("pk")) | Q(other_task=OuterRef("pk")))
        .order_by()
        .annotate(n=Func(F("id"), function="COUNT"))
        .values("n")
    )
    return (
        # A delegated task is judged through its children, never on its own.
        model.objects.filter(state=TaskState.IMPLEMENTED, delegated_at__isnull=True, **scope)
        .annotate(
            approved=Exists(approved),
            unpredicted_overlaps=Coalesce(Subquery(overlaps, output_field=IntegerField()), 0),
            risk=Case(
                When(task_class__in=RISKY_CLASSES, then=Value(1)),
                default=Value(0),
                output_field=IntegerField(),
            ),
        )
        .filter(approved=False)
        .order_by(*REVIEW_QUEUE_ORDER)
    )


REVIEW_QUEUE_ORDER = ("-risk", "state_changed_at", "id")


def checkpoints_waiting(actor: Actor, project_id: int) -> QuerySet[Checkpoint]:
    """Undecided checkpoints of a project, most urgent first, with their candidate count."""
    project = project_visible_or_404(actor, project_id)
    return (
        Checkpoint.objects.filter(project=project, decided_at__isnull=True)
        .select_related("rule", "gate_task")
        .annotate(candidate_count=Count("candidates", distinct=True))
        .order_by("due_at", "id")
    )
