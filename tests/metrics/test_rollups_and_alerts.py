"""Daily roll-ups (idempotent, read by the figures) and alerts (fired once per window)."""

from datetime import timedelta

import pytest

from governance.actors import Actor, Role
from metrics import selectors
from metrics.models import AlertSettings, DailyRollup
from metrics.services.alerts import alerts_evaluate
from metrics.services.rollups import rollups_refresh
from metrics.tasks import refresh_metrics
from orchestration.models import Event
from tascade.celery import app
from tests.metrics.helpers import DAY, at, clock, do, new_project

pytestmark = pytest.mark.django_db
VIEWER = Actor(name="viewer", roles=frozenset({Role.AGENT}))


def _evaluate(project_id, hours):
    """Evaluate the alerts at ``hours``: the events are stamped with that time too."""
    return do(hours, alerts_evaluate, project_id=project_id, now=at(hours))


def _rows(project):
    return list(
        DailyRollup.objects.filter(project=project)
        .order_by("day")
        .values_list("day", "final", "figures", "state")
    )


def test_rollups_close_past_days_and_keep_today_partial(history):
    project = history["project"]
    assert rollups_refresh(now=at(35), project_ids=[project.pk]) == 2
    (day0, final0, figures0, _), (day1, final1, _, state1) = _rows(project)
    assert (day0, final0, day1, final1) == (DAY.date(), True, at(24).date(), False)
    assert figures0 == selectors.day_figures(project.pk, DAY.date())
    assert state1 == {"wip": 1, "blocked": 1, "open": 3, "blocked_ratio": 1 / 3, "total": 4}


def test_recomputing_rollups_is_idempotent(history):
    project = history["project"]
    rollups_refresh(now=at(35), project_ids=[project.pk])
    before = _rows(project)
    rollups_refresh(now=at(35), project_ids=[project.pk])
    assert _rows(project) == before


def test_a_closed_day_keeps_the_state_seen_while_it_was_today(history):
    project = history["project"]
    rollups_refresh(now=at(35), project_ids=[project.pk])
    rollups_refresh(now=at(50), project_ids=[project.pk])  # the second day is now closed
    rows = _rows(project)
    assert [final for _, final, _, _ in rows] == [True, True, False]
    assert rows[1][3]["wip"] == 1  # kept from the partial row


def test_the_figures_read_final_rollups_instead_of_recomputing(history):
    """Guards against pages recomputing every closed day on every request."""
    project = history["project"]
    rollups_refresh(now=at(35), project_ids=[project.pk])
    rollup = DailyRollup.objects.get(project=project, day=DAY.date())
    rollup.figures = {**rollup.figures, "integrated": 99}
    rollup.save()
    summary = selectors.project_summary(VIEWER, project.pk, now=at(35))
    assert summary["throughput"]["integrated"] == 99


def test_a_threshold_alert_is_recorded_as_an_event_and_not_repeated(history):
    project = history["project"]
    # The state as it stands: T2 ready, T3 blocked, T4 claimed: 1 of 3 open tasks blocked.
    [fired] = _evaluate(project.pk, 14.5)
    assert fired.kind == "metric.alert" and fired.project_id == project.pk
    assert fired.payload["rule"] == "blocked_ratio" and fired.payload["value"] == 0.3333
    assert _evaluate(project.pk, 15) == []  # within the window
    again = _evaluate(project.pk, 14.5 + 7)
    assert [e.payload["rule"] for e in again] == ["blocked_ratio"]
    listed = selectors.alerts_recent(VIEWER, project.pk)["alerts"]
    assert [a["rule"] for a in listed] == ["blocked_ratio", "blocked_ratio"]


def test_thresholds_are_per_project(history):
    project = history["project"]
    AlertSettings.objects.create(
        project=project, blocked_ratio_max=0.9, lease_expiries_per_hour_max=0, wip_age_hours_max=1
    )
    fired = _evaluate(project.pk, 14.5)
    # One lease expired in the last hour (above 0); the blocked share (1/3) is below 0.9.
    assert [e.payload["rule"] for e in fired] == ["lease_expiries_per_hour"]
    # The next day T4 has been in progress for two hours (above 1 h); no expiry that hour.
    fired = _evaluate(project.pk, 36)
    assert [(e.payload["rule"], e.payload["value"]) for e in fired] == [("wip_age", 2.0)]


def test_disabled_alerts_fire_nothing(history):
    AlertSettings.objects.create(project=history["project"], enabled=False)
    assert _evaluate(history["project"].pk, 14.5) == []


def test_a_sudden_drop_in_throughput_fires():
    project = new_project("steady")
    for offset in range(8):  # seven days of 4 a day, then a day of none
        DailyRollup.objects.create(
            project=project,
            day=DAY.date() + timedelta(days=offset),
            figures={**selectors._empty_figures(), "integrated": 4 if offset < 7 else 0},
            final=True,
            computed_at=at(0),
        )
    fired = _evaluate(project.pk, 8 * 24 + 1)
    assert [e.payload["rule"] for e in fired] == ["integrated_drop"]
    assert fired[0].payload["threshold"] == 4


def test_no_alert_on_an_empty_project():
    project = new_project("quiet")
    assert _evaluate(project.pk, 1) == []
    assert not Event.objects.filter(kind="metric.alert").exists()


def test_the_refresh_task_rolls_up_and_evaluates(history):
    with clock(at(14.5)):
        result = refresh_metrics.delay().get()
    assert result == {"rollups": 1, "alerts": 1}
    assert DailyRollup.objects.filter(project=history["project"]).count() == 1


def test_the_refresh_is_scheduled_in_code():
    entry = app.conf.beat_schedule["refresh-metrics"]
    assert entry["task"] == refresh_metrics.name and entry["schedule"] > 0
