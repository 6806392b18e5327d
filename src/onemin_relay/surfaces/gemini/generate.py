"""Gemini API under ``/gemini``: generateContent, streamGenerateContent, countTokens, models.

``v1beta``, ``v1`` and unversioned (``/gemini/models/…``) paths are served.
``generationConfig`` fields other than the JSON output ones, and ``safetySettings``, are
accepted and ignored: 1min.ai has no field for them.
Streams are SSE with ``?alt=sse`` (what the SDKs ask for) and a JSON array otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from onemin_relay.core.errors import (
    AuthenticationFailed,
    InsufficientBalance,
    InvalidRequest,
    NotFound,
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
from onemin_relay.surfaces.common import (
    PIPELINE,
    SETTINGS,
    ReportedInStream,
    error_response,
    json_response,
    write_stream,
)
from onemin_relay.surfaces.gemini.parse import (
    CountBody,
    GenerateBody,
    caller_from,
    parse_request,
    read_body,
)

_JSON_STREAM_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


# -- render -------------------------------------------------------------------------------

_FINISH_REASONS: dict[FinishReason, str] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "tool_calls": "STOP",
}


def usage_metadata(usage: Usage) -> dict[str, int]:
    return {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.total_tokens,
    }


def render_function_call(call: ToolCall) -> dict[str, Any]:
    return {
        "functionCall": {"id": call.id, "name": call.name, "args": orjson.loads(call.arguments)}
    }


def render_parts(result: ChatResult) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if result.text or not result.tool_calls:
        parts.append({"text": result.text})
    parts.extend(render_function_call(call) for call in result.tool_calls)
    return parts


def render_result(result: ChatResult) -> dict[str, Any]:
    candidate = {
        "content": {"role": "model", "parts": render_parts(result)},
        "finishReason": _FINISH_REASONS[result.finish_reason],
        "index": 0,
    }
    return {
        "candidates": [candidate],
        "usageMetadata": usage_metadata(result.usage),
        "modelVersion": result.model,
        "responseId": result.id,
    }


async def render_chunks(stream: ChatStream) -> AsyncIterator[bytes]:
    """One ``GenerateContentResponse`` JSON per delta; the last carries finishReason and usage."""
    tail = orjson.dumps({"modelVersion": stream.model, "responseId": stream.id})[1:]
    head = b'{"candidates":[{"content":{"role":"model","parts":[{"text":'
    async for event in stream.events:
        match event:
            case TextDelta(text=text):
                yield head + orjson.dumps(text) + b'}]},"index":0}],' + tail
            case ToolCallEvent(call=call):
                content = {"role": "model", "parts": [render_function_call(call)]}
                yield (
                    b'{"candidates":['
                    + orjson.dumps({"content": content, "index": 0})
                    + b"],"
                    + tail
                )
            case Finish(reason=reason, usage=usage):
                final: dict[str, Any] = {
                    "candidates": [
                        {
                            "content": {"role": "model", "parts": [{"text": ""}]},
                            "finishReason": _FINISH_REASONS[reason],
                            "index": 0,
                        }
                    ],
                    "modelVersion": stream.model,
                    "responseId": stream.id,
                }
                if usage is not None:
                    final["usageMetadata"] = usage_metadata(usage)
                yield orjson.dumps(final)


async def as_sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield b"data: " + chunk + b"\r\n\r\n"


async def as_json_array(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream without ``alt=sse``: one JSON array, written element by element.

    An error after the first element is appended as a last element, then the array closes.
    """
    first = True
    try:
        async for chunk in chunks:
            yield (b"[" if first else b",\r\n") + chunk
            first = False
    except RelayError as exc:
        yield (b"[" if first else b",\r\n") + render_error_element(exc) + b"]"
        raise ReportedInStream(exc) from exc
    yield b"[]" if first else b"]"


