"""LiteLLM's arguments into the relay's core request, and core results back into LiteLLM's
response objects. LiteLLM speaks OpenAI's chat format, so requests go through the OpenAI
surface's own parser (same validation, same errors) rather than a second one."""

from __future__ import annotations

import os
from typing import Any

import litellm
import msgspec
from litellm.types.llms.openai import ChatCompletionUsageBlock
from litellm.types.utils import GenericStreamingChunk, ImageObject

from onemin_relay.core.media_types import ImageRequest, ImageResult
from onemin_relay.core.types import (
    Caller,
    ChatRequest,
    ChatResult,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallEvent,
    Usage,
)
from onemin_relay.surfaces.openai import chat as openai_chat
from onemin_relay.surfaces.openai import chat_parse
from onemin_relay.surfaces.openai import images as openai_images

KEY_VARIABLES = ("ONE_MIN_API_KEY", "ONEMIN_API_KEY")
# the OpenAI parameters 1min.ai (through the relay) has a use for; sampling ones are dropped
CHAT_PARAMETERS = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "functions",
    "function_call",
    "max_tokens",
    "max_completion_tokens",
    "n",
)
IMAGE_PARAMETERS = (
    "n",
    "size",
    "quality",
    "style",
    "background",
    "output_format",
    "output_compression",
    "response_format",
)


class Call(msgspec.Struct, frozen=True):
    """One call as the engine runs it: where, with which key, and its deadline."""

    model: str
    api_base: str | None
    caller: Caller
    timeout: float | None

    @property
    def url(self) -> str:
        """Where the call goes, for error objects (never with a key)."""
        return self.api_base or os.environ.get("ONEMIN_UPSTREAM_URL") or "https://api.1min.ai"


def call_of(kwargs: dict[str, Any]) -> Call:
    """The call LiteLLM's keyword arguments describe. The key from ``api_key=``, else
    ``ONE_MIN_API_KEY``, else ``ONEMIN_API_KEY``; the base URL from ``api_base=``, else
    ``ONEMIN_UPSTREAM_URL`` (read by the settings); ``timeout`` when it is in seconds."""
    env_key = next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)
    timeout = kwargs.get("timeout")
    return Call(
        model=kwargs["model"],
        api_base=kwargs.get("api_base") or None,
        caller=Caller(api_key=kwargs.get("api_key") or env_key, surface="litellm"),
        timeout=float(timeout) if isinstance(timeout, int | float) else None,
    )


def chat_request(model: str, messages: list[Any], optional_params: dict[str, Any]) -> ChatRequest:
    """The core request for LiteLLM's ``model``, ``messages`` and ``optional_params``."""
    body: dict[str, Any] = {"model": model, "messages": [_plain(m) for m in messages]}
    body.update({k: optional_params[k] for k in CHAT_PARAMETERS if k in optional_params})
    request, _ = chat_parse.parse_object(body)
    return request


def image_request(model: str, prompt: str, optional_params: dict[str, Any]) -> ImageRequest:
    """The core image request. LiteLLM hands a custom provider none of OpenAI's image
    parameters (``size``, ``n``, …) but does pass ``extra_body``, so they are read there."""
    given = {**optional_params, **(optional_params.get("extra_body") or {})}
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    body.update({k: given[k] for k in IMAGE_PARAMETERS if k in given})
    return openai_images.parse_object(body)


def _plain(message: Any) -> Any:
    """A message as plain JSON values: a LiteLLM ``Message`` handed back in a tool loop is
    a pydantic object; its unset fields are dropped as the OpenAI SDK would."""
    if hasattr(message, "model_dump"):
        return {k: v for k, v in message.model_dump().items() if v is not None}
    return message


def fill_response(result: ChatResult, response: litellm.ModelResponse) -> litellm.ModelResponse:
    """Write ``result`` into the ``ModelResponse`` LiteLLM handed the provider."""
    body = openai_chat.render_result(result)
    choice = body["choices"][0]  # type: ignore[index]
    response.choices[0].message = litellm.Message(**choice["message"])
    response.choices[0].finish_reason = result.finish_reason
    response.created = result.created
    response.model = result.model
    response.usage = litellm.Usage(**openai_chat.usage_body(result.usage))
    return response


def chunk_of(event: StreamEvent) -> GenericStreamingChunk:
    """One stream event as LiteLLM's provider-neutral chunk."""
    chunk = GenericStreamingChunk(
        text="", tool_use=None, is_finished=False, finish_reason="", usage=None, index=0
    )
    match event:
        case TextDelta(text=text):
            chunk["text"] = text
        case ToolCallEvent(index=index, call=call):
            chunk["tool_use"] = {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
                "index": index,
            }
        case Finish(reason=reason, usage=usage):
            chunk["is_finished"] = True
            chunk["finish_reason"] = reason
            chunk["usage"] = None if usage is None else usage_block(usage)
    return chunk


def usage_block(usage: Usage) -> ChatCompletionUsageBlock:
    return ChatCompletionUsageBlock(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def fill_images(result: ImageResult, response: litellm.ImageResponse) -> litellm.ImageResponse:
    response.created = result.created
    response.data = [ImageObject(url=i.url, b64_json=i.b64_json) for i in result.images]
    return response
