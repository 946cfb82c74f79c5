"""The dashboard pages: sign-in, what each page shows, filters, live fragments, query counts."""

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from governance.models import Checkpoint
from orchestration.models import Event
from orchestration.services import leases
from orchestration.services.events import event_record
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


def test_the_graph_layers_by_longest_path_and_highlights_the_critical_path(signed_in, scenario):
    response = signed_in.get(reverse("dashboard:graph", args=[scenario.project.pk]))
    assert response.status_code == 200
    layer = {n["id"]: n["layer"] for n in response.context["nodes"]}
    t = {key: task.pk for key, task in scenario.tasks.items()}
    # schema → model → api → pay → tests → deploy → launch: launch sits six layers deep.
    assert layer[t["schema"]] == 0 and layer[t["api"]] == 2 and layer[t["launch"]] == 6
    assert layer[t["auth"]] == 0 and layer[t["docs"]] == 3
    critical = [c["id"] for c in response.context["critical"]]
    assert critical == [
        t[k] for k in ("schema", "model", "api", "pay", "tests", "deploy", "launch")
    ]
    svg = str(response.context["svg"])
    assert svg.count('class="edge critical"') == 6
    assert svg.count("<path") == len(scenario.edges)
    assert len(_ids(svg)) == len(scenario.tasks)


def test_finished_work_leaves_the_critical_path(signed_in, scenario):
    from orchestration.services.operations import task_override
    from tests.conftest import ADMIN

    for key in ("schema", "model"):
        task_override(
            actor=ADMIN, task_id=scenario.tasks[key].pk, to_state="cancelled", rationale="descoped"
        )
    response = signed_in.get(reverse("dashboard:graph", args=[scenario.project.pk]))
    critical = [c["ref"] for c in response.context["critical"]]
    assert scenario.tasks["schema"].ref not in critical
    assert critical[0] in (scenario.tasks["auth"].ref, scenario.tasks["ui"].ref)


def test_the_graph_focuses_on_a_task_and_its_neighbours(signed_in, scenario):
    t = {key: task.pk for key, task in scenario.tasks.items()}
    response = signed_in.get(
        reverse("dashboard:graph", args=[scenario.project.pk]), {"focus": t["api"], "depth": 1}
    )
    shown = {n["id"] for n in response.context["nodes"]}
    assert shown == {t["api"], t["model"], t["auth"], t["pay"], t["docs"]}


def test_a_graph_too_big_to_draw_collapses_to_milestones(signed_in, scenario):
    from orchestration.selectors import project_graph_layout
    from tests.conftest import ADMIN

    layout = project_graph_layout(ADMIN, scenario.project.pk, max_nodes=5)
    assert layout["collapsed"]
    names = {n["name"]: n for n in layout["milestone_nodes"]}
    assert set(names) == {"Core", "Web", "Launch"}
    assert names["Core"]["tasks"] == 4 and names["Core"]["critical"]
    core, web, launch = (names[n]["id"] for n in ("Core", "Web", "Launch"))
    links = {(e["from"], e["to"]): e["count"] for e in layout["milestone_edges"]}
    assert links == {(core, web): 1, (core, launch): 1, (web, launch): 1}


def test_the_task_page_shows_claim_artifact_review_and_integration(signed_in, scenario):
    schema = scenario.tasks["schema"]
    response = signed_in.get(reverse("dashboard:task", args=[schema.pk]))
    assert response.status_code == 200
    kinds = [e["kind"] for e in response.context["entries"]]
    for kind in (
        "task.created",
        "task.claimed",
        "task.started",
        "artifact.published",
        "task.implemented",
        "review.recorded",
        "integration.queued",
    ):
        assert kind in kinds, kind
    assert kinds.index("task.claimed") < kinds.index("artifact.published")
    assert kinds.index("artifact.published") < kinds.index("review.recorded")
    html = response.content.decode()
    assert "t1-orders-schema" in html and "3f2a9c1d5e7b" in html
    assert "Migration is reversible and indexed." in html


def test_the_timeline_marks_a_heartbeat_gap_longer_than_the_ttl(signed_in, scenario):
    flags = scenario.tasks["flags"]
    entries = signed_in.get(reverse("dashboard:task", args=[flags.pk])).context["entries"]
    gaps = [e for e in entries if e["category"] == "gap"]
    assert len(gaps) == 1
    assert gaps[0]["silence"] > gaps[0]["ttl"] and gaps[0]["actor"] == "agent-3"
    # A lease heartbeating normally has no gap.
    auth_entries = signed_in.get(reverse("dashboard:task", args=[scenario.tasks["auth"].pk]))
    assert [e["kind"] for e in auth_entries.context["entries"] if "heartbeat" in e["kind"]] == [
        "heartbeat.last"
    ]


def test_the_timeline_includes_changesets_that_touched_the_task(signed_in, scenario):
    from orchestration.services.changesets import changeset_apply, changeset_create

    docs = scenario.task("docs")
    changeset = changeset_create(
        actor=PLANNER,
        project_id=scenario.project.pk,
        base_version=scenario.project.__class__.objects.get(pk=scenario.project.pk).plan_version,
        operations=[{"op": "update_task", "task": docs.ref, "work_spec": {"objective": "More"}}],
    )
    changeset_apply(actor=PLANNER, changeset_id=changeset.pk)
    entries = signed_in.get(reverse("dashboard:task", args=[docs.pk])).context["entries"]
    applied = [e for e in entries if e["kind"] == "changeset.applied"]
    assert len(applied) == 1 and "material" in applied[0]["impact"]
    other = signed_in.get(reverse("dashboard:task", args=[scenario.tasks["ui"].pk]))
    assert "changeset.applied" not in [e["kind"] for e in other.context["entries"]]


