"""Delegation: a held task split into children completes by itself when they do."""

import pytest

from governance.actors import Actor
from governance.selectors import review_queue
from governance.services.reviews import review_record
from orchestration.errors import DependencyCycle, InvalidTransition, LeaseStale
from orchestration.models import Event, Lease, LeaseStatus, Task, TaskState
from orchestration.services import integration, leases, operations
from orchestration.services.delegation import MAX_CHILDREN, task_delegate
from tascade.errors import InvalidInput
from tests.conftest import OPERATOR, agent
from tests.orchestration.helpers import claim, implement

pytestmark = pytest.mark.django_db
S = TaskState
SPLITTER = agent("splitter")
BUILDER = agent("builder")
REVIEWER = Actor(name="rita", roles=frozenset({"reviewer"}))


def _state(task):
    return Task.objects.get(pk=task.pk).state


def _split(task, children, *, actor=SPLITTER, start=True):
    lease = claim(task, actor)
    if start:
        leases.task_start(actor=actor, task_id=task.pk, lease_token=lease.token)
    return task_delegate(actor=actor, task_id=task.pk, lease_token=lease.token, children=children)


def _integrate(task):
    review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="ok")
    attempt = integration.integration_enqueue(actor=OPERATOR, task_id=task.pk)
    integration.integration_take_next(actor=OPERATOR, project_id=task.project_id)
    integration.integration_record_result(actor=OPERATOR, attempt_id=attempt.pk, result="succeeded")


def test_split_creates_ordered_children_and_lets_go_of_the_parent(make_task):
    parent = make_task("Add OAuth", priority=5, capability_tags=["python"])
    result = _split(
        parent,
        [
            {"key": "db", "title": "schema"},
            {"key": "api", "title": "endpoints", "depends_on": ["db"]},
            {"key": "ui", "title": "button", "depends_on": ["api"], "priority": 9},
        ],
    )
    db, api, ui = sorted(result.children, key=lambda t: t.pk)
    assert [t.title for t in (db, api, ui)] == ["schema", "endpoints", "button"]
    assert {t.parent_id for t in result.children} == {parent.pk}
    assert (db.state, api.state, ui.state) == (S.READY, S.BACKLOG, S.BACKLOG)
    # Left-out fields come from the parent; given ones win.
    assert (db.priority, db.capability_tags, ui.priority) == (5, ["python"], 9)
    parent.refresh_from_db()
    assert parent.state == S.DELEGATED and parent.delegated_at is not None
    assert parent.holder == "" and parent.attempt_count == 0
    assert Lease.objects.get(task=parent).status == LeaseStatus.COMPLETED
    event = Event.objects.get(task=parent, kind="task.delegated")
    assert event.payload["children"] == [db.ref, api.ref, ui.ref]


def test_a_claimed_task_can_be_split_before_it_starts(make_task):
    parent = make_task("p")
    _split(parent, [{"key": "a", "title": "a"}], start=False)
    assert _state(parent) == S.DELEGATED


def test_the_parent_follows_its_children_to_implemented_then_integrated(make_task, edge):
    parent, after_impl, after_int = make_task("p"), make_task("x"), make_task("y")
    edge(parent, after_impl, unlock_on="implemented")
    edge(parent, after_int, unlock_on="integrated")
    first, second = _split(
        parent, [{"key": "a", "title": "a"}, {"key": "b", "title": "b"}]
    ).children

    implement(first, BUILDER)
    assert _state(parent) == S.DELEGATED
    implement(second, BUILDER)
    assert _state(parent) == S.IMPLEMENTED
    assert _state(after_impl) == S.READY and _state(after_int) == S.BACKLOG

    _integrate(first)
    assert _state(parent) == S.IMPLEMENTED
    _integrate(second)
    assert _state(parent) == S.INTEGRATED
    assert _state(after_int) == S.READY
    kinds = list(
        Event.objects.filter(task=parent, kind="task.delegation_followed").values_list(
            "payload__to", flat=True
        )
    )
    assert kinds == [S.IMPLEMENTED, S.INTEGRATED]


def test_a_child_sent_back_to_work_takes_the_parent_back_to_delegated(make_task, edge):
    parent, dependent = make_task("p"), make_task("d")
    edge(parent, dependent)
    (child,) = _split(parent, [{"key": "a", "title": "a"}]).children
    implement(child, BUILDER)
    assert _state(parent) == S.IMPLEMENTED and _state(dependent) == S.READY

    review_record(actor=REVIEWER, task_id=child.pk, verdict="changes_requested", rationale="no")
    assert _state(child) == S.READY
    assert _state(parent) == S.DELEGATED
    assert _state(dependent) == S.BACKLOG  # not started yet: it waits again


def test_nested_delegation_completes_upwards(make_task):
    root = make_task("root")
    (middle,) = _split(root, [{"key": "m", "title": "middle"}]).children
    leaf_a, leaf_b = _split(
        middle, [{"key": "a", "title": "a"}, {"key": "b", "title": "b", "depends_on": ["a"]}]
    ).children
    assert (_state(root), _state(middle)) == (S.DELEGATED, S.DELEGATED)
    implement(leaf_a, BUILDER)
    implement(Task.objects.get(pk=leaf_b.pk), BUILDER)
    assert (_state(middle), _state(root)) == (S.IMPLEMENTED, S.IMPLEMENTED)


def test_cancelled_children_do_not_hold_the_parent_back(make_task):
    parent = make_task("p")
    keep, drop = _split(parent, [{"key": "k", "title": "k"}, {"key": "d", "title": "d"}]).children
    implement(keep, BUILDER)
    assert _state(parent) == S.DELEGATED
    operations.task_cancel(actor=OPERATOR, task_id=drop.pk, reason="not needed")
    assert _state(parent) == S.IMPLEMENTED


