"""The ledger writer against a real store: an outage is waited out, a row the store refuses
is set aside without holding up the others, and drain writes what is queued."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import msgspec
import pytest

from onemin_relay.gateway import ledger
from onemin_relay.gateway.ledger import LedgerFull, LedgerWriter
from onemin_relay.gateway.sqlite_store import SqliteStore
from onemin_relay.gateway.storage import LedgerRow, Settlement


def _row(request_id: str) -> LedgerRow:
    return LedgerRow(
        at=1.0, request_id=request_id, key_id=None, project=None, mode="byok",
        surface="/v1/chat/completions", requested_model="m", upstream_model="m",
        status=200, outcome="ok",
    )  # fmt: skip


class Flaky(SqliteStore):
    """Unreachable for the first ``outage`` writes; refuses any batch holding ``poison``."""

    def __init__(self, path: str, outage: int = 0, poison: str = "") -> None:
        super().__init__(path)
        self.outage, self.poison = outage, poison

    async def settle(self, batch: list[Settlement]) -> None:
        if self.outage:
            self.outage -= 1
            raise sqlite3.OperationalError("database is locked")
        if any(item.row.request_id == self.poison for item in batch):
            raise sqlite3.IntegrityError("refused")
        await super().settle(batch)


async def _written(store: SqliteStore) -> list[str]:
    return sorted(row.request_id for row in await store.ledger(None, 100))


async def test_an_outage_is_waited_out_and_nothing_is_lost(tmp_path: Path) -> None:
    store = Flaky(str(tmp_path / "db"), outage=2)
    await store.open()
    await store.migrate()
    writer = LedgerWriter(store, capacity=10, batch_size=5)
    writer.start()
    for name in "abc":
        writer.take_slot()
        writer.submit(Settlement(_row(name)))
    assert await writer.drain(10)
    assert await _written(store) == ["a", "b", "c"]
    assert (writer.failures, writer.dead, writer.in_use) == (2, 0, 0)
    await store.close()


async def test_a_refused_row_is_set_aside_and_the_rest_are_written(tmp_path: Path) -> None:
    store = Flaky(str(tmp_path / "db"), poison="bad")
    await store.open()
    await store.migrate()
    dead = tmp_path / "dead.jsonl"
    writer = LedgerWriter(store, capacity=10, batch_size=5, dead_letter=str(dead))
    writer.start()
    for name in ("a", "bad", "c"):
        writer.take_slot()
        writer.submit(Settlement(_row(name)))
    assert await writer.drain(10)
    assert await _written(store) == ["a", "c"]
    (line,) = dead.read_bytes().splitlines()
    assert msgspec.json.decode(line, type=Settlement).row.request_id == "bad"
    assert writer.in_use == 0
    await store.close()


async def test_no_slot_left_fails_closed(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "db"))
    writer = LedgerWriter(store, capacity=2, batch_size=5)
    writer.take_slot()
    writer.take_slot()
    with pytest.raises(LedgerFull):
        writer.take_slot()


class Gated(SqliteStore):
    """Records each batch's request ids; a batch waits for ``gate`` before it is written."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.done = asyncio.Event()

    async def settle(self, batch: list[Settlement]) -> None:
        self.batches.append([item.row.request_id for item in batch])
        self.started.set()
        await self.gate.wait()
        await super().settle(batch)
        self.done.set()


async def test_rows_arriving_after_a_write_gather_into_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch gathers (here until it is full: the window is longer than the test), so
    the rows that trickle in after a batch was written share the next transaction."""
    monkeypatch.setattr(ledger, "GATHER_SECONDS", 60.0)
    store = Gated(str(tmp_path / "db"))
    await store.open()
    await store.migrate()
    writer = LedgerWriter(store, capacity=10, batch_size=2)
    writer.start()

    def submit(name: str) -> None:
        writer.take_slot()
        writer.submit(Settlement(_row(name)))

    submit("a")
    submit("b")
    await store.started.wait()  # [a, b] is being written
    submit("c")
    store.gate.set()
    await store.done.wait()  # [a, b] is written; the writer gathers the next batch
    submit("d")
    assert await writer.drain(10)
    assert store.batches == [["a", "b"], ["c", "d"]]
    assert await _written(store) == ["a", "b", "c", "d"]
    await store.close()
