"""The scenarios: each runs direct and relayed measurements interleaved and returns table rows.

A measurement is one load-generator run against one side. Repetitions alternate the order
(direct→relayed, then relayed→direct, …) so drift on the machine hits both sides alike, and
every figure in the table is the median over the repetitions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from bench import bodies, drivers
from bench.procs import BenchError, Fleet, Proc, cpu_seconds, http_status
from bench.report import Row, Target, added_at_most, median, ratio_at_least

SIDES = ("direct", "relayed")
CPU_FIGURE = "server CPU per request (emulator | relay)"
STREAM_KEY = "bench-key"  # reply knob: the 20-word reply, streamed as 20 deltas
HOLD_KEY = "bench-hold"  # same reply, each event delayed so the streams stay open together
VISION_KEY = "bench-vision"
HOLD_DELAY_MS = 250
VISION_MAX_REQUESTS = 400  # the emulator keeps every upload in memory: bound them


@dataclasses.dataclass(frozen=True)
class Layout:
    """Which CPUs each process is pinned to (``taskset -c`` lists)."""

    relay: str
    relay_pair: str  # the 2-worker relay
    emulator: str
    load: str
    pair_has_free_cores: bool  # whether the 2 workers get cores no other process uses


@dataclasses.dataclass
class Bench:
    fleet: Fleet
    layout: Layout
    work: Path
    emulator: Proc
    emulator_port: int
    relay: Proc
    relay_port: int
    reps: int
    duration: float
    source: str | None = None  # another src directory to run the servers from
    profile: bool = False  # --profile: scenarios may also sample their own relays

    def port(self, side: str) -> int:
        return self.emulator_port if side == "direct" else self.relay_port

    def url(self, side: str, streaming: bool = False) -> str:
        if side == "direct":
            path = bodies.DIRECT_STREAM_PATH if streaming else bodies.DIRECT_CHAT_PATH
        else:
            path = bodies.RELAYED_CHAT_PATH
        return f"http://127.0.0.1:{self.port(side)}{path}"

    def relayed_chat_load(
        self, proc: Proc, port: int, headers: dict[str, str], connections: int, seconds: float
    ) -> dict[str, Any]:
        """wrk's non-streamed chat load on a relay of one's own, with its CPU per request
        (``cpu_us``) beside wrk's figures."""
        before = cpu_seconds(proc.family())
        result: dict[str, Any] = dict(
            drivers.wrk(
                f"http://127.0.0.1:{port}{bodies.RELAYED_CHAT_PATH}",
                self.body_file("relayed", False),
                headers,
                connections=connections,
                duration=seconds,
                cpus=self.layout.load,
            )
        )
        used = cpu_seconds(proc.family()) - before
        result["cpu_us"] = used / (result["requests"] or 1) * 1e6
        return result

    def body_file(self, side: str, streaming: bool) -> Path:
        path = self.work / f"{side}-{'stream' if streaming else 'chat'}.json"
        if not path.exists():
            data = (
                bodies.direct_chat() if side == "direct" else bodies.relayed_chat(stream=streaming)
            )
            path.write_bytes(data)
        return path

    def wrk(
        self, side: str, *, streaming: bool, connections: int, seconds: float
    ) -> dict[str, float]:
        headers = (
            bodies.direct_headers(STREAM_KEY)
            if side == "direct"
            else bodies.relayed_headers(STREAM_KEY)
        )
        server = self.emulator if side == "direct" else self.relay
        before = cpu_seconds(server.family())
        result = drivers.wrk(
            self.url(side, streaming),
            self.body_file(side, streaming),
            headers,
            connections=connections,
            duration=seconds,
            cpus=self.layout.load,
        )
        used = cpu_seconds(server.family()) - before
        result["cpu_us"] = used / result["requests"] * 1e6 if result["requests"] else 0.0
        return result

    def load(self, command: str, side: str, *args: str, timeout: float = 120) -> dict[str, Any]:
        argv = ["--port", str(self.port(side)), "--side", side, *args]
        return drivers.load(command, self.layout.load, timeout, *argv)

    def interleave(
        self, measure: Callable[[str], dict[str, Any]]
    ) -> dict[str, list[dict[str, Any]]]:
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for rep in range(self.reps):
            for side in SIDES if rep % 2 == 0 else SIDES[::-1]:
                result = measure(side)
                if not result.get("requests"):
                    raise BenchError(f"a {side} run completed no requests: {result}")
                runs[side].append(result)
        return runs

    def put_faults(self, key: str, knobs: dict[str, object]) -> None:
        url = f"http://127.0.0.1:{self.emulator_port}/_emulator/faults/{key}"
        if http_status("PUT", url, orjson.dumps(knobs)) != 200:
            raise BenchError(f"could not set emulator knobs for {key}")


def pick(runs: dict[str, list[dict[str, Any]]], *path: str) -> tuple[list[float], list[float]]:
    """The figure at ``path`` from every run of each side."""

    def dig(result: dict[str, Any]) -> float:
        value: Any = result
        for key in path:
            value = value[key]
        return float(value)

    return [dig(r) for r in runs["direct"]], [dig(r) for r in runs["relayed"]]


