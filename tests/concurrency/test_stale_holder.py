"""Invariant 4: a lapsed holder's writes are refused with 409 and change nothing."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from orchestration.errors import LeaseExpired, LeaseStale, TaskAlreadyClaimed
from orchestration.models import Artifact, Event, Lease, LeaseStatus, Task, TaskState
from orchestration.services import leases
from tests.concurrency.harness import agent, errors_by_type, in_thread, run_waves

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.concurrency]

A, B = agent("agent-a"), agent("agent-b")
REFUSED = (LeaseStale, LeaseExpired)


def _task_row(task_id: int) -> tuple:
    return tuple(
        Task.objects.filter(pk=task_id).values_list(
            "state", "holder", "hold_expires_at", "lease_token_seq", "attempt_count", "updated_at"
        )[0]
    )


def test_expired_holder_is_refused_everything_after_another_agent_claims(conc_project, new_task):
    """A lapsed agent's heartbeat, start, artifact or completion landing on B's lease."""
    task = new_task("contested over time")
    ttl = timedelta(seconds=conc_project.lease_ttl_seconds)
    t0 = timezone.now()
    lease_a = leases.task_claim(actor=A, task_id=task.pk, now=t0)
    leases.task_start(actor=A, task_id=task.pk, lease_token=lease_a.token, now=t0)
    leases.artifact_publish(actor=A, task_id=task.pk, lease_token=lease_a.token, now=t0)
    lapsed = t0 + ttl + timedelta(seconds=5)

    # Lapsed but nobody has read the hold yet: the heartbeat is refused, not a renewal.
    with pytest.raises(LeaseExpired) as expired:
        leases.lease_heartbeat(actor=A, task_id=task.pk, lease_token=lease_a.token, now=lapsed)
    assert expired.value.http_status == 409
    lease_a.refresh_from_db()
    assert lease_a.expires_at == t0 + ttl and lease_a.heartbeat_at == t0

    lease_b = leases.task_claim(actor=B, task_id=task.pk, now=lapsed)
    assert lease_b.token > lease_a.token
    lease_a.refresh_from_db()
    assert lease_a.status == LeaseStatus.EXPIRED
    task_before = _task_row(task.pk)
    lease_b_before = Lease.objects.filter(pk=lease_b.pk).values().get()
    last_event = Event.objects.order_by("-id").values_list("pk", flat=True).first()
    artifacts_before = list(Artifact.objects.filter(task=task).values_list("pk", flat=True))

    token = lease_a.token
    attempts = {
        "heartbeat": lambda now: leases.lease_heartbeat(
            actor=A, task_id=task.pk, lease_token=token, now=now
        ),
        "start": lambda now: leases.task_start(
            actor=A, task_id=task.pk, lease_token=token, now=now
        ),
        "artifact": lambda now: leases.artifact_publish(
            actor=A, task_id=task.pk, lease_token=token, summary="late", now=now
        ),
        "implemented": lambda now: leases.task_mark_implemented(
            actor=A, task_id=task.pk, lease_token=token, now=now
        ),
        "release": lambda now: leases.task_release(
            actor=A, task_id=task.pk, lease_token=token, now=now
        ),
        # Guessing the new token does not help: it is B's lease, not A's.
        "heartbeat with B's token": lambda now: leases.lease_heartbeat(
            actor=A, task_id=task.pk, lease_token=lease_b.token, now=now
        ),
    }
    # A's own clock (lease still "valid" by it) and a clock past the expiry: both refused.
    for now in (None, lapsed + timedelta(seconds=1)):
        for action, attempt in attempts.items():
            with pytest.raises(REFUSED) as refused:
                attempt(now)
            assert refused.value.http_status == 409, action

    assert _task_row(task.pk) == task_before
    assert Lease.objects.filter(pk=lease_b.pk).values().get() == lease_b_before
    assert list(Artifact.objects.filter(task=task).values_list("pk", flat=True)) == (
        artifacts_before
    )
    assert not Event.objects.filter(pk__gt=last_event).exists()
    assert task_before[:2] == (TaskState.CLAIMED, B.name)


# Claimed-only matters most: expiry then re-claim takes the task claimed → ready → claimed,
# so a state compare-and-swap alone (ConcurrentTransitionMixin) cannot see the change.
@pytest.mark.parametrize("started", [False, True], ids=["claimed", "in_progress"])
def test_heartbeat_loop_never_succeeds_once_the_next_lease_exists(conc_project, new_task, started):
    """A heartbeat racing the claim that expired it renewing a dead lease or B's hold."""
    task = new_task("heartbeating")
    ttl = timedelta(seconds=conc_project.lease_ttl_seconds)
    lease_a = leases.task_claim(actor=A, task_id=task.pk)
    if started:
        leases.task_start(actor=A, task_id=task.pk, lease_token=lease_a.token)
    claimed_at: list[float] = []
    beats: list[tuple[float, object]] = []  # (start time, result or error)

    def heartbeat_loop():
        failures_after_claim = 0
        deadline = time.monotonic() + 20
        while failures_after_claim < 20 and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                result = leases.lease_heartbeat(actor=A, task_id=task.pk, lease_token=lease_a.token)
            except REFUSED as exc:
                result = exc
                failures_after_claim += bool(claimed_at)
            beats.append((started, result))

    def claim_after_expiry():
        time.sleep(0.05)  # let the heartbeats get going
        lease = leases.task_claim(
            actor=B, task_id=task.pk, now=timezone.now() + ttl + timedelta(seconds=60)
        )
        claimed_at.append(time.monotonic())
        return lease

    join_a, join_b = in_thread(heartbeat_loop), in_thread(claim_after_expiry)
    outcome_b, outcome_a = join_b(), join_a()

    assert outcome_a.ok and outcome_b.ok, (outcome_a.error, outcome_b.error)
    lease_b = outcome_b.value
    successes = [r for _, r in beats if not isinstance(r, Exception)]
    assert successes, "the race never happened: no heartbeat before the claim"
    late = [r for started, r in beats if started > claimed_at[0]]
    assert late and all(isinstance(r, LeaseStale) for r in late), late[:3]
    lease_a.refresh_from_db()
    assert lease_a.status == LeaseStatus.EXPIRED
    # The last renewal that was acknowledged is the last one stored: no refused one wrote.
    assert lease_a.heartbeat_at == successes[-1].lease.heartbeat_at
    assert lease_a.expires_at == successes[-1].lease.expires_at
    task.refresh_from_db()
    assert (task.state, task.holder, task.hold_expires_at, task.lease_token_seq) == (
        TaskState.CLAIMED,
        B.name,
        lease_b.expires_at,
        lease_b.token,
    )


