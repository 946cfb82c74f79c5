"""The `tascade` command against a live server: tables, --json, exit codes, configuration."""

import json
import subprocess
import sys

from governance.actors import Role
from orchestration.models import Changeset, Event, Lease
from orchestration.models import Task as TaskRow
from orchestration.services import plan
from tests.client.conftest import wait_for_visible_events
from tests.conftest import PLANNER


def _env(key: str, **more: str) -> dict[str, str]:
    return {"TASCADE_API_KEY": key, "TASCADE_PROJECT": "live", **more}


def test_an_agent_works_a_task_from_the_shell(tascade, key, live_project):
    task = plan.task_create(
        actor=PLANNER, project_id=live_project.pk, title="Write the parser", priority=3
    )
    plan.task_create(actor=PLANNER, project_id=live_project.pk, title="Later", priority=9)
    env = _env(key(Role.AGENT, actor="agent-1"))

    ready = tascade("ready", env=env)
    assert ready.code == 0
    header, *rows = ready.out.splitlines()
    assert header.split() == ["ID", "REF", "STATE", "PRIORITY", "HOLDER", "TITLE"]
    assert [row.split()[1] for row in rows] == ["T1", "T2"]
    assert header.index("TITLE") == rows[0].index("Write the parser")  # aligned columns

    claimed = tascade("claim", "--next", "--json", env=env)
    assert claimed.code == 0
    document = json.loads(claimed.out)
    assert document["task"]["id"] == task.pk and document["task"]["state"] == "claimed"
    token = document["lease"]["token"]
    assert token == Lease.objects.get(task=task, status="active").token

    # The lease commands find the task and the lease in the environment, as a worker sets them.
    held = {**env, "TASCADE_TASK": "T1", "TASCADE_LEASE_TOKEN": str(token)}
    started = tascade("start", "--json", env=held)
    assert started.code == 0 and json.loads(started.out)["spec"]["title"] == "Write the parser"
    beat = tascade("heartbeat", "--json", env=held)
    assert beat.code == 0 and json.loads(beat.out)["plan_changed"] is False
    artifact = tascade(
        "artifact",
        "--branch",
        "t1-parser",
        "--commit",
        "9fceb02",
        "--file",
        "src/parser.py",
        "--file",
        "tests/test_parser.py",
        "--check-status",
        "passed",
        "--json",
        env=held,
    )
    assert artifact.code == 0
    published = json.loads(artifact.out)
    assert published["touched_files"] == ["src/parser.py", "tests/test_parser.py"]
    assert published["check_status"] == "passed" and published["lease_token"] == token
    done = tascade("done", env=held)
    assert done.code == 0 and done.out.strip() == "T1 is implemented."
    task.refresh_from_db()
    assert task.state == "implemented" and task.implemented_by == "agent-1"

    shown = tascade("show", "T1", "--json", env=env)
    assert json.loads(shown.out)["task"]["state"] == "implemented"
    assert "state: implemented" in tascade("show", str(task.pk), env=env).out


def test_a_stale_lease_is_exit_1_with_its_code_on_stderr(tascade, key, live_project):
    task = plan.task_create(actor=PLANNER, project_id=live_project.pk, title="t")
    env = _env(key(Role.AGENT))
    token = json.loads(tascade("claim", "T1", "--json", env=env).out)["lease"]["token"]
    released = tascade(
        "release", "T1", "--reason", "wrong repo", "--lease-token", str(token), env=env
    )
    assert released.code == 0

    stale = tascade("heartbeat", "T1", "--lease-token", str(token), env=env)
    assert stale.code == 1
    assert stale.out == ""
    assert "LEASE_STALE (409)" in stale.err
    assert json.loads(stale.err.split("details: ", 1)[1]) == {
        "task_id": task.pk,
        "presented_token": token,
    }


