"""Property-based fuzzing of the whole API against its own OpenAPI schema (Schemathesis).

Every operation of the generated schema is called with generated input (valid and invalid),
with a real key, against a seeded project, and every answer must:

* never be a server error (a 500 is always a bug),
* use a status code the schema documents for that operation,
* have the documented content type and match the documented body schema.

The run is deterministic (``derandomize``), so CI sees the same inputs every time. Each
example runs in a savepoint that is rolled back, so every call sees the same seeded world
(a claimed task, a started one with an artifact, a reserved one, edges, a second project),
and generated ids are steered onto those objects most of the time (see ``_steer``).

A failure names the operation and prints the request as a ``curl`` command. For a deeper
local run: ``TASCADE_FUZZ_EXAMPLES=200 pytest tests/test_api_fuzz.py -n 4``.
"""

import os
import re
from base64 import b64encode
from dataclasses import dataclass, field
from urllib.parse import urlencode

import hypothesis
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from governance.actors import Actor, Role
from governance.models import ApiKey, Checkpoint, GateRule, Review
from governance.services.api_keys import api_key_create
from governance.services.gates import gate_rule_create, gates_evaluate
from governance.services.reviews import review_record
from metrics.models import AlertSettings
from metrics.services.alerts import alerts_evaluate
from metrics.services.rollups import rollups_refresh
from orchestration.models import (
    Artifact,
    Changeset,
    Dependency,
    Event,
    ExecutionSnapshot,
    IntegrationAttempt,
    Lease,
    LeaseStatus,
    Milestone,
    PathOverlap,
    Phase,
    Project,
    Reservation,
    Task,
    WebhookDelivery,
    WebhookSubscription,
)
from orchestration.services import integration, leases, operations, plan, webhooks
from orchestration.services.changesets import changeset_apply, changeset_create

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The agent name both fuzzing keys act as: the seeded leases are held by it, so generated
# lease tokens (small integers) often hit a live lease and reach the service's happy path.
FUZZ_ACTOR = "fuzzer"

ADMIN = Actor(name="seed-admin", roles=frozenset({Role.ADMIN}))
AGENT = Actor(name=FUZZ_ACTOR, roles=frozenset({Role.AGENT}))


def _generated_schema() -> dict:
    """The schema the code generates now (the one CI diffs ``docs/openapi.yaml`` against)."""
    return SchemaGenerator().get_schema(request=None, public=True)


schema = schemathesis.openapi.from_dict(_generated_schema())
# 405s for undeclared methods only meet `not_a_server_error`; a few methods are enough.
schema.config.phases.coverage.unexpected_methods = {"delete", "patch"}


