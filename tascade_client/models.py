"""Typed results: small frozen dataclasses built from the API's JSON.

Every object keeps the JSON it was built from in ``raw`` (for fields this client version
does not know yet, and for ``--json`` output). Timestamps stay ISO 8601 strings.
"""

from dataclasses import dataclass, field, fields
from typing import Any, Self


@dataclass(frozen=True, kw_only=True)
class ApiObject:
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        """Take the fields this class declares (missing ones are None), keep the rest in raw."""
        names = [f.name for f in fields(cls) if f.name != "raw"]
        return cls(**{name: data.get(name) for name in names}, raw=dict(data))


@dataclass(frozen=True, kw_only=True)
class WhoAmI(ApiObject):
    actor: str
    roles: list[str]
    project: int | None


@dataclass(frozen=True, kw_only=True)
class Project(ApiObject):
    id: int
    name: str
    slug: str
    description: str
    lease_ttl_seconds: int
    reservation_ttl_seconds: int
    plan_version: int
    created_by: str
    created_at: str


@dataclass(frozen=True, kw_only=True)
class Task(ApiObject):
    id: int
    ref: str
    project: int
    milestone: int | None
    parent: int | None
    title: str
    description: str
    work_spec: dict[str, Any]
    task_class: str
    priority: int
    capability_tags: list[str]
    expected_paths: list[str]
    max_attempts: int
    attempt_count: int
    state: str
    state_changed_at: str
    state_reason: str
    unmet_prerequisites: int
    holder: str
    hold_expires_at: str | None
    material_revision: int
    implemented_by: str
    implementation_count: int
    created_by: str
    created_at: str
    updated_at: str


@dataclass(frozen=True, kw_only=True)
class Lease(ApiObject):
    id: int
    project: int
    task: int
    agent: str
    token: int
    status: str
    expires_at: str
    created_at: str
    heartbeat_at: str | None
    ended_at: str | None
    end_reason: str


@dataclass(frozen=True, kw_only=True)
class ClaimResult(ApiObject):
    task: Task
    lease: Lease

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        return cls(task=Task.from_api(data["task"]), lease=Lease.from_api(data["lease"]), raw=data)


@dataclass(frozen=True, kw_only=True)
class Heartbeat(ApiObject):
    lease: Lease
    ttl_seconds: int
    plan_version: int
    snapshot_plan_version: int | None
    plan_changed: bool

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        return cls(
            lease=Lease.from_api(data["lease"]),
            ttl_seconds=data["ttl_seconds"],
            plan_version=data["plan_version"],
            snapshot_plan_version=data.get("snapshot_plan_version"),
            plan_changed=data["plan_changed"],
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class Snapshot(ApiObject):
    id: int
    project: int
    task: int
    lease: int | None
    plan_version: int
    material_revision: int
    spec_hash: str
    spec: dict[str, Any]
    created_at: str


@dataclass(frozen=True, kw_only=True)
class Artifact(ApiObject):
    id: int
    project: int
    task: int
    lease: int | None
    lease_token: int
    agent: str
    branch: str
    commit_sha: str
    touched_files: list[str]
    check_status: str
    check_ref: str
    summary: str
    created_at: str


@dataclass(frozen=True, kw_only=True)
class Dependency(ApiObject):
    id: int
    project: int
    prerequisite: int
    dependent: int
    unlock_on: str
    created_by: str
    created_at: str


@dataclass(frozen=True, kw_only=True)
class Event(ApiObject):
    id: int
    project: int
    task: int | None
    kind: str
    actor: str
    payload: dict[str, Any]
    created_at: str


@dataclass(frozen=True, kw_only=True)
class EventPage(ApiObject):
    results: list[Event]
    next_after: int | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        return cls(
            results=[Event.from_api(e) for e in data["results"]],
            next_after=data.get("next_after"),
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class Review(ApiObject):
    id: int
    project: int
    task: int
    implementation: int
    implemented_by: str
    reviewer: str
    verdict: str
    rationale: str
    created_at: str


@dataclass(frozen=True, kw_only=True)
class GateDecision(ApiObject):
    id: int
    checkpoint: int
    reviewer: str
    verdict: str
    rationale: str
    evidence: dict[str, Any]
    created_at: str


@dataclass(frozen=True, kw_only=True)
class TaskContext(ApiObject):
    """A task with what an agent needs to work on it. ``prerequisites`` and ``dependents``
    are ``(edge, task)`` pairs; ``latest_artifacts`` maps a prerequisite's id to its
    latest artifact, if any."""

    task: Task
    lease: Lease | None
    reservation: dict[str, Any] | None
    snapshot: Snapshot | None
    plan_changed: bool
    prerequisites: list[tuple[Dependency, Task]]
    latest_artifacts: dict[int, Artifact]
    dependents: list[tuple[Dependency, Task]]
    artifacts: list[Artifact]
    reviews: list[Review]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        def pairs(items):
            return [(Dependency.from_api(i["dependency"]), Task.from_api(i["task"])) for i in items]

        return cls(
            task=Task.from_api(data["task"]),
            lease=Lease.from_api(data["lease"]) if data.get("lease") else None,
            reservation=data.get("reservation"),
            snapshot=Snapshot.from_api(data["snapshot"]) if data.get("snapshot") else None,
            plan_changed=data["plan_changed"],
            prerequisites=pairs(data["prerequisites"]),
            latest_artifacts={
                i["task"]["id"]: Artifact.from_api(i["latest_artifact"])
                for i in data["prerequisites"]
                if i.get("latest_artifact")
            },
            dependents=pairs(data["dependents"]),
            artifacts=[Artifact.from_api(a) for a in data["artifacts"]],
            reviews=[Review.from_api(r) for r in data["reviews"]],
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class Changeset(ApiObject):
    id: int
    project: int
    title: str
    base_version: int
    operations: list[dict[str, Any]]
    status: str
    created_by: str
    created_at: str
    applied_by: str
    applied_at: str | None
    applied_version: int | None
    impact: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ChangesetPreview(ApiObject):
    """``valid`` with the ``impact`` applying would have, or the first refusal (``error``,
    in the error shape's inner form: code, message, details)."""

    valid: bool
    impact: dict[str, Any] | None
    error: dict[str, Any] | None


# --- the worker runner and the integrator (tascade_worker) -----------------------------------
@dataclass(frozen=True, kw_only=True)
class Delegation(ApiObject):
    """The answer to a delegation: the parent, now ``delegated``, and its new children."""

    parent: Task
    children: list[Task]

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Self:
        return cls(
            parent=Task.from_api(data["parent"]),
            children=[Task.from_api(c) for c in data["children"]],
            raw=data,
        )


@dataclass(frozen=True, kw_only=True)
class IntegrationAttempt(ApiObject):
    id: int
    project: int
    task: int
    artifact: int | None
    state: str
    base_sha: str
    head_sha: str
    diagnostics: str
    enqueued_by: str
    taken_by: str
    created_at: str
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True, kw_only=True)
class Collisions(ApiObject):
    """Which tasks in flight touch a task's paths, and which hold them exclusively."""

    task: dict[str, Any]
    paths: list[str]
    score: int
    offered: bool
    collisions: list[dict[str, Any]]
    blocked_by: list[dict[str, Any]]
