"""The Python client against a live server: typed results, the error shape, pagination."""

import socket

import pytest

from governance.actors import Role
from orchestration.models import Changeset
from orchestration.models import Task as TaskRow
from orchestration.services import plan
from tascade_client import (
    ClaimResult,
    Heartbeat,
    Snapshot,
    TascadeClient,
    TascadeConnectionError,
    TascadeError,
    Task,
)
from tests.client.conftest import wait_for_visible_events
from tests.conftest import PLANNER


def test_an_agent_works_a_task_through_its_lease(client_for, live_project):
    planner = client_for(Role.PLANNER, actor="planner-1")
    first = planner.create_task(
        live_project.pk, "Write the parser", capability_tags=["python"], priority=5
    )
    second = planner.create_task(live_project.pk, "Document it")
    edge = planner.add_dependency(live_project.pk, first.id, second.id)
    assert isinstance(first, Task) and first.ref == "T1" and first.state == "ready"
    assert edge.prerequisite == first.id and edge.unlock_on == "implemented"

    agent = client_for(Role.AGENT, actor="agent-1")
    assert agent.whoami().actor == "agent-1"
    assert [t.id for t in agent.ready(live_project.pk, ["python"])] == [first.id]
    claim = agent.claim_next(live_project.pk, capabilities=["python"])
    assert isinstance(claim, ClaimResult)
    assert claim.task.id == first.id and claim.task.holder == "agent-1"
    token = claim.lease.token

    snapshot = agent.start(first.id, token)
    assert isinstance(snapshot, Snapshot) and snapshot.spec["ref"] == "T1"
    beat = agent.heartbeat(first.id, token)
    assert isinstance(beat, Heartbeat) and beat.plan_changed is False
    artifact = agent.publish_artifact(
        first.id,
        token,
        branch="t1-parser",
        commit_sha="9fceb02",
        touched_files=["src/parser.py"],
        check_status="passed",
    )
    assert artifact.lease_token == token and artifact.touched_files == ["src/parser.py"]
    done = agent.mark_implemented(first.id, token)
    assert done.state == "implemented" and done.implemented_by == "agent-1"

    context = agent.context(second.id)
    assert context.task.state == "ready"
    assert [task.id for _edge, task in context.prerequisites] == [first.id]
    assert context.latest_artifacts[first.id].id == artifact.id
    assert agent.snapshot(first.id).id == snapshot.id

    wait_for_visible_events(live_project.pk)
    page = agent.events(live_project.pk, task=first.id)
    assert [e.kind for e in page.results] == [
        "task.created",
        "task.claimed",
        "task.started",
        "artifact.published",
        "task.implemented",
    ]
    assert page.next_after == page.results[-1].id


def test_a_stale_lease_token_raises_the_servers_error(client_for, live_project):
    task = plan.task_create(actor=PLANNER, project_id=live_project.pk, title="t")
    agent = client_for(Role.AGENT)
    token = agent.claim(task.pk).lease.token
    released = agent.release(task.pk, token, reason="wrong repository")
    assert released.state == "ready"

    with pytest.raises(TascadeError) as refused:
        agent.heartbeat(task.pk, token)
    assert refused.value.status == 409
    assert refused.value.code == "LEASE_STALE"
    assert refused.value.details == {"task_id": task.pk, "presented_token": token}
    assert refused.value.message


def test_claim_next_with_nothing_ready_is_none(client_for, live_project):
    assert client_for(Role.AGENT).claim_next(live_project.pk) is None


def test_a_scoped_key_sees_404_for_another_project(client_for, live_project):
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    scoped = client_for(Role.AGENT, project=live_project)
    with pytest.raises(TascadeError) as hidden:
        scoped.project(other.pk)
    assert (hidden.value.status, hidden.value.code) == (404, "NOT_FOUND")
    assert [p.slug for p in scoped.projects()] == ["live"]


def test_lists_follow_the_pagination_to_the_end(client_for, live_project):
    for n in range(7):
        plan.task_create(actor=PLANNER, project_id=live_project.pk, title=f"t{n}")
    client = client_for(Role.AGENT)
    tasks = list(client.tasks(live_project.pk, page_size=2))
    assert [t.title for t in tasks] == [f"t{n}" for n in range(7)]
    assert len(list(client.ready(live_project.pk))) == 7


