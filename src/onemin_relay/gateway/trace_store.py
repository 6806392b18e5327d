"""Traces as the store keeps them: the table, its rows and the queries both engines run.

A trace is one request as an operator wants to read it later: who (key, project, user), which
conversation, the model asked for and the one used, timings, tokens and cost, the upstream
record, tool calls, the error, and (if the operator chose) capped, scrubbed bodies. It is
written in the same transaction as the request's ledger row; unlike the ledger (the money
record, kept) traces are purged after ``ONEMIN_TRACE_RETENTION``.

The queries are written once here with ``{p}`` placeholders, numbered per engine: SQLite
takes ``?``, PostgreSQL ``$1``, ``$2`` …
"""

from __future__ import annotations

import itertools
from typing import Literal, TypeAlias

import msgspec

Dialect: TypeAlias = Literal["sqlite", "postgres"]

TRACES_MIGRATION = """
    CREATE TABLE traces (
        request_id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL,
        at {real} NOT NULL,
        user_id TEXT,
        key_id TEXT,
        project TEXT,
        mode TEXT NOT NULL,
        surface TEXT NOT NULL,
        status INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        upstream_model TEXT NOT NULL,
        route TEXT,
        input_tokens BIGINT NOT NULL,
        output_tokens BIGINT NOT NULL,
        credits BIGINT NOT NULL,
        cost BIGINT NOT NULL,
        parse_ms {real},
        policy_ms {real},
        ttfb_ms {real},
        total_ms {real} NOT NULL,
        upstream_id TEXT,
        tool_calls TEXT NOT NULL,
        error_code TEXT,
        error_message TEXT,
        request_body TEXT,
        prompt_body TEXT,
        reply_body TEXT
    );
    CREATE INDEX traces_conversation_at ON traces (conversation_id, at);
    CREATE INDEX traces_at ON traces (at);
    CREATE INDEX traces_key_at ON traces (key_id, at);
    CREATE INDEX traces_model_at ON traces (upstream_model, at);
    CREATE INDEX traces_status_at ON traces (status, at)
"""


class ToolCallRef(msgspec.Struct, frozen=True):
    """A tool call the model made: its id and the function's name (never its arguments)."""

    id: str
    name: str


class TraceDetail(msgspec.Struct, frozen=True):
    """What a trace adds to its request's ledger row (the rest is taken from the row)."""

    conversation_id: str
    at: float  # epoch seconds the request arrived
    total_ms: float
    user_id: str | None = None
    route: str | None = None
    parse_ms: float | None = None
    policy_ms: float | None = None
    ttfb_ms: float | None = None  # from arrival to the upstream's first byte
    upstream_id: str | None = None
    tool_calls: tuple[ToolCallRef, ...] = ()
    error_message: str | None = None
    request_body: str | None = None
    prompt_body: str | None = None
    reply_body: str | None = None


class TraceRow(msgspec.Struct, frozen=True):
    """One stored trace."""

    request_id: str
    conversation_id: str
    at: float
    user_id: str | None
    key_id: str | None
    project: str | None
    mode: str
    surface: str
    status: int
    outcome: str
    requested_model: str
    upstream_model: str
    route: str | None
    input_tokens: int
    output_tokens: int
    credits: int
    cost: int  # nano-USD
    parse_ms: float | None
    policy_ms: float | None
    ttfb_ms: float | None
    total_ms: float
    upstream_id: str | None
    tool_calls: tuple[ToolCallRef, ...]
    error_code: str | None
    error_message: str | None
    request_body: str | None
    prompt_body: str | None
    reply_body: str | None


class ConversationRow(msgspec.Struct, frozen=True):
    """A conversation's requests summed up (over the requests a filter kept)."""

    conversation_id: str
    requests: int
    errors: int
    first_at: float
    last_at: float
    input_tokens: int
    output_tokens: int
    credits: int
    cost: int  # nano-USD
    keys: tuple[str, ...]
    models: tuple[str, ...]
    users: tuple[str, ...]
    surfaces: tuple[str, ...]


Cursor: TypeAlias = tuple[float, str]
Query: TypeAlias = tuple[str, list[object]]  # a statement and its parameters