def test_all_children_cancelled_leaves_the_parent_delegated(make_task):
    parent = make_task("p")
    (only,) = _split(parent, [{"key": "k", "title": "k"}]).children
    operations.task_cancel(actor=OPERATOR, task_id=only.pk, reason="not needed")
    assert _state(parent) == S.DELEGATED


def test_a_delegated_task_is_never_reviewed_or_merged_on_its_own(make_task):
    parent = make_task("p")
    (child,) = _split(parent, [{"key": "a", "title": "a"}]).children
    implement(child, BUILDER)
    assert _state(parent) == S.IMPLEMENTED
    queued = set(review_queue(OPERATOR, parent.project_id).values_list("pk", flat=True))
    assert queued == {child.pk}
    with pytest.raises(InvalidTransition):
        review_record(actor=REVIEWER, task_id=parent.pk, verdict="approved", rationale="ok")
    with pytest.raises(InvalidTransition):
        integration.integration_enqueue(actor=OPERATOR, task_id=parent.pk)


def test_unblocking_a_delegated_task_returns_it_to_its_childrens_level(make_task):
    parent = make_task("p")
    (child,) = _split(parent, [{"key": "a", "title": "a"}]).children
    operations.task_block(actor=OPERATOR, task_id=parent.pk, reason="hold on")
    implement(child, BUILDER)
    assert _state(parent) == S.BLOCKED  # a blocked parent does not move on its own
    operations.task_unblock(actor=OPERATOR, task_id=parent.pk, reason="go")
    assert _state(parent) == S.IMPLEMENTED


def test_an_override_takes_the_task_over_from_its_children(make_task):
    parent = make_task("p")
    (child,) = _split(parent, [{"key": "a", "title": "a"}]).children
    operations.task_override(
        actor=OPERATOR, task_id=parent.pk, to_state="implemented", rationale="done by hand"
    )
    parent.refresh_from_db()
    assert parent.delegated_at is None
    implement(child, BUILDER)
    review_record(actor=REVIEWER, task_id=child.pk, verdict="changes_requested", rationale="x")
    assert _state(parent) == S.IMPLEMENTED  # no longer follows


def test_a_stale_token_splits_nothing(make_task):
    parent = make_task("p")
    lease = claim(parent, SPLITTER)
    tasks_before, events_before = Task.objects.count(), Event.objects.count()
    with pytest.raises(LeaseStale):
        task_delegate(
            actor=SPLITTER,
            task_id=parent.pk,
            lease_token=lease.token + 1,
            children=[{"key": "a", "title": "a"}],
        )
    with pytest.raises(LeaseStale):  # someone else's lease
        task_delegate(
            actor=BUILDER,
            task_id=parent.pk,
            lease_token=lease.token,
            children=[{"key": "a", "title": "a"}],
        )
    assert (Task.objects.count(), Event.objects.count()) == (tasks_before, events_before)
    assert _state(parent) == S.CLAIMED


@pytest.mark.parametrize(
    "children",
    [
        [],
        [{"key": "a", "title": "a"}, {"key": "a", "title": "b"}],
        [{"key": "a", "title": "a", "depends_on": ["zz"]}],
        [{"key": str(i), "title": "t"} for i in range(MAX_CHILDREN + 1)],
    ],
    ids=["none", "duplicate-key", "unknown-sibling", "too-many"],
)
def test_bad_splits_are_refused_and_change_nothing(make_task, children):
    parent = make_task("p")
    lease = claim(parent, SPLITTER)
    tasks_before = Task.objects.count()
    with pytest.raises(InvalidInput):
        task_delegate(actor=SPLITTER, task_id=parent.pk, lease_token=lease.token, children=children)
    assert Task.objects.count() == tasks_before and _state(parent) == S.CLAIMED


def test_a_cycle_among_siblings_is_refused_and_nothing_is_created(make_task):
    parent = make_task("p")
    lease = claim(parent, SPLITTER)
    tasks_before = Task.objects.count()

    with pytest.raises(DependencyCycle):
        task_delegate(
            actor=SPLITTER,
            task_id=parent.pk,
            lease_token=lease.token,
            children=[
                {"key": "a", "title": "a", "depends_on": ["b"]},
                {"key": "b", "title": "b", "depends_on": ["a"]},
            ],
        )
    assert Task.objects.count() == tasks_before and _state(parent) == S.CLAIMED


def test_delegate_over_the_api(api, make_task, project):
    parent = make_task("p")
    agent_client = api("agent", actor="splitter")
    lease = agent_client.post(f"/api/v1/tasks/{parent.pk}/claim/", format="json").json()["lease"]
    body = {
        "lease_token": lease["token"],
        "children": [
            {"key": "db", "title": "schema", "work_spec": {"objective": "tables"}},
            {"key": "api", "title": "endpoints", "depends_on": ["db"]},
        ],
    }
    response = agent_client.post(f"/api/v1/tasks/{parent.pk}/delegate/", body, format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["parent"]["state"] == "delegated" and data["parent"]["delegated_at"]
    assert [c["title"] for c in data["children"]] == ["schema", "endpoints"]
    assert data["children"][0]["work_spec"] == {"objective": "tables"}
    assert [c["parent"] for c in data["children"]] == [parent.pk, parent.pk]

    again = agent_client.post(f"/api/v1/tasks/{parent.pk}/delegate/", body, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "LEASE_STALE"
    bad = agent_client.post(
        f"/api/v1/tasks/{parent.pk}/delegate/", {"lease_token": 1, "children": []}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "VALIDATION_ERROR"
    planner = api("planner", actor="pat")
    refused = planner.post(f"/api/v1/tasks/{parent.pk}/delegate/", body, format="json")
    assert refused.status_code == 403
