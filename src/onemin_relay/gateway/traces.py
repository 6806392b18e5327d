"""Capturing a request's trace while it runs, and the conversation it belongs to.

The gateway gives each admitted (or refused) call :class:`TraceNotes`: when the request
arrived, when admission began and ended, the tool calls, the error and, when the operator
asked for them (``ONEMIN_TRACE_BODIES=full``), the bodies. At settlement :func:`trace_detail`
turns them into the trace row written with the ledger row. ``off`` records no traces,
``metadata`` (the default) everything but bodies.

Bodies are cut at ``ONEMIN_TRACE_BODY_LIMIT`` bytes (with a marker saying how much was cut)
and scrubbed first: relay and managed keys (``rk-onemin-…``, ``sk-onemin-…``) and the
credentials of the call itself (the 1min.ai key sent upstream, the key the client presented),
the operator's 1min.ai key and the admin token never reach the store, wherever they appear in
a prompt, a reply or an error message.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Literal, TypeAlias

import msgspec

from onemin_relay.core.errors import RelayError
from onemin_relay.core.types import Caller, ChatRequest, ToolCall
from onemin_relay.gateway.storage import LedgerRow
from onemin_relay.gateway.trace_store import ToolCallRef, TraceDetail
from onemin_relay.settings import Settings

if TYPE_CHECKING:
    from onemin_relay.gateway.grants import Grant

BodyLevel: TypeAlias = Literal["off", "metadata", "full"]
REDACTED = "[redacted]"
TEXT_LIMIT = 200  # ids, names and users, as the ledger keeps client text
MESSAGE_LIMIT = 2000  # an error message
_KEY_SHAPES = re.compile(r"(?:sk|rk)-onemin-[A-Za-z0-9_\-]+")
# a conversation or user id a client may set: printable ASCII without spaces or quotes
_ID = re.compile(r"[A-Za-z0-9._:@/+=\-]{1,200}")
_request_json = msgspec.json.Encoder()


class TraceNotes:
    """What a call's trace learns while it runs (one per grant; the event loop only)."""

    __slots__ = (
        "admitted",
        "began",
        "bodies",
        "calls",
        "conversation_id",
        "error_message",
        "limit",
        "prompt",
        "received",
        "received_at",
        "records",
        "reply",
        "request",
        "secrets",
        "user",
    )

    def __init__(self, caller: Caller, began: float | None, tracing: Tracing) -> None:
        now = time.monotonic()
        self.received = caller.received or began or now
        self.received_at = time.time() - (now - self.received)
        self.began = began
        self.admitted: float | None = None
        self.conversation_id = caller.conversation_id or caller.request_id
        self.user = caller.user
        self.calls: tuple[ToolCall, ...] = ()
        self.records: list[str] = []  # 1min.ai's ids of the records its calls made
        self.error_message: str | None = None
        self.bodies = tracing.level == "full"
        self.limit = tracing.limit
        self.request: str | None = None
        self.prompt: str | None = None
        self.reply: str | None = None
        # strings never stored: the caller's credentials, the operator's key and token
        own = tuple(s for s in (caller.api_key, caller.relay_key) if s)
        self.secrets = own + tracing.secrets

    def answered(self, text: str | list[str] | None, calls: tuple[ToolCall, ...]) -> None:
        """The answer the client got: its tool calls, and its text (pieces, for a stream)."""
        self.calls = calls or self.calls
        if self.bodies and text is not None:
            self.reply = text if isinstance(text, str) else "".join(text)

    def failed(self, exc: BaseException) -> None:
        if isinstance(exc, RelayError):
            self.error_message = _clean(scrub(exc.message, self.secrets), MESSAGE_LIMIT)
        elif self.error_message is None:
            self.error_message = type(exc).__name__

    def captured(self, text: str | None, grant: Grant) -> str | None:
        """``text`` as a body is stored: scrubbed of keys, then capped."""
        if text is None or not self.bodies:
            return None
        return cap(scrub(text, (*self.secrets, grant.api_key)), self.limit)


