"""Compare two versions of the relay on the same emulator, interleaved (before/after a change).

    python -m bench.ab --base /path/to/other/src [--candidate /path/to/src] [--reps 5]
                       [--only ns1,ns64,st1,st64] [--managed]

Relay A runs from ``--base`` (e.g. ``git archive HEAD src | tar -x -C /tmp/base``), relay B
from ``--candidate`` (default: this checkout), the emulator from ``--base``. Both relays sit
on the relay CPU and take turns under the same wrk load. For each load it prints the median
requests/s, latency and relay CPU per request of each, so a change is judged on figures
measured side by side rather than across runs.

With ``--managed`` both relays have an operator key and a store of their own, and every call
is made with a managed key (``sk-onemin-…``) issued into that store: a hold before the upstream
call and a settlement after it, as ``make bench``'s ``managed`` scenario measures them.

With ``--limits memory`` or ``--limits redis`` both relays count every request in every limit,
set so high it never refuses, as the ``limits`` scenario does: in the process, or in Redis
(``ONEMIN_BENCH_REDIS_URL``, loopback) under a key prefix of each relay's own, deleted after.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TypeAlias

import orjson

from bench import bodies, drivers, stack, stores
from bench.limits import NEVER_REFUSE, RedisProbe, redis_probe
from bench.managed import OPERATOR_KEY
from bench.procs import BenchError, Fleet, Proc, cpu_seconds, http_status
from bench.run import Background, layout

Relay: TypeAlias = tuple[Proc, int, str]  # the process, its port, the bearer to call it with

LOADS = {  # the names of bench.run's scenarios: (label, streaming, connections)
    "ns64": ("chat c=64", False, 64),
    "st64": ("stream c=64", True, 64),
    "ns1": ("chat c=1", False, 1),
    "st1": ("stream c=1", True, 1),
}


def _measure(
    relay: Relay, body: Path, streaming: bool, conns: int, seconds: float, cpus: str
) -> tuple[float, float, float, float]:
    proc, port, bearer = relay
    before = cpu_seconds([proc.pid])
    result = drivers.wrk(
        f"http://127.0.0.1:{port}{bodies.RELAYED_CHAT_PATH}",
        body,
        bodies.relayed_headers(bearer),
        connections=conns,
        duration=seconds,
        cpus=cpus,
    )
    used = cpu_seconds([proc.pid]) - before
    if not result["requests"]:
        raise BenchError("no requests completed")
    return result["rate"], result["p50"], result["p99"], used / result["requests"] * 1e6


def _start(
    fleet: Fleet,
    name: str,
    cpus: str,
    port: int,
    source: str | None,
    managed: bool,
    limits: dict[str, str],
) -> Relay:
    if not managed:
        started = stack.start_relay(fleet, name, cpus, port, source=source, extra_env=limits)
        return (*started, "bench-key")
    env = {"ONEMIN_DATA_DIR": str(fleet.log_dir / f"data-{name}"), "ONEMIN_API_KEY": OPERATOR_KEY}
    secret = stores.issue_managed_key(env)
    env.update(limits)
    return (*stack.start_relay(fleet, name, cpus, port, source=source, extra_env=env), secret)


def _limits_env(kind: str | None, probe: RedisProbe | None, name: str) -> dict[str, str]:
    if kind is None:
        return {}
    if probe is None:
        return dict(NEVER_REFUSE)
    redis = {"ONEMIN_REDIS_URL": probe.url, "ONEMIN_REDIS_PREFIX": f"{probe.prefix}{name}:"}
    return {**NEVER_REFUSE, **redis}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--base", required=True, help="the src directory of version A")
    parser.add_argument("--candidate", default=None, help="the src directory of version B")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--only", default="", help="comma-separated loads (default: all)")
    parser.add_argument("--runs", action="store_true", help="also print every run")
    parser.add_argument("--managed", action="store_true", help="call with a managed key")
    parser.add_argument(
        "--limits", choices=("memory", "redis"), default=None, help="every limit on, kept here"
    )
    args = parser.parse_args(argv)
    chosen = [name for name in args.only.split(",") if name] or list(LOADS)
    if set(chosen) - set(LOADS):
        print(f"unknown loads {sorted(set(chosen) - set(LOADS))}", file=sys.stderr)
        return 2
    stack.raise_fd_limit()
    cpus = layout()
    work = Path(tempfile.mkdtemp(prefix="onemin-ab-"))
    fleet = Fleet(work)
    background = Background(fleet)
    cleanup = contextlib.ExitStack()  # the Redis keys of the run, when limits live there
    probe = cleanup.enter_context(redis_probe()) if args.limits == "redis" else None
    try:
        _, emulator_port = stack.start_emulator(fleet, cpus.emulator, source=args.base)
        knobs = {"reply": bodies.REPLY}
        url = f"http://127.0.0.1:{emulator_port}/_emulator/faults/bench-key"
        http_status("PUT", url, orjson.dumps(knobs))
        relays = {
            label: _start(
                fleet,
                name,
                cpus.relay,
                emulator_port,
                source,
                args.managed,
                _limits_env(args.limits, probe, name),
            )
            for label, name, source in (
                ("A (base)", "relay-a", args.base),
                ("B (candidate)", "relay-b", args.candidate),
            )
        }
        for streaming in (False, True):
            body = work / f"{streaming}.json"
            body.write_bytes(bodies.relayed_chat(stream=streaming))
        for relay in relays.values():  # warm up
            for streaming in (False, True):
                _measure(relay, work / f"{streaming}.json", streaming, 8, 1, cpus.load)
        for label, streaming, conns in (LOADS[name] for name in chosen):
            runs: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in relays}
            for rep in range(args.reps):
                order = list(relays) if rep % 2 == 0 else list(relays)[::-1]
                for name in order:
                    runs[name].append(
                        _measure(
                            relays[name],
                            work / f"{streaming}.json",
                            streaming,
                            conns,
                            args.duration,
                            cpus.load,
                        )
                    )
            for name, values in runs.items():
                rate, p50, p99, cpu = (statistics.median(v[i] for v in values) for i in range(4))
                print(
                    f"{label:12s} {name:14s} {rate:8,.0f}/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                    f"  relay CPU {cpu:5.0f} µs/req",
                    flush=True,
                )
                if args.runs:
                    for rate, p50, p99, cpu in values:
                        print(
                            f"{'':27s} run {rate:8,.0f}/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
                            f"  relay CPU {cpu:5.0f} µs/req"
                        )
        print(f"other load during the run: {background.summary()}")
    except BenchError as exc:
        print(f"could not measure: {exc}", file=sys.stderr)
        return 1
    finally:
        fleet.stop_all()
        cleanup.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
