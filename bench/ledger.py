"""How fast the gateway store takes holds and writes settlements, without HTTP in the way.

    python -m bench.ledger [--stores sqlite,postgres] [--reps 3] [--rows 20000]
                           [--holds 5000] [--seconds 20] [--cpu N]

For each store (SQLite: a file in a temp directory; PostgreSQL: a database of the run's own,
see ``bench/stores.py``), opened exactly as the relay opens it (``open_store``, default pool
and pragmas):

* **holds/s** through ``store.reserve`` at concurrency 1 and 64, all on one managed key (one
  hot row: the worst case) and spread over 64 keys;
* **settlements/s** through ``store.settle(batch)`` in batches of 500: BYOK rows (a ledger row
  only) and managed settlements (release the hold, charge the key, ledger row); and BYOK rows
  one per transaction, which is what a relay serving one call at a time writes;
* **end to end** through ``LedgerWriter`` (as the relay configures it: batches of 500):
  ``take_slot`` + ``submit`` N settlements, timed until ``drain`` returns.

Every loop stops at its count or after ``--seconds``, whichever comes first; each figure is
the median of ``--reps`` runs, all runs shown. CPU per operation is this process's (the SQLite
store thread included) and, for PostgreSQL, its backends' (read from ``/proc``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import stores
from bench.procs import BenchError, machine_cpu_seconds

BATCH = 500
HOLD_NANOS = 10_000_000  # $0.01, about what a gpt-4o-mini call holds
COST_NANOS = 60_000
KEYS = 64


@dataclass
class Figure:
    store: str
    operation: str
    concurrency: int
    runs: list[float] = field(default_factory=list)  # operations per second
    counts: list[int] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # this process, per operation
    db_cpu_us: list[float] = field(default_factory=list)  # PostgreSQL backends, per op


class Clock:
    """Wall time, this process's CPU and the database backends' CPU over one measurement."""

    def __init__(self, database: str) -> None:
        self._database = database  # PostgreSQL: whose backends' CPU to count

    async def _db_cpu(self) -> dict[int, float]:
        return await stores.backend_cpu(self._database) if self._database else {}

    @asynccontextmanager
    async def measure(self, figure: Figure, done: list[int]) -> AsyncIterator[None]:
        db_before = await self._db_cpu()
        own, wall = _own_cpu(), time.perf_counter()
        yield
        wall, own = time.perf_counter() - wall, _own_cpu() - own
        db = stores.cpu_growth(db_before, await self._db_cpu())
        count = done[0]
        if not count:
            raise BenchError(f"{figure.store} {figure.operation}: nothing completed")
        figure.runs.append(count / wall)
        figure.counts.append(count)
        figure.cpu_us.append(own / count * 1e6)
        figure.db_cpu_us.append(db / count * 1e6)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StoreBench:
    def __init__(self, name: str, env: dict[str, str], args: argparse.Namespace) -> None:
        from onemin_relay.gateway import open_store
        from onemin_relay.settings import Settings

        self.name = name
        self.args = args
        self.store = open_store(Settings.from_env(env))
        database = env.get("ONEMIN_DATABASE_URL", "").rsplit("/", 1)[-1]
        self.clock = Clock(database)
        self.key_ids: list[str] = []
        self.figures: dict[tuple[str, int], Figure] = {}
        self.owner = f"bench-{secrets.token_hex(4)}"

    def figure(self, operation: str, concurrency: int) -> Figure:
        found = self.figures.setdefault(
            (operation, concurrency), Figure(self.name, operation, concurrency)
        )
        return found

    async def setup(self) -> None:
        from onemin_relay.gateway.keys import issue, usd_to_nanos

        await self.store.open()
        await self.store.migrate()
        for n in range(KEYS):
            new = issue("managed", f"bench-{n}", balance=usd_to_nanos(10_000_000))
            await self.store.add_key(new.record)
            self.key_ids.append(new.record.id)
        # open every pooled connection now, so each measurement sees (and counts) them all
        await asyncio.gather(*(self.store.key(self.key_ids[0]) for _ in range(KEYS)))

    # -- holds ---------------------------------------------------------------------------

    def _hold(self, key_id: str) -> Any:
        from onemin_relay.gateway.storage import Hold

        now = time.time()
        return Hold(
            id="hold_" + secrets.token_hex(8),
            key_id=key_id,
            amount=HOLD_NANOS,
            owner=self.owner,
            created_at=now,
            expires_at=now + 3600,
            request_id=secrets.token_hex(16),
            project="default",
            surface="openai.chat",
            model="gpt-4o-mini",
        )

    async def holds(self, concurrency: int, keys: int, count: int) -> list[tuple[str, str]]:
        """Take ``count`` holds with ``concurrency`` callers over ``keys`` keys; timed."""
        label = "holds (store.reserve), " + ("1 key" if keys == 1 else f"{keys} keys")
        taken: list[tuple[str, str]] = []
        done = [0]
        deadline = time.monotonic() + self.args.seconds

        async def caller(n: int) -> None:
            key_id = self.key_ids[n % keys]
            while done[0] < count and time.monotonic() < deadline:
                done[0] += 1
                hold = self._hold(key_id)
                ok, _ = await self.store.reserve(hold)
                if not ok:
                    raise BenchError(f"{self.name}: a hold was refused")
                taken.append((key_id, hold.id))

        async with self.clock.measure(self.figure(label, concurrency), done):
            await asyncio.gather(*(caller(n) for n in range(concurrency)))
        return taken

    # -- settlements ---------------------------------------------------------------------

    def _settlement(self, held: tuple[str, str] | None) -> Any:
        from onemin_relay.gateway.storage import LedgerRow, Settlement

        key_id, hold_id = held if held else (None, None)
        row = LedgerRow(
            at=time.time(),
            request_id=secrets.token_hex(16),
            key_id=key_id,
            project="default" if key_id else None,
            mode="managed" if key_id else "byok",
            surface="openai.chat",
            requested_model="gpt-4o-mini",
            upstream_model="gpt-4o-mini",
            status=200,
            outcome="ok",
            input_tokens=20,
            output_tokens=25,
            credits=60,
            cost=COST_NANOS if key_id else 0,
            latency_ms=1.5,
        )
        return Settlement(row, key_id=key_id, hold_id=hold_id)

    async def settle(self, label: str, items: list[Any], size: int = BATCH) -> None:
        """``store.settle`` in batches of ``size``, one after another; timed."""
        done = [0]
        deadline = time.monotonic() + self.args.seconds
        async with self.clock.measure(self.figure(label, 1), done):
            for start in range(0, len(items), size):
                if time.monotonic() >= deadline:
                    break
                batch = items[start : start + size]
                await self.store.settle(batch)
                done[0] += len(batch)

    async def writer(self, label: str, items: list[Any]) -> None:
        """``LedgerWriter`` as the relay runs it: every settlement submitted, then drained."""
        from onemin_relay.gateway.ledger import LedgerWriter

        writer = LedgerWriter(self.store, capacity=len(items), batch_size=BATCH)
        writer.start()
        done = [0]
        async with self.clock.measure(self.figure(label, 1), done):
            for item in items:
                writer.take_slot()
                writer.submit(item)
            drained = await writer.drain(self.args.seconds)
            done[0] = writer.written
        if not drained:
            print(f"  {self.name} {label}: {writer.pending:,} still pending at the deadline")

    # -- one repetition ------------------------------------------------------------------

    async def rep(self) -> None:
        a = self.args
        one = await self.holds(1, 1, a.holds)
        hot = await self.holds(64, 1, a.holds * 2)
        spread = await self.holds(64, KEYS, a.holds * 2)
        held = (one + hot + spread)[: a.rows]
        await self.settle("settle(batch of 500), BYOK rows", self._plain(a.rows))
        # what one call alone costs the ledger (a relay at concurrency 1 writes batches of 1)
        await self.settle("settle(batch of 1), BYOK row", self._plain(a.holds), size=1)
        await self.settle(
            "settle(batch of 500), managed (release + charge)",
            [self._settlement(h) for h in held],
        )
        await self.writer("LedgerWriter submit → drain, BYOK rows", self._plain(a.rows))
        more = await self._untimed_holds(a.rows)
        await self.writer(
            "LedgerWriter submit → drain, managed", [self._settlement(h) for h in more]
        )

    def _plain(self, count: int) -> list[Any]:
        return [self._settlement(None) for _ in range(count)]

    async def _untimed_holds(self, count: int) -> list[tuple[str, str]]:
        held: list[tuple[str, str]] = []
        deadline = time.monotonic() + self.args.seconds

        async def caller(n: int) -> None:
            key_id = self.key_ids[n % KEYS]
            while len(held) < count and time.monotonic() < deadline:
                hold = self._hold(key_id)
                ok, _ = await self.store.reserve(hold)
                if ok:
                    held.append((key_id, hold.id))

        await asyncio.gather(*(caller(n) for n in range(KEYS)))
        return held


async def run_store(name: str, env: dict[str, str], args: argparse.Namespace) -> list[Figure]:
    bench = StoreBench(name, env, args)
    await bench.setup()
    try:
        for rep in range(args.reps):
            print(f"[ledger] {name}: repetition {rep + 1} of {args.reps}", file=sys.stderr)
            await bench.rep()
    finally:
        await bench.store.close()
    return list(bench.figures.values())


def _run(coro: Coroutine[Any, Any, list[Figure]]) -> list[Figure]:
    try:
        import uvloop  # the relay's event loop
    except ImportError:
        return asyncio.run(coro)
    result: list[Figure] = uvloop.run(coro)
    return result


def table(figures: list[Figure]) -> str:
    lines = [
        "| store | operation | concurrency | per second (median) | every run | "
        "CPU per op, this process | CPU per op, PostgreSQL |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for f in figures:
        runs = " / ".join(f"{r:,.0f}" for r in f.runs)
        db = f"{statistics.median(f.db_cpu_us):,.0f} µs" if f.store == "PostgreSQL" else "—"
        lines.append(
            f"| {f.store} | {f.operation} | {f.concurrency} | {statistics.median(f.runs):,.0f} | "
            f"{runs} | {statistics.median(f.cpu_us):,.0f} µs | {db} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ledger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000, help="settlements per measurement")
    parser.add_argument("--holds", type=int, default=5_000, help="holds at concurrency 1")
    parser.add_argument("--seconds", type=float, default=20.0, help="deadline per measurement")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one CPU")
    args = parser.parse_args(argv)
    chosen = [s for s in args.stores.split(",") if s]
    if set(chosen) - {"sqlite", "postgres"} or args.reps < 1 or args.rows < BATCH:
        print("bad arguments", file=sys.stderr)
        return 2
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    figures: list[Figure] = []
    started, machine = time.monotonic(), machine_cpu_seconds()["tasks"]
    own = _own_cpu()
    try:
        if "sqlite" in chosen:
            work = Path(tempfile.mkdtemp(prefix="onemin-ledger-"))
            try:
                figures += _run(run_store("SQLite", {"ONEMIN_DATA_DIR": str(work)}, args))
            finally:
                shutil.rmtree(work, ignore_errors=True)
        if "postgres" in chosen:
            with stores.temp_database() as url:
                figures += _run(run_store("PostgreSQL", {"ONEMIN_DATABASE_URL": url}, args))
    except BenchError as exc:
        print(f"could not measure: {exc}", file=sys.stderr)
        return 1
    wall = time.monotonic() - started
    busy = machine_cpu_seconds()["tasks"] - machine - (_own_cpu() - own)
    print(table(figures))
    print(
        f"\n{wall:.0f} s; CPU used by other processes (PostgreSQL included) "
        f"{busy:.0f} of {wall * (os.cpu_count() or 1):.0f} CPU-seconds"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
