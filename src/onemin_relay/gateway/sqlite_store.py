"""The embedded store: one SQLite file in WAL mode.

Every operation is one function run whole on the store's own thread, so a transaction costs a
single hop off the event loop (aiosqlite hops once per statement: a hold would take four).
``BEGIN IMMEDIATE`` takes the write lock up front, so processes sharing the file serialise
their money updates instead of failing half-way; ``busy_timeout`` makes them wait their turn.
Holds that queue up during a transaction share the next one (:mod:`.group_commit`), and the
write-ahead log is checkpointed on a thread of its own (:mod:`.sqlite_checkpoints`); the money
statements themselves are in :mod:`.sqlite_money`.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from onemin_relay.gateway.evidence import EvidenceReads
from onemin_relay.gateway.group_commit import GroupCommit
from onemin_relay.gateway.keys import KeyRecord
from onemin_relay.gateway.sqlite_checkpoints import Checkpointer
from onemin_relay.gateway.sqlite_money import (
    LEDGER_INSERT,
    TRACES,
    marks,
    one_key,
    reserve_one,
    settle_all,
)
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
    ledger_values,
    schema,
    stored_change,
    unsettled_row,
)
from onemin_relay.gateway.trace_store import Query, TraceReads

T = TypeVar("T")

GROUPS = {"key": "COALESCE(key_id, '-')", "model": "upstream_model", "day": "date(at, 'unixepoch')"}


class SqliteStore(TraceReads, EvidenceReads):
    _traces = TRACES

    def __init__(self, path: str) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._db: sqlite3.Connection | None = None
        self._holds = GroupCommit(self._reserve_all)
        self._checkpoints: Checkpointer | None = None

    async def open(self) -> None:
        await self._run(self._connect)
        if self.path != ":memory:":
            self._checkpoints = Checkpointer(self.path)
            self._checkpoints.start()

    async def close(self) -> None:
        def close(db: sqlite3.Connection) -> None:
            db.close()

        if self._checkpoints is not None:
            await self._checkpoints.stop()
            self._checkpoints = None
        if self._db is not None:
            await self._run(close)
            self._db = None
        self._executor.shutdown(wait=True)

    async def migrate(self) -> int:
        return await self._run(_migrate)

    # -- keys ----------------------------------------------------------------------------

    async def add_key(self, record: KeyRecord) -> None:
        def add(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    f"INSERT INTO keys ({KEY_COLUMNS}) VALUES ({marks(15)})", key_values(record)
                )

        await self._run(add)

    async def key(self, key_id: str) -> KeyRecord | None:
        return await self._run(lambda db: one_key(db, "id", key_id))

    async def key_by_hash(self, key_hash: str) -> KeyRecord | None:
        return await self._run(lambda db: one_key(db, "hash", key_hash))

    async def keys(self) -> list[KeyRecord]:
        def read(db: sqlite3.Connection) -> list[KeyRecord]:
            rows = db.execute(f"SELECT {KEY_COLUMNS} FROM keys ORDER BY created_at").fetchall()
            return [key_from_row(row) for row in rows]

        return await self._run(read)

    async def update_key(self, key_id: str, changes: dict[str, object]) -> KeyRecord | None:
        def update(db: sqlite3.Connection) -> KeyRecord | None:
            if changes:
                columns = ", ".join(f"{name} = ?" for name in changes)
                values = [stored_change(name, value) for name, value in changes.items()]
                with db:
                    db.execute(f"UPDATE keys SET {columns} WHERE id = ?", (*values, key_id))
            return one_key(db, "id", key_id)

        return await self._run(update)

    async def top_up(self, key_id: str, amount: int) -> KeyRecord | None:
        def top_up(db: sqlite3.Connection) -> KeyRecord | None:
            with db:
                db.execute("UPDATE keys SET balance = balance + ? WHERE id = ?", (amount, key_id))
            return one_key(db, "id", key_id)

        return await self._run(top_up)

    # -- money ---------------------------------------------------------------------------

    async def reserve(self, hold: Hold) -> tuple[bool, KeyRecord | None]:
        return await self._holds.submit(hold)

    async def _reserve_all(self, holds: list[Hold]) -> list[tuple[bool, KeyRecord | None]]:
        def reserve(db: sqlite3.Connection) -> list[tuple[bool, KeyRecord | None]]:
            db.execute("BEGIN IMMEDIATE")
            try:
                results = [reserve_one(db, hold) for hold in holds]
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return results

        return await self._run(reserve)

    async def renew(self, owner: str, expires_at: float) -> int:
        def renew(db: sqlite3.Connection) -> int:
            with db:
                sql = "UPDATE holds SET expires_at = ? WHERE owner = ?"
                return db.execute(sql, (expires_at, owner)).rowcount

        return await self._run(renew)

    async def settle(self, batch: list[Settlement]) -> None:
        def settle(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                settle_all(db, batch)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

        await self._run(settle)

    def transient(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.OperationalError | OSError)

    async def sweep(self, now: float) -> int:
        def sweep(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                expired = db.execute(
                    "DELETE FROM holds WHERE expires_at < ? RETURNING id, key_id, amount, "
                    "request_id, project, surface, model",
                    (now,),
                ).fetchall()
                for _, key_id, amount, request_id, project, surface, model in expired:
                    db.execute(
                        "UPDATE keys SET reserved = reserved - ? WHERE id = ?", (amount, key_id)
                    )
                    row = unsettled_row(now, request_id, key_id, project, surface, model)
                    db.execute(LEDGER_INSERT, ledger_values(row))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return len(expired)

        return await self._run(sweep)

    # -- reading the ledger --------------------------------------------------------------

    async def usage(
        self, group_by: GroupBy, since: float, key_id: str | None = None
    ) -> list[UsageRow]:
        group = GROUPS[group_by]
        sql = (
            f"SELECT {group}, COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(credits), "
            f"SUM(charged) FROM ledger WHERE at >= ? AND (? IS NULL OR key_id = ?) "
            f"GROUP BY {group} ORDER BY {group}"
        )

        def read(db: sqlite3.Connection) -> list[UsageRow]:
            rows = db.execute(sql, (since, key_id, key_id)).fetchall()
            return [UsageRow(str(r[0]), *(int(v or 0) for v in r[1:])) for r in rows]

        return await self._run(read)

    async def ledger(self, key_id: str | None, limit: int) -> list[LedgerRow]:
        sql = (
            f"SELECT {LEDGER_COLUMNS} FROM ledger WHERE (? IS NULL OR key_id = ?) "
            "ORDER BY id DESC LIMIT ?"
        )

        def read(db: sqlite3.Connection) -> list[LedgerRow]:
            return [ledger_from_row(r) for r in db.execute(sql, (key_id, key_id, limit))]

        return await self._run(read)

    # -- idempotency ---------------------------------------------------------------------

    async def remember(
        self, holder: str, key: str, now: float, stale_before: float | None = None
    ) -> Remembered | None:
        def remember(db: sqlite3.Connection) -> Remembered | None:
            with db:
                if stale_before is not None:
                    db.execute(
                        "DELETE FROM idempotency WHERE holder = ? AND key = ? "
                        "AND state = 'running' AND created_at < ?",
                        (holder, key, stale_before),
                    )
                claimed = db.execute(
                    "INSERT INTO idempotency (holder, key, state, created_at) "
                    "VALUES (?, ?, 'running', ?) ON CONFLICT DO NOTHING",
                    (holder, key, now),
                ).rowcount
            if claimed:
                return None
            row = db.execute(
                "SELECT state, status, content_type, body FROM idempotency "
                "WHERE holder = ? AND key = ?",
                (holder, key),
            ).fetchone()
            return None if row is None else Remembered(row[0], row[1], row[2], row[3])

        return await self._run(remember)

    async def record_outcome(
        self, holder: str, key: str, status: int, content_type: str, body: bytes
    ) -> None:
        def record(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "UPDATE idempotency SET state = 'done', status = ?, content_type = ?, "
                    "body = ? WHERE holder = ? AND key = ?",
                    (status, content_type, body, holder, key),
                )

        await self._run(record)

    async def forget(self, holder: str, key: str) -> None:
        def forget(db: sqlite3.Connection) -> None:
            with db:
                sql = "DELETE FROM idempotency WHERE holder = ? AND key = ?"
                db.execute(sql, (holder, key))

        await self._run(forget)

    async def forget_before(self, when: float) -> int:
        def forget(db: sqlite3.Connection) -> int:
            with db:
                sql = "DELETE FROM idempotency WHERE created_at < ?"
                return db.execute(sql, (when,)).rowcount

        return await self._run(forget)

    # -- traces (reads in TraceReads) ----------------------------------------------------

    async def _rows(self, query: Query) -> list[tuple[object, ...]]:
        sql, params = query
        return await self._run(lambda db: db.execute(sql, params).fetchall())

    async def _changed(self, query: Query) -> int:
        sql, params = query

        def change(db: sqlite3.Connection) -> int:
            with db:
                return db.execute(sql, params).rowcount

        return await self._run(change)

    # -- plumbing ------------------------------------------------------------------------

    def _connect(self, _: sqlite3.Connection | None) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # done off the request path (Checkpointer)
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA foreign_keys=ON")
        self._db = db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None and work.__name__ != "_connect":
            raise RuntimeError("the store is not open")
        return work(db)  # type: ignore[arg-type]


def _migrate(db: sqlite3.Connection) -> int:
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        version = int(row[0] or 0)
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in schema("sqlite", migration):
                db.execute(statement)
            db.execute("INSERT INTO schema_version VALUES (?)", (number,))
            version = number
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return version
