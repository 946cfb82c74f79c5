"""Drive a task through the agent's lifecycle with the real services."""

from datetime import timedelta

from django.utils import timezone

from orchestration.services import leases


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def claim(task, actor, **kwargs):
    return leases.task_claim(actor=actor, task_id=task.pk, **kwargs)


def implement(task, actor):
    """claim → start → artifact → implemented; returns the lease."""
    lease = claim(task, actor)
    leases.task_start(actor=actor, task_id=task.pk, lease_token=lease.token)
    leases.artifact_publish(
        actor=actor, task_id=task.pk, lease_token=lease.token, commit_sha="abc1234"
    )
    leases.task_mark_implemented(actor=actor, task_id=task.pk, lease_token=lease.token)
    task.refresh_from_db()
    return lease
