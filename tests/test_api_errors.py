"""The one error shape, endpoint by endpoint (DESIGN.md "Errors" and invariant 10).

Every refusal is ``{"error": {"code", "message", "details"}}`` with a stable code and the
documented status: 401 without a usable key, 403 for a role, 404 for what is missing or not
visible (never 403: another project's objects do not leak through a scoped key), 400 with
field-level details for invalid input, 405 for a method an endpoint does not have, 409 when a
rule says no. A refused request changes nothing: no row, no event.
"""

import base64
import json
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db.models import Max
from rest_framework.test import APIClient

from governance.actors import Role
from governance.models import ApiKey
from governance.services.api_keys import api_key_create, api_key_revoke
from orchestration.models import (
    Artifact,
    Dependency,
    Event,
    ExecutionSnapshot,
    Lease,
    Milestone,
    Phase,
    Project,
    Reservation,
    Task,
)
from orchestration.services import leases, operations, plan
from tests.conftest import ADMIN, OPERATOR, PLANNER, agent

pytestmark = pytest.mark.django_db

UNKNOWN = 10**12  # a well-formed id nothing has
WORKER = agent("agent-1")


def assert_error(response, status: int, code: str) -> dict:
    """The response is the one error shape, with this status and code; returns ``error``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


def database_state() -> dict:
    """Everything a request could change (except a key's informational ``last_used_at``)."""
    models = [
        Project,
        Phase,
        Milestone,
        Task,
        Dependency,
        Lease,
        Reservation,
        ExecutionSnapshot,
        Artifact,
        Event,
        ApiKey,
    ]
    return {
        "counts": {model.__name__: model.objects.count() for model in models},
        "last_event": Event.objects.aggregate(last=Max("id"))["last"],
        "projects": list(
            Project.objects.order_by("id").values_list("id", "plan_version", "task_number_seq")
        ),
        "tasks": list(
            Task.objects.order_by("id").values_list(
                "id",
                "state",
                "holder",
                "hold_expires_at",
                "attempt_count",
                "unmet_prerequisites",
                "material_revision",
                "lease_token_seq",
                "updated_at",
            )
        ),
        "leases": list(
            Lease.objects.order_by("id").values_list("id", "status", "expires_at", "heartbeat_at")
        ),
        "reservations": list(
            Reservation.objects.order_by("id").values_list("id", "status", "expires_at")
        ),
        "keys": list(ApiKey.objects.order_by("id").values_list("id", "revoked_at")),
    }


def send(client: APIClient, method: str, url: str, body=None):
    if body is None:
        return getattr(client, method)(url)
    return getattr(client, method)(url, body, format="json")


def fill(template, ids: dict):
    """Put the world's ids into a URL or body template (``"{task}"`` → ``42``)."""
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template[1:-1] in ids:
            return ids[template[1:-1]]
        return template.format(**ids)
    if isinstance(template, dict):
        return {key: fill(value, ids) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, ids) for value in template]
    return template


@pytest.fixture
def world(project, make_task, edge):
    """Two projects built through the services: ours (``project``) and another one holding
    one object of every kind (a started task with its lease, snapshot and artifact, a
    reservation, an edge, a phase and milestone, a project-scoped key)."""
    first, second = make_task("first"), make_task("second")
    edge(first, second)
    claimed = make_task("claimed")
    lease = leases.task_claim(actor=WORKER, task_id=claimed.pk)

    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    phase = plan.phase_create(actor=PLANNER, project_id=other.pk, name="Phase")
    milestone = plan.milestone_create(
        actor=PLANNER, project_id=other.pk, phase_id=phase.pk, name="Milestone"
    )
    started = plan.task_create(
        actor=PLANNER, project_id=other.pk, title="started", milestone_id=milestone.pk
    )
    waiting = plan.task_create(actor=PLANNER, project_id=other.pk, title="waiting")
    reserved = plan.task_create(actor=PLANNER, project_id=other.pk, title="reserved")
    other_edge = plan.dependency_add(
        actor=PLANNER, project_id=other.pk, prerequisite_id=started.pk, dependent_id=waiting.pk
    )
    other_lease = leases.task_claim(actor=WORKER, task_id=started.pk)
    snapshot = leases.task_start(actor=WORKER, task_id=started.pk, lease_token=other_lease.token)
    artifact = leases.artifact_publish(
        actor=WORKER, task_id=started.pk, lease_token=other_lease.token, commit_sha="abc1234"
    )
    reservation = operations.task_assign(actor=OPERATOR, task_id=reserved.pk, assignee="agent-1")
    other_key = api_key_create(actor=ADMIN, key_actor="x", roles=[Role.AGENT], project=other)
    return SimpleNamespace(
        project=project,
        first=first,
        second=second,
        claimed=claimed,
        lease=lease,
        ids={
            "project": project.pk,
            "task": first.pk,
            "claimed": claimed.pk,
            "token": lease.token,
            "other": other.pk,
            "o_phase": phase.pk,
            "o_milestone": milestone.pk,
            "o_task": started.pk,
            "o_waiting": waiting.pk,
            "o_reserved": reserved.pk,
            "o_edge": other_edge.pk,
            "o_lease": other_lease.pk,
            "o_token": other_lease.token,
            "o_snapshot": snapshot.pk,
            "o_artifact": artifact.pk,
            "o_reservation": reservation.pk,
            "o_key": other_key.api_key.pk,
        },
    )


