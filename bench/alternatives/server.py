"""aiohttp.web against granian (ASGI and RSGI) for the relay's server, loaded with wrk.

    python -m bench.alternatives.server [--servers aiohttp.web,granian-asgi,granian-rsgi,relay]
                                        [--upstreams aiohttp,pyreqwest] [--reps 3] [--duration 3]

Each candidate is a server (``apps.py``: the same minimal handler on each) with an upstream
client; ``relay`` is the real relay (``onemin-relay serve``) for reference. The server under
test runs on the first CPU, the emulator and wrk on the others. For non-streamed and
streamed (20 deltas) chat at 1 and 64 connections it reports the server's CPU per request
(``/proc``, the process and its children), requests/s and wrk's p50/p99; medians over
repetitions run in rotated order. Before the load it checks that a client hanging up stops
the server's upstream call at once (mid-stream, and while waiting for a slow reply).
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

from bench import bodies, drivers, stack
from bench.alternatives import common
from bench.http1 import build_request
from bench.procs import Fleet, Proc, cpu_seconds, wait_ready

REPO = Path(__file__).resolve().parents[2]
SERVERS = ("aiohttp.web", "granian-asgi", "granian-rsgi", "relay")
LOADS = {"json1": (False, 1), "json64": (False, 64), "sse1": (True, 1), "sse64": (True, 64)}
HANGUPS = 8
VERSIONS = ("aiohttp", "granian", "pyreqwest", "uvloop")


def start(fleet: Fleet, candidate: str, cpus: str, emulator_port: int) -> tuple[Proc, int]:
    """``candidate`` is ``server[/variant…]+upstream`` (``relay`` alone: it has its own
    client). Variants: ``unguarded`` (no hang-up watch in the ASGI/RSGI handler),
    ``rust-tasks`` (granian's ``--task-impl rust``), ``unpinned`` (every CPU)."""
    spec, _, upstream = candidate.partition("+")
    server, *variants = spec.split("/")
    unknown = set(variants) - {"unguarded", "rust-tasks", "unpinned"}
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)} in {candidate}")
    if "unpinned" in variants:
        cpus = ",".join(str(c) for c in stack.cpu_list())
    if server == "relay":
        return stack.start_relay(fleet, "relay", cpus, emulator_port)
    port = stack.free_port()
    env = {
        "BENCH_UPSTREAM_URL": f"http://127.0.0.1:{emulator_port}",
        "BENCH_UPSTREAM": upstream,
        "BENCH_HANGUP_GUARD": "0" if "unguarded" in variants else "1",
        "PYTHONPATH": str(REPO),
    }
    if server == "aiohttp.web":
        argv = [sys.executable, "-m", "bench.alternatives.apps", "--port", str(port)]
        marker = "listening on"
    else:
        interface = server.removeprefix("granian-")
        argv = [str(stack.BIN / "granian"), "--interface", interface, "--port", str(port)]
        argv += ["--host", "127.0.0.1", "--workers", "1", "--runtime-threads", "1"]
        argv += ["--loop", "uvloop", "--no-ws", f"bench.alternatives.apps:{interface}"]
        if "rust-tasks" in variants:
            argv += ["--task-impl", "rust"]
        marker = "Listening at"
    proc = fleet.start(candidate.replace("/", "-"), argv, cpus, env)
    wait_ready(proc, f"http://127.0.0.1:{port}/healthz", marker)
    return proc, port


def load(
    proc: Proc, port: int, streaming: bool, connections: int, args: argparse.Namespace, work: Path
) -> dict[str, float]:
    body = work / f"chat-{streaming}.json"
    if not body.exists():
        body.write_bytes(bodies.relayed_chat(stream=streaming))
    before = cpu_seconds(proc.family())
    result = drivers.wrk(
        f"http://127.0.0.1:{port}{bodies.RELAYED_CHAT_PATH}",
        body,
        bodies.relayed_headers(common.FAST_KEY),
        connections=connections,
        duration=args.duration,
        cpus=args.others,
    )
    used = cpu_seconds(proc.family()) - before
    return {
        "cpu_us": used / (result["requests"] or 1) * 1e6,
        "rate": result["rate"],
        "p50": result["p50"],
        "p99": result["p99"],
        "errors": result["errors"],
    }


