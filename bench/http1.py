"""A minimal HTTP/1.1 keep-alive client on asyncio streams, lean enough to be a load generator.

It writes prebuilt request bytes and hands the body to the caller piece by piece as it
arrives (``Content-Length`` or ``chunked``), so a stream's first event can be timed the moment
its bytes land. No redirects, no TLS, no compression: loopback benchmarking only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

READ_LIMIT = 1 << 20

# Called with each body piece as it arrives; returns True to stop watching (body still drained).
OnData = Callable[[bytes], object]


class HTTPError(Exception):
    """The server answered with something this client cannot read, or hung up early."""


def build_request(
    method: str, host: str, port: int, path: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection; requests on it run one after another."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=READ_LIMIT)
        return cls(reader, writer)

    def close(self) -> None:
        self._writer.close()

    async def request(self, raw: bytes, on_data: OnData) -> int:
        """Send ``raw``; feed the body to ``on_data``; return the status once the body ends."""
        self._writer.write(raw)
        status, length, chunked, closes = await self._read_head()
        if chunked:
            await self._read_chunked(on_data)
        elif length is not None:
            on_data(await self._reader.readexactly(length))
        else:
            on_data(await self._reader.read())
            closes = True
        if closes:
            self.close()
        return status

    async def _read_head(self) -> tuple[int, int | None, bool, bool]:
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise HTTPError("connection closed before a response") from exc
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HTTPError(f"bad status line {lines[0]!r}")
        length: int | None = None
        chunked = closes = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                closes = value == "close"
        return int(parts[1]), length, chunked, closes

    async def _read_chunked(self, on_data: OnData) -> None:
        reader = self._reader
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # skip trailers
                    pass
                return
            data = await reader.readexactly(size + 2)
            on_data(data[:-2])