# --- 401 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer tsk_not-a-key-anybody-was-given",
        "Bearer not-even-a-tascade-key",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "tsk_without_a_scheme",
    ],
    ids=["no-key", "unknown-key", "foreign-format", "empty-bearer", "basic-auth", "no-scheme"],
)
@pytest.mark.parametrize(
    "method,url,body",
    [
        ("get", "/api/v1/me/", None),
        ("get", "/api/v1/projects/{project}/tasks/", None),
        ("post", "/api/v1/projects/{project}/tasks/", {"title": "sneaky"}),
        ("post", "/api/v1/tasks/{task}/claim/", None),
    ],
)
def test_401_without_a_usable_key(world, authorization, method, url, body):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    before = database_state()
    response = send(client, method, fill(url, world.ids), body)
    assert_error(response, 401, "UNAUTHENTICATED")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert database_state() == before


def test_401_with_a_revoked_key(world, django_capture_on_commit_callbacks):
    issued = api_key_create(actor=ADMIN, key_actor="gone", roles=[Role.ADMIN])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
    assert client.get("/api/v1/me/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):  # as if the revocation committed
        api_key_revoke(actor=ADMIN, api_key=issued.api_key)

    before = database_state()
    for method, url, body in [
        ("get", "/api/v1/me/", None),
        ("post", "/api/v1/projects/", {"name": "After revocation"}),
        ("post", f"/api/v1/tasks/{world.first.pk}/claim/", None),
    ]:
        response = send(client, method, url, body)
        assert_error(response, 401, "UNAUTHENTICATED")
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert database_state() == before


# --- 403 ----------------------------------------------------------------------------------
# (roles of the key, scoped to our project?, method, url, a valid body)
FORBIDDEN = [
    ([Role.AGENT], False, "post", "/api/v1/projects/", {"name": "Mine now"}),
    ([Role.AGENT], False, "post", "/api/v1/projects/{project}/tasks/", {"title": "t"}),
    ([Role.AGENT], False, "post", "/api/v1/projects/{project}/phases/", {"name": "p"}),
    (
        [Role.AGENT],
        False,
        "post",
        "/api/v1/projects/{project}/dependencies/",
        {"prerequisite": "{claimed}", "dependent": "{task}"},
    ),
    ([Role.PLANNER], False, "post", "/api/v1/tasks/{task}/claim/", None),
    ([Role.REVIEWER], False, "post", "/api/v1/projects/{project}/claim-next/", {}),
    ([Role.PLANNER], False, "post", "/api/v1/tasks/{claimed}/heartbeat/", {"lease_token": 1}),
    ([Role.AGENT], False, "post", "/api/v1/tasks/{task}/block/", {"reason": "mine"}),
    ([Role.AGENT], False, "post", "/api/v1/tasks/{task}/cancel/", {"reason": "mine"}),
    ([Role.AGENT], False, "post", "/api/v1/tasks/{task}/assign/", {"agent": "agent-1"}),
    (
        [Role.AGENT],
        False,
        "post",
        "/api/v1/tasks/{claimed}/override/",
        {"to_state": "implemented", "rationale": "trust me"},
    ),
    ([Role.PLANNER], False, "post", "/api/v1/tasks/{task}/unblock/", {}),
    ([Role.OPERATOR], False, "get", "/api/v1/api-keys/", None),
    ([Role.OPERATOR], False, "post", "/api/v1/api-keys/", {"actor": "x", "roles": ["admin"]}),
    ([Role.PLANNER], False, "post", "/api/v1/api-keys/{o_key}/revoke/", None),
    # a key confined to one project cannot make new ones, whatever its role
    ([Role.PLANNER], True, "post", "/api/v1/projects/", {"name": "Escape"}),
]


@pytest.mark.parametrize(
    "roles,scoped,method,url,body",
    FORBIDDEN,
    ids=[f"{'+'.join(r)}-{m}-{u}" for r, _, m, u, _ in FORBIDDEN],
)
def test_403_for_a_role_the_key_does_not_have(api, world, roles, scoped, method, url, body):
    client = api(*roles, project=world.project if scoped else None)
    before = database_state()
    response = send(client, method, fill(url, world.ids), fill(body, world.ids))
    assert_error(response, 403, "FORBIDDEN")
    assert database_state() == before


def test_403_names_the_roles_needed(api, world):
    client = api(Role.AGENT)
    error = assert_error(
        client.post(f"/api/v1/tasks/{world.first.pk}/block/", {"reason": "x"}, format="json"),
        403,
        "FORBIDDEN",
    )
    assert error["details"] == {"required_roles": ["operator"], "your_roles": ["agent"]}


# --- 404 ----------------------------------------------------------------------------------
# Every endpoint that names an object, with a body the key's roles may send. ``{o_…}`` are
# the other project's objects; the same rows run with unknown ids.
NAMED = [
    ("get", "/api/v1/projects/{other}/", None),
    ("get", "/api/v1/projects/{other}/tasks/", None),
    ("get", "/api/v1/projects/{other}/phases/", None),
    ("get", "/api/v1/projects/{other}/milestones/", None),
    ("get", "/api/v1/projects/{other}/dependencies/", None),
    ("get", "/api/v1/projects/{other}/leases/", None),
    ("get", "/api/v1/projects/{other}/reservations/", None),
    ("get", "/api/v1/projects/{other}/artifacts/", None),
    ("get", "/api/v1/projects/{other}/snapshots/", None),
    ("get", "/api/v1/projects/{other}/ready/", None),
    ("get", "/api/v1/projects/{other}/graph/", None),
    ("get", "/api/v1/projects/{other}/events/", None),
    ("get", "/api/v1/phases/{o_phase}/", None),
    ("get", "/api/v1/milestones/{o_milestone}/", None),
    ("get", "/api/v1/dependencies/{o_edge}/", None),
    ("get", "/api/v1/leases/{o_lease}/", None),
    ("get", "/api/v1/reservations/{o_reservation}/", None),
    ("get", "/api/v1/artifacts/{o_artifact}/", None),
    ("get", "/api/v1/snapshots/{o_snapshot}/", None),
    ("get", "/api/v1/tasks/{o_task}/", None),
    ("get", "/api/v1/tasks/{o_task}/context/", None),
    ("get", "/api/v1/tasks/{o_task}/snapshot/", None),
    ("get", "/api/v1/tasks/{o_task}/artifacts/", None),
    ("post", "/api/v1/projects/{other}/tasks/", {"title": "planted"}),
    ("post", "/api/v1/projects/{other}/phases/", {"name": "planted"}),
    ("post", "/api/v1/projects/{other}/milestones/", {"name": "planted", "phase": "{o_phase}"}),
    (
        "post",
        "/api/v1/projects/{other}/dependencies/",
        {"prerequisite": "{o_reserved}", "dependent": "{o_waiting}"},
    ),
    ("post", "/api/v1/projects/{other}/claim-next/", {}),
    ("post", "/api/v1/tasks/{o_reserved}/claim/", None),
    ("post", "/api/v1/tasks/{o_task}/start/", {"lease_token": "{o_token}"}),
    ("post", "/api/v1/tasks/{o_task}/heartbeat/", {"lease_token": "{o_token}"}),
    ("post", "/api/v1/tasks/{o_task}/release/", {"lease_token": "{o_token}"}),
    ("post", "/api/v1/tasks/{o_task}/implemented/", {"lease_token": "{o_token}"}),
    ("post", "/api/v1/tasks/{o_task}/artifacts/", {"lease_token": "{o_token}"}),
    ("post", "/api/v1/tasks/{o_waiting}/assign/", {"agent": "agent-2"}),
    ("post", "/api/v1/tasks/{o_reserved}/unassign/", {}),
    ("post", "/api/v1/tasks/{o_task}/block/", {"reason": "mine"}),
    ("post", "/api/v1/tasks/{o_task}/unblock/", {}),
    ("post", "/api/v1/tasks/{o_task}/cancel/", {"reason": "mine"}),
    ("post", "/api/v1/tasks/{o_task}/abandon/", {"reason": "mine"}),
    ("post", "/api/v1/tasks/{o_task}/override/", {"to_state": "blocked", "rationale": "mine"}),
    ("post", "/api/v1/api-keys/{o_key}/revoke/", None),
    ("post", "/api/v1/api-keys/", {"actor": "spy", "roles": ["agent"], "project": "{other}"}),
]
NAMED_IDS = [f"{m}-{u}" for m, u, _ in NAMED]


@pytest.mark.parametrize("method,url,body", NAMED, ids=NAMED_IDS)
def test_404_for_another_projects_object_through_a_scoped_key(api, world, method, url, body):
    """A key confined to our project, with every role, learns nothing about the other one:
    404 exactly as for an id that does not exist, never 403 and never a 409 about its state.
    The key acts as the agent holding the other project's lease, so nothing but the scope
    stands in the way."""
    scoped = api(Role.ADMIN, actor=WORKER.name, project=world.project)
    before = database_state()
    response = send(scoped, method, fill(url, world.ids), fill(body, world.ids))
    assert_error(response, 404, "NOT_FOUND")
    assert database_state() == before

    if method == "get":  # the object is there: an unscoped key sees it
        assert send(api(Role.ADMIN), method, fill(url, world.ids)).status_code == 200


@pytest.mark.parametrize("method,url,body", NAMED, ids=NAMED_IDS)
def test_404_for_an_unknown_id(api, world, method, url, body):
    client = api(Role.ADMIN, actor=WORKER.name)
    unknown = {name: UNKNOWN for name in world.ids} | {"o_token": 1}
    before = database_state()
    response = send(client, method, fill(url, unknown), fill(body, unknown))
    assert_error(response, 404, "NOT_FOUND")
    assert database_state() == before


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/projects/{project}/leases/?task={o_task}",
        "/api/v1/projects/{project}/tasks/?milestone={o_milestone}",
        "/api/v1/projects/{project}/tasks/?milestone__phase={o_phase}",
        "/api/v1/projects/{project}/tasks/?parent={o_task}",
        "/api/v1/projects/{project}/dependencies/?prerequisite={o_task}",
        "/api/v1/projects/{project}/artifacts/?task={o_task}",
        "/api/v1/api-keys/?project={other}",
    ],
)
def test_filters_do_not_tell_a_scoped_key_which_ids_exist_elsewhere(api, world, url):
    """Filtering by another project's object and by an id nobody has answer alike."""
    scoped = api(Role.ADMIN, project=world.project)
    unknown = {name: UNKNOWN for name in world.ids} | {"project": world.project.pk}
    answers = [scoped.get(fill(url, ids)) for ids in (world.ids, unknown)]
    assert [a.status_code for a in answers] == [200, 200], answers[0].content
    assert answers[0].json()["results"] == answers[1].json()["results"] == []


