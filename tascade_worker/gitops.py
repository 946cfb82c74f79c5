"""The git operations the runner and the integrator need, through the ``git`` program.

Every call runs ``git -C <dir> …`` with a fixed identity for the commits Tascade makes, and
raises ``GitError`` (with git's own message) when git fails.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Commits Tascade makes carry this identity unless the repository sets its own.
IDENTITY = {"user.name": "Tascade worker", "user.email": "worker@tascade.invalid"}
# Files the runner writes into a worktree for the agent; never committed.
TASK_DIR = ".tascade/task"


class GitError(Exception):
    def __init__(self, args: list[str], returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {output.strip()[-2000:]}")


@dataclass(frozen=True)
class Worktree:
    path: Path
    head: str
    branch: str | None  # short name, None when detached


def git(cwd: str | Path, *args: str, check: bool = True, identity: bool = False) -> str:
    """Run git in ``cwd`` and return its standard output (stripped of the final newline)."""
    cmd = ["git"]
    if identity:
        for key, value in IDENTITY.items():
            cmd += ["-c", f"{key}={value}"]
    cmd += ["-C", str(cwd), *args]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if check and done.returncode != 0:
        raise GitError(list(args), done.returncode, done.stderr + done.stdout)
    return done.stdout.rstrip("\n")


def _returncode(cwd: str | Path, *args: str) -> int:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, check=False
    ).returncode


def toplevel(path: str | Path) -> Path:
    return Path(git(path, "rev-parse", "--show-toplevel")).resolve()


def common_dir(repo: str | Path) -> Path:
    raw = git(repo, "rev-parse", "--git-common-dir")
    return (Path(repo) / raw).resolve() if not os.path.isabs(raw) else Path(raw).resolve()


def rev(repo: str | Path, ref: str) -> str | None:
    """The commit a ref names, or None when there is no such commit."""
    if _returncode(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") != 0:
        return None
    return git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")


def is_ancestor(repo: str | Path, commit: str, of: str) -> bool:
    return _returncode(repo, "merge-base", "--is-ancestor", commit, of) == 0


def branch_exists(repo: str | Path, name: str) -> bool:
    return rev(repo, f"refs/heads/{name}") is not None


def ensure_excluded(repo: str | Path, pattern: str = f"/{TASK_DIR}/") -> None:
    """Keep the runner's per-task files out of every worktree's commits (info/exclude is
    shared by all worktrees of the repository)."""
    info = common_dir(repo) / "info"
    info.mkdir(parents=True, exist_ok=True)
    exclude = info / "exclude"
    text = exclude.read_text() if exclude.exists() else ""
    if pattern not in text.splitlines():
        exclude.write_text(
            text + ("" if text.endswith("\n") or not text else "\n") + pattern + "\n"
        )


def worktree_add(repo: str | Path, path: Path, branch: str, start: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    git(repo, "worktree", "add", "--quiet", "-B", branch, str(path), start)


def worktree_remove(repo: str | Path, path: Path) -> None:
    if _returncode(repo, "worktree", "remove", "--force", "--force", str(path)) != 0:
        shutil.rmtree(path, ignore_errors=True)
    git(repo, "worktree", "prune")


def worktrees(repo: str | Path) -> list[Worktree]:
    found: list[Worktree] = []
    path = head = branch = None
    for line in [*git(repo, "worktree", "list", "--porcelain").splitlines(), ""]:
        if line.startswith("worktree "):
            path = Path(line[len("worktree ") :])
        elif line.startswith("HEAD "):
            head = line[len("HEAD ") :]
        elif line.startswith("branch "):
            branch = line[len("branch ") :].removeprefix("refs/heads/")
        elif line == "" and path is not None:
            found.append(Worktree(path=path, head=head or "", branch=branch))
            path = head = branch = None
    return found


def commit_all(worktree: Path, message: str) -> bool:
    """Commit everything the worktree holds except the runner's task files; False when there
    was nothing to commit."""
    git(worktree, "add", "--all", "--", ".")
    # info/exclude keeps the task files out; this keeps them out even if it was edited.
    git(worktree, "rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--", TASK_DIR)
    if _returncode(worktree, "diff", "--cached", "--quiet") == 0:
        return False
    git(worktree, "commit", "--quiet", "--no-verify", "-m", message, identity=True)
    return True


def changed_files(repo: str | Path, base: str, head: str) -> list[str]:
    """The files that differ between two commits: the real diff, whatever anyone claims."""
    out = git(repo, "diff", "--name-only", "--no-renames", "-z", base, head)
    return sorted(name for name in out.split("\0") if name)


def delete_branch(repo: str | Path, name: str) -> None:
    git(repo, "branch", "--quiet", "-D", name, check=False)
