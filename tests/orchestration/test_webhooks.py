"""Webhooks: signed delivery a receiver can verify, retries with backoff, exactly one delivery
per event and subscription under racing dispatchers, isolation from slow receivers."""

import re
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import IntegrityError, connection, transaction

from governance.actors import Actor
from orchestration.errors import WebhookDeliveryInFlight, WebhookInactive
from orchestration.event_kinds import EVENT_KINDS
from orchestration.models import DeliveryStatus, Event, WebhookDelivery, WebhookSubscription
from orchestration.selectors import events_after
from orchestration.services import plan, webhooks
from orchestration.services.events import event_record
from orchestration.services.lifecycle import utcnow
from orchestration.tasks import webhooks_dispatch
from tascade.celery import app
from tascade.errors import Forbidden, InvalidInput
from tests.conftest import OPERATOR, PLANNER, agent
from tests.orchestration.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def workers_only(monkeypatch):
    """Nothing is queued: fan-out and sending run only when the test plays the workers
    (with Celery eager, a queued job would run inline when its transaction commits)."""
    monkeypatch.setattr(webhooks, "webhooks_announce", lambda project_id: None)
    monkeypatch.setattr(webhooks, "_queue_send", lambda delivery_id, eta=None: None)


@pytest.fixture
def fast_retries(settings):
    settings.TASCADE = {
        **settings.TASCADE,
        "WEBHOOK_MAX_ATTEMPTS": 3,
        "WEBHOOK_BACKOFF_SECONDS": 10,
        "WEBHOOK_BACKOFF_MAX_SECONDS": 3600,
    }


def subscribe(project, receiver, kinds=None) -> WebhookSubscription:
    subscription = webhooks.webhook_create(
        actor=OPERATOR, project_id=project.pk, url=receiver.url, event_kinds=kinds
    )
    receiver.secrets[subscription.pk] = subscription.secret
    return subscription


def wait_for_the_horizon(project, timeout: float = 30.0) -> None:
    """Wait until every committed event of the project is readable in commit order.

    The event log holds back events while any older transaction in the server is still
    running (other sessions, other databases); a committed event is readable soon after.
    """
    wanted = set(Event.objects.filter(project=project).values_list("pk", flat=True))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = {e.pk for e in events_after(Actor.system(), project.pk, limit=10_000)}
        if wanted <= seen:
            return
        time.sleep(0.05)
    raise AssertionError("committed events stayed invisible to the event log")


def deliver_all(now=None) -> list[WebhookDelivery]:
    """What the workers do: fan out, then send every delivery that is due."""
    webhooks.webhook_deliveries_fan_out()
    for delivery_id in webhooks.webhook_deliveries_queue_due(now=now):
        webhooks.webhook_delivery_attempt(delivery_id=delivery_id, now=now)
    return list(WebhookDelivery.objects.order_by("pk"))


# --- signing and what is sent ---------------------------------------------------------------
@pytest.mark.django_db
def test_a_receiver_verifies_the_signature_with_the_secret(project, make_task, receiver):
    subscription = subscribe(project, receiver)
    task = make_task("Add login")
    [delivery] = deliver_all()

    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert delivery.last_status_code == 200 and delivery.response_excerpt == "answer 200"
    [received] = receiver.received
    assert received.verified
    event = Event.objects.get(kind="task.created", task=task)
    assert received.body == {
        "id": event.pk,
        "project": project.pk,
        "task": task.pk,
        "kind": "task.created",
        "actor": PLANNER.name,
        "payload": event.payload,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "subscription": subscription.pk,
        "delivery": delivery.pk,
    }
    assert received.headers["X-Tascade-Event"] == str(event.pk)
    assert received.headers["X-Tascade-Event-Kind"] == "task.created"
    assert received.headers["X-Tascade-Delivery"] == str(delivery.pk)
    assert subscription.secret.startswith("whsec_") and len(subscription.secret) > 40


