#!/usr/bin/env python
"""What path-aware scheduling buys, and what it costs, measured on PostgreSQL.

    TASCADE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tascade \\
        .venv/bin/python benchmarks/paths.py             # ~3 min on 2 shared cores
    .venv/bin/python benchmarks/paths.py --quick         # small sizes

It works only on a database whose name ends in ``_paths_bench`` (``tascade`` becomes
``tascade_paths_bench``), creates it if missing and migrates it.

1. **Simulation.** A plan of ``--plan`` tasks, each really touching ``--files-per-task``
   files drawn from ``--files`` files (so any two tasks share a file at a known rate,
   printed), is drained by ``--agents`` simulated agents in discrete ticks: each idle agent
   asks claim-next for work, works on it for 1 to 6 ticks (start, artifact with its real
   files, implemented), and the work is integrated (review, queue, merge) 1 to 4 ticks
   later. Everything goes through the real services. The figure is the number of distinct
   pairs of tasks that were in flight at the same time and touch the same file: the merge
   conflicts waiting to happen. Run twice on the same plan and the same random draws:
   **blind** (the plan declares no paths, as before path-aware scheduling) and
   **path-aware** (each task declares its files as ``expected_paths``).
2. **Claim-next latency at scale.** A project of ``--tasks`` ready tasks, each with an
   expected path, with ``--in-flight`` of them claimed (in flight, with paths): claim-next
   (each claim released again, untimed) against the claim it replaced (one ``SELECT …
   LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED`` and the lease), and the worst case, where an
   in-flight task's paths cover every candidate so the ranking scans its whole budget.
"""

import argparse
import itertools
import os
import random
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core

