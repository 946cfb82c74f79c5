"""The reviewer's screens: the admin queue and the review page, as a signed-in person."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from django_celery_results.models import TaskResult

from governance.models import GateDecision, Review
from governance.services.gates import gate_rule_create, gates_evaluate
from orchestration.models import Task, TaskState
from tests.conftest import PLANNER, agent
from tests.orchestration.helpers import implement, later

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(client):
    """Sign in as a staff user with the reviewer role (a group named after it)."""

    def sign_in(username: str):
        user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True)
        user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture
def implemented(make_task):
    task = make_task("Add login", work_spec={"objective": "users log in"})
    implement(task, agent("builder"))
    return Task.objects.get(pk=task.pk)


def test_the_queue_and_the_task_page_show_what_a_reviewer_needs(person, implemented):
    client = person("rita")
    queue = client.get(reverse("review:queue-project", args=[implemented.project_id]))
    assert queue.status_code == 200
    assert implemented.ref.encode() in queue.content
    page = client.get(reverse("review:task", args=[implemented.pk]))
    body = page.content.decode()
    assert "users log in" in body  # the spec
    assert "abc1234" in body  # the artifact's commit
    assert "task.implemented" in body  # the history
    assert 'name="rationale"' in body


def test_approve_through_the_page(person, implemented):
    client = person("rita")
    response = client.post(
        reverse("review:task", args=[implemented.pk]),
        {"verdict": "approved", "rationale": "covers the edge cases"},
        follow=True,
    )
    assert response.status_code == 200
    review = Review.objects.get(task=implemented)
    assert (review.reviewer, review.verdict) == ("rita", "approved")
    # Back on the queue, which no longer lists the approved task.
    assert reverse("review:task", args=[implemented.pk]).encode() not in response.content


def test_request_changes_and_reject_through_the_page(person, make_task):
    client = person("rita")
    first, second = make_task("one"), make_task("two")
    implement(first, agent("builder"))
    implement(second, agent("builder"))
    client.post(
        reverse("review:task", args=[first.pk]),
        {"verdict": "changes_requested", "rationale": "add tests"},
    )
    client.post(
        reverse("review:task", args=[second.pk]), {"verdict": "rejected", "rationale": "not needed"}
    )
    assert Task.objects.get(pk=first.pk).state == TaskState.READY
    assert Task.objects.get(pk=second.pk).state == TaskState.ABANDONED


def test_the_implementer_is_refused_and_sees_why(person, implemented):
    """Guards against self-approval through the web pages (identity = the signed-in user)."""
    client = person("builder")
    page = client.get(reverse("review:task", args=[implemented.pk]))
    assert b"You implemented this task" in page.content
    response = client.post(
        reverse("review:task", args=[implemented.pk]),
        {"verdict": "approved", "rationale": "trust me"},
    )
    assert response.status_code == 400
    assert b"Nobody may review work they implemented." in response.content
    assert not Review.objects.exists()


def test_a_review_without_rationale_changes_nothing(person, implemented):
    client = person("rita")
    response = client.post(
        reverse("review:task", args=[implemented.pk]), {"verdict": "approved", "rationale": ""}
    )
    assert response.status_code == 400
    assert not Review.objects.exists()
    assert Task.objects.get(pk=implemented.pk).state == TaskState.IMPLEMENTED


def test_the_admin_review_queue_lists_risky_work_first(admin_client, make_task):
    plain, risky = make_task("plain"), make_task("schema change", task_class="migration")
    implement(plain, agent("builder"))
    implement(risky, agent("builder"))
    page = admin_client.get(reverse("admin:governance_reviewqueueitem_changelist"))
    body = page.content.decode()
    assert page.status_code == 200
    assert body.index("schema change") < body.index("plain")
    assert reverse("review:task", args=[risky.pk]) in body


def test_pages_need_a_staff_sign_in(client, implemented):
    response = client.get(reverse("review:task", args=[implemented.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.fixture
def checkpoint(project, make_task):
    gate_rule_create(
        actor=PLANNER,
        project_id=project.pk,
        name="batch",
        trigger="unreviewed_backlog",
        threshold=1,
        sla_hours=1,
    )
    task = make_task("batched")
    implement(task, agent("builder"))
    [checkpoint] = gates_evaluate()
    return checkpoint


def test_the_queue_shows_checkpoints_and_their_sla(person, checkpoint):
    gates_evaluate(now=later(2 * 3600))
    page = person("rita").get(reverse("review:queue-project", args=[checkpoint.project_id]))
    body = page.content.decode()
    assert reverse("review:checkpoint", args=[checkpoint.pk]) in body
    assert "SLA breached" in body


def test_a_checkpoint_is_decided_through_its_page(person, checkpoint):
    client = person("rita")
    response = client.post(
        reverse("review:checkpoint", args=[checkpoint.pk]),
        {"verdict": "approved", "rationale": "batch is fine"},
        follow=True,
    )
    assert response.status_code == 200
    assert GateDecision.objects.get(checkpoint=checkpoint).reviewer == "rita"


def test_an_implementer_of_a_candidate_cannot_decide_the_checkpoint(person, checkpoint):
    client = person("builder")
    assert (
        b"somebody else must decide it"
        in client.get(reverse("review:checkpoint", args=[checkpoint.pk])).content
    )
    response = client.post(
        reverse("review:checkpoint", args=[checkpoint.pk]),
        {"verdict": "approved", "rationale": "mine"},
    )
    assert response.status_code == 400
    assert b"Nobody may review work they implemented." in response.content
    assert not GateDecision.objects.exists()


def test_the_operations_page_shows_jobs_queue_breaches_and_expiries(admin_client, checkpoint):
    TaskResult.objects.create(
        task_id="t1",
        task_name="orchestration.sweep_expired_holds",
        status="SUCCESS",
        result='{"expired": 2}',
    )
    gates_evaluate(now=later(2 * 3600))
    page = admin_client.get(reverse("ops-health"))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Expiry sweep" in body and "expired" in body
    assert "Gate evaluation" in body and "never" in body  # never ran: flagged late
    assert reverse("review:checkpoint", args=[checkpoint.pk]) in body  # breached, undecided
