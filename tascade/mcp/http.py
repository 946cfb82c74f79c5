"""The MCP server over streamable HTTP, mounted at ``/mcp/`` in the ASGI app.

Every request is checked like a Django request (its Host against ``ALLOWED_HOSTS``) and
authenticated like a REST request (``Authorization: Bearer tsk_…``, resolved with REST's code,
so a revoked key is refused here as there); a refusal is the REST error shape with its status.
The transport is stateless with JSON answers: no session lives in a process, so any web
process can answer any request, as for REST.
"""

from contextlib import AbstractAsyncContextManager

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from mcp.server.transport_security import TransportSecuritySettings
from rest_framework import exceptions
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from governance.authentication import authenticate_key, bearer_key
from tascade.api import error_body, exception_handler
from tascade.mcp.server import SCOPE_ACTOR, create_server

PATH = "/mcp/"


def _authenticate(header: str):
    return authenticate_key(bearer_key(header) if header else None)


def _host_allowed(host: str) -> bool:
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:  # as django.http.HttpRequest.get_host
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return bool(domain) and validate_host(domain, allowed)


class McpHttpApp:
    """An ASGI app answering ``/mcp`` and ``/mcp/`` (and the lifespan the transport needs)."""

    def __init__(self) -> None:
        self.server = create_server()
        self._app = self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            # Hosts are checked against ALLOWED_HOSTS below, as Django checks them.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._authenticate = sync_to_async(_authenticate, thread_sensitive=True)

    def lifespan(self) -> AbstractAsyncContextManager:
        """Run the transport's task group (an ASGI server does it through the lifespan)."""
        return self.server.session_manager.run()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not _host_allowed(headers.get("host", "")):
            body = error_body("BAD_REQUEST", "The Host header is not allowed.")
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        try:
            actor = await self._authenticate(headers.get("authorization", ""))
        except exceptions.APIException as exc:
            response = exception_handler(exc, {})
            await JSONResponse(
                response.data,
                status_code=response.status_code,
                headers={"WWW-Authenticate": response.headers.get("WWW-Authenticate", "Bearer")},
            )(scope, receive, send)
            return
        await self._app({**scope, "path": PATH, SCOPE_ACTOR: actor}, receive, send)


def is_mcp_path(path: str) -> bool:
    return path in ("/mcp", PATH)
