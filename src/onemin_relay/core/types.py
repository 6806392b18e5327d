"""Protocol-neutral shapes shared by every surface, the pipeline and the upstream client.

Surfaces parse their protocol into these types and render them back; nothing here knows
about HTTP, aiohttp or 1min.ai's wire format.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import msgspec

Role: TypeAlias = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "content_filter", "tool_calls"]
ModelKind: TypeAlias = Literal["chat", "image", "speech_to_text", "text_to_speech"]


# -- message parts ---------------------------------------------------------------------


class TextPart(msgspec.Struct, frozen=True, tag="text"):
    text: str


class ImagePart(msgspec.Struct, frozen=True, tag="image"):
    """An image the client sent: a ``data:`` URI or an ``http(s):`` URL, resolved later."""

    url: str


class FilePart(msgspec.Struct, frozen=True, tag="file"):
    """A document the client sent inline (base64-decoded bytes) with its name and MIME type."""

    data: bytes
    media_type: str
    filename: str | None = None


Part: TypeAlias = TextPart | ImagePart | FilePart


class ToolCall(msgspec.Struct, frozen=True):
    """A function call made by the assistant; ``arguments`` is the JSON text as sent."""

    id: str
    name: str
    arguments: str


class Message(msgspec.Struct, frozen=True):
    role: Role
    parts: tuple[Part, ...] = ()
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def text(self) -> str:
        """The text parts joined by newlines (images and files are not text)."""
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))


# -- requests and results --------------------------------------------------------------


class ResponseFormat(msgspec.Struct, frozen=True):
    """What the client asked the answer to be: free text, any JSON object, or schema-valid JSON."""

    kind: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool = False
    description: str | None = None


class ToolSpec(msgspec.Struct, frozen=True):
    """A function the client offers the model; ``parameters`` is a JSON Schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolChoice(msgspec.Struct, frozen=True):
    """Whether the model may (auto), must not (none), must (required) or must call ``name``."""

    mode: Literal["auto", "none", "required", "named"] = "auto"
    name: str | None = None


class Caller(msgspec.Struct, frozen=True):
    """Who is calling: the credential the client presented (if any), the relay key from
    the URL path (if any), its address, and which surface and request this is."""

    api_key: str | None
    client_ip: str = ""
    relay_key: str | None = None
    surface: str = ""
    request_id: str = ""
    idempotency_key: str | None = None
    conversation_id: str | None = None  # x-onemin-conversation-id, or the body's (traces)
    user: str | None = None  # the end user the client names (traces)
    received: float = 0.0  # time.monotonic() when the request arrived; 0: unknown

    def __repr__(self) -> str:  # credentials stay out of logs and tracebacks
        return f"Caller(surface={self.surface!r}, request_id={self.request_id!r})"


class ChatRequest(msgspec.Struct, frozen=True):
    """One chat turn as the pipeline sees it, whatever protocol it arrived in."""

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    web_search: bool = False
    max_output_tokens: int | None = None
    response_format: ResponseFormat | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool = True
    conversation_id: str | None = None  # from the body's metadata (traces)
    user: str | None = None  # the end user the body names (traces)
    fallbacks: tuple[str, ...] = ()  # models to try, in order, if ``model`` fails upstream


class Usage(msgspec.Struct, frozen=True):
    input_tokens: int
    output_tokens: int
    estimated: bool = False
    credits: int | None = None  # what 1min.ai charged, when it said

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ChatResult(msgspec.Struct, frozen=True):
    id: str
    model: str
    text: str
    finish_reason: FinishReason
    usage: Usage
    created: int
    tool_calls: tuple[ToolCall, ...] = ()


# -- stream events ---------------------------------------------------------------------


class TextDelta(msgspec.Struct, frozen=True, tag="text_delta"):
    text: str


class ToolCallEvent(msgspec.Struct, frozen=True, tag="tool_call"):
    """One complete tool call; ``index`` counts the calls of this reply from 0."""

    index: int
    call: ToolCall


class Finish(msgspec.Struct, frozen=True, tag="finish"):
    """The last event of a successful stream. ``usage`` is None until the pipeline fills it."""

    reason: FinishReason
    usage: Usage | None = None


StreamEvent: TypeAlias = TextDelta | ToolCallEvent | Finish


# -- catalog ---------------------------------------------------------------------------


class ModelInfo(msgspec.Struct, frozen=True):
    id: str
    name: str
    kind: ModelKind
    provider: str | None = None
    vision: bool = False
    context_window: int | None = None
    max_output_tokens: int | None = None
    # 1min.ai's ``creditMetadata``: token prices for chat, a price table for the rest
    credit_metadata: dict[str, Any] | None = None
