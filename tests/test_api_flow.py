"""The agent's whole job over HTTP, as a planner, an agent and an operator would do it."""

import pytest

pytestmark = pytest.mark.django_db


def test_planner_agent_operator_round_trip(api, project):
    planner = api("planner", actor="planner-1")
    agent = api("agent", actor="agent-1")
    operator = api("operator", actor="op-1")
    base = f"/api/v1/projects/{project.pk}"

    phase = planner.post(f"{base}/phases/", {"name": "Build"}, format="json").json()
    milestone = planner.post(
        f"{base}/milestones/", {"name": "M1", "phase": phase["id"]}, format="json"
    ).json()
    spec = {"objective": "Add login", "acceptance_criteria": ["tests pass"], "constraints": []}
    first = planner.post(
        f"{base}/tasks/",
        {
            "title": "login",
            "work_spec": spec,
            "milestone": milestone["id"],
            "priority": 1,
            "capability_tags": ["python"],
            "expected_paths": ["auth/**"],
        },
        format="json",
    ).json()
    second = planner.post(f"{base}/tasks/", {"title": "docs"}, format="json").json()
    edge = planner.post(
        f"{base}/dependencies/",
        {"prerequisite": first["id"], "dependent": second["id"]},
        format="json",
    )
    assert edge.status_code == 201

    ready = agent.get(f"{base}/ready/?capabilities=python").json()["results"]
    assert [t["ref"] for t in ready] == ["T1"]
    claimed = agent.post(f"{base}/claim-next/", {"capabilities": ["python"]}, format="json")
    assert claimed.status_code == 201
    token = claimed.json()["lease"]["token"]
    task_url = f"/api/v1/tasks/{first['id']}"

    snapshot = agent.post(f"{task_url}/start/", {"lease_token": token}, format="json").json()
    assert snapshot["spec"]["work_spec"] == spec
    beat = agent.post(f"{task_url}/heartbeat/", {"lease_token": token}, format="json").json()
    assert beat["plan_changed"] is False and beat["ttl_seconds"] == project.lease_ttl_seconds
    artifact = agent.post(
        f"{task_url}/artifacts/",
        {
            "lease_token": token,
            "branch": "t1",
            "commit_sha": "ABCDEF1234",
            "touched_files": ["auth/login.py"],
            "check_status": "passed",
        },
        format="json",
    )
    assert artifact.status_code == 201 and artifact.json()["commit_sha"] == "abcdef1234"
    done = agent.post(f"{task_url}/implemented/", {"lease_token": token}, format="json")
    assert done.json()["state"] == "implemented"

    context = agent.get(f"/api/v1/tasks/{second['id']}/context/").json()
    assert context["task"]["state"] == "ready"
    assert context["prerequisites"][0]["latest_artifact"]["branch"] == "t1"

    assigned = operator.post(
        f"/api/v1/tasks/{second['id']}/assign/", {"agent": "agent-9"}, format="json"
    )
    assert assigned.status_code == 201
    assert agent.post(f"{base}/claim-next/", {}, format="json").status_code == 204
    blocked = operator.post(
        f"/api/v1/tasks/{second['id']}/block/", {"reason": "wait"}, format="json"
    )
    assert blocked.json()["state"] == "blocked"

    events = agent.get(f"{base}/events/?limit=500").json()
    kinds = [e["kind"] for e in events["results"]]
    assert kinds[0] == "project.created" and "task.blocked" in kinds
    tail = agent.get(f"{base}/events/?after={events['next_after']}").json()
    assert tail["results"] == [] and tail["next_after"] is None

    graph = agent.get(f"{base}/graph/").json()
    assert len(graph["nodes"]) == 2 and graph["edges"][0]["prerequisite_id"] == first["id"]


def test_lists_are_cursor_paginated(api, project, make_task):
    for i in range(7):
        make_task(f"t{i}")
    client = api("agent")
    page = client.get(f"/api/v1/projects/{project.pk}/tasks/?page_size=3").json()
    seen = [t["id"] for t in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [t["id"] for t in page["results"]]
    assert len(seen) == 7 and seen == sorted(seen)


def test_task_list_filters_by_state(api, project, make_task, edge):
    a, b = make_task("a"), make_task("b")
    edge(a, b)
    client = api("agent")
    backlog = client.get(f"/api/v1/projects/{project.pk}/tasks/?state=backlog").json()
    assert [t["id"] for t in backlog["results"]] == [b.pk]


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/tasks/{id}/claim/" in schema.content
    assert client.get("/api/docs/").status_code == 200
