"""``manage.py mcp`` over real stdio: a spawned server process, the SDK's stdio client, the
test database (committed rows, so the child process sees them)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from mcp import Client, StdioServerParameters

from governance.models import ApiKey
from governance.services.api_keys import api_key_revoke
from orchestration.models import Task
from orchestration.services.lifecycle import live_lease
from tests.conftest import ADMIN
from tests.mcp.conftest import ToolFailed, answer, run

pytestmark = pytest.mark.django_db(transaction=True)


def _database_url() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
        f"{db['NAME']}"
    )


def _env(api_key: str | None) -> dict[str, str]:
    env = {
        "TASCADE_DATABASE_URL": _database_url(),
        "DJANGO_SETTINGS_MODULE": "tascade.settings",
        "TASCADE_LOG_LEVEL": "WARNING",
    }
    if api_key is not None:
        env["TASCADE_API_KEY"] = api_key
    return env


def _server(api_key: str | None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["manage.py", "mcp"],
        env=_env(api_key),
        cwd=str(settings.BASE_DIR),
    )


def test_an_agent_works_a_task_over_stdio(project, make_task, key):
    task = make_task("over stdio")
    raw = key("agent", actor="agent-stdio")

    async def scenario():
        async with Client(_server(raw), read_timeout_seconds=60) as client:

            async def call(tool, **arguments):
                return answer(await client.call_tool(tool, arguments))

            ready = await call("list_ready", project_id=project.pk)
            assert [t["id"] for t in ready["results"]] == [task.pk]
            claimed = await call("claim", project_id=project.pk)
            token = claimed["lease"]["token"]
            await call("start", task_id=task.pk, lease_token=token)
            beat = await call("heartbeat", task_id=task.pk, lease_token=token)
            assert beat["lease"]["agent"] == "agent-stdio"
            try:
                await call("heartbeat", task_id=task.pk, lease_token=token + 1)
            except ToolFailed as refused:
                return refused.code
            return None

    assert run(scenario) == "LEASE_STALE"
    task = Task.objects.get(pk=task.pk)
    assert task.state == "in_progress" and task.holder == "agent-stdio"
    assert live_lease(task).agent == "agent-stdio"  # the child's writes, committed


@pytest.mark.parametrize("api_key", [None, "tsk_unknown", "revoked"])
def test_the_command_refuses_to_start_without_a_valid_key(key, api_key):
    if api_key == "revoked":
        api_key = key("agent", actor="gone")
        api_key_revoke(actor=ADMIN, api_key=ApiKey.objects.get(actor="gone"))
    done = subprocess.run(
        [sys.executable, "manage.py", "mcp"],
        cwd=settings.BASE_DIR,
        env={**os.environ, **_env(api_key)} | ({} if api_key else {"TASCADE_API_KEY": ""}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "TASCADE_API_KEY" in done.stderr and done.stdout == ""
