"""Retrying a service whose transaction lost a race the database had to break.

Row locks are taken in a fixed order (docs/concurrency.md), but readiness propagation locks
a task and then its dependents, and a dependent may also be changing on its own: PostgreSQL
then reports a deadlock and aborts one side. A unique constraint can likewise refuse an
insert that a concurrent transaction made first. Both are races, not bugs in the request:
the whole service transaction is run again, and if it keeps losing, the caller gets a 409.
"""

import functools
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.db import IntegrityError, OperationalError, transaction
from django_fsm import ConcurrentTransition

from tascade.errors import ConcurrentUpdate

P = ParamSpec("P")
R = TypeVar("R")

ATTEMPTS = 4
# deadlock_detected, serialization_failure, lock_not_available
_RETRYABLE_SQLSTATES = {"40P01", "40001", "55P03"}


def _lost_a_race(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError | ConcurrentTransition):
        return True
    if isinstance(exc, OperationalError):
        sqlstate = getattr(exc.__cause__, "sqlstate", None)
        return sqlstate in _RETRYABLE_SQLSTATES or "database is locked" in str(exc)
    return False


def retry_on_conflict(func: Callable[P, R]) -> Callable[P, R]:
    """Run ``func`` again (with jittered backoff) when its transaction lost a race.

    Inside a caller's transaction nothing can be started over, so the race is reported at
    once as ``ConcurrentUpdate`` and the caller's transaction rolls back.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        outermost = not transaction.get_connection().in_atomic_block
        attempts = ATTEMPTS if outermost else 1
        for attempt in range(1, attempts + 1):
            try:
                return func(*args, **kwargs)
            except (IntegrityError, OperationalError, ConcurrentTransition) as exc:
                if not _lost_a_race(exc):
                    raise
                if attempt == attempts:
                    if isinstance(exc, IntegrityError) and outermost:
                        # A unique race resolves on the next attempt (which then sees the
                        # winner's row); one that survives every attempt is a real bug.
                        raise
                    raise ConcurrentUpdate(operation=func.__name__, attempts=attempt) from exc
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
        raise AssertionError("unreachable")

    return wrapper
