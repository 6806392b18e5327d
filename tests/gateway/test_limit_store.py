"""The rate-limit counts, the same behaviour in memory and in Redis (a key prefix per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest
import redis.asyncio as redis

from onemin_relay.core.errors import RateLimited
from onemin_relay.core.types import Caller
from onemin_relay.gateway import redis_limits
from onemin_relay.gateway.limit_store import (
    Cap,
    LimitStore,
    MemoryLimitStore,
    Window,
    retry_after,
)
from onemin_relay.gateway.limits import RateLimits, upstream_subject
from onemin_relay.gateway.redis_limits import RedisLimitStore
from onemin_relay.gateway.redis_responses import connect_redis
from onemin_relay.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/0"
WINDOW = 60.0

StoreFactory = Callable[[], LimitStore]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    if request.param == "memory":
        shared = MemoryLimitStore(WINDOW)
        yield lambda: shared
        return
    prefix = f"onemin-test-{uuid.uuid4().hex[:10]}:"
    clients: list[redis.Redis] = []

    def make() -> LimitStore:
        client = connect_redis(REDIS_URL)  # as the relay connects: a bounded pool
        clients.append(client)
        return RedisLimitStore(client, window=WINDOW, prefix=prefix)

    yield make
    cleaner = redis.from_url(REDIS_URL)
    async for key in cleaner.scan_iter(match=prefix + "*"):
        await cleaner.delete(key)
    await cleaner.aclose()
    for client in clients:
        await client.aclose()


async def test_a_burst_is_admitted_exactly_up_to_the_limit(make_store: StoreFactory) -> None:
    stores = [make_store(), make_store()]  # two processes' worth, on Redis
    window = [Window("ip:1:requests", 180, 1)]
    results = await asyncio.gather(
        *(stores[i % 2].admit(window, [], f"r{i}", 60) for i in range(1000))
    )
    assert sum(r.admitted for r in results) == 180
    refused = [r for r in results if not r.admitted]
    assert all(r.refused_window == 0 and r.retry_after > 0 for r in refused)


async def test_all_or_nothing_across_limits(make_store: StoreFactory) -> None:
    store = make_store()
    requests = Window("k:requests", 10, 1)
    tokens = Window("k:tokens", 1000, 600)
    first = await store.admit([requests, tokens], [], "a", 60)
    second = await store.admit([requests, tokens], [], "b", 60)
    assert first.admitted and not second.admitted and second.refused_window == 1
    # the refused request did not use up a request
    assert first.states[0].remaining == 9
    third = await store.admit([requests, Window("k:tokens", 1000, 400)], [], "c", 60)
    assert third.admitted and third.states[0].remaining == 8 and third.states[1].remaining == 0


async def test_a_token_estimate_is_corrected(make_store: StoreFactory) -> None:
    store = make_store()
    tokens = Window("k2:tokens", 1000, 800)
    admitted = await store.admit([tokens], [], "a", 60)
    assert admitted.admitted
    await store.adjust("k2:tokens", admitted.window_index, -700)  # it used only 100
    after = await store.admit([Window("k2:tokens", 1000, 850)], [], "b", 60)
    assert after.admitted and after.states[0].remaining == 50


async def test_in_flight_caps_hold_and_release(make_store: StoreFactory) -> None:
    store = make_store()
    cap = [Cap("ip:2:in-flight", 2)]
    assert (await store.admit([], cap, "a", 60)).admitted
    assert (await store.admit([], cap, "b", 60)).admitted
    full = await store.admit([], cap, "c", 60)
    assert not full.admitted and full.refused_cap == 0
    await store.release(cap, "a")
    assert (await store.admit([], cap, "c", 60)).admitted


async def test_an_in_flight_entry_lapses_with_its_lease(make_store: StoreFactory) -> None:
    store = make_store()
    cap = [Cap("ip:3:in-flight", 1)]
    assert (await store.admit([], cap, "crashed", 0.5)).admitted
    assert not (await store.admit([], cap, "b", 60)).admitted
    await asyncio.sleep(0.7)
    assert (await store.admit([], cap, "b", 60)).admitted


def test_retry_after_is_when_the_next_request_fits() -> None:
    # 180 counted in a fresh window at second 10: the next request fits once the window has
    # rolled over and the old count has decayed by one request's worth
    assert retry_after(0, 180, 10, 60, 180, 1) == pytest.approx(50 + 60 / 180)
    # the previous window's 180 decays: at second 30, 90 remain; one more fits after 1/3 s
    assert retry_after(180, 89, 30, 60, 180, 1) == pytest.approx(0.0)
    assert retry_after(180, 90, 30, 60, 180, 1) == pytest.approx(60 / 180)


async def test_finishing_releases_and_corrects_in_one_step(make_store: StoreFactory) -> None:
    store = make_store()
    tokens, cap = Window("k3:tokens", 1000, 900), Cap("k3:in-flight", 1)
    admitted = await store.admit([tokens], [cap], "a", 60)
    assert admitted.admitted
    await store.finish([cap], "a", ["k3:tokens"], admitted.window_index, -850)
    again = await store.admit([Window("k3:tokens", 1000, 900)], [cap], "b", 60)
    assert again.admitted and again.states[0].remaining == 1000 - 50 - 900


async def test_a_request_that_ended_never_holds_its_slot_against_the_next_here(
    make_store: StoreFactory,
) -> None:
    """An end still on its way when the next admission comes: in Redis it rides in the
    admission's script call and is applied first; in memory it is counted at once. Either
    way this process never refuses a request for a slot its own finished request held."""
    store = make_store()
    cap = [Cap("ip:11:in-flight", 1)]
    tokens = Window("k11:tokens", 1000, 600)
    ends = []
    for i in range(20):
        admitted = await store.admit([tokens], cap, f"r{i}", 60)
        assert admitted.admitted, i
        # 600 tokens estimated, 10 used: the next fits only once this correction is applied
        end = store.finish(cap, f"r{i}", ["k11:tokens"], admitted.window_index, -590)
        ends.append(asyncio.create_task(end))
        await asyncio.sleep(0)  # the end is submitted, not yet applied
    await asyncio.gather(*ends)
    last = await store.admit([tokens], cap, "last", 60)
    assert last.admitted and last.states[0].remaining == 1000 - 20 * 10 - 600


@pytest.mark.parametrize("make_store", ["redis"], indirect=True)
async def test_in_redis_an_end_rides_in_the_next_admissions_call(
    make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request after another: each end waits for the next admission (the linger is made
    long here, so nothing else could carry it) and goes in its script call, applied first:
    one call per request, and the one in-flight slot is free for each next request."""
    monkeypatch.setattr(redis_limits, "END_LINGER", 3600.0)
    store = make_store()
    assert isinstance(store, RedisLimitStore)
    calls = 0
    script = store._script

    async def counted(**call: Any) -> Any:
        nonlocal calls
        calls += 1
        return await script(**call)

    monkeypatch.setattr(store, "_script", counted)
    cap = [Cap("ip:12:in-flight", 1)]
    ends = []
    for i in range(10):
        assert (await store.admit([], cap, f"r{i}", 60)).admitted, i
        ends.append(asyncio.create_task(store.finish(cap, f"r{i}", [], 0, 0)))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not ends[-1].done()  # still waiting for an admission to ride with
    assert (await store.admit([], cap, "last", 60)).admitted
    await asyncio.wait_for(asyncio.gather(*ends), timeout=5)
    assert calls == 11


