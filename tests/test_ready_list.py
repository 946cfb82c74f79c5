"""The ready list: what claim-next would offer, in its order, with expiry enforced on read."""

import pytest
from django.utils import timezone

from orchestration.models import Lease, Task
from orchestration.services import leases
from tests.conftest import agent
from tests.orchestration.helpers import claim

pytestmark = pytest.mark.django_db


def _all_pages(client, url):
    page = client.get(url).json()
    seen = [t["id"] for t in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [t["id"] for t in page["results"]]
    return seen


def test_pages_follow_priority_then_age_across_ties(api, project, make_task):
    """Guards against a cursor that repeats or drops tasks among equal priorities."""
    tasks = [make_task(f"t{i}", priority=i % 3) for i in range(23)]
    expected = [t.pk for t in sorted(tasks, key=lambda t: (t.priority, t.created_at, t.pk))]
    client = api("agent")
    assert _all_pages(client, f"/api/v1/projects/{project.pk}/ready/?page_size=4") == expected


def test_a_page_stays_put_while_earlier_tasks_are_claimed(api, project, make_task):
    """Guards against offset paging, which skips tasks when earlier ones leave the list."""
    tasks = [make_task(f"t{i}") for i in range(6)]
    client = api("agent")
    first = client.get(f"/api/v1/projects/{project.pk}/ready/?page_size=3").json()
    for task in tasks[:3]:
        claim(task, agent("someone"))
    second = client.get(first["next"]).json()
    assert [t["id"] for t in second["results"]] == [t.pk for t in tasks[3:]]


def test_a_tampered_cursor_is_refused_cleanly(api, project, make_task):
    make_task()
    response = api("agent").get(f"/api/v1/projects/{project.pk}/ready/?cursor=bm9wZQ==")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_lapsed_leases_are_returned_to_the_list_on_read(api, project, make_task):
    """Guards against a list that shows an abandoned task as held until the sweep runs."""
    task = make_task()
    lease = claim(task, agent("vanished"))
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now())
    Task.objects.filter(pk=task.pk).update(hold_expires_at=timezone.now())
    listed = api("agent").get(f"/api/v1/projects/{project.pk}/ready/").json()["results"]
    assert [t["id"] for t in listed] == [task.pk]


def test_a_lapsed_lease_reads_as_expired_before_anything_records_it(api, make_task):
    task = make_task()
    lease = claim(task, agent("slow"))
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now())
    body = api("agent").get(f"/api/v1/leases/{lease.pk}/").json()
    assert body["status"] == "expired"
    assert Lease.objects.get(pk=lease.pk).status == "active"  # a read records nothing here


@pytest.mark.parametrize(
    "query,expected",
    [
        ("", ["plain", "py", "rust"]),
        ("?capabilities=python", ["plain", "py"]),
        ("?capabilities=", ["plain"]),
    ],
)
def test_capabilities_mean_the_same_as_in_claim_next(api, project, make_task, query, expected):
    make_task("plain")
    make_task("py", capability_tags=["python"])
    make_task("rust", capability_tags=["rust"])
    listed = api("agent").get(f"/api/v1/projects/{project.pk}/ready/{query}").json()["results"]
    assert [t["title"] for t in listed] == expected
    capabilities = None if query == "" else [c for c in query.split("=")[1].split(",") if c]
    lease = leases.task_claim_next(actor=agent(), project_id=project.pk, capabilities=capabilities)
    assert Task.objects.get(pk=lease.task_id).title == expected[0]
