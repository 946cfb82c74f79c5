"""The worker runner: a pool that claims ready tasks and runs an agent on each, in its own
git worktree, under its lease.

One task goes: claim → start → worktree and branch from the base ref (with the
prerequisites' published commits merged in) → context files → the agent, heartbeated and
time-limited → commit what it left → validation → artifact (touched files from the real
diff) → implemented. Any failure releases the task with the reason and the log; the server
counts the failed attempt and blocks the task when its attempts run out. See docs/worker.md.
"""

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tascade_client import TascadeClient, TascadeError
from tascade_client.models import ClaimResult, Task
from tascade_worker import gitops
from tascade_worker.config import WorkConfig
from tascade_worker.procs import Outcome, run_command, tail
from tascade_worker.workspace import Layout, State, prune_logs, rescue, retire

# Outcomes of one task run.
IMPLEMENTED, DELEGATED, FAILED, STOPPED, LOST = (
    "implemented",
    "delegated",
    "failed",
    "stopped",
    "lease_lost",
)
LEASE_GONE = {"LEASE_STALE", "LEASE_EXPIRED"}


class AnySet:
    """Set when any of its events is set (what a running command watches)."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class Journal:
    """The runner's structured log (JSON lines) and its progress lines on a stream."""

    def __init__(self, path: Path, out: TextIO | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.out = out
        self._lock = threading.Lock()

    def log(self, event: str, message: str = "", **fields: Any) -> None:
        record = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "event": event, **fields}
        if message:
            record["message"] = message
        with self._lock:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record, default=str) + "\n")
            if self.out is not None and message:
                print(f"[{time.strftime('%H:%M:%S')}] {message}", file=self.out, flush=True)


@dataclass
class Summary:
    """What a run did, by task ref."""

    implemented: list[str] = field(default_factory=list)
    delegated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    rescued_branches: list[str] = field(default_factory=list)
    stop_reason: str = ""

    def line(self) -> str:
        return (
            f"implemented {len(self.implemented)}, delegated {len(self.delegated)}, "
            f"failed {len(self.failed)} (blocked {len(self.blocked)}), "
            f"stopped {len(self.stopped)}"
        )


class TaskFailed(Exception):
    def __init__(self, reason: str, log: Path | None = None) -> None:
        self.reason = reason
        self.log = log
        super().__init__(reason)


