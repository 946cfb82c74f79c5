"""Reviews and integration over HTTP: identity from the key, self-review refused, queue in order."""

import pytest

from governance.services.gates import gates_evaluate
from tests.conftest import agent
from tests.orchestration.helpers import implement

pytestmark = pytest.mark.django_db


def test_review_then_integrate_over_the_api(api, project, make_task, edge):
    task, dependent = make_task("t"), make_task("d")
    edge(task, dependent, unlock_on="integrated")
    implement(task, agent("builder"))
    builder_reviewer = api("reviewer", actor="builder")
    reviewer = api("reviewer", actor="rita")
    operator = api("operator", actor="integrator")

    queue = reviewer.get(f"/api/v1/projects/{project.pk}/review-queue/").json()
    assert [t["id"] for t in queue] == [task.pk]

    refused = builder_reviewer.post(
        f"/api/v1/tasks/{task.pk}/reviews/",
        {"verdict": "approved", "rationale": "mine"},
        format="json",
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "SELF_REVIEW"

    early = operator.post(f"/api/v1/tasks/{task.pk}/integration/")
    assert early.json()["error"]["code"] == "APPROVAL_REQUIRED"

    review = reviewer.post(
        f"/api/v1/tasks/{task.pk}/reviews/",
        {"verdict": "approved", "rationale": "clean"},
        format="json",
    )
    assert review.status_code == 201 and review.json()["reviewer"] == "rita"
    assert reviewer.get(f"/api/v1/projects/{project.pk}/review-queue/").json() == []

    queued = operator.post(f"/api/v1/tasks/{task.pk}/integration/")
    assert queued.status_code == 201
    taken = operator.post(f"/api/v1/projects/{project.pk}/integration-attempts/take-next/")
    assert taken.status_code == 201 and taken.json()["state"] == "running"
    assert (
        operator.post(f"/api/v1/projects/{project.pk}/integration-attempts/take-next/").status_code
        == 204
    )
    result = operator.post(
        f"/api/v1/integration-attempts/{taken.json()['id']}/result/",
        {"result": "succeeded", "base_sha": "a" * 40, "head_sha": "b" * 40},
        format="json",
    )
    assert result.status_code == 200 and result.json()["state"] == "succeeded"
    assert reviewer.get(f"/api/v1/tasks/{task.pk}/").json()["state"] == "integrated"
    assert reviewer.get(f"/api/v1/tasks/{dependent.pk}/").json()["state"] == "ready"


def test_an_agent_key_cannot_review_or_integrate(api, project, make_task):
    task = make_task()
    implement(task, agent("builder"))
    client = api("agent", actor="someone")
    review = client.post(
        f"/api/v1/tasks/{task.pk}/reviews/",
        {"verdict": "approved", "rationale": "x"},
        format="json",
    )
    assert review.status_code == 403
    assert client.post(f"/api/v1/tasks/{task.pk}/integration/").status_code == 403


def test_gate_rule_checkpoint_and_decision_over_the_api(api, project, make_task):
    planner = api("planner", actor="pl")
    reviewer = api("reviewer", actor="rita")
    rule = planner.post(
        f"/api/v1/projects/{project.pk}/gate-rules/",
        {"name": "batch", "trigger": "unreviewed_backlog", "threshold": 1, "sla_hours": 4},
        format="json",
    )
    assert rule.status_code == 201
    task = make_task()
    implement(task, agent("builder"))
    gates_evaluate()
    [checkpoint] = reviewer.get(f"/api/v1/projects/{project.pk}/checkpoints/").json()["results"]
    assert checkpoint["candidates"] == [task.pk] and checkpoint["decision"] is None
    decided = reviewer.post(
        f"/api/v1/checkpoints/{checkpoint['id']}/decision/",
        {"verdict": "approved", "rationale": "batch is fine", "evidence": {"ci": "green"}},
        format="json",
    )
    assert decided.status_code == 201
    again = reviewer.get(f"/api/v1/checkpoints/{checkpoint['id']}/").json()
    assert again["decision"]["verdict"] == "approved"
    twice = reviewer.post(
        f"/api/v1/checkpoints/{checkpoint['id']}/decision/",
        {"verdict": "rejected", "rationale": "changed my mind"},
        format="json",
    )
    assert twice.status_code == 409


def test_a_protected_paths_rule_needs_paths(api, project):
    response = api("planner").post(
        f"/api/v1/projects/{project.pk}/gate-rules/",
        {"name": "x", "trigger": "protected_paths"},
        format="json",
    )
    assert response.status_code == 400
    assert "protected_paths" in response.json()["error"]["details"]["fields"]


def test_a_paused_rule_makes_no_checkpoint_until_resumed(api, project, make_task):
    planner = api("planner", actor="pl")
    rule = planner.post(
        f"/api/v1/projects/{project.pk}/gate-rules/",
        {"name": "batch", "trigger": "unreviewed_backlog", "threshold": 1},
        format="json",
    ).json()
    paused = planner.patch(f"/api/v1/gate-rules/{rule['id']}/", {"enabled": False}, format="json")
    assert paused.status_code == 200 and paused.json()["enabled"] is False
    implement(make_task(), agent("builder"))
    assert gates_evaluate() == []
    planner.patch(
        f"/api/v1/gate-rules/{rule['id']}/", {"enabled": True, "threshold": 1}, format="json"
    )
    assert len(gates_evaluate()) == 1
    assert (
        api("agent")
        .patch(f"/api/v1/gate-rules/{rule['id']}/", {"enabled": False}, format="json")
        .status_code
        == 403
    )
