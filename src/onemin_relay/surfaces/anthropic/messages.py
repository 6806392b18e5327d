"""Anthropic Messages: ``POST /v1/messages`` (and under ``/anthropic``), token counting, models.

Only protocol translation lives here; the pipeline, upstream client and token counting are
the ones every surface uses. ``temperature``, ``top_p``, ``top_k``, ``stop_sequences``,
``metadata`` and the ``anthropic-version`` / ``anthropic-beta`` headers are accepted and
ignored: 1min.ai has no field for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from onemin_relay.core.errors import (
    AuthenticationFailed,
    InsufficientBalance,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RelayError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from onemin_relay.core.types import (
    ChatResult,
    Finish,
    FinishReason,
    ModelInfo,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from onemin_relay.pipeline import ChatStream
from onemin_relay.surfaces.anthropic.parse import count_decoder, messages_decoder, parse_request
from onemin_relay.surfaces.common import (
    PIPELINE,
    SETTINGS,
    caller_from,
    error_response,
    json_response,
    read_body,
    write_stream,
)

# -- render -------------------------------------------------------------------------------

_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


_TOOL_ID_PREFIX = "toolu_"
_ZERO_CACHE = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def tool_use_id(call: ToolCall) -> str:
    """Anthropic's id shape (``toolu_…``); ids that already have it pass unchanged. Ids
    only label a call in the history, so a client sending one back needs no mapping."""
    if call.id.startswith(_TOOL_ID_PREFIX):
        return call.id
    return _TOOL_ID_PREFIX + call.id.removeprefix("call_")


def render_tool_use(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": tool_use_id(call),
        "name": call.name,
        "input": orjson.loads(call.arguments),
    }


def render_content(result: ChatResult) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if result.text or not result.tool_calls:
        blocks.append({"type": "text", "text": result.text})
    blocks.extend(render_tool_use(call) for call in result.tool_calls)
    return blocks


def render_result(result: ChatResult) -> dict[str, Any]:
    return {
        "id": "msg_" + result.id,
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": render_content(result),
        "stop_reason": _STOP_REASONS[result.finish_reason],
        "stop_sequence": None,
        "usage": {
            "input_tokens": result.usage.input_tokens,
            **_ZERO_CACHE,
            "output_tokens": result.usage.output_tokens,
        },
    }


_PING = b'event: ping\ndata: {"type":"ping"}\n\n'


def _event(name: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _block_stop(index: int) -> bytes:
    return _event(b"content_block_stop", {"type": "content_block_stop", "index": index})


def _text_start(index: int) -> bytes:
    block = {"type": "text", "text": ""}
    return _event(
        b"content_block_start",
        {"type": "content_block_start", "index": index, "content_block": block},
    )


async def render_events(stream: ChatStream, input_tokens: int) -> AsyncIterator[bytes]:
    """The exact Messages event sequence; the input count in ``message_start`` is local and
    ``message_delta`` carries 1min.ai's final figures. A text block opens on the first text
    (none before a tool call that has no text); ``ping`` follows the first block start."""
    message: dict[str, Any] = {
        "id": "msg_" + stream.id,
        "type": "message",
        "role": "assistant",
        "model": stream.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, **_ZERO_CACHE, "output_tokens": 0},
    }
    yield _event(b"message_start", {"type": "message_start", "message": message})
    blocks = 0  # content blocks started so far
    text_index: int | None = None  # the open text block, if any
    async for event in stream.events:
        match event:
            case TextDelta(text=text):
                if text_index is None:
                    text_index, blocks = blocks, blocks + 1
                    yield _text_start(text_index)
                    if blocks == 1:
                        yield _PING
                delta = {"type": "text_delta", "text": text}
                yield _event(
                    b"content_block_delta",
                    {"type": "content_block_delta", "index": text_index, "delta": delta},
                )
            case ToolCallEvent(call=call):
                if text_index is not None:
                    yield _block_stop(text_index)
                    text_index = None
                start, *rest = _tool_use_frames(blocks, call)
                yield start
                blocks += 1
                if blocks == 1:
                    yield _PING
                for frame in rest:
                    yield frame
            case Finish(reason=reason, usage=usage):
                if blocks == 0:  # an empty reply is still one (empty) text block
                    yield _text_start(0)
                    yield _PING
                    text_index = 0
                if text_index is not None:
                    yield _block_stop(text_index)
                yield _message_delta(reason, usage)
                yield b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def _message_delta(reason: FinishReason, usage: Usage | None) -> bytes:
    """The closing ``message_delta``: why the reply stopped, and 1min.ai's final counts."""
    counts: dict[str, int] = {}
    if usage is not None:
        counts = {"input_tokens": usage.input_tokens, **_ZERO_CACHE}
    counts["output_tokens"] = usage.output_tokens if usage else 0
    delta = {"stop_reason": _STOP_REASONS[reason], "stop_sequence": None}
    return _event(b"message_delta", {"type": "message_delta", "delta": delta, "usage": counts})


