#!/usr/bin/env python
"""Webhook figures, measured on PostgreSQL (docs/webhooks.md, docs/performance.md).

    TASCADE_DATABASE_URL=postgres://postgres@127.0.0.1:5432/tascade_bench \\
        .venv/bin/python benchmarks/webhooks.py [--events 2000] [--redis redis://127.0.0.1:6379/12]

1. the cost a write pays for being announced: ``task_create`` with no subscription, and
   with one while Celery publishes the fan-out job to a real Redis broker;
2. the fan-out: deliveries made per second from events already in the log;
3. sending: deliveries per second to a local receiver, one worker, in sequence.

It works only on a database whose name ends in ``_bench``; it makes a fresh project each run.
The announcement's queue on the given Redis database is deleted afterwards.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    url = os.environ.get("TASCADE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tascade_bench")
    if not url.rsplit("/", 1)[-1].endswith("_bench"):
        sys.exit("Use a database whose name ends in _bench.")
    os.environ["TASCADE_DATABASE_URL"] = url
    os.environ["TASCADE_CELERY_BROKER_URL"] = args.redis
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tascade.settings")
    os.environ["TASCADE_LOG_LEVEL"] = "ERROR"
    import subprocess

    name = url.rsplit("/", 1)[-1]
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], capture_output=True)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    import redis

    from governance.actors import Actor, Role
    from orchestration.models import WebhookDelivery
    from orchestration.services import plan, webhooks
    from tests.orchestration.webhook_receiver import Receiver

    actor = Actor(name="bench", roles=frozenset({Role.ADMIN}))
    stamp = int(time.time())
    project = plan.project_create(actor=actor, name="Webhooks bench", slug=f"wh-{stamp}")

    def write_latencies(n: int) -> list[float]:
        out = []
        for i in range(n):
            start = time.perf_counter()
            plan.task_create(actor=actor, project_id=project.pk, title=f"t{i}")
            out.append((time.perf_counter() - start) * 1000)
        return out

    def p(values, q):
        return statistics.quantiles(values, n=100)[q - 1]

    quiet = write_latencies(args.writes)
    receiver = Receiver().start()
    try:
        subscription = webhooks.webhook_create(actor=actor, project_id=project.pk, url=receiver.url)
        announced = write_latencies(args.writes)
        print(
            f"task_create, no subscription:   p50 {p(quiet, 50):.2f} ms  p95 {p(quiet, 95):.2f} ms"
        )
        print(
            f"task_create, announced (Redis): p50 {p(announced, 50):.2f} ms  "
            f"p95 {p(announced, 95):.2f} ms"
        )
        redis.Redis.from_url(args.redis).delete("celery")

        # Fan-out of events already in the log (the announced writes plus more).
        for i in range(max(0, args.events - args.writes)):
            plan.task_create(actor=actor, project_id=project.pk, title=f"more{i}")
        redis.Redis.from_url(args.redis).delete("celery")
        queue_send = webhooks._queue_send
        webhooks._queue_send = lambda delivery_id, eta=None: None  # measured without Celery
        start = time.perf_counter()
        made = []
        while batch := webhooks._fan_out_one(subscription.pk):
            made += batch
        webhooks._queue_send = queue_send
        fan_out_s = time.perf_counter() - start
        print(
            f"fan-out: {len(made)} deliveries in {fan_out_s:.2f} s ({len(made) / fan_out_s:.0f}/s)"
        )
        redis.Redis.from_url(args.redis).delete("celery")

        sample = made[:500]
        start = time.perf_counter()
        for delivery_id in sample:
            webhooks.webhook_delivery_attempt(delivery_id=delivery_id)
        send_s = time.perf_counter() - start
        succeeded = WebhookDelivery.objects.filter(pk__in=sample, status="succeeded").count()
        print(
            f"sending: {succeeded}/{len(sample)} succeeded in {send_s:.2f} s "
            f"({len(sample) / send_s:.0f}/s, one worker, local receiver)"
        )
    finally:
        receiver.stop()
        redis.Redis.from_url(args.redis).delete("celery")


if __name__ == "__main__":
    main()
