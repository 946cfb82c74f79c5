"""Celery: the expiry sweep on beat, one at a time, proven with a real worker."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from governance.models import Checkpoint
from governance.services.gates import gate_rule_create
from governance.tasks import evaluate_gates
from orchestration.models import Lease, Task, TaskState
from orchestration.services import sweep
from orchestration.tasks import SWEEP_LOCK, sweep_expired_holds
from tascade.celery import app
from tascade.db_locks import lock_key
from tests.conftest import PLANNER, agent
from tests.orchestration.helpers import claim, implement, later

ROOT = Path(__file__).resolve().parent.parent
REDIS = ("127.0.0.1", 6379)


def _lapse(lease):
    """Make a lease run out now, as if its agent had vanished."""
    Lease.objects.filter(pk=lease.pk).update(expires_at=timezone.now())
    Task.objects.filter(pk=lease.task_id).update(hold_expires_at=timezone.now())


@pytest.mark.django_db
def test_the_sweep_task_expires_lapsed_leases(make_task, monkeypatch):
    task = make_task()
    claim(task, agent())
    monkeypatch.setattr(sweep, "utcnow", lambda: later(10_000))
    assert sweep_expired_holds.delay().get() == {"expired": 1}
    assert Task.objects.get(pk=task.pk).state == TaskState.READY


@pytest.mark.django_db(transaction=True)
def test_only_one_sweep_runs_at_a_time(make_task):
    """Guards against two beat-triggered sweeps working the same holds at once."""
    if connection.vendor != "postgresql":
        pytest.skip("the guard is a PostgreSQL advisory lock")
    _lapse(claim(make_task(), agent()))
    other = connection.copy()  # another worker's database session holds the lock
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key(SWEEP_LOCK)])
        assert sweep_expired_holds.apply().get() == {
            "expired": 0,
            "skipped": "another sweep is running",
        }
    finally:
        # Unlock before closing: a closed session's locks are freed by the server a moment
        # later, and a loaded machine lets the next sweep arrive first.
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key(SWEEP_LOCK)])
        other.close()
    assert sweep_expired_holds.apply().get() == {"expired": 1}


def test_the_sweep_is_scheduled_in_code():
    entry = app.conf.beat_schedule["sweep-expired-holds"]
    assert entry["task"] == sweep_expired_holds.name
    assert entry["schedule"] > 0


@pytest.mark.django_db(transaction=True)  # the scheduler closes stale connections
def test_the_database_scheduler_shows_the_schedule_in_the_admin():
    DatabaseScheduler(app=app, lazy=True).setup_schedule()
    periodic = PeriodicTask.objects.get(name="sweep-expired-holds")
    assert periodic.task == "orchestration.sweep_expired_holds" and periodic.enabled


def _redis_up() -> bool:
    try:
        socket.create_connection(REDIS, timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not _redis_up(), reason="needs the local Redis")
def test_a_real_worker_sweeps_an_expired_lease(make_task):
    """End to end: Redis broker, a worker process, the test database, results stored: an
    expired lease is swept and a gate rule's checkpoint is created."""
    if connection.vendor != "postgresql":
        pytest.skip("the worker shares the PostgreSQL test database")
    task = make_task()
    _lapse(claim(task, agent("vanished")))
    gate_rule_create(
        actor=PLANNER,
        project_id=task.project_id,
        name="batch",
        trigger="unreviewed_backlog",
        threshold=1,
    )
    implement(make_task("done"), agent("builder"))

    broker = f"redis://{REDIS[0]}:{REDIS[1]}/15"
    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tascade.settings",
        "TASCADE_DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        ),
        "TASCADE_CELERY_BROKER_URL": broker,
        "TASCADE_CELERY_EAGER": "0",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tascade",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            "tascade-test",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        # An explicit connection: the app's pool may already be bound to the test broker.
        with app.connection_for_write(broker) as connection_to_redis:
            results = [
                job.apply_async(queue="tascade-test", connection=connection_to_redis)
                for job in (sweep_expired_holds, evaluate_gates)
            ]
        deadline = time.monotonic() + 60
        while (
            not all(r.ready() for r in results)
            and time.monotonic() < deadline
            and worker.poll() is None
        ):
            time.sleep(0.2)
        ready = all(r.ready() for r in results)
    finally:
        app.conf.task_always_eager = eager
        worker.terminate()
        output = worker.communicate(timeout=20)[0]
    assert ready, f"the worker did not run the jobs in time:\n{output}"
    assert results[0].get(timeout=5) == {"expired": 1}
    [checkpoint_id] = results[1].get(timeout=5)["created"]
    assert Checkpoint.objects.get(pk=checkpoint_id).candidates.count() == 1
    swept = Task.objects.get(pk=task.pk)
    assert swept.state == TaskState.READY, output
    assert swept.events.filter(kind="lease.expired", actor="system").exists()