@pytest.mark.django_db
def test_a_forged_or_tampered_request_fails_verification(project, make_task, receiver):
    """Guards against a signature that does not cover the body (or the timestamp)."""
    subscribe(project, receiver)
    make_task()
    deliver_all()
    [received] = receiver.received
    body = webhooks.webhook_body(WebhookDelivery.objects.get())
    timestamp = int(received.headers["X-Tascade-Timestamp"])
    [secret] = receiver.secrets.values()
    good = webhooks.webhook_signature(secret, timestamp, body)
    assert good == received.headers["X-Tascade-Signature"]
    assert webhooks.webhook_signature("whsec_other", timestamp, body) != good
    assert webhooks.webhook_signature(secret, timestamp + 1, body) != good
    assert webhooks.webhook_signature(secret, timestamp, body + b" ") != good


@pytest.mark.django_db
def test_events_before_the_subscription_are_not_sent(project, make_task, receiver):
    make_task("before")
    subscribe(project, receiver)
    make_task("after")
    deliver_all()
    assert [r.body["payload"]["title"] for r in receiver.received] == ["after"]


@pytest.mark.django_db
def test_the_kinds_filter_takes_exact_kinds_and_families(project, make_task, edge, receiver):
    exact = subscribe(project, receiver, kinds=["task.created"])
    family = webhooks.webhook_create(
        actor=OPERATOR, project_id=project.pk, url=receiver.url, event_kinds=["dependency.*"]
    )
    first, second = make_task("first"), make_task("second")
    edge(first, second)
    deliver_all()
    kinds = {
        sub: sorted(WebhookDelivery.objects.filter(subscription=sub).values_list("event__kind"))
        for sub in (exact, family)
    }
    assert kinds[exact] == [("task.created",), ("task.created",)]
    assert kinds[family] == [("dependency.added",)]


@pytest.mark.django_db
def test_any_kind_is_deliverable_with_an_empty_filter(project, receiver):
    """A kind the catalogue does not know yet (a future metric alert) still reaches a
    subscription that asked for everything."""
    subscribe(project, receiver)
    event_record(project=project, kind="metric.alert", actor="system", figure="lead_time")
    deliver_all()
    assert [r.body["kind"] for r in receiver.received] == ["metric.alert"]


# --- retries -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_failed_delivery_is_retried_with_backoff_until_it_succeeds(
    project, make_task, receiver, fast_retries
):
    receiver.statuses = [500, 503, 200]
    subscribe(project, receiver)
    make_task()
    webhooks.webhook_deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    t0 = utcnow()

    first = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=t0)
    assert first.status == DeliveryStatus.PENDING and first.last_status_code == 500
    assert first.last_error == "HTTP 500" and first.attempts_left == 2
    # The first retry waits 5-10 s (half to all of the 10 s base): not due before.
    assert t0 + timedelta(seconds=5) <= first.next_attempt_at <= t0 + timedelta(seconds=11)
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=t0) is None
    assert webhooks.webhook_deliveries_queue_due(now=t0) == []

    t1 = first.next_attempt_at
    second = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=t1)
    assert second.status == DeliveryStatus.PENDING and second.last_status_code == 503
    # The second one doubles: 10-20 s.
    assert t1 + timedelta(seconds=10) <= second.next_attempt_at <= t1 + timedelta(seconds=21)

    third = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=second.next_attempt_at)
    assert third.status == DeliveryStatus.SUCCEEDED and third.attempts == 3
    assert third.delivered_at is not None and third.last_error == ""
    assert len(receiver.received) == 3
    assert {r.body["id"] for r in receiver.received} == {delivery.event_id}
    assert [r.headers["X-Tascade-Attempt"] for r in receiver.received] == ["1", "2", "3"]

    # Succeeded: never sent again automatically, however late it gets.
    much_later = utcnow() + timedelta(days=30)
    assert webhooks.webhook_deliveries_queue_due(now=much_later) == []
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=much_later) is None
    assert len(receiver.received) == 3


@pytest.mark.django_db
def test_a_delivery_fails_when_its_attempts_run_out(project, make_task, receiver, fast_retries):
    receiver.statuses = [500]
    subscribe(project, receiver)
    make_task()
    webhooks.webhook_deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    now = utcnow()
    for _ in range(3):
        delivery = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=now)
        now = delivery.next_attempt_at or now
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    assert delivery.next_attempt_at is None
    assert webhooks.webhook_deliveries_queue_due(now=now + timedelta(days=1)) == []
    assert len(receiver.received) == 3


