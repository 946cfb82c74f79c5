"""Tascade's MCP server: the agent, planner and reviewer tools over the same services as the
REST API (``tools.py``), the agent protocol (``protocol.py``), the server (``server.py``) and
its streamable HTTP mount (``http.py``). ``manage.py mcp`` serves it over stdio."""
