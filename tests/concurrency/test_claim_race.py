"""Invariant 3: of N concurrent claims exactly one wins, the rest get a clean 409."""

import pytest
from django.test import Client

from governance.actors import Actor, Role
from governance.services.api_keys import api_key_create
from orchestration.errors import TaskAlreadyClaimed
from orchestration.models import Event, Lease, LeaseStatus, Task, TaskState
from orchestration.services import leases
from tests.concurrency.harness import agent, errors_by_type, run_concurrently

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]

ADMIN = Actor(name="root", roles=frozenset({Role.ADMIN}))
CONTENDERS = 50


def _claim(task_id: int, name: str):
    return lambda: leases.task_claim(actor=agent(name), task_id=task_id)


def test_fifty_concurrent_claims_of_one_task_have_exactly_one_winner(new_task):
    """Two agents both holding one task (a lost lock) or a 500 instead of a 409."""
    task = new_task("contested")

    outcomes = run_concurrently([_claim(task.pk, f"agent-{i}") for i in range(CONTENDERS)])

    winners = [o.value for o in outcomes if o.ok]
    losers = [o.error for o in outcomes if not o.ok]
    assert len(winners) == 1, errors_by_type(outcomes)
    assert len(losers) == CONTENDERS - 1
    assert all(isinstance(e, TaskAlreadyClaimed) for e in losers), errors_by_type(outcomes)
    assert all(e.http_status == 409 for e in losers)
    lease = winners[0]
    assert list(Lease.objects.filter(task=task).values_list("pk", flat=True)) == [lease.pk]
    assert lease.status == LeaseStatus.ACTIVE and lease.token == 1
    task.refresh_from_db()
    assert (task.state, task.holder, task.lease_token_seq) == (
        TaskState.CLAIMED,
        lease.agent,
        1,
    )
    claims = Event.objects.filter(task=task, kind="task.claimed")
    assert list(claims.values_list("actor", flat=True)) == [lease.agent]


def _http_claim(task_id: int, raw_key: str):
    def call():
        client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {raw_key}")
        response = client.post(f"/api/v1/tasks/{task_id}/claim/", content_type="application/json")
        return response.status_code, response.json()

    return call


def test_fifty_concurrent_api_claims_answer_one_201_and_forty_nine_409(new_task):
    """The API turning a lost claim race into a 500, or answering 201 twice."""
    task = new_task("contested over http")
    keys = [
        api_key_create(actor=ADMIN, key_actor=f"http-agent-{i}", roles=[Role.AGENT]).raw_key
        for i in range(CONTENDERS)
    ]

    outcomes = run_concurrently([_http_claim(task.pk, key) for key in keys])

    assert all(o.ok for o in outcomes), errors_by_type(outcomes)
    statuses = sorted(status for status, _ in (o.value for o in outcomes))
    assert statuses == [201] + [409] * (CONTENDERS - 1)
    codes = {body["error"]["code"] for status, body in (o.value for o in outcomes) if status == 409}
    assert codes == {"TASK_ALREADY_CLAIMED"}
    winner = next(body for status, body in (o.value for o in outcomes) if status == 201)
    assert Lease.objects.filter(task=task).count() == 1
    task.refresh_from_db()
    assert task.state == TaskState.CLAIMED
    assert task.holder == winner["lease"]["agent"]


DRAINERS = 20
POOL_SIZE = 500


def _drain(project_id: int, name: str):
    def call():
        actor = agent(name)
        claimed = []
        while (lease := leases.task_claim_next(actor=actor, project_id=project_id)) is not None:
            claimed.append(lease.task_id)
        return claimed

    return call


def test_twenty_agents_draining_claim_next_take_every_task_exactly_once(conc_project, new_task):
    """Claim-next handing one task to two agents, or giving up while ready tasks remain."""
    task_ids = {new_task(f"pool {i}", priority=i % 7).pk for i in range(POOL_SIZE)}

    outcomes = run_concurrently([_drain(conc_project.pk, f"drainer-{i}") for i in range(DRAINERS)])

    assert all(o.ok for o in outcomes), errors_by_type(outcomes)
    handed_out = [task_id for o in outcomes for task_id in o.value]
    assert len(handed_out) == len(set(handed_out)) == POOL_SIZE
    assert set(handed_out) == task_ids
    per_task = Lease.objects.filter(project=conc_project).values_list("task_id", flat=True)
    assert sorted(per_task) == sorted(task_ids)  # one lease per task, none twice
    assert not Task.objects.filter(project=conc_project).exclude(state=TaskState.CLAIMED).exists()
    # Each lease went to the agent that was told it won it.
    holders = dict(Task.objects.filter(project=conc_project).values_list("pk", "holder"))
    for i, outcome in enumerate(outcomes):
        assert {holders[t] for t in outcome.value} <= {f"drainer-{i}"}
