"""``OneMinLLM``: LiteLLM's ``CustomLLM`` interface over the relay's pipeline.

Every method turns LiteLLM's arguments into a core request (``convert.py``), runs it on an
engine (``engine.py``: the async methods on the caller's loop, the sync ones on the shared
background loop) and maps errors to LiteLLM's types (``errors.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import litellm
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk

from onemin_relay.core.media_types import ImageResult
from onemin_relay.core.types import ChatResult
from onemin_relay.litellm.convert import (
    Call,
    call_of,
    chat_request,
    chunk_of,
    fill_images,
    fill_response,
    image_request,
)
from onemin_relay.litellm.engine import SYNC_LOOP, Engine, engine_here
from onemin_relay.litellm.errors import litellm_errors

T = TypeVar("T")


class OneMinLLM(CustomLLM):
    """1min.ai for LiteLLM: ``completion(model="one_min/gpt-4o-mini", ...)`` and friends.

    LiteLLM calls these methods with keyword arguments only (``model``, ``messages``,
    ``api_key``, ``api_base``, ``optional_params``, ``model_response``, ``timeout`` and
    more we do not need), so they take ``**kwargs`` rather than repeat its long signature.
    The sync methods do not start a loop or a session per call: they run on one background
    loop thread shared by the process (see ``onemin_relay.litellm.engine``).
    """

    def completion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        return SYNC_LOOP.run(complete(*_chat_args(kwargs)))

    async def acompletion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        return await complete(*_chat_args(kwargs))

    def streaming(self, *args: Any, **kwargs: Any) -> Iterator[GenericStreamingChunk]:
        call, messages, params, _ = _chat_args(kwargs)
        return SYNC_LOOP.iterate(stream(call, messages, params))

    # LiteLLM iterates what astreaming returns without awaiting it: an async generator
    async def astreaming(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        call, messages, params, _ = _chat_args(kwargs)
        async for chunk in stream(call, messages, params):
            yield chunk

    def image_generation(self, *args: Any, **kwargs: Any) -> litellm.ImageResponse:
        return SYNC_LOOP.run(generate(*_image_args(kwargs)))

    async def aimage_generation(self, *args: Any, **kwargs: Any) -> litellm.ImageResponse:
        return await generate(*_image_args(kwargs))


def _chat_args(
    kwargs: dict[str, Any],
) -> tuple[Call, list[Any], dict[str, Any], litellm.ModelResponse]:
    call = call_of(kwargs)
    return call, kwargs["messages"], kwargs.get("optional_params") or {}, kwargs["model_response"]


def _image_args(kwargs: dict[str, Any]) -> tuple[Call, str, dict[str, Any], litellm.ImageResponse]:
    call = call_of(kwargs)
    return call, kwargs["prompt"], kwargs.get("optional_params") or {}, kwargs["model_response"]


async def complete(
    call: Call,
    messages: list[Any],
    optional_params: dict[str, Any],
    response: litellm.ModelResponse,
) -> litellm.ModelResponse:
    """One whole answer (tool calls parsed, JSON validated and repaired) on this loop."""

    async def chat(engine: Engine) -> ChatResult:
        request = chat_request(call.model, messages, optional_params)
        return await engine.pipeline.chat(request, call.caller)

    return fill_response(await _on_engine(call, chat), response)


async def stream(
    call: Call, messages: list[Any], optional_params: dict[str, Any]
) -> AsyncIterator[GenericStreamingChunk]:
    """The answer as LiteLLM chunks. LiteLLM's timeout bounds the wait for the stream to
    open; after that the relay's idle timeout between upstream reads applies."""
    with litellm_errors(call.model, call.url):
        request = chat_request(call.model, messages, optional_params)
        async with AsyncExitStack() as stack:
            opening = engine_here(call.api_base).pipeline.stream(request, call.caller)
            async with asyncio.timeout(call.timeout):
                opened = await stack.enter_async_context(opening)
            async for event in opened.events:
                yield chunk_of(event)


async def generate(
    call: Call, prompt: str, optional_params: dict[str, Any], response: litellm.ImageResponse
) -> litellm.ImageResponse:
    async def images(engine: Engine) -> ImageResult:
        request = image_request(call.model, prompt, optional_params)
        return await engine.features.generate_images(request, call.caller)

    return fill_images(await _on_engine(call, images), response)


async def _on_engine(call: Call, work: Callable[[Engine], Awaitable[T]]) -> T:
    """``work`` on this loop's engine, within LiteLLM's timeout, errors as LiteLLM's."""
    with litellm_errors(call.model, call.url):
        async with asyncio.timeout(call.timeout):
            return await work(engine_here(call.api_base))
