"""Figures computed from the event log: daily roll-ups and per-project alert thresholds.

Nothing here is a source of truth: every roll-up can be recomputed from the events at any
time (``metrics.services.rollup_day``), and the pages and the API compute a missing day live.
"""

from django.db import models


class DailyRollup(models.Model):
    """One project's figures for one UTC day, kept by Celery beat so pages stay fast.

    ``figures`` holds counts and, for the percentile figures, the per-task durations of the
    day (percentiles of a window cannot be combined from daily percentiles). ``state`` is the
    live state (WIP, blocked, open) seen while the day was today; closing the day keeps it.
    """

    project = models.ForeignKey(
        "orchestration.Project", on_delete=models.CASCADE, related_name="metric_rollups"
    )
    day = models.DateField()
    figures = models.JSONField(default=dict)
    state = models.JSONField(null=True, blank=True)
    # A closed day (computed after it ended) never changes again unless recomputed by hand.
    final = models.BooleanField(default=False)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["project", "day"]
        constraints = [
            models.UniqueConstraint(fields=["project", "day"], name="rollup_one_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id} {self.day}{'' if self.final else ' (partial)'}"


class AlertSettings(models.Model):
    """A project's alert thresholds. A project without a row uses the defaults below."""

    project = models.OneToOneField(
        "orchestration.Project", on_delete=models.CASCADE, related_name="alert_settings"
    )
    enabled = models.BooleanField(default=True)
    blocked_ratio_max = models.FloatField(
        default=0.25, help_text="Alert when blocked / open tasks rises above this share (0-1)."
    )
    lease_expiries_per_hour_max = models.PositiveIntegerField(
        default=10, help_text="Alert when more leases than this expired in the last hour."
    )
    wip_age_hours_max = models.FloatField(
        default=72, help_text="Alert when a task has been in progress longer than this."
    )
    change_factor = models.FloatField(
        default=2.0,
        help_text="Sudden change: the last closed day is this many times above (or below) "
        "its trailing average.",
    )
    trailing_days = models.PositiveIntegerField(
        default=7, help_text="Days the trailing average is taken over."
    )
    min_baseline = models.FloatField(
        default=2.0,
        help_text="A sudden change is judged only when the trailing average is at least this.",
    )
    dedupe_minutes = models.PositiveIntegerField(
        default=360, help_text="The same alert is not raised again within this many minutes."
    )

    class Meta:
        verbose_name = "alert settings"
        verbose_name_plural = "alert settings"

    def __str__(self) -> str:
        return f"alert settings of project {self.project_id}"


class ClaimRefusal(models.Model):
    """A named claim refused because someone else holds the task (a claim conflict).

    Kept here, not in the event log: a refused request writes no event and changes no plan
    state; this row, written after the refusal rolled back, only feeds the metrics.
    """

    project = models.ForeignKey("orchestration.Project", on_delete=models.CASCADE, related_name="+")
    task_id = models.BigIntegerField()
    agent = models.CharField(max_length=100)
    code = models.CharField(max_length=60)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "created_at"], name="claim_refusal_time")]

    def __str__(self) -> str:
        return f"{self.code} on task {self.task_id} for {self.agent}"
