"""Gateway keys as admission reads them: from the store, then kept for a second or so.

Every call with a relay or managed key looked its key up by hash: a hop to the store's thread
(SQLite) or a round trip (PostgreSQL) before anything else could happen. Admission now reads a
key once per ``ONEMIN_KEY_CACHE_SECONDS`` (default 1 s) and reuses the record meanwhile, so:

* a key revoked, narrowed (models, limits) or deleted by **another process** (the CLI, another
  relay sharing the store) stops working here within that many seconds;
* a change made through **this process** (admin API, dashboard) is seen at once: the admin
  operations call :func:`changed`, which empties every cache of the process;
* an expiry is exact (checked against the clock on every call), and the balance is never read
  from here: a hold is one conditional update in the store.

Only keys found are kept (an unknown key costs a store read every time, and cannot fill the
cache), under the hash of the secret, never the secret itself; at most ``MAX_KEYS`` of them.
``0`` seconds turns the cache off.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from onemin_relay.gateway.keys import KeyRecord

MAX_KEYS = 10_000
Load: TypeAlias = Callable[[str], Awaitable[KeyRecord | None]]
_generation = 0  # bumped by every key change made through this process


def changed() -> None:
    """A key was changed through this process: every cache forgets what it holds."""
    global _generation
    _generation += 1


class KeyCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._keys: dict[str, tuple[float, KeyRecord]] = {}
        self._generation = _generation

    async def read(self, key_hash: str, load: Load, fresh: bool = False) -> KeyRecord | None:
        """The key with ``key_hash``: as read less than ``ttl`` seconds ago, else ``load``ed
        (and kept, unless a key changed through this process while it was being read).
        ``fresh``: ``load``ed whatever is kept."""
        if fresh:
            return await load(key_hash)
        if self._generation != _generation:
            self._keys.clear()
            self._generation = _generation
        found = self._keys.get(key_hash)
        if found is not None and self._clock() < found[0]:
            return found[1]
        before = _generation
        record = await load(key_hash)
        if record is not None and self._ttl > 0 and before == _generation:
            if len(self._keys) >= MAX_KEYS:
                self._keys.clear()
            self._keys[key_hash] = (self._clock() + self._ttl, record)
        return record
