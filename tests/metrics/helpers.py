"""A controlled clock and a hand-built history, driven through the real services.

Every service and every ``auto_now_add`` reads ``django.utils.timezone.now``: moving that
clock makes the event log carry exactly the times a test chooses.
"""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock

from governance.actors import Actor, Role
from governance.services.reviews import review_record
from orchestration.services import integration, leases, plan

PLANNER = Actor(name="planner", roles=frozenset({Role.PLANNER}))
OPERATOR = Actor(name="operator", roles=frozenset({Role.OPERATOR}))
REVIEWER = Actor(name="rita", roles=frozenset({Role.REVIEWER}))
DAY = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday; all histories happen on or after it


def agent(name: str) -> Actor:
    return Actor(name=name, roles=frozenset({Role.AGENT}))


def at(hours: float) -> datetime:
    return DAY + timedelta(hours=hours)


@contextmanager
def clock(when: datetime):
    with mock.patch("django.utils.timezone.now", return_value=when):
        yield when


def do(hours: float, func, **kwargs):
    """Call a service as if it were ``hours`` after DAY began."""
    with clock(at(hours)):
        return func(**kwargs)


def new_project(slug="flow", hours=0.0, **kwargs):
    return do(hours, plan.project_create, actor=PLANNER, name=slug, slug=slug, **kwargs)


def new_task(project, hours, title="task", **kwargs):
    return do(hours, plan.task_create, actor=PLANNER, project_id=project.pk, title=title, **kwargs)


def work(task, who: str, *, claim: float, start: float, done: float) -> int:
    """claim → start → artifact → implemented at the given hours; returns the lease token."""
    actor = agent(who)
    token = do(claim, leases.task_claim, actor=actor, task_id=task.pk).token
    do(start, leases.task_start, actor=actor, task_id=task.pk, lease_token=token)
    do(
        start,
        leases.artifact_publish,
        actor=actor,
        task_id=task.pk,
        lease_token=token,
        commit_sha="abc1234",
    )
    do(done, leases.task_mark_implemented, actor=actor, task_id=task.pk, lease_token=token)
    return token


def review(task, hours, verdict="approved"):
    return do(
        hours, review_record, actor=REVIEWER, task_id=task.pk, verdict=verdict, rationale="ok"
    )


def integrate(task, hours, result="succeeded"):
    """Enqueue, take and record ``result`` for an approved task, all at ``hours``."""
    do(hours, integration.integration_enqueue, actor=OPERATOR, task_id=task.pk)
    attempt = do(
        hours, integration.integration_take_next, actor=OPERATOR, project_id=task.project_id
    )
    return do(
        hours,
        integration.integration_record_result,
        actor=OPERATOR,
        attempt_id=attempt.pk,
        result=result,
    )
