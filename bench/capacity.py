"""What one relay process carries: 1,000 streams held open at once, and 1 vs 2 workers."""

from __future__ import annotations

from typing import Any

from bench import bodies, drivers, stack
from bench.procs import BenchError, Proc, cpu_seconds
from bench.report import Row, Target, relayed_at_most
from bench.scenarios import HOLD_DELAY_MS, HOLD_KEY, STREAM_KEY, Bench, median

HOLD_STREAMS = 1000
RSS_LIMIT_MIB = 150.0
SCALING_TARGET = 1.8
MODEL_CORES = 16  # the host the scaling model speaks of


def hold_streams(b: Bench, streams: int = HOLD_STREAMS) -> list[Row]:
    """Open ``streams`` slow streams at once; count errors and sample the relay's RSS meanwhile."""
    b.put_faults(HOLD_KEY, {"reply": bodies.REPLY, "chunk_delay_ms": HOLD_DELAY_MS})
    args = ("--key", HOLD_KEY, "--streams", str(streams), "--timeout", "60")
    direct = b.load("hold", "direct", *args, "--rss-pids", str(b.emulator.pid), timeout=90)
    relay_pids = ",".join(map(str, b.relay.workers()))
    relayed = b.load("hold", "relayed", *args, "--rss-pids", relay_pids, timeout=90)
    name = f"{streams:,} concurrent streams"
    growth = relayed["rss_peak_mib"] - relayed["rss_idle_mib"]
    rss_note = (
        f"relay RSS idle {relayed['rss_idle_mib']:.1f} MiB → "
        f"peak {relayed['rss_peak_mib']:.1f} MiB "
        f"with {relayed['open_while_sampled']:,} streams open at once "
        f"(+{growth:.1f} MiB, {growth * 1024 / streams:.0f} KiB per stream); "
        f"the emulator alone peaked at {direct['rss_peak_mib']:.1f} MiB"
    )
    open_note = (
        f"each stream lasts ~{22 * HOLD_DELAY_MS / 1000:g} s (emulator knob chunk_delay_ms="
        f"{HOLD_DELAY_MS}); all {streams:,} were open after {relayed['seconds_to_open_all']:.1f} s "
        f"relayed, {direct['seconds_to_open_all']:.1f} s direct"
    )
    return [
        Row(name, "errors", "", direct["errors"], relayed["errors"], relayed_at_most(0, "errors")),
        Row(
            name,
            "relay RSS, all open",
            "MiB",
            None,
            relayed["rss_peak_mib"],
            relayed_at_most(RSS_LIMIT_MIB, "MiB"),
            rss_note,
        ),
        Row(name, "TTFB p50", "ms", direct["ttfb"]["p50"], relayed["ttfb"]["p50"], note=open_note),
    ]


def scaling(b: Bench) -> tuple[list[Row], str]:
    """Non-stream c=64 against the emulator, a 1-worker relay and a 2-worker relay, interleaved."""
    pair, pair_port = stack.start_relay(
        b.fleet, "relay-2-workers", b.layout.relay_pair, b.emulator_port, 2, b.source
    )
    try:
        targets = {
            "direct": (b.emulator_port, None),
            "1 worker": (b.relay_port, b.relay),
            "2 workers": (pair_port, pair),
        }
        _run_c64(b, pair_port, "relayed", 2.0)  # warm the new workers' pools and catalogs
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        names = list(targets)
        for rep in range(b.reps):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                port, proc = targets[name]
                side = "direct" if proc is None else "relayed"
                runs[name].append(_measured(b, port, side, proc))
    finally:
        b.fleet.stop(pair)
    return _scaling_rows(b, runs), _scaling_table(b, runs)


def _run_c64(b: Bench, port: int, side: str, seconds: float) -> dict[str, float]:
    path = bodies.DIRECT_CHAT_PATH if side == "direct" else bodies.RELAYED_CHAT_PATH
    headers = (
        bodies.direct_headers(STREAM_KEY)
        if side == "direct"
        else bodies.relayed_headers(STREAM_KEY)
    )
    return drivers.wrk(
        f"http://127.0.0.1:{port}{path}",
        b.body_file(side, False),
        headers,
        connections=64,
        duration=seconds,
        cpus=b.layout.load,
    )


