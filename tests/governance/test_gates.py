"""Gates: each trigger makes exactly one checkpoint per occurrence; a decision settles a batch."""

from datetime import timedelta

import pytest

from governance.actors import Actor
from governance.errors import GateNotPassable, SelfReview
from governance.models import Checkpoint, GateDecision, Review
from governance.selectors import current_approval
from governance.services.gates import gate_decide, gate_rule_create, gates_evaluate
from governance.services.reviews import review_record
from orchestration.errors import InvalidTransition, TaskNotClaimable
from orchestration.models import Event, Task, TaskState
from orchestration.services import leases, operations, plan
from tascade.errors import InvalidInput
from tests.conftest import OPERATOR, PLANNER, agent
from tests.orchestration.helpers import implement, later

pytestmark = pytest.mark.django_db
BUILDER = agent("builder")
REVIEWER = Actor(name="rita", roles=frozenset({"reviewer"}))


def _rule(project, trigger, **kwargs):
    return gate_rule_create(
        actor=PLANNER, project_id=project.pk, name=trigger, trigger=trigger, **kwargs
    )


def _fresh(task):
    return Task.objects.get(pk=task.pk)


def test_backlog_threshold_fires_once_per_occurrence_even_after_closing(project, make_task):
    _rule(project, "unreviewed_backlog", threshold=2)
    first, second = make_task("a"), make_task("b")
    implement(first, BUILDER)
    assert gates_evaluate() == []  # one is below the threshold
    implement(second, BUILDER)
    [checkpoint] = gates_evaluate()
    assert set(checkpoint.candidates.values_list("pk", flat=True)) == {first.pk, second.pk}
    assert gates_evaluate() == []  # evaluated again: nothing new
    gate_decide(
        actor=REVIEWER,
        checkpoint_id=checkpoint.pk,
        verdict="approved",
        rationale="batch looks fine",
    )
    assert gates_evaluate() == []  # closed: still no regeneration
    assert Checkpoint.objects.count() == 1


def test_a_new_batch_is_a_new_occurrence(project, make_task):
    _rule(project, "unreviewed_backlog", threshold=1)
    one, two = make_task("a"), make_task("b")
    implement(one, BUILDER)
    assert len(gates_evaluate()) == 1
    implement(two, BUILDER)
    [second] = gates_evaluate()
    assert list(second.candidates.values_list("pk", flat=True)) == [two.pk]


def test_milestone_done_fires_once_the_milestone_is_all_implemented(project):
    phase = plan.phase_create(actor=PLANNER, project_id=project.pk, name="P")
    milestone = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=phase.pk, name="M1"
    )
    _rule(project, "milestone_done", milestone_id=milestone.pk)
    tasks = [
        plan.task_create(
            actor=PLANNER, project_id=project.pk, title=f"t{i}", milestone_id=milestone.pk
        )
        for i in range(2)
    ]
    implement(tasks[0], BUILDER)
    assert gates_evaluate() == []
    implement(tasks[1], BUILDER)
    [checkpoint] = gates_evaluate()
    assert checkpoint.occurrence == f"milestone:{milestone.pk}"
    assert gates_evaluate() == []


def test_waiting_age_fires_for_work_older_than_the_limit(project, make_task):
    _rule(project, "waiting_age", threshold=4)
    task = make_task()
    implement(task, BUILDER)
    assert gates_evaluate() == []
    [checkpoint] = gates_evaluate(now=later(5 * 3600))
    assert list(checkpoint.candidates.values_list("pk", flat=True)) == [task.pk]


def test_risky_classes_accumulate(project, make_task):
    _rule(project, "risk_accumulation", threshold=2)
    plain, migration = make_task("plain"), make_task("m1", task_class="migration")
    security = make_task("s1", task_class="security")
    for task in (plain, migration):
        implement(task, BUILDER)
    assert gates_evaluate() == []
    implement(security, BUILDER)
    [checkpoint] = gates_evaluate()
    assert set(checkpoint.candidates.values_list("pk", flat=True)) == {migration.pk, security.pk}


