"""The Redis response store against a real Redis: owner scoping, expiry, the per-entry cap,
sharing between clients, and what happens when Redis is unreachable or restarts."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import msgspec
import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.retry import Retry as SyncRetry

from onemin_relay.core.errors import UpstreamUnavailable
from onemin_relay.gateway.redis_responses import (
    UNAVAILABLE,
    RedisResponseStore,
    _Record,
    connect_redis,
    owner_prefix,
)
from onemin_relay.gateway.response_store import StoredResponse, owner_of
from tests.gateway.procs import free_port

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
CLOSED_PORT = 1  # nothing listens there: connections are refused at once

ALICE = owner_of("key-alice")
BOB = owner_of("key-bob")


def entry(response_id: str, owner: str = ALICE, size: int = 10) -> StoredResponse:
    half = size // 2
    return StoredResponse(response_id, owner, b"r" * half, b"c" * (size - half))


def make_client(port: int = REDIS_PORT, timeout: float = 2.0) -> aioredis.Redis:
    return aioredis.Redis(
        host=REDIS_HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )


async def drop_keys(client: aioredis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
def prefix() -> str:
    return f"onemin-test-{uuid.uuid4().hex}:"


async def _client(prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = make_client()
    try:
        yield client
    finally:
        await drop_keys(client, prefix)
        await client.aclose()


client = pytest.fixture(_client, name="client")
# a second connection pool: what another relay process would hold
other_client = pytest.fixture(_client, name="other_client")


@pytest.fixture
def store(client: aioredis.Redis, prefix: str) -> RedisResponseStore:
    return RedisResponseStore(client, prefix=prefix)


async def test_put_get_delete(
    store: RedisResponseStore, client: aioredis.Redis, prefix: str
) -> None:
    stored = entry("resp_1", size=40)
    await store.put(stored)
    assert await store.get("resp_1", ALICE) == stored
    assert await client.exists(f"{prefix}response:resp_1") == 1
    assert 0 < await client.pttl(f"{prefix}response:resp_1") <= store.ttl * 1000
    assert await store.delete("resp_1", ALICE) is True
    assert await store.get("resp_1", ALICE) is None
    assert await client.exists(f"{prefix}response:resp_1") == 0
    assert await store.delete("resp_1", ALICE) is False
    assert store.healthy


async def test_put_replaces(store: RedisResponseStore) -> None:
    await store.put(entry("resp_1", size=10))
    await store.put(entry("resp_1", size=30))
    found = await store.get("resp_1", ALICE)
    assert found is not None and found.size == 30


async def test_another_owners_entry_is_unknown_and_survives_their_delete(
    store: RedisResponseStore,
) -> None:
    await store.put(entry("resp_a", ALICE))
    assert await store.get("resp_a", BOB) is None
    assert await store.delete("resp_a", BOB) is False
    assert await store.get("resp_a", ALICE) is not None, "Bob's delete left Alice's entry"
    assert await store.delete("resp_a", ALICE) is True


def test_owner_prefix_is_how_every_value_starts() -> None:
    value = msgspec.msgpack.encode(_Record(ALICE, "resp_1", b"r", b"c"))
    assert value.startswith(owner_prefix(ALICE))
    assert not value.startswith(owner_prefix(BOB))
    assert not owner_prefix("ab").startswith(owner_prefix("a")), "the length is part of it"


async def test_entries_expire_after_the_ttl(client: aioredis.Redis, prefix: str) -> None:
    store = RedisResponseStore(client, prefix=prefix, ttl=1)
    await store.put(entry("resp_1"))
    assert await store.get("resp_1", ALICE) is not None
    await asyncio.sleep(1.2)
    assert await store.get("resp_1", ALICE) is None
    assert await client.exists(f"{prefix}response:resp_1") == 0


async def test_an_entry_over_the_cap_is_not_stored(client: aioredis.Redis, prefix: str) -> None:
    store = RedisResponseStore(client, prefix=prefix, max_bytes_per_entry=100)
    await store.put(entry("at_cap", size=100))
    await store.put(entry("over_cap", size=101))
    assert await store.get("at_cap", ALICE) is not None
    assert await store.get("over_cap", ALICE) is None
    assert await client.exists(f"{prefix}response:over_cap") == 0
    await store.put(entry("at_cap", size=101))
    assert await store.get("at_cap", ALICE) is None, "an oversize replacement leaves nothing"


async def test_an_unreadable_value_reads_as_unknown(
    store: RedisResponseStore, client: aioredis.Redis, prefix: str
) -> None:
    await client.set(f"{prefix}response:resp_bad", b"\xc1 not msgpack")
    assert await store.get("resp_bad", ALICE) is None
    assert store.healthy


async def test_two_processes_share_entries(
    client: aioredis.Redis, other_client: aioredis.Redis, prefix: str
) -> None:
    first = RedisResponseStore(client, prefix=prefix)
    second = RedisResponseStore(other_client, prefix=prefix)
    stored = entry("resp_shared", size=20)
    await first.put(stored)
    assert await second.get("resp_shared", ALICE) == stored
    assert await second.get("resp_shared", BOB) is None
    assert await second.delete("resp_shared", ALICE) is True
    assert await first.get("resp_shared", ALICE) is None


async def test_prefixes_keep_stores_apart(client: aioredis.Redis, prefix: str) -> None:
    mine = RedisResponseStore(client, prefix=prefix)
    other = RedisResponseStore(client, prefix=prefix + "other:")
    await mine.put(entry("resp_1"))
    assert await other.get("resp_1", ALICE) is None


def test_bad_settings_are_refused(client: aioredis.Redis) -> None:
    with pytest.raises(ValueError):
        RedisResponseStore(client, ttl=0)
    with pytest.raises(ValueError):
        RedisResponseStore(client, max_bytes_per_entry=0)
    with pytest.raises(ValueError):
        RedisResponseStore(client, on_error="ignore")  # type: ignore[arg-type]


@pytest.fixture
async def unreachable() -> AsyncIterator[aioredis.Redis]:
    client = make_client(CLOSED_PORT, timeout=0.5)
    try:
        yield client
    finally:
        await client.aclose()


async def test_unreachable_fail_mode_raises_unavailable(
    unreachable: aioredis.Redis, prefix: str
) -> None:
    store = RedisResponseStore(unreachable, prefix=prefix, on_error="fail")
    assert store.healthy
    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: store.get("resp_1", ALICE),
        lambda: store.put(entry("resp_1")),
        lambda: store.delete("resp_1", ALICE),
    ]
    for operation in operations:
        with pytest.raises(UpstreamUnavailable) as caught:
            await operation()
        assert caught.value.message == UNAVAILABLE
        assert caught.value.status == 503
        assert not store.healthy


async def test_unreachable_degrade_mode_carries_on(
    unreachable: aioredis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisResponseStore(unreachable, prefix=prefix, on_error="degrade")
    with caplog.at_level(logging.WARNING, logger="onemin_relay.gateway.redis_responses"):
        await store.put(entry("resp_1"))
    assert not store.healthy
    assert any("write of resp_1" in r.getMessage() for r in caplog.records)
    assert await store.get("resp_1", ALICE) is None
    assert await store.delete("resp_1", ALICE) is False
    assert await store.ping() is False


async def test_a_redis_that_never_answers_times_out() -> None:
    """Accepts the connection, then stays silent: the socket timeout bounds the call."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes
        writer.close()

    server = await asyncio.start_server(silent, REDIS_HOST, 0)
    port = server.sockets[0].getsockname()[1]
    client = make_client(port, timeout=0.2)
    try:
        store = RedisResponseStore(client, on_error="fail")
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await store.get("resp_1", ALICE)
        assert time.monotonic() - started < 2.0
        degraded = RedisResponseStore(client, on_error="degrade")
        assert await degraded.get("resp_1", ALICE) is None
        assert not degraded.healthy
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


