"""An agent's whole job through the MCP tools (the SDK's in-memory client), and the refusals:
a stale lease token, a role, no key, a bad key, a revoked key, invalid arguments."""

from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone

from governance.models import ApiKey
from governance.services.api_keys import api_key_revoke
from orchestration.models import Artifact, Event, Lease, Task
from orchestration.services import leases, plan
from tests.conftest import ADMIN, PLANNER, agent
from tests.mcp.conftest import ToolFailed, connect, run

pytestmark = pytest.mark.django_db


def test_full_agent_cycle_from_ready_to_implemented(project, make_task, edge, key):
    first = make_task("login", work_spec={"objective": "Users can log in"}, priority=1)
    second = make_task("docs")
    edge(first, second)
    raw = key("agent", actor="agent-1")

    async def scenario():
        async with connect(raw) as mcp:
            protocol = await mcp.call("get_instructions")
            assert "LEASE_STALE" in protocol
            projects = await mcp.call("list_projects")
            assert [p["id"] for p in projects["results"]] == [project.pk]
            ready = await mcp.call("list_ready", project_id=project.pk)
            assert [t["ref"] for t in ready["results"]] == ["T1"]
            claimed = await mcp.call("claim", task_id=first.pk)
            token = claimed["lease"]["token"]
            assert claimed["task"]["state"] == "claimed"
            context = await mcp.call("task_context", task_id=first.pk)
            assert context["lease"]["token"] == token and context["snapshot"] is None
            snapshot = await mcp.call("start", task_id=first.pk, lease_token=token)
            assert snapshot["spec"]["work_spec"] == {"objective": "Users can log in"}
            beat = await mcp.call("heartbeat", task_id=first.pk, lease_token=token)
            assert beat["plan_changed"] is False
            assert beat["ttl_seconds"] == project.lease_ttl_seconds
            artifact = await mcp.call(
                "publish_artifact",
                task_id=first.pk,
                lease_token=token,
                branch="t1-login",
                commit_sha="ABCDEF1234",
                touched_files=["auth/login.py"],
                check_status="passed",
            )
            assert artifact["commit_sha"] == "abcdef1234"  # the REST serializer's rule
            done = await mcp.call("mark_implemented", task_id=first.pk, lease_token=token)
            assert done["state"] == "implemented"
            unlocked = await mcp.call("task_context", task_id=second.pk)
            assert unlocked["task"]["state"] == "ready"
            assert unlocked["prerequisites"][0]["latest_artifact"]["branch"] == "t1-login"
            page = await mcp.call("events", project_id=project.pk, kind="task.implemented")
            assert [e["task"] for e in page["results"]] == [first.pk]
            rest = await mcp.call("events", project_id=project.pk, after=page["next_after"])
            assert all(e["id"] > page["next_after"] for e in rest["results"])

    run(scenario)
    first.refresh_from_db()
    assert first.state == "implemented" and first.implemented_by == "agent-1"


def test_the_answer_is_the_rest_answer(project, make_task, key, api):
    """A tool renders with its REST twin's serializer: the same JSON, field for field."""
    task = make_task("shape")
    raw = key("agent", actor="agent-1")

    async def scenario():
        async with connect(raw) as mcp:
            return await mcp.call("task_context", task_id=task.pk)

    over_mcp = run(scenario)
    over_rest = api("agent", actor="agent-2").get(f"/api/v1/tasks/{task.pk}/context/").json()
    assert over_mcp == over_rest


def test_claim_next_takes_the_most_urgent_task_that_fits_and_answers_null_when_none(
    project, make_task, key
):
    make_task("rust", priority=0, capability_tags=["rust"])
    python = make_task("python", priority=1, capability_tags=["python"])
    raw = key("agent", actor="agent-1")

    async def scenario():
        async with connect(raw) as mcp:
            ready = await mcp.call("list_ready", project_id=project.pk, capabilities=["python"])
            assert [t["id"] for t in ready["results"]] == [python.pk]
            claimed = await mcp.call("claim", project_id=project.pk, capabilities=["python"])
            assert claimed["task"]["id"] == python.pk
            assert claimed["lease"]["agent"] == "agent-1"
            nothing = await mcp.call("claim", project_id=project.pk, capabilities=["python"])
            assert nothing == {"task": None, "lease": None}

    run(scenario)


def test_a_stale_lease_token_is_refused_and_changes_nothing(project, make_task, key):
    task = make_task("fenced")
    raw = key("agent", actor="agent-1")
    old = leases.task_claim(actor=agent("agent-1"), task_id=task.pk)
    leases.task_release(actor=agent("agent-1"), task_id=task.pk, lease_token=old.token)
    live = leases.task_claim(actor=agent("agent-1"), task_id=task.pk)
    leases.task_start(actor=agent("agent-1"), task_id=task.pk, lease_token=live.token)
    before = (Task.objects.get(pk=task.pk).hold_expires_at, Event.objects.count())

    async def scenario():
        async with connect(raw) as mcp:
            for tool, extra in (
                ("heartbeat", {}),
                ("publish_artifact", {"commit_sha": "abc1234"}),
                ("mark_implemented", {}),
                ("release", {"reason": "late"}),
            ):
                with pytest.raises(ToolFailed) as refused:
                    await mcp.call(tool, task_id=task.pk, lease_token=old.token, **extra)
                assert refused.value.code == "LEASE_STALE", tool
                assert refused.value.body["error"]["details"]["presented_token"] == old.token

    run(scenario)
    fresh = Task.objects.get(pk=task.pk)
    assert fresh.state == "in_progress" and fresh.holder == "agent-1"
    assert (fresh.hold_expires_at, Event.objects.count()) == before
    assert not Artifact.objects.filter(task=task).exists()
    assert Lease.objects.get(pk=live.pk).status == "active"