def check_hangup(proc: Proc, port: int, emulator_port: int, streaming: bool) -> str:
    """``HANGUPS`` clients call, then hang up (mid-stream, or while the upstream is still
    silent); the server's upstream connections must close at once, not when the upstream
    finishes (~4 s for the drip stream, 3 s for the slow reply)."""
    key = common.DRIP_KEY if streaming else common.SLOW_KEY
    raw = build_request(
        "POST",
        "127.0.0.1",
        port,
        bodies.RELAYED_CHAT_PATH,
        {**bodies.relayed_headers(key), "Content-Type": "application/json"},
        bodies.relayed_chat(stream=streaming),
    )
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(HANGUPS)]
    for sock in socks:
        sock.sendall(raw)
    if streaming:
        for sock in socks:
            seen = b""
            while b"data:" not in seen:
                seen += sock.recv(65536) or b"data:"
    else:
        time.sleep(0.5)
    pids = proc.family()
    during = common.connections_to(emulator_port, pids)
    for sock in socks:
        sock.close()
    after, took = common.settle_connections(emulator_port, during - HANGUPS, 2.5, pids)
    what = "mid-stream" if streaming else "before the reply"
    return (
        f"{HANGUPS} clients hung up {what}: upstream connections {during} → {after} "
        f"after {took * 1000:.0f} ms"
    )


def measure(
    args: argparse.Namespace, candidates: list[str]
) -> tuple[list[list[str]], list[list[str]], str]:
    checks: list[list[str]] = []
    rows: list[list[str]] = []
    with common.emulator_fleet(args.others) as (fleet, emulator_port, background):
        servers = {name: start(fleet, name, args.mine, emulator_port) for name in candidates}
        for name, (proc, port) in servers.items():
            for streaming in (True, False):
                checks.append([name, check_hangup(proc, port, emulator_port, streaming)])
            for streaming, connections in ((False, 64), (True, 64)):  # warm-up
                load(proc, port, streaming, connections, args, fleet.log_dir)
        for streaming, connections in (LOADS[name] for name in args.only.split(",")):
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in candidates}
            for name in common.rotation(candidates, args.reps):
                proc, port = servers[name]
                runs[name].append(load(proc, port, streaming, connections, args, fleet.log_dir))
            kind = "SSE, 20 deltas" if streaming else "JSON"
            rows += common.table_rows(kind, connections, runs, "errors")
        noise = common.machine_line(background)
    return checks, rows, noise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.alternatives.server", description=__doc__
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help="servers, each with optional /unguarded, /rust-tasks, /unpinned",
    )
    parser.add_argument("--upstreams", default="aiohttp", help="aiohttp and/or pyreqwest")
    parser.add_argument("--only", default=",".join(LOADS), help="loads: " + ",".join(LOADS))
    parser.add_argument("--reps", type=int, default=3, help="repetitions per measurement")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run")
    args = parser.parse_args(argv)
    common.require("granian", *args.upstreams.split(","))
    args.mine, args.others = common.cpu_layout()
    candidates = []
    for server in args.servers.split(","):
        ups = ["relay"] if server == "relay" else args.upstreams.split(",")
        candidates += [server if up == "relay" else f"{server}+{up}" for up in ups]
    checks, rows, noise = measure(args, candidates)
    print(f"# Server: aiohttp.web vs granian\n\n{common.versions(*VERSIONS)}; {noise}\n")
    print(f"Server CPU {args.mine}, emulator and wrk CPU {args.others}; medians of {args.reps}\n")
    header = ["call", "c", "server+upstream client", "server CPU µs/req (every run)", "req/s"]
    print(common.markdown([*header, "p50 ms", "p99 ms", "errors"], rows) + "\n")
    print(common.markdown(["server", "check"], checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
