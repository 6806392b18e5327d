"""A relay killed mid-stream (SIGKILL) loses no money and no record: after a restart the
sweeper releases every hold it left within the lease, and each call it was serving is on
the ledger as unsettled, beside the calls it had finished."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai
from openai import AsyncStream
from openai.types.chat import ChatCompletionChunk

from onemin_relay.gateway.keys import hash_key, usd_to_nanos
from onemin_relay.gateway.storage import Store
from tests.gateway import procs

LEASE = 1.5
INTERVAL = 0.5
STREAMS = 5
FINISHED = 2


async def _rest(stream: AsyncStream[ChatCompletionChunk]) -> str:
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def _until_written(store: Store, key_id: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(await store.ledger(key_id, 100)) < count:
        assert time.monotonic() < deadline, "the ledger rows were never written"
        await asyncio.sleep(0.02)


async def _open_streams(client: openai.AsyncOpenAI) -> list[AsyncStream[ChatCompletionChunk]]:
    """Start paid streams and read each one's first chunk, so every hold is taken."""
    streams = []
    for _ in range(STREAMS):
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "tell"}], stream=True
        )
        await stream.__anext__()
        streams.append(stream)
    return streams


async def test_holds_of_a_killed_relay_are_swept_and_recorded(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    with procs.emulator(tmp_path) as upstream:
        env = procs.relay_env(
            upstream.url,
            store_env,
            ONEMIN_HOLD_LEASE=str(LEASE),
            ONEMIN_SWEEP_INTERVAL=str(INTERVAL),
        )
        async with procs.store_for(env) as store:
            key = await procs.managed_key(store, usd_to_nanos(10))
            record = await store.key_by_hash(hash_key(key))
            assert record is not None
            with procs.relays(1, env, tmp_path / "a") as (doomed,):
                client = openai.AsyncOpenAI(base_url=f"{doomed.url}/v1", api_key=key, max_retries=0)
                for _ in range(FINISHED):
                    await client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                    )
                # finished calls are written in batches (within 50 ms); a kill before then
                # would leave them unsettled too, which is not what this test is about
                await _until_written(store, record.id, FINISHED)
                procs.put_faults(
                    upstream.url, env["ONEMIN_API_KEY"], reply="word " * 400, chunk_delay_ms=200
                )
                await _open_streams(client)
                held = await store.key(record.id)
                assert held is not None and held.reserved > 0
                doomed.kill()
                await client.close()
            after_kill = await store.key(record.id)
            assert after_kill is not None and after_kill.reserved == held.reserved
            with procs.relays(1, env, tmp_path / "b"):
                deadline = time.monotonic() + LEASE + 4 * INTERVAL + 10
                while time.monotonic() < deadline:
                    state = await store.key(record.id)
                    assert state is not None
                    if state.reserved == 0:
                        break
                    await asyncio.sleep(INTERVAL / 2)
            final = await store.key(record.id)
            rows = await store.ledger(record.id, 100)
    assert final is not None and final.reserved == 0
    outcomes = sorted(r.outcome for r in rows)
    assert outcomes == ["ok"] * FINISHED + ["unsettled"] * STREAMS
    assert final.spent == sum(r.charged for r in rows) > 0
    assert final.balance == usd_to_nanos(10) - final.spent


async def test_sigterm_lets_paid_streams_finish_then_writes_every_row(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    with procs.emulator(tmp_path) as upstream:
        env = procs.relay_env(upstream.url, store_env)
        procs.put_faults(
            upstream.url, env["ONEMIN_API_KEY"], reply="word " * 20, chunk_delay_ms=100
        )
        async with procs.store_for(env) as store:
            key = await procs.managed_key(store, usd_to_nanos(10))
            record = await store.key_by_hash(hash_key(key))
            assert record is not None
            with procs.relays(1, env, tmp_path) as (relay,):
                client = openai.AsyncOpenAI(base_url=f"{relay.url}/v1", api_key=key, max_retries=0)
                streams = await _open_streams(client)
                relay.process.terminate()  # SIGTERM while every stream is mid-way
                texts = [await _rest(stream) for stream in streams]
                await client.close()
                assert relay.process.wait(timeout=30) == 0
            rows = await store.ledger(record.id, 100)
            final = await store.key(record.id)
    assert all(text.strip().endswith("word") for text in texts)
    assert sorted(r.outcome for r in rows) == ["ok"] * STREAMS
    assert final is not None and final.reserved == 0 and final.spent > 0
