import pytest
from django.core.cache import cache

from orchestration.services import leases, operations, sweep
from tests.metrics.helpers import (
    OPERATOR,
    agent,
    do,
    integrate,
    new_project,
    new_task,
    review,
    work,
)


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()


@pytest.fixture
def history(db):
    """A known day (hours after DAY began) and the start of the next one:

    T1: created 9, claimed by agent-a 10, started 10.5, implemented 12, approved 14,
        integrated 15 → lead 6 h, cycle 5 h; waiting 1, working 2, review 2, integrating 1.
    T2: created 9, claimed by agent-b 9.5, its lease lapses and is swept at 14 (expired);
        agent-a claims it at 14, implements it at 15, changes are requested at 15.5.
    T3: created 9, blocked by the operator at 9.
    T4: created the next day at 33 (9:00), claimed by agent-c at 34 (WIP).
    """
    project = new_project(lease_ttl_seconds=4 * 3600)
    t1 = new_task(project, 9, "one")
    t2 = new_task(project, 9, "two")
    t3 = new_task(project, 9, "three")
    work(t1, "agent-a", claim=10, start=10.5, done=12)
    review(t1, 14)
    integrate(t1, 15)
    do(9.5, leases.task_claim, actor=agent("agent-b"), task_id=t2.pk)
    do(14, sweep.holds_expire_due, project_id=project.pk)
    work(t2, "agent-a", claim=14, start=14, done=15)
    review(t2, 15.5, verdict="changes_requested")
    do(9, operations.task_block, actor=OPERATOR, task_id=t3.pk, reason="waiting on a vendor")
    t4 = new_task(project, 33, "four")
    do(34, leases.task_claim, actor=agent("agent-c"), task_id=t4.pk)
    return {"project": project, "tasks": (t1, t2, t3, t4)}
