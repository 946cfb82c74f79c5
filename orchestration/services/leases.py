"""The agent's side of the lifecycle: claim, start, heartbeat, release, implemented.

Every write on a held task presents the lease's fencing token; a stale or expired token is
refused with 409 and changes nothing (invariant 4). Expiry is checked on every read of a
hold (invariant 5), so none of this depends on the sweep having run.
"""

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL

from governance.actors import Actor, Role
from orchestration import scheduling
from orchestration.errors import (
    ArtifactRequired,
    DependenciesUnmet,
    InvalidTransition,
    LeaseExpired,
    LeaseStale,
    PathsHeld,
    TaskAlreadyClaimed,
    TaskNotClaimable,
    TaskReserved,
)
from orchestration.locks import lock_task
from orchestration.models import (
    CLAIMABLE_STATES,
    GATE_CLASSES,
    LEASED_STATES,
    Artifact,
    ExecutionSnapshot,
    Lease,
    LeaseStatus,
    PathOverlap,
    Project,
    ReservationStatus,
    Task,
    TaskState,
    claimable_by,
)
from orchestration.paths import PathError, normalise_list
from orchestration.selectors import project_visible_or_404, ready_tasks
from orchestration.services.events import event_record
from orchestration.services.lifecycle import (
    hold_expire_if_due,
    lease_end,
    live_lease,
    pool_state,
    reservation_end,
    transition_apply,
    unmet_incoming_edges,
    utcnow,
)
from orchestration.services.sweep import EXPIRE_ON_READ_LIMIT, holds_expire_due
from tascade.db_locks import xact_lock
from tascade.errors import InvalidInput
from tascade.transactions import retry_on_conflict

S = TaskState
logger = logging.getLogger(__name__)

# Claim-next tries this many rounds per call before it gives up on a burst of rivals.
_CLAIM_NEXT_ROUNDS = 8
# Each round tries to lock the first of this many best offers that no rival holds.
_OFFERS_PER_ROUND = 32
# Touched paths a task remembers for scheduling (its artifacts keep every file).
MAX_TOUCHED_PATHS = 1_000


def _require_live_lease(task: Task, *, actor: Actor, lease_token: int, now: datetime) -> Lease:
    """The fencing check: ``lease_token`` must be this agent's live lease on ``task``."""
    lease = live_lease(task)
    if lease is None or lease.token != lease_token or lease.agent != actor.name:
        raise LeaseStale(task_id=task.pk, presented_token=lease_token)
    if lease.expires_at <= now:
        raise LeaseExpired(task_id=task.pk, lease_token=lease_token, expired_at=lease.expires_at)
    return lease


@contextmanager
def fenced_write(
    actor: Actor, task_id: int, lease_token: int, now: datetime, *, state=None, action: str = ""
) -> Iterator[tuple[Task, Lease]]:
    """The transaction of every agent write on a held task: role, row lock, fencing check,
    and (with ``state``) the state the write needs. Yields the locked task and its lease."""
    actor.require(Role.AGENT)
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        lease = _require_live_lease(task, actor=actor, lease_token=lease_token, now=now)
        if state is not None and task.state != state:
            raise InvalidTransition(task_id=task.pk, state=task.state, action=action)
        yield task, lease


def _paths_clear(task: Task) -> None:
    """Refuse a locked task whose paths meet exclusive paths of work in flight.

    The check runs under the project's path lock, taken after the task's row lock:
    exclusive while the task has exclusive paths, shared while it has only others (a task
    without paths meets nothing and takes none). Two claims that could break exclusivity
    therefore never check at the same time, and each sees the other's committed claim
    (docs/scheduling.md). A task without exclusive paths can only be blocked by work that
    has some, so only that work is read for it.
    """
    if not scheduling.has_paths(task):
        return
    exclusive = bool(task.exclusive_paths)
    xact_lock(scheduling.paths_lock_key(task.project_id), shared=not exclusive)
    flight = scheduling.in_flight(
        task.project_id,
        near=scheduling.paths_of(task),
        exclude=[task.pk],
        exclusive_only=not exclusive,
    )
    blocked_by = flight.schedule(task).blocked_by
    if blocked_by:
        raise PathsHeld(task_id=task.pk, blocked_by=[c.as_dict() for c in blocked_by])


