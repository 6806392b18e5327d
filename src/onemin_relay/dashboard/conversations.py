"""The conversations pages: conversations newest first (filtered by key, model, status and
time), one conversation as a timeline of its requests, each opening onto its trace, and a
request's trace on a page of its own. Everything is read through ``admin/traces.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from aiohttp import web

from onemin_relay.admin import traces
from onemin_relay.admin.traces import Trace
from onemin_relay.core.errors import InvalidRequest, NotFound
from onemin_relay.dashboard.charts import Mark
from onemin_relay.dashboard.render import page
from onemin_relay.dashboard.views import store_of

FILTERS: Final = ("key_id", "model", "status", "since", "until")
STAGE_WIDTH: Final = 300.0  # px of the widest timing bar


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    start_ms: float
    end_ms: float
    bar: Mark


def stages(trace: Trace) -> list[Stage]:
    """A request's timings as a waterfall: parsing, admission, waiting for 1min.ai's first
    byte, then the answer; a stage the trace did not time is left out."""
    timing = trace.timings
    parse, policy = timing.parse_ms or 0.0, timing.policy_ms or 0.0
    first_byte, total = timing.upstream_first_byte_ms, max(timing.total_ms, 0.001)
    spans = [("parse", 0.0, parse), ("policy", parse, parse + policy)]
    if first_byte is not None:
        spans += [("upstream", parse + policy, first_byte), ("answer", first_byte, total)]
    else:
        spans.append(("handling", parse + policy, total))
    scale = STAGE_WIDTH / max(total, *(end for _, _, end in spans))
    found: list[Stage] = []
    for name, start, end in spans:
        if end <= start and name in ("parse", "policy"):
            continue
        width = max((end - start) * scale, 1.0)
        tip = f"{name}: {end - start:,.1f} ms"
        found.append(Stage(name, start, end, Mark(start * scale, 0, width, 12, name, tip)))
    return found


def _query(request: web.Request) -> dict[str, str]:
    return {name: request.query[name] for name in FILTERS if request.query.get(name)}


def _more_link(query: Mapping[str, str], cursor: str | None) -> str | None:
    return None if cursor is None else "?" + urlencode({**query, "cursor": cursor})


async def conversation_list(request: web.Request) -> web.Response:
    chosen = _query(request)
    error, listing = "", None
    try:
        listing = await traces.list_conversations(store_of(request), traces.filters(request.query))
    except InvalidRequest as exc:
        error = exc.message
    keys = sorted(await store_of(request).keys(), key=lambda record: record.name.lower())
    return page(
        request, "conversations.html", status=400 if error else 200, title="Conversations",
        listing=listing, error=error, chosen=chosen, keys=keys,
        more=_more_link(chosen, listing.next_cursor if listing else None),
    )  # fmt: skip


async def conversation_page(request: web.Request) -> web.Response:
    conversation_id = request.match_info["id"]
    try:
        found = await traces.conversation(store_of(request), conversation_id)
    except NotFound:
        return _missing(request, "There is no such conversation (or its traces were purged).")
    timeline = [(trace, stages(trace)) for trace in found.data]
    return page(
        request, "conversation.html", title="Conversation", conversation_id=conversation_id,
        timeline=timeline, open_id=request.query.get("open", ""),
    )  # fmt: skip


async def request_page(request: web.Request) -> web.Response:
    found = await traces.request_trace(store_of(request), request.match_info["id"])
    if found is None:
        return _missing(request, "There is no trace of that request (or it was purged).")
    return page(request, "trace.html", title="Request", trace=found, stages=stages(found))


def _missing(request: web.Request, message: str) -> web.Response:
    return page(request, "message.html", status=404, title="Not found", message=message)
