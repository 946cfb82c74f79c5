"""Path-aware scheduling: how a ready task's paths meet the paths of the work in flight.

Read-side and shared: claim-next (``services/leases.py``), the ready list, the collisions
read and unpredicted-overlap detection on artifact publish all score through here, so they
cannot disagree. See ``docs/scheduling.md``.

- **In flight** are the project's tasks in ``claimed``, ``in_progress`` or ``implemented``
  (``IN_FLIGHT_STATES``): held, or done but not yet merged. A reader asks only for those
  whose paths may meet the paths it compares (``in_flight(near=…)``, an index probe on
  PostgreSQL), then decides overlaps exactly in memory: a review backlog of implemented
  work does not make every claim read all of it.
- A task's **paths** are its ``expected_paths`` and ``exclusive_paths`` (globs) and its
  ``touched_paths`` (files its artifacts reported, literal): a touched path counts like an
  expected one from the moment it is reported.
- A candidate **collides** with an in-flight task when any of their paths overlap. It is
  **blocked** when one side's exclusive paths overlap any path of the other.
- The **rank** of a candidate is ``(priority, blocked, score, created_at, id)``, where
  ``score`` is the number of in-flight tasks it collides with: priority first, then clean
  work before colliding work of the same priority. A blocked task is never offered.
"""

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from orchestration.models import IN_FLIGHT_STATES, POOL_ORDER, Task, claimable_by, pool_after
from orchestration.paths import PathIndex, anchor, anchor_prefixes, matches
from tascade.db_locks import lock_key, xact_lock, xact_locks

# Claim-next reads the pool in windows (priority, then age): FIRST_WINDOW rows, then WINDOW
# rows at a time while the best offer so far collides (or nothing is offerable) and the
# window ended at that same priority; it stops after MAX_SCAN rows.
FIRST_WINDOW = 8
WINDOW = 100
MAX_SCAN = 500
# Overlapping path pairs reported per pair of tasks (the rest are counted).
MAX_OVERLAPS_SHOWN = 20
# Beyond this many index keys (an artifact touching hundreds of files), in_flight reads the
# project's work in flight rather than probing the index with them all: past about 1,000
# keys the planner's estimate of the probe exceeds a walk of every project's work in flight.
MAX_MEETING_KEYS = 500


class Row(NamedTuple):
    """The columns scheduling reads, without building model instances (the hot path)."""

    id: int
    number: int
    state: str
    holder: str
    priority: int
    created_at: datetime
    capability_tags: list
    expected_paths: list
    exclusive_paths: list
    touched_paths: list


def _rows(queryset) -> list[Row]:
    return [Row(*values) for values in queryset.values_list(*Row._fields)]


def paths_of(task: Any) -> list[tuple[str, bool]]:
    """Every path of ``task`` as (pattern, literal): globs, then touched files."""
    globs = {*task.expected_paths, *task.exclusive_paths}
    return [(p, False) for p in sorted(globs)] + [
        (p, True) for p in task.touched_paths if p not in globs
    ]


def has_paths(task: Any) -> bool:
    return bool(task.expected_paths or task.exclusive_paths or task.touched_paths)


@dataclass
class Collision:
    """An in-flight task ``task`` and the pairs (candidate's path, its path) that overlap."""

    task_id: int
    ref: str
    state: str
    holder: str
    overlaps: list[dict[str, str]] = field(default_factory=list)
    overlap_count: int = 0

    def add(self, mine: str, theirs: str) -> None:
        self.overlap_count += 1
        if len(self.overlaps) < MAX_OVERLAPS_SHOWN:
            self.overlaps.append({"path": mine, "with": theirs})

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "ref": self.ref,
            "state": self.state,
            "holder": self.holder,
            "overlaps": self.overlaps,
            "overlap_count": self.overlap_count,
        }


@dataclass
class Schedule:
    """Where a candidate stands against the work in flight."""

    task: Any
    collisions: list[Collision]
    blocked_by: list[Collision]

    @property
    def score(self) -> int:
        return len(self.collisions)

    @property
    def offered(self) -> bool:
        return not self.blocked_by

    @property
    def rank(self) -> tuple:
        t = self.task
        return (t.priority, bool(self.blocked_by), self.score, t.created_at, t.id)