def _tool_use_frames(index: int, call: ToolCall) -> tuple[bytes, ...]:
    """A tool_use block, its whole input as one ``input_json_delta``, and its stop."""
    block = {"type": "tool_use", "id": tool_use_id(call), "name": call.name, "input": {}}
    delta = {"type": "input_json_delta", "partial_json": call.arguments}
    return (
        _event(
            b"content_block_start",
            {"type": "content_block_start", "index": index, "content_block": block},
        ),
        _event(
            b"content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        ),
        _block_stop(index),
    )


def error_type(exc: RelayError) -> str:
    match exc:
        case InvalidRequest():
            return "invalid_request_error"
        case AuthenticationFailed():
            return "authentication_error"
        case InsufficientBalance():
            return "billing_error"
        case PermissionDenied():
            return "permission_error"
        case NotFound():
            return "not_found_error"
        case PayloadTooLarge():
            return "request_too_large"
        case RateLimited():
            return "rate_limit_error"
        case UpstreamUnavailable():
            return "overloaded_error"
        case UpstreamTimeout():
            return "timeout_error"
    return "invalid_request_error" if exc.status < 500 else "api_error"


def error_body(exc: RelayError) -> dict[str, Any]:
    error = {"type": exc.kind or error_type(exc), "message": exc.message, **exc.details}
    return {"type": "error", "error": error}


def render_error(exc: RelayError) -> web.Response:
    return error_response(exc, error_body(exc))


def render_error_frame(exc: RelayError) -> bytes:
    return _event(b"error", error_body(exc))


def render_model(model: ModelInfo, created: int) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.name,
        "created_at": datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z"),
    }


# -- handlers -----------------------------------------------------------------------------


async def create_message(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, messages_decoder)
    if body.max_tokens < 1:
        raise InvalidRequest("max_tokens: must be at least 1", param="max_tokens")
    chat = parse_request(body, stream=body.stream)
    pipeline = request.app[PIPELINE]
    caller = caller_from(request, "x-api-key")
    if not chat.stream:
        return json_response(render_result(await pipeline.chat(chat, caller)))
    async with pipeline.stream(chat, caller) as stream:
        frames = render_events(stream, await stream.estimate_input_tokens())
        timeout = request.app[SETTINGS].write_timeout
        return await write_stream(request, frames, render_error_frame, timeout)


async def count_tokens(request: web.Request) -> web.Response:
    chat = parse_request(await read_body(request, count_decoder))
    tokens = await request.app[PIPELINE].count_tokens(chat, caller_from(request, "x-api-key"))
    return json_response({"input_tokens": tokens})


async def list_models(request: web.Request) -> web.Response:
    models, created = await request.app[PIPELINE].models()
    data = [render_model(m, created) for m in models if m.kind == "chat"]
    return json_response(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


async def get_model(request: web.Request) -> web.Response:
    model, created = await request.app[PIPELINE].model(request.match_info["model"])
    return json_response(render_model(model, created))


def add_routes(app: web.Application) -> None:
    for prefix in ("", "/anthropic"):
        app.router.add_post(prefix + "/v1/messages", create_message)
        app.router.add_post(prefix + "/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/anthropic/v1/models", list_models)
    app.router.add_get("/anthropic/v1/models/{model:.+}", get_model)
