"""A live Tascade server, keys for each role, a scratch git repository, and helpers to run
the worker runner and the integrator against them."""

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from governance.actors import Actor, Role
from governance.services.api_keys import api_key_create
from governance.services.reviews import review_record
from orchestration.models import Task
from orchestration.services import plan
from tascade_worker import IntegrateConfig, Integrator, Runner, WorkConfig

ADMIN = Actor(name="root", roles=frozenset({Role.ADMIN}))
PLANNER = Actor(name="planner", roles=frozenset({Role.PLANNER}))
REVIEWER = Actor(name="reviewer-1", roles=frozenset({Role.REVIEWER}))
FAKE_AGENT = Path(__file__).with_name("fake_agent.py")
AGENT_COMMAND = f"{sys.executable} {FAKE_AGENT}"
# Passes unless a tracked file says BROKEN.
CHECK = (
    "import pathlib, sys\n"
    "sys.exit(any('BROKEN' in p.read_text() for p in pathlib.Path('.').rglob('*.txt')))"
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def key(actor: str, *roles: str) -> str:
    return api_key_create(actor=ADMIN, key_actor=actor, roles=list(roles)).raw_key


class World:
    """One project on a live server, and a repository to work on it in."""

    def __init__(self, url: str, repo: Path, project) -> None:
        self.url = url
        self.repo = repo
        self.project = project
        self.agent_key = key("worker-1", Role.AGENT)
        self.operator_key = key("integrator-1", Role.OPERATOR)

    def task(self, title: str, script: dict | None = None, **fields) -> Task:
        description = json.dumps(script) if script is not None else ""
        return plan.task_create(
            actor=PLANNER,
            project_id=self.project.pk,
            title=title,
            description=description,
            **fields,
        )

    def edge(self, prerequisite: Task, dependent: Task) -> None:
        plan.dependency_add(
            actor=PLANNER,
            project_id=self.project.pk,
            prerequisite_id=prerequisite.pk,
            dependent_id=dependent.pk,
        )

    def config(self, **overrides) -> WorkConfig:
        settings = {
            "agent": AGENT_COMMAND,
            "base_ref": "main",
            "concurrency": 2,
            "max_duration": 20.0,
            "poll_interval": 0.1,
            "until_idle": True,
            **overrides,
        }
        return WorkConfig(**settings)

    def runner(self, stop: threading.Event | None = None, **overrides) -> Runner:
        return Runner(
            url=self.url,
            api_key=self.agent_key,
            project=self.project.pk,
            repo=self.repo,
            config=self.config(**overrides),
            stop=stop,
            out=sys.stderr,  # shown by pytest when a test fails
        )

    def work(self, **overrides):
        return self.runner(**overrides).run()

    def approve(self, *tasks: Task) -> None:
        for task in tasks:
            review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="ok")

    def integrate(self, **overrides):
        config = IntegrateConfig(base_ref="main", poll_interval=0.1, until_idle=True, **overrides)
        return Integrator(
            url=self.url,
            api_key=self.operator_key,
            project=self.project.pk,
            repo=self.repo,
            config=config,
            out=sys.stderr,
        ).run()

    def fresh(self, task: Task) -> Task:
        return Task.objects.get(pk=task.pk)


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.invalid")
    (repo / "README.md").write_text("scratch\n")
    (repo / "check.py").write_text(CHECK + "\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def world(live_server, repo) -> World:
    project = plan.project_create(actor=PLANNER, name="Fleet", slug="fleet", lease_ttl_seconds=10)
    return World(live_server.url, repo, project)
