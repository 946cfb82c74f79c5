"""Real threads, each with its own database connection, released together by a barrier.

Every contender opens its connection before the barrier (so connecting does not stagger
the race) and closes it when done. Outcomes are collected, never raised, so a test can
count winners, 409s and anything unexpected.
"""

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

from governance.actors import Actor, Role
from orchestration.models import SATISFYING_STATES, Dependency, Task, UnlockOn

PLANNER = Actor(name="planner", roles=frozenset({Role.PLANNER}))
OPERATOR = Actor(name="operator", roles=frozenset({Role.OPERATOR}))

# PostgreSQL allows 100 connections and other suites share the server: stay well below.
MAX_THREADS = 51
BARRIER_TIMEOUT = 30.0
JOIN_TIMEOUT = 60.0


def agent(name: str) -> Actor:
    return Actor(name=name, roles=frozenset({Role.AGENT}))


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def run_waves(waves: Sequence[Sequence[Callable[[], Any]]]) -> list[list[Outcome]]:
    """Run ``waves[w][i]`` on thread ``i``; all threads start wave ``w`` together.

    One thread per column, alive for every wave, so a wave of N calls is N real
    connections racing. A wave shorter than the widest leaves the extra threads idle.
    """
    width = max(len(wave) for wave in waves)
    assert width <= MAX_THREADS, f"{width} threads would crowd PostgreSQL's connections"
    outcomes = [[Outcome() for _ in wave] for wave in waves]
    barrier = threading.Barrier(width, timeout=BARRIER_TIMEOUT)

    def worker(column: int) -> None:
        try:
            connection.ensure_connection()
            for w, wave in enumerate(waves):
                barrier.wait()
                if column >= len(wave):
                    continue
                try:
                    outcomes[w][column].value = wave[column]()
                except BaseException as exc:
                    outcomes[w][column].error = exc
        except threading.BrokenBarrierError as exc:  # another worker died: report, not hang
            for w, wave in enumerate(waves):
                if column < len(wave) and outcomes[w][column].value is None:
                    outcomes[w][column].error = outcomes[w][column].error or exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in range(width)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a contender hung (deadlock?)"
    return outcomes


def run_concurrently(calls: Sequence[Callable[[], Any]]) -> list[Outcome]:
    """Run every call on its own thread and connection, all released at once."""
    return run_waves([calls])[0]


def in_thread(fn: Callable[[], Any]) -> Callable[[], Outcome]:
    """Start ``fn`` on its own thread and connection now; the returned function joins it."""
    outcome = Outcome()

    def worker() -> None:
        try:
            outcome.value = fn()
        except BaseException as exc:
            outcome.error = exc
        finally:
            connection.close()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()

    def join() -> Outcome:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), "the thread hung (deadlock?)"
        return outcome

    return join


def errors_by_type(outcomes: Sequence[Outcome]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        counts[type(outcome.error).__name__ if outcome.error else "ok"] += 1
    return dict(counts)


def unmet_from_edges(project_id: int) -> dict[int, int]:
    """Each task's count of unsatisfied incoming edges, recomputed from Dependency rows."""
    states = dict(Task.objects.filter(project_id=project_id).values_list("pk", "state"))
    unmet = dict.fromkeys(states, 0)
    edges = Dependency.objects.filter(project_id=project_id)
    for prerequisite_id, dependent_id, unlock_on in edges.values_list(
        "prerequisite_id", "dependent_id", "unlock_on"
    ):
        if states[prerequisite_id] not in SATISFYING_STATES[UnlockOn(unlock_on)]:
            unmet[dependent_id] += 1
    return unmet


def stored_unmet(project_id: int) -> dict[int, int]:
    return dict(Task.objects.filter(project_id=project_id).values_list("pk", "unmet_prerequisites"))


def topological_order(nodes: set[int], edges: list[tuple[int, int]]) -> list[int] | None:
    """Kahn's algorithm: an order of ``nodes`` respecting ``edges``, or None on a cycle."""
    indegree = dict.fromkeys(nodes, 0)
    out: dict[int, list[int]] = defaultdict(list)
    for a, b in edges:
        out[a].append(b)
        indegree[b] += 1
    queue = [n for n, d in indegree.items() if d == 0]
    order = []
    while queue:
        n = queue.pop()
        order.append(n)
        for m in out[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                queue.append(m)
    return order if len(order) == len(nodes) else None


def log_horizon() -> int:
    """The event log's horizon: events of transactions below it are final and readable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        return cursor.fetchone()[0]


def wait_for_log_horizon(txid: int, *, timeout: float) -> bool:
    """Wait until every transaction up to ``txid`` has ended, server-wide.

    The horizon is the oldest transaction still running on the whole PostgreSQL server,
    so other suites sharing the server can hold it back; returns False on timeout.
    """
    deadline = time.monotonic() + timeout
    while log_horizon() <= txid:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def oldest_open_transaction() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, datname, now() - xact_start FROM pg_stat_activity "
            "WHERE backend_xid IS NOT NULL ORDER BY backend_xid::text::bigint LIMIT 1"
        )
        row = cursor.fetchone()
    return "none" if row is None else f"pid {row[0]} on database {row[1]}, open for {row[2]}"