def test_usage_errors_exit_2_before_any_request(tascade, key, live_project):
    env = _env(key(Role.AGENT))
    assert tascade("claim", env=env).code == 2  # neither TASK nor --next
    assert tascade("frobnicate", env=env).code == 2
    no_key = tascade("whoami", env={})
    assert no_key.code == 2 and "TASCADE_API_KEY" in no_key.err
    no_project = tascade("ready", env={"TASCADE_API_KEY": env["TASCADE_API_KEY"]})
    assert no_project.code == 2 and "TASCADE_PROJECT" in no_project.err
    no_token = tascade("heartbeat", "T1", env=env)
    assert no_token.code == 2 and "TASCADE_LEASE_TOKEN" in no_token.err
    bad_token = tascade("heartbeat", "T1", "--lease-token", "seven", env=env)
    assert bad_token.code == 2
    assert Event.objects.filter(kind="lease.heartbeat").count() == 0


def test_flags_override_the_environment(tascade, key, live_project, server):
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    plan.task_create(actor=PLANNER, project_id=other.pk, title="over there")
    env = {
        "TASCADE_URL": "http://127.0.0.1:9",  # nothing listens: the flag must win
        "TASCADE_API_KEY": "tsk_wrong",
        "TASCADE_PROJECT": "live",
    }
    result = tascade(
        "tasks",
        "--url",
        server,
        "--api-key",
        key(Role.AGENT),
        "--project",
        "other",
        "--json",
        env=env,
    )
    assert result.code == 0
    assert [t["title"] for t in json.loads(result.out)] == ["over there"]
    unreachable = tascade("whoami", env=env)
    assert unreachable.code == 1 and "CONNECTION_FAILED" in unreachable.err


def test_whoami_and_projects(tascade, key, live_project):
    env = _env(key(Role.AGENT, actor="agent-7", project=live_project))
    me = tascade("whoami", "--json", env=env)
    assert json.loads(me.out) == {
        "actor": "agent-7",
        "roles": ["agent"],
        "project": live_project.pk,
    }
    listed = tascade("projects", env=env)
    assert listed.out.splitlines()[1].split()[:2] == [str(live_project.pk), "live"]


def test_a_planner_imports_a_plan_file(tascade, key, live_project, tmp_path):
    outline = tmp_path / "plan.yaml"
    outline.write_text(
        "phases:\n"
        "  - name: Build\n"
        "    milestones:\n"
        "      - name: Core\n"
        "        tasks:\n"
        "          - {title: Parser, key: parser}\n"
        "          - {title: Docs, after: [parser]}\n"
    )
    env = _env(key(Role.PLANNER, actor="planner-1"))
    proposed = tascade("plan", "import", str(outline), "--json", env=env)
    assert proposed.code == 0
    document = json.loads(proposed.out)
    assert document["changeset"]["status"] == "draft" and document["preview"]["valid"] is True
    assert not TaskRow.objects.filter(project=live_project).exists()

    applied = tascade("plan", "import", str(outline), "--apply", env=env)
    assert applied.code == 0 and "the plan is now at version 2" in applied.out
    assert set(TaskRow.objects.filter(project=live_project).values_list("title", flat=True)) == {
        "Parser",
        "Docs",
    }
    # The first draft was made against version 1: its preview now says so, and exit is 1.
    stale = tascade("plan", "apply", str(document["changeset"]["id"]), env=env)
    assert stale.code == 1 and "PLAN_VERSION_STALE" in stale.err

    broken = tmp_path / "broken.md"
    broken.write_text("- a task without a milestone\n")
    refused = tascade("plan", "import", str(broken), env=env)
    assert refused.code == 1 and "PLAN_DOCUMENT_INVALID (400)" in refused.err
    assert Changeset.objects.filter(project=live_project).count() == 2


