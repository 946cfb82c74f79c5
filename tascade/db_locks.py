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
