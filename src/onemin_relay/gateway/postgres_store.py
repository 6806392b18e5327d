"""The shared store: PostgreSQL through an asyncpg pool.

Many relay processes may share one database, so every money change is either one conditional
statement (a hold) or one transaction that locks the keys it touches first, in id order, and
then their holds, also in id order; renewals lock holds only. With one lock order everywhere
transactions wait for each other instead of deadlocking (a deadlock PostgreSQL still reports
is retried).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import asyncpg
import msgspec
from asyncpg import Connection, Pool

from onemin_relay.gateway.evidence import EvidenceReads
from onemin_relay.gateway.keys import KeyRecord
from onemin_relay.gateway.storage import (
    KEY_COLUMNS,
    LEDGER_COLUMNS,
    MIGRATIONS,
    GroupBy,
    Hold,
    LedgerRow,
    Remembered,
    Settlement,
    UsageRow,
    charge_for,
    key_from_row,
    key_values,
    ledger_from_row,
    ledger_values,
    schema,
    stored_change,
    trace_values_of,
    unsettled_row,
)
from onemin_relay.gateway.trace_store import Query, TraceQueries, TraceReads

# the server unreachable, restarting or out of connections: worth retrying, unlike an error
# about what was sent
TRANSIENT_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)

T = TypeVar("T")

MIGRATION_LOCK = 0x6F6E656D696E  # pg_advisory_xact_lock id: only one process migrates at once
RETRIES = 3  # attempts of a transaction PostgreSQL aborted as a deadlock or serialisation loser


def _marks(count: int, start: int = 1) -> str:
    return ", ".join(f"${n}" for n in range(start, start + count))


GROUPS = {
    "key": "COALESCE(key_id, '-')",
    "model": "upstream_model",
    "day": "to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}
HOLD_COLUMNS = (
    "id, key_id, amount, owner, created_at, expires_at, request_id, project, surface, model"
)
_LEDGER_INSERT = f"INSERT INTO ledger ({LEDGER_COLUMNS}) VALUES ({_marks(20)})"
_TRACES = TraceQueries("postgres")
_RESERVE = (
    "WITH taken AS (UPDATE keys SET reserved = reserved + $3 "
    "WHERE id = $2 AND balance - reserved >= $3 RETURNING id) "
    f"INSERT INTO holds ({HOLD_COLUMNS}) "
    "SELECT $1, taken.id, $3, $4, $5, $6, $7, $8, $9, $10 FROM taken RETURNING id"
)
_LOCK_KEYS = (
    "SELECT id, balance, reserved FROM keys WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)
_RELEASE_HOLDS = (
    "DELETE FROM holds WHERE id IN (SELECT id FROM holds WHERE id = ANY($1::text[]) "
    "ORDER BY id FOR UPDATE) RETURNING id, amount"
)
_SWEEP_HOLDS = (
    "DELETE FROM holds WHERE id IN (SELECT id FROM holds WHERE expires_at < $1 "
    "AND key_id = ANY($2::text[]) ORDER BY id FOR UPDATE) "
    "RETURNING key_id, amount, request_id, project, surface, model"
)
_RENEW = (
    "UPDATE holds SET expires_at = $1 WHERE id IN "
    "(SELECT id FROM holds WHERE owner = $2 ORDER BY id FOR UPDATE)"
)
_APPLY = (
    "UPDATE keys SET reserved = reserved - $1, balance = balance - $2, spent = spent + $2 "
    "WHERE id = $3"
)


class PostgresStore(TraceReads, EvidenceReads):
    _traces = _TRACES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._pool: Pool | None = None

    async def open(self) -> None:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=self.min_size, max_size=self.max_size
            )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def migrate(self) -> int:
        return await self._transaction(_migrate)

    # -- keys ----------------------------------------------------------------------------

    async def add_key(self, record: KeyRecord) -> None:
        sql = f"INSERT INTO keys ({KEY_COLUMNS}) VALUES ({_marks(15)})"
        await self._with(lambda db: db.execute(sql, *key_values(record)))

    async def key(self, key_id: str) -> KeyRecord | None:
        return await self._with(lambda db: _one_key(db, "id", key_id))

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        return await self._with(lambda db: _one_key(db, "hash", key_hash))

    async def keys(self) -> list[KeyRecord]:
        sql = f"SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at"
        rows = await self._with(lambda db: db.fetch(sql))
        return [key_from_row(tuple(row)) for row in rows]

    async def update_key(self, key_id: str, changes: dict[str, object]) -> KeyRecord | None:
        values = [stored_change(name, value) for name, value in changes.items()]
        columns = ", ".join(f"{name} = ${n}" for n, name in enumerate(changes, start=1))
        sql = f"UPDATE keys SET {columns} WHERE id = ${len(values) + 1}"

        async def update(db: Connection) -> KeyRecord | None:
            if values:
                await db.execute(sql, *values, key_id)
            return await _one_key(db, "id", key_id)

        return await self._with(update)

    async def top_up(self, key_id: str, amount: int) -> KeyRecord | None:
        async def top_up(db: Connection) -> KeyRecord | None:
            await db.execute("UPDATE keys SET balance = balance + $1 WHERE id = $2", amount, key_id)
            return await _one_key(db, "id", key_id)

        return await self._with(top_up)

    # -- money ---------------------------------------------------------------------------

    async def reserve(self, hold: Hold) -> tuple[bool, KeyRecord | None]:
        async def reserve(db: Connection) -> tuple[bool, KeyRecord | None]:
            taken = await db.fetchval(
                _RESERVE,
                hold.id, hold.key_id, hold.amount, hold.owner, hold.created_at,
                hold.expires_at, hold.request_id, hold.project, hold.surface, hold.model,
            )  # fmt: skip
            if taken is not None:
                return True, None
            return False, await _one_key(db, "id", hold.key_id)

        return await self._with(reserve)

    async def renew(self, owner: str, expires_at: float) -> int:
        async def renew(db: Connection) -> int:
            return _count(await db.execute(_RENEW, expires_at, owner))

        return await self._transaction(renew)

    async def settle(self, batch: list[Settlement]) -> None:
        if batch:
            await self._transaction(lambda db: _settle(db, batch))

    def transient(self, error: BaseException) -> bool:
        return isinstance(error, TRANSIENT_ERRORS)

    async def sweep(self, now: float) -> int:
        return await self._transaction(lambda db: _sweep(db, now))

    # -- reading the ledger --------------------------------------------------------------

    async def usage(
        self, group_by: GroupBy, since: float, key_id: str | None = None
    ) -> list[UsageRow]:
        group = GROUPS[group_by]
        sql = (
            f"SELECT {group}, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(credits), "
            f"SUM(charged) FROM ledger WHERE at >= $1 AND ($2::text IS NULL OR key_id = $2) "
            f"GROUP BY 1 ORDER BY 1"
        )
        rows = await self._with(lambda db: db.fetch(sql, since, key_id))
        return [UsageRow(str(r[0]), *(int(v or 0) for v in tuple(r)[1:])) for r in rows]

    async def ledger(self, key_id: str | None, limit: int) -> list[LedgerRow]:
        sql = (
            f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE ($1::text IS NULL OR key_id = $1) "
            "ORDER BY id DESC LIMIT $2"
        )
        rows = await self._with(lambda db: db.fetch(sql, key_id, limit))
        return [ledger_from_row(tuple(row)) for row in rows]

    # -- idempotency ---------------------------------------------------------------------

    async def remember(
        self, holder: str, key: str, now: float, stale_before: float | None = None
    ) -> Remembered | None:
        async def remember(db: Connection) -> Remembered | None:
            if stale_before is not None:
                await db.execute(
                    "DELETE FROM idempotency WHERE holder = $1 AND key = $2 "
                    "AND state = 'running' AND created_at < $3",
                    holder, key, stale_before,
                )  # fmt: skip
            claimed = await db.fetchval(
                "INSERT INTO idempotency (holder, key, state, created_at) "
                "VALUES ($1, $2, 'running', $3) ON CONFLICT DO NOTHING RETURNING 1",
                holder, key, now,
            )  # fmt: skip
            if claimed is not None:
                return None
            row = await db.fetchrow(
                "SELECT state, status, content_type, body FROM idempotency "
                "WHERE holder = $1 AND key = $2",
                holder, key,
            )  # fmt: skip
            if row is None:
                return None
            body = None if row[3] is None else bytes(row[3])
            return Remembered(row[0], row[1], row[2], body)

        return await self._transaction(remember)

    async def record_outcome(
        self, holder: str, key: str, status: int, content_type: str, body: bytes
    ) -> None:
        sql = (
            "UPDATE idempotency SET state = 'done', status = $1, content_type = $2, body = $3 "
            "WHERE holder = $4 AND key = $5"
        )
        await self._with(lambda db: db.execute(sql, status, content_type, body, holder, key))

    async def forget(self, holder: str, key: str) -> None:
        sql = "DELETE FROM idempotency WHERE holder = $1 AND key = $2"
        await self._with(lambda db: db.execute(sql, holder, key))

    async def forget_before(self, when: float) -> int:
        sql = "DELETE FROM idempotency WHERE created_at < $1"
        return _count(await self._with(lambda db: db.execute(sql, when)))

    # -- traces (reads in TraceReads) ----------------------------------------------------

    async def _rows(self, query: Query) -> list[tuple[object, ...]]:
        sql, params = query
        return [tuple(row) for row in await self._with(lambda db: db.fetch(sql, *params))]

    async def _changed(self, query: Query) -> int:
        sql, params = query
        return _count(await self._with(lambda db: db.execute(sql, *params)))

    # -- plumbing ------------------------------------------------------------------------

    def _ready(self) -> Pool:
        if self._pool is None:
            raise RuntimeError("the store is not open")
        return self._pool

    async def _with(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``work`` on one pooled connection, each statement committing on its own."""
        async with self._ready().acquire() as db:
            return await work(db)

    async def _transaction(self, work: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, again if PostgreSQL chose it as a deadlock or
        serialisation loser (it was rolled back whole, so running it again is safe)."""
        for attempt in range(1, RETRIES + 1):
            try:
                async with self._ready().acquire() as db, db.transaction():
                    return await work(db)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == RETRIES:
                    raise
                await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")


async def _one_key(db: Connection, column: str, value: str) -> KeyRecord | None:
    row = await db.fetchrow(f"SELECT {KEY_COLUMNS} FROM keys WHERE {column} = $1", value)
    return None if row is None else key_from_row(tuple(row))


def _count(status: str) -> int:
    """The row count of a command tag such as ``UPDATE 3`` or ``DELETE 0``."""
    return int(status.rsplit(" ", 1)[-1])


async def _migrate(db: Connection) -> int:
    await db.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
    await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    version = int(await db.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
    for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in schema("postgres", migration):
            await db.execute(statement)
        await db.execute("INSERT INTO schema_version VALUES ($1)", number)
        version = number
    return version


async def _settle(db: Connection, batch: list[Settlement]) -> None:
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
        await db.executemany(_TRACES.insert, traces)


async def _apply(db: Connection, changes: Iterable[tuple[int, int, str]]) -> None:
    """Release ``reserved`` and charge ``charged`` per key, in key order."""
    ordered = sorted(changes, key=lambda change: change[2])
    if ordered:
        await db.executemany(_APPLY, ordered)


async def _sweep(db: Connection, now: float) -> int:
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