class RedisServer:
    """A redis-server child of the test's own on a loopback port, keeping nothing on disk."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", REDIS_HOST,
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        probe = redis.Redis(
            host=REDIS_HOST, port=self.port, socket_timeout=0.2, retry=SyncRetry(NoBackoff(), 0)
        )
        deadline = time.monotonic() + 10
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}")
                try:
                    probe.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        self.kill()
                        raise
                    time.sleep(0.02)
        finally:
            probe.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.kill()


async def test_redis_stopped_and_restarted(redis_server: RedisServer, prefix: str) -> None:
    client = connect_redis(f"redis://{REDIS_HOST}:{redis_server.port}/0", timeout=0.5)
    try:
        degrade = RedisResponseStore(client, prefix=prefix, on_error="degrade")
        fail = RedisResponseStore(client, prefix=prefix, on_error="fail")
        await degrade.put(entry("resp_before"))
        assert await fail.get("resp_before", ALICE) is not None
        assert degrade.healthy and fail.healthy

        redis_server.kill()
        assert await degrade.get("resp_before", ALICE) is None
        await degrade.put(entry("resp_during"))
        assert await degrade.delete("resp_before", ALICE) is False
        assert not degrade.healthy
        with pytest.raises(UpstreamUnavailable):
            await fail.get("resp_before", ALICE)
        assert not fail.healthy

        redis_server.start()
        await degrade.put(entry("resp_after"))
        assert degrade.healthy, "the first operation after the restart recovers"
        assert await fail.get("resp_after", ALICE) == entry("resp_after")
        assert fail.healthy
        assert await degrade.delete("resp_after", ALICE) is True
        assert await degrade.ping() is True
    finally:
        await client.aclose()