def _grant_lease(
    task: Task,
    project: Project,
    *,
    actor: Actor,
    now: datetime,
    offer: scheduling.Schedule | None = None,
) -> Lease:
    """Give ``actor`` a fresh lease on a locked, claimable task, with a larger token.

    ``offer`` is claim-next's ranking of the task: its collisions go into the event."""
    unmet = unmet_incoming_edges(task)
    if unmet:
        if task.unmet_prerequisites == 0:
            logger.error("readiness counter drifted on task %s: %s", task.pk, unmet)
        raise DependenciesUnmet(task_id=task.pk, unmet=unmet)
    _paths_clear(task)
    collisions = offer.collisions if offer is not None else []
    if task.state == S.RESERVED:
        reservation_end(task, status=ReservationStatus.CLAIMED, reason="claimed", now=now)
    expires_at = now + timedelta(seconds=project.lease_ttl_seconds)
    task.lease_token_seq += 1
    task.holder = actor.name
    task.hold_expires_at = expires_at
    lease = Lease.objects.create(
        project=project,
        task=task,
        agent=actor.name,
        token=task.lease_token_seq,
        expires_at=expires_at,
        heartbeat_at=now,
    )
    transition_apply(
        task,
        task.claim,
        actor=actor.name,
        kind="task.claimed",
        now=now,
        reason="",
        extra_fields=("lease_token_seq",),
        lease_token=lease.token,
        expires_at=expires_at.isoformat(),
        **({"path_collisions": [c.ref for c in collisions]} if collisions else {}),
    )
    return lease


@retry_on_conflict
def task_claim(*, actor: Actor, task_id: int, now: datetime | None = None) -> Lease:
    """Claim one named task. Of N concurrent claims exactly one wins; the rest get a 409."""
    actor.require(Role.AGENT)
    now = now or utcnow()
    try:
        return _claim_named(actor=actor, task_id=task_id, now=now)
    except (TaskAlreadyClaimed, TaskReserved) as refusal:
        _claim_refusal_record(actor, task_id, refusal)
        raise


def _claim_refusal_record(actor: Actor, task_id: int, refusal) -> None:
    """Count a claim lost to another holder (a claim conflict) for the metrics.

    Written after the refused claim's transaction rolled back, and outside the event log: the
    refusal still writes no event and changes no plan state.
    """
    from metrics.models import ClaimRefusal  # metrics builds on orchestration, not the reverse

    project_id = Task.objects.filter(pk=task_id).values_list("project_id", flat=True).first()
    if project_id is not None:
        ClaimRefusal.objects.create(
            project_id=project_id, task_id=task_id, agent=actor.name, code=refusal.code
        )


def _claim_named(*, actor: Actor, task_id: int, now: datetime) -> Lease:
    with transaction.atomic():
        task = lock_task(task_id, actor=actor)
        hold_expire_if_due(task, now=now)
        if task.state in LEASED_STATES:
            raise TaskAlreadyClaimed(task_id=task.pk, state=task.state)
        if task.state == S.RESERVED and task.holder != actor.name:
            raise TaskReserved(task_id=task.pk, expires_at=task.hold_expires_at)
        if task.state == S.BACKLOG:
            raise DependenciesUnmet(task_id=task.pk, unmet=unmet_incoming_edges(task))
        if task.state not in (*CLAIMABLE_STATES, S.RESERVED):
            raise TaskNotClaimable(task_id=task.pk, state=task.state)
        if task.task_class in GATE_CLASSES:
            raise TaskNotClaimable(
                "A gate is settled by a reviewer's gate decision, never claimed.",
                task_id=task.pk,
                task_class=task.task_class,
            )
        return _grant_lease(task, task.project, actor=actor, now=now)