def test_an_agent_key_cannot_use_planner_or_reviewer_tools(project, make_task, key):
    task = make_task("t")
    raw = key("agent", actor="agent-1")

    async def scenario():
        async with connect(raw) as mcp:
            for tool, arguments in (
                ("create_project", {"name": "Mine"}),
                (
                    "create_changeset",
                    {
                        "project_id": project.pk,
                        "base_version": 1,
                        "operations": [{"op": "add_task", "title": "x"}],
                    },
                ),
                ("record_review", {"task_id": task.pk, "verdict": "approved", "rationale": "fine"}),
            ):
                with pytest.raises(ToolFailed) as refused:
                    await mcp.call(tool, **arguments)
                assert refused.value.code == "FORBIDDEN", tool
                assert refused.value.body["error"]["details"]["your_roles"] == ["agent"]

    run(scenario)
    assert list(Task.objects.values_list("title", flat=True)) == ["t"]


@pytest.mark.parametrize("raw_key", [None, "", "tsk_not-a-key", "no-prefix"])
def test_no_key_or_a_bad_key_is_refused_by_every_tool(project, make_task, raw_key):
    task = make_task("t")

    async def scenario():
        async with connect(raw_key) as mcp:
            for tool, arguments in (
                ("get_instructions", {}),
                ("list_ready", {"project_id": project.pk}),
                ("claim", {"task_id": task.pk}),
            ):
                with pytest.raises(ToolFailed) as refused:
                    await mcp.call(tool, **arguments)
                assert refused.value.code == "UNAUTHENTICATED", tool

    run(scenario)
    assert Task.objects.get(pk=task.pk).state == "ready"


def test_a_revoked_key_stops_working_at_once(
    project, make_task, key, django_capture_on_commit_callbacks
):
    task = make_task("t")
    raw = key("agent", actor="agent-1")

    async def scenario(expect_refusal):
        async with connect(raw) as mcp:
            if not expect_refusal:
                return await mcp.call("list_ready", project_id=project.pk)
            with pytest.raises(ToolFailed) as refused:
                await mcp.call("claim", task_id=task.pk)
            return refused.value.code

    run(partial(scenario, False))  # the key is now in this process's key cache
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(actor=ADMIN, api_key=ApiKey.objects.get(actor="agent-1"))
    assert run(partial(scenario, True)) == "UNAUTHENTICATED"


def test_invalid_arguments_are_a_validation_error_and_change_nothing(project, make_task, key):
    task = make_task("t")
    raw = key("agent", actor="agent-1")

    async def refused(mcp, tool, **arguments):
        with pytest.raises(ToolFailed) as failure:
            await mcp.call(tool, **arguments)
        assert failure.value.code == "VALIDATION_ERROR"
        return failure.value.body["error"]["details"]["fields"]

    async def scenario():
        async with connect(raw) as mcp:
            fields = await refused(mcp, "start", task_id=task.pk, lease_token="one")
            assert "lease_token" in fields
            fields = await refused(mcp, "start", task_id=0, lease_token=1)
            assert "task_id" in fields
            fields = await refused(mcp, "claim", task_id=task.pk, project_id=project.pk)
            assert "non_field_errors" in fields
            fields = await refused(mcp, "claim")
            assert "non_field_errors" in fields
            fields = await refused(mcp, "claim", task_id=task.pk, lease=3)
            assert fields == {"lease": ["Unknown argument."]}
            fields = await refused(
                mcp, "publish_artifact", task_id=task.pk, lease_token=1, commit_sha="xyz"
            )
            assert "commit_sha" in fields
            fields = await refused(
                mcp, "publish_artifact", task_id=task.pk, lease_token=1, check_status="green"
            )
            assert "check_status" in fields

    run(scenario)
    assert Task.objects.get(pk=task.pk).state == "ready"
    assert not Lease.objects.exists()


def test_a_project_scoped_key_sees_nothing_outside_its_project(project, make_task, key):
    task = make_task("t")
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    raw = key("agent", actor="agent-1", project=other)

    async def scenario():
        async with connect(raw) as mcp:
            for tool, arguments in (
                ("claim", {"task_id": task.pk}),
                ("task_context", {"task_id": task.pk}),
                ("list_ready", {"project_id": project.pk}),
            ):
                with pytest.raises(ToolFailed) as refused:
                    await mcp.call(tool, **arguments)
                assert refused.value.code == "NOT_FOUND", tool

    run(scenario)


