#!/usr/bin/env python
"""How long the metrics take on a big project, measured on PostgreSQL.

    TASCADE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tascade_bench \\
        .venv/bin/python benchmarks/metrics.py                 # 10,000 tasks, 60 days
    .venv/bin/python benchmarks/metrics.py --tasks 2000 --repeat 5

Like ``benchmarks/core.py`` it works only on a database whose name ends in ``_bench``. It
seeds a fresh project by bulk inserts: tasks and their event history spread over the last
``--days`` days (created → claimed → started → implemented → reviewed → integrated for most
tasks; some expired leases, some rework, some left in progress, ready or blocked), with the
events' times chosen by the seed (``COPY`` into the append-only table). Then it times:

1. the summary (``GET …/metrics/`` without HTTP: ``project_summary``) over 30 days with no
   roll-ups at all (every day computed live from the events);
2. the roll-up of every closed day (``rollups_refresh``), once;
3. the summary again, now reading the roll-ups (only today live): what pages pay;
4. the daily series and the milestone forecast, with roll-ups.
"""

import argparse
import io
import json
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.core import bench_database_url, django_setup, ensure_database  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url")
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--days", type=int, default=60)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--seed", type=int, default=20250303)
    p.add_argument("--json", help="also write the results to this file")
    return p.parse_args()


def seed(n_tasks: int, days: int, rng: random.Random):
    """A project whose tasks' states agree with their histories; returns (project, events)."""
    from django.db import connection, transaction

    from orchestration.models import Milestone, Phase, Project, Task, TaskState

    S = TaskState
    now = datetime.now(UTC)
    start = now - timedelta(days=days)
    slug = f"metrics-bench-{int(time.time())}"
    rows = []  # (task index, created_at, kind, actor, payload)
    states = []
    for i in range(n_tasks):
        t = start + timedelta(seconds=rng.uniform(0, days * 86400 * 0.95))
        agent = f"agent-{rng.randrange(40)}"
        rows.append((i, t, "task.created", "planner", {"ref": f"T{i + 1}", "state": "ready"}))
        state = S.READY
        fate = rng.random()
        if fate < 0.05:
            t += timedelta(hours=rng.uniform(0, 48))
            if t < now:
                rows.append((i, t, "task.blocked", "operator", {"from": "ready", "to": "blocked"}))
                state = S.BLOCKED
            states.append(state)
            continue

        def step(hours, kind, to, who=agent, index=i, **extra):
            nonlocal t, state
            t += timedelta(hours=hours)
            if t >= now:
                return False
            rows.append((index, t, kind, who, {"from": state, "to": to, **extra}))
            state = to
            return True

        ok = True
        if rng.random() < 0.1:  # a lost lease first
            ok = ok and step(rng.uniform(0.1, 12), "task.claimed", S.CLAIMED, lease_token=1)
            ok = ok and step(0.05, "lease.expired", S.READY, who="system", agent=agent)
        for attempt in range(2 if rng.random() < 0.15 else 1):
            ok = ok and step(rng.uniform(0.1, 24), "task.claimed", S.CLAIMED, lease_token=2)
            ok = ok and step(rng.uniform(0, 1), "task.started", S.IN_PROGRESS)
            if fate < 0.08:  # still being worked on (or abandoned mid-way by its agent)
                break
            ok = ok and step(rng.uniform(0.5, 16), "task.implemented", S.IMPLEMENTED)
            if not ok:
                break
            t += timedelta(hours=rng.uniform(0.2, 30))
            if t >= now:
                break
            verdict = "changes_requested" if attempt == 0 and fate > 0.85 else "approved"
            rows.append((i, t, "review.recorded", "reviewer", {"verdict": verdict}))
            if verdict == "changes_requested":
                ok = step(0, "task.changes_requested", S.READY, who="reviewer")
                continue
            ok = ok and step(rng.uniform(0.1, 8), "task.integrated", S.INTEGRATED, who="operator")
            break
        states.append(state)

    with transaction.atomic():
        project = Project.objects.create(name=slug, slug=slug, created_by="bench-seed")
        phase = Phase.objects.create(project=project, name="P")
        milestones = [
            Milestone.objects.create(project=project, phase=phase, name=f"M{m}", position=m)
            for m in range(5)
        ]
        tasks = Task.objects.bulk_create(
            [
                Task(
                    project=project,
                    milestone=milestones[i % 5],
                    number=i + 1,
                    title=f"Bench task {i + 1}",
                    state=states[i],
                    created_by="bench-seed",
                    implemented_by="agent" if states[i] in (S.IMPLEMENTED, S.INTEGRATED) else "",
                )
                for i in range(n_tasks)
            ],
            batch_size=2000,
        )
        project.task_number_seq = n_tasks
        project.created_at = start  # the history begins with the project
        project.save(update_fields=["task_number_seq", "created_at"])
        rows.sort(key=lambda r: r[1])
        buffer = io.StringIO()
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY orchestration_event (project_id, task_id, kind, actor, payload, created_at)"
                " FROM STDIN"
            ) as copy:
                for i, at, kind, actor, payload in rows:
                    copy.write_row((project.pk, tasks[i].pk, kind, actor, json.dumps(payload), at))
            cursor.execute("ANALYZE orchestration_event; ANALYZE orchestration_task")
        del buffer
    return project, len(rows)


def timed(fn, repeat: int) -> dict:
    fn()  # warm-up
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": round(statistics.median(runs), 1), "max_ms": round(max(runs), 1)}


def main():
    args = parse_args()
    url = bench_database_url(args.database_url)
    ensure_database(url, reseed=False)
    django_setup(url)

    from governance.actors import Actor
    from metrics import selectors
    from metrics.services.rollups import rollups_refresh

    actor = Actor.system()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    project, events = seed(args.tasks, args.days, rng)
    print(f"seeded {args.tasks} tasks, {events} events in {time.perf_counter() - t0:.1f} s")

    results = {"tasks": args.tasks, "events": events, "days": args.days}
    results["summary_live"] = timed(
        lambda: selectors.project_summary(actor, project.pk), args.repeat
    )
    print("summary, every day live:       ", results["summary_live"])
    t0 = time.perf_counter()
    rows = rollups_refresh(project_ids=[project.pk])
    results["rollup_all_days_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    print(f"roll-up of {rows} days:          {results['rollup_all_days_ms']} ms")
    results["summary_rollups"] = timed(
        lambda: selectors.project_summary(actor, project.pk), args.repeat
    )
    print("summary, from roll-ups:        ", results["summary_rollups"])
    results["daily_rollups"] = timed(lambda: selectors.daily_series(actor, project.pk), args.repeat)
    print("daily series, from roll-ups:   ", results["daily_rollups"])
    results["forecast"] = timed(
        lambda: selectors.milestone_forecasts(actor, project.pk), args.repeat
    )
    print("milestone forecast (5 x 1000): ", results["forecast"])
    summary = selectors.project_summary(actor, project.pk)
    print(
        "check: integrated in 30 days =",
        summary["throughput"]["integrated"],
        "lead p50 h =",
        round((summary["lead_time_seconds"]["p50"] or 0) / 3600, 1),
        "wip =",
        summary["wip"]["count"],
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
