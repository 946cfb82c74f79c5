"""The metrics API (shape, scope, bad input) and the metrics page with its CSV exports."""

import csv
import io

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from metrics.models import DailyRollup
from orchestration.services import plan
from tests.metrics.helpers import PLANNER, clock, new_project
from tests.metrics.helpers import at as hours_after

pytestmark = pytest.mark.django_db


def _url(project_id, what=""):
    return f"/api/v1/projects/{project_id}/metrics/{what}"


def test_any_role_in_scope_reads_the_summary(api, history):
    project = history["project"]
    client = api("agent", project=project)
    with clock(hours_after(35)):
        body = client.get(_url(project.pk, "?from=2025-03-03&to=2025-03-04")).json()
    assert body["from"] == "2025-03-03" and body["days"] == 2
    assert body["throughput"]["integrated"] == 1
    assert body["lead_time_seconds"]["p50"] == 6 * 3600
    assert body["wip"]["count"] == 1 and body["blocked"]["count"] == 1


def test_a_scoped_key_gets_404_for_another_project(api, history):
    other = new_project("other")
    client = api("reviewer", project=other)
    for what in ("", "daily/", "agents/", "forecast/", "alerts/"):
        response = client.get(_url(history["project"].pk, what))
        assert response.status_code == 404, what
        assert response.json()["error"]["code"] == "NOT_FOUND"


def test_no_key_is_401(client, history):
    assert client.get(_url(history["project"].pk)).status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "?from=2025-03-05&to=2025-03-01",
        "?from=2020-01-01&to=2025-01-01",
        "?from=yesterday",
        "?to=9999-12-31",
        "?from=1999-12-31",
    ],
)
def test_a_bad_window_is_a_400_in_the_one_error_shape(api, history, query):
    response = api("agent").get(_url(history["project"].pk, "daily/" + query))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


def test_daily_agents_forecast_and_alerts(api, history):
    project = history["project"]
    phase = plan.phase_create(actor=PLANNER, project_id=project.pk, name="P")
    milestone = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=phase.pk, name="M1"
    )
    plan.task_create(actor=PLANNER, project_id=project.pk, title="m", milestone_id=milestone.pk)
    client = api("agent")
    with clock(hours_after(35)):
        daily = client.get(_url(project.pk, "daily/?from=2025-03-03&to=2025-03-04")).json()
        agents = client.get(_url(project.pk, "agents/?from=2025-03-03")).json()
        forecast = client.get(_url(project.pk, "forecast/")).json()
    assert [d["day"] for d in daily["days"]] == ["2025-03-03", "2025-03-04"]
    assert [d["integrated"] for d in daily["days"]] == [1, 0]
    assert daily["days"][0]["lead_time_p50_seconds"] == 6 * 3600
    assert {a["agent"] for a in agents["agents"]} == {"agent-a", "agent-b", "agent-c"}
    [m] = forecast["milestones"]
    # Two days of history (the project is two days old): not enough for a forecast.
    assert (m["remaining"], m["status"], m["p50"]) == (1, "insufficient_history", None)
    assert client.get(_url(project.pk, "alerts/?limit=0")).status_code == 400
    assert client.get(_url(project.pk, "alerts/")).json()["alerts"] == []


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_user(username="ops", password="pw", is_staff=True)
    client.force_login(user)
    return client


def test_the_page_shows_charts_with_tables_and_csv_links(staff, history):
    project = history["project"]
    with clock(hours_after(35)):
        page = staff.get(reverse("metrics:project", args=[project.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "agent-b" in html and "21600.0" in html  # an agent row; lead time p50 in seconds
    assert "metrics/vendor/chart.umd.min.js" in html and "cdn" not in html.lower()
    for name in ("throughput", "flow", "phases", "wip", "agents", "forecast", "alerts"):
        assert reverse("metrics:export", args=[project.pk, name]) in html


def test_the_csv_export_matches_the_figures(staff, history):
    project = history["project"]
    with clock(hours_after(35)):
        response = staff.get(reverse("metrics:export", args=[project.pk, "agents"]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "agent"
    by_agent = {row[0]: row for row in rows[1:]}
    assert by_agent["agent-b"][4] == "1" and by_agent["agent-b"][6] == "1.0"  # expired; rate
    assert staff.get(reverse("metrics:export", args=[project.pk, "nope"])).status_code == 404


def test_the_page_needs_a_sign_in_and_an_existing_project(client, staff, history):
    client.logout()
    url = reverse("metrics:project", args=[history["project"].pk])
    assert client.get(url).status_code == 302
    staff.force_login(get_user_model().objects.get(username="ops"))
    assert staff.get(reverse("metrics:project", args=[10**9])).status_code == 404


def test_the_chart_library_is_served_by_the_app(client):
    response = client.get("/static/metrics/vendor/chart.umd.min.js")
    assert response.status_code == 200
    assert b"Chart.js v4" in b"".join(response.streaming_content)[:400]


def test_the_page_reads_rollups(staff, history):
    from metrics.services.rollups import rollups_refresh

    rollups_refresh(project_ids=[history["project"].pk])
    assert DailyRollup.objects.filter(project=history["project"]).exists()
    assert staff.get(reverse("metrics:project", args=[history["project"].pk])).status_code == 200