def test_projects_and_tasks_are_found_by_slug_and_ref(client_for, live_project):
    for n in range(3):
        plan.task_create(actor=PLANNER, project_id=live_project.pk, title=f"t{n}")
    client = client_for(Role.AGENT)
    assert client.resolve_project("live") == live_project.pk
    third = TaskRow.objects.get(project=live_project, number=3)
    assert client.resolve_task("T3", live_project.pk) == third.pk
    assert client.resolve_task(str(third.pk)) == third.pk
    with pytest.raises(TascadeError) as missing:
        client.resolve_task("T99", live_project.pk)
    assert missing.value.code == "NOT_FOUND"
    with pytest.raises(TascadeError) as no_slug:
        client.resolve_project("nope")
    assert no_slug.value.status == 404


def test_a_planner_imports_previews_and_applies_a_plan(client_for, live_project):
    planner = client_for(Role.PLANNER, actor="planner-1")
    outline = "# Build\n## Core\n- Parser {parser}\n- Docs (after: parser)\n  Explain it.\n"
    changeset = planner.import_plan(live_project.pk, "plan.md", outline, base_version=1)
    assert changeset.status == "draft" and changeset.title == "plan.md"
    assert [op["op"] for op in changeset.operations][-1] == "add_dependency"
    preview = planner.preview_changeset(changeset.id)
    assert preview.valid is True and preview.error is None
    applied = planner.apply_changeset(changeset.id)
    assert applied.status == "applied" and applied.applied_version == 2
    docs = TaskRow.objects.get(project=live_project, title="Docs")
    assert docs.description == "Explain it." and docs.state == "backlog"

    with pytest.raises(TascadeError) as again:
        planner.apply_changeset(changeset.id)
    assert again.value.code == "CHANGESET_ALREADY_APPLIED"
    with pytest.raises(TascadeError) as unreadable:
        planner.import_plan(live_project.pk, "plan.md", "just words\n", base_version=2)
    assert (unreadable.value.status, unreadable.value.code) == (400, "PLAN_DOCUMENT_INVALID")
    assert unreadable.value.details == {"line": 1}

    created = planner.create_changeset(
        live_project.pk, 1, [{"op": "add_task", "title": "late"}], title="stale"
    )
    stale = planner.preview_changeset(created.id)
    assert stale.valid is False and stale.error["code"] == "PLAN_VERSION_STALE"
    assert planner.preview_changeset(created.id, rebase=True).valid is True


def test_a_reviewer_records_a_review_from_the_queue(client_for, live_project):
    task = plan.task_create(actor=PLANNER, project_id=live_project.pk, title="t")
    agent = client_for(Role.AGENT, actor="agent-1")
    token = agent.claim(task.pk).lease.token
    agent.start(task.pk, token)
    agent.publish_artifact(task.pk, token, commit_sha="abc1234")
    agent.mark_implemented(task.pk, token)

    reviewer = client_for(Role.REVIEWER, actor="reviewer-1")
    assert [t.id for t in reviewer.review_queue(live_project.pk)] == [task.pk]
    review = reviewer.record_review(task.pk, "approved", "Reads well.")
    assert review.verdict == "approved" and review.reviewer == "reviewer-1"
    assert reviewer.review_queue(live_project.pk) == []
    with pytest.raises(TascadeError) as unknown:
        reviewer.decide_checkpoint(10**9, "approved", "fine")
    assert unknown.value.code == "NOT_FOUND"


def test_an_unreachable_server_is_a_connection_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = TascadeClient(f"http://127.0.0.1:{port}", "tsk_x", timeout=2)
    with client, pytest.raises(TascadeConnectionError) as failed:
        client.whoami()
    assert failed.value.status is None and failed.value.code == "CONNECTION_FAILED"
    assert isinstance(failed.value, TascadeError)


def test_a_bad_key_is_401_in_the_error_shape(server):
    client = TascadeClient(server, "tsk_not-a-key")
    with client, pytest.raises(TascadeError) as refused:
        client.whoami()
    assert (refused.value.status, refused.value.code) == (401, "UNAUTHENTICATED")


def test_only_a_planner_imports_a_plan_and_a_refusal_creates_nothing(client_for, live_project):
    agent = client_for(Role.AGENT)
    with pytest.raises(TascadeError) as refused:
        agent.import_plan(live_project.pk, "plan.md", "# P\n## M\n- t\n", base_version=1)
    assert (refused.value.status, refused.value.code) == (403, "FORBIDDEN")
    assert not Changeset.objects.exists()
