"""``floor``: the relay against the least a relay on aiohttp's server and client can cost.

The floor is the minimal handler of ``bench/alternatives/apps.py`` on aiohttp.web: read the
OpenAI body, decode it with msgspec, call 1min.ai through the relay's own ``OneMinClient`` (its
pooled session and layered timeouts), answer JSON. It keeps the hang-up rule
(``handler_cancellation``) and nothing else: no keys, limits, ledger, traces, metrics, routing
or error rendering. It runs on the relay CPU and takes turns with the run's relay under the
same wrk loads; the emulator's CPU is read in the same runs.

Read the rows as: relay − floor = everything the relay does beyond relaying a call; floor ÷
emulator = the least any relay built on aiohttp's server and client costs per request here,
whatever it does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from bench import bodies, stack
from bench.procs import BenchError, Proc, wait_ready
from bench.report import Row, median
from bench.scenarios import STREAM_KEY, Bench, row

REPO = Path(__file__).resolve().parents[1]
SCENARIO = "relay vs the aiohttp floor (no gateway logic), non-stream"


def start_floor(b: Bench) -> tuple[Proc, int]:
    port = stack.free_port()
    env = {
        "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{b.emulator_port}",
        "BENCH_UPSTREAM": "aiohttp",
        "BENCH_HANGUP_GUARD": "1",
        # bench/ from this checkout; the relay's client from the run's source tree, if any
        "PYTHONPATH": f"{b.source}:{REPO}" if b.source else str(REPO),
    }
    argv = [sys.executable, "-m", "bench.alternatives.apps", "--port", str(port)]
    proc = b.fleet.start("floor", argv, b.layout.relay, env)
    wait_ready(proc, f"http://127.0.0.1:{port}/healthz", "listening on")
    return proc, port


def floor(b: Bench) -> list[Row]:
    proc, port = start_floor(b)
    servers = ("direct", "floor", "relay")
    targets = {"floor": (proc, port), "relay": (b.relay, b.relay_port)}
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {}
    try:
        _measure(b, proc, port, 8, 1.5)  # warm up the floor's pool
        for connections in (1, 64):
            runs[connections] = {name: [] for name in servers}
            for rep in range(b.reps):
                turn = rep % len(servers)
                for name in servers[turn:] + servers[:turn]:
                    if name == "direct":
                        result = b.wrk(
                            "direct", streaming=False, connections=connections, seconds=b.duration
                        )
                    else:
                        result = _measure(b, *targets[name], connections, b.duration)
                    runs[connections][name].append(result)
    finally:
        b.fleet.stop(proc)
    return _rows(runs)


def _measure(b: Bench, proc: Proc, port: int, connections: int, seconds: float) -> dict[str, Any]:
    """wrk on the floor or the relay, with its CPU per request."""
    headers = bodies.relayed_headers(STREAM_KEY)
    result = b.relayed_chat_load(proc, port, headers, connections, seconds)
    if not result["requests"] or result["errors"]:
        raise BenchError(f"floor: {result['requests']} requests, {result['errors']} errors")
    return result


def _pair(runs: dict[str, list[dict[str, Any]]], field: str) -> tuple[list[float], list[float]]:
    return [r[field] for r in runs["floor"]], [r[field] for r in runs["relay"]]


def _rows(runs: dict[int, dict[str, list[dict[str, Any]]]]) -> list[Row]:
    c1, c64 = runs[1], runs[64]
    rows = [
        row(f"{SCENARIO}, c=1", "latency p50", "ms", _pair(c1, "p50"), note=_c1_note(c1)),
        row(f"{SCENARIO}, c=1", "latency p99", "ms", _pair(c1, "p99")),
        row(f"{SCENARIO}, c=1", "server CPU per request", "µs", _pair(c1, "cpu_us")),
        row(f"{SCENARIO}, c=64", "throughput", "req/s", _pair(c64, "rate")),
        row(
            f"{SCENARIO}, c=64",
            "server CPU per request",
            "µs",
            _pair(c64, "cpu_us"),
            note=_c64_note(c64),
        ),
    ]
    for r in rows:
        r.labels = ("floor", "relay")
    return rows


def _median_of(runs: list[dict[str, Any]], field: str) -> float:
    return median([float(r[field]) for r in runs]) or 0.0


def _c1_note(c1: dict[str, list[dict[str, Any]]]) -> str:
    direct = _median_of(c1["direct"], "p50")
    return (
        f"direct p50 in these runs {direct:.2f} ms: the floor adds "
        f"{_median_of(c1['floor'], 'p50') - direct:+.2f} ms, the relay "
        f"{_median_of(c1['relay'], 'p50') - direct:+.2f} ms"
    )


def _c64_note(c64: dict[str, list[dict[str, Any]]]) -> str:
    emulator = _median_of(c64["direct"], "cpu_us") or 1.0
    floor_cpu, relay_cpu = _median_of(c64["floor"], "cpu_us"), _median_of(c64["relay"], "cpu_us")
    direct_rate = _median_of(c64["direct"], "rate") or 1.0
    floor_share = _median_of(c64["floor"], "rate") / direct_rate
    relay_share = _median_of(c64["relay"], "rate") / direct_rate
    return (
        f"the emulator served direct calls at {emulator:,.0f} µs per request in these runs "
        f"(as in the chat c=64 row): the floor costs {floor_cpu / emulator:.2f}× that and "
        f"serves {floor_share:.0%} of direct throughput, the relay {relay_cpu / emulator:.2f}× "
        f"and {relay_share:.0%}. "
        f"The floor is aiohttp.web with the relay's upstream client and its hang-up rule, and "
        f"nothing of the gateway (bench/floor.py)"
    )
