"""Services that lose a race are run again, and a race that keeps losing is a 409."""

import pytest
from django.db import IntegrityError, OperationalError

from tascade.errors import ConcurrentUpdate
from tascade.transactions import retry_on_conflict


class _Deadlock(Exception):
    sqlstate = "40P01"


def _failing(times, exc_factory):
    calls = []

    @retry_on_conflict
    def service():
        calls.append(1)
        if len(calls) <= times:
            raise exc_factory()
        return "done"

    return service, calls


def _deadlock():
    exc = OperationalError("deadlock detected")
    exc.__cause__ = _Deadlock()
    return exc


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_victim_is_run_again():
    service, calls = _failing(2, _deadlock)
    assert service() == "done"
    assert len(calls) == 3


@pytest.mark.django_db(transaction=True)
def test_a_race_that_keeps_losing_is_a_conflict_not_a_crash():
    service, calls = _failing(99, _deadlock)
    with pytest.raises(ConcurrentUpdate) as refused:
        service()
    assert refused.value.http_status == 409
    assert len(calls) == 4


@pytest.mark.django_db(transaction=True)
def test_other_database_errors_are_not_retried():
    service, calls = _failing(1, lambda: OperationalError("connection refused"))
    with pytest.raises(OperationalError):
        service()
    assert len(calls) == 1


@pytest.mark.django_db
def test_inside_a_callers_transaction_the_race_is_reported_at_once():
    service, calls = _failing(1, _deadlock)
    with pytest.raises(ConcurrentUpdate):
        service()
    assert len(calls) == 1


@pytest.mark.django_db(transaction=True)
def test_a_unique_race_is_retried_but_a_persistent_violation_stays_a_bug():
    """Guards against a constraint bug hidden behind a 409 that looks retryable."""
    service, calls = _failing(1, lambda: IntegrityError("duplicate key"))
    assert service() == "done"
    service, calls = _failing(99, lambda: IntegrityError("duplicate key"))
    with pytest.raises(IntegrityError):
        service()
    assert len(calls) == 4
