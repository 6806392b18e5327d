"""The bare upstream call on each Python HTTP client library, with no relay code around it.

    python -m bench.alternatives.raw_clients [--clients aiohttp,rnet,aiosonic,blacksheep,http1]
                                             [--requests 10000] [--streams 2000] [--reps 3]

``client.py`` compares clients inside the relay's ``OneMinClient``; this asks the narrower
question first: could any other library make the call itself cheaper than aiohttp's ~110 µs
of CPU? Each candidate sends the same POST (1min.ai's chat body and key header) on a pooled
keep-alive connection and reads the whole reply: the JSON body, or the 20-delta SSE body
chunk by chunk as it arrives. ``http1`` is ``bench/http1.py``, the minimal client the load
generator uses (one connection per task, no timeouts, no redirects): the least the call can
cost on asyncio, for reference, not a candidate. The figure is this process's CPU per call
(``time.process_time``, all threads, so a Rust client's runtime threads count), this process
on the first CPU and the emulator on the others, candidates rotated, medians of ``--reps``.
The candidates are not dependencies: ``pip install rnet aiosonic blacksheep``.
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bench import bodies
from bench.alternatives import common
from bench.alternatives.client import run_load
from bench.http1 import Connection, HTTPError, build_request

NAMES = ("aiohttp", "rnet", "aiosonic", "blacksheep", "http1")
POOL = 1024
CONCURRENCY = (1, 64)
CHAT_PATH = "/api/chat-with-ai"
HEADERS = {"API-KEY": common.FAST_KEY, "Content-Type": "application/json"}
BODY = bodies.direct_chat()

Call = Callable[[bool], Awaitable[int]]  # streaming? -> bytes read


async def _aiohttp(base: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import aiohttp
    from yarl import URL

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=POOL), cookie_jar=aiohttp.DummyCookieJar()
    )
    urls = {False: URL(base + CHAT_PATH), True: URL(base + CHAT_PATH + "?isStreaming=true")}
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=5, sock_read=30)

    async def call(streaming: bool) -> int:
        async with session.post(urls[streaming], data=BODY, headers=HEADERS, timeout=timeout) as r:
            if not streaming:
                return len(await r.read())
            return sum([len(piece) async for piece in r.content.iter_any()])

    return call, session.close


async def _rnet(base: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import rnet

    client = rnet.Client(timeout=60, connect_timeout=5, read_timeout=30)
    urls = {False: base + CHAT_PATH, True: base + CHAT_PATH + "?isStreaming=true"}

    async def call(streaming: bool) -> int:
        response = await client.post(urls[streaming], body=BODY, headers=HEADERS)
        if not streaming:
            return len(await response.bytes())
        async with response.stream() as pieces:
            return sum([len(piece) async for piece in pieces])

    async def close() -> None:
        return None

    return call, close


async def _aiosonic(base: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import aiosonic
    from aiosonic.pools import PoolConfig
    from aiosonic.timeout import Timeouts

    pools = {":default": PoolConfig(size=POOL, max_conn_requests=None)}
    client = aiosonic.HTTPClient(aiosonic.TCPConnector(pool_configs=pools))
    timeouts = Timeouts(sock_connect=5, sock_read=30, request_timeout=60)
    urls = {False: base + CHAT_PATH, True: base + CHAT_PATH + "?isStreaming=true"}

    async def call(streaming: bool) -> int:
        response = await client.post(urls[streaming], data=BODY, headers=HEADERS, timeouts=timeouts)
        if not streaming:
            return len(await response.content())
        return sum([len(piece) async for piece in response.read_chunks()])

    return call, client.aclose


async def _blacksheep(base: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from blacksheep import Content
    from blacksheep.client import ClientSession

    session = ClientSession()
    urls = {False: base + CHAT_PATH, True: base + CHAT_PATH + "?isStreaming=true"}
    headers = [(b"API-KEY", common.FAST_KEY.encode())]

    async def call(streaming: bool) -> int:
        content = Content(b"application/json", BODY)
        response = await session.post(urls[streaming], content, headers=headers)
        if not streaming:
            return len(await response.read() or b"")
        return sum([len(piece) async for piece in response.stream()])

    async def close() -> None:
        await session.close()

    return call, close


async def _http1(base: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    host, port = base.removeprefix("http://").split(":")
    raws = {
        streaming: build_request("POST", host, int(port), path, HEADERS, BODY)
        for streaming, path in ((False, CHAT_PATH), (True, CHAT_PATH + "?isStreaming=true"))
    }
    idle: list[Connection] = []

    async def call(streaming: bool) -> int:
        read = 0

        def on_data(piece: bytes) -> None:
            nonlocal read
            read += len(piece)

        conn = idle.pop() if idle else None
        if conn is not None:
            try:  # the server may have closed it while it sat idle (keep-alive timeout)
                await conn.request(raws[streaming], on_data)
                idle.append(conn)
                return read
            except HTTPError:
                conn.close()
        conn = await Connection.open(host, int(port))
        await conn.request(raws[streaming], on_data)
        idle.append(conn)
        return read

    async def close() -> None:
        for conn in idle:
            conn.close()

    return call, close


MAKERS: dict[str, Callable[[str], Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]]] = {
    "aiohttp": _aiohttp,
    "rnet": _rnet,
    "aiosonic": _aiosonic,
    "blacksheep": _blacksheep,
    "http1": _http1,
}


async def _checked(call: Call, streaming: bool) -> None:
    if await call(streaming) < 100:
        raise RuntimeError("a reply came back (nearly) empty")


async def measure(base: str, args: argparse.Namespace) -> list[list[str]]:
    names: list[str] = args.clients
    made = {name: await MAKERS[name](base) for name in names}
    rows: list[list[str]] = []
    try:
        for call, _close in made.values():  # warm-up: fill the pools, load lazy code
            for streaming in (False, True):
                await run_load(functools.partial(_checked, call, streaming), 500, 64)
        gc.collect()
        gc.freeze()
        for kind, count, streaming in (
            ("JSON chat", args.requests, False),
            ("SSE chat, 20 deltas", args.streams, True),
        ):
            for concurrency in CONCURRENCY:
                runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
                for name in common.rotation(names, args.reps):
                    once = functools.partial(_checked, made[name][0], streaming)
                    runs[name].append(await run_load(once, count, concurrency))
                rows += common.table_rows(kind, concurrency, runs)
    finally:
        for _call, close in made.values():
            await close()
    return rows


def main(argv: list[str] | None = None) -> int:
    args = common.client_args(
        argv, "python -m bench.alternatives.raw_clients", __doc__, NAMES, (10_000, 2_000)
    )
    common.require(*(name for name in args.clients if name not in ("aiohttp", "http1")))
    import uvloop

    mine, others = common.cpu_layout()
    with common.emulator_fleet(others) as (_fleet, port, background):
        os.sched_setaffinity(0, {int(mine)})
        rows = uvloop.run(measure(f"http://127.0.0.1:{port}", args))
        noise = common.machine_line(background)
    packages: list[Any] = ["aiohttp", "rnet", "aiosonic", "blacksheep", "uvloop"]
    print(f"# The bare call per client library\n\n{common.versions(*packages)}; {noise}\n")
    print(f"Client CPU {mine}, emulator CPU {others}; medians of {args.reps} runs\n")
    header = ["call", "c", "client", "CPU µs/call (every run)", "calls/s", "p50 ms", "p99 ms"]
    print(common.markdown(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
