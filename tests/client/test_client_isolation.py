"""The client package runs on an agent's machine: HTTP only, nothing of the server."""

import subprocess
import sys

_PROBE = """
import sys
import tascade_client, tascade_client.cli, tascade_client.client
from tascade_client import TascadeClient
forbidden = ("django", "rest_framework", "drf_spectacular", "orchestration", "governance",
             "metrics", "psycopg", "celery")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden or m == "tascade"
                or m.startswith("tascade."))
print(",".join(loaded))
"""


def test_importing_the_client_loads_no_django_and_no_server_module():
    """Guards against the client (or the CLI) importing Django, DRF or the project's apps."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == ""


def test_the_command_runs_without_django_settings():
    result = subprocess.run(
        [sys.executable, "-m", "tascade_client", "--help"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 0
    assert "claim" in result.stdout and "events" in result.stdout
