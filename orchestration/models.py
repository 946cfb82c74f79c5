"""The plan graph and everything that happens to it.

State on these models changes only through services (``orchestration/services``); the task
state field is protected and moves only through its ``@transition`` methods.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition


def _default_lease_ttl() -> int:
    return settings.TASCADE["DEFAULT_LEASE_TTL_SECONDS"]


def _default_reservation_ttl() -> int:
    return settings.TASCADE["DEFAULT_RESERVATION_TTL_SECONDS"]


def _default_max_attempts() -> int:
    return settings.TASCADE["DEFAULT_MAX_ATTEMPTS"]


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    lease_ttl_seconds = models.PositiveIntegerField(default=_default_lease_ttl)
    reservation_ttl_seconds = models.PositiveIntegerField(default=_default_reservation_ttl)
    # Grows with every change to the plan's structure; changesets are made against it.
    plan_version = models.PositiveIntegerField(default=1)
    # The last task number handed out: task refs (T1, T2, …) come from it under the row lock.
    task_number_seq = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.slug


class Phase(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="phases")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "position", "id"]

    def __str__(self) -> str:
        return self.name


class Milestone(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="milestones")
    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="milestones")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "position", "id"]

    def __str__(self) -> str:
        return self.name


class TaskState(models.TextChoices):
    BACKLOG = "backlog"
    READY = "ready"
    RESERVED = "reserved"
    CLAIMED = "claimed"
    IN_PROGRESS = "in_progress"
    DELEGATED = "delegated"
    IMPLEMENTED = "implemented"
    INTEGRATED = "integrated"
    BLOCKED = "blocked"
    CONFLICT = "conflict"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"


S = TaskState
# A lease covers the whole time an agent holds the task.
LEASED_STATES = (S.CLAIMED, S.IN_PROGRESS)
# Still waiting to be taken: a plan change or a regressing prerequisite may move these freely.
POOL_STATES = (S.BACKLOG, S.READY, S.RESERVED)
# Offered to any agent by claim-next (reserved tasks only to their assignee). A conflict task
# keeps its state when a prerequisite regresses, so it is offered only while none is unmet.
CLAIMABLE_STATES = (S.READY, S.CONFLICT)


def claimable_by(agent: str) -> Q:
    """The tasks claim-next and the ready list offer to ``agent``: never a gate, which a
    reviewer settles with a gate decision."""
    return (
        Q(state=S.READY)
        | Q(state=S.CONFLICT, unmet_prerequisites=0)
        | Q(state=S.RESERVED, holder=agent)
    ) & ~Q(task_class__in=GATE_CLASSES)


# Held or done but not merged: the work whose paths the scheduler keeps others away from.
IN_FLIGHT_STATES = (S.CLAIMED, S.IN_PROGRESS, S.IMPLEMENTED)
# The order claim-next and the ready list offer the pool in (index ``task_pool_order``).
POOL_ORDER = ("priority", "created_at", "id")


def pool_after(priority: int, created_at, pk: int) -> Q:
    """The pool rows after (priority, created_at, id) in ``POOL_ORDER``: a keyset page."""
    return (
        Q(priority__gt=priority)
        | Q(priority=priority, created_at__gt=created_at)
        | Q(priority=priority, created_at=created_at, pk__gt=pk)
    )


# Neither finished nor given up: an operator may still block or cancel these.
OPEN_STATES = (*POOL_STATES, *LEASED_STATES, S.DELEGATED, S.IMPLEMENTED, S.BLOCKED, S.CONFLICT)
TERMINAL_STATES = (S.INTEGRATED, S.CANCELLED)
OVERRIDE_TARGETS = (S.BACKLOG, S.READY, S.BLOCKED, S.IMPLEMENTED, S.ABANDONED, S.CANCELLED)


class UnlockOn(models.TextChoices):
    IMPLEMENTED = "implemented"
    INTEGRATED = "integrated"


# Which prerequisite states satisfy an edge of each unlock level.
SATISFYING_STATES = {
    UnlockOn.IMPLEMENTED: frozenset({S.IMPLEMENTED, S.INTEGRATED}),
    UnlockOn.INTEGRATED: frozenset({S.INTEGRATED}),
}


class TaskClass(models.TextChoices):
    FEATURE = "feature"
    BUGFIX = "bugfix"
    REFACTOR = "refactor"
    TEST = "test"
    DOCS = "docs"
    INFRA = "infra"
    MIGRATION = "migration"
    SECURITY = "security"
    ARCHITECTURE = "architecture"
    REVIEW_GATE = "review_gate"
    MERGE_GATE = "merge_gate"
    OTHER = "other"


GATE_CLASSES = (TaskClass.REVIEW_GATE, TaskClass.MERGE_GATE)


class Task(ConcurrentTransitionMixin, models.Model):
    """A unit of work. ``ref`` (``T42``) is short and unique within its project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    milestone = models.ForeignKey(
        Milestone, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    number = models.PositiveIntegerField(editable=False)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    # {"objective": str, "acceptance_criteria": [str], "constraints": [str]}
    work_spec = models.JSONField(default=dict, blank=True)
    task_class = models.CharField(max_length=20, choices=TaskClass, default=TaskClass.FEATURE)
    # Lower is more urgent: 0 is the most urgent.
    priority = models.IntegerField(default=100)
    capability_tags = models.JSONField(default=list, blank=True)
    # Path globs (``orchestration/paths.py``): what the task expects to touch, what it needs
    # to itself while in flight, and what its artifacts reported touching (kept sorted).
    expected_paths = models.JSONField(default=list, blank=True)
    exclusive_paths = models.JSONField(default=list, blank=True)
    touched_paths = models.JSONField(default=list, blank=True)
    max_attempts = models.PositiveIntegerField(default=_default_max_attempts)
    attempt_count = models.PositiveIntegerField(default=0)

    state = FSMField(default=S.BACKLOG, choices=TaskState, protected=True)
    state_changed_at = models.DateTimeField(auto_now_add=True)
    state_reason = models.TextField(blank=True)
    # Readiness kept on write: incoming edges whose prerequisite has not reached its level.
    unmet_prerequisites = models.PositiveIntegerField(default=0)
    # Who holds the task now (lease or reservation) and until when; mirrors the live
    # Lease/Reservation so the ready list and claim-next stay single index lookups.
    holder = models.CharField(max_length=100, blank=True)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    # The last fencing token handed out; every new lease of this task gets a larger one.
    lease_token_seq = models.PositiveIntegerField(default=0)
    # Grows with every material change (scope, spec, dependencies, constraints).
    material_revision = models.PositiveIntegerField(default=1)
    implemented_by = models.CharField(max_length=100, blank=True)
    # Grows each time the task becomes implemented: reviews name the implementation they judge,
    # so an approval never carries over to reworked code.
    implementation_count = models.PositiveIntegerField(default=0)
    # The lease the current implementation was completed under (none when an operator forced
    # ``implemented``): its artifacts are what integration merges.
    implementation_lease = models.ForeignKey(
        "Lease", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set when an agent split the task into children: from then on its completion level
    # follows theirs (docs/delegation.md), and it is never reviewed or merged on its own.
    delegated_at = models.DateTimeField(null=True, blank=True)

    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="task_unique_number"),
        ]
        indexes = [
            # The ready list and claim-next: priority then age, within one project.
            models.Index(
                fields=["project", "priority", "created_at", "id"],
                name="task_pool_order",
                condition=Q(state__in=[S.READY, S.RESERVED, S.CONFLICT]),
            ),
            # Expiry on read: held tasks whose lease or reservation has run out.
            models.Index(
                fields=["project", "hold_expires_at"],
                name="task_hold_expiry",
                condition=Q(hold_expires_at__isnull=False),
            ),
            models.Index(fields=["project", "state"], name="task_project_state"),
        ]

    def __str__(self) -> str:
        return f"{self.ref} {self.title}"

    @property
    def ref(self) -> str:
        return f"T{self.number}"

    # --- transitions (called from services only) -------------------------------------
    def _prerequisites_met(self) -> bool:
        return self.unmet_prerequisites == 0

    def _prerequisites_unmet(self) -> bool:
        return self.unmet_prerequisites > 0

    @transition(field=state, source=S.BACKLOG, target=S.READY, conditions=[_prerequisites_met])
    def become_ready(self) -> None:
        """The last prerequisite was satisfied."""

    @transition(field=state, source=S.BACKLOG, target=S.RESERVED, conditions=[_prerequisites_met])
    def become_ready_reserved(self) -> None:
        """The last prerequisite was satisfied and an assignment was waiting for it."""

    @transition(
        field=state,
        source=[S.READY, S.RESERVED, S.CLAIMED],
        target=S.BACKLOG,
        conditions=[_prerequisites_unmet],
    )
    def fall_back(self) -> None:
        """A prerequisite regressed (or an edge was added) before the task started."""

    @transition(field=state, source=S.READY, target=S.RESERVED)
    def reserve(self) -> None:
        pass

    @transition(field=state, source=S.RESERVED, target=S.READY)
    def unreserve(self) -> None:
        pass

    @transition(
        field=state,
        source=[S.READY, S.RESERVED, S.CONFLICT],
        target=S.CLAIMED,
        conditions=[_prerequisites_met],
    )
    def claim(self) -> None:
        """Conflict tasks are claimable too: an agent takes them back to resolve the merge."""

    @transition(field=state, source=S.CLAIMED, target=S.IN_PROGRESS)
    def start(self) -> None:
        pass

    @transition(
        field=state,
        source=list(LEASED_STATES),
        target=RETURN_VALUE(S.BACKLOG, S.READY, S.BLOCKED),
    )
    def return_to_pool(self, target: str) -> str:
        """The lease ended without completion (released or expired)."""
        return target

    @transition(
        field=state,
        source=[S.RESERVED],
        target=RETURN_VALUE(S.BACKLOG, S.READY),
    )
    def drop_reservation(self, target: str) -> str:
        return target

    @transition(field=state, source=S.IN_PROGRESS, target=S.IMPLEMENTED)
    def mark_implemented(self) -> None:
        pass

    @transition(field=state, source=list(LEASED_STATES), target=S.DELEGATED)
    def delegate(self) -> None:
        """The agent split the task into child tasks and let go of it."""

    def _follows_children(self) -> bool:
        return self.delegated_at is not None

    @transition(
        field=state,
        source=[S.DELEGATED, S.IMPLEMENTED],
        target=RETURN_VALUE(S.DELEGATED, S.IMPLEMENTED, S.INTEGRATED),
        conditions=[_follows_children],
    )
    def follow_children(self, target: str) -> str:
        """A delegated task's completion level moved with its children's."""
        return target

    @transition(field=state, source=S.IMPLEMENTED, target=S.INTEGRATED)
    def integrate(self) -> None:
        """Reviewed, approved by someone else, and merged (the service checks the review)."""

    @transition(
        field=state,
        source=[S.BACKLOG, S.READY, S.RESERVED, S.BLOCKED],
        target=RETURN_VALUE(S.INTEGRATED, S.ABANDONED),
    )
    def settle(self, target: str) -> str:
        """A gate task passes (integrated) or fails (abandoned) with its gate decision."""
        return target

    @transition(field=state, source=S.IMPLEMENTED, target=S.CONFLICT)
    def mark_conflict(self) -> None:
        """The integration attempt could not merge the branch."""

    @transition(
        field=state,
        source=[S.IMPLEMENTED, S.CONFLICT],
        target=RETURN_VALUE(S.BACKLOG, S.READY),
    )
    def rework(self, target: str) -> str:
        """Back to work: a reviewer asked for changes, or the integration's checks failed."""
        return target

    @transition(field=state, source=[s for s in OPEN_STATES if s != S.BLOCKED], target=S.BLOCKED)
    def block(self) -> None:
        pass

    @transition(
        field=state,
        source=S.BLOCKED,
        target=RETURN_VALUE(S.BACKLOG, S.READY, S.DELEGATED, S.IMPLEMENTED, S.INTEGRATED),
    )
    def unblock(self, target: str) -> str:
        """Back to the pool, or, for a delegated task, to its children's level."""
        return target

    @transition(field=state, source=[*OPEN_STATES, S.ABANDONED], target=S.CANCELLED)
    def cancel(self) -> None:
        pass

    @transition(field=state, source=list(OPEN_STATES), target=S.ABANDONED)
    def abandon(self) -> None:
        pass

    @transition(
        field=state,
        source=[s for s in TaskState.values if s not in TERMINAL_STATES],
        target=RETURN_VALUE(*OVERRIDE_TARGETS),
    )
    def override(self, target: str) -> str:
        """An operator forces a state, with a rationale recorded by the service."""
        return target