@pytest.mark.parametrize(
    "method,url",
    [
        ("get", "/api/v1/tasks/999999999999999999/"),  # 18 digits: a lookup that finds nothing
        ("get", "/api/v1/tasks/9223372036854775807/"),  # the largest bigint: no such route
        ("get", "/api/v1/tasks/9223372036854775808/"),  # past any bigint
        ("get", "/api/v1/tasks/123456789012345678901234567890/context/"),
        ("get", "/api/v1/projects/99999999999999999999999/tasks/"),
        ("get", "/api/v1/projects/999999999999999999/events/"),
        ("post", "/api/v1/tasks/999999999999999999/claim/"),
        ("post", "/api/v1/tasks/99999999999999999999/claim/"),
        ("post", "/api/v1/api-keys/999999999999999999/revoke/"),
        ("get", "/api/v1/leases/-1/"),
        ("get", "/api/v1/tasks/1e3/"),
        ("get", "/api/v1/tasks/%EF%BC%91/"),  # a fullwidth digit one
        ("get", "/api/v1/no-such-endpoint/"),
    ],
)
def test_404_for_an_oversize_or_malformed_id_in_the_path(api, world, method, url):
    client = api(Role.ADMIN)
    before = database_state()
    assert_error(send(client, method, url), 404, "NOT_FOUND")
    assert database_state() == before


