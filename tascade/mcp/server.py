"""The MCP server: one SDK tool per ``ToolSpec``, run like a REST request.

Each call authenticates (the key is resolved on every call with the code REST uses, so a
revoked key stops working here as it does there), validates its arguments with the REST input
serializer, runs the tool in Django's thread for synchronous code, and answers the same JSON
as REST. Any failure answers a tool error whose text is the REST error shape, rendered by
REST's own exception handler: ``{"error": {"code", "message", "details"}}``.
"""

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer

from governance.actors import Actor
from governance.authentication import authenticate_key
from tascade.api import error_body, exception_handler
from tascade.mcp.schema import object_schema
from tascade.mcp.tools import TOOLS, ToolSpec

logger = logging.getLogger(__name__)

# Where the HTTP transport leaves the actor it authenticated (see tascade.mcp.http).
SCOPE_ACTOR = "tascade.actor"

SERVER_INSTRUCTIONS = (
    "Tascade: a plan of tasks handed out to agents under fenced leases. "
    "Call get_instructions first."
)


class _RawArguments(ArgModelBase):
    """Hands the tool its arguments untouched: the REST input serializer validates them, so
    the rules (and the error shape) are REST's, not a second copy in pydantic."""

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    def model_dump_one_level(self) -> dict[str, Any]:
        return {"arguments": dict(self.model_extra or {})}


def _answer(data: Any, *, is_error: bool = False) -> CallToolResult:
    text = data if isinstance(data, str) else JSONRenderer().render(data).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=is_error)


def _validated(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    serializer = spec.arguments(data=arguments)
    unknown = sorted(set(arguments) - set(serializer.fields))
    if unknown:
        raise serializers.ValidationError({name: ["Unknown argument."] for name in unknown})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def call_tool(spec: ToolSpec, arguments: dict[str, Any], actor: Actor | None, raw_key: str | None):
    """Run one tool call synchronously, as a REST request would run: authenticate, validate,
    call the service, render. Outside a transaction (that is, not in a test) the database
    connection is checked before and after, as Django does around every request."""
    outside_transaction = not connection.in_atomic_block
    if outside_transaction:
        close_old_connections()
    try:
        actor = actor or authenticate_key(raw_key)
        return _answer(spec.run(actor, **_validated(spec, arguments)))
    except Exception as exc:
        response = exception_handler(exc, {})
        if response is None:
            logger.exception("MCP tool %s failed", spec.name)
            body = error_body("INTERNAL_ERROR", "The server failed. This is a bug; it is logged.")
            return _answer(body, is_error=True)
        return _answer(response.data, is_error=True)
    finally:
        if outside_transaction:
            close_old_connections()


def _tool(spec: ToolSpec, api_key: str | None) -> Tool:
    run_sync = sync_to_async(call_tool, thread_sensitive=True)

    async def run(arguments: dict[str, Any], ctx: Context) -> CallToolResult:
        request = ctx.request_context.request
        actor = request.scope.get(SCOPE_ACTOR) if request is not None else None
        return await run_sync(spec, arguments, actor, api_key)

    return Tool(
        fn=run,
        name=spec.name,
        description=spec.description,
        parameters=object_schema(spec.arguments()),
        fn_metadata=FuncMetadata(arg_model=_RawArguments),
        is_async=True,
        context_kwarg="ctx",
        annotations=ToolAnnotations(read_only_hint=True) if spec.read_only else None,
    )


def create_server(*, api_key: str | None = None) -> MCPServer:
    """The MCP server. With ``api_key`` (stdio, tests) every call acts as that key; without,
    each HTTP request's actor is the one ``tascade.mcp.http`` authenticated."""
    return MCPServer(
        "tascade",
        instructions=SERVER_INSTRUCTIONS,
        tools=[_tool(spec, api_key) for spec in TOOLS],
    )


CHARS_PER_TOKEN = 4  # the usual estimate for English text and JSON


async def listed_tools() -> list[dict[str, Any]]:
    """Every tool definition exactly as a client lists it (name, description, input schema,
    annotations), through the SDK's in-memory client: what an agent loads into its context."""
    from mcp import Client

    async with Client(create_server()) as client:
        listing = await client.list_tools()
    return [
        tool.model_dump(by_alias=True, exclude_none=True, mode="json") for tool in listing.tools
    ]
