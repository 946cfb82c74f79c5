"""The ``tascade work``, ``tascade integrate`` and ``tascade delegate`` commands.

``tascade_client.cli`` registers them with ``register``; they share its global options
(``--url``, ``--api-key``, ``--project``, ``--json``) and its exit codes.
"""

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import Any

from tascade_client.cli import DEFAULT_URL, EXIT_API_ERROR, EXIT_OK, Context, UsageError
from tascade_worker.config import ConfigError, IntegrateConfig, WorkConfig, load


def _credentials(ctx: Context) -> tuple[str, str]:
    url = getattr(ctx.args, "url", None) or ctx.env.get("TASCADE_URL") or DEFAULT_URL
    key = getattr(ctx.args, "api_key", None) or ctx.env.get("TASCADE_API_KEY") or ""
    return url, key


def _stop_on_signals() -> threading.Event:
    """Ctrl-C or SIGTERM: stop the agents, release their tasks, then exit."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def _repo(ctx: Context) -> Path:
    repo = Path(ctx.args.repo).expanduser()
    if not (repo / ".git").exists():
        raise UsageError(f"{repo} is not a git repository (its top level).")
    return repo


def _load(cls: type, section: str, repo: Path, overrides: dict[str, Any]):
    try:
        return load(cls, section, repo, overrides)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _run(cls: type, ctx: Context, repo: Path, config):
    """Build the runner or the integrator from the command's settings and run it until it
    stops (a signal, idle, or its own limit); returns its summary."""
    url, key = _credentials(ctx)
    try:
        worker = cls(
            url=url,
            api_key=key,
            project=ctx.project_id(),
            repo=repo,
            config=config,
            stop=_stop_on_signals(),
        )
        return worker.run()
    except ValueError as exc:  # e.g. a base ref that names no commit
        raise UsageError(str(exc)) from None


def cmd_work(ctx: Context) -> int:
    from tascade_worker.runner import Runner

    a = ctx.args
    repo = _repo(ctx)
    config = _load(
        WorkConfig,
        "work",
        repo,
        {
            "agent": a.agent,
            "validate": tuple(a.validate) if a.validate else None,
            "base_ref": a.base_ref,
            "branch_prefix": a.branch_prefix,
            "max_duration": a.max_duration,
            "validate_timeout": a.validate_timeout,
            "concurrency": a.concurrency,
            "capabilities": tuple(a.capability) if a.capability else None,
            "max_failures": a.max_failures,
            "keep_logs": a.keep_logs,
            "poll_interval": a.poll_interval,
            "until_idle": a.until_idle or None,
            "work_dir": Path(a.work_dir) if a.work_dir else None,
        },
    )
    if not config.agent:
        raise UsageError("no agent command: pass --agent or set [work] agent in the config.")
    summary = _run(Runner, ctx, repo, config)
    ctx.emit(vars(summary), f"Done: {summary.line()}. {summary.stop_reason}".strip())
    return EXIT_API_ERROR if "in a row" in summary.stop_reason else EXIT_OK


def cmd_integrate(ctx: Context) -> int:
    from tascade_worker.integrator import Integrator

    a = ctx.args
    repo = _repo(ctx)
    config = _load(
        IntegrateConfig,
        "integrate",
        repo,
        {
            "branch": a.branch,
            "base_ref": a.base_ref,
            "validate": tuple(a.validate) if a.validate else None,
            "validate_timeout": a.validate_timeout,
            "enqueue": False if a.no_enqueue else None,
            "poll_interval": a.poll_interval,
            "until_idle": a.until_idle or None,
            "work_dir": Path(a.work_dir) if a.work_dir else None,
        },
    )
    summary = _run(Integrator, ctx, repo, config)
    ctx.emit(vars(summary), f"Done: {summary.line()}.")
    return EXIT_OK


def cmd_delegate(ctx: Context) -> int:
    path = Path(ctx.args.file)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if isinstance(document, list):
        document = {"children": document}
    if not isinstance(document, dict) or not isinstance(document.get("children"), list):
        raise UsageError(f'{path}: expected a list of children or {{"children": [...]}}.')
    reason = ctx.args.reason or document.get("reason") or ""
    result = ctx.client.delegate(
        ctx.task_id(ctx.args.task), ctx.lease_token(), document["children"], reason
    )
    refs = ", ".join(f"{c.ref} ({c.state})" for c in result.children)
    ctx.emit(result.raw, f"{result.parent.ref} is {result.parent.state}; children: {refs}")
    return EXIT_OK


def register(command, lease: argparse.ArgumentParser) -> None:
    """Add the commands through ``tascade_client.cli``'s ``command`` helper."""
    p = command("work", cmd_work, "run a pool of agents on ready tasks, one worktree each")
    p.add_argument("--repo", required=True, help="the git repository to work in")
    p.add_argument("--agent", help="the agent command (run with sh -c in the worktree)")
    p.add_argument("--concurrency", "-n", type=int, help="tasks at a time (default 1)")
    p.add_argument("--validate", action="append", help="a validation command; repeatable")
    p.add_argument("--max-duration", type=float, help="seconds an agent may run (1800)")
    p.add_argument("--validate-timeout", type=float, help="seconds per validation (900)")
    p.add_argument("--base-ref", help="what task branches start from (HEAD)")
    p.add_argument("--branch-prefix", help="task branch prefix (tascade/)")
    p.add_argument("--capability", "-c", action="append", help="what the agent can do")
    p.add_argument("--max-failures", type=int, help="stop after this many failures in a row")
    p.add_argument("--keep-logs", type=int, help="task log directories kept (200)")
    p.add_argument("--poll-interval", type=float, help="seconds between claims when idle (2)")
    p.add_argument("--until-idle", action="store_true", help="exit when nothing is left")
    p.add_argument("--work-dir", help="worktrees, logs, state (<git dir>/tascade)")

    p = command("integrate", cmd_integrate, "merge approved work into the integration branch")
    p.add_argument("--repo", required=True, help="the git repository")
    p.add_argument("--branch", help="the integration branch (tascade/integration)")
    p.add_argument("--base-ref", help="where a new integration branch starts (HEAD)")
    p.add_argument("--validate", action="append", help="integration validation; repeatable")
    p.add_argument("--validate-timeout", type=float, help="seconds per validation (900)")
    p.add_argument("--no-enqueue", action="store_true", help="only drain the queue")
    p.add_argument("--poll-interval", type=float, help="seconds between polls (2)")
    p.add_argument("--until-idle", action="store_true", help="exit when the queue is empty")
    p.add_argument("--work-dir", help="where its worktree and logs go (<git dir>/tascade)")

    p = command("delegate", cmd_delegate, "split the task you hold into children", [lease])
    p.add_argument("--file", required=True, help="JSON: [children] or {children, reason}")
    p.add_argument("--reason")
