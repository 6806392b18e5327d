"""Rate limits: what counting every request costs, kept in memory and kept in Redis.

Three relays of their own run side by side on the relay CPU, in front of the run's emulator,
and take turns under the same wrk load (the order rotates each repetition):

* **off**: every limit 0, as every other relay of the harness runs;
* **memory**: every limit on, counted in the process (``MemoryLimitStore``);
* **Redis**: every limit on, counted in Redis (``ONEMIN_REDIS_URL``) under a key prefix of the
  run's own (``onemin-bench-<hex>:``), whose keys are deleted afterwards.

"On" is every limit set so high that it never refuses (``NEVER_REFUSE``), so each request takes
the whole limiter path: the per-IP requests and tokens windows and the per-IP and per-1min.ai
key in-flight caps (a bring-your-own-key call has no gateway key, so the per-key limits do
not apply). Any response of 400 or more fails the run: a limit that refused would make the
figures meaningless. Each "on" relay must also answer with rate-limit headers and report its
limit store on ``/readyz`` before it is measured.

Redis is reached through ``ONEMIN_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``, a
loopback address only). It is not started or pinned by the harness; its CPU (``INFO cpu``) and
the commands it ran (``INFO commandstats``) are read around every run. Both are server-wide:
the "off" column of those rows is what other clients made Redis do meanwhile.
"""

from __future__ import annotations

import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench import bodies, profile, stack
from bench.procs import BenchError, Proc
from bench.report import Row
from bench.scenarios import STREAM_KEY, Bench, row

REDIS_ENV = "ONEMIN_BENCH_REDIS_URL"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
NEVER_REFUSE = {
    "ONEMIN_IP_RPM": "1000000000",
    "ONEMIN_IP_TPM": "1000000000000",
    "ONEMIN_IP_MAX_IN_FLIGHT": "1000000",
    "ONEMIN_KEY_MAX_IN_FLIGHT": "1000000",
    "ONEMIN_UPSTREAM_MAX_IN_FLIGHT": "1000000",
}
# what the limiter has Redis run: its scripts, and ZREM (the release, sent or run by a script)
COUNTED_COMMANDS = ("evalsha", "eval", "zrem")


class NoRedis(BenchError):
    """Redis is not reachable: the Redis figures are skipped."""


class RedisProbe:
    """Readings of the Redis server: CPU seconds and commands run so far, and the run's keys."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        host = urlsplit(url).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise BenchError(f"{REDIS_ENV} must point at a loopback address, not {host!r}")
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        try:
            self.client.ping()
        except (redis.RedisError, OSError) as exc:
            self.client.close()
            raise NoRedis(f"no Redis at {url}: {exc}") from exc

    def reading(self) -> dict[str, float]:
        """CPU seconds Redis has used, and calls and µs so far of the commands counted."""
        cpu = self.client.info("cpu")
        found = {"cpu": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])}
        stats = self.client.info("commandstats")
        for name in COUNTED_COMMANDS:
            entry = stats.get(f"cmdstat_{name}", {})
            found[f"{name}_calls"] = float(entry.get("calls", 0))
            found[f"{name}_usec"] = float(entry.get("usec", 0))
        return found

    def keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=f"{self.prefix}*", count=1000))

    def in_flight_left(self) -> int:
        """Requests still counted in flight under the run's prefix (each once, however many
        in-flight sets hold it)."""
        members: set[bytes] = set()
        for key in self.keys():
            if b":if:" in key:
                members.update(self.client.zrange(key, 0, -1))
        return len(members)

    def delete_keys(self) -> int:
        found = self.keys()
        for start in range(0, len(found), 500):
            self.client.delete(*found[start : start + 500])
        return len(found)

    def close(self) -> None:
        self.client.close()


@contextmanager
def redis_probe() -> Iterator[RedisProbe]:
    """Redis under a key prefix of this run's own; its keys are deleted on the way out."""
    probe = RedisProbe(
        os.environ.get(REDIS_ENV) or DEFAULT_REDIS, f"onemin-bench-{secrets.token_hex(6)}:"
    )
    try:
        yield probe
    finally:
        try:
            probe.delete_keys()
        finally:
            probe.close()