def test_protected_paths_use_the_real_touched_files(project, make_task):
    _rule(project, "protected_paths", protected_paths=["*/migrations/*", "settings.py"])
    safe, risky = make_task("safe"), make_task("risky")
    implement(safe, BUILDER)
    lease = leases.task_claim(actor=BUILDER, task_id=risky.pk)
    leases.task_start(actor=BUILDER, task_id=risky.pk, lease_token=lease.token)
    leases.artifact_publish(
        actor=BUILDER,
        task_id=risky.pk,
        lease_token=lease.token,
        touched_files=["orchestration/migrations/0009_x.py"],
    )
    leases.task_mark_implemented(actor=BUILDER, task_id=risky.pk, lease_token=lease.token)
    [checkpoint] = gates_evaluate()
    assert list(checkpoint.candidates.values_list("pk", flat=True)) == [risky.pk]


def test_passing_gate_approves_the_batch_and_integrates_the_gate(project, make_task, edge):
    _rule(project, "unreviewed_backlog", threshold=1)
    task = make_task()
    implement(task, BUILDER)
    [checkpoint] = gates_evaluate()
    after_gate = make_task("next phase")
    edge(checkpoint.gate_task, after_gate, unlock_on="integrated")
    gate_decide(
        actor=REVIEWER,
        checkpoint_id=checkpoint.pk,
        verdict="approved_with_risk",
        rationale="ok for now",
        evidence={"ci": "green"},
    )
    assert current_approval(_fresh(task)).reviewer == "rita"
    assert _fresh(checkpoint.gate_task).state == TaskState.INTEGRATED
    assert _fresh(after_gate).state == TaskState.READY
    assert Checkpoint.objects.get(pk=checkpoint.pk).decided_at is not None


def test_rejected_gate_sends_every_candidate_back(project, make_task):
    _rule(project, "unreviewed_backlog", threshold=2)
    tasks = [make_task(f"t{i}") for i in range(2)]
    for task in tasks:
        implement(task, BUILDER)
    [checkpoint] = gates_evaluate()
    gate_decide(
        actor=REVIEWER, checkpoint_id=checkpoint.pk, verdict="rejected", rationale="wrong direction"
    )
    assert {_fresh(t).state for t in tasks} == {TaskState.READY}
    assert _fresh(checkpoint.gate_task).state == TaskState.ABANDONED


def test_an_implementer_of_any_candidate_cannot_decide(project, make_task):
    """Guards against self-approval hidden inside a batch."""
    _rule(project, "unreviewed_backlog", threshold=2)
    mine, theirs = make_task("mine"), make_task("theirs")
    implement(mine, agent("rita"))
    implement(theirs, BUILDER)
    [checkpoint] = gates_evaluate()
    with pytest.raises(SelfReview):
        gate_decide(
            actor=REVIEWER, checkpoint_id=checkpoint.pk, verdict="approved", rationale="fine"
        )
    assert not GateDecision.objects.exists() and not Review.objects.exists()


def test_a_gate_cannot_pass_while_a_candidate_is_not_ready(project, make_task):
    _rule(project, "unreviewed_backlog", threshold=1)
    task = make_task()
    implement(task, BUILDER)
    [checkpoint] = gates_evaluate()
    operations.task_override(actor=OPERATOR, task_id=task.pk, to_state="ready", rationale="redo")
    with pytest.raises(GateNotPassable):
        gate_decide(actor=REVIEWER, checkpoint_id=checkpoint.pk, verdict="approved", rationale="ok")
    assert not GateDecision.objects.exists()


def test_gate_tasks_are_never_claimed_by_agents(project, make_task):
    """Guards against an agent taking (and then completing) a reviewer's gate."""
    _rule(project, "unreviewed_backlog", threshold=1)
    implement(make_task(), BUILDER)
    [checkpoint] = gates_evaluate()
    assert leases.task_claim_next(actor=agent("any"), project_id=project.pk) is None
    with pytest.raises(TaskNotClaimable):
        leases.task_claim(actor=agent("any"), task_id=checkpoint.gate_task_id)


def test_an_sla_breach_is_flagged_once(project, make_task):
    _rule(project, "unreviewed_backlog", threshold=1, sla_hours=2)
    implement(make_task(), BUILDER)
    [checkpoint] = gates_evaluate()
    gates_evaluate(now=later(3600))
    assert Checkpoint.objects.get(pk=checkpoint.pk).sla_breached_at is None
    gates_evaluate(now=later(3 * 3600))
    gates_evaluate(now=later(4 * 3600))
    breaches = Event.objects.filter(kind="checkpoint.sla_breached")
    assert breaches.count() == 1
    assert Checkpoint.objects.get(pk=checkpoint.pk).sla_breached_at is not None
    assert timedelta(0) < breaches[0].created_at - checkpoint.created_at