def test_the_agent_page_shows_what_it_holds_did_and_failed(signed_in, scenario):
    project = scenario.project
    three = signed_in.get(reverse("dashboard:agent", args=[project.pk, "agent-3"])).context
    assert [lease.task_id for lease in three["holding"]] == [scenario.tasks["ui"].pk]
    assert [lease.task_id for lease in three["failed_leases"]] == [scenario.tasks["flags"].pk]
    one = signed_in.get(reverse("dashboard:agent", args=[project.pk, "agent-1"])).context
    assert [t.pk for t in one["implemented"]] == [scenario.tasks["schema"].pk]
    assert one["artifacts_count"] == 1 and one["holding"] == []
    listing = signed_in.get(reverse("dashboard:agents", args=[project.pk])).context["agents"]
    assert {a["agent"]: (a["holding"], a["completed"], a["expired"]) for a in listing} == {
        "agent-1": (0, 1, 0),
        "agent-2": (1, 0, 0),
        "agent-3": (1, 0, 1),
    }
    missing = signed_in.get(reverse("dashboard:agent", args=[project.pk, "nobody"]))
    assert missing.status_code == 404


def test_the_live_fragments_are_partial_pages(signed_in, scenario):
    project = scenario.project
    hx = {"HX-Request": "true"}
    for url, marker in [
        (reverse("dashboard:overview", args=[project.pk]), 'id="state-counts"'),
        (reverse("dashboard:task", args=[scenario.tasks["schema"].pk]), 'id="timeline"'),
        (reverse("dashboard:agent", args=[project.pk, "agent-1"]), 'id="holding"'),
        (reverse("dashboard:graph", args=[project.pk]), 'id="graph-live"'),
    ]:
        response = signed_in.get(url, headers=hx)
        html = response.content.decode()
        assert response.status_code == 200 and marker in html and "<html" not in html, url


def _grow(scenario, extra: int) -> None:
    """More tasks, edges and leases of the same kinds, to show the query counts stay put."""
    from orchestration.services.plan import dependency_add

    previous = scenario.tasks["launch"]
    for n in range(extra):
        task = task_create(
            actor=PLANNER, project_id=scenario.project.pk, title=f"extra {n}", expected_paths=["x"]
        )
        dependency_add(
            actor=PLANNER,
            project_id=scenario.project.pk,
            prerequisite_id=previous.pk,
            dependent_id=task.pk,
        )
        previous = task
    for n in range(6):
        free = task_create(actor=PLANNER, project_id=scenario.project.pk, title=f"free {n}")
        leases.task_claim(actor=agent(f"bulk-{n % 3}"), task_id=free.pk)
        leases.task_claim(
            actor=agent("agent-3"),
            task_id=task_create(
                actor=PLANNER, project_id=scenario.project.pk, title=f"held {n}"
            ).pk,
        )


@pytest.mark.parametrize(
    ("name", "args", "max_queries"),
    [
        ("dashboard:projects", (), 6),
        ("dashboard:overview", ("project",), 16),
        ("dashboard:board", ("project",), 12),
        ("dashboard:graph", ("project",), 12),
        ("dashboard:agents", ("project",), 6),
        ("dashboard:agent", ("project", "agent-3"), 16),
        ("dashboard:task", ("schema",), 16),
    ],
)
def test_page_queries_do_not_grow_with_the_project(
    signed_in, scenario, django_assert_max_num_queries, name, args, max_queries
):
    """Guards against N+1 queries: the same bound holds after the project grows."""
    resolved = [
        scenario.project.pk
        if a == "project"
        else scenario.tasks[a].pk
        if a in scenario.tasks
        else a
        for a in args
    ]
    url = reverse(name, args=resolved)
    with django_assert_max_num_queries(max_queries):
        assert signed_in.get(url).status_code == 200
    _grow(scenario, 15)
    with django_assert_max_num_queries(max_queries):
        assert signed_in.get(url).status_code == 200


def test_a_missing_object_on_a_review_page_is_a_404_not_a_500(signed_in, scenario):
    """Guards against page views letting a domain error escape as a 500."""
    response = signed_in.get(reverse("review:task", args=[999_999]))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "NOT_FOUND",
        "message": "No such task.",
        "details": {"task_id": 999_999},
    }


def test_static_files_are_served_by_the_app(signed_in):
    response = signed_in.get("/static/tascade/vendor/htmx/htmx.min.js")
    assert response.status_code == 200
    assert b"htmx" in b"".join(response.streaming_content)[:2000]


def test_the_overview_shows_the_metric_alerts_of_the_last_day(signed_in, scenario):
    project_id = scenario.project.pk
    two_days_ago = timezone.now() - timedelta(days=2)
    with mock.patch("django.utils.timezone.now", return_value=two_days_ago):
        event_record(project=project_id, kind="metric.alert", actor="system", rule="wip_age")
    event_record(
        project=project_id,
        kind="metric.alert",
        actor="system",
        rule="blocked_ratio",
        message="3 of 4 open tasks are blocked.",
    )
    response = signed_in.get(reverse("dashboard:overview", args=[project_id]))
    assert [a["rule"] for a in response.context["alerts"]] == ["blocked_ratio"]
    assert "3 of 4 open tasks are blocked." in response.content.decode()