def _measured(b: Bench, port: int, side: str, proc: Proc | None) -> dict[str, Any]:
    pids = proc.family() if proc is not None else []
    before = cpu_seconds(pids)
    result: dict[str, Any] = dict(_run_c64(b, port, side, b.duration))
    result["cpu"] = cpu_seconds(pids) - before
    if not result["requests"]:
        raise BenchError(f"scaling: no requests completed against port {port}")
    return result


def _rates(runs: dict[str, list[dict[str, Any]]], name: str) -> list[float]:
    return [r["rate"] for r in runs[name]]


def _scaling_rows(b: Bench, runs: dict[str, list[dict[str, Any]]]) -> list[Row]:
    direct = _rates(runs, "direct")
    one, two = _rates(runs, "1 worker"), _rates(runs, "2 workers")
    one_rate = median(one) or 0.0
    target = Target(
        f"≥ {SCALING_TARGET:g}× 1 worker",
        lambda _d, r: r is not None and r >= SCALING_TARGET * one_rate,
    )
    note = (
        ""
        if b.layout.pair_has_free_cores
        else (
            "not showable on this machine: the 2 workers share its only 2 cores with the "
            "emulator and wrk; see the scaling table for relay CPU per request"
        )
    )
    name = "non-stream c=64, 1 vs 2 workers"
    return [
        Row(name, "throughput, 1 worker", "req/s", median(direct), one_rate, None, "", direct, one),
        Row(
            name,
            "throughput, 2 workers",
            "req/s",
            median(direct),
            median(two),
            target,
            note,
            direct,
            two,
        ),
    ]


def _scaling_table(b: Bench, runs: dict[str, list[dict[str, Any]]]) -> str:
    direct_rate = median(_rates(runs, "direct")) or 1.0
    one_rate = median(_rates(runs, "1 worker")) or 1.0
    cpus = {"direct": "—", "1 worker": b.layout.relay, "2 workers": b.layout.relay_pair}
    lines = [
        "| server | CPUs | req/s (median) | ÷ direct | ÷ 1 worker | relay CPU per request "
        "| relay CPU busy |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    per_request: dict[str, float] = {}
    for name, results in runs.items():
        rate = median(_rates(runs, name)) or 0.0
        cpu = [r["cpu"] / r["requests"] * 1e6 for r in results if r["requests"]]
        busy = [r["cpu"] / b.duration for r in results]
        per_request[name] = median(cpu) or 0.0
        cpu_text = f"{per_request[name]:.0f} µs" if name != "direct" else "—"
        load = f"{median(busy):.0%}" if name != "direct" else "—"
        lines.append(
            f"| {name} | {cpus[name]} | {rate:,.0f} | {rate / direct_rate:.0%} | "
            f"{rate / one_rate:.2f}× | {cpu_text} | {load} |"
        )
    return (
        "\n".join(lines) + "\n\n" + _host_model(per_request["1 worker"], per_request["2 workers"])
    )


def _host_model(one: float, two: float, cores: int = MODEL_CORES) -> str:
    """Throughput of a host with ``cores`` cores, one worker each, by the CPU per request."""
    if not one or not two:
        return ""
    per_core = 1e6 / two
    return (
        f"**Model of a {cores}-core host.** A worker is one process on one core, and what it "
        f"can serve is what its CPU per request allows: 1 s ÷ {two:,.0f} µs = "
        f"{per_core:,.0f} req/s per core with 2 workers ({1e6 / one:,.0f} with 1; the CPU per "
        f"request changed by {two / one - 1:+.0%} from 1 to 2 workers). With {cores} workers on "
        f"{cores} cores, 1min.ai and the clients elsewhere: ≈ {cores * per_core:,.0f} req/s of "
        f"this call, if the CPU per request stays at the 2-worker figure. The workers share "
        f"nothing on this path but the store's ledger writes (one SQLite file: `python -m "
        f"bench.ledger` gives its rows/s; use PostgreSQL beyond it) and the optional Redis."
    )
