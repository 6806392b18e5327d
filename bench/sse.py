"""Watching one streamed reply: when its first real content arrived, whether it finished cleanly.

Direct (1min.ai) streams are named SSE events: ``event: content`` with ``{"content": "…"}``,
then ``result`` and ``done``; ``event: error`` is a failure. Relayed (OpenAI) streams are
``data: {chat.completion.chunk}`` frames ending with ``data: [DONE]``; a ``data:`` object with
an ``error`` key is a failure. The first *non-empty* content delta marks time to first byte.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson


class StreamWatch:
    __slots__ = (
        "_buffer",
        "_clock",
        "_on_first",
        "_relayed",
        "deltas",
        "done",
        "ended",
        "error",
        "first",
        "ok",
        "sent",
    )

    def __init__(
        self,
        relayed: bool,
        clock: Callable[[], float],
        on_first: Callable[[], None] | None = None,
    ) -> None:
        self._relayed = relayed
        self._clock = clock
        self._on_first = on_first
        self._buffer = b""
        self.sent = self.ended = 0.0
        self.first: float | None = None
        self.deltas = 0
        self.done = self.error = self.ok = False

    def feed(self, data: bytes) -> None:
        frames = (self._buffer + data).split(b"\n\n")
        self._buffer = frames.pop()
        for frame in frames:
            event, payload = _parse_frame(frame)
            if self._relayed:
                self._relayed_frame(payload)
            else:
                self._direct_frame(event, payload)

    def check(self, status: int, expect_deltas: int) -> None:
        """Settle ``ok``: HTTP 200, no error, finished, and the expected number of deltas."""
        enough = not expect_deltas or self.deltas == expect_deltas
        self.ok = status == 200 and self.done and not self.error and enough

    def _content(self, text: object) -> None:
        if not text:
            return
        self.deltas += 1
        if self.first is None:
            self.first = self._clock()
            if self._on_first is not None:
                self._on_first()

    def _direct_frame(self, event: bytes, payload: bytes) -> None:
        if event == b"content":
            self._content(orjson.loads(payload).get("content"))
        elif event == b"done":
            self.done = True
        elif event == b"error":
            self.error = True

    def _relayed_frame(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            self.done = True
            return
        if not payload:
            return
        chunk = orjson.loads(payload)
        if "error" in chunk:
            self.error = True
            return
        for choice in chunk.get("choices") or ():
            self._content((choice.get("delta") or {}).get("content"))


def _parse_frame(frame: bytes) -> tuple[bytes, bytes]:
    """The event name and the (joined) data of one SSE frame."""
    event = b""
    data: list[bytes] = []
    for line in frame.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            event = line[6:].strip()
    return event, b"\n".join(data)
