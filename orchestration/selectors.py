"""Read-side queries. Every one is scoped to what the actor may see: a project-scoped key
gets 404 (never 403) for anything outside its project, so nothing leaks by status code."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Max,
    Q,
    QuerySet,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from governance.actors import Actor, Role
from governance.models import Review
from orchestration.models import (
    POOL_ORDER,
    POOL_STATES,
    Artifact,
    Dependency,
    Event,
    ExecutionSnapshot,
    IntegrationAttempt,
    IntegrationState,
    Lease,
    LeaseStatus,
    Milestone,
    PathOverlap,
    Project,
    Reservation,
    ReservationStatus,
    Task,
    WebhookDelivery,
    WebhookSubscription,
    claimable_by,
)
from orchestration.models import TaskState as S
from orchestration.scheduling import in_flight, paths_of
from tascade.errors import NotFound


def projects_visible(actor: Actor) -> QuerySet[Project]:
    projects = Project.objects.all()
    if actor.project_id is not None:
        projects = projects.filter(pk=actor.project_id)
    return projects


def project_visible_or_404(actor: Actor, project_id: int) -> Project:
    project = projects_visible(actor).filter(pk=project_id).first()
    if project is None:
        raise NotFound("No such project.", project_id=project_id)
    return project


def _scoped(queryset: QuerySet, actor: Actor) -> QuerySet:
    if actor.project_id is not None:
        queryset = queryset.filter(project_id=actor.project_id)
    return queryset


def tasks_visible(actor: Actor) -> QuerySet[Task]:
    return _scoped(Task.objects.all(), actor)


def task_visible_or_404(actor: Actor, task_id: int) -> Task:
    task = tasks_visible(actor).filter(pk=task_id).first()
    if task is None:
        raise NotFound("No such task.", task_id=task_id)
    return task


def object_visible_or_404(model, actor: Actor, pk: int):
    """Any project-owned object (phase, milestone, edge, lease, …) the actor may see."""
    obj = _scoped(model.objects.all(), actor).filter(pk=pk).first()
    if obj is None:
        raise NotFound(f"No such {model._meta.verbose_name}.", id=pk)
    return obj


def project_children(model, actor: Actor, project_id: int) -> QuerySet:
    project = project_visible_or_404(actor, project_id)
    return model.objects.filter(project=project)


def ready_tasks(actor: Actor, project_id: int, capabilities: list[str] | None = None):
    """What claim-next would offer this agent, in the order it would offer it.

    Ready tasks plus those reserved for this agent. Index lookup on ``task_pool_order``.
    """
    project = project_visible_or_404(actor, project_id)
    tasks = Task.objects.filter(project=project).filter(claimable_by(actor.name))
    if capabilities is not None:
        if connection.vendor == "postgresql":
            tasks = tasks.filter(capability_tags__contained_by=capabilities)
        else:
            fitting = [
                t.pk
                for t in tasks.only("pk", "capability_tags")
                if set(t.capability_tags) <= set(capabilities)
            ]
            tasks = tasks.filter(pk__in=fitting)
    return tasks.order_by(*POOL_ORDER)


def path_overlaps_of(task: Task) -> list[PathOverlap]:
    """Unpredicted overlaps flagged on ``task``, from either side, newest first."""
    return list(
        PathOverlap.objects.filter(Q(task=task) | Q(other_task=task))
        .select_related("task", "other_task")
        .order_by("-id")[:50]
    )


def task_collisions(actor: Actor, task_id: int) -> dict[str, Any]:
    """Which tasks in flight touch the paths of ``task`` (itself excluded), and whether they
    hold any of them exclusively: what claim-next and the ready list score it by now."""
    task = task_visible_or_404(actor, task_id)
    schedule = in_flight(task.project_id, near=paths_of(task), exclude=[task.pk]).schedule(task)
    return {
        "task": task,
        "paths": [path for path, _literal in paths_of(task)],
        "score": schedule.score,
        "offered": schedule.offered,
        "collisions": [c.as_dict() for c in schedule.collisions],
        "blocked_by": [c.as_dict() for c in schedule.blocked_by],
    }


def task_context(actor: Actor, task_id: int) -> dict[str, Any]:
    """Everything an agent needs to work on a task, in one read."""
    task = task_visible_or_404(actor, task_id)
    lease = Lease.objects.filter(task=task, status=LeaseStatus.ACTIVE).first()
    reservation = Reservation.objects.filter(task=task, status=ReservationStatus.ACTIVE).first()
    snapshot = ExecutionSnapshot.objects.filter(task=task).order_by("-id").first()
    incoming = list(
        Dependency.objects.filter(dependent=task).select_related("prerequisite").order_by("id")
    )
    latest_artifacts = _latest_artifacts([edge.prerequisite_id for edge in incoming])
    outgoing = list(
        Dependency.objects.filter(prerequisite=task).select_related("dependent").order_by("id")
    )
    return {
        "task": task,
        "lease": lease,
        "reservation": reservation,
        "snapshot": snapshot,
        "plan_changed": bool(snapshot and snapshot.material_revision != task.material_revision),
        "prerequisites": [
            {
                "edge": edge,
                "task": edge.prerequisite,
                "latest_artifact": latest_artifacts.get(edge.prerequisite_id),
            }
            for edge in incoming
        ],
        "dependents": [{"edge": edge, "task": edge.dependent} for edge in outgoing],
        "artifacts": list(Artifact.objects.filter(task=task).order_by("-id")[:20]),
        # A reviewer's note (changes requested, rejection) is part of what the agent reads.
        "reviews": list(Review.objects.filter(task=task).order_by("-id")[:20]),
        # Files its artifacts (or another in-flight task's) touched that the plan did not
        # predict would meet.
        "path_overlaps": path_overlaps_of(task),
    }


def _latest_artifacts(task_ids: list[int]) -> dict[int, Artifact]:
    latest: dict[int, Artifact] = {}
    for artifact in Artifact.objects.filter(task_id__in=task_ids).order_by("task_id", "-id"):
        latest.setdefault(artifact.task_id, artifact)
    return latest


def project_graph(actor: Actor, project_id: int, milestone_id: int | None = None) -> dict:
    """Nodes and edges, as plain values (it has to stay cheap at 100,000 tasks)."""
    project = project_visible_or_404(actor, project_id)
    tasks = Task.objects.filter(project=project)
    edges = Dependency.objects.filter(project=project)
    if milestone_id is not None:
        tasks = tasks.filter(milestone_id=milestone_id)
        edges = edges.filter(
            Q(prerequisite__milestone_id=milestone_id) | Q(dependent__milestone_id=milestone_id)
        )
    nodes = [
        {**row, "ref": f"T{row.pop('number')}"}
        for row in tasks.order_by("id").values(
            "id",
            "number",
            "title",
            "state",
            "priority",
            "task_class",
            "milestone_id",
            "parent_id",
            "unmet_prerequisites",
        )
    ]
    return {
        "project_id": project.pk,
        "plan_version": project.plan_version,
        "nodes": nodes,
        "edges": list(
            edges.order_by("id").values("id", "prerequisite_id", "dependent_id", "unlock_on")
        ),
    }


def snapshot_for_task(actor: Actor, task_id: int) -> ExecutionSnapshot:
    task = task_visible_or_404(actor, task_id)
    snapshot = ExecutionSnapshot.objects.filter(task=task).order_by("-id").first()
    if snapshot is None:
        raise NotFound("This task has not been started, so it has no snapshot.", task_id=task_id)
    return snapshot


# --- the event log ---------------------------------------------------------------------
# Events are read in commit order. On PostgreSQL each event carries its transaction id
# (txid); ordering by (txid, id) and returning only events of transactions older than the
# oldest one still running means a reader following ``after`` never skips an event that
# commits late. SQLite serialises writers, so id order is commit order there.
_PG_FINISHED = RawSQL("pg_snapshot_xmin(pg_current_snapshot())::text::bigint", [])
_PG_OWN_TX = RawSQL("pg_current_xact_id_if_assigned()::text::bigint", [])


def events_after(
    actor: Actor,
    project_id: int,
    *,
    after: int | None = None,
    task_id: int | None = None,
    kinds: list[str] | None = None,
    limit: int = 100,
) -> list[Event]:
    project = project_visible_or_404(actor, project_id)
    events = Event.objects.filter(project=project)
    if connection.vendor == "postgresql":
        events = events.filter(Q(txid__lt=_PG_FINISHED) | Q(txid=_PG_OWN_TX))
    if after is not None:
        anchor = Event.objects.filter(project=project, pk=after).values("txid").first()
        if anchor is None:
            raise NotFound("No such event in this project.", after=after)
        if anchor["txid"] is None:
            events = events.filter(pk__gt=after)
        else:
            events = events.filter(
                Q(txid__gt=anchor["txid"]) | Q(txid=anchor["txid"], pk__gt=after)
            )
    if task_id is not None:
        events = events.filter(task_id=task_id)
    if kinds:
        events = events.filter(kind__in=kinds)
    return list(events.order_by("txid", "id")[:limit])


# --- the dashboard ---------------------------------------------------------------------
# What the server-rendered dashboard pages read (tascade/dashboard.py). Each page is a
# fixed, small number of queries whatever the project's size: counts are GROUP BYs, long
# lists are capped, and the pages show the caps.

# Kanban columns, left to right: the flow, then the exception states.
BOARD_COLUMNS = (
    S.BACKLOG,
    S.READY,
    S.RESERVED,
    S.CLAIMED,
    S.IN_PROGRESS,
    S.DELEGATED,
    S.IMPLEMENTED,
    S.INTEGRATED,
    S.BLOCKED,
    S.CONFLICT,
    S.ABANDONED,
    S.CANCELLED,
)
BOARD_CARDS_PER_COLUMN = 40
BOARD_CARDS_MAX = 1_000
# Finished or given up: not part of the remaining work the critical path measures.
DONE_STATES = (S.INTEGRATED, S.CANCELLED, S.ABANDONED)


@dataclass(frozen=True)
class TaskFilters:
    """The board's and the graph's filters; every field empty means "no filter"."""

    phase_id: int | None = None
    milestone_id: int | None = None
    agent: str = ""
    task_class: str = ""
    path: str = ""

    @property
    def active(self) -> bool:
        return any((self.phase_id, self.milestone_id, self.agent, self.task_class, self.path))


def _glob_to_like(pattern: str) -> str:
    """``src/api/*.py`` → ``src/api/%.py``; no wildcard means a prefix (``docs/`` → ``docs/%``)."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = escaped.replace("*", "%").replace("?", "_")
    return like if ("*" in pattern or "?" in pattern) else like + "%"


def _expected_path_matches(pattern: str) -> RawSQL:
    """True when one of the task's ``expected_paths`` matches the glob (or prefix)."""
    like = _glob_to_like(pattern)
    column = f'"{Task._meta.db_table}"."expected_paths"'
    if connection.vendor == "postgresql":
        paths = f"jsonb_array_elements_text({column}) AS p(value)"
    else:
        paths = f"json_each({column}) AS p"
    sql = f"EXISTS (SELECT 1 FROM {paths} WHERE p.value LIKE %s ESCAPE '\\')"
    return RawSQL(sql, [like], output_field=BooleanField())


def tasks_filtered(tasks: QuerySet[Task], filters: TaskFilters) -> QuerySet[Task]:
    if filters.phase_id:
        tasks = tasks.filter(milestone__phase_id=filters.phase_id)
    if filters.milestone_id:
        tasks = tasks.filter(milestone_id=filters.milestone_id)
    if filters.agent:
        tasks = tasks.filter(Q(holder=filters.agent) | Q(implemented_by=filters.agent))
    if filters.task_class:
        tasks = tasks.filter(task_class=filters.task_class)
    if filters.path:
        tasks = tasks.filter(_expected_path_matches(filters.path))
    return tasks


def project_filter_choices(project: Project) -> dict[str, list]:
    """Phases, milestones and agents a filter may pick, for one project (three queries)."""
    return {
        "phases": list(project.phases.order_by("position", "id").values("id", "name")),
        "milestones": list(
            project.milestones.order_by("position", "id").values("id", "name", "phase_id")
        ),
        "agents": list(
            Lease.objects.filter(project=project)
            .order_by("agent")
            .values_list("agent", flat=True)
            .distinct()[:500]
        ),
    }


_CARD_FIELDS = (
    "id",
    "number",
    "title",
    "state",
    "priority",
    "task_class",
    "holder",
    "hold_expires_at",
    "implemented_by",
    "unmet_prerequisites",
    "milestone_id",
    "state_changed_at",
)


def _column_order(state: str) -> tuple:
    """Pool columns in claim order (priority first); the others most recently moved first."""
    if state in POOL_STATES:
        return ("priority", "-state_changed_at", "-id")
    return ("-state_changed_at", "-id")


def project_board(
    actor: Actor,
    project_id: int,
    filters: TaskFilters = TaskFilters(),
    *,
    per_column: int = BOARD_CARDS_PER_COLUMN,
    column: str | None = None,
) -> dict[str, Any]:
    """The kanban board: per state, its count and its first ``per_column`` cards, plus the
    dependency edges between the cards shown. Three queries at any size.

    Pool columns list cards in claim order (priority, then age); the others most recently
    moved first, so what just happened is on top. ``column`` limits it to one state (the
    "more" link of a capped column).
    """
    project = project_visible_or_404(actor, project_id)
    per_column = max(1, min(per_column, BOARD_CARDS_MAX))
    tasks = tasks_filtered(Task.objects.filter(project=project), filters)
    if column is not None:
        tasks = tasks.filter(state=column)
    counts = dict(tasks.order_by().values_list("state").annotate(n=Count("id")))
    # One query: per column, its first cards (a top-N sort each, on the state index).
    parts = [
        tasks.filter(state=state).order_by(*_column_order(state)).values(*_CARD_FIELDS)[:per_column]
        for state in ([column] if column else BOARD_COLUMNS)
        if counts.get(state)
    ]
    cards: dict[str, list[dict]] = {state: [] for state in BOARD_COLUMNS}
    ids = []
    for card in parts[0].union(*parts[1:], all=True) if parts else []:
        card["ref"] = f"T{card['number']}"
        cards[card["state"]].append(card)
        ids.append(card["id"])
    for state, column_cards in cards.items():  # UNION ALL keeps no order of its own
        if state in POOL_STATES:
            column_cards.sort(
                key=lambda c: (c["priority"], -c["state_changed_at"].timestamp(), -c["id"])
            )
        else:
            column_cards.sort(key=lambda c: (-c["state_changed_at"].timestamp(), -c["id"]))
    edges = list(
        Dependency.objects.filter(prerequisite_id__in=ids, dependent_id__in=ids)
        .order_by("id")
        .values("prerequisite_id", "dependent_id", "unlock_on")
    )
    return {
        "project": project,
        "columns": [
            {
                "state": state,
                "count": counts.get(state, 0),
                "cards": cards[state],
                "more": max(0, counts.get(state, 0) - len(cards[state])),
            }
            for state in BOARD_COLUMNS
            if column is None or state == column
        ],
        "total": sum(counts.values()),
        "edges": edges,
        "per_column": per_column,
    }


def project_change_stamp(project_id: int) -> int:
    """The latest event of the project in commit order: it moves whenever the project does.

    Pages poll with it and re-render only when it moved. On PostgreSQL only events of
    finished transactions count (as for ``events_after``), so an event that commits after a
    later one still moves the stamp when it becomes visible.
    """
    events = Event.objects.filter(project_id=project_id)
    if connection.vendor == "postgresql":
        events = events.filter(Q(txid__lt=_PG_FINISHED) | Q(txid=_PG_OWN_TX))
        events = events.order_by("-txid", "-id")
    else:
        events = events.order_by("-id")
    return events.values_list("id", flat=True).first() or 0


def project_overview(actor: Actor, project_id: int, *, now: datetime) -> dict[str, Any]:
    """Tasks by state, who holds what now, leases about to lapse, the integration queue and
    the latest events. Checkpoints come from ``governance.selectors.checkpoints_waiting``."""
    project = project_visible_or_404(actor, project_id)
    counts = dict(
        Task.objects.filter(project=project).order_by().values_list("state").annotate(n=Count("id"))
    )
    live = Lease.objects.filter(project=project, status=LeaseStatus.ACTIVE)
    # A lease is "expiring soon" once its agent has been silent for half the TTL.
    soon = now + timedelta(seconds=project.lease_ttl_seconds / 2)
    queue = IntegrationAttempt.objects.filter(
        project=project, state__in=[IntegrationState.QUEUED, IntegrationState.RUNNING]
    )
    return {
        "project": project,
        "states": [{"state": state, "count": counts.get(state, 0)} for state in BOARD_COLUMNS],
        "total": sum(counts.values()),
        "agents": list(
            live.filter(expires_at__gt=now)
            .order_by("agent")
            .values("agent")
            .annotate(held=Count("id"), last_heartbeat=Max("heartbeat_at"))[:100]
        ),
        "expiring": list(
            live.filter(expires_at__gt=now, expires_at__lte=soon)
            .select_related("task")
            .order_by("expires_at")[:50]
        ),
        # Run out but not yet swept: already expired for every reader (expiry on read).
        "lapsed": live.filter(expires_at__lte=now).count(),
        "integration_queue": list(queue.select_related("task").order_by("id")[:50]),
        "integration_queued": queue.count(),
        "recent_events": list(
            Event.objects.filter(project=project)
            .select_related("task")
            .order_by("-txid", "-id")[:15]
        ),
    }


def project_agents(actor: Actor, project_id: int, *, now: datetime) -> dict[str, Any]:
    """Every agent that ever held a task of the project, with what became of its leases."""
    project = project_visible_or_404(actor, project_id)
    live = Q(status=LeaseStatus.ACTIVE, expires_at__gt=now)
    lapsed = Q(status=LeaseStatus.EXPIRED) | Q(status=LeaseStatus.ACTIVE, expires_at__lte=now)
    rows = list(
        Lease.objects.filter(project=project)
        .order_by("agent")
        .values("agent")
        .annotate(
            leases=Count("id"),
            holding=Count("id", filter=live),
            completed=Count("id", filter=Q(status=LeaseStatus.COMPLETED)),
            expired=Count("id", filter=lapsed),
            released=Count("id", filter=Q(status=LeaseStatus.RELEASED)),
            revoked=Count("id", filter=Q(status=LeaseStatus.REVOKED)),
            last_seen=Max(Coalesce("heartbeat_at", "created_at")),
        )[:500]
    )
    return {"project": project, "agents": rows}


def agent_activity(actor: Actor, project_id: int, name: str, *, now: datetime) -> dict[str, Any]:
    """What one agent holds now, what it did, and what failed, in one project."""
    project = project_visible_or_404(actor, project_id)
    leases = Lease.objects.filter(project=project, agent=name)
    if not leases.exists():
        raise NotFound("No agent of that name has worked in this project.", agent=name)
    failed_leases = Q(status__in=[LeaseStatus.EXPIRED, LeaseStatus.RELEASED, LeaseStatus.REVOKED])
    return {
        "project": project,
        "name": name,
        "holding": list(
            leases.filter(status=LeaseStatus.ACTIVE, expires_at__gt=now)
            .select_related("task")
            .order_by("expires_at")
        ),
        "reserved": list(
            Reservation.objects.filter(
                project=project,
                assignee=name,
                status=ReservationStatus.ACTIVE,
                expires_at__gt=now,
            )
            .select_related("task")
            .order_by("expires_at")[:100]
        ),
        "implemented": list(
            Task.objects.filter(project=project, implemented_by=name).order_by(
                "-state_changed_at", "-id"
            )[:100]
        ),
        "implemented_count": Task.objects.filter(project=project, implemented_by=name).count(),
        "artifacts_count": Artifact.objects.filter(project=project, agent=name).count(),
        "failed_leases": list(
            leases.filter(failed_leases | Q(status=LeaseStatus.ACTIVE, expires_at__lte=now))
            .select_related("task")
            .order_by("-id")[:100]
        ),
        "turned_down": list(
            Review.objects.filter(project=project, implemented_by=name)
            .exclude(verdict="approved")
            .select_related("task")
            .order_by("-id")[:100]
        ),
        "failed_integrations": list(
            IntegrationAttempt.objects.filter(
                project=project,
                artifact__agent=name,
                state__in=[IntegrationState.CONFLICT, IntegrationState.FAILED_CHECKS],
            )
            .select_related("task")
            .order_by("-id")[:100]
        ),
        "recent_leases": list(leases.select_related("task").order_by("-id")[:50]),
    }


# Event kinds by the part of a task's life they belong to (the timeline's colours).
TIMELINE_CATEGORIES = {
    "task.claimed": "claim",
    "task.assigned": "claim",
    "task.unassigned": "claim",
    "reservation.released": "claim",
    "reservation.expired": "claim",
    "task.started": "lease",
    "task.released": "lease",
    "lease.expired": "lease",
    "lease.revoked": "lease",
    "task.implemented": "lease",
    "artifact.published": "artifact",
    "review.recorded": "review",
    "task.changes_requested": "review",
    "task.rejected": "review",
    "checkpoint.decided": "review",
    "integration.queued": "integration",
    "integration.started": "integration",
    "integration.cancelled": "integration",
    "task.integrated": "integration",
    "task.conflict": "integration",
    "task.checks_failed": "integration",
    "task.created": "plan",
    "dependency.added": "plan",
    "dependency.removed": "plan",
    "task.fell_back": "plan",
    "changeset.applied": "plan",
}
TIMELINE_EVENTS_MAX = 1_000


def task_timeline(actor: Actor, task_id: int, *, now: datetime) -> dict[str, Any]:
    """A task's whole life, oldest first: its events (claims, artifacts, reviews,
    integration attempts, plan changes, state changes), the changesets that touched it, and
    the heartbeat silences of its leases.

    Heartbeats write no event; each lease keeps its last one. A lease that expired was
    silent from its last heartbeat until it ended; a live one has been silent since its
    last heartbeat. Silences longer than the lease TTL (and live ones past half of it) are
    marked as gaps.
    """
    task = task_visible_or_404(actor, task_id)
    task = Task.objects.select_related("project", "milestone__phase", "parent").get(pk=task.pk)
    ttl = task.project.lease_ttl_seconds
    events = list(Event.objects.filter(task=task).order_by("id")[:TIMELINE_EVENTS_MAX])
    reviews = {r.pk: r for r in Review.objects.filter(task=task)}
    attempts = {a.pk: a for a in IntegrationAttempt.objects.filter(task=task)}
    artifacts = {a.pk: a for a in Artifact.objects.filter(task=task)}
    entries = []
    for event in events:
        payload = event.payload or {}
        entries.append(
            {
                "at": event.created_at,
                "kind": event.kind,
                "category": TIMELINE_CATEGORIES.get(event.kind, "state"),
                "actor": event.actor,
                "event": event,
                "review": reviews.get(payload.get("review_id")),
                "artifact": artifacts.get(payload.get("artifact_id")),
                "attempt": attempts.get(payload.get("attempt_id")),
            }
        )
    # Changesets are project events; the ones whose impact names this task belong here.
    for event in Event.objects.filter(
        project_id=task.project_id, kind="changeset.applied"
    ).order_by("-id")[:200]:
        impact = (event.payload or {}).get("impact") or {}
        touched = sorted(key for key, refs in impact.items() if task.ref in (refs or []))
        if touched:
            entries.append(
                {
                    "at": event.created_at,
                    "kind": event.kind,
                    "category": "plan",
                    "actor": event.actor,
                    "event": event,
                    "impact": touched,
                }
            )
    leases = list(Lease.objects.filter(task=task).order_by("id"))
    for lease in leases:
        last = lease.heartbeat_at or lease.created_at
        status = lease.effective_status
        live = status == LeaseStatus.ACTIVE
        # An expired lease nobody swept yet has been silent until now.
        silence = max(0.0, ((lease.ended_at or now) - last).total_seconds())
        gap = status == LeaseStatus.EXPIRED or silence > ttl or (live and silence > ttl / 2)
        entries.append(
            {
                "at": last,
                "kind": "heartbeat.gap" if gap else "heartbeat.last",
                "category": "gap" if gap else "heartbeat",
                "actor": lease.agent,
                "lease": lease,
                "live": live,
                "silence": silence,
                "ttl": ttl,
            }
        )
    entries.sort(key=lambda e: (e["at"], e["event"].pk if e.get("event") else 0))
    return {
        "task": task,
        "entries": entries,
        "events_capped": len(events) == TIMELINE_EVENTS_MAX,
        "leases": leases,
        "reviews": sorted(reviews.values(), key=lambda r: r.pk),
        "attempts": sorted(attempts.values(), key=lambda a: a.pk),
        "artifacts": sorted(artifacts.values(), key=lambda a: a.pk),
        "prerequisites": list(
            Dependency.objects.filter(dependent=task).select_related("prerequisite").order_by("id")
        ),
        "dependents": list(
            Dependency.objects.filter(prerequisite=task).select_related("dependent").order_by("id")
        ),
    }


GRAPH_MAX_NODES = 4_000
GRAPH_FOCUS_DEPTH = 3


def _longest_path_layers(ids: list[int], edges: list[tuple[int, int]]) -> dict[int, int]:
    """Each node's layer: the length of the longest path reaching it from a root (Kahn)."""
    layer = dict.fromkeys(ids, 0)
    successors: dict[int, list[int]] = {i: [] for i in ids}
    waiting = dict.fromkeys(ids, 0)
    for prerequisite, dependent in edges:
        successors[prerequisite].append(dependent)
        waiting[dependent] += 1
    ready = [i for i in ids if waiting[i] == 0]
    while ready:
        node = ready.pop()
        for nxt in successors[node]:
            layer[nxt] = max(layer[nxt], layer[node] + 1)
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                ready.append(nxt)
    return layer


def _critical_path(open_ids: set[int], edges: list[tuple[int, int]]) -> list[int]:
    """The longest chain of unfinished tasks (by count), prerequisite first."""
    inner = [(p, d) for p, d in edges if p in open_ids and d in open_ids]
    ids = sorted(open_ids)
    layer = _longest_path_layers(ids, inner)
    if not layer:
        return []
    predecessors: dict[int, list[int]] = {}
    for p, d in inner:
        predecessors.setdefault(d, []).append(p)
    node = max(ids, key=lambda i: (layer[i], -i))
    chain = [node]
    while layer[node] > 0:
        node = min(
            (p for p in predecessors[node] if layer[p] == layer[node] - 1),
            key=lambda i: i,
        )
        chain.append(node)
    return chain[::-1]


def project_graph_layout(
    actor: Actor,
    project_id: int,
    filters: TaskFilters = TaskFilters(),
    *,
    focus_task_id: int | None = None,
    depth: int = GRAPH_FOCUS_DEPTH,
    max_nodes: int = GRAPH_MAX_NODES,
) -> dict[str, Any]:
    """The dependency DAG laid out in layers (longest path from the roots), with the
    critical path: the longest chain of unfinished work (integrated, cancelled and
    abandoned tasks are done), computed over the whole project.

    ``filters`` and ``focus_task_id`` (the task and its neighbours up to ``depth`` edges
    away, both ways) choose what is drawn. More than ``max_nodes`` tasks are collapsed to
    one node per milestone, with the dependencies between milestones. Three queries.
    """
    project = project_visible_or_404(actor, project_id)
    all_tasks = Task.objects.filter(project=project)
    rows = {
        row["id"]: row
        for row in all_tasks.values("id", "number", "title", "state", "milestone_id", "priority")
    }
    edges = list(
        Dependency.objects.filter(project=project).values_list("prerequisite_id", "dependent_id")
    )
    open_ids = {i for i, row in rows.items() if row["state"] not in DONE_STATES}
    critical = _critical_path(open_ids, edges)
    critical_set = set(critical)

    shown = set(rows)
    if filters.active:
        shown = set(tasks_filtered(all_tasks, filters).values_list("id", flat=True))
    if focus_task_id is not None:
        if focus_task_id not in rows:
            raise NotFound("No such task in this project.", task_id=focus_task_id)
        neighbours: dict[int, list[int]] = {}
        for p, d in edges:
            neighbours.setdefault(p, []).append(d)
            neighbours.setdefault(d, []).append(p)
        frontier, near = {focus_task_id}, {focus_task_id}
        for _ in range(max(0, depth)):
            frontier = {n for node in frontier for n in neighbours.get(node, ())} - near
            near |= frontier
        shown &= near | {focus_task_id}

    result: dict[str, Any] = {
        "project": project,
        "total": len(rows),
        "shown": len(shown),
        "critical": [{"id": i, "ref": f"T{rows[i]['number']}"} for i in critical],
        "collapsed": len(shown) > max_nodes,
        "max_nodes": max_nodes,
    }
    if result["collapsed"]:
        return {**result, **_milestone_graph(project, rows, edges, shown, critical_set)}

    inner = [(p, d) for p, d in edges if p in shown and d in shown]
    ids = sorted(shown)
    layer = _longest_path_layers(ids, inner)
    by_layer: dict[int, list[int]] = {}
    for i in ids:
        by_layer.setdefault(layer[i], []).append(i)
    predecessors: dict[int, list[int]] = {}
    for p, d in inner:
        predecessors.setdefault(d, []).append(p)
    # One barycentre pass: a node sits near the average row of its prerequisites, which
    # keeps chains straight and cuts most crossings.
    row_of: dict[int, float] = {}
    for level in sorted(by_layer):
        members = by_layer[level]
        members.sort(
            key=lambda i: (
                sum(row_of[p] for p in predecessors.get(i, ())) / len(predecessors[i])
                if predecessors.get(i)
                else -1,
                rows[i]["number"],
            )
        )
        for position, i in enumerate(members):
            row_of[i] = position
    nodes = [
        {
            **rows[i],
            "ref": f"T{rows[i]['number']}",
            "layer": layer[i],
            "row": int(row_of[i]),
            "critical": i in critical_set,
        }
        for i in ids
    ]
    critical_edges = set(pairwise(critical))
    return {
        **result,
        "nodes": nodes,
        "edges": [{"from": p, "to": d, "critical": (p, d) in critical_edges} for p, d in inner],
        "layers": len(by_layer),
        "widest": max((len(m) for m in by_layer.values()), default=0),
    }


def _milestone_graph(project, rows, edges, shown, critical_set) -> dict[str, Any]:
    """Too many tasks to draw: one node per milestone (and one for tasks without one)."""
    names = dict(Milestone.objects.filter(project=project).values_list("id", "name"))
    groups: dict[int | None, dict] = {}
    for i in shown:
        row = rows[i]
        group = groups.setdefault(
            row["milestone_id"],
            {
                "id": row["milestone_id"],
                "name": names.get(row["milestone_id"], "No milestone"),
                "tasks": 0,
                "done": 0,
                "critical": False,
            },
        )
        group["tasks"] += 1
        group["done"] += row["state"] in DONE_STATES
        group["critical"] |= i in critical_set
    links: dict[tuple, int] = {}
    for p, d in edges:
        if p in shown and d in shown:
            a, b = rows[p]["milestone_id"], rows[d]["milestone_id"]
            if a != b:
                links[(a, b)] = links.get((a, b), 0) + 1
    keys = [k for k in groups if k is not None]
    index = {k: n for n, k in enumerate(sorted(keys))}
    index[None] = len(index)
    layer = _longest_path_layers(
        list(index.values()),
        # Milestone links can form cycles (task edges cannot): keep the forward ones.
        [(index[a], index[b]) for a, b in links if index[a] < index[b]],
    )
    by_layer: dict[int, int] = {}
    milestone_nodes = []
    for key in sorted(groups, key=lambda k: index[k]):
        level = layer[index[key]]
        milestone_nodes.append({**groups[key], "layer": level, "row": by_layer.get(level, 0)})
        by_layer[level] = by_layer.get(level, 0) + 1
    return {
        "milestone_nodes": milestone_nodes,
        "milestone_edges": [
            {"from": a, "to": b, "count": n} for (a, b), n in sorted(links.items(), key=str)
        ],
    }


# --- webhooks ----------------------------------------------------------------------------
# Subscriptions and their delivery log are the operators' (and admins'): the targets and
# the receivers' answers are not for agents. A key outside the project still gets 404.
def webhooks_of_project(actor: Actor, project_id: int) -> QuerySet[WebhookSubscription]:
    subscriptions = project_children(WebhookSubscription, actor, project_id)
    actor.require(Role.OPERATOR)
    return subscriptions


def webhook_deliveries_of_project(actor: Actor, project_id: int) -> QuerySet[WebhookDelivery]:
    deliveries = project_children(WebhookDelivery, actor, project_id)
    actor.require(Role.OPERATOR)
    return deliveries


def webhook_visible_or_404(actor: Actor, pk: int) -> WebhookSubscription:
    subscription = object_visible_or_404(WebhookSubscription, actor, pk)
    actor.require(Role.OPERATOR)
    return subscription


def webhook_delivery_visible_or_404(actor: Actor, pk: int) -> WebhookDelivery:
    delivery = object_visible_or_404(WebhookDelivery, actor, pk)
    actor.require(Role.OPERATOR)
    return delivery