async def test_a_request_that_ends_leaves_its_caps(make_store: StoreFactory) -> None:
    """In memory the end is counted at once (no task); in Redis once the background
    settlement has run. Either way the next request finds the slot free."""
    limits = RateLimits(make_store(), Settings(ip_max_in_flight=1, upstream_max_in_flight=1))
    caller = Caller(api_key="k", client_ip="198.51.100.7", request_id="req_a")
    grant = await limits.admit(caller, None, "one-1min-key", 10)
    with pytest.raises(RateLimited):
        await limits.admit(msgspec.structs.replace(caller, request_id="req_b"), None, "k2", 10)
    limits.settle(grant, 12)
    await limits.drain()
    again = await limits.admit(msgspec.structs.replace(caller, request_id="req_c"), None, "k3", 10)
    assert len(again.caps) == 2  # counted in flight again, for the IP and for its 1min.ai key


def test_the_upstream_cap_names_a_hash_of_the_1min_key() -> None:
    subject = upstream_subject("sk-secret-1min-key")
    assert subject.startswith("upstream:") and "secret" not in subject
    assert subject == upstream_subject("sk-secret-1min-key")
    assert subject != upstream_subject("sk-other-1min-key")


async def test_admissions_of_every_shape_are_decided_together_in_turn(
    make_store: StoreFactory,
) -> None:
    """Concurrent admissions with different windows and caps (on Redis, one script call for
    many): each is decided as if alone, in the order they came, with its own windows' state."""
    store = make_store()
    cap = Cap("ip:9:in-flight", 5)
    shapes: list[tuple[list[Window], list[Cap]]] = [
        ([Window("s9:requests", 100, 1), Window("s9:tokens", 10_000, 300)], [cap]),
        ([], [cap, Cap("upstream:9", 100)]),
        ([Window("s9:requests", 100, 1)], []),
    ]
    results = await asyncio.gather(*(store.admit(*shapes[i % 3], f"m{i}", 60) for i in range(30)))
    capped = [i for i in range(30) if i % 3 != 2]
    assert [i for i in capped if results[i].admitted] == capped[:5]
    assert all(results[i].admitted for i in range(2, 30, 3))
    assert all(len(r.states) == len(shapes[i % 3][0]) for i, r in enumerate(results))
    last = results[29].states[0]  # 3 of shape 0 (0, 3, 6) and all 10 of shape 2 took one
    assert last.remaining == 100 - 13
