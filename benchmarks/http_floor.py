#!/usr/bin/env python
"""What the stack itself costs per request, before any of Tascade's work: the floor under
figure 5 of ``benchmarks/core.py`` (agent cycles over HTTP).

    .venv/bin/python benchmarks/http_floor.py            # ~1 minute
    .venv/bin/python benchmarks/http_floor.py --seconds 15 --statements 9

It serves three stand-in endpoints from the same gunicorn, settings, middleware, API-key
authentication, DRF and JSON rendering as the real API (a settings module written to a
temporary folder adds them to the real URLs), and drives each with the load generator of
figure 5 (16 agents, keep-alive ``http.client`` connections, a JSON body per request):

- ``drf``: authenticate the key, answer a small JSON object. No SQL.
- ``drf+sql``: the same, plus one transaction of ``--statements`` trivial statements
  (``SELECT 1``): the round trips and commit of a request, with no ORM and no work.
- ``drf+orm``: the same, plus ``--statements`` one-row ORM reads of a task by primary key:
  what the ORM costs to build, run and load that many statements.

An agent cycle is 4 requests and about 35 statements (9 per request), so each figure is
also given as cycles/s: the rate the stack would allow if Tascade's own work were free.
Works on the ``_bench`` database of ``benchmarks/core.py`` (created and migrated if
missing); PostgreSQL only.
"""

import argparse
import os
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import core

URLS = textwrap.dedent(
    """
    from django.db import connection, transaction
    from django.urls import path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from orchestration.models import Task
    from tascade.urls import urlpatterns as tascade_urlpatterns

    STATEMENTS = {statements}
    TASK_ID = {task_id}


    class Plain(APIView):
        def post(self, request):
            return Response({{"ok": True, "actor": request.user.name}})


    class TrivialSql(APIView):
        def post(self, request):
            with transaction.atomic(), connection.cursor() as cursor:
                for _ in range(STATEMENTS):
                    cursor.execute("SELECT 1")
            return Response({{"ok": True, "actor": request.user.name}})


    class OrmReads(APIView):
        def post(self, request):
            with transaction.atomic():
                for _ in range(STATEMENTS):
                    Task.objects.filter(pk=TASK_ID).first()
            return Response({{"ok": True, "actor": request.user.name}})


    urlpatterns = [
        path("floor/drf/", Plain.as_view()),
        path("floor/drf-sql/", TrivialSql.as_view()),
        path("floor/drf-orm/", OrmReads.as_view()),
        *tascade_urlpatterns,
    ]
    """
)
SETTINGS = 'from tascade.settings import *  # noqa: F403\n\nROOT_URLCONF = "floor_urls"\n'
ENDPOINTS = {"drf": "/floor/drf/", "drf+sql": "/floor/drf-sql/", "drf+orm": "/floor/drf-orm/"}
REQUESTS_PER_CYCLE = 4


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url")
    p.add_argument("--seconds", type=float, default=8.0, help="measured window per endpoint")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3, help="runs per endpoint; the median")
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--statements", type=int, default=9, help="statements per request")
    return p.parse_args(argv)


def drive(port: int, key: str, path: str, args) -> dict:
    """Run the load generator against ``path``; requests/s and CPU per request."""
    stop = threading.Event()
    done, errors = [], []

    def loop(client: core.AgentClient) -> None:
        while not stop.is_set():
            try:
                status, _body = client.call("POST", path, {})
            except OSError as exc:
                errors.append(repr(exc))
                continue
            if status == 200:
                done.append(time.perf_counter())
            else:
                errors.append(status)

    clients = [core.AgentClient(port, key) for _ in range(args.agents)]
    workers = [threading.Thread(target=loop, args=(c,), daemon=True) for c in clients]
    for worker in workers:
        worker.start()
    time.sleep(args.warmup)
    before, start = core.cpu_snapshot(), time.perf_counter()
    time.sleep(args.seconds)
    after, end = core.cpu_snapshot(), time.perf_counter()
    pids = core.bench_backend_pids()
    stop.set()
    for worker in workers:
        worker.join(timeout=30)
    for client in clients:
        client.conn.close()
    count = sum(1 for t in done if start <= t < end)
    return {
        "rate": count / (end - start),
        "count": count,
        "errors": errors,
        "cpu": (before, after, pids),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    url = core.bench_database_url(args.database_url)
    core.ensure_database(url, reseed=False)
    core.django_setup(url)
    from orchestration.models import Task

    task = Task.objects.order_by("pk").first()
    if task is None:
        sys.exit("the _bench database has no task yet: run benchmarks/core.py --quick once")
    key = core.make_keys("floor-agent", 1, ["agent"])[0][0]
    print(
        f"gunicorn {args.workers}x{args.threads}, {args.agents} agents, {args.statements}"
        f" statements per request in drf+sql and drf+orm; {os.cpu_count()} cores;"
        f" load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="tascade-floor-") as folder:
        Path(folder, "floor_urls.py").write_text(
            URLS.format(statements=args.statements, task_id=task.pk)
        )
        Path(folder, "floor_settings.py").write_text(SETTINGS)
        logdir = Path(folder)
        for name, path in ENDPOINTS.items():
            runs = []
            for _ in range(args.rounds):
                port = core.free_port()
                server = core.Gunicorn(
                    args.workers,
                    args.threads,
                    port,
                    url,
                    logdir,
                    settings_module="floor_settings",
                    pythonpath=folder,
                )
                try:
                    server.wait_ready(key)
                    run = drive(port, key, path, args)
                finally:
                    server.stop()
                before, after, pids = run["cpu"]
                cpu = core.cpu_breakdown(before, after, server.proc.pid, pids)
                n = max(1, run["count"])
                run["ms"] = {
                    who: cpu.get(who, 0.0) * 1000 / n
                    for who in ("gunicorn", "postgres, bench backends", "load generator")
                }
                runs.append(run)
            middle = sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]
            rate = statistics.median(r["rate"] for r in runs)
            errors = sum(len(r["errors"]) for r in runs)
            results[name] = rate
            ms = middle["ms"]
            rounds = ", ".join(f"{r['rate']:.0f}" for r in runs)
            print(
                f"  {name:<8} {rate:7.0f} requests/s = {rate / REQUESTS_PER_CYCLE:5.0f} cycles/s"
                f" (rounds {rounds}; errors {errors});"
                f" CPU per request: gunicorn {ms['gunicorn']:.2f} ms, PostgreSQL"
                f" {ms['postgres, bench backends']:.2f} ms, load generator"
                f" {ms['load generator']:.2f} ms"
            )
    print(
        f"  at {core.TARGET_CYCLES_PER_S:.0f} cycles/s a request may use"
        f" {os.cpu_count() * 1000 / (core.TARGET_CYCLES_PER_S * REQUESTS_PER_CYCLE):.2f} ms"
        " of the machine's CPU, everything included"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
