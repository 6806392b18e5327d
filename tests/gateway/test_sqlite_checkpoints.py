"""The SQLite store stays off the request path: its write-ahead log is checkpointed by a thread
of its own, not by a commit on the request path, and a batch of rows offers the CPU back to
the event loop while that costs the writer nothing."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path

import pytest

from onemin_relay.gateway import sqlite_checkpoints, sqlite_money
from onemin_relay.gateway.sqlite_store import SqliteStore
from onemin_relay.gateway.storage import LedgerRow, Settlement


def _rows(count: int) -> list[Settlement]:
    return [
        Settlement(
            LedgerRow(
                at=1.0,
                request_id=f"r{n}",
                key_id=None,
                project=None,
                mode="byok",
                surface="/v1/chat/completions",
                requested_model="m",
                upstream_model="m",
                status=200,
                outcome="ok",
            )
        )
        for n in range(count)
    ]


def _rows_in_database_file_alone(path: Path, copy: Path) -> int:
    """Ledger rows in the database file itself, without its write-ahead log."""
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as db:
        return int(db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0])


async def test_the_log_is_checkpointed_off_the_request_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_checkpoints, "CHECKPOINT_SECONDS", 3600.0)  # by hand below
    path = tmp_path / "gateway.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        await store.migrate()
        assert store._checkpoints is not None
        await store._checkpoints.checkpoint()  # the tables, into the database file
        await store.settle(_rows(60_000))
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 1000 * 4096  # past SQLite's automatic checkpoint
        assert _rows_in_database_file_alone(path, tmp_path / "before.db") == 0
        await store._checkpoints.checkpoint()
        assert _rows_in_database_file_alone(path, tmp_path / "after.db") == 60_000
    finally:
        await store.close()


async def test_the_checkpointer_runs_on_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_checkpoints, "CHECKPOINT_SECONDS", 0.01)
    store = SqliteStore(str(tmp_path / "gateway.db"))
    await store.open()
    try:
        await store.migrate()
        assert store._checkpoints is not None
        for _ in range(500):
            if store._checkpoints.checkpoints >= 2:
                break
            await asyncio.sleep(0.01)
        assert store._checkpoints.checkpoints >= 2
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("yield_seconds", "offers"),
    [(0.0001, 12), (0.002, 1), (0.0004, 12), (0.0009, 1), (0.00049, 11)],
)
async def test_a_batch_offers_the_cpu_back_until_that_keeps_it_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yield_seconds: float, offers: int
) -> None:
    """Every 4 rows while a yield is free (the loop idle); after one that kept the writer
    waiting (the loop busy: the relay under load), or once the batch has yielded for 5 ms in
    all, none for the rest of the batch. Every row is written either way. The clock is the
    test's: each yield takes exactly ``yield_seconds``."""
    clock = [0.0]

    def sched_yield() -> None:
        clock[0] += yield_seconds

    monkeypatch.setattr(sqlite_money, "_sched_yield", sched_yield)
    monkeypatch.setattr(sqlite_money, "perf_counter", lambda: clock[0])
    store = SqliteStore(str(tmp_path / "gateway.db"))
    await store.open()
    try:
        await store.migrate()
        await store.settle(_rows(48))
        assert round(clock[0] / yield_seconds) == offers
        assert len(await store.ledger(None, 100)) == 48
    finally:
        await store.close()
