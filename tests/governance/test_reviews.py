"""Invariant 6: integrated needs an approving review by someone other than the implementer."""

import pytest
from django.db import DatabaseError, connection, transaction

from governance.actors import Actor
from governance.errors import SelfReview
from governance.models import Review
from governance.selectors import current_approval, review_queue
from governance.services.reviews import review_record
from orchestration.errors import ApprovalRequired, InvalidTransition
from orchestration.models import Event, Task, TaskState
from orchestration.services import integration, operations
from tascade.errors import Forbidden, InvalidInput
from tests.conftest import OPERATOR, agent
from tests.orchestration.helpers import implement

pytestmark = pytest.mark.django_db
BUILDER = agent("builder")
REVIEWER = Actor(name="rita", roles=frozenset({"reviewer"}))


def _state(task):
    return Task.objects.get(pk=task.pk).state


def test_approval_by_someone_else_makes_the_task_integrable(make_task):
    task = make_task()
    implement(task, BUILDER)
    review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="clean")
    assert current_approval(Task.objects.get(pk=task.pk)).reviewer == "rita"
    assert integration.integration_enqueue(actor=OPERATOR, task_id=task.pk).state == "queued"


def test_the_implementer_can_never_review_their_own_work(make_task):
    """Guards against self-approval, whatever roles the implementer's identity holds."""
    task = make_task()
    implement(task, BUILDER)
    same_identity = Actor(name="builder", roles=frozenset({"admin"}))
    with pytest.raises(SelfReview):
        review_record(actor=same_identity, task_id=task.pk, verdict="approved", rationale="ok")
    assert not Review.objects.exists()
    with pytest.raises(ApprovalRequired):
        integration.integration_enqueue(actor=OPERATOR, task_id=task.pk)


def test_an_agent_key_cannot_review(make_task):
    task = make_task()
    implement(task, BUILDER)
    with pytest.raises(Forbidden):
        review_record(actor=agent("other"), task_id=task.pk, verdict="approved", rationale="x")


def test_a_review_needs_a_rationale(make_task):
    task = make_task()
    implement(task, BUILDER)
    with pytest.raises(InvalidInput):
        review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale=" ")


def test_only_implemented_work_is_reviewed(make_task):
    task = make_task()
    with pytest.raises(InvalidTransition):
        review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="early")


def test_changes_requested_sends_the_work_back_with_the_note(make_task, edge):
    task, dependent = make_task("t"), make_task("d")
    edge(task, dependent)
    implement(task, BUILDER)
    assert _state(dependent) == TaskState.READY
    review_record(
        actor=REVIEWER,
        task_id=task.pk,
        verdict="changes_requested",
        rationale="add tests for the empty case",
    )
    reworked = Task.objects.get(pk=task.pk)
    assert reworked.state == TaskState.READY
    assert "add tests for the empty case" in reworked.state_reason
    assert _state(dependent) == TaskState.BACKLOG  # it depended on implemented work


def test_an_approval_does_not_carry_over_to_reworked_code(make_task):
    """Guards against integrating a second implementation on the first one's approval."""
    task = make_task()
    implement(task, BUILDER)
    review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="good")
    operations.task_override(
        actor=OPERATOR, task_id=task.pk, to_state="ready", rationale="found a bug after approval"
    )
    implement(Task.objects.get(pk=task.pk), BUILDER)
    task = Task.objects.get(pk=task.pk)
    assert task.implementation_count == 2
    assert current_approval(task) is None


def test_reject_gives_the_work_up(make_task):
    task = make_task()
    implement(task, BUILDER)
    review_record(actor=REVIEWER, task_id=task.pk, verdict="rejected", rationale="wrong idea")
    assert _state(task) == TaskState.ABANDONED
    assert Event.objects.filter(task=task, kind="task.rejected").exists()


def test_review_queue_puts_risky_and_old_work_first(project, make_task):
    plain_old = make_task("plain old")
    risky_new = make_task("migration", task_class="migration")
    approved = make_task("approved")
    for task in (plain_old, risky_new, approved):
        implement(task, BUILDER)
    review_record(actor=REVIEWER, task_id=approved.pk, verdict="approved", rationale="ok")
    queue = list(review_queue(REVIEWER, project.pk))
    assert [t.pk for t in queue] == [risky_new.pk, plain_old.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL trigger")
def test_reviews_cannot_be_rewritten(make_task):
    task = make_task()
    implement(task, BUILDER)
    review = review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="ok")
    with pytest.raises(DatabaseError), transaction.atomic():
        Review.objects.filter(pk=review.pk).update(verdict="rejected")


def test_the_reviewers_note_is_in_the_task_context(api, make_task):
    task = make_task()
    implement(task, BUILDER)
    review_record(
        actor=REVIEWER,
        task_id=task.pk,
        verdict="changes_requested",
        rationale="handle the empty list",
    )
    context = api("agent").get(f"/api/v1/tasks/{task.pk}/context/").json()
    assert context["task"]["state"] == "ready"
    assert context["reviews"][0]["rationale"] == "handle the empty list"
    assert context["reviews"][0]["verdict"] == "changes_requested"