class Runner:
    """Run ``config.concurrency`` tasks at a time until ``stop`` is set (or, with
    ``until_idle``, until nothing runs and nothing fits).

    Callable in-process: ``Runner(...).run()`` returns a ``Summary``; set ``stop`` from
    another thread (or a signal handler) to end it: running agents are stopped, their tasks
    released, nothing half-done is published.
    """

    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        project: int | str,
        repo: str | Path,
        config: WorkConfig,
        stop: threading.Event | None = None,
        out: TextIO | None = sys.stderr,
        client_factory: Callable[[], TascadeClient] | None = None,
    ) -> None:
        if not config.agent:
            raise ValueError("No agent command: pass --agent or set [work] agent.")
        self.url = url
        self.api_key = api_key
        self.project_ref = project
        self.repo = gitops.toplevel(repo)
        self.config = config
        self.stop = stop or threading.Event()
        self.out = out
        self._client_factory = client_factory or (lambda: TascadeClient(url, api_key))
        self.summary = Summary()
        self._lock = threading.Lock()
        self._running: dict[int, tuple[str, float]] = {}  # task id → (ref, started)
        self._consecutive_failures = 0

    # --- the pool -------------------------------------------------------------------------
    def run(self) -> Summary:
        client = self._client_factory()
        try:
            me = client.whoami()
            self.project_id = client.resolve_project(self.project_ref)
            project = client.project(self.project_id)
            self.ttl = project.lease_ttl_seconds
            self.layout = Layout(self.repo, self.config.work_dir, me.actor)
            self.state = State(self.layout.state_file)
            self.journal = Journal(self.layout.journal, self.out)
            base = gitops.rev(self.repo, self.config.base_ref)
            if base is None:
                raise ValueError(f"The base ref {self.config.base_ref!r} names no commit.")
            gitops.ensure_excluded(self.repo)
            self.journal.log(
                "runner.started",
                f"runner {me.actor} on project {project.slug} ({self.repo}), "
                f"concurrency {self.config.concurrency}, base {self.config.base_ref}",
                actor=me.actor,
                project=self.project_id,
            )
            self.recover(client)
            self._loop(client)
        finally:
            client.close()
        self.journal.log(
            "runner.finished", f"runner finished: {self.summary.line()}", **vars(self.summary)
        )
        return self.summary

    def _loop(self, client: TascadeClient) -> None:
        threads: dict[int, threading.Thread] = {}
        last_progress = 0.0
        while not self.stop.is_set():
            for task_id in [t for t, th in threads.items() if not th.is_alive()]:
                threads.pop(task_id).join()
            if self._consecutive_failures >= self.config.max_failures > 0:
                self.summary.stop_reason = (
                    f"{self._consecutive_failures} tasks failed in a row: stopping (is the "
                    f"agent command or the validation broken?)"
                )
                self.journal.log("runner.circuit_open", self.summary.stop_reason)
                self.stop.set()
                break
            claimed = None
            if len(threads) < self.config.concurrency:
                try:
                    claimed = client.claim_next(self.project_id, self.config.capabilities)
                except TascadeError as exc:
                    self.journal.log("claim.error", f"claim-next failed: {exc}", code=exc.code)
                if claimed is not None:
                    thread = threading.Thread(
                        target=self._work, args=(claimed,), name=f"task-{claimed.task.ref}"
                    )
                    threads[claimed.task.id] = thread
                    with self._lock:
                        self._running[claimed.task.id] = (claimed.task.ref, time.monotonic())
                    thread.start()
                    continue
                if self.config.until_idle and not threads:
                    self.summary.stop_reason = "idle: nothing running and nothing ready"
                    break
            if time.monotonic() - last_progress >= 5 and threads:
                last_progress = time.monotonic()
                self.journal.log("runner.progress", self.progress())
            self.stop.wait(self.config.poll_interval if claimed is None else 0)
        for thread in threads.values():
            thread.join()

    def progress(self) -> str:
        now = time.monotonic()
        with self._lock:
            running = ", ".join(
                f"{ref} {now - started:.0f}s" for ref, started in self._running.values()
            )
            count = len(self._running)
        return f"running {count} [{running}] | {self.summary.line()}"

    # --- recovery -------------------------------------------------------------------------
    def recover(self, client: TascadeClient) -> None:
        """Settle what a previous run of this runner left: release leases it still holds
        (the agent runs they covered are gone; the tasks go back to the pool), retire their
        worktrees, and retire orphan worktrees under its directory. No commit is lost."""
        known: set[Path] = set()
        for key, entry in self.state.entries().items():
            task_id, token = int(key), int(entry["token"])
            ref = entry.get("ref", key)
            try:
                client.heartbeat(task_id, token)
                client.release(task_id, token, reason="runner restarted: the agent run was lost")
                self.journal.log(
                    "recovery.released",
                    f"{ref}: lease {token} was still live; released it (runner restarted)",
                    task=task_id,
                )
            except TascadeError as exc:
                self.journal.log(
                    "recovery.lease_gone",
                    f"{ref}: lease {token} is gone ({exc.code})",
                    task=task_id,
                )
            self.summary.recovered.append(ref)
            path = Path(entry["worktree"])
            known.add(path)
            self._retire(path, entry.get("branch"), name=path.name)
            self.state.drop(task_id)
        worktree_root = self.layout.worktrees
        for worktree in gitops.worktrees(self.repo):
            if worktree.path.parent == worktree_root and worktree.path not in known:
                self.journal.log("recovery.orphan", f"orphan worktree {worktree.path}")
                self._retire(worktree.path, worktree.branch, name=worktree.path.name)
        if worktree_root.is_dir():
            for leftover in worktree_root.iterdir():  # half-made: git does not know it
                self._retire(leftover, None, name=leftover.name)
        gitops.git(self.repo, "worktree", "prune")
        prune_logs(self.layout.logs, self.config.keep_logs)

    def _retire(self, path: Path, branch: str | None, *, name: str) -> None:
        own = branch if branch and branch.startswith(self.config.branch_prefix) else None
        rescued = retire(self.repo, path, branch, delete_branch=own is not None)
        if rescued:
            self.summary.rescued_branches.append(rescued)
            self.journal.log("worktree.rescued", f"kept unmerged work of {name} on {rescued}")

    # --- one task -------------------------------------------------------------------------
    def _work(self, claim: ClaimResult) -> None:
        task, token = claim.task, claim.lease.token
        outcome = FAILED
        client = self._client_factory()
        try:
            outcome = TaskRun(self, client, task, token).execute()
        except Exception as exc:  # a bug or an unexpected answer: never take the pool down
            self.journal.log("task.crashed", f"{task.ref}: {exc!r}", task=task.id)
        finally:
            client.close()
            with self._lock:
                ref, started = self._running.pop(task.id, (task.ref, time.monotonic()))
                elapsed = time.monotonic() - started
                getattr(self.summary, {LOST: FAILED}.get(outcome, outcome)).append(task.ref)
                if outcome in (FAILED, LOST):
                    self._consecutive_failures += 1
                elif outcome != STOPPED:
                    self._consecutive_failures = 0
            self.journal.log(
                "task.finished",
                f"{ref} {outcome} in {elapsed:.1f}s | {self.progress()}",
                task=task.id,
                ref=ref,
                outcome=outcome,
                elapsed=round(elapsed, 3),
            )


