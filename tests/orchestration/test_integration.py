"""The integration queue: in order, one merge at a time, results drive the task."""

import pytest

from governance.actors import Actor
from governance.services.reviews import review_record
from orchestration.errors import (
    ApprovalRequired,
    IntegrationNotRunning,
    IntegrationQueued,
    InvalidTransition,
)
from orchestration.models import IntegrationAttempt, Task, TaskState
from orchestration.services import integration, leases, operations
from tascade.errors import Forbidden
from tests.conftest import OPERATOR, agent
from tests.orchestration.helpers import implement

pytestmark = pytest.mark.django_db
BUILDER = agent("builder")
REVIEWER = Actor(name="rita", roles=frozenset({"reviewer"}))


def _approved(task):
    implement(task, BUILDER)
    review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="ok")
    return integration.integration_enqueue(actor=OPERATOR, task_id=task.pk)


def _state(task):
    return Task.objects.get(pk=task.pk).state


def test_success_integrates_and_unlocks_integrated_dependents(make_task, edge):
    task, dependent = make_task("t"), make_task("d")
    edge(task, dependent, unlock_on="integrated")
    attempt = _approved(task)
    assert _state(dependent) == TaskState.BACKLOG
    taken = integration.integration_take_next(actor=OPERATOR, project_id=task.project_id)
    assert taken.pk == attempt.pk and taken.state == "running"
    integration.integration_record_result(
        actor=OPERATOR,
        attempt_id=attempt.pk,
        result="succeeded",
        base_sha="a" * 40,
        head_sha="b" * 40,
    )
    assert _state(task) == TaskState.INTEGRATED
    assert _state(dependent) == TaskState.READY


def test_conflict_puts_the_task_in_conflict_and_an_agent_can_take_it_back(make_task):
    task = make_task()
    attempt = _approved(task)
    integration.integration_take_next(actor=OPERATOR, project_id=task.project_id)
    integration.integration_record_result(
        actor=OPERATOR, attempt_id=attempt.pk, result="conflict", diagnostics="CONFLICT in a.py"
    )
    assert _state(task) == TaskState.CONFLICT
    lease = leases.task_claim_next(actor=agent("fixer"), project_id=task.project_id)
    assert lease.task_id == task.pk


def test_failed_checks_send_the_work_back(make_task):
    task = make_task()
    attempt = _approved(task)
    integration.integration_take_next(actor=OPERATOR, project_id=task.project_id)
    integration.integration_record_result(
        actor=OPERATOR, attempt_id=attempt.pk, result="failed_checks", diagnostics="3 failed"
    )
    reworked = Task.objects.get(pk=task.pk)
    assert reworked.state == TaskState.READY and "3 failed" in reworked.state_reason


def test_unapproved_work_cannot_enter_the_queue(make_task):
    task = make_task()
    implement(task, BUILDER)
    with pytest.raises(ApprovalRequired):
        integration.integration_enqueue(actor=OPERATOR, task_id=task.pk)


def test_a_task_is_queued_once(make_task):
    task = make_task()
    _approved(task)
    with pytest.raises(IntegrationQueued):
        integration.integration_enqueue(actor=OPERATOR, task_id=task.pk)


def test_the_queue_runs_in_order_one_at_a_time(make_task):
    first, second = make_task("1"), make_task("2")
    one, two = _approved(first), _approved(second)
    assert (
        integration.integration_take_next(actor=OPERATOR, project_id=first.project_id).pk == one.pk
    )
    assert integration.integration_take_next(actor=OPERATOR, project_id=first.project_id) is None
    integration.integration_record_result(actor=OPERATOR, attempt_id=one.pk, result="succeeded")
    assert (
        integration.integration_take_next(actor=OPERATOR, project_id=first.project_id).pk == two.pk
    )


def test_only_the_taker_records_the_result(make_task):
    task = make_task()
    attempt = _approved(task)
    integration.integration_take_next(actor=OPERATOR, project_id=task.project_id)
    other_operator = Actor(name="op-2", roles=frozenset({"operator"}))
    with pytest.raises(IntegrationNotRunning):
        integration.integration_record_result(
            actor=other_operator, attempt_id=attempt.pk, result="succeeded"
        )
    assert _state(task) == TaskState.IMPLEMENTED


def test_leaving_implemented_withdraws_the_task_from_the_queue(make_task):
    """Guards against merging work that was sent back after it was queued."""
    task = make_task()
    attempt = _approved(task)
    operations.task_block(actor=OPERATOR, task_id=task.pk, reason="security hold")
    assert IntegrationAttempt.objects.get(pk=attempt.pk).state == "cancelled"
    assert integration.integration_take_next(actor=OPERATOR, project_id=task.project_id) is None


def test_agents_cannot_integrate(make_task):
    task = make_task()
    _approved(task)
    with pytest.raises(Forbidden):
        integration.integration_take_next(actor=BUILDER, project_id=task.project_id)


def test_a_forced_implementation_has_nothing_to_merge(make_task):
    """Guards against merging an earlier implementation's artifact after an override."""
    task = make_task()
    implement(task, BUILDER)
    operations.task_override(actor=OPERATOR, task_id=task.pk, to_state="ready", rationale="redo")
    operations.task_override(
        actor=OPERATOR, task_id=task.pk, to_state="implemented", rationale="merged by hand"
    )
    review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="ok")
    with pytest.raises(InvalidTransition):
        integration.integration_enqueue(actor=OPERATOR, task_id=task.pk)


def test_a_conflict_task_with_an_unmet_prerequisite_is_not_offered(make_task, edge):
    prerequisite, task = make_task("p"), make_task("t")
    edge(prerequisite, task)
    implement(prerequisite, BUILDER)
    attempt = _approved(task)
    operations.task_override(
        actor=OPERATOR, task_id=prerequisite.pk, to_state="blocked", rationale="reverted"
    )
    integration.integration_take_next(actor=OPERATOR, project_id=task.project_id)
    integration.integration_record_result(actor=OPERATOR, attempt_id=attempt.pk, result="conflict")
    assert _state(task) == TaskState.CONFLICT
    assert leases.task_claim_next(actor=agent("fixer"), project_id=task.project_id) is None
