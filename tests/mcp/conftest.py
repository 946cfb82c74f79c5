"""MCP test plumbing: API keys made by the real service, and the SDK's in-memory client."""

import json
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import async_to_sync
from mcp import Client

from governance.services.api_keys import api_key_create
from tascade.mcp.server import create_server
from tests.conftest import ADMIN


@pytest.fixture
def key(db):
    """``key(*roles, actor=…, project=…)`` → a fresh raw API key."""

    def make(*roles: str, actor: str = "tester", project=None) -> str:
        issued = api_key_create(actor=ADMIN, key_actor=actor, roles=list(roles), project=project)
        return issued.raw_key

    return make


def run(scenario):
    """Run an async scenario from a sync test. ``async_to_sync`` runs the tools' thread-
    sensitive ORM calls on this thread, so they see the test's transaction. A failure inside
    the client's task groups is re-raised as itself, not as nested exception groups."""
    try:
        return async_to_sync(scenario)()
    except BaseExceptionGroup as group:
        leaf = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        raise leaf from group


@asynccontextmanager
async def connect(api_key: str | None):
    async with Client(create_server(api_key=api_key)) as client:
        yield Session(client)


class Session:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, **arguments):
        """The tool's answer as JSON; a tool error raises ``ToolFailed`` with its body."""
        result = await self.client.call_tool(tool, arguments)
        return answer(result)


class ToolFailed(Exception):
    def __init__(self, body: dict) -> None:
        super().__init__(body)
        self.body = body
        self.code = body["error"]["code"]


def answer(result):
    text = result.content[0].text
    if result.is_error:
        raise ToolFailed(json.loads(text))
    try:
        return json.loads(text)
    except ValueError:
        return text
