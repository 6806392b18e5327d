"""Anthropic Messages: ``POST /v1/messages`` (and under ``/anthropic``), token counting, models.

Only protocol translation lives here; the pipeline, upstream client and token counting are
the ones every surface uses. ``temperature``, ``top_p``, ``top_k``, ``stop_sequences``,
``metadata`` and the ``anthropic-version`` / ``anthropic-beta`` headers are accepted and
ignored: 1min.ai has no field for them.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
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
    ChatRequest,
    ChatResult,
    FilePart,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    ModelInfo,
    Part,
    TextDelta,
    TextPart,
    ToolCall,
)
from onemin_relay.pipeline import ChatStream
from onemin_relay.surfaces.common import (
    PIPELINE,
    SETTINGS,
    caller_from,
    error_response,
    json_response,
    read_body,
    write_stream,
)

# -- request shapes -----------------------------------------------------------------------


class _Source(msgspec.Struct):
    type: Literal["base64", "url", "text"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class _Text(msgspec.Struct, tag="text"):
    text: str


class _Image(msgspec.Struct, tag="image"):
    source: _Source


class _Document(msgspec.Struct, tag="document"):
    source: _Source
    title: str | None = None


class _ToolUse(msgspec.Struct, tag="tool_use"):
    id: str
    name: str
    input: Any = None


class _ToolResult(msgspec.Struct, tag="tool_result"):
    tool_use_id: str
    content: str | list[_Text | _Image] | None = None
    is_error: bool = False


class _Thinking(msgspec.Struct, tag="thinking"):
    thinking: str = ""


class _RedactedThinking(msgspec.Struct, tag="redacted_thinking"):
    data: str = ""


_Block = _Text | _Image | _Document | _ToolUse | _ToolResult | _Thinking | _RedactedThinking


class _Message(msgspec.Struct):
    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _CountBody(msgspec.Struct):
    model: str
    messages: list[_Message]
    system: str | list[_Text] | None = None


class _MessagesBody(_CountBody, kw_only=True):
    max_tokens: int  # required, as Anthropic requires it (and then has nowhere to go)
    stream: bool = False


_messages_decoder = msgspec.json.Decoder(_MessagesBody)
_count_decoder = msgspec.json.Decoder(_CountBody)

# -- parse --------------------------------------------------------------------------------


def parse_request(body: _CountBody, *, stream: bool = False) -> ChatRequest:
    if not body.model.strip():
        raise InvalidRequest("model: must not be empty", param="model")
    if not body.messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    messages: list[Message] = []
    if body.system:
        system = (
            body.system if isinstance(body.system, str) else "\n".join(b.text for b in body.system)
        )
        messages.append(Message(role="system", parts=(TextPart(system),)))
    for index, message in enumerate(body.messages):
        messages.extend(_parse_message(message, index))
    return ChatRequest(model=body.model.strip(), messages=tuple(messages), stream=stream)


def _parse_message(message: _Message, index: int) -> list[Message]:
    """One Anthropic message → core messages: tool results become their own tool messages."""
    if isinstance(message.content, str):
        return [Message(role=message.role, parts=(TextPart(message.content),))]
    parts: list[Part] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for block in message.content:
        match block:
            case _Text(text=text):
                parts.append(TextPart(text))
            case _Image(source=source):
                parts.append(ImagePart(_image_url(source, index)))
            case _Document(source=source, title=title):
                parts.append(_document_part(source, title, index))
            case _ToolUse(id=call_id, name=name, input=arguments):
                calls.append(ToolCall(call_id, name, orjson.dumps(arguments).decode()))
            case _ToolResult():
                results.append(_tool_result(block, index))
    own = Message(role=message.role, parts=tuple(parts), tool_calls=tuple(calls))
    return [*results, own] if parts or calls else results


def _image_url(source: _Source, index: int) -> str:
    if source.type == "url" and source.url:
        return source.url
    if source.type == "base64" and source.data:
        return f"data:{source.media_type or 'image/png'};base64,{source.data}"
    raise InvalidRequest("image source must be base64 data or a url", param=f"messages.{index}")


def _document_part(source: _Source, title: str | None, index: int) -> Part:
    if source.type == "text":
        return TextPart(f"{title}\n{source.data or ''}" if title else source.data or "")
    if source.type != "base64" or not source.data:
        raise InvalidRequest(
            "document sources must be base64 (url documents are not supported)",
            param=f"messages.{index}",
        )
    try:
        data = base64.b64decode(source.data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            "document data is not valid base64", param=f"messages.{index}"
        ) from None
    media_type = source.media_type or "application/pdf"
    return FilePart(data=data, media_type=media_type, filename=title)


def _tool_result(block: _ToolResult, index: int) -> Message:
    content = block.content
    if content is None:
        parts: tuple[Part, ...] = ()
    elif isinstance(content, str):
        parts = (TextPart(content),)
    else:
        parts = tuple(
            TextPart(b.text) if isinstance(b, _Text) else ImagePart(_image_url(b.source, index))
            for b in content
        )
    if block.is_error:
        parts = (TextPart("(error)"), *parts)
    return Message(role="tool", parts=parts, tool_call_id=block.tool_use_id)


# -- render -------------------------------------------------------------------------------

_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def render_result(result: ChatResult) -> dict[str, Any]:
    return {
        "id": "msg_" + result.id,
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": [{"type": "text", "text": result.text}],
        "stop_reason": _STOP_REASONS[result.finish_reason],
        "stop_sequence": None,
        "usage": {
            "input_tokens": result.usage.input_tokens,
            "output_tokens": result.usage.output_tokens,
        },
    }


_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'


def _event(name: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


async def render_events(stream: ChatStream, input_tokens: int) -> AsyncIterator[bytes]:
    """The exact Messages event sequence; the input count in ``message_start`` is local and
    ``message_delta`` carries 1min.ai's final figures."""
    message = {
        "id": "msg_" + stream.id,
        "type": "message",
        "role": "assistant",
        "model": stream.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": 0},
    }
    yield _event(b"message_start", {"type": "message_start", "message": message})
    yield _event(
        b"content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    yield b'event: ping\ndata: {"type":"ping"}\n\n'
    delta_head = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    async for event in stream.events:
        match event:
            case TextDelta(text=text):
                delta = orjson.dumps({"type": "text_delta", "text": text})
                yield delta_head + b'"delta":' + delta + b"}\n\n"
            case Finish(reason=reason, usage=usage):
                yield _BLOCK_STOP
                counts = {"output_tokens": usage.output_tokens if usage else 0}
                if usage is not None:
                    counts["input_tokens"] = usage.input_tokens
                yield _event(
                    b"message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": _STOP_REASONS[reason], "stop_sequence": None},
                        "usage": counts,
                    },
                )
                yield b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


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
    return {"type": "error", "error": {"type": error_type(exc), "message": exc.message}}


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
    body = await read_body(request, _messages_decoder)
    if body.max_tokens < 1:
        raise InvalidRequest("max_tokens: must be at least 1", param="max_tokens")
    chat = parse_request(body, stream=body.stream)
    pipeline = request.app[PIPELINE]
    caller = caller_from(request, "x-api-key")
    if not chat.stream:
        return json_response(render_result(await pipeline.chat(chat, caller)))
    input_tokens = await pipeline.count_tokens(chat, caller)
    async with pipeline.stream(chat, caller) as stream:
        frames = render_events(stream, input_tokens)
        timeout = request.app[SETTINGS].write_timeout
        return await write_stream(request, frames, render_error_frame, timeout)


async def count_tokens(request: web.Request) -> web.Response:
    chat = parse_request(await read_body(request, _count_decoder))
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