class Dependency(models.Model):
    """``prerequisite`` must reach ``unlock_on`` before ``dependent`` may be claimed."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dependencies")
    prerequisite = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="outgoing")
    dependent = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="incoming")
    unlock_on = models.CharField(max_length=20, choices=UnlockOn, default=UnlockOn.IMPLEMENTED)
    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "dependencies"
        constraints = [
            models.UniqueConstraint(
                fields=["prerequisite", "dependent"], name="dependency_unique_edge"
            ),
            models.CheckConstraint(
                condition=~Q(prerequisite=models.F("dependent")), name="dependency_no_self_loop"
            ),
        ]
        indexes = [models.Index(fields=["dependent", "prerequisite"], name="dependency_reverse")]

    def __str__(self) -> str:
        return f"{self.prerequisite_id} -> {self.dependent_id} ({self.unlock_on})"


class LeaseStatus(models.TextChoices):
    ACTIVE = "active"
    RELEASED = "released"
    EXPIRED = "expired"
    COMPLETED = "completed"
    REVOKED = "revoked"


class Lease(models.Model):
    """An agent's exclusive, time-bound hold on a task, fenced by ``token``."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="leases")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="leases")
    agent = models.CharField(max_length=100)
    token = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=LeaseStatus, default=LeaseStatus.ACTIVE)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["task", "token"], name="lease_unique_token"),
            # The database itself refuses a second live lease on a task.
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(status=LeaseStatus.ACTIVE),
                name="lease_one_active_per_task",
            ),
        ]

    def __str__(self) -> str:
        return f"lease {self.token} on task {self.task_id} ({self.agent}, {self.status})"

    @property
    def effective_status(self) -> str:
        """The status as every reader must see it: a lapsed lease is expired, recorded or not."""
        if self.status == LeaseStatus.ACTIVE and self.expires_at <= timezone.now():
            return LeaseStatus.EXPIRED
        return self.status


