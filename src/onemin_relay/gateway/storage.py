"""The gateway store: one schema, one interface, two engines.

``SqliteStore`` (embedded, WAL, the default) and ``PostgresStore`` (``ONEMIN_DATABASE_URL``)
implement :class:`Store`; the same behaviour tests run against both. Money is integer
nano-USD; every money change happens in one transaction with its ledger row, and a hold is
taken by one conditional update, so concurrent requests can never overdraw a balance.

Migrations are numbered and run in order at start-up (and by ``onemin-relay db upgrade``);
the schema below is written once, with ``{blob}``, ``{serial}`` and ``{real}`` filled in per
engine.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Literal, Protocol, TypeAlias

import msgspec

from onemin_relay.gateway.evidence import LABELS_MIGRATION, ROUTING_MIGRATION, EvidenceRow
from onemin_relay.gateway.keys import KeyRecord
from onemin_relay.gateway.route_policy import Tally
from onemin_relay.gateway.trace_store import (
    TRACES_MIGRATION,
    ConversationRow,
    TraceDetail,
    TraceFilter,
    TraceRow,
    trace_values,
)

Outcome: TypeAlias = Literal["ok", "error", "refused", "unsettled"]
GroupBy: TypeAlias = Literal["key", "model", "day"]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        project TEXT NOT NULL,
        models TEXT NOT NULL,
        rpm BIGINT,
        tpm BIGINT,
        expires_at {real},
        created_at {real} NOT NULL,
        revoked_at {real},
        balance BIGINT NOT NULL DEFAULT 0,
        reserved BIGINT NOT NULL DEFAULT 0,
        spent BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE holds (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        amount BIGINT NOT NULL,
        owner TEXT NOT NULL,
        created_at {real} NOT NULL,
        expires_at {real} NOT NULL,
        request_id TEXT NOT NULL,
        project TEXT NOT NULL,
        surface TEXT NOT NULL,
        model TEXT NOT NULL
    );
    CREATE INDEX holds_expiry ON holds (expires_at);
    CREATE INDEX holds_owner ON holds (owner);
    CREATE TABLE ledger (
        id {serial},
        at {real} NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT,
        project TEXT,
        mode TEXT NOT NULL,
        surface TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        status INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        credits BIGINT NOT NULL,
        cost BIGINT NOT NULL,
        charged BIGINT NOT NULL,
        latency_ms {real} NOT NULL,
        ttfb_ms {real},
        conversation_id TEXT,
        error_code TEXT
    );
    CREATE INDEX ledger_key_at ON ledger (key_id, at);
    CREATE INDEX ledger_at ON ledger (at);
    CREATE TABLE idempotency (
        holder TEXT NOT NULL,
        key TEXT NOT NULL,
        state TEXT NOT NULL,
        status INTEGER,
        content_type TEXT,
        body {blob},
        created_at {real} NOT NULL,
        PRIMARY KEY (holder, key)
    );
    CREATE INDEX idempotency_created ON idempotency (created_at);
    """,
    TRACES_MIGRATION,
    ROUTING_MIGRATION,
    LABELS_MIGRATION,
)


class Hold(msgspec.Struct, frozen=True):
    """Money set aside for one call in flight, renewed by its process until settled."""

    id: str
    key_id: str
    amount: int
    owner: str
    created_at: float
    expires_at: float
    request_id: str
    project: str
    surface: str
    model: str


class LedgerRow(msgspec.Struct, frozen=True):
    """One request's account: who, what, how it ended, what it cost and what was charged."""

    at: float
    request_id: str
    key_id: str | None
    project: str | None
    mode: str
    surface: str
    requested_model: str
    upstream_model: str
    status: int
    outcome: Outcome
    input_tokens: int = 0
    output_tokens: int = 0
    credits: int = 0
    cost: int = 0  # nano-USD the call cost
    charged: int = 0  # nano-USD taken from the key (less than cost only if it ran dry)
    latency_ms: float = 0.0
    ttfb_ms: float | None = None
    conversation_id: str | None = None
    error_code: str | None = None
    route: str | None = None  # how routing chose the model (x-onemin-route), if it did


