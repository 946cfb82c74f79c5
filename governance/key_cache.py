"""Each process remembers resolved API keys for a few seconds.

Resolving a key costs a query on every request, and agents heartbeat and write constantly.
A revocation takes effect at once in the process that made it and within
``TASCADE_API_KEY_CACHE_SECONDS`` everywhere else.
"""

import time

from django.conf import settings

from governance.actors import Actor

_MAX_ENTRIES = 10_000
_entries: dict[str, tuple[float, Actor]] = {}


def recall(key_hash: str) -> Actor | None:
    entry = _entries.get(key_hash)
    if entry is None or entry[0] <= time.monotonic():
        return None
    return entry[1]


def remember(key_hash: str, actor: Actor) -> None:
    seconds = settings.TASCADE["API_KEY_CACHE_SECONDS"]
    if seconds <= 0:
        return
    if len(_entries) >= _MAX_ENTRIES:
        _entries.clear()
    _entries[key_hash] = (time.monotonic() + seconds, actor)


def forget(key_hash: str) -> None:
    _entries.pop(key_hash, None)