class ReservationStatus(models.TextChoices):
    ACTIVE = "active"
    CLAIMED = "claimed"
    RELEASED = "released"
    EXPIRED = "expired"


class Reservation(models.Model):
    """An operator's directed assignment: only ``assignee`` may claim the task until expiry."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="reservations")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="reservations")
    assignee = models.CharField(max_length=100)
    status = models.CharField(
        max_length=20, choices=ReservationStatus, default=ReservationStatus.ACTIVE
    )
    expires_at = models.DateTimeField()
    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(status=ReservationStatus.ACTIVE),
                name="reservation_one_active_per_task",
            ),
        ]

    def __str__(self) -> str:
        return f"reservation of task {self.task_id} for {self.assignee} ({self.status})"

    @property
    def effective_status(self) -> str:
        if self.status == ReservationStatus.ACTIVE and self.expires_at <= timezone.now():
            return ReservationStatus.EXPIRED
        return self.status


class ExecutionSnapshot(models.Model):
    """The immutable contract captured when work starts: the agent finishes against this."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="snapshots")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="snapshots")
    lease = models.OneToOneField(Lease, on_delete=models.CASCADE, related_name="snapshot")
    plan_version = models.PositiveIntegerField()
    material_revision = models.PositiveIntegerField()
    spec_hash = models.CharField(max_length=64)
    spec = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"snapshot of task {self.task_id} at plan v{self.plan_version}"


