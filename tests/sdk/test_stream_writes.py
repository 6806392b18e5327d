"""How a stream's frames leave the relay: those one upstream read made go out in one write,
none waits for more upstream data, and a client that stops reading is dropped."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from aiohttp import web

from onemin_relay.core.errors import UpstreamError
from onemin_relay.core.held_frames import send_held
from onemin_relay.metrics import METRICS, Metrics
from onemin_relay.surfaces.common import (
    CAPTURE,
    GATEWAY,
    Capture,
    ReportedInStream,
    write_stream,
)
from tests.conftest import Stack


def _frames_app(frames: list[bytes | None], fail: bool = False) -> web.Application:
    """A handler that streams ``frames``, calling ``send_held`` at each ``None`` (what the
    upstream reader does after each read), then ends or fails."""

    async def produce() -> AsyncIterator[bytes]:
        for frame in frames:
            if frame is None:
                await asyncio.create_task(send_held())  # another task: must write nothing
                await send_held()
            else:
                yield frame
        if fail:
            raise UpstreamError("1min.ai closed the connection")

    async def handler(request: web.Request) -> web.StreamResponse:
        return await write_stream(request, produce(), lambda exc: b"error:" + exc.code.encode(), 5)

    app = web.Application()
    app[METRICS] = Metrics()
    app.router.add_get("/", handler)
    return app


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    seen: list[bytes] = []
    original = web.StreamResponse.write

    async def counted(self: web.StreamResponse, data: Any) -> None:
        seen.append(bytes(data))
        await original(self, data)

    monkeypatch.setattr(web.StreamResponse, "write", counted)
    return seen


async def test_the_frames_of_one_read_leave_in_one_write(
    aiohttp_client: Any, writes: list[bytes]
) -> None:
    client = await aiohttp_client(_frames_app([b"a", b"b", None, b"c", None, b"d", b"e"]))
    response = await client.get("/")
    assert await response.read() == b"abcde"
    assert writes == [b"ab", b"c", b"de"]


async def test_frames_before_an_error_leave_with_its_frame(
    aiohttp_client: Any, writes: list[bytes]
) -> None:
    client = await aiohttp_client(_frames_app([b"a", None, b"b"], fail=True))
    response = await client.get("/")
    assert await response.read() == b"ab" + b"error:upstream_error"
    assert writes == [b"a", b"berror:upstream_error"]


async def test_a_failure_the_frames_told_forgets_the_request_before_the_client_reads_it(
    aiohttp_client: Any, writes: list[bytes]
) -> None:
    """A stream whose own frames report its failure (Responses' response.failed, a Gemini
    array's error element): no error frame is added, nothing is kept for a replay, and the
    idempotency key is let go before the failure leaves, so a retry never meets it."""
    seen: list[object] = []

    async def produce() -> AsyncIterator[bytes]:
        yield b"a"
        await send_held()
        yield b"told:failed"
        raise ReportedInStream(UpstreamError("1min.ai closed the connection"))

    async def handler(request: web.Request) -> web.StreamResponse:
        capture = request[CAPTURE] = Capture()

        async def failing() -> None:
            seen.append(("failing after writes", list(writes)))

        async def complete(_: web.StreamResponse) -> None:
            seen.append("complete")

        capture.failing, capture.complete = failing, complete
        return await write_stream(request, produce(), lambda exc: b"error:" + exc.code.encode(), 5)

    app = web.Application()
    app[METRICS] = Metrics()
    app.router.add_get("/", handler)
    client = await aiohttp_client(app)
    response = await client.get("/")
    assert await response.read() == b"atold:failed"
    assert seen == [("failing after writes", [b"a"])]


def test_each_delta_arrives_while_the_upstream_is_still_sending(stack: Stack, api_key: str) -> None:
    stack.set_faults(api_key, chunk_delay_ms=400, reply="one two three four five six")
    client = openai.OpenAI(base_url=f"{stack.relay_url}/v1", api_key=api_key, max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    seen = ""
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += chunk.choices[0].delta.content
            break
    (record,) = stack.chat_requests(api_key)
    assert seen.strip() == "one" and not record["completed"], "a delta waited for the rest"
    stream.close()


def test_a_client_that_stops_reading_is_dropped(stack: Stack, api_key: str) -> None:
    """6 MB of deltas to a client whose receive buffer is 4 KB and which never reads: the
    relay gives up after its write timeout instead of holding the call open."""
    stack.set_faults(api_key, reply=" ".join(["x" * 2000] * 3000))
    with stack.another_relay(write_timeout=1.0) as (url, app):
        address = urlsplit(url)
        body = json.dumps(
            {
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
        ).encode()
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((address.hostname, address.port))
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: relay\r\n"
                + f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n".encode()
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            rows = _wait_for_ledger_row(stack, app)
            received = _read_all(sock)
    assert rows, "the call never ended"
    assert b"[DONE]" not in received
    assert len(received) < 6_000_000


def _wait_for_ledger_row(stack: Stack, app: web.Application) -> list[Any]:
    store = app[GATEWAY].store
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = stack.on_relay(store.ledger(None, 10))
        if rows:
            return rows
        time.sleep(0.1)
    return []


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data
