"""Webhooks: subscriptions, the fan-out of events to deliveries, and signed delivery.

Three steps, none of them inside the transaction that writes an event (docs/webhooks.md):

1. ``webhooks_announce`` — when a transaction that wrote events of a project with active
   subscriptions commits, one fan-out job is queued. A write never waits for a receiver,
   and a broker that is down costs it nothing (the beat safety net catches up).
2. ``webhook_deliveries_fan_out`` — per subscription, under its row lock taken with SKIP
   LOCKED, reads the events after the subscription's cursor in commit order (the event
   log's horizon rule, ``selectors.events_after``), makes one delivery per matching event
   and moves the cursor. The unique (subscription, event) constraint makes a second
   delivery of one event impossible whatever dispatchers race.
3. ``webhook_delivery_attempt`` — claims one due delivery (SKIP LOCKED, then a ``sending``
   mark with a claim window, so the HTTP call runs outside any transaction and no second
   worker sends it meanwhile), POSTs it signed, and records the outcome: succeeded on a
   2xx, else retried with exponential backoff and jitter until the round's attempts run
   out (``failed``). A succeeded delivery is never sent again unless an operator asks.
"""

import hashlib
import hmac
import json
import logging
import random
import secrets
import threading
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q

from governance.actors import Actor, Role
from orchestration.errors import WebhookDeliveryInFlight, WebhookInactive
from orchestration.event_kinds import kind_matches, kind_pattern_is_known
from orchestration.models import (
    DeliveryStatus,
    Event,
    WebhookDelivery,
    WebhookSubscription,
)
from orchestration.selectors import (
    events_after,
    project_visible_or_404,
    webhook_delivery_visible_or_404,
    webhook_visible_or_404,
)
from orchestration.services.events import event_record
from orchestration.services.lifecycle import utcnow
from tascade.errors import InvalidInput
from tascade.transactions import retry_on_conflict

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
USER_AGENT = "Tascade-Webhooks/1"
EXCERPT_CHARS = 500
MAX_KINDS = 100
# Events read per page when fanning out, and at most per subscription and run (the next
# run carries on from the cursor).
FAN_OUT_PAGE = 200
FAN_OUT_MAX = 2000
# How long a process trusts its list of projects with active subscriptions: a new
# subscription reaches other processes' announcements within it (beat covers the gap).
SUBSCRIBED_CACHE_SECONDS = 5.0

_url_validator = URLValidator(schemes=["http", "https"])


def _conf(name: str) -> int:
    return settings.TASCADE[f"WEBHOOK_{name}"]


# --- subscriptions ---------------------------------------------------------------------------
MAX_URL = 2000
MAX_DESCRIPTION = 500


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    if len(url) > MAX_URL:
        raise InvalidInput(fields={"url": [f"At most {MAX_URL} characters."]})
    try:
        _url_validator(url)
    except ValidationError:
        raise InvalidInput(
            "The target URL must be an absolute http:// or https:// URL.",
            fields={"url": ["Enter an absolute http:// or https:// URL."]},
        ) from None
    if urlsplit(url).username is not None:
        raise InvalidInput(
            "Credentials do not belong in the target URL; verify the signature instead.",
            fields={"url": ["Remove the user:password@ part."]},
        )
    return url


def _clean_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(fields={"description": [f"At most {MAX_DESCRIPTION} characters."]})
    return description


def _clean_kinds(kinds: list[str] | None) -> list[str]:
    kinds = list(dict.fromkeys(kinds or []))
    if len(kinds) > MAX_KINDS:
        raise InvalidInput(fields={"event_kinds": [f"At most {MAX_KINDS} kinds."]})
    unknown = [k for k in kinds if not isinstance(k, str) or not kind_pattern_is_known(k)]
    if unknown:
        raise InvalidInput(
            "Unknown event kinds.",
            fields={
                "event_kinds": [
                    f"Unknown kind {kind!r}: name a kind of the catalogue (e.g. task.ready) "
                    "or a family (e.g. task.*)."
                    for kind in unknown
                ]
            },
        )
    return kinds


@retry_on_conflict
def webhook_create(
    *,
    actor: Actor,
    project_id: int,
    url: str,
    event_kinds: list[str] | None = None,
    description: str = "",
) -> WebhookSubscription:
    """Subscribe ``url`` to the project's events from now on. The server makes the secret;
    the caller shows it once (``subscription.secret``)."""
    project = project_visible_or_404(actor, project_id)
    actor.require(Role.OPERATOR)
    url = _clean_url(url)
    event_kinds = _clean_kinds(event_kinds)
    description = _clean_description(description)
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(
            project=project,
            url=url,
            event_kinds=event_kinds,
            description=description,
            secret=SECRET_PREFIX + secrets.token_urlsafe(32),
            created_by=actor.name,
        )
        # Its own creation event is where its cursor starts: it receives what follows.
        subscription.cursor = event_record(
            project=project,
            kind="webhook.created",
            actor=actor.name,
            webhook_id=subscription.pk,
            url=url,
            event_kinds=event_kinds,
        )
        subscription.save(update_fields=["cursor"])
        _subscribed_forget()
    return subscription


