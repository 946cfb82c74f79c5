"""Each figure against a hand-built history with known answers (see the ``history``
fixture), plus an empty project and a project with only blocked work."""

import pytest

from governance.actors import Actor, Role
from metrics import selectors
from orchestration.services import operations
from tests.metrics.helpers import DAY, OPERATOR, at, do, new_project, new_task

pytestmark = pytest.mark.django_db
VIEWER = Actor(name="viewer", roles=frozenset({Role.AGENT}))
HOUR = 3600


def test_the_days_figures_come_out_of_the_event_log(history):
    figures = selectors.day_figures(history["project"].pk, DAY.date())
    assert figures["created"] == 3
    assert figures["claimed"] == 3  # agent-a twice, agent-b once
    assert figures["implemented"] == 2
    assert figures["integrated"] == 1
    assert figures["lease_expiries"] == 1
    assert figures["reviews"] == 2
    assert figures["integration"] == {"succeeded": 1, "conflict": 0, "failed_checks": 0}
    assert figures["flow"] == [[6 * HOUR, 5 * HOUR, HOUR, 2 * HOUR, 2 * HOUR, HOUR]]
    assert sorted(figures["review_latencies"]) == [0.5 * HOUR, 2 * HOUR]
    assert figures["agents"] == {
        "agent-a": {"claimed": 2, "implemented": 2, "integrated": 1, "expired": 0, "released": 0},
        "agent-b": {"claimed": 1, "implemented": 0, "integrated": 0, "expired": 1, "released": 0},
    }


def test_the_next_day_holds_only_its_own_events(history):
    figures = selectors.day_figures(history["project"].pk, at(24).date())
    assert (figures["created"], figures["claimed"], figures["integrated"]) == (1, 1, 0)
    assert figures["flow"] == [] and figures["review_latencies"] == []


def test_the_summary_combines_the_window_and_the_live_state(history):
    summary = selectors.project_summary(VIEWER, history["project"].pk, now=at(35))
    assert summary["days"] == 30 and summary["to"] == "2025-03-04"
    assert summary["throughput"]["integrated"] == 1
    assert summary["lead_time_seconds"]["p50"] == 6 * HOUR
    assert summary["cycle_time_seconds"]["p90"] == 5 * HOUR
    assert summary["phases_seconds"]["review"]["p50"] == 2 * HOUR
    assert summary["wip"]["count"] == 1  # T4, claimed an hour ago
    assert summary["wip"]["age_seconds"]["max"] == HOUR
    # T2 ready, T3 blocked, T4 claimed: one of three open tasks is blocked.
    assert summary["blocked"] == {"count": 1, "open": 3, "ratio": pytest.approx(1 / 3)}
    assert summary["lease_expiries"] == {"count": 1, "last_hour": 0}
    assert summary["review_latency_seconds"]["p50"] == 1.25 * HOUR
    assert summary["integration"]["success_rate"] == 1.0
    agents = {row["agent"]: row for row in summary["agents"]}
    assert agents["agent-b"]["failure_rate"] == 1.0
    assert agents["agent-a"]["failure_rate"] == 0.0
    assert agents["agent-c"]["claimed"] == 1


def test_lease_expiries_of_the_last_hour(history):
    summary = selectors.project_summary(VIEWER, history["project"].pk, now=at(14.5))
    assert summary["lease_expiries"]["last_hour"] == 1


def test_an_empty_project_has_no_figures_rather_than_zeros():
    project = new_project("empty")
    summary = selectors.project_summary(VIEWER, project.pk, now=at(10))
    assert summary["throughput"]["integrated"] == 0
    assert summary["lead_time_seconds"] == {"count": 0, "p50": None, "p90": None, "mean": None}
    assert summary["wip"]["count"] == 0 and summary["wip"]["age_seconds"]["max"] is None
    assert summary["blocked"] == {"count": 0, "open": 0, "ratio": None}
    assert summary["integration"]["success_rate"] is None
    assert summary["checkpoint_sla"]["compliance"] is None
    assert summary["agents"] == []


def test_a_project_with_only_blocked_work():
    project = new_project("stuck")
    for title in ("a", "b"):
        task = new_task(project, 1, title)
        do(2, operations.task_block, actor=OPERATOR, task_id=task.pk, reason="vendor")
    summary = selectors.project_summary(VIEWER, project.pk, now=at(3))
    assert summary["blocked"] == {"count": 2, "open": 2, "ratio": 1.0}
    assert summary["wip"]["count"] == 0
    assert summary["throughput"]["integrated"] == 0
    forecast = selectors.milestone_forecasts(VIEWER, project.pk, now=at(3))
    assert forecast["milestones"] == []


def test_gate_tasks_are_not_counted_as_work(history):
    """Guards against checkpoints (gate tasks) inflating throughput and task counts."""
    from governance.services.gates import gate_rule_create, gates_evaluate
    from tests.metrics.helpers import PLANNER, clock, work

    project = history["project"]
    do(
        16,
        gate_rule_create,
        actor=PLANNER,
        project_id=project.pk,
        name="batch",
        trigger="unreviewed_backlog",
        threshold=1,
    )
    extra = new_task(project, 16, "five")
    work(extra, "agent-a", claim=16, start=16, done=17)
    with clock(at(18)):
        assert gates_evaluate()
    figures = selectors.day_figures(project.pk, DAY.date())
    assert figures["created"] == 4  # T1-T3 and T5, not the gate
    state = selectors.live_state(project.pk, at(19))
    assert state["total"] == 5


def test_a_lost_claim_is_counted_as_a_claim_conflict_and_changes_nothing(history):
    """Guards against claim conflicts missing from the figures (a refusal rolls back)."""
    from metrics.models import ClaimRefusal
    from orchestration.errors import TaskAlreadyClaimed
    from orchestration.models import Event, Lease, Task
    from orchestration.services import leases
    from tests.metrics.helpers import agent

    t4 = history["tasks"][3]
    before = Task.objects.values().get(pk=t4.pk), Lease.objects.count(), Event.objects.count()
    with pytest.raises(TaskAlreadyClaimed):
        do(34.5, leases.task_claim, actor=agent("agent-d"), task_id=t4.pk)
    after = Task.objects.values().get(pk=t4.pk), Lease.objects.count(), Event.objects.count()
    assert after == before  # no plan state, no event
    [refusal] = ClaimRefusal.objects.filter(task_id=t4.pk)
    assert refusal.agent == "agent-d" and refusal.code == "TASK_ALREADY_CLAIMED"
    assert selectors.day_figures(t4.project_id, at(24).date())["claim_conflicts"] == 1
