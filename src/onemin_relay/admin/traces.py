"""Conversations and request traces for operators: the admin API's routes and the functions
the dashboard and the command line call with a store.

Every function takes the :class:`Store` and returns msgspec Structs: times as ISO-8601 UTC
(with the epoch beside them, for charts), money in US dollars. Lists come a page at a time;
``next_cursor`` (opaque) asks for the next page and is None on the last.

    list_conversations(store, filters) -> Page[ConversationSummary]   newest activity first
    conversation(store, id, filters)   -> Page[Trace]                 in arrival order
    list_requests(store, filters)      -> Page[Trace]                 newest first
    request_trace(store, request_id)   -> Trace | None
    purge(store, before)               -> int                         traces deleted
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Generic, TypeVar

import msgspec
from aiohttp import web

from onemin_relay.admin.views import iso, parse_time, usd
from onemin_relay.core.errors import InvalidRequest, NotFound
from onemin_relay.gateway.storage import Store
from onemin_relay.gateway.trace_store import (
    ConversationRow,
    Cursor,
    ToolCallRef,
    TraceFilter,
    TraceRow,
)
from onemin_relay.surfaces.common import GATEWAY

T = TypeVar("T")
R = TypeVar("R")
Handler = Callable[[web.Request], Awaitable[web.Response]]

PAGE: Final = 50
PAGE_MAX: Final = 1000
OUTCOMES: Final = ("ok", "error", "refused", "unsettled")


class Timings(msgspec.Struct, frozen=True):
    """Milliseconds: parsing the request, admitting it (keys, limits, holds), from arrival
    to the upstream's first byte, and from arrival to the end of the answer."""

    parse_ms: float | None
    policy_ms: float | None
    upstream_first_byte_ms: float | None
    total_ms: float


class TraceError(msgspec.Struct, frozen=True):
    code: str | None
    message: str | None


class Bodies(msgspec.Struct, frozen=True):
    """What was captured (``ONEMIN_TRACE_BODIES``): the client's request, the prompt sent
    upstream and the reply; capped and scrubbed of keys. None where not captured."""

    request: str | None
    prompt: str | None
    reply: str | None


class Trace(msgspec.Struct, frozen=True):
    """One request, as an operator reads it."""

    request_id: str
    conversation_id: str
    at: str | None
    timestamp: float
    user: str | None
    key_id: str | None
    project: str | None
    mode: str
    surface: str
    status: int
    outcome: str
    requested_model: str
    model: str  # the model that answered
    route: str | None
    input_tokens: int
    output_tokens: int
    credits: int
    cost_usd: float
    timings: Timings
    upstream_id: str | None
    tool_calls: tuple[ToolCallRef, ...]
    error: TraceError | None
    bodies: Bodies | None
    object: str = "trace"


class ConversationSummary(msgspec.Struct, frozen=True):
    conversation_id: str
    requests: int
    errors: int
    first_at: str | None
    last_at: str | None
    first_timestamp: float
    last_timestamp: float
    input_tokens: int
    output_tokens: int
    credits: int
    spend_usd: float
    keys: tuple[str, ...]
    models: tuple[str, ...]
    users: tuple[str, ...]
    surfaces: tuple[str, ...]
    object: str = "conversation"


class Page(msgspec.Struct, Generic[T], frozen=True):
    data: list[T]
    has_more: bool
    next_cursor: str | None  # pass as ``cursor`` for the next page
    object: str = "list"


# -- the interface ----------------------------------------------------------------------


async def list_conversations(store: Store, filters: TraceFilter) -> Page[ConversationSummary]:
    rows = await store.conversations(_one_more(filters))
    return _page(rows, filters.limit, summary, lambda r: (r.last_at, r.conversation_id))


async def conversation(
    store: Store, conversation_id: str, filters: TraceFilter | None = None
) -> Page[Trace]:
    """A conversation's requests in order; ``NotFound`` when it has none (at all)."""
    chosen = filters or TraceFilter(limit=PAGE_MAX)
    rows = await store.conversation(conversation_id, _one_more(chosen))
    if not rows and chosen.after is None and not await _exists(store, conversation_id):
        raise NotFound(f"no conversation with id {conversation_id[:100]!r}", param="id")
    return _page(rows, chosen.limit, trace, _trace_cursor)


async def list_requests(store: Store, filters: TraceFilter) -> Page[Trace]:
    rows = await store.traces(_one_more(filters))
    return _page(rows, filters.limit, trace, _trace_cursor)


async def request_trace(store: Store, request_id: str) -> Trace | None:
    row = await store.trace(request_id)
    return None if row is None else trace(row)


async def purge(store: Store, before: float) -> int:
    """Delete the traces of requests that arrived before ``before`` (epoch seconds)."""
    return await store.purge_traces(before)


# -- views ------------------------------------------------------------------------------