@pytest.fixture
def wsgi_app():
    """Django's WSGI application, called in-process inside the test's transaction.

    Like Django's test client, it keeps ``close_old_connections`` from closing the
    connection that holds that transaction at the start and the end of each request.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def short_event_streams(settings):
    """``events/stream/`` ends once it has sent what is visible (its bound is 0 s), so each
    fuzzed call of it returns at once instead of streaming for minutes."""
    settings.TASCADE = {**settings.TASCADE, "SSE_MAX_SECONDS": 0}


@dataclass
class World:
    """What the seed made: ids per kind, and the raw key the fuzzer calls with."""

    key: str
    ids: dict[str, list[int]] = field(default_factory=dict)


def _seed() -> dict[str, list[int]]:
    other = plan.project_create(actor=ADMIN, name="Other", slug="other")
    foreign = plan.task_create(actor=ADMIN, project_id=other.pk, title="not yours")

    project = plan.project_create(actor=ADMIN, name="Fuzz", slug="fuzz", lease_ttl_seconds=3600)
    phase = plan.phase_create(actor=ADMIN, project_id=project.pk, name="Phase 1")
    milestone = plan.milestone_create(
        actor=ADMIN, project_id=project.pk, phase_id=phase.pk, name="M1"
    )

    def task(title, **kwargs):
        return plan.task_create(
            actor=ADMIN, project_id=project.pk, title=title, milestone_id=milestone.pk, **kwargs
        )

    root = task(
        "root",
        work_spec={"objective": "lay the ground", "constraints": ["fast"]},
        expected_paths=["docs/**"],
    )
    claimed = task("claimed", capability_tags=["python"], expected_paths=["src/**"])
    started = task("started", priority=5)
    # Ready work that collides with the claimed task, and work its exclusive paths withhold.
    task("colliding", expected_paths=["src/models.py"])
    task("withheld", exclusive_paths=["src/**"])
    reserved = task("reserved")
    dependent = task("dependent", parent_id=root.pk)
    late = task("late")
    done = task("done")
    plan.dependency_add(
        actor=ADMIN, project_id=project.pk, prerequisite_id=root.pk, dependent_id=dependent.pk
    )
    plan.dependency_add(
        actor=ADMIN,
        project_id=project.pk,
        prerequisite_id=dependent.pk,
        dependent_id=late.pk,
        unlock_on="integrated",
    )

    leases.task_claim(actor=AGENT, task_id=claimed.pk)
    for t in (started, done):
        token = leases.task_claim(actor=AGENT, task_id=t.pk).token
        leases.task_start(actor=AGENT, task_id=t.pk, lease_token=token)
        leases.artifact_publish(
            actor=AGENT,
            task_id=t.pk,
            lease_token=token,
            branch=f"task-{t.pk}",
            commit_sha="a" * 40,
            touched_files=["src/app.py"],
            check_status="passed",
        )
    leases.task_mark_implemented(actor=AGENT, task_id=done.pk, lease_token=token)
    operations.task_assign(actor=ADMIN, task_id=reserved.pk, assignee=FUZZ_ACTOR)
    # A reviewed, queued and running integration, so those endpoints meet real objects.
    review_record(actor=ADMIN, task_id=done.pk, verdict="approved", rationale="looks right")
    integration.integration_enqueue(actor=ADMIN, task_id=done.pk)
    integration.integration_take_next(actor=ADMIN, project_id=project.pk)
    # A gate rule whose checkpoint holds the implemented-but-unapproved work.
    gate_rule_create(
        actor=ADMIN, project_id=project.pk, name="batch", trigger="unreviewed_backlog", threshold=1
    )
    pending = task("pending review")
    token = leases.task_claim(actor=AGENT, task_id=pending.pk).token
    leases.task_start(actor=AGENT, task_id=pending.pk, lease_token=token)
    leases.artifact_publish(actor=AGENT, task_id=pending.pk, lease_token=token)
    leases.task_mark_implemented(actor=AGENT, task_id=pending.pk, lease_token=token)
    gates_evaluate()
    # A draft changeset and an applied one.
    changeset_create(
        actor=ADMIN,
        project_id=project.pk,
        base_version=1,
        operations=[{"op": "add_task", "title": "proposed"}],
    )
    draft = changeset_create(
        actor=ADMIN,
        project_id=project.pk,
        base_version=Project.objects.get(pk=project.pk).plan_version,
        operations=[{"op": "reprioritise", "task": late.ref, "priority": 7}],
    )
    changeset_apply(actor=ADMIN, changeset_id=draft.pk)
    # Metrics: a day's roll-up and a fired alert, so the metrics endpoints meet real figures.
    AlertSettings.objects.create(project=project, wip_age_hours_max=0)
    rollups_refresh(project_ids=[project.pk])
    alerts_evaluate(project_id=project.pk)
    # A webhook with deliveries (one tried once against a closed port), and one switched off.
    webhooks.webhook_create(actor=ADMIN, project_id=project.pk, url="http://127.0.0.1:9/hook")
    switched_off = webhooks.webhook_create(
        actor=ADMIN, project_id=project.pk, url="https://example.com/h", event_kinds=["task.*"]
    )
    plan.task_create(actor=ADMIN, project_id=project.pk, title="announced")
    webhooks.webhook_deliveries_fan_out()
    webhooks.webhook_update(actor=ADMIN, webhook_id=switched_off.pk, active=False)
    webhooks.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.order_by("id")[0].pk)
    webhooks.webhook_create(actor=ADMIN, project_id=other.pk, url="https://example.com/other")

    def ids(queryset):
        return list(queryset.order_by("id").values_list("id", flat=True))

    # Both started tasks published src/app.py, unpredicted: an overlap flags both.
    assert PathOverlap.objects.filter(project=project).exists()
    return {
        "project": [project.pk, other.pk],
        "task": [*ids(Task.objects.filter(project=project)), foreign.pk],
        "phase": ids(Phase.objects.all()),
        "milestone": ids(Milestone.objects.all()),
        "dependency": ids(Dependency.objects.all()),
        "lease": ids(Lease.objects.all()),
        "reservation": ids(Reservation.objects.all()),
        "artifact": ids(Artifact.objects.all()),
        "snapshot": ids(ExecutionSnapshot.objects.all()),
        "event": ids(Event.objects.all()),
        "lease_token": sorted(
            set(Lease.objects.filter(status=LeaseStatus.ACTIVE).values_list("token", flat=True))
        ),
        "api_key": ids(ApiKey.objects.all()),
        "review": ids(Review.objects.all()),
        "integration": ids(IntegrationAttempt.objects.all()),
        "checkpoint": ids(Checkpoint.objects.all()),
        "gate_rule": ids(GateRule.objects.all()),
        "changeset": ids(Changeset.objects.all()),
        "webhook": ids(WebhookSubscription.objects.all()),
        "webhook_delivery": ids(WebhookDelivery.objects.all()),
    }


def _world(roles, scope) -> World:
    ids = _seed()
    issued = api_key_create(
        actor=ADMIN,
        key_actor=FUZZ_ACTOR,
        roles=roles,
        project=scope and Project.objects.get(slug=scope),
    )
    # Marked as just used, so authentication stays a single read on every fuzzed call.
    ApiKey.objects.update(last_used_at=timezone.now())
    ids["api_key"].append(issued.api_key.pk)
    return World(key=issued.raw_key, ids=ids)


@pytest.fixture
def admin_world(db) -> World:
    return _world([Role.ADMIN], None)


@pytest.fixture
def agent_world(db) -> World:
    """An agent key confined to the fuzzed project: the other project must stay invisible."""
    return _world([Role.AGENT], "fuzz")


# Far above any id (or fencing token) a test database hands out, and still a valid value.
UNKNOWN = {"lease_token": 10**6}
UNKNOWN_ID = 10**15
# Which kind of object a path's ``{id}`` names, from the collection it sits under. Paths
# under ``projects/{project_id}/`` (``events/stream/``, ``changesets/import/``, …) are
# steered by ``project_id`` instead.
_PATH_KIND = {
    "api-keys": "api_key",
    "artifacts": "artifact",
    "changesets": "changeset",
    "checkpoints": "checkpoint",
    "gate-rules": "gate_rule",
    "dependencies": "dependency",
    "integration-attempts": "integration",
    "leases": "lease",
    "milestones": "milestone",
    "phases": "phase",
    "reservations": "reservation",
    "reviews": "review",
    "snapshots": "snapshot",
    "tasks": "task",
    "webhooks": "webhook",
    "webhook-deliveries": "webhook_delivery",
}
# Body and query fields that hold an id, and the kind of object they name.
_FIELD_KIND = {
    "prerequisite": "task",
    "dependent": "task",
    "parent": "task",
    "task": "task",
    "milestone": "milestone",
    "milestone__phase": "phase",
    "phase": "phase",
    "project": "project",
    "after": "event",
    "lease_token": "lease_token",
    "subscription": "webhook",
    "event": "event",
}
# The metrics paths (/projects/{project_id}/metrics/…) name only their project: no ``{id}``.


def _steer_one(value, pool: list[int], unknown: int = UNKNOWN_ID):
    """Point a generated id at an existing object three times out of four, else at none.

    The mapping is a pure function of the generated value, so Hypothesis still explores and
    shrinks freely. Values that are no valid id (negative, zero in a body, huge, not a
    number) are left alone, so invalid and absurd ids keep being tried.
    """
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
        number = int(value)  # a path parameter: any string of digits is a valid id
    elif isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**31:
        number = value
    else:
        return value
    if number % 4 == 3 or not pool:
        # An id no row has, whatever the database's sequences stand at: the run does the
        # same thing alone or after other tests.
        steered = unknown + number % unknown
    else:
        # The rest reach every index in turn: 0, 1, 2, 4, 5, 6, 8 … → 0, 1, 2, 3, 4, 5, 6 …
        steered = pool[(number - number // 4) % len(pool)]
    return str(steered) if isinstance(value, str) else steered


def _steer(case, world: World) -> None:
    """Aim generated ids at seeded objects (see ``_steer_one``)."""
    params = case.path_parameters or {}
    if "project_id" in params:
        params["project_id"] = _steer_one(params["project_id"], world.ids["project"])
    if "id" in params:
        collection = case.path.split("/")[3]  # /api/v1/<collection>/{id}/…
        params["id"] = _steer_one(params["id"], world.ids[_PATH_KIND[collection]])
    headers = case.headers or {}
    if "Last-Event-ID" in headers:  # the event stream's resume point, like ``after``
        headers["Last-Event-ID"] = str(_steer_one(headers["Last-Event-ID"], world.ids["event"]))
    cursor = (case.query or {}).get("cursor")
    if isinstance(cursor, str) and len(cursor) % 2 == 0:
        # Random text is rarely a decodable cursor; wrap it into one half of the time so the
        # text reaches the paginator as a position (the way a tampered cursor would).
        case.query["cursor"] = b64encode(urlencode({"p": cursor}).encode()).decode()
    for container in (case.query, case.body):
        if isinstance(container, dict):
            for name, kind in _FIELD_KIND.items():
                if name in container:
                    container[name] = _steer_one(
                        container[name], world.ids[kind], UNKNOWN.get(kind, UNKNOWN_ID)
                    )


def _call_and_validate(case, world: World, app) -> None:
    _steer(case, world)
    with transaction.atomic():  # every example starts from the same seeded world
        case.call_and_validate(
            app=app, headers={"Authorization": f"Bearer {world.key}"}, checks=CHECKS
        )
        transaction.set_rollback(True)


_SETTINGS = {
    "derandomize": True,  # the same inputs on every run: CI failures reproduce
    "database": None,
    "deadline": None,  # a shared CI machine is slow at times; that is no bug
    # The function-scoped fixtures (database, seeded world) are meant: every example is
    # isolated by its savepoint. Timing and data-size health checks would only flake.
    "suppress_health_check": list(hypothesis.HealthCheck),
}


@schema.parametrize()
@hypothesis.settings(
    max_examples=int(os.environ.get("TASCADE_FUZZ_EXAMPLES", "20")),
    # explicit = Schemathesis' coverage phase (boundary and schema-violating values, one
    # of each); generate = random fuzzing, positive and negative.
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    **_SETTINGS,
)
def test_admin_key(case, admin_world, wsgi_app):
    """An admin key reaches every endpoint: the full coverage phase plus fuzzing."""
    _call_and_validate(case, admin_world, wsgi_app)


@schema.parametrize()
@hypothesis.settings(
    max_examples=int(os.environ.get("TASCADE_FUZZ_EXAMPLES", "12")),
    phases=[hypothesis.Phase.generate],
    **_SETTINGS,
)
def test_agent_key(case, agent_world, wsgi_app):
    """A project-scoped agent key: refusals (403/404) must be as well-formed as answers."""
    _call_and_validate(case, agent_world, wsgi_app)