SUFFIX = "_paths_bench"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", help="default: $TASCADE_DATABASE_URL, name + '_paths_bench'")
    p.add_argument("--plan", type=int, default=300, help="tasks in the simulated plan")
    p.add_argument("--files", type=int, default=120, help="files the plan's tasks touch")
    p.add_argument("--files-per-task", type=int, default=2)
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--tasks", type=int, default=100_000, help="tasks in the latency project")
    p.add_argument("--in-flight", type=int, default=200, help="claimed tasks there")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--skip-simulation", action="store_true", help="figure 2 only")
    p.add_argument("--skip-latency", action="store_true", help="figure 1 only")
    p.add_argument("--quick", action="store_true", help="plan 120, 10,000 tasks, 10 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.plan, args.tasks, args.repeat = 120, 10_000, 10
    return args


def database_url(explicit: str | None) -> str:
    url = explicit or os.environ.get("TASCADE_DATABASE_URL") or core.DEFAULT_DATABASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(f"benchmarks/paths.py needs PostgreSQL, not {parts.scheme!r}")
    name = parts.path.lstrip("/") or "tascade"
    if not name.endswith(SUFFIX):
        name = name.removesuffix("_bench") + SUFFIX
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


# --- 1. the simulation ------------------------------------------------------------------------
def make_plan(args, rng: random.Random) -> list[dict]:
    """Tasks with their real files, priorities and durations: the same for both modes."""
    dirs = ["api", "web", "core", "db", "docs", "cli"]
    files = [f"{dirs[i % len(dirs)]}/module_{i}.py" for i in range(args.files)]
    return [
        {
            "title": f"sim task {n}",
            "files": sorted(rng.sample(files, args.files_per_task)),
            "priority": rng.choice([10, 50, 50, 100]),
            "work": rng.randint(1, 6),
            "review": rng.randint(1, 4),
        }
        for n in range(args.plan)
    ]


def share_rate(plan: list[dict]) -> float:
    pairs = list(itertools.combinations(plan, 2))
    return sum(bool(set(a["files"]) & set(b["files"])) for a, b in pairs) / len(pairs)


def simulate(plan: list[dict], *, aware: bool, agents: int, label: str) -> dict:
    from governance.actors import Actor, Role
    from governance.services.reviews import review_record
    from orchestration.models import Task, TaskState
    from orchestration.services import integration, leases
    from orchestration.services import plan as plan_service

    admin = Actor(name="sim-admin", roles=frozenset({Role.ADMIN}))
    project = plan_service.project_create(
        actor=admin, name=label, slug=f"sim-{label}-{time.time_ns()}", lease_ttl_seconds=86_400
    )
    tasks = {}
    for item in plan:
        task = plan_service.task_create(
            actor=admin,
            project_id=project.pk,
            title=item["title"],
            priority=item["priority"],
            expected_paths=item["files"] if aware else [],
        )
        tasks[task.pk] = item
    crew = [Actor(name=f"sim-agent-{i:02d}", roles=frozenset({Role.AGENT})) for i in range(agents)]
    working: dict[str, tuple[int, int, int]] = {}  # agent -> (task id, token, done at tick)
    reviewing: list[tuple[int, int]] = []  # (integrate at tick, task id)
    in_flight: set[int] = set()
    contested_pairs: set[tuple[int, int]] = set()
    claim_ms: list[float] = []
    tick = 0
    done = 0
    while done < len(plan):
        tick += 1
        for due, task_id in [r for r in reviewing if r[0] <= tick]:
            reviewing.remove((due, task_id))
            review_record(actor=admin, task_id=task_id, verdict="approved", rationale="sim")
            integration.integration_enqueue(actor=admin, task_id=task_id)
            attempt = integration.integration_take_next(actor=admin, project_id=project.pk)
            integration.integration_record_result(
                actor=admin, attempt_id=attempt.pk, result="succeeded"
            )
            in_flight.discard(task_id)
            done += 1
        for agent in crew:
            job = working.get(agent.name)
            if job is not None and job[2] <= tick:
                task_id, token, _ = job
                leases.artifact_publish(
                    actor=agent,
                    task_id=task_id,
                    lease_token=token,
                    touched_files=tasks[task_id]["files"],
                )
                leases.task_mark_implemented(actor=agent, task_id=task_id, lease_token=token)
                reviewing.append((tick + tasks[task_id]["review"], task_id))
                del working[agent.name]
            if agent.name not in working:
                t0 = time.perf_counter()
                lease = leases.task_claim_next(actor=agent, project_id=project.pk)
                claim_ms.append((time.perf_counter() - t0) * 1000)
                if lease is None:
                    continue
                leases.task_start(actor=agent, task_id=lease.task_id, lease_token=lease.token)
                working[agent.name] = (
                    lease.task_id,
                    lease.token,
                    tick + tasks[lease.task_id]["work"],
                )
                in_flight.add(lease.task_id)
        for a, b in itertools.combinations(sorted(in_flight), 2):
            if set(tasks[a]["files"]) & set(tasks[b]["files"]):
                contested_pairs.add((a, b))
    states = set(Task.objects.filter(project=project).values_list("state", flat=True))
    assert states == {TaskState.INTEGRATED}, states
    return {
        "mode": label,
        "contested_pairs": len(contested_pairs),
        "ticks": tick,
        "claim_next_median_ms": statistics.median(claim_ms),
    }


def figure_simulation(args) -> list[dict]:
    core.section(
        f"1. {args.plan} tasks, {args.files_per_task} files each of {args.files}, "
        f"drained by {args.agents} agents"
    )
    plan = make_plan(args, random.Random(args.seed))
    print(f"  any two tasks of the plan share a file at a rate of {share_rate(plan):.1%}")
    results = []
    for aware, label in ((False, "blind"), (True, "path-aware")):
        t0 = time.perf_counter()
        result = simulate(plan, aware=aware, agents=args.agents, label=label)
        results.append(result)
        print(
            f"  {label:<11} pairs of concurrently in-flight tasks touching the same file: "
            f"{result['contested_pairs']:5d}   (drained in {result['ticks']} ticks, "
            f"claim-next median {result['claim_next_median_ms']:.1f} ms, "
            f"{time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    blind, aware = results
    if blind["contested_pairs"]:
        saved = 1 - aware["contested_pairs"] / blind["contested_pairs"]
        print(f"  path-aware scheduling removes {saved:.0%} of them")
    return results


# --- 2. claim-next latency at scale ------------------------------------------------------------
def latency_project(args):
    from orchestration.models import Project

    slug = f"paths-latency-{args.tasks}-{args.seed}"
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        # core.seed_project gives every task expected_paths = [src/module_<n % 997>.py].
        project = core.seed_project(
            slug, n_tasks=args.tasks, edges=[], rng=random.Random(args.seed), verbose=True
        )
    core.vacuum_analyze()
    return project


@contextmanager
def held(project, count: int, *, cover_all: bool = False):
    """``count`` tasks claimed (in flight), released again afterwards; with ``cover_all``
    one of them expects ``src/**``, so every candidate collides with it."""
    from governance.actors import Actor, Role
    from orchestration.models import Task
    from orchestration.services.leases import task_claim, task_release

    ids = list(
        Task.objects.filter(project=project, state="ready")
        .order_by("-priority", "-created_at", "-id")
        .values_list("id", flat=True)[:count]
    )
    original = Task.objects.get(pk=ids[0]).expected_paths
    if cover_all:
        Task.objects.filter(pk=ids[0]).update(expected_paths=["src/**"])
    leases = []
    for i, task_id in enumerate(ids):
        actor = Actor(name=f"holder-{i:03d}", roles=frozenset({Role.AGENT}))
        leases.append((actor, task_claim(actor=actor, task_id=task_id)))
    try:
        yield
    finally:
        for actor, lease in leases:
            task_release(actor=actor, task_id=lease.task_id, lease_token=lease.token)
        Task.objects.filter(pk=ids[0]).update(expected_paths=original)


def figure_latency(args, report: core.Report) -> None:
    from django.db import transaction

    from governance.actors import Actor, Role
    from orchestration import scheduling
    from orchestration.models import Task, claimable_by
    from orchestration.services import leases

    core.section(f"2. claim-next with {args.tasks} ready tasks and {args.in_flight} in flight")
    project = latency_project(args)
    agent = Actor(name="bench-claimer", roles=frozenset({Role.AGENT}))

    def release(_ctx, lease):
        leases.task_release(actor=agent, task_id=lease.task_id, lease_token=lease.token)

    def ranked(_ctx):
        return leases.task_claim_next(actor=agent, project_id=project.pk)

    def unranked(_ctx):
        """The claim before path-aware scheduling: first unlocked row, then the lease."""
        with transaction.atomic():
            task = (
                Task.objects.filter(project_id=project.pk)
                .filter(claimable_by(agent.name))
                .order_by("priority", "created_at", "id")
                .select_for_update(skip_locked=True, no_key=True, of=("self",))
                .first()
            )
            real = leases._paths_clear
            leases._paths_clear = lambda task: []
            try:
                return leases._grant_lease(task, project, actor=agent, now=leases.utcnow())
            finally:
                leases._paths_clear = real

    with held(project, args.in_flight):
        base = report.latency(
            "claim_unranked",
            "claim: first row SKIP LOCKED + lease (before)",
            core.measure(unranked, repeat=args.repeat, warmup=args.warmup, teardown=release),
            None,
        )
        aware = report.latency(
            "claim_ranked",
            f"claim-next, ranked against {args.in_flight} in flight",
            core.measure(ranked, repeat=args.repeat, warmup=args.warmup, teardown=release),
            None,
        )
    with held(project, args.in_flight, cover_all=True):
        worst = report.latency(
            "claim_ranked_worst",
            f"claim-next, every candidate collides (scans {scheduling.MAX_SCAN})",
            core.measure(ranked, repeat=args.repeat, warmup=args.warmup, teardown=release),
            None,
        )
    print(
        f"  cost of the ranking: +{aware['median_ms'] - base['median_ms']:.2f} ms median "
        f"(typical), +{worst['median_ms'] - base['median_ms']:.2f} ms (worst case)"
    )


def main(argv=None) -> None:
    args = parse_args(argv)
    url = database_url(args.database_url)
    core.ensure_database(url, reseed=False)
    core.django_setup(url)
    report = core.Report()
    if not args.skip_simulation:
        figure_simulation(args)
    if not args.skip_latency:
        figure_latency(args, report)
        report.summary()


if __name__ == "__main__":
    main()
