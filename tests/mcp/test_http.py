"""The MCP server over streamable HTTP, through the ASGI app (``tascade.asgi``) that also
serves Django: Bearer keys as for REST, refusals in the REST error shape."""

import httpx
import httpx2
import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

import tascade.asgi
from governance.models import ApiKey
from governance.services.api_keys import api_key_revoke
from tascade.mcp.http import McpHttpApp
from tests.conftest import ADMIN
from tests.mcp.conftest import answer, run

pytestmark = pytest.mark.django_db

BASE = "http://testserver"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


@pytest.fixture
def app(monkeypatch):
    """The project's ASGI app with a fresh MCP transport (a transport runs only once)."""
    mcp_app = McpHttpApp()
    monkeypatch.setattr(tascade.asgi, "mcp_application", mcp_app)
    return mcp_app


def _post(monkeypatch, headers: dict, path: str = "/mcp/", host: str = "testserver"):
    """One initialize request through the ASGI app, with a fresh MCP transport."""
    app = McpHttpApp()
    monkeypatch.setattr(tascade.asgi, "mcp_application", app)

    async def scenario():
        transport = httpx.ASGITransport(app=tascade.asgi.application)
        async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            return await http.post(
                path,
                json=INITIALIZE,
                headers={
                    "Accept": "application/json, text/event-stream",
                    "Host": host,
                    **headers,
                },
            )

    return run(scenario)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer tsk_unknown", "Bearer ", "Basic dXNlcjpwYXNz", "tsk_no_scheme"],
)
def test_no_key_or_a_bad_key_is_refused_with_401_in_the_one_error_shape(monkeypatch, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = _post(monkeypatch, headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_revoked_key_is_refused(monkeypatch, key, django_capture_on_commit_callbacks):
    raw = key("agent", actor="agent-1")
    assert _post(monkeypatch, {"Authorization": f"Bearer {raw}"}).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(actor=ADMIN, api_key=ApiKey.objects.get(actor="agent-1"))
    refused = _post(monkeypatch, {"Authorization": f"Bearer {raw}"})
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "UNAUTHENTICATED"


def test_a_host_django_would_refuse_is_refused(monkeypatch, key):
    raw = key("agent")
    response = _post(monkeypatch, {"Authorization": f"Bearer {raw}"}, host="evil.example")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


def test_both_mcp_and_mcp_slash_are_served(monkeypatch, key):
    raw = key("agent")
    response = _post(monkeypatch, {"Authorization": f"Bearer {raw}"}, path="/mcp")
    assert response.status_code == 200
    assert response.json()["result"]["serverInfo"]["name"] == "tascade"


def test_an_agent_claims_and_starts_over_http_as_its_key(app, key, project, make_task):
    task = make_task("over http")
    raw = key("agent", actor="agent-http")

    async def scenario():
        http = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=tascade.asgi.application),
            headers={"Authorization": f"Bearer {raw}"},
        )
        async with (
            app.lifespan(),
            http,
            Client(streamable_http_client(f"{BASE}/mcp/", http_client=http)) as client,
        ):
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert {"claim", "start", "heartbeat", "create_project"} <= names
            claimed = answer(await client.call_tool("claim", {"task_id": task.pk}))
            token = claimed["lease"]["token"]
            started = answer(
                await client.call_tool("start", {"task_id": task.pk, "lease_token": token})
            )
            refused = await client.call_tool("create_project", {"name": "not mine"})
            return claimed, started, refused

    claimed, started, refused = run(scenario)
    assert claimed["lease"]["agent"] == "agent-http"  # identity from the Bearer key
    assert started["task"] == task.pk
    assert refused.is_error and '"code":"FORBIDDEN"' in refused.content[0].text


@pytest.fixture
def keep_test_connection():
    """Django's request signals close the database connection, and with it the test's
    transaction; Django's own test client disconnects them the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_django_is_still_served_beside_the_mcp_endpoint(app, key, keep_test_connection):
    raw = key("agent", actor="agent-1")

    async def scenario():
        transport = httpx.ASGITransport(app=tascade.asgi.application)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            return await http.get("/api/v1/me/", headers={"Authorization": f"Bearer {raw}"})

    response = run(scenario)
    assert response.status_code == 200 and response.json()["actor"] == "agent-1"
