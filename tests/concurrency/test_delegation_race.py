"""A delegated task counts its children under its own row lock: children finishing at the
same moment still complete it exactly once."""

import pytest

from orchestration.models import Event, Task, TaskState
from orchestration.services import leases
from orchestration.services.delegation import task_delegate
from tests.concurrency.harness import agent, run_concurrently

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]

CHILDREN = 20


def test_children_finishing_together_complete_the_parent_once(new_task):
    parent = new_task("parent")
    splitter = agent("splitter")
    lease = leases.task_claim(actor=splitter, task_id=parent.pk)
    children = task_delegate(
        actor=splitter,
        task_id=parent.pk,
        lease_token=lease.token,
        children=[{"key": str(i), "title": f"child {i}"} for i in range(CHILDREN)],
    ).children

    finishers = []
    for i, child in enumerate(children):
        worker = agent(f"worker-{i}")
        child_lease = leases.task_claim(actor=worker, task_id=child.pk)
        leases.task_start(actor=worker, task_id=child.pk, lease_token=child_lease.token)
        leases.artifact_publish(
            actor=worker, task_id=child.pk, lease_token=child_lease.token, commit_sha="abc1234"
        )
        finishers.append(
            lambda w=worker, c=child, t=child_lease.token: leases.task_mark_implemented(
                actor=w, task_id=c.pk, lease_token=t
            )
        )

    outcomes = run_concurrently(finishers)

    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert Task.objects.get(pk=parent.pk).state == TaskState.IMPLEMENTED
    followed = Event.objects.filter(task=parent, kind="task.delegation_followed")
    assert list(followed.values_list("payload__to", flat=True)) == [TaskState.IMPLEMENTED]
