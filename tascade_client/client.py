"""``TascadeClient``: the Tascade JSON API over HTTP, with typed results.

It speaks HTTP only (``httpx``) and imports nothing of the server, so an agent's machine
needs this package and ``httpx``, nothing else.
"""

import json
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from tascade_client import sse
from tascade_client.errors import TascadeConnectionError, TascadeError, error_from_response
from tascade_client.models import (
    Artifact,
    Changeset,
    ChangesetPreview,
    ClaimResult,
    Collisions,
    Delegation,
    Dependency,
    Event,
    EventPage,
    GateDecision,
    Heartbeat,
    IntegrationAttempt,
    Project,
    Review,
    Snapshot,
    Task,
    TaskContext,
    WhoAmI,
)

__all__ = ["TascadeClient"]

_REF = re.compile(r"[Tt]([0-9]+)")
# How many event ids ``follow_events`` remembers to drop a repeated one.
_SEEN_EVENTS = 10_000


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("tascade")
    except Exception:  # not installed as a distribution: the version is only informative
        return "0"


class TascadeClient:
    """A client for one Tascade server and one API key.

    ``url`` is the server's address (``http://127.0.0.1:8000``; a trailing ``/api/v1`` is
    accepted too). Every method raises ``TascadeError`` for an error answer (with the
    server's ``status``, ``code``, ``message`` and ``details``) and
    ``TascadeConnectionError`` (a ``TascadeError`` with ``status`` None) when the server
    cannot be reached. Lists are iterators that follow the server's pagination.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        self.url = base
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=base + "/",
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": f"tascade-client/{_version()}",
            },
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "TascadeClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------
    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise TascadeConnectionError(
                "TIMEOUT", f"{self.url} did not answer in time ({exc.__class__.__name__})."
            ) from exc
        except httpx.HTTPError as exc:
            raise TascadeConnectionError(
                "CONNECTION_FAILED", f"Cannot reach {self.url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._send("GET", path, params=_clean(params)).json()

    def _post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._send("POST", path, json=_clean(body or {}))
        return None if response.status_code == 204 else response.json()

    def paginate(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict]:
        """Every item of a cursor-paginated list, following ``next`` page by page."""
        page = self._get(path, params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self._get(page["next"])

    # --- identity and projects ------------------------------------------------------------
    def whoami(self) -> WhoAmI:
        return WhoAmI.from_api(self._get("me/"))

    def projects(self, *, slug: str | None = None) -> Iterator[Project]:
        return (Project.from_api(p) for p in self.paginate("projects/", {"slug": slug}))

    def project(self, project: int | str) -> Project:
        """A project by id, or by slug."""
        if isinstance(project, int) or str(project).isdigit():
            return Project.from_api(self._get(f"projects/{int(project)}/"))
        for found in self.projects(slug=str(project)):
            return found
        raise TascadeError(
            404, "NOT_FOUND", f"No project with slug {project!r}.", {"slug": project}
        )

    def resolve_project(self, project: int | str) -> int:
        """A project's id from its id or slug (an id is taken as is, without a request)."""
        if isinstance(project, int) or str(project).isdigit():
            return int(project)
        return self.project(project).id

    # --- tasks ------------------------------------------------------------------------
    def tasks(self, project_id: int, **filters: Any) -> Iterator[Task]:
        """A project's tasks by id. Filters: state, milestone, task_class, parent, holder,
        number, page_size."""
        return (Task.from_api(t) for t in self.paginate(f"projects/{project_id}/tasks/", filters))

    def task(self, task_id: int) -> Task:
        return Task.from_api(self._get(f"tasks/{task_id}/"))

    def resolve_task(self, task: int | str, project_id: int | None = None) -> int:
        """A task's id from its id or its ref (``T42``; a ref needs the project)."""
        if isinstance(task, int) or str(task).isdigit():
            return int(task)
        match = _REF.fullmatch(str(task).strip())
        if match is None:
            raise ValueError(f"{task!r} is neither a task id nor a ref like T42.")
        if project_id is None:
            raise ValueError(f"A task ref ({task}) needs a project.")
        for found in self.tasks(project_id, number=int(match.group(1))):
            return found.id
        raise TascadeError(
            404, "NOT_FOUND", f"No task {task} in project {project_id}.", {"ref": str(task)}
        )

    def create_task(self, project_id: int, title: str, **fields: Any) -> Task:
        """Create a task (planner). Fields: description, work_spec, task_class, priority,
        capability_tags, expected_paths, max_attempts, milestone, parent."""
        return Task.from_api(
            self._post(f"projects/{project_id}/tasks/", {"title": title, **fields})
        )

    def add_dependency(
        self, project_id: int, prerequisite: int, dependent: int, *, unlock_on: str | None = None
    ) -> Dependency:
        body = {"prerequisite": prerequisite, "dependent": dependent, "unlock_on": unlock_on}
        return Dependency.from_api(self._post(f"projects/{project_id}/dependencies/", body))

    def ready(self, project_id: int, capabilities: Iterable[str] | None = None) -> Iterator[Task]:
        """What claim-next would offer you, in its order."""
        params = {"capabilities": ",".join(capabilities) if capabilities is not None else None}
        return (Task.from_api(t) for t in self.paginate(f"projects/{project_id}/ready/", params))

    def context(self, task_id: int) -> TaskContext:
        return TaskContext.from_api(self._get(f"tasks/{task_id}/context/"))

    def collisions(self, task_id: int) -> Collisions:
        """The tasks in flight touching this task's paths: ask before you start."""
        return Collisions.from_api(self._get(f"tasks/{task_id}/collisions/"))

    def snapshot(self, task_id: int) -> Snapshot:
        return Snapshot.from_api(self._get(f"tasks/{task_id}/snapshot/"))

    # --- the agent's lifecycle ------------------------------------------------------------
    def claim(self, task_id: int) -> ClaimResult:
        return ClaimResult.from_api(self._post(f"tasks/{task_id}/claim/"))

    def claim_next(
        self, project_id: int, capabilities: Iterable[str] | None = None
    ) -> ClaimResult | None:
        """Claim the most urgent ready task you can do; None when nothing fits."""
        body = {"capabilities": list(capabilities) if capabilities is not None else None}
        data = self._post(f"projects/{project_id}/claim-next/", body)
        return None if data is None else ClaimResult.from_api(data)

    def start(self, task_id: int, lease_token: int) -> Snapshot:
        return Snapshot.from_api(
            self._post(f"tasks/{task_id}/start/", {"lease_token": lease_token})
        )

    def heartbeat(self, task_id: int, lease_token: int) -> Heartbeat:
        data = self._post(f"tasks/{task_id}/heartbeat/", {"lease_token": lease_token})
        return Heartbeat.from_api(data)

    def publish_artifact(
        self,
        task_id: int,
        lease_token: int,
        *,
        branch: str | None = None,
        commit_sha: str | None = None,
        touched_files: list[str] | None = None,
        check_status: str | None = None,
        check_ref: str | None = None,
        summary: str | None = None,
    ) -> Artifact:
        body = {
            "lease_token": lease_token,
            "branch": branch,
            "commit_sha": commit_sha,
            "touched_files": touched_files,
            "check_status": check_status,
            "check_ref": check_ref,
            "summary": summary,
        }
        return Artifact.from_api(self._post(f"tasks/{task_id}/artifacts/", body))

    def mark_implemented(self, task_id: int, lease_token: int) -> Task:
        data = self._post(f"tasks/{task_id}/implemented/", {"lease_token": lease_token})
        return Task.from_api(data)

    def release(self, task_id: int, lease_token: int, reason: str = "") -> Task:
        body = {"lease_token": lease_token, "reason": reason}
        return Task.from_api(self._post(f"tasks/{task_id}/release/", body))

    # --- events -----------------------------------------------------------------------
    def events(
        self,
        project_id: int,
        *,
        after: int | None = None,
        task: int | None = None,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> EventPage:
        """One page of the audit trail, in commit order; pass ``next_after`` as ``after``."""
        params = {"after": after, "task": task, "kind": _join(kinds), "limit": limit}
        return EventPage.from_api(self._get(f"projects/{project_id}/events/", params))

    def follow_events(
        self,
        project_id: int,
        *,
        after: int | None = None,
        task: int | None = None,
        kinds: Iterable[str] | None = None,
        idle_timeout: float = 60.0,
        max_failures: int | None = 5,
    ) -> Iterator[Event]:
        """The audit trail live, from the server-sent-events stream, forever.

        When the stream ends (the server bounds each response) or the connection drops,
        it reconnects with ``Last-Event-ID`` set to the last event it yielded, so nothing
        is lost, and it never yields one event twice. ``idle_timeout`` is how long a silent
        connection is trusted (the server sends keep-alives well within it).
        ``max_failures`` consecutive failed connections (or 5xx answers) raise
        ``TascadeConnectionError`` (None: retry forever). A 4xx answer (401, 403, 404, …)
        raises its ``TascadeError`` at once.
        """
        last_id = after
        seen: set[int] = set()
        order: deque[int] = deque()
        delay = 1.0
        failures = 0
        params = {"task": task, "kind": _join(kinds)}
        timeout = httpx.Timeout(self.timeout, read=idle_timeout)
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = str(last_id)
            try:
                with self._http.stream(
                    "GET",
                    f"projects/{project_id}/events/stream/",
                    params=_clean(params),
                    headers=headers,
                    timeout=timeout,
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        error = _error(response)
                        if response.status_code < 500:
                            raise error  # 401, 403, 404, …: retrying cannot help
                        raise _StreamFailed(str(error))
                    failures = 0
                    for item in sse.parse(response.iter_lines()):
                        if isinstance(item, sse.RetryHint):
                            delay = item.milliseconds / 1000
                            continue
                        event = Event.from_api(json.loads(item.data))
                        last_id = event.id
                        if event.id in seen:
                            continue
                        seen.add(event.id)
                        order.append(event.id)
                        if len(order) > _SEEN_EVENTS:
                            seen.discard(order.popleft())
                        yield event
            except (httpx.HTTPError, _StreamFailed) as exc:  # dropped, refused, silent, 5xx
                failures += 1
                if max_failures is not None and failures >= max_failures:
                    raise TascadeConnectionError(
                        "CONNECTION_FAILED",
                        f"The event stream of {self.url} failed {failures} times: {exc}",
                    ) from exc
            time.sleep(delay)

    # --- plan changesets ----------------------------------------------------------------
    def create_changeset(
        self, project_id: int, base_version: int, operations: list[dict], title: str = ""
    ) -> Changeset:
        body = {"base_version": base_version, "operations": operations, "title": title}
        return Changeset.from_api(self._post(f"projects/{project_id}/changesets/", body))

    def import_plan(
        self,
        project_id: int,
        filename: str,
        content: str,
        base_version: int,
        title: str | None = None,
    ) -> Changeset:
        """A draft changeset from a plan document (.json, .yaml/.yml, .md), parsed by the
        server exactly as the planner's upload form parses it."""
        body = {
            "filename": filename,
            "content": content,
            "base_version": base_version,
            "title": title,
        }
        return Changeset.from_api(self._post(f"projects/{project_id}/changesets/import/", body))

    def changeset(self, changeset_id: int) -> Changeset:
        return Changeset.from_api(self._get(f"changesets/{changeset_id}/"))

    def preview_changeset(self, changeset_id: int, *, rebase: bool = False) -> ChangesetPreview:
        data = self._post(f"changesets/{changeset_id}/preview/", {"rebase": rebase})
        return ChangesetPreview.from_api(data)

    def apply_changeset(self, changeset_id: int, *, rebase: bool = False) -> Changeset:
        data = self._post(f"changesets/{changeset_id}/apply/", {"rebase": rebase})
        return Changeset.from_api(data)

    # --- reviews and gates ----------------------------------------------------------------
    def record_review(self, task_id: int, verdict: str, rationale: str) -> Review:
        """``approved``, ``changes_requested`` or ``rejected`` (reviewer; never your own)."""
        body = {"verdict": verdict, "rationale": rationale}
        return Review.from_api(self._post(f"tasks/{task_id}/reviews/", body))

    def decide_checkpoint(
        self,
        checkpoint_id: int,
        verdict: str,
        rationale: str,
        evidence: dict[str, Any] | None = None,
    ) -> GateDecision:
        """``approved``, ``approved_with_risk`` or ``rejected``, for the checkpoint's batch."""
        body = {"verdict": verdict, "rationale": rationale, "evidence": evidence}
        return GateDecision.from_api(self._post(f"checkpoints/{checkpoint_id}/decision/", body))

    def review_queue(self, project_id: int) -> list[Task]:
        """Implemented tasks awaiting an approval: riskiest first, then longest waiting."""
        return [Task.from_api(t) for t in self._get(f"projects/{project_id}/review-queue/")]

    # --- the worker runner and the integrator (tascade_worker) -----------------------------
    def create_project(self, name: str, **fields: Any) -> Project:
        """Create a project (planner). Fields: slug, description, lease_ttl_seconds,
        reservation_ttl_seconds."""
        return Project.from_api(self._post("projects/", {"name": name, **fields}))

    def delegate(
        self, task_id: int, lease_token: int, children: list[dict[str, Any]], reason: str = ""
    ) -> Delegation:
        """Split the task you hold into children (``{"key", "title", "depends_on": [keys],
        …task fields}``); the parent becomes ``delegated`` and your lease on it ends."""
        body = {"lease_token": lease_token, "children": children, "reason": reason}
        return Delegation.from_api(self._post(f"tasks/{task_id}/delegate/", body))

    def artifact(self, artifact_id: int) -> Artifact:
        return Artifact.from_api(self._get(f"artifacts/{artifact_id}/"))

    def task_artifacts(self, task_id: int) -> list[Artifact]:
        return [Artifact.from_api(a) for a in self._get(f"tasks/{task_id}/artifacts/")]

    def integration_attempts(self, project_id: int, **filters: Any) -> Iterator[IntegrationAttempt]:
        """A project's integration attempts by id. Filters: state, task."""
        path = f"projects/{project_id}/integration-attempts/"
        return (IntegrationAttempt.from_api(a) for a in self.paginate(path, filters))

    def enqueue_integration(self, task_id: int) -> IntegrationAttempt:
        """Queue approved, implemented work for merging (operator)."""
        return IntegrationAttempt.from_api(self._post(f"tasks/{task_id}/integration/"))

    def take_next_integration(self, project_id: int) -> IntegrationAttempt | None:
        """Start the oldest queued attempt; None when nothing is queued or one is running."""
        data = self._post(f"projects/{project_id}/integration-attempts/take-next/")
        return None if data is None else IntegrationAttempt.from_api(data)

    def record_integration_result(
        self,
        attempt_id: int,
        result: str,
        *,
        base_sha: str | None = None,
        head_sha: str | None = None,
        diagnostics: str | None = None,
    ) -> IntegrationAttempt:
        """``succeeded``, ``conflict`` or ``failed_checks`` for an attempt you took."""
        body = {
            "result": result,
            "base_sha": base_sha,
            "head_sha": head_sha,
            "diagnostics": diagnostics,
        }
        data = self._post(f"integration-attempts/{attempt_id}/result/", body)
        return IntegrationAttempt.from_api(data)


class _StreamFailed(Exception):
    """A server error (5xx) opening the stream: worth another attempt, like a dropped one."""


def _clean(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """Leave out what the caller did not give, so the server's defaults apply."""
    if values is None:
        return None
    return {k: v for k, v in values.items() if v is not None}


def _join(values: Iterable[str] | None) -> str | None:
    return ",".join(values) if values is not None else None


def _error(response: httpx.Response) -> TascadeError:
    try:
        body = response.json()
    except ValueError:
        body = None
    return error_from_response(response.status_code, body, response.reason_phrase)
