"""Reading 1min.ai's AI-record envelope (``{"aiRecord": {...}}``, API doc §4.1).

The same record is the body of a non-streamed chat reply and the data of the ``result``
event of a streamed one, so both sides read it through :func:`summarize_record`. The view
Structs hold only the fields we read; everything else the upstream adds is ignored.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Final

import msgspec

from onemin_relay.core.errors import UpstreamError
from onemin_relay.core.types import FinishReason, Usage

__all__ = [
    "ChatRecord",
    "RecordSummary",
    "map_finish_reason",
    "parse_chat_response",
    "scan_crawl_prefix",
    "strip_crawl_prefix",
    "summarize_record",
]


# -- finish reason ---------------------------------------------------------------------

_FINISH_REASONS: Final[dict[str, FinishReason]] = {
    "length": "length",
    "max_tokens": "length",
    "max_output_tokens": "length",
    "truncated": "length",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "recitation": "content_filter",
    "prohibited_content": "content_filter",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
}


def map_finish_reason(raw: str | None) -> FinishReason:
    """Map the provider's own word (``"complete"``, ``"MAX_TOKENS"``, …) onto our closed set."""
    if not raw:
        return "stop"
    return _FINISH_REASONS.get(raw.strip().lower(), "stop")


# -- crawl noise -----------------------------------------------------------------------

# Web-search replies may open with lines like "🌐 Crawling site https://…\n", sometimes
# mis-decoded upstream as "ðŸŒ…" (the emoji's UTF-8 bytes read as cp1252; its fourth byte
# 0x90 becomes U+0090, U+FFFD, "?" or nothing).
_CRAWL_MARKERS: Final = ("🌐", "ðŸŒ")
_CRAWL_WORDS: Final = "Crawling site"
_MOJIBAKE_LEFTOVERS: Final = " \t\x90\ufffd?"

_TEXT, _BLANK, _CRAWL, _MAYBE = range(4)


def _classify(line: str) -> int:
    """Classify a line (without its newline), which may still be incomplete."""
    s = line.lstrip()
    if not s:
        return _BLANK
    for marker in _CRAWL_MARKERS:
        if s.startswith(marker):
            rest = s[len(marker) :].lstrip(_MOJIBAKE_LEFTOVERS)
            if rest.startswith(_CRAWL_WORDS):
                return _CRAWL
            return _MAYBE if _CRAWL_WORDS.startswith(rest) else _TEXT
        if marker.startswith(s):
            return _MAYBE
    return _TEXT


def scan_crawl_prefix(text: str, *, final: bool) -> int | None:
    """Return where the reply starts once leading crawl lines are skipped.

    Crawl lines, and blank lines before, between and after them, are noise; blank lines at
    the start of a reply without any crawl line are kept. A crawl line counts only once its
    newline has arrived. Returns None while ``text`` could still be the start of such noise
    (only when ``final`` is false: more text may follow).
    """
    start = pos = 0
    seen_crawl = False
    while (newline := text.find("\n", pos)) >= 0:
        kind = _classify(text[pos:newline])
        if kind == _CRAWL or (kind == _BLANK and seen_crawl):
            seen_crawl = True
            start = newline + 1
        elif kind != _BLANK:
            return start
        pos = newline + 1
    kind = _classify(text[pos:])
    if kind == _TEXT or (final and kind != _BLANK):
        return start
    if final:
        return len(text) if seen_crawl else start
    return None


def strip_crawl_prefix(text: str) -> str:
    """The complete reply ``text`` without its leading crawl noise."""
    start = scan_crawl_prefix(text, final=True)
    return text[start:] if start else text


# -- the record ------------------------------------------------------------------------


class _Metadata(msgspec.Struct):
    inputToken: float | None = None
    outputToken: float | None = None
    finishReason: str | None = None
    credit: float | None = None


class _Detail(msgspec.Struct):
    resultObject: list[str] | str | None = None


class _AiRecord(msgspec.Struct):
    uuid: str | None = None
    status: str | None = None
    # Kept raw and decoded on its own, so an odd metadata shape costs only the usage.
    metadata: msgspec.Raw = msgspec.Raw(b"null")
    aiRecordDetail: _Detail | None = None


class _Envelope(msgspec.Struct):
    aiRecord: _AiRecord | None = None


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)
_METADATA: Final[msgspec.json.Decoder[_Metadata | None]] = msgspec.json.Decoder(_Metadata | None)


class RecordSummary(msgspec.Struct, frozen=True):
    """What we take from an AI record. ``text`` is None when the record holds no reply."""

    status: str
    text: str | None
    finish_reason: FinishReason
    usage: Usage | None
    record_id: str | None

    @property
    def failed(self) -> bool:
        return self.status.upper() == "FAILED"


# the ids of the records 1min.ai keeps for this request's calls, for its trace: a list set
# by whoever wants them (None: nobody)
RECORDS: ContextVar[list[str] | None] = ContextVar("onemin_records", default=None)


def summarize_record(body: bytes | str) -> RecordSummary | None:
    """Read an ``{"aiRecord": …}`` envelope; None when it has no record.

    Raises ``msgspec.DecodeError`` (``ValidationError`` included) for a body that is not
    JSON or not an envelope; callers decide what that means on their side.
    """
    record = _ENVELOPE.decode(body).aiRecord
    if record is None:
        return None
    seen = RECORDS.get()
    if seen is not None and record.uuid:
        seen.append(record.uuid)
    metadata = _read_metadata(record.metadata)
    return RecordSummary(
        status=record.status or "",
        text=_reply_text(record.aiRecordDetail),
        finish_reason=map_finish_reason(metadata.finishReason if metadata else None),
        usage=_usage(metadata),
        record_id=record.uuid,
    )


def _read_metadata(raw: msgspec.Raw) -> _Metadata | None:
    try:
        return _METADATA.decode(raw)
    except msgspec.DecodeError:
        return None


def _reply_text(detail: _Detail | None) -> str | None:
    result = detail.resultObject if detail else None
    if isinstance(result, list):
        result = result[0] if result else None
    return None if result is None else strip_crawl_prefix(result)


def _usage(metadata: _Metadata | None) -> Usage | None:
    """Token counts as reported, or None (to be estimated) when missing or all zero."""
    if metadata is None or metadata.inputToken is None or metadata.outputToken is None:
        return None
    input_tokens, output_tokens = int(metadata.inputToken), int(metadata.outputToken)
    if input_tokens == output_tokens == 0:
        return None
    credits = None if metadata.credit is None else math.ceil(metadata.credit)
    return Usage(input_tokens, output_tokens, credits=credits)


# -- non-streamed reply ----------------------------------------------------------------


class ChatRecord(msgspec.Struct, frozen=True):
    """A non-streamed chat reply, ready for the pipeline."""

    text: str
    finish_reason: FinishReason
    usage: Usage | None
    record_id: str | None


def parse_chat_response(body: bytes) -> ChatRecord:
    """Parse the JSON body of a successful ``POST /api/chat-with-ai``."""
    try:
        summary = summarize_record(body)
    except msgspec.DecodeError as exc:
        raise UpstreamError(f"the upstream returned an unreadable reply: {exc}") from exc
    if summary is not None and summary.failed:
        raise UpstreamError("1min.ai reported the request as failed")
    if summary is None or summary.text is None:
        raise UpstreamError("the upstream returned no reply")
    return ChatRecord(
        text=summary.text,
        finish_reason=summary.finish_reason,
        usage=summary.usage,
        record_id=summary.record_id,
    )
