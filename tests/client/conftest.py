"""A live test server, keys for it, and the `tascade` command run in-process against it."""

import time
from dataclasses import dataclass

import pytest

from governance.actors import Role
from governance.services.api_keys import api_key_create
from orchestration.models import Event
from orchestration.selectors import events_after
from orchestration.services import plan
from tascade_client import TascadeClient
from tascade_client.cli import main
from tests.conftest import ADMIN, PLANNER


@pytest.fixture
def server(live_server, transactional_db) -> str:
    """The live server's address. Its threads commit for real, so the data is built in
    committed transactions too (``transactional_db``)."""
    return live_server.url


@pytest.fixture
def key():
    """``key(*roles, actor=…, project=…)`` → a raw API key."""

    def make(*roles: str, actor: str = "agent-1", project=None) -> str:
        issued = api_key_create(
            actor=ADMIN, key_actor=actor, roles=list(roles) or [Role.ADMIN], project=project
        )
        return issued.raw_key

    return make


@pytest.fixture
def live_project(server):
    return plan.project_create(actor=PLANNER, name="Live", slug="live")


@pytest.fixture
def client_for(server, key):
    """``client_for(*roles, actor=…)`` → a ``TascadeClient`` on the live server."""
    made = []

    def make(*roles: str, actor: str = "agent-1", project=None) -> TascadeClient:
        client = TascadeClient(server, key(*roles, actor=actor, project=project), timeout=20)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def tascade(server, capsys):
    """``tascade(*argv, env={…})`` runs the command against the live server: TASCADE_URL
    comes from the environment it is given, like every other setting."""

    def run(*argv: str, env: dict[str, str] | None = None) -> Run:
        capsys.readouterr()
        code = main(list(argv), env={"TASCADE_URL": server, **(env or {})})
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


def wait_for_visible_events(project_id: int, timeout: float = 90.0) -> int:
    """Wait until every event of the project is past the visibility horizon; return how many.

    The event feed holds back events of transactions older than the oldest one still
    running anywhere on the PostgreSQL server (``selectors.events_after``), and the test
    server is shared: another suite's open transaction delays what this one can read.
    """
    deadline = time.monotonic() + timeout
    total = Event.objects.filter(project_id=project_id).count()
    while True:
        visible = len(events_after(ADMIN, project_id, limit=1000))
        if visible == total:
            return total
        if time.monotonic() > deadline:
            raise AssertionError(f"only {visible} of {total} events became visible")
        time.sleep(0.1)