class LimitRelay:
    """One relay of the comparison, and how to measure it."""

    def __init__(self, b: Bench, label: str, env: Mapping[str, str], probe: RedisProbe | None):
        self.b = b
        self.label = label
        self.env = dict(env)
        self.probe = probe
        self.proc: Proc | None = None
        self.port = 0
        self.log: Path | None = None

    def start(self) -> None:
        name = f"relay-limits-{self.label.lower()}"
        self.proc, self.port = stack.start_relay(
            self.b.fleet,
            name,
            self.b.layout.relay,
            self.b.emulator_port,
            source=self.b.source,
            extra_env=self.env,
        )
        self.log = self.proc.log
        status, headers = _call(self.port)
        counted = "x-ratelimit-limit-requests" in headers
        if status != 200 or counted != (self.label != "off"):
            raise BenchError(
                f"{name}: a call answered {status}, rate-limit headers "
                f"{'present' if counted else 'absent'}"
            )
        if self.label != "off":
            store = _limits_store(self.port)
            expected = "redis" if self.label == "Redis" else "memory"
            if store != expected:
                raise BenchError(f"{name}: /readyz says its limits are kept in {store!r}")

    def limiter_warnings(self) -> list[str]:
        """What the limiter logged (a failed settlement leaves a request counted in flight)."""
        text = self.log.read_text(errors="replace") if self.log and self.log.exists() else ""
        return [line for line in text.splitlines() if "rate limits:" in line]

    def stop(self) -> None:
        if self.proc is not None:
            self.b.fleet.stop(self.proc)
            self.proc = None

    def wrk(self, connections: int, seconds: float) -> dict[str, Any]:
        assert self.proc is not None
        redis_before = self.probe.reading() if self.probe else {}
        headers = bodies.relayed_headers(STREAM_KEY)
        result = self.b.relayed_chat_load(self.proc, self.port, headers, connections, seconds)
        count = result["requests"] or 1
        if result["status_errors"]:
            status, _ = _call(self.port)
            raise BenchError(
                f"limits {self.label}: {result['status_errors']:,} of {result['requests']:,} "
                f"responses had a status of 400 or more at c={connections} (a call now "
                f"answers {status}); the limits must never refuse here"
            )
        if self.probe is not None:
            after = self.probe.reading()
            for field, value in after.items():
                result[f"redis_{field}"] = (value - redis_before[field]) / count
            result["redis_cpu_us"] = result.pop("redis_cpu") * 1e6
        return result


def _call(port: int) -> tuple[int, dict[str, str]]:
    """One relayed chat call: its status and its headers (names in lower case)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{bodies.RELAYED_CHAT_PATH}",
        data=bodies.relayed_chat(),
        method="POST",
        headers={"Content-Type": "application/json", **bodies.relayed_headers(STREAM_KEY)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status), {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as exc:
        return int(exc.code), {k.lower(): v for k, v in exc.headers.items()}
    except OSError:
        return 0, {}


def _limits_store(port: int) -> str:
    """Where ``/readyz`` says the relay keeps its limits ('' when it does not say)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            body = orjson.loads(response.read())
    except (OSError, orjson.JSONDecodeError):
        return ""
    found = body.get("states", {}).get("limits", {})
    return str(found.get("store", "")) if isinstance(found, dict) else ""


def limits(b: Bench) -> list[Row]:
    if b.source and not (Path(b.source) / "onemin_relay" / "gateway" / "limits.py").is_file():
        raise BenchError(f"the limits scenario needs a relay with rate limits; {b.source} has none")
    try:
        with redis_probe() as probe:
            return _scenario(b, probe)
    except NoRedis as exc:
        return _scenario(b, None, str(exc))


