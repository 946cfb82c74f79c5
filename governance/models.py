from django.db import models

from governance.actors import Role
from orchestration.models import Task


class ApiKey(models.Model):
    """A bearer key. Only its SHA-256 is stored; the raw key is shown once, at creation."""

    actor = models.CharField(max_length=100, help_text="The identity every request is made as.")
    label = models.CharField(max_length=200, blank=True)
    roles = models.JSONField(default=list, help_text=f"Any of: {', '.join(Role.values)}.")
    project = models.ForeignKey(
        "orchestration.Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="Empty for a global key; set to confine the key to one project.",
    )
    prefix = models.CharField(
        max_length=16, help_text="The key's first characters, to recognise it."
    )
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.actor})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Verdict(models.TextChoices):
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    REJECTED = "rejected"


class Review(models.Model):
    """A reviewer's verdict on one implementation of a task.

    Only an approval of the current implementation, by someone other than its implementer,
    lets the task be integrated. Reviews are never changed afterwards.
    """

    project = models.ForeignKey(
        "orchestration.Project", on_delete=models.CASCADE, related_name="reviews"
    )
    task = models.ForeignKey("orchestration.Task", on_delete=models.CASCADE, related_name="reviews")
    implementation = models.PositiveIntegerField(
        help_text="Which implementation of the task was reviewed (its implementation_count)."
    )
    implemented_by = models.CharField(max_length=100)
    reviewer = models.CharField(max_length=100)
    verdict = models.CharField(max_length=20, choices=Verdict)
    rationale = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["task", "-id"], name="review_latest")]

    def __str__(self) -> str:
        return f"{self.verdict} of task {self.task_id} by {self.reviewer}"


class ReviewQueueItem(Task):
    """Implemented work as the admin review queue lists it (a view on tasks, no table)."""

    class Meta:
        proxy = True
        verbose_name = "review queue item"
        verbose_name_plural = "review queue"


class Trigger(models.TextChoices):
    MILESTONE_DONE = "milestone_done", "A milestone's work is all implemented or integrated"
    UNREVIEWED_BACKLOG = "unreviewed_backlog", "Implemented but unreviewed work reaches a count"
    WAITING_AGE = "waiting_age", "Implemented work has waited longer than an age limit"
    RISK_ACCUMULATION = "risk_accumulation", "Risky task classes accumulate to a count"
    PROTECTED_PATHS = "protected_paths", "Work touches protected paths"


class GateRule(models.Model):
    """When to batch implemented work into a checkpoint for a reviewer, and how urgently."""

    project = models.ForeignKey(
        "orchestration.Project", on_delete=models.CASCADE, related_name="gate_rules"
    )
    phase = models.ForeignKey(
        "orchestration.Phase",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="gate_rules",
    )
    milestone = models.ForeignKey(
        "orchestration.Milestone",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="gate_rules",
    )
    name = models.CharField(max_length=200)
    trigger = models.CharField(max_length=30, choices=Trigger)
    gate_class = models.CharField(
        max_length=20,
        choices=[("review_gate", "review gate"), ("merge_gate", "merge gate")],
        default="review_gate",
    )
    # A count (unreviewed_backlog, risk_accumulation) or hours (waiting_age).
    threshold = models.PositiveIntegerField(default=1)
    protected_paths = models.JSONField(default=list, blank=True)
    sla_hours = models.PositiveIntegerField(default=24)
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.trigger})"


class Checkpoint(models.Model):
    """One trigger occurrence: a gate task bundling candidate tasks for one decision."""

    project = models.ForeignKey(
        "orchestration.Project", on_delete=models.CASCADE, related_name="checkpoints"
    )
    rule = models.ForeignKey(GateRule, on_delete=models.PROTECT, related_name="checkpoints")
    # What makes this occurrence unique for its rule: evaluating again never duplicates it.
    occurrence = models.CharField(max_length=200)
    gate_task = models.OneToOneField(
        "orchestration.Task", on_delete=models.PROTECT, related_name="checkpoint"
    )
    candidates = models.ManyToManyField(
        "orchestration.Task", through="CheckpointCandidate", related_name="checkpoints"
    )
    due_at = models.DateTimeField()
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "occurrence"], name="checkpoint_once"),
        ]

    def __str__(self) -> str:
        return f"checkpoint {self.pk} ({self.rule.trigger}: {self.occurrence})"


class CheckpointCandidate(models.Model):
    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE)
    task = models.ForeignKey("orchestration.Task", on_delete=models.CASCADE)
    # Repeated from the checkpoint and the task so the database can refuse the same
    # implementation in two of one rule's checkpoints; reworked code is a new implementation.
    rule = models.ForeignKey(GateRule, on_delete=models.PROTECT)
    implementation = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "task", "implementation"], name="candidate_once_per_rule"
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} in checkpoint {self.checkpoint_id}"


class GateVerdict(models.TextChoices):
    APPROVED = "approved"
    APPROVED_WITH_RISK = "approved_with_risk"
    REJECTED = "rejected"


class GateDecision(models.Model):
    """The reviewer's decision on a whole checkpoint. Never changed afterwards."""

    checkpoint = models.OneToOneField(Checkpoint, on_delete=models.PROTECT, related_name="decision")
    reviewer = models.CharField(max_length=100)
    verdict = models.CharField(max_length=30, choices=GateVerdict)
    rationale = models.TextField()
    evidence = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.verdict} of checkpoint {self.checkpoint_id} by {self.reviewer}"
