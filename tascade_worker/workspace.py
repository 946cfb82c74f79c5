"""Where a runner keeps its worktrees, logs and state, and how a worktree is retired.

    <work dir>/                        default: <git common dir>/tascade
      worktrees/<runner>/<REF>-<token>/  one git worktree per task being worked on
      state/<runner>.json                what the runner holds: task, lease token, branch, worktree
      logs/<runner>/<REF>-<token>/       agent.log, validate.log, context.json, result.json
      logs/<runner>/runner.jsonl         the runner's structured log (one JSON object a line)
      integration/<branch>/              the integrator's worktree
      logs/integrator/attempt-<id>-<REF>/ merge and validation logs of one attempt

Retiring a worktree never loses a commit: uncommitted work is committed first, and a head
that no other branch contains is kept on ``tascade/rescued/<name>`` before the worktree and
its task branch go.
"""

import contextlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from tascade_worker import gitops

RESCUE_PREFIX = "tascade/rescued/"


def safe_name(value: str) -> str:
    """A name usable as a directory and in a branch name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip(".-") or "x"


class Layout:
    def __init__(self, repo: Path, work_dir: Path | None, runner: str) -> None:
        self.repo = repo
        self.root = (work_dir or gitops.common_dir(repo) / "tascade").resolve()
        self.runner = safe_name(runner)
        self.worktrees = self.root / "worktrees" / self.runner
        self.state_file = self.root / "state" / f"{self.runner}.json"
        self.logs = self.root / "logs" / self.runner
        self.journal = self.logs / "runner.jsonl"

    def integration_worktree(self, branch: str) -> Path:
        return self.root / "integration" / safe_name(branch)

    def integration_logs(self) -> Path:
        return self.root / "logs" / "integrator"


class State:
    """The runner's state file: task id → entry, rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def entries(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data.get("tasks", {}) if isinstance(data, dict) else {}

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"tasks": entries}, indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def put(self, task_id: int, **entry: Any) -> None:
        with self._lock:
            entries = self.entries()
            entries[str(task_id)] = {**entries.get(str(task_id), {}), **entry}
            self._write(entries)

    def drop(self, task_id: int) -> None:
        with self._lock:
            entries = self.entries()
            if entries.pop(str(task_id), None) is not None:
                self._write(entries)


def _kept_elsewhere(repo: Path, head: str, own_branch: str | None) -> bool:
    """Whether a branch other than ``own_branch`` contains the commit."""
    out = gitops.git(
        repo, "for-each-ref", "--contains", head, "--format=%(refname:short)", "refs/heads/"
    )
    return any(name and name != own_branch for name in out.splitlines())


def rescue(repo: Path, head: str, own_branch: str | None, name: str) -> str | None:
    """Keep ``head`` on ``tascade/rescued/<name>`` unless another branch has it already."""
    if not head or gitops.rev(repo, head) is None or _kept_elsewhere(repo, head, own_branch):
        return None
    branch = RESCUE_PREFIX + safe_name(name)
    if gitops.branch_exists(repo, branch):
        branch += time.strftime("-%Y%m%d%H%M%S")
    gitops.git(repo, "branch", "--force", branch, head)
    return branch


def retire(repo: Path, path: Path, branch: str | None, *, delete_branch: bool) -> str | None:
    """Remove a worktree (and, if asked, its branch) without losing a commit.

    Returns the rescue branch created, if one was needed.
    """
    rescued = None
    head = None
    if (path / ".git").exists():
        # A merge in progress refuses the commit: the commits made so far are still rescued.
        with contextlib.suppress(gitops.GitError):
            gitops.commit_all(path, f"Rescued: uncommitted work left in {path.name}")
        head = gitops.rev(path, "HEAD")
    elif branch:
        head = gitops.rev(repo, f"refs/heads/{branch}")
    if head and (delete_branch or not branch):  # a kept branch keeps its own commits
        rescued = rescue(repo, head, branch, path.name)
    if path.exists() or any(w.path == path for w in gitops.worktrees(repo)):
        gitops.worktree_remove(repo, path)
    if delete_branch and branch and gitops.branch_exists(repo, branch):
        gitops.delete_branch(repo, branch)
    return rescued


def prune_logs(logs: Path, keep: int) -> list[Path]:
    """Keep the ``keep`` newest task log directories; disk use stays bounded."""
    if not logs.is_dir():
        return []
    dirs = sorted((d for d in logs.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime)
    doomed = dirs[: max(0, len(dirs) - keep)]
    for d in doomed:
        shutil.rmtree(d, ignore_errors=True)
    return doomed
