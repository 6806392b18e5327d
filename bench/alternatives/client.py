"""aiohttp's client against pyreqwest and pyqwest for the relay's upstream calls, on the emulator.

    python -m bench.alternatives.client [--clients aiohttp,pyreqwest,pyqwest]
                                        [--requests 2000] [--streams 500] [--reps 3]

This process (the client under test) runs on the first CPU, the emulator on the others. For
each client, call kind (JSON chat; SSE chat of 20 deltas read through the relay's stream
parser) and concurrency (1, 64) it makes a fixed number of calls and reports the CPU this
process used per call (``time.process_time``, all threads: the Rust clients' Tokio threads
included), calls/s and p50/p99 latency; medians over repetitions run in rotated order.
CPU per call is the robust figure on a shared machine; calls/s and latency move with
whatever else runs. Before the load it checks that each client keeps the relay's rules:
a first-byte timeout and a between-events timeout fire, a cancelled stream gives its
connection up at once, and concurrent calls reuse pooled connections.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable

from bench.alternatives import common
from bench.alternatives.upstreams import NAMES, Upstream, make
from onemin_relay.core.errors import UpstreamTimeout
from onemin_relay.core.types import TextDelta
from onemin_relay.settings import Settings
from onemin_relay.upstream.client import ChatCall

CALL = ChatCall(model="gpt-4o-mini", prompt="Write twenty words about a gateway.")
DELTAS = 20
CONCURRENCY = (1, 64)
DEADLINE = 60.0  # seconds per measured run, whatever its count
CANCELLED_CALLS = 8
VERSIONS = ("aiohttp", "pyreqwest", "pyqwest", "uvloop", "msgspec")


async def chat_once(client: Upstream, key: str = common.FAST_KEY) -> None:
    record = await client.chat(CALL, key)
    if not record.text:
        raise RuntimeError("empty reply")


async def stream_once(client: Upstream, key: str = common.FAST_KEY) -> int:
    deltas = 0
    async with client.stream_chat(CALL, key) as events:
        async for event in events:
            deltas += isinstance(event, TextDelta)
    if deltas != DELTAS:
        raise RuntimeError(f"a stream carried {deltas} deltas, not {DELTAS}")
    return deltas


async def run_load(
    call: Callable[[], Awaitable[object]], count: int, concurrency: int
) -> dict[str, float]:
    """``count`` calls from ``concurrency`` tasks (or until ``DEADLINE``): CPU per call of
    this process, calls/s and latency."""
    latencies: list[float] = []
    remaining = count
    deadline = time.monotonic() + DEADLINE

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            start = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - start)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    done = len(latencies) or 1
    return {
        "cpu_us": cpu / done * 1e6,
        "rate": done / wall,
        "p50": common.percentile(latencies, 0.5) * 1000,
        "p99": common.percentile(latencies, 0.99) * 1000,
    }


# -- rules every candidate must keep --------------------------------------------------


async def check_timeouts(name: str, base: str) -> list[str]:
    """A 0.5 s first-byte timeout against a 3 s delay, and a 0.1 s between-events timeout
    against events 0.2 s apart: both must raise the relay's UpstreamTimeout, on time."""
    settings = Settings(upstream_url=base, first_byte_timeout=0.5, read_timeout=0.1)
    client = make(name, settings)
    results = []
    try:
        for label, call, key in (
            ("first-byte timeout 0.5 s", chat_once, common.SLOW_KEY),
            ("between-events timeout 0.1 s", stream_once, common.DRIP_KEY),
        ):
            start = time.monotonic()
            try:
                await call(client, key)
                outcome = "did NOT fire"
            except UpstreamTimeout:
                outcome = f"fired after {time.monotonic() - start:.2f} s"
            results.append(f"{label}: {outcome}")
    finally:
        await client.aclose()
    return results


