"""``tascade``: the Tascade API from a shell, for people and for scripts.

Configuration comes from the environment, each overridable by a flag:

    TASCADE_URL          the server (default http://127.0.0.1:8000)      --url
    TASCADE_API_KEY      the Bearer key (tsk_…)                          --api-key
    TASCADE_PROJECT      the default project, by id or slug              --project
    TASCADE_TASK         the default task of the lease commands          TASK argument
    TASCADE_LEASE_TOKEN  the lease the lease commands present            --lease-token

Output is an aligned table or a short text by default; ``--json`` prints one JSON document
(``events --follow --json``: one JSON object per line). Exit codes: 0 done, 1 the API said
no (its code and message go to stderr), 2 a usage error.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tascade_client.client import TascadeClient
from tascade_client.errors import TascadeError
from tascade_client.models import Task

DEFAULT_URL = "http://127.0.0.1:8000"
EXIT_OK, EXIT_API_ERROR, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad or missing input found before any request: exit code 2."""


class Context:
    """What a command needs: the parsed arguments, the environment, a client, the output."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        self.args = args
        self.env = env
        api_key = getattr(args, "api_key", None) or env.get("TASCADE_API_KEY")
        if not api_key:
            raise UsageError("no API key: pass --api-key or set TASCADE_API_KEY.")
        url = getattr(args, "url", None) or env.get("TASCADE_URL") or DEFAULT_URL
        self.client = TascadeClient(url, api_key)
        self.json = bool(getattr(args, "json", False))
        self._project_id: int | None = None

    # --- resolving names ---------------------------------------------------------------
    def project_id(self) -> int:
        if self._project_id is None:
            project = getattr(self.args, "project", None) or self.env.get("TASCADE_PROJECT")
            if not project:
                raise UsageError("no project: pass --project or set TASCADE_PROJECT.")
            self._project_id = self.client.resolve_project(project)
        return self._project_id

    def task_id(self, value: str | None = None) -> int:
        value = value or getattr(self.args, "task", None) or self.env.get("TASCADE_TASK")
        if not value:
            raise UsageError("no task: name it (an id, or a ref like T42) or set TASCADE_TASK.")
        if value.isdigit():
            return int(value)
        try:
            return self.client.resolve_task(value, self.project_id())
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def lease_token(self) -> int:
        raw = getattr(self.args, "lease_token", None) or self.env.get("TASCADE_LEASE_TOKEN")
        if raw is None or raw == "":
            raise UsageError("no lease token: pass --lease-token or set TASCADE_LEASE_TOKEN.")
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"the lease token must be a whole number, not {raw!r}.") from None

    # --- output ------------------------------------------------------------------------
    def emit(self, document: Any, text: str) -> None:
        if self.json:
            print(json.dumps(document, indent=2))
        elif text:
            print(text)


def table(headers: list[str], rows: Iterable[Iterable[Any]]) -> str:
    """Columns aligned on the widest cell; the last column is not padded."""
    cells = [[str(h) for h in headers]] + [
        ["" if c is None else str(c) for c in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)).rstrip()
        for row in cells
    ]
    return "\n".join(lines)


def _task_rows(tasks: list[Task]) -> str:
    if not tasks:
        return "(no tasks)"
    return table(
        ["ID", "REF", "STATE", "PRIORITY", "HOLDER", "TITLE"],
        [[t.id, t.ref, t.state, t.priority, t.holder, t.title] for t in tasks],
    )


def _split(values: list[str] | None) -> list[str] | None:
    """Repeated and comma-separated values, as one list (None when never given)."""
    if values is None:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


# --- commands --------------------------------------------------------------------------
def cmd_whoami(ctx: Context) -> int:
    me = ctx.client.whoami()
    scope = f"project {me.project}" if me.project is not None else "every project"
    ctx.emit(me.raw, f"{me.actor}  roles: {', '.join(me.roles)}  sees: {scope}")
    return EXIT_OK


def cmd_projects(ctx: Context) -> int:
    projects = list(ctx.client.projects())
    rows = [[p.id, p.slug, p.plan_version, p.name] for p in projects]
    text = table(["ID", "SLUG", "PLAN_VERSION", "NAME"], rows) if projects else "(no projects)"
    ctx.emit([p.raw for p in projects], text)
    return EXIT_OK


def cmd_tasks(ctx: Context) -> int:
    tasks = list(ctx.client.tasks(ctx.project_id(), state=ctx.args.state))
    ctx.emit([t.raw for t in tasks], _task_rows(tasks))
    return EXIT_OK


def cmd_ready(ctx: Context) -> int:
    tasks = list(ctx.client.ready(ctx.project_id(), _split(ctx.args.capability)))
    ctx.emit([t.raw for t in tasks], _task_rows(tasks))
    return EXIT_OK


def cmd_collisions(ctx: Context) -> int:
    found = ctx.client.collisions(ctx.task_id(ctx.args.task))
    held = {c["task_id"] for c in found.blocked_by}
    rows = [
        (
            c["ref"],
            c["state"],
            c["holder"],
            "exclusive" if c["task_id"] in held else "",
            ", ".join(f"{o['path']} ~ {o['with']}" for o in c["overlaps"]),
        )
        for c in found.collisions
    ]
    verdict = "offered" if found.offered else "not offered: its paths are held"
    text = table(["TASK", "STATE", "HOLDER", "HOLDS", "OVERLAPS"], rows) if rows else "none"
    ctx.emit(found.raw, f"{found.task['ref']}: {found.score} collision(s), {verdict}\n{text}")
    return EXIT_OK


def cmd_show(ctx: Context) -> int:
    c = ctx.client.context(ctx.task_id(ctx.args.task))
    t = c.task
    lines = [
        f"{t.ref}  {t.title}",
        f"state: {t.state}  priority: {t.priority}  class: {t.task_class}  "
        f"attempts: {t.attempt_count}/{t.max_attempts}",
    ]
    if t.holder:
        lines.append(f"holder: {t.holder}  until: {t.hold_expires_at}")
    if c.lease:
        lines.append(
            f"lease: token {c.lease.token}, {c.lease.status}, expires {c.lease.expires_at}"
        )
    if c.snapshot:
        changed = "  (the plan has changed since)" if c.plan_changed else ""
        lines.append(f"snapshot: plan version {c.snapshot.plan_version}{changed}")
    spec = t.work_spec or {}
    if spec.get("objective"):
        lines.append(f"objective: {spec['objective']}")
    for criterion in spec.get("acceptance_criteria") or []:
        lines.append(f"  - {criterion}")
    if t.description:
        lines += ["", t.description]
    if c.prerequisites:
        lines += ["", "prerequisites:"]
        rows = [
            [task.ref, task.state, edge.unlock_on, task.title] for edge, task in c.prerequisites
        ]
        lines.append(table(["REF", "STATE", "UNLOCK_ON", "TITLE"], rows))
    if c.dependents:
        lines += ["", "dependents:"]
        rows = [[task.ref, task.state, task.title] for _edge, task in c.dependents]
        lines.append(table(["REF", "STATE", "TITLE"], rows))
    if c.reviews:
        lines += ["", "reviews:"]
        lines += [f"  {r.verdict} by {r.reviewer}: {r.rationale}" for r in c.reviews]
    ctx.emit(c.raw, "\n".join(lines))
    return EXIT_OK


def cmd_claim(ctx: Context) -> int:
    args = ctx.args
    if args.next == bool(args.task):
        raise UsageError("claim takes a TASK or --next, not both and not neither.")
    if args.next:
        result = ctx.client.claim_next(ctx.project_id(), _split(args.capability))
        if result is None:
            ctx.emit(None, "No ready task fits.")
            return EXIT_OK
    else:
        result = ctx.client.claim(ctx.task_id(args.task))
    t, lease = result.task, result.lease
    ctx.emit(
        result.raw,
        f"Claimed {t.ref} (task {t.id}): {t.title}\n"
        f"lease token {lease.token}, expires {lease.expires_at}\n"
        f"export TASCADE_TASK={t.id} TASCADE_LEASE_TOKEN={lease.token}",
    )
    return EXIT_OK


def cmd_start(ctx: Context) -> int:
    token = ctx.lease_token()  # usage errors first, before any request
    task_id = ctx.task_id(ctx.args.task)
    snapshot = ctx.client.start(task_id, token)
    ctx.emit(
        snapshot.raw,
        f"Started task {task_id} against plan version {snapshot.plan_version} "
        f"(spec {snapshot.spec_hash[:12]}).",
    )
    return EXIT_OK


def cmd_heartbeat(ctx: Context) -> int:
    token = ctx.lease_token()
    task_id = ctx.task_id(ctx.args.task)
    beat = ctx.client.heartbeat(task_id, token)
    text = f"Lease on task {task_id} renewed until {beat.lease.expires_at} ({beat.ttl_seconds}s)."
    if beat.plan_changed:
        text += (
            f"\nThe plan moved: your snapshot is of version {beat.snapshot_plan_version}, "
            f"the plan is at {beat.plan_version}."
        )
    ctx.emit(beat.raw, text)
    return EXIT_OK


def cmd_artifact(ctx: Context) -> int:
    args = ctx.args
    token = ctx.lease_token()
    task_id = ctx.task_id(args.task)
    artifact = ctx.client.publish_artifact(
        task_id,
        token,
        branch=args.branch,
        commit_sha=args.commit,
        touched_files=args.file,
        check_status=args.check_status,
        check_ref=args.check_ref,
        summary=args.summary,
    )
    ctx.emit(
        artifact.raw,
        f"Published artifact {artifact.id} on task {task_id} ({artifact.branch or '-'} @ "
        f"{artifact.commit_sha or '-'}, checks {artifact.check_status}).",
    )
    return EXIT_OK


def cmd_done(ctx: Context) -> int:
    token = ctx.lease_token()
    task = ctx.client.mark_implemented(ctx.task_id(ctx.args.task), token)
    ctx.emit(task.raw, f"{task.ref} is {task.state}.")
    return EXIT_OK


def cmd_release(ctx: Context) -> int:
    token = ctx.lease_token()
    task = ctx.client.release(ctx.task_id(ctx.args.task), token, ctx.args.reason)
    ctx.emit(task.raw, f"Released {task.ref}; it is now {task.state}.")
    return EXIT_OK


def _impact_lines(impact: dict[str, Any] | None) -> list[str]:
    lines = []
    for key, values in (impact or {}).items():
        if values:
            shown = ", ".join(str(v) for v in values[:20])
            more = f" … ({len(values)} in all)" if len(values) > 20 else ""
            lines.append(f"  {key}: {shown}{more}")
    return lines or ["  (no effect on existing tasks)"]


def cmd_plan_import(ctx: Context) -> int:
    args = ctx.args
    path = Path(args.file)
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    project_id = ctx.project_id()
    base_version = args.base_version or ctx.client.project(project_id).plan_version
    changeset = ctx.client.import_plan(
        project_id, path.name, content, base_version, title=args.title
    )
    preview = ctx.client.preview_changeset(changeset.id, rebase=args.rebase)
    lines = [
        f"Changeset {changeset.id} ({changeset.status}): {len(changeset.operations)} operations "
        f"against plan version {changeset.base_version}."
    ]
    if not preview.valid:
        error = preview.error or {}
        ctx.emit(
            {"changeset": changeset.raw, "preview": preview.raw},
            "\n".join([*lines, "It would be refused:"]),
        )
        raise TascadeError(
            409 if error.get("code") != "VALIDATION_ERROR" else 400,
            error.get("code", "ERROR"),
            error.get("message", "The changeset would be refused."),
            error.get("details"),
        )
    lines += ["Impact:", *_impact_lines(preview.impact)]
    if args.apply:
        changeset = ctx.client.apply_changeset(changeset.id, rebase=args.rebase)
        lines.append(f"Applied: the plan is now at version {changeset.applied_version}.")
    else:
        lines.append(f"Not applied. Apply it with: tascade plan apply {changeset.id}")
    ctx.emit({"changeset": changeset.raw, "preview": preview.raw}, "\n".join(lines))
    return EXIT_OK


def cmd_plan_apply(ctx: Context) -> int:
    changeset = ctx.client.apply_changeset(ctx.args.changeset, rebase=ctx.args.rebase)
    ctx.emit(
        changeset.raw,
        f"Applied changeset {changeset.id}: the plan is now at version "
        f"{changeset.applied_version}.\nImpact:\n" + "\n".join(_impact_lines(changeset.impact)),
    )
    return EXIT_OK


def _event_row(event) -> list[Any]:
    ref = event.payload.get("ref") if isinstance(event.payload, dict) else None
    task = ref or (event.task if event.task is not None else "")
    return [event.id, event.created_at, event.kind, task, event.actor]


def cmd_events(ctx: Context) -> int:
    args = ctx.args
    project_id = ctx.project_id()
    task = ctx.task_id(args.task) if args.task else None
    kinds = _split(args.kind)
    if args.follow:
        for event in ctx.client.follow_events(project_id, after=args.after, task=task, kinds=kinds):
            if ctx.json:
                print(json.dumps(event.raw), flush=True)
            else:
                print("  ".join(str(c) for c in _event_row(event)), flush=True)
        return EXIT_OK  # unreachable: follow_events runs until interrupted or it fails
    page = ctx.client.events(project_id, after=args.after, task=task, kinds=kinds, limit=args.limit)
    text = (
        table(["ID", "AT", "KIND", "TASK", "ACTOR"], [_event_row(e) for e in page.results])
        if page.results
        else "(no events)"
    )
    ctx.emit(page.raw, text)
    return EXIT_OK


def cmd_review(ctx: Context) -> int:
    args = ctx.args
    review = ctx.client.record_review(ctx.task_id(args.task), args.verdict, args.rationale)
    ctx.emit(review.raw, f"Recorded review {review.id}: {review.verdict} on task {review.task}.")
    return EXIT_OK


def cmd_review_queue(ctx: Context) -> int:
    tasks = ctx.client.review_queue(ctx.project_id())
    ctx.emit([t.raw for t in tasks], _task_rows(tasks))
    return EXIT_OK


def cmd_decide(ctx: Context) -> int:
    args = ctx.args
    decision = ctx.client.decide_checkpoint(args.checkpoint, args.verdict, args.rationale)
    ctx.emit(
        decision.raw,
        f"Recorded decision {decision.id}: {decision.verdict} on checkpoint {decision.checkpoint}.",
    )
    return EXIT_OK


# --- the parser --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    # The global options are accepted before and after the command (`tascade --json ready`
    # and `tascade ready --json`); SUPPRESS keeps a subcommand from resetting them.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help="server (TASCADE_URL)")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="key (TASCADE_API_KEY)")
    common.add_argument(
        "--project", "-p", default=argparse.SUPPRESS, help="project id or slug (TASCADE_PROJECT)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine output"
    )
    lease = argparse.ArgumentParser(add_help=False)
    lease.add_argument(
        "task", nargs="?", metavar="TASK", help="task id or ref (T42); default TASCADE_TASK"
    )
    lease.add_argument(
        "--lease-token", default=argparse.SUPPRESS, help="the lease (TASCADE_LEASE_TOKEN)"
    )

    parser = argparse.ArgumentParser(
        prog="tascade",
        description="The Tascade API from a shell.",
        epilog="Exit codes: 0 done, 1 the API said no, 2 usage error.",
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[Context], int], help: str, parents=(), sub=commands):
        p = sub.add_parser(name, help=help, description=help, parents=[common, *parents])
        p.set_defaults(run=run)
        return p

    command("whoami", cmd_whoami, "who this key acts as")
    command("projects", cmd_projects, "the projects this key sees")
    command("tasks", cmd_tasks, "a project's tasks").add_argument("--state")
    command("ready", cmd_ready, "what claim --next would offer you, in order").add_argument(
        "--capability", "-c", action="append", help="repeat, or comma-separate"
    )
    command("show", cmd_show, "a task with its context").add_argument("task", metavar="TASK")
    command(
        "collisions", cmd_collisions, "which tasks in flight touch the same paths"
    ).add_argument("task", metavar="TASK")
    p = command("claim", cmd_claim, "claim a task, or --next ready one")
    p.add_argument("task", nargs="?", metavar="TASK")
    p.add_argument("--next", action="store_true", help="the most urgent task you can do")
    p.add_argument("--capability", "-c", action="append", help="with --next; repeatable")
    command("start", cmd_start, "start work under your lease", [lease])
    command("heartbeat", cmd_heartbeat, "renew your lease", [lease])
    p = command("artifact", cmd_artifact, "publish the work's artifact", [lease])
    p.add_argument("--branch")
    p.add_argument("--commit", help="commit sha, 7 to 64 hex characters")
    p.add_argument("--file", action="append", help="a touched file; repeatable")
    p.add_argument("--check-status", choices=["pending", "passed", "failed", "skipped"])
    p.add_argument("--check-ref")
    p.add_argument("--summary")
    command("done", cmd_done, "mark the task implemented", [lease])
    p = command("release", cmd_release, "give the task back", [lease])
    p.add_argument("--reason", required=True)

    plan = commands.add_parser("plan", help="plan changesets", parents=[common])
    plan_commands = plan.add_subparsers(dest="plan_command", required=True, metavar="COMMAND")
    p = command(
        "import",
        cmd_plan_import,
        "propose a changeset from a plan file (.json, .yaml, .md) and preview it",
        sub=plan_commands,
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--base-version", type=int, help="default: the plan version now")
    p.add_argument("--title")
    p.add_argument("--apply", action="store_true", help="apply it when the preview is valid")
    p.add_argument("--rebase", action="store_true", help="apply even if the plan moved")
    p = command("apply", cmd_plan_apply, "apply a draft changeset", sub=plan_commands)
    p.add_argument("changeset", type=int, metavar="CHANGESET")
    p.add_argument("--rebase", action="store_true")

    p = command("events", cmd_events, "the audit trail; --follow it live")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--after", type=int, help="start after this event id")
    p.add_argument("--kind", action="append", help="repeat, or comma-separate")
    p.add_argument("--task", help="only this task's events")
    p.add_argument("--limit", type=int, help="page size without --follow (1 to 1000)")

    p = command("review", cmd_review, "review an implemented task")
    p.add_argument("task", metavar="TASK")
    p.add_argument(
        "--verdict", required=True, choices=["approved", "changes_requested", "rejected"]
    )
    p.add_argument("--rationale", required=True)
    command("review-queue", cmd_review_queue, "implemented work awaiting an approval")
    p = command("decide", cmd_decide, "decide a gate checkpoint")
    p.add_argument("checkpoint", type=int, metavar="CHECKPOINT")
    p.add_argument(
        "--verdict", required=True, choices=["approved", "approved_with_risk", "rejected"]
    )
    p.add_argument("--rationale", required=True)

    from tascade_worker.cli import register  # work, integrate, delegate

    register(command, lease)
    return parser


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    ctx = None
    try:
        ctx = Context(args, env)
        return args.run(ctx)
    except UsageError as exc:
        print(f"tascade: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TascadeError as exc:
        status = f" ({exc.status})" if exc.status is not None else ""
        print(f"error: {exc.code}{status}: {exc.message}", file=sys.stderr)
        if exc.details:
            print(f"details: {json.dumps(exc.details)}", file=sys.stderr)
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tascade events --follow | head`: the reader went away
        return EXIT_OK
    finally:
        if ctx is not None:
            ctx.client.close()


if __name__ == "__main__":
    sys.exit(main())
