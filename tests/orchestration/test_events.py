"""Invariant 9: every change writes its event in the same transaction; the log is append-only."""

import pytest
from django.db import DatabaseError, connection, transaction

from governance.actors import Actor
from orchestration.errors import DependencyCycle
from orchestration.models import Event
from orchestration.selectors import events_after
from orchestration.services import leases, operations
from tests.conftest import ADMIN, OPERATOR, agent
from tests.orchestration.helpers import claim, implement, later

pytestmark = pytest.mark.django_db
A, B = agent("agent-a"), agent("agent-b")


def _kinds(task):
    return list(Event.objects.filter(task=task).order_by("id").values_list("kind", flat=True))


def test_each_step_of_a_full_cycle_is_recorded_in_order(make_task):
    task = make_task()
    implement(task, A)
    assert _kinds(task) == [
        "task.created",
        "task.claimed",
        "task.started",
        "artifact.published",
        "task.implemented",
    ]
    claimed = Event.objects.get(task=task, kind="task.claimed")
    assert claimed.actor == A.name
    assert claimed.payload["from"] == "ready" and claimed.payload["to"] == "claimed"


def test_expiry_release_and_override_are_recorded(make_task):
    task = make_task()
    first = claim(task, A)
    leases.task_release(actor=A, task_id=task.pk, lease_token=first.token, reason="wrong repo")
    claim(task, B)
    claim(task, A, now=later(10_000))
    operations.task_override(actor=OPERATOR, task_id=task.pk, to_state="blocked", rationale="r")
    kinds = _kinds(task)
    for kind in ("task.released", "lease.expired", "lease.revoked", "task.overridden"):
        assert kind in kinds


def test_a_refused_change_writes_no_event(make_task, edge):
    a, b = make_task("a"), make_task("b")
    edge(a, b)
    before = Event.objects.count()
    with pytest.raises(DependencyCycle):
        edge(b, a)
    assert Event.objects.count() == before


def test_a_failure_after_the_state_change_rolls_the_event_back_too(make_task, monkeypatch):
    """Guards against an event written outside the transaction of the change it records."""
    task = make_task()
    from orchestration.services import lifecycle

    def explode(*args, **kwargs):
        raise RuntimeError("crash after the event was written")

    monkeypatch.setattr(lifecycle, "readiness_propagate", explode)
    with pytest.raises(RuntimeError):
        claim(task, A)
    task.refresh_from_db()
    assert task.state == "ready"
    assert not Event.objects.filter(task=task, kind="task.claimed").exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL trigger")
def test_events_cannot_be_changed_or_deleted(make_task):
    """Guards against the audit trail being rewritten: the database refuses it."""
    task = make_task()
    event = Event.objects.filter(task=task).first()
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event.pk).update(kind="tampered")
    with pytest.raises(DatabaseError), transaction.atomic():
        Event.objects.filter(pk=event.pk).delete()
    assert Event.objects.get(pk=event.pk).kind == "task.created"


def test_events_are_read_in_order_with_an_after_cursor(project, make_task):
    for i in range(5):
        make_task(f"t{i}")
    first_page = events_after(ADMIN, project.pk, limit=3)
    rest = events_after(ADMIN, project.pk, after=first_page[-1].pk)
    ids = [e.pk for e in first_page + rest]
    assert ids == sorted(ids)
    assert ids == list(
        Event.objects.filter(project=project).order_by("id").values_list("pk", flat=True)
    )


def test_events_filter_by_task_and_kind(project, make_task):
    one, two = make_task("one"), make_task("two")
    claim(two, A)
    got = events_after(ADMIN, project.pk, task_id=two.pk, kinds=["task.claimed"])
    assert [(e.task_id, e.kind) for e in got] == [(two.pk, "task.claimed")]
    assert one.pk != two.pk


def test_scoped_key_cannot_read_another_projects_events(project):
    from orchestration.services import plan
    from tascade.errors import NotFound
    from tests.conftest import PLANNER

    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    scoped = Actor(name="x", roles=frozenset({"agent"}), project_id=other.pk)
    with pytest.raises(NotFound):
        events_after(scoped, project.pk)