@retry_on_conflict
def webhook_update(
    *,
    actor: Actor,
    webhook_id: int,
    url: str | None = None,
    event_kinds: list[str] | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> WebhookSubscription:
    """Change the target, the filter or the description; deactivate or reactivate.

    A deactivated subscription gets no new deliveries and its pending ones wait; reactivated,
    it receives the events that follow the reactivation (not those it missed meanwhile).
    """
    subscription = webhook_visible_or_404(actor, webhook_id)
    changes: dict = {}
    if url is not None:
        changes["url"] = _clean_url(url)
    if event_kinds is not None:
        changes["event_kinds"] = _clean_kinds(event_kinds)
    if description is not None:
        changes["description"] = _clean_description(description)
    if active is not None:
        changes["active"] = active
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        reactivated = active is True and not subscription.active
        changes = {k: v for k, v in changes.items() if getattr(subscription, k) != v}
        if not changes:
            return subscription
        for name, value in changes.items():
            setattr(subscription, name, value)
        event = event_record(
            project=subscription.project_id,
            kind="webhook.updated",
            actor=actor.name,
            webhook_id=subscription.pk,
            **changes,
        )
        fields = [*changes, "updated_at"]
        if reactivated:
            subscription.cursor = event
            fields.append("cursor")
        subscription.save(update_fields=fields)
        _subscribed_forget()
    return subscription


# --- announcing committed events ----------------------------------------------------------
_subscribed: dict = {"until": 0.0, "projects": frozenset()}


def _subscribed_forget() -> None:
    _subscribed["until"] = 0.0
    transaction.on_commit(lambda: _subscribed.update(until=0.0))


def _projects_with_webhooks() -> frozenset[int]:
    if time.monotonic() >= _subscribed["until"]:
        projects = frozenset(
            WebhookSubscription.objects.filter(active=True)
            .values_list("project_id", flat=True)
            .distinct()
        )
        _subscribed.update(projects=projects, until=time.monotonic() + SUBSCRIBED_CACHE_SECONDS)
    return _subscribed["projects"]


# Announcing publishes from the web process right after a write commits: with the broker
# down it must give up at once (the beat safety net catches up), where Celery's default
# would retry connecting for seconds. Its own pool of connections, with that budget.
ANNOUNCE_CONNECT_SECONDS = 0.5
_announce_pool: list = []


def _announce_connections():
    if not _announce_pool:
        from kombu import pools

        from tascade.celery import app

        options = {
            **(app.conf.broker_transport_options or {}),
            "max_retries": 0,
            "connect_retries_timeout": ANNOUNCE_CONNECT_SECONDS,
        }
        connection = app.connection_for_write(
            transport_options=options, connect_timeout=ANNOUNCE_CONNECT_SECONDS
        )
        _announce_pool.append(pools.connections[connection])
    return _announce_pool[0]


class _FanOutKick:
    """Queues the fan-out of one project once the writing transaction has committed."""

    def __init__(self, project_id: int) -> None:
        self.project_id = project_id

    def __call__(self) -> None:
        from orchestration.tasks import webhooks_fan_out
        from tascade.celery import app

        kwargs = {"project_id": self.project_id}
        try:
            if app.conf.task_always_eager:
                webhooks_fan_out.apply_async(kwargs=kwargs)
                return
            with _announce_connections().acquire(
                block=True, timeout=ANNOUNCE_CONNECT_SECONDS
            ) as connection:
                webhooks_fan_out.apply_async(kwargs=kwargs, retry=False, connection=connection)
        except Exception:  # whatever the broker did: the beat safety net catches up later
            logger.warning("Could not queue the webhook fan-out", exc_info=True)


def webhooks_announce(project_id: int) -> None:
    """Called by every event write: queue the project's fan-out after commit, once per
    transaction, and only if the project has an active subscription."""
    if project_id not in _projects_with_webhooks():
        return
    connection = transaction.get_connection()
    if connection.in_atomic_block and any(
        isinstance(callback, _FanOutKick) and callback.project_id == project_id
        for _savepoints, callback, _robust in connection.run_on_commit
    ):
        return
    transaction.on_commit(_FanOutKick(project_id), robust=True)


# --- fan-out ---------------------------------------------------------------------------------
def webhook_deliveries_fan_out(*, project_id: int | None = None) -> list[int]:
    """Make the deliveries for events after each active subscription's cursor; return the ids
    made (each queued for sending once its transaction commits)."""
    subscriptions = WebhookSubscription.objects.filter(active=True)
    if project_id is not None:
        subscriptions = subscriptions.filter(project_id=project_id)
    made: list[int] = []
    for subscription_id in subscriptions.order_by("pk").values_list("pk", flat=True):
        made += _fan_out_one(subscription_id)
    return made


def _fan_out_one(subscription_id: int) -> list[int]:
    with transaction.atomic():
        # SKIP LOCKED: a dispatcher already on this subscription does its work; this one
        # moves on instead of waiting to redo it.
        subscription = (
            WebhookSubscription.objects.select_for_update(skip_locked=True)
            .filter(pk=subscription_id, active=True)
            .first()
        )
        if subscription is None:
            return []
        cursor = subscription.cursor_id
        matching: list[Event] = []
        read = 0
        while read < FAN_OUT_MAX:
            page = events_after(
                Actor.system(), subscription.project_id, after=cursor, limit=FAN_OUT_PAGE
            )
            if not page:
                break
            read += len(page)
            cursor = page[-1].pk
            matching += [e for e in page if kind_matches(subscription.event_kinds, e.kind)]
            if len(page) < FAN_OUT_PAGE:
                break
        if cursor == subscription.cursor_id:
            return []
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    project_id=subscription.project_id,
                    subscription=subscription,
                    event=event,
                    attempts_left=_conf("MAX_ATTEMPTS"),
                    next_attempt_at=utcnow(),
                )
                for event in matching
            ],
            ignore_conflicts=True,  # the constraint, not this lock, is the last word
        )
        subscription.cursor_id = cursor
        subscription.save(update_fields=["cursor"])
        made = list(
            WebhookDelivery.objects.filter(
                subscription=subscription,
                event_id__in=[e.pk for e in matching],
                attempts=0,
                status=DeliveryStatus.PENDING,
            ).values_list("pk", flat=True)
        )
        for delivery_id in made:
            _queue_send(delivery_id)
    return made


