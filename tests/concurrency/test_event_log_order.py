"""Invariant 9: events are readable in order, and a reader following the log skips none."""

import random
import threading
import time

import psycopg
import pytest
from django.db import connection, transaction
from django.db.models import Max

from orchestration.errors import DomainError
from orchestration.models import Event
from orchestration.selectors import events_after
from orchestration.services import leases, plan
from tests.concurrency.harness import (
    PLANNER,
    agent,
    errors_by_type,
    oldest_open_transaction,
    run_concurrently,
    wait_for_log_horizon,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]

READER = agent("log-reader")
# The log holds back events while any older transaction on the server is still running,
# and other suites share this server: give a slow neighbour this long to finish.
HORIZON_WAIT_SECONDS = 40.0


def _follow(project_id: int, cursor: int | None, *, page: int = 50) -> tuple[list[Event], int]:
    """Read every event currently available after ``cursor``; return them and the new cursor."""
    seen = []
    while batch := events_after(READER, project_id, after=cursor, limit=page):
        seen += batch
        cursor = batch[-1].pk
    return seen, cursor


def _all_event_ids(project_id: int) -> set[int]:
    return set(Event.objects.filter(project_id=project_id).values_list("pk", flat=True))


def _max_txid(project_id: int) -> int:
    return Event.objects.filter(project_id=project_id).aggregate(m=Max("txid"))["m"]


def _skip_held_back() -> None:
    pytest.skip(
        "an unrelated transaction held the event log's horizon back for over "
        f"{HORIZON_WAIT_SECONDS:.0f}s (oldest: {oldest_open_transaction()})"
    )


AGENTS, PLANNERS, BATCHERS = 8, 4, 4
ROUNDS = 12  # per writer: a fixed amount of work, however loaded the machine is


def test_reader_following_the_log_under_concurrent_writers_sees_every_event_once(
    conc_project, new_task
):
    """A cursor reader skipping an event whose transaction committed after a newer one's."""
    for i in range(30):
        new_task(f"seed {i}")
    project_id = conc_project.pk
    writers_left = [AGENTS + PLANNERS + BATCHERS]
    writers_done = threading.Event()
    counter_lock = threading.Lock()

    def writer(body):
        def call():
            try:
                for _ in range(ROUNDS):
                    body()
            finally:
                with counter_lock:
                    writers_left[0] -= 1
                    if not writers_left[0]:
                        writers_done.set()

        return call

    def agent_work(name):
        actor = agent(name)

        def body():
            lease = leases.task_claim_next(actor=actor, project_id=project_id)
            if lease is None:
                return
            try:
                leases.lease_heartbeat(actor=actor, task_id=lease.task_id, lease_token=lease.token)
                leases.task_release(actor=actor, task_id=lease.task_id, lease_token=lease.token)
            except DomainError:
                pass  # a 409 is an answer, not a failure of this test

        return body

    def planner_work():
        plan.task_create(actor=PLANNER, project_id=project_id, title="more")

    def batch_work():
        # Several services in one outer transaction (a changeset does this): its events
        # get ids early and commit late, after other writers' newer events.
        with transaction.atomic():
            plan.task_create(actor=PLANNER, project_id=project_id, title="batch a")
            time.sleep(random.uniform(0.005, 0.03))
            plan.task_create(actor=PLANNER, project_id=project_id, title="batch b")

    def reader():
        seen, cursor = _follow(project_id, None)
        while not writers_done.is_set():
            batch, cursor = _follow(project_id, cursor)
            seen += batch
        caught_up = wait_for_log_horizon(_max_txid(project_id), timeout=HORIZON_WAIT_SECONDS)
        batch, cursor = _follow(project_id, cursor)
        return seen + batch, caught_up

    outcomes = run_concurrently(
        [
            reader,
            *[writer(agent_work(f"agent-{i}")) for i in range(AGENTS)],
            *[writer(planner_work) for _ in range(PLANNERS)],
            *[writer(batch_work) for _ in range(BATCHERS)],
        ]
    )

    assert all(o.ok for o in outcomes), errors_by_type(outcomes)
    seen, caught_up = outcomes[0].value
    seen_ids = [e.pk for e in seen]
    assert len(seen_ids) == len(set(seen_ids)), "the reader was given an event twice"
    order = [(e.txid, e.pk) for e in seen]
    assert order == sorted(order), "the log was not read in one consistent order"
    if not caught_up:
        _skip_held_back()
    assert set(seen_ids) == _all_event_ids(project_id), "the reader skipped an event"
    kinds = {e.kind for e in seen}
    assert {"task.created", "task.claimed", "task.released"} <= kinds
    created = sum(e.kind == "task.created" for e in seen)
    assert created == 30 + ROUNDS * (PLANNERS + 2 * BATCHERS)


def _raw_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"] or None,
        password=settings["PASSWORD"] or None,
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
    )


INSERT_EVENT = """
    INSERT INTO orchestration_event (project_id, kind, actor, payload, created_at)
    VALUES (%s, %s, 'raw', '{}'::jsonb, now()) RETURNING id
"""


def test_event_committed_late_is_not_skipped_by_a_reader_that_read_past_it(conc_project):
    """An id cursor moving past an event that commits later (it would never be read)."""
    project_id = conc_project.pk
    created = Event.objects.get(project_id=project_id, kind="project.created")
    t1, t2 = _raw_connection(), _raw_connection()
    try:
        # T1 writes first (the smaller id) and stays open; T2 writes after it and commits.
        early = t1.execute(INSERT_EVENT, (project_id, "raw.early")).fetchone()[0]
        late = t2.execute(INSERT_EVENT, (project_id, "raw.late")).fetchone()[0]
        t2.commit()
        assert early < late

        # T2's event is committed, but T1's older one is still in flight: hold both back.
        first_read, cursor = _follow(project_id, None)
        assert [e.pk for e in first_read] in ([], [created.pk]), "an open event was overtaken"

        t1.commit()
        if not wait_for_log_horizon(_max_txid(project_id), timeout=HORIZON_WAIT_SECONDS):
            _skip_held_back()
        second_read, _ = _follow(project_id, cursor)
    finally:
        t1.close()
        t2.close()
    assert [e.pk for e in first_read + second_read] == [created.pk, early, late]
