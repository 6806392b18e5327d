"""Anthropic Messages requests: the body's shapes and their translation into core types."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

import msgspec
import orjson

from onemin_relay.core.errors import InvalidRequest
from onemin_relay.core.media_types import check_image_data_uri
from onemin_relay.core.types import (
    ChatRequest,
    FilePart,
    ImagePart,
    Message,
    Part,
    TextPart,
    ToolCall,
    ToolChoice,
    ToolSpec,
)
from onemin_relay.gateway import traces
from onemin_relay.gateway.routing import fallback_list

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


class _ToolDef(msgspec.Struct):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None  # server tools (web search, …) have a type and no input_schema


class _ToolChoice(msgspec.Struct):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class _CountBody(msgspec.Struct):
    model: str
    messages: list[_Message]
    system: str | list[_Text] | None = None
    tools: list[_ToolDef] | None = None
    tool_choice: _ToolChoice | None = None
    metadata: Any = None  # user_id names the end user (traces)


class _MessagesBody(_CountBody, kw_only=True):
    max_tokens: int  # required, as Anthropic requires it (and then has nowhere to go)
    stream: bool = False
    fallbacks: list[str] | None = None  # models to try in order if ``model`` fails


messages_decoder = msgspec.json.Decoder(_MessagesBody)

# More output tokens than any model can produce: a request asking for more is a client bug.
MAX_OUTPUT_TOKENS = 1_000_000
count_decoder = msgspec.json.Decoder(_CountBody)

# -- parse --------------------------------------------------------------------------------


def parse_request(body: _CountBody, *, stream: bool = False) -> ChatRequest:
    if not body.model.strip():
        raise InvalidRequest("model: must not be empty", param="model")
    if not body.messages:
        raise InvalidRequest("messages: at least one message is required", param="messages")
    if isinstance(body, _MessagesBody) and body.max_tokens > MAX_OUTPUT_TOKENS:
        raise InvalidRequest(
            f"max_tokens: {body.max_tokens} > {MAX_OUTPUT_TOKENS}, "
            "which is the maximum allowed number of output tokens",
            param="max_tokens",
        )
    messages: list[Message] = []
    if body.system:
        system = (
            body.system if isinstance(body.system, str) else "\n".join(b.text for b in body.system)
        )
        messages.append(Message(role="system", parts=(TextPart(system),)))
    for index, message in enumerate(body.messages):
        messages.extend(_parse_message(message, index))
    tools = tuple(
        ToolSpec(t.name, t.description, t.input_schema)
        for t in body.tools or ()
        if t.input_schema is not None or t.type in (None, "custom")
    )
    choice = body.tool_choice
    return ChatRequest(
        model=body.model.strip(),
        messages=tuple(messages),
        stream=stream,
        tools=tools,
        tool_choice=_parse_choice(choice),
        parallel_tool_calls=not (choice and choice.disable_parallel_tool_use),
        conversation_id=traces.metadata_id(body.metadata, "conversation_id"),
        user=traces.metadata_id(body.metadata, "user_id"),
        fallbacks=fallback_list(
            body.model, body.fallbacks if isinstance(body, _MessagesBody) else None
        ),
    )


_CHOICE_MODES: dict[str, Literal["auto", "required", "none"]] = {
    "auto": "auto",
    "any": "required",
    "none": "none",
}


def _parse_choice(choice: _ToolChoice | None) -> ToolChoice | None:
    if choice is None:
        return None
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice.name: required for type 'tool'", param="tool_choice")
        return ToolChoice("named", choice.name)
    return ToolChoice(_CHOICE_MODES[choice.type])


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
        uri = f"data:{source.media_type or 'image/png'};base64,{source.data}"
        check_image_data_uri(uri, f"messages.{index}.content")
        return uri
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
