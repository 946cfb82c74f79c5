"""A planner plans through changesets and a reviewer reviews, through the MCP tools."""

import pytest
from asgiref.sync import sync_to_async

from governance.models import Checkpoint
from governance.services.gates import gate_rule_create, gates_evaluate
from orchestration.models import Task
from tests.conftest import PLANNER, agent
from tests.mcp.conftest import ToolFailed, connect, run
from tests.orchestration.helpers import implement

pytestmark = pytest.mark.django_db


def test_planner_creates_a_project_and_plans_it_through_a_changeset(key):
    raw = key("planner", actor="planner-1")
    operations = [
        {"op": "add_task", "key": "new:login", "title": "Login", "priority": 1},
        {"op": "add_task", "key": "new:docs", "title": "Document login"},
        {"op": "add_dependency", "prerequisite": "new:login", "dependent": "new:docs"},
    ]

    async def refusal(mcp, tool, **arguments):
        with pytest.raises(ToolFailed) as refused:
            await mcp.call(tool, **arguments)
        return refused.value.code

    async def scenario():
        async with connect(raw) as mcp:
            project = await mcp.call("create_project", name="Shop", slug="shop")
            assert project["created_by"] == "planner-1"
            proposed = await mcp.call(
                "create_changeset",
                project_id=project["id"],
                base_version=project["plan_version"],
                operations=operations,
                title="first cut",
            )
            assert proposed["status"] == "draft"
            preview = await mcp.call("preview_changeset", changeset_id=proposed["id"])
            assert preview["valid"] is True and preview["impact"]["created"] == ["T1", "T2"]
            previewed_only = Task.objects.filter(project_id=project["id"]).exists
            assert not await sync_to_async(previewed_only)()
            applied = await mcp.call("apply_changeset", changeset_id=proposed["id"])
            assert applied["applied_version"] == project["plan_version"] + 1
            again = await refusal(mcp, "apply_changeset", changeset_id=proposed["id"])
            stale = await mcp.call(
                "create_changeset",
                project_id=project["id"],
                base_version=project["plan_version"],
                operations=[{"op": "reprioritise", "task": "T2", "priority": 0}],
            )
            behind = await refusal(mcp, "apply_changeset", changeset_id=stale["id"])
            rebased = await mcp.call("apply_changeset", changeset_id=stale["id"], rebase=True)
            return project["id"], again, behind, rebased

    project_id, again, behind, rebased = run(scenario)
    assert (again, behind) == ("CHANGESET_ALREADY_APPLIED", "PLAN_VERSION_STALE")
    assert rebased["status"] == "applied"
    tasks = {t.title: t for t in Task.objects.filter(project_id=project_id)}
    assert tasks["Login"].state == "ready" and tasks["Document login"].state == "backlog"
    assert tasks["Document login"].priority == 0


def test_reviewer_reviews_from_the_queue_but_never_their_own_work(project, make_task, key):
    done, mine = make_task("done"), make_task("mine")
    implement(done, agent("builder"))
    implement(mine, agent("rita"))
    raw = key("reviewer", "agent", actor="rita")

    async def scenario():
        async with connect(raw) as mcp:
            queue = await mcp.call("review_queue", project_id=project.pk)
            assert {t["id"] for t in queue["results"]} == {done.pk, mine.pk}
            review = await mcp.call(
                "record_review", task_id=done.pk, verdict="changes_requested", rationale="tests?"
            )
            assert review["reviewer"] == "rita" and review["implemented_by"] == "builder"
            with pytest.raises(ToolFailed) as refused:
                await mcp.call(
                    "record_review", task_id=mine.pk, verdict="approved", rationale="mine, fine"
                )
            return refused.value.code

    assert run(scenario) == "SELF_REVIEW"
    assert Task.objects.get(pk=done.pk).state == "ready"  # sent back to work
    assert Task.objects.get(pk=mine.pk).state == "implemented"


def test_reviewer_decides_an_open_checkpoint(project, make_task, key):
    gate_rule_create(
        actor=PLANNER,
        project_id=project.pk,
        name="batch",
        trigger="unreviewed_backlog",
        threshold=1,
    )
    task = make_task("t")
    implement(task, agent("builder"))
    [checkpoint] = gates_evaluate()
    raw = key("reviewer", actor="rita")

    async def scenario():
        async with connect(raw) as mcp:
            open_ = await mcp.call("list_checkpoints", project_id=project.pk)
            assert [c["candidates"] for c in open_["results"]] == [[task.pk]]
            decision = await mcp.call(
                "decide_checkpoint",
                checkpoint_id=checkpoint.pk,
                verdict="approved",
                rationale="batch reads well",
            )
            assert decision["reviewer"] == "rita"
            assert (await mcp.call("list_checkpoints", project_id=project.pk))["results"] == []
            everything = await mcp.call("list_checkpoints", project_id=project.pk, open_only=False)
            assert everything["results"][0]["decision"]["verdict"] == "approved"

    run(scenario)
    assert Checkpoint.objects.get(pk=checkpoint.pk).decided_at is not None
