"""Money on PostgreSQL: holds taken, settlements charged and expired holds swept, each batch
in one transaction on a connection the store gives.

Every transaction here locks the keys it touches first, in id order, and then their holds,
also in id order (renewals lock holds only): with one lock order everywhere, transactions wait
for each other instead of deadlocking. Each batch is applied in order, as if each item ran
alone, on the balances it locked.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from asyncpg import Connection

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
    unsettled_row,
)
from onemin_relay.gateway.trace_store import TraceQueries


def marks(count: int, start: int = 1) -> str:
    return ", ".join(f"${n}" for n in range(start, start + count))


HOLD_COLUMNS = (
    "id, key_id, amount, owner, created_at, expires_at, request_id, project, surface, model"
)
_LEDGER_INSERT = f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({marks(20)})"
TRACES = TraceQueries("postgres")
_LOCK_KEYS = (
    "SELECT id, balance, reserved FROM keys WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)
_LOCK_KEY_RECORDS = (
    f"SELECT {KEY_COLUMNS} FROM keys WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)
_RESERVE = "UPDATE keys SET reserved = reserved + $1 WHERE id = $2"
_RESERVE_ONE = (
    "WITH taken AS (UPDATE keys SET reserved = reserved + $3 "
    "WHERE id = $2 AND balance - reserved >= $3 RETURNING id) "
    f"INSERT INTO holds ({HOLD_COLUMNS}) "
    "SELECT $1, taken.id, $3, $4, $5, $6, $7, $8, $9, $10 FROM taken RETURNING id"
)
_INSERT_HOLD = f"INSERT INTO holds ({HOLD_COLUMNS}) VALUES ({marks(10)})"
_RELEASE_HOLDS = (
    "DELETE FROM holds WHERE id IN (SELECT id FROM holds WHERE id = ANY($1::text[]) "
    "ORDER BY id FOR UPDATE) RETURNING id, amount"
)
_SWEEP_HOLDS = (
    "DELETE FROM holds WHERE id IN (SELECT id FROM holds WHERE expires_at < $1 "
    "AND key_id = ANY($2::text[]) ORDER BY id FOR UPDATE) "
    "RETURNING key_id, amount, request_id, project, surface, model"
)
RENEW = (
    "UPDATE holds SET expires_at = $1 WHERE id IN "
    "(SELECT id FROM holds WHERE owner = $2 ORDER BY id FOR UPDATE)"
)
_APPLY = (
    "UPDATE keys SET reserved = reserved - $1, balance = balance - $2, spent = spent + $2 "
    "WHERE id = $3"
)


async def reserve_one(db: Connection, hold: Hold) -> tuple[bool, KeyRecord | None]:
    """One hold alone: one conditional statement, one round trip."""
    if await db.fetchval(_RESERVE_ONE, *_hold_values(hold)) is not None:
        return True, None
    return False, await one_key(db, "id", hold.key_id)


async def one_key(db: Connection, column: str, value: str) -> KeyRecord | None:
    row = await db.fetchrow(f"SELECT {KEY_COLUMNS} FROM keys WHERE {column} = $1", value)
    return None if row is None else key_from_row(tuple(row))


async def reserve(db: Connection, holds: list[Hold]) -> list[tuple[bool, KeyRecord | None]]:
    """Take holds in order, each only if its key's balance less what is already held (by
    those before it too) covers it; a refused one gets its key as it stood then."""
    key_ids = sorted({hold.key_id for hold in holds})
    locked = await db.fetch(_LOCK_KEY_RECORDS, key_ids)
    records = {record.id: record for record in (key_from_row(tuple(row)) for row in locked)}
    reserved = {key_id: record.reserved for key_id, record in records.items()}
    results: list[tuple[bool, KeyRecord | None]] = []
    taken: list[Hold] = []
    for hold in holds:
        record = records.get(hold.key_id)
        if record is None:
            results.append((False, None))
        elif record.balance - reserved[hold.key_id] >= hold.amount:
            reserved[hold.key_id] += hold.amount
            taken.append(hold)
            results.append((True, None))
        else:
            seen = msgspec.structs.replace(record, reserved=reserved[hold.key_id])
            results.append((False, seen))
    if taken:
        added = sorted({hold.key_id for hold in taken})
        await db.executemany(
            _RESERVE, [(reserved[key_id] - records[key_id].reserved, key_id) for key_id in added]
        )
        await db.executemany(_INSERT_HOLD, [_hold_values(hold) for hold in taken])
    return results


def _hold_values(hold: Hold) -> tuple[object, ...]:
    return (
        hold.id, hold.key_id, hold.amount, hold.owner, hold.created_at,
        hold.expires_at, hold.request_id, hold.project, hold.surface, hold.model,
    )  # fmt: skip


async def settle(db: Connection, batch: list[Settlement]) -> None:
    """Charge and record a batch in order, as if each settlement ran alone: keys are locked
    up front, their holds deleted in one statement, and the arithmetic done here on the
    locked balances (``charge_for`` on each settlement's view after those before it)."""
    charged_keys = [item for item in batch if item.key_id is not None]
    key_ids = sorted({str(i.key_id) for i in charged_keys})
    locked = await db.fetch(_LOCK_KEYS, key_ids) if key_ids else []
    keys = {row["id"]: [int(row["balance"]), int(row["reserved"])] for row in locked}
    hold_ids = sorted({i.hold_id for i in charged_keys if i.hold_id is not None})
    held: dict[str, int] = {}
    if hold_ids:
        held = {row["id"]: int(row["amount"]) for row in await db.fetch(_RELEASE_HOLDS, hold_ids)}
    deltas: dict[str, list[int]] = {}  # key id -> [released, charged]
    rows: list[tuple[object, ...]] = []
    traces: list[tuple[object, ...]] = []
    for item in batch:
        row = item.row
        state = keys.get(item.key_id) if item.key_id is not None else None
        if item.key_id is not None:
            released = held.pop(item.hold_id, 0) if item.hold_id is not None else 0
            charged = 0
            if state is not None:
                charged = charge_for(row.cost, state[0], state[1] - released)
                state[0] -= charged
                state[1] -= released
                delta = deltas.setdefault(item.key_id, [0, 0])
                delta[0] += released
                delta[1] += charged
            row = msgspec.structs.replace(row, charged=charged)
        rows.append(ledger_values(row))
        if item.trace is not None:
            traces.append(trace_values_of(row, item.trace))
    await _apply(db, ((r, c, key_id) for key_id, (r, c) in deltas.items()))
    await db.executemany(_LEDGER_INSERT, rows)
    if traces:
        await db.executemany(TRACES.insert, traces)


async def _apply(db: Connection, changes: Iterable[tuple[int, int, str]]) -> None:
    """Release ``reserved`` and charge ``charged`` per key, in key order."""
    ordered = sorted(changes, key=lambda change: change[2])
    if ordered:
        await db.executemany(_APPLY, ordered)


async def sweep(db: Connection, now: float) -> int:
    candidates = await db.fetch(
        "SELECT DISTINCT key_id FROM holds WHERE expires_at < $1 ORDER BY key_id", now
    )
    key_ids = [row["key_id"] for row in candidates]
    if not key_ids:
        return 0
    await db.execute(_LOCK_KEYS, key_ids)
    expired = await db.fetch(_SWEEP_HOLDS, now, key_ids)
    released: dict[str, int] = {}
    rows: list[tuple[object, ...]] = []
    for key_id, amount, request_id, project, surface, model in expired:
        released[key_id] = released.get(key_id, 0) + int(amount)
        rows.append(ledger_values(unsettled_row(now, request_id, key_id, project, surface, model)))
    await _apply(db, ((amount, 0, key_id) for key_id, amount in released.items()))
    if rows:
        await db.executemany(_LEDGER_INSERT, rows)
    return len(expired)
