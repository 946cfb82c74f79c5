"""The integrator: drains a project's integration queue into the integration branch, in order.

For each attempt it takes: merge the artifact's commit into the integration branch in the
integrator's own worktree, run the integration validation, and record ``succeeded``,
``conflict`` or ``failed_checks`` with the merge's SHAs and the output. A conflict or a red
validation resets the branch to exactly the commit it was at. It holds an operator key and,
unless told not to, first enqueues the implemented work the server will take (approved by
someone other than its implementer): approval does not enqueue by itself. See docs/worker.md.
"""

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tascade_client import TascadeClient, TascadeError
from tascade_client.models import IntegrationAttempt
from tascade_worker import gitops
from tascade_worker.config import IntegrateConfig
from tascade_worker.procs import run_command, tail
from tascade_worker.runner import Journal
from tascade_worker.workspace import Layout, safe_name

# Refusals that only mean "not (yet) integrable"; the server decides, the integrator asks.
NOT_INTEGRABLE = {"APPROVAL_REQUIRED", "INTEGRATION_ALREADY_QUEUED", "INVALID_TRANSITION"}


@dataclass
class IntegrationSummary:
    enqueued: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    conflict: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"succeeded {len(self.succeeded)}, conflict {len(self.conflict)}, "
            f"failed checks {len(self.failed_checks)}, withdrawn {len(self.withdrawn)}"
        )


