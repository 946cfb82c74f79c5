"""The dashboard pages: sign-in, what each page shows, filters, live fragments, query counts."""

import re

import pytest
from django.urls import reverse

from governance.models import Checkpoint
from orchestration.models import Event
from orchestration.services import leases
from orchestration.services.plan import task_create
from tests.conftest import PLANNER
from tests.dashboard.scenario import agent, build_scenario, dashboard_user


@pytest.fixture
def scenario(db):
    return build_scenario()


@pytest.fixture
def signed_in(client, db):
    client.force_login(dashboard_user())
    return client


def _ids(html: str, attribute: str = "data-task-id") -> list[int]:
    return [int(x) for x in re.findall(rf'{attribute}="(\d+)"', html)]


def test_pages_need_a_signed_in_user(client, scenario):
    response = client.get(reverse("dashboard:board", args=[scenario.project.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_user_without_staff_or_a_role_is_refused(client, scenario):
    client.force_login(dashboard_user("nobody", superuser=False))
    response = client.get(reverse("dashboard:overview", args=[scenario.project.pk]))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"


def test_a_user_in_a_role_group_may_read(client, scenario):
    from django.contrib.auth.models import Group

    user = dashboard_user("rita", superuser=False)
    user.groups.add(Group.objects.create(name="reviewer"))
    client.force_login(user)
    assert client.get(reverse("dashboard:overview", args=[scenario.project.pk])).status_code == 200


def test_sign_in_with_the_login_form_lands_on_the_projects(client, scenario):
    dashboard_user("ana")
    response = client.post(reverse("login"), {"username": "ana", "password": "pw-ana"})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:projects")
    page = client.get(response["Location"])
    assert scenario.project.name in page.content.decode()


def test_an_unknown_project_is_a_404_in_the_error_shape(signed_in, scenario):
    response = signed_in.get(reverse("dashboard:board", args=[999_999]))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_the_board_shows_every_task_in_its_state_column_with_the_links(signed_in, scenario):
    response = signed_in.get(reverse("dashboard:board", args=[scenario.project.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert sorted(_ids(html)) == sorted(t.pk for t in scenario.tasks.values())
    in_progress = html.split('data-column="in_progress"')[1].split("</section>")[0]
    assert _ids(in_progress) == [scenario.tasks["auth"].pk]
    edges = response.context["edges"]
    assert {(e["prerequisite_id"], e["dependent_id"]) for e in edges} == {
        (scenario.tasks[p].pk, scenario.tasks[d].pk) for p, d in scenario.edges
    }
    assert "data-edges=" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"milestone": "WEB"}, {"ui", "pay", "tests"}),
        ({"phase": "SHIP"}, {"docs", "deploy", "flags", "launch"}),
        ({"agent": "agent-1"}, {"schema"}),
        ({"agent": "agent-3"}, {"ui", "flags"}),
        ({"task_class": "infra"}, {"deploy", "flags"}),
        ({"path": "src/api/"}, {"api", "auth"}),
        ({"path": "web/*.tsx"}, {"ui", "pay"}),
        ({"path": "src/*/service.py"}, {"model"}),
        ({"path": "docs/api?md"}, {"docs"}),
        ({"path": "src/api/%"}, set()),
    ],
)
def test_the_board_filters(signed_in, scenario, query, expected):
    project = scenario.project
    query = {
        key: str(
            project.milestones.get(name="Web").pk
            if value == "WEB"
            else project.phases.get(name="Ship").pk
            if value == "SHIP"
            else value
        )
        if key in ("milestone", "phase")
        else value
        for key, value in query.items()
    }
    html = signed_in.get(reverse("dashboard:board", args=[project.pk]), query).content.decode()
    assert set(_ids(html)) == {scenario.tasks[k].pk for k in expected}


def test_a_bad_filter_is_a_400_that_says_why_and_shows_everything(signed_in, scenario):
    response = signed_in.get(
        reverse("dashboard:board", args=[scenario.project.pk]),
        {"milestone": "x", "task_class": "nonsense"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="filter-errors"' in html and "task_class" in html
    assert len(_ids(html)) == len(scenario.tasks)


def test_a_capped_column_shows_its_count_and_a_more_link(signed_in, scenario):
    response = signed_in.get(
        reverse("dashboard:board", args=[scenario.project.pk]), {"per_column": 1}
    )
    backlog = next(c for c in response.context["columns"] if c["state"] == "backlog")
    assert backlog["count"] > 1 and len(backlog["cards"]) == 1
    assert backlog["more"] == backlog["count"] - 1
    assert "column=backlog&amp;per_column=500" in response.content.decode()


def test_the_board_poll_is_204_until_the_project_changes(signed_in, scenario):
    url = reverse("dashboard:board", args=[scenario.project.pk])
    first = signed_in.get(url, headers={"HX-Request": "true"})
    stamp = int(re.search(r'data-stamp="(\d+)"', first.content.decode()).group(1))
    assert stamp == Event.objects.filter(project=scenario.project).latest("id").pk
    unchanged = signed_in.get(url, {"since": stamp}, headers={"HX-Request": "true"})
    assert unchanged.status_code == 204
    # A heartbeat writes no event: the board has nothing new to show.
    auth = scenario.task("auth")
    token = auth.leases.get(status="active").token
    leases.lease_heartbeat(actor=agent("agent-2"), task_id=auth.pk, lease_token=token)
    assert signed_in.get(url, {"since": stamp}, headers={"HX-Request": "true"}).status_code == 204
    task_create(actor=PLANNER, project_id=scenario.project.pk, title="New work")
    changed = signed_in.get(url, {"since": stamp}, headers={"HX-Request": "true"})
    assert changed.status_code == 200
    assert "New work" in changed.content.decode()
    assert 'id="board-live"' in changed.content.decode()
    assert "<html" not in changed.content.decode()


def test_the_overview_shows_states_agents_expiring_leases_checkpoints_and_the_queue(
    signed_in, scenario
):
    response = signed_in.get(reverse("dashboard:overview", args=[scenario.project.pk]))
    assert response.status_code == 200
    context = response.context
    counts = {s["state"]: s["count"] for s in context["states"]}
    assert counts["implemented"] == 1 and counts["in_progress"] == 1
    assert [a["agent"] for a in context["agents"]] == ["agent-2", "agent-3"]
    assert context["lapsed"] == 1
    assert [a.task_id for a in context["integration_queue"]] == [scenario.tasks["schema"].pk]
    assert Checkpoint.objects.count() == 0 and context["checkpoints"] == []
