"""Turning a streamed ``POST /api/chat-with-ai?isStreaming=true`` body into core events.

The body is either server-sent events (``content``* → ``result`` → ``done``, API doc §4.2)
or, on the legacy path, the reply's raw UTF-8 bytes ending at connection close (§4.3).
:class:`ChatStreamParser` works out which, and smooths over the quirks seen in the wild:
empty deltas, crawl noise at the start, a final chunk repeating the whole text, errors sent
as an event after HTTP 200, and streams that stop after ``result`` without ``done``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import msgspec

from onemin_relay.core.errors import UpstreamStreamError
from onemin_relay.core.types import Finish, FinishReason, StreamEvent, TextDelta, Usage

from .records import scan_crawl_prefix, summarize_record
from .sse import SSEDecoder, SSEEvent, Utf8Decoder

__all__ = ["ChatStreamParser"]

_SSE_FIELDS: Final = (b"event:", b"data:", b"id:", b"retry:", b":")
_WHITESPACE: Final = b" \t\r\n\x0b\x0c"


class _Content(msgspec.Struct):
    content: str | None = None


class _ErrorDetail(msgspec.Struct):
    message: str | None = None


class _ErrorBody(msgspec.Struct):
    error: str | _ErrorDetail | None = None
    message: str | None = None


_CONTENT: Final = msgspec.json.Decoder(_Content)
_ERROR: Final = msgspec.json.Decoder(_ErrorBody)


def _sniff(head: bytes) -> Literal["sse", "raw"] | None:
    """Decide from the first bytes whether the body is SSE; None until it can be told."""
    head = head.lstrip(_WHITESPACE)
    if not head:
        return None
    if head.startswith(_SSE_FIELDS):
        return "sse"
    if any(field.startswith(head) for field in _SSE_FIELDS):
        return None
    return "raw"


def _error_message(data: str) -> str:
    """The upstream's own words from an ``error`` event, in whichever shape it came."""
    try:
        body = _ERROR.decode(data)
    except msgspec.DecodeError:
        return data.strip() or "no details given"
    if isinstance(body.error, str) and body.error:
        return body.error
    if isinstance(body.error, _ErrorDetail) and body.error.message:
        return body.error.message
    return body.message or data.strip() or "no details given"


