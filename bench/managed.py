"""Managed keys against bring-your-own-key, through one relay: what the gateway's money path
costs a call.

A relay of its own is started with ``ONEMIN_API_KEY`` (the operator's key that managed keys
spend: ``bench-key``, so the emulator gives both sides the same 20-word reply) and its store in
the run's work directory (SQLite) or in a database of the run's own (PostgreSQL). A managed key
is issued into that store before the relay starts. Both sides send the same OpenAI request to
that relay, interleaved; only the bearer token differs:

* **BYOK**: ``bench-key`` itself, forwarded upstream; the call costs one ledger row (batched,
  written off the request path);
* **managed**: the ``sk-onemin-…`` key; the call also costs a key lookup by hash and a hold
  (one store transaction) before it goes upstream, and the hold's settlement after.

*Difference* = managed − BYOK. After the relay stops (its ledger drained) the store is read
back: one ledger row per call on each side, and nothing left held on the managed key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench import bodies, stack, stores
from bench.procs import BenchError, Proc
from bench.report import Row
from bench.scenarios import STREAM_KEY, Bench, pick, row

OPERATOR_KEY = STREAM_KEY  # the emulator's reply knob is set for this key
LABELS = ("BYOK", "managed")
SIDE_NAMES = {"direct": "BYOK", "relayed": "managed"}  # Bench.interleave's sides


class ManagedRelay:
    """A relay with a store and a managed key, measured BYOK against managed."""

    def __init__(self, b: Bench, store: str, store_env: Mapping[str, str]) -> None:
        self.b = b
        self.store = store
        self.env = {**store_env, "ONEMIN_API_KEY": OPERATOR_KEY}
        self.secret = stores.issue_managed_key(self.env)
        self.proc: Proc | None = None
        self.port = 0
        self.database = ""  # PostgreSQL: the database whose backends' CPU is counted

    def start(self) -> None:
        name = f"relay-managed-{self.store.lower()}"
        self.proc, self.port = stack.start_relay(
            self.b.fleet,
            name,
            self.b.layout.relay,
            self.b.emulator_port,
            source=self.b.source,
            extra_env=self.env,
        )
        for side in ("direct", "relayed"):
            status = http_status_with(self.port, self.headers(side))
            if status != 200:
                raise BenchError(f"{name}: a {SIDE_NAMES[side]} call answered {status}")

    def stop(self) -> None:
        if self.proc is not None:
            self.b.fleet.stop(self.proc)  # SIGTERM: the relay drains its ledger first
            self.proc = None

    def _db_cpu(self) -> dict[int, float]:
        return asyncio.run(stores.backend_cpu(self.database)) if self.database else {}

    def headers(self, side: str) -> dict[str, str]:
        return bodies.relayed_headers(OPERATOR_KEY if side == "direct" else self.secret)

    def wrk(self, side: str, connections: int, seconds: float) -> dict[str, Any]:
        assert self.proc is not None
        db_before = self._db_cpu()
        result = self.b.relayed_chat_load(
            self.proc, self.port, self.headers(side), connections, seconds
        )
        db_used = stores.cpu_growth(db_before, self._db_cpu())
        result["db_cpu_us"] = db_used / (result["requests"] or 1) * 1e6
        return result


def http_status_with(port: int, headers: Mapping[str, str]) -> int:
    """One relayed chat call with these headers; its HTTP status."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{bodies.RELAYED_CHAT_PATH}",
        data=bodies.relayed_chat(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def sqlite(b: Bench) -> list[Row]:
    return _scenario(b, "SQLite", {"ONEMIN_DATA_DIR": str(b.work / "data-managed-sqlite")})


def postgres(b: Bench) -> list[Row]:
    try:
        with stores.temp_database() as url:
            return _scenario(b, "PostgreSQL", {"ONEMIN_DATABASE_URL": url})
    except stores.NoPostgres as exc:
        name = "managed key vs BYOK (PostgreSQL store)"
        return [Row(name, "not measured", "", None, None, note=str(exc), labels=LABELS)]


def _scenario(b: Bench, store: str, store_env: Mapping[str, str]) -> list[Row]:
    if b.source and not (Path(b.source) / "onemin_relay" / "gateway" / "ledger.py").is_file():
        raise BenchError(
            f"the managed scenarios need a relay with the gateway; {b.source} has none"
        )
    relay = ManagedRelay(b, store, store_env)
    if "ONEMIN_DATABASE_URL" in store_env:
        relay.database = store_env["ONEMIN_DATABASE_URL"].rsplit("/", 1)[1]
    relay.start()
    try:
        for side in ("direct", "relayed"):  # warm up: pools, catalog, tokenizer, store
            relay.wrk(side, 8, 1.5)
        c1 = b.interleave(lambda side: relay.wrk(side, 1, b.duration))
        c64 = b.interleave(lambda side: relay.wrk(side, 64, b.duration))
    finally:
        relay.stop()
    ledger = stores.ledger_summary(relay.env)
    return _rows(store, c1, c64, ledger)


def _rows(
    store: str,
    c1: dict[str, list[dict[str, Any]]],
    c64: dict[str, list[dict[str, Any]]],
    ledger: dict[str, int],
) -> list[Row]:
    def labelled(r: Row) -> Row:
        r.labels = LABELS
        return r

    base = f"managed key vs BYOK ({store} store), non-stream"
    made = {
        side: sum(r["requests"] for runs in (c1, c64) for r in runs[side])
        for side in ("direct", "relayed")
    }
    check = (
        f"ledger afterwards: {ledger['byok_rows']:,} BYOK rows and {ledger['managed_rows']:,} "
        f"managed rows for {made['direct']:,} and {made['relayed']:,} measured calls (plus "
        f"warm-up); still held on the managed key after the relay stopped (should be 0): "
        f"${ledger['reserved'] / 1e9:.4f}"
    )
    errors = [r["errors"] for side in ("direct", "relayed") for r in c1[side] + c64[side]]
    if any(errors):
        check += f"; non-2xx or socket errors per run: {errors}"
    cpu_note = "relay process (its store thread included)"
    if store == "PostgreSQL":
        cpu_note += "; the PostgreSQL backends are unpinned and counted separately"
    rows = [
        row(f"{base}, c=1", "latency p50", "ms", pick(c1, "p50"), note=check),
        row(f"{base}, c=1", "latency p99", "ms", pick(c1, "p99")),
        row(f"{base}, c=1", "throughput", "req/s", pick(c1, "rate")),
        row(f"{base}, c=64", "throughput", "req/s", pick(c64, "rate")),
        row(f"{base}, c=64", "latency p50", "ms", pick(c64, "p50")),
        row(f"{base}, c=64", "latency p99", "ms", pick(c64, "p99")),
        row(f"{base}, c=64", "relay CPU per request", "µs", pick(c64, "cpu_us"), note=cpu_note),
    ]
    if store == "PostgreSQL":
        rows.append(
            row(f"{base}, c=64", "PostgreSQL CPU per request", "µs", pick(c64, "db_cpu_us"))
        )
    return [labelled(r) for r in rows]
