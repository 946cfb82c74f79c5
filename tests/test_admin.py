"""The admin shows every model, lets nobody edit state by hand, and acts through services."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from governance.models import ApiKey
from orchestration.models import DeliveryStatus, Event, Task, TaskState, WebhookDelivery
from orchestration.services import webhooks
from tests.conftest import OPERATOR, agent
from tests.orchestration.helpers import claim

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_client, make_task, edge):
    a, b = make_task("a"), make_task("b")
    edge(a, b)
    claim(a, agent())
    return admin_client


def test_every_model_is_registered_and_listed(staff):
    for app_label in ("orchestration", "governance"):
        for model in apps.get_app_config(app_label).get_models():
            assert model in admin.site._registry, model
            url = reverse(f"admin:{app_label}_{model._meta.model_name}_changelist")
            assert staff.get(url).status_code == 200, url


def test_task_state_cannot_be_edited_by_hand(staff):
    task = Task.objects.get(number=1)
    url = reverse("admin:orchestration_task_change", args=[task.pk])
    staff.post(url, {"state": TaskState.INTEGRATED, "title": "hacked"})
    task.refresh_from_db()
    assert task.state == TaskState.CLAIMED and task.title == "a"
    assert staff.get(reverse("admin:orchestration_task_add")).status_code == 403


def test_admin_action_goes_through_the_service(staff):
    task = Task.objects.get(number=2)
    staff.post(
        reverse("admin:orchestration_task_changelist"),
        {"action": "task_block", "_selected_action": [task.pk]},
    )
    task.refresh_from_db()
    assert task.state == TaskState.BLOCKED
    assert Event.objects.get(task=task, kind="task.blocked").actor == "admin"


def test_api_key_is_created_in_the_admin_and_shown_once(admin_client):
    response = admin_client.post(
        reverse("admin:governance_apikey_add"),
        {"actor": "bot", "label": "", "roles": ["agent"], "project": ""},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    assert any("tsk_" in m for m in shown)
    key = ApiKey.objects.get(actor="bot")
    assert key.roles == ["agent"] and key.key_hash


def test_the_webhook_log_redelivers_through_the_service_and_never_shows_a_secret(
    admin_client, project, make_task
):
    subscription = webhooks.webhook_create(
        actor=OPERATOR, project_id=project.pk, url="https://example.com/h"
    )
    make_task()
    webhooks.webhook_deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED, attempts_left=0, next_attempt_at=None
    )
    for url in (
        reverse("admin:orchestration_webhooksubscription_changelist"),
        reverse("admin:orchestration_webhooksubscription_change", args=[subscription.pk]),
        reverse("admin:orchestration_webhookdelivery_changelist") + "?status=failed",
        reverse("admin:orchestration_webhookdelivery_change", args=[delivery.pk]),
    ):
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert subscription.secret not in page.content.decode(), url

    admin_client.post(
        reverse("admin:orchestration_webhookdelivery_changelist"),
        {"action": "redeliver", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.redeliveries == 1
    assert Event.objects.get(kind="webhook.redelivery_requested").actor == "admin"

    admin_client.post(
        reverse("admin:orchestration_webhooksubscription_changelist"),
        {"action": "deactivate", "_selected_action": [subscription.pk]},
    )
    subscription.refresh_from_db()
    assert not subscription.active