class CheckStatus(models.TextChoices):
    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


class Artifact(models.Model):
    """What an agent produced, recorded under the lease it held. Never changed afterwards."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="artifacts")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="artifacts")
    lease = models.ForeignKey(Lease, on_delete=models.PROTECT, related_name="artifacts")
    lease_token = models.PositiveIntegerField()
    agent = models.CharField(max_length=100)
    branch = models.CharField(max_length=255, blank=True)
    commit_sha = models.CharField(max_length=64, blank=True)
    touched_files = models.JSONField(default=list, blank=True)
    check_status = models.CharField(max_length=20, choices=CheckStatus, default=CheckStatus.PENDING)
    check_ref = models.CharField(max_length=500, blank=True)
    summary = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "-id"], name="artifact_latest")]

    def __str__(self) -> str:
        return f"artifact {self.pk} of task {self.task_id}"


class Event(models.Model):
    """The audit trail: append-only (the database refuses updates and deletes), in id order.

    On PostgreSQL ``txid`` is the writing transaction's id, filled by the database; readers
    use it to hold back events of transactions still in flight, so a cursor never skips one.
    """

    project = models.ForeignKey(Project, on_delete=models.DO_NOTHING, related_name="events")
    task = models.ForeignKey(
        Task, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="events"
    )
    kind = models.CharField(max_length=60)
    actor = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    txid = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["project", "txid", "id"], name="event_project_order"),
            models.Index(fields=["task", "id"], name="event_task_order"),
            # Metrics read a project's events by time range (a day, the last hour).
            models.Index(fields=["project", "created_at"], name="event_project_time"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}"


class PathOverlap(models.Model):
    """Files an artifact touched that another in-flight task also touches, unpredicted by the
    plan: one row per artifact and other task. Both tasks are flagged by it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="path_overlaps")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="path_overlaps")
    other_task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="+")
    artifact = models.ForeignKey(Artifact, on_delete=models.CASCADE, related_name="path_overlaps")
    # [{"path": touched file, "pattern": the other task's path it falls under}, ...]
    overlaps = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["artifact", "other_task"], name="path_overlap_once_per_artifact"
            )
        ]
        indexes = [
            models.Index(fields=["task", "id"], name="path_overlap_task"),
            models.Index(fields=["other_task", "id"], name="path_overlap_other_task"),
        ]

    def __str__(self) -> str:
        return f"overlap of task {self.task_id} with task {self.other_task_id}"