_STATUS_NAMES: tuple[tuple[type[RelayError], str], ...] = (
    (InvalidRequest, "INVALID_ARGUMENT"),
    (AuthenticationFailed, "UNAUTHENTICATED"),
    (InsufficientBalance, "RESOURCE_EXHAUSTED"),
    (PermissionDenied, "PERMISSION_DENIED"),
    (NotFound, "NOT_FOUND"),
    (RateLimited, "RESOURCE_EXHAUSTED"),
    (UpstreamUnavailable, "UNAVAILABLE"),
    (UpstreamTimeout, "DEADLINE_EXCEEDED"),
)


def status_name(exc: RelayError) -> str:
    for kind, name in _STATUS_NAMES:
        if isinstance(exc, kind):
            return name
    return "INVALID_ARGUMENT" if exc.status < 500 else "INTERNAL"


def error_body(exc: RelayError) -> dict[str, Any]:
    error = {"code": exc.status, "message": exc.message, "status": status_name(exc)}
    if exc.kind:
        error["reason"] = exc.kind
    return {"error": {**error, **exc.details}}


def render_error(exc: RelayError) -> web.Response:
    return error_response(exc, error_body(exc))


def render_error_element(exc: RelayError) -> bytes:
    return orjson.dumps(error_body(exc))


def render_error_frame(exc: RelayError) -> bytes:
    return b"data: " + orjson.dumps(error_body(exc)) + b"\r\n\r\n"


def render_model(model: ModelInfo) -> dict[str, Any]:
    return {
        "name": "models/" + model.id,
        "baseModelId": model.id,
        "version": "001",
        "displayName": model.name,
        "description": f"{model.name}, served by 1min.ai",
        "inputTokenLimit": model.context_window or 0,
        "outputTokenLimit": model.max_output_tokens or 0,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    }


# -- handlers -----------------------------------------------------------------------------


async def model_action(request: web.Request) -> web.StreamResponse:
    """``models/{model}:{method}``; model ids may themselves hold ``/`` and ``:``."""
    model, _, method = request.match_info["target"].rpartition(":")
    if not model:
        raise NotFound(f"no method in {request.match_info['target']!r}")
    if method == "generateContent":
        return await _generate(request, model)
    if method == "streamGenerateContent":
        return await _stream(request, model)
    if method == "countTokens":
        return await _count(request, model)
    raise NotFound(f"method {method!r} is not supported")


async def _generate(request: web.Request, model: str) -> web.Response:
    chat = parse_request(model, await read_body(request, GenerateBody))
    result = await request.app[PIPELINE].chat(chat, caller_from(request))
    return json_response(render_result(result))


async def _stream(request: web.Request, model: str) -> web.StreamResponse:
    chat = parse_request(model, await read_body(request, GenerateBody), stream=True)
    pipeline = request.app[PIPELINE]
    timeout = request.app[SETTINGS].write_timeout
    async with pipeline.stream(chat, caller_from(request)) as stream:
        if request.query.get("alt") == "sse":
            frames = as_sse(render_chunks(stream))
            return await write_stream(request, frames, render_error_frame, timeout)
        pieces = as_json_array(render_chunks(stream))
        # as_json_array places an error inside the array itself
        return await write_stream(
            request, pieces, render_error_element, timeout, _JSON_STREAM_HEADERS
        )


async def _count(request: web.Request, model: str) -> web.Response:
    body = await read_body(request, CountBody)
    source = body.generate_content_request or body
    chat = parse_request(model, source)
    tokens = await request.app[PIPELINE].count_tokens(chat, caller_from(request))
    return json_response({"totalTokens": tokens})


async def list_models(request: web.Request) -> web.Response:
    models, _ = await request.app[PIPELINE].models()
    return json_response({"models": [render_model(m) for m in models if m.kind == "chat"]})


async def get_model(request: web.Request) -> web.Response:
    model, _ = await request.app[PIPELINE].model(request.match_info["name"])
    return json_response(render_model(model))


def add_routes(app: web.Application) -> None:
    # unversioned too: LiteLLM's Gemini provider, given the base URL ``…/gemini``, calls
    # ``/gemini/models/{model}:generateContent``
    for base in ("/gemini/v1beta/models", "/gemini/v1/models", "/gemini/models"):
        app.router.add_get(base, list_models)
        app.router.add_get(base + "/{name:.+}", get_model)
        app.router.add_post(base + "/{target:.+}", model_action)
