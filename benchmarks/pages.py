#!/usr/bin/env python
"""How long the dashboard pages take to render, measured on PostgreSQL.

    TASCADE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tascade \\
        .venv/bin/python benchmarks/pages.py            # about a minute on 2 cores

Uses the benchmark database of ``benchmarks/core.py`` (the name ends in ``_bench``; created
and migrated if missing) and its bulk seeding. Seeds, once (reused on the next run):

- ``pages-10k``: 10,000 tasks and 20,000 edges in 20 milestones, 10% integrated, 150 held
  by 40 agents under live leases, and 30,000 events;
- ``pages-3k``: 3,000 tasks and 6,000 edges in 6 milestones.

Then renders each page through the whole Django stack (middleware, session, templates) as
a signed-in user and prints the median and the 90th percentile of ``--repeat`` runs and the
number of queries of one. See docs/performance.md.
"""

import argparse
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from core import (
    analyze_tables,
    bench_database_url,
    big_graph,
    django_setup,
    ensure_database,
    seed_project,
)

BIG, GRAPH = "pages-10k", "pages-3k"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", help="default: $TASCADE_DATABASE_URL, name + '_bench'")
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--graph-tasks", type=int, default=3_000)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=20240601)
    return p.parse_args(argv)


def seed(slug: str, n: int, rng: random.Random, *, holders: int = 0, events: int = 0):
    from django.db import transaction
    from django.utils import timezone

    from orchestration.models import Event, Lease, Milestone, Phase, Project, Task, TaskState

    project = Project.objects.filter(slug=slug).first()
    if project is not None and project.tasks.count() == n:
        return project
    if project is not None:
        sys.exit(f"{slug} exists with another size: run benchmarks/core.py --reseed first")
    t0 = time.perf_counter()
    edges = big_graph(n, 2 * n, max(50, n // 30), n // 10, rng)
    project = seed_project(slug, n_tasks=n, edges=edges, done_upto=n // 10, rng=rng, analyze=False)
    now = timezone.now()
    with transaction.atomic():
        # Milestones of 500 tasks each, so the collapsed graph has something to show.
        phase = Phase.objects.create(project=project, name="Bench phase")
        for k, start in enumerate(range(1, n + 1, 500)):
            milestone = Milestone.objects.create(
                project=project, phase=phase, name=f"Milestone {k + 1}", position=k
            )
            Task.objects.filter(project=project, number__range=(start, start + 499)).update(
                milestone=milestone
            )
        ready = list(
            Task.objects.filter(project=project, state=TaskState.READY).order_by("id")[:holders]
        )
        leases = []
        for i, task in enumerate(ready):
            agent = f"agent-{i % 40}"
            # A live lease, some of them silent for most of their TTL (expiring soon).
            expires = now + timedelta(seconds=20 if i % 7 == 0 else project.lease_ttl_seconds)
            leases.append(
                Lease(
                    project=project,
                    task=task,
                    agent=agent,
                    token=1,
                    expires_at=expires,
                    heartbeat_at=now,
                )
            )
            Task.objects.filter(pk=task.pk).update(
                state=TaskState.CLAIMED, holder=agent, hold_expires_at=expires, lease_token_seq=1
            )
        Lease.objects.bulk_create(leases)
        ids = list(Task.objects.filter(project=project).values_list("id", flat=True))
        kinds = ("task.created", "task.ready", "task.claimed", "task.released")
        for start in range(0, events, 5_000):
            Event.objects.bulk_create(
                [
                    Event(
                        project=project,
                        task_id=ids[j % len(ids)],
                        kind=kinds[j % len(kinds)],
                        actor="bench-seed",
                        payload={"ref": f"T{j % len(ids) + 1}"},
                    )
                    for j in range(start, min(start + 5_000, events))
                ]
            )
    analyze_tables()
    print(f"  seeded {slug}: {n} tasks, {len(edges)} edges in {time.perf_counter() - t0:.1f} s")
    return project


def measure(client, url: str, *, repeat: int, warmup: int) -> tuple[float, float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(warmup):
        assert client.get(url).status_code == 200, url
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - t0)
        assert response.status_code == 200, url
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    samples.sort()
    p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))]
    return statistics.median(samples) * 1000, p90 * 1000, len(queries), len(response.content)


def main(argv=None) -> int:
    args = parse_args(argv)
    url = bench_database_url(args.database_url)
    ensure_database(url, reseed=False)
    django_setup(url)

    from django.contrib.auth import get_user_model
    from django.test import Client

    rng = random.Random(args.seed)
    big = seed(BIG, args.tasks, rng, holders=150, events=3 * args.tasks)
    small = seed(GRAPH, args.graph_tasks, rng)
    user = get_user_model().objects.filter(username="bench-viewer").first()
    if user is None:
        user = get_user_model().objects.create_superuser("bench-viewer", password=None)
    client = Client()
    client.force_login(user)
    some_task = big.tasks.filter(state="claimed").order_by("id").first()

    pages = [
        (f"overview, {args.tasks:,} tasks", f"/projects/{big.pk}/"),
        (f"board, {args.tasks:,} tasks", f"/projects/{big.pk}/board/"),
        (f"board, {args.tasks:,} tasks, path glob", f"/projects/{big.pk}/board/?path=src/*_1*.py"),
        ("board poll, unchanged (204)", None),
        (f"graph, {args.graph_tasks:,} tasks", f"/projects/{small.pk}/graph/"),
        (f"graph, {args.tasks:,} tasks (milestones)", f"/projects/{big.pk}/graph/"),
        (
            f"graph, {args.tasks:,} tasks, focus depth 3",
            f"/projects/{big.pk}/graph/?focus={some_task.pk}",
        ),
        ("task page", f"/tasks/{some_task.pk}/"),
        ("agents", f"/projects/{big.pk}/agents/"),
        ("agent page", f"/projects/{big.pk}/agents/agent-1/"),
    ]
    print(f"\n{'page':<44}{'median ms':>10}{'p90 ms':>9}{'queries':>9}{'KiB':>8}")
    for label, path in pages:
        if path is None:
            from orchestration.selectors import project_change_stamp

            stamp = project_change_stamp(big.pk)
            path = f"/projects/{big.pk}/board/?since={stamp}"
            hx = Client(headers={"HX-Request": "true"})
            hx.force_login(user)
            for _ in range(args.warmup):
                assert hx.get(path).status_code == 204
            samples = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                assert hx.get(path).status_code == 204
                samples.append(time.perf_counter() - t0)
            samples.sort()
            median = statistics.median(samples) * 1000
            p90 = samples[min(len(samples) - 1, int(0.9 * len(samples)))] * 1000
            print(f"{label:<44}{median:>10.1f}{p90:>9.1f}{'':>9}{0:>8}")
            continue
        median, p90, queries, size = measure(client, path, repeat=args.repeat, warmup=args.warmup)
        print(f"{label:<44}{median:>10.1f}{p90:>9.1f}{queries:>9}{size / 1024:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