class TraceFilter(msgspec.Struct, frozen=True):
    """Which traces to read. ``model`` matches the model asked for or the one used;
    ``status`` is an HTTP status, ``outcome`` ok / error / refused / unsettled. ``after``
    is the (time, id) of the last item of the previous page."""

    key_id: str | None = None
    model: str | None = None
    status: int | None = None
    outcome: str | None = None
    user_id: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    after: Cursor | None = None


TRACE_COLUMNS = tuple(TraceRow.__struct_fields__)
_COLUMNS = ", ".join(TRACE_COLUMNS)
_jsons = msgspec.json.Encoder()
# each column's source, read per settlement: the detail (True) or its ledger row (False)
_SOURCES = tuple((name in TraceDetail.__struct_fields__, name) for name in TRACE_COLUMNS)
_tool_calls = msgspec.json.Decoder(tuple[ToolCallRef, ...])
_names = msgspec.json.Decoder(list[str | None])
# sums both engines return as integers (PostgreSQL's SUM of a BIGINT is a NUMERIC)
_ERRORS = "CAST(SUM(CASE WHEN status >= 400 OR outcome <> 'ok' THEN 1 ELSE 0 END) AS BIGINT)"
_TOTALS = ", ".join(
    f"CAST(SUM({column}) AS BIGINT)"
    for column in ("input_tokens", "output_tokens", "credits", "cost")
)


def trace_values(ledger: object, detail: TraceDetail) -> tuple[object, ...]:
    """The row's values in column order: identity and money from the ledger row
    (``ledger``, a ``LedgerRow``), the rest from ``detail``."""
    calls = _jsons.encode(detail.tool_calls).decode()
    return tuple(
        calls if name == "tool_calls" else getattr(detail if own else ledger, name)
        for own, name in _SOURCES
    )


def trace_from_row(row: tuple[object, ...] | list[object]) -> TraceRow:
    fields = dict(zip(TRACE_COLUMNS, row, strict=True))
    fields["tool_calls"] = _tool_calls.decode(str(fields["tool_calls"]))
    return msgspec.convert(fields, TraceRow)


def conversation_from_row(row: tuple[object, ...] | list[object]) -> ConversationRow:
    numbers = [0 if value is None else value for value in row[1:9]]
    lists = [tuple(sorted(n for n in _names.decode(str(v or "[]")) if n)) for v in row[9:13]]
    return ConversationRow(str(row[0]), *numbers, *lists)  # type: ignore[arg-type]


class TraceQueries:
    """The trace statements for one engine, each with its parameters."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        # a request settled again (routing's next attempt) replaces its trace, keeping when
        # it arrived; an id chosen by another caller (x-request-id) never does
        same = "IS" if dialect == "sqlite" else "IS NOT DISTINCT FROM"
        kept = {"request_id", "conversation_id", "at", "user_id", "parse_ms"}
        updates = ", ".join(f"{c} = excluded.{c}" for c in TRACE_COLUMNS if c not in kept)
        marks = ", ".join(["{p}"] * len(TRACE_COLUMNS))
        self.insert = _numbered(
            dialect,
            f"INSERT INTO traces ({_COLUMNS}) VALUES ({marks}) ON CONFLICT (request_id) "
            f"DO UPDATE SET {updates} WHERE traces.key_id {same} excluded.key_id",
        )

    def requests(self, chosen: TraceFilter) -> Query:
        """Traces newest first."""
        where, params = _where(chosen, "<")
        sql = (
            f"SELECT {_COLUMNS} FROM traces WHERE {' AND '.join(where)} "
            "ORDER BY at DESC, request_id DESC LIMIT {p}"
        )
        return _numbered(self.dialect, sql), [*params, chosen.limit]

    def conversation(self, conversation_id: str, chosen: TraceFilter) -> Query:
        """One conversation's traces in the order they arrived."""
        where, params = _where(chosen, ">")
        where.append("conversation_id = {p}")
        params.append(conversation_id)
        sql = (
            f"SELECT {_COLUMNS} FROM traces WHERE {' AND '.join(where)} "
            "ORDER BY at, request_id LIMIT {p}"
        )
        return _numbered(self.dialect, sql), [*params, chosen.limit]

    def conversations(self, chosen: TraceFilter) -> Query:
        """Conversations with the latest activity first."""
        where, params = _where(chosen, None)
        having = ""
        if chosen.after is not None:
            having = "HAVING MAX(at) < {p} OR (MAX(at) = {p} AND conversation_id < {p}) "
            params += [chosen.after[0], chosen.after[0], chosen.after[1]]
        names = ", ".join(self._distinct(c) for c in ("key_id", "upstream_model", "user_id"))
        sql = (
            f"SELECT conversation_id, COUNT(*), {_ERRORS}, MIN(at), MAX(at), {_TOTALS}, "
            f"{names}, {self._distinct('surface')} FROM traces WHERE {' AND '.join(where)} "
            f"GROUP BY conversation_id {having}"
            "ORDER BY MAX(at) DESC, conversation_id DESC LIMIT {p}"
        )
        return _numbered(self.dialect, sql), [*params, chosen.limit]

    def trace(self, request_id: str) -> Query:
        sql = f"SELECT {_COLUMNS} FROM traces WHERE request_id = {{p}}"
        return _numbered(self.dialect, sql), [request_id]

    def purge(self, before: float) -> Query:
        return _numbered(self.dialect, "DELETE FROM traces WHERE at < {p}"), [before]

    def _distinct(self, column: str) -> str:
        """The distinct values of ``column`` in a group, as a JSON array."""
        if self.dialect == "sqlite":
            return f"json_group_array(DISTINCT {column})"
        return f"json_agg(DISTINCT {column})::text"