def test_events_as_a_table_and_as_json(tascade, key, live_project):
    plan.task_create(actor=PLANNER, project_id=live_project.pk, title="a")
    plan.task_create(actor=PLANNER, project_id=live_project.pk, title="b")
    env = _env(key(Role.AGENT))
    wait_for_visible_events(live_project.pk)
    page = json.loads(tascade("events", "--json", env=env).out)
    assert [e["kind"] for e in page["results"]] == [
        "project.created",
        "task.created",
        "task.created",
    ]
    after = tascade(
        "events", "--after", str(page["results"][0]["id"]), "--kind", "task.created", env=env
    )
    header, *rows = after.out.splitlines()
    assert header.split() == ["ID", "AT", "KIND", "TASK", "ACTOR"]
    assert [row.split()[2:4] for row in rows] == [["task.created", "T1"], ["task.created", "T2"]]


def test_review_from_the_shell(tascade, key, live_project, client_for):
    task = plan.task_create(actor=PLANNER, project_id=live_project.pk, title="t")
    agent = client_for(Role.AGENT, actor="agent-1")
    token = agent.claim(task.pk).lease.token
    agent.start(task.pk, token)
    agent.publish_artifact(task.pk, token, commit_sha="abc1234")
    agent.mark_implemented(task.pk, token)

    own = tascade(
        "review",
        "T1",
        "--verdict",
        "approved",
        "--rationale",
        "mine",
        env=_env(key(Role.REVIEWER, actor="agent-1")),
    )
    assert own.code == 1 and "SELF_REVIEW" in own.err
    env = _env(key(Role.REVIEWER, actor="reviewer-1"))
    queue = tascade("review-queue", "--json", env=env)
    assert [t["ref"] for t in json.loads(queue.out)] == ["T1"]
    review = tascade(
        "review",
        "T1",
        "--verdict",
        "changes_requested",
        "--rationale",
        "add tests",
        "--json",
        env=env,
    )
    assert review.code == 0 and json.loads(review.out)["verdict"] == "changes_requested"
    task.refresh_from_db()
    assert task.state == "ready"


def test_the_installed_command_reads_its_configuration_from_the_environment(
    server, key, live_project
):
    """The real process: configuration from its environment, --json on stdout, exit codes."""
    plan.task_create(actor=PLANNER, project_id=live_project.pk, title="t")
    env = {"PATH": "/usr/bin:/bin", "TASCADE_URL": server, "TASCADE_PROJECT": "live"}
    command = [sys.executable, "-m", "tascade_client"]
    ok = subprocess.run(
        [*command, "ready", "--json"],
        env={**env, "TASCADE_API_KEY": key(Role.AGENT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert [t["ref"] for t in json.loads(ok.stdout)] == ["T1"]
    refused = subprocess.run(
        [*command, "ready"],
        env={**env, "TASCADE_API_KEY": "tsk_revoked-or-wrong"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "UNAUTHENTICATED (401)" in refused.stderr


def test_collisions_before_starting(tascade, key, live_project):
    busy = plan.task_create(
        actor=PLANNER, project_id=live_project.pk, title="Docs", exclusive_paths=["docs/**"]
    )
    mine = plan.task_create(
        actor=PLANNER, project_id=live_project.pk, title="API page", expected_paths=["docs/api.md"]
    )
    env = _env(key(Role.AGENT, actor="agent-1"))
    assert tascade("claim", str(busy.pk), env=_env(key(Role.AGENT, actor="agent-2"))).code == 0

    shown = tascade("collisions", f"T{mine.number}", env=env)
    assert shown.code == 0
    first, header, row = shown.out.splitlines()
    assert first == f"T{mine.number}: 1 collision(s), not offered: its paths are held"
    assert header.split() == ["TASK", "STATE", "HOLDER", "HOLDS", "OVERLAPS"]
    assert row.split()[:4] == [f"T{busy.number}", "claimed", "agent-2", "exclusive"]
    document = json.loads(tascade("collisions", str(mine.pk), "--json", env=env).out)
    assert document["offered"] is False
    assert [c["task_id"] for c in document["blocked_by"]] == [busy.pk]
