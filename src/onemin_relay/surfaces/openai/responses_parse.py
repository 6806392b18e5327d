"""OpenAI Responses requests: the body's shapes and their translation into core types.

``input`` is a string, or a list of items: messages (content a string or ``input_text``,
``input_image``, ``input_file``, ``output_text`` and ``refusal`` parts), items with no
``type`` (sent by n8n and others; read as messages), ``function_call`` and
``function_call_output`` items (tool-calling history: an assistant tool call and a tool
result), and ``reasoning`` items (skipped: 1min.ai takes no reasoning state).
``instructions`` become the first system message; ``developer`` and ``system`` roles are
system messages. ``file_id`` / ``file_url`` references are refused: the relay has no Files API.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal, TypeAlias

import msgspec

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.structured import check_schema
from onemin_relay.core.types import (
    ChatRequest,
    FilePart,
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
from onemin_relay.gateway import traces
from onemin_relay.gateway.routing import fallback_list
from onemin_relay.surfaces.common import convert, file_part
from onemin_relay.surfaces.openai.chat_parse import _Format as _ChatFormat
from onemin_relay.surfaces.openai.chat_parse import parse_response_format

MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512

Effort: TypeAlias = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


# -- request shapes (only the fields the relay reads) -------------------------------------


class _InputText(msgspec.Struct, tag="input_text"):
    text: str


class _OutputText(msgspec.Struct, tag="output_text"):
    text: str


class _Refusal(msgspec.Struct, tag="refusal"):
    refusal: str


class _InputImage(msgspec.Struct, tag="input_image"):
    image_url: str | None = None
    file_id: str | None = None


class _InputFile(msgspec.Struct, tag="input_file"):
    file_data: str | None = None
    filename: str | None = None
    file_id: str | None = None
    file_url: str | None = None


_Content: TypeAlias = _InputText | _OutputText | _Refusal | _InputImage | _InputFile


class _MessageItem(msgspec.Struct, tag="message"):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[_Content]


class _FunctionCallItem(msgspec.Struct, tag="function_call"):
    call_id: str
    name: str
    arguments: str = ""


class _FunctionCallOutputItem(msgspec.Struct, tag="function_call_output"):
    call_id: str
    output: str | list[_Content]


class _ReasoningItem(msgspec.Struct, tag="reasoning"):
    pass


_Item: TypeAlias = _MessageItem | _FunctionCallItem | _FunctionCallOutputItem | _ReasoningItem


class _TextFormat(msgspec.Struct, tag="text"):
    pass


class _JSONObjectFormat(msgspec.Struct, tag="json_object"):
    pass


class _JSONSchemaFormat(msgspec.Struct, tag="json_schema"):
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None


class _TextConfig(msgspec.Struct):
    format: _TextFormat | _JSONObjectFormat | _JSONSchemaFormat | None = None


class _Reasoning(msgspec.Struct):
    effort: Effort | None = None


class _FunctionChoice(msgspec.Struct):
    name: str
    type: Literal["function"] = "function"


_WEB_SEARCH_TOOLS = frozenset({"web_search", "web_search_preview", "web_search_2025_08_26"})


class _ResponsesBody(msgspec.Struct):
    model: str
    input: str | list[_Item]
    instructions: str | None = None
    text: _TextConfig | None = None
    response_format: _ChatFormat | None = None
    reasoning: _Reasoning | None = None
    reasoning_effort: Effort | None = None
    max_output_tokens: Annotated[int, msgspec.Meta(ge=1)] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["auto", "none", "required"] | _FunctionChoice | None = None
    parallel_tool_calls: bool | None = None
    user: Any = None
    models: list[str] | None = None  # ordered fallbacks, as in chat completions
    fallbacks: list[str] | None = None


class ResponseShell(msgspec.Struct, frozen=True):
    """What a response object echoes from its request, fixed before the answer exists."""

    id: str
    message_id: str
    model: str
    created_at: int
    store: bool = True
    instructions: str | None = None
    metadata: dict[str, str] = {}
    previous_response_id: str | None = None
    reasoning_effort: str | None = None
    max_output_tokens: int | None = None
    text_format: ResponseFormat | None = None
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True


class ResponsesCall(msgspec.Struct, frozen=True):
    """A parsed request: the chat turn, what its response echoes, and the conversation a
    follow-up continues (earlier turns and this input, without ``instructions``)."""

    chat: ChatRequest
    shell: ResponseShell
    conversation: tuple[Message, ...]


# -- parse --------------------------------------------------------------------------------


def decode_body(data: Any) -> _ResponsesBody:
    """Type the JSON body; input items without ``type`` are messages."""
    if isinstance(data, dict) and isinstance(data.get("input"), list):
        data["input"] = [
            {**item, "type": "message"} if isinstance(item, dict) and "type" not in item else item
            for item in data["input"]
        ]
    return convert(data, _ResponsesBody)


def parse_request(body: _ResponsesBody, history: tuple[Message, ...] = ()) -> ResponsesCall:
    """The core request for ``body``, continuing ``history`` (a stored conversation)."""
    model = body.model.strip()
    if not model:
        raise InvalidRequest("'model' must not be empty", param="model")
    if not body.input:
        raise InvalidRequest("'input' must not be empty", param="input")
    _check_metadata(body.metadata or {})
    turn = _parse_input(body.input)
    conversation = history + turn
    system = (Message("system", (TextPart(body.instructions),)),) if body.instructions else ()
    fmt = _parse_format(body)
    tools, web_search = _parse_tools(body.tools or [])
    parallel = body.parallel_tool_calls is not False
    chat = ChatRequest(
        model=model,
        messages=system + conversation,
        stream=body.stream,
        web_search=web_search,
        max_output_tokens=body.max_output_tokens,
        response_format=fmt,
        tools=tools,
        tool_choice=_parse_choice(body.tool_choice),
        parallel_tool_calls=parallel,
        conversation_id=traces.metadata_id(body.metadata, "conversation_id"),
        user=traces.client_id(body.user),
        fallbacks=fallback_list(model, body.models, body.fallbacks),
    )
    shell = ResponseShell(
        id="resp_" + uuid.uuid4().hex,
        message_id="msg_" + uuid.uuid4().hex,
        model=model,
        created_at=int(time.time()),
        store=body.store is not False,
        instructions=body.instructions,
        metadata=body.metadata or {},
        previous_response_id=body.previous_response_id,
        reasoning_effort=_effort(body),
        max_output_tokens=body.max_output_tokens,
        text_format=fmt,
        tools=tuple(body.tools or ()),
        tool_choice=msgspec.to_builtins(body.tool_choice) if body.tool_choice else "auto",
        parallel_tool_calls=parallel,
    )
    return ResponsesCall(chat=chat, shell=shell, conversation=conversation)


def _parse_tools(tools: list[dict[str, Any]]) -> tuple[tuple[ToolSpec, ...], bool]:
    """Function tools become core tools; a web search tool turns on 1min.ai's web search."""
    specs: list[ToolSpec] = []
    web_search = False
    for index, tool in enumerate(tools):
        kind = tool.get("type")
        if kind in _WEB_SEARCH_TOOLS:
            web_search = True
        elif kind == "function" and isinstance(tool.get("name"), str):
            parameters = tool.get("parameters")
            description = tool.get("description")
            specs.append(
                ToolSpec(
                    tool["name"],
                    description if isinstance(description, str) else None,
                    parameters if isinstance(parameters, dict) else None,
                )
            )
        else:
            raise InvalidRequest(
                f"tool type {kind!r} is not supported (function and web_search are)",
                param=f"tools[{index}].type",
            )
    return tuple(specs), web_search