class TaskRun:
    """One claimed task, from start to implemented (or released)."""

    def __init__(self, runner: Runner, client: TascadeClient, task: Task, token: int) -> None:
        self.r = runner
        self.client = client
        self.task = task
        self.token = token
        self.name = f"{task.ref}-{token}"
        self.branch = f"{runner.config.branch_prefix}{self.name}"
        self.worktree = runner.layout.worktrees / self.name
        self.logs = runner.layout.logs / self.name
        self.lease_lost = threading.Event()
        self.done = threading.Event()
        self.abort = AnySet(runner.stop, self.lease_lost)

    def log(self, event: str, message: str = "", **fields: Any) -> None:
        self.r.journal.log(
            event, f"{self.task.ref}: {message}" if message else "", task=self.task.id, **fields
        )

    def execute(self) -> str:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.r.state.put(
            self.task.id,
            ref=self.task.ref,
            token=self.token,
            branch=self.branch,
            worktree=str(self.worktree),
            logs=str(self.logs),
            started_at=time.time(),
        )
        beat = threading.Thread(target=self._heartbeat, name=f"beat-{self.task.ref}", daemon=True)
        beat.start()
        try:
            return self._execute()
        except TaskFailed as failure:
            return self._fail(failure)
        except (gitops.GitError, OSError, TascadeError) as exc:
            return self._fail(TaskFailed(f"the runner could not go on: {exc}"))
        finally:
            self.done.set()
            beat.join()
            self.r.state.drop(self.task.id)

    def _execute(self) -> str:
        cfg = self.r.config
        self.log("task.claimed", f"claimed (lease {self.token}): {self.task.title}")
        self.client.start(self.task.id, self.token)
        self._make_worktree()
        start_sha = gitops.rev(self.worktree, "HEAD")
        context_file = self._write_context(start_sha)
        env = self._agent_env(context_file)

        agent_log = self.logs / "agent.log"
        outcome = run_command(
            cfg.agent,
            cwd=self.worktree,
            env=env,
            log=agent_log,
            limit=cfg.max_duration,
            stop=self.abort,
        )
        self.log("agent.exited", f"agent {outcome.describe()}", elapsed=outcome.elapsed)
        if not self.r.stop.is_set() and self._delegated(self.client):
            self.log("task.delegated", "the agent split the task; nothing to publish")
            self._cleanup(keep_branch=False)
            return DELEGATED
        if interrupted := self._interrupted():
            return interrupted
        if not outcome.ok:
            raise TaskFailed(f"the agent failed: {outcome.describe()}", agent_log)

        committed = gitops.commit_all(self.worktree, self._commit_message())
        head = gitops.rev(self.worktree, "HEAD")
        touched = gitops.changed_files(self.worktree, start_sha, head)
        self.log("work.committed", f"{len(touched)} files touched", committed=committed)

        check_status = self._validate(env)
        if interrupted := self._interrupted():
            return interrupted
        self._write_result(head=head, touched=touched, check_status=check_status)
        try:
            self.client.publish_artifact(
                self.task.id,
                self.token,
                branch=self.branch,
                commit_sha=head,
                touched_files=touched,
                check_status=check_status,
                check_ref=self.logs.as_uri(),
                summary=(
                    f"{self.task.ref} on {self.branch} @ {head[:12]}: {len(touched)} files; "
                    f"agent {outcome.describe()}; checks {check_status}; logs {self.logs}"
                ),
            )
            self.client.mark_implemented(self.task.id, self.token)
        except TascadeError as exc:
            if exc.code in LEASE_GONE:
                self.lease_lost.set()
                return self._interrupted() or LOST
            raise
        self.log("task.implemented", f"implemented: {self.branch} @ {head[:12]}")
        self._cleanup(keep_branch=True)
        return IMPLEMENTED

    # --- steps ----------------------------------------------------------------------------
    def _make_worktree(self) -> None:
        repo = self.r.repo
        if gitops.branch_exists(repo, self.branch):  # a leftover of an older plan's run
            rescue(repo, gitops.rev(repo, self.branch), self.branch, self.name)
        gitops.worktree_add(repo, self.worktree, self.branch, self.r.config.base_ref)
        context = self.client.context(self.task.id)
        for _edge, prerequisite in context.prerequisites:
            artifact = context.latest_artifacts.get(prerequisite.id)
            sha = artifact.commit_sha if artifact else ""
            if not sha or gitops.rev(repo, sha) is None:
                continue
            if gitops.is_ancestor(self.worktree, sha, "HEAD"):
                continue
            message = (
                f"Merge {prerequisite.ref} ({artifact.branch or sha[:12]}) for {self.task.ref}"
            )
            try:
                gitops.git(
                    self.worktree,
                    "merge",
                    "--no-edit",  # fast-forward when it can: one prerequisite, no extra commit
                    "-m",
                    message,
                    sha,
                    identity=True,
                )
            except gitops.GitError as exc:
                gitops.git(self.worktree, "merge", "--abort", check=False)
                raise TaskFailed(
                    f"the work of prerequisite {prerequisite.ref} does not merge: {exc}"
                ) from None
            self.log("worktree.merged", f"merged {prerequisite.ref} @ {sha[:12]}")
        self.log("worktree.ready", f"worktree {self.worktree} on {self.branch}")

    def _write_context(self, start_sha: str) -> Path:
        context = self.client.context(self.task.id)
        task = context.task
        work_spec = task.work_spec or {}
        document = {
            "task": task.raw,
            "snapshot": context.snapshot.raw if context.snapshot else None,
            "lease": {"token": self.token, "ttl_seconds": self.r.ttl},
            "branch": self.branch,
            "base_ref": self.r.config.base_ref,
            "start_sha": start_sha,
            "prerequisites": [
                {
                    "ref": t.ref,
                    "title": t.title,
                    "state": t.state,
                    "artifact": context.latest_artifacts[t.id].raw
                    if t.id in context.latest_artifacts
                    else None,
                }
                for _e, t in context.prerequisites
            ],
            "validate": list(self.r.config.validate),
        }
        folder = self.worktree / gitops.TASK_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "context.json"
        path.write_text(json.dumps(document, indent=2))
        lines = [
            f"# {task.ref}: {task.title}",
            "",
            f"Objective: {work_spec.get('objective') or '(none given)'}",
        ]
        for header, key in (
            ("Acceptance criteria", "acceptance_criteria"),
            ("Constraints", "constraints"),
        ):
            if work_spec.get(key):
                lines += ["", f"{header}:", *[f"- {item}" for item in work_spec[key]]]
        if task.description:
            lines += ["", task.description]
        if task.expected_paths:
            lines += ["", "Expected paths: " + ", ".join(task.expected_paths)]
        lines += [
            "",
            f"You work in a git worktree on branch {self.branch}. Leave your changes in it "
            "(commit or not): the runner commits them, runs the checks "
            f"({'; '.join(self.r.config.validate) or 'none'}) and publishes the result.",
            "Exit 0 when done, non-zero when you cannot do it.",
            "Too big? Split it: write the children to a JSON file and run "
            "`tascade delegate --file children.json` (see docs/worker.md), then exit 0.",
        ]
        (folder / "context.md").write_text("\n".join(lines) + "\n")
        (self.logs / "context.json").write_text(json.dumps(document, indent=2))
        return path

    def _agent_env(self, context_file: Path) -> dict[str, str]:
        return {
            **os.environ,
            "TASCADE_URL": self.r.url,
            "TASCADE_API_KEY": self.r.api_key,
            "TASCADE_PROJECT": str(self.r.project_id),
            "TASCADE_TASK_ID": str(self.task.id),
            "TASCADE_TASK": str(self.task.id),  # the `tascade` command's default task
            "TASCADE_TASK_REF": self.task.ref,
            "TASCADE_LEASE_TOKEN": str(self.token),
            "TASCADE_CONTEXT_FILE": str(context_file),
            "TASCADE_PROMPT_FILE": str(context_file.with_name("context.md")),
            "TASCADE_BRANCH": self.branch,
            "TASCADE_WORKTREE": str(self.worktree),
            "TASCADE_LOG_DIR": str(self.logs),
        }

    def _validate(self, env: dict[str, str]) -> str:
        commands = self.r.config.validate
        if not commands:
            return "skipped"
        log = self.logs / "validate.log"
        for command in commands:
            outcome: Outcome = run_command(
                command,
                cwd=self.worktree,
                env=env,
                log=log,
                limit=self.r.config.validate_timeout,
                stop=self.abort,
            )
            if self.abort.is_set():
                return "failed"
            if not outcome.ok:
                raise TaskFailed(f"validation `{command}` failed: {outcome.describe()}", log)
        self.log("validation.passed", f"{len(commands)} validation commands passed")
        return "passed"

    def _commit_message(self) -> str:
        return f"{self.task.ref}: {self.task.title}\n\nTascade-Task: {self.task.id}\n"

    def _write_result(self, **fields: Any) -> None:
        (self.logs / "result.json").write_text(
            json.dumps({"task": self.task.id, "ref": self.task.ref, **fields}, indent=2)
        )

    # --- endings --------------------------------------------------------------------------
    def _interrupted(self) -> str | None:
        """Stopped by the runner or the lease was lost: publish nothing, clean up."""
        if self.lease_lost.is_set():
            self.log("task.lease_lost", "the lease was lost; nothing published")
            self._cleanup(keep_branch=False)
            return LOST
        if self.r.stop.is_set():
            self._release("runner stopped before the work was done")
            self._cleanup(keep_branch=False)
            return STOPPED
        return None

    def _fail(self, failure: TaskFailed) -> str:
        if self.r.stop.is_set() or self.lease_lost.is_set():
            return self._interrupted() or STOPPED
        reason = failure.reason
        if failure.log is not None:
            reason += f"\nlogs: {self.logs}\n--- {failure.log.name} (tail) ---\n{tail(failure.log)}"
        self._write_result(failure=failure.reason)
        task = self._release(reason)
        self._cleanup(keep_branch=False)
        if task is not None and task.state == "blocked":
            self.r.summary.blocked.append(self.task.ref)
            self.log(
                "task.blocked",
                f"blocked after {task.attempt_count} failed attempts; logs kept in {self.logs}",
            )
        else:
            self.log("task.failed", f"released: {failure.reason}", logs=str(self.logs))
        return FAILED

    def _release(self, reason: str) -> Task | None:
        try:
            return self.client.release(self.task.id, self.token, reason=reason[:19_000])
        except TascadeError as exc:
            self.log("task.release_failed", f"release refused: {exc}", code=exc.code)
            return None

    def _cleanup(self, *, keep_branch: bool) -> None:
        try:
            rescued = retire(self.r.repo, self.worktree, self.branch, delete_branch=not keep_branch)
        except gitops.GitError as exc:
            self.log("worktree.cleanup_failed", f"cleanup failed: {exc}")
            return
        if rescued:
            self.r.summary.rescued_branches.append(rescued)
            self.log("worktree.rescued", f"kept its unmerged work on {rescued}")

    # --- the lease ------------------------------------------------------------------------
    def _delegated(self, client: TascadeClient) -> bool:
        try:
            return client.task(self.task.id).state == "delegated"
        except TascadeError:
            return False

    def _heartbeat(self) -> None:
        interval = self.r.config.heartbeat_interval or max(1.0, self.r.ttl / 3)
        told = False
        client = self.r._client_factory()
        try:
            while not self.done.wait(interval):
                try:
                    beat = client.heartbeat(self.task.id, self.token)
                except TascadeError as exc:
                    if exc.code in LEASE_GONE:
                        if self._delegated(client):
                            return  # the agent split the task: the lease ended with it
                        self.log("lease.lost", f"heartbeat refused ({exc.code}): stopping")
                        self.lease_lost.set()
                        return
                    if exc.code == "INVALID_TRANSITION" or exc.status == 404:
                        return  # the task left our hands (delegated, say)
                    self.log("lease.heartbeat_error", f"heartbeat failed: {exc}")
                    continue
                if beat.plan_changed and not told:
                    told = True
                    self.log(
                        "plan.changed",
                        f"the plan moved since start (snapshot {beat.snapshot_plan_version}, "
                        f"plan {beat.plan_version}); finishing against the snapshot",
                    )
        finally:
            client.close()
