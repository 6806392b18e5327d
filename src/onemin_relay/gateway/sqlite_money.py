"""Money on SQLite: holds taken and settlements charged, run on the store's thread inside the
transaction the store opened.

The store's thread shares the CPU with the event loop, and a batch of ledger and trace rows is
milliseconds of work: a request arriving meanwhile waited for the scheduler to hand the CPU
back (at one request at a time, p99 +1 ms). So the writer offers the CPU back every few rows
(``sched_yield``) for as long as that costs it nothing; a yield that keeps it waiting means the
loop is busy (the relay is under load) and the ledger must keep up, so it stops yielding for
the rest of the batch, as it does once a batch has spent ``YIELD_BUDGET`` in yields (the
transaction holds the write lock meanwhile).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from time import perf_counter

import msgspec

from onemin_relay.gateway.keys import KeyRecord
from onemin_relay.gateway.storage import (
    KEY_COLUMNS,
    LEDGER_COLUMNS,
    Hold,
    Settlement,
    charge_for,
    key_from_row,
    ledger_values,
    trace_values_of,
)
from onemin_relay.gateway.trace_store import TraceQueries

YIELD_EVERY = 4  # rows between offers of the CPU (~40 us of work each)
YIELD_GIVE_UP = 0.0005  # a yield that kept the writer this long: the loop is busy, stop offering
YIELD_BUDGET = 0.005  # at most this long yielding per batch (the write lock is held meanwhile)
_sched_yield: Callable[[], None] | None = getattr(os, "sched_yield", None)


def marks(count: int) -> str:
    return ", ".join("?" * count)


LEDGER_INSERT = f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({marks(20)})"
TRACES = TraceQueries("sqlite")


def one_key(db: sqlite3.Connection, column: str, value: str) -> KeyRecord | None:
    row = db.execute(f"SELECT {KEY_COLUMNS} FROM keys WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else key_from_row(row)


def reserve_one(db: sqlite3.Connection, hold: Hold) -> tuple[bool, KeyRecord | None]:
    taken = db.execute(
        "UPDATE keys SET reserved = reserved + ? WHERE id = ? AND balance - reserved >= ?",
        (hold.amount, hold.key_id, hold.amount),
    ).rowcount
    if not taken:
        return False, one_key(db, "id", hold.key_id)
    db.execute(
        f"INSERT INTO holds VALUES ({marks(10)})",
        (hold.id, hold.key_id, hold.amount, hold.owner, hold.created_at,
         hold.expires_at, hold.request_id, hold.project, hold.surface, hold.model),
    )  # fmt: skip
    return True, None


def settle_all(db: sqlite3.Connection, batch: list[Settlement]) -> None:
    """Every settlement of the batch, offering the CPU back every ``YIELD_EVERY`` rows while
    the event loop is idle enough to make that free (module doc)."""
    every = YIELD_EVERY if _sched_yield is not None else 0
    budget = YIELD_BUDGET
    for count, item in enumerate(batch, 1):
        _settle_one(db, item)
        if every and count % every == 0 and _sched_yield is not None:
            started = perf_counter()
            _sched_yield()
            waited = perf_counter() - started
            budget -= waited
            if waited > YIELD_GIVE_UP or budget <= 0:
                every = 0


def _settle_one(db: sqlite3.Connection, item: Settlement) -> None:
    row = item.row
    if item.key_id is not None:
        released = 0
        if item.hold_id is not None:
            found = db.execute("DELETE FROM holds WHERE id = ? RETURNING amount", (item.hold_id,))
            released = sum(r[0] for r in found.fetchall())
        found = db.execute(
            "SELECT balance, reserved FROM keys WHERE id = ?", (item.key_id,)
        ).fetchone()
        balance, reserved = found if found is not None else (0, released)
        charged = charge_for(row.cost, balance, reserved - released)
        db.execute(
            "UPDATE keys SET reserved = reserved - ?, balance = balance - ?, spent = spent + ? "
            "WHERE id = ?",
            (released, charged, charged, item.key_id),
        )
        row = msgspec.structs.replace(row, charged=charged)
    db.execute(LEDGER_INSERT, ledger_values(row))
    if item.trace is not None:
        db.execute(TRACES.insert, trace_values_of(row, item.trace))