class ChatStreamParser:
    """Feed it the response body chunk by chunk; get text deltas and one final ``Finish``.

    ``feed()`` returns the events a chunk completes, including the ``Finish`` as soon as
    ``done`` arrives (input after that is ignored); ``finish()`` is called at end of body.
    Failures raise :class:`UpstreamStreamError`: an ``error`` event, a ``FAILED`` record, a
    ``content`` event whose data is not ``{"content": "..."}`` (dropping it would silently
    truncate the reply), or an SSE body that ends before ``result`` or ``done``. Deltas
    decoded from the same chunk before an error are discarded with it: the stream is failing
    anyway, and holding the error back for the next read could stall on an idle connection.
    Data that does not parse in a ``result`` event only costs its metadata (finish reason
    ``stop``, usage left to be estimated); ``done`` data and unknown events are never read.
    """

    def __init__(self, content_type: str | None = None) -> None:
        self._mode: Literal["sse", "raw"] | None = None
        if content_type is not None and "text/event-stream" in content_type.lower():
            self._mode = "sse"
        self._head = b""
        self._sse = SSEDecoder()
        self._raw = Utf8Decoder()
        self._handlers: dict[str, Callable[[str, list[StreamEvent]], None]] = {
            "content": self._on_content,
            "result": self._on_result,
            "done": self._on_done,
            "error": self._on_error,
        }
        self._finished = False
        self._has_result = False
        self._reason: FinishReason = "stop"
        self._usage: Usage | None = None
        # Text sent so far, kept in pieces; joined only when a chunk as long as all of it
        # has to be compared with it.
        self._emitted: list[str] = []
        self._emitted_len = 0
        # Leading text not yet known to be crawl noise or reply (None once the reply has
        # started), and the noise that was stripped.
        self._pending: str | None = ""
        self._noise = ""
        # A chunk repeating the whole reply so far, kept until the next event tells whether
        # it is part of the reply or the upstream's full-text echo.
        self._held: str | None = None

    # -- input -------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """The events completed by the next chunk of the body."""
        if self._finished or not chunk:
            return []
        if self._mode is None:
            self._head += chunk
            self._mode = _sniff(self._head)
            if self._mode is None:
                return []
            chunk, self._head = self._head, b""
        if self._mode == "raw":
            text = self._raw.decode(chunk)
            return [TextDelta(text)] if text else []
        return self._handle(self._sse.decode(chunk))

    def finish(self) -> list[StreamEvent]:
        """The remaining events at end of body; raises if an SSE stream stopped short."""
        if self._finished:
            return []
        if self._mode is None:
            # Nothing but whitespace: as likely an SSE stream that died before its first
            # event as an empty legacy reply, and an empty success would hide the failure.
            if not self._head.strip(_WHITESPACE):
                raise UpstreamStreamError("the upstream stream ended before completing")
            self._mode = "raw"
        if self._mode == "raw":
            self._finished = True
            text = self._raw.decode(self._head) + self._raw.flush()
            return [TextDelta(text), Finish("stop")] if text else [Finish("stop")]
        out = self._handle(self._sse.flush())
        if self._finished:
            return out
        if not self._has_result:
            raise UpstreamStreamError("the upstream stream ended before completing")
        self._on_done("", out)
        return out

    def _handle(self, events: list[SSEEvent]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for event in events:
            if event.data == "[DONE]":
                self._on_done("", out)
            else:
                handler = self._handlers.get(event.event)
                if handler is not None:
                    handler(event.data, out)
            if self._finished:
                break
        return out

    # -- events ------------------------------------------------------------------------

    def _on_content(self, data: str, out: list[StreamEvent]) -> None:
        try:
            text = _CONTENT.decode(data).content
        except msgspec.DecodeError as exc:
            raise UpstreamStreamError("1min.ai sent an unreadable content event") from exc
        if not text:
            return
        if self._held is not None:
            # Another piece followed, so the repeat was part of the reply after all.
            self._emit(self._held, out)
            self._held = None
        if self._pending is not None:
            self._strip_noise(text, final=False, out=out)
        elif self._repeats_everything(text):
            self._held = text
        else:
            self._emit(text, out)

    def _on_result(self, data: str, out: list[StreamEvent]) -> None:
        try:
            summary = summarize_record(data)
        except msgspec.DecodeError:
            summary = None
        if summary is not None and summary.failed:
            raise UpstreamStreamError("1min.ai reported the request as failed")
        self._has_result = True
        self._strip_noise("", final=True, out=out)
        if summary is None:
            self._held = None
            return
        self._reason, self._usage = summary.finish_reason, summary.usage
        if self._held is not None:
            if summary.text is not None and summary.text == self._emitted_text() + self._held:
                self._emit(self._held, out)
            self._held = None

    def _on_done(self, _data: str, out: list[StreamEvent]) -> None:
        self._strip_noise("", final=True, out=out)
        self._held = None
        self._finished = True
        out.append(Finish(self._reason, self._usage))

    def _on_error(self, data: str, _out: list[StreamEvent]) -> None:
        raise UpstreamStreamError(f"1min.ai reported an error: {_error_message(data)}")

    # -- reply text --------------------------------------------------------------------

    def _strip_noise(self, text: str, *, final: bool, out: list[StreamEvent]) -> None:
        """Collect text at the start of the reply until it is known not to be crawl noise."""
        if self._pending is None:
            return
        pending = self._pending + text
        start = scan_crawl_prefix(pending, final=final)
        if start is None:
            self._pending = pending
            return
        self._pending = None
        self._noise = pending[:start]
        if start < len(pending):
            self._emit(pending[start:], out)

    def _repeats_everything(self, text: str) -> bool:
        """Whether ``text`` is the whole reply so far again (the disputed final-chunk quirk)."""
        if not self._emitted_len:
            return False
        if len(text) == self._emitted_len:
            return text == self._emitted_text()
        if self._noise and len(text) == len(self._noise) + self._emitted_len:
            return text == self._noise + self._emitted_text()
        return False

    def _emitted_text(self) -> str:
        if len(self._emitted) > 1:
            self._emitted = ["".join(self._emitted)]
        return self._emitted[0] if self._emitted else ""

    def _emit(self, text: str, out: list[StreamEvent]) -> None:
        self._emitted.append(text)
        self._emitted_len += len(text)
        out.append(TextDelta(text))