def _lock_first(offers: list[scheduling.Schedule], actor: Actor) -> Task | None:
    """Lock the best of ``offers`` that is still claimable and that no rival holds, or None.

    One statement on PostgreSQL: ``WHERE id = ANY(…) ORDER BY array_position(…) LIMIT 1
    FOR NO KEY UPDATE SKIP LOCKED``. A rival's pick is passed over, never waited for; the
    claimability filter is evaluated again on the row as it is now. SQLite has no row
    locks (its IMMEDIATE transaction serialises claims): the first still claimable wins.
    """
    ids = [offer.task.id for offer in offers]
    claimable = Task.objects.filter(pk__in=ids).filter(claimable_by(actor.name))
    if connection.vendor != "postgresql":
        still = set(claimable.values_list("pk", flat=True))
        first = next((pk for pk in ids if pk in still), None)
        return None if first is None else lock_task(first)
    rank = RawSQL("array_position(%s::bigint[], orchestration_task.id)", (ids,))
    return (
        claimable.select_related("project")
        .select_for_update(skip_locked=True, no_key=True, of=("self",))
        .order_by(rank)
        .first()
    )


@retry_on_conflict
def task_claim_next(
    *,
    actor: Actor,
    project_id: int,
    capabilities: list[str] | None = None,
    now: datetime | None = None,
) -> Lease | None:
    """Claim the most urgent ready task this agent can do, or return None if there is none.

    Offers are ranked against the work in flight (``orchestration/scheduling.py``): by
    priority, then clean work before work colliding with in-flight paths; a task whose
    exclusive paths meet in-flight work is never offered. Rivals are skipped, not waited for
    (``SKIP LOCKED``), so a burst of agents drains the pool in parallel and no task is
    handed to two of them. ``capabilities=None`` means the agent takes any task; a list
    means a task's capability tags must all be in it.
    """
    actor.require(Role.AGENT)
    now = now or utcnow()
    project = project_visible_or_404(actor, project_id)
    holds_expire_due(project_id=project.pk, now=now, limit=EXPIRE_ON_READ_LIMIT)
    skipped: set[int] = set()
    for _round in range(_CLAIM_NEXT_ROUNDS):
        offers = scheduling.ranked_offers(project.pk, actor.name, capabilities, skipped)
        if not offers:
            return None
        offers = offers[:_OFFERS_PER_ROUND]
        task = None
        try:
            with transaction.atomic():
                task = _lock_first(offers, actor)
                if task is None:  # rivals took (or hold) every one of them: look further
                    skipped.update(offer.task.id for offer in offers)
                    continue
                offer = next(o for o in offers if o.task.id == task.pk)
                return _grant_lease(task, project, actor=actor, now=now, offer=offer)
        except DependenciesUnmet:
            # The counter said ready but the edges disagree (logged): never hand it out.
            skipped.add(task.pk)
        except PathsHeld:
            # Work that held its paths was claimed after this round read the pool.
            skipped.add(task.pk)
    return None


def ready_list(*, actor: Actor, project_id: int, capabilities: list[str] | None = None):
    """The tasks claim-next would offer this agent, in its order. Lapsed leases and
    reservations in the project are expired first, exactly as claim-next does."""
    project = project_visible_or_404(actor, project_id)
    holds_expire_due(project_id=project.pk, limit=EXPIRE_ON_READ_LIMIT)
    return ready_tasks(actor, project.pk, capabilities)


