"""What a ``one_min/`` call through LiteLLM costs over calling 1min.ai (the emulator) directly.

    .venv/bin/python -m bench.litellm_overhead [--calls 200] [--seconds 60]

One emulator process on loopback, pinned to its own CPU; this process on another. Each
scenario makes the same call one at a time, at most ``--calls`` times and for at most
``--seconds``, after a few warm-up calls, and reports per call the median and p90 wall time
and this process's CPU time (the sync path's background loop thread included):

- ``direct``: a bare aiohttp POST to ``/api/chat-with-ai`` (whole, or the SSE stream read out);
- ``pipeline``: the relay's pipeline as the provider runs it, without LiteLLM (whole, stream);
- ``acompletion`` / ``completion``: ``litellm`` on ``one_min/gpt-4o-mini`` (async, sync).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network at import

import aiohttp
import litellm

import onemin_relay.litellm as one_min
from bench.procs import Fleet
from bench.stack import cpu_list, start_emulator
from onemin_relay.core.types import Caller
from onemin_relay.litellm.convert import chat_request
from onemin_relay.litellm.engine import engine_here

KEY = "bench-litellm-key"
MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark, please."}]
WARM_UP = 5
Call = Callable[[], Awaitable[Any]]


class Figures:
    def __init__(self, name: str, walls: list[float], cpu: float) -> None:
        self.name = name
        self.calls = len(walls)
        self.p50 = statistics.median(walls) * 1000
        self.p90 = statistics.quantiles(walls, n=10)[-1] * 1000 if len(walls) > 1 else self.p50
        self.cpu = cpu / max(1, len(walls)) * 1000

    def row(self) -> str:
        return f"{self.name:<22} {self.calls:>6} {self.p50:>8.2f} {self.p90:>8.2f} {self.cpu:>8.2f}"


async def measure(name: str, call: Call, calls: int, seconds: float) -> Figures:
    for _ in range(WARM_UP):
        await call()
    walls: list[float] = []
    cpu_start, deadline = time.process_time(), time.monotonic() + seconds
    while len(walls) < calls and time.monotonic() < deadline:
        started = time.perf_counter()
        await call()
        walls.append(time.perf_counter() - started)
    return Figures(name, walls, time.process_time() - cpu_start)


def direct_calls(session: aiohttp.ClientSession, base: str) -> tuple[Call, Call]:
    body = {"type": "UNIFY_CHAT_WITH_AI", "model": MODEL, "promptObject": {"prompt": "x"}}
    body["promptObject"]["prompt"] = MESSAGES[0]["content"]
    headers = {"API-KEY": KEY}

    async def whole() -> None:
        async with session.post(f"{base}/api/chat-with-ai", json=body, headers=headers) as r:
            await r.read()

    async def streamed() -> None:
        url = f"{base}/api/chat-with-ai?isStreaming=true"
        async with session.post(url, json=body, headers=headers) as r:
            async for _ in r.content.iter_any():
                pass

    return whole, streamed


def provider_calls(base: str) -> dict[str, Call]:
    model, options = f"one_min/{MODEL}", {"api_key": KEY, "api_base": base}
    request, caller = chat_request(MODEL, MESSAGES, {}), Caller(api_key=KEY)

    async def pipeline() -> None:
        await engine_here(base).pipeline.chat(request, caller)

    async def pipeline_stream() -> None:
        async with engine_here(base).pipeline.stream(request, caller) as opened:
            async for _ in opened.events:
                pass

    async def acompletion() -> None:
        await litellm.acompletion(model=model, messages=MESSAGES, **options)

    async def astream() -> None:
        stream = await litellm.acompletion(model=model, messages=MESSAGES, stream=True, **options)
        async for _ in stream:
            pass

    async def completion() -> None:  # the sync path, as a sync caller uses it
        await asyncio.to_thread(litellm.completion, model=model, messages=MESSAGES, **options)

    async def stream() -> None:
        def read() -> None:
            for _ in litellm.completion(model=model, messages=MESSAGES, stream=True, **options):
                pass

        await asyncio.to_thread(read)

    return {
        "pipeline": pipeline,
        "pipeline stream": pipeline_stream,
        "acompletion": acompletion,
        "acompletion stream": astream,
        "completion (sync)": completion,
        "completion stream": stream,
    }


async def run(base: str, calls: int, seconds: float) -> list[Figures]:
    one_min.register()
    results = []
    async with aiohttp.ClientSession() as session:
        whole, streamed = direct_calls(session, base)
        results.append(await measure("direct", whole, calls, seconds))
        results.append(await measure("direct stream", streamed, calls, seconds))
    for name, call in provider_calls(base).items():
        results.append(await measure(name, call, calls, seconds))
    await one_min.aclose()
    one_min.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per scenario (at most)")
    parser.add_argument("--seconds", type=float, default=60.0, help="time per scenario (at most)")
    args = parser.parse_args()
    cpus = cpu_list()
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="bench-litellm-")))
    try:
        _, port = start_emulator(fleet, str(cpus[-1]))
        if len(cpus) > 1:
            os.sched_setaffinity(0, cpus[:-1])
        results = asyncio.run(run(f"http://127.0.0.1:{port}", args.calls, args.seconds))
    finally:
        fleet.stop_all()
    print(f"litellm {metadata.version('litellm')}, {len(cpus)} CPUs")
    print(f"{'scenario':<22} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'CPU ms':>8}")
    for figures in results:
        print(figures.row())
    base = {f.name: f for f in results}
    for name, against in (("acompletion", "direct"), ("acompletion stream", "direct stream")):
        added = base[name].p50 - base[against].p50
        print(f"{name} adds {added:.2f} ms p50 over {against}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