def row(
    scenario: str,
    metric: str,
    unit: str,
    values: tuple[Sequence[float], Sequence[float]],
    target: Target | None = None,
    note: str = "",
) -> Row:
    direct, relayed = values
    return Row(
        scenario, metric, unit, median(direct), median(relayed), target, note, direct, relayed
    )


def _errors_note(runs: dict[str, list[dict[str, Any]]]) -> str:
    direct, relayed = pick(runs, "errors")
    if not any(direct) and not any(relayed):
        return ""
    return f"errors per run: direct {direct}, relayed {relayed}"


# -- scenarios ------------------------------------------------------------------------------


def warm_up(b: Bench) -> None:
    """Fill pools and caches (the relay's model catalog) before anything is measured."""
    b.put_faults(STREAM_KEY, {"reply": bodies.REPLY})
    for side in SIDES:
        b.wrk(side, streaming=False, connections=8, seconds=1.5)
        b.wrk(side, streaming=True, connections=8, seconds=1)
        b.load("vision", side, "--key", VISION_KEY, "--duration", "0.5", "--max-requests", "20")


def non_stream(b: Bench, concurrency: int) -> list[Row]:
    runs = b.interleave(
        lambda side: b.wrk(side, streaming=False, connections=concurrency, seconds=b.duration)
    )
    name = f"chat, non-stream, c={concurrency}"
    note = _errors_note(runs)
    if concurrency == 1:
        return [
            row(name, "latency p50", "ms", pick(runs, "p50"), added_at_most(0.5), note),
            row(name, "latency p99", "ms", pick(runs, "p99"), added_at_most(2.0)),
            row(name, "throughput", "req/s", pick(runs, "rate")),
        ]
    return [
        row(name, "throughput", "req/s", pick(runs, "rate"), ratio_at_least(0.40), note),
        row(name, "latency p50", "ms", pick(runs, "p50")),
        row(name, "latency p99", "ms", pick(runs, "p99")),
        row(name, CPU_FIGURE, "µs", pick(runs, "cpu_us")),
    ]


def stream_c1(b: Bench) -> list[Row]:
    args = ("--key", STREAM_KEY, "--concurrency", "1", "--duration", f"{b.duration:g}")
    runs = b.interleave(lambda side: b.load("streams", side, *args))
    name = "chat, stream (20 deltas), c=1"
    return [
        row(
            name,
            "TTFB p50",
            "ms",
            pick(runs, "ttfb", "p50"),
            added_at_most(0.5),
            _errors_note(runs),
        ),
        row(name, "TTFB p99", "ms", pick(runs, "ttfb", "p99"), added_at_most(2.0)),
        row(name, "whole stream p50", "ms", pick(runs, "total", "p50")),
        row(name, "throughput", "streams/s", pick(runs, "rate")),
    ]


def stream_c64(b: Bench) -> list[Row]:
    name = "chat, stream (20 deltas), c=64"
    by_wrk = b.interleave(
        lambda side: b.wrk(side, streaming=True, connections=64, seconds=b.duration)
    )
    args = ("--key", STREAM_KEY, "--concurrency", "64", "--duration", f"{b.duration:g}")
    by_load = b.interleave(lambda side: b.load("streams", side, *args))
    return [
        row(
            name,
            "throughput (wrk)",
            "streams/s",
            pick(by_wrk, "rate"),
            ratio_at_least(0.40),
            _errors_note(by_wrk),
        ),
        row(name, "whole stream p99 (wrk)", "ms", pick(by_wrk, "p99")),
        row(name, CPU_FIGURE.replace("request", "stream"), "µs", pick(by_wrk, "cpu_us")),
        row(
            name,
            "TTFB p50 (asyncio client)",
            "ms",
            pick(by_load, "ttfb", "p50"),
            note=_errors_note(by_load),
        ),
        row(name, "TTFB p99 (asyncio client)", "ms", pick(by_load, "ttfb", "p99")),
    ]


def vision(b: Bench) -> list[Row]:
    args = ("--key", VISION_KEY, "--duration", f"{b.duration:g}")
    args += ("--max-requests", str(VISION_MAX_REQUESTS // max(1, b.reps)))
    runs = b.interleave(lambda side: b.load("vision", side, *args))
    name = "vision, 200 KB PNG, c=1"
    note = (
        "direct = upload (multipart) + chat, as a 1min.ai client does; "
        "relayed = one OpenAI request with the image as a data: URI"
    )
    errors = _errors_note(runs)
    return [
        row(
            name,
            "latency p50",
            "ms",
            pick(runs, "total", "p50"),
            note=note + ("; " + errors if errors else ""),
        ),
        row(name, "latency p99", "ms", pick(runs, "total", "p99")),
        row(name, "throughput", "req/s", pick(runs, "rate")),
    ]
