"""The 1min.ai client against the emulator: wire format, retries, timeouts, connect failures."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from onemin_relay.core.errors import (
    ModelNotFound,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from onemin_relay.core.types import Finish, TextDelta
from onemin_relay.emulator import Faults
from onemin_relay.emulator.state import STATE
from onemin_relay.settings import Settings
from onemin_relay.upstream import ChatCall, OneMinClient
from onemin_relay.upstream.errors import UpstreamConnectError

KEY = "client-test-key"


def set_faults(server: TestServer, **knobs: Any) -> None:
    server.app[STATE].faults.put(KEY, Faults(**knobs))


def recorded(server: TestServer, path: str) -> list[Any]:
    return [r for r in server.app[STATE].requests if r.path == path]


def client_for(url: str, session: aiohttp.ClientSession, **settings: Any) -> OneMinClient:
    return OneMinClient(session, Settings(upstream_url=url, asset_url=url, **settings))


async def test_chat_sends_the_documented_body(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = client_for(str(emulator.make_url("")), session)
    call = ChatCall(model="gpt-4o", prompt="hi", images=("images/a.png",), web_search=True)
    record = await client.chat(call, KEY)
    assert record.text.startswith("Echo: hi")
    (sent,) = recorded(emulator, "/api/chat-with-ai")
    assert sent.api_key == KEY
    assert sent.body == {
        "type": "UNIFY_CHAT_WITH_AI",
        "model": "gpt-4o",
        "promptObject": {
            "prompt": "hi",
            "settings": {"webSearchSettings": {"webSearch": True, "numOfSite": 3, "maxWord": 1000}},
            "attachments": {"images": ["images/a.png"]},
        },
    }


async def test_stream_yields_deltas_then_finish(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = client_for(str(emulator.make_url("")), session)
    async with client.stream_chat(ChatCall(model="gpt-4o", prompt="one two"), KEY) as events:
        received = [event async for event in events]
    assert "".join(e.text for e in received if isinstance(e, TextDelta)) == "Echo: one two"
    assert isinstance(received[-1], Finish)
    assert received[-1].usage is not None, "usage is read from the result record"


async def test_unknown_model_maps_to_model_not_found(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = client_for(str(emulator.make_url("")), session)
    with pytest.raises(ModelNotFound):
        await client.chat(ChatCall(model="no-such", prompt="x"), KEY)


async def test_upload_names_the_file_with_an_extension(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = client_for(str(emulator.make_url("")), session)
    asset = await client.upload_asset(b"\x89PNG....", "image/png", KEY)
    assert asset.path.startswith("images/") and asset.path.endswith(".png")
    assert asset.uuid
    (sent,) = recorded(emulator, "/api/assets")
    assert sent.body["filename"].endswith(".png")


async def test_unprocessed_503_retried_up_to_the_limit(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    set_faults(emulator, status=503)
    client = client_for(str(emulator.make_url("")), session, upstream_retries=2)
    with pytest.raises(UpstreamUnavailable):
        await client.chat(ChatCall(model="gpt-4o", prompt="x"), KEY)
    assert len(recorded(emulator, "/api/chat-with-ai")) == 3


async def test_retry_budget_stops_a_retry_storm(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    set_faults(emulator, status=503)
    client = client_for(str(emulator.make_url("")), session, upstream_retries=2)
    for _ in range(5):
        with pytest.raises(UpstreamUnavailable):
            await client.chat(ChatCall(model="gpt-4o", prompt="x"), KEY)
    attempts = len(recorded(emulator, "/api/chat-with-ai"))
    assert attempts < 5 * 3, "retries draw on a budget, not 2 per call forever"
    assert attempts >= 5


async def test_long_retry_after_is_not_waited_for(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    set_faults(emulator, status=429, retry_after=60)
    client = client_for(str(emulator.make_url("")), session)
    with pytest.raises(RateLimited) as caught:
        await client.chat(ChatCall(model="gpt-4o", prompt="x"), KEY)
    assert caught.value.retry_after == 60
    assert len(recorded(emulator, "/api/chat-with-ai")) == 1


async def test_slow_reply_times_out(emulator: TestServer, session: aiohttp.ClientSession) -> None:
    set_faults(emulator, latency_ms=500)
    client = client_for(str(emulator.make_url("")), session, first_byte_timeout=0.1)
    with pytest.raises(UpstreamTimeout):
        await client.chat(ChatCall(model="gpt-4o", prompt="x"), KEY)


async def test_refused_connection_is_unavailable_after_retries(
    session: aiohttp.ClientSession,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    client = client_for(f"http://127.0.0.1:{port}", session, upstream_retries=1)
    with pytest.raises(UpstreamConnectError):
        await client.chat(ChatCall(model="gpt-4o", prompt="x"), KEY)


async def test_models_listed_without_a_key(
    emulator: TestServer, session: aiohttp.ClientSession
) -> None:
    client = client_for(str(emulator.make_url("")), session)
    entries = await client.list_models("UNIFY_CHAT_WITH_AI")
    assert any(e.modelId == "gpt-4o" for e in entries)
    (sent,) = recorded(emulator, "/models")
    assert sent.api_key is None


async def test_server_gone_mid_stream_is_an_error(session: aiohttp.ClientSession) -> None:
    async def half(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: content\ndata: {"content":"par"}\n\n')
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_post("/api/chat-with-ai", half)
    async with TestServer(app) as server:
        client = client_for(str(server.make_url("")), session)
        with pytest.raises(UpstreamError):
            async with client.stream_chat(ChatCall(model="m", prompt="x"), KEY) as events:
                async for _ in events:
                    pass