class Settlement(msgspec.Struct, frozen=True):
    """Release ``hold_id`` (if still held), charge ``row.cost`` to ``key_id``, record ``row``
    (and its trace, when there is one)."""

    row: LedgerRow
    key_id: str | None = None
    hold_id: str | None = None
    trace: TraceDetail | None = None


class UsageRow(msgspec.Struct, frozen=True):
    group: str
    requests: int
    input_tokens: int
    output_tokens: int
    credits: int
    charged: int


class Remembered(msgspec.Struct, frozen=True):
    """What an idempotency key recorded: still running, or the first outcome."""

    state: Literal["running", "done"]
    status: int | None = None
    content_type: str | None = None
    body: bytes | None = None


class Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def migrate(self) -> int:
        """Apply pending migrations; the schema version now in force."""
        ...

    # keys
    async def add_key(self, record: KeyRecord) -> None: ...
    async def key(self, key_id: str) -> KeyRecord | None: ...
    async def key_by_hash(self, key_hash: str) -> KeyRecord | None: ...
    async def keys(self) -> list[KeyRecord]: ...
    async def update_key(self, key_id: str, changes: dict[str, object]) -> KeyRecord | None: ...
    async def top_up(self, key_id: str, amount: int) -> KeyRecord | None: ...

    # money
    async def reserve(self, hold: Hold) -> tuple[bool, KeyRecord | None]:
        """Hold ``hold.amount`` if the key's balance less its holds covers it: (True, None);
        else (False, the key as it stands, for the 402; None if there is no such key)."""
        ...

    async def renew(self, owner: str, expires_at: float) -> int: ...
    async def settle(self, batch: list[Settlement]) -> None: ...
    def transient(self, error: BaseException) -> bool:
        """Whether ``error`` means the store is unreachable for now (retry), rather than
        refusing what it was given (do not)."""
        ...

    async def sweep(self, now: float) -> int:
        """Release holds past their lease, each recorded as an unsettled ledger row."""
        ...

    # reading the ledger
    async def usage(
        self, group_by: GroupBy, since: float, key_id: str | None = None
    ) -> list[UsageRow]: ...
    async def ledger(self, key_id: str | None, limit: int) -> list[LedgerRow]: ...

    # idempotency
    async def remember(
        self, holder: str, key: str, now: float, stale_before: float | None = None
    ) -> Remembered | None:
        """Claim ``key`` for ``holder``: None if it was free, else what it holds. A claim
        still running but made before ``stale_before`` is abandoned (its process died) and
        is taken over."""
        ...

    async def record_outcome(
        self, holder: str, key: str, status: int, content_type: str, body: bytes
    ) -> None: ...
    async def forget(self, holder: str, key: str) -> None: ...
    async def forget_before(self, when: float) -> int: ...

    # traces (written by ``settle``)
    async def traces(self, chosen: TraceFilter) -> list[TraceRow]:
        """Traces newest first."""
        ...

    async def conversation(self, conversation_id: str, chosen: TraceFilter) -> list[TraceRow]:
        """One conversation's traces in the order they arrived."""
        ...

    async def conversations(self, chosen: TraceFilter) -> list[ConversationRow]:
        """Conversations, the one with the latest request first."""
        ...

    async def trace(self, request_id: str) -> TraceRow | None: ...

    # routing's evidence, and the ledger rows of routed calls
    async def add_evidence(
        self, project: str, route: str, kind: str, candidate: str, tally: Tally
    ) -> None: ...
    async def evidence(self, project: str | None = None) -> list[EvidenceRow]: ...
    async def add_label(self, project: str, request_id: str) -> bool:
        """Note that the answer to ``request_id`` has its label; False if it had one."""
        ...

    async def routed_rows(self, request_id: str) -> list[tuple[str | None, str | None, int]]:
        """(project, route account, status) of each routed ledger row of a request."""
        ...

    async def routed_usage(self, since: float) -> list[tuple[str, str, int, int, int, int, str]]:
        """(route, upstream model, input, output tokens, credits, status, mode) since then."""
        ...

    async def purge_traces(self, before: float) -> int:
        """Delete traces of requests that arrived before ``before``; how many."""
        ...