# --- 400 ----------------------------------------------------------------------------------
# (method, url, body, the path to the field in details.fields)
INVALID = [
    ("post", "/api/v1/projects/", {}, ["name"]),
    ("post", "/api/v1/projects/", {"name": "x", "slug": "not a slug!"}, ["slug"]),
    ("post", "/api/v1/projects/", {"name": "x", "lease_ttl_seconds": 1}, ["lease_ttl_seconds"]),
    ("post", "/api/v1/projects/", {"name": "x" * 201}, ["name"]),
    ("post", "/api/v1/projects/", {"name": "nul\u0000"}, ["name"]),
    ("post", "/api/v1/projects/", {"name": "!!!"}, ["slug"]),  # no slug can be made of it
    ("post", "/api/v1/projects/", {"name": "Again", "slug": "demo"}, ["slug"]),  # taken
    ("post", "/api/v1/projects/", [{"name": "x"}], ["non_field_errors"]),
    ("post", "/api/v1/projects/{project}/tasks/", {"title": ""}, ["title"]),
    ("post", "/api/v1/projects/{project}/tasks/", {"title": "t", "priority": "high"}, ["priority"]),
    ("post", "/api/v1/projects/{project}/tasks/", {"title": "t", "priority": 10**7}, ["priority"]),
    (
        "post",
        "/api/v1/projects/{project}/tasks/",
        {"title": "t", "max_attempts": 2**31},
        ["max_attempts"],
    ),
    (
        "post",
        "/api/v1/projects/{project}/tasks/",
        {"title": "t", "task_class": "x"},
        ["task_class"],
    ),
    (
        "post",
        "/api/v1/projects/{project}/tasks/",
        {"title": "t", "work_spec": {"acceptance_criteria": "one string"}},
        ["work_spec", "acceptance_criteria"],
    ),
    (
        "post",
        "/api/v1/projects/{project}/tasks/",
        {"title": "t", "capability_tags": ["ok", "x" * 101]},
        ["capability_tags", "1"],
    ),
    # a milestone or parent of another project: named as the request names it
    (
        "post",
        "/api/v1/projects/{project}/tasks/",
        {"title": "t", "milestone": "{o_milestone}"},
        ["milestone"],
    ),
    ("post", "/api/v1/projects/{project}/tasks/", {"title": "t", "parent": "{o_task}"}, ["parent"]),
    ("post", "/api/v1/projects/{project}/tasks/", {"title": "t", "parent": 2**63}, ["parent"]),
    (
        "post",
        "/api/v1/projects/{project}/dependencies/",
        {"prerequisite": "{task}", "dependent": "{o_task}"},
        ["dependent"],
    ),
    (
        "post",
        "/api/v1/projects/{project}/dependencies/",
        {"prerequisite": 0, "dependent": "{task}"},
        ["prerequisite"],
    ),
    (
        "post",
        "/api/v1/projects/{project}/dependencies/",
        {"prerequisite": "{task}", "dependent": "{claimed}", "unlock_on": "soon"},
        ["unlock_on"],
    ),
    (
        "post",
        "/api/v1/projects/{project}/milestones/",
        {"name": "m", "phase": "{o_phase}"},
        ["phase"],
    ),
    (
        "post",
        "/api/v1/projects/{project}/claim-next/",
        {"capabilities": "python"},
        ["capabilities"],
    ),
    ("post", "/api/v1/tasks/{claimed}/start/", {}, ["lease_token"]),
    ("post", "/api/v1/tasks/{claimed}/start/", {"lease_token": 0}, ["lease_token"]),
    ("post", "/api/v1/tasks/{claimed}/heartbeat/", {"lease_token": 2**31}, ["lease_token"]),
    ("post", "/api/v1/tasks/{claimed}/heartbeat/", {"lease_token": "one"}, ["lease_token"]),
    (
        "post",
        "/api/v1/tasks/{claimed}/artifacts/",
        {"lease_token": "{token}", "commit_sha": "not-hex"},
        ["commit_sha"],
    ),
    (
        "post",
        "/api/v1/tasks/{claimed}/artifacts/",
        {"lease_token": "{token}", "check_status": "great"},
        ["check_status"],
    ),
    ("post", "/api/v1/tasks/{task}/assign/", {"agent": "   "}, ["agent"]),
    ("post", "/api/v1/tasks/{task}/assign/", {"agent": "a", "ttl_seconds": 0}, ["ttl_seconds"]),
    ("post", "/api/v1/tasks/{task}/block/", {}, ["reason"]),
    ("post", "/api/v1/tasks/{task}/cancel/", {"reason": ""}, ["reason"]),
    (
        "post",
        "/api/v1/tasks/{task}/override/",
        {"to_state": "integrated", "rationale": "approved by me"},
        ["to_state"],
    ),
    ("post", "/api/v1/tasks/{task}/override/", {"to_state": "blocked"}, ["rationale"]),
    ("post", "/api/v1/api-keys/", {"actor": "x", "roles": ["king"]}, ["roles", "0"]),
    ("post", "/api/v1/api-keys/", {"actor": "x", "roles": []}, ["roles"]),
    ("post", "/api/v1/api-keys/", {"actor": "", "roles": ["agent"]}, ["actor"]),
    ("get", "/api/v1/projects/{project}/events/?after=0", None, ["after"]),
    ("get", "/api/v1/projects/{project}/events/?after=9223372036854775808", None, ["after"]),
    ("get", "/api/v1/projects/{project}/events/?limit=5000", None, ["limit"]),
    ("get", "/api/v1/projects/{project}/events/?task=x", None, ["task"]),
    ("get", "/api/v1/projects/{project}/graph/?milestone=abc", None, ["milestone"]),
    ("get", "/api/v1/projects/{project}/ready/?capabilities=" + "x" * 2001, None, ["capabilities"]),
    ("get", "/api/v1/projects/{project}/tasks/?state=nope", None, ["state"]),
    ("get", "/api/v1/projects/{project}/tasks/?number=1.5", None, ["number"]),
    (
        "get",
        "/api/v1/projects/{project}/tasks/?milestone=99999999999999999999",
        None,
        ["milestone"],
    ),
    ("get", "/api/v1/projects/{project}/leases/?task=x", None, ["task"]),
    ("get", "/api/v1/projects/{project}/tasks/?milestone__phase=0", None, ["milestone__phase"]),
    ("get", "/api/v1/api-keys/?project=-1", None, ["project"]),
]


