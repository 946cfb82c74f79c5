"""The index of path keys: in-flight reads narrowed to the tasks whose paths may meet."""

import itertools
import json
import random

import pytest
from django.db import connection

from orchestration import scheduling
from orchestration.paths import PathError, normalise, overlap
from orchestration.services import leases, plan
from tests.conftest import PLANNER, agent
from tests.orchestration.helpers import claim

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the key index exists on PostgreSQL only"
    ),
]
A, B = agent("agent-a"), agent("agent-b")
WORDS = ["src", "docs", "a", "models.py", "*", "**", "*.py", "m?", "a*b", "x.md"]


def _pool(seed: int, size: int) -> list[str]:
    rng = random.Random(seed)
    pool = set()
    while len(pool) < size:
        candidate = "/".join(rng.choices(WORDS, k=rng.randint(1, 4)))
        try:
            pool.add(normalise(candidate))
        except PathError:
            continue
    return sorted(pool)


def _stored_keys(project_id: int, *, expected=(), touched=()) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tascade_path_keys(%s, %s::jsonb, '[]'::jsonb, %s::jsonb)",
            [project_id, json.dumps(list(expected)), json.dumps(list(touched))],
        )
        return set(cursor.fetchone()[0])


def test_the_keys_never_hide_a_task_whose_paths_overlap():
    """Guards against the index probe leaving out in-flight work a candidate collides with."""
    pool = _pool(11, 70)
    stored = {p: _stored_keys(7, expected=[p]) for p in pool}
    # A touched file is literal: "a*b" is a file name there, and the keys treat it as a glob.
    touched = {p: _stored_keys(7, touched=[p]) for p in pool}
    pruned = 0
    for mine, theirs in itertools.product(pool, repeat=2):
        for literal in (False, True):
            wanted = set(scheduling.meeting_keys(7, [(mine, literal)]))
            for their_literal, keys in ((False, stored[theirs]), (True, touched[theirs])):
                if overlap(mine, theirs, a_literal=literal, b_literal=their_literal):
                    assert wanted & keys, (mine, literal, theirs, their_literal)
                elif not wanted & keys:
                    pruned += 1
    # And it narrows: most pairs that cannot meet are told apart by their keys alone.
    assert pruned > len(pool) ** 2


def test_keys_belong_to_their_project():
    assert not set(scheduling.meeting_keys(1, [("src/a.py", False)])) & _stored_keys(
        2, expected=["src/a.py"]
    )


def test_a_read_near_some_paths_returns_exactly_the_work_that_may_meet_them(project, make_task):
    held = {
        name: make_task(name, expected_paths=paths)
        for name, paths in {
            "same file": ["src/app.py"],
            "its folder": ["src/**"],
            "everything": ["**"],
            "a file below": ["src/app.py/x"],
            "elsewhere": ["docs/index.md"],
            "a sibling": ["src/other.py"],
        }.items()
    }
    for i, task in enumerate(held.values()):
        claim(task, agent(f"holder-{i}"))
    read = scheduling.in_flight(project.pk, near=[("src/app.py", True)])
    names = {task.title for task in held.values() if task.pk in read.tasks}
    assert names == {"same file", "its folder", "everything", "a file below"}
    everything = scheduling.in_flight(project.pk)
    assert set(everything.tasks) == {t.pk for t in held.values()}
    # Scoring against the narrow read is the same as against everything in flight.
    candidate = make_task("candidate", expected_paths=["src/app.py"])
    assert [c.task_id for c in read.schedule(candidate).collisions] == [
        c.task_id for c in everything.schedule(candidate).collisions
    ]


def test_touched_files_are_found_through_the_keys(project, make_task):
    """Guards against overlap detection missing files another task reported after its claim."""
    other = make_task("other")
    lease = claim(other, B)
    leases.task_start(actor=B, task_id=other.pk, lease_token=lease.token)
    leases.artifact_publish(
        actor=B, task_id=other.pk, lease_token=lease.token, touched_files=["lib/util.py"]
    )
    read = scheduling.in_flight(project.pk, near=[("lib/util.py", True)])
    assert set(read.tasks) == {other.pk}
    assert not scheduling.in_flight(project.pk, near=[("lib/other.py", True)]).tasks


def test_no_paths_to_compare_reads_nothing(project, make_task, django_assert_num_queries):
    claim(make_task("held", expected_paths=["**"]), A)
    with django_assert_num_queries(0):
        assert not scheduling.in_flight(project.pk, near=[]).tasks


def test_path_keys_are_kept_for_tasks_in_flight_only(project, make_task):
    """Guards against keys going stale: the database writes them, whatever writes the task."""
    task = make_task("t", expected_paths=["src/app.py"])

    def stored():
        with connection.cursor() as cursor:
            cursor.execute("SELECT path_keys FROM orchestration_task WHERE id = %s", [task.pk])
            return cursor.fetchone()[0]

    assert stored() is None  # ready: not in flight
    lease = claim(task, A)
    assert set(stored()) == _stored_keys(project.pk, expected=["src/app.py"])
    leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token)
    leases.artifact_publish(
        actor=A, task_id=task.pk, lease_token=lease.token, touched_files=["lib/x.py"]
    )
    assert set(stored()) == _stored_keys(project.pk, expected=["src/app.py"], touched=["lib/x.py"])
    leases.task_release(actor=A, task_id=task.pk, lease_token=lease.token)
    assert stored() is None


def test_a_read_never_returns_another_projects_work(project, make_task):
    elsewhere = plan.project_create(actor=PLANNER, name="Elsewhere", slug="elsewhere")
    theirs = plan.task_create(
        actor=PLANNER, project_id=elsewhere.pk, title="theirs", expected_paths=["src/app.py"]
    )
    claim(theirs, B)
    ours = make_task("ours", expected_paths=["src/app.py"])
    claim(ours, A)
    assert set(scheduling.in_flight(project.pk, near=[("src/app.py", False)]).tasks) == {ours.pk}


def test_too_many_keys_read_the_projects_work_in_flight_instead(project, make_task, monkeypatch):
    monkeypatch.setattr(scheduling, "MAX_MEETING_KEYS", 1)
    near, far = (
        make_task("near", expected_paths=["src/a.py"]),
        make_task("far", expected_paths=["x/y.py"]),
    )
    claim(near, A)
    claim(far, B)
    read = scheduling.in_flight(project.pk, near=[("src/a.py", False)])
    assert set(read.tasks) == {near.pk, far.pk}
    candidate = make_task("candidate", expected_paths=["src/a.py"])
    assert [c.task_id for c in read.schedule(candidate).collisions] == [near.pk]