def trace(row: TraceRow) -> Trace:
    error = None
    if row.error_code is not None or row.error_message is not None:
        error = TraceError(row.error_code, row.error_message)
    bodies = None
    if (row.request_body, row.prompt_body, row.reply_body) != (None, None, None):
        bodies = Bodies(row.request_body, row.prompt_body, row.reply_body)
    return Trace(
        request_id=row.request_id,
        conversation_id=row.conversation_id,
        at=iso(row.at),
        timestamp=row.at,
        user=row.user_id,
        key_id=row.key_id,
        project=row.project,
        mode=row.mode,
        surface=row.surface,
        status=row.status,
        outcome=row.outcome,
        requested_model=row.requested_model,
        model=row.upstream_model,
        route=row.route,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        credits=row.credits,
        cost_usd=usd(row.cost),
        timings=Timings(row.parse_ms, row.policy_ms, row.ttfb_ms, row.total_ms),
        upstream_id=row.upstream_id,
        tool_calls=row.tool_calls,
        error=error,
        bodies=bodies,
    )


def summary(row: ConversationRow) -> ConversationSummary:
    return ConversationSummary(
        conversation_id=row.conversation_id,
        requests=row.requests,
        errors=row.errors,
        first_at=iso(row.first_at),
        last_at=iso(row.last_at),
        first_timestamp=row.first_at,
        last_timestamp=row.last_at,
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        credits=row.credits,
        spend_usd=usd(row.cost),
        keys=row.keys,
        models=row.models,
        users=row.users,
        surfaces=row.surfaces,
    )


# -- filters and cursors ------------------------------------------------------------------


def filters(query: Mapping[str, str]) -> TraceFilter:
    """A filter from query parameters: ``key_id``, ``model``, ``status`` (a code, or ok /
    error / refused / unsettled), ``user``, ``since``, ``until``, ``limit``, ``cursor``.
    Anything malformed is a 400 naming the parameter."""
    status, outcome = _status(query.get("status") or None)
    return TraceFilter(
        key_id=query.get("key_id") or None,
        model=query.get("model") or None,
        status=status,
        outcome=outcome,
        user_id=query.get("user") or None,
        since=_time(query.get("since"), "since"),
        until=_time(query.get("until"), "until"),
        limit=_limit(query.get("limit")),
        after=decode_cursor(query.get("cursor") or None),
    )


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).decode().rstrip("=")


def decode_cursor(text: str | None) -> Cursor | None:
    if text is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=tuple[float, str])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidRequest("'cursor' is not a cursor this API gave out", param="cursor") from None


def _status(value: str | None) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if value in OUTCOMES:
        return None, value
    if value.isascii() and value.isdigit() and 100 <= int(value) <= 599:
        return int(value), None
    raise InvalidRequest(
        f"'status' must be an HTTP status or one of {', '.join(OUTCOMES)}", param="status"
    )


def _time(value: str | None, param: str) -> float | None:
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidRequest(f"'{param}': {exc}", param=param) from None


def _limit(value: str | None) -> int:
    if not value:
        return PAGE
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= PAGE_MAX:
        raise InvalidRequest(f"'limit' must be a whole number from 1 to {PAGE_MAX}", param="limit")
    return int(value)


def _one_more(chosen: TraceFilter) -> TraceFilter:
    """Ask for one row past the page, to know whether there is a next page."""
    return msgspec.structs.replace(chosen, limit=chosen.limit + 1)


def _page(
    rows: list[R], limit: int, view: Callable[[R], T], cursor_of: Callable[[R], Cursor]
) -> Page[T]:
    more = len(rows) > limit
    shown = rows[:limit]
    next_cursor = encode_cursor(cursor_of(shown[-1])) if more and shown else None
    return Page([view(row) for row in shown], next_cursor is not None, next_cursor)


def _trace_cursor(row: TraceRow) -> Cursor:
    return row.at, row.request_id


async def _exists(store: Store, conversation_id: str) -> bool:
    return bool(await store.conversation(conversation_id, TraceFilter(limit=1)))


# -- the admin API ------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def add_routes(
    router: web.UrlDispatcher, prefix: str, guarded: Callable[[Handler], Handler]
) -> None:
    router.add_get(f"{prefix}/conversations", guarded(conversations_endpoint))
    router.add_get(prefix + "/conversations/{id}", guarded(conversation_endpoint))
    router.add_get(f"{prefix}/requests", guarded(requests_endpoint))
    router.add_get(prefix + "/requests/{id}", guarded(request_endpoint))


def _store(request: web.Request) -> Store:
    return request.app[GATEWAY].store


def _reply(payload: object) -> web.Response:
    return web.Response(
        body=_encoder.encode(payload),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def conversations_endpoint(request: web.Request) -> web.Response:
    """``GET /admin/v1/conversations``: newest activity first, filtered, a page at a time."""
    return _reply(await list_conversations(_store(request), filters(request.query)))


async def conversation_endpoint(request: web.Request) -> web.Response:
    """``GET /admin/v1/conversations/{id}``: its requests in order."""
    chosen = filters(request.query)
    if "limit" not in request.query:
        chosen = msgspec.structs.replace(chosen, limit=PAGE_MAX)
    page = await conversation(_store(request), request.match_info["id"], chosen)
    return _reply(page)


async def requests_endpoint(request: web.Request) -> web.Response:
    """``GET /admin/v1/requests``: traces newest first, filtered, a page at a time."""
    return _reply(await list_requests(_store(request), filters(request.query)))


async def request_endpoint(request: web.Request) -> web.Response:
    """``GET /admin/v1/requests/{id}``: one request's trace."""
    request_id = request.match_info["id"]
    found = await request_trace(_store(request), request_id)
    if found is None:
        raise NotFound(f"no trace of a request with id {request_id[:100]!r}", param="id")
    return _reply(found)