def _queue_send(delivery_id: int, eta: datetime | None = None) -> None:
    def send() -> None:
        from orchestration.tasks import webhook_deliver

        webhook_deliver.apply_async(args=[delivery_id], eta=eta, retry=False)

    transaction.on_commit(send, robust=True)


def _due(now: datetime) -> Q:
    # Pending ones whose time came, and sending ones whose sender never reported back.
    return Q(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING],
        next_attempt_at__lte=now,
        subscription__active=True,
    )


def webhook_deliveries_queue_due(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Queue every due delivery for sending (the retries' safety net); return their ids."""
    now = now or utcnow()
    due = list(
        WebhookDelivery.objects.filter(_due(now))
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    with transaction.atomic():
        for delivery_id in due:
            _queue_send(delivery_id)
    return due


# --- delivery --------------------------------------------------------------------------------
def webhook_body(delivery: WebhookDelivery) -> bytes:
    """The event as the event list API shows it, plus the subscription and delivery ids."""
    event = delivery.event
    created_at = event.created_at.isoformat().replace("+00:00", "Z")
    document = {
        "id": event.pk,
        "project": event.project_id,
        "task": event.task_id,
        "kind": event.kind,
        "actor": event.actor,
        "payload": event.payload,
        "created_at": created_at,
        "subscription": delivery.subscription_id,
        "delivery": delivery.pk,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>.<raw body>"`` keyed with the secret."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _claim_window() -> timedelta:
    return timedelta(
        seconds=_conf("CONNECT_TIMEOUT_SECONDS") + 2 * _conf("READ_TIMEOUT_SECONDS") + 30
    )


def _claim(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("subscription", "event")
            .filter(_due(now), pk=delivery_id)
            .first()
        )
        if delivery is None:
            return None  # not due, already sent, being claimed elsewhere, or deactivated
        if delivery.attempts_left == 0:
            # Its last attempt's sender vanished without reporting back.
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            delivery.last_error = "The sender of the last attempt never reported its outcome."
            delivery.save(update_fields=["status", "next_attempt_at", "last_error"])
            return None
        delivery.status = DeliveryStatus.SENDING
        delivery.attempts += 1
        delivery.attempts_left -= 1
        delivery.last_attempt_at = now
        delivery.next_attempt_at = now + _claim_window()
        delivery.save(
            update_fields=[
                "status",
                "attempts",
                "attempts_left",
                "last_attempt_at",
                "next_attempt_at",
            ]
        )
    return delivery


_client: list[httpx.Client] = []
_client_lock = threading.Lock()


def _http_client() -> httpx.Client:
    """One client per process, made on first use (after a worker forks): making one costs
    ~25 ms (its TLS context), and it keeps connections to receivers alive between sends."""
    with _client_lock:
        if not _client:
            _client.append(httpx.Client(follow_redirects=False, trust_env=False))
        return _client[0]


def _post(delivery: WebhookDelivery, body: bytes) -> tuple[int | None, str, str]:
    """Send once; return (HTTP status or None, error text, response excerpt)."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Tascade-Event": str(delivery.event_id),
        "X-Tascade-Event-Kind": delivery.event.kind,
        "X-Tascade-Delivery": str(delivery.pk),
        "X-Tascade-Attempt": str(delivery.attempts),
        "X-Tascade-Timestamp": str(timestamp),
        "X-Tascade-Signature": webhook_signature(delivery.subscription.secret, timestamp, body),
    }
    timeout = httpx.Timeout(
        connect=_conf("CONNECT_TIMEOUT_SECONDS"),
        read=_conf("READ_TIMEOUT_SECONDS"),
        write=_conf("READ_TIMEOUT_SECONDS"),
        pool=_conf("CONNECT_TIMEOUT_SECONDS"),
    )
    try:
        with _http_client().stream(
            "POST", delivery.subscription.url, content=body, headers=headers, timeout=timeout
        ) as response:
            excerpt = b""
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= EXCERPT_CHARS * 4:
                    break
        text = excerpt.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
        error = "" if response.is_success else f"HTTP {response.status_code}"
        return response.status_code, error, text
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:EXCERPT_CHARS], ""


def webhook_backoff(round_attempt: int) -> float:
    """Seconds before retry number ``round_attempt`` (1, 2, …): doubling from the base up to
    the cap, then a random half of it taken off, so retries of many deliveries spread out."""
    ceiling = min(_conf("BACKOFF_MAX_SECONDS"), _conf("BACKOFF_SECONDS") * 2 ** (round_attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


def webhook_delivery_attempt(
    *, delivery_id: int, now: datetime | None = None
) -> WebhookDelivery | None:
    """Send one due delivery once and record the outcome; None if it was not this caller's
    to send (not due, done, or claimed by another worker)."""
    now = now or utcnow()
    delivery = _claim(delivery_id, now)
    if delivery is None:
        return None
    body = webhook_body(delivery)
    started = time.monotonic()
    status_code, error, excerpt = _post(delivery, body)
    duration_ms = int((time.monotonic() - started) * 1000)
    succeeded = status_code is not None and 200 <= status_code < 300
    finished = now + timedelta(milliseconds=duration_ms)
    outcome = {
        "last_status_code": status_code,
        "last_error": error,
        "response_excerpt": excerpt,
        "last_duration_ms": duration_ms,
    }
    retry_at = None
    if succeeded:
        outcome |= {"status": DeliveryStatus.SUCCEEDED, "delivered_at": finished}
        outcome["next_attempt_at"] = None
    elif delivery.attempts_left == 0:
        outcome |= {"status": DeliveryStatus.FAILED, "next_attempt_at": None}
    else:
        round_attempt = _conf("MAX_ATTEMPTS") - delivery.attempts_left
        retry_at = finished + timedelta(seconds=webhook_backoff(round_attempt))
        outcome |= {"status": DeliveryStatus.PENDING, "next_attempt_at": retry_at}
    with transaction.atomic():
        # Compare-and-set on the claim: if the claim lapsed and another worker took the
        # delivery over meanwhile, its outcome is the one that counts.
        recorded = WebhookDelivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.SENDING, attempts=delivery.attempts
        ).update(**outcome)
        if recorded and retry_at is not None:
            _queue_send(delivery.pk, eta=retry_at)
    for name, value in outcome.items():
        setattr(delivery, name, value)
    return delivery


# --- redelivery ------------------------------------------------------------------------------
@retry_on_conflict
def webhook_redeliver(
    *, actor: Actor, delivery_id: int, now: datetime | None = None
) -> WebhookDelivery:
    """An operator sends a delivery again: a new round of attempts on the same row, due now,
    whatever its outcome was (a succeeded one too). Recorded as an event."""
    delivery = webhook_delivery_visible_or_404(actor, delivery_id)
    now = now or utcnow()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("subscription")
            .get(pk=delivery.pk)
        )
        if not delivery.subscription.active:
            raise WebhookInactive(webhook_id=delivery.subscription_id)
        if delivery.status == DeliveryStatus.SENDING and delivery.next_attempt_at > now:
            raise WebhookDeliveryInFlight(delivery_id=delivery.pk)
        delivery.status = DeliveryStatus.PENDING
        delivery.attempts_left = _conf("MAX_ATTEMPTS")
        delivery.next_attempt_at = now
        delivery.redeliveries += 1
        delivery.save(update_fields=["status", "attempts_left", "next_attempt_at", "redeliveries"])
        event_record(
            project=delivery.project_id,
            kind="webhook.redelivery_requested",
            actor=actor.name,
            webhook_id=delivery.subscription_id,
            delivery_id=delivery.pk,
            event_id=delivery.event_id,
        )
        _queue_send(delivery.pk)
    return delivery