@pytest.mark.parametrize(
    "method,url,body,field", INVALID, ids=[f"{m}-{u}-{'.'.join(f)}" for m, u, _, f in INVALID]
)
def test_400_names_the_invalid_field(api, world, method, url, body, field):
    client = api(Role.ADMIN, actor=WORKER.name)
    before = database_state()
    response = send(client, method, fill(url, world.ids), fill(body, world.ids))
    error = assert_error(response, 400, "VALIDATION_ERROR")
    found = error["details"]["fields"]
    for step in field:
        assert step in found, (field, error)
        found = found[step]
    assert isinstance(found, list) and all(isinstance(m, str) and m for m in found), error
    assert database_state() == before


@pytest.mark.parametrize(
    "raw",
    [
        b'{"title": ',
        b'{"title": "t",}',
        b"{'title': 't'}",
        b'{"title": "t", "priority": NaN}',
        b'{"title": "t", "priority": Infinity}',
        b'{"title": "\xff\xfe"}',
        b"",
    ],
    ids=["truncated", "trailing-comma", "single-quotes", "nan", "infinity", "not-utf8", "empty"],
)
def test_400_for_malformed_json(api, world, raw):
    client = api(Role.PLANNER)
    before = database_state()
    response = client.generic(
        "POST",
        f"/api/v1/projects/{world.project.pk}/tasks/",
        raw,
        content_type="application/json",
    )
    if raw:
        assert_error(response, 400, "MALFORMED_REQUEST")
    else:  # no body at all is no JSON error, but the required fields are missing
        assert "title" in assert_error(response, 400, "VALIDATION_ERROR")["details"]["fields"]
    assert database_state() == before


