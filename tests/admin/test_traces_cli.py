"""Trace retention: ``onemin-relay traces purge`` deletes traces older than an age (the
ledger stays), and the relay's maintenance loop does the same after ONEMIN_TRACE_RETENTION."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from onemin_relay.gateway import open_store
from onemin_relay.gateway.balances import Balances
from onemin_relay.gateway.storage import LedgerRow, Settlement, Store
from onemin_relay.gateway.trace_store import TraceDetail, TraceFilter
from onemin_relay.settings import Settings
from tests.admin.test_cli import cli

DAY = 86_400.0


def _settlement(request_id: str, at: float) -> Settlement:
    row = LedgerRow(
        at=at,
        request_id=request_id,
        key_id=None,
        project=None,
        mode="byok",
        surface="openai.chat",
        requested_model="gpt-4o",
        upstream_model="gpt-4o",
        status=200,
        outcome="ok",
    )
    return Settlement(row, trace=TraceDetail(conversation_id="c", at=at, total_ms=1.0))


async def _on_store(data_dir: Path, work: object) -> object:
    store = open_store(Settings(data_dir=str(data_dir)))
    await store.open()
    try:
        await store.migrate()
        return await work(store)  # type: ignore[operator]
    finally:
        await store.close()


def _seed(data_dir: Path, now: float) -> None:
    async def seed(store: Store) -> None:
        await store.settle([_settlement("old", now - 10 * DAY), _settlement("new", now - DAY)])

    asyncio.run(_on_store(data_dir, seed))  # type: ignore[arg-type]


def _left(data_dir: Path) -> tuple[list[str], int]:
    async def read(store: Store) -> tuple[list[str], int]:
        traces = [t.request_id for t in await store.traces(TraceFilter())]
        return traces, len(await store.ledger(None, 10))

    return asyncio.run(_on_store(data_dir, read))  # type: ignore[arg-type,return-value]


def test_purge_deletes_traces_older_than_the_age_and_keeps_the_ledger(tmp_path: Path) -> None:
    _seed(tmp_path, time.time())
    out = cli(tmp_path, "traces", "purge", "--older-than", "7d").stdout
    assert "Deleted 1 traces older than 7d" in out
    assert _left(tmp_path) == (["new"], 2)


def test_purge_defaults_to_the_retention_period_and_refuses_a_bad_age(tmp_path: Path) -> None:
    _seed(tmp_path, time.time())
    assert "Deleted 0 traces" in cli(tmp_path, "traces", "purge").stdout, "30 days by default"
    failed = cli(tmp_path, "traces", "purge", "--older-than", "soon", code=2)
    assert "--older-than" in failed.stderr and "Traceback" not in failed.stderr
    assert _left(tmp_path) == (["new", "old"], 2)


def test_maintenance_purges_traces_past_the_retention(tmp_path: Path) -> None:
    now = time.time()
    _seed(tmp_path, now)

    async def tend(store: Store) -> None:
        balances = Balances(store, owner="p", lease=90, sweep_interval=30, trace_retention=2 * DAY)
        await balances.tend(now)

    asyncio.run(_on_store(tmp_path, tend))  # type: ignore[arg-type]
    assert _left(tmp_path) == (["new"], 2)