def _scenario(b: Bench, probe: RedisProbe | None, no_redis: str = "") -> list[Row]:
    relays = [
        LimitRelay(b, "off", {}, probe),
        LimitRelay(b, "memory", NEVER_REFUSE, probe),
    ]
    if probe is not None:
        redis_env = {"ONEMIN_REDIS_URL": probe.url, "ONEMIN_REDIS_PREFIX": probe.prefix}
        relays.append(LimitRelay(b, "Redis", {**NEVER_REFUSE, **redis_env}, probe))
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {}
    try:
        for relay in relays:
            relay.start()
        for relay in relays:  # warm up: pools, catalog, Redis connections and scripts
            relay.wrk(8, 1.5)
        for connections in (1, 64):
            runs[connections] = {relay.label: [] for relay in relays}
            for rep in range(b.reps):
                turn = rep % len(relays)
                for relay in relays[turn:] + relays[:turn]:
                    result = relay.wrk(connections, b.duration)
                    if not result["requests"]:
                        raise BenchError(f"limits {relay.label}: a run completed no requests")
                    runs[connections][relay.label].append(result)
        shares = _profile(b, relays) if b.profile else {}
    finally:
        for relay in relays:
            relay.stop()
    left = deleted = 0
    if probe is not None:
        left = probe.in_flight_left()
        deleted = probe.delete_keys()
        if probe.keys():
            raise BenchError(f"keys under {probe.prefix} are left in Redis after deleting them")
    warned = {relay.label: relay.limiter_warnings() for relay in relays}
    rows = _rows("memory", runs, profiled=shares.get("memory", ""), warnings=warned["memory"])
    if probe is None:
        name = "rate limits in Redis vs off"
        labels = ("off", "Redis")
        rows.append(Row(name, "not measured", "", None, None, note=no_redis, labels=labels))
    else:
        note = _redis_note(runs, left, deleted, probe)
        profiled = shares.get("Redis", "")
        rows += _rows("Redis", runs, note, profiled=profiled, warnings=warned["Redis"])
    return rows


def _pair(
    runs: dict[str, list[dict[str, Any]]], label: str, *field: str
) -> tuple[list[float], list[float]]:
    def values(name: str) -> list[float]:
        found = []
        for result in runs[name]:
            value: Any = result
            for key in field:
                value = value[key]
            found.append(float(value))
        return found

    return values("off"), values(label)


def _made(runs: dict[int, dict[str, list[dict[str, Any]]]], label: str) -> int:
    return sum(int(r["requests"]) for by_label in runs.values() for r in by_label[label])


def _rows(
    label: str,
    runs: dict[int, dict[str, list[dict[str, Any]]]],
    extra_note: str = "",
    profiled: str = "",
    warnings: list[str] | None = None,
) -> list[Row]:
    c1, c64 = runs[1], runs[64]
    base = f"rate limits {'in memory' if label == 'memory' else 'in Redis'} vs off, non-stream"
    check = (
        f"every limit on and never reached: {_made(runs, label):,} measured calls, none "
        f"answered 400 or more (the run fails otherwise), each with rate-limit headers"
    )
    if extra_note:
        check += "; " + extra_note
    if warnings:
        check += f"; the relay logged {len(warnings)} limiter warnings, the last: {warnings[-1]}"
    socket_errors = [int(r["errors"]) for by in (c1, c64) for r in by["off"] + by[label]]
    if any(socket_errors):
        check += f"; socket errors per run (off and {label}): {socket_errors}"
    cpu_note = "relay process; the three relays share the relay CPU and take turns"
    if profiled:
        cpu_note += "; " + profiled
    rows = [
        row(f"{base}, c=1", "latency p50", "ms", _pair(c1, label, "p50"), note=check),
        row(f"{base}, c=1", "latency p99", "ms", _pair(c1, label, "p99")),
        row(f"{base}, c=1", "throughput", "req/s", _pair(c1, label, "rate")),
        row(f"{base}, c=1", "relay CPU per request", "µs", _pair(c1, label, "cpu_us")),
        row(f"{base}, c=64", "throughput", "req/s", _pair(c64, label, "rate")),
        row(f"{base}, c=64", "latency p50", "ms", _pair(c64, label, "p50")),
        row(f"{base}, c=64", "latency p99", "ms", _pair(c64, label, "p99")),
        row(
            f"{base}, c=64",
            "relay CPU per request",
            "µs",
            _pair(c64, label, "cpu_us"),
            note=cpu_note,
        ),
    ]
    if label == "Redis":
        rows.append(
            row(
                f"{base}, c=64",
                "Redis server CPU per request",
                "µs",
                _pair(c64, label, "redis_cpu_us"),
                note=(
                    "INFO cpu of the Redis server (not pinned, not started by the harness); the "
                    "off column is what other clients made Redis do during the off runs"
                ),
            )
        )
    for r in rows:
        r.labels = ("off", label)
    return rows


