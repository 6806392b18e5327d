"""Gemini requests: the body's shapes and their translation into core types."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiohttp import web

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.media_types import check_image_data_uri
from onemin_relay.core.types import (
    Caller,
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    Role,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
)
from onemin_relay.surfaces.common import bearer_or_header, caller_with_key, convert, read_json
from onemin_relay.surfaces.gemini.schema import camelize, openapi_to_json_schema

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
    max_output_tokens: int | None = None
    candidate_count: int | None = None


class _FunctionDeclaration(msgspec.Struct, rename="camel"):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: dict[str, Any] | None = None


class _Tool(msgspec.Struct, rename="camel"):
    function_declarations: list[_FunctionDeclaration] = []


class _FunctionCallingConfig(msgspec.Struct, rename="camel"):
    mode: str = "AUTO"
    allowed_function_names: list[str] = []


class _ToolConfig(msgspec.Struct, rename="camel"):
    function_calling_config: _FunctionCallingConfig | None = None


class GenerateBody(msgspec.Struct, rename="camel"):
    contents: list[_Content] = []
    system_instruction: _Content | None = None
    generation_config: _GenerationConfig | None = None
    tools: list[_Tool] = []
    tool_config: _ToolConfig | None = None


class CountBody(GenerateBody, rename="camel"):
    generate_content_request: GenerateBody | None = None


async def read_body(request: web.Request, into: type[GenerateBody]) -> Any:
    return convert(camelize(await read_json(request)), into)


# -- parse --------------------------------------------------------------------------------


def parse_request(model: str, body: GenerateBody, *, stream: bool = False) -> ChatRequest:
    if not body.contents:
        raise InvalidRequest("contents is not specified", param="contents")
    config = body.generation_config
    _check_generation_config(config)
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
        max_output_tokens=config.max_output_tokens if config is not None else None,
        response_format=_response_format(config),
        tools=tuple(_tool_specs(body.tools)),
        tool_choice=_tool_choice(body.tool_config),
    )


def _check_generation_config(config: _GenerationConfig | None) -> None:
    if config is None:
        return
    if config.max_output_tokens is not None and config.max_output_tokens <= 0:
        raise InvalidRequest(
            f"maxOutputTokens must be positive, got {config.max_output_tokens}",
            param="generationConfig.maxOutputTokens",
        )
    if config.candidate_count is not None and config.candidate_count > 1:
        raise InvalidRequest(
            "only one candidate is supported: candidateCount must be 1",
            param="generationConfig.candidateCount",
        )


def _tool_specs(tools: list[_Tool]) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for tool in tools:
        for declaration in tool.function_declarations:
            schema = declaration.parameters_json_schema
            if schema is None and declaration.parameters is not None:
                schema = openapi_to_json_schema(declaration.parameters)
            specs.append(ToolSpec(declaration.name, declaration.description, schema))
    return specs


def _tool_choice(config: _ToolConfig | None) -> ToolChoice | None:
    """Gemini's modes: AUTO, ANY (must call; one allowed name = that tool), NONE."""
    calling = config.function_calling_config if config else None
    if calling is None:
        return None
    mode = calling.mode.upper()
    if mode == "NONE":
        return ToolChoice("none")
    if mode in ("ANY", "VALIDATED") and len(calling.allowed_function_names) == 1:
        return ToolChoice("named", calling.allowed_function_names[0])
    return ToolChoice("required" if mode == "ANY" else "auto")


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


# The roles Gemini accepts on ``contents``; an omitted role is the user's.
_ROLES = frozenset({"user", "model", "function", "tool"})


def _parse_content(content: _Content, index: int) -> list[Message]:
    if content.role and content.role not in _ROLES:
        raise InvalidRequest(
            f"Please use a valid role: user, model (got {content.role!r})",
            param=f"contents[{index}].role",
        )
    role: Role = "assistant" if content.role == "model" else "user"
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
            uri = f"data:{blob.mime_type};base64,{blob.data}"
            check_image_data_uri(uri, f"contents[{index}].parts[{number}].inlineData")
            parts.append(ImagePart(uri))
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
    return caller_with_key(request, key)
