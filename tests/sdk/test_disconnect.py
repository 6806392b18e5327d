"""A client that hangs up mid-stream stops the upstream read at once."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.conftest import Stack


async def test_client_disconnect_cancels_upstream_stream(stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, chunk_delay_ms=200)
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": " ".join(["word"] * 50)}],
    }
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{stack.relay_url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        await response.content.readline()  # the first frame arrived: the stream is live
        response.close()  # hang up
    hung_up = time.time()

    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        (record,) = stack.chat_requests(api_key)
        if record["client_disconnected"]:
            break
        await asyncio.sleep(0.05)
    (record,) = stack.chat_requests(api_key)
    assert record["client_disconnected"], (
        "the relay must drop the upstream stream when the client goes"
    )
    assert not record["completed"]
    assert record["finished_at"] - hung_up < 1.0, "the upstream read must stop promptly"