class Integrator:
    def __init__(
        self,
        *,
        url: str,
        api_key: str,
        project: int | str,
        repo: str | Path,
        config: IntegrateConfig,
        stop: threading.Event | None = None,
        out: TextIO | None = sys.stderr,
    ) -> None:
        self.client = TascadeClient(url, api_key)
        self.project_ref = project
        self.repo = gitops.toplevel(repo)
        self.config = config
        self.stop = stop or threading.Event()
        self.out = out
        self.summary = IntegrationSummary()

    def run(self) -> IntegrationSummary:
        try:
            me = self.client.whoami()
            self.actor = me.actor
            self.project_id = self.client.resolve_project(self.project_ref)
            self.layout = Layout(self.repo, self.config.work_dir, "integrator")
            self.journal = Journal(self.layout.integration_logs() / "integrator.jsonl", self.out)
            self.worktree = self._prepare_worktree()
            self.journal.log(
                "integrator.started",
                f"integrator {me.actor}: queue of project {self.project_id} into "
                f"{self.config.branch} ({self.worktree})",
            )
            # Attempts this actor took and never finished (a crash): do them again.
            for attempt in self.client.integration_attempts(self.project_id, state="running"):
                if attempt.taken_by == self.actor:
                    self.journal.log("integrator.resume", f"resuming attempt {attempt.id}")
                    self.process(attempt)
            while not self.stop.is_set():
                if self.config.enqueue:
                    self.enqueue_approved()
                attempt = self.client.take_next_integration(self.project_id)
                if attempt is not None:
                    self.process(attempt)
                    continue
                if self.config.until_idle:
                    break
                self.stop.wait(self.config.poll_interval)
        finally:
            self.client.close()
        self.journal.log("integrator.finished", f"integrator finished: {self.summary.line()}")
        return self.summary

    def _prepare_worktree(self) -> Path:
        branch = self.config.branch
        path = self.layout.integration_worktree(branch)
        if not gitops.branch_exists(self.repo, branch):
            start = gitops.rev(self.repo, self.config.base_ref)
            if start is None:
                raise ValueError(f"The base ref {self.config.base_ref!r} names no commit.")
            gitops.git(self.repo, "branch", branch, start)
        if not any(w.path == path for w in gitops.worktrees(self.repo)):
            gitops.git(self.repo, "worktree", "prune")
            path.parent.mkdir(parents=True, exist_ok=True)
            gitops.git(self.repo, "worktree", "add", "--quiet", str(path), branch)
        # Whatever an interrupted run left (a half merge, build output) goes.
        gitops.git(path, "merge", "--abort", check=False)
        gitops.git(path, "reset", "--quiet", "--hard", "HEAD")
        gitops.git(path, "clean", "-fdxq")
        return path

    def enqueue_approved(self) -> None:
        """Ask the server to queue every implemented task; it refuses what is not approved
        (or delegated, or queued already), and that is the only check made."""
        for task in self.client.tasks(self.project_id, state="implemented"):
            if task.raw.get("delegated_at"):
                continue  # integrated through its children
            try:
                self.client.enqueue_integration(task.id)
            except TascadeError as exc:
                if exc.code in NOT_INTEGRABLE:
                    continue
                raise
            self.summary.enqueued.append(task.ref)
            self.journal.log("integration.enqueued", f"{task.ref}: queued for integration")

    # --- one attempt ----------------------------------------------------------------------
    def process(self, attempt: IntegrationAttempt) -> str:
        task = self.client.task(attempt.task)
        artifact = self.client.artifact(attempt.artifact) if attempt.artifact else None
        logs = self.layout.integration_logs() / f"attempt-{attempt.id}-{safe_name(task.ref)}"
        logs.mkdir(parents=True, exist_ok=True)
        wt = self.worktree
        base = gitops.rev(wt, "HEAD")
        sha = artifact.commit_sha if artifact else ""
        label = f"{task.ref} ({(artifact.branch if artifact else '') or '?'} @ {sha[:12]})"
        started = time.monotonic()

        if not sha or gitops.rev(self.repo, sha) is None:
            return self._finish(
                attempt,
                task.ref,
                "failed_checks",
                base,
                base,
                f"The artifact's commit {sha or '(none)'} is not in {self.repo}.",
            )
        if gitops.is_ancestor(wt, sha, base):
            # Merged already: a crash between merge and record, or work with nothing new.
            parents = gitops.git(wt, "rev-list", "--parents", "-n", "1", base).split()
            if len(parents) == 3 and parents[2] == sha:
                base = parents[1]
        else:
            merge_log = logs / "merge.log"
            try:
                out = gitops.git(
                    wt,
                    "merge",
                    "--no-ff",
                    "--no-edit",
                    "-m",
                    f"Integrate {task.ref}: {task.title}\n\nTascade-Attempt: {attempt.id}",
                    sha,
                    identity=True,
                )
                merge_log.write_text(out + "\n")
            except gitops.GitError as exc:
                conflicted = gitops.git(
                    wt, "diff", "--name-only", "--diff-filter=U", check=False
                ).split()
                merge_log.write_text(exc.output)
                self._reset(base)
                files = ", ".join(conflicted) or "(none named)"
                return self._finish(
                    attempt,
                    task.ref,
                    "conflict",
                    base,
                    sha,
                    f"Merging {label} into {self.config.branch} @ {base[:12]} conflicts in: "
                    f"{files}\nlog: {merge_log}\n{exc.output.strip()[-4000:]}",
                )
        head = gitops.rev(wt, "HEAD")
        validate_log = logs / "validate.log"
        for command in self.config.validate:
            outcome = run_command(
                command,
                cwd=wt,
                env=_env(),
                log=validate_log,
                limit=self.config.validate_timeout,
                stop=self.stop,
            )
            if outcome.stopped:
                self._reset(base)  # the attempt stays running; the next run redoes it
                self.journal.log("integration.interrupted", f"{task.ref}: stopped; branch reset")
                return "interrupted"
            if not outcome.ok:
                self._reset(base)
                return self._finish(
                    attempt,
                    task.ref,
                    "failed_checks",
                    base,
                    head,
                    f"Integration validation `{command}` failed ({outcome.describe()}) on "
                    f"{label} merged into {self.config.branch}; the branch is back at "
                    f"{base[:12]}.\nlog: {validate_log}\n{tail(validate_log, 4000)}",
                )
        gitops.git(wt, "clean", "-fdxq")  # validation output never rides along
        elapsed = time.monotonic() - started
        return self._finish(
            attempt,
            task.ref,
            "succeeded",
            base,
            head,
            f"Merged {label} into {self.config.branch} as {head[:12]}; "
            f"{len(self.config.validate)} checks passed in {elapsed:.1f}s. logs: {logs}",
        )

    def _reset(self, sha: str) -> None:
        gitops.git(self.worktree, "merge", "--abort", check=False)
        gitops.git(self.worktree, "reset", "--quiet", "--hard", sha)
        gitops.git(self.worktree, "clean", "-fdxq")

    def _finish(
        self,
        attempt: IntegrationAttempt,
        ref: str,
        result: str,
        base: str,
        head: str,
        diagnostics: str,
    ) -> str:
        try:
            self.client.record_integration_result(
                attempt.id, result, base_sha=base, head_sha=head, diagnostics=diagnostics[:19_000]
            )
        except TascadeError as exc:
            # Withdrawn while we merged (the task left implemented): undo the merge.
            if result == "succeeded":
                self._reset(base)
            self.summary.withdrawn.append(ref)
            self.journal.log(
                "integration.withdrawn", f"{ref}: result refused ({exc.code}); branch reset"
            )
            return "withdrawn"
        getattr(self.summary, result).append(ref)
        first_line = diagnostics.splitlines()[0] if diagnostics else ""
        self.journal.log(
            f"integration.{result}",
            f"{ref}: {result}. {first_line}",
            attempt=attempt.id,
            base_sha=base,
            head_sha=head,
        )
        return result


def _env() -> dict[str, str]:
    return dict(os.environ)