def _redis_note(
    runs: dict[int, dict[str, list[dict[str, Any]]]], left: int, deleted: int, probe: RedisProbe
) -> str:
    """Commands per request at c=64 and what Redis spent on them, and the cleanup."""
    c64 = runs[64]["Redis"]

    def per_request(field: str) -> float:
        return median(float(r[f"redis_{field}"]) for r in c64)

    scripts = per_request("evalsha_calls") + per_request("eval_calls")
    script_us = per_request("evalsha_usec") + per_request("eval_usec")
    zrem = per_request("zrem_calls")
    return (
        f"Redis commands per request at c=64 (INFO commandstats, median of the runs; the "
        f"commands a script runs count too): {scripts:.2f} scripts (EVALSHA), "
        f"{script_us:.1f} µs inside Redis with what they run; {zrem:.2f} ZREM, "
        f"{per_request('zrem_usec'):.1f} µs; requests still counted in flight after the relay "
        f"stopped: {left} (wrk hangs up on its outstanding requests when a run ends; one that "
        f"hangs up while its admission's reply is on the way stays counted until its lease "
        f"ends); keys under the run's prefix {probe.prefix} deleted: {deleted:,}"
    )


# What --profile looks for in the sampled stacks (py-spy names frames "func (path:line)").
# redis-py sends every command from a task of its own (asyncio.wait_for: the relay's client
# has a socket timeout), whose stack does not start in the limiter: its frames are counted by
# their own paths.
# Only redis-py uses asyncio streams in the relay (aiohttp has its own protocols).
REDIS_PY = (" (redis/", " (asyncio/streams.py")
PROFILE_MARKS = {
    "the limiter, redis-py included": (
        "gateway/limits.py",
        "gateway/limit_store.py",
        "gateway/redis_limits.py",
        *REDIS_PY,
    ),
    "of which redis-py and its socket I/O": REDIS_PY,
    "rate-limit headers": ("surfaces/rate_headers.py",),
}


def _profile(b: Bench, relays: list[LimitRelay]) -> dict[str, str]:
    """``--profile``: py-spy each relay with limits on under wrk c=64; which share of its CPU
    samples fell in the limiter, in redis-py and in the rate-limit headers."""
    py_spy = profile.ensure_py_spy()
    found = {}
    for relay in relays:
        if relay.label == "off" or relay.proc is None:
            continue
        out = b.work / f"profile-limits-{relay.label.lower()}-c64.txt"
        profile.record_under_load(py_spy, relay.proc.pid, out, lambda s, r=relay: r.wrk(64, s))
        shares = profile.inclusive_share(out, PROFILE_MARKS)
        parts = [f"{name} {share:.0%}" for name, share in shares.items() if share >= 0.005]
        found[relay.label] = (
            f"py-spy at c=64 ({profile.SECONDS} s, --profile), share of the relay's CPU "
            f"samples in: {', '.join(parts) or 'none of the limiter code'}; raw stacks: `{out}`"
        )
    return found