async def check_cancel(name: str, base: str, port: int, streaming: bool) -> str:
    """Calls cancelled mid-stream (after their first delta) or while waiting for a slow
    reply must close their upstream connections at once, not when the emulator finishes
    (~4 s for the drip stream, 3 s for the slow reply)."""
    client = make(name, Settings(upstream_url=base))
    reading = asyncio.Semaphore(0)

    async def call() -> None:
        if not streaming:
            await chat_once(client, common.SLOW_KEY)
            return
        async with client.stream_chat(CALL, common.DRIP_KEY) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    reading.release()
                    await asyncio.sleep(3600)

    try:
        tasks = [asyncio.create_task(call()) for _ in range(CANCELLED_CALLS)]
        if streaming:
            async with asyncio.timeout(10):
                for _ in tasks:
                    await reading.acquire()
        else:
            await asyncio.sleep(0.5)
        during = common.connections_to(port)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        left, took = await asyncio.to_thread(common.settle_connections, port, 0, 2.5)
    finally:
        await client.aclose()
    what = "mid-stream" if streaming else "waiting for the reply"
    closed = f"connections {during} → {left} after {took * 1000:.0f} ms"
    return f"{CANCELLED_CALLS} calls cancelled {what}: {closed}"


async def check_pool(name: str, base: str, port: int) -> str:
    client = make(name, Settings(upstream_url=base))
    try:
        await run_load(functools.partial(chat_once, client), 640, 64)
        first = common.connections_to(port)
        await run_load(functools.partial(chat_once, client), 640, 64)
        second = common.connections_to(port)
    finally:
        await client.aclose()
    return f"connections after 640 calls at c=64: {first}, after 640 more: {second}"


async def checks(base: str, port: int, names: list[str]) -> list[list[str]]:
    rows = []
    for name in names:
        found = await check_timeouts(name, base)
        for streaming in (True, False):
            found.append(await check_cancel(name, base, port, streaming))
        found.append(await check_pool(name, base, port))
        rows += [[name, text] for text in found]
    return rows


# -- the load ------------------------------------------------------------------------


async def measure(base: str, args: argparse.Namespace) -> list[list[str]]:
    names = args.clients
    clients = {name: make(name, Settings(upstream_url=base)) for name in names}
    rows: list[list[str]] = []
    try:
        for client in clients.values():  # warm-up: fill the pools, import lazily loaded code
            await run_load(functools.partial(chat_once, client), 500, 64)
            await run_load(functools.partial(stream_once, client), 200, 64)
        gc.collect()
        gc.freeze()  # as the relay does after start-up
        calls: tuple[tuple[str, int, Callable[[Upstream], Awaitable[object]]], ...] = (
            ("JSON chat", args.requests, chat_once),
            ("SSE chat, 20 deltas", args.streams, stream_once),
        )
        for kind, count, once in calls:
            for concurrency in CONCURRENCY:
                runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
                for name in common.rotation(names, args.reps):
                    call = functools.partial(once, clients[name])
                    result = await run_load(call, count, concurrency)
                    runs[name].append(result)
                rows += common.table_rows(kind, concurrency, runs)
    finally:
        for client in clients.values():
            await client.aclose()
    return rows


async def _main(args: argparse.Namespace, port: int) -> tuple[list[list[str]], list[list[str]]]:
    base = f"http://127.0.0.1:{port}"
    found = await checks(base, port, args.clients)
    return found, await measure(base, args)


def main(argv: list[str] | None = None) -> int:
    args = common.client_args(
        argv, "python -m bench.alternatives.client", __doc__, NAMES, (2000, 500)
    )
    common.require(*(name for name in args.clients if name != "aiohttp"))
    import uvloop

    mine, others = common.cpu_layout()
    with common.emulator_fleet(others) as (_fleet, port, background):
        os.sched_setaffinity(0, {int(mine)})
        found, rows = uvloop.run(_main(args, port))
        noise = common.machine_line(background)
    print(f"# Upstream clients\n\n{common.versions(*VERSIONS)}; {noise}\n")
    print(f"Client CPU {mine}, emulator CPU {others}; medians of {args.reps} runs\n")
    header = ["call", "c", "client", "CPU µs/call (every run)", "calls/s", "p50 ms", "p99 ms"]
    print(common.markdown(header, rows) + "\n")
    print(common.markdown(["client", "check"], found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
