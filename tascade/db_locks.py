"""Process-wide mutual exclusion through the database, for periodic jobs.

A PostgreSQL session advisory lock: taken without waiting, released when the job ends or,
if the worker dies, when its connection closes. SQLite (a single local process) needs none.
"""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


def lock_key(name: str) -> int:
    # A stable signed 64-bit key per name.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def exclusively(name: str) -> Iterator[bool]:
    """Yield True if this process now runs ``name`` alone, False if another one already is."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = lock_key(name)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = cursor.fetchone()[0]
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def xact_lock(key: int, *, shared: bool = False) -> None:
    """Wait for a PostgreSQL advisory lock held until the transaction ends (shared or not).

    Take it after any row locks the transaction needs, never before one: every path that
    takes both takes them in that order, so they cannot deadlock. SQLite serialises all
    writers already and needs none.
    """
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [key])


def xact_locks(keys: list[int]) -> None:
    """``xact_lock`` (exclusive) on each of ``keys``, in the order given, in one statement.

    Every caller passes its keys sorted, so two transactions wanting some of the same keys
    take them in the same order and cannot deadlock on them.
    """
    if connection.vendor != "postgresql" or not keys:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(k, n)"
            " ORDER BY n",
            [keys],
        )
        cursor.fetchall()
