"""The README's run command on a bare machine: web, worker and beat, SQLite, no Redis."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base, method, path, key, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def test_serve_runs_web_worker_and_beat_and_the_sweep_works(tmp_path):
    """Guards against a run command whose sweeps never run without a broker set up."""
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TASCADE_", "REDIS_URL", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tascade.settings",
        TASCADE_VAR_DIR=str(tmp_path),
        TASCADE_SWEEP_INTERVAL_SECONDS="1",
    )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        key = None
        deadline = time.monotonic() + 60
        while key is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            output.append(line)
            match = re.search(r"admin API key (tsk_\S+)", line)
            key = match and match.group(1)
        assert key, "".join(output)
        base = f"http://127.0.0.1:{port}/api/v1"
        while time.monotonic() < deadline:
            try:
                _call(base, "GET", "/me/", key)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)

        project = _call(base, "POST", "/projects/", key, {"name": "Trial", "lease_ttl_seconds": 5})
        task = _call(base, "POST", f"/projects/{project['id']}/tasks/", key, {"title": "t"})
        _call(base, "POST", f"/tasks/{task['id']}/claim/", key)

        # Nobody heartbeats: after 5 s the lease lapses and beat's sweep returns the task.
        swept = None
        while swept is None and time.monotonic() < deadline + 30:
            events = _call(
                base, "GET", f"/projects/{project['id']}/events/?kind=lease.expired", key
            )["results"]
            swept = events[0] if events else None
            time.sleep(0.5)
        assert swept is not None, "no sweep happened"
        assert swept["actor"] == "system"
        assert _call(base, "GET", f"/tasks/{task['id']}/", key)["state"] == "ready"
    finally:
        os.killpg(server.pid, 15)
        try:
            server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
