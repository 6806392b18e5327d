"""OpenAI chat completions requests: the body's shapes (only the fields the relay reads),
validated and turned into core types.

Sampling parameters 1min.ai has no field for (temperature, top_p, stop, seed, …) are
accepted and ignored: unknown fields are skipped by the decoder.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.media_types import check_image_data_uri
from onemin_relay.core.types import (
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
)
from onemin_relay.gateway import traces
from onemin_relay.gateway.routing import fallback_list
from onemin_relay.surfaces.common import (
    convert,
    file_part,
)

# -- request shapes (only the fields the relay reads) -------------------------------------


class _TextContent(msgspec.Struct, tag="text"):
    text: str


class _ImageURL(msgspec.Struct):
    url: str
    detail: str | None = None


class _ImageContent(msgspec.Struct, tag="image_url"):
    image_url: _ImageURL


class _FileData(msgspec.Struct):
    file_data: str | None = None
    filename: str | None = None
    file_id: str | None = None


class _FileContent(msgspec.Struct, tag="file"):
    file: _FileData


class _RefusalContent(msgspec.Struct, tag="refusal"):
    refusal: str


_Content = _TextContent | _ImageContent | _FileContent | _RefusalContent


class _Function(msgspec.Struct):
    name: str
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    id: str
    function: _Function


class _Message(msgspec.Struct):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[_Content] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _JSONSchemaSpec(msgspec.Struct):
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class _TextFormat(msgspec.Struct, tag="text"):
    pass


class _JSONObjectFormat(msgspec.Struct, tag="json_object"):
    pass


class _JSONSchemaFormat(msgspec.Struct, tag="json_schema"):
    json_schema: _JSONSchemaSpec


_Format = _TextFormat | _JSONObjectFormat | _JSONSchemaFormat


def parse_response_format(fmt: _Format | None) -> ResponseFormat | None:
    """OpenAI's ``response_format`` (chat) as the core's ResponseFormat."""
    match fmt:
        case _JSONObjectFormat():
            return ResponseFormat(kind="json_object")
        case _JSONSchemaFormat(json_schema=spec):
            return ResponseFormat(
                kind="json_schema",
                name=spec.name,
                schema=spec.schema,
                strict=bool(spec.strict),
                description=spec.description,
            )
    return None


class _FunctionDef(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _Tool(msgspec.Struct):
    function: _FunctionDef
    type: Literal["function"] = "function"


class _ChosenFunction(msgspec.Struct):
    name: str


class _NamedChoice(msgspec.Struct):
    function: _ChosenFunction
    type: Literal["function"] = "function"


def parse_tools(
    tools: list[_Tool] | None,
    choice: Literal["auto", "none", "required"] | _NamedChoice | None,
    functions: list[_FunctionDef] | None = None,
    function_call: Literal["auto", "none"] | _ChosenFunction | None = None,
) -> tuple[tuple[ToolSpec, ...], ToolChoice | None]:
    """``tools``/``tool_choice``, or the older ``functions``/``function_call``, as core types."""
    defs = [t.function for t in tools or ()] or list(functions or ())
    specs = tuple(ToolSpec(d.name, d.description, d.parameters) for d in defs)
    picked = choice if choice is not None else function_call
    if picked is None:
        return specs, None
    if isinstance(picked, _NamedChoice):
        return specs, ToolChoice("named", picked.function.name)
    if isinstance(picked, _ChosenFunction):
        return specs, ToolChoice("named", picked.name)
    return specs, ToolChoice(picked)


class _StreamOptions(msgspec.Struct):
    include_usage: bool = False


class _ChatBody(msgspec.Struct):
    model: str
    messages: list[_Message]
    stream: bool = False
    stream_options: _StreamOptions | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    n: int | None = None
    response_format: _Format | None = None
    tools: list[_Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | _NamedChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[_FunctionDef] | None = None
    function_call: Literal["auto", "none"] | _ChosenFunction | None = None
    metadata: Any = None  # conversation_id is read from it (traces)
    user: Any = None
    models: list[str] | None = None  # OpenRouter's ordered fallbacks
    fallbacks: list[str] | None = None


body_decoder = msgspec.json.Decoder(_ChatBody)

# More output tokens than any model can produce: a request asking for more is a client bug.
MAX_OUTPUT_TOKENS = 1_000_000


class ChatOptions(msgspec.Struct, frozen=True):
    """What the OpenAI rendering needs beyond the core request."""

    include_usage: bool = False


# -- parse --------------------------------------------------------------------------------


def parse_request(body: _ChatBody) -> tuple[ChatRequest, ChatOptions]:
    if not body.model.strip():
        raise InvalidRequest("'model' must not be empty", param="model")
    if not body.messages:
        raise InvalidRequest("'messages' must contain at least one message", param="messages")
    if body.n not in (None, 1):
        raise InvalidRequest("only n=1 is supported", param="n")
    for name, value in (
        ("max_tokens", body.max_tokens),
        ("max_completion_tokens", body.max_completion_tokens),
    ):
        if value is not None and value > MAX_OUTPUT_TOKENS:
            raise InvalidRequest(
                f"Invalid '{name}': integer above maximum value. Expected a value <= "
                f"{MAX_OUTPUT_TOKENS}, but got {value} instead.",
                param=name,
            )
    messages = tuple(_parse_message(m, i) for i, m in enumerate(body.messages))
    tools, choice = parse_tools(body.tools, body.tool_choice, body.functions, body.function_call)
    request = ChatRequest(
        model=body.model.strip(),
        messages=messages,
        stream=body.stream,
        max_output_tokens=body.max_completion_tokens or body.max_tokens,
        response_format=parse_response_format(body.response_format),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls is not False,
        conversation_id=traces.metadata_id(body.metadata, "conversation_id"),
        user=traces.client_id(body.user),
        fallbacks=fallback_list(body.model, body.models, body.fallbacks),
    )
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return request, ChatOptions(include_usage=include_usage)


def parse_object(data: Any) -> tuple[ChatRequest, ChatOptions]:
    """A request body already decoded from JSON (LiteLLM's arguments, for one)."""
    return parse_request(convert(data, _ChatBody))


def _parse_message(message: _Message, index: int) -> Message:
    role = "tool" if message.role == "function" else message.role
    calls = tuple(
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
        for c in message.tool_calls or ()
    )
    return Message(
        role=role,
        parts=_parse_content(message.content, index),
        name=message.name,
        tool_call_id=message.tool_call_id,
        tool_calls=calls,
    )


def _parse_content(content: str | list[_Content] | None, index: int) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[Part] = []
    for item in content:
        match item:
            case _TextContent(text=text):
                parts.append(TextPart(text))
            case _ImageContent(image_url=image):
                check_image_data_uri(image.url, f"messages[{index}].content")
                parts.append(ImagePart(image.url))
            case _FileContent(file=file):
                parts.append(_parse_file(file, index))
            case _RefusalContent(refusal=refusal):
                parts.append(TextPart(refusal))
    return tuple(parts)


def _parse_file(file: _FileData, index: int) -> FilePart:
    param = f"messages[{index}].content"
    if not file.file_data:
        raise InvalidRequest(
            "file parts must carry 'file_data' (file_id is not supported)", param=param
        )
    return file_part(file.file_data, file.filename, param)