class IntegrationState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CONFLICT = "conflict"
    FAILED_CHECKS = "failed_checks"
    CANCELLED = "cancelled"


INTEGRATION_RESULTS = (
    IntegrationState.SUCCEEDED,
    IntegrationState.CONFLICT,
    IntegrationState.FAILED_CHECKS,
)


class IntegrationAttempt(models.Model):
    """One try at merging an approved task's branch, taken from a per-project queue in order."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="integration_attempts"
    )
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="integration_attempts")
    artifact = models.ForeignKey(
        Artifact, on_delete=models.PROTECT, related_name="integration_attempts"
    )
    state = models.CharField(
        max_length=20, choices=IntegrationState, default=IntegrationState.QUEUED
    )
    base_sha = models.CharField(max_length=64, blank=True)
    head_sha = models.CharField(max_length=64, blank=True)
    diagnostics = models.TextField(blank=True)
    enqueued_by = models.CharField(max_length=100)
    taken_by = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A task waits in the queue (or runs) at most once at a time.
            models.UniqueConstraint(
                fields=["task"],
                condition=Q(state__in=["queued", "running"]),
                name="integration_one_open_per_task",
            ),
            # Merges into a project's integration branch happen one at a time, in order.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(state="running"),
                name="integration_one_running_per_project",
            ),
        ]
        indexes = [
            models.Index(
                fields=["project", "id"],
                name="integration_queue_order",
                condition=Q(state="queued"),
            )
        ]

    def __str__(self) -> str:
        return f"integration {self.pk} of task {self.task_id} ({self.state})"


class ChangesetStatus(models.TextChoices):
    DRAFT = "draft"
    APPLIED = "applied"


class Changeset(models.Model):
    """A planner's list of plan operations, made against the plan version they saw.

    Applied atomically or not at all, once; the impact preview is the same code run and
    rolled back, so it cannot disagree with what applying then does.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="changesets")
    base_version = models.PositiveIntegerField()
    title = models.CharField(max_length=300, blank=True)
    operations = models.JSONField()
    status = models.CharField(max_length=10, choices=ChangesetStatus, default=ChangesetStatus.DRAFT)
    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_by = models.CharField(max_length=100, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_version = models.PositiveIntegerField(null=True, blank=True)
    impact = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"changeset {self.pk} on {self.project_id} (v{self.base_version}, {self.status})"


class WebhookSubscription(models.Model):
    """A receiver of a project's events: every event whose kind passes ``event_kinds`` (empty:
    all) is POSTed to ``url``, signed with ``secret``.

    ``cursor`` is the last event fanned out to it, in the event log's commit order; deliveries
    are made from the events after it. The secret is needed to sign, so it is kept as is; the
    API shows it once, in the answer that creates the subscription, and the admin never.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=2000)
    event_kinds = models.JSONField(default=list, blank=True)
    description = models.CharField(max_length=500, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    active = models.BooleanField(default=True)
    cursor = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+"
    )
    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "webhook subscription"
        indexes = [
            models.Index(fields=["project"], name="webhook_active", condition=Q(active=True))
        ]

    def __str__(self) -> str:
        return f"webhook {self.pk} → {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(models.Model):
    """One event for one subscription: sent until a 2xx answer, or until its tries run out.

    Unique per (subscription, event): the database itself refuses a second delivery of an
    event to a receiver, whatever dispatchers race. A redelivery is a new round of attempts
    on this same row, never a second row.
    """

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.DO_NOTHING, related_name="+")
    status = models.CharField(max_length=10, choices=DeliveryStatus, default=DeliveryStatus.PENDING)
    # Attempts made, ever; attempts left in the current round (a redelivery starts a new one).
    attempts = models.PositiveIntegerField(default=0)
    attempts_left = models.PositiveIntegerField()
    redeliveries = models.PositiveIntegerField(default=0)
    # Pending: when it is due. Sending: when the claim lapses (the sender is presumed dead).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event"], name="webhook_delivery_once_per_event"
            ),
        ]
        indexes = [
            # What is due: pending ones whose time came, and sending ones whose claim lapsed.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=Q(status__in=["pending", "sending"]),
            ),
            models.Index(fields=["project", "status", "id"], name="webhook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} of event {self.event_id} to webhook {self.subscription_id}"
