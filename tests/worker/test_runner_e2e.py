"""The worker runner end to end: a live server, a real git repository, the scripted agent."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestration.models import Artifact, Event
from tests.worker.conftest import git

pytestmark = pytest.mark.django_db(transaction=True)


def _artifact(task):
    return Artifact.objects.filter(task_id=task.pk).order_by("-id").first()


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _journal(repo: Path) -> list[dict]:
    path = Path(git(repo, "rev-parse", "--absolute-git-dir"), "tascade/logs/worker-1/runner.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def _worktree_dirs(repo: Path) -> list[str]:
    return [line for line in git(repo, "worktree", "list").splitlines()[1:]]


def test_parallel_tasks_run_in_separate_worktrees_and_publish_the_real_diff(world):
    tasks = [
        world.task(f"part {i}", {"write": {f"part{i}.txt": f"{i}\n"}, "sleep": 0.6})
        for i in range(3)
    ]
    summary = world.work(concurrency=3)

    assert sorted(summary.implemented) == sorted(t.ref for t in tasks)
    branches = set()
    for i, task in enumerate(tasks):
        task = world.fresh(task)
        assert task.state == "implemented"
        artifact = _artifact(task)
        assert artifact.touched_files == [f"part{i}.txt"]
        assert artifact.check_status == "skipped"
        assert artifact.check_ref.startswith("file://")
        assert Path(artifact.check_ref.removeprefix("file://"), "agent.log").exists()
        # The branch holds exactly this task's file and never the runner's context files.
        files = git(world.repo, "ls-tree", "-r", "--name-only", artifact.commit_sha).split()
        assert sorted(files) == sorted(["README.md", "check.py", f"part{i}.txt"])
        assert git(world.repo, "rev-parse", artifact.branch) == artifact.commit_sha
        branches.add(artifact.branch)
    assert len(branches) == 3
    # They ran at once: all three agents started before the first one ended.
    events = [e["event"] for e in _journal(world.repo)]
    assert events.index("agent.exited") > max(
        i for i, e in enumerate(events) if e == "worktree.ready"
    )
    # The worktrees are gone once the work is published; main is untouched.
    assert _worktree_dirs(world.repo) == []
    assert git(world.repo, "status", "--porcelain") == ""


def test_dependency_chain_runs_in_order_on_its_prerequisites_work(world):
    first = world.task("one", {"append": {"chain.txt": "1"}})
    second = world.task("two", {"append": {"chain.txt": "2"}})
    third = world.task("three", {"append": {"chain.txt": "3"}})
    world.edge(first, second)
    world.edge(second, third)

    summary = world.work(concurrency=3)

    assert summary.implemented == [first.ref, second.ref, third.ref]
    implemented = list(
        Event.objects.filter(kind="task.implemented")
        .order_by("id")
        .values_list("task_id", flat=True)
    )
    assert implemented == [first.pk, second.pk, third.pk]
    last = _artifact(third)
    assert git(world.repo, "show", f"{last.commit_sha}:chain.txt") == "123"
    assert _artifact(second).touched_files == ["chain.txt"]


def test_validation_failure_releases_with_the_log_and_repeated_failure_blocks(world):
    task = world.task("break it", {"write": {"bad.txt": "BROKEN\n"}}, max_attempts=2)

    summary = world.work(validate=(f"{sys.executable} check.py",))

    task = world.fresh(task)
    assert task.state == "blocked"
    assert task.attempt_count == 2
    assert summary.failed == [task.ref, task.ref]
    assert summary.blocked == [task.ref]
    assert "validation" in task.state_reason and "validate.log" in task.state_reason
    assert not Artifact.objects.filter(task_id=task.pk).exists()
    releases = Event.objects.filter(task_id=task.pk, kind="task.released").order_by("id")
    assert [e.payload["to"] for e in releases] == ["ready", "blocked"]
    # The failed work is kept (on a rescue branch), its worktrees and task branches are gone.
    # Two attempts committing the same change within one second make the very same commit
    # (same tree, parent, message and timestamp): it is kept once, on the first attempt's
    # rescue branch. Otherwise each attempt has its own.
    rescued = git(world.repo, "branch", "--list", "tascade/rescued/*").split()
    assert rescued and rescued[0] == f"tascade/rescued/{task.ref}-1" and len(rescued) <= 2
    for branch in rescued:
        assert git(world.repo, "show", f"{branch}:bad.txt") == "BROKEN"
    assert git(world.repo, "branch", "--list", f"tascade/{task.ref}-*") == ""
    assert _worktree_dirs(world.repo) == []


def test_a_hung_agent_and_its_children_are_killed_at_the_limit(world, tmp_path):
    pidfile = tmp_path / "pids"
    task = world.task("hang", {"hang": True, "pidfile": str(pidfile)}, max_attempts=1)

    started = time.monotonic()
    summary = world.work(max_duration=1.5)
    elapsed = time.monotonic() - started

    assert summary.blocked == [task.ref]
    assert elapsed < 12
    task = world.fresh(task)
    assert "time limit" in task.state_reason
    assert not any(_alive(pid) for pid in map(int, pidfile.read_text().split()))


def _run_cli(world, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "TASCADE_API_KEY": world.agent_key, "TASCADE_URL": world.url}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tascade_client",
            "work",
            "--repo",
            str(world.repo),
            "--project",
            str(world.project.pk),
            "--agent",
            f"{sys.executable} {Path(__file__).with_name('fake_agent.py')}",
            "--base-ref",
            "main",
            "--poll-interval",
            "0.1",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_sigterm_stops_the_agent_releases_the_task_and_publishes_nothing(world, tmp_path):
    pidfile = tmp_path / "pids"
    script = {"write": {"half.txt": "half"}, "hang": True, "pidfile": str(pidfile)}
    task = world.task("long", script)
    proc = _run_cli(world)
    _wait_for(pidfile)

    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)

    assert proc.returncode == 0, output
    task = world.fresh(task)
    assert task.state == "ready"
    assert "runner stopped" in task.state_reason
    assert not Artifact.objects.filter(task_id=task.pk).exists()
    assert not any(_alive(pid) for pid in map(int, pidfile.read_text().split()))
    assert _worktree_dirs(world.repo) == []


def test_a_restarted_runner_releases_what_it_held_and_rescues_unmerged_work(world, tmp_path):
    pidfile = tmp_path / "pids"
    task = world.task(
        "crashy",
        {
            "write": {"work.txt": "committed"},
            "commit": "agent's own commit",
            "hang": True,
            "pidfile": str(pidfile),
        },
        max_attempts=2,
    )
    proc = _run_cli(world)
    _wait_for(pidfile)
    # The runner dies without a chance to clean up; its agent goes with it.
    proc.kill()
    proc.communicate(timeout=10)
    for pid in map(int, pidfile.read_text().split()):
        os.kill(pid, signal.SIGKILL)
    crashed_worktrees = _worktree_dirs(world.repo)
    assert len(crashed_worktrees) == 1
    # An orphan too: a worktree under the runner's directory that no state entry names,
    # with a commit on a detached head that no branch has.
    root = Path(git(world.repo, "rev-parse", "--absolute-git-dir")) / "tascade" / "worktrees"
    orphan = root / "worker-1" / "T99-1"
    git(world.repo, "worktree", "add", "-q", "--detach", str(orphan), "main")
    (orphan / "orphan.txt").write_text("orphan work\n")
    git(orphan, "add", ".")
    git(orphan, "commit", "-q", "-m", "orphan commit")
    orphan_commit = git(orphan, "rev-parse", "HEAD")

    summary = world.work(max_duration=1.0)

    assert summary.recovered == [task.ref]
    task = world.fresh(task)
    # Released on restart (attempt 1), then tried again and killed at the limit (attempt 2).
    assert task.state == "blocked" and task.attempt_count == 2
    assert "runner restarted" in Event.objects.filter(
        task_id=task.pk, kind="task.released"
    ).first().payload.get("reason", "")
    rescued = git(world.repo, "branch", "--list", "tascade/rescued/*").split()
    kept = {git(world.repo, "log", "-1", "--format=%s", b): b for b in rescued}
    assert "orphan commit" in kept
    assert "agent's own commit" in set(
        git(world.repo, "log", "--format=%s", b) for b in rescued
    ) or any("agent's own commit" in git(world.repo, "log", "--format=%s", b) for b in rescued)
    assert git(world.repo, "branch", "--contains", orphan_commit, "--list", "tascade/rescued/*")
    assert not orphan.exists()
    assert _worktree_dirs(world.repo) == []
    assert git(world.repo, "status", "--porcelain") == ""
