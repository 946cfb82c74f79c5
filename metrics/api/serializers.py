"""Input checks and the documented shapes of the metrics API (the OpenAPI schema)."""

from datetime import date

from django.utils import timezone
from rest_framework import serializers as s

from metrics.selectors import MAX_WINDOW_DAYS, window

FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)


def _shape(class_name: str, /, **fields) -> type[s.Serializer]:
    """A response shape; built from a dict so keys like ``from`` are allowed."""
    return type(class_name, (s.Serializer,), fields)


def _null_float():
    return s.FloatField(allow_null=True)


class WindowQuerySerializer(s.Serializer):
    """``from`` and ``to``: UTC days, inclusive; the default is the last 30 days."""

    def validate(self, attrs):
        for name in ("from", "to"):
            day = attrs.get(name)
            if day is not None and not FIRST_DAY <= day <= LAST_DAY:
                raise s.ValidationError({name: [f"Between {FIRST_DAY} and {LAST_DAY}."]})
        first, last = window(attrs.get("from"), attrs.get("to"), timezone.now())
        if first > last:
            raise s.ValidationError({"from": ["Must not be after `to` (default: today)."]})
        if (last - first).days + 1 > MAX_WINDOW_DAYS:
            raise s.ValidationError({"from": [f"At most {MAX_WINDOW_DAYS} days at once."]})
        return {"first": first, "last": last}


WindowQuerySerializer._declared_fields.update(
    {
        "from": s.DateField(required=False),
        "to": s.DateField(required=False),
    }
)


class AlertQuerySerializer(s.Serializer):
    limit = s.IntegerField(required=False, min_value=1, max_value=500, default=50)


Distribution = _shape(
    "MetricDistribution",
    count=s.IntegerField(),
    p50=_null_float(),
    p90=_null_float(),
    mean=_null_float(),
)
Age = _shape(
    "MetricAge",
    count=s.IntegerField(),
    p50=_null_float(),
    p90=_null_float(),
    mean=_null_float(),
    max=_null_float(),
)
Agent = _shape(
    "MetricAgent",
    agent=s.CharField(),
    claimed=s.IntegerField(),
    implemented=s.IntegerField(),
    integrated=s.IntegerField(),
    expired=s.IntegerField(),
    released=s.IntegerField(),
    failure_rate=_null_float(),
)
_window = {"project_id": s.IntegerField(), "from": s.DateField(), "to": s.DateField()}

Summary = _shape(
    "MetricSummary",
    **_window,
    days=s.IntegerField(),
    generated_at=s.DateTimeField(),
    throughput=_shape(
        "MetricThroughput",
        integrated=s.IntegerField(),
        per_day_mean=_null_float(),
        per_day_p50=_null_float(),
        implemented=s.IntegerField(),
    )(),
    lead_time_seconds=Distribution(),
    cycle_time_seconds=Distribution(),
    phases_seconds=_shape(
        "MetricPhases",
        waiting=Distribution(),
        working=Distribution(),
        review=Distribution(),
        integrating=Distribution(),
    )(),
    wip=_shape("MetricWip", count=s.IntegerField(), age_seconds=Age())(),
    blocked=_shape(
        "MetricBlocked", count=s.IntegerField(), open=s.IntegerField(), ratio=_null_float()
    )(),
    tasks_by_state=s.DictField(child=s.IntegerField()),
    lease_expiries=_shape(
        "MetricLeaseExpiries", count=s.IntegerField(), last_hour=s.IntegerField()
    )(),
    claim_conflicts=s.IntegerField(),
    review_latency_seconds=Distribution(),
    checkpoint_sla=_shape(
        "MetricCheckpointSla",
        decided=s.IntegerField(),
        within_sla=s.IntegerField(),
        open_overdue=s.IntegerField(),
        compliance=_null_float(),
    )(),
    integration=_shape(
        "MetricIntegration",
        succeeded=s.IntegerField(),
        conflict=s.IntegerField(),
        failed_checks=s.IntegerField(),
        attempts=s.IntegerField(),
        success_rate=_null_float(),
    )(),
    agents=Agent(many=True),
)

_day_counts = (
    "integrated",
    "implemented",
    "claimed",
    "created",
    "lease_expiries",
    "claim_conflicts",
    "reviews",
    "integration_attempts",
    "integration_succeeded",
)
Day = _shape(
    "MetricDay",
    day=s.DateField(),
    **{name: s.IntegerField() for name in _day_counts},
    lead_time_p50_seconds=_null_float(),
    cycle_time_p50_seconds=_null_float(),
    review_latency_p50_seconds=_null_float(),
    wip=s.IntegerField(allow_null=True),
    blocked=s.IntegerField(allow_null=True),
    open=s.IntegerField(allow_null=True),
)
Daily = _shape("MetricDaily", **_window, days=Day(many=True))
Agents = _shape("MetricAgents", **_window, agents=Agent(many=True))

MilestoneForecast = _shape(
    "MetricMilestoneForecast",
    milestone_id=s.IntegerField(),
    name=s.CharField(),
    remaining=s.IntegerField(),
    history_days=s.IntegerField(),
    runs=s.IntegerField(),
    status=s.ChoiceField(choices=["forecast", "done", "insufficient_history", "beyond_horizon"]),
    p50=s.DateField(allow_null=True),
    p85=s.DateField(allow_null=True),
    p95=s.DateField(allow_null=True),
)
Forecast = _shape(
    "MetricForecast",
    project_id=s.IntegerField(),
    history_from=s.DateField(),
    history_days=s.IntegerField(),
    throughput_mean=_null_float(),
    milestones=MilestoneForecast(many=True),
)
Alert = _shape(
    "MetricAlert",
    event_id=s.IntegerField(),
    created_at=s.DateTimeField(),
    rule=s.CharField(),
    value=s.FloatField(),
    threshold=s.FloatField(),
    message=s.CharField(),
    day=s.DateField(required=False),
)
Alerts = _shape("MetricAlerts", project_id=s.IntegerField(), alerts=Alert(many=True))