ROUNDS = 30


def test_heartbeat_racing_a_claim_after_expiry_never_both_succeed(conc_project, new_task):
    """A renewal and the expiry that ends it both taking effect: two live holders."""
    ttl = timedelta(seconds=conc_project.lease_ttl_seconds)
    t0 = timezone.now()
    just_before, just_after = t0 + ttl - timedelta(seconds=1), t0 + ttl + timedelta(seconds=1)
    rounds = []
    for r in range(ROUNDS):
        task = new_task(f"edge of expiry {r}")
        lease = leases.task_claim(actor=A, task_id=task.pk, now=t0)
        if r % 2:  # cover both held states
            leases.task_start(actor=A, task_id=task.pk, lease_token=lease.token, now=t0)
        rounds.append((task.pk, lease.token))
    waves = [
        [
            lambda task_id=task_id, token=token: leases.lease_heartbeat(
                actor=A, task_id=task_id, lease_token=token, now=just_before
            ),
            lambda task_id=task_id: leases.task_claim(actor=B, task_id=task_id, now=just_after),
        ]
        for task_id, token in rounds
    ]

    outcomes = run_waves(waves)

    for (task_id, token), (beat, claim) in zip(rounds, outcomes, strict=True):
        assert beat.ok != claim.ok, errors_by_type([beat, claim])
        task = Task.objects.get(pk=task_id)
        live = list(Lease.objects.filter(task_id=task_id, status=LeaseStatus.ACTIVE))
        assert len(live) == 1
        if beat.ok:  # the renewal came first: B finds the task held
            assert isinstance(claim.error, TaskAlreadyClaimed)
            assert (live[0].agent, live[0].token) == (A.name, token)
            assert live[0].expires_at == just_before + ttl
        else:  # the expiry came first: A's token is dead
            assert isinstance(beat.error, REFUSED) and beat.error.http_status == 409
            assert (live[0].agent, live[0].pk) == (B.name, claim.value.pk)
            assert live[0].token > token
            assert Lease.objects.get(task_id=task_id, token=token).status == LeaseStatus.EXPIRED
        assert (task.holder, task.hold_expires_at) == (live[0].agent, live[0].expires_at)
