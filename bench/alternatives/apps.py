"""The minimal relay handler, served three ways: aiohttp.web, ASGI and RSGI (both on granian).

Every server runs the same handler work: read the OpenAI chat body, decode it with msgspec,
take the caller's key from ``Authorization``, call the upstream (``BENCH_UPSTREAM``: aiohttp
or pyreqwest, against ``BENCH_UPSTREAM_URL``) and answer JSON, or relay the upstream's SSE
stream as OpenAI chunks. ``GET`` answers 200 (readiness). Not the relay: no auth, limits,
ledger or metrics, so the servers' own cost stands out.

    python -m bench.alternatives.apps --port P          # aiohttp.web
    granian --interface asgi bench.alternatives.apps:asgi
    granian --interface rsgi bench.alternatives.apps:rsgi
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import msgspec
import orjson
from aiohttp import web

from bench.alternatives.upstreams import Upstream, make
from onemin_relay.core.types import TextDelta
from onemin_relay.settings import Settings
from onemin_relay.upstream.client import ChatCall

JSON = "application/json"
SSE = "text/event-stream"
DONE = b"data: [DONE]\n\n"
_ids = itertools.count()
HANGUP_GUARD = os.environ.get("BENCH_HANGUP_GUARD", "1") != "0"


class _Message(msgspec.Struct):
    role: str
    content: str


class _ChatBody(msgspec.Struct):
    model: str
    messages: list[_Message]
    stream: bool = False


_decode = msgspec.json.Decoder(_ChatBody).decode
_upstream: Upstream | None = None


def upstream() -> Upstream:
    """One client per process, made inside the running loop on first use."""
    global _upstream
    if _upstream is None:
        settings = Settings(upstream_url=os.environ["BENCH_UPSTREAM_URL"])
        _upstream = make(os.environ.get("BENCH_UPSTREAM", "aiohttp"), settings)
    return _upstream


def tune_gc() -> None:
    """What the relay does after start-up (``cli.py``), so every server runs alike."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def parse(body: bytes, authorization: str | None) -> tuple[ChatCall, bool, str]:
    chat = _decode(body)
    prompt = "\n".join(m.content for m in chat.messages)
    key = (authorization or "").removeprefix("Bearer ")
    return ChatCall(model=chat.model, prompt=prompt), chat.stream, key


async def complete(call: ChatCall, key: str) -> bytes:
    record = await upstream().chat(call, key)
    return orjson.dumps(
        {
            "id": f"chatcmpl-{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": call.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": record.text},
                    "finish_reason": record.finish_reason or "stop",
                }
            ],
        }
    )


async def frames(call: ChatCall, key: str) -> AsyncIterator[bytes]:
    """The upstream stream as OpenAI ``chat.completion.chunk`` SSE frames, then ``[DONE]``."""
    head = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk"}
    async with upstream().stream_chat(call, key) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                choice = {"index": 0, "delta": {"content": event.text}}
                yield b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"
    yield DONE


async def unless_gone(work: Coroutine[Any, Any, None], gone: Awaitable[object]) -> None:
    """Run ``work`` until it ends or the client hangs up (``gone`` completes): what aiohttp's
    ``handler_cancellation`` does, done by hand, since an ASGI or RSGI server keeps running
    a handler whose client has left (DESIGN: a disconnect cancels the upstream call)."""
    if not HANGUP_GUARD:  # to measure what the watch costs
        if inspect.iscoroutine(gone):
            gone.close()
        await work
        return
    # The cheapest form found: one watcher task that cancels the handler's own task (two
    # tasks and asyncio.wait cost a third more server CPU per request).
    handler = asyncio.current_task()
    assert handler is not None

    async def watch() -> None:
        await gone
        handler.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        await work
    except asyncio.CancelledError:
        if not watcher.done():
            raise  # cancelled from elsewhere (shutdown)
    finally:
        watcher.cancel()


# -- aiohttp.web ----------------------------------------------------------------------


async def _aiohttp_chat(request: web.Request) -> web.StreamResponse:
    call, stream, key = parse(await request.read(), request.headers.get("Authorization"))
    if not stream:
        return web.Response(body=await complete(call, key), content_type=JSON)
    response = web.StreamResponse(headers={"Content-Type": SSE, "Cache-Control": "no-cache"})
    await response.prepare(request)
    async for frame in frames(call, key):
        await response.write(frame)
    await response.write_eof()
    return response


async def _ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve_aiohttp(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _aiohttp_chat)
    app.router.add_get("/healthz", _ok)
    # as the relay: a client that hangs up cancels its handler (and the upstream call)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    tune_gc()
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()


# -- ASGI -----------------------------------------------------------------------------

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def asgi(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            tune_gc()
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] == "GET":
        await _asgi_answer(send, "text/plain", b"ok")
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
    await unless_gone(_asgi_chat(send, *parse(body, authorization)), _asgi_gone(receive))


async def _asgi_chat(send: Send, call: ChatCall, stream: bool, key: str) -> None:
    if not stream:
        await _asgi_answer(send, JSON, await complete(call, key))
        return
    start = {"type": "http.response.start", "status": 200}
    await send({**start, "headers": [(b"content-type", SSE.encode())]})
    async for frame in frames(call, key):
        await send({"type": "http.response.body", "body": frame, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _asgi_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _asgi_answer(send: Send, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- RSGI -----------------------------------------------------------------------------


class _RSGI:
    def __rsgi_init__(self, _loop: asyncio.AbstractEventLoop) -> None:
        tune_gc()

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.method == "GET":
            proto.response_bytes(200, [("content-type", "text/plain")], b"ok")
            return
        call, stream, key = parse(await proto(), scope.headers.get("authorization"))
        await unless_gone(self._chat(proto, call, stream, key), proto.client_disconnect())

    async def _chat(self, proto: Any, call: ChatCall, stream: bool, key: str) -> None:
        if not stream:
            proto.response_bytes(200, [("content-type", JSON)], await complete(call, key))
            return
        transport = proto.response_stream(200, [("content-type", SSE)])
        async for frame in frames(call, key):
            await transport.send_bytes(frame)


rsgi = _RSGI()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alternatives.apps")
    parser.add_argument("--port", type=int, required=True)
    import uvloop

    uvloop.run(serve_aiohttp(parser.parse_args().port))


if __name__ == "__main__":
    main()