def _parse_choice(
    choice: Literal["auto", "none", "required"] | _FunctionChoice | None,
) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, _FunctionChoice):
        return ToolChoice("named", choice.name)
    return ToolChoice(choice)


def _effort(body: _ResponsesBody) -> Effort | None:
    """``reasoning.effort``, else the top-level ``reasoning_effort``: echoed, never sent on."""
    nested = body.reasoning.effort if body.reasoning is not None else None
    return nested or body.reasoning_effort


def _check_metadata(metadata: dict[str, str]) -> None:
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequest(f"at most {MAX_METADATA_PAIRS} metadata pairs", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata keys are at most {MAX_METADATA_KEY} characters and values at most "
                f"{MAX_METADATA_VALUE}",
                param="metadata",
            )


def _parse_format(body: _ResponsesBody) -> ResponseFormat | None:
    """``text.format``, else the older top-level ``response_format``; schemas checked here
    so that a bad one is reported on the field the client sent."""
    spec = body.text.format if body.text is not None else None
    if spec is None:
        return parse_response_format(body.response_format)
    match spec:
        case _JSONObjectFormat():
            return ResponseFormat(kind="json_object")
        case _JSONSchemaFormat():
            fmt = ResponseFormat(
                kind="json_schema",
                name=spec.name,
                schema=spec.schema,
                strict=bool(spec.strict),
                description=spec.description,
            )
            _check_schema(fmt)
            return fmt
    return None


def _check_schema(fmt: ResponseFormat) -> None:
    try:
        check_schema(fmt)
    except InvalidRequest as exc:
        message = exc.message.removeprefix("response_format: ")
        raise InvalidRequest(f"text.format: {message}", param="text.format") from None


def _parse_input(items: str | list[_Item]) -> tuple[Message, ...]:
    if isinstance(items, str):
        return (Message("user", (TextPart(items),)),)
    messages: list[Message] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        match item:
            case _MessageItem(role=role, content=content):
                parts = _parse_content(content, f"{param}.content")
                kind: Role = "system" if role in ("system", "developer") else role
                messages.append(Message(kind, parts))
            case _FunctionCallItem(call_id=call_id, name=name, arguments=arguments):
                call = ToolCall(id=call_id, name=name, arguments=arguments)
                if messages and messages[-1].role == "assistant":
                    last = messages[-1]
                    calls = (*last.tool_calls, call)
                    messages[-1] = msgspec.structs.replace(last, tool_calls=calls)
                else:
                    messages.append(Message("assistant", tool_calls=(call,)))
            case _FunctionCallOutputItem(call_id=call_id, output=output):
                parts = _parse_content(output, f"{param}.output")
                messages.append(Message("tool", parts, tool_call_id=call_id))
    return tuple(messages)


def _parse_content(content: str | list[_Content], param: str) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[Part] = []
    for index, part in enumerate(content):
        match part:
            case _InputText(text=text) | _OutputText(text=text):
                parts.append(TextPart(text))
            case _Refusal(refusal=refusal):
                parts.append(TextPart(refusal))
            case _InputImage(image_url=url) if url:
                parts.append(ImagePart(url))
            case _InputImage():
                raise _no_file_ids("input_image needs 'image_url'", f"{param}[{index}]")
            case _InputFile():
                parts.append(_parse_file(part, f"{param}[{index}]"))
    return tuple(parts)


def _parse_file(file: _InputFile, param: str) -> FilePart:
    if not file.file_data:
        raise _no_file_ids("input_file needs 'file_data'", param)
    return file_part(file.file_data, file.filename, param)


def _no_file_ids(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{message}: the relay has no Files API, so file_id and file_url are not supported; "
        "send the content inline (a data: URI, or an https: URL for images)",
        param=param,
    )