def _spec_of(task: Task) -> dict:
    return {
        "ref": task.ref,
        "title": task.title,
        "description": task.description,
        "work_spec": task.work_spec,
        "task_class": task.task_class,
        "capability_tags": task.capability_tags,
        "expected_paths": task.expected_paths,
        "exclusive_paths": task.exclusive_paths,
    }


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@retry_on_conflict
def task_start(
    *, actor: Actor, task_id: int, lease_token: int, now: datetime | None = None
) -> ExecutionSnapshot:
    """Begin work: capture the execution snapshot the agent will finish against."""
    now = now or utcnow()
    fenced = fenced_write(actor, task_id, lease_token, now, state=S.CLAIMED, action="start")
    with fenced as (task, lease):
        project = task.project
        spec = _spec_of(task)
        snapshot = ExecutionSnapshot.objects.create(
            project=project,
            task=task,
            lease=lease,
            plan_version=project.plan_version,
            material_revision=task.material_revision,
            spec_hash=spec_hash(spec),
            spec=spec,
        )
        transition_apply(
            task,
            task.start,
            actor=actor.name,
            kind="task.started",
            now=now,
            lease_token=lease.token,
            plan_version=project.plan_version,
            spec_hash=snapshot.spec_hash,
        )
    return snapshot


@dataclass(frozen=True)
class HeartbeatResult:
    lease: Lease
    ttl_seconds: int
    plan_version: int
    snapshot: ExecutionSnapshot | None
    plan_changed: bool


@retry_on_conflict
def lease_heartbeat(
    *, actor: Actor, task_id: int, lease_token: int, now: datetime | None = None
) -> HeartbeatResult:
    """Extend the lease by the project's TTL and tell the agent whether its plan moved."""
    now = now or utcnow()
    with fenced_write(actor, task_id, lease_token, now) as (task, lease):
        project = task.project
        lease.expires_at = now + timedelta(seconds=project.lease_ttl_seconds)
        lease.heartbeat_at = now
        lease.save(update_fields=["expires_at", "heartbeat_at"])
        task.hold_expires_at = lease.expires_at
        task.save(update_fields=["hold_expires_at"])
        snapshot = ExecutionSnapshot.objects.filter(lease=lease).first()
    return HeartbeatResult(
        lease=lease,
        ttl_seconds=project.lease_ttl_seconds,
        plan_version=project.plan_version,
        snapshot=snapshot,
        plan_changed=bool(snapshot and snapshot.material_revision != task.material_revision),
    )


@retry_on_conflict
def task_release(
    *,
    actor: Actor,
    task_id: int,
    lease_token: int,
    reason: str = "",
    now: datetime | None = None,
) -> Task:
    """Give the task back. Releasing started work counts as a failed attempt."""
    now = now or utcnow()
    with fenced_write(actor, task_id, lease_token, now) as (task, lease):
        was_started = task.state == S.IN_PROGRESS
        lease_end(
            task, status=LeaseStatus.RELEASED, reason=reason or "released", now=now, lease=lease
        )
        if was_started:
            task.attempt_count += 1
        exhausted = was_started and task.attempt_count >= task.max_attempts
        target = S.BLOCKED if exhausted else pool_state(task)
        transition_apply(
            task,
            task.return_to_pool,
            target,
            actor=actor.name,
            kind="task.released",
            now=now,
            reason=(
                f"blocked after {task.attempt_count} failed attempts (max {task.max_attempts}): "
                f"{reason}"
                if exhausted
                else reason or "released"
            ),
            extra_fields=("attempt_count",),
            lease_token=lease.token,
            attempt_count=task.attempt_count,
        )
    return task


@retry_on_conflict
def task_mark_implemented(
    *, actor: Actor, task_id: int, lease_token: int, now: datetime | None = None
) -> Task:
    """The agent's work is done: needs an artifact published under this very lease."""
    now = now or utcnow()
    with fenced_write(
        actor, task_id, lease_token, now, state=S.IN_PROGRESS, action="implemented"
    ) as (task, lease):
        if not Artifact.objects.filter(lease=lease).exists():
            raise ArtifactRequired(task_id=task.pk, lease_token=lease.token)
        lease_end(task, status=LeaseStatus.COMPLETED, reason="implemented", now=now, lease=lease)
        task.implemented_by = actor.name
        task.implementation_lease = lease
        transition_apply(
            task,
            task.mark_implemented,
            actor=actor.name,
            kind="task.implemented",
            now=now,
            reason="",
            extra_fields=("implemented_by", "implementation_lease"),
            lease_token=lease.token,
        )
    return task


