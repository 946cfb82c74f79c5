"""The operator's health page: are the periodic jobs running, and what needs attention."""

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db.models import Q
from django.shortcuts import render
from django.utils import timezone
from django_celery_results.models import TaskResult

from governance.models import Checkpoint
from orchestration.models import Event, IntegrationAttempt, IntegrationState

JOBS = (
    ("Expiry sweep", "orchestration.sweep_expired_holds", "SWEEP_INTERVAL_SECONDS"),
    ("Gate evaluation", "governance.evaluate_gates", "GATE_INTERVAL_SECONDS"),
)


def _job_health(label: str, task_name: str, interval_setting: str, now) -> dict:
    runs = list(TaskResult.objects.filter(task_name=task_name).order_by("-date_done")[:10])
    interval = settings.TASCADE[interval_setting]
    last = runs[0] if runs else None
    lag = (now - last.date_done).total_seconds() if last and last.date_done else None
    return {
        "label": label,
        "task_name": task_name,
        "interval": interval,
        "runs": runs,
        "lag_seconds": lag,
        # Late once two intervals went by without a run (or it never ran).
        "late": lag is None or lag > 2 * interval,
    }


@staff_member_required
def health(request):
    now = timezone.now()
    return render(
        request,
        "ops/health.html",
        {
            "now": now,
            "jobs": [_job_health(*job, now) for job in JOBS],
            "integrations": IntegrationAttempt.objects.filter(
                state__in=[IntegrationState.QUEUED, IntegrationState.RUNNING]
            )
            .select_related("task", "project")
            .order_by("project_id", "id")[:100],
            "expiries": Event.objects.filter(kind__in=["lease.expired", "reservation.expired"])
            .select_related("project")
            .order_by("-id")[:20],
            "breaches": Checkpoint.objects.filter(decided_at__isnull=True)
            .filter(Q(sla_breached_at__isnull=False) | Q(due_at__lte=now))
            .select_related("rule", "project")
            .order_by("due_at")[:50],
        },
    )