def test_400_for_a_body_too_large_to_read(api, world):
    client = api(Role.PLANNER)
    huge = {"title": "t", "description": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    before = database_state()
    response = client.post(f"/api/v1/projects/{world.project.pk}/tasks/", huge, format="json")
    error = assert_error(response, 400, "REQUEST_TOO_LARGE")
    assert error["details"] == {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    assert database_state() == before


def test_400_for_too_many_query_parameters(api, world):
    client = api(Role.PLANNER)
    query = "&".join(f"p{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    before = database_state()
    for method, body in [("get", None), ("post", {"title": "t"})]:
        url = f"/api/v1/projects/{world.project.pk}/tasks/?{query}"
        assert_error(send(client, method, url, body), 400, "MALFORMED_REQUEST")
    assert database_state() == before


def test_415_for_a_body_that_is_not_json(api, world):
    client = api(Role.PLANNER)
    before = database_state()
    response = client.post(
        f"/api/v1/projects/{world.project.pk}/tasks/", "title=t", content_type="text/plain"
    )
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert database_state() == before


def test_406_for_an_accept_header_json_cannot_satisfy(api, world):
    response = api(Role.ADMIN).get("/api/v1/me/", HTTP_ACCEPT="text/html")
    assert_error(response, 406, "NOT_ACCEPTABLE")


def _cursor(**tokens: str) -> str:
    return base64.b64encode(urlencode(tokens).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    ["garbage", _cursor(p="abc"), _cursor(p=""), _cursor(p="1.5"), _cursor(o="x"), _cursor(r="x")],
    ids=["not-base64", "text-position", "empty-position", "float-position", "bad-offset", "bad-r"],
)
@pytest.mark.parametrize(
    "url",
    ["/api/v1/projects/", "/api/v1/projects/{project}/tasks/", "/api/v1/projects/{project}/ready/"],
)
def test_404_for_a_tampered_cursor(api, world, cursor, url):
    response = api(Role.ADMIN).get(fill(url, world.ids), {"cursor": cursor})
    assert_error(response, 404, "NOT_FOUND")


# --- 405 ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method,url,allowed",
    [
        ("delete", "/api/v1/tasks/{task}/", "GET"),
        ("put", "/api/v1/tasks/{task}/", "GET"),
        ("patch", "/api/v1/projects/{project}/", "GET"),
        ("get", "/api/v1/tasks/{task}/claim/", "POST"),
        ("delete", "/api/v1/projects/{project}/tasks/", "GET, POST"),
        ("get", "/api/v1/projects/{project}/claim-next/", "POST"),
        ("delete", "/api/v1/api-keys/{o_key}/revoke/", "POST"),
        ("post", "/api/v1/me/", "GET"),
    ],
)
def test_405_for_a_method_the_endpoint_does_not_have(api, world, method, url, allowed):
    client = api(Role.ADMIN)
    before = database_state()
    response = send(client, method, fill(url, world.ids))
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in response["Allow"].split(",")} >= set(allowed.split(", "))
    assert database_state() == before


# --- 409 ----------------------------------------------------------------------------------
def test_409_when_a_rule_says_no_changes_nothing(api, world):
    worker = api(Role.AGENT, actor=WORKER.name)
    rival = api(Role.AGENT, actor="agent-2")
    planner = api(Role.PLANNER)
    task = f"/api/v1/tasks/{world.claimed.pk}"
    edges = f"/api/v1/projects/{world.project.pk}/dependencies/"
    token = world.lease.token
    cases = [
        (rival, f"{task}/claim/", None, "TASK_ALREADY_CLAIMED"),
        (rival, f"{task}/heartbeat/", {"lease_token": token}, "LEASE_STALE"),
        (worker, f"{task}/heartbeat/", {"lease_token": token + 1}, "LEASE_STALE"),
        (worker, f"{task}/artifacts/", {"lease_token": token}, "INVALID_TRANSITION"),
        (worker, f"{task}/implemented/", {"lease_token": token}, "INVALID_TRANSITION"),
        (worker, f"/api/v1/tasks/{world.second.pk}/claim/", None, "DEPENDENCIES_UNMET"),
        (
            planner,
            edges,
            {"prerequisite": world.second.pk, "dependent": world.first.pk},
            "DEPENDENCY_CYCLE",
        ),
        (
            planner,
            edges,
            {"prerequisite": world.first.pk, "dependent": world.second.pk},
            "DEPENDENCY_EXISTS",
        ),
    ]
    before = database_state()
    for client, url, body, code in cases:
        assert_error(send(client, "post", url, body), 409, code)
    assert database_state() == before


@pytest.mark.django_db
def test_errors_raised_outside_the_api_views_keep_the_one_shape(client):
    """Guards against Django's own HTML error pages reaching an API client."""
    response = client.get("/api/v1/me/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"
