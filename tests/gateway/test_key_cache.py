"""Admission's key cache against a real store: a key read once is reused for at most its
time to live, so a key revoked elsewhere stops within that bound; a change made through this
process's admin operations is seen at once; unknown keys are never kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from onemin_relay.admin import operations as ops
from onemin_relay.gateway.key_cache import KeyCache
from onemin_relay.gateway.keys import KeyRecord, hash_key, issue
from onemin_relay.gateway.sqlite_store import SqliteStore


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """The store's ``key_by_hash``, counting the reads that reach the store."""

    def __init__(self, store: SqliteStore) -> None:
        self.store, self.reads = store, 0

    async def __call__(self, key_hash: str) -> KeyRecord | None:
        self.reads += 1
        return await self.store.key_by_hash(key_hash)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(str(tmp_path / "db"))
    await opened.open()
    await opened.migrate()
    yield opened
    await opened.close()


async def _managed(store: SqliteStore) -> tuple[str, str]:
    new = issue("managed", "cached", balance=10**9)
    await store.add_key(new.record)
    return new.record.id, hash_key(new.secret)


async def test_a_key_revoked_elsewhere_stops_within_the_time_to_live(store: SqliteStore) -> None:
    key_id, key_hash = await _managed(store)
    clock, load = Clock(), Counting(store)
    cache = KeyCache(1.0, clock)
    assert (await cache.read(key_hash, load)) is not None
    # another process revokes it (straight in the shared store, no admin call here)
    await store.update_key(key_id, {"revoked_at": 1.0})
    clock.now += 0.5
    within = await cache.read(key_hash, load)
    assert within is not None and within.revoked_at is None  # still as read, 0.5 s ago
    assert load.reads == 1
    clock.now += 0.5  # the bound: one time to live after the first read
    after = await cache.read(key_hash, load)
    assert after is not None and after.revoked_at == 1.0
    assert load.reads == 2


async def test_a_revocation_through_this_process_is_seen_at_once(store: SqliteStore) -> None:
    key_id, key_hash = await _managed(store)
    clock, load = Clock(), Counting(store)
    cache = KeyCache(60.0, clock)
    await cache.read(key_hash, load)
    await ops.revoke_key(store, key_id)
    record = await cache.read(key_hash, load)
    assert record is not None and record.revoked_at is not None
    assert load.reads == 2


async def test_unknown_keys_are_not_kept_and_zero_turns_the_cache_off(
    store: SqliteStore,
) -> None:
    _, key_hash = await _managed(store)
    load = Counting(store)
    cache = KeyCache(60.0, Clock())
    for _ in range(3):
        assert await cache.read(hash_key("sk-onemin-unknown"), load) is None
    assert load.reads == 3
    off = KeyCache(0.0, Clock())
    for _ in range(3):
        assert await off.read(key_hash, load) is not None
    assert load.reads == 6
    assert await cache.read(key_hash, load, fresh=True) is not None
    assert await cache.read(key_hash, load, fresh=True) is not None
    assert load.reads == 8  # a fresh read never takes a kept record
