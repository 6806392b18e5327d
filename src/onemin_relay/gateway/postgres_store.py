"""The shared store: PostgreSQL through an asyncpg pool.

Many relay processes may share one database, so every money change is one transaction that
locks the keys it touches first, in id order, and then their holds (``postgres_money.py``).
A deadlock PostgreSQL still reports is retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from asyncpg import Connection, Pool

from onemin_relay.gateway import postgres_money as money
from onemin_relay.gateway.evidence import EvidenceReads
from onemin_relay.gateway.group_commit import GroupCommit
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
    key_from_row,
    key_values,
    ledger_from_row,
    schema,
    stored_change,
)
from onemin_relay.gateway.trace_store import Query, TraceReads

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
MAX_HOLDS_PER_BATCH = 256


GROUPS = {
    "key": "COALESCE(key_id, '-')",
    "model": "upstream_model",
    "day": "to_char(to_timestamp(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
}


class PostgresStore(TraceReads, EvidenceReads):
    _traces = money.TRACES

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._pool: Pool | None = None
        # holds that queue up while one transaction runs share the next (see GroupCommit):
        # under a burst on one key, one commit and one row lock for many holds, not one each
        self._holds = GroupCommit(self._reserve_all, max_batch=MAX_HOLDS_PER_BATCH)

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
        sql = f"INSERT INTO keys ({KEY_COLUMNS}) VALUES ({money.marks(15)})"
        await self._with(lambda db: db.execute(sql, *key_values(record)))

    async def key(self, key_id: str) -> KeyRecord | None:
        return await self._with(lambda db: money.one_key(db, "id", key_id))

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        return await self._with(lambda db: money.one_key(db, "hash", key_hash))

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
            return await money.one_key(db, "id", key_id)

        return await self._with(update)

    async def top_up(self, key_id: str, amount: int) -> KeyRecord | None:
        async def top_up(db: Connection) -> KeyRecord | None:
            await db.execute("UPDATE keys SET balance = balance + $1 WHERE id = $2", amount, key_id)
            return await money.one_key(db, "id", key_id)

        return await self._with(top_up)

    # -- money ---------------------------------------------------------------------------

    async def reserve(self, hold: Hold) -> tuple[bool, KeyRecord | None]:
        return await self._holds.submit(hold)

    async def _reserve_all(self, holds: list[Hold]) -> list[tuple[bool, KeyRecord | None]]:
        if len(holds) == 1:  # nobody queued behind it: one statement, not a transaction
            return [await self._with(lambda db: money.reserve_one(db, holds[0]))]
        return await self._transaction(lambda db: money.reserve(db, holds))

    async def renew(self, owner: str, expires_at: float) -> int:
        async def renew(db: Connection) -> int:
            return _count(await db.execute(money.RENEW, expires_at, owner))

        return await self._transaction(renew)

    async def settle(self, batch: list[Settlement]) -> None:
        if batch:
            await self._transaction(lambda db: money.settle(db, batch))

    def transient(self, error: BaseException) -> bool:
        return isinstance(error, TRANSIENT_ERRORS)

    async def sweep(self, now: float) -> int:
        return await self._transaction(lambda db: money.sweep(db, now))

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