class TraceReads:
    """A store's trace methods, over its engine's ``_rows`` (a query's rows) and
    ``_changed`` (a statement's row count)."""

    _traces: TraceQueries

    async def traces(self, chosen: TraceFilter) -> list[TraceRow]:
        return [trace_from_row(r) for r in await self._rows(self._traces.requests(chosen))]

    async def conversation(self, conversation_id: str, chosen: TraceFilter) -> list[TraceRow]:
        query = self._traces.conversation(conversation_id, chosen)
        return [trace_from_row(r) for r in await self._rows(query)]

    async def conversations(self, chosen: TraceFilter) -> list[ConversationRow]:
        query = self._traces.conversations(chosen)
        return [conversation_from_row(r) for r in await self._rows(query)]

    async def trace(self, request_id: str) -> TraceRow | None:
        rows = await self._rows(self._traces.trace(request_id))
        return trace_from_row(rows[0]) if rows else None

    async def purge_traces(self, before: float) -> int:
        return await self._changed(self._traces.purge(before))

    async def _rows(self, query: Query) -> list[tuple[object, ...]]:
        raise NotImplementedError

    async def _changed(self, query: Query) -> int:
        raise NotImplementedError


def _where(chosen: TraceFilter, after: str | None) -> tuple[list[str], list[object]]:
    """The conditions ``chosen`` sets, and (``after`` "<" or ">") those of its cursor."""
    where = ["1 = 1"]
    params: list[object] = []
    for column, value in (
        ("key_id", chosen.key_id),
        ("status", chosen.status),
        ("outcome", chosen.outcome),
        ("user_id", chosen.user_id),
    ):
        if value is not None:
            where.append(f"{column} = {{p}}")
            params.append(value)
    if chosen.model is not None:
        where.append("(upstream_model = {p} OR requested_model = {p})")
        params += [chosen.model, chosen.model]
    if chosen.since is not None:
        where.append("at >= {p}")
        params.append(chosen.since)
    if chosen.until is not None:
        where.append("at < {p}")
        params.append(chosen.until)
    if after is not None and chosen.after is not None:
        where.append(f"(at {after} {{p}} OR (at = {{p}} AND request_id {after} {{p}}))")
        params += [chosen.after[0], chosen.after[0], chosen.after[1]]
    return where, params


def _numbered(dialect: Dialect, sql: str) -> str:
    """``{p}`` placeholders as the engine writes them."""
    if dialect == "sqlite":
        return sql.replace("{p}", "?")
    counter = itertools.count(1)
    parts = sql.split("{p}")
    return "".join(
        part + (f"${next(counter)}" if i < len(parts) - 1 else "") for i, part in enumerate(parts)
    )
