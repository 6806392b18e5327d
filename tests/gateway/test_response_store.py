"""The in-memory response store: owner scoping, LRU bounds, TTL and concurrent use."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from onemin_relay.gateway.response_store import (
    SERVER_OWNER,
    MemoryResponseStore,
    StoredResponse,
    owner_of,
)

ALICE = owner_of("key-alice")
BOB = owner_of("key-bob")


def entry(response_id: str, owner: str = ALICE, size: int = 10) -> StoredResponse:
    half = size // 2
    return StoredResponse(response_id, owner, b"r" * half, b"c" * (size - half))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_owner_is_a_hash_of_the_key_never_the_key() -> None:
    assert owner_of("key-alice") == hashlib.sha256(b"key-alice").hexdigest()
    assert "key-alice" not in ALICE
    assert ALICE != BOB
    assert owner_of(None) == owner_of("") == SERVER_OWNER


async def test_put_then_get_returns_the_entry() -> None:
    store = MemoryResponseStore()
    stored = entry("resp_1")
    await store.put(stored)
    assert await store.get("resp_1", ALICE) == stored
    assert await store.get("resp_unknown", ALICE) is None


async def test_another_owner_sees_nothing_and_cannot_delete() -> None:
    store = MemoryResponseStore()
    await store.put(entry("resp_1", ALICE))
    assert await store.get("resp_1", BOB) is None, "another owner's id reads as unknown"
    assert await store.delete("resp_1", BOB) is False
    assert await store.get("resp_1", ALICE) is not None, "a foreign delete leaves it alone"


async def test_delete_removes_once() -> None:
    store = MemoryResponseStore()
    await store.put(entry("resp_1"))
    assert await store.delete("resp_1", ALICE) is True
    assert await store.get("resp_1", ALICE) is None
    assert await store.delete("resp_1", ALICE) is False
    assert len(store) == 0 and store.bytes_used == 0


async def test_entry_bound_evicts_least_recently_used() -> None:
    store = MemoryResponseStore(max_entries=3)
    for n in range(3):
        await store.put(entry(f"resp_{n}"))
    assert await store.get("resp_0", ALICE) is not None  # resp_1 is now the least recent
    await store.put(entry("resp_3"))
    assert len(store) == 3
    assert await store.get("resp_1", ALICE) is None, "the least recently used entry goes"
    for kept in ("resp_0", "resp_2", "resp_3"):
        assert await store.get(kept, ALICE) is not None, kept


async def test_byte_bound_evicts_until_it_fits() -> None:
    store = MemoryResponseStore(max_bytes=100)
    for n in range(3):
        await store.put(entry(f"resp_{n}", size=40))
    assert store.bytes_used == 80, "the third entry pushed the first one out"
    assert await store.get("resp_0", ALICE) is None
    await store.put(entry("resp_big", size=100))
    assert len(store) == 1 and store.bytes_used == 100


async def test_entry_larger_than_the_budget_is_not_kept() -> None:
    store = MemoryResponseStore(max_bytes=100)
    await store.put(entry("resp_small", size=50))
    await store.put(entry("resp_huge", size=101))
    assert await store.get("resp_huge", ALICE) is None
    assert await store.get("resp_small", ALICE) is not None, "the others are not flushed for it"


async def test_replacing_an_id_keeps_the_byte_count_exact() -> None:
    store = MemoryResponseStore()
    await store.put(entry("resp_1", size=10))
    await store.put(entry("resp_1", size=30))
    assert len(store) == 1 and store.bytes_used == 30


async def test_ttl_expires_entries_by_the_injected_clock() -> None:
    clock = Clock()
    store = MemoryResponseStore(ttl=60, clock=clock)
    await store.put(entry("resp_1"))
    clock.now += 59.9
    assert await store.get("resp_1", ALICE) is not None
    clock.now += 0.1
    assert await store.get("resp_1", ALICE) is None, "expired at exactly ttl seconds"
    assert len(store) == 0 and store.bytes_used == 0, "an expired entry is dropped on read"
    assert await store.delete("resp_1", ALICE) is False


async def test_expired_entries_are_purged_when_storing() -> None:
    clock = Clock()
    store = MemoryResponseStore(ttl=60, clock=clock)
    await store.put(entry("resp_old"))
    clock.now += 61
    await store.put(entry("resp_new"))
    assert len(store) == 1 and store.bytes_used == 10, "the stale entry did not linger"


async def test_ttl_counts_from_storing_not_from_last_read() -> None:
    clock = Clock()
    store = MemoryResponseStore(ttl=60, clock=clock)
    await store.put(entry("resp_1"))
    clock.now += 50
    assert await store.get("resp_1", ALICE) is not None
    clock.now += 10
    assert await store.get("resp_1", ALICE) is None


async def test_concurrent_use_keeps_the_bounds_and_the_accounting() -> None:
    store = MemoryResponseStore(max_entries=50, max_bytes=2_000)
    owners = [owner_of(f"key-{n}") for n in range(4)]

    async def worker(n: int) -> None:
        owner = owners[n % 4]
        for step in range(50):
            response_id = f"resp_{n}_{step % 20}"
            await store.put(entry(response_id, owner, size=10 + step % 7))
            await asyncio.sleep(0)
            found = await store.get(response_id, owner)
            assert found is None or found.owner == owner
            assert await store.get(response_id, owners[(n + 1) % 4]) is None
            if step % 5 == 0:
                await store.delete(f"resp_{n}_{(step + 3) % 20}", owner)

    await asyncio.gather(*(worker(n) for n in range(40)))
    assert len(store) <= 50 and store.bytes_used <= 2_000
    kept = [
        found
        for n in range(40)
        for step in range(20)
        if (found := await store.get(f"resp_{n}_{step}", owners[n % 4])) is not None
    ]
    assert len(kept) == len(store)
    assert sum(e.size for e in kept) == store.bytes_used, "bytes are counted exactly"


@pytest.mark.parametrize(
    "bounds", [{"max_entries": 0}, {"max_bytes": 0}, {"ttl": 0}, {"ttl": -1.0}]
)
def test_bounds_must_be_positive(bounds: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MemoryResponseStore(**bounds)
