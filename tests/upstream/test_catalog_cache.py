"""The shared catalog tier against a real Redis and the emulator: one process fetches
``/models``, the others read its snapshot; stale snapshots and a Redis outage fall back to
1min.ai."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from onemin_relay.core.types import ModelInfo
from onemin_relay.emulator.state import STATE
from onemin_relay.settings import Settings
from onemin_relay.upstream import OneMinClient
from onemin_relay.upstream.catalog_cache import decode_snapshot, encode_snapshot
from onemin_relay.upstream.models import FEATURES, ModelCatalog
from onemin_relay.upstream.redis_catalog import RedisSharedCatalog

TTL = 60.0
GHOST = ModelInfo(id="ghost-model", name="Ghost", kind="chat")


def make_client(port: int = 6379, timeout: float = 2.0) -> aioredis.Redis:
    return aioredis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )


def models_requests(emulator: TestServer) -> int:
    return sum(1 for r in emulator.app[STATE].requests if r.path == "/models")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix() -> str:
    return f"onemin-test-{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_client(prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = make_client()
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def upstream(emulator: TestServer, session: aiohttp.ClientSession) -> OneMinClient:
    url = str(emulator.make_url(""))
    return OneMinClient(session, Settings(upstream_url=url, asset_url=url))


async def test_second_process_serves_the_shared_snapshot(
    emulator: TestServer, upstream: OneMinClient, redis_client: aioredis.Redis, prefix: str
) -> None:
    first = ModelCatalog(upstream, ttl=TTL, shared=RedisSharedCatalog(redis_client, prefix=prefix))
    fetched = await first.get()
    assert models_requests(emulator) == len(FEATURES)
    assert 0 < await redis_client.pttl(f"{prefix}catalog") <= TTL * 1000

    other_client = make_client()  # another process: its own connections and catalog
    try:
        shared = RedisSharedCatalog(other_client, prefix=prefix)
        second = ModelCatalog(upstream, ttl=TTL, shared=shared)
        served = await second.get()
    finally:
        await other_client.aclose()
    assert models_requests(emulator) == len(FEATURES), "no /models request from the second"
    assert served.models == fetched.models
    assert served.fetched_at == fetched.fetched_at
    assert served.resolve("gpt-4o") is not None
    assert shared.healthy


async def test_fresh_snapshot_is_used_for_what_is_left_of_its_ttl(
    emulator: TestServer, upstream: OneMinClient, redis_client: aioredis.Redis, prefix: str
) -> None:
    await redis_client.set(f"{prefix}catalog", encode_snapshot([GHOST], time.time() - TTL + 1.5))
    clock = Clock()
    shared = RedisSharedCatalog(redis_client, prefix=prefix)
    catalog = ModelCatalog(upstream, ttl=TTL, clock=clock, shared=shared)
    assert [m.id for m in (await catalog.get()).models] == ["ghost-model"]
    assert models_requests(emulator) == 0

    clock.now = 0.5  # within the second and a half the snapshot had left
    assert (await catalog.get()).get("ghost-model") is not None
    await asyncio.sleep(1.6)  # the snapshot is now older than the TTL
    clock.now = 2.0
    refreshed = await catalog.get()
    assert refreshed.get("ghost-model") is None
    assert refreshed.get("gpt-4o") is not None
    assert models_requests(emulator) == len(FEATURES)


async def test_stale_snapshot_is_refreshed_from_1min_ai(
    emulator: TestServer, upstream: OneMinClient, redis_client: aioredis.Redis, prefix: str
) -> None:
    key = f"{prefix}catalog"
    await redis_client.set(key, encode_snapshot([GHOST], time.time() - TTL - 1), ex=600)
    catalog = ModelCatalog(
        upstream, ttl=TTL, shared=RedisSharedCatalog(redis_client, prefix=prefix)
    )
    before = time.time()
    current = await catalog.get()
    assert current.get("ghost-model") is None
    assert current.get("gpt-4o") is not None
    assert models_requests(emulator) == len(FEATURES)

    saved = decode_snapshot(await redis_client.get(key))
    assert saved is not None
    assert saved.fetched_at >= before
    assert saved.models == current.models
    assert 0 < await redis_client.pttl(key) <= TTL * 1000, "saved again with the catalog's TTL"


async def test_unreadable_snapshot_is_ignored(
    emulator: TestServer, upstream: OneMinClient, redis_client: aioredis.Redis, prefix: str
) -> None:
    await redis_client.set(f"{prefix}catalog", b"\xc1 not a snapshot")
    catalog = ModelCatalog(
        upstream, ttl=TTL, shared=RedisSharedCatalog(redis_client, prefix=prefix)
    )
    assert (await catalog.get()).get("gpt-4o") is not None
    assert models_requests(emulator) == len(FEATURES)
    assert decode_snapshot(await redis_client.get(f"{prefix}catalog")) is not None


async def test_concurrent_callers_share_one_load_and_fetch(
    emulator: TestServer, upstream: OneMinClient, redis_client: aioredis.Redis, prefix: str
) -> None:
    catalog = ModelCatalog(
        upstream, ttl=TTL, shared=RedisSharedCatalog(redis_client, prefix=prefix)
    )
    results = await asyncio.gather(*(catalog.get() for _ in range(20)))
    assert models_requests(emulator) == len(FEATURES)
    assert all(r is results[0] for r in results)


async def test_redis_down_falls_back_to_1min_ai(
    emulator: TestServer, upstream: OneMinClient, caplog: pytest.LogCaptureFixture
) -> None:
    down = make_client(port=1, timeout=0.5)  # nothing listens on port 1
    try:
        shared = RedisSharedCatalog(down)
        clock = Clock()
        catalog = ModelCatalog(upstream, ttl=TTL, clock=clock, shared=shared)
        with caplog.at_level(logging.WARNING, logger="onemin_relay.upstream.redis_catalog"):
            current = await catalog.get()
        assert current.get("gpt-4o") is not None
        assert models_requests(emulator) == len(FEATURES)
        assert not shared.healthy
        assert any("shared model catalog" in r.getMessage() for r in caplog.records)

        clock.now = TTL + 1
        await catalog.get()
        assert models_requests(emulator) == 2 * len(FEATURES)
    finally:
        await down.aclose()


async def test_redis_shared_catalog_round_trip_and_health(
    redis_client: aioredis.Redis, prefix: str
) -> None:
    shared = RedisSharedCatalog(redis_client, prefix=prefix)
    assert shared.key == f"{prefix}catalog"
    assert await shared.load() is None
    await shared.save(b"snapshot", 5)
    assert await shared.load() == b"snapshot"
    assert 0 < await redis_client.pttl(f"{prefix}catalog") <= 5000
    assert shared.healthy

    down = make_client(port=1, timeout=0.5)
    try:
        broken = RedisSharedCatalog(down, prefix=prefix)
        await broken.save(b"other", 5)
        assert not broken.healthy
        assert await broken.load() is None
    finally:
        await down.aclose()
    assert await shared.load() == b"snapshot", "the failed save changed nothing"
