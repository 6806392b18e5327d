"""Several relay processes sharing Redis: limits exact across them, a Responses conversation
continued on another process, and Redis stopped in the middle of a load."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
import redis.asyncio as redis

from tests.gateway import procs
from tests.gateway.test_redis_responses import RedisServer

SHARED_REDIS = "redis://127.0.0.1:6379/0"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of the test's own on the shared Redis, removed afterwards."""
    name = f"onemin-test-{uuid.uuid4().hex[:10]}:"
    yield name
    client = redis.from_url(SHARED_REDIS)
    async for key in client.scan_iter(match=name + "*"):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(procs.free_port(), tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.kill()


async def _burst(urls: list[str], key: str, count: int, **create: object) -> Counter[int]:
    clients = [openai.AsyncOpenAI(base_url=f"{u}/v1", api_key=key, max_retries=0) for u in urls]

    async def one(index: int) -> int:
        try:
            await clients[index % len(clients)].chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, **create
            )
        except openai.APIStatusError as exc:
            return exc.status_code
        return 200

    try:
        async with asyncio.timeout(60):
            return Counter(await asyncio.gather(*(one(i) for i in range(count))))
    finally:
        for client in clients:
            await client.close()


def _env(
    upstream: str, tmp_path: Path, redis_url: str, prefix: str, **limits: str
) -> dict[str, str]:
    store = {"ONEMIN_DATA_DIR": str(tmp_path / "data")}
    extra = {"ONEMIN_REDIS_URL": redis_url, "ONEMIN_REDIS_PREFIX": prefix, **limits}
    return procs.relay_env(upstream, store, **extra)


async def test_limits_are_exact_across_two_processes(tmp_path: Path, prefix: str) -> None:
    with procs.emulator(tmp_path) as upstream:
        env = _env(upstream.url, tmp_path, SHARED_REDIS, prefix, ONEMIN_IP_RPM="180")
        with procs.relays(2, env, tmp_path) as (first, second):
            requests = await _burst([first.url, second.url], "caller-key", 1000)
        env = _env(upstream.url, tmp_path, SHARED_REDIS, prefix + "t:", ONEMIN_IP_TPM="5000")
        # kept in flight through the burst: a call that ends gives back the tokens it did not
        # use, which would (rightly) let a later one in
        procs.put_faults(upstream.url, "caller-key", latency_ms=1500)
        with procs.relays(2, env, tmp_path / "t") as (first, second):
            tokens = await _burst([first.url, second.url], "caller-key", 300, max_tokens=100)
    assert requests == Counter({200: 180, 429: 820})
    assert tokens == Counter({200: 50, 429: 250})


async def test_a_conversation_continues_on_another_process(tmp_path: Path, prefix: str) -> None:
    with procs.emulator(tmp_path) as upstream:
        env = _env(upstream.url, tmp_path, SHARED_REDIS, prefix)
        with procs.relays(2, env, tmp_path) as (first, second):
            async with (
                openai.AsyncOpenAI(base_url=f"{first.url}/v1", api_key="k", max_retries=0) as a,
                openai.AsyncOpenAI(base_url=f"{second.url}/v1", api_key="k", max_retries=0) as b,
            ):
                opened = await a.responses.create(model="gpt-4o-mini", input="my name is Ada")
                followed = await b.responses.create(
                    model="gpt-4o-mini", input="what is my name?", previous_response_id=opened.id
                )
                fetched = await b.responses.retrieve(opened.id)
        history = json.dumps(procs_requests(upstream.url, "k")[-1])
    assert followed.output_text == "Echo: what is my name?"
    assert fetched.id == opened.id and fetched.output_text == opened.output_text
    assert "my name is Ada" in history, "the second process sent the first turn upstream"


def procs_requests(emulator: str, key: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{emulator}/_emulator/requests?api_key={key}") as answer:
        found = json.load(answer)
    assert isinstance(found, list)
    return found


def _ready(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


@pytest.mark.parametrize("policy", ["closed", "open"])
async def test_redis_stopped_mid_load(tmp_path: Path, own_redis: RedisServer, policy: str) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    with procs.emulator(tmp_path) as upstream:
        env = _env(
            upstream.url, tmp_path, url, "onemin-test:",
            ONEMIN_IP_RPM="100000", ONEMIN_LIMITS_ON_STORE_ERROR=policy,
        )  # fmt: skip
        with procs.relays(1, env, tmp_path) as (relay,):
            before = await _burst([relay.url], "k", 20)
            own_redis.kill()
            during = await _burst([relay.url], "k", 20)
            ready_during = _ready(relay.url)
            own_redis.start()
            after = await _burst([relay.url], "k", 20)
            ready_after = _ready(relay.url)
    assert before == after == Counter({200: 20})
    if policy == "closed":
        assert during == Counter({503: 20})
        assert ready_during[0] == 503
    else:
        assert during == Counter({200: 20})
        assert ready_during[0] == 200
    states = ready_during[1]["states"]
    assert isinstance(states, dict) and states["limits"]["ok"] is False
    assert ready_after[0] == 200
