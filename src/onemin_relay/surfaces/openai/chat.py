"""OpenAI ``POST /v1/chat/completions``: the handler, and results and chunks rendered in
OpenAI's shapes. Requests are parsed in :mod:`.chat_parse`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from aiohttp import web

from onemin_relay.core.types import (
    ChatResult,
    Finish,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)
from onemin_relay.pipeline import ChatStream
from onemin_relay.surfaces.common import (
    PIPELINE,
    SETTINGS,
    caller_from,
    read_body,
    write_stream,
)
from onemin_relay.surfaces.openai.chat_parse import ChatOptions, body_decoder, parse_request
from onemin_relay.surfaces.openai.errors import render_error_frame

# -- render -------------------------------------------------------------------------------


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def render_tool_call(call: ToolCall) -> dict[str, object]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


def render_message(result: ChatResult) -> dict[str, object]:
    message: dict[str, object] = {"role": "assistant", "content": result.text, "refusal": None}
    if result.tool_calls:
        message["content"] = result.text or None
        message["tool_calls"] = [render_tool_call(c) for c in result.tool_calls]
    return message


def render_result(result: ChatResult) -> dict[str, object]:
    return {
        "id": "chatcmpl-" + result.id,
        "object": "chat.completion",
        "created": result.created,
        "model": result.model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": render_message(result),
                "logprobs": None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage_body(result.usage),
    }


async def render_events(stream: ChatStream, options: ChatOptions) -> AsyncIterator[bytes]:
    """``chat.completion.chunk`` frames: role first, one per delta, finish, usage, [DONE].

    Every chunk of a completion carries the same id. The constant parts of a chunk are
    encoded once per stream; only the delta is encoded per event.
    """
    head = (
        orjson.dumps(
            {
                "id": "chatcmpl-" + stream.id,
                "object": "chat.completion.chunk",
                "created": stream.created,
                "model": stream.model,
            }
        )[:-1]
        + b',"system_fingerprint":null,"choices":[{"index":0,"delta":'
    )
    open_tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
    yield b"data: " + head + b'{"role":"assistant","content":""}' + open_tail
    async for event in stream.events:
        match event:
            case TextDelta(text=text):
                yield b"data: " + head + orjson.dumps({"content": text}) + open_tail
            case ToolCallEvent(index=index, call=call):
                delta = {"tool_calls": [{"index": index, **render_tool_call(call)}]}
                yield b"data: " + head + orjson.dumps(delta) + open_tail
            case Finish(reason=reason, usage=usage):
                yield (
                    b"data: "
                    + head
                    + b'{},"logprobs":null,"finish_reason":"'
                    + reason.encode()
                    + b'"}]}\n\n'
                )
                if options.include_usage and usage is not None:
                    usage_head = head.split(b',"choices":', 1)[0]
                    yield (
                        b"data: "
                        + usage_head
                        + b',"choices":[],"usage":'
                        + orjson.dumps(usage_body(usage))
                        + b"}\n\n"
                    )
    yield b"data: [DONE]\n\n"


# -- handler ------------------------------------------------------------------------------


async def chat_completions(request: web.Request) -> web.StreamResponse:
    chat, options = parse_request(await read_body(request, body_decoder))
    pipeline = request.app[PIPELINE]
    caller = caller_from(request, "x-api-key")
    if not chat.stream:
        result = await pipeline.chat(chat, caller)
        return web.Response(
            body=orjson.dumps(render_result(result)), content_type="application/json"
        )
    async with pipeline.stream(chat, caller) as stream:
        frames = render_events(stream, options)
        timeout = request.app[SETTINGS].write_timeout
        return await write_stream(request, frames, render_error_frame, timeout)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
