"""OpenAI Responses streams: the ordered, numbered event sequence of one response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, assert_never

import orjson

from onemin_relay.core.errors import RelayError
from onemin_relay.core.types import Finish, TextDelta, ToolCall, ToolCallEvent
from onemin_relay.pipeline import ChatStream
from onemin_relay.surfaces.common import ReportedInStream
from onemin_relay.surfaces.openai.errors import error_body
from onemin_relay.surfaces.openai.responses_objects import (
    final_status,
    function_call_item,
    message_item,
    response_body,
    text_part,
)
from onemin_relay.surfaces.openai.responses_parse import ResponseShell

# Called with the final response object (JSON), the answer text and its tool calls before the
# terminal event is sent, so a follow-up sent the moment the client sees it can find it.
OnFinal: TypeAlias = Callable[[bytes, str, tuple[ToolCall, ...]], Awaitable[None]]


# -- stream -------------------------------------------------------------------------------


class _Frames:
    """SSE frames of one response stream, numbered in the order they are made.

    The constant head of a text delta is encoded once per stream.
    """

    def __init__(self, item_id: str) -> None:
        self._number = 0
        self._delta_head = (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta"'
            b',"item_id":' + orjson.dumps(item_id) + b',"output_index":0,"content_index":0'
            b',"logprobs":[],"delta":'
        )

    def _next(self) -> bytes:
        number = self._number
        self._number += 1
        return b',"sequence_number":' + str(number).encode() + b"}\n\n"

    def event(self, kind: str, body: dict[str, Any]) -> bytes:
        data = orjson.dumps({"type": kind, **body})[:-1]
        return b"event: " + kind.encode() + b"\ndata: " + data + self._next()

    def lifecycle(self, kind: str, response: bytes) -> bytes:
        """An event carrying the whole response object, already encoded."""
        head = b"event: " + kind.encode() + b'\ndata: {"type":"' + kind.encode()
        return head + b'","response":' + response + self._next()

    def delta(self, text: str) -> bytes:
        return self._delta_head + orjson.dumps(text) + self._next()

    def error(self, exc: RelayError) -> bytes:
        nested = error_body(exc)
        flat = {"code": exc.code, "message": exc.message, "param": exc.param}
        return self.event("error", {**flat, **nested})


async def render_events(
    stream: ChatStream, shell: ResponseShell, on_final: OnFinal
) -> AsyncIterator[bytes]:
    """The SSE frames of one response (see the module doc for the order)."""
    frames = _Frames(shell.message_id)
    started = orjson.dumps(response_body(shell, "in_progress", []))
    yield frames.lifecycle("response.created", started)
    yield frames.lifecycle("response.in_progress", started)
    item = message_item(shell, None, "in_progress")
    yield frames.event("response.output_item.added", {"output_index": 0, "item": item})
    place = {"item_id": shell.message_id, "output_index": 0, "content_index": 0}
    yield frames.event("response.content_part.added", {**place, "part": text_part("")})
    pieces: list[str] = []
    calls: list[ToolCall] = []
    try:
        async for event in stream.events:
            match event:
                case TextDelta(text=text):
                    pieces.append(text)
                    yield frames.delta(text)
                case ToolCallEvent(index=index, call=call):
                    calls.append(call)
                    for frame in _function_call_frames(frames, index + 1, call):
                        yield frame
                case Finish():
                    text = "".join(pieces)
                    closing = _closing(frames, shell, text, tuple(calls), event, on_final)
                    async for frame in closing:
                        yield frame
                case _:
                    assert_never(event)
    except RelayError as exc:
        text = "".join(pieces)
        output = [message_item(shell, text, "incomplete")] if text else []
        failed = orjson.dumps(response_body(shell, "failed", output, error=exc))
        await on_final(failed, text, ())
        yield frames.lifecycle("response.failed", failed)
        yield frames.error(exc)
        raise ReportedInStream(exc) from exc


def _function_call_frames(frames: _Frames, output_index: int, call: ToolCall) -> list[bytes]:
    """A function_call item: added, its arguments as one delta, done."""
    item = function_call_item(call)
    place = {"item_id": item["id"], "output_index": output_index}
    return [
        frames.event(
            "response.output_item.added",
            {"output_index": output_index, "item": function_call_item(call, "in_progress")},
        ),
        frames.event("response.function_call_arguments.delta", {**place, "delta": call.arguments}),
        frames.event(
            "response.function_call_arguments.done",
            {**place, "name": call.name, "arguments": call.arguments},
        ),
        frames.event("response.output_item.done", {"output_index": output_index, "item": item}),
    ]


async def _closing(
    frames: _Frames,
    shell: ResponseShell,
    text: str,
    calls: tuple[ToolCall, ...],
    finish: Finish,
    on_final: OnFinal,
) -> AsyncIterator[bytes]:
    """Close the message announced at output index 0 (the function calls are already done)."""
    place = {"item_id": shell.message_id, "output_index": 0, "content_index": 0}
    yield frames.event("response.output_text.done", {**place, "text": text, "logprobs": []})
    yield frames.event("response.content_part.done", {**place, "part": text_part(text)})
    status = final_status(finish.reason)
    item = message_item(shell, text, status)
    yield frames.event("response.output_item.done", {"output_index": 0, "item": item})
    output = [item, *(function_call_item(call) for call in calls)]
    body = response_body(shell, status, output, finish.usage, finish_reason=finish.reason)
    final = orjson.dumps(body)
    await on_final(final, text, calls)
    yield frames.lifecycle(f"response.{status}", final)