@retry_on_conflict
def artifact_publish(
    *,
    actor: Actor,
    task_id: int,
    lease_token: int,
    branch: str = "",
    commit_sha: str = "",
    touched_files: list[str] | None = None,
    check_status: str = "pending",
    check_ref: str = "",
    summary: str = "",
    now: datetime | None = None,
) -> Artifact:
    """Record what the agent produced, under its live lease. Artifacts are never changed.

    Its touched files join the task's ``touched_paths`` (they count like expected paths in
    scheduling from now on) and are compared with every other task in flight: each meeting
    the plan did not predict is recorded (``path_overlaps_record``).
    """
    now = now or utcnow()
    try:
        touched_files = normalise_list(touched_files or [], literal=True, limit=10_000)
    except PathError as exc:
        raise InvalidInput(str(exc), fields={"touched_files": [str(exc)]}) from None
    with fenced_write(
        actor, task_id, lease_token, now, state=S.IN_PROGRESS, action="publish artifact"
    ) as (task, lease):
        artifact = Artifact.objects.create(
            project_id=task.project_id,
            task=task,
            lease=lease,
            lease_token=lease.token,
            agent=actor.name,
            branch=branch,
            commit_sha=commit_sha,
            touched_files=touched_files or [],
            check_status=check_status,
            check_ref=check_ref,
            summary=summary,
        )
        event_record(
            project=task.project_id,
            task=task,
            kind="artifact.published",
            actor=actor.name,
            ref=task.ref,
            artifact_id=artifact.pk,
            lease_token=lease.token,
            branch=branch,
            commit_sha=commit_sha,
            check_status=check_status,
            touched_files_count=len(artifact.touched_files),
        )
        if touched_files:
            path_overlaps_record(task, artifact, actor=actor.name)
    return artifact


def path_overlaps_record(task: Task, artifact: Artifact, *, actor: str) -> list[PathOverlap]:
    """Compare an artifact's touched files with every other task in flight (locked task).

    Runs under the locks of the touched files (``scheduling.touched_files_lock``), so two
    publishes of one file compare one after the other and the second sees the first's
    files. Per other task whose paths meet a touched file the plans of the two did not
    both name, one ``PathOverlap`` row and one ``path_overlap.detected`` event, flagging
    both tasks. A file already reported for the pair is not reported again.
    """
    scheduling.touched_files_lock(task.project_id, artifact.touched_files)
    flight = scheduling.in_flight(
        task.project_id, near=[(f, True) for f in artifact.touched_files], exclude=[task.pk]
    )
    found = scheduling.touched_overlaps(task, artifact.touched_files, flight)
    recorded = []
    for other_id, hits in sorted(found.items()):
        earlier = PathOverlap.objects.filter(
            Q(task=task, other_task_id=other_id) | Q(task_id=other_id, other_task=task)
        ).values_list("overlaps", flat=True)
        known = {hit["path"] for overlaps in earlier for hit in overlaps}
        hits = [hit for hit in hits if hit["path"] not in known]
        if not hits:
            continue
        other = flight.tasks[other_id]
        recorded.append(
            PathOverlap.objects.create(
                project_id=task.project_id,
                task=task,
                other_task_id=other_id,
                artifact=artifact,
                overlaps=hits,
            )
        )
        event_record(
            project=task.project_id,
            task=task,
            kind="path_overlap.detected",
            actor=actor,
            ref=task.ref,
            other_task_id=other_id,
            other_ref=f"T{other.number}",
            artifact_id=artifact.pk,
            paths=[hit["path"] for hit in hits[: scheduling.MAX_OVERLAPS_SHOWN]],
            path_count=len(hits),
        )
    touched = sorted({*task.touched_paths, *artifact.touched_files})
    if touched != task.touched_paths:
        task.touched_paths = touched[:MAX_TOUCHED_PATHS]
        task.save(update_fields=["touched_paths", "updated_at"])
    return recorded