class Tracing:
    """The operator's choice of what traces record, applied to each call."""

    def __init__(self, settings: Settings) -> None:
        self.level: BodyLevel = settings.trace_bodies
        self.limit = settings.trace_body_limit
        self.secrets = tuple(s for s in (settings.api_key, settings.admin_token) if s)

    def notes(self, caller: Caller, began: float | None) -> TraceNotes | None:
        if self.level == "off":
            return None
        return TraceNotes(caller, began, self)


def trace_detail(grant: Grant, row: LedgerRow) -> TraceDetail | None:
    """The trace of a settled call (None when traces are off)."""
    notes = grant.notes
    if notes is None:
        return None
    total = (time.monotonic() - notes.received) * 1000
    ttfb = None if grant.first_byte is None else (grant.first_byte - notes.received) * 1000
    if ttfb is None and row.outcome == "ok":
        ttfb = total  # a whole answer: its first byte came with the rest
    policy = None
    if notes.began is not None and notes.admitted is not None:
        policy = (notes.admitted - notes.began) * 1000
    return TraceDetail(
        conversation_id=notes.conversation_id or row.request_id,
        at=notes.received_at,
        total_ms=total,
        user_id=notes.user,
        route=_clean(grant.route, TEXT_LIMIT) if grant.route else None,
        parse_ms=None if notes.began is None else (notes.began - notes.received) * 1000,
        policy_ms=policy,
        ttfb_ms=ttfb,
        upstream_id=_clean(",".join(notes.records), TEXT_LIMIT) if notes.records else None,
        tool_calls=tuple(
            ToolCallRef(_clean(c.id, TEXT_LIMIT), _clean(c.name, TEXT_LIMIT)) for c in notes.calls
        ),
        error_message=notes.error_message,
        request_body=notes.captured(notes.request, grant),
        prompt_body=notes.captured(notes.prompt, grant),
        reply_body=notes.captured(notes.reply, grant),
    )


def noted_request(notes: TraceNotes | None, request: ChatRequest, prompt: str) -> None:
    """Keep the request and the prompt sent upstream, when bodies are captured."""
    if notes is not None and notes.bodies:
        notes.request = _request_json.encode(request).decode("utf-8", "replace")
        notes.prompt = prompt


def joined(caller: Caller, request: ChatRequest) -> Caller:
    """The caller with the conversation and user a chat request names in its body; the
    ``x-onemin-conversation-id`` header (already on the caller) wins over the body."""
    conversation = caller.conversation_id or request.conversation_id
    user = caller.user or request.user
    if conversation == caller.conversation_id and user == caller.user:
        return caller
    return msgspec.structs.replace(caller, conversation_id=conversation, user=user)


def client_id(value: object) -> str | None:
    """A conversation or user id from a client, if it is one: up to 200 printable ASCII
    characters without spaces or quotes. Anything else is not used."""
    if isinstance(value, str) and _ID.fullmatch(value):
        return value
    return None


def metadata_id(metadata: object, name: str) -> str | None:
    """``metadata[name]`` as a client id (see :func:`client_id`), if the body has one."""
    return client_id(metadata.get(name)) if isinstance(metadata, dict) else None


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` without relay or managed keys and without any of ``secrets``."""
    text = _KEY_SHAPES.sub(REDACTED, text)
    for secret in secrets:
        if secret and len(secret) >= 8 and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def cap(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-8 bytes, with a marker saying how many were cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return _clean(text, len(text))
    kept = data[:limit].decode("utf-8", "ignore")
    return _clean(kept, len(kept)) + f"…[truncated {len(data) - len(kept.encode())} bytes]"


def _clean(text: str, limit: int) -> str:
    """Text a column of either engine takes: no NULs (PostgreSQL refuses them), no lone
    surrogates (not UTF-8), at most ``limit`` characters."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")[:limit]
