"""Zero overdraft under a burst, and no hold or row lost to a killed process.

Real relay processes (``onemin-relay serve``) share one store, SQLite file or PostgreSQL
database, in front of a real emulator process; the official OpenAI SDK sends the burst.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from pathlib import Path

import openai

from onemin_relay.core.tokens import estimate_input_tokens
from onemin_relay.core.types import ModelInfo
from onemin_relay.gateway import pricing
from onemin_relay.gateway.keys import hash_key
from onemin_relay.gateway.storage import Store
from tests.gateway import procs

MODEL = "gpt-4o-mini"
PROMPT = "burst"
MAX_TOKENS = 50
BURST = 1000
COVERED = 50
BURST_WINDOW_MS = 8000


def _model_info(emulator: str) -> ModelInfo:
    with urllib.request.urlopen(f"{emulator}/models?feature=UNIFY_CHAT_WITH_AI") as answer:
        entries = json.load(answer)["models"]
    entry = next(e for e in entries if e["modelId"] == MODEL)
    prices = entry["creditMetadata"]
    return ModelInfo(
        id=MODEL, name=MODEL, kind="chat",
        max_output_tokens=prices["MAX_OUTPUT_TOKEN"], credit_metadata=prices,
    )  # fmt: skip


async def _hold_of_one_call(emulator: str, credits_per_usd: float) -> int:
    """The most one burst call may cost, as the relay computes it."""
    tokens = await estimate_input_tokens(PROMPT, MODEL, 0)
    # a whole answer is held for the model's maximum output: 1min.ai takes no max_tokens
    credits, _ = pricing.chat_hold(_model_info(emulator), tokens, None)
    return pricing.credits_to_nanos(credits, credits_per_usd)


async def _burst(urls: list[str], key: str) -> Counter[int]:
    clients = [
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
        for url in urls
    ]

    async def one(index: int) -> int:
        client = clients[index % len(clients)]
        try:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS
            )
        except openai.APIStatusError as exc:
            return exc.status_code
        return 200

    try:
        async with asyncio.timeout(120):
            return Counter(await asyncio.gather(*(one(i) for i in range(BURST))))
    finally:
        for client in clients:
            await client.close()


async def _key_id(store: Store, secret: str) -> str:
    record = await store.key_by_hash(hash_key(secret))
    assert record is not None
    return record.id


async def test_a_burst_never_overdraws_a_balance_shared_by_two_processes(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    with procs.emulator(tmp_path) as upstream:
        env = procs.relay_env(upstream.url, store_env)
        # every call stays in flight until the whole burst has been admitted or refused,
        # even on a busy machine: a call settled early would free its hold for another
        procs.put_faults(upstream.url, env["ONEMIN_API_KEY"], latency_ms=BURST_WINDOW_MS)
        hold = await _hold_of_one_call(upstream.url, 3_000_000.0)
        async with procs.store_for(env) as store:
            key = await procs.managed_key(store, COVERED * hold)
            key_id = await _key_id(store, key)
            with procs.relays(2, env, tmp_path) as (first, second):
                outcome = await _burst([first.url, second.url], key)
            # both relays drained their ledgers on SIGTERM
            record = await store.key(key_id)
            rows = await store.ledger(key_id, BURST + 10)
    assert outcome == Counter({200: COVERED, 402: BURST - COVERED})
    assert record is not None
    assert record.balance >= 0 and record.reserved == 0
    assert len(rows) == BURST  # one per attempt: 50 served, 950 refused before upstream
    assert Counter(r.outcome for r in rows) == Counter({"ok": COVERED, "refused": BURST - COVERED})
    assert record.spent == sum(r.charged for r in rows)
    assert record.balance == COVERED * hold - record.spent
    assert all(0 < r.charged <= hold for r in rows if r.outcome == "ok")