def test_backoff_doubles_up_to_the_cap_with_jitter(settings):
    settings.TASCADE = {
        **settings.TASCADE,
        "WEBHOOK_BACKOFF_SECONDS": 10,
        "WEBHOOK_BACKOFF_MAX_SECONDS": 60,
    }
    for attempt, ceiling in [(1, 10), (2, 20), (3, 40), (4, 60), (9, 60)]:
        waits = [webhooks.webhook_backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > ceiling / 10  # spread out, not in lockstep


@pytest.mark.django_db
def test_a_receiver_that_is_down_gets_a_recorded_connection_error(project, make_task):
    with socket_closed_port() as port:
        webhooks.webhook_create(
            actor=OPERATOR, project_id=project.pk, url=f"http://127.0.0.1:{port}/hook"
        )
        make_task()
        [delivery] = deliver_all()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_status_code is None and delivery.last_error.startswith("ConnectError")


class socket_closed_port:
    """A local port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        return self.port

    def __exit__(self, *exc) -> None:
        pass


# --- exactly one delivery per event -------------------------------------------------------------
@pytest.mark.django_db
def test_the_database_refuses_a_second_delivery_of_an_event(project, make_task, receiver):
    subscription = subscribe(project, receiver)
    make_task()
    webhooks.webhook_deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(
            project=project, subscription=subscription, event=delivery.event, attempts_left=1
        )


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_racing_dispatchers_and_senders_deliver_each_event_once(
    project, make_task, receiver, workers_only
):
    """Guards against two dispatchers fanning out the same events, or two workers sending
    the same delivery: every event reaches the receiver exactly once."""
    if connection.vendor != "postgresql":
        pytest.skip("proves row locking on PostgreSQL")
    subscribe(project, receiver, kinds=["task.created"])
    subscribe(project, receiver, kinds=["task.*"])
    for n in range(40):
        make_task(f"t{n}")
    expected = set(Event.objects.filter(kind="task.created").values_list("pk", flat=True))
    wait_for_the_horizon(project)
    workers = 6
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work():
        try:
            barrier.wait()
            webhooks.webhook_deliveries_fan_out()
            barrier.wait()
            for delivery_id in webhooks.webhook_deliveries_queue_due():
                webhooks.webhook_delivery_attempt(delivery_id=delivery_id)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert WebhookDelivery.objects.count() == 2 * len(expected)
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}
    assert WebhookDelivery.objects.filter(attempts=1).count() == 2 * len(expected)
    received = receiver.event_ids()
    assert len(received) == 2 * len(expected)
    for subscription in WebhookSubscription.objects.all():
        ids = [r.body["id"] for r in receiver.received if r.body["subscription"] == subscription.pk]
        assert sorted(ids) == sorted(set(ids))  # no event twice to one subscription
        assert expected <= set(ids)
    assert all(r.verified for r in receiver.received)


# --- isolation ------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_hanging_receiver_does_not_hold_up_another_subscription(
    project, make_task, settings, workers_only
):
    settings.TASCADE = {**settings.TASCADE, "WEBHOOK_READ_TIMEOUT_SECONDS": 1.5}
    hanging, healthy = Receiver(hang=True).start(), Receiver().start()
    try:
        subscribe(project, hanging, kinds=["task.created"])
        subscribe(project, healthy, kinds=["task.created"])
        make_task()
        wait_for_the_horizon(project)
        webhooks.webhook_deliveries_fan_out()
        slow, fast = WebhookDelivery.objects.order_by("subscription_id")
        finished: dict[int, float] = {}
        start = time.monotonic()

        def send(delivery_id):
            webhooks.webhook_delivery_attempt(delivery_id=delivery_id)
            finished[delivery_id] = time.monotonic() - start
            connection.close()

        threads = [threading.Thread(target=send, args=(d.pk,)) for d in (slow, fast)]
        for thread in threads:
            thread.start()
        threads[1].join(10)
        assert finished.get(fast.pk) is not None and finished[fast.pk] < 1.0
        threads[0].join(10)
    finally:
        hanging.stop()
        healthy.stop()
    slow.refresh_from_db()
    fast.refresh_from_db()
    assert fast.status == DeliveryStatus.SUCCEEDED and len(healthy.received) == 1
    assert slow.status == DeliveryStatus.PENDING and slow.last_error.startswith("ReadTimeout")
    assert 1.4 <= finished[slow.pk] < 5, (finished, slow.last_error, slow.last_duration_ms)


@contextmanager
def broker_down():
    """Celery publishing for real (not eager) to a broker address nothing listens on."""
    saved = (
        app.conf.task_always_eager,
        app.conf.broker_url,
        app._pool,
        app.amqp._producer_pool,
    )
    app.conf.task_always_eager = False
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app._pool = app.amqp._producer_pool = None
    webhooks._announce_pool.clear()
    try:
        yield
    finally:
        webhooks._announce_pool.clear()
        (
            app.conf.task_always_eager,
            app.conf.broker_url,
            app._pool,
            app.amqp._producer_pool,
        ) = saved


@pytest.mark.django_db(transaction=True)
def test_writes_do_not_wait_for_webhooks_even_with_the_broker_down(
    project, make_task, receiver, caplog
):
    """Guards against an event write that sends, or waits on the broker: with the broker
    unreachable the write commits at once, and the beat safety net delivers later."""
    subscribe(project, receiver)
    receiver.hang = True
    with broker_down():
        start = time.monotonic()
        task = make_task("written anyway")
        elapsed = time.monotonic() - start
    assert elapsed < 1.0
    assert "Could not queue the webhook fan-out" in caplog.text  # the announcement was tried
    assert Event.objects.filter(task=task, kind="task.created").exists()
    assert not WebhookDelivery.objects.exists()  # nothing was fanned out inside the write
    receiver.hang = False
    wait_for_the_horizon(project)
    deliver_all()  # what beat's dispatch does
    assert [r.body["task"] for r in receiver.received] == [task.pk]


# --- announcing ---------------------------------------------------------------------------------
def _kicks(callbacks):
    return [c for c in callbacks if isinstance(c, webhooks._FanOutKick)]


@pytest.mark.django_db
def test_a_write_announces_its_events_once_and_only_for_subscribed_projects(
    project, make_task, edge, receiver, django_capture_on_commit_callbacks
):
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    first, second = make_task(), make_task()
    with django_capture_on_commit_callbacks() as callbacks:
        plan.task_create(actor=PLANNER, project_id=other.pk, title="unsubscribed")
    assert _kicks(callbacks) == []

    subscribe(project, receiver)
    with django_capture_on_commit_callbacks() as callbacks:
        edge(first, second)  # writes more than one event
    assert [k.project_id for k in _kicks(callbacks)] == [project.pk]


@pytest.mark.django_db
def test_committed_events_reach_the_receiver_through_the_queued_jobs(
    project, make_task, receiver, django_capture_on_commit_callbacks
):
    """End to end with Celery eager: commit → fan-out job → delivery job → receiver."""
    subscribe(project, receiver)
    with django_capture_on_commit_callbacks(execute=True):
        task = make_task()
    assert [r.body["task"] for r in receiver.received] == [task.pk]
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED


# --- subscriptions ------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com/hook",
        "http://",
        "javascript:alert(1)",
        "",
        "http://u:p@example.com/",
    ],
)
def test_a_bad_url_is_refused_and_changes_nothing(project, url):
    events = Event.objects.count()
    with pytest.raises(InvalidInput) as refused:
        webhooks.webhook_create(actor=OPERATOR, project_id=project.pk, url=url)
    assert "url" in refused.value.details["fields"]
    assert not WebhookSubscription.objects.exists() and Event.objects.count() == events


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kinds", [["task.readyy"], ["nope.*"], ["*"], ["task.ready", "Task.ready"]]
)
def test_an_unknown_kind_is_refused_and_changes_nothing(project, kinds):
    with pytest.raises(InvalidInput) as refused:
        webhooks.webhook_create(
            actor=OPERATOR, project_id=project.pk, url="https://example.com/h", event_kinds=kinds
        )
    assert "event_kinds" in refused.value.details["fields"]
    assert not WebhookSubscription.objects.exists()


@pytest.mark.django_db
def test_an_overlong_url_or_description_is_refused(project):
    """Guards against a length the database would refuse with a server error."""
    with pytest.raises(InvalidInput):
        webhooks.webhook_create(
            actor=OPERATOR, project_id=project.pk, url="https://example.com/" + "a" * 2000
        )
    with pytest.raises(InvalidInput):
        webhooks.webhook_create(
            actor=OPERATOR, project_id=project.pk, url="https://e.com/", description="d" * 501
        )
    assert not WebhookSubscription.objects.exists()


@pytest.mark.django_db
def test_only_operators_manage_webhooks(project):
    with pytest.raises(Forbidden):
        webhooks.webhook_create(actor=agent(), project_id=project.pk, url="https://example.com/h")
    with pytest.raises(Forbidden):
        webhooks.webhook_create(actor=PLANNER, project_id=project.pk, url="https://example.com/h")


@pytest.mark.django_db
def test_creating_and_changing_a_subscription_is_recorded_without_the_secret(project):
    subscription = webhooks.webhook_create(
        actor=OPERATOR, project_id=project.pk, url="https://example.com/h", event_kinds=["task.*"]
    )
    webhooks.webhook_update(actor=OPERATOR, webhook_id=subscription.pk, active=False)
    created, updated = Event.objects.filter(kind__startswith="webhook.").order_by("pk")
    assert created.kind == "webhook.created" and created.payload["event_kinds"] == ["task.*"]
    assert updated.kind == "webhook.updated" and updated.payload["active"] is False
    assert all(subscription.secret not in str(e.payload) for e in (created, updated))


@pytest.mark.django_db
def test_a_deactivated_subscription_gets_nothing_and_on_reactivation_only_what_follows(
    project, make_task, receiver
):
    subscription = subscribe(project, receiver, kinds=["task.created"])
    webhooks.webhook_update(actor=OPERATOR, webhook_id=subscription.pk, active=False)
    make_task("while off")
    deliver_all()
    assert receiver.received == [] and not WebhookDelivery.objects.exists()
    webhooks.webhook_update(actor=OPERATOR, webhook_id=subscription.pk, active=True)
    make_task("back on")
    deliver_all()
    assert [r.body["payload"]["title"] for r in receiver.received] == ["back on"]


@pytest.mark.django_db
def test_pending_deliveries_of_a_deactivated_subscription_wait(project, make_task, receiver):
    subscription = subscribe(project, receiver)
    make_task()
    webhooks.webhook_deliveries_fan_out()
    webhooks.webhook_update(actor=OPERATOR, webhook_id=subscription.pk, active=False)
    delivery = WebhookDelivery.objects.get()
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk) is None
    assert receiver.received == []


# --- redelivery ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_operator_redelivers_a_delivery_as_a_new_round_on_the_same_row(
    project, make_task, receiver, fast_retries
):
    subscribe(project, receiver, kinds=["task.*"])
    make_task()
    [delivery] = deliver_all()
    assert delivery.status == DeliveryStatus.SUCCEEDED

    again = webhooks.webhook_redeliver(actor=OPERATOR, delivery_id=delivery.pk)
    assert again.status == DeliveryStatus.PENDING and again.attempts_left == 3
    assert again.redeliveries == 1
    [resent] = deliver_all()
    assert resent.pk == delivery.pk and resent.status == DeliveryStatus.SUCCEEDED
    assert resent.attempts == 2 and WebhookDelivery.objects.count() == 1
    first, second = receiver.received
    assert first.body == second.body and second.verified
    assert second.headers["X-Tascade-Delivery"] == str(delivery.pk)
    recorded = Event.objects.get(kind="webhook.redelivery_requested")
    assert recorded.actor == OPERATOR.name and recorded.payload["delivery_id"] == delivery.pk


@pytest.mark.django_db
def test_a_failed_delivery_gets_a_fresh_round_of_attempts(
    project, make_task, receiver, fast_retries
):
    receiver.statuses = [500, 500, 500, 200]
    subscribe(project, receiver, kinds=["task.*"])
    make_task()
    webhooks.webhook_deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    now = utcnow()
    for _ in range(3):
        delivery = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=now)
        now = delivery.next_attempt_at or now
    assert delivery.status == DeliveryStatus.FAILED
    webhooks.webhook_redeliver(actor=OPERATOR, delivery_id=delivery.pk)
    [delivery] = deliver_all()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 4


@pytest.mark.django_db
def test_redelivery_is_refused_while_sending_or_when_deactivated(project, make_task, receiver):
    subscription = subscribe(project, receiver)
    make_task()
    webhooks.webhook_deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, next_attempt_at=utcnow() + timedelta(minutes=1)
    )
    with pytest.raises(WebhookDeliveryInFlight):
        webhooks.webhook_redeliver(actor=OPERATOR, delivery_id=delivery.pk)
    webhooks.webhook_update(actor=OPERATOR, webhook_id=subscription.pk, active=False)
    with pytest.raises(WebhookInactive):
        webhooks.webhook_redeliver(actor=OPERATOR, delivery_id=delivery.pk)
    with pytest.raises(Forbidden):
        webhooks.webhook_redeliver(actor=agent(), delivery_id=delivery.pk)
    assert WebhookDelivery.objects.get().redeliveries == 0


@pytest.mark.django_db
def test_a_sender_that_vanished_is_taken_over_after_its_claim_lapses(project, make_task, receiver):
    subscribe(project, receiver)
    make_task()
    webhooks.webhook_deliveries_fan_out()
    delivery = WebhookDelivery.objects.get()
    now = utcnow()
    # A worker claimed it and died before sending.
    claimed = webhooks._claim(delivery.pk, now)
    assert claimed.status == DeliveryStatus.SENDING
    assert webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=now) is None
    lapsed = claimed.next_attempt_at
    assert webhooks.webhook_deliveries_queue_due(now=lapsed) == [delivery.pk]
    done = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk, now=lapsed)
    assert done.status == DeliveryStatus.SUCCEEDED and done.attempts == 2
    assert len(receiver.received) == 1


# --- the catalogue --------------------------------------------------------------------------------
def test_every_event_kind_the_code_writes_is_in_the_catalogue():
    """Guards against a new event kind that subscriptions could not ask for by name."""
    written: set[str] = set()
    # ``kind="x.y"``, ``ALERT_KIND = "x.y"``, and bare "task.…" strings (kinds picked by a
    # conditional), but not a serializer's ``source="task.ref"``.
    pattern = re.compile(
        r'(?:kind|[A-Z_]+_KIND)\s*=\s*"([a-z_]+\.[a-z_]+)"|(?<!source=)"(task\.[a-z_]+)"'
    )
    for package in ("orchestration", "governance", "metrics"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for match in pattern.finditer(path.read_text()):
                written.add(match.group(1) or match.group(2))
    assert written, "the scan found no kinds at all"
    assert written - EVENT_KINDS == set()


# --- the beat safety net ------------------------------------------------------------------------
@pytest.mark.django_db
def test_beat_dispatch_delivers_what_no_announcement_queued(
    project, make_task, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    """Guards against events lost with their announcement (broker down, message lost)."""
    entry = app.conf.beat_schedule["dispatch-webhooks"]
    assert entry["task"] == webhooks_dispatch.name and entry["schedule"] > 0
    subscribe(project, receiver)
    monkeypatch.setattr(webhooks, "webhooks_announce", lambda project_id: None)
    task = make_task()
    assert not WebhookDelivery.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        result = webhooks_dispatch.apply().get()
    [delivery] = WebhookDelivery.objects.all()
    assert result["deliveries"] == [delivery.pk]
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert [r.body["task"] for r in receiver.received] == [task.pk]