@pytest.mark.parametrize(
    "trigger,rule_kwargs,task_kwargs",
    [
        ("unreviewed_backlog", {"threshold": 1}, {}),
        ("waiting_age", {"threshold": 1}, {}),
        ("risk_accumulation", {"threshold": 1}, {"task_class": "security"}),
        ("protected_paths", {"protected_paths": ["docs/*"]}, {"expected_paths": ["docs/a.md"]}),
        ("milestone_done", {}, {}),
    ],
)
def test_no_trigger_regenerates_after_its_checkpoint_is_closed(
    project, trigger, rule_kwargs, task_kwargs
):
    """Guards against a regeneration loop: a closed checkpoint's work fires nothing again."""
    phase = plan.phase_create(actor=PLANNER, project_id=project.pk, name="P")
    milestone = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=phase.pk, name="M"
    )
    _rule(project, trigger, **rule_kwargs)
    task = plan.task_create(
        actor=PLANNER, project_id=project.pk, title="t", milestone_id=milestone.pk, **task_kwargs
    )
    implement(task, BUILDER)
    [checkpoint] = gates_evaluate(now=later(2 * 3600))
    assert gates_evaluate(now=later(3 * 3600)) == []
    gate_decide(
        actor=REVIEWER, checkpoint_id=checkpoint.pk, verdict="rejected", rationale="redo"
    )  # closed, and the task goes back to work
    assert gates_evaluate(now=later(4 * 3600)) == []
    assert Checkpoint.objects.filter(rule__trigger=trigger).count() == 1


def test_reworked_code_is_gated_again(project, make_task):
    """Guards against a rejected task's new implementation slipping past its gate."""
    _rule(project, "unreviewed_backlog", threshold=1)
    task = make_task()
    implement(task, BUILDER)
    [first] = gates_evaluate()
    gate_decide(actor=REVIEWER, checkpoint_id=first.pk, verdict="rejected", rationale="redo")
    implement(_fresh(task), BUILDER)
    [second] = gates_evaluate()
    assert list(second.candidates.values_list("pk", flat=True)) == [task.pk]
    assert gates_evaluate() == []


def test_a_pass_never_approves_code_reworked_after_batching(project, make_task):
    """Guards against a gate approving an implementation it never batched."""
    _rule(project, "unreviewed_backlog", threshold=1)
    task = make_task()
    implement(task, BUILDER)
    [checkpoint] = gates_evaluate()
    operations.task_override(actor=OPERATOR, task_id=task.pk, to_state="ready", rationale="redo")
    implement(_fresh(task), BUILDER)
    with pytest.raises(GateNotPassable) as refused:
        gate_decide(actor=REVIEWER, checkpoint_id=checkpoint.pk, verdict="approved", rationale="ok")
    assert refused.value.details["not_ready"] == [task.ref]
    assert current_approval(_fresh(task)) is None


def test_a_gate_moved_out_of_the_way_is_refused_cleanly(project, make_task):
    _rule(project, "unreviewed_backlog", threshold=1)
    implement(make_task(), BUILDER)
    [checkpoint] = gates_evaluate()
    operations.task_cancel(actor=OPERATOR, task_id=checkpoint.gate_task_id, reason="obsolete")
    with pytest.raises(InvalidTransition):
        gate_decide(actor=REVIEWER, checkpoint_id=checkpoint.pk, verdict="rejected", rationale="x")
    assert not GateDecision.objects.exists()


def test_a_milestone_already_approved_makes_no_empty_checkpoint(project):
    phase = plan.phase_create(actor=PLANNER, project_id=project.pk, name="P")
    milestone = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=phase.pk, name="M"
    )
    task = plan.task_create(
        actor=PLANNER, project_id=project.pk, title="t", milestone_id=milestone.pk
    )
    implement(task, BUILDER)
    review_record(actor=REVIEWER, task_id=task.pk, verdict="approved", rationale="ok")
    _rule(project, "milestone_done", milestone_id=milestone.pk)
    assert gates_evaluate() == []


def test_a_rule_milestone_must_be_in_its_phase(project):
    phases = [plan.phase_create(actor=PLANNER, project_id=project.pk, name=n) for n in "AB"]
    milestone = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=phases[1].pk, name="M"
    )
    with pytest.raises(InvalidInput):
        _rule(project, "milestone_done", phase_id=phases[0].pk, milestone_id=milestone.pk)
