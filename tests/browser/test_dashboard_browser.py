"""The dashboard in a real browser: dependency links drawn on the board, a live update
arriving without a reload after an API call, and the task timeline."""

import json
import urllib.request

import pytest

from governance.services.api_keys import api_key_create
from tests.conftest import ADMIN
from tests.dashboard.scenario import build_scenario

pytestmark = pytest.mark.browser


def _api(live_server, method: str, path: str, key: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{live_server.url}/api/v1{path}",
        method=method,
        data=json.dumps(body or {}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def test_the_board_draws_a_link_for_every_dependency(live_server, sign_in, screenshot):
    scenario = build_scenario()
    page = sign_in()
    page.goto(f"{live_server.url}/projects/{scenario.project.pk}/board/")
    page.wait_for_function(
        f"document.querySelector('.board').dataset.linksDrawn == '{len(scenario.edges)}'"
    )
    drawn = page.eval_on_selector_all(
        "svg.links path", "ps => ps.map(p => [+p.dataset.from, +p.dataset.to, p.getAttribute('d')])"
    )
    expected = {(scenario.tasks[p].pk, scenario.tasks[d].pk) for p, d in scenario.edges}
    assert {(a, b) for a, b, _ in drawn} == expected
    assert all(d.startswith("M") and " C" in d for _, _, d in drawn)
    # Each link joins two cards that are on the page.
    cards = set(page.eval_on_selector_all(".card", "cs => cs.map(c => +c.dataset.taskId)"))
    assert {a for a, _, _ in drawn} | {b for _, b, _ in drawn} <= cards
    assert page.js_errors == []
    screenshot(page, "board")


def test_a_claim_through_the_api_appears_on_the_open_board_without_a_reload(
    live_server, sign_in, screenshot
):
    scenario = build_scenario()
    key = api_key_create(actor=ADMIN, key_actor="agent-7", roles=["agent"]).raw_key
    page = sign_in()
    page.goto(f"{live_server.url}/projects/{scenario.project.pk}/board/")
    page.evaluate("window.__sameDocument = true")
    ready = page.eval_on_selector_all(
        '[data-column="ready"] .card', "cs => cs.map(c => +c.dataset.taskId)"
    )
    assert ready, "the scenario has ready tasks"
    task_id = ready[0]
    assert page.query_selector(f'[data-column="claimed"] .card[data-task-id="{task_id}"]') is None

    _api(live_server, "POST", f"/tasks/{task_id}/claim/", key)

    page.wait_for_selector(f'[data-column="claimed"] .card[data-task-id="{task_id}"]')
    assert page.query_selector(f'[data-column="ready"] .card[data-task-id="{task_id}"]') is None
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert "agent-7" in page.inner_text(f'.card[data-task-id="{task_id}"]')
    assert page.js_errors == []


def test_the_task_timeline_shows_a_claim_an_artifact_and_a_review(live_server, sign_in, screenshot):
    scenario = build_scenario()
    page = sign_in()
    page.goto(f"{live_server.url}/tasks/{scenario.tasks['schema'].pk}/")
    timeline = page.locator("#timeline")
    for kind, text in [
        ("task.claimed", "agent-1"),
        ("artifact.published", "t1-orders-schema"),
        ("review.recorded", "Migration is reversible and indexed."),
    ]:
        entry = timeline.locator(f'li[data-kind="{kind}"]')
        assert entry.count() == 1, kind
        assert entry.is_visible() and text in entry.inner_text()
    kinds = page.eval_on_selector_all("#timeline li", "ls => ls.map(l => l.dataset.kind)")
    assert kinds.index("task.claimed") < kinds.index("artifact.published")
    assert kinds.index("artifact.published") < kinds.index("review.recorded")
    assert page.js_errors == []
    screenshot(page, "task")


def test_the_overview_graph_and_agent_pages_render_and_stay_live(live_server, sign_in, screenshot):
    scenario = build_scenario()
    key = api_key_create(actor=ADMIN, key_actor="agent-8", roles=["agent"]).raw_key
    project = scenario.project.pk
    page = sign_in()

    page.goto(f"{live_server.url}/projects/{project}/")
    claimed = page.locator('#state-counts [data-state="claimed"] b')
    before = int(claimed.inner_text())
    model = scenario.task("model")
    assert model.state == "ready"
    _api(live_server, "POST", f"/tasks/{model.pk}/claim/", key)
    page.wait_for_function(
        "n => +document.querySelector('#state-counts [data-state=\"claimed\"] b').innerText == n",
        arg=before + 1,
    )
    assert "agent-8" in page.inner_text("#agents-active")
    screenshot(page, "overview")

    page.goto(f"{live_server.url}/projects/{project}/graph/")
    assert page.locator("svg.dag g.node").count() == len(scenario.tasks)
    assert page.locator("svg.dag path.edge.critical").count() >= 1
    assert page.locator("svg.dag g.node.critical").count() >= 2
    screenshot(page, "graph")

    page.goto(f"{live_server.url}/projects/{project}/agents/agent-3/")
    assert scenario.tasks["ui"].ref in page.inner_text("#holding")
    assert scenario.tasks["flags"].ref in page.inner_text("#failed")
    screenshot(page, "agent")
    assert page.js_errors == []
