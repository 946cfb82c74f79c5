from django.db import models

from governance.actors import Role


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