# --- the refusals the tool descriptions name, each produced through its tool -------------------
def _expired_lease(task, name="agent-1"):
    past = timezone.now() - timedelta(hours=1)
    return leases.task_claim(actor=agent(name), task_id=task.pk, now=past)


def test_claim_refusals(project, make_task, edge, key):
    held, waiting = make_task("held"), make_task("waiting")
    edge(held, waiting)
    leases.task_claim(actor=agent("rival"), task_id=held.pk)
    raw = key("agent", actor="agent-1")

    async def scenario():
        async with connect(raw) as mcp:
            codes = []
            for task in (held, waiting):
                with pytest.raises(ToolFailed) as refused:
                    await mcp.call("claim", task_id=task.pk)
                codes.append(refused.value.code)
            return codes

    assert run(scenario) == ["TASK_ALREADY_CLAIMED", "DEPENDENCIES_UNMET"]


def test_lease_refusals(project, make_task, key):
    """start with a stale token, heartbeat on an expired lease, implemented without artifact."""
    stale, expired, bare = make_task("stale"), make_task("expired"), make_task("bare")
    raw = key("agent", actor="agent-1")
    stale_lease = leases.task_claim(actor=agent("agent-1"), task_id=stale.pk)
    expired_lease = _expired_lease(expired)
    bare_lease = leases.task_claim(actor=agent("agent-1"), task_id=bare.pk)
    leases.task_start(actor=agent("agent-1"), task_id=bare.pk, lease_token=bare_lease.token)

    async def refusal(mcp, tool, **arguments):
        with pytest.raises(ToolFailed) as refused:
            await mcp.call(tool, **arguments)
        return refused.value.code

    async def scenario():
        async with connect(raw) as mcp:
            return [
                await refusal(mcp, "start", task_id=stale.pk, lease_token=stale_lease.token + 1),
                await refusal(
                    mcp, "heartbeat", task_id=expired.pk, lease_token=expired_lease.token
                ),
                await refusal(
                    mcp, "mark_implemented", task_id=bare.pk, lease_token=bare_lease.token
                ),
            ]

    assert run(scenario) == ["LEASE_STALE", "LEASE_EXPIRED", "ARTIFACT_REQUIRED"]
    assert Task.objects.get(pk=bare.pk).state == "in_progress"


def test_split_task_delegates_and_refuses_a_cycle(project, make_task, key):
    parent, looped = make_task("big"), make_task("looped")
    raw = key("agent", actor="agent-1")
    token = leases.task_claim(actor=agent("agent-1"), task_id=parent.pk).token
    loop_token = leases.task_claim(actor=agent("agent-1"), task_id=looped.pk).token

    async def scenario():
        async with connect(raw) as mcp:
            split = await mcp.call(
                "split_task",
                task_id=parent.pk,
                lease_token=token,
                children=[
                    {"key": "db", "title": "schema"},
                    {"key": "api", "title": "endpoints", "depends_on": ["db"]},
                ],
            )
            with pytest.raises(ToolFailed) as refused:
                await mcp.call(
                    "split_task",
                    task_id=looped.pk,
                    lease_token=loop_token,
                    children=[
                        {"key": "a", "title": "a", "depends_on": ["b"]},
                        {"key": "b", "title": "b", "depends_on": ["a"]},
                    ],
                )
            return split, refused.value.code

    split, code = run(scenario)
    assert split["parent"]["state"] == "delegated"
    assert [c["title"] for c in split["children"]] == ["schema", "endpoints"]
    assert [c["state"] for c in split["children"]] == ["ready", "backlog"]
    assert code == "DEPENDENCY_CYCLE"
    assert Task.objects.get(pk=looped.pk).state == "claimed"
    assert not Task.objects.filter(parent=looped).exists()


def test_ready_ranking_and_collisions_are_the_rest_answers(project, make_task, key, api):
    """list_ready ranks by paths like claim-next, and collisions names the work in flight."""
    busy = make_task("busy", expected_paths=["docs/**"])
    clashing = make_task("clashing", expected_paths=["docs/api.md"])
    make_task("clear", expected_paths=["src/app.py"])
    leases.task_claim(actor=agent("agent-9"), task_id=busy.pk)
    raw = key("agent", actor="agent-1")

    async def scenario():
        async with connect(raw) as mcp:
            ready = await mcp.call("list_ready", project_id=project.pk)
            collisions = await mcp.call("collisions", task_id=clashing.pk)
            return ready, collisions

    ready, collisions = run(scenario)
    assert [t["title"] for t in ready["results"]] == ["clear", "clashing"]
    assert [t["path_score"] for t in ready["results"]] == [0, 1]
    rest = api("agent", actor="agent-2")
    assert ready["results"] == rest.get(f"/api/v1/projects/{project.pk}/ready/").json()["results"]
    assert collisions == rest.get(f"/api/v1/tasks/{clashing.pk}/collisions/").json()
    assert [c["task_id"] for c in collisions["collisions"]] == [busy.pk]
    assert collisions["offered"] is True and collisions["blocked_by"] == []
