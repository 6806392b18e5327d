"""What the gateway's per-call bookkeeping costs in CPU, in-process, without HTTP in the way.

    python -m bench.hotpath [--rows 4000] [--rate 800,3000] [--seconds 3] [--reps 3]
    PYTHONPATH=/path/to/other/src python -m bench.hotpath     # the same for another tree

* ``settle``: ``SqliteStore.settle`` with settlements shaped as the default relay writes them
  per call (a bring-your-own-key ledger row and a metadata trace), in batches of 1, 16 and 64;
* ``writer``: ``LedgerWriter`` on that store under steady submits (``--rate`` per second for
  ``--seconds``): how many transactions it made and the CPU per row;
* ``values``: building the ledger and trace rows' values alone;
* ``keys``: admission's key lookup, through ``KeyCache`` with the cache off (a store read
  each time) and on.

Figures are this process's CPU (``time.process_time``, the store's thread included) per row or
lookup; each is the median of ``--reps``, every run shown. Pin it (``taskset -c N``) and
compare two trees by running both, alternated. Every loop is bounded by its count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from onemin_relay.core.ids import unique_id
from onemin_relay.gateway.keys import KeyRecord, hash_key, issue
from onemin_relay.gateway.ledger import LedgerWriter
from onemin_relay.gateway.sqlite_store import SqliteStore
from onemin_relay.gateway.storage import LedgerRow, Settlement, ledger_values, trace_values_of
from onemin_relay.gateway.trace_store import TraceDetail


def settlement() -> Settlement:
    """One call's settlement as the default relay writes it (BYOK, traces on, no bodies)."""
    request_id = unique_id("req_")
    row = LedgerRow(
        at=time.time(), request_id=request_id, key_id=None, project=None, mode="byok",
        surface="/v1/chat/completions", requested_model="gpt-4o-mini",
        upstream_model="gpt-4o-mini", status=200, outcome="ok", input_tokens=20,
        output_tokens=25, credits=60, cost=0, latency_ms=1.5, ttfb_ms=1.5,
        conversation_id=request_id,
    )  # fmt: skip
    trace = TraceDetail(
        conversation_id=request_id, at=time.time(), total_ms=1.6, parse_ms=0.05,
        policy_ms=0.02, ttfb_ms=1.5,
    )  # fmt: skip
    return Settlement(row, trace=trace)


async def cpu_per(count: int, work: Callable[[], Awaitable[None]]) -> float:
    """µs of CPU per item for ``work`` over ``count`` items."""
    began = time.process_time()
    await work()
    return (time.process_time() - began) / count * 1e6


async def settle(store: SqliteStore, rows: int, size: int) -> float:
    items = [settlement() for _ in range(rows)]

    async def work() -> None:
        for start in range(0, rows, size):
            await store.settle(items[start : start + size])

    return await cpu_per(rows, work)


async def writer(store: SqliteStore, rate: int, seconds: float) -> tuple[float, int]:
    """CPU per row and transactions made, submitting ``rate`` rows a second."""
    items = [settlement() for _ in range(int(rate * seconds))]
    transactions = [0]
    real = store.settle

    async def counted(batch: list[Settlement]) -> None:
        transactions[0] += 1
        await real(batch)

    store.settle = counted  # type: ignore[method-assign]
    ledger = LedgerWriter(store, capacity=len(items), batch_size=500)
    ledger.start()
    step = max(1, rate // 500)  # a submit every ~2 ms

    async def work() -> None:
        began = time.monotonic()
        for done in range(0, len(items), step):
            for item in items[done : done + step]:
                ledger.take_slot()
                ledger.submit(item)
            await asyncio.sleep(max(0.0, began + (done + step) / rate - time.monotonic()))
        await ledger.drain(30)

    cpu = await cpu_per(len(items), work)
    store.settle = real  # type: ignore[method-assign]
    return cpu, transactions[0]


async def values(rows: int) -> float:
    items = [settlement() for _ in range(rows)]

    async def work() -> None:
        for item in items:
            ledger_values(item.row)
            assert item.trace is not None
            trace_values_of(item.row, item.trace)

    return await cpu_per(rows, work)


async def keys(store: SqliteStore, lookups: int, ttl: float) -> float:
    """A lookup through admission's cache; a tree without one reads the store each time."""
    new = issue("managed", "bench", balance=10**9)
    await store.add_key(new.record)
    key_hash = hash_key(new.secret)
    try:
        from onemin_relay.gateway.key_cache import KeyCache
    except ImportError:  # a tree from before the cache
        read = store.key_by_hash
    else:
        cache = KeyCache(ttl)

        async def read(key_hash: str) -> KeyRecord | None:
            return await cache.read(key_hash, store.key_by_hash)

    async def work() -> None:
        for _ in range(lookups):
            await read(key_hash)

    return await cpu_per(lookups, work)


def line(label: str, runs: list[float], extra: str = "") -> None:
    shown = " / ".join(f"{r:.1f}" for r in runs)
    print(f"{label:34} {statistics.median(runs):8.1f} µs  ({shown}){extra}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = SqliteStore(str(Path(directory) / "bench.db"))
        await store.open()
        await store.migrate()
        try:
            for size in (1, 16, 64):
                runs = [await settle(store, args.rows, size) for _ in range(args.reps)]
                line(f"settle, batches of {size}, per row", runs)
            for rate in (int(r) for r in args.rate.split(",")):
                measured = [await writer(store, rate, args.seconds) for _ in range(args.reps)]
                counts = ", ".join(str(n) for _, n in measured)
                extra = f"  transactions: {counts}"
                line(f"writer at {rate}/s, per row", [c for c, _ in measured], extra)
            line("values, per row", [await values(args.rows * 5) for _ in range(args.reps)])
            for ttl in (0.0, 1.0):
                runs = [await keys(store, args.rows, ttl) for _ in range(args.reps)]
                line(f"key lookup, cache {ttl:g} s", runs)
        finally:
            await store.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--rate", default="800,3000")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
