"""The ASGI app: Django, with the MCP server's streamable HTTP endpoint at ``/mcp/``.

Run it with an ASGI server, e.g. ``uvicorn tascade.asgi:application``. The lifespan (which
Django does not speak) goes to the MCP transport, which needs it to run.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tascade.settings")
django_application = get_asgi_application()

from tascade.mcp.http import McpHttpApp, is_mcp_path  # noqa: E402  (needs Django set up)

mcp_application = McpHttpApp()


async def application(scope, receive, send):
    if scope["type"] == "lifespan" or is_mcp_path(scope.get("path", "")):
        await mcp_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