class InFlight:
    """The project's in-flight tasks with paths, indexed for overlap queries."""

    def __init__(self, tasks: Iterable[Any]) -> None:
        self.tasks = {t.id: t for t in tasks if has_paths(t)}
        self._all = PathIndex()
        self._exclusive = PathIndex()
        for task in self.tasks.values():
            for pattern, literal in paths_of(task):
                self._all.add(pattern, task.id, literal=literal)
            for pattern in task.exclusive_paths:
                self._exclusive.add(pattern, task.id)

    def _collision(self, found: dict[int, Collision], task_id: int) -> Collision:
        if task_id not in found:
            other = self.tasks[task_id]
            found[task_id] = Collision(task_id, f"T{other.number}", other.state, other.holder)
        return found[task_id]

    def schedule(self, task: Any) -> Schedule:
        collisions: dict[int, Collision] = {}
        blocked: dict[int, Collision] = {}
        if not self.tasks or not has_paths(task):
            return Schedule(task, [], [])
        exclusive = set(task.exclusive_paths)
        for pattern, literal in paths_of(task):
            for theirs, owner in self._all.overlapping(pattern, literal=literal):
                if owner == task.id:
                    continue
                self._collision(collisions, owner).add(pattern, theirs)
                if pattern in exclusive and not literal:
                    self._collision(blocked, owner).add(pattern, theirs)
            for theirs, owner in self._exclusive.overlapping(pattern, literal=literal):
                if owner != task.id:
                    self._collision(blocked, owner).add(pattern, theirs)
        order = sorted(collisions)
        return Schedule(task, [collisions[i] for i in order], [blocked[i] for i in sorted(blocked)])


def meeting_keys(project_id: int, paths: Iterable[tuple[str, bool]]) -> list[str]:
    """The keys (``path_keys``, migration 0011) that any in-flight task whose
    paths may overlap one of ``paths`` ((pattern, literal) pairs) holds: the anchor of one of
    its paths is a prefix of one of ours (``a|``), or one of ours is a prefix of it (``p|``)."""
    keys = set()
    for pattern, literal in paths:
        mine = anchor(pattern, literal=literal)
        keys.update(f"{project_id}|a|{prefix}" for prefix in anchor_prefixes(mine))
        keys.add(f"{project_id}|p|{mine}")
    return sorted(keys)


# path_keys: a generated column of PostgreSQL only, not a model field (migration 0011).
_PATH_KEYS_OVERLAP = '"orchestration_task"."path_keys" && %s::text[]'


def in_flight(
    project_id: int,
    *,
    near: Iterable[tuple[str, bool]] | None = None,
    exclude: Iterable[int] = (),
    exclusive_only: bool = False,
) -> InFlight:
    """Read the project's in-flight tasks now; with ``exclusive_only``, only those holding
    exclusive paths (all that can block a task without exclusive paths of its own).

    ``near`` ((pattern, literal) pairs) narrows the read to the tasks whose paths may meet
    them, through the index of path keys on PostgreSQL: scoring against the result is exact
    for those paths, and costs what overlaps, not what is in flight. Without ``near`` every
    task in flight with paths is read (one scan of ``task_project_state``).
    """
    return InFlight(_rows(in_flight_rows(project_id, near, exclude, exclusive_only)))


def in_flight_rows(
    project_id: int,
    near: Iterable[tuple[str, bool]] | None,
    exclude: Iterable[int] = (),
    exclusive_only: bool = False,
) -> QuerySet[Task]:
    """The query of ``in_flight``."""
    near = list(near) if near is not None else None
    if near == []:
        return Task.objects.none()
    keys = meeting_keys(project_id, near) if near is not None else []
    if connection.vendor == "postgresql" and 0 < len(keys) <= MAX_MEETING_KEYS:
        # The keys name the project: leaving project_id out of the query leaves the planner
        # the key index alone, not a walk of the project's work in flight.
        rows = Task.objects.filter(state__in=IN_FLIGHT_STATES).filter(
            RawSQL(_PATH_KEYS_OVERLAP, (keys,), output_field=BooleanField())
        )
    else:
        rows = Task.objects.filter(project_id=project_id, state__in=IN_FLIGHT_STATES)
    rows = rows.exclude(pk__in=list(exclude))
    if exclusive_only:
        rows = rows.exclude(exclusive_paths=[])
    else:  # a task without paths meets nothing: leave it in the database
        rows = rows.exclude(expected_paths=[], exclusive_paths=[], touched_paths=[])
    return rows.order_by()  # unordered: InFlight indexes them by id


def paths_of_all(tasks: Iterable[Any]) -> list[tuple[str, bool]]:
    return sorted({path for task in tasks for path in paths_of(task)})


def schedule_page(project_id: int, tasks: list[Task]) -> list[Schedule]:
    """Score a page of the ready list and order it by rank (see the module docstring)."""
    flight = in_flight(project_id, near=paths_of_all(tasks))
    return sorted((flight.schedule(t) for t in tasks), key=lambda s: s.rank)


