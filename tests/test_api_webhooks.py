"""Webhooks over HTTP: operators manage subscriptions, the secret is shown once, the delivery
log and redelivery, bad input refused with nothing changed, other projects invisible."""

import pytest

from orchestration.models import Event, WebhookDelivery, WebhookSubscription
from orchestration.services import plan, webhooks
from tests.conftest import OPERATOR, PLANNER
from tests.orchestration.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def test_an_operator_subscribes_and_the_secret_is_shown_once(api, project, make_task, receiver):
    operator = api("operator", actor="ops")
    created = operator.post(
        f"/api/v1/projects/{project.pk}/webhooks/",
        {"url": receiver.url, "event_kinds": ["task.*"], "description": "chat"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["active"] is True
    assert body["created_by"] == "ops" and body["event_kinds"] == ["task.*"]
    receiver.secrets[body["id"]] = body["secret"]

    listed = operator.get(f"/api/v1/projects/{project.pk}/webhooks/").json()["results"]
    detail = operator.get(f"/api/v1/webhooks/{body['id']}/").json()
    assert [w["id"] for w in listed] == [body["id"]]
    assert "secret" not in listed[0] and "secret" not in detail
    assert body["secret"] not in str(list(Event.objects.values_list("payload", flat=True)))

    make_task("Ship it")
    webhooks.webhook_deliveries_fan_out()
    [delivery_id] = webhooks.webhook_deliveries_queue_due()
    webhooks.webhook_delivery_attempt(delivery_id=delivery_id)
    assert [r.verified for r in receiver.received] == [True]

    log = operator.get(f"/api/v1/projects/{project.pk}/webhook-deliveries/?status=succeeded")
    [entry] = log.json()["results"]
    assert entry["id"] == delivery_id and entry["event_kind"] == "task.created"
    assert entry["attempts"] == 1 and entry["last_status_code"] == 200
    assert (
        operator.get(f"/api/v1/projects/{project.pk}/webhook-deliveries/?status=failed").json()[
            "results"
        ]
        == []
    )

    again = operator.post(f"/api/v1/webhook-deliveries/{delivery_id}/redeliver/")
    assert again.status_code == 200 and again.json()["status"] == "pending"
    assert again.json()["redeliveries"] == 1
    assert operator.get(f"/api/v1/webhook-deliveries/{delivery_id}/").json()["status"] == "pending"


def test_an_operator_changes_and_deactivates_a_subscription(api, project):
    operator = api("operator")
    created = operator.post(
        f"/api/v1/projects/{project.pk}/webhooks/",
        {"url": "https://hooks.example.com/a"},
        format="json",
    ).json()
    changed = operator.patch(
        f"/api/v1/webhooks/{created['id']}/",
        {"url": "https://hooks.example.com/b", "event_kinds": ["review.recorded"], "active": False},
        format="json",
    )
    assert changed.status_code == 200
    assert changed.json()["url"] == "https://hooks.example.com/b"
    assert changed.json()["active"] is False and "secret" not in changed.json()
    assert Event.objects.filter(kind="webhook.updated").get().payload["active"] is False
    inactive = operator.get(f"/api/v1/projects/{project.pk}/webhooks/?active=false").json()
    assert [w["id"] for w in inactive["results"]] == [created["id"]]


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x"},
        {"url": "not a url"},
        {"url": "https://user:pw@example.com/"},
        {"url": "https://example.com/h", "event_kinds": ["task.nope"]},
        {"url": "https://example.com/h", "event_kinds": "task.ready"},
        {"url": "https://example.com/h", "event_kinds": [1]},
        {},
    ],
)
def test_bad_input_is_a_400_and_changes_nothing(api, project, body):
    events = Event.objects.count()
    answer = api("operator").post(f"/api/v1/projects/{project.pk}/webhooks/", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not WebhookSubscription.objects.exists() and Event.objects.count() == events


def test_a_bad_update_is_a_400_and_changes_nothing(api, project):
    subscription = webhooks.webhook_create(
        actor=OPERATOR, project_id=project.pk, url="https://example.com/h"
    )
    answer = api("operator").patch(
        f"/api/v1/webhooks/{subscription.pk}/",
        {"url": "gopher://example.com", "active": False},
        format="json",
    )
    assert answer.status_code == 400
    subscription.refresh_from_db()
    assert subscription.url == "https://example.com/h" and subscription.active


def test_agents_and_planners_may_not_see_webhooks(api, project):
    subscription = webhooks.webhook_create(
        actor=OPERATOR, project_id=project.pk, url="https://example.com/h"
    )
    for role in ("agent", "planner", "reviewer"):
        client = api(role)
        assert client.get(f"/api/v1/projects/{project.pk}/webhooks/").status_code == 403
        assert client.get(f"/api/v1/webhooks/{subscription.pk}/").status_code == 403
        assert (
            client.post(
                f"/api/v1/projects/{project.pk}/webhooks/",
                {"url": "https://example.com/x"},
                format="json",
            ).status_code
            == 403
        )
        assert client.get(f"/api/v1/projects/{project.pk}/webhook-deliveries/").status_code == 403
    assert WebhookSubscription.objects.count() == 1


def test_a_key_of_another_project_gets_404(api, project, make_task):
    subscription = webhooks.webhook_create(
        actor=OPERATOR, project_id=project.pk, url="https://example.com/h"
    )
    make_task()
    webhooks_fan_out_without_sending()
    delivery = WebhookDelivery.objects.get()
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    outsider = api("operator", project=other)
    for path in (
        f"/api/v1/projects/{project.pk}/webhooks/",
        f"/api/v1/webhooks/{subscription.pk}/",
        f"/api/v1/projects/{project.pk}/webhook-deliveries/",
        f"/api/v1/webhook-deliveries/{delivery.pk}/",
    ):
        assert outsider.get(path).status_code == 404, path
    assert outsider.post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/").status_code == 404
    assert (
        outsider.patch(
            f"/api/v1/webhooks/{subscription.pk}/", {"active": False}, format="json"
        ).status_code
        == 404
    )
    assert WebhookSubscription.objects.get().active
    assert WebhookDelivery.objects.get().redeliveries == 0
    # Its own project's log is empty, not someone else's.
    assert outsider.get(f"/api/v1/projects/{other.pk}/webhook-deliveries/").json()["results"] == []


def test_redelivering_for_a_deactivated_subscription_is_a_409(api, project, make_task):
    subscription = webhooks.webhook_create(
        actor=OPERATOR, project_id=project.pk, url="https://example.com/h"
    )
    make_task()
    webhooks_fan_out_without_sending()
    webhooks.webhook_update(actor=OPERATOR, webhook_id=subscription.pk, active=False)
    delivery = WebhookDelivery.objects.get()
    answer = api("operator").post(f"/api/v1/webhook-deliveries/{delivery.pk}/redeliver/")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "WEBHOOK_INACTIVE"


def webhooks_fan_out_without_sending():
    """Fan out only: in a test transaction the queued sends never run."""
    webhooks.webhook_deliveries_fan_out()