def schema(dialect: Literal["sqlite", "postgres"], migration: str) -> list[str]:
    """The statements of one migration for an engine."""
    words = (
        {"blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "real": "REAL"}
        if dialect == "sqlite"
        else {"blob": "BYTEA", "serial": "BIGSERIAL PRIMARY KEY", "real": "DOUBLE PRECISION"}
    )
    text = migration.format(**words)
    return [statement.strip() for statement in text.split(";") if statement.strip()]


KEY_COLUMNS = (
    "id, hash, prefix, name, kind, project, models, rpm, tpm, expires_at, created_at, "
    "revoked_at, balance, reserved, spent"
)
LEDGER_COLUMNS = (
    "at, request_id, key_id, project, mode, surface, requested_model, upstream_model, status, "
    "outcome, input_tokens, output_tokens, credits, cost, charged, latency_ms, ttfb_ms, "
    "conversation_id, error_code, route"
)
_ledger_values = attrgetter(*LEDGER_COLUMNS.split(", "))  # one C call per row
EDITABLE = frozenset({"name", "project", "models", "rpm", "tpm", "expires_at", "revoked_at"})


def key_values(record: KeyRecord) -> tuple[object, ...]:
    return (
        record.id,
        record.hash,
        record.prefix,
        record.name,
        record.kind,
        record.project,
        ",".join(record.models),
        record.rpm,
        record.tpm,
        record.expires_at,
        record.created_at,
        record.revoked_at,
        record.balance,
        record.reserved,
        record.spent,
    )


def key_from_row(row: tuple[object, ...] | list[object]) -> KeyRecord:
    values = list(row)
    models = str(values[6])
    values[6] = tuple(m for m in models.split(",") if m)
    return msgspec.convert(dict(zip(KEY_COLUMNS.split(", "), values, strict=True)), KeyRecord)


def ledger_values(row: LedgerRow) -> tuple[object, ...]:
    values: tuple[object, ...] = _ledger_values(row)
    return values


def trace_values_of(row: LedgerRow, detail: TraceDetail) -> tuple[object, ...]:
    """A trace row's values: ``detail`` completed by its ledger row."""
    return trace_values(row, detail)


def ledger_from_row(row: tuple[object, ...] | list[object]) -> LedgerRow:
    names = LEDGER_COLUMNS.split(", ")
    return msgspec.convert(dict(zip(names, row, strict=True)), LedgerRow)


def stored_change(name: str, value: object) -> object:
    """A key field as its column holds it (model globs are a comma-separated list)."""
    if name not in EDITABLE:
        raise ValueError(f"{name!r} cannot be changed")
    if name == "models" and isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


def charge_for(cost: int, balance: int, reserved_after_release: int) -> int:
    """What is taken from a key for a call that cost ``cost``: all of it, unless that would
    take the balance below what other calls hold (then what is free; the rest is recorded as
    unbilled on the ledger row and never overdraws the key)."""
    return max(0, min(cost, balance - reserved_after_release))


def unsettled_row(
    now: float, request_id: str, key_id: str, project: str, surface: str, model: str
) -> LedgerRow:
    """The ledger's record of a call whose process died before settling it: its hold is
    released, nothing is charged, and the row says so."""
    return LedgerRow(
        at=now,
        request_id=request_id,
        key_id=key_id,
        project=project,
        mode="managed",
        surface=surface,
        requested_model=model,
        upstream_model=model,
        status=0,
        outcome="unsettled",
        error_code="unsettled",
    )
