"""Streamed response bodies with the network-level fault knobs applied.

Every wait polls the connection, so a client that hangs up is noticed even while the
emulator is stalling or sleeping, and gets recorded as ``client_disconnected``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from itertools import pairwise
from typing import Any

from aiohttp import web

from onemin_relay.emulator.faults import Faults
from onemin_relay.emulator.respond import encode
from onemin_relay.emulator.state import FAULTS, RECORD, RecordedRequest

STALL_SECONDS = 300.0
_POLL_SECONDS = 0.02


class ClientGone(Exception):
    """The client closed its connection while the emulator was still answering."""


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def pause(request: web.Request, seconds: float) -> None:
    """Sleep for ``seconds``, raising ``ClientGone`` as soon as the client hangs up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(remaining, _POLL_SECONDS))
        if _client_gone(request):
            raise ClientGone


def write_pieces(data: bytes, chunk_bytes: int, split_utf8: bool) -> list[bytes]:
    """Cut ``data`` every ``chunk_bytes`` bytes and, with ``split_utf8``, right after the
    lead byte of every multi-byte UTF-8 character."""
    cuts: set[int] = set()
    if chunk_bytes > 0:
        cuts.update(range(chunk_bytes, len(data), chunk_bytes))
    if split_utf8:
        cuts.update(i + 1 for i, byte in enumerate(data) if byte >= 0xC0)
    bounds = [0, *sorted(cuts), len(data)]
    return [data[start:end] for start, end in pairwise(bounds) if end > start]


class StreamWriter:
    """Writes one streamed body, honouring the chunking, delay, stall and reset knobs."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        faults: Faults,
        record: RecordedRequest,
    ) -> None:
        self._request = request
        self._response = response
        self._faults = faults
        self._record = record
        self._sends = 0

    async def send(self, data: bytes) -> None:
        """Write one logical unit (an SSE frame, a text piece), after ``chunk_delay_ms``."""
        if self._sends and self._faults.chunk_delay_ms:
            await pause(self._request, self._faults.chunk_delay_ms / 1000)
        self._sends += 1
        faults = self._faults
        for piece in write_pieces(data, faults.chunk_bytes, faults.split_utf8):
            await self._response.write(piece)
            self._record.writes.append(len(piece))
            await asyncio.sleep(0)  # let each piece leave as its own write

    async def event(self, name: str, data: Any) -> None:
        """Write one SSE frame: compact JSON on a single ``data:`` line."""
        await self.send(b"event: %s\ndata: %s\n\n" % (name.encode(), encode(data)))

    async def stall(self) -> None:
        await pause(self._request, STALL_SECONDS)

    def reset(self) -> None:
        """Abort the TCP connection without finishing the response."""
        transport = self._request.transport
        if transport is not None:
            transport.abort()


StreamBody = Callable[[StreamWriter], Awaitable[bool]]


async def run_stream(
    request: web.Request, content_type: str, body: StreamBody
) -> web.StreamResponse:
    """Send a streamed response written by ``body`` and record how it ended.

    ``body`` returns ``True`` when the response should be finished normally and ``False``
    when it was cut short on purpose (stall, reset).
    """
    record = request[RECORD]
    record.stream = True
    response = web.StreamResponse(
        headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
    )
    try:
        await response.prepare(request)
        if await body(StreamWriter(request, response, request[FAULTS], record)):
            await response.write_eof()
            record.completed = True
    except (ClientGone, ConnectionResetError):
        record.client_disconnected = True
    return response
