"""The integrator end to end: approved work merged in queue order; a conflict or a red
validation leaves the integration branch exactly where it was."""

import json
import sys

import pytest

from orchestration.models import Artifact, IntegrationAttempt
from tests.worker.conftest import git

pytestmark = pytest.mark.django_db(transaction=True)

BRANCH = "tascade/integration"


def test_approved_work_is_merged_and_a_conflicting_branch_is_reported_untouched(world):
    first = world.task("greet in English", {"write": {"greeting.txt": "hello\n"}}, priority=1)
    second = world.task("greet in French", {"write": {"greeting.txt": "bonjour\n"}}, priority=2)
    other = world.task("unrelated", {"write": {"other.txt": "x\n"}}, priority=3)
    world.work(concurrency=3)
    # Only approved work is integrable: the integrator enqueues what the server accepts.
    world.approve(first)
    summary = world.integrate()
    assert summary.enqueued == [first.ref] and summary.succeeded == [first.ref]
    after_first = git(world.repo, "rev-parse", BRANCH)
    assert git(world.repo, "show", f"{BRANCH}:greeting.txt") == "hello"

    world.approve(second, other)
    summary = world.integrate()

    assert summary.conflict == [second.ref]
    assert summary.succeeded == [other.ref]
    assert world.fresh(first).state == "integrated"
    assert world.fresh(second).state == "conflict"
    assert world.fresh(other).state == "integrated"
    attempt = IntegrationAttempt.objects.get(task_id=second.pk)
    assert attempt.state == "conflict"
    assert "greeting.txt" in attempt.diagnostics
    # The conflict changed nothing: the branch moved only by the later, clean merge.
    assert git(world.repo, "rev-parse", f"{BRANCH}^1") == after_first
    assert git(world.repo, "show", f"{BRANCH}:greeting.txt") == "hello"
    integration_worktree = git(world.repo, "worktree", "list").splitlines()[-1].split()[0]
    assert git(integration_worktree, "status", "--porcelain") == ""
    done = IntegrationAttempt.objects.get(task_id=other.pk)
    assert done.base_sha == after_first
    assert done.head_sha == git(world.repo, "rev-parse", BRANCH)


def test_red_integration_validation_sends_the_work_back_and_resets_the_branch(world):
    task = world.task("sneak a break in", {"write": {"bad.txt": "BROKEN\n"}})
    world.work()  # no validation on the worker side: it passes there
    world.approve(task)
    before = git(world.repo, "rev-parse", "main")

    summary = world.integrate(validate=(f"{sys.executable} check.py",))

    assert summary.failed_checks == [task.ref]
    assert git(world.repo, "rev-parse", BRANCH) == before
    task = world.fresh(task)
    assert task.state == "ready"
    attempt = IntegrationAttempt.objects.get(task_id=task.pk)
    assert attempt.state == "failed_checks"
    assert "check.py" in attempt.diagnostics and "validate.log" in attempt.diagnostics


def test_delegation_splits_the_task_and_the_parent_completes_by_itself(world):
    nested = [
        {"key": "c1", "title": "leaf c1", "description": '{"write": {"c1.txt": "c1"}}'},
        {
            "key": "c2",
            "title": "leaf c2",
            "depends_on": ["c1"],
            "description": '{"append": {"c1.txt": "+c2"}}',
        },
    ]
    children = [
        {"key": "a", "title": "child a", "description": '{"write": {"a.txt": "a"}}'},
        {
            "key": "b",
            "title": "child b (splits again)",
            "depends_on": ["a"],
            "description": '{"delegate": ' + __import__("json").dumps(nested) + "}",
        },
    ]
    parent = world.task("too big", {"delegate": children})

    summary = world.work(concurrency=2)

    assert summary.delegated == [parent.ref, "T3"]
    assert sorted(summary.implemented) == ["T2", "T4", "T5"]
    parent = world.fresh(parent)
    assert parent.state == "implemented"  # every child (and grandchild) is
    child_b = parent.children.get(title__startswith="child b")
    assert child_b.state == "implemented" and child_b.delegated_at is not None
    # Nothing was published for the delegated tasks; their worktrees are gone.
    assert not Artifact.objects.filter(task__in=[parent, child_b]).exists()
    assert git(world.repo, "worktree", "list").count("\n") == 0

    leaves = [t for t in world.project.tasks.all() if t.delegated_at is None and t != parent]
    world.approve(*leaves)
    summary = world.integrate()

    assert sorted(summary.succeeded) == ["T2", "T4", "T5"]
    assert world.fresh(parent).state == "integrated"
    assert git(world.repo, "show", f"{BRANCH}:c1.txt") == "c1+c2"


def test_the_tascade_integrate_command_merges_approved_work(world, capsys):
    from tascade_client.cli import main

    task = world.task("write a file", {"write": {"cli.txt": "via the command\n"}})
    world.work()
    world.approve(task)
    env = {"TASCADE_URL": world.url, "TASCADE_API_KEY": world.operator_key}
    argv = ["integrate", "--repo", str(world.repo), "--project", str(world.project.pk)]
    code = main([*argv, "--base-ref", "main", "--until-idle", "--json"], env=env)

    assert code == 0
    assert json.loads(capsys.readouterr().out)["succeeded"] == [task.ref]
    assert world.fresh(task).state == "integrated"
    assert git(world.repo, "show", f"{BRANCH}:cli.txt") == "via the command"
