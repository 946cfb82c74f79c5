"""Invariant 1 (acyclic graph) and kept-on-write readiness, with edges added concurrently."""

import pytest

from orchestration.errors import DependencyCycle
from orchestration.models import Dependency, Event, Task, TaskState
from orchestration.services import leases, plan
from tests.concurrency.harness import (
    PLANNER,
    agent,
    errors_by_type,
    run_waves,
    stored_unmet,
    topological_order,
    unmet_from_edges,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]

PAIRS = 200
PAIRS_PER_WAVE = 20  # 40 threads: well inside PostgreSQL's 100 connections


def _add(project_id: int, prerequisite_id: int, dependent_id: int):
    return lambda: plan.dependency_add(
        actor=PLANNER,
        project_id=project_id,
        prerequisite_id=prerequisite_id,
        dependent_id=dependent_id,
    )


def test_opposite_edges_added_concurrently_never_close_a_cycle(conc_project, new_task):
    """A→B and B→A both passing the cycle check because neither saw the other's insert."""
    pairs = [(new_task(f"a{i}").pk, new_task(f"b{i}").pk) for i in range(PAIRS)]
    waves = []
    for start in range(0, PAIRS, PAIRS_PER_WAVE):
        wave = []
        for a, b in pairs[start : start + PAIRS_PER_WAVE]:
            wave += [_add(conc_project.pk, a, b), _add(conc_project.pk, b, a)]
        waves.append(wave)

    outcomes = [o for wave in run_waves(waves) for o in wave]

    assert errors_by_type(outcomes) == {"ok": PAIRS, "DependencyCycle": PAIRS}
    for i, (a, b) in enumerate(pairs):
        forward, backward = outcomes[2 * i], outcomes[2 * i + 1]
        assert forward.ok != backward.ok, f"pair {i}: both or neither edge was added"
        loser = backward if forward.ok else forward
        assert isinstance(loser.error, DependencyCycle) and loser.error.http_status == 409
        stored = list(
            Dependency.objects.filter(prerequisite_id__in=(a, b), dependent_id__in=(a, b))
        )
        winner_edge = (forward if forward.ok else backward).value
        assert [e.pk for e in stored] == [winner_edge.pk]
    edges = list(
        Dependency.objects.filter(project=conc_project).values_list(
            "prerequisite_id", "dependent_id"
        )
    )
    assert len(edges) == PAIRS
    nodes = set(Task.objects.filter(project=conc_project).values_list("pk", flat=True))
    assert topological_order(nodes, edges) is not None, "the stored graph has a cycle"
    assert stored_unmet(conc_project.pk) == unmet_from_edges(conc_project.pk)
    added_events = Event.objects.filter(project=conc_project, kind="dependency.added")
    assert added_events.count() == PAIRS  # the losers wrote nothing


ROUNDS = 30


def _in_progress_with_artifact(task_id: int, name: str) -> int:
    actor = agent(name)
    lease = leases.task_claim(actor=actor, task_id=task_id)
    leases.task_start(actor=actor, task_id=task_id, lease_token=lease.token)
    leases.artifact_publish(actor=actor, task_id=task_id, lease_token=lease.token, summary="done")
    return lease.token


def test_edge_added_while_its_prerequisite_completes_keeps_the_counter_exact(
    conc_project, new_task
):
    """An edge insert and the prerequisite's completion missing each other: counter drift."""
    rounds = []
    for r in range(ROUNDS):
        # Half the rounds have the dependent's id below the prerequisite's: the edge insert
        # then locks the two ends in the opposite order to the completion's propagation.
        if r % 2:
            dependent, prerequisite = new_task(f"d{r}"), new_task(f"p{r}")
        else:
            prerequisite, dependent = new_task(f"p{r}"), new_task(f"d{r}")
        token = _in_progress_with_artifact(prerequisite.pk, f"p-agent-{r}")
        rounds.append((prerequisite.pk, dependent.pk, f"p-agent-{r}", token))
    waves = [
        [
            _add(conc_project.pk, p, d),
            lambda p=p, name=name, token=token: leases.task_mark_implemented(
                actor=agent(name), task_id=p, lease_token=token
            ),
        ]
        for p, d, name, token in rounds
    ]

    outcomes = run_waves(waves)

    for wave in outcomes:
        assert all(o.ok for o in wave), errors_by_type(wave)
    expected = unmet_from_edges(conc_project.pk)
    assert stored_unmet(conc_project.pk) == expected
    for p, d, _name, _token in rounds:
        assert Task.objects.get(pk=p).state == TaskState.IMPLEMENTED
        dependent = Task.objects.get(pk=d)
        assert (dependent.unmet_prerequisites, dependent.state) == (0, TaskState.READY)
        assert Dependency.objects.filter(prerequisite_id=p, dependent_id=d).count() == 1
