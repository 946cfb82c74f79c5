"""``manage.py mcp``: the MCP server over stdio, for an agent that starts it as a subprocess.

The API key comes from ``TASCADE_API_KEY``. It is resolved once at start with the code REST
authenticates with (a missing, unknown or revoked key stops the command before it serves), and
again on every call, so a key revoked later stops working here too. Stdout carries the
protocol; everything else goes to stderr.
"""

import os

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from rest_framework import exceptions

from governance.authentication import authenticate_key
from tascade.mcp.server import create_server


class Command(BaseCommand):
    help = "Serve the Tascade MCP tools over stdio, as the API key in TASCADE_API_KEY."

    def handle(self, *args, **options):
        raw_key = os.environ.get("TASCADE_API_KEY", "").strip()
        try:
            actor = authenticate_key(raw_key)
        except exceptions.APIException as exc:
            raise CommandError(f"TASCADE_API_KEY: {exc.detail}") from exc
        roles = ", ".join(sorted(actor.roles))
        self.stderr.write(f"Tascade MCP server on stdio, acting as {actor.name} ({roles}).")
        connections.close_all()  # the tools run on Django's sync thread, with its own connection
        create_server(api_key=raw_key).run("stdio")
