"""Gemini API under ``/gemini``: generateContent, streamGenerateContent, countTokens, models.

Both ``v1beta`` and ``v1`` paths are served. ``generationConfig`` fields other than the JSON
output ones, and ``safetySettings``, are accepted and ignored: 1min.ai has no field for them.
Streams are SSE with ``?alt=sse`` (what the SDKs ask for) and a JSON array otherwise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
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
    Caller,
    ChatRequest,
    ChatResult,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    ModelInfo,
    Part,
    ResponseFormat,
    TextDelta,
    TextPart,
    ToolCall,
    Usage,
)
from onemin_relay.pipeline import ChatStream
from onemin_relay.surfaces.common import (
    PIPELINE,
    SETTINGS,
    bearer_or_header,
    convert,
    error_response,
    json_response,
    read_json,
    write_stream,
)
from onemin_relay.surfaces.gemini_schema import camelize, openapi_to_json_schema

# -- request shapes -----------------------------------------------------------------------


class _Blob(msgspec.Struct, rename="camel"):
    mime_type: str
    data: str


class _FileData(msgspec.Struct, rename="camel"):
    file_uri: str
    mime_type: str | None = None


class _FunctionCall(msgspec.Struct):
    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class _FunctionResponse(msgspec.Struct):
    name: str
    response: dict[str, Any] | None = None
    id: str | None = None


class _Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    inline_data: _Blob | None = None
    file_data: _FileData | None = None
    function_call: _FunctionCall | None = None
    function_response: _FunctionResponse | None = None
    thought: bool = False


class _Content(msgspec.Struct):
    parts: list[_Part]
    role: str | None = None


class _GenerationConfig(msgspec.Struct, rename="camel"):
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: dict[str, Any] | None = None


class _GenerateBody(msgspec.Struct, rename="camel"):
    contents: list[_Content] = []
    system_instruction: _Content | None = None
    generation_config: _GenerationConfig | None = None


class _CountBody(_GenerateBody, rename="camel"):
    generate_content_request: _GenerateBody | None = None


_JSON_STREAM_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


async def _read_body(request: web.Request, into: type[_GenerateBody]) -> Any:
    return convert(camelize(await read_json(request)), into)


# -- parse --------------------------------------------------------------------------------


def parse_request(model: str, body: _GenerateBody, *, stream: bool = False) -> ChatRequest:
    if not body.contents:
        raise InvalidRequest("contents is not specified", param="contents")
    messages: list[Message] = []
    if body.system_instruction is not None:
        text = "\n".join(p.text for p in body.system_instruction.parts if p.text)
        if text:
            messages.append(Message(role="system", parts=(TextPart(text),)))
    for index, content in enumerate(body.contents):
        messages.extend(_parse_content(content, index))
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=stream,
        response_format=_response_format(body.generation_config),
    )


def _response_format(config: _GenerationConfig | None) -> ResponseFormat | None:
    """JSON output: ``responseJsonSchema`` as given, ``responseSchema`` (Gemini's OpenAPI
    subset) converted to JSON Schema, JSON mode without a schema as any JSON value."""
    if config is None:
        return None
    if config.response_json_schema is not None:
        return ResponseFormat(
            kind="json_schema", name="response", schema=config.response_json_schema
        )
    if config.response_schema is not None:
        schema = openapi_to_json_schema(config.response_schema)
        return ResponseFormat(kind="json_schema", name="response", schema=schema)
    if (config.response_mime_type or "").startswith("application/json"):
        return ResponseFormat(kind="json_schema", name="response", schema={})
    return None


def _parse_content(content: _Content, index: int) -> list[Message]:
    role = "assistant" if content.role == "model" else "user"
    parts: list[Part] = []
    calls: list[ToolCall] = []
    results: list[Message] = []
    for number, part in enumerate(content.parts):
        if part.thought:
            continue
        if part.text is not None:
            parts.append(TextPart(part.text))
        elif part.inline_data is not None:
            blob = part.inline_data
            parts.append(ImagePart(f"data:{blob.mime_type};base64,{blob.data}"))
        elif part.file_data is not None:
            parts.append(ImagePart(part.file_data.file_uri))
        elif part.function_call is not None:
            call = part.function_call
            arguments = orjson.dumps(call.args or {}).decode()
            calls.append(ToolCall(call.id or f"call_{index}_{number}", call.name, arguments))
        elif part.function_response is not None:
            answer = part.function_response
            text = orjson.dumps(answer.response or {}).decode()
            results.append(
                Message(
                    role="tool", parts=(TextPart(text),), name=answer.name, tool_call_id=answer.id
                )
            )
    own = Message(role=role, parts=tuple(parts), tool_calls=tuple(calls))
    return [*results, own] if parts or calls else results


def caller_from(request: web.Request) -> Caller:
    """Gemini's key arrives as ``?key=``, ``x-goog-api-key`` or a bearer token."""
    key = bearer_or_header(request, "x-goog-api-key") or request.query.get("key") or None
    return Caller(api_key=key, client_ip=request.remote or "")


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


def render_result(result: ChatResult) -> dict[str, Any]:
    candidate = {
        "content": {"role": "model", "parts": [{"text": result.text}]},
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
        yield (b"[" if first else b",\r\n") + render_error_element(exc)
        first = False
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
    return {"error": {"code": exc.status, "message": exc.message, "status": status_name(exc)}}


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
    chat = parse_request(model, await _read_body(request, _GenerateBody))
    result = await request.app[PIPELINE].chat(chat, caller_from(request))
    return json_response(render_result(result))


async def _stream(request: web.Request, model: str) -> web.StreamResponse:
    chat = parse_request(model, await _read_body(request, _GenerateBody), stream=True)
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
    body = await _read_body(request, _CountBody)
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
    for version in ("v1beta", "v1"):
        base = f"/gemini/{version}/models"
        app.router.add_get(base, list_models)
        app.router.add_get(base + "/{name:.+}", get_model)
        app.router.add_post(base + "/{target:.+}", model_action)
