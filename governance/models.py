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