def ranked_page(project_id: int, tasks: list[Task]) -> list[Task]:
    """A page of the ready list in rank order, each task carrying its ``schedule`` (the
    score and collisions the ready list shows)."""
    ranked = []
    for schedule in schedule_page(project_id, tasks):
        schedule.task.schedule = schedule
        ranked.append(schedule.task)
    return ranked


def _fits(task: Any, capabilities: list[str] | None) -> bool:
    return capabilities is None or set(task.capability_tags) <= set(capabilities)


def ranked_offers(
    project_id: int,
    agent: str,
    capabilities: list[str] | None,
    skipped: set[int],
) -> list[Schedule]:
    """The offerable candidates for ``agent``, best first, from a bounded scan of the pool.

    Reads windows of the pool in (priority, created_at, id) order, each an index range
    scan, and stops as soon as no later row can outrank the best offer found: a clean one,
    or the window moved past the best offer's priority. A colliding task is offered after
    clean work of its priority, never withheld; a blocked one is never offered. The work in
    flight that may meet a window's paths is read once per window with paths: a pool without
    paths costs what claim-next cost before paths existed, plus one window read.
    """
    pool = (
        Task.objects.filter(project_id=project_id)
        .filter(claimable_by(agent))
        .exclude(pk__in=skipped)
        .order_by(*POOL_ORDER)
    )
    if capabilities is not None and connection.vendor == "postgresql":
        pool = pool.filter(capability_tags__contained_by=capabilities)
    offers: list[Schedule] = []
    scanned = 0
    after = None
    while scanned < MAX_SCAN:
        window = pool
        if after is not None:
            window = window.filter(pool_after(*after))
        size = WINDOW if after is not None else FIRST_WINDOW
        rows = _rows(window[:size])
        if not rows:
            break
        scanned += len(rows)
        last = rows[-1]
        after = (last.priority, last.created_at, last.id)
        fitting = [row for row in rows if _fits(row, capabilities)]
        flight = in_flight(project_id, near=paths_of_all(fitting))
        for row in fitting:
            scheduled = flight.schedule(row)
            if scheduled.offered:
                offers.append(scheduled)
        if offers:
            best = min(offers, key=lambda s: s.rank)
            if best.score == 0 or last.priority > best.task.priority:
                break
        if len(rows) < size:
            break
    return sorted(offers, key=lambda s: s.rank)


def touched_overlaps(
    task: Task, touched: list[str], flight: InFlight
) -> dict[int, list[dict[str, str]]]:
    """Touched files of ``task`` that other in-flight tasks also touch and the plan did not
    predict: {other task id: [{"path", "pattern"}]}.

    A file the plans of both tasks name (some expected or exclusive glob of each matches
    it) was predicted; any other meeting is unpredicted.
    """
    planned = [*task.expected_paths, *task.exclusive_paths]
    found: dict[int, list[dict[str, str]]] = {}
    index = PathIndex()
    for path in touched:
        index.add(path, path, literal=True)
    for other in flight.tasks.values():
        if other.id == task.id:
            continue
        other_planned = {*other.expected_paths, *other.exclusive_paths}
        for pattern, literal in paths_of(other):
            for path, _owner in index.overlapping(pattern, literal=literal):
                mine_planned = any(matches(p, path) for p in planned)
                theirs_planned = any(matches(p, path) for p in other_planned)
                if mine_planned and theirs_planned:
                    continue
                hits = found.setdefault(other.id, [])
                if all(h["path"] != path for h in hits):
                    hits.append({"path": path, "pattern": pattern})
    return found


def paths_lock_key(project_id: int) -> int:
    """The advisory lock that serialises path checks of one project (see scheduling.md)."""
    return lock_key(f"tascade:paths:project:{project_id}")


# Publishes lock the files they touch, hashed into buckets per project: two publishes of one
# file always meet on its bucket, two of different files rarely do. One touching files in
# more than MAX_FILE_LOCKS buckets takes the project's whole file lock instead.
FILE_LOCK_BUCKETS = 1024
MAX_FILE_LOCKS = 32


def touched_files_lock(project_id: int, files: Iterable[str]) -> None:
    """Wait until no other transaction is publishing any of ``files`` in the project.

    Two publishes of the same file then compare one after the other, and the second sees
    the first's touched files: an overlap between them is never missed by both. Publishes
    of different files, and claims, go on side by side (docs/scheduling.md).
    """
    buckets = sorted({zlib.crc32(f.encode()) % FILE_LOCK_BUCKETS for f in files})
    whole = lock_key(f"tascade:touched:project:{project_id}")
    if len(buckets) > MAX_FILE_LOCKS:
        xact_lock(whole)
        return
    xact_lock(whole, shared=True)
    xact_locks(sorted(lock_key(f"tascade:touched:project:{project_id}:{b}") for b in buckets))
