"""Server-sent events decoded in stages: bytes → UTF-8 text → lines → events.

Each stage is a small stateful decoder with ``decode()`` for the next piece of input and
``flush()`` for end of input, in the manner of httpx's ``_decoders.py``. Because every stage
carries its own partial state across calls, a network chunk may end anywhere — inside a
multi-byte character, between ``\\r`` and ``\\n``, in the middle of a field — and the events
come out the same as if the whole body had arrived at once. Pure code, no I/O.
"""

from __future__ import annotations

import codecs

import msgspec

__all__ = ["LineDecoder", "SSEDecoder", "SSEEvent", "SSEEventDecoder", "Utf8Decoder"]


class SSEEvent(msgspec.Struct, frozen=True):
    """One dispatched event: its name ("message" when none was given) and its data."""

    event: str
    data: str


class Utf8Decoder:
    """Incremental UTF-8: a character split across chunks is held until it is complete."""

    __slots__ = ("_decoder",)

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def decode(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", True)


class LineDecoder:
    """Split text into lines on ``\\n``, ``\\r\\n`` or a lone ``\\r`` (the SSE line endings).

    Only those three end a line: ``str.splitlines()`` would also split on U+2028 and friends,
    which JSON allows raw inside a string.
    """

    __slots__ = ("_partial", "_trailing_cr")

    def __init__(self) -> None:
        # Pieces of the unterminated line, joined once its end arrives: a long line (a big
        # `result` record) fed in small chunks must not be re-copied on every chunk.
        self._partial: list[str] = []
        self._trailing_cr = False

    def decode(self, text: str) -> list[str]:
        if self._trailing_cr:
            text = "\r" + text
            self._trailing_cr = False
        # We always push a trailing `\r` into the next decode iteration.
        if text.endswith("\r"):
            self._trailing_cr = True
            text = text[:-1]
        if not text:
            return []
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        if len(lines) == 1:
            self._partial.append(text)
            return []
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
        last = lines.pop()
        self._partial = [last] if last else []
        return lines

    def flush(self) -> list[str]:
        """The unterminated last line, if any (a pending ``\\r`` terminates it)."""
        if not self._partial and not self._trailing_cr:
            return []
        line = "".join(self._partial)
        self._partial = []
        self._trailing_cr = False
        return [line]


class SSEEventDecoder:
    """Turn lines into events following the WHATWG event-stream interpretation rules.

    ``event`` and ``data`` fields are kept (several ``data`` lines join with ``\\n``), ``id``,
    ``retry``, unknown fields and ``:`` comments are dropped, and a blank line dispatches the
    event if it has data. Unlike a browser, ``flush()`` also dispatches an event that the
    stream ended without a blank line after: its data is complete, only the separator is lost.
    """

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def decode(self, lines: list[str]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._dispatch())
                else:
                    self._event = ""
                continue
            colon = line.find(":")
            if colon == 0:
                continue
            if colon < 0:
                name, value = line, ""
            else:
                name, value = line[:colon], line[colon + 1 :]
                if value[:1] == " ":
                    value = value[1:]
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
        return events

    def flush(self) -> list[SSEEvent]:
        if not self._data:
            self._event = ""
            return []
        return [self._dispatch()]

    def _dispatch(self) -> SSEEvent:
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        event = SSEEvent(self._event or "message", data)
        self._event = ""
        self._data = []
        return event


class SSEDecoder:
    """Bytes in, events out: the three stages above chained."""

    __slots__ = ("_events", "_lines", "_text")

    def __init__(self) -> None:
        self._text = Utf8Decoder()
        self._lines = LineDecoder()
        self._events = SSEEventDecoder()

    def decode(self, chunk: bytes) -> list[SSEEvent]:
        return self._events.decode(self._lines.decode(self._text.decode(chunk)))

    def flush(self) -> list[SSEEvent]:
        lines = self._lines.decode(self._text.flush())
        lines += self._lines.flush()
        events = self._events.decode(lines)
        events += self._events.flush()
        return events
