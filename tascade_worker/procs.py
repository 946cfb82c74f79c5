"""Run a program under a time limit, in its own process group, with its output in a file.

The whole group is stopped (SIGTERM, then SIGKILL after a grace period) when the limit
passes or the caller's stop event is set, so an agent and every child it spawned go together.
"""

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None when it was stopped
    elapsed: float
    timed_out: bool = False
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.stopped

    def describe(self) -> str:
        if self.timed_out:
            return f"killed at its time limit after {self.elapsed:.1f}s"
        if self.stopped:
            return f"stopped after {self.elapsed:.1f}s"
        return f"exit code {self.returncode} after {self.elapsed:.1f}s"


def kill_group(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left of it after ``grace``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; its children may linger in the group.
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_command(
    command: str,
    *,
    cwd: Path,
    env: dict[str, str],
    log: Path,
    limit: float | None,
    stop: threading.Event | None = None,
    grace: float = 5.0,
    poll: float = 0.05,
) -> Outcome:
    """Run ``command`` with ``/bin/sh -c`` in ``cwd``, appending its output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("ab") as out:
        out.write(f"$ {command}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for kill_group
        )
        timed_out = stopped = False
        while proc.poll() is None:
            if limit is not None and time.monotonic() - started > limit:
                timed_out = True
            elif stop is not None and stop.is_set():
                stopped = True
            if timed_out or stopped:
                kill_group(proc, grace)
                break
            time.sleep(poll)
        else:
            # The leader exited; do not leave children it put in the background behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        elapsed = time.monotonic() - started
        note = (
            "time limit reached: killed"
            if timed_out
            else "stopped"
            if stopped
            else f"exit {proc.returncode}"
        )
        out.write(f"[{note} after {elapsed:.1f}s]\n".encode())
    return Outcome(
        returncode=None if (timed_out or stopped) else proc.returncode,
        elapsed=elapsed,
        timed_out=timed_out,
        stopped=stopped,
    )


def tail(path: Path, limit: int = 2000) -> str:
    """The last ``limit`` characters of a log, for a release reason or diagnostics."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit * 4))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return text[-limit:]
