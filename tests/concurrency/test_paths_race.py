"""Exclusive paths hold under real concurrency, and ranked claim-next still hands each task out
at most once."""

import random

import pytest
from django.db import connection, transaction

from orchestration import scheduling
from orchestration.errors import PathsHeld
from orchestration.models import IN_FLIGHT_STATES, Lease, PathOverlap, Task, TaskState
from orchestration.services import leases
from tascade.errors import ConcurrentUpdate
from tests.concurrency.harness import agent, errors_by_type, run_concurrently, run_waves

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]

ROUNDS = 12
DRAINERS = 16


def _claim(task_id: int, name: str):
    return lambda: leases.task_claim(actor=agent(name), task_id=task_id)


def _exclusivity_broken(project_id: int) -> list[tuple[str, str]]:
    """Pairs of in-flight tasks one of which holds a path of the other exclusively."""
    held = list(Task.objects.filter(project_id=project_id, state__in=IN_FLIGHT_STATES))
    broken = []
    for task in held:
        others = scheduling.InFlight([t for t in held if t.pk != task.pk])
        broken += [(task.ref, c.ref) for c in others.schedule(task).blocked_by]
    return broken


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"exclusive_paths": ["db{i}/**"]}, {"expected_paths": ["db{i}/schema.sql"]}),
        (
            {"exclusive_paths": ["*/migrations{i}/*"]},
            {"exclusive_paths": ["app/migrations{i}/1.py"]},
        ),
    ],
    ids=["exclusive-vs-expected", "exclusive-vs-exclusive"],
)
def test_two_claims_whose_paths_exclude_each_other_never_both_win(new_task, first, second):
    """Guards against two agents both checking the in-flight set before either commits."""

    def paths(template: dict, i: int) -> dict:
        return {name: [p.format(i=i) for p in value] for name, value in template.items()}

    pairs = [
        (new_task(f"a{i}", **paths(first, i)), new_task(f"b{i}", **paths(second, i)))
        for i in range(ROUNDS)
    ]

    # Each wave races one pair (its paths meet no other pair's): two claims at once.
    waves = run_waves(
        [
            [_claim(a.pk, f"agent-a{i}"), _claim(b.pk, f"agent-b{i}")]
            for i, (a, b) in enumerate(pairs)
        ]
    )

    for outcomes in waves:
        winners = [o for o in outcomes if o.ok]
        losers = [o.error for o in outcomes if not o.ok]
        assert len(winners) == 1, errors_by_type(outcomes)
        assert len(losers) == 1 and isinstance(losers[0], PathsHeld), errors_by_type(outcomes)
    assert _exclusivity_broken(pairs[0][0].project_id) == []


def test_sixteen_agents_draining_a_contested_plan_keep_exclusivity_and_take_each_task_once(
    conc_project, new_task
):
    """Ranked claim-next handing one task to two agents, or two exclusive tasks at once."""
    rng = random.Random(11)
    areas = ["api", "web", "db", "docs", "core", "cli"]
    for i in range(240):
        area = rng.choice(areas)
        paths = {"expected_paths": [f"{area}/{rng.randint(0, 9)}.py"]}
        if rng.random() < 0.1:
            paths["exclusive_paths"] = [f"{rng.choice(areas)}/**"]
        new_task(f"t{i}", priority=rng.choice([0, 10, 10, 50]), **paths)

    def drain(name: str):
        def call():
            claimed = []
            while (lease := leases.task_claim_next(actor=agent(name), project_id=pid)) is not None:
                claimed.append(lease.task_id)
            return claimed

        return call

    pid = conc_project.pk
    outcomes = run_concurrently([drain(f"drainer-{i}") for i in range(DRAINERS)])

    assert all(o.ok for o in outcomes), errors_by_type(outcomes)
    handed_out = [task_id for o in outcomes for task_id in o.value]
    assert len(handed_out) == len(set(handed_out)) > 0
    per_task = list(Lease.objects.filter(project_id=pid).values_list("task_id", flat=True))
    assert sorted(per_task) == sorted(handed_out)
    assert _exclusivity_broken(pid) == []
    # What is left is withheld by exclusive paths, not forgotten.
    assert leases.task_claim_next(actor=agent("late"), project_id=pid) is None
    left = Task.objects.filter(project_id=pid, state=TaskState.READY)
    flight = scheduling.in_flight(pid)
    assert all(flight.schedule(t).blocked_by for t in left)


def test_two_publishes_of_one_file_at_once_record_their_overlap(new_task):
    """Guards against two artifacts touching one file both missing each other's files."""

    def started(title: str, name: str):
        task = new_task(title)
        lease = leases.task_claim(actor=agent(name), task_id=task.pk)
        leases.task_start(actor=agent(name), task_id=task.pk, lease_token=lease.token)
        return task, lease, name

    pairs = [(started(f"a{i}", f"agent-a{i}"), started(f"b{i}", f"agent-b{i}")) for i in range(16)]

    def publish(task, lease, name, path):
        return lambda: leases.artifact_publish(
            actor=agent(name), task_id=task.pk, lease_token=lease.token, touched_files=[path]
        )

    # Each wave races one pair on its own file; the pairs' files differ from each other.
    waves = run_waves(
        [
            [publish(*a, f"shared/{i}.py"), publish(*b, f"shared/{i}.py")]
            for i, (a, b) in enumerate(pairs)
        ]
    )

    assert all(o.ok for wave in waves for o in wave), [errors_by_type(w) for w in waves]
    for a, b in pairs:
        pair = {a[0].pk, b[0].pk}
        recorded = PathOverlap.objects.filter(task_id__in=pair, other_task_id__in=pair)
        assert recorded.count() == 1, (a[0].ref, b[0].ref)


def test_publishes_of_different_files_do_not_wait_for_each_other(new_task):
    """Guards against every artifact of a project queueing on one lock."""
    task = new_task("holder")
    lease = leases.task_claim(actor=agent("holder"), task_id=task.pk)
    leases.task_start(actor=agent("holder"), task_id=task.pk, lease_token=lease.token)
    other = new_task("other")
    other_lease = leases.task_claim(actor=agent("other"), task_id=other.pk)
    leases.task_start(actor=agent("other"), task_id=other.pk, lease_token=other_lease.token)
    with transaction.atomic():
        scheduling.touched_files_lock(task.project_id, ["held/one.py"])

        def publish(paths: list[str], lock_timeout: str):
            def call():
                with connection.cursor() as cursor:
                    cursor.execute(f"SET lock_timeout = '{lock_timeout}'")
                return leases.artifact_publish(
                    actor=agent("other"),
                    task_id=other.pk,
                    lease_token=other_lease.token,
                    touched_files=paths,
                )

            return call

        publish_elsewhere = publish(["elsewhere/two.py"], "2s")
        publish_same = publish(["held/one.py"], "300ms")
        # Files in more than MAX_FILE_LOCKS buckets lock the project's files as a whole.
        publish_many = publish([f"wide/{i}.py" for i in range(200)], "300ms")
        (elsewhere,), (same,), (many,) = run_waves(
            [[publish_elsewhere], [publish_same], [publish_many]]
        )
    assert elsewhere.ok, elsewhere.error
    # The same file waits for the holder: here until its lock timeout, retried, then refused;
    # so does a publish wide enough to take the whole project's file lock.
    assert isinstance(same.error, ConcurrentUpdate), same.error
    assert isinstance(many.error, ConcurrentUpdate), many.error
